/* mlp.c - the Keras mnist_mlp network: flatten -> fc 512 -> relu -> dropout 0.2
 * -> fc 512 -> relu -> dropout 0.2 -> fc classes. */
#include "models.h"

int fm_model_mlp(FmNet *net, int x, int classes, const FmNetOpts *opts) {
  x = fm_net_flatten(net, x);
  for (int i = 0; i < 2; i++) x = fm_net_dropout(net, fm_net_relu(net, fm_net_linear(net, x, 512, 1)), 0.2f);
  return fm_net_linear(net, x, classes, 1);
}
