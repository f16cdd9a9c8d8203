/* test_fewmul_sp.c - the native SPConv / SPGemm lowerings (compiler/ops/fewmul_sp.c)
 * against their model-local function bodies (trainer/method_sp.c, the ground truth).
 *
 * Each case builds X -> SPConv|SPGemm -> Y with random ternary WB, WC, random A, ZB and
 * bias, writes it as ONNX with the exporter's function body, loads it twice - natively
 * and with the body inlined (standard Conv / Mul / Add / ConvTranspose, kept dense with
 * --specialize=none) - runs the pass pipeline and every kernel on the interpreter at a
 * symbolic batch N = 2, and compares: |native - body| <= 1e-4 * (1 + |body|) per element
 * (float32; the two sum in different orders). The cost model must count exactly r
 * multiplications per hidden position (= per output patch) for the native op, and
 * malformed SP nodes must fail with one message naming the node.
 */
#include "check.h"
#include "method_sp.h"
#include "onnx/onnx.h"
#include "ops/ops.h"
#include "passes/passes.h"
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double frand(void) { /* [-1, 1) */
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (double)(rng >> 11) / (double)(1ull << 53) * 2 - 1;
}
static int8_t tern(void) { /* -1, 0, 1 with P(0) = 0.4 */
  double u = (frand() + 1) / 2;
  return u < 0.4 ? 0 : frand() < 0 ? -1 : 1;
}

/* One SP node: conv (NCHW) or gemm, with the attributes it carries. */
typedef struct Spec {
  const char *name;
  int conv;
  int64_t C, H, W, M, r, G;      /* gemm: C = K, H = W = 1 */
  int64_t kbh, kbw, sh, sw, wbp[4];
  int64_t ph, pw, wcp[4];
  int bias, zb;
} Spec;

static int64_t spec_hb(const Spec *s) { return s->conv ? (s->H + s->wbp[0] + s->wbp[2] - s->kbh) / s->sh + 1 : 1; }
static int64_t spec_wb(const Spec *s) { return s->conv ? (s->W + s->wbp[1] + s->wbp[3] - s->kbw) / s->sw + 1 : 1; }
static int64_t spec_oh(const Spec *s) { return s->conv ? spec_hb(s) * s->ph - s->wcp[0] - s->wcp[2] : 1; }
static int64_t spec_ow(const Spec *s) { return s->conv ? spec_wb(s) * s->pw - s->wcp[1] - s->wcp[3] : 1; }

/* A conv spec as the exporter derives it (fm_sp_geom_conv) from the replaced conv. */
static int spec_export(Spec *s, const char *name, int C, int H, int W, int M, int k, int st, int pad, int p,
                       int r, int G, int bias) {
  FmConvAttr a = fm_conv_attr(C, M, k, st, pad, 1, G);
  FmSpGeom g;
  if (fm_sp_geom_conv(&a, r, p, H, W, &g)) return -1;
  *s = (Spec){name, 1, C, H, W, M, r, G, g.b.kh, g.b.kw, g.b.sh, g.b.sw, {g.b.ph, g.b.pw, g.b.ph, g.b.pw},
              p, p, {g.ch, g.cw, g.fh - g.oh - g.ch, g.fw - g.ow - g.cw}, bias, 1};
  return g.oh == spec_oh(s) && g.ow == spec_ow(s) ? 0 : -1;
}

