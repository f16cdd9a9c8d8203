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
 * checked on random pairs (max |C - AB| < 1e-4).
 *
 * The ALS solver (default for n >= 3; Smirnov 2013, Tichavsky et al.), per attempt:
 *   1. an exact real decomposition T = sum_t u_t (x) v_t (x) w_t by alternating regularised
 *      least squares (lambda |x - x_old|^2 decreasing, a small pull towards zero, terms
 *      rebalanced), polished by Levenberg-Marquardt;
 *   2. discretisation: fix the free entry closest to {-1, 0, 1} (zeros first), re-solve the
 *      free ones by Levenberg-Marquardt, undo (and refuse that value) when the residual
 *      does not return to ~0; an attempt ends after too many undone fixes.
 * Same exact check and random-pairs check. */
// The searches are deterministic per seed; no fused multiply-adds (-march=native would
// contract a * b + c where the CPU has FMA), so a seed finds the same scheme on any x86-64.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
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


// ALS tuning (n = 3, r = 23; docs/METHODS.md)
#define ALS_P1_IT 6000        // phase-1 sweeps at most
#define ALS_P1_CHECK 3000     // after this many: the pull towards zero stops, and a residual
                              // above 1e-2 restarts (a swamp or a wrong basin)
#define ALS_LAM0 0.1          // proximal weight (towards the current values), decreasing
#define ALS_LAM_DECAY 0.999
#define ALS_LAM_MIN 1e-9
#define ALS_NU 0.001          // weight towards zero (sparser real solutions)
#define ALS_REAL_TOL 1e-12    // phase 1 succeeds below this squared residual
#define ALS_ZERO_PREF 0.5     // distances to 0 count this much (zeros are fixed first)
#define ALS_LM_IT 30          // Levenberg-Marquardt steps after each fixed entry at most
#define ALS_LM_GIVEUP 10      // ... and after this many, a residual above 1e-3 gives up
#define ALS_FIX_TOL 1e-12     // a fixed entry is kept when the residual returns below this
#define ALS_MAX_FAILS 200     // undone fixes per attempt before a restart

// --- ALS solver: alternating regularised least squares on the exact tensor equations,
// then discretisation by fixing entries one at a time (Smirnov 2013) -------------------

typedef struct {
  int n, m, r, nnz;
  int (*nz)[3];          // the nonzeros (i, j, k) of T (all 1)
  double *F[3];          // U, V and W^T: r x m each, F[f][t*m + x]
  unsigned char *fx[3];  // 1: entry fixed (to its current value)
  double *S[3];          // snapshot of F
  unsigned char *Sx[3];
  double *G, *rhs, *L, *b;    // ALS work arrays
  int *idx;
} Als;

static void als_free(Als *A) {
  free(A->nz);
  for (int f = 0; f < 3; f++) free(A->F[f]), free(A->fx[f]), free(A->S[f]), free(A->Sx[f]);
  free(A->G), free(A->rhs), free(A->L), free(A->b), free(A->idx);
}

static int als_init(Als *A, int n, int r) {
  memset(A, 0, sizeof *A);
  int m = n * n;
  A->n = n, A->m = m, A->r = r, A->nnz = n * n * n;
  A->nz = malloc(sizeof *A->nz * (size_t)A->nnz);
  size_t rm = (size_t)r * m, rr = (size_t)r * r;
  for (int f = 0; f < 3; f++) {
    A->F[f] = calloc(rm, sizeof(double)), A->S[f] = calloc(rm, sizeof(double));
    A->fx[f] = calloc(rm, 1), A->Sx[f] = calloc(rm, 1);
    if (!A->F[f] || !A->S[f] || !A->fx[f] || !A->Sx[f]) return -1;
  }
  A->G = malloc(sizeof(double) * rr), A->L = malloc(sizeof(double) * rr), A->rhs = malloc(sizeof(double) * rm);
  A->b = malloc(sizeof(double) * (size_t)r), A->idx = malloc(sizeof(int) * (size_t)r);
  if (!A->nz || !A->G || !A->L || !A->rhs || !A->b || !A->idx) return -1;
  int e = 0;
  for (int p = 0; p < n; p++)
    for (int s = 0; s < n; s++)
      for (int q = 0; q < n; q++) A->nz[e][0] = p * n + s, A->nz[e][1] = s * n + q, A->nz[e][2] = p * n + q, e++;
  return 0;
}

