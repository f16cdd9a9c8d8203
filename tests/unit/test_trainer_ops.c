/* test_trainer_ops.c - op forward values against naive reference loops and
 * hand-computed numbers (the backward passes are checked by finite differences in
 * test_trainer_grad.c; batchnorm's is also compared with a reference here). */
#include "check.h"
#include "ops.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static FmRng rng;
static float *rnd(size_t n) {
  float *p = malloc(sizeof(float) * (n + 1));
  for (size_t i = 0; i < n; i++) p[i] = 2 * fm_rng_uniform(&rng) - 1;
  return p;
}

// direct convolution, PyTorch semantics
static void conv_ref(float *out, const float *x, const float *w, const float *b, int N, int H, int W,
                     const FmConvAttr *a) {
  int OH = fm_conv_out(H, a->kh, a->sh, a->ph, a->dh), OW = fm_conv_out(W, a->kw, a->sw, a->pw, a->dw);
  int cg = a->cin / a->groups, mg = a->cout / a->groups;
  for (int n = 0; n < N; n++)
    for (int m = 0; m < a->cout; m++)
      for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++) {
          double s = b ? b[m] : 0;
          int g = m / mg;
          for (int c = 0; c < cg; c++)
            for (int i = 0; i < a->kh; i++)
              for (int j = 0; j < a->kw; j++) {
                int iy = oy * a->sh - a->ph + i * a->dh, ix = ox * a->sw - a->pw + j * a->dw;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                s += (double)x[((n * a->cin + g * cg + c) * H + iy) * W + ix] *
                     w[((m * cg + c) * a->kh + i) * a->kw + j];
              }
          out[((n * a->cout + m) * OH + oy) * OW + ox] = (float)s;
        }
}

// transposed convolution as a scatter: each input pixel adds w * x into the output
static void convt_ref(float *out, const float *x, const float *w, const float *b, int N, int H, int W,
                      const FmConvAttr *a) {
  int OH = fm_convt_out(H, a->kh, a->sh, a->ph, a->dh, a->oph), OW = fm_convt_out(W, a->kw, a->sw, a->pw, a->dw, a->opw);
  int cg = a->cin / a->groups, mg = a->cout / a->groups;
  for (int i = 0; i < N * a->cout * OH * OW; i++) out[i] = b ? b[(i / (OH * OW)) % a->cout] : 0;
  for (int n = 0; n < N; n++)
    for (int c = 0; c < a->cin; c++)
      for (int y = 0; y < H; y++)
        for (int xx = 0; xx < W; xx++) {
          int g = c / cg;
          float v = x[((n * a->cin + c) * H + y) * W + xx];
          for (int m = 0; m < mg; m++)
            for (int i = 0; i < a->kh; i++)
              for (int j = 0; j < a->kw; j++) {
                int oy = y * a->sh - a->ph + i * a->dh, ox = xx * a->sw - a->pw + j * a->dw;
                if (oy < 0 || oy >= OH || ox < 0 || ox >= OW) continue;
                out[((n * a->cout + g * mg + m) * OH + oy) * OW + ox] += v * w[((c * mg + m) * a->kh + i) * a->kw + j];
              }
        }
}

static float maxdiff(const float *a, const float *b, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(a[i] - b[i]));
  return m;
}

static void test_conv(FmConvAttr a, int N, int H, int W, int transpose, int nt) {
  int OH = transpose ? fm_convt_out(H, a.kh, a.sh, a.ph, a.dh, a.oph) : fm_conv_out(H, a.kh, a.sh, a.ph, a.dh);
  int OW = transpose ? fm_convt_out(W, a.kw, a.sw, a.pw, a.dw, a.opw) : fm_conv_out(W, a.kw, a.sw, a.pw, a.dw);
  size_t wn = (size_t)a.cin * a.cout / a.groups * a.kh * a.kw, on = (size_t)N * a.cout * OH * OW;
  float *x = rnd((size_t)N * a.cin * H * W), *w = rnd(wn), *b = rnd(a.cout);
  float *o1 = malloc(sizeof(float) * on), *o2 = malloc(sizeof(float) * on);
  size_t ws = transpose ? fm_convt2d_workspace(&a, H, W, nt) : fm_conv2d_workspace(&a, H, W, nt);
  float *work = malloc(sizeof(float) * ws);
  if (transpose) {
    fm_convt2d_forward(o1, x, w, b, N, H, W, &a, work, nt);
    convt_ref(o2, x, w, b, N, H, W, &a);
  } else {
    fm_conv2d_forward(o1, x, w, a.groups == 1 ? NULL : b, N, H, W, &a, work, nt);
    conv_ref(o2, x, w, a.groups == 1 ? NULL : b, N, H, W, &a);
  }
  float d = maxdiff(o1, o2, on);
  if (d > 1e-4f) fprintf(stderr, "conv%s k%dx%d s%d p%d d%d g%d: max diff %g\n", transpose ? "T" : "",
                         a.kh, a.kw, a.sh, a.ph, a.dh, a.groups, d);
  CHECK(d <= 1e-4f);
  free(x), free(w), free(b), free(o1), free(o2), free(work);
}

