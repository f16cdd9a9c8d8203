/* method_quant.c - the quantisers of the training methods (method.h) over plain
 * arrays, and the method settings (names, defaults, checks). */
#include "method.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *names[FM_METHOD_COUNT] = {"none", "ternary", "deepshift-q", "deepshift-ps", "quant"};

void fm_method_defaults(FmMethod *m, FmMethodKind kind) {
  memset(m, 0, sizeof *m);
  m->kind = kind;
  if (kind == FM_METHOD_DEEPSHIFT_Q || kind == FM_METHOD_DEEPSHIFT_PS) m->weight_bits = 5;
  if (kind == FM_METHOD_QUANT) m->weight_bits = 8, m->stochastic = 1, m->quant_mode = FM_QUANT_ALWAYS;
}

int fm_method_kind_parse(const char *name) {
  for (int k = 0; k < FM_METHOD_COUNT; k++)
    if (!strcmp(name, names[k])) return k;
  return -1;
}

const char *fm_method_name(FmMethodKind kind) {
  return kind >= 0 && kind < FM_METHOD_COUNT ? names[kind] : "?";
}

void fm_fixed_bounds(int I, int F, float *lo, float *hi) {
  *lo = (float)-ldexp(1.0, I + F - 1);
  *hi = (float)(ldexp(1.0, I + F - 1) - 1);
}

void fm_fixed_round(const float *x, size_t n, int I, int F, float *y) {
  float lo, hi, up = (float)ldexp(1.0, F), down = (float)ldexp(1.0, -F);
  fm_fixed_bounds(I, F, &lo, &hi);
  for (size_t i = 0; i < n; i++) {
    float v = fm_round_even(x[i] * up);
    y[i] = (v < lo ? lo : v > hi ? hi : v) * down;
  }
}

int fm_method_check(const FmMethod *m, char *err, size_t errlen) {
  int b = m->weight_bits;
  if (m->act_int && m->kind != FM_METHOD_DEEPSHIFT_Q && m->kind != FM_METHOD_DEEPSHIFT_PS) {
    snprintf(err, errlen, "--act-fixed applies to --method deepshift-q and deepshift-ps only");
    return -1;
  }
  if (m->act_int && (m->act_int < 1 || m->act_frac < 0 || m->act_int + m->act_frac > 32)) {
    snprintf(err, errlen, "--act-fixed I.F: needs I >= 1, F >= 0, I + F <= 32 (got %d.%d)", m->act_int, m->act_frac);
    return -1;
  }
  switch (m->kind) {
  case FM_METHOD_NONE: case FM_METHOD_TERNARY: return 0;
  case FM_METHOD_DEEPSHIFT_Q: case FM_METHOD_DEEPSHIFT_PS:
    if (b < 2 || b > 8) {
      snprintf(err, errlen, "--weight-bits: %s needs 2..8 bits (shifts in [-(2^(b-1)-2), 0]), got %d",
               names[m->kind], b);
      return -1;
    }
    return 0;
  case FM_METHOD_QUANT:
    if (m->zeroless ? b < 1 || b > 7 : b < 2 || b > 8) {
      snprintf(err, errlen, "--weight-bits: quant needs %s bits (the grid is exported as int8), got %d",
               m->zeroless ? "1..7 zero-less" : "2..8", b);
      return -1;
    }
    if (!(m->range >= 0) || isinf(m->range)) {
      snprintf(err, errlen, "--quant-range: must be a positive number");
      return -1;
    }
    return 0;
  default:
    snprintf(err, errlen, "unknown training method %d", (int)m->kind);
    return -1;
  }
}

void fm_method_describe(const FmMethod *m, char *buf, size_t n) {
  const char *scope = m->all ? "every conv and linear layer" : "first conv and last linear dense";
  switch (m->kind) {
  case FM_METHOD_TERNARY: snprintf(buf, n, "ternary (TWN, alpha per output channel), %s", scope); break;
  case FM_METHOD_DEEPSHIFT_Q: case FM_METHOD_DEEPSHIFT_PS:
  {
    char act[48] = "";
    if (m->act_int) snprintf(act, sizeof act, ", layer inputs in %d.%d fixed point", m->act_int, m->act_frac);
    snprintf(buf, n, "%s, %d-bit weights (shifts in [%d, 0])%s, %s", names[m->kind], m->weight_bits,
             fm_deepshift_pmin(m->weight_bits), act, scope);
    break;
  }
  case FM_METHOD_QUANT: {
    char range[48];
    if (m->range > 0) snprintf(range, sizeof range, "[-%g, %g]", (double)m->range, (double)m->range);
    else snprintf(range, sizeof range, "[-s, s], s = max|W| at init");
    snprintf(buf, n, "quant, %d-bit%s grid over %s, %s rounding, %s, %s", m->weight_bits,
             m->zeroless ? " zero-less" : "", range, m->stochastic ? "stochastic" : "deterministic",
             m->quant_mode == FM_QUANT_FAKE ? "fake-quant (straight-through)" : "always on the grid", scope);
    break;
  }
  default: snprintf(buf, n, "none"); break;
  }
}

