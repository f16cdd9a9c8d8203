/* test_ops_fewmul.c - the ai.fewmul weight ops (compiler/ops/fewmul.c) and the
 * weight-analysis passes (passes/weights.c).
 *
 * Every TernaryConv / Pow2Conv / TernaryGemm / Pow2Gemm case runs on the kernel
 * interpreter next to the dense Conv / Gemm it stands for (W_float = Alpha[m]*W,
 * Scale[m]*Sign*2^Shift), with random weights, strides, pads, dilations, groups, a
 * fused Relu and a symbolic batch at N = 2. The cost model must count one
 * multiplication per output for ternary and none for pow2 or for ternary with every
 * Alpha 1 (weights in {-1, 0, 1}). */
#include "check.h"
#include "ops/ops.h"
#include "passes/passes.h"
#include <stdlib.h>
#include <string.h>

static Graph *G;
static uint64_t rng = 0x2545F4914F6CDD1Dull;
static double frand(void) { /* [-1, 1) */
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (double)(rng >> 11) / (double)(1ull << 53) * 2 - 1;
}
static int8_t ternary(double zeros) { /* -1, 0, 1 with P(0) = zeros */
  double u = (frand() + 1) / 2;
  return u < zeros ? 0 : frand() < 0 ? -1 : 1;
}

static Node *node(OpKind op, int nin) {
  Node *n = fm_node_new(G, op, NULL, nin, 1);
  n->op_type = fm_op_names[op];
  n->domain = op >= OP_TernaryConv ? "ai.fewmul" : "";
  n->attrs = fm_alloc(&G->arena, sizeof(Attr) * 8);
  n->out[0] = fm_tensor_new(G, NULL);
  n->out[0]->producer = n;
  return n;
}
static void attr_ints(Node *n, const char *name, int cnt, const int64_t *v) {
  Attr *a = &n->attrs[n->nattrs++];
  a->name = name, a->type = FA_INTS, a->n = cnt;
  a->ints = fm_alloc(&G->arena, sizeof(int64_t) * (size_t)cnt);
  memcpy(a->ints, v, sizeof(int64_t) * (size_t)cnt);
}
static void attr_int(Node *n, const char *name, int64_t v) {
  Attr *a = &n->attrs[n->nattrs++];
  a->name = name, a->type = FA_INT, a->i = v;
}
static Tensor *input(int rank, const int64_t *dims) {
  Tensor *x = fm_tensor_new(G, NULL);
  x->dtype = FM_F32, x->rank = rank, x->is_input = 1;
  memcpy(x->dims, dims, sizeof(int64_t) * (size_t)rank);
  return x;
}
static int64_t numel_at(const Tensor *t, int64_t batch) {
  int64_t n = 1;
  for (int i = 0; i < t->rank; i++) n *= t->dims[i] < 0 ? -t->dims[i] * batch : t->dims[i];
  return n;
}

/* Lowers n and runs it on the interpreter: x is the data input, the output goes to y. */
static int run(Node *n, int64_t batch, const float *x, float *y, KCost *cost) {
  KB b;
  kb_begin(&b, G, n, "k");
  fm_ops[n->op].lower(&b, n);
  CHECK(b.depth == 0);
  KFn *fn = b.fn;
  void **ptrs = calloc((size_t)fn->nbufs + 1, sizeof(void *));
  for (int i = 0; i < fn->nbufs; i++) {
    KBuf *bf = fn->bufs[i];
    if (bf->kind == KBUF_TENSOR)
      ptrs[i] = bf->tensor->data ? bf->tensor->data : bf->tensor == n->in[0] ? (void *)x : (void *)y;
    if (bf->kind == KBUF_SCRATCH) {
      int64_t ne = bf->nelem < 0 ? -bf->nelem * batch : bf->nelem;
      ptrs[i] = calloc((size_t)ne + 1, fm_dtype_size(bf->t));
    }
  }
  char err[512];
  int rc = fm_kinterp(fn, batch, ptrs, err, sizeof err);
  if (rc) fprintf(stderr, "kinterp: %s\n", err);
  for (int i = 0; i < fn->nbufs; i++)
    if (fn->bufs[i]->kind == KBUF_SCRATCH) free(ptrs[i]);
  free(ptrs);
  if (cost) *cost = fm_kcost(fn, batch);
  return rc;
}