static void test_convs(void) {
  test_conv(fm_conv_attr(3, 8, 3, 1, 1, 1, 1), 3, 9, 8, 0, 2);
  test_conv(fm_conv_attr(4, 6, 5, 2, 2, 1, 2), 2, 11, 9, 0, 1);
  test_conv(fm_conv_attr(4, 4, 3, 3, 0, 2, 4), 2, 13, 12, 0, 2);
  test_conv(fm_conv_attr(6, 3, 1, 1, 0, 1, 3), 2, 5, 5, 0, 1);
  FmConvAttr a = {2, 5, 2, 4, 1, 3, 0, 2, 1, 1, 1, 0, 0};
  test_conv(a, 2, 6, 11, 0, 1);
  FmConvAttr t = fm_conv_attr(4, 6, 3, 2, 1, 1, 2);
  t.oph = 1;
  test_conv(t, 2, 5, 4, 1, 2);
  test_conv(fm_conv_attr(3, 2, 4, 2, 1, 1, 1), 1, 3, 3, 1, 1);
  test_conv(fm_conv_attr(2, 2, 3, 1, 0, 2, 1), 1, 4, 4, 1, 1);
  // im2col and col2im are adjoint: <im2col(x), c> == <x, col2im(c)>
  FmConvAttr d = fm_conv_attr(3, 1, 3, 2, 1, 2, 1);
  int H = 7, W = 6, OH = fm_conv_out(H, 3, 2, 1, 2), OW = fm_conv_out(W, 3, 2, 1, 2);
  size_t nx = 3 * H * W, nc = (size_t)3 * 9 * OH * OW;
  float *x = rnd(nx), *c = rnd(nc), *col = malloc(sizeof(float) * nc), *img = calloc(nx, sizeof(float));
  fm_im2col(col, x, 3, H, W, &d);
  fm_col2im(img, c, 3, H, W, &d);
  double s1 = 0, s2 = 0;
  for (size_t i = 0; i < nc; i++) s1 += (double)col[i] * c[i];
  for (size_t i = 0; i < nx; i++) s2 += (double)x[i] * img[i];
  CHECK_NEAR(s1, s2, 1e-4);
  free(x), free(c), free(col), free(img);
}

