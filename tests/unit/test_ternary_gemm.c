/* test_ternary_gemm.c - TernaryGemm through the prelude's bitmask kernel (fm_ternary_gemm,
 * lowered in compiler/ops/fewmul.c).
 *
 * Each case builds a TernaryGemm with random {-1, 0, 1} weights of one density (all-zero
 * rows included), Alpha, an optional bias and a fused activation, and checks
 *   - the kernel interpreter's Y against a reference computed here in double,
 *   - the cost model: muls = N*M (one alpha per output), adds = N*nnz (+ N*M with a bias),
 *   - the printed C of the same kernel, compiled three ways (-march=native: AVX-512 on this
 *     machine, -mavx2 -mfma, and no vector ISA: the scalar path), against the reference.
 * Tolerance: |y - ref| <= 1e-5 * (1 + alpha[m] * sum_k |x[k]|) (float sums in another
 * order). A case with the Gemm attribute alpha != 1 checks the tap-loop fallback.
 *
 * Alpha all 1 (unit): no multiply at all (muls = 0, only a LeakyRelu's slope counts), in
 * both lowerings. X may have more dims ([N, L, K] or [L, N, K]: L*N rows). The MatMul cases
 * start from MatMul(X, W float {-1, 0, 1} [K, M]) -- the Strassen model's form -- and go
 * through passes/weights.c, which must turn them into such a TernaryGemm; the result is
 * checked against the float MatMul computed here. */
#include "check.h"
#include "emit/emit.h"
#include "kernel/kernel.h"
#include "ops/ops.h"
#include "passes/passes.h"
#include <dlfcn.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static Graph *G;
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double urand(void) { /* [0, 1) */
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (double)(rng >> 11) / (double)(1ull << 53);
}

typedef struct Case {
  int64_t N, K, M;
  int tb, bias;
  OpKind act;
  double density;
  float gemm_alpha; /* != 1: the fallback lowering */
  int unit;         /* Alpha all 1: no multiplication */
  int64_t lead;     /* > 0: X [N, lead, K]; < 0: X [-lead, N, K]; 0: X [N, K] */
  int matmul;       /* a float MatMul (tb = 0, no bias) rewritten by the weights pass */
} Case;

static const Case cases[] = {
  /* N, K, M, tb, bias, act, density, gemm_alpha, unit, lead, matmul */
  {1, 784, 64, 1, 1, OP_Relu, 0.65, 1, 0, 0, 0},
  {5, 784, 37, 1, 0, 0, 0.65, 1, 0, 0, 0},
  {17, 100, 20, 1, 1, OP_Relu, 0.3, 1, 0, 0, 0},
  {1, 7, 5, 1, 1, 0, 0.5, 1, 0, 0, 0},              /* K < 16 */
  {5, 13, 1, 0, 0, OP_Relu, 0.9, 1, 0, 0, 0},       /* K < 16, M = 1, W as [K, M] */
  {17, 33, 1, 1, 1, 0, 0.1, 1, 0, 0, 0},            /* M = 1 */
  {5, 48, 9, 0, 1, 0, 1.0, 1, 0, 0, 0},             /* dense ternary, K a multiple of 16 */
  {17, 50, 12, 1, 1, OP_LeakyRelu, 0.4, 1, 0, 0, 0},
  {1, 300, 11, 1, 0, 0, 0.0, 1, 0, 0, 0},           /* all rows zero */
  {5, 20, 6, 1, 1, OP_Relu, 0.5, 0.5f, 0, 0, 0},    /* Gemm alpha: the tap-loop lowering */
  {5, 40, 13, 1, 1, 0, 0.6, 1, 1, 0, 0},            /* unit Alpha */
  {5, 20, 6, 0, 1, OP_LeakyRelu, 0.5, 0.5f, 1, 3, 0}, /* unit Alpha, tap loop (the Gemm alpha only), X [N, 3, K] */
  {3, 19, 9, 1, 0, OP_Relu, 0.5, 1, 1, 4, 0},       /* X [N, 4, K] */
  {2, 33, 5, 0, 1, 0, 0.7, 1, 0, -3, 0},            /* X [3, N, K], Alpha not 1 */
  {1, 4, 7, 0, 0, 0, 0.6, 1, 1, 0, 1},              /* MatMul: the Strassen model's W_A^T */
  {3, 7, 4, 0, 0, 0, 0.6, 1, 1, 0, 1},              /* MatMul: ... and its W_C^T */
  {4, 9, 23, 0, 0, 0, 0.4, 1, 1, 5, 1},             /* MatMul over X [N, 5, 9] (3x3 matrices) */
  {2, 70, 33, 0, 0, OP_Relu, 0.5, 1, 1, -2, 1},     /* MatMul over X [2, N, 70], fused Relu */
};

