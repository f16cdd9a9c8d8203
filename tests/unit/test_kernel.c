/* test_kernel.c - the kernel IR backends: interpreter, cost, dump, C printer, prelude.
 *
 * Kernels are built with the builder and run in the interpreter against results
 * computed here by straightforward C; then the same kernels are printed as C,
 * compiled with cc (-Wall -Wextra -Werror -fopenmp -shared), loaded and run on the
 * same inputs: the outputs must equal the interpreter's bit for bit (printer ==
 * interpreter). fm_sgemm is checked against a naive triple loop and timed.
 */
#include "check.h"
#include "kernel/kernel.h"
#include "emit/emit.h"
#include "cpu/fm_cpu.h"
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static Graph *g;

static Tensor *mk(const char *name, FmDType t, int rank, int64_t d0, int64_t d1) {
  Tensor *x = fm_tensor_new(g, name);
  x->dtype = t, x->rank = rank, x->dims[0] = d0, x->dims[1] = d1;
  return x;
}

static uint32_t rng = 12345;
static float frand(void) { /* in [-2, 2) */
  rng = rng * 1664525u + 1013904223u;
  return (float)((rng >> 8) & 0xffff) / 16384.0f - 2.0f;
}

/* ---- buffers for a kernel at a batch ---- */
static int64_t nelem(KBuf *b, int64_t batch) {
  if (b->kind != KBUF_TENSOR) return b->nelem >= 0 ? b->nelem : -b->nelem * batch;
  int64_t n = 1;
  for (int d = 0; d < b->tensor->rank; d++) {
    int64_t x = b->tensor->dims[d];
    n *= x >= 0 ? x : -x * batch;
  }
  return n;
}

/* Buffers with deterministic contents (floats in [-2, 2), integers small). */
static void **alloc_bufs(KFn *fn, int64_t batch) {
  void **p = calloc((size_t)fn->nbufs, sizeof(void *));
  for (int i = 0; i < fn->nbufs; i++) {
    KBuf *b = fn->bufs[i];
    if (b->kind == KBUF_CONST) continue;
    int64_t n = nelem(b, batch);
    size_t es = fm_dtype_size(b->t);
    p[i] = calloc((size_t)n + 1, es);
    for (int64_t k = 0; k < n; k++) {
      float v = frand();
      switch (b->t) {
      case FM_F32: ((float *)p[i])[k] = v; break;
      case FM_F64: ((double *)p[i])[k] = v * 1.1; break;
      case FM_F16: ((uint16_t *)p[i])[k] = fm_f2h(v); break;
      case FM_I8: ((int8_t *)p[i])[k] = (int8_t)(v * 60); break;
      case FM_U8: ((uint8_t *)p[i])[k] = (uint8_t)(v * 60 + 128); break;
      case FM_BOOL: ((uint8_t *)p[i])[k] = v > 0; break;
      case FM_I32: ((int32_t *)p[i])[k] = (int32_t)(v * 1000); break;
      case FM_I64: ((int64_t *)p[i])[k] = (int64_t)(v * 1000); break;
      default: break;
      }
    }
  }
  return p;
}

static void **clone_bufs(KFn *fn, int64_t batch, void **src) {
  void **p = calloc((size_t)fn->nbufs, sizeof(void *));
  for (int i = 0; i < fn->nbufs; i++) {
    if (!src[i]) continue;
    size_t nb = (size_t)(nelem(fn->bufs[i], batch) + 1) * fm_dtype_size(fn->bufs[i]->t);
    p[i] = malloc(nb);
    memcpy(p[i], src[i], nb);
  }
  return p;
}

static void free_bufs(KFn *fn, void **p) {
  for (int i = 0; i < fn->nbufs; i++) free(p[i]);
  free(p);
}

static int run(KFn *fn, int64_t batch, void **p, char *err) { return fm_kinterp(fn, batch, p, err, 256); }

/* Kernels whose printed C is compared with the interpreter at the end. */
static KFn *printed[32];
static int64_t printed_batch[32];
static int nprinted;
static void to_print(KFn *fn, int64_t batch) { printed[nprinted] = fn, printed_batch[nprinted++] = batch; }

/* ---- 1. elementwise over a symbolic batch ---- */
static void test_elementwise(void) {
  Tensor *x = mk("x.in", FM_F32, 2, -1, 5), *y = mk("y", FM_F32, 2, -1, 5);
  KB b;
  KFn *fn = kb_begin(&b, g, NULL, "ew");
  KBuf *bx = kb_tensor(&b, x), *by = kb_tensor(&b, y);
  KVar *i = kb_for(&b, "i", k_i(0), kb_numel(&b, x), KL_PARALLEL);
  KExpr *v = k_load(bx, k_var(i));
  kb_store(&b, by, k_var(i), k_fma(k_max(v, k_f32(0)), k_f32(0.1), k_un(KU_EXP, k_mul(v, k_f32(-0.5)))));
  kb_end(&b);
  int64_t N = 3;
  void **p = alloc_bufs(fn, N);
  char err[256];
  CHECK(run(fn, N, p, err) == 0);
  int bad = 0;
  for (int k = 0; k < N * 5; k++) {
    float xv = ((float *)p[0])[k];
    float want = fmaf(fmaxf(xv, 0), 0.1f, expf(xv * -0.5f));
    if (((float *)p[1])[k] != want) bad++;
  }
  CHECK(bad == 0);
  KCost c = fm_kcost(fn, N);
  CHECK(c.muls == 2 * N * 5 && c.adds == N * 5 && c.other == 2 * N * 5);
  free_bufs(fn, p);
  to_print(fn, N);
}

