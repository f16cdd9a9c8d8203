/* weights.c - the weight-analysis passes: which layers compute with adds and shifts.
 *
 * unpack (before fold_bn): an ai.fewmul TernaryConv/TernaryGemm/Pow2Conv/Pow2Gemm whose
 *   weights are constants becomes the plain Conv/Gemm it stands for (W_float =
 *   Alpha[m]*W, Sign*2^Shift), so BatchNormalization folding and activation fusion treat
 *   it like any layer, and a model from the trainer and the same model exported by
 *   PyTorch reach the next pass in the same form.
 * weights (after fuse_act): a float32 Conv (1-D/2-D), Gemm (transA = 0) or MatMul (A of
 *   rank >= 2, B a 2-D constant: A's leading dims become rows of a Gemm with transB = 0)
 *   with a constant weight is read per output channel m:
 *     unit     every weight is -1, 0 or 1                                -> TernaryConv/Gemm, Alpha 1
 *     pow2     every nonzero weight is +-2^k (any k per weight)          -> Pow2Conv/Gemm
 *     ternary  every nonzero weight is +-a_m (one magnitude per channel) -> TernaryConv/Gemm
 *     pow2 x s every nonzero weight is +-s_m*2^k (a power-of-two layer with a BatchNorm
 *              folded in: one shared mantissa per channel)               -> Pow2Conv/Gemm + Scale
 *   (first match; anything else stays dense). The specialised kernels (ops/fewmul.c) do
 *   one add per nonzero weight and output, and one multiply per output (ternary, Scale)
 *   or none (unit, pow2); the dense ones one FMA per weight and output, at a much higher
 *   rate (the packed sgemm). The rule, from measurements on this machine (docs/OPS.md):
 *     specialise when   nonzero fraction <= DENSITY_MAX (Conv) / DENSITY_MAX_TERNARY_GEMM
 *                       (ternary Gemm: always) / DENSITY_MAX_GEMM (pow2 Gemm),
 *                       or the layer has at most SMALL_WEIGHTS weights
 *   A layer whose weights qualify but stays dense is named "Conv[ternary]" (etc.) in its
 *   op_type, so `fewmul cost` shows the decision. `--specialize=none` never specialises,
 *   `--specialize=all` specialises every layer that qualifies (for measurements and tests).
 */
#include "passes/passes.h"
#include "ops/ops.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Measured (docs/OPS.md): ternary resnet20 / mnist_cnn convs at 65-70% nonzero run 10-25%
   faster than im2col+sgemm. A ternary Gemm runs the prelude's bitmask kernel
   (fm_ternary_gemm: one masked 16-lane add per 16 weights and sample, whatever the
   density): the ternary mlp (784-512-512-10, 65% nonzero, 1 thread) runs 1.35x faster
   than the sgemm at batch 1, 2.4x at batch 8, 1.2x at batch 64, so every ternary Gemm is
   specialised. Pow2Gemm keeps the scalar gather-add (2.5x slower than the sgemm at 65%
   nonzero, batch 1), so it only pays for very sparse weights. */
#define DENSITY_MAX 0.75              /* Conv: the row-add kernel beats im2col+sgemm below this */
#define DENSITY_MAX_TERNARY_GEMM 1.0  /* ternary Gemm/MatMul: the bitmask kernel beats sgemm */
#define DENSITY_MAX_GEMM 0.20         /* pow2 Gemm/MatMul: the gather-add kernel beats sgemm below this */
#define SMALL_WEIGHTS 256     /* at most this many weights: speed is moot, drop the multiplies */

/* ---- unpack ---- */

static int const_f32(const Tensor *t) { return t && t->data && t->dtype == FM_F32; }
static int const_i8(const Tensor *t) { return t && t->data && t->dtype == FM_I8; }