// conv2d backward against loops in double: dinp, dweight and dbias are accumulated
// into (+=) buffers that already hold values, as fm_net's backward expects. Shapes
// cover both paths of ops_conv.c/conv_fast.c: packed (groups 1; weight gradient from
// 32 output channels, a partial second register tile at 40; input gradient at stride
// 1; rows of 8, 16, 32) and im2col + sgemm (groups, strides, narrow convs, other
// widths), and pad-0 convs where only one of the forward / input gradient is packed.
static void test_conv_bwd(FmConvAttr a, int N, int H, int W, int nt) {
  int OH = fm_conv_out(H, a.kh, a.sh, a.ph, a.dh), OW = fm_conv_out(W, a.kw, a.sw, a.pw, a.dw);
  int cg = a.cin / a.groups, mg = a.cout / a.groups;
  size_t xn = (size_t)N * a.cin * H * W, wn = (size_t)a.cout * cg * a.kh * a.kw, yn = (size_t)N * a.cout * OH * OW;
  float *x = rnd(xn), *w = rnd(wn), *dy = rnd(yn), *dx = rnd(xn), *dw = rnd(wn), *db = rnd(a.cout);
  double *rx = malloc(sizeof(double) * xn), *rw = malloc(sizeof(double) * wn), *rb = malloc(sizeof(double) * a.cout);
  for (size_t i = 0; i < xn; i++) rx[i] = dx[i];
  for (size_t i = 0; i < wn; i++) rw[i] = dw[i];
  for (int i = 0; i < a.cout; i++) rb[i] = db[i];
  for (int n = 0; n < N; n++)
    for (int m = 0; m < a.cout; m++)
      for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++) {
          double g = dy[((n * a.cout + m) * OH + oy) * OW + ox];
          rb[m] += g;
          for (int c = 0; c < cg; c++)
            for (int i = 0; i < a.kh; i++)
              for (int j = 0; j < a.kw; j++) {
                int iy = oy * a.sh - a.ph + i * a.dh, ix = ox * a.sw - a.pw + j * a.dw;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                size_t xi = ((size_t)(n * a.cin + m / mg * cg + c) * H + iy) * W + ix;
                size_t wi = ((size_t)(m * cg + c) * a.kh + i) * a.kw + j;
                rx[xi] += g * w[wi];
                rw[wi] += g * x[xi];
              }
        }
  float *work = malloc(sizeof(float) * fm_conv2d_workspace(&a, H, W, nt));
  fm_conv2d_backward(dx, dw, db, dy, x, w, N, H, W, &a, work, nt, 0);
  double ex = 0, ew = 0, eb = 0;
  for (size_t i = 0; i < xn; i++) ex = fmax(ex, fabs(dx[i] - rx[i]));
  for (size_t i = 0; i < wn; i++) ew = fmax(ew, fabs(dw[i] - rw[i]));
  for (int i = 0; i < a.cout; i++) eb = fmax(eb, fabs(db[i] - rb[i]));
  // sums of up to N*OH*OW products of numbers in [-1, 1]: relative to sqrt(terms)
  double tol = 1e-5 * (N * OH * OW + cg * a.kh * a.kw);
  if (ex > tol || ew > tol || eb > tol)
    fprintf(stderr, "conv bwd cin %d cout %d k%d s%d p%d d%d g%d %dx%d nt %d: dx %g dw %g db %g (tol %g)\n", a.cin,
            a.cout, a.kh, a.sh, a.ph, a.dh, a.groups, H, W, nt, ex, ew, eb, tol);
  CHECK(ex <= tol && ew <= tol && eb <= tol);
  // dinp_assign: dinp written, not accumulated: what it held before (rnd, again) is gone
  float *dx2 = rnd(xn), *dx0 = malloc(sizeof(float) * xn);
  fm_conv2d_backward(memset(dx0, 0, sizeof(float) * xn), NULL, NULL, dy, x, w, N, H, W, &a, work, nt, 0);
  fm_conv2d_backward(dx2, NULL, NULL, dy, x, w, N, H, W, &a, work, nt, 1);
  CHECK(maxdiff(dx2, dx0, xn) == 0);
  free(dx2), free(dx0);
  // forward against the reference too, with a bias
  float *o1 = malloc(sizeof(float) * yn), *o2 = malloc(sizeof(float) * yn);
  fm_conv2d_forward(o1, x, w, db, N, H, W, &a, work, nt);
  conv_ref(o2, x, w, db, N, H, W, &a);
  // the bias is db from above, sums of N*OH*OW terms: relative to the outputs' size
  float fd = maxdiff(o1, o2, yn), big = 1;
  for (size_t i = 0; i < yn; i++) big = fmaxf(big, fabsf(o2[i]));
  if (!(fd <= 1e-5f * big))
    fprintf(stderr, "conv fwd cin %d cout %d k%d s%d p%d d%d g%d %dx%d nt %d: max diff %g of max %g\n", a.cin,
            a.cout, a.kh, a.sh, a.ph, a.dh, a.groups, H, W, nt, fd, big);
  CHECK(fd <= 1e-5f * big);
  free(x), free(w), free(dy), free(dx), free(dw), free(db), free(rx), free(rw), free(rb), free(work);
  free(o1), free(o2);
}

