/* strassen.c - rediscovering Strassen: learn ternary W_A, W_B (r x n^2) and W_C
 * (n^2 x r) with vec(C) = W_C[(W_B vec(B)) * (W_A vec(A))] = vec(AB) for all n x n
 * A, B (StrassenNets section 4; method_sp.h has the API).
 *
 * Training, per attempt (seed, seed+1, ...), following the seed notebook's recipe
 * (full precision, then ternary with straight-through gradients):
 *   1. full precision: Adam on the mean squared error of C over random pairs A, B with
 *      N(0,1) entries, taken in expectation: for such pairs E|C_hat - C|^2 equals
 *      |T_hat - T|^2, T the n^2 x n^2 x n^2 matmul tensor and T_hat[i][j][k] =
 *      sum_t W_A[t][i] W_B[t][j] W_C[k][t], so the exact loss replaces sampling noise;
 *   2. an L1 push towards {-1, 0, 1} (lambda * |w - nearest|, lambda ramped up), which
 *      uses the rescaling freedom of each product (a u, b v, w / ab) to land on integers;
 *   3. ternary with straight-through gradients: forward with round(clamp(w, -1, 1)),
 *      the gradient applied to the latent w.
 * The attempt succeeds when the rounded matrices reproduce T exactly; the result is then
 * checked on random pairs (max |C - AB| < 1e-4). */
#include "method_sp.h"
#include "ir/ir.h"
#include "onnx/onnx.h"
#include "ops.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  int n, m, r;          // m = n*n
  double *T;            // m^3: T[(i*m + j)*m + k]
  double *w;            // U (r*m) | V (r*m) | W (m*r): all parameters
  double *g, *mo, *ve;  // gradient, Adam moments
  double *E;            // residual m^3
  double *q;            // ternary copy (STE forward)
} Mm;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static size_t nparam(const Mm *M) { return 3 * (size_t)M->r * M->m; }

static int mm_init(Mm *M, int n, int r) {
  memset(M, 0, sizeof *M);
  M->n = n, M->m = n * n, M->r = r;
  size_t m3 = (size_t)M->m * M->m * M->m, np = nparam(M);
  M->T = calloc(m3, sizeof(double));
  M->E = calloc(m3, sizeof(double));
  M->w = calloc(np, sizeof(double)), M->g = calloc(np, sizeof(double));
  M->mo = calloc(np, sizeof(double)), M->ve = calloc(np, sizeof(double));
  M->q = calloc(np, sizeof(double));
  if (!M->T || !M->E || !M->w || !M->g || !M->mo || !M->ve || !M->q) return -1;
  // C[p][q] = sum_s A[p][s] B[s][q]; vec row-major
  for (int p = 0; p < n; p++)
    for (int s = 0; s < n; s++)
      for (int qq = 0; qq < n; qq++) M->T[((size_t)(p * n + s) * M->m + (s * n + qq)) * M->m + p * n + qq] = 1;
  return 0;
}

static void mm_free(Mm *M) {
  free(M->T), free(M->E), free(M->w), free(M->g), free(M->mo), free(M->ve), free(M->q);
}

// loss |T_hat(w) - T|^2 and its gradient (into g) at parameters w
static double loss_grad(Mm *M, const double *w, double *g) {
  int m = M->m, r = M->r;
  const double *U = w, *V = w + (size_t)r * m, *W = w + 2 * (size_t)r * m;
  double loss = 0;
  for (int i = 0; i < m; i++)
    for (int j = 0; j < m; j++)
      for (int k = 0; k < m; k++) {
        double s = 0;
        for (int t = 0; t < r; t++) s += U[t * m + i] * V[t * m + j] * W[k * r + t];
        double e = s - M->T[((size_t)i * m + j) * m + k];
        M->E[((size_t)i * m + j) * m + k] = e;
        loss += e * e;
      }
  if (!g) return loss;
  double *gU = g, *gV = g + (size_t)r * m, *gW = g + 2 * (size_t)r * m;
  memset(g, 0, sizeof(double) * nparam(M));
  for (int i = 0; i < m; i++)
    for (int j = 0; j < m; j++)
      for (int k = 0; k < m; k++) {
        double e = 2 * M->E[((size_t)i * m + j) * m + k];
        if (e == 0) continue;
        for (int t = 0; t < r; t++) {
          double u = U[t * m + i], v = V[t * m + j], c = W[k * r + t];
          gU[t * m + i] += e * v * c;
          gV[t * m + j] += e * u * c;
          gW[k * r + t] += e * u * v;
        }
      }
  return loss;
}

static double nearest_ternary(double x) { return x > 0.5 ? 1 : x < -0.5 ? -1 : 0; }

