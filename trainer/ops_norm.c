/* ops_norm.c - batchnorm, fixed input normalisation, channel-wise scale.
 * Inputs are (N,C,S) with S = H*W; work is parallel over channels. */
#include "ops.h"
#include <math.h>
#include <stdlib.h>

// Reductions use LANES independent float accumulators (lane j takes elements
// i + j of a plane): vectorised, and not latency-bound on one running sum. The
// float lanes run over a group of planes of about LANE_RUN elements, then are
// added into double lanes, which are summed once per channel: the float sums stay
// short, and the result depends neither on the vector width nor on the thread
// count. Plane tails (S % LANES elements) are summed directly in double. With
// AVX2 the lanes are four registers: GCC at -O2 keeps a C lane array on the
// stack, which halves the speed; the C fallback gives the same bits.
#define LANES 32
#define LANE_RUN 2048
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define LANES_AVX2 1
#endif

// Over np planes p + n*stride, their whole blocks of LANES: a[j] += d and
// b[j] += d*d, d = p[i+j] - K. a and b hold zeros on entry.
static void lanes_shifted(const float *x, size_t stride, int np, int S, float K, float *a, float *b) {
  int nb = S - S % LANES;
#ifdef LANES_AVX2
  __m256 k = _mm256_set1_ps(K), a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  for (int n = 0; n < np; n++) {
    const float *p = x + n * stride;
    for (int i = 0; i < nb; i += LANES) {
      __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(p + i), k), d1 = _mm256_sub_ps(_mm256_loadu_ps(p + i + 8), k);
      __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(p + i + 16), k), d3 = _mm256_sub_ps(_mm256_loadu_ps(p + i + 24), k);
      a0 = _mm256_add_ps(a0, d0), a1 = _mm256_add_ps(a1, d1), a2 = _mm256_add_ps(a2, d2), a3 = _mm256_add_ps(a3, d3);
      b0 = _mm256_fmadd_ps(d0, d0, b0), b1 = _mm256_fmadd_ps(d1, d1, b1);
      b2 = _mm256_fmadd_ps(d2, d2, b2), b3 = _mm256_fmadd_ps(d3, d3, b3);
    }
  }
  _mm256_storeu_ps(a, a0), _mm256_storeu_ps(a + 8, a1), _mm256_storeu_ps(a + 16, a2), _mm256_storeu_ps(a + 24, a3);
  _mm256_storeu_ps(b, b0), _mm256_storeu_ps(b + 8, b1), _mm256_storeu_ps(b + 16, b2), _mm256_storeu_ps(b + 24, b3);
#else
  for (int n = 0; n < np; n++)
    for (int i = 0; i < nb; i += LANES)
      for (int j = 0; j < LANES; j++) { float d = x[n * stride + i + j] - K; a[j] += d, b[j] += d * d; }
#endif
}

// As lanes_shifted: a[j] += g and b[j] += g * (p - m) for g, p from dy, x.
static void lanes_dsums(const float *dy, const float *x, size_t stride, int np, int S, float m,
                        float *a, float *b) {
  int nb = S - S % LANES;
#ifdef LANES_AVX2
  __m256 k = _mm256_set1_ps(m), a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  for (int n = 0; n < np; n++) {
    const float *g = dy + n * stride, *p = x + n * stride;
    for (int i = 0; i < nb; i += LANES) {
      __m256 g0 = _mm256_loadu_ps(g + i), g1 = _mm256_loadu_ps(g + i + 8);
      __m256 g2 = _mm256_loadu_ps(g + i + 16), g3 = _mm256_loadu_ps(g + i + 24);
      a0 = _mm256_add_ps(a0, g0), a1 = _mm256_add_ps(a1, g1), a2 = _mm256_add_ps(a2, g2), a3 = _mm256_add_ps(a3, g3);
      b0 = _mm256_fmadd_ps(g0, _mm256_sub_ps(_mm256_loadu_ps(p + i), k), b0);
      b1 = _mm256_fmadd_ps(g1, _mm256_sub_ps(_mm256_loadu_ps(p + i + 8), k), b1);
      b2 = _mm256_fmadd_ps(g2, _mm256_sub_ps(_mm256_loadu_ps(p + i + 16), k), b2);
      b3 = _mm256_fmadd_ps(g3, _mm256_sub_ps(_mm256_loadu_ps(p + i + 24), k), b3);
    }
  }
  _mm256_storeu_ps(a, a0), _mm256_storeu_ps(a + 8, a1), _mm256_storeu_ps(a + 16, a2), _mm256_storeu_ps(a + 24, a3);
  _mm256_storeu_ps(b, b0), _mm256_storeu_ps(b + 8, b1), _mm256_storeu_ps(b + 16, b2), _mm256_storeu_ps(b + 24, b3);
#else
  for (int n = 0; n < np; n++)
    for (int i = 0; i < nb; i += LANES)
      for (int j = 0; j < LANES; j++) {
        size_t o = n * stride + i + j;
        a[j] += dy[o], b[j] += dy[o] * (x[o] - m);
      }
#endif
}