static void test_conv_bwds(void) {
  test_conv_bwd(fm_conv_attr(16, 32, 3, 1, 1, 1, 1), 3, 32, 32, 2);   // resnet20 shapes
  test_conv_bwd(fm_conv_attr(32, 64, 3, 2, 1, 1, 1), 2, 16, 16, 2);
  test_conv_bwd(fm_conv_attr(64, 64, 3, 1, 1, 1, 1), 4, 8, 8, 2);
  test_conv_bwd(fm_conv_attr(32, 64, 1, 2, 0, 1, 1), 2, 16, 16, 1);
  test_conv_bwd(fm_conv_attr(8, 16, 3, 1, 1, 1, 1), 2, 32, 32, 1);
  test_conv_bwd(fm_conv_attr(5, 40, 3, 1, 0, 1, 1), 3, 28, 28, 2);   // Fashion-MNIST widths
  test_conv_bwd(fm_conv_attr(7, 33, 5, 1, 2, 1, 1), 2, 7, 9, 1);
  test_conv_bwd(fm_conv_attr(6, 36, 3, 1, 2, 2, 1), 2, 11, 10, 2);  // dilation
  test_conv_bwd(fm_conv_attr(6, 36, 3, 1, 0, 1, 3), 2, 9, 9, 2);    // groups
  test_conv_bwd(fm_conv_attr(3, 32, 3, 2, 1, 1, 1), 1, 9, 8, 1);
  test_conv_bwd(fm_conv_attr(8, 40, 3, 1, 0, 1, 1), 2, 18, 18, 2);  // output 16 wide: forward packed
  test_conv_bwd(fm_conv_attr(9, 32, 3, 1, 0, 1, 1), 2, 16, 16, 2);  // input 16 wide: input gradient packed
  test_conv_bwd(fm_conv_attr(12, 48, 5, 1, 2, 1, 1), 2, 4, 4, 1);
  // the direct weight gradient (cin % 16 == 0, cout % 8 == 0): an odd number of
  // 16-column groups, stride with dilation, odd sizes, no padding, over-padding, 1x1
  test_conv_bwd(fm_conv_attr(16, 16, 3, 1, 1, 1, 1), 3, 32, 32, 2);
  test_conv_bwd(fm_conv_attr(16, 8, 3, 2, 1, 2, 1), 2, 13, 11, 1);
  test_conv_bwd(fm_conv_attr(48, 24, 5, 1, 0, 1, 1), 2, 9, 7, 2);
  test_conv_bwd(fm_conv_attr(16, 16, 1, 2, 0, 1, 1), 2, 15, 15, 2);
  test_conv_bwd(fm_conv_attr(32, 8, 3, 1, 3, 1, 1), 1, 5, 6, 1);
  // the direct forward (cout % 8 == 0, output width % 16 == 0): stride 2 (column
  // phases), 1x1 stride 2, dilated stride 2 with odd channels, 3 input channels
  test_conv_bwd(fm_conv_attr(16, 32, 3, 2, 1, 1, 1), 2, 32, 32, 2);
  test_conv_bwd(fm_conv_attr(16, 32, 1, 2, 0, 1, 1), 2, 32, 32, 1);
  test_conv_bwd(fm_conv_attr(5, 16, 3, 2, 2, 2, 1), 1, 9, 31, 2);
  test_conv_bwd(fm_conv_attr(3, 16, 3, 1, 1, 1, 1), 2, 7, 32, 1);
  // strided convs with direct forward and weight gradient: odd height, stride 2 with
  // dilation and padding 2, stride 3; and the stride-1 pad-2 conv whose output gradient
  // is larger than its input (the direct input gradient cuts it)
  test_conv_bwd(fm_conv_attr(8, 16, 3, 2, 1, 1, 1), 2, 15, 32, 2);
  test_conv_bwd(fm_conv_attr(16, 8, 3, 2, 2, 2, 1), 1, 11, 32, 1);
  test_conv_bwd(fm_conv_attr(8, 8, 3, 3, 1, 1, 1), 2, 10, 16, 2);
  test_conv_bwd(fm_conv_attr(8, 8, 3, 1, 2, 1, 1), 2, 5, 16, 1);
}

static void test_linear(void) {
  float x[6] = {1, 2, 3, -1, 0, 1}, w[6] = {1, 0, -1, 0.5f, 0.5f, 0.5f}, b[2] = {0.1f, -0.2f}, out[4];
  fm_linear_forward(out, x, w, b, 2, 3, 2, 1);   // x (2,3), w (2,3)
  CHECK_NEAR(-2 + 0.1, out[0], 1e-6);
  CHECK_NEAR(3 - 0.2, out[1], 1e-6);
  CHECK_NEAR(-2 + 0.1, out[2], 1e-6);
  CHECK_NEAR(0 - 0.2, out[3], 1e-6);
}