static void lower(Node *n, KFn **fn) {
  KB b;
  kb_begin(&b, G, n, "tgemm");
  fm_ops[n->op].lower(&b, n);
  CHECK(b.depth == 0);
  *fn = b.fn;
}

/* buffer pointers of fn: the data input x, the output y, constants as they are, zeroed scratch */
static void **bufs(KFn *fn, Node *n, int64_t N, float *x, float *y) {
  void **p = calloc((size_t)fn->nbufs + 1, sizeof(void *));
  for (int i = 0; i < fn->nbufs; i++) {
    KBuf *bf = fn->bufs[i];
    if (bf->kind == KBUF_TENSOR) p[i] = bf->tensor->data ? bf->tensor->data : bf->tensor == n->in[0] ? (void *)x : (void *)y;
    if (bf->kind == KBUF_SCRATCH) {
      int64_t ne = bf->nelem < 0 ? -bf->nelem * N : bf->nelem;
      p[i] = calloc((size_t)ne + 1, fm_dtype_size(bf->t));
    }
  }
  return p;
}
static void free_bufs(KFn *fn, void **p) {
  for (int i = 0; i < fn->nbufs; i++)
    if (fn->bufs[i]->kind == KBUF_SCRATCH) free(p[i]);
  free(p);
}

static int64_t rows_of(const Case *c) { return c->N * (c->lead > 0 ? c->lead : c->lead < 0 ? -c->lead : 1); }

static int close_enough(const char *what, const Case *c, const double *ref, const double *tol, const float *y) {
  for (int64_t i = 0; i < rows_of(c) * c->M; i++)
    if (!(fabs(ref[i] - y[i]) <= tol[i])) {
      fprintf(stderr, "%s: N %lld K %lld M %lld density %.2f: element %lld: want %.9g got %.9g\n", what,
              (long long)c->N, (long long)c->K, (long long)c->M, c->density, (long long)i, ref[i], y[i]);
      return 0;
    }
  return 1;
}

