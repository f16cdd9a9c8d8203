/* method.h - training methods whose layers spend few multiplications:
 * ternary weights (TWN), DeepShift-Q / DeepShift-PS (powers of two) and
 * quantised weights on a b-bit grid. docs/METHODS.md has the recipes.
 *
 * A method is chosen once per network, in FmNetOpts.method; fm_net_conv2d and
 * fm_net_linear then build the method's variant of every conv and linear layer,
 * so every model gets it with no code of its own:
 *
 *   FmNetOpts o = fm_net_opts_default();
 *   fm_method_defaults(&o.method, FM_METHOD_DEEPSHIFT_PS);   // weight_bits 5
 *   FmNet *net = fm_model_build("resnet20", 3, 32, 32, 10, &o, err, sizeof err);
 *   ... train as usual: fm_net_step applies the method's rule after each step
 *       (weights back onto the grid, P clamped) ...
 *   fm_export_onnx(net, "m.onnx", err, sizeof err);   // Pow2Conv / Pow2Gemm nodes
 *
 * Which layers: every conv2d and linear layer, except (unless method.all) the
 * first conv2d and the last linear of the net, which stay dense as in the
 * papers. The choice is made in fm_net_finish, when the whole net is known;
 * until then a method layer has no parameters.
 *
 * Method layers are FM_LAYER_CUSTOM with l->method = the method, l->a.conv the
 * conv attributes (conv variant), and these slots:
 *   ternary       param 0 = weight (latent float), 1 = bias
 *                 forward W_t[m] = alpha_m * Q[m]   (TWN per output channel m)
 *   deepshift-q   param 0 = weight (latent float), 1 = bias
 *                 forward W_q = sign(W) * 2^clamp(round(log2|W|), pmin, 0)
 *   deepshift-ps  param 0 = shift P, 1 = bias, 2 = sign S (both latent float)
 *                 forward W_ps = 2^clamp(round(P), pmin, 0) * sign(round(S))
 *   quant         param 0 = weight, 1 = bias; buf 0 = range s (1 float)
 *                 forward W_q = step * k, step = s / 2^(b-1), k on the b-bit grid
 * with pmin = -(2^(b-1) - 2) for b = weight_bits. Gradients are straight
 * through: the latent weight receives exactly the gradient of the quantised
 * weight (PS: dP = dW * W_ps * ln 2, dS = dW, as the reference's
 * unsymmetric-gradient multiply).
 */
#ifndef FM_TRAINER_METHOD_H
#define FM_TRAINER_METHOD_H
#include <stddef.h>
#include <stdint.h>
#include "ops.h"

typedef enum {
  FM_METHOD_NONE, FM_METHOD_TERNARY, FM_METHOD_DEEPSHIFT_Q, FM_METHOD_DEEPSHIFT_PS, FM_METHOD_QUANT,
  FM_METHOD_COUNT,
  // StrassenNets sum-product layers (method_sp.h): they replace the layer, not its
  // weight, so they live outside the weight-method tables above (method_sp.c).
  FM_METHOD_SP = FM_METHOD_COUNT,
  // Winograd-aware 3x3 convs (method_winograd.h): the same, a layer of their own
  FM_METHOD_WINOGRAD
} FmMethodKind;

// quant: A "always on the grid" (weights re-quantised after every optimiser
// step, the seed notebook's recipe) or B fake quantisation (float latent
// weights, quantised in forward, straight-through gradient).
typedef enum { FM_QUANT_ALWAYS, FM_QUANT_FAKE } FmQuantMode;

typedef struct {
  FmMethodKind kind;
  int weight_bits;        // deepshift: shift range [pmin, 0] (default 5); quant: grid bits (default 8)
  int stochastic;         // quant: floor(x) + Bernoulli(x - floor(x)) rounding (default 1)
  int zeroless;           // quant: the grid without 0 (k in [-2^(b-1), 2^(b-1)] \ {0})
  float range;            // quant: s of the grid over [-s, s]; <= 0: per layer max|W| at init
  FmQuantMode quant_mode; // quant: FM_QUANT_ALWAYS (default) or FM_QUANT_FAKE
  int all;                // 1: also the first conv2d and the last linear
  // deepshift: the layer inputs in I.F fixed point, as the reference keeps activations
  // (16.16 there): x -> clamp(round(x * 2^F), -2^(I+F-1), 2^(I+F-1) - 1) * 2^-F in
  // forward (round half to even), straight-through gradient. act_int = 0: float.
  int act_int, act_frac;
  // sp (method_sp.h): width r = sp_r * c_out per layer, output patch p, phase 1|2|3
  float sp_r;
  int sp_patch, sp_phase;
  // winograd (method_winograd.h): F(tile x tile, 3x3), learned transforms, Winograd-domain bits (0 = float)
  int wino_tile, wino_flex, wino_bits;
  // ShiftNet models (models/shiftresnet.c): 1x1 expansion e of the conv-shift-conv blocks (0 = 1)
  int shift_expansion;
} FmMethod;

// y = x rounded to I.F fixed point (method.h, act_int/act_frac); y may be x.
void fm_fixed_round(const float *x, size_t n, int I, int F, float *y);
// the bounds of that rounding in units of 2^-F, as floats (both sides use these)
void fm_fixed_bounds(int I, int F, float *lo, float *hi);

// Defaults for kind (FM_METHOD_NONE: everything 0).
void fm_method_defaults(FmMethod *m, FmMethodKind kind);
// "none", "ternary", "deepshift-q", "deepshift-ps", "quant"; -1 if unknown.
int fm_method_kind_parse(const char *name);
const char *fm_method_name(FmMethodKind kind);
// Checks the settings (bit widths per method); 0, or -1 with a message in err.
int fm_method_check(const FmMethod *m, char *err, size_t errlen);
// One line describing m ("deepshift-ps, 5-bit shifts, first conv and last linear dense").
void fm_method_describe(const FmMethod *m, char *buf, size_t n);

