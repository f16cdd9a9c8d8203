/* conv_fast.c - conv2d forward and input gradient with no im2col matrix in memory.
 *
 * The compiler's C prelude (compiler/emit/prelude.c) has a convolution that writes
 * im2col straight into the packed B panels of its GEMM (fm_im2col_pack) and a GEMM
 * over those panels (fm_sgemm_pb: 8x32 AVX-512 / 6x16 AVX2 register tiles). The
 * trainer uses the same two routines, so trained and compiled models share one
 * convolution, and a training step skips the im2col pass, OpenBLAS's own packing
 * copies and col2im:
 *
 *   forward    out_n[:, p0:p1] = W (M,K) x pack(im2col(x_n)[:, p0:p1])      + bias
 *   dinp       dinp_n += conv(dout_n, W~)      (stride 1 only)
 *
 * where W~ (cin, cout*kh*kw) is W with input and output channels swapped and the
 * kernel turned by 180 degrees, and the conv runs with padding d*(k-1) - p: for a
 * stride-1 conv the input gradient is exactly that "full" convolution of the output
 * gradient, so it needs no col2im scatter. Both are parallel over (sample, block of
 * output rows); each output element is written by one task, so results do not depend
 * on the thread count. The weight gradient (below) multiplies a materialised im2col
 * matrix by the transposed output gradient, worth it from 32 output channels (one full
 * 32-column register tile; with 16 half of each tile would be wasted). Groups > 1, the
 * input gradient of strided convs and the weight gradient of narrower convs keep the
 * im2col + OpenBLAS sgemm path of ops_conv.c.
 *
 * FEWMUL_CONV_IM2COL=1 in the environment turns this file off (the im2col + sgemm
 * path for everything), to compare the two (bench/train_bench.sh, the unit tests).
 */
#include "ops.h"
#include <omp.h>
#include "emit/prelude.c"

// multiply-adds below which one thread is faster than a parallel region
#define FAST_PAR_MIN 100000.0
// target columns (output positions) per packed panel: K x 256 floats stay in L2
#define FAST_COLS 256

size_t fm_conv_fast_wgrad_workspace(const FmConvAttr *a, int H, int W, int nthreads);

#include <stdlib.h>
/* The packed path is used where it is faster than im2col + OpenBLAS (measured with
 * bench/conv_bench.c): groups 1, stride 1, and output rows of whole 16-lane chunks
 * (widths 1, 2, 4, 8, 16, 32, 48, ...), the geometry of the packer's AVX-512 path; its
 * generic path (e.g. 26 or 28 wide) loses to im2col + sgemm. */
static int packable(const FmConvAttr *a, int OW) {
  return a->groups == 1 && a->sh == 1 && a->sw == 1 && OW > 0 && (OW % 16 == 0 || 16 % OW == 0) &&
         !getenv("FEWMUL_CONV_IM2COL");
}

int fm_conv_fast_ok(const FmConvAttr *a, int W) {
  return packable(a, fm_conv_out(W, a->kw, a->sw, a->pw, a->dw));
}

// a 32-column register tile full of output channels, and 32 or more GEMM rows
int fm_conv_fast_wgrad_ok(const FmConvAttr *a, int W) {
  return fm_conv_fast_ok(a, W) && a->cout >= FM_GEMM_NR && a->cin * a->kh * a->kw >= 4 * FM_GEMM_MR;
}

// the input gradient is a conv whose output is the input (width W); a GEMM of fewer
// than 8 rows (input channels) would waste most of each register tile
int fm_conv_fast_dinp_ok(const FmConvAttr *a, int W) {
  return packable(a, W) && a->cin >= FM_GEMM_MR && a->oph == 0 && a->opw == 0 &&
         a->dh * (a->kh - 1) - a->ph >= 0 && a->dw * (a->kw - 1) - a->pw >= 0;
}

// rows of an OH x OW map per task: whole rows (the packer's fast path), ~FAST_COLS columns
static int rows_per_block(int OH, int OW) {
  int r = FAST_COLS / (OW > 0 ? OW : 1);
  if (r < 1) r = 1;
  return r > OH ? OH : r;
}

// floats of one packed panel: K rows by the block's columns rounded up to 64
static size_t panel_floats(size_t K, int OW, int rows) {
  return K * (((size_t)OW * rows + 63) / 64 * 64);
}

static size_t align16f(size_t n) { return (n + 15) & ~(size_t)15; }

