/* mnist_cnn.c - the Keras mnist_cnn example network:
 * conv 32 3x3 -> relu -> conv 64 3x3 -> relu -> maxpool 2 -> dropout 0.25
 * -> flatten -> fc 128 -> relu -> dropout 0.5 -> fc classes. */
#include "models.h"

int fm_model_mnist_cnn(FmNet *net, int x, int classes, const FmNetOpts *opts) {
  x = fm_net_relu(net, fm_net_conv2d(net, x, 32, 3, 1, 0, 1));
  x = fm_net_relu(net, fm_net_conv2d(net, x, 64, 3, 1, 0, 1));
  x = fm_net_dropout(net, fm_net_maxpool(net, x, 2, 2, 0), 0.25f);
  x = fm_net_relu(net, fm_net_linear(net, fm_net_flatten(net, x), 128, 1));
  return fm_net_linear(net, fm_net_dropout(net, x, 0.5f), classes, 1);
}
