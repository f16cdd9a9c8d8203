/* method_sp.h - StrassenNets sum-product (SP) layers (Tschannen et al., ICML 2018),
 * the three-phase recipe, and the matmul rediscovery task (strassen.c).
 *
 * An SP conv replaces a conv (c_in -> c_out, kernel k, stride s, pads, groups) by
 *
 *   H = Conv(X, W_B)           W_B (r, c_in/g, (p-1)s+k, (p-1)s+k), stride p*s,
 *                              pads + ceil((H mod p*s)/2) (the reference's extra pad)
 *   H = a * BN(H)              BN over the r hidden channels (gamma fixed at 1),
 *                              a (r) clipped to [0, 100] before every forward
 *   Y = ConvTranspose(H, W_C)  W_C (r, c_out/g, p, p), stride p, cropped to the conv's
 *                              output size (start ceil(excess/2), as MXNet's target_shape)
 *                              (+ bias)
 *
 * so that r multiplications (by a) compute a p x p x c_out output patch; W_B and
 * W_C are ternarised by TWN (one delta and alpha per tensor, as the reference) with
 * a straight-through gradient. An SP linear is the same with Gemms: W_B (r, in),
 * W_C (out, r).
 *
 *   FmNetOpts o = fm_net_opts_default();
 *   fm_method_defaults(&o.method, FM_METHOD_SP);
 *   o.method.sp_r = 1.0f, o.method.sp_patch = 1, o.method.sp_phase = 1;   // r = c_out
 *   FmNet *net = fm_model_build("resnet20", 3, 32, 32, 10, &o, err, sizeof err);
 *   ... train (phase 1: full precision) ...
 *   fm_sp_set_phase(net, 2);     // ternary W_B, W_C with straight-through gradients
 *   ... train ...
 *   fm_sp_set_phase(net, 3);     // W_B, W_C frozen: a, BN (and everything else) train
 *   fm_export_onnx(net, "sp.onnx", err, sizeof err);   // ai.fewmul SPConv / SPGemm
 *
 * Layer slots (FM_LAYER_CUSTOM, ops names "sp_conv2d" / "sp_linear"):
 *   param 0 = W_B, 1 = bias (c_out) or -1, 2 = W_C, 3 = a (r),
 *   param 4 = BN gamma (r, group "frozen"), 5 = BN beta (r);
 *   buf 0 = BN running_mean (r), buf 1 = BN running_var (r).
 *   l->a.conv holds the replaced conv's attributes (linear: cin = in, cout = out,
 *   k = s = 1), with a.conv.oph = a.conv.opw = p.
 */
#ifndef FM_TRAINER_METHOD_SP_H
#define FM_TRAINER_METHOD_SP_H
#include <stddef.h>
#include <stdint.h>
#include "net.h"

enum { FM_SP_FULL = 1, FM_SP_TERNARY = 2, FM_SP_FROZEN = 3 };

// Explicit builders: always SP, whatever the net's method. r hidden channels
// (multiplications per output patch), output patch p x p (conv only).
int fm_net_sp_conv2d(FmNet *net, int x, const FmConvAttr *a, int r, int p, int bias);
int fm_net_sp_linear(FmNet *net, int x, int out, int r, int bias);

int fm_sp_layer(const FmLayer *l);
int fm_sp_layer_is_conv(const FmLayer *l);
// Phase of the net's SP layers: method.sp_phase, else FM_SP_TERNARY.
int fm_sp_phase(const FmNet *net);
// Switches every SP layer to phase (1, 2, 3): phase 3 puts W_B, W_C in the frozen group.
void fm_sp_set_phase(FmNet *net, int phase);
// "sp, r = 1 x c_out, 1x1 output patches, phase 2 (ternary), first conv and last linear dense"
void fm_sp_describe(const FmMethod *m, char *buf, size_t n);

// The method hook (method_layers.c): with FmNetOpts.method.kind == FM_METHOD_SP every
// conv2d / linear becomes an SP layer with r = round(sp_r * c_out) and p = sp_patch;
// fm_sp_prepare (at fm_net_finish) turns the first conv and the last linear back into
// dense layers unless method.all, and adds the parameters.
int fm_sp_method_conv2d(FmNet *net, int x, const FmConvAttr *a, int bias, int oh, int ow);
int fm_sp_method_linear(FmNet *net, int x, int out, int bias);
int fm_sp_prepare(FmNet *net);

// Geometry of an SP layer for its input.
typedef struct {
  int conv;             // 1: SP conv, 0: SP linear
  int r, p, M;          // hidden width, output patch, output channels
  FmConvAttr b, c;      // W_B conv and W_C transposed conv (conv only)
  int hb, wb;           // hidden grid (1x1 for linear)
  int fh, fw;           // W_C output before the crop (hb*p, wb*p)
  int oh, ow;           // output = the replaced conv's output
  int ch, cw;           // crop start
  size_t hid, full;     // floats per sample: r*hb*wb, M*fh*fw
} FmSpGeom;
// Geometry of an SP conv for attributes a on an h x w input; -1 when it does not fit.
int fm_sp_geom_conv(const FmConvAttr *a, int r, int p, int h, int w, FmSpGeom *g);

