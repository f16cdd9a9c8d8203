/* ops_norm.c - batchnorm, fixed input normalisation, channel-wise scale.
 * Inputs are (N,C,S) with S = H*W; work is parallel over channels. */
#include "ops.h"
#include <math.h>

// Reductions use 8 independent lanes (see fm_sumf in ops_elem.c).
// sum (x - m)^2
static float sqdev8(const float *x, float m, int n) {
  float acc[8] = {0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) { float d = x[i + j] - m; acc[j] += d * d; }
  float s = 0;
  for (int j = 0; j < 8; j++) s += acc[j];
  for (; i < n; i++) s += (x[i] - m) * (x[i] - m);
  return s;
}

// sum dy * (x - m)
static float dotdev8(const float *dy, const float *x, float m, int n) {
  float acc[8] = {0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) acc[j] += dy[i + j] * (x[i + j] - m);
  float s = 0;
  for (int j = 0; j < 8; j++) s += acc[j];
  for (; i < n; i++) s += dy[i] * (x[i] - m);
  return s;
}

// inp, out are (N,C,S); mean, invstd, gamma, beta, running_* are (C)
void fm_batchnorm_forward(float *out, float *mean, float *invstd, const float *inp,
                          const float *gamma, const float *beta,
                          float *running_mean, float *running_var,
                          int N, int S, const FmBnAttr *a, int train, int nthreads) {
  int C = a->C;
  size_t cs = (size_t)C * S;
  double M = (double)N * S;
#pragma omp parallel for schedule(static) num_threads(nthreads < 1 ? 1 : nthreads) if (M * C > 65536)
  for (int c = 0; c < C; c++) {
    float mu, is;
    if (train) {
      // two passes (mean, then squared deviations); per-plane float sums, double across planes
      double s = 0, ss = 0;
      for (int n = 0; n < N; n++) s += fm_sumf(inp + n * cs + (size_t)c * S, S);
      double m = s / M;
      for (int n = 0; n < N; n++) ss += sqdev8(inp + n * cs + (size_t)c * S, (float)m, S);
      double var = ss / M;
      mu = (float)m;
      is = (float)(1.0 / sqrt(var + a->eps));
      float mom = a->momentum;
      running_mean[c] = (1 - mom) * running_mean[c] + mom * (float)m;
      running_var[c] = (1 - mom) * running_var[c] + mom * (float)(M > 1 ? ss / (M - 1) : var);
    } else {
      mu = running_mean[c];
      is = 1.0f / sqrtf(running_var[c] + a->eps);
    }
    mean[c] = mu, invstd[c] = is;
    float g = gamma[c] * is, b = beta[c] - mu * g;   // out = x*g + b
    for (int n = 0; n < N; n++) {
      const float *x = inp + n * cs + (size_t)c * S;
      float *y = out + n * cs + (size_t)c * S;
      for (int i = 0; i < S; i++) y[i] = x[i] * g + b;
    }
  }
}

void fm_batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                           const float *inp, const float *mean, const float *invstd,
                           const float *gamma, int N, int S, const FmBnAttr *a,
                           int train, int nthreads) {
  int C = a->C;
  size_t cs = (size_t)C * S;
  float M = (float)N * S;
#pragma omp parallel for schedule(static) num_threads(nthreads < 1 ? 1 : nthreads) if (M * C > 65536)
  for (int c = 0; c < C; c++) {
    float mu = mean[c], is = invstd[c];
    // sum(dy) and sum(dy * xhat)
    float sdy = 0, sdyx = 0;
    for (int n = 0; n < N; n++) {
      const float *x = inp + n * cs + (size_t)c * S, *dy = dout + n * cs + (size_t)c * S;
      sdy += fm_sumf(dy, S);
      sdyx += dotdev8(dy, x, mu, S) * is;
    }
    if (dbeta) dbeta[c] += sdy;
    if (dgamma && !a->fixed_gamma) dgamma[c] += sdyx;
    if (!dinp) continue;
    float k = gamma[c] * is;
    // train: dx = k * (dy - mean(dy) - xhat * mean(dy*xhat)); eval: dx = k * dy
    // dx = k*dy - k*mdy - k*is*mdyx*(x - mu) = k*dy + u*x + v
    float mdy = train ? sdy / M : 0, mdyx = train ? sdyx / M : 0;
    float u = -k * is * mdyx, v = -k * mdy - u * mu;
    for (int n = 0; n < N; n++) {
      const float *x = inp + n * cs + (size_t)c * S, *dy = dout + n * cs + (size_t)c * S;
      float *dx = dinp + n * cs + (size_t)c * S;
      for (int i = 0; i < S; i++) dx[i] += k * dy[i] + u * x[i] + v;
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