static void test_bn(void) {
  // one channel, values 1..4: mean 2.5, biased var 1.25, unbiased 5/3
  FmBnAttr a = {1, 0, 0.1f, 0, NULL};
  float x[4] = {1, 2, 3, 4}, y[4], g = 2, be = 1, rm = 0, rv = 1, mean, invstd;
  fm_batchnorm_forward(y, &mean, &invstd, x, &g, &be, &rm, &rv, 4, 1, &a, 1, 1);
  CHECK_NEAR(2.5, mean, 1e-6);
  CHECK_NEAR(1 / sqrt(1.25), invstd, 1e-6);
  CHECK_NEAR(2 * (1 - 2.5) / sqrt(1.25) + 1, y[0], 1e-5);
  CHECK_NEAR(0.25, rm, 1e-6);
  CHECK_NEAR(0.9 + 0.1 * 5.0 / 3.0, rv, 1e-6);
  fm_batchnorm_forward(y, &mean, &invstd, x, &g, &be, &rm, &rv, 4, 1, &a, 0, 1);   // eval
  CHECK_NEAR(2 * (4 - 0.25) / sqrt(0.9 + 0.1 * 5.0 / 3.0) + 1, y[3], 1e-5);
  CHECK_NEAR(0.25, rm, 1e-6);   // eval does not touch running stats
}

// batchnorm on shapes large enough for the threaded, vectorised paths (plane sizes
// off the lane count, a large per-channel offset against cancellation) against a
// double two-pass reference, forward and train-mode backward; results must not
// depend on the thread count.
static void test_bn_large_one(int N, int C, int S) {
  size_t n = (size_t)N * C * S;
  FmBnAttr a = {C, 1e-5f, 0.1f, 0, NULL};
  float *x = rnd(n), *dy = rnd(n), *g = rnd(C), *be = rnd(C);
  float *y[2], *dx[2], st[2][6][64] = {{{0}}};   // mean, invstd, rm, rv, dgamma, dbeta per thread count
  for (size_t i = 0; i < n; i++) x[i] = 100.0f * (float)((i / S) % C) + (1 + (i / S) % 3) * x[i];
  double max_y = 0, max_dx = 0, max_st = 0;
  for (int t = 0; t < 2; t++) {
    int nt = t ? 3 : 1;
    y[t] = malloc(sizeof(float) * n), dx[t] = calloc(n, sizeof(float));
    for (int c = 0; c < C; c++) st[t][2][c] = 0, st[t][3][c] = 1, st[t][4][c] = st[t][5][c] = 0;
    fm_batchnorm_forward(y[t], st[t][0], st[t][1], x, g, be, st[t][2], st[t][3], N, S, &a, 1, nt);
    fm_batchnorm_backward(dx[t], st[t][4], st[t][5], dy, x, st[t][0], st[t][1], g, N, S, &a, 1, nt, 0);
  }
  for (int c = 0; c < C; c++) {
    double m = 0, v = 0, sdy = 0, sdyx = 0, M = (double)N * S;
    for (int b = 0; b < N; b++)
      for (int i = 0; i < S; i++) m += x[((size_t)b * C + c) * S + i];
    m /= M;
    for (int b = 0; b < N; b++)
      for (int i = 0; i < S; i++) v += pow(x[((size_t)b * C + c) * S + i] - m, 2);
    double is = 1 / sqrt(v / M + a.eps);
    for (int b = 0; b < N; b++)
      for (int i = 0; i < S; i++) {
        size_t k = ((size_t)b * C + c) * S + i;
        sdy += dy[k], sdyx += dy[k] * (x[k] - st[0][0][c]) * is;   // x - mean as the op sees it
      }
    for (int b = 0; b < N; b++)
      for (int i = 0; i < S; i++) {
        size_t k = ((size_t)b * C + c) * S + i;
        double xh = (x[k] - m) * is;
        // y = x*(g*is) + b rounds at the size of x*g*is
        max_y = fmax(max_y, fabs(g[c] * xh + be[c] - y[0][k]) / (1 + fabs(g[c] * is * x[k])));
        max_dx = fmax(max_dx, fabs(g[c] * is * (dy[k] - sdy / M - xh * sdyx / M) - dx[0][k]));
      }
    double want[6] = {m, is, 0.1 * m, 0.9 + 0.1 * v / (M - 1), sdyx, sdy};
    for (int j = 0; j < 6; j++)
      max_st = fmax(max_st, fabs(want[j] - st[0][j][c]) / fmax(1, fabs(want[j])));
  }
  if (!(max_y < 1e-6 && max_dx < 1e-5 && max_st < 1e-5))
    fprintf(stderr, "bn %dx%dx%d: max error y %g dx %g stats %g\n", N, C, S, max_y, max_dx, max_st);
  CHECK(max_y < 1e-6 && max_dx < 1e-5 && max_st < 1e-5);
  CHECK(!memcmp(y[0], y[1], sizeof(float) * n) && !memcmp(dx[0], dx[1], sizeof(float) * n));
  CHECK(!memcmp(st[0], st[1], sizeof st[0]));
  free(x), free(dy), free(g), free(be);
  for (int t = 0; t < 2; t++) free(y[t]), free(dx[t]);
}