// planes per float run of the lanes
static int lane_group(int S) { return S >= LANE_RUN ? 1 : LANE_RUN / S; }

// Over the N planes x + n*stride (S each) of one channel: sums of d and d^2,
// d = x - K. With K near the mean, sum d^2 - (sum d)^2/M has little cancellation.
static void channel_shifted_sums(const float *x, size_t stride, int N, int S, float K,
                                 double *sd, double *sdd) {
  double da[LANES] = {0}, db[LANES] = {0}, s = 0, ss = 0;
  int G = lane_group(S);
  for (int n0 = 0; n0 < N; n0 += G) {
    int np = N - n0 < G ? N - n0 : G;
    if (S >= LANES) {
      float a[LANES] = {0}, b[LANES] = {0};
      lanes_shifted(x + n0 * stride, stride, np, S, K, a, b);
      for (int j = 0; j < LANES; j++) da[j] += a[j], db[j] += b[j];
    }
    for (int n = n0; n < n0 + np; n++)
      for (int i = S - S % LANES; i < S; i++) { double d = x[n * stride + i] - K; s += d, ss += d * d; }
  }
  for (int j = 0; j < LANES; j++) s += da[j], ss += db[j];
  *sd = s, *sdd = ss;
}

// Over the N planes of one channel of dy and x: sum dy and sum dy * (x - m).
static void channel_dsums(const float *dy, const float *x, size_t stride, int N, int S, float m,
                          double *sdy, double *sdyx) {
  double da[LANES] = {0}, db[LANES] = {0}, s = 0, t = 0;
  int G = lane_group(S);
  for (int n0 = 0; n0 < N; n0 += G) {
    int np = N - n0 < G ? N - n0 : G;
    if (S >= LANES) {
      float a[LANES] = {0}, b[LANES] = {0};
      lanes_dsums(dy + n0 * stride, x + n0 * stride, stride, np, S, m, a, b);
      for (int j = 0; j < LANES; j++) da[j] += a[j], db[j] += b[j];
    }
    for (int n = n0; n < n0 + np; n++)
      for (int i = S - S % LANES; i < S; i++) {
        size_t o = n * stride + i;
        s += dy[o], t += (double)dy[o] * (x[o] - m);
      }
  }
  for (int j = 0; j < LANES; j++) s += da[j], t += db[j];
  *sdy = s, *sdyx = t;
}

// Both passes below first reduce per channel (threads split the channels; each
// channel is reduced by one thread in a fixed order, so results do not depend on
// the thread count), then stream the tensor in memory order with the threads
// splitting it into contiguous parts. Measured on 2 cores: contiguous halves run
// 1.7x faster than each thread streaming (n, its channels) chunks, and
// streaming channel by channel reads planes C*S floats apart, which for C*S*4 a
// multiple of the L2 way size (16x32x32: 64 KB) all fall into the same L2 sets.
#define BN_CBLOCK 256   // channels reduced before each streaming pass of the backward

