/* conv_fast.c - conv2d forward and gradients with no im2col matrix in memory.
 *
 * Two kinds of kernels, each used where bench/conv_bench.c measured it faster than
 * im2col + OpenBLAS (ops_conv.c, which keeps everything else: groups, the input
 * gradient of strided convs, narrow channel counts):
 *
 * 1. Direct kernels (AVX-512 builds; below, "Direct convolution" and "Direct weight
 *    gradient"): an 8 x 32 register tile whose operands are read in place, one
 *    contiguous 16-float vector per load, from a zero-padded copy of each sample.
 *      forward    out_n = W x conv-window(x_n)             output rows of whole vectors
 *      dinp       dinp_n += conv(dout_n, W~)               stride 1, likewise
 *      dweight    dW += dout_n x windows of channels-last x_n   cin % 16, cout % 8
 * 2. The CPU kernel library (compiler/cpu/, libfm_cpu.a): im2col written straight into
 *    the packed B panels of its GEMM (fm_im2col_pack + fm_sgemm_pb: 8x32 AVX-512 / 6x16
 *    AVX2 tiles), so trained and compiled models share one convolution, for stride-1
 *    geometries the direct kernels do not take (e.g. 8-wide rows) and on AVX2 builds.
 *
 * W~ (cin, cout*kh*kw) is W with input and output channels swapped and the kernel
 * turned by 180 degrees; the conv runs with padding d*(k-1) - p: for a stride-1 conv
 * the input gradient is exactly that "full" convolution of the output gradient, so it
 * needs no col2im scatter. Forward and input gradient are parallel over samples (or
 * (sample, block of rows)), each output element written by one task; the weight
 * gradient sums per-block partials in block order. So results depend only on the
 * thread count.
 *
 * FEWMUL_CONV_IM2COL=1 in the environment turns this file off (the im2col + sgemm
 * path for everything), to compare the two (bench/train_bench.sh, the unit tests).
 */
#include "ops.h"
#include <omp.h>
#include "cpu/fm_cpu.h"
#include <string.h>

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

#if defined(__AVX2__) && defined(__FMA__) && defined(__AVX512F__)
#include <immintrin.h>
#define FM_DIRECT 1   // the AVX-512 direct kernels below
#endif

/* The direct forward (AVX-512 builds): any input channels, stride, padding and
 * dilation; output channels in whole 8-row tiles, output rows in whole 16-lane vectors. */
static int direct_fwd_ok(const FmConvAttr *a, int OW) {
#ifdef FM_DIRECT
  return a->groups == 1 && a->cout % 8 == 0 && OW > 0 && OW % 16 == 0 && !getenv("FEWMUL_CONV_IM2COL");
#else
  (void)a, (void)OW;
  return 0;
#endif
}

/* the stride-1 input gradient as a direct conv: input channels fill the 8-row tiles.
 * (Strided convs could use it on dout spread out with zeros between its pixels, but at
 * s^2 times the multiply-adds that measured slower than im2col + sgemm + col2im.) */
static int direct_dinp_ok(const FmConvAttr *a, int W) {
  FmConvAttr t = *a;
  t.cout = a->cin;
  return direct_fwd_ok(&t, W) && a->sh == 1 && a->sw == 1 && a->oph == 0 && a->opw == 0 &&
         a->dh * (a->kh - 1) - a->ph >= 0 && a->dw * (a->kw - 1) - a->pw >= 0;
}

int fm_conv_fast_ok(const FmConvAttr *a, int W) {
  int OW = fm_conv_out(W, a->kw, a->sw, a->pw, a->dw);
  return direct_fwd_ok(a, OW) || packable(a, OW);
}

/* The direct weight gradient (below, AVX-512 builds): any stride, padding, dilation and
 * width; input channels in whole 16-lane vectors, output channels in whole 8-row tiles. */