static void adam(Mm *M, double lr, long step) {
  const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  double c1 = 1 - pow(b1, (double)step), c2 = 1 - pow(b2, (double)step);
  for (size_t i = 0; i < nparam(M); i++) {
    M->mo[i] = b1 * M->mo[i] + (1 - b1) * M->g[i];
    M->ve[i] = b2 * M->ve[i] + (1 - b2) * M->g[i] * M->g[i];
    M->w[i] -= lr * (M->mo[i] / c1) / (sqrt(M->ve[i] / c2) + eps);
  }
}

// one attempt from seed; 1 when the ternary matrices are exact
static int attempt(Mm *M, uint64_t seed) {
  FmRng rng;
  fm_rng_seed(&rng, seed);
  size_t np = nparam(M);
  for (size_t i = 0; i < np; i++) M->w[i] = 0.5 * fm_rng_normal(&rng);
  memset(M->mo, 0, sizeof(double) * np), memset(M->ve, 0, sizeof(double) * np);
  int big = M->n > 2;
  long s1 = big ? 6000 : 2000, s2 = big ? 6000 : 3000, s3 = big ? 2000 : 1000, step = 0;
  // 1. full precision
  for (long s = 0; s < s1; s++) {
    loss_grad(M, M->w, M->g);
    adam(M, 0.02, ++step);
  }
  // 2. L1 push towards {-1, 0, 1}, lambda ramped up
  for (long s = 0; s < s2; s++) {
    loss_grad(M, M->w, M->g);
    double lam = 0.05 * (double)(s + 1) / (double)s2;
    for (size_t i = 0; i < np; i++) {
      double d = M->w[i] - nearest_ternary(M->w[i]);
      M->g[i] += lam * (d > 0 ? 1 : d < 0 ? -1 : 0);
    }
    adam(M, 0.01, ++step);
  }
  // 3. ternary forward, straight-through gradient
  for (long s = 0; s < s3; s++) {
    for (size_t i = 0; i < np; i++) M->q[i] = nearest_ternary(M->w[i]);
    if (loss_grad(M, M->q, M->g) == 0) break;
    adam(M, 0.005, ++step);
    for (size_t i = 0; i < np; i++) M->w[i] = fmax(-1.5, fmin(1.5, M->w[i]));
  }
  for (size_t i = 0; i < np; i++) M->q[i] = nearest_ternary(M->w[i]);
  return loss_grad(M, M->q, NULL) == 0;
}

int fm_matmul_learn(int n, int r, uint64_t seed, int max_attempts, double time_limit, int verbose,
                    FmMatmulResult *res) {
  memset(res, 0, sizeof *res);
  res->n = n, res->r = r;
  if (n < 1 || n > 4 || r < 1 || r > 128) return -1;
  Mm M;
  if (mm_init(&M, n, r)) { mm_free(&M); return -1; }
  double t0 = now_s();
  int ok = 0, k = 0;
  for (; k < max_attempts && !ok; k++) {
    ok = attempt(&M, seed + (uint64_t)k);
    if (verbose) {
      double l = loss_grad(&M, M.q, NULL);
      printf("attempt %d (seed %llu): %s, ternary squared error %g, %.1fs\n", k + 1,
             (unsigned long long)(seed + (uint64_t)k), ok ? "exact" : "not exact", l, now_s() - t0);
      fflush(stdout);
    }
    if (time_limit > 0 && now_s() - t0 > time_limit) { k++; break; }
  }
  res->attempts = k;
  size_t rm = (size_t)r * M.m;
  res->wa = malloc(rm), res->wb = malloc(rm), res->wc = malloc(rm);
  if (!res->wa || !res->wb || !res->wc) { mm_free(&M); fm_matmul_free(res); return -1; }
  for (size_t i = 0; i < rm; i++) {
    res->wa[i] = (int8_t)M.q[i];
    res->wb[i] = (int8_t)M.q[rm + i];
    res->wc[i] = (int8_t)M.q[2 * rm + i];
  }
  mm_free(&M);
  res->max_err = fm_matmul_check(res, 10000, seed ^ 0x5eed);
  res->ok = ok && res->max_err < 1e-4;
  return 0;
}

void fm_matmul_free(FmMatmulResult *res) {
  free(res->wa), free(res->wb), free(res->wc);
  res->wa = res->wb = res->wc = NULL;
}

double fm_matmul_check(const FmMatmulResult *res, int count, uint64_t seed) {
  int n = res->n, m = n * n, r = res->r;
  FmRng rng;
  fm_rng_seed(&rng, seed);
  float A[16], B[16], ha[128];
  double worst = 0;
  for (int c = 0; c < count; c++) {
    for (int i = 0; i < m; i++) A[i] = fm_rng_normal(&rng), B[i] = fm_rng_normal(&rng);
    for (int t = 0; t < r; t++) {
      float sa = 0, sb = 0;
      for (int i = 0; i < m; i++) sa += res->wa[t * m + i] * A[i], sb += res->wb[t * m + i] * B[i];
      ha[t] = sa * sb;   // the r multiplications
    }
    for (int p = 0; p < n; p++)
      for (int q = 0; q < n; q++) {
        float got = 0;
        double want = 0;
        for (int t = 0; t < r; t++) got += res->wc[(p * n + q) * r + t] * ha[t];
        for (int s = 0; s < n; s++) want += (double)A[p * n + s] * B[s * n + q];
        worst = fmax(worst, fabs(got - want));
      }
  }
  return worst;
}