static void compare(const char *what, const float *want, const float *got, int64_t n) {
  int64_t bad = -1;
  for (int64_t i = 0; i < n && bad < 0; i++)
    if (!(fabsf(want[i] - got[i]) <= 1e-4f * (1 + fabsf(want[i])))) bad = i;
  if (bad >= 0) fprintf(stderr, "%s: element %lld: want %.8g got %.8g\n", what, (long long)bad, want[bad], got[bad]);
  CHECK(bad < 0);
}

/* ---- Conv ---- */
typedef struct ConvCase {
  const char *name;
  int nsp;
  int64_t C, M, G, in[2], k[2], s[2], d[2], p[2];
  int bias, relu;
  double zeros;
} ConvCase;

static const ConvCase conv_cases[] = {
  {"3x3 s1 p1", 2, 4, 6, 1, {7, 9}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, 0, 0.4},
  {"3x3 s2 p1 relu", 2, 5, 8, 1, {9, 8}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 1, 1, 0.3},
  {"1x1 s1 p0 (direct)", 2, 6, 4, 1, {5, 6}, {1, 1}, {1, 1}, {1, 1}, {0, 0}, 0, 0, 0.5},
  {"1x1 s2 (resnet shortcut)", 2, 4, 8, 1, {8, 8}, {1, 1}, {2, 2}, {1, 1}, {0, 0}, 0, 0, 0.2},
  {"grouped 3x3 dil2 p2", 2, 6, 4, 2, {9, 9}, {3, 3}, {1, 1}, {2, 2}, {2, 2}, 1, 1, 0.3},
  {"depthwise 3x2 s(2,1)", 2, 4, 4, 4, {7, 6}, {3, 2}, {2, 1}, {1, 1}, {1, 0}, 1, 0, 0.2},
  {"5x5 s3 p2 no pad end", 2, 3, 5, 1, {11, 10}, {5, 5}, {3, 3}, {1, 1}, {2, 2}, 0, 0, 0.6},
  {"1-D k3 s2 p1", 1, 4, 6, 1, {13}, {3}, {2}, {1}, {1}, 1, 1, 0.3},
  {"all-zero rows", 2, 3, 4, 1, {5, 5}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, 0, 0.97},
};

static int64_t conv_out(const ConvCase *c, int j) {
  return (c->in[j] + 2 * c->p[j] - ((c->k[j] - 1) * c->d[j] + 1)) / c->s[j] + 1;
}

static void conv_attrs(Node *n, const ConvCase *c) {
  int64_t pads[4] = {c->p[0], c->p[1], c->p[0], c->p[1]};
  if (c->nsp == 1) pads[1] = c->p[0];
  attr_ints(n, "kernel_shape", c->nsp, c->k);
  attr_ints(n, "strides", c->nsp, c->s);
  attr_ints(n, "dilations", c->nsp, c->d);
  attr_ints(n, "pads", 2 * c->nsp, pads);
  attr_int(n, "group", c->G);
}

