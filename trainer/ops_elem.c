/* ops_elem.c - rng, relu, residual add, dropout, dropout2d. */
#include "ops.h"
#include <math.h>

// ---------------------------------------------------------------------------
// rng: splitmix64 (Steele, Lea, Flood 2014)
void fm_rng_seed(FmRng *r, uint64_t seed) { r->s = seed ^ 0x853c49e6748fea9bULL; }

uint64_t fm_rng_next(FmRng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

float fm_rng_uniform(FmRng *r) { return (float)(fm_rng_next(r) >> 40) * (1.0f / 16777216.0f); }

float fm_rng_normal(FmRng *r) {
  double u1 = ((fm_rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);   // (0,1]
  double u2 = (fm_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

// ---------------------------------------------------------------------------
// Sum with 8 independent lanes: GCC vectorises this without -ffast-math (a
// plain `s += x[i]` loop must stay scalar and is latency-bound).
float fm_sumf(const float *x, int n) {
  float acc[8] = {0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) acc[j] += x[i + j];
  float s = 0;
  for (int j = 0; j < 8; j++) s += acc[j];
  for (; i < n; i++) s += x[i];
  return s;
}

// elementwise loops: vectorised, and split over the threads when large enough
// to pay for a parallel region (each element is independent: deterministic)
#define ELEM_PAR_MIN 32768

void fm_relu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > ELEM_PAR_MIN)
  for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0 ? inp[i] : 0;
}

void fm_relu_backward(float *dinp, const float *dout, const float *out, size_t n, int dinp_assign) {
  if (dinp_assign) {
#pragma omp parallel for simd schedule(static) if (n > ELEM_PAR_MIN)
    for (size_t i = 0; i < n; i++) dinp[i] = out[i] > 0 ? dout[i] : 0;
    return;
  }
#pragma omp parallel for simd schedule(static) if (n > ELEM_PAR_MIN)
  for (size_t i = 0; i < n; i++) dinp[i] += out[i] > 0 ? dout[i] : 0;
}

void fm_add_forward(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > ELEM_PAR_MIN)
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

// da_assign / db_assign: da / db written (=) rather than accumulated (a select, not a
// multiply by 0, so whatever the buffer held before cannot leak in as NaN)
void fm_add_backward(float *da, float *db, const float *dout, size_t n, int da_assign, int db_assign) {
  if (da && db) {   // one pass: dout is read once
#pragma omp parallel for simd schedule(static) if (n > ELEM_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
      float g = dout[i];   // loaded once: the store to da[i] might otherwise alias it
      da[i] = da_assign ? g : da[i] + g;
      db[i] = db_assign ? g : db[i] + g;
    }
  } else if (da || db) {
    float *d = da ? da : db;
    int as = da ? da_assign : db_assign;
#pragma omp parallel for simd schedule(static) if (n > ELEM_PAR_MIN)
    for (size_t i = 0; i < n; i++) d[i] = as ? dout[i] : d[i] + dout[i];
  }
}

// ---------------------------------------------------------------------------
// dropout: the mask is drawn serially from rng so results do not depend on
// the thread count.
void fm_dropout_forward(float *out, float *mask, const float *inp, int N, int D, float p, FmRng *rng) {
  size_t n = (size_t)N * D;
  float keep = 1.0f / (1.0f - p);
  for (size_t i = 0; i < n; i++) mask[i] = fm_rng_uniform(rng) < p ? 0.0f : keep;
  for (size_t i = 0; i < n; i++) out[i] = inp[i] * mask[i];
}

void fm_dropout_backward(float *dinp, const float *dout, const float *mask, int N, int D) {
  size_t n = (size_t)N * D;
  for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * mask[i];
}

// inp (N,C,S), mask (N,C)
void fm_dropout2d_forward(float *out, float *mask, const float *inp, int N, int C, int S,
                          float p, FmRng *rng) {
  float keep = 1.0f / (1.0f - p);
  for (long i = 0; i < (long)N * C; i++) {
    mask[i] = fm_rng_uniform(rng) < p ? 0.0f : keep;
    for (int s = 0; s < S; s++) out[i * S + s] = inp[i * S + s] * mask[i];
  }
}

// keyed masks: sample i draws from a generator seeded by (key, id[i])
static FmRng sample_rng(uint64_t key, int id) {
  FmRng r = {key ^ 0x2545f4914f6cdd1dULL};
  r.s = fm_rng_next(&r) ^ (uint64_t)(uint32_t)id;
  fm_rng_next(&r);
  return r;
}

void fm_dropout_forward_keyed(float *out, float *mask, const float *inp, int N, int D, float p,
                              uint64_t key, const int *id) {
  float keep = 1.0f / (1.0f - p);
  for (int n = 0; n < N; n++) {
    FmRng r = sample_rng(key, id[n]);
    float *m = mask + (size_t)n * D;
    for (int i = 0; i < D; i++) m[i] = fm_rng_uniform(&r) < p ? 0.0f : keep;
  }
  size_t total = (size_t)N * D;
  for (size_t i = 0; i < total; i++) out[i] = inp[i] * mask[i];
}

void fm_dropout2d_forward_keyed(float *out, float *mask, const float *inp, int N, int C, int S,
                                float p, uint64_t key, const int *id) {
  float keep = 1.0f / (1.0f - p);
  for (int n = 0; n < N; n++) {
    FmRng r = sample_rng(key, id[n]);
    for (int c = 0; c < C; c++) {
      long i = (long)n * C + c;
      mask[i] = fm_rng_uniform(&r) < p ? 0.0f : keep;
      for (int s = 0; s < S; s++) out[i * S + s] = inp[i * S + s] * mask[i];
    }
  }
}

void fm_dropout2d_backward(float *dinp, const float *dout, const float *mask, int N, int C, int S) {
  for (long i = 0; i < (long)N * C; i++)
    for (int s = 0; s < S; s++) dinp[i * S + s] += dout[i * S + s] * mask[i];
}
