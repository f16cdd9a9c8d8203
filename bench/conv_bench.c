/* conv_bench.c - the trainer's conv2d forward and backward on one layer shape, timed
 * (best of 10), to compare the packed path (trainer/conv_fast.c) with im2col + OpenBLAS
 * (FEWMUL_CONV_IM2COL=1). Not a test. Build and run:
 *
 *   cc -O2 -march=native -fopenmp -Itrainer -Icompiler -I. -Iruntime/include \
 *      -I/usr/include/x86_64-linux-gnu bench/conv_bench.c trainer/ops_conv.c \
 *      trainer/conv_fast.c trainer/ops_elem.c trainer/ops_linear.c -o /tmp/conv_bench -lopenblas -lm
 *   /tmp/conv_bench CIN COUT HW STRIDE THREADS [PAD [K]]   # KxK kernel (3), batch 64
 *   FEWMUL_CONV_IM2COL=1 /tmp/conv_bench 16 16 32 1 1
 */
#include "ops.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: conv_bench CIN COUT HW STRIDE THREADS [PAD [K]]\n");
    return 2;
  }
  int N = 64, C = atoi(argv[1]), M = atoi(argv[2]), H = atoi(argv[3]), s = atoi(argv[4]), nt = atoi(argv[5]);
  int pad = argc > 6 ? atoi(argv[6]) : 1, k = argc > 7 ? atoi(argv[7]) : 3;
  FmConvAttr a = fm_conv_attr(C, M, k, s, pad, 1, 1);
  int OH = fm_conv_out(H, k, s, pad, 1);
  size_t xn = (size_t)N * C * H * H, wn = (size_t)M * C * k * k, yn = (size_t)N * M * OH * OH;
  float *x = malloc(4 * xn), *w = malloc(4 * wn), *y = malloc(4 * yn), *dx = calloc(xn, 4), *dw = calloc(wn, 4);
  float *ws = malloc(4 * fm_conv2d_workspace(&a, H, H, nt));
  if (!x || !w || !y || !dx || !dw || !ws) return fprintf(stderr, "conv_bench: out of memory\n"), 1;
  for (size_t i = 0; i < xn; i++) x[i] = (float)(rand() % 100) / 100;
  for (size_t i = 0; i < wn; i++) w[i] = (float)(rand() % 100) / 100 - 0.5f;
  for (size_t i = 0; i < yn; i++) y[i] = 0.01f * (float)(i % 7);
  fm_blas_single_thread();   // as the trainer: OpenMP threads outside, one BLAS thread inside
  double fwd = 1e9, bwd = 1e9, bdat = 1e9, bwgt = 1e9;
  // best of 10 of each: forward, whole backward, input gradient alone, weight gradient alone
#define BEST(best, call) do { double t = now(); call; t = now() - t; if (t < best) best = t; } while (0)
  for (int r = 0; r < 10; r++) {
    BEST(fwd, fm_conv2d_forward(y, x, w, NULL, N, H, H, &a, ws, nt));
    BEST(bwd, fm_conv2d_backward(dx, dw, NULL, y, x, w, N, H, H, &a, ws, nt, 0));
    BEST(bdat, fm_conv2d_backward(dx, NULL, NULL, y, x, w, N, H, H, &a, ws, nt, 0));
    BEST(bwgt, fm_conv2d_backward(NULL, dw, NULL, y, x, w, N, H, H, &a, ws, nt, 0));
  }
  double flop = 2.0 * N * M * C * k * k * OH * OH;
  printf("cin %d cout %d %dx%d stride %d pad %d, batch %d, %d threads: forward %.2f ms (%.0f GFLOP/s), "
         "backward %.2f ms (%.0f GFLOP/s; data %.2f, weight %.2f)\n", C, M, H, H, s, pad, N, nt, fwd * 1e3,
         flop / fwd * 1e-9, bwd * 1e3, 2 * flop / bwd * 1e-9, bdat * 1e3, bwgt * 1e3);
  free(x), free(w), free(y), free(dx), free(dw), free(ws);
  return 0;
}