static void unpack(Graph *g, Node *n) {
  int pow2 = n->op == OP_Pow2Conv || n->op == OP_Pow2Gemm, conv = n->op == OP_TernaryConv || n->op == OP_Pow2Conv;
  Tensor *w = n->in[1], *w2 = n->in[2], *b = n->nin > 3 ? n->in[3] : NULL;
  if (!const_i8(w) || (pow2 ? !const_i8(w2) : !const_f32(w2)) || (pow2 && n->nin > 4 && n->in[4])) return;
  if (!conv && n->in[0]->rank > 2) return; /* a Gemm over X [..., K] has no plain form */
  int64_t numel = fm_numel(w), M = conv ? w->dims[0] : w->dims[fm_attr_i(n, "transB", 0) ? 0 : 1];
  if (numel < 0 || M <= 0 || (!pow2 && fm_numel(w2) != M)) return;
  int tb = fm_attr_i(n, "transB", 0) != 0;
  float *f = malloc(sizeof(float) * (size_t)(numel ? numel : 1));
  const int8_t *q = w->data;
  for (int64_t i = 0; i < numel; i++) {
    int64_t m = conv || tb ? i / (numel / M) : i % M;
    f[i] = pow2 ? (float)q[i] * ldexpf(1.0f, ((const int8_t *)w2->data)[i]) : (float)q[i] * ((const float *)w2->data)[m];
  }
  Tensor *wf = fm_tensor_const(g, fm_sprintf(&g->arena, "%s_f32", w->name), FM_F32, w->rank, w->dims, f);
  free(f);
  n->op = conv ? OP_Conv : OP_Gemm;
  n->op_type = conv ? "Conv" : "Gemm", n->domain = "";
  n->in[1] = wf, n->in[2] = b, n->nin = b ? 3 : 2;
}

void fm_pass_unpack(Graph *g) {
  for (int i = 0; i < g->nnodes; i++) {
    Node *n = g->nodes[i];
    if (!n->dead && (n->op == OP_TernaryConv || n->op == OP_TernaryGemm || n->op == OP_Pow2Conv ||
                     n->op == OP_Pow2Gemm))
      unpack(g, n);
  }
}

/* ---- weights ---- */

enum { K_DENSE, K_POW2, K_TERNARY, K_POW2S };
static const char *const kind_name[] = {"dense", "pow2", "ternary", "pow2"};

/* The weight of n as rows: element (m, r) = data[m*rs + r*cs] * mul. */
typedef struct Rows {
  const float *data;
  int64_t M, R, rs, cs;
  float mul;
} Rows;

static int rows_of(Node *n, Rows *w) {
  Tensor *x = n->in[0], *t = n->nin > 1 ? n->in[1] : NULL;
  if (!x || !const_f32(t) || x->dtype != FM_F32 || !fm_shape_known(x) || fm_numel(t) <= 0) return 0;
  w->data = t->data, w->mul = 1;
  switch (n->op) {
  case OP_Conv:
    if (t->rank < 3 || t->rank > 4) return 0;
    if (n->nin > 2 && n->in[2] && !const_f32(n->in[2])) return 0;
    w->M = t->dims[0], w->R = fm_numel(t) / w->M, w->rs = w->R, w->cs = 1;
    return 1;
  case OP_Gemm: {
    if (t->rank != 2 || x->rank != 2 || fm_attr_i(n, "transA", 0)) return 0;
    int tb = fm_attr_i(n, "transB", 0) != 0;
    w->M = t->dims[!tb], w->R = t->dims[tb];
    w->rs = tb ? w->R : 1, w->cs = tb ? 1 : w->M;
    w->mul = fm_attr_f(n, "alpha", 1);
    Tensor *c = n->nin > 2 ? n->in[2] : NULL;
    if (c && (!const_f32(c) || fm_numel(c) != w->M || (c->rank != 1 && !(c->rank == 2 && c->dims[0] == 1))))
      return 0;
    return 1;
  }
  case OP_MatMul: { /* X [..., K] x W [K, M]: rows are X's leading dims, at most one symbolic */
    if (t->rank != 2 || x->rank < 2) return 0;
    int sym = 0;
    for (int d = 0; d + 1 < x->rank; d++) sym += fm_dim_sym(x->dims[d]);
    if (sym > 1) return 0;
    w->M = t->dims[1], w->R = t->dims[0], w->rs = 1, w->cs = w->M;
    return 1;
  }
  default:
    return 0;
  }
}

/* The layer's kind; fills q (int8 W or Sign), sh (Shift), alpha / scale [M], nnz.
   Weights in {-1, 0, 1} are ternary with Alpha 1 (an all-zero channel gets Alpha 1 too):
   the ternary kernels then skip the multiply, so no work at all is left but the adds. */