/* kind 0 ternary, 1 pow2, 2 pow2 with Scale, 3 ternary with Alpha 1 */
static void conv_case(const ConvCase *c, int kind) {
  const int64_t N = 2;
  int64_t xd[4] = {-1, c->C, c->in[0], c->in[1]}, wd[4] = {c->M, c->C / c->G, c->k[0], c->k[1]};
  int rank = c->nsp + 2;
  int64_t wn = 1, xn, yn, outs = c->M;
  for (int i = 0; i < rank; i++) wn *= wd[i];
  for (int j = 0; j < c->nsp; j++) outs *= conv_out(c, j);
  int8_t *wq = malloc((size_t)wn), *sh = malloc((size_t)wn);
  float *wf = malloc(sizeof(float) * (size_t)wn), alpha[64], scale[64], bias[64];
  for (int64_t m = 0; m < c->M; m++) alpha[m] = (float)(0.25 + frand() * frand()), scale[m] = (float)(1 + frand() / 2), bias[m] = (float)frand();
  if (kind == 3)
    for (int64_t m = 0; m < c->M; m++) alpha[m] = 1;
  int tern = kind == 0 || kind == 3;
  for (int64_t i = 0; i < wn; i++) {
    int64_t m = i / (wn / c->M);
    wq[i] = ternary(c->zeros), sh[i] = (int8_t)(frand() * 4 - 1);
    wf[i] = tern ? alpha[m] * wq[i] : (float)wq[i] * ldexpf(1, sh[i]) * (kind == 2 ? scale[m] : 1);
  }
  G = fm_graph_new();
  Tensor *x = input(rank, xd);
  Tensor *B = c->bias ? fm_tensor_const(G, "B", FM_F32, 1, &c->M, bias) : NULL;
  Node *f = node(!tern ? OP_Pow2Conv : OP_TernaryConv, kind == 2 ? 5 : c->bias ? 4 : 3);
  f->in[0] = x, f->in[1] = fm_tensor_const(G, "W", FM_I8, rank, wd, wq);
  f->in[2] = !tern ? fm_tensor_const(G, "Shift", FM_I8, rank, wd, sh) : fm_tensor_const(G, "Alpha", FM_F32, 1, &c->M, alpha);
  if (f->nin > 3) f->in[3] = B;
  if (kind == 2) f->in[4] = fm_tensor_const(G, "Scale", FM_F32, 1, &c->M, scale);
  conv_attrs(f, c);
  Node *d = node(OP_Conv, c->bias ? 3 : 2);
  d->in[0] = x, d->in[1] = fm_tensor_const(G, "Wf", FM_F32, rank, wd, wf);
  if (c->bias) d->in[2] = B;
  conv_attrs(d, c);
  if (c->relu) f->fused_act = d->fused_act = OP_Relu;
  fm_ops[f->op].infer(G, f);
  fm_ops[d->op].infer(G, d);
  CHECK(f->out[0]->rank == rank && !memcmp(f->out[0]->dims, d->out[0]->dims, sizeof(int64_t) * (size_t)rank));
  xn = numel_at(x, N), yn = numel_at(d->out[0], N);
  float *xv = malloc(sizeof(float) * (size_t)xn), *y0 = calloc((size_t)yn, sizeof(float)), *y1 = calloc((size_t)yn, sizeof(float));
  for (int64_t i = 0; i < xn; i++) xv[i] = (float)frand();
  KCost kc;
  CHECK(run(d, N, xv, y0, NULL) == 0);
  CHECK(run(f, N, xv, y1, &kc) == 0);
  char what[128];
  static const char *const kn[] = {"TernaryConv", "Pow2Conv", "Pow2Conv+Scale", "TernaryConv(Alpha 1)"};
  snprintf(what, sizeof what, "%s %s", kn[kind], c->name);
  compare(what, y0, y1, yn);
  /* ternary and scaled pow2: one multiplication per output; pow2 and Alpha 1: none */
  double want_muls = kind == 1 || kind == 3 ? 0 : (double)(N * outs);
  if (kc.muls != want_muls) fprintf(stderr, "%s: muls %.0f, want %.0f\n", what, kc.muls, want_muls);
  CHECK(kc.muls == want_muls);
  CHECK(tern ? kc.shifts == 0 : kc.shifts > 0);
  free(wq), free(sh), free(wf), free(xv), free(y0), free(y1);
  fm_graph_free(G);
}