// --- export: C = Reshape(MatMul(MatMul(A2, W_A^T) * MatMul(B2, W_B^T), W_C^T)) ----------

static Tensor *vt(Graph *g, const char *name, int rank, const int64_t *dims) {
  Tensor *t = fm_tensor_new(g, name);
  t->dtype = FM_F32, t->rank = rank;
  memcpy(t->dims, dims, sizeof(int64_t) * (size_t)rank);
  return t;
}

static Tensor *op2(Graph *g, OpKind op, const char *name, Tensor *a, Tensor *b, int rank, const int64_t *dims) {
  Tensor *t = vt(g, name, rank, dims);
  Node *n = fm_node_new(g, op, name, 2, 1);
  n->in[0] = a, n->in[1] = b, n->out[0] = t;
  t->producer = n;
  return t;
}

// rows x cols float constant from an int8 matrix, transposed when tr (src is cols x rows)
static Tensor *tconst(Graph *g, const char *name, const int8_t *src, int rows, int cols) {
  float *d = fm_alloc(&g->arena, sizeof(float) * (size_t)rows * cols);
  for (int i = 0; i < rows; i++)
    for (int j = 0; j < cols; j++) d[i * cols + j] = src[j * rows + i];
  return fm_tensor_const(g, name, FM_F32, 2, (int64_t[]){rows, cols}, d);
}

int fm_matmul_export(const FmMatmulResult *res, const char *path, char *err, size_t errlen) {
  Graph *volatile g = NULL;
  volatile int rc = 0;
  FmTry t;
  FM_TRY(&t) {
    g = fm_graph_new();
    int n = res->n, m = n * n, r = res->r;
    g->name = fm_sprintf(&g->arena, "matmul%dx%d_r%d", n, n, r);
    g->producer = "fewmul";
    g->opset = 13;
    g->batch_name = "N";
    int64_t in_d[3] = {-1, n, n}, m2[2] = {-1, m}, r2[2] = {-1, r}, flat[2] = {-1, m}, back[3] = {-1, n, n};
    Tensor *A = vt(g, "A", 3, in_d), *B = vt(g, "B", 3, in_d);
    A->is_input = B->is_input = 1;
    g->inputs = fm_alloc(&g->arena, sizeof(Tensor *) * 2);
    g->inputs[0] = A, g->inputs[1] = B, g->ninputs = 2;
    Tensor *fs = fm_tensor_const(g, "flat_shape", FM_I64, 1, (int64_t[]){2}, flat);
    Tensor *os = fm_tensor_const(g, "out_shape", FM_I64, 1, (int64_t[]){3}, back);
    Tensor *a2 = op2(g, OP_Reshape, "a_vec", A, fs, 2, m2), *b2 = op2(g, OP_Reshape, "b_vec", B, fs, 2, m2);
    // W_A is (r, m): MatMul takes W_A^T (m, r); W_C (m, r): MatMul takes W_C^T (r, m)
    Tensor *ha = op2(g, OP_MatMul, "wa_a", a2, tconst(g, "W_A_T", res->wa, m, r), 2, r2);
    Tensor *hb = op2(g, OP_MatMul, "wb_b", b2, tconst(g, "W_B_T", res->wb, m, r), 2, r2);
    Tensor *h = op2(g, OP_Mul, "products", ha, hb, 2, r2);
    Tensor *c2 = op2(g, OP_MatMul, "wc_h", h, tconst(g, "W_C_T", res->wc, r, m), 2, m2);
    Tensor *C = op2(g, OP_Reshape, "C", c2, os, 3, in_d);
    C->is_output = 1;
    g->outputs = fm_alloc(&g->arena, sizeof(Tensor *));
    g->outputs[0] = C, g->noutputs = 1;
    FmWriteOpts wo = {0};
    fm_onnx_write(g, path, &wo);
    fm_try_pop(&t);
  } else {
    snprintf(err, errlen, "%s", fm_errmsg());
    rc = -1;
  }
  fm_graph_free(g);
  return rc;
}

// --- CLI --------------------------------------------------------------------------------

static void print_matrix(const char *name, const int8_t *w, int rows, int cols) {
  printf("%s (%dx%d):\n", name, rows, cols);
  for (int i = 0; i < rows; i++) {
    printf("  ");
    for (int j = 0; j < cols; j++) printf("%3d", w[i * cols + j]);
    printf("\n");
  }
}