/* the printed C of fn, compiled with flags; runs it and compares. 0 when skipped. */
static void check_printed(KFn *fn, Node *n, const Case *c, float *x, const double *ref, const double *tol,
                          const char *dir, int idx) {
  char path[512], cmd[1536];
  snprintf(path, sizeof path, "%s/k%d.c", dir, idx);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (!f) return;
  fputs(fm_cpu_text, f);
  fm_emit_c_fn(f, fn, 0);
  fprintf(f, "void run_k(int64_t N, void **p);\nvoid run_k(int64_t N, void **p) {\n  %s(N", fn->name);
  for (int i = 0; i < fn->nbufs; i++)
    if (fn->bufs[i]->kind != KBUF_CONST) fprintf(f, ", p[%d]", i);
  fputs(");\n}\n", f);
  fclose(f);
#ifdef __AVX512F__
  static const char *const flags[] = {"-march=native", "-mavx2 -mfma", ""};
#elif defined(__AVX2__)
  static const char *const flags[] = {"-march=native", "-mavx2 -mfma", ""};
#else
  static const char *const flags[] = {"", "", ""};
#endif
  for (int v = 0; v < 3; v++) {
    snprintf(cmd, sizeof cmd,
             "cc -std=c11 -O2 %s -Wall -Wextra -Werror -ffp-contract=off -shared -fPIC -o %s/k%d_%d.so %s 2>&1",
             flags[v], dir, idx, v, path);
    int rc = system(cmd);
    CHECK(rc == 0);
    if (rc) continue;
    snprintf(cmd, sizeof cmd, "%s/k%d_%d.so", dir, idx, v);
    void *so = dlopen(cmd, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    CHECK(so != NULL);
    if (!so) continue;
    void (*fp)(int64_t, void **);
    *(void **)&fp = dlsym(so, "run_k");
    CHECK(fp != NULL);
    if (fp) {
      float *y = calloc((size_t)(rows_of(c) * c->M), sizeof(float));
      void **p = bufs(fn, n, c->N, x, y);
      fp(c->N, p);
      char what[64];
      snprintf(what, sizeof what, "printed C %s", *flags[v] ? flags[v] : "(scalar)");
      CHECK(close_enough(what, c, ref, tol, y));
      free_bufs(fn, p), free(y);
    }
    dlclose(so);
  }
}

static void run_case(const Case *c, const char *dir, int idx) {
  int64_t N = c->N, K = c->K, M = c->M, R = rows_of(c);
  int8_t *wq = malloc((size_t)(K * M));
  float *alpha = malloc(sizeof(float) * (size_t)M), *bv = malloc(sizeof(float) * (size_t)M);
  float *wf = malloc(sizeof(float) * (size_t)(K * M));
  float *x = malloc(sizeof(float) * (size_t)(R * K)), *y = calloc((size_t)(R * M), sizeof(float));
  double *ref = malloc(sizeof(double) * (size_t)(R * M)), *tol = malloc(sizeof(double) * (size_t)(R * M));
  int64_t nnz = 0;
  for (int64_t m = 0; m < M; m++) alpha[m] = c->unit ? 1 : (float)(0.25 + urand()), bv[m] = (float)(urand() - 0.5);
  for (int64_t m = 0; m < M; m++) {
    int zero_row = m % 7 == 3; /* all-zero rows */
    for (int64_t k = 0; k < K; k++) {
      int8_t v = !zero_row && urand() < c->density ? (urand() < 0.5 ? -1 : 1) : 0;
      wq[c->tb ? m * K + k : k * M + m] = v, wf[c->tb ? m * K + k : k * M + m] = v;
      nnz += v != 0;
    }
  }
  for (int64_t i = 0; i < R * K; i++) x[i] = (float)(urand() * 2 - 1);
  for (int64_t i = 0; i < R; i++)
    for (int64_t m = 0; m < M; m++) {
      double s = 0, sa = 0;
      for (int64_t k = 0; k < K; k++) {
        double xv = x[i * K + k];
        s += wq[c->tb ? m * K + k : k * M + m] * xv, sa += fabs(xv);
      }
      double v = (double)c->gemm_alpha * alpha[m] * s + (c->bias ? bv[m] : 0);
      if (c->act == OP_Relu) v = v > 0 ? v : 0;
      if (c->act == OP_LeakyRelu) v = v < 0 ? v * 0.1f : v;
      ref[i * M + m] = v, tol[i * M + m] = 1e-5 * (1 + c->gemm_alpha * alpha[m] * sa);
    }

  G = fm_graph_new();
  int64_t xd[3] = {-1, K}, wd[2] = {c->tb ? M : K, c->tb ? K : M};
  int xr = c->lead ? 3 : 2;
  if (c->lead > 0) xd[1] = c->lead, xd[2] = K;
  if (c->lead < 0) xd[0] = -c->lead, xd[1] = -1, xd[2] = K;
  Tensor *tx = fm_tensor_new(G, "X");
  fm_set_shape(tx, FM_F32, xr, xd);
  tx->is_input = 1;
  Node *n;
  if (c->matmul) { /* MatMul(X, W float), rewritten by the weights pass */
    n = fm_node_new(G, OP_MatMul, "mm", 2, 1);
    n->op_type = "MatMul", n->domain = "";
    n->in[0] = tx, n->in[1] = fm_tensor_const(G, "W", FM_F32, 2, wd, wf);
  } else {
    n = fm_node_new(G, OP_TernaryGemm, NULL, c->bias ? 4 : 3, 1);
    n->op_type = "TernaryGemm", n->domain = "ai.fewmul";
    n->in[0] = tx, n->in[1] = fm_tensor_const(G, "W", FM_I8, 2, wd, wq);
    n->in[2] = fm_tensor_const(G, "Alpha", FM_F32, 1, &M, alpha);
    if (c->bias) n->in[3] = fm_tensor_const(G, "B", FM_F32, 1, &M, bv);
    fm_set_attr_i(G, n, "transB", c->tb);
    if (c->gemm_alpha != 1) fm_set_attr_f(G, n, "alpha", c->gemm_alpha);
  }
  n->out[0] = fm_tensor_new(G, "Y");
  n->out[0]->producer = n;
  n->fused_act = c->act, n->act_alpha = 0.1f;
  if (c->matmul) {
    n->out[0]->is_output = 1;
    G->inputs = fm_alloc(&G->arena, sizeof(Tensor *)), G->inputs[0] = tx, G->ninputs = 1;
    G->outputs = fm_alloc(&G->arena, sizeof(Tensor *)), G->outputs[0] = n->out[0], G->noutputs = 1;
    fm_pass_shapes(G);
    fm_pass_weights(G);
    CHECK(n->op == OP_TernaryGemm && !strcmp(n->op_type, "TernaryGemm") && n->nin == 3);
    CHECK(!fm_attr_i(n, "transB", 0) && n->in[0] == tx);
    for (int64_t m = 0; m < M && n->op == OP_TernaryGemm; m++) CHECK(((float *)n->in[2]->data)[m] == 1.0f);
  } else fm_ops[n->op].infer(G, n);
  /* Y has X's leading dims and M */
  CHECK(n->out[0]->rank == xr && n->out[0]->dims[xr - 1] == M && !memcmp(n->out[0]->dims, xd, sizeof(int64_t) * (size_t)(xr - 1)));
  KFn *fn;
  lower(n, &fn);
  int uses_masks = 0;
  for (KStmt *s = fn->body; s; s = s->next)
    for (KStmt *t = s->body; t; t = t->next) uses_masks |= t->k == KS_CALL && !strcmp(t->fn, "fm_ternary_gemm");
  CHECK(uses_masks == (c->gemm_alpha == 1));

  char err[512];
  void **p = bufs(fn, n, N, x, y);
  int rc = fm_kinterp(fn, N, p, err, sizeof err);
  if (rc) fprintf(stderr, "kinterp: %s\n", err);
  CHECK(rc == 0);
  free_bufs(fn, p);
  CHECK(close_enough("interpreter", c, ref, tol, y));
  KCost kc = fm_kcost(fn, N);
  double want_adds = (double)(R * nnz + (c->bias ? R * M : 0));
  /* one multiplication per output for Alpha (none when unit), one more for LeakyRelu's slope
     and for the fallback's alpha attribute */
  double want_muls = (double)(R * M) * (!c->unit + (c->act == OP_LeakyRelu) + (c->gemm_alpha != 1));
  if (kc.muls != want_muls || kc.adds != want_adds)
    fprintf(stderr, "case %d: muls %.0f adds %.0f, want %.0f and %.0f\n", idx, kc.muls, kc.adds, want_muls,
            want_adds);
  CHECK(kc.muls == want_muls);
  CHECK(kc.adds == want_adds);
  if (dir) check_printed(fn, n, c, x, ref, tol, dir, idx);
  free(wq), free(wf), free(alpha), free(bv), free(x), free(y), free(ref), free(tol);
  fm_graph_free(G);
}

/* the interpreter's argument checks: a mask table shorter than M*kc is refused */
static void bad_extent(void) {
  G = fm_graph_new();
  KB b;
  Node *n = fm_node_new(G, OP_TernaryGemm, NULL, 0, 0);
  kb_begin(&b, G, n, "bad");
  int32_t m[3] = {1, 2, 3};
  float a[4] = {1, 1, 1, 1};
  KBuf *X = kb_scratch(&b, "x", FM_F32, 2 * 20), *Y = kb_scratch(&b, "y", FM_F32, 2 * 2);
  KBuf *MK = kb_const(&b, "m", FM_I32, 3, m), *A = kb_const(&b, "a", FM_F32, 4, a);
  kb_call(&b, "fm_ternary_gemm", k_i(0), k_i(0), 16, k_i(0), k_i(2), k_i(0), k_i(2), k_i(20), k_addr(X, k_i(0)),
          k_i(20), k_addr(MK, k_i(0)), k_i(2), k_addr(A, k_i(0)), k_i(1), k_addr(A, k_i(0)), k_i(0), k_i(0),
          k_addr(Y, k_i(0)), k_i(2));
  void *p[4] = {calloc(40, 4), calloc(4, 4), NULL, NULL};
  char err[512] = "";
  CHECK(fm_kinterp(b.fn, 1, p, err, sizeof err) != 0 && strstr(err, "masks"));
  free(p[0]), free(p[1]);
  fm_graph_free(G);
}

int main(void) {
  char dir[] = "/tmp/fm_test_tgemm_XXXXXX";
  const char *d = NULL;
  if (system("command -v cc >/dev/null 2>&1") == 0 && mkdtemp(dir)) d = dir;
  else printf("test_ternary_gemm: cc not found: skipping the printed-C comparison\n");
  for (int i = 0; i < (int)(sizeof cases / sizeof *cases); i++) run_case(&cases[i], d, i);
  bad_extent();
  if (d && !getenv("FM_TEST_KEEP")) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", d);
    CHECK(system(cmd) == 0);
  }
  return check_done("test_ternary_gemm");
}