/* ---- 2. matmul loop nest; cost = M*N*K ---- */
static void test_matmul(void) {
  enum { M = 7, K = 9, NN = 5 };
  Tensor *a = mk("A", FM_F32, 2, M, K), *bm = mk("B", FM_F32, 2, K, NN), *c = mk("C", FM_F32, 2, M, NN);
  KB b;
  KFn *fn = kb_begin(&b, g, NULL, "matmul");
  KBuf *A = kb_tensor(&b, a), *B = kb_tensor(&b, bm), *C = kb_tensor(&b, c);
  KVar *i = kb_for(&b, "i", k_i(0), k_i(M), KL_PARALLEL);
  KVar *j = kb_for(&b, "j", k_i(0), k_i(NN), KL_SERIAL);
  KVar *acc = kb_let(&b, "acc", FM_F32, k_f32(0));
  KVar *k = kb_for(&b, "k", k_i(0), k_i(K), KL_UNROLL);
  kb_acc(&b, acc, KB_ADD, k_mul(k_load(A, k_add(k_mul(k_var(i), k_i(K)), k_var(k))),
                                k_load(B, k_add(k_mul(k_var(k), k_i(NN)), k_var(j)))));
  kb_end(&b);
  kb_store(&b, C, k_add(k_mul(k_var(i), k_i(NN)), k_var(j)), k_var(acc));
  kb_end(&b);
  kb_end(&b);
  void **p = alloc_bufs(fn, 1);
  char err[256];
  CHECK(run(fn, 1, p, err) == 0);
  float *pa = p[0], *pb = p[1], *pc = p[2];
  int bad = 0;
  for (int r = 0; r < M; r++)
    for (int q = 0; q < NN; q++) {
      float s = 0;
      for (int t = 0; t < K; t++) s += pa[r * K + t] * pb[t * NN + q];
      bad += pc[r * NN + q] != s;
    }
  CHECK(bad == 0);
  KCost cost = fm_kcost(fn, 1);
  CHECK(cost.muls == M * NN * K);
  CHECK(cost.adds == M * NN * K);
  CHECK(cost.shifts == 0 && cost.other == 0);
  free_bufs(fn, p);
  to_print(fn, 1);
}

/* ---- 3. reductions with let/acc (sum and max per row), over a symbolic batch ---- */
static void test_reduce(void) {
  Tensor *x = mk("x", FM_F32, 2, -2, 6), *s = mk("s", FM_F32, 2, -2, 1), *mx = mk("m", FM_F32, 2, -2, 1);
  KB b;
  KFn *fn = kb_begin(&b, g, NULL, "reduce");
  KBuf *bx = kb_tensor(&b, x), *bs = kb_tensor(&b, s), *bm = kb_tensor(&b, mx);
  KVar *r = kb_for(&b, "r", k_i(0), kb_dim(&b, -2), KL_PARALLEL);
  KVar *sum = kb_let(&b, "sum", FM_F32, k_f32(0));
  KVar *best = kb_let(&b, "best", FM_F32, k_f32(-INFINITY));
  KVar *c = kb_for(&b, "c", k_i(0), k_i(6), KL_VECTOR);
  KExpr *v = k_load(bx, k_add(k_mul(k_var(r), k_i(6)), k_var(c)));
  kb_acc(&b, sum, KB_ADD, v);
  kb_acc(&b, best, KB_MAX, v);
  kb_end(&b);
  kb_store(&b, bs, k_var(r), k_var(sum));
  kb_store(&b, bm, k_var(r), k_var(best));
  kb_end(&b);
  int64_t N = 2;
  void **p = alloc_bufs(fn, N);
  char err[256];
  CHECK(run(fn, N, p, err) == 0);
  int bad = 0;
  for (int row = 0; row < 2 * N; row++) {
    float t = 0, m = -INFINITY;
    for (int q = 0; q < 6; q++) t += ((float *)p[0])[row * 6 + q], m = fmaxf(m, ((float *)p[0])[row * 6 + q]);
    bad += ((float *)p[1])[row] != t || ((float *)p[2])[row] != m;
  }
  CHECK(bad == 0);
  KCost cost = fm_kcost(fn, N);
  CHECK(cost.adds == 2 * N * 6 && cost.other == 2 * N * 6 && cost.muls == 0);
  free_bufs(fn, p);
  to_print(fn, N);
}

