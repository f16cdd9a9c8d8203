/* resnet18.c - ResNet-18 for 32x32 inputs with a width multiplier w, in the
 * form used by the Winograd-aware networks paper: every stride-2 3x3 conv is
 * replaced by a 2x2 max-pool followed by a stride-1 3x3 conv.
 *   stem    conv3x3 32w -> BN -> relu
 *   stages  2 basic blocks each at 64w, 128w, 256w, 512w channels; stages
 *           2..4 start with maxpool 2x2 (shared by the block's main path and
 *           its shortcut); where channels change the shortcut is 1x1 conv + BN
 *   head    global average pool -> fc classes */
#include "models.h"

static int ch(float w, int c) { int v = (int)(c * w + 0.5f); return v < 1 ? 1 : v; }

static int block(FmNet *net, int x, int cout, int down) {
  if (down) x = fm_net_maxpool(net, x, 2, 2, 0);
  int cin = x >= 0 ? net->tensors[x].c : cout;
  int y = fm_model_conv_bn(net, x, cout, 3, 1, 1, 1);
  y = fm_model_conv_bn(net, y, cout, 3, 1, 1, 0);
  int sc = cin != cout ? fm_model_conv_bn(net, x, cout, 1, 1, 0, 0) : x;
  return fm_net_relu(net, fm_net_add(net, y, sc));
}

int fm_model_resnet18(FmNet *net, int x, int classes, const FmNetOpts *opts) {
  float w = opts && opts->width > 0 ? opts->width : 1.0f;
  x = fm_model_conv_bn(net, x, ch(w, 32), 3, 1, 1, 1);
  for (int stage = 0; stage < 4; stage++)
    for (int b = 0; b < 2; b++) x = block(net, x, ch(w, 64 << stage), stage > 0 && b == 0);
  return fm_net_linear(net, fm_net_global_avgpool(net, x), classes, 1);
}