// |T_hat - T|^2, computed entry by entry
static double als_resid(const Als *A) {
  int m = A->m, r = A->r;
  const double *U = A->F[0], *V = A->F[1], *W = A->F[2];
  double loss = 0, tmp[128];
  for (int i = 0; i < m; i++)
    for (int j = 0; j < m; j++) {
      for (int t = 0; t < r; t++) tmp[t] = U[t * m + i] * V[t * m + j];
      for (int k = 0; k < m; k++) {
        double s = 0;
        for (int t = 0; t < r; t++) s += tmp[t] * W[t * m + k];
        if (i % A->n == j / A->n && i / A->n == k / A->n && j % A->n == k % A->n) s -= 1;
        loss += s * s;
      }
    }
  return loss;
}

// Cholesky solve of the k x k system L x = b in place (L overwritten); -1 if not SPD
static int chol_solve(double *L, double *b, int k) {
  for (int j = 0; j < k; j++) {
    double d = L[j * k + j];
    for (int p = 0; p < j; p++) d -= L[j * k + p] * L[j * k + p];
    if (!(d > 1e-300)) return -1;
    d = sqrt(d);
    L[j * k + j] = d;
    for (int i = j + 1; i < k; i++) {
      double s = L[i * k + j];
      for (int p = 0; p < j; p++) s -= L[i * k + p] * L[j * k + p];
      L[i * k + j] = s / d;
    }
  }
  for (int i = 0; i < k; i++) {
    double s = b[i];
    for (int p = 0; p < i; p++) s -= L[i * k + p] * b[p];
    b[i] = s / L[i * k + i];
  }
  for (int i = k - 1; i >= 0; i--) {
    double s = b[i];
    for (int p = i + 1; p < k; p++) s -= L[p * k + i] * b[p];
    b[i] = s / L[i * k + i];
  }
  return 0;
}

// One regularised least-squares update of factor f (its free entries), the other two fixed:
// min |T - T_hat|^2 + lam |x - x_old|^2 + nu |x|^2, column by column (the equations of
// column x of factor f involve only that column; their normal matrix is the Hadamard
// product of the other two factors' Gram matrices).
static void als_update(Als *A, int f, double lam, double nu) {
  int m = A->m, r = A->r, g = (f + 1) % 3, h = (f + 2) % 3;
  const double *Fg = A->F[g], *Fh = A->F[h];
  double *X = A->F[f];
  for (int s = 0; s < r; s++)
    for (int t = 0; t <= s; t++) {
      double a = 0, c = 0;
      for (int x = 0; x < m; x++) a += Fg[s * m + x] * Fg[t * m + x], c += Fh[s * m + x] * Fh[t * m + x];
      A->G[s * r + t] = A->G[t * r + s] = a * c;
    }
  memset(A->rhs, 0, sizeof(double) * (size_t)r * m);
  for (int e = 0; e < A->nnz; e++) {
    int x = A->nz[e][f], jg = A->nz[e][g], jh = A->nz[e][h];
    for (int t = 0; t < r; t++) A->rhs[t * m + x] += Fg[t * m + jg] * Fh[t * m + jh];
  }
  for (int x = 0; x < m; x++) {
    int k = 0;
    for (int t = 0; t < r; t++)
      if (!A->fx[f][t * m + x]) A->idx[k++] = t;
    if (!k) continue;
    for (int a = 0; a < k; a++) {
      int s = A->idx[a];
      double bb = A->rhs[s * m + x] + lam * X[s * m + x];
      for (int t = 0; t < r; t++)
        if (A->fx[f][t * m + x]) bb -= A->G[s * r + t] * X[t * m + x];
      A->b[a] = bb;
      for (int c = 0; c < k; c++) A->L[a * k + c] = A->G[s * r + A->idx[c]];
      A->L[a * k + a] += lam + nu;
    }
    if (chol_solve(A->L, A->b, k)) continue;
    for (int a = 0; a < k; a++) X[A->idx[a] * m + x] = A->b[a];
  }
}