/* ---- 4. if/else, and a cost that depends on loop indices (padding-like) ---- */
static void test_if(void) {
  Tensor *x = mk("x", FM_F32, 1, 10, 0), *y = mk("y", FM_F32, 1, 10, 0);
  KB b;
  KFn *fn = kb_begin(&b, g, NULL, "leaky");
  KBuf *bx = kb_tensor(&b, x), *by = kb_tensor(&b, y);
  KVar *i = kb_for(&b, "i", k_i(0), k_i(10), KL_SERIAL);
  KExpr *v = k_load(bx, k_var(i));
  kb_if(&b, k_bin(KB_GT, v, k_f32(0)));
  kb_store(&b, by, k_var(i), v);
  kb_else(&b);
  kb_store(&b, by, k_var(i), k_mul(v, k_f32(0.1)));
  kb_end(&b);
  /* every third element gets +1 more: an if on the index, counted exactly */
  kb_if(&b, k_bin(KB_EQ, k_mod(k_var(i), k_i(3)), k_i(0)));
  kb_store_acc(&b, by, k_var(i), KB_ADD, k_f32(1));
  kb_end(&b);
  kb_end(&b);
  void **p = alloc_bufs(fn, 1);
  char err[256];
  CHECK(run(fn, 1, p, err) == 0);
  int bad = 0;
  for (int k = 0; k < 10; k++) {
    float xv = ((float *)p[0])[k], want = xv > 0 ? xv : xv * 0.1f;
    if (k % 3 == 0) want += 1;
    bad += ((float *)p[1])[k] != want;
  }
  CHECK(bad == 0);
  KCost c = fm_kcost(fn, 1);
  CHECK(c.muls == 10); /* data-dependent if: the larger branch */
  CHECK(c.adds == 4);  /* i = 0, 3, 6, 9 */
  free_bufs(fn, p);
  to_print(fn, 1);

  /* triangular loop: inner bound depends on the outer variable */
  KFn *tri = kb_begin(&b, g, NULL, "tri");
  KBuf *tx = kb_tensor(&b, x), *ty = kb_tensor(&b, y);
  KVar *r = kb_for(&b, "r", k_i(0), k_i(10), KL_SERIAL);
  KVar *q = kb_for(&b, "q", k_i(0), k_add(k_var(r), k_i(1)), KL_SERIAL);
  kb_store_acc(&b, ty, k_var(r), KB_ADD, k_mul(k_load(tx, k_var(q)), k_f32(2)));
  kb_end(&b);
  kb_end(&b);
  c = fm_kcost(tri, 1);
  CHECK(c.muls == 55 && c.adds == 55);
  to_print(tri, 1);
}

/* ---- 5. a call of fm_sgemm, parallel over row blocks ---- */
static void test_call(void) {
  enum { M = 37, K = 29, NN = 21 };
  Tensor *a = mk("A", FM_F32, 2, M, K), *bm = mk("W", FM_F32, 2, NN, K), *c = mk("Y", FM_F32, 2, M, NN);
  KB b;
  KFn *fn = kb_begin(&b, g, NULL, "gemm_call");
  KBuf *A = kb_tensor(&b, a), *B = kb_tensor(&b, bm), *C = kb_tensor(&b, c);
  KVar *t = kb_for(&b, "mb", k_i(0), k_i((M + 15) / 16), KL_PARALLEL);
  KExpr *m0 = k_mul(k_var(t), k_i(16)), *m1 = k_min(k_add(m0, k_i(16)), k_i(M));
  KExpr *work = k_mul(k_mul(k_sub(m1, m0), k_i(NN)), k_i(K));
  kb_call(&b, "fm_sgemm", work, work, 14, m0, m1, k_i(0), k_i(NN), k_i(K), k_addr(A, k_i(0)), k_i(K),
          k_i(0), k_addr(B, k_i(0)), k_i(K), k_i(1), k_addr(C, k_i(0)), k_i(NN), k_i(0));
  kb_end(&b);
  void **p = alloc_bufs(fn, 1);
  char err[256];
  CHECK(run(fn, 1, p, err) == 0);
  float *pa = p[0], *pb = p[1], *pc = p[2];
  double worst = 0;
  for (int r = 0; r < M; r++)
    for (int q = 0; q < NN; q++) {
      double s = 0;
      for (int k = 0; k < K; k++) s += (double)pa[r * K + k] * pb[q * K + k];
      worst = fmax(worst, fabs(s - pc[r * NN + q]));
    }
  CHECK(worst < 1e-4);
  KCost cost = fm_kcost(fn, 1);
  CHECK(cost.muls == M * NN * K && cost.adds == M * NN * K);
  CHECK(!fm_kfn_writes(fn, A) && !fm_kfn_writes(fn, B) && fm_kfn_writes(fn, C));
  free_bufs(fn, p);
  to_print(fn, 1);

  /* a call whose C block reaches past the buffer is reported, not run */
  KFn *badfn = kb_begin(&b, g, NULL, "gemm_bad");
  A = kb_tensor(&b, a), B = kb_tensor(&b, bm), C = kb_tensor(&b, c);
  kb_call(&b, "fm_sgemm", k_i(0), k_i(0), 14, k_i(0), k_i(M + 1), k_i(0), k_i(NN), k_i(K), k_addr(A, k_i(0)),
          k_i(K), k_i(0), k_addr(B, k_i(0)), k_i(K), k_i(1), k_addr(C, k_i(0)), k_i(NN), k_i(0));
  p = alloc_bufs(badfn, 1);
  CHECK(run(badfn, 1, p, err) == -1);
  CHECK(strstr(err, "gemm_bad") && strstr(err, "fm_sgemm"));
  free_bufs(badfn, p);
}

