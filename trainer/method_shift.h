/* method_shift.h - the ShiftNet shift layer (Wu et al. 2017, "Shift: A Zero FLOP, Zero
 * Parameter Alternative to Spatial Convolutions") and its ai.fewmul `Shift` export.
 *
 * Shift(X [N, C, H, W]; kernel_size k, dilation d): the channels are cut into k*k
 * contiguous groups of G = floor(C / k^2) channels; group i (0 <= i < k^2) is moved by
 * offset i of the k x k grid,
 *     dy = (i / k - k/2) * d,   dx = (i % k - k/2) * d,
 *     Y[n, c, h, w] = X[n, c, h + dy, w + dx]    (0 outside the image),
 * and the C - k^2*G remainder channels (the last ones) are not moved: the reference's
 * CUDA kernel shifts only the first floor(C/k^2)*k^2 channels. (The reference assigns
 * offsets channel by channel, c mod k^2; contiguous groups, as DESIGN.md defines the op,
 * are the same layer up to a permutation of the neighbouring 1x1 convs' channels.)
 * No parameters, no arithmetic; the backward pass moves the gradient by the opposite
 * offset: dX[n, c, h + dy, w + dx] += dY[n, c, h, w].
 *
 *   int y = fm_net_shift(net, x, 3, 1);           // shift layer, k = 3, dilation 1
 *   ...
 *   fm_export_onnx(net, "shift.onnx", ...);       // ai.fewmul Shift nodes + function body
 *
 * Layer: FM_LAYER_CUSTOM, ops name "shift", no parameters; l->a.conv.kh = k,
 * l->a.conv.dh = d (the other conv fields unused).
 */
#ifndef FM_TRAINER_METHOD_SHIFT_H
#define FM_TRAINER_METHOD_SHIFT_H
#include "net.h"

// Offset of channel c of C for kernel k, dilation d.
void fm_shift_offset(int C, int c, int k, int d, int *dy, int *dx);
// y (n, C, H, W) = Shift(x); y must not alias x.
void fm_shift_forward(float *y, const float *x, int n, int C, int H, int W, int k, int d);
// dx += Shift^T(dy): the opposite move.
void fm_shift_backward(float *dx, const float *dy, int n, int C, int H, int W, int k, int d);

// Adds a shift layer after tensor x (k odd >= 1, d >= 1); returns its output tensor id.
int fm_net_shift(FmNet *net, int x, int k, int d);
int fm_shift_layer(const FmLayer *l);

// Export (trainer/export.c): the ai.fewmul Shift node y = Shift(x) of layer l, and the
// model-local function body of `Shift` in standard ops for the model's (k, d), read from
// the Shift nodes of model graph g (all must agree; fm_fail otherwise):
//   G = Shape(X)[1] / k^2;  group i: Slice(X, channels [iG, (i+1)G)) -> Slice (crop by the
//   offset) -> Pad (zeros on the other side); remainder Slice(X, [k^2 G, C));  Concat.
struct Graph;
struct Tensor;
struct FmFunction;
void fm_shift_export_node(struct Graph *g, const FmLayer *l, struct Tensor *x, struct Tensor *y);
void fm_shift_function(struct FmFunction *f, const struct Graph *model, struct Graph *body);

#endif