/* X -> SP node "sp" -> Y as graph IR (WB / WC dtypes overridable for the error cases). */
static Graph *build(const Spec *s, FmDType wbt, FmDType wct, int8_t poison) {
  Graph *g = fm_graph_new();
  Tensor *x = fm_tensor_new(g, "X");
  x->dtype = FM_F32, x->is_input = 1;
  if (s->conv) x->rank = 4, x->dims[0] = -1, x->dims[1] = s->C, x->dims[2] = s->H, x->dims[3] = s->W;
  else x->rank = 2, x->dims[0] = -1, x->dims[1] = s->C;
  g->inputs = fm_alloc(&g->arena, sizeof(Tensor *));
  g->inputs[g->ninputs++] = x;
  int64_t wbd[4] = {s->r, s->C / s->G, s->kbh, s->kbw}, wcd[4] = {s->r, s->M / s->G, s->ph, s->pw};
  int64_t wcg[2] = {s->M, s->r};
  int64_t nb = s->conv ? wbd[0] * wbd[1] * wbd[2] * wbd[3] : s->r * s->C;
  int64_t nc = s->conv ? wcd[0] * wcd[1] * wcd[2] * wcd[3] : s->M * s->r;
  int8_t *qb = malloc((size_t)nb), *qc = malloc((size_t)nc);
  float *fb = malloc(sizeof(float) * (size_t)nb), *fc = malloc(sizeof(float) * (size_t)nc);
  float *A = malloc(sizeof(float) * (size_t)s->r), *ZB = malloc(sizeof(float) * (size_t)s->r);
  float *B = malloc(sizeof(float) * (size_t)s->M);
  for (int64_t i = 0; i < nb; i++) fb[i] = qb[i] = tern();
  for (int64_t i = 0; i < nc; i++) fc[i] = qc[i] = tern();
  if (poison) qc[nc / 2] = poison;
  for (int64_t i = 0; i < s->r; i++) A[i] = (float)(0.8 + 0.6 * frand()), ZB[i] = (float)frand();
  for (int64_t i = 0; i < s->M; i++) B[i] = (float)frand();
  int64_t rv = s->r, mv = s->M;
  Tensor *wb = fm_tensor_const(g, "WB", wbt, s->conv ? 4 : 2, s->conv ? wbd : (int64_t[]){s->r, s->C},
                               wbt == FM_I8 ? (void *)qb : (void *)fb);
  Tensor *wc = fm_tensor_const(g, "WC", wct, s->conv ? 4 : 2, s->conv ? wcd : wcg,
                               wct == FM_I8 ? (void *)qc : (void *)fc);
  Tensor *ta = fm_tensor_const(g, "A", FM_F32, 1, &rv, A), *tz = fm_tensor_const(g, "ZB", FM_F32, 1, &rv, ZB);
  Tensor *tb = fm_tensor_const(g, "B", FM_F32, 1, &mv, B);
  const char *op = s->conv ? "SPConv" : "SPGemm";
  Node *n = fm_node_new(g, fm_op_lookup("ai.fewmul", op), "sp", s->bias ? 6 : s->zb ? 5 : 4, 1);
  n->op_type = op, n->domain = "ai.fewmul";
  n->in[0] = x, n->in[1] = wb, n->in[2] = ta, n->in[3] = wc;
  if (s->zb) n->in[4] = tz;
  if (s->bias) n->in[5] = tb;
  if (s->conv) {
    int64_t pp[2] = {s->ph, s->pw}, st[2] = {s->sh, s->sw};
    fm_set_attr_ints(g, n, "out_patch", 2, pp);
    fm_set_attr_i(g, n, "group", s->G);
    fm_set_attr_ints(g, n, "wb_strides", 2, st);
    fm_set_attr_ints(g, n, "wb_pads", 4, s->wbp);
    fm_set_attr_ints(g, n, "wc_pads", 4, s->wcp);
  }
  Tensor *y = fm_tensor_new(g, "Y");
  y->is_output = 1, y->producer = n, n->out[0] = y;
  g->outputs = fm_alloc(&g->arena, sizeof(Tensor *));
  g->outputs[g->noutputs++] = y;
  free(qb), free(qc), free(fb), free(fc), free(A), free(ZB), free(B);
  return g;
}

/* The model as ONNX, with the function body the trainer exports. */
static void *serialise(Graph *g, int conv, size_t *len) {
  Graph *body = fm_graph_new();
  FmFunction f;
  fm_sp_function(&f, conv ? "SPConv" : "SPGemm", body);
  FmWriteOpts wo = {.functions = &f, .nfunctions = 1};
  void *buf = fm_onnx_write_mem(g, &wo, len);
  fm_graph_free(body);
  return buf;
}