/* ---- 6. errors: bounds, division by zero, type mismatch ---- */
static void test_errors(void) {
  Tensor *x = mk("input_x", FM_F32, 2, -1, 4), *y = mk("out_y", FM_F32, 2, -1, 4);
  KB b;
  char err[256];
  KFn *fn = kb_begin(&b, g, NULL, "oob");
  KBuf *bx = kb_tensor(&b, x), *by = kb_tensor(&b, y);
  KVar *i = kb_for(&b, "i", k_i(0), k_add(kb_numel(&b, x), k_i(1)), KL_SERIAL); /* one too many */
  kb_store(&b, by, k_var(i), k_load(bx, k_sub(k_var(i), k_i(1))));
  kb_end(&b);
  void **p = alloc_bufs(fn, 2);
  CHECK(run(fn, 2, p, err) == -1);
  CHECK(strstr(err, "oob") && strstr(err, "input_x") && strstr(err, "-1"));
  free_bufs(fn, p);

  fn = kb_begin(&b, g, NULL, "oob_store");
  bx = kb_tensor(&b, x), by = kb_tensor(&b, y);
  i = kb_for(&b, "i", k_i(0), k_i(9), KL_SERIAL);
  kb_store(&b, by, k_var(i), k_f32(1));
  kb_end(&b);
  p = alloc_bufs(fn, 3);
  CHECK(run(fn, 3, p, err) == 0); /* 12 elements at batch 3 */
  free_bufs(fn, p);
  p = alloc_bufs(fn, 2);
  int rc = run(fn, 2, p, err);
  CHECK(rc == -1 && strstr(err, "out_y") && strstr(err, "store"));
  free_bufs(fn, p);

  Tensor *q = mk("q", FM_I32, 1, 3, 0);
  fn = kb_begin(&b, g, NULL, "divzero");
  KBuf *bq = kb_tensor(&b, q);
  i = kb_for(&b, "i", k_i(0), k_i(3), KL_SERIAL);
  kb_store(&b, bq, k_var(i), k_div(k_const(FM_I32, 7), k_cast(FM_I32, k_sub(k_var(i), k_i(1)))));
  kb_end(&b);
  p = alloc_bufs(fn, 1);
  CHECK(run(fn, 1, p, err) == -1 && strstr(err, "division by zero"));
  free_bufs(fn, p);

  fn = kb_begin(&b, g, NULL, "mixed");
  bx = kb_tensor(&b, x);
  kb_store(&b, bx, k_i(0), k_add(k_f32(1), k_i(2)));
  p = alloc_bufs(fn, 1);
  CHECK(run(fn, 1, p, err) == -1 && strstr(err, "k_cast"));
  free_bufs(fn, p);
}