static void test_bn_large(void) {
  test_bn_large_one(10, 6, 37 * 37);   // plane not a multiple of the lanes; 6 channels on 3 threads
  test_bn_large_one(64, 16, 81);
  test_bn_large_one(500, 50, 3);       // planes shorter than the lanes
}

static void test_pools(void) {
  float x[16], y[4], y9[9];
  int32_t idx[9];
  for (int i = 0; i < 16; i++) x[i] = (float)((i * 7) % 16);   // 4x4 permutation
  FmPoolAttr mp = {2, 2, 2, 2, 0, 0};
  fm_maxpool_forward(y, idx, x, 1, 1, 4, 4, &mp);
  // windows {0,7,12,3}, {14,5,10,1}, {8,15,4,11}, {6,13,2,9}
  CHECK(y[0] == 12 && y[1] == 14 && y[2] == 15 && y[3] == 13);
  CHECK(idx[0] == 4 && idx[1] == 2);
  FmPoolAttr ap = {3, 3, 2, 2, 1, 1};   // padded zeros are counted (count_include_pad)
  fm_avgpool_forward(y9, x, 1, 1, 4, 4, &ap);
  CHECK_NEAR((0 + 7 + 4 + 11) / 9.0, y9[0], 1e-6);
  float g[2];
  fm_gap_forward(g, x, 1, 1, 16);
  CHECK_NEAR(7.5, g[0], 1e-6);
}

static void test_dropout(void) {
  int n = 20000;
  float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n), *m = malloc(sizeof(float) * n);
  for (int i = 0; i < n; i++) x[i] = 1;
  FmRng r;
  fm_rng_seed(&r, 3);
  fm_dropout_forward(y, m, x, 1, n, 0.25f, &r);
  int dropped = 0;
  double sum = 0;
  for (int i = 0; i < n; i++) dropped += y[i] == 0, sum += y[i];
  CHECK(fabs(dropped / (double)n - 0.25) < 0.02);
  CHECK(fabs(sum / n - 1) < 0.03);   // inverted dropout keeps the mean
  // same seed, same mask
  FmRng r2;
  fm_rng_seed(&r2, 3);
  fm_dropout_forward(x, y, x, 1, n, 0.25f, &r2);
  CHECK(memcmp(y, m, sizeof(float) * n) == 0);
  // dropout2d: whole channels
  float a[12], b[12], mask[4];
  for (int i = 0; i < 12; i++) a[i] = 1;
  fm_rng_seed(&r, 9);
  fm_dropout2d_forward(b, mask, a, 2, 2, 3, 0.5f, &r);
  int ok = 1;
  for (int c = 0; c < 4; c++)
    for (int s = 0; s < 3; s++) ok &= b[c * 3 + s] == mask[c] && (mask[c] == 0 || mask[c] == 2);
  CHECK(ok);
  free(x), free(y), free(m);
}

