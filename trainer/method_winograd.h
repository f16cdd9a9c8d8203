/* method_winograd.h - Winograd-aware convolution (Fernandez-Marques et al., MLSys 2020).
 *
 * A 3x3 stride-1 conv (any symmetric pad) computed tile by tile as F(m x m, 3 x 3):
 *
 *   Y = At [(G W Gt) . (Bt d Btt)] Att      per output channel k, m x m output tile, summed
 *                                            over input channels c in the Winograd domain
 *
 * with d the (m+2) x (m+2) input tile (zero outside the padded input), Bt (a x a),
 * G (a x 3), At (m x a), a = m + 2, m in {2, 4, 6}. The transforms are Cook-Toom
 * (fm_wino_transforms) and either static (frozen) or learned ("flex", initialised from
 * Cook-Toom, with their own gradients). With bits > 0 both Winograd-domain operands
 * U = G W Gt and V = Bt d Btt are fake-quantised to b bits, symmetric, with a max-abs
 * scale s = max(max|x|, 1e-12) / (2^(b-1) - 1), x_q = round_half_even(x / s) * s, and a
 * straight-through gradient: U has one scale per layer, V one per sample (so the eval
 * output of an image does not depend on the rest of its batch).
 *
 *   FmNetOpts o = fm_net_opts_default();
 *   fm_method_defaults(&o.method, FM_METHOD_WINOGRAD);   // F(4x4,3x3), static, float
 *   o.method.wino_flex = 1, o.method.wino_bits = 8;
 *   FmNet *net = fm_model_build("resnet18", 3, 32, 32, 10, &o, err, sizeof err);
 *   ... train ...
 *   fm_export_onnx(net, "w.onnx", err, sizeof err);   // ai.fewmul WinogradConv + body
 *
 * Through the method hook every stride-1 3x3 conv (dilation 1, groups 1) becomes a
 * Winograd layer except the first conv of the net (unless method.all); every other
 * conv and every linear stays dense.
 *
 * Layer slots (FM_LAYER_CUSTOM, ops name "winograd_conv2d"):
 *   param 0 = W (K, C, 3, 3), 1 = bias (K) or -1, 2 = Bt (a, a), 3 = G (a, 3),
 *   param 4 = At (m, a): in group "frozen" (static) or "winograd" (flex, no weight decay).
 *   l->a.conv holds the conv's attributes with a.conv.oph = m, a.conv.opw = bits.
 */
#ifndef FM_TRAINER_METHOD_WINOGRAD_H
#define FM_TRAINER_METHOD_WINOGRAD_H
#include <stddef.h>
#include "net.h"

// Cook-Toom transforms of F(m x m, 3 x 3) in row-major float: Bt (a x a), G (a x 3),
// At (m x a). Points: m = 2 {0, 1, -1, inf}, m = 4 {0, 1, -1, 2, -2, inf},
// m = 6 {0, 1, -1, 2, -2, 1/2, -1/2, inf}. -1 unless m is 2, 4 or 6.
int fm_wino_transforms(int m, float *Bt, float *G, float *At);

// Does a conv with these attributes have a Winograd form (3x3, stride 1, dilation 1, groups 1)?
int fm_wino_eligible(const FmConvAttr *a);
// Explicit builder: always Winograd (the attributes must be eligible; -1 and net->err otherwise).
int fm_net_winograd_conv2d(FmNet *net, int x, const FmConvAttr *a, int m, int flex, int bits, int bias);
int fm_wino_layer(const FmLayer *l);

// The method hook (method_layers.c): FmNetOpts.method.kind == FM_METHOD_WINOGRAD.
int fm_wino_method_conv2d(FmNet *net, int x, const FmConvAttr *a, int bias);
int fm_wino_method_linear(FmNet *net, int x, int out, int bias);
// 0, or -1 with a message (tile 2/4/6, bits 0 or 2..16)
int fm_wino_check(const FmMethod *m, char *err, size_t errlen);
// "winograd F(4x4,3x3), flex transforms, 8-bit Winograd domain, first conv dense"
void fm_wino_describe(const FmMethod *m, char *buf, size_t n);

// Fake quantisation of n values in place (b-bit symmetric max-abs, see above).
void fm_wino_quantize(float *x, size_t n, int bits);

// ONNX form (trainer/export.c): an ai.fewmul WinogradConv node (X, W, Bt, G, At) with
// attributes tile, pads, bits and the derived shapes its body reads (method_winograd.c),
// then an Add of the bias if the layer has one; and the model-local function body in
// standard ops. The body is written for the bits of the graph's WinogradConv nodes (all
// must agree: it fails otherwise).
struct Graph;
struct Tensor;
struct FmFunction;
void fm_wino_export_nodes(struct Graph *g, const FmNet *net, const FmLayer *l, struct Tensor *x, struct Tensor *y);
void fm_wino_function(struct FmFunction *f, struct Graph *body, const struct Graph *g);

#endif
