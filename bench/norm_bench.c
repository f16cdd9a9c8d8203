/* norm_bench.c - the trainer's batchnorm (train mode), relu and residual add, forward
 * and backward, on resnet20's activation shapes (batch 64; C,HW = 16,32 / 32,16 / 64,8),
 * timed best of REPS (default 20). Not a test. Build and run:
 *
 *   cc -O2 -march=native -fopenmp -Itrainer bench/norm_bench.c trainer/ops_norm.c \
 *      trainer/ops_elem.c -o /tmp/norm_bench -lm
 *   /tmp/norm_bench THREADS [REPS]
 *
 * The buffers are reused across repetitions, so a 4 MB tensor is warm in the L3 cache,
 * as it is in training where the layer before has just written it.
 */
#include "ops.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

#define TIME(best, stmt)                     \
  do {                                       \
    double t_ = now();                       \
    stmt;                                    \
    t_ = now() - t_;                         \
    if (t_ < (best)) (best) = t_;            \
  } while (0)

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: norm_bench THREADS [REPS]\n");
    return 2;
  }
  int nt = atoi(argv[1]), reps = argc > 2 ? atoi(argv[2]) : 20;
  omp_set_num_threads(nt);   // relu/add take the thread count from OpenMP, as in fm_net_forward
  static const int shapes[3][2] = {{16, 32}, {32, 16}, {64, 8}};
  int N = 64;
  printf("batch %d, %d threads, best of %d, ms\n%-10s %8s %8s %8s %8s %8s %8s\n", N, nt, reps, "C,HW",
         "bn_fwd", "bn_bwd", "relu_fwd", "relu_bwd", "add_fwd", "add_bwd");
  for (int si = 0; si < 3; si++) {
    int C = shapes[si][0], S = shapes[si][1] * shapes[si][1];
    size_t n = (size_t)N * C * S;
    float *x = malloc(4 * n), *y = malloc(4 * n), *z = malloc(4 * n), *dy = malloc(4 * n);
    float *dx = calloc(n, 4), *dz = calloc(n, 4);
    float *par = calloc(8 * (size_t)C, 4);
    if (!x || !y || !z || !dy || !dx || !dz || !par) return fprintf(stderr, "norm_bench: out of memory\n"), 1;
    for (size_t i = 0; i < n; i++) {
      x[i] = (float)(rand() % 1000) / 250 - 2;
      dy[i] = (float)(rand() % 1000) / 1000 - 0.5f;
    }
    float *g = par, *b = par + C, *rm = par + 2 * C, *rv = par + 3 * C, *mean = par + 4 * C;
    float *invstd = par + 5 * C, *dg = par + 6 * C, *db = par + 7 * C;
    for (int c = 0; c < C; c++) g[c] = 1, rv[c] = 1;
    FmBnAttr a = {C, 1e-5f, 0.1f, 0, NULL};
    double t[6] = {1e9, 1e9, 1e9, 1e9, 1e9, 1e9};
    for (int r = 0; r < reps; r++) {
      TIME(t[0], fm_batchnorm_forward(y, mean, invstd, x, g, b, rm, rv, N, S, &a, 1, nt));
      TIME(t[1], fm_batchnorm_backward(dx, dg, db, dy, x, mean, invstd, g, N, S, &a, 1, nt, 0));
      TIME(t[2], fm_relu_forward(z, y, n));
      TIME(t[3], fm_relu_backward(dx, dy, z, n, 0));
      TIME(t[4], fm_add_forward(z, x, y, n));
      TIME(t[5], fm_add_backward(dx, dz, dy, n, 0, 0));
    }
    char name[16];
    snprintf(name, sizeof name, "%d,%d", C, shapes[si][1]);
    printf("%-10s", name);
    for (int k = 0; k < 6; k++) printf(" %8.3f", t[k] * 1e3);
    printf("\n");
    free(x), free(y), free(z), free(dy), free(dx), free(dz), free(par);
  }
  return 0;
}