static int classify(const Rows *w, int8_t *q, int8_t *sh, float *alpha, float *scale, int64_t *nnz) {
  int pow2 = 1, tern = 1, pow2s = 1, unit = 1;
  *nnz = 0;
  for (int64_t m = 0; m < w->M; m++) {
    float a = 0, mnt = 0;
    for (int64_t r = 0; r < w->R; r++) {
      int64_t i = m * w->rs + r * w->cs;
      float v = w->data[i] * w->mul, av = fabsf(v);
      q[i] = v > 0 ? 1 : v < 0 ? -1 : 0, sh[i] = 0;
      if (v == 0) continue;
      if (!isfinite(v)) return K_DENSE;
      ++*nnz;
      int e;
      float f = frexpf(av, &e);
      if (e - 1 < -126 || e - 1 > 127) return K_DENSE; /* keeps 2^shift a normal float */
      sh[i] = (int8_t)(e - 1);
      if (!a) a = av, mnt = f;
      tern &= av == a, pow2 &= f == 0.5f, pow2s &= f == mnt;
    }
    alpha[m] = a ? a : 1, scale[m] = mnt ? 2 * mnt : 1;
    unit &= tern && alpha[m] == 1;
    if (!pow2 && !tern && !pow2s) return K_DENSE;
  }
  return unit ? K_TERNARY : pow2 ? K_POW2 : tern ? K_TERNARY : K_POW2S;
}

static void rewrite(Graph *g, Node *n, const Rows *w, int kind, const int8_t *q, const int8_t *sh,
                    const float *alpha, const float *scale) {
  Tensor *wt = n->in[1], *b = n->nin > 2 ? n->in[2] : NULL;
  int conv = n->op == OP_Conv, pow2 = kind != K_TERNARY;
  const char *base = fm_sprintf(&g->arena, "%s_%s", wt->name, pow2 ? "sign" : "q");
  Tensor **in = fm_alloc(&g->arena, sizeof(Tensor *) * 5);
  in[0] = n->in[0];
  in[1] = fm_tensor_const(g, base, FM_I8, wt->rank, wt->dims, q);
  int64_t md[1] = {w->M};
  if (pow2) in[2] = fm_tensor_const(g, fm_sprintf(&g->arena, "%s_shift", wt->name), FM_I8, wt->rank, wt->dims, sh);
  else in[2] = fm_tensor_const(g, fm_sprintf(&g->arena, "%s_alpha", wt->name), FM_F32, 1, md, alpha);
  in[3] = b;
  int nin = b ? 4 : 3;
  if (kind == K_POW2S) {
    in[4] = fm_tensor_const(g, fm_sprintf(&g->arena, "%s_scale", wt->name), FM_F32, 1, md, scale);
    nin = 5;
  }
  if (n->op == OP_MatMul) n->nattrs = 0; /* W is [K, M]: transB = 0 */
  if (n->op == OP_Gemm) {
    Attr *al = fm_attr(n, "alpha");
    if (al) al->f = 1; /* folded into the weights */
  }
  n->op = conv ? (pow2 ? OP_Pow2Conv : OP_TernaryConv) : (pow2 ? OP_Pow2Gemm : OP_TernaryGemm);
  n->op_type = fm_op_names[n->op], n->domain = "ai.fewmul";
  n->in = in, n->nin = nin;
  fm_ops[n->op].infer(g, n); /* checks the new form; the output shape is unchanged */
}

void fm_pass_weights(Graph *g) { fm_pass_weights_mode(g, FM_SPECIALIZE_AUTO); }

void fm_pass_weights_mode(Graph *g, int specialize) {
  if (specialize == FM_SPECIALIZE_NONE) return;
  for (int i = 0; i < g->nnodes; i++) {
    Node *n = g->nodes[i];
    Rows w;
    if (n->dead || !rows_of(n, &w)) continue;
    size_t ne = (size_t)fm_numel(n->in[1]);
    int8_t *q = malloc(ne), *sh = malloc(ne);
    float *alpha = malloc(sizeof(float) * (size_t)w.M), *scale = malloc(sizeof(float) * (size_t)w.M);
    int64_t nnz = 0;
    int kind = classify(&w, q, sh, alpha, scale, &nnz);
    if (kind != K_DENSE) {
      double density = (double)nnz / ((double)w.M * (double)w.R);
      float beta = n->op == OP_Gemm && n->nin > 2 && n->in[2] ? fm_attr_f(n, "beta", 1) : 1;
      int masks = kind == K_TERNARY && (beta == 0 || beta == 1); /* else the gather-add */
      double max = n->op == OP_Conv ? DENSITY_MAX : masks ? DENSITY_MAX_TERNARY_GEMM : DENSITY_MAX_GEMM;
      int pays = density <= max ||
                 (double)w.M * (double)w.R <= SMALL_WEIGHTS;
      if (pays || specialize == FM_SPECIALIZE_ALL) rewrite(g, n, &w, kind, q, sh, alpha, scale);
      else n->op_type = fm_sprintf(&g->arena, "%s[%s]", n->op_type, kind_name[kind]);
    }
    free(q), free(sh), free(alpha), free(scale);
  }
}