/* ---- Gemm ---- */
/* kind 0 ternary, 1 pow2, 2 ternary with Alpha 1 */
static void gemm_case(int64_t K, int64_t M, int tb, int kind, int bias, double zeros) {
  const int64_t N = 3;
  int64_t xd[2] = {-1, K}, wd[2] = {tb ? M : K, tb ? K : M};
  int8_t *wq = malloc((size_t)(K * M)), *sh = malloc((size_t)(K * M));
  float *wf = malloc(sizeof(float) * (size_t)(K * M)), alpha[64], bv[64];
  for (int64_t m = 0; m < M; m++) alpha[m] = kind == 2 ? 1 : (float)(0.5 + frand() / 4), bv[m] = (float)frand();
  int pow2 = kind == 1;
  for (int64_t i = 0; i < K * M; i++) {
    int64_t m = tb ? i / K : i % M;
    wq[i] = ternary(zeros), sh[i] = (int8_t)(frand() * 5 - 2);
    wf[i] = pow2 ? (float)wq[i] * ldexpf(1, sh[i]) : alpha[m] * wq[i];
  }
  G = fm_graph_new();
  Tensor *x = input(2, xd), *B = bias ? fm_tensor_const(G, "B", FM_F32, 1, &M, bv) : NULL;
  Node *f = node(pow2 ? OP_Pow2Gemm : OP_TernaryGemm, bias ? 4 : 3);
  f->in[0] = x, f->in[1] = fm_tensor_const(G, "W", FM_I8, 2, wd, wq);
  f->in[2] = pow2 ? fm_tensor_const(G, "Shift", FM_I8, 2, wd, sh) : fm_tensor_const(G, "Alpha", FM_F32, 1, &M, alpha);
  if (bias) f->in[3] = B;
  attr_int(f, "transB", tb);
  Node *d = node(OP_Gemm, bias ? 3 : 2);
  d->in[0] = x, d->in[1] = fm_tensor_const(G, "Wf", FM_F32, 2, wd, wf);
  if (bias) d->in[2] = B;
  attr_int(d, "transB", tb);
  f->fused_act = d->fused_act = OP_Relu;
  fm_ops[f->op].infer(G, f);
  fm_ops[d->op].infer(G, d);
  CHECK(f->out[0]->dims[0] == -1 && f->out[0]->dims[1] == M);
  float *xv = malloc(sizeof(float) * (size_t)(N * K)), *y0 = calloc((size_t)(N * M), 4), *y1 = calloc((size_t)(N * M), 4);
  for (int64_t i = 0; i < N * K; i++) xv[i] = (float)frand();
  KCost kc;
  CHECK(run(d, N, xv, y0, NULL) == 0);
  CHECK(run(f, N, xv, y1, &kc) == 0);
  compare(pow2 ? "Pow2Gemm" : "TernaryGemm", y0, y1, N * M);
  CHECK(kc.muls == (kind ? 0 : (double)(N * M))); /* Alpha 1 (kind 2): none either */
  /* one add per nonzero weight and output (+ the bias) */
  int64_t nnz = 0;
  for (int64_t i = 0; i < K * M; i++) nnz += wq[i] != 0;
  CHECK(kc.adds == (double)(N * nnz + (bias ? N * M : 0)));
  free(wq), free(sh), free(wf), free(xv), free(y0), free(y1);
  fm_graph_free(G);
}

/* ---- the weight-analysis passes ---- */

/* A graph X -> Conv(W = values) -> Y; returns the conv node after shapes + weights. */
static int specialize = FM_SPECIALIZE_AUTO; /* --specialize= */
static Node *analysed_conv(const float *w, int64_t M, int64_t C) {
  G = fm_graph_new();
  int64_t xd[4] = {-1, C, 6, 6}, wd[4] = {M, C, 3, 3};
  Tensor *x = input(4, xd);
  x->name = "X";
  G->inputs = fm_alloc(&G->arena, sizeof(Tensor *)), G->inputs[0] = x, G->ninputs = 1;
  Node *n = node(OP_Conv, 2);
  n->in[0] = x, n->in[1] = fm_tensor_const(G, "W", FM_F32, 4, wd, w);
  int64_t pads[4] = {1, 1, 1, 1};
  attr_ints(n, "pads", 4, pads);
  n->out[0]->is_output = 1;
  G->outputs = fm_alloc(&G->arena, sizeof(Tensor *)), G->outputs[0] = n->out[0], G->noutputs = 1;
  fm_pass_shapes(G);
  fm_pass_weights_mode(G, specialize);
  return n;
}