static int wgrad_direct_ok(const FmConvAttr *a) {
#ifdef FM_DIRECT
  return a->groups == 1 && a->cin % 16 == 0 && a->cout % 8 == 0 && !getenv("FEWMUL_CONV_IM2COL");
#else
  (void)a;
  return 0;
#endif
}

// direct, else a 32-column register tile full of output channels and 32 or more GEMM rows
int fm_conv_fast_wgrad_ok(const FmConvAttr *a, int W) {
  return wgrad_direct_ok(a) ||
         (fm_conv_fast_ok(a, W) && a->cout >= fm_cpu_gemm_nr() && a->cin * a->kh * a->kw >= 4 * fm_cpu_gemm_mr());
}

// the input gradient is a conv whose output is the input (width W); a GEMM of fewer
// than 8 rows (input channels) would waste most of each register tile
int fm_conv_fast_dinp_ok(const FmConvAttr *a, int W) {
  return direct_dinp_ok(a, W) ||
         (packable(a, W) && a->cin >= fm_cpu_gemm_mr() && a->oph == 0 && a->opw == 0 &&
          a->dh * (a->kh - 1) - a->ph >= 0 && a->dw * (a->kw - 1) - a->pw >= 0);
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

typedef struct {
  int C, H, W, M, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW;
  int Hp, Wq, rowlen;   // padded rows, floats per column phase, floats per padded row
  size_t plane;         // floats per padded channel
} DGeom;

static void dgeom_pad(DGeom *g) {
  int Wp = (g->OW - 1) * g->sw + (g->kw - 1) * g->dw + 1;
  g->Hp = (g->OH - 1) * g->sh + (g->kh - 1) * g->dh + 1;
  g->Wq = (Wp + g->sw - 1) / g->sw;
  g->rowlen = g->sw * g->Wq;
  g->plane = (size_t)g->Hp * g->rowlen;
}

static DGeom dgeom_fwd(const FmConvAttr *a, int H, int W) {
  DGeom g = {a->cin, H, W, a->cout, a->kh, a->kw, a->sh, a->sw, a->ph, a->pw, a->dh, a->dw,
             fm_conv_out(H, a->kh, a->sh, a->ph, a->dh), fm_conv_out(W, a->kw, a->sw, a->pw, a->dw), 0, 0, 0, 0};
  dgeom_pad(&g);
  return g;
}

// the conv whose output is the input gradient (C, H, W) of a stride-1 conv a: its
// source is dout (M, OH, OW); with p > d(k-1)/2, OH > H and the output is cut to H x W
static DGeom dgeom_dinp(const FmConvAttr *a, int H, int W) {
  DGeom g = {a->cout, fm_conv_out(H, a->kh, a->sh, a->ph, a->dh), fm_conv_out(W, a->kw, a->sw, a->pw, a->dw),
             a->cin, a->kh, a->kw, 1, 1, a->dh * (a->kh - 1) - a->ph, a->dw * (a->kw - 1) - a->pw, a->dh, a->dw,
             H, W, 0, 0, 0, 0};
  dgeom_pad(&g);
  return g;
}

// wT (K x M), koff (K int32), then per thread a padded sample (+16 floats of slack)
static size_t direct_workspace(const DGeom *g, int nthreads) {
  size_t K = (size_t)g->C * g->kh * g->kw;
  return align16f(K * g->M) + align16f(K) + nthreads * align16f(g->C * g->plane + 16 + g->rowlen);
}


// the largest scratch of the paths this conv takes: forward, input gradient, weight gradient
size_t fm_conv_fast_workspace(const FmConvAttr *a, int H, int W, int nthreads) {
  if (nthreads < 1) nthreads = 1;
  int OH = fm_conv_out(H, a->kh, a->sh, a->ph, a->dh), OW = fm_conv_out(W, a->kw, a->sw, a->pw, a->dw);
  size_t kk = (size_t)a->kh * a->kw, fwd = 0, bwd = 0, wg = 0;
  if (direct_fwd_ok(a, OW)) {
    DGeom g = dgeom_fwd(a, H, W);
    fwd = direct_workspace(&g, nthreads);
  } else if (packable(a, OW)) {   // a panel per thread
    fwd = nthreads * align16f(panel_floats(a->cin * kk, OW, rows_per_block(OH, OW)));
  }
  if (direct_dinp_ok(a, W)) {
    DGeom g = dgeom_dinp(a, H, W);
    bwd = direct_workspace(&g, nthreads);
  } else if (fm_conv_fast_dinp_ok(a, W)) {   // flipped weights, then per thread a panel and a C x cols block
    int rb = rows_per_block(H, W);
    bwd = align16f((size_t)a->cin * a->cout * kk) +
          nthreads * (align16f(panel_floats(a->cout * kk, W, rb)) + align16f((size_t)a->cin * W * rb));
  }
  if (fm_conv_fast_wgrad_ok(a, W)) wg = fm_conv_fast_wgrad_workspace(a, H, W, nthreads);
  size_t r = fwd > bwd ? fwd : bwd;
  return r > wg ? r : wg;
}

/* Direct convolution (AVX-512): an implicit GEMM with no im2col matrix and no packing.
 * Each sample is copied into a zero-padded buffer xp (C, Hp, sw, Wq): padded row Y holds
 * its sw column phases one after the other (phase f = X % sw at f*Wq + X / sw), so for
 * output pixels ox0..ox0+15 of row oy the input under tap (c, ky, kx) is one contiguous
 * 16-float vector at
 *   xp + c*plane + (oy*sh + ky*dh)*rowlen + ((kx*dw) % sw)*Wq + ox0 + (kx*dw) / sw,
 * i.e. a base for the pixels plus koff[k], a per-(c, ky, kx) offset table. An 8 x 32
 * register tile (8 output channels, two 16-pixel vectors) runs over k = (c, ky, kx)
 * with the weights transposed to wT (K, M) for 8-float broadcasts: 16 FMAs per k.
 * Parallel over samples; every output element is written by one task.
 *
 * The input gradient of a stride-1 conv is the same kind of conv: of dout with the kernel
 * turned by 180 degrees and its channels swapped, padding d(k-1) - p. */
#ifdef FM_DIRECT
/* The 8 x 32 register tile of both direct kernels: rows i = 0..7, two 16-float halves
 * (y0, y1). TILE_EACH(X) applies X to every row; TILE_FMA adds A_OF(i) * (b0, b1) to a
 * row, with A_OF defined by the kernel (a broadcast weight or output-gradient value). */
#define TILE_DECL                                                                                 \
  __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, \
         c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00
#define TILE_EACH(X) \
  X(0, c00, c01) X(1, c10, c11) X(2, c20, c21) X(3, c30, c31) X(4, c40, c41) X(5, c50, c51) X(6, c60, c61) X(7, c70, c71)
#define TILE_FMA(i, y0, y1)          \
  a = _mm512_set1_ps(A_OF(i));       \
  y0 = _mm512_fmadd_ps(a, b0, y0);   \
  y1 = _mm512_fmadd_ps(a, b1, y1);

/* copy x (C, H, W) into xp (C, Hp, sw phases x Wq), zero where the window leaves x;
 * line: rowlen floats of scratch (a padded row before stride 2 splits it in phases) */
static void to_padded_phases(float *xp, float *line, const float *x, const DGeom *g) {
  for (int c = 0; c < g->C; c++)
    for (int Y = 0; Y < g->Hp; Y++) {
      float *d = xp + c * g->plane + (size_t)Y * g->rowlen;
      int iy = Y - g->ph;
      if (iy < 0 || iy >= g->H) { memset(d, 0, sizeof(float) * g->rowlen); continue; }
      const float *src = x + ((size_t)c * g->H + iy) * g->W;
      if (g->sw <= 2) {   // [0, pw) zero | x row | zero to rowlen; stride 2 then splits it
        float *r = g->sw == 1 ? d : line;
        int x0 = g->pw < 0 ? -g->pw : 0, lo = g->pw > 0 ? g->pw : 0;
        int n = g->W - x0 < g->rowlen - lo ? g->W - x0 : g->rowlen - lo;
        if (n < 0) n = 0;
        memset(r, 0, sizeof(float) * lo);
        memcpy(r + lo, src + x0, sizeof(float) * n);
        memset(r + lo + n, 0, sizeof(float) * (g->rowlen - lo - n));
        if (g->sw == 1) continue;
        const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        int j = 0;
        for (; j + 16 <= g->Wq; j += 16) {   // 32 floats -> 16 even | 16 odd
          __m512 u = _mm512_loadu_ps(r + 2 * j), v = _mm512_loadu_ps(r + 2 * j + 16);
          _mm512_storeu_ps(d + j, _mm512_permutex2var_ps(u, ev, v));
          _mm512_storeu_ps(d + g->Wq + j, _mm512_permutex2var_ps(u, od, v));
        }
        for (; j < g->Wq; j++) d[j] = r[2 * j], d[g->Wq + j] = r[2 * j + 1];
        continue;
      }
      for (int f = 0; f < g->sw; f++)
        for (int j = 0; j < g->Wq; j++) {
          int ix = j * g->sw + f - g->pw;
          d[f * g->Wq + j] = ix >= 0 && ix < g->W ? src[ix] : 0.0f;
        }
    }
}

/* o0/o1 (8 rows ldo apart, 16 floats each; o1 only when two) = or += sum_k wT[k][0:8]
 * (x) x0/x1[koff[k]] (+ bias[0:8] when storing). */
static void direct_tile(float *o0, float *o1, size_t ldo, const float *x0, const float *x1, const float *wT,
                        int ldw, const int32_t *koff, int K, const float *bias, int accumulate, int two) {
  TILE_DECL;
#define DT_INIT(i, y0, y1)                                                                                 \
  if (accumulate) y0 = _mm512_loadu_ps(o0 + (i) * ldo), y1 = two ? _mm512_loadu_ps(o1 + (i) * ldo) : y0; \
  else if (bias) y0 = y1 = _mm512_set1_ps(bias[i]);
  TILE_EACH(DT_INIT)
#undef DT_INIT
#define A_OF(i) wT[i]
  for (int k = 0; k < K; k++, wT += ldw) {
    __m512 b0 = _mm512_loadu_ps(x0 + koff[k]), b1 = _mm512_loadu_ps(x1 + koff[k]), a;
    TILE_EACH(TILE_FMA)
  }
#undef A_OF
#define DT_STORE(i, y0, y1)             \
  _mm512_storeu_ps(o0 + (i) * ldo, y0); \
  if (two) _mm512_storeu_ps(o1 + (i) * ldo, y1);
  TILE_EACH(DT_STORE)
#undef DT_STORE
}

// out_n (M, OH, OW) = or += conv(inp_n) for every sample, wT (K, M) already in work
static void direct_conv(float *out, const float *inp, const float *bias, int accumulate, int N, const DGeom *g,
                        float *work, int nthreads) {
  int K = g->C * g->kh * g->kw, M = g->M, ngr = g->OH * g->OW / 16, per_row = g->OW / 16;
  size_t P = (size_t)g->OH * g->OW, in_n = (size_t)g->C * g->H * g->W;
  const float *wT = work;
  int32_t *koff = (int32_t *)(work + align16f((size_t)K * M));
  float *xps = work + align16f((size_t)K * M) + align16f(K);
  size_t xslice = align16f(g->C * g->plane + 16 + g->rowlen);
  for (int c = 0, k = 0; c < g->C; c++)
    for (int ky = 0; ky < g->kh; ky++)
      for (int kx = 0; kx < g->kw; kx++, k++)
        koff[k] = (int32_t)(c * g->plane + (size_t)ky * g->dh * g->rowlen + (kx * g->dw) % g->sw * g->Wq +
                            (kx * g->dw) / g->sw);
  double macs = (double)N * M * P * K;
#pragma omp parallel num_threads(nthreads) if (macs > FAST_PAR_MIN)
  {
    float *xp = xps + (size_t)omp_get_thread_num() * xslice;
#pragma omp for schedule(dynamic, 1)
    for (int n = 0; n < N; n++) {
      to_padded_phases(xp, xp + g->C * g->plane + 16, inp + n * in_n, g);
      float *o = out + (size_t)n * M * P;
      for (int v = 0; v < ngr; v += 2) {   // two 16-pixel vectors per tile
        int v1 = v + 1 < ngr ? v + 1 : v;
        int y0 = v / per_row, y1 = v1 / per_row, xo0 = v % per_row * 16, xo1 = v1 % per_row * 16;
        const float *x0 = xp + (size_t)y0 * g->sh * g->rowlen + xo0, *x1 = xp + (size_t)y1 * g->sh * g->rowlen + xo1;
        for (int m0 = 0; m0 < M; m0 += 8)
          direct_tile(o + (size_t)m0 * P + (size_t)v * 16, o + (size_t)m0 * P + (size_t)v1 * 16, P, x0, x1,
                      wT + m0, M, koff, K, bias ? bias + m0 : NULL, accumulate, v + 1 < ngr);
      }
    }
  }
}
#endif

void fm_conv_fast_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                          int H, int W, const FmConvAttr *a, float *work, int nthreads) {
#ifdef FM_DIRECT
  if (direct_fwd_ok(a, fm_conv_out(W, a->kw, a->sw, a->pw, a->dw))) {
    DGeom g = dgeom_fwd(a, H, W);
    size_t K = (size_t)g.C * g.kh * g.kw;
    for (int m = 0; m < g.M; m++)   // wT[k][m] = W[m][k]
      for (size_t k = 0; k < K; k++) work[k * g.M + m] = weight[m * K + k];
    direct_conv(out, inp, bias, 0, N, &g, work, nthreads < 1 ? 1 : nthreads);
    return;
  }
#endif
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
                                const FmConvAttr *a, float *work, int nthreads, int assign) {
  int OH = fm_conv_out(H, a->kh, a->sh, a->ph, a->dh), OW = fm_conv_out(W, a->kw, a->sw, a->pw, a->dw);
  int M = a->cout, C = a->cin, kh = a->kh, kw = a->kw, rb = rows_per_block(H, W), nb = (H + rb - 1) / rb;
  size_t kk = (size_t)kh * kw, K = (size_t)M * kk, HW = (size_t)H * W, out_n = (size_t)M * OH * OW;
  if (nthreads < 1) nthreads = 1;
#ifdef FM_DIRECT
  if (direct_dinp_ok(a, W)) {   // dinp += conv(dout, W~), W~T[(m, t')][c] = W[m][c][kk-1-t']
    DGeom g = dgeom_dinp(a, H, W);
    for (int m = 0; m < M; m++)
      for (int c = 0; c < C; c++)
        for (size_t i = 0; i < kk; i++) work[(m * kk + (kk - 1 - i)) * C + c] = weight[((size_t)m * C + c) * kk + i];
    direct_conv(dinp, dout, NULL, !assign, N, &g, work, nthreads);
    return;
  }
#endif
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
        for (int64_t j = 0; j < cols; j++) dc[j] = (assign ? 0.0f : dc[j]) + tc[j];
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

/* Weight-gradient partials: block b holds bslice floats, dW in one of two orders (the
 * packed GEMM's (k, m) = dW^T, the direct kernel's (m, tap, c)), then db (M). Zeroed per
 * block, summed in block order by every thread of the enclosing parallel region. */
static void wgrad_block_begin(float *part, size_t K, int M, const float *dy, size_t P, int n0, int n1,
                              int bias) {
  memset(part, 0, sizeof(float) * (K * M + M));
  if (bias)
    for (int n = n0; n < n1; n++)
      for (int m = 0; m < M; m++) part[K * M + m] += fm_sumf(dy + ((size_t)n * M + m) * P, (int)P);
}

static void wgrad_reduce(float *dweight, float *dbias, const float *blocks, size_t bslice, int nb, int M, int C,
                         int kk, int tap_major) {
  size_t K = (size_t)C * kk;
  if (dweight) {
#pragma omp for schedule(static)
    for (int m = 0; m < M; m++)
      for (int c = 0; c < C; c++)
        for (int t = 0; t < kk; t++) {
          size_t k = (size_t)c * kk + t, i = tap_major ? (size_t)m * K + (size_t)t * C + c : k * M + m;
          float acc = 0;
          for (int b = 0; b < nb; b++) acc += blocks[b * bslice + i];
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

// the zero-padded channels-last copy of one sample that the direct kernel reads
static void padded_dims(const FmConvAttr *a, int OH, int OW, int *Hp, int *Wp) {
  *Hp = (OH - 1) * a->sh + (a->kh - 1) * a->dh + 1;
  *Wp = (OW - 1) * a->sw + (a->kw - 1) * a->dw + 1;
}

size_t fm_conv_fast_wgrad_workspace(const FmConvAttr *a, int H, int W, int nthreads) {
  if (nthreads < 1) nthreads = 1;
  int OH = fm_conv_out(H, a->kh, a->sh, a->ph, a->dh), OW = fm_conv_out(W, a->kw, a->sw, a->pw, a->dw);
  size_t K = (size_t)a->cin * a->kh * a->kw, P = (size_t)OH * OW;
  if (wgrad_direct_ok(a)) {
    int Hp, Wp;
    padded_dims(a, OH, OW, &Hp, &Wp);
    return FAST_NB(nthreads) * wgrad_block(K, a->cout) + nthreads * align16f((size_t)Hp * Wp * a->cin + 16);
  }
  return FAST_NB(nthreads) * wgrad_block(K, a->cout) + nthreads * wgrad_thread(K, a->cout, P);
}

#ifdef FM_DIRECT
/* Direct weight gradient. With x_n copied to a zero-padded channels-last buffer xp
 * (Hp, Wp, C), the 16 input channels c0..c0+15 of tap (ky, kx) at output pixel (oy, ox)
 * are one 64-byte vector, xp[oy*sh + ky*dh][ox*sw + kx*dw][c0:c0+16]. So with dW's
 * columns in (tap, channel) order,
 *   dW (M, kk*C) += dout_n (M, P) x B (P, kk*C),   B[p][t*C + c] = that vector's lane,
 * is a GEMM whose B rows are read in place and whose A entries are broadcast from dout:
 * an 8 x 32 register tile (8 output channels, two 16-column groups) gets 16 FMAs per
 * output pixel. No im2col matrix, no packing; xp and dout_n stay in L2. */

#define PD(v) _mm512_castps_pd(v)
#define PS(v) _mm512_castpd_ps(v)
// 16 x 16 transpose in registers: r[i] = row i in, r[j] = column j out
static inline void transpose16(__m512 *r) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]), t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  for (int i = 0; i < 16; i += 4) {
    r[i] = PS(_mm512_unpacklo_pd(PD(t[i]), PD(t[i + 2])));
    r[i + 1] = PS(_mm512_unpackhi_pd(PD(t[i]), PD(t[i + 2])));
    r[i + 2] = PS(_mm512_unpacklo_pd(PD(t[i + 1]), PD(t[i + 3])));
    r[i + 3] = PS(_mm512_unpackhi_pd(PD(t[i + 1]), PD(t[i + 3])));
  }
  for (int h = 0; h < 16; h += 8)
    for (int i = 0; i < 4; i++) {
      t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
      t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xdd);
    }
  for (int i = 0; i < 8; i++) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
}
#undef PD
#undef PS