// per-term rescaling u a, v b, w / ab to equal norms (terms without fixed entries only)
static void als_balance(Als *A) {
  int m = A->m;
  for (int t = 0; t < A->r; t++) {
    double nr[3];
    int fixed = 0;
    for (int f = 0; f < 3; f++) {
      nr[f] = 0;
      for (int x = 0; x < m; x++) nr[f] += A->F[f][t * m + x] * A->F[f][t * m + x], fixed |= A->fx[f][t * m + x];
      nr[f] = sqrt(nr[f]);
    }
    if (fixed || nr[0] < 1e-12 || nr[1] < 1e-12 || nr[2] < 1e-12) continue;
    double gm = cbrt(nr[0] * nr[1] * nr[2]);
    for (int f = 0; f < 3; f++)
      for (int x = 0; x < m; x++) A->F[f][t * m + x] *= gm / nr[f];
  }
}

static void als_save(Als *A) {
  size_t rm = (size_t)A->r * A->m;
  for (int f = 0; f < 3; f++) memcpy(A->S[f], A->F[f], sizeof(double) * rm), memcpy(A->Sx[f], A->fx[f], rm);
}
static void als_restore(Als *A) {
  size_t rm = (size_t)A->r * A->m;
  for (int f = 0; f < 3; f++) memcpy(A->F[f], A->S[f], sizeof(double) * rm), memcpy(A->fx[f], A->Sx[f], rm);
}

// Levenberg-Marquardt on the free entries (Tichavsky et al.): J has 3r nonzeros per
// tensor entry, so J^T J costs m^3 (3r)^2; the step solves (J^T J + mu I) d = -J^T e.
static double als_lm(Als *A, int maxit, double tol) {
  int m = A->m, r = A->r, rm = r * m, N = 0;
  int *id = malloc(sizeof(int) * 3 * (size_t)rm);
  if (!id) return 1e300;
  for (int f = 0; f < 3; f++)
    for (int i = 0; i < rm; i++) id[f * rm + i] = A->fx[f][i] ? -1 : N++;
  double *H = malloc(sizeof(double) * (size_t)N * N), *L = malloc(sizeof(double) * (size_t)N * N);
  double *gr = malloc(sizeof(double) * (size_t)N), *d = malloc(sizeof(double) * (size_t)N);
  double *keep = malloc(sizeof(double) * 3 * (size_t)rm);
  double res = als_resid(A), mu = 1e-3;
  if (!H || !L || !gr || !d || !keep || !N) goto out;
  for (int it = 0; it < maxit && res > tol; it++) {
    if (it >= ALS_LM_GIVEUP && res > 1e-3) break;   // not going to 0
    memset(H, 0, sizeof(double) * (size_t)N * N), memset(gr, 0, sizeof(double) * (size_t)N);
    int ix[3 * 128];
    double jv[3 * 128];
    for (int i = 0; i < m; i++)
      for (int j = 0; j < m; j++)
        for (int k = 0; k < m; k++) {
          double e = 0;
          int c = 0;
          for (int t = 0; t < r; t++) {
            double u = A->F[0][t * m + i], v = A->F[1][t * m + j], w = A->F[2][t * m + k];
            e += u * v * w;
            int a = id[t * m + i], b = id[rm + t * m + j], g = id[2 * rm + t * m + k];
            if (a >= 0) ix[c] = a, jv[c++] = v * w;
            if (b >= 0) ix[c] = b, jv[c++] = u * w;
            if (g >= 0) ix[c] = g, jv[c++] = u * v;
          }
          if (i % A->n == j / A->n && i / A->n == k / A->n && j % A->n == k % A->n) e -= 1;
          for (int p = 0; p < c; p++) {
            gr[ix[p]] += jv[p] * e;
            double *hp = H + (size_t)ix[p] * N;
            for (int q = 0; q < c; q++) hp[ix[q]] += jv[p] * jv[q];
          }
        }
    for (int f = 0; f < 3; f++) memcpy(keep + f * rm, A->F[f], sizeof(double) * (size_t)rm);
    for (int tries = 0; tries < 8; tries++) {
      memcpy(L, H, sizeof(double) * (size_t)N * N);
      for (int p = 0; p < N; p++) L[(size_t)p * N + p] += mu, d[p] = -gr[p];
      if (chol_solve(L, d, N)) { mu *= 10; continue; }
      for (int f = 0; f < 3; f++)
        for (int i = 0; i < rm; i++)
          if (id[f * rm + i] >= 0) A->F[f][i] = keep[f * rm + i] + d[id[f * rm + i]];
      double nr = als_resid(A);
      if (nr < res) { res = nr, mu = fmax(mu / 5, 1e-12); break; }
      for (int f = 0; f < 3; f++) memcpy(A->F[f], keep + f * rm, sizeof(double) * (size_t)rm);
      mu *= 8;
    }
  }
out:
  free(id), free(H), free(L), free(gr), free(d), free(keep);
  return res;
}