static int64_t at_batch(int64_t d, int64_t N) { return d < 0 ? -d * N : d; }
static int64_t numel_at(const Tensor *t, int64_t N) {
  int64_t k = 1;
  for (int i = 0; i < t->rank; i++) k *= at_batch(t->dims[i], N);
  return k;
}

typedef struct Run { int nsp, nnodes; KCost sp; } Run;

/* Loads buf (inl: SP ops through their bodies), runs the passes and every kernel on the
   interpreter at batch N with X = x; Y into y (ny floats). 0, or -1 with the reason printed. */
static int run_model(const void *buf, size_t len, int inl, int64_t N, float *x, float *y, int64_t ny, Run *out) {
  FmLoadOpts lo = {.inline_fewmul = inl};
  Graph *volatile g = NULL;
  KProgram *volatile p = NULL;
  FmTry t;
  FM_TRY(&t) {
    g = fm_onnx_load_mem(buf, len, "sp.onnx", &lo);
    FmPassOpts po = {.specialize = FM_SPECIALIZE_NONE}; /* the inlined body stays standard dense ops */
    fm_run_passes(g, &po);
    p = fm_lower_graph(g);
    fm_try_pop(&t);
  } else {
    fprintf(stderr, "%s: %s\n", inl ? "inlined" : "native", fm_errmsg());
    if (g) fm_graph_free(g);
    return -1;
  }
  memset(out, 0, sizeof *out);
  void **host = calloc((size_t)g->ntensors + 1, sizeof(void *));
  host[g->inputs[0]->id] = x;
  int rc = 0;
  for (KFn *fn = p->fns; fn && !rc; fn = fn->next) {
    void **ptrs = calloc((size_t)fn->nbufs + 1, sizeof(void *));
    for (int i = 0; i < fn->nbufs; i++) {
      KBuf *bf = fn->bufs[i];
      if (bf->kind == KBUF_TENSOR) {
        Tensor *tt = bf->tensor;
        if (tt->data) ptrs[i] = tt->data;
        else {
          if (!host[tt->id]) host[tt->id] = calloc((size_t)numel_at(tt, N) + 1, fm_dtype_size(tt->dtype));
          ptrs[i] = host[tt->id];
        }
      } else if (bf->kind == KBUF_SCRATCH) {
        ptrs[i] = calloc((size_t)at_batch(bf->nelem, N) + 1, fm_dtype_size(bf->t) > 8 ? fm_dtype_size(bf->t) : 8);
      }
    }
    char err[512];
    rc = fm_kinterp(fn, N, ptrs, err, sizeof err);
    if (rc) fprintf(stderr, "kinterp %s: %s\n", fn->name, err);
    if (fn->node && (fn->node->op == OP_SPConv || fn->node->op == OP_SPGemm)) out->nsp++, out->sp = fm_kcost(fn, N);
    out->nnodes++;
    for (int i = 0; i < fn->nbufs; i++)
      if (fn->bufs[i]->kind == KBUF_SCRATCH) free(ptrs[i]);
    free(ptrs);
  }
  Tensor *yt = g->outputs[0];
  if (!rc && (numel_at(yt, N) != ny || !host[yt->id])) {
    fprintf(stderr, "output has %lld elements, expected %lld\n", (long long)numel_at(yt, N), (long long)ny);
    rc = -1;
  }
  if (!rc) memcpy(y, host[yt->id], sizeof(float) * (size_t)ny);
  for (int i = 0; i < g->ntensors; i++)
    if (host[i] != x) free(host[i]);
  free(host);
  fm_graph_free(g);
  return rc;
}