size_t fm_conv_fast_workspace(const FmConvAttr *a, int H, int W, int nthreads) {
  if (nthreads < 1) nthreads = 1;
  int OH = fm_conv_out(H, a->kh, a->sh, a->ph, a->dh), OW = fm_conv_out(W, a->kw, a->sw, a->pw, a->dw);
  size_t kk = (size_t)a->kh * a->kw;
  // forward: a panel per thread
  size_t fwd = nthreads * align16f(panel_floats(a->cin * kk, OW, rows_per_block(OH, OW))), bwd = 0;
  if (fm_conv_fast_dinp_ok(a, W)) {   // flipped weights, then per thread a panel and a C x cols block
    int rb = rows_per_block(H, W);
    bwd = align16f((size_t)a->cin * a->cout * kk) +
          nthreads * (align16f(panel_floats(a->cout * kk, W, rb)) + align16f((size_t)a->cin * W * rb));
  }
  size_t wg = fm_conv_fast_wgrad_ok(a, W) ? fm_conv_fast_wgrad_workspace(a, H, W, nthreads) : 0;
  if (bwd < wg) bwd = wg;
  return fwd > bwd ? fwd : bwd;
}

void fm_conv_fast_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                          int H, int W, const FmConvAttr *a, float *work, int nthreads) {
  int OH = fm_conv_out(H, a->kh, a->sh, a->ph, a->dh), OW = fm_conv_out(W, a->kw, a->sw, a->pw, a->dw);
  int M = a->cout, C = a->cin, rb = rows_per_block(OH, OW), nb = (OH + rb - 1) / rb;
  size_t K = (size_t)C * a->kh * a->kw, P = (size_t)OH * OW, in_n = (size_t)C * H * W;
  size_t slice = align16f(panel_floats(K, OW, rb));
  if (nthreads < 1) nthreads = 1;
  double macs = (double)N * M * P * K;
#pragma omp parallel num_threads(nthreads) if (macs > FAST_PAR_MIN)
  {
    float *bp = work + (size_t)omp_get_thread_num() * slice;
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < N * nb; t++) {
      int n = t / nb, r0 = t % nb * rb, r1 = r0 + rb < OH ? r0 + rb : OH;
      int64_t p0 = (int64_t)r0 * OW, p1 = (int64_t)r1 * OW;
      fm_im2col_pack(inp + n * in_n, C, H, W, a->kh, a->kw, a->sh, a->sw, a->ph, a->pw, a->dh, a->dw, OW,
                     p0, p1, bp);
      fm_sgemm_pb(0, M, p1 - p0, (int64_t)K, weight, (int64_t)K, bp, out + (size_t)n * M * P + p0,
                  (int64_t)P, bias, bias != NULL, 0);
    }
  }
}

void fm_conv_fast_backward_data(float *dinp, const float *dout, const float *weight, int N, int H, int W,
                                const FmConvAttr *a, float *work, int nthreads) {
  int OH = fm_conv_out(H, a->kh, a->sh, a->ph, a->dh), OW = fm_conv_out(W, a->kw, a->sw, a->pw, a->dw);
  int M = a->cout, C = a->cin, kh = a->kh, kw = a->kw, rb = rows_per_block(H, W), nb = (H + rb - 1) / rb;
  size_t kk = (size_t)kh * kw, K = (size_t)M * kk, HW = (size_t)H * W, out_n = (size_t)M * OH * OW;
  if (nthreads < 1) nthreads = 1;
  // W~[c][m][i][j] = W[m][c][kh-1-i][kw-1-j]
  float *wt = work;
  for (int m = 0; m < M; m++)
    for (int c = 0; c < C; c++)
      for (size_t i = 0; i < kk; i++) wt[((size_t)c * M + m) * kk + (kk - 1 - i)] = weight[((size_t)m * C + c) * kk + i];
  float *slices = work + align16f((size_t)C * K);
  size_t pslice = align16f(panel_floats(K, W, rb)), slice = pslice + align16f((size_t)C * W * rb);
  int ph = a->dh * (kh - 1) - a->ph, pw = a->dw * (kw - 1) - a->pw;
  double macs = (double)N * C * HW * K;
#pragma omp parallel num_threads(nthreads) if (macs > FAST_PAR_MIN)
  {
    float *bp = slices + (size_t)omp_get_thread_num() * slice, *tmp = bp + pslice;
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < N * nb; t++) {
      int n = t / nb, r0 = t % nb * rb, r1 = r0 + rb < H ? r0 + rb : H;
      int64_t p0 = (int64_t)r0 * W, p1 = (int64_t)r1 * W, cols = p1 - p0;
      fm_im2col_pack(dout + n * out_n, M, OH, OW, kh, kw, 1, 1, ph, pw, a->dh, a->dw, W, p0, p1, bp);
      fm_sgemm_pb(0, C, cols, (int64_t)K, wt, (int64_t)K, bp, tmp, cols, NULL, 0, 0);
      float *d = dinp + (size_t)n * C * HW + p0;
      for (int c = 0; c < C; c++) {
        float *dc = d + (size_t)c * HW;
        const float *tc = tmp + (size_t)c * cols;
#pragma omp simd
        for (int64_t j = 0; j < cols; j++) dc[j] += tc[j];
      }
    }
  }
}

