/* sp_resnet.c - StrassenNets models built of SP layers (trainer/method_sp.h):
 *
 *   sp_resnet20  the reference's SP-ResNet-20: every 3x3 conv (the first one too) and
 *                the 1x1 projection shortcuts are SP convs with r = sp_r * c_out
 *                (default 1: r = 16/32/64 per stage), 3x3 convs with sp_patch x sp_patch
 *                output patches (projections 1x1 patches, as the reference), BN and relu
 *                as ResNet-20, and a dense last layer.
 *   sp_mlp       the mlp (784-512-512-classes, relu, dropout 0.2) with SP linears of
 *                r = sp_r * 512 and a dense last layer.
 *
 * r and p come from FmNetOpts.method (sp_r, sp_patch; 0 = 1). */
#include "method_sp.h"
#include "models.h"
#include <math.h>

static int width(const FmNetOpts *o, int cout) {
  float f = o->method.kind == FM_METHOD_SP && o->method.sp_r > 0 ? o->method.sp_r : 1.0f;
  int r = (int)lroundf(f * (float)cout);
  return r < 1 ? 1 : r;
}
static int patch(const FmNetOpts *o) {
  return o->method.kind == FM_METHOD_SP && o->method.sp_patch > 0 ? o->method.sp_patch : 1;
}

// the classifier stays dense whatever the net's method
static int dense_linear(FmNet *net, int x, int out) {
  FmMethodKind k = net->method.kind;
  net->method.kind = FM_METHOD_NONE;
  int y = fm_net_linear(net, x, out, 1);
  net->method.kind = k;
  return y;
}

static int sp_conv_bn(FmNet *net, int x, int cout, int k, int stride, int pad, int p, int relu, const FmNetOpts *o) {
  FmConvAttr a = fm_conv_attr(0, cout, k, stride, pad, 1, 1);
  x = fm_net_bn(net, fm_net_sp_conv2d(net, x, &a, width(o, cout), p, 0));
  return relu ? fm_net_relu(net, x) : x;
}

static int sp_block(FmNet *net, int x, int cout, int stride, const FmNetOpts *o) {
  int cin = x >= 0 ? net->tensors[x].c : cout;
  int y = sp_conv_bn(net, x, cout, 3, stride, 1, patch(o), 1, o);
  y = sp_conv_bn(net, y, cout, 3, 1, 1, patch(o), 0, o);
  int sc = stride != 1 || cin != cout ? sp_conv_bn(net, x, cout, 1, stride, 0, 1, 0, o) : x;
  return fm_net_relu(net, fm_net_add(net, y, sc));
}

int fm_model_sp_resnet20(FmNet *net, int x, int classes, const FmNetOpts *o) {
  x = sp_conv_bn(net, x, 16, 3, 1, 1, patch(o), 1, o);
  for (int stage = 0; stage < 3; stage++)
    for (int b = 0; b < 3; b++) x = sp_block(net, x, 16 << stage, stage > 0 && b == 0 ? 2 : 1, o);
  return dense_linear(net, fm_net_global_avgpool(net, x), classes);
}

int fm_model_sp_mlp(FmNet *net, int x, int classes, const FmNetOpts *o) {
  x = fm_net_flatten(net, x);
  for (int i = 0; i < 2; i++)
    x = fm_net_dropout(net, fm_net_relu(net, fm_net_sp_linear(net, x, 512, width(o, 512), 1)), 0.2f);
  return dense_linear(net, x, classes);
}