// out = x*g + b per plane, threads splitting the N*C planes
static void bn_apply(float *out, const float *inp, const float *mean, const float *invstd,
                     const float *gamma, const float *beta, int N, int C, int S, int nthreads) {
#pragma omp parallel for schedule(static) num_threads(nthreads < 1 ? 1 : nthreads) if ((double)N * C * S > 65536)
  for (long p = 0; p < (long)N * C; p++) {
    int c = (int)(p % C);
    float g = gamma[c] * invstd[c], b = beta[c] - mean[c] * g;
    const float *x = inp + p * S;
    float *y = out + p * S;
#pragma omp simd
    for (int i = 0; i < S; i++) y[i] = x[i] * g + b;
  }
}

// --sync-bn, train mode: sums shifted by the running mean (equal on every process),
// added over processes: acc = [sum(x-K), sum((x-K)^2)] per channel, then the count.
static void bn_forward_sync(float *out, float *mean, float *invstd, const float *inp,
                            const float *gamma, const float *beta, float *running_mean,
                            float *running_var, int N, int S, const FmBnAttr *a, int nthreads) {
  int C = a->C;
  size_t cs = (size_t)C * S;
  double *acc = malloc(sizeof(double) * (2 * (size_t)C + 1));
  if (!acc) abort();
#pragma omp parallel for schedule(static) num_threads(nthreads < 1 ? 1 : nthreads) if ((double)N * S * C > 65536)
  for (int c = 0; c < C; c++)
    channel_shifted_sums(inp + (size_t)c * S, cs, N, S, running_mean[c], &acc[2 * c], &acc[2 * c + 1]);
  acc[2 * C] = (double)N * S;
  a->sync->allreduce(a->sync->ctx, acc, 2 * C + 1);
  double M = acc[2 * C];
  for (int c = 0; c < C; c++) {
    double sd = acc[2 * c], sdd = acc[2 * c + 1];
    double m = running_mean[c] + sd / M, ss = sdd - sd * sd / M;
    if (ss < 0) ss = 0;
    double var = ss / M;
    mean[c] = (float)m;
    invstd[c] = (float)(1.0 / sqrt(var + a->eps));
    float mom = a->momentum;
    running_mean[c] = (1 - mom) * running_mean[c] + mom * (float)m;
    running_var[c] = (1 - mom) * running_var[c] + mom * (float)(M > 1 ? ss / (M - 1) : var);
  }
  free(acc);
  bn_apply(out, inp, mean, invstd, gamma, beta, N, C, S, nthreads);
}

// --sync-bn, train mode: sum(dy) and sum(dy*(x-mean)) of every process
static void bn_backward_sync(float *dinp, float *dgamma, float *dbeta, const float *dout,
                             const float *inp, const float *mean, const float *invstd,
                             const float *gamma, int N, int S, const FmBnAttr *a, int nthreads,
                             int dinp_assign) {
  int C = a->C;
  size_t cs = (size_t)C * S;
  double *acc = malloc(sizeof(double) * (2 * (size_t)C + 1));
  float *coef = malloc(sizeof(float) * 3 * (size_t)C);
  if (!acc || !coef) abort();
#pragma omp parallel for schedule(static) num_threads(nthreads < 1 ? 1 : nthreads) if ((double)N * S * C > 65536)
  for (int c = 0; c < C; c++) {
    channel_dsums(dout + (size_t)c * S, inp + (size_t)c * S, cs, N, S, mean[c], &acc[2 * c], &acc[2 * c + 1]);
    // this process's share of the parameter gradients (the gradient allreduce adds them)
    if (dbeta) dbeta[c] += (float)acc[2 * c];
    if (dgamma && !a->fixed_gamma) dgamma[c] += (float)(acc[2 * c + 1] * invstd[c]);
  }
  acc[2 * C] = (double)N * S;
  a->sync->allreduce(a->sync->ctx, acc, 2 * C + 1);
  float M = (float)acc[2 * C];
  for (int c = 0; c < C; c++) {
    float is = invstd[c], k = gamma[c] * is;
    float mdy = (float)acc[2 * c] / M, mdyx = (float)(acc[2 * c + 1] * is) / M;
    float u = -k * is * mdyx, v = -k * mdy - u * mean[c];
    coef[3 * c] = k, coef[3 * c + 1] = u, coef[3 * c + 2] = v;
  }
  free(acc);
  if (dinp) {
#pragma omp parallel for schedule(static) num_threads(nthreads < 1 ? 1 : nthreads) if ((double)N * S * C > 65536)
    for (long p = 0; p < (long)N * C; p++) {
      int c = (int)(p % C);
      const float *x = inp + p * S, *dy = dout + p * S;
      float *dx = dinp + p * S, k = coef[3 * c], u = coef[3 * c + 1], v = coef[3 * c + 2];
      if (dinp_assign) {
#pragma omp simd
        for (int i = 0; i < S; i++) dx[i] = k * dy[i] + u * x[i] + v;
      } else {
#pragma omp simd
        for (int i = 0; i < S; i++) dx[i] += k * dy[i] + u * x[i] + v;
      }
    }
  }
  free(coef);
}