// ---------------------------------------------------------------------------
// Quantisers (method_quant.c): plain arrays, every output pointer may be NULL.

// TWN per row: w is (M, K). For each row m: delta = 0.7 * mean|w|,
// q = 1[w > delta] - 1[w < -delta], alpha[m] = sum|w|*|q| / sum|q| (0 when
// no entry passes), wq = alpha[m] * q. alpha is required.
void fm_ternarize(const float *w, int M, size_t K, int8_t *q, float *alpha, float *wq);

// Lowest shift of b-bit DeepShift weights: -(2^(b-1) - 2) (b = 5: -14).
int fm_deepshift_pmin(int bits);
// DeepShift-Q: sign = sign(w), shift = clamp(round(log2|w|), pmin, 0),
// wq = sign * 2^shift (w = 0 gives sign 0, shift pmin).
void fm_pow2_round(const float *w, size_t n, int pmin, int8_t *sign, int8_t *shift, float *wq);
// DeepShift-PS: shift = clamp(round(P), pmin, 0), sign = sign(round(S)),
// wq = sign * 2^shift.
void fm_pow2_ps(const float *P, const float *S, size_t n, int pmin, int8_t *sign, int8_t *shift,
                float *wq);
// Deterministic rounding everywhere is round-half-to-even (as torch.round).
float fm_round_even(float x);

// The b-bit grid: k in [-2^(b-1), 2^(b-1) - 1], or zero-less
// [-2^(b-1), 2^(b-1)] \ {0}; value k * step. kmin/kmax of that grid:
void fm_quant_grid_range(int bits, int zeroless, int *kmin, int *kmax);
// Rounds x / step onto the grid: to the nearest grid point (ties to even;
// zero-less: ties between -1 and 1 go to 1) when rng is NULL, else
// stochastically between the two neighbouring grid points lo <= u <= hi,
// taking hi with probability (u - lo) / (hi - lo): floor(u) + Bernoulli(frac)
// on the plain grid, unbiased inside the grid. Values outside are clamped.
int fm_quant_round(float x, float step, int bits, int zeroless, FmRng *rng);
// The same over an array: k (may be NULL) and wq = k * step (may alias w).
void fm_quant_array(const float *w, size_t n, float step, int bits, int zeroless, FmRng *rng,
                    int8_t *k, float *wq);
// Grid step of range s: s / 2^(b-1).
float fm_quant_step(float s, int bits);

// ---------------------------------------------------------------------------
// Network integration (method_layers.c), called by net.c / net_layers.c.

typedef struct FmNet FmNet;
typedef struct FmLayer FmLayer;
typedef struct FmParam FmParam;

// One entry per method: what the net builders (fm_method_conv2d, ...) and the trainer call,
// so a method is its file(s) plus one line of the table (method_layers.c).
typedef struct FmMethodOps {
  FmMethodKind kind;
  const char *name;                                            // as --method takes it
  void (*describe)(const FmMethod *m, char *buf, size_t n);    // one line for the log
  int (*conv2d)(FmNet *net, int x, const FmConvAttr *a, int bias, int oh, int ow);
  int (*linear)(FmNet *net, int x, int out, int bias);
  int (*prepare)(FmNet *net);      // fm_net_finish, before parameters are allocated
  void (*init)(FmNet *net);        // after initialisation and after --from's copy (NULL: none)
  void (*post_step)(FmNet *net);   // after every optimiser step (NULL: none)
} FmMethodOps;
const FmMethodOps *fm_method_ops(FmMethodKind kind);   // NULL: dense or unknown
int fm_method_parse_any(const char *name);             // any method's name -> kind, -1 if unknown
void fm_method_describe_any(const FmMethod *m, char *buf, size_t n);

// The method variant of conv2d (attributes complete, output oh x ow) and linear.
int fm_method_conv2d(FmNet *net, int x, const FmConvAttr *a, int bias, int oh, int ow);
int fm_method_linear(FmNet *net, int x, int out, int bias);
// fm_net_finish, before parameters are allocated: turns the first conv2d and
// last linear back into dense layers (unless all) and adds every method
// layer's parameters. Returns 0, -1 on error (net->err says why).
int fm_method_prepare(FmNet *net);
// fm_net_finish, after initialisation: PS parameters from a dense draw,
// quant ranges, mode A weights onto the grid.
void fm_method_init(FmNet *net);
// fm_net_step, after the optimiser: PS clamps P, quant mode A re-quantises.
void fm_method_post_step(FmNet *net);
// Is l a method layer, a conv one?
int fm_method_layer(const FmLayer *l);
int fm_method_layer_is_conv(const FmLayer *l);

// The exported form of method layer l (trainer/export.c). Arrays are
// malloc'ed (fm_method_export_free); all of them are eval-mode values.
typedef struct {
  FmMethodKind kind;
  int conv;                 // 1: conv2d (l->a.conv), 0: linear (weight (M, K))
  int64_t wdims[4]; int wrank;
  size_t wsize; int M;      // weight elements, output channels
  int8_t *q;                // ternary: Q; deepshift: Sign; quant: grid index k
  int8_t *shift;            // deepshift: Shift
  float *alpha;             // ternary: alpha (M)
  float scale;              // quant: grid step
  const FmParam *bias;      // or NULL
} FmMethodExport;
int fm_method_export(const FmNet *net, const FmLayer *l, FmMethodExport *me);  // -1: not a method layer
void fm_method_export_free(FmMethodExport *me);

#endif