/* ---- 7. integer, bool, cast and float-edge semantics ---- */
static void test_semantics(void) {
  Tensor *i8 = mk("i8", FM_I8, 1, 8, 0), *i32 = mk("i32", FM_I32, 1, 8, 0), *f = mk("f", FM_F32, 1, 8, 0);
  Tensor *u8 = mk("u8", FM_U8, 1, 8, 0), *bo = mk("bo", FM_BOOL, 1, 8, 0), *h = mk("h", FM_F16, 1, 8, 0);
  Tensor *d = mk("d", FM_F64, 1, 8, 0);
  KB b;
  KFn *fn = kb_begin(&b, g, NULL, "sem");
  KBuf *B8 = kb_tensor(&b, i8), *B32 = kb_tensor(&b, i32), *BF = kb_tensor(&b, f), *BU = kb_tensor(&b, u8);
  KBuf *BB = kb_tensor(&b, bo), *BH = kb_tensor(&b, h), *BD = kb_tensor(&b, d);
  kb_store(&b, B8, k_i(0), k_add(k_const(FM_I8, 100), k_const(FM_I8, 100)));       /* wraps: -56 */
  kb_store(&b, B32, k_i(0), k_div(k_const(FM_I32, -7), k_const(FM_I32, 2)));       /* -3 */
  kb_store(&b, B32, k_i(1), k_mod(k_const(FM_I32, -7), k_const(FM_I32, 2)));       /* -1 */
  kb_store(&b, B32, k_i(2), k_cast(FM_I32, k_f32(-2.75)));                          /* -2 */
  kb_store(&b, BF, k_i(0), k_max(k_f32(NAN), k_f32(1)));                            /* 1 */
  kb_store(&b, BF, k_i(1), k_un(KU_ROUND, k_f32(2.5)));                             /* 2 */
  kb_store(&b, BF, k_i(2), k_bin(KB_LDEXP, k_f32(3), k_const(FM_I32, -2)));         /* 0.75 */
  kb_store(&b, BF, k_i(3), k_add(k_f32(16777216), k_f32(1)));                      /* float: 16777216 */
  kb_store(&b, BF, k_i(4), k_un(KU_SIGN, k_f32(-3)));                               /* -1 */
  kb_store(&b, BU, k_i(0), k_sub(k_const(FM_U8, 3), k_const(FM_U8, 5)));           /* 254 */
  kb_store(&b, BB, k_i(0), k_bin(KB_XOR, k_lt(k_f32(1), k_f32(2)), k_lt(k_f32(3), k_f32(2)))); /* 1 */
  kb_store(&b, BB, k_i(1), k_cast(FM_BOOL, k_f32(0.25)));                           /* 1 */
  kb_store(&b, BH, k_i(0), k_f32(1.0 / 3));                                         /* half(1/3) */
  kb_store(&b, BD, k_i(0), k_bin(KB_POW, k_const(FM_F64, 2), k_const(FM_F64, 0.5)));
  kb_store(&b, B32, k_i(3), k_bin(KB_POW, k_const(FM_I32, 3), k_const(FM_I32, 4)));  /* 81 */
  kb_store(&b, B32, k_i(4), k_bin(KB_SHR, k_const(FM_I32, -8), k_const(FM_I32, 1))); /* -4 */
  void **p = alloc_bufs(fn, 1);
  char err[256];
  CHECK(run(fn, 1, p, err) == 0);
  CHECK(((int8_t *)p[0])[0] == -56);
  CHECK(((int32_t *)p[1])[0] == -3 && ((int32_t *)p[1])[1] == -1 && ((int32_t *)p[1])[2] == -2);
  CHECK(((int32_t *)p[1])[3] == 81 && ((int32_t *)p[1])[4] == -4);
  float *pf = p[2];
  CHECK(pf[0] == 1 && pf[1] == 2 && pf[2] == 0.75f && pf[3] == 16777216.0f && pf[4] == -1);
  CHECK(((uint8_t *)p[3])[0] == 254);
  CHECK(((uint8_t *)p[4])[0] == 1 && ((uint8_t *)p[4])[1] == 1);
  CHECK(((uint16_t *)p[5])[0] == 0x3555); /* 1/3 in binary16 */
  CHECK(((double *)p[6])[0] == sqrt(2.0));
  free_bufs(fn, p);
  to_print(fn, 1);

  /* data-driven zoo for the printer comparison: many ops on loaded values */
  fn = kb_begin(&b, g, NULL, "zoo");
  B8 = kb_tensor(&b, i8), B32 = kb_tensor(&b, i32), BF = kb_tensor(&b, f), BU = kb_tensor(&b, u8);
  BB = kb_tensor(&b, bo), BH = kb_tensor(&b, h), BD = kb_tensor(&b, d);
  Tensor *o = mk("o", FM_F32, 2, 8, 16);
  KBuf *BO = kb_tensor(&b, o);
  static const float tbl[4] = {0.5f, -1.25f, 3.0e-7f, 1e30f};
  KBuf *T = kb_const(&b, "tbl.w", FM_F32, 4, tbl);
  KVar *i = kb_for(&b, "i", k_i(0), k_i(8), KL_VECTOR);
  KExpr *x = k_load(BF, k_var(i)), *a8 = k_load(B8, k_var(i)), *a32 = k_load(B32, k_var(i));
  KExpr *au = k_load(BU, k_var(i)), *ah = k_load(BH, k_var(i)), *ad = k_load(BD, k_var(i));
  KExpr *outs[16] = {
    k_un(KU_TANH, x), k_un(KU_ERF, x), k_un(KU_SQRT, k_un(KU_ABS, x)), k_un(KU_FLOOR, k_mul(x, k_f32(3))),
    k_cast(FM_F32, k_mul(a8, k_const(FM_I8, 3))), k_cast(FM_F32, k_bin(KB_SHL, a32, k_const(FM_I32, 2))),
    k_cast(FM_F32, k_sub(au, k_const(FM_U8, 200))), k_add(ah, k_const(FM_F16, 0.001)),
    k_cast(FM_F32, k_un(KU_EXP, ad)), k_select(k_load(BB, k_var(i)), x, k_un(KU_NEG, x)),
    k_cast(FM_F32, k_cast(FM_I32, k_mul(x, k_f32(1000)))), k_min(x, k_load(T, k_mod(k_var(i), k_i(4)))),
    k_cast(FM_F32, k_bin(KB_BITXOR, a32, k_mod(a32, k_const(FM_I32, 7)))),
    k_cast(FM_F32, k_and(k_lt(x, k_f32(0.5)), k_bin(KB_NE, a8, k_const(FM_I8, 0)))),
    k_bin(KB_MOD, x, k_f32(0.75)), k_cast(FM_F32, k_bin(KB_MAX, a32, k_un(KU_NEG, a32)))};
  for (int q = 0; q < 16; q++) kb_store(&b, BO, k_add(k_mul(k_var(i), k_i(16)), k_i(q)), outs[q]);
  kb_end(&b);
  p = alloc_bufs(fn, 1);
  CHECK(run(fn, 1, p, err) == 0);
  float *po = p[7];
  pf = p[2];
  int bad = 0;
  for (int k = 0; k < 8; k++) bad += po[k * 16 + 0] != tanhf(pf[k]) || po[k * 16 + 11] != fminf(pf[k], tbl[k % 4]);
  CHECK(bad == 0);
  free_bufs(fn, p);
  to_print(fn, 1);
}