static const char matmul_help[] =
  "usage: fewmul train --task matmul2x2 --r R [options] [-o model.onnx]\n"
  "\n"
  "Learns ternary W_A, W_B (R x n^2) and W_C (n^2 x R) with\n"
  "vec(C) = W_C[(W_B vec(B)) * (W_A vec(A))] = vec(AB) for every n x n A, B: R\n"
  "multiplications per product (Strassen: 7 for 2x2; naive: 8; Laderman: 23 for 3x3).\n"
  "Seeded restarts until the rounded matrices are exact.\n"
  "\n"
  "  --r R            multiplications (default 7)\n"
  "  --n N            matrix size (default 2; --task matmul3x3 also sets 3)\n"
  "  --seed S         first seed (default 1); attempt k uses S + k - 1\n"
  "  --attempts K     at most K restarts (default 1000)\n"
  "  --time-limit S   stop after S seconds (default 600)\n"
  "  -o PATH          ONNX model: inputs A, B (N x n x n), output C; the ternary matrices\n"
  "                   are constants of MatMul nodes, the R products one Mul\n"
  "  --quiet          no line per attempt\n";

int fm_cmd_train_matmul(int argc, char **argv) {
  int n = 2, r = 7, attempts = 1000, quiet = 0;
  double limit = 600;
  uint64_t seed = 1;
  const char *out = NULL, *task = NULL;
  for (int i = 0; i < argc; i++) {
    const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(k, "--help") || !strcmp(k, "-h")) { fputs(matmul_help, stdout); return 0; }
    if (!strcmp(k, "--quiet")) { quiet = 1; continue; }
    if (!v) { fprintf(stderr, "fewmul: error: train --task: option '%s' needs a value or is unknown\n", k); return 1; }
    char *e = NULL;
    long x = strtol(v, &e, 10);
    int num_ok = *v && !*e;
    if (!strcmp(k, "--task")) task = v;
    else if (!strcmp(k, "-o")) out = v;
    else if (!strcmp(k, "--n") && num_ok && x >= 2 && x <= 4) n = (int)x;
    else if (!strcmp(k, "--r") && num_ok && x >= 1 && x <= 128) r = (int)x;
    else if (!strcmp(k, "--seed") && num_ok && x >= 0) seed = (uint64_t)x;
    else if (!strcmp(k, "--attempts") && num_ok && x >= 1) attempts = (int)x;
    else if (!strcmp(k, "--time-limit") && num_ok && x >= 1) limit = (double)x;
    else if (!strcmp(k, "--threads")) { /* single-threaded; accepted for symmetry */ }
    else {
      fprintf(stderr, "fewmul: error: train --task: bad option '%s %s' (fewmul train --task matmul2x2 --help)\n", k, v);
      return 1;
    }
    i++;
  }
  if (!task || strncmp(task, "matmul", 6)) {
    fprintf(stderr, "fewmul: error: --task: unknown task '%s' (matmul2x2, matmul3x3)\n", task ? task : "");
    return 1;
  }
  if (!strcmp(task, "matmul3x3")) n = n == 2 ? 3 : n;
  else if (strcmp(task, "matmul2x2") && strcmp(task, "matmul")) {
    fprintf(stderr, "fewmul: error: --task: unknown task '%s' (matmul2x2, matmul3x3)\n", task);
    return 1;
  }
  if (!quiet) printf("learning %dx%d matrix products with r = %d multiplications (naive: %d)\n", n, n, r, n * n * n);
  FmMatmulResult res;
  double t0 = now_s();
  if (fm_matmul_learn(n, r, seed, attempts, limit, !quiet, &res)) {
    fprintf(stderr, "fewmul: error: out of memory\n");
    return 1;
  }
  printf("attempts: %d, %.1fs; max |C - AB| over 10000 random pairs: %.3g -> %s\n", res.attempts, now_s() - t0,
         res.max_err, res.ok ? "exact" : "NOT exact");
  int rc = res.ok ? 0 : 1;
  if (res.ok) {
    int m = n * n;
    print_matrix("W_A", res.wa, r, m);
    print_matrix("W_B", res.wb, r, m);
    print_matrix("W_C", res.wc, m, r);
    if (out) {
      char err[512];
      if (fm_matmul_export(&res, out, err, sizeof err)) {
        fprintf(stderr, "fewmul: error: %s\n", err);
        rc = 1;
      } else {
        printf("wrote %s\n", out);
      }
    }
  } else {
    fprintf(stderr, "fewmul: error: no exact %dx%d product with r = %d found in %d attempts\n", n, n, r, res.attempts);
  }
  fm_matmul_free(&res);
  return rc;
}