// ---------------------------------------------------------------------------

float fm_round_even(float x) { return nearbyintf(x); }   // default rounding mode: to nearest, ties even

void fm_ternarize(const float *w, int M, size_t K, int8_t *q, float *alpha, float *wq) {
  for (int m = 0; m < M; m++) {
    const float *r = w + (size_t)m * K;
    double sum = 0;
    for (size_t i = 0; i < K; i++) sum += fabsf(r[i]);
    float delta = (float)(0.7 * sum / (double)K);
    double kept = 0;
    size_t nk = 0;
    for (size_t i = 0; i < K; i++)
      if (fabsf(r[i]) > delta) kept += fabsf(r[i]), nk++;
    float a = nk ? (float)(kept / (double)nk) : 0.0f;
    alpha[m] = a;
    for (size_t i = 0; i < K; i++) {
      int t = r[i] > delta ? 1 : r[i] < -delta ? -1 : 0;
      if (q) q[(size_t)m * K + i] = (int8_t)t;
      if (wq) wq[(size_t)m * K + i] = (float)t * a;
    }
  }
}

/* Shifts lie in [-(2^(b-1) - 2), 0]; below 2 bits only shift 0 remains. */
int fm_deepshift_pmin(int bits) { return bits < 2 ? 0 : -((1 << (bits - 1)) - 2); }

static void pow2_one(float s, float p, int pmin, size_t i, int8_t *sign, int8_t *shift, float *wq) {
  int sh = p > 0 ? 0 : p >= (float)pmin ? (int)p : pmin;   // NaN: pmin
  int sg = s > 0 ? 1 : s < 0 ? -1 : 0;
  if (sign) sign[i] = (int8_t)sg;
  if (shift) shift[i] = (int8_t)sh;
  if (wq) wq[i] = (float)sg * ldexpf(1.0f, sh);
}

void fm_pow2_round(const float *w, size_t n, int pmin, int8_t *sign, int8_t *shift, float *wq) {
  for (size_t i = 0; i < n; i++) {
    float a = fabsf(w[i]);
    float p = a > 0 ? fm_round_even(log2f(a)) : (float)pmin;
    pow2_one(w[i], p, pmin, i, sign, shift, wq);
  }
}

void fm_pow2_ps(const float *P, const float *S, size_t n, int pmin, int8_t *sign, int8_t *shift,
                float *wq) {
  for (size_t i = 0; i < n; i++) pow2_one(fm_round_even(S[i]), fm_round_even(P[i]), pmin, i, sign, shift, wq);
}

void fm_quant_grid_range(int bits, int zeroless, int *kmin, int *kmax) {
  int h = 1 << (bits - 1);
  *kmin = -h;
  *kmax = zeroless ? h : h - 1;
}

float fm_quant_step(float s, int bits) { return s / (float)(1 << (bits - 1)); }

int fm_quant_round(float x, float step, int bits, int zeroless, FmRng *rng) {
  int kmin, kmax;
  fm_quant_grid_range(bits, zeroless, &kmin, &kmax);
  float u = x / step;
  if (!(u > (float)kmin)) return kmin;   // NaN too
  if (u >= (float)kmax) return kmax;
  // neighbouring grid points lo <= u < hi
  float lo = floorf(u), hi = lo + 1;
  if (zeroless && lo > -1 && lo < 1) lo = -1, hi = 1;           // u in [0, 1): between -1 and 1
  else if (zeroless && hi == 0) hi = 1;                          // u in [-1, 0): between -1 and 1
  if (rng) return (int)(fm_rng_uniform(rng) < (u - lo) / (hi - lo) ? hi : lo);
  if (!zeroless || lo != -1 || hi != 1) return (int)fm_round_even(u);
  return u < 0 ? -1 : 1;
}

void fm_quant_array(const float *w, size_t n, float step, int bits, int zeroless, FmRng *rng,
                    int8_t *k, float *wq) {
  for (size_t i = 0; i < n; i++) {
    int v = fm_quant_round(w[i], step, bits, zeroless, rng);
    if (k) k[i] = (int8_t)v;
    if (wq) wq[i] = (float)v * step;
  }
}
