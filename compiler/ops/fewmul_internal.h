/* fewmul_internal.h - private to ops/fewmul.c and ops/fewmul_sp.c: the add/sub tap plans
 * behind the ternary and power-of-two kernels, shared so that the ops built from ternary
 * pieces (SPConv, SPGemm) lower through the same code.
 *
 *   FmTapPlan p;       // M rows of R taps; weight (m, r) = w[m*rs + r*cs], input offset off[r]
 *   fm_tap_plan(n, b->a, &p, w, NULL, "WC", M, R, rs, cs, off);
 *   FmTapTabs t;
 *   fm_tap_tabs(b, &p, &t);                          // the plan as int16/int32 kernel tables
 *   FmTapAcc A = {.add = fm_tap_gemm_add, .x = X};   // X[base + off] summed into the scalar var
 *   A.base = kb_let(b, "base", FM_I64, ...);
 *   A.var = kb_let(b, "acc", FM_F32, k_f32(0));
 *   fm_tap_row(b, &p, &t, m, &A);                    // acc += +1 taps of row m, -= its -1 taps
 *
 * fm_tap_conv is the whole ternary / pow2 Conv kernel (phase-plane packing, accumulator
 * planes, per-row epilogue) on given buffers, so a caller may write into a scratch buffer.
 */
#ifndef FM_FEWMUL_INTERNAL_H
#define FM_FEWMUL_INTERNAL_H
#include "ops/dense.h"

/* Per output row, its nonzero taps in groups by shift (one group for ternary weights),
   each group a run of +1 taps then a run of -1 taps. */
typedef struct FmTapPlan {
  int pow2;
  int64_t M, ngroups, ntaps;
  int32_t *gs;     /* [M+1] first group of row m */
  int32_t *ts;     /* [ngroups+1] first (+1) tap of group g */
  int32_t *tm;     /* [ngroups] first -1 tap of group g */
  int32_t *delta;  /* [ngroups] pow2: shift of the running sum before group g */
  int32_t *fin;    /* [M] pow2: shift of the finished sum */
  int32_t *tap;    /* [ntaps] input offsets */
} FmTapPlan;

typedef struct FmTapTabs { KBuf *gs, *ts, *tm, *delta, *fin, *tap; } FmTapTabs;

/* How one kernel accumulates: acc op= sum of the inputs at offs[0..k), and acc = ldexp(acc, d). */
typedef struct FmTapAcc {
  void (*add)(KB *b, struct FmTapAcc *a, KBinOp op, KExpr **offs, int k);
  void (*shift)(KB *b, struct FmTapAcc *a, KExpr *d);
  KBuf *x, *acc;         /* input (or packed input) and accumulator plane (Conv) */
  KVar *base, *ab, *var; /* input base, accumulator base (Conv) / scalar accumulator (Gemm) */
  int64_t q;             /* Conv: accumulator length */
} FmTapAcc;

/* The plan of M rows x R taps: weight (m, r) is w[m*rs + r*cs] (shift sh[...] for pow2,
   sh NULL for ternary), its input offset off[r]. Fails naming n and wname on a weight
   outside {-1, 0, 1}. Arrays come from a. */
void fm_tap_plan(Node *n, Arena *a, FmTapPlan *p, const int8_t *w, const int8_t *sh, const char *wname,
                 int64_t M, int64_t R, int64_t rs, int64_t cs, const int64_t *off);
void fm_tap_tabs(KB *b, const FmTapPlan *p, FmTapTabs *t);
/* Row m (an I64 expression) of the plan into A: its groups, CHUNK taps per pass. */
void fm_tap_row(KB *b, const FmTapPlan *p, const FmTapTabs *t, KExpr *m, FmTapAcc *A);
/* Conv: acc[ab + q] op= sum of x[base + off + q] over the accumulator plane (q < A->q). */
void fm_tap_conv_add(KB *b, FmTapAcc *a, KBinOp op, KExpr **offs, int k);
/* Gemm: var op= sum of x[base + off]. */
void fm_tap_gemm_add(KB *b, FmTapAcc *a, KBinOp op, KExpr **offs, int k);

/* A ternary / pow2 convolution (1-D or 2-D) on explicit buffers:
     y[img, m, ...] = alpha[m] * conv(x, w)[...] + bias[m]            (shift NULL; alpha[m]
                                                                       skipped if unit_alpha)
     y[img, m, ...] = ldexp(conv(x, sign)[...], shift) (* scale[m]) + bias[m]
   with c's geometry (c->x, c->w: the input and weight tensors; c->bias, c->y unused).
   y is written densely as [N, M, out...]; act applies n's fused activation. */
typedef struct FmTapConv {
  Node *n;                    /* named in messages; its fused activation when act */
  const FmConv *c;
  const int8_t *w, *shift;    /* [M, C/G, k...] constants */
  KBuf *x, *alpha, *scale, *bias, *y; /* alpha: ternary; scale, bias optional */
  int act;
  int unit_alpha;             /* ternary with every alpha 1: y = conv + bias, no multiply */
} FmTapConv;
void fm_tap_conv(KB *b, const FmTapConv *t);
/* fm_tap_conv's geometry for the shared-partial-sum kernel (fewmul_addconv.c): tap r of
   R reads P[base + off[r] + q] for the Q = OH*Wph positions q, base = (image, channel
   of the group's first input) * plane. Returns 0, emitting nothing, where the tap list
   is the better kernel. */
typedef struct FmAddconvGeo {
  KBuf *P;
  const int64_t *off;
  int64_t R, Q, plane, OH, OW, Wph;
} FmAddconvGeo;
int fm_addconv_rows(KB *b, const FmTapConv *tc, const FmAddconvGeo *geo);
/* fm_fail unless t has dtype want: "node 'n' (op): what 't' has dtype X, expected Y" */
void fm_need_dtype(Node *n, const Tensor *t, FmDType want, const char *what);

#endif