/* A graph X [xd] -> MatMul(W = values [K, M]) -> Y; returns the node after shapes + weights. */
static Node *analysed_matmul(const float *w, int xr, const int64_t *xd, int64_t K, int64_t M) {
  G = fm_graph_new();
  int64_t wd[2] = {K, M};
  Tensor *x = input(xr, xd);
  x->name = "X";
  G->inputs = fm_alloc(&G->arena, sizeof(Tensor *)), G->inputs[0] = x, G->ninputs = 1;
  Node *n = node(OP_MatMul, 2);
  n->in[0] = x, n->in[1] = fm_tensor_const(G, "W", FM_F32, 2, wd, w);
  n->out[0]->is_output = 1;
  G->outputs = fm_alloc(&G->arena, sizeof(Tensor *)), G->outputs[0] = n->out[0], G->noutputs = 1;
  fm_pass_shapes(G);
  fm_pass_weights(G);
  return n;
}

static int alpha_all(const Node *n, float v) {
  for (int64_t m = 0; m < fm_numel(n->in[2]); m++)
    if (((const float *)n->in[2]->data)[m] != v) return 0;
  return 1;
}

/* Runs the analysed node n on X [rows, K] at batch 2 against X * w [K, M] computed here;
   returns its multiplications. */
static double matmul_check(Node *n, const float *w, int64_t rows, int64_t K, int64_t M) {
  float *x = malloc(sizeof(float) * (size_t)(rows * K)), *y = calloc((size_t)(rows * M), 4);
  float *ref = calloc((size_t)(rows * M), 4);
  for (int64_t i = 0; i < rows * K; i++) x[i] = (float)frand();
  for (int64_t r = 0; r < rows; r++)
    for (int64_t m = 0; m < M; m++) {
      double a = 0;
      for (int64_t k = 0; k < K; k++) a += (double)x[r * K + k] * w[k * M + m];
      ref[r * M + m] = (float)a;
    }
  KCost kc = {0};
  CHECK(run(n, 2, x, y, &kc) == 0);
  compare(n->op_type, ref, y, rows * M);
  free(x), free(y), free(ref);
  return kc.muls;
}