static void test_softmax(void) {
  float x[6] = {1, 2, 3, 0, 0, 0}, p[6], lp[6];
  int labels[2] = {2, 1};
  fm_softmax_forward(p, x, 2, 3);
  CHECK_NEAR(1, p[0] + p[1] + p[2], 1e-6);
  CHECK_NEAR(exp(3) / (exp(1) + exp(2) + exp(3)), p[2], 1e-6);
  fm_log_softmax_forward(lp, x, 2, 3);
  CHECK_NEAR(log(p[1]), lp[1], 1e-6);
  float ce = fm_crossentropy_forward(p, x, labels, 2, 3);
  CHECK_NEAR((-log(exp(3) / (exp(1) + exp(2) + exp(3))) + log(3.0)) / 2, ce, 1e-6);
  // large logits do not overflow
  float big[2] = {1000, -1000}, pb[2];
  int l0 = 1;
  CHECK_NEAR(2000, fm_crossentropy_forward(pb, big, &l0, 1, 2), 1e-2);
}

static void test_rng(void) {
  FmRng a, b;
  fm_rng_seed(&a, 1), fm_rng_seed(&b, 1);
  CHECK(fm_rng_next(&a) == fm_rng_next(&b));
  double s = 0, ss = 0;
  for (int i = 0; i < 20000; i++) { float v = fm_rng_normal(&a); s += v, ss += v * v; }
  CHECK(fabs(s / 20000) < 0.03 && fabs(ss / 20000 - 1) < 0.05);
  float u = 0, lo = 1, hi = 0;
  for (int i = 0; i < 20000; i++) { u = fm_rng_uniform(&a); lo = fminf(lo, u), hi = fmaxf(hi, u); }
  CHECK(lo >= 0 && hi < 1 && lo < 0.01f && hi > 0.99f);
}

// the assign (=) modes of relu, add and batchnorm backward: a gradient buffer full of
// NaN is overwritten with what accumulating into zeros gives
static void test_assign_modes(void) {
  enum { N = 3, C = 5, S = 37 };
  size_t n = (size_t)N * C * S;
  float *x = rnd(n), *dy = rnd(n), *z = calloc(n, sizeof(float)), *g = malloc(sizeof(float) * n);
  float *z2 = calloc(n, sizeof(float)), *g2 = malloc(sizeof(float) * n);
  for (size_t i = 0; i < n; i++) g[i] = g2[i] = NAN;
  fm_relu_backward(z, dy, x, n, 0);
  fm_relu_backward(g, dy, x, n, 1);
  CHECK(maxdiff(z, g, n) == 0);
  for (int a = 0; a < 2; a++) {   // add: one input assigned, the other accumulated
    for (size_t i = 0; i < n; i++) z[i] = z2[i] = 0.5f, g[i] = a ? 0.5f : NAN, g2[i] = a ? NAN : 0.5f;
    fm_add_backward(z, z2, dy, n, 0, 0);
    for (size_t i = 0; i < n; i++) (a ? z2 : z)[i] -= 0.5f;   // the assigned side starts from nothing
    fm_add_backward(g, g2, dy, n, !a, a);
    CHECK(maxdiff(z, g, n) == 0 && maxdiff(z2, g2, n) == 0);
  }
  fm_add_backward(g, NULL, dy, n, 1, 0);
  CHECK(maxdiff(g, dy, n) == 0);
  FmBnAttr ba = {C, 1e-5f, 0.1f, 0, NULL};
  float mean[C], invstd[C], gam[C], dga[C] = {0}, dbe[C] = {0};
  for (int c = 0; c < C; c++) mean[c] = 0.1f * c, invstd[c] = 1.0f + c, gam[c] = 0.5f + c;
  memset(z, 0, sizeof(float) * n);
  for (size_t i = 0; i < n; i++) g[i] = NAN;
  fm_batchnorm_backward(z, dga, dbe, dy, x, mean, invstd, gam, N, S, &ba, 1, 2, 0);
  fm_batchnorm_backward(g, NULL, NULL, dy, x, mean, invstd, gam, N, S, &ba, 1, 2, 1);
  CHECK(maxdiff(z, g, n) == 0);
  free(x), free(dy), free(z), free(g), free(z2), free(g2);
}

int main(void) {
  fm_rng_seed(&rng, 123);
  test_assign_modes();
  test_convs();
  test_conv_bwds();
  setenv("FEWMUL_CONV_IM2COL", "1", 1);   // the im2col + sgemm path for every shape
  test_conv_bwds();
  test_convs();
  unsetenv("FEWMUL_CONV_IM2COL");
  test_linear();
  test_bn();
  test_bn_large();
  test_pools();
  test_dropout();
  test_softmax();
  test_rng();
  return check_done("test_trainer_ops");
}