/* Stores of every flavour, for the printer comparison: accumulations into float,
   float16 and int8 buffers, min/max accumulations, an if on a float, nested
   parallel loops (the inner one prints serial). */
static void test_stores(void) {
  Tensor *f = mk("f", FM_F32, 2, 16, 64), *h = mk("h", FM_F16, 1, 64, 0), *i8 = mk("q", FM_I8, 1, 64, 0);
  Tensor *mx = mk("mx", FM_F32, 1, 64, 0);
  KB b;
  KFn *fn = kb_begin(&b, g, NULL, "stores");
  KBuf *BF = kb_tensor(&b, f), *BH = kb_tensor(&b, h), *B8 = kb_tensor(&b, i8), *BM = kb_tensor(&b, mx);
  KVar *r = kb_for(&b, "r", k_i(0), k_i(16), KL_PARALLEL);
  KVar *c = kb_for(&b, "c", k_i(0), k_i(64), KL_PARALLEL);
  KExpr *x = k_load(BF, k_add(k_mul(k_var(r), k_i(64)), k_var(c)));
  kb_if(&b, k_bin(KB_EQ, x, k_f32(0.5))); /* an if on a float: zero the halves */
  kb_store(&b, BF, k_add(k_mul(k_var(r), k_i(64)), k_var(c)), k_f32(0));
  kb_end(&b);
  kb_end(&b);
  kb_end(&b);
  KVar *j = kb_for(&b, "j", k_i(0), k_i(64), KL_SERIAL);
  KVar *lo = kb_let(&b, "lo", FM_I8, k_const(FM_I8, 127));
  KVar *hi = kb_let(&b, "hi", FM_F16, k_const(FM_F16, -65504));
  KVar *k = kb_for(&b, "k", k_i(0), k_i(16), KL_SERIAL);
  KExpr *v = k_load(BF, k_add(k_mul(k_var(k), k_i(64)), k_var(j)));
  kb_store_acc(&b, BH, k_var(j), KB_ADD, k_cast(FM_F16, v));
  kb_store_acc(&b, BM, k_var(j), KB_MAX, v);
  kb_acc(&b, lo, KB_MIN, k_cast(FM_I8, k_mul(v, k_f32(50))));
  kb_acc(&b, hi, KB_MAX, k_cast(FM_F16, v));
  kb_store_acc(&b, B8, k_var(j), KB_ADD, k_cast(FM_I8, k_mul(v, k_f32(20))));
  kb_end(&b);
  kb_store_acc(&b, B8, k_var(j), KB_SUB, k_var(lo));
  kb_store_acc(&b, BM, k_var(j), KB_ADD, k_cast(FM_F32, k_var(hi)));
  kb_end(&b);
  void **p = alloc_bufs(fn, 1);
  float *pf = p[0], want[64];
  uint16_t wh[64];
  memcpy(wh, p[1], sizeof wh);
  for (int q = 0; q < 64; q++) want[q] = ((float *)p[3])[q];
  for (int q = 0; q < 64; q++) {
    float m = want[q], hm = -65504;
    for (int kk = 0; kk < 16; kk++) {
      float xv = pf[kk * 64 + q] == 0.5f ? 0 : pf[kk * 64 + q];
      wh[q] = fm_f2h(fm_h2f(wh[q]) + fm_h2f(fm_f2h(xv)));
      m = fmaxf(m, xv), hm = fmaxf(hm, fm_h2f(fm_f2h(xv)));
    }
    want[q] = m + hm;
  }
  char err[256];
  CHECK(run(fn, 1, p, err) == 0);
  CHECK(memcmp(wh, p[1], sizeof wh) == 0);
  int bad = 0;
  for (int q = 0; q < 64; q++) bad += ((float *)p[3])[q] != want[q];
  CHECK(bad == 0);
  free_bufs(fn, p);
  to_print(fn, 1);
}

/* ---- 8. fm_sgemm against a naive triple loop; GFLOP/s (info) ---- */
static void naive(int M, int N, int K, const float *A, int lda, int tA, const float *B, int ldb, int tB,
                  double *C) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0;
      for (int k = 0; k < K; k++)
        s += (double)(tA ? A[k * lda + i] : A[i * lda + k]) * (tB ? B[j * ldb + k] : B[k * ldb + j]);
      C[i * N + j] = s;
    }
}