/* MatMul with a constant 2-D weight: X of rank 2 or more becomes TernaryGemm (transB = 0) */
static void weights_matmul(void) {
  enum { K = 9, M = 23 };
  float w[K * M];
  /* {-1, 0, 1} (a Strassen-like matrix), X [N, 5, K]: Alpha 1, Y [N, 5, M], no multiply */
  for (int i = 0; i < K * M; i++) w[i] = (float)ternary(0.6);
  int64_t x3[3] = {-1, 5, K}, x2[2] = {-1, K}, x4[4] = {2, -1, 3, K}, xss[3] = {-1, -2, K};
  Node *n = analysed_matmul(w, 3, x3, K, M);
  CHECK(n->op == OP_TernaryGemm && n->nin == 3 && !fm_attr_i(n, "transB", 0) && alpha_all(n, 1));
  CHECK(n->out[0]->rank == 3 && n->out[0]->dims[0] == -1 && n->out[0]->dims[1] == 5 && n->out[0]->dims[2] == M);
  if (n->op == OP_TernaryGemm) CHECK(matmul_check(n, w, 2 * 5, K, M) == 0);
  fm_graph_free(G);
  /* sparse powers of two over X [N, 5, K]: Pow2Gemm (the gather-add), no multiply */
  for (int i = 0; i < K * M; i++) w[i] = (float)ternary(0.9) * ldexpf(1, (int)(frand() * 3) - 2);
  n = analysed_matmul(w, 3, x3, K, M);
  CHECK(n->op == OP_Pow2Gemm && n->out[0]->rank == 3);
  if (n->op == OP_Pow2Gemm) CHECK(matmul_check(n, w, 2 * 5, K, M) == 0);
  fm_graph_free(G);
  for (int i = 0; i < K * M; i++) w[i] = (float)ternary(0.6);
  n = analysed_matmul(w, 4, x4, K, M); /* X [2, N, 3, K] */
  CHECK(n->op == OP_TernaryGemm && alpha_all(n, 1) && n->out[0]->rank == 4 && n->out[0]->dims[1] == -1);
  if (n->op == OP_TernaryGemm) CHECK(matmul_check(n, w, 2 * 2 * 3, K, M) == 0);
  fm_graph_free(G);
  n = analysed_matmul(w, 3, xss, K, M); /* two symbolic leading dims: not rows of one Gemm */
  CHECK(n->op == OP_MatMul);
  fm_graph_free(G);
  /* one magnitude per output (0.5, some +-1 columns stay ternary with their own Alpha) */
  for (int i = 0; i < K * M; i++) w[i] = (float)ternary(0.6) * (i % M == 4 ? 0.75f : 0.5f);
  n = analysed_matmul(w, 2, x2, K, M);
  CHECK(n->op == OP_TernaryGemm && !alpha_all(n, 1) && ((float *)n->in[2]->data)[4] == 0.75f);
  if (n->op == OP_TernaryGemm) CHECK(matmul_check(n, w, 2, K, M) == 2 * M); /* one per output */
  fm_graph_free(G);
  /* unit weights win over pow2 (+-1 = +-2^0): the bitmask kernel, no multiply, no shift */
  for (int i = 0; i < K * M; i++) w[i] = (float)ternary(0.95);
  n = analysed_matmul(w, 2, x2, K, M);
  CHECK(n->op == OP_TernaryGemm && alpha_all(n, 1));
  fm_graph_free(G);
}

static void weights_pass(void) {
  enum { M = 8, C = 8, WN = M * C * 9 };
  float w[WN];
  /* ternary, 70% zeros: pays -> TernaryConv with Alpha = the channel's magnitude */
  for (int i = 0; i < WN; i++) w[i] = (float)ternary(0.7) * (0.1f + (float)(i / (WN / M)) * 0.01f);
  Node *n = analysed_conv(w, M, C);
  CHECK(n->op == OP_TernaryConv && !strcmp(n->domain, "ai.fewmul") && n->nin == 3);
  CHECK(n->in[2]->dtype == FM_F32 && fabsf(((float *)n->in[2]->data)[3] - 0.13f) < 1e-6f);
  CHECK(((int8_t *)n->in[1]->data)[0] == (w[0] > 0) - (w[0] < 0));
  fm_graph_free(G);
  /* powers of two with 70% zeros -> Pow2Conv, no Scale */
  for (int i = 0; i < WN; i++) w[i] = (float)ternary(0.7) * ldexpf(1, (int)(frand() * 4) - 3);
  n = analysed_conv(w, M, C);
  CHECK(n->op == OP_Pow2Conv && n->nin == 3);
  fm_graph_free(G);
  /* -1, 0, 1 (also powers of two): TernaryConv with Alpha 1, so no multiply at all */
  for (int i = 0; i < WN; i++) w[i] = (float)ternary(0.7);
  n = analysed_conv(w, M, C);
  CHECK(n->op == OP_TernaryConv && n->nin == 3 && alpha_all(n, 1));
  fm_graph_free(G);
  /* ternary but dense (5% zeros): the dense kernel is faster, the decision is recorded */
  for (int i = 0; i < WN; i++) w[i] = (float)ternary(0.05) * 0.3f;
  n = analysed_conv(w, M, C);
  CHECK(n->op == OP_Conv && !strcmp(n->op_type, "Conv[ternary]"));
  fm_graph_free(G);
  /* ... unless forced */
  specialize = FM_SPECIALIZE_ALL;
  n = analysed_conv(w, M, C);
  CHECK(n->op == OP_TernaryConv);
  fm_graph_free(G);
  specialize = FM_SPECIALIZE_NONE;
  for (int i = 0; i < WN; i++) w[i] = (float)ternary(0.7) * 0.3f;
  n = analysed_conv(w, M, C);
  CHECK(n->op == OP_Conv && !strcmp(n->op_type, "Conv"));
  fm_graph_free(G);
  specialize = FM_SPECIALIZE_AUTO;
  /* an ordinary float conv is left alone */
  for (int i = 0; i < WN; i++) w[i] = (float)frand();
  n = analysed_conv(w, M, C);
  CHECK(n->op == OP_Conv && !strcmp(n->op_type, "Conv"));
  fm_graph_free(G);
}