// inp, out are (N,C,S); mean, invstd, gamma, beta, running_* are (C)
void fm_batchnorm_forward(float *out, float *mean, float *invstd, const float *inp,
                          const float *gamma, const float *beta,
                          float *running_mean, float *running_var,
                          int N, int S, const FmBnAttr *a, int train, int nthreads) {
  if (train && a->sync) {
    bn_forward_sync(out, mean, invstd, inp, gamma, beta, running_mean, running_var, N, S, a, nthreads);
    return;
  }
  int C = a->C;
  size_t cs = (size_t)C * S;
  double M = (double)N * S;
#pragma omp parallel num_threads(nthreads < 1 ? 1 : nthreads) if (M * C > 65536)
  {
#pragma omp for schedule(static)
    for (int c = 0; c < C; c++) {
      if (train) {
        // one pass, shifted by a close estimate of the mean: one element of each
        // sample, spread over the plane (one sample's plane can be far off the mean)
        const float *x0 = inp + (size_t)c * S;
        double k = 0;
        for (int n = 0; n < N; n++) k += x0[n * cs + (size_t)n * S / N];
        float K = (float)(k / N);
        double sd, sdd;
        channel_shifted_sums(x0, cs, N, S, K, &sd, &sdd);
        double m = K + sd / M, ss = sdd - sd * sd / M;
        if (ss < 0) ss = 0;
        double var = ss / M;
        mean[c] = (float)m;
        invstd[c] = (float)(1.0 / sqrt(var + a->eps));
        float mom = a->momentum;
        running_mean[c] = (1 - mom) * running_mean[c] + mom * (float)m;
        running_var[c] = (1 - mom) * running_var[c] + mom * (float)(M > 1 ? ss / (M - 1) : var);
      } else {
        mean[c] = running_mean[c];
        invstd[c] = 1.0f / sqrtf(running_var[c] + a->eps);
      }
    }
#pragma omp for schedule(static)
    for (long p = 0; p < (long)N * C; p++) {
      int c = (int)(p % C);
      float g = gamma[c] * invstd[c], b = beta[c] - mean[c] * g;   // out = x*g + b
      const float *x = inp + p * S;
      float *y = out + p * S;
#pragma omp simd
      for (int i = 0; i < S; i++) y[i] = x[i] * g + b;
    }
  }
}

