/* resnet_cifar.c - CIFAR ResNets (He et al. 2016, section 4.2): a 3x3 conv
 * with 16 channels, three stages of n basic blocks with 16, 32, 64 channels
 * (the first block of stages 2 and 3 has stride 2), global average pool, fc.
 * depth = 6n + 2: resnet20 (n=3), 32 (5), 56 (9), 110 (18). Where a block
 * changes shape the shortcut is a projection: 1x1 conv (stride 2) + BN. */
#include "models.h"

int fm_model_conv_bn(FmNet *net, int x, int cout, int k, int stride, int pad, int relu) {
  x = fm_net_bn(net, fm_net_conv2d(net, x, cout, k, stride, pad, 0));
  return relu ? fm_net_relu(net, x) : x;
}

// conv3x3-BN-relu-conv3x3-BN (+ shortcut) -> relu
static int basic_block(FmNet *net, int x, int cout, int stride) {
  int cin = x >= 0 ? net->tensors[x].c : cout;
  int y = fm_model_conv_bn(net, x, cout, 3, stride, 1, 1);
  y = fm_model_conv_bn(net, y, cout, 3, 1, 1, 0);
  int sc = stride != 1 || cin != cout ? fm_model_conv_bn(net, x, cout, 1, stride, 0, 0) : x;
  return fm_net_relu(net, fm_net_add(net, y, sc));
}

int fm_model_resnet_cifar(FmNet *net, int x, int classes, int depth, int width) {
  int n = (depth - 2) / 6;
  x = fm_model_conv_bn(net, x, width, 3, 1, 1, 1);
  for (int stage = 0; stage < 3; stage++)
    for (int b = 0; b < n; b++)
      x = basic_block(net, x, width << stage, stage > 0 && b == 0 ? 2 : 1);
  return fm_net_linear(net, fm_net_global_avgpool(net, x), classes, 1);
}

int fm_model_resnet20(FmNet *net, int x, int classes, const FmNetOpts *o) { return fm_model_resnet_cifar(net, x, classes, 20, 16); }
int fm_model_resnet32(FmNet *net, int x, int classes, const FmNetOpts *o) { return fm_model_resnet_cifar(net, x, classes, 32, 16); }
int fm_model_resnet56(FmNet *net, int x, int classes, const FmNetOpts *o) { return fm_model_resnet_cifar(net, x, classes, 56, 16); }
int fm_model_resnet110(FmNet *net, int x, int classes, const FmNetOpts *o) { return fm_model_resnet_cifar(net, x, classes, 110, 16); }