// One ALS attempt from seed; 1 when the discretised matrices are exact. *real: the
// residual of the real solution (phase 1), *fixed: entries fixed before a failure.
static int als_attempt(Als *A, uint64_t seed, double deadline, double *real, int *fixed) {
  FmRng rng;
  fm_rng_seed(&rng, seed);
  int m = A->m, r = A->r, total = 3 * r * m;
  for (int f = 0; f < 3; f++) {
    for (int i = 0; i < r * m; i++) A->F[f][i] = 0.5 * fm_rng_normal(&rng);
    memset(A->fx[f], 0, (size_t)r * m);
  }
  // 1. an exact real decomposition: regularised ALS, lambda decreasing, balanced terms
  double res = als_resid(A);
  for (int it = 0; it < ALS_P1_IT && res > 1e-20; it++) {
    double lam = fmax(ALS_LAM_MIN, ALS_LAM0 * pow(ALS_LAM_DECAY, it));
    for (int f = 0; f < 3; f++) als_update(A, f, lam, it < ALS_P1_CHECK ? ALS_NU : 0);
    als_balance(A);
    if ((it & 15) == 15) {
      res = als_resid(A);
      if (!(res == res)) break;
      if (it > ALS_P1_CHECK && res > 1e-2) break;   // a swamp or a wrong basin: restart
    }
  }
  res = als_resid(A);
  if (res < 1e-3) res = als_lm(A, 50, 1e-26);
  *real = res, *fixed = 0;
  if (!(res < ALS_REAL_TOL)) goto round;
  // 2. discretise: fix the free entry nearest to {-1, 0, 1} (zeros first), re-solve the
  // free ones by Levenberg-Marquardt; undo and refuse that (entry, value) when the residual
  // does not return to ~0. The rescaling gauge first: the largest entry of u and of v 1 in
  // size (w takes the scale).
  for (int t = 0; t < r; t++) {
    double mu = 0, mv = 0;
    for (int x = 0; x < m; x++) mu = fmax(mu, fabs(A->F[0][t * m + x])), mv = fmax(mv, fabs(A->F[1][t * m + x]));
    if (mu < 1e-9 || mv < 1e-9) continue;
    for (int x = 0; x < m; x++) A->F[0][t * m + x] /= mu, A->F[1][t * m + x] /= mv, A->F[2][t * m + x] *= mu * mv;
  }
  unsigned char *ban = calloc((size_t)total * 3, 1);   // (entry, value + 1) refused
  if (!ban) goto round;
  int nfixed = 0, fails = 0;
  while (nfixed < total) {
    int bf = -1, bi = -1;
    double bs = 1e300, bv = 0;
    for (int f = 0; f < 3; f++)
      for (int i = 0; i < r * m; i++) {
        if (A->fx[f][i]) continue;
        double x = A->F[f][i];
        for (int v = -1; v <= 1; v++) {
          if (ban[(size_t)(f * r * m + i) * 3 + (size_t)(v + 1)]) continue;
          double d = fabs(x - v) * (v == 0 ? ALS_ZERO_PREF : 1);
          if (d < bs) bs = d, bf = f, bi = i, bv = v;
        }
      }
    if (bf < 0) break;
    als_save(A);
    A->F[bf][bi] = bv, A->fx[bf][bi] = 1;
    int add = 1;
    for (int f = 0; f < 3; f++)   // entries already there: fixed with it
      for (int i = 0; i < r * m; i++) {
        double x = A->F[f][i], v = nearest_ternary(x);
        if (!A->fx[f][i] && fabs(x - v) < 1e-9) A->F[f][i] = v, A->fx[f][i] = 1, add++;
      }
    res = als_lm(A, ALS_LM_IT, 1e-24);
    if (res < ALS_FIX_TOL) {
      nfixed += add;
      memset(ban, 0, (size_t)total * 3);
    } else {
      als_restore(A);
      ban[(size_t)(bf * r * m + bi) * 3 + (size_t)(bv + 1)] = 1;
      if (++fails > ALS_MAX_FAILS) break;
    }
    if (deadline > 0 && now_s() > deadline) break;   // --time-limit
  }
  free(ban);
  *fixed = nfixed;
round:
  for (int f = 0; f < 3; f++)
    for (int i = 0; i < r * m; i++) A->F[f][i] = nearest_ternary(A->F[f][i]);
  return als_resid(A) == 0;
}