/* Weight gradient: dW^T (K, M) = sum_n im2col(x_n) (K, P) x dout_n^T (P, M), one GEMM
 * per sample with the im2col matrix read in place as the GEMM's A operand and dout_n
 * transposed into packed B slivers. Samples are cut into NB fixed blocks handed out
 * dynamically; each block sums into its own partial, and the partials are summed in
 * block order, so the result depends on the thread count only. */
#define FAST_NB(nt) (2 * (nt))

// K x M floats of dW^T, M of db, per block; then per thread: im2col, packed dout^T, tmp
static size_t wgrad_block(size_t K, int M) { return align16f(K * M + M); }
static size_t wgrad_thread(size_t K, int M, size_t P) {
  return align16f(K * P) + align16f(P * (((size_t)M + 31) / 32 * 32)) + align16f(K * M);
}

size_t fm_conv_fast_wgrad_workspace(const FmConvAttr *a, int H, int W, int nthreads) {
  if (nthreads < 1) nthreads = 1;
  int OH = fm_conv_out(H, a->kh, a->sh, a->ph, a->dh), OW = fm_conv_out(W, a->kw, a->sw, a->pw, a->dw);
  size_t K = (size_t)a->cin * a->kh * a->kw, P = (size_t)OH * OW;
  return FAST_NB(nthreads) * wgrad_block(K, a->cout) + nthreads * wgrad_thread(K, a->cout, P);
}

void fm_conv_fast_backward_weight(float *dweight, float *dbias, const float *dout, const float *inp, int N,
                                  int H, int W, const FmConvAttr *a, float *work, int nthreads) {
  int OH = fm_conv_out(H, a->kh, a->sh, a->ph, a->dh), OW = fm_conv_out(W, a->kw, a->sw, a->pw, a->dw);
  int M = a->cout, nb = FAST_NB(nthreads < 1 ? 1 : nthreads);
  size_t K = (size_t)a->cin * a->kh * a->kw, P = (size_t)OH * OW, in_n = (size_t)a->cin * H * W;
  if (nthreads < 1) nthreads = 1;
  size_t bslice = wgrad_block(K, M), tslice = wgrad_thread(K, M, P);
  float *blocks = work, *threads = work + nb * bslice;
  double macs = (double)N * M * P * K;
#pragma omp parallel num_threads(nthreads) if (macs > FAST_PAR_MIN)
  {
    float *col = threads + (size_t)omp_get_thread_num() * tslice, *bp = col + align16f(K * P);
    float *tmp = bp + align16f(P * (((size_t)M + 31) / 32 * 32));
#pragma omp for schedule(dynamic, 1)
    for (int b = 0; b < nb; b++) {
      float *dwt = blocks + b * bslice, *db = dwt + K * M;
      memset(dwt, 0, sizeof(float) * (K * M + M));
      for (int n = N * b / nb; n < N * (b + 1) / nb; n++) {
        const float *dy = dout + (size_t)n * M * P;
        if (dbias)
          for (int m = 0; m < M; m++) db[m] += fm_sumf(dy + m * P, (int)P);
        if (!dweight) continue;
        fm_im2col(col, inp + n * in_n, a->cin, H, W, a);
        // dout^T as the GEMM's packed B: slivers of 32 channels, P rows (zero padded)
        fm_sgemm_pack_b((int64_t)P, M, dy, (int64_t)P, 1, 0, 0, bp);
        fm_sgemm_pb(0, (int64_t)K, M, (int64_t)P, col, (int64_t)P, bp, tmp, M, NULL, 0, 0);
#pragma omp simd
        for (size_t i = 0; i < K * M; i++) dwt[i] += tmp[i];
      }
    }
    // dweight[m][k] += sum_b dwt_b[k][m]; dbias[m] += sum_b db_b[m]
    if (dweight) {
#pragma omp for schedule(static)
      for (int m = 0; m < M; m++)
        for (size_t k = 0; k < K; k++) {
          float acc = 0;
          for (int b = 0; b < nb; b++) acc += blocks[b * bslice + k * M + m];
          dweight[(size_t)m * K + k] += acc;
        }
    }
    if (dbias) {
#pragma omp for schedule(static)
      for (int m = 0; m < M; m++) {
        float acc = 0;
        for (int b = 0; b < nb; b++) acc += blocks[b * bslice + K * M + m];
        dbias[m] += acc;
      }
    }
  }
}
