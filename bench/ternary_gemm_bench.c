/* ternary_gemm_bench.c - the ternary GEMM 2048x2048x2048 (issue 12's kernel target), 1 thread:
 * the CPU library's two add-only routines on the same {-1,0,1} weights (1/3 zeros) and
 * float activations:
 *   masks   fm_ternary_gemm: Y [N, M] from X [N, K] and bitmasks of W (TernaryGemm's kernel)
 *   psums   fm_addconv with positions = the N samples: Y^T [M, N] from X^T [K, N], tiles of
 *           4 outputs whose taps (columns of W) are grouped by weight pattern and summed once
 *           (the plan encoding of ops/fewmul_addconv.c, built here), plus the two transposes
 * and checks that they agree within float rounding. Measured (2 shared cores, load ~19):
 * 1024^3 masks 61 ms, psums 130 ms; 2048^3 masks 480 ms: the partial sums do 2.5x fewer
 * adds, but a GEMM's taps are K rows of X^T (K x 64 floats per pass, out of L1), where
 * a conv's are shifts within a few planes; the masks kernel stays TernaryGemm's.
 * Build and run:
 *
 *   cc -O2 -march=native -Icompiler bench/ternary_gemm_bench.c build/libfm_cpu.a -lm -o /tmp/tgb
 *   /tmp/tgb [N=2048] [rounds=3]
 */
#include "cpu/fm_cpu.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

typedef struct { uint32_t key; int neg; int32_t off; } Tap;
static int tap_cmp(const void *a, const void *b) {
  const Tap *x = a, *y = b;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  if (x->neg != y->neg) return x->neg - y->neg;
  return x->off < y->off ? -1 : x->off > y->off;
}

/* the plan of ops/fewmul_addconv.c for W [M, K], tap k at offset k*ld; returns its length */
static int64_t plan_build(const int8_t *w, int64_t M, int64_t K, int64_t ld, int32_t *plan, int32_t *ts) {
  int64_t np = 0;
  Tap *taps = malloc(sizeof(Tap) * (size_t)K);
  for (int64_t t = 0; t < M / 4; t++) {
    ts[t] = (int32_t)np;
    int k = 0;
    for (int64_t r = 0; r < K; r++) {
      uint32_t key = 0;
      int flip = 0, seen = 0;
      for (int j = 0; j < 4; j++) {
        int v = w[(4 * t + j) * K + r];
        if (!v) continue;
        if (!seen) flip = v < 0, seen = 1;
        key |= 1u << (2 * j);
        if ((v < 0) != flip) key |= 2u << (2 * j);
      }
      if (key) taps[k++] = (Tap){key, flip, (int32_t)(r * ld)};
    }
    qsort(taps, (size_t)k, sizeof *taps, tap_cmp);
    for (int i = 0; i < k;) {
      int j = i, nn = 0;
      while (j < k && taps[j].key == taps[i].key) nn += taps[j++].neg;
      int npos = j - i - nn, want = nn > npos;
      uint32_t code = taps[i].key;
      if (want) code ^= (code & 0x55u) << 1;
      plan[np++] = (int32_t)code, plan[np++] = want ? nn : npos, plan[np++] = want ? npos : nn;
      for (int pass = 0; pass < 2; pass++)
        for (int q = i; q < j; q++)
          if (taps[q].neg == (pass ? !want : want)) plan[np++] = taps[q].off;
      i = j;
    }
  }
  ts[M / 4] = (int32_t)np;
  free(taps);
  return np;
}

int main(int argc, char **argv) {
  int64_t N = argc > 1 ? atoll(argv[1]) : 2048, K = N, M = N, kc = (K + 15) / 16;
  int rounds = argc > 2 ? atoi(argv[2]) : 3;
  float *X = malloc(sizeof(float) * (size_t)(N * K)), *XT = malloc(sizeof(float) * (size_t)((N + 16) * K));
  float *Y = malloc(sizeof(float) * (size_t)(N * M)), *YT = malloc(sizeof(float) * (size_t)(N * M));
  int8_t *w = malloc((size_t)(M * K));
  int32_t *msk = calloc((size_t)(M * kc), 4), *plan = malloc(sizeof(int32_t) * (size_t)(M * K + 3 * M * 40 + 1));
  int32_t *ts = malloc(sizeof(int32_t) * (size_t)(M / 4 + 1));
  srand(1);
  for (int64_t i = 0; i < N * K; i++) X[i] = (float)rand() / (float)RAND_MAX - 0.5f;
  for (int64_t m = 0; m < M; m++)
    for (int64_t k = 0; k < K; k++) {
      int v = rand() % 3 - 1;
      w[m * K + k] = (int8_t)v;
      if (v) msk[m * kc + k / 16] |= (int32_t)((1u << (k % 16)) | (v < 0 ? 1u << (16 + k % 16) : 0));
    }
  int64_t ldt = N + 16; /* X^T rows padded: a stride of 4 KB would alias in the caches */
  plan_build(w, M, K, ldt, plan, ts);
  double adds = 0;
  for (int64_t p = 0; p < ts[M / 4]; p += 3 + plan[p + 1] + plan[p + 2]) /* fm_count_addconv's count */
    adds += (double)N * (plan[p + 1] + plan[p + 2] - 1 + __builtin_popcount((uint32_t)plan[p] & 0x55u));
  printf("ternary GEMM %lldx%lldx%lld, 1 thread: psums %.3g adds (masks %.3g)\n", (long long)N, (long long)K,
         (long long)M, adds, (double)N * M * K * 2 / 3);
  double bm = 1e30, bp = 1e30;
  for (int r = 0; r < rounds; r++) {
    double t0 = now_ms();
    fm_ternary_gemm(0, N, 0, M, K, X, K, msk, kc, NULL, 0, NULL, 0, 0, Y, M);
    double t1 = now_ms();
    for (int64_t i = 0; i < N; i++) /* X^T, then the tiles, then Y = (Y^T)^T */
      for (int64_t k = 0; k < K; k++) XT[k * ldt + i] = X[i * K + k];
    for (int64_t t = 0; t < M / 4; t++) fm_addconv(0, N, XT, plan, ts[t], ts[t + 1], YT + 4 * t * N, N, 4);
    for (int64_t m = 0; m < M; m++)
      for (int64_t i = 0; i < N; i++) XT[i * M + m] = YT[m * N + i];
    double t2 = now_ms();
    bm = t1 - t0 < bm ? t1 - t0 : bm, bp = t2 - t1 < bp ? t2 - t1 : bp;
    printf("round %d: masks %.1f ms, psums %.1f ms\n", r, t1 - t0, t2 - t1);
  }
  double err = 0, mag = 0;
  for (int64_t i = 0; i < N * M; i++) err = fmax(err, fabs(Y[i] - XT[i])), mag = fmax(mag, fabs(Y[i]));
  printf("best: masks %.1f ms, psums %.1f ms; max |difference| %.3g (max |y| %.3g)\n", bm, bp, err, mag);
  return err > 1e-4 * mag;
}