// ALS below the naive count for n >= 3 (where Adam fails: docs/METHODS.md); Adam for
// 2x2 (as fast, and the reference's recipe) and for r >= n^3 (the easy counts, where
// discretising an ALS solution finds fewer exact schemes than Adam)
int fm_matmul_default_solver(int n, int r) { return n >= 3 && r < n * n * n ? FM_MATMUL_ALS : FM_MATMUL_ADAM; }

int fm_matmul_learn_solver(int n, int r, int solver, uint64_t seed, int max_attempts, double time_limit,
                           int verbose, FmMatmulResult *res) {
  memset(res, 0, sizeof *res);
  res->n = n, res->r = r;
  if (n < 1 || n > 4 || r < 1 || r > 128) return -1;
  if (!solver) solver = fm_matmul_default_solver(n, r);
  int m = n * n;
  size_t rm = (size_t)r * m;
  Mm M;
  Als A;
  memset(&M, 0, sizeof M), memset(&A, 0, sizeof A);
  int bad = solver == FM_MATMUL_ALS ? als_init(&A, n, r) : mm_init(&M, n, r);
  if (bad) { mm_free(&M), als_free(&A); return -1; }
  double t0 = now_s(), best = 1e300, last_note = t0;
  int ok = 0, k = 0;
  for (; k < max_attempts && !ok; k++) {
    uint64_t s = seed + (uint64_t)k;
    double err, real = 0;
    int fixed = 0;
    if (solver == FM_MATMUL_ALS) {
      ok = als_attempt(&A, s, time_limit > 0 ? t0 + time_limit : 0, &real, &fixed);
      err = als_resid(&A);   // the rounded matrices
    } else {
      ok = attempt(&M, s);
      err = loss_grad(&M, M.q, NULL);
    }
    best = fmin(best, err);
    double t = now_s();
    if (verbose && (solver == FM_MATMUL_ADAM || ok || t - last_note > 5 || k < 5)) {
      if (solver == FM_MATMUL_ALS)
        fprintf(stderr, "attempt %d (seed %llu, als): real residual %.2g, %d/%d entries fixed, rounded squared error %g (best %g), %.1fs\n",
                k + 1, (unsigned long long)s, real, fixed, (int)(3 * rm), err, best, t - t0);
      else
        fprintf(stderr, "attempt %d (seed %llu, adam): %s, ternary squared error %g (best %g), %.1fs\n", k + 1,
                (unsigned long long)s, ok ? "exact" : "not exact", err, best, t - t0);
      last_note = t;
    }
    if (time_limit > 0 && t - t0 > time_limit) { k++; break; }
  }
  res->attempts = k;
  res->best_err = best;
  res->wa = malloc(rm), res->wb = malloc(rm), res->wc = malloc(rm);
  if (!res->wa || !res->wb || !res->wc) { mm_free(&M), als_free(&A); fm_matmul_free(res); return -1; }
  for (size_t i = 0; i < rm; i++) {
    if (solver == FM_MATMUL_ALS) {
      res->wa[i] = (int8_t)A.F[0][i], res->wb[i] = (int8_t)A.F[1][i];
      int t = (int)(i / m), x = (int)(i % m);
      res->wc[x * r + t] = (int8_t)A.F[2][i];
    } else {
      res->wa[i] = (int8_t)M.q[i];
      res->wb[i] = (int8_t)M.q[rm + i];
      res->wc[i] = (int8_t)M.q[2 * rm + i];
    }
  }
  mm_free(&M), als_free(&A);
  res->max_err = fm_matmul_check(res, 10000, seed ^ 0x5eed);
  res->ok = ok && res->max_err < 1e-4;
  return 0;
}