/* channels-last copy of x (C, H, W), C a multiple of 16, into the interior of xp (its
 * border stays zero): 16 channels x 16 pixels at a time through transpose16 */
static void to_padded_nhwc(float *xp, const float *x, int C, int H, int W, int Hp, int Wp, int ph, int pw) {
  size_t HW = (size_t)H * W;
  int x0 = pw < 0 ? -pw : 0, x1 = W < Wp - pw ? W : Wp - pw;
  for (int y = 0; y < H && y + ph < Hp; y++) {
    if (y + ph < 0) continue;
    for (int c0 = 0; c0 < C; c0 += 16)
      for (int i0 = x0; i0 < x1; i0 += 16) {
        int n = x1 - i0 < 16 ? x1 - i0 : 16;
        __mmask16 m = (__mmask16)((1u << n) - 1);
        const float *src = x + (size_t)c0 * HW + (size_t)y * W + i0;
        __m512 r[16];
        for (int c = 0; c < 16; c++) r[c] = _mm512_maskz_loadu_ps(m, src + c * HW);
        transpose16(r);
        float *dst = xp + ((size_t)(y + ph) * Wp + pw + i0) * C + c0;
        for (int i = 0; i < n; i++) _mm512_storeu_ps(dst + (size_t)i * C, r[i]);
      }
  }
}