static void check_case(const Spec *s) {
  const int64_t N = 2;
  Graph *g = build(s, FM_I8, FM_I8, 0);
  size_t len;
  void *buf = serialise(g, s->conv, &len);
  fm_graph_free(g);
  int64_t nx = N * s->C * s->H * s->W, ny = N * s->M * spec_oh(s) * spec_ow(s);
  float *x = malloc(sizeof(float) * (size_t)nx), *yn = calloc((size_t)ny, sizeof(float));
  float *yr = calloc((size_t)ny, sizeof(float));
  for (int64_t i = 0; i < nx; i++) x[i] = (float)frand();
  Run rn, rr;
  int okn = run_model(buf, len, 0, N, x, yn, ny, &rn) == 0, okr = run_model(buf, len, 1, N, x, yr, ny, &rr) == 0;
  CHECK(okn && okr);
  if (okn && okr) {
    double maxd = 0, maxr = 0;
    int64_t bad = -1;
    for (int64_t i = 0; i < ny; i++) {
      double d = fabs((double)yn[i] - yr[i]);
      if (d > maxd) maxd = d;
      if (fabs(yr[i]) > maxr) maxr = fabs(yr[i]);
      if (!(d <= 1e-4 * (1 + fabs(yr[i]))) && bad < 0) bad = i;
    }
    if (bad >= 0)
      fprintf(stderr, "%s: element %lld: body %.8g native %.8g\n", s->name, (long long)bad, yr[bad], yn[bad]);
    CHECK(bad < 0);
    /* one native kernel; the body is several standard ones */
    CHECK(rn.nsp == 1 && rr.nsp == 0 && rr.nnodes > rn.nnodes);
    double want = (double)N * s->r * spec_hb(s) * spec_wb(s);
    if (rn.sp.muls != want)
      fprintf(stderr, "%s: cost counts %.0f multiplications, want N*r*HB*WB = %.0f\n", s->name, rn.sp.muls, want);
    CHECK(rn.sp.muls == want && rn.sp.shifts == 0);
    printf("  %-26s out %lldx%lldx%lld  max |native - body| %.2e (max |y| %.3g)  muls %.0f adds %.0f\n", s->name,
           (long long)s->M, (long long)spec_oh(s), (long long)spec_ow(s), maxd, maxr, rn.sp.muls, rn.sp.adds);
  }
  free(x), free(yn), free(yr), free(buf);
}

static void test_conv_cases(void) {
  /* C, H, W, M, k, stride, pad, p, r, groups, bias: exporter geometry (symmetric extra pad, crop) */
  static const int cfg[][11] = {
      {3, 7, 7, 4, 3, 1, 1, 1, 4, 1, 1},   {3, 7, 7, 4, 3, 1, 1, 2, 4, 1, 1},   {2, 9, 5, 3, 3, 1, 0, 2, 3, 1, 0},
      {4, 8, 8, 6, 3, 2, 1, 2, 8, 2, 1},   {4, 7, 9, 6, 3, 2, 1, 1, 2, 2, 0},   {1, 5, 5, 1, 1, 1, 0, 1, 1, 1, 1},
      {2, 6, 6, 8, 1, 1, 0, 2, 5, 1, 1},   {6, 11, 11, 6, 3, 1, 1, 2, 6, 3, 1}, {3, 5, 7, 5, 2, 1, 0, 2, 7, 1, 1},
      {8, 9, 9, 16, 3, 1, 1, 2, 16, 1, 1}, {2, 10, 10, 4, 3, 2, 0, 2, 3, 1, 0}, {4, 7, 7, 4, 5, 1, 2, 2, 4, 4, 1},
  };
  for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
    const int *c = cfg[i];
    char *name = malloc(64);
    snprintf(name, 64, "conv k%d s%d p%d r%d g%d%s", c[4], c[5], c[7], c[8], c[9], c[10] ? " +B" : "");
    Spec s;
    CHECK(spec_export(&s, name, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10]) == 0);
    check_case(&s);
    free(name);
  }
  /* by hand: a 3x1 patch, asymmetric pads and crops, no ZB */
  Spec h = {"conv patch 3x1 asym", 1, 2, 7, 6, 4, 4, 2, 4, 2, 3, 1, {1, 0, 0, 1}, 3, 1, {2, 0, 1, 1}, 1, 1};
  check_case(&h);
  Spec h2 = {"conv stride 3x2 crop", 1, 3, 8, 9, 3, 2, 1, 3, 2, 3, 2, {0, 1, 2, 1}, 2, 2, {1, 0, 0, 1}, 0, 1};
  check_case(&h2);
}

