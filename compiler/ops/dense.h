/* dense.h - private to the dense ops (conv.c, conv_gemm.c, conv_geom.c, gemm.c,
 * gemm_sgemm.c, pool.c): the resolved form of a Conv / Gemm / MatMul node and the
 * sliding-window geometry shared by Conv, ConvTranspose and the pools (spatial
 * sizes, kernel, strides, dilations, begin/end pads after auto_pad and ceil_mode).
 *
 *   FmWin w;
 *   fm_win_forward(n, x, kernel, nsp, ceil_mode, &w);   // Conv, pools
 *   for (int j = 0; j < w.nsp; j++) out_dims[2 + j] = w.out[j];
 *
 * All spatial sizes are known (>= 0): only the batch dim may be symbolic.
 */
#ifndef FM_DENSE_H
#define FM_DENSE_H
#include "ops/ops.h"

typedef struct FmWin {
  int nsp;                                        /* number of spatial dims */
  int64_t in[FM_MAXRANK], out[FM_MAXRANK];        /* spatial sizes */
  int64_t k[FM_MAXRANK], s[FM_MAXRANK], d[FM_MAXRANK];
  int64_t pb[FM_MAXRANK], pe[FM_MAXRANK];         /* pads at begin / end (may be < 0 for
                                                     ConvTranspose with output_shape) */
  int64_t op[FM_MAXRANK];                         /* ConvTranspose output_padding */
} FmWin;

/* Window sliding over x (rank 2 + nsp) with the given kernel: reads strides,
   dilations, pads and auto_pad of n; ceil_mode rounds the output size up (pools). */
void fm_win_forward(Node *n, const Tensor *x, const int64_t *kernel, int nsp, int ceil_mode, FmWin *w);
/* ConvTranspose: also output_padding and output_shape. */
void fm_win_transpose(Node *n, const Tensor *x, const int64_t *kernel, int nsp, FmWin *w);

/* A Conv or ConvTranspose node, checked and resolved (conv.c). For ConvTranspose,
   w is [C, M/G, k...]; for Conv, [M, C/G, k...]. */
typedef struct FmConv {
  Tensor *x, *w, *bias, *y;   /* bias NULL when absent */
  int64_t C, M, G, Cg, Mg;    /* input / output channels, groups, per group */
  FmWin win;
} FmConv;
void fm_conv_setup(Node *n, FmConv *c);           /* Conv */
/* Conv as im2col + fm_sgemm (conv_gemm.c); returns 0 when the node does not fit. */
int fm_conv_lower_gemm(KB *b, Node *n, const FmConv *c);

/* Product helpers over spatial sizes. */
int64_t fm_win_prod(const int64_t *v, int nsp);

/* Row-major flat spatial index of idx[0..nsp-1] in a box of sizes dims (I64 exprs). */
KExpr *fm_win_flat(KExpr **idx, const int64_t *dims, int nsp);

/* ---- Gemm / MatMul (gemm.c) ---- */
typedef struct FmGemm {
  Tensor *a, *b, *c, *y;      /* c NULL when absent */
  int ta, tb;
  float alpha, beta;
  int64_t M, N, K;            /* M, N may be symbolic */
} FmGemm;
void fm_gemm_setup(Node *n, FmGemm *G);
KExpr *fm_gemm_c_index(KB *b, const FmGemm *G, KExpr *i, KExpr *j);
/* alpha * acc + beta * C[i, j] (store it with fm_dense_store for the activation) */
KExpr *fm_gemm_epilogue(KB *b, Node *n, const FmGemm *G, KExpr *acc, KExpr *i, KExpr *j);

typedef struct FmMatMul {
  Tensor *a, *b, *y;
  int a1, b1;                 /* operand was 1-D */
  int nb;                     /* batch dims of the output */
  int64_t batch[FM_MAXRANK], abd[FM_MAXRANK], bbd[FM_MAXRANK]; /* output / A / B batch dims */
  int64_t M, N, K;
} FmMatMul;
void fm_matmul_setup(Node *n, FmMatMul *mm);
/* Matrix offset (in whole matrices) of an operand with batch dims opd at output batch bi[]. */
KExpr *fm_matmul_batch_off(KB *b, const FmMatMul *mm, const int64_t *opd, KExpr **bi);

/* fm_sgemm lowerings (gemm_sgemm.c); 0 when the node does not fit (dtype, ...). */
int fm_gemm_lower_sgemm(KB *b, Node *n, const FmGemm *G);
int fm_matmul_lower_sgemm(KB *b, Node *n, const FmMatMul *mm);

/* buf[idx] = the fused activation of v (fm_apply_act). Relu becomes a compare and
   select on a local, which C compilers turn into vmaxps, where fmaxf stays a libm
   call unless -ffinite-math-only. */
void fm_dense_store(KB *b, Node *n, KBuf *buf, KExpr *idx, KExpr *v);

/* --conv=direct / --gemm=direct (FmLowerOpts): the direct loops, not the CPU library. */
static inline int fm_conv_direct(const KB *b) { return b->opts->conv == FM_LOWER_DIRECT; }
static inline int fm_gemm_direct(const KB *b) {
  return b->opts->gemm == FM_LOWER_DIRECT || !fm_lower_can_call(b, "fm_sgemm");
}
#endif