static void test_sgemm(void) {
  static const int shapes[][3] = {{1, 1, 1}, {3, 17, 5}, {6, 16, 8}, {13, 33, 300}, {100, 70, 513},
                                  {2, 300, 40}, {80, 600, 64}, {257, 129, 31}};
  int bad = 0;
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
    for (int tr = 0; tr < 4; tr++)
      for (int acc = 0; acc < 2; acc++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], tA = tr & 1, tB = tr >> 1;
        int lda = (tA ? M : K) + 3, ldb = (tB ? K : N) + 1, ldc = N + 2;
        float *A = malloc(sizeof(float) * (size_t)(tA ? K : M) * lda);
        float *B = malloc(sizeof(float) * (size_t)(tB ? N : K) * ldb);
        float *C = malloc(sizeof(float) * (size_t)M * ldc);
        double *R = malloc(sizeof(double) * (size_t)M * N);
        for (int q = 0; q < (tA ? K : M) * lda; q++) A[q] = frand();
        for (int q = 0; q < (tB ? N : K) * ldb; q++) B[q] = frand();
        for (int q = 0; q < M * ldc; q++) C[q] = frand();
        naive(M, N, K, A, lda, tA, B, ldb, tB, R);
        float *C0 = malloc(sizeof(float) * (size_t)M * ldc);
        memcpy(C0, C, sizeof(float) * (size_t)M * ldc);
        /* two calls over a split of the rows and the columns, like a parallel caller */
        int mh = M / 2, nh = N / 3;
        fm_sgemm(0, mh, 0, N, K, A, lda, tA, B, ldb, tB, C, ldc, acc);
        fm_sgemm(mh, M, 0, nh, K, A, lda, tA, B, ldb, tB, C, ldc, acc);
        fm_sgemm(mh, M, nh, N, K, A, lda, tA, B, ldb, tB, C, ldc, acc);
        for (int i = 0; i < M; i++) {
          for (int j = 0; j < N; j++) {
            double want = R[i * N + j] + (acc ? C0[i * ldc + j] : 0);
            if (fabs(want - C[i * ldc + j]) > 1e-4 * (K + 1)) bad++;
          }
          if (C[i * ldc + N] != C0[i * ldc + N] || C[i * ldc + N + 1] != C0[i * ldc + N + 1]) bad++; /* padding */
        }
        free(A), free(B), free(C), free(C0), free(R);
      }
  CHECK(bad == 0);

  enum { S = 256 };
  float *A = malloc(sizeof(float) * S * S), *B = malloc(sizeof(float) * S * S), *C = malloc(sizeof(float) * S * S);
  for (int q = 0; q < S * S; q++) A[q] = frand(), B[q] = frand();
  struct timespec t0, t1;
  double best = 1e9;
  for (int rep = 0; rep < 5; rep++) {
    clock_gettime(CLOCK_MONOTONIC, &t0);
    fm_sgemm(0, S, 0, S, S, A, S, 0, B, S, 0, C, S, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (dt < best) best = dt;
  }
  double naive_t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < S; i++)
    for (int j = 0; j < S; j++) {
      float s = 0;
      for (int k = 0; k < S; k++) s += A[i * S + k] * B[k * S + j];
      C[i * S + j] = s;
    }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  naive_t = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  printf("fm_sgemm 256^3: %.1f GFLOP/s single thread (naive loop %.1f GFLOP/s)\n", 2.0 * S * S * S / best / 1e9,
         2.0 * S * S * S / naive_t / 1e9);
  free(A), free(B), free(C);
}