/* TernaryConv -> BatchNormalization -> Relu through the whole pipeline: unpack, BN folded
   into the weights, Relu fused, then analysed back into a TernaryConv with the BN in Alpha. */
static void pipeline(void) {
  enum { M = 4, C = 4, WN = M * C * 9 };
  G = fm_graph_new();
  G->opset = 13;
  int64_t xd[4] = {-1, C, 5, 5}, wd[4] = {M, C, 3, 3}, md = M;
  int8_t wq[WN];
  float alpha[M], gam[M], bet[M], mean[M], var[M];
  for (int i = 0; i < WN; i++) wq[i] = ternary(0.7);
  for (int m = 0; m < M; m++) alpha[m] = 0.5f, gam[m] = 2, bet[m] = 0.1f, mean[m] = 0, var[m] = 1;
  Tensor *x = input(4, xd);
  x->name = "X";
  G->inputs = fm_alloc(&G->arena, sizeof(Tensor *)), G->inputs[0] = x, G->ninputs = 1;
  Node *t = node(OP_TernaryConv, 3);
  t->in[0] = x, t->in[1] = fm_tensor_const(G, "W", FM_I8, 4, wd, wq);
  t->in[2] = fm_tensor_const(G, "Alpha", FM_F32, 1, &md, alpha);
  int64_t pads[4] = {1, 1, 1, 1};
  attr_ints(t, "pads", 4, pads);
  Node *bn = node(OP_BatchNormalization, 5);
  bn->in[0] = t->out[0];
  bn->in[1] = fm_tensor_const(G, "g", FM_F32, 1, &md, gam), bn->in[2] = fm_tensor_const(G, "b", FM_F32, 1, &md, bet);
  bn->in[3] = fm_tensor_const(G, "mu", FM_F32, 1, &md, mean), bn->in[4] = fm_tensor_const(G, "v", FM_F32, 1, &md, var);
  Node *r = node(OP_Relu, 1);
  r->in[0] = bn->out[0];
  r->out[0]->is_output = 1;
  G->outputs = fm_alloc(&G->arena, sizeof(Tensor *)), G->outputs[0] = r->out[0], G->noutputs = 1;
  fm_run_passes(G, NULL);
  int found = 0;
  for (int i = 0; i < G->nnodes; i++) {
    Node *n = G->nodes[i];
    if (n->dead) continue;
    found++;
    CHECK(n->op == OP_TernaryConv && n->fused_act == OP_Relu && n->nin == 4);
    if (n->op == OP_TernaryConv) CHECK_NEAR(1.0, ((float *)n->in[2]->data)[0], 1e-3); /* 0.5 * 2/sqrt(1+eps) */
  }
  CHECK(found == 1);
  fm_graph_free(G);
}

int main(void) {
  int nc = (int)(sizeof conv_cases / sizeof *conv_cases);
  for (int i = 0; i < nc; i++)
    for (int kind = 0; kind < 4; kind++) conv_case(&conv_cases[i], kind);
  for (int tb = 0; tb < 2; tb++) {
    gemm_case(37, 9, tb, 0, 1, 0.4);
    gemm_case(64, 5, tb, 1, tb, 0.3);
    gemm_case(21, 7, tb, 2, 1 - tb, 0.5);
  }
  gemm_case(5, 3, 1, 0, 0, 0.99); /* all-zero rows */
  weights_pass();
  weights_matmul();
  pipeline();
  return check_done("test_ops_fewmul");
}
