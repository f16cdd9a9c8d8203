/* ops_loss.c - softmax, log-softmax, cross-entropy and NLL losses.
 * All take (N,K) row-major rows; losses are means over the batch. */
#include "ops.h"
#include <math.h>

// out[n,:] = softmax(inp[n,:]), max-subtracted for stability
void fm_softmax_forward(float *out, const float *inp, int N, int K) {
  for (int n = 0; n < N; n++) {
    const float *x = inp + (size_t)n * K;
    float *y = out + (size_t)n * K, mx = x[0];
    for (int k = 1; k < K; k++) mx = x[k] > mx ? x[k] : mx;
    double s = 0;
    for (int k = 0; k < K; k++) s += (y[k] = expf(x[k] - mx));
    float r = (float)(1.0 / s);
    for (int k = 0; k < K; k++) y[k] *= r;
  }
}

// dinp += out * (dout - sum(dout * out))
void fm_softmax_backward(float *dinp, const float *dout, const float *out, int N, int K) {
  for (int n = 0; n < N; n++) {
    const float *y = out + (size_t)n * K, *dy = dout + (size_t)n * K;
    float *dx = dinp + (size_t)n * K, s = 0;
    for (int k = 0; k < K; k++) s += dy[k] * y[k];
    for (int k = 0; k < K; k++) dx[k] += y[k] * (dy[k] - s);
  }
}

void fm_log_softmax_forward(float *out, const float *inp, int N, int K) {
  for (int n = 0; n < N; n++) {
    const float *x = inp + (size_t)n * K;
    float *y = out + (size_t)n * K, mx = x[0];
    for (int k = 1; k < K; k++) mx = x[k] > mx ? x[k] : mx;
    double s = 0;
    for (int k = 0; k < K; k++) s += exp((double)x[k] - mx);
    float lse = mx + (float)log(s);
    for (int k = 0; k < K; k++) y[k] = x[k] - lse;
  }
}

// dinp += dout - softmax * sum(dout)
void fm_log_softmax_backward(float *dinp, const float *dout, const float *out, int N, int K) {
  for (int n = 0; n < N; n++) {
    const float *y = out + (size_t)n * K, *dy = dout + (size_t)n * K;
    float *dx = dinp + (size_t)n * K, s = 0;
    for (int k = 0; k < K; k++) s += dy[k];
    for (int k = 0; k < K; k++) dx[k] += dy[k] - expf(y[k]) * s;
  }
}

// loss_n = logsumexp(logits_n) - logits_n[label]: exact even when the softmax underflows
float fm_crossentropy_forward(float *probs, const float *logits, const int *labels, int N, int K) {
  fm_softmax_forward(probs, logits, N, K);
  double loss = 0;
  for (int n = 0; n < N; n++) {
    const float *x = logits + (size_t)n * K;
    float mx = x[0];
    for (int k = 1; k < K; k++) mx = x[k] > mx ? x[k] : mx;
    double s = 0;
    for (int k = 0; k < K; k++) s += exp((double)x[k] - mx);
    loss += mx + log(s) - x[labels[n]];
  }
  return (float)(loss / N);
}

void fm_crossentropy_backward(float *dlogits, const float *probs, const int *labels,
                              int N, int K, float dloss) {
  float r = dloss / N;
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++)
      dlogits[(size_t)n * K + k] += r * (probs[(size_t)n * K + k] - (k == labels[n]));
}

float fm_nll_forward(const float *logp, const int *labels, int N, int K) {
  double loss = 0;
  for (int n = 0; n < N; n++) loss -= logp[(size_t)n * K + labels[n]];
  return (float)(loss / N);
}

void fm_nll_backward(float *dlogp, const int *labels, int N, int K, float dloss) {
  for (int n = 0; n < N; n++) dlogp[(size_t)n * K + labels[n]] -= dloss / N;
}