/* ---- 8b. loops from kb_loops (collapsed parallel nest), broadcasting, speed ---- */
static void test_loops(void) {
  Tensor *x = mk("x", FM_F32, 2, -1, 64), *bias = mk("bias", FM_F32, 1, 64, 0), *y = mk("y", FM_F32, 2, -1, 64);
  KB b;
  KFn *fn = kb_begin(&b, g, NULL, "bias_add");
  KBuf *bx = kb_tensor(&b, x), *bb = kb_tensor(&b, bias), *by = kb_tensor(&b, y);
  KVar *v[2];
  kb_loops(&b, y, v);
  KExpr *idx[2] = {k_var(v[0]), k_var(v[1])};
  kb_store(&b, by, kb_index(&b, y, idx),
           k_add(k_load(bx, kb_index(&b, x, idx)), k_load(bb, kb_bcast_index(&b, bias, y, idx))));
  kb_end_loops(&b, y);
  void **p = alloc_bufs(fn, 4);
  char err[256];
  CHECK(run(fn, 4, p, err) == 0);
  int bad = 0;
  for (int n = 0; n < 4; n++)
    for (int c = 0; c < 64; c++)
      bad += ((float *)p[2])[n * 64 + c] != ((float *)p[0])[n * 64 + c] + ((float *)p[1])[c];
  CHECK(bad == 0);
  free_bufs(fn, p);
  to_print(fn, 4);

  /* interpreter speed on a weight-sized constant fold: transpose 512 x 512 */
  Tensor *w = mk("w", FM_F32, 2, 512, 512), *wt = mk("wt", FM_F32, 2, 512, 512);
  KFn *tr = kb_begin(&b, g, NULL, "transpose");
  KBuf *bw = kb_tensor(&b, w), *bt = kb_tensor(&b, wt);
  kb_loops(&b, wt, v);
  KExpr *src[2] = {k_var(v[1]), k_var(v[0])}, *dst[2] = {k_var(v[0]), k_var(v[1])};
  kb_store(&b, bt, kb_index(&b, wt, dst), k_load(bw, kb_index(&b, w, src)));
  kb_end_loops(&b, wt);
  p = alloc_bufs(tr, 1);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  CHECK(run(tr, 1, p, err) == 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  CHECK(((float *)p[1])[3 * 512 + 7] == ((float *)p[0])[7 * 512 + 3]);
  printf("interpreter: transpose 512x512 in %.1f ms\n",
         1e3 * ((double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec)));
  free_bufs(tr, p);
}

/* ---- 9. dump ---- */
static void test_dump(void) {
  char *text;
  size_t len;
  FILE *f = open_memstream(&text, &len);
  fm_kdump(printed[1], f);
  fclose(f);
  CHECK(strstr(text, "kernel matmul") && strstr(text, "for k = 0 .. 9 unroll") && strstr(text, "acc += "));
  free(text);
}

/* ---- 10. printed C == interpreter ---- */
static int sh(const char *cmd) { return system(cmd); }

static void test_printer(void) {
  if (sh("command -v cc >/dev/null 2>&1") != 0) {
    printf("test_kernel: cc not found: skipping the printed-C comparison\n");
    return;
  }
  char dir[] = "/tmp/fm_test_kernel_XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char path[256], cmd[1024];
  snprintf(path, sizeof path, "%s/k.c", dir);
  FILE *f = fopen(path, "w");
  fputs(fm_cpu_text, f);
  for (int k = 0; k < nprinted; k++) {
    KFn *fn = printed[k];
    fm_emit_c_fn(f, fn, 0);
    fprintf(f, "void run_%s(int64_t N, void **p);\nvoid run_%s(int64_t N, void **p) {\n  %s(N", fn->name,
            fn->name, fn->name);
    for (int i = 0; i < fn->nbufs; i++)
      if (fn->bufs[i]->kind != KBUF_CONST) fprintf(f, ", p[%d]", i);
    fputs(");\n}\n", f);
  }
  fclose(f);
#ifdef __AVX2__
  const char *arch = "-march=native"; /* the ISA the compiler (and its prelude copy) was built for */
#else
  const char *arch = "";
#endif
  snprintf(cmd, sizeof cmd,
           "cc -std=c11 -O2 %s -Wall -Wextra -Werror -fopenmp -ffp-contract=off -shared -fPIC -o %s/k.so %s 2>&1",
           arch, dir, path);
  int rc = sh(cmd);
  CHECK(rc == 0);
  if (rc) {
    printf("test_kernel: generated C kept in %s\n", dir);
    return;
  }
  if (sh("command -v clang >/dev/null 2>&1") == 0) {
    snprintf(cmd, sizeof cmd, "clang -std=c11 -O2 -Wall -Wextra -Werror -c -o %s/k.o %s 2>&1", dir, path);
    CHECK(sh(cmd) == 0);
  }
  snprintf(path, sizeof path, "%s/k.so", dir);
  void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE); /* libgomp threads outlive dlclose */
  CHECK(so != NULL);
  if (!so) return;
  for (int k = 0; k < nprinted; k++) {
    KFn *fn = printed[k];
    int64_t N = printed_batch[k];
    char sym[256], err[256];
    snprintf(sym, sizeof sym, "run_%s", fn->name);
    void (*fp)(int64_t, void **);
    *(void **)&fp = dlsym(so, sym);
    CHECK(fp != NULL);
    if (!fp) continue;
    void **p1 = alloc_bufs(fn, N), **p2 = clone_bufs(fn, N, p1);
    CHECK(run(fn, N, p1, err) == 0);
    fp(N, p2);
    int same = 1;
    for (int i = 0; i < fn->nbufs; i++)
      if (p1[i] && memcmp(p1[i], p2[i], (size_t)nelem(fn->bufs[i], N) * fm_dtype_size(fn->bufs[i]->t))) {
        same = 0;
        fprintf(stderr, "kernel %s: buffer %s differs between C and the interpreter\n", fn->name,
                fn->bufs[i]->name);
      }
    CHECK(same);
    free_bufs(fn, p1), free_bufs(fn, p2);
  }
  dlclose(so);
  if (getenv("FM_TEST_KEEP")) { /* FM_TEST_KEEP=1 keeps the generated C for reading */
    printf("test_kernel: generated C in %s/k.c\n", dir);
    return;
  }
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  sh(cmd);
}

int main(void) {
  g = fm_graph_new();
  test_elementwise();
  test_matmul();
  test_reduce();
  test_if();
  test_call();
  test_errors();
  test_semantics();
  test_dump();
  test_loops();
  test_stores();
  test_sgemm();
  test_printer();
  fm_graph_free(g);
  return check_done("test_kernel");
}
