/* ops_graph.c - the ops an imported ONNX graph needs beyond the built-in models'
 * (ops.h): pointwise activations, a frozen per-channel affine, elementwise
 * product and difference of two tensors, and channel concatenation. */
#include "ops.h"
#include <math.h>
#include <string.h>

#define GRAPH_PAR_MIN 32768

// ---------------------------------------------------------------------------
// activations: out = f(inp); backward reads inp (leaky, clip) or out (sigmoid, tanh)
static float act1(float x, const FmActAttr *a) {
  switch (a->kind) {
  case FM_ACT_LEAKY: return x >= 0 ? x : a->alpha * x;
  case FM_ACT_CLIP: return x < a->lo ? a->lo : x > a->hi ? a->hi : x;
  case FM_ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
  case FM_ACT_TANH: return tanhf(x);
  }
  return x;
}

void fm_act_forward(float *out, const float *inp, size_t n, const FmActAttr *a) {
#pragma omp parallel for schedule(static) if (n > GRAPH_PAR_MIN)
  for (size_t i = 0; i < n; i++) out[i] = act1(inp[i], a);
}

void fm_act_backward(float *dinp, const float *dout, const float *inp, const float *out, size_t n,
                     const FmActAttr *a) {
#pragma omp parallel for schedule(static) if (n > GRAPH_PAR_MIN)
  for (size_t i = 0; i < n; i++) {
    float d;
    switch (a->kind) {
    case FM_ACT_LEAKY: d = inp[i] >= 0 ? 1.0f : a->alpha; break;
    case FM_ACT_CLIP: d = inp[i] < a->lo || inp[i] > a->hi ? 0.0f : 1.0f; break;
    case FM_ACT_SIGMOID: d = out[i] * (1.0f - out[i]); break;
    case FM_ACT_TANH: d = 1.0f - out[i] * out[i]; break;
    default: d = 1.0f;
    }
    dinp[i] += d * dout[i];
  }
}

// ---------------------------------------------------------------------------
// frozen affine: out[n,c,s] = inp[n,c,s] * scale[c] + shift[c]
void fm_affine_forward(float *out, const float *inp, const float *scale, const float *shift, int N, int C, int S) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)N * C * S > GRAPH_PAR_MIN)
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) {
      size_t o = ((size_t)n * C + c) * (size_t)S;
      float k = scale[c], b = shift[c];
      for (int s = 0; s < S; s++) out[o + s] = inp[o + s] * k + b;
    }
}

void fm_affine_backward(float *dinp, const float *dout, const float *scale, int N, int C, int S) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)N * C * S > GRAPH_PAR_MIN)
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) {
      size_t o = ((size_t)n * C + c) * (size_t)S;
      float k = scale[c];
      for (int s = 0; s < S; s++) dinp[o + s] += dout[o + s] * k;
    }
}

// ---------------------------------------------------------------------------
// elementwise product / difference of two tensors of n elements
void fm_eltwise_forward(float *out, const float *a, const float *b, size_t n, FmEltwiseOp op) {
#pragma omp parallel for schedule(static) if (n > GRAPH_PAR_MIN)
  for (size_t i = 0; i < n; i++) out[i] = op == FM_ELT_MUL ? a[i] * b[i] : a[i] - b[i];
}

void fm_eltwise_backward(float *da, float *db, const float *dout, const float *a, const float *b, size_t n,
                         FmEltwiseOp op) {
#pragma omp parallel for schedule(static) if (n > GRAPH_PAR_MIN)
  for (size_t i = 0; i < n; i++) {
    float g = dout[i];
    if (op == FM_ELT_MUL) {
      float av = a[i], bv = b[i];   // read before either gradient is written (a may be b)
      if (da) da[i] += g * bv;
      if (db) db[i] += g * av;
    } else {
      if (da) da[i] += g;
      if (db) db[i] -= g;
    }
  }
}

// ---------------------------------------------------------------------------
// concat along channels: ins[k] is (N, size[k]) per sample; out (N, sum size)
void fm_concat_forward(float *out, const float *const *ins, const size_t *size, int nin, int N) {
  size_t total = 0;
  for (int k = 0; k < nin; k++) total += size[k];
#pragma omp parallel for schedule(static) if (N * total > GRAPH_PAR_MIN)
  for (int n = 0; n < N; n++) {
    size_t o = 0;
    for (int k = 0; k < nin; k++) {
      memcpy(out + (size_t)n * total + o, ins[k] + (size_t)n * size[k], sizeof(float) * size[k]);
      o += size[k];
    }
  }
}

void fm_concat_backward(float *const *dins, const float *dout, const size_t *size, int nin, int N) {
  size_t total = 0;
  for (int k = 0; k < nin; k++) total += size[k];
#pragma omp parallel for schedule(static) if (N * total > GRAPH_PAR_MIN)
  for (int n = 0; n < N; n++) {
    size_t o = 0;
    for (int k = 0; k < nin; k++) {
      if (dins[k]) {
        float *d = dins[k] + (size_t)n * size[k];
        const float *g = dout + (size_t)n * total + o;
        for (size_t i = 0; i < size[k]; i++) d[i] += g[i];
      }
      o += size[k];
    }
  }
}