int fm_matmul_learn(int n, int r, uint64_t seed, int max_attempts, double time_limit, int verbose,
                    FmMatmulResult *res) {
  return fm_matmul_learn_solver(n, r, 0, seed, max_attempts, time_limit, verbose, res);
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
  "  --solver S       adam | als (default: als for n >= 3 and R < n^3, else adam): Adam on the\n"
  "                   tensor error with an L1 push and straight-through ternary steps, or\n"
  "                   alternating regularised least squares, then fixing entry by entry\n"
  "  --time-limit S   stop after S seconds (default 600)\n"
  "  -o PATH          ONNX model: inputs A, B (N x n x n), output C; the ternary matrices\n"
  "                   are constants of MatMul nodes, the R products one Mul\n"
  "  --quiet          no progress lines (stderr)\n";

int fm_cmd_train_matmul(int argc, char **argv) {
  int n = 2, r = 7, attempts = 1000, quiet = 0, solver = FM_MATMUL_DEFAULT;
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
    else if (!strcmp(k, "--solver") && (!strcmp(v, "adam") || !strcmp(v, "als")))
      solver = !strcmp(v, "als") ? FM_MATMUL_ALS : FM_MATMUL_ADAM;
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
  if (!solver) solver = fm_matmul_default_solver(n, r);
  if (!quiet)
    printf("learning %dx%d matrix products with r = %d multiplications (naive: %d), solver %s\n", n, n, r,
           n * n * n, solver == FM_MATMUL_ALS ? "als" : "adam");
  FmMatmulResult res;
  double t0 = now_s();
  if (fm_matmul_learn_solver(n, r, solver, seed, attempts, limit, !quiet, &res)) {
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
    fprintf(stderr, "fewmul: error: no exact %dx%d product with r = %d found in %d attempts (best rounded squared error %g)\n",
            n, n, r, res.attempts, res.best_err);
  }
  fm_matmul_free(&res);
  return rc;
}