/* dw[i][0:16] += sum_p dy[i][p] * B0[p], dw[i][16:32] += ... B1[p] (i < 8, ldw apart;
 * the second group only when two). B0/B1 of pixel (oy, ox) sit at xp + oy*rs + ox*cs +
 * off0 / off1. */
static void dw_tile(float *dw, size_t ldw, const float *dy, size_t P, const float *xp, int64_t off0,
                    int64_t off1, int two, int OH, int OW, int64_t rs, int64_t cs) {
  TILE_DECL;
#define A_OF(i) d[(i) * P + ox]
  for (int oy = 0; oy < OH; oy++) {
    const float *xr = xp + oy * rs, *d = dy + (size_t)oy * OW;
    for (int ox = 0; ox < OW; ox++, xr += cs) {
      __m512 b0 = _mm512_loadu_ps(xr + off0), b1 = _mm512_loadu_ps(xr + off1), a;
      TILE_EACH(TILE_FMA)
    }
  }
#undef A_OF
#define DW_STORE(i, y0, y1)                                                                  \
  _mm512_storeu_ps(dw + (i) * ldw, _mm512_add_ps(_mm512_loadu_ps(dw + (i) * ldw), y0));      \
  if (two) _mm512_storeu_ps(dw + (i) * ldw + 16, _mm512_add_ps(_mm512_loadu_ps(dw + (i) * ldw + 16), y1));
  TILE_EACH(DW_STORE)
#undef DW_STORE
}