// The exported (eval) form of SP layer l: BN and the TWN scales folded,
// A * BN(h) = A' h + ZB. Phase 1 exports float W_B, W_C (wbf, wcf); phases 2, 3
// ternary int8 (qb, qc) with the scales in A'. Arrays are malloc'ed.
typedef struct {
  FmSpGeom g;
  int ternary;
  int64_t bdims[4], cdims[4]; int brank, crank;
  size_t bsize, csize;
  int8_t *qb, *qc;
  float *wbf, *wcf;
  float *A, *ZB;        // (r)
  const FmParam *bias;  // or NULL
} FmSpExport;
int fm_sp_export(const FmNet *net, const FmLayer *l, FmSpExport *e);   // -1: not SP / no memory
void fm_sp_export_free(FmSpExport *e);
// The graph form (trainer/export.c): SPConv / SPGemm nodes (ternary) or standard ops
// (phase 1) computing y from x; and the model-local function body of op "SPConv" | "SPGemm".
struct Graph;
struct Tensor;
struct FmFunction;
void fm_sp_export_nodes(struct Graph *g, const FmNet *net, const FmLayer *l, struct Tensor *x, struct Tensor *y);
void fm_sp_function(struct FmFunction *f, const char *op, struct Graph *body);

// --- the recipe (REFERENCES.md): phase 1 lr 0.1 x0.1 at 60% and 80% of E1; phase 2
// lr 0.01 x0.1 every E2/4; phase 3 lr 0.001; SGD momentum 0.9, wd 1e-4 throughout.
typedef struct { int e[3]; } FmSpRecipe;
int fm_sp_recipe_parse(FmSpRecipe *r, const char *spec, char *err, size_t errlen);   // "E1,E2,E3"
int fm_sp_recipe_epochs(const FmSpRecipe *r);
int fm_sp_recipe_phase(const FmSpRecipe *r, int epoch);          // 1, 2, 3
// lr of the 0-based epoch, base = the phase-1 lr (0.1 in the reference)
float fm_sp_recipe_lr(const FmSpRecipe *r, int epoch, float base);

// --- strassen.c: learning vec(C) = W_C[(W_B vec(B)) * (W_A vec(A))] for n x n matrices
typedef struct {
  int n, r;
  int8_t *wa, *wb;      // (r, n*n) ternary
  int8_t *wc;           // (n*n, r) ternary
  int attempts;         // restarts used (1 = the first succeeded)
  double max_err;       // on the check pairs
  double best_err;      // smallest squared tensor error of the rounded matrices over the attempts
  int ok;               // max_err < 1e-4
} FmMatmulResult;
// Solvers: Adam on the tensor error with an L1 push and straight-through ternary steps;
// alternating regularised least squares, then discretisation entry by entry.
enum { FM_MATMUL_DEFAULT = 0, FM_MATMUL_ADAM = 1, FM_MATMUL_ALS = 2 };
int fm_matmul_default_solver(int n, int r);   // als for n >= 3 and r < n^3, else adam
// Seeded restarts (seed, seed+1, ...) until one is exact or max_attempts or
// time_limit seconds (<= 0: none) run out. verbose prints progress (attempts, best error)
// on stderr. fm_matmul_learn uses the default solver for n and r.
int fm_matmul_learn(int n, int r, uint64_t seed, int max_attempts, double time_limit, int verbose,
                    FmMatmulResult *res);
int fm_matmul_learn_solver(int n, int r, int solver, uint64_t seed, int max_attempts, double time_limit,
                           int verbose, FmMatmulResult *res);
void fm_matmul_free(FmMatmulResult *res);
// max |C - AB| over count random pairs (entries N(0,1)) with the ternary matrices.
double fm_matmul_check(const FmMatmulResult *res, int count, uint64_t seed);
// Two-input ONNX model A, B (N x n x n) -> C; 0, or -1 with err.
int fm_matmul_export(const FmMatmulResult *res, const char *path, char *err, size_t errlen);
// `fewmul train --task matmul2x2 --r 7 [--n 3] [--seed S] [--attempts K] -o m.onnx`
int fm_cmd_train_matmul(int argc, char **argv);

// Starting from a dense model (from_onnx.c): an SP layer with r = c_out and 1x1 patches
// whose W_B has the dense weight's shape (fm_sp_dense_fits) takes W_B = W (and the bias,
// copied by the caller); fm_sp_from_dense sets W_C to the identity, a = 1, BN the identity,
// and marks the layer; fm_sp_calibrate (train_cmd.c, on the first training images) then sets
// a and the inner BN from the hidden channels' statistics so that each marked layer starts
// as the ternary layer of W (TWN, one scale per tensor) in training and eval mode.
int fm_sp_dense_fits(const FmNet *net, const FmLayer *l);
void fm_sp_from_dense(FmNet *net, FmLayer *l);
int fm_sp_needs_calibration(const FmNet *net);
void fm_sp_calibrate(FmNet *net, const float *x, int n);

#endif