void fm_batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                           const float *inp, const float *mean, const float *invstd,
                           const float *gamma, int N, int S, const FmBnAttr *a,
                           int train, int nthreads, int dinp_assign) {
  if (train && a->sync) {
    bn_backward_sync(dinp, dgamma, dbeta, dout, inp, mean, invstd, gamma, N, S, a, nthreads, dinp_assign);
    return;
  }
  int C = a->C;
  size_t cs = (size_t)C * S;
  float M = (float)N * S;
  float coef[BN_CBLOCK][3];   // dx = k*dy + u*x + v
  for (int c0 = 0; c0 < C; c0 += BN_CBLOCK) {
    int cb = C - c0 < BN_CBLOCK ? C - c0 : BN_CBLOCK;
#pragma omp parallel num_threads(nthreads < 1 ? 1 : nthreads) if ((double)M * cb > 65536)
    {
#pragma omp for schedule(static)
      for (int c = c0; c < c0 + cb; c++) {
        float mu = mean[c], is = invstd[c];
        // sum(dy) and sum(dy * xhat), one pass over dy and x
        double sdy_d, sdyx_d;
        channel_dsums(dout + (size_t)c * S, inp + (size_t)c * S, cs, N, S, mu, &sdy_d, &sdyx_d);
        float sdy = (float)sdy_d, sdyx = (float)(sdyx_d * is);
        if (dbeta) dbeta[c] += sdy;
        if (dgamma && !a->fixed_gamma) dgamma[c] += sdyx;
        float k = gamma[c] * is;
        // train: dx = k * (dy - mean(dy) - xhat * mean(dy*xhat)); eval: dx = k * dy
        // dx = k*dy - k*mdy - k*is*mdyx*(x - mu) = k*dy + u*x + v
        float mdy = train ? sdy / M : 0, mdyx = train ? sdyx / M : 0;
        float u = -k * is * mdyx, v = -k * mdy - u * mu;
        coef[c - c0][0] = k, coef[c - c0][1] = u, coef[c - c0][2] = v;
      }
      if (dinp) {
#pragma omp for schedule(static)
        for (long p = 0; p < (long)N * cb; p++) {
          int n = (int)(p / cb), cc = (int)(p % cb);
          size_t off = n * cs + (size_t)(c0 + cc) * S;
          const float *x = inp + off, *dy = dout + off;
          float *dx = dinp + off, k = coef[cc][0], u = coef[cc][1], v = coef[cc][2];
          if (dinp_assign) {
#pragma omp simd
            for (int i = 0; i < S; i++) dx[i] = k * dy[i] + u * x[i] + v;
          } else {
#pragma omp simd
            for (int i = 0; i < S; i++) dx[i] += k * dy[i] + u * x[i] + v;
          }
        }
      }
    }
  }
}

void fm_normalize_forward(float *out, const float *inp, const float *mean, const float *std,
                          int N, int C, int S) {
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) {
      const float *x = inp + ((size_t)n * C + c) * S;
      float *y = out + ((size_t)n * C + c) * S, m = mean[c], r = 1.0f / std[c];
      for (int i = 0; i < S; i++) y[i] = (x[i] - m) * r;
    }
}

void fm_normalize_backward(float *dinp, const float *dout, const float *std, int N, int C, int S) {
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) {
      const float *dy = dout + ((size_t)n * C + c) * S;
      float *dx = dinp + ((size_t)n * C + c) * S, r = 1.0f / std[c];
      for (int i = 0; i < S; i++) dx[i] += dy[i] * r;
    }
}

void fm_chscale_forward(float *out, const float *inp, const float *scale, int N, int C, int S) {
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) {
      const float *x = inp + ((size_t)n * C + c) * S;
      float *y = out + ((size_t)n * C + c) * S, k = scale[c];
      for (int i = 0; i < S; i++) y[i] = x[i] * k;
    }
}

void fm_chscale_backward(float *dinp, float *dscale, const float *dout, const float *inp,
                         const float *scale, int N, int C, int S) {
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) {
      const float *x = inp + ((size_t)n * C + c) * S, *dy = dout + ((size_t)n * C + c) * S;
      if (dinp) {
        float *dx = dinp + ((size_t)n * C + c) * S, k = scale[c];
        for (int i = 0; i < S; i++) dx[i] += dy[i] * k;
      }
      if (dscale) {
        float s = 0;
        for (int i = 0; i < S; i++) s += dy[i] * x[i];
        dscale[c] += s;
      }
    }
}