static void wgrad_direct(float *dweight, float *dbias, const float *dout, const float *inp, int N, int H,
                         int W, const FmConvAttr *a, float *work, int nthreads) {
  int OH = fm_conv_out(H, a->kh, a->sh, a->ph, a->dh), OW = fm_conv_out(W, a->kw, a->sw, a->pw, a->dw);
  int M = a->cout, C = a->cin, kk = a->kh * a->kw, nb = FAST_NB(nthreads), Hp, Wp;
  size_t K = (size_t)C * kk, P = (size_t)OH * OW, in_n = (size_t)C * H * W;
  padded_dims(a, OH, OW, &Hp, &Wp);
  size_t bslice = wgrad_block(K, M), xslice = align16f((size_t)Hp * Wp * C + 16);
  float *blocks = work, *xps = work + nb * bslice;
  int ngroups = (int)(K / 16);   // 16-column groups of dW: (tap, 16 channels)
  double macs = (double)N * M * P * K;
#pragma omp parallel num_threads(nthreads) if (macs > FAST_PAR_MIN)
  {
    float *xp = xps + (size_t)omp_get_thread_num() * xslice;
    memset(xp, 0, sizeof(float) * xslice);   // the border is never written again
#pragma omp for schedule(dynamic, 1)
    for (int b = 0; b < nb; b++) {
      float *dwb = blocks + b * bslice;   // dwb (M, kk*C) in (m, tap, c) order
      int n0 = N * b / nb, n1 = N * (b + 1) / nb;
      wgrad_block_begin(dwb, K, M, dout, P, n0, n1, dbias != NULL);
      for (int n = n0; n < n1 && dweight; n++) {
        const float *dy = dout + (size_t)n * M * P;
        to_padded_nhwc(xp, inp + n * in_n, C, H, W, Hp, Wp, a->ph, a->pw);
        for (int g = 0; g < ngroups; g += 2) {
          int64_t off[2];
          for (int h = 0; h < 2; h++) {
            int j = 16 * (g + h < ngroups ? g + h : g), t = j / C, ky = t / a->kw, kx = t % a->kw;
            off[h] = ((int64_t)ky * a->dh * Wp + (int64_t)kx * a->dw) * C + j % C;
          }
          for (int m0 = 0; m0 < M; m0 += 8)
            dw_tile(dwb + (size_t)m0 * K + 16 * g, K, dy + (size_t)m0 * P, P, xp, off[0], off[1],
                    g + 1 < ngroups, OH, OW, (int64_t)a->sh * Wp * C, (int64_t)a->sw * C);
        }
      }
    }
    wgrad_reduce(dweight, dbias, blocks, bslice, nb, M, C, kk, 1);
  }
}
#endif