static void test_gemm_cases(void) {
  static const int cfg[][4] = {{16, 10, 4, 1}, {7, 3, 1, 0}, {50, 20, 12, 1}, {33, 9, 17, 0}}; /* K, M, r, bias */
  for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
    char *name = malloc(64);
    snprintf(name, 64, "gemm K%d M%d r%d%s", cfg[i][0], cfg[i][1], cfg[i][2], cfg[i][3] ? " +B" : "");
    Spec s = {name, 0, cfg[i][0], 1, 1, cfg[i][1], cfg[i][2], 1, 0, 0, 0, 0, {0}, 0, 0, {0}, cfg[i][3], 1};
    check_case(&s);
    free(name);
  }
}

/* A malformed node: infer (or lower, when lower is set) fails with one message naming
   node 'sp' and containing want. */
static void expect_error(const char *what, Graph *g, int lower, const char *want) {
  Node *n = g->nodes[g->nnodes - 1];
  FmTry t;
  volatile int failed = 0;
  FM_TRY(&t) {
    fm_ops[n->op].infer(g, n);
    if (lower) {
      KB b;
      kb_begin(&b, g, n, "k");
      fm_ops[n->op].lower(&b, n);
    }
    fm_try_pop(&t);
  } else {
    failed = 1;
  }
  const char *m = failed ? fm_errmsg() : "(no error)";
  int ok = failed && strstr(m, "node 'sp' (SP") && strstr(m, want) && !strchr(m, '\n');
  if (!ok) fprintf(stderr, "%s: got \"%s\", want \"%s\"\n", what, m, want);
  CHECK(ok);
  fm_graph_free(g);
}

static void test_errors(void) {
  Spec s;
  CHECK(spec_export(&s, "err", 4, 7, 7, 6, 3, 1, 1, 2, 4, 2, 1) == 0);
  expect_error("float WB", build(&s, FM_F32, FM_I8, 0), 0, "WB 'WB' has dtype float32, expected int8");
  expect_error("float WC", build(&s, FM_I8, FM_F32, 0), 0, "WC 'WC' has dtype float32, expected int8");
  expect_error("WC holds 2", build(&s, FM_I8, FM_I8, 2), 1, "weight 'WC' holds 2");
  Spec e = s;
  e.G = 3;
  expect_error("group", build(&e, FM_I8, FM_I8, 0), 0, "not divisible by group 3");
  e = s, e.ph = 3;
  Graph *g = build(&e, FM_I8, FM_I8, 0);
  fm_attr(g->nodes[0], "out_patch")->ints[0] = 2; /* WC's kernel stays 3x2 */
  expect_error("out_patch", g, 0, "only non-overlapping patches");
  e = s, e.wcp[0] = e.wcp[2] = 100;
  expect_error("crop", build(&e, FM_I8, FM_I8, 0), 0, "crop");
  e = s, e.wbp[1] = -1;
  expect_error("negative pad", build(&e, FM_I8, FM_I8, 0), 0, "wb_pads[1] = -1 is not supported");
  g = build(&s, FM_I8, FM_I8, 0);
  int64_t r2 = 5;
  g->nodes[0]->in[2] = fm_tensor_const(g, "A5", FM_F32, 1, &r2, (float[]){1, 1, 1, 1, 1});
  expect_error("A length", g, 0, "A 'A5' must hold 4 values");
  g = build(&s, FM_I8, FM_I8, 0);
  g->nodes[0]->in[0]->dims[1] = 3;
  expect_error("channels", g, 0, "input 'X' has 3 channels but WB 'WB' expects 2 x group 2");
  Spec q = {"gemm", 0, 8, 1, 1, 5, 3, 1, 0, 0, 0, 0, {0}, 0, 0, {0}, 1, 1};
  g = build(&q, FM_I8, FM_I8, 0);
  g->nodes[0]->in[0]->dims[1] = 9;
  expect_error("gemm K", g, 0, "input 'X' has 9 columns but WB 'WB' has 8");
  expect_error("gemm float WB", build(&q, FM_F32, FM_I8, 0), 0, "expected int8");
}

int main(void) {
  test_conv_cases();
  test_gemm_cases();
  test_errors();
  return check_done("test_fewmul_sp");
}
