/* shiftresnet.c - ShiftResNets (Wu et al. 2017; the reference's shiftresnet-cifar): the
 * CIFAR ResNet (resnet_cifar.c) with each basic block's two 3x3 convs replaced by
 *
 *   conv1x1 (C_in -> e*C_out) -> BN -> relu -> shift (k = 3) -> conv1x1 (-> C_out, the
 *   block's stride) -> BN,   + shortcut (identity, or 1x1 conv stride s + BN) -> relu
 *
 * e = FmNetOpts.method.shift_expansion (`--expansion E`, 1..9, 0 = 1; the reference's
 * "3c" is 3). The first 3x3 conv (16 channels) and the classifier stay as in ResNet.
 * Parameters (weights, BN gamma/beta, fc) for CIFAR-10: shiftresnet20 e=3: 95,642, as
 * the reference's count.py. */
#include "method_shift.h"
#include "models.h"

static int shift_block(FmNet *net, int x, int cout, int stride, int e) {
  int cin = x >= 0 ? net->tensors[x].c : cout;
  int y = fm_model_conv_bn(net, x, e * cout, 1, 1, 0, 1);
  y = fm_net_shift(net, y, 3, 1);
  y = fm_model_conv_bn(net, y, cout, 1, stride, 0, 0);
  int sc = stride != 1 || cin != cout ? fm_model_conv_bn(net, x, cout, 1, stride, 0, 0) : x;
  return fm_net_relu(net, fm_net_add(net, y, sc));
}

static int shiftresnet(FmNet *net, int x, int classes, int depth, const FmNetOpts *o) {
  int e = o->method.shift_expansion > 0 ? o->method.shift_expansion : 1, n = (depth - 2) / 6;
  x = fm_model_conv_bn(net, x, 16, 3, 1, 1, 1);
  for (int stage = 0; stage < 3; stage++)
    for (int b = 0; b < n; b++) x = shift_block(net, x, 16 << stage, stage > 0 && b == 0 ? 2 : 1, e);
  return fm_net_linear(net, fm_net_global_avgpool(net, x), classes, 1);
}

int fm_model_shiftresnet20(FmNet *net, int x, int classes, const FmNetOpts *o) { return shiftresnet(net, x, classes, 20, o); }
int fm_model_shiftresnet56(FmNet *net, int x, int classes, const FmNetOpts *o) { return shiftresnet(net, x, classes, 56, o); }