void fm_conv_fast_backward_weight(float *dweight, float *dbias, const float *dout, const float *inp, int N,
                                  int H, int W, const FmConvAttr *a, float *work, int nthreads) {
  int OH = fm_conv_out(H, a->kh, a->sh, a->ph, a->dh), OW = fm_conv_out(W, a->kw, a->sw, a->pw, a->dw);
  int M = a->cout, nb = FAST_NB(nthreads < 1 ? 1 : nthreads);
  size_t K = (size_t)a->cin * a->kh * a->kw, P = (size_t)OH * OW, in_n = (size_t)a->cin * H * W;
  if (nthreads < 1) nthreads = 1;
#ifdef FM_DIRECT
  if (wgrad_direct_ok(a)) {
    wgrad_direct(dweight, dbias, dout, inp, N, H, W, a, work, nthreads);
    return;
  }
#endif
  size_t bslice = wgrad_block(K, M), tslice = wgrad_thread(K, M, P);
  float *blocks = work, *threads = work + nb * bslice;
  double macs = (double)N * M * P * K;
#pragma omp parallel num_threads(nthreads) if (macs > FAST_PAR_MIN)
  {
    float *col = threads + (size_t)omp_get_thread_num() * tslice, *bp = col + align16f(K * P);
    float *tmp = bp + align16f(P * (((size_t)M + 31) / 32 * 32));
#pragma omp for schedule(dynamic, 1)
    for (int b = 0; b < nb; b++) {
      float *dwt = blocks + b * bslice;   // dwt (K, M)
      int n0 = N * b / nb, n1 = N * (b + 1) / nb;
      wgrad_block_begin(dwt, K, M, dout, P, n0, n1, dbias != NULL);
      for (int n = n0; n < n1 && dweight; n++) {
        const float *dy = dout + (size_t)n * M * P;
        fm_im2col(col, inp + n * in_n, a->cin, H, W, a);
        // dout^T as the GEMM's packed B: slivers of 32 channels, P rows (zero padded)
        fm_sgemm_pack_b((int64_t)P, M, dy, (int64_t)P, 1, 0, 0, bp);
        fm_sgemm_pb(0, (int64_t)K, M, (int64_t)P, col, (int64_t)P, bp, tmp, M, NULL, 0, 0);
#pragma omp simd
        for (size_t i = 0; i < K * M; i++) dwt[i] += tmp[i];
      }
    }
    wgrad_reduce(dweight, dbias, blocks, bslice, nb, M, a->cin, a->kh * a->kw, 0);
  }
}
