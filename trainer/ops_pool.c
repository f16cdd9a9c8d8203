/* ops_pool.c - max pool, average pool, global average pool.
 * Each (n,c) plane is independent; planes are split across OpenMP threads. */
#include "ops.h"
#include <float.h>

// inp (N,C,H,W) -> out, idx (N,C,OH,OW)
void fm_maxpool_forward(float *out, int32_t *idx, const float *inp,
                        int N, int C, int H, int W, const FmPoolAttr *a) {
  int OH = fm_conv_out(H, a->kh, a->sh, a->ph, 1), OW = fm_conv_out(W, a->kw, a->sw, a->pw, 1);
  long planes = (long)N * C;
#pragma omp parallel for schedule(static) if (planes * OH * OW > 32768)
  for (long p = 0; p < planes; p++) {
    const float *x = inp + p * H * W;
    float *y = out + p * OH * OW;
    int32_t *ix = idx + p * OH * OW;
    for (int oy = 0; oy < OH; oy++)
      for (int ox = 0; ox < OW; ox++) {
        float best = -FLT_MAX;
        int bi = -1;
        for (int ki = 0; ki < a->kh; ki++) {
          int iy = oy * a->sh - a->ph + ki;
          if (iy < 0 || iy >= H) continue;
          for (int kj = 0; kj < a->kw; kj++) {
            int jx = ox * a->sw - a->pw + kj;
            if (jx < 0 || jx >= W) continue;
            float v = x[iy * W + jx];
            if (bi < 0 || v > best) best = v, bi = iy * W + jx;
          }
        }
        y[oy * OW + ox] = bi < 0 ? 0 : best;
        ix[oy * OW + ox] = bi;
      }
  }
}

void fm_maxpool_backward(float *dinp, const float *dout, const int32_t *idx,
                         int N, int C, int H, int W, const FmPoolAttr *a) {
  int OH = fm_conv_out(H, a->kh, a->sh, a->ph, 1), OW = fm_conv_out(W, a->kw, a->sw, a->pw, 1);
  long planes = (long)N * C;
#pragma omp parallel for schedule(static) if (planes * OH * OW > 32768)
  for (long p = 0; p < planes; p++) {
    float *dx = dinp + p * H * W;
    const float *dy = dout + p * OH * OW;
    const int32_t *ix = idx + p * OH * OW;
    for (int i = 0; i < OH * OW; i++)
      if (ix[i] >= 0) dx[ix[i]] += dy[i];
  }
}

void fm_avgpool_forward(float *out, const float *inp, int N, int C, int H, int W,
                        const FmPoolAttr *a) {
  int OH = fm_conv_out(H, a->kh, a->sh, a->ph, 1), OW = fm_conv_out(W, a->kw, a->sw, a->pw, 1);
  float r = 1.0f / (a->kh * a->kw);
  long planes = (long)N * C;
#pragma omp parallel for schedule(static) if (planes * OH * OW > 32768)
  for (long p = 0; p < planes; p++) {
    const float *x = inp + p * H * W;
    float *y = out + p * OH * OW;
    for (int oy = 0; oy < OH; oy++)
      for (int ox = 0; ox < OW; ox++) {
        float s = 0;
        for (int ki = 0; ki < a->kh; ki++) {
          int iy = oy * a->sh - a->ph + ki;
          if (iy < 0 || iy >= H) continue;
          for (int kj = 0; kj < a->kw; kj++) {
            int jx = ox * a->sw - a->pw + kj;
            if (jx >= 0 && jx < W) s += x[iy * W + jx];
          }
        }
        y[oy * OW + ox] = s * r;
      }
  }
}

void fm_avgpool_backward(float *dinp, const float *dout, int N, int C, int H, int W,
                         const FmPoolAttr *a) {
  int OH = fm_conv_out(H, a->kh, a->sh, a->ph, 1), OW = fm_conv_out(W, a->kw, a->sw, a->pw, 1);
  float r = 1.0f / (a->kh * a->kw);
  long planes = (long)N * C;
#pragma omp parallel for schedule(static) if (planes * OH * OW > 32768)
  for (long p = 0; p < planes; p++) {
    float *dx = dinp + p * H * W;
    const float *dy = dout + p * OH * OW;
    for (int oy = 0; oy < OH; oy++)
      for (int ox = 0; ox < OW; ox++) {
        float g = dy[oy * OW + ox] * r;
        for (int ki = 0; ki < a->kh; ki++) {
          int iy = oy * a->sh - a->ph + ki;
          if (iy < 0 || iy >= H) continue;
          for (int kj = 0; kj < a->kw; kj++) {
            int jx = ox * a->sw - a->pw + kj;
            if (jx >= 0 && jx < W) dx[iy * W + jx] += g;
          }
        }
      }
  }
}

// inp (N,C,S) -> out (N,C)
void fm_gap_forward(float *out, const float *inp, int N, int C, int S) {
  for (long p = 0; p < (long)N * C; p++) {
    out[p] = fm_sumf(inp + p * S, S) / S;
  }
}

void fm_gap_backward(float *dinp, const float *dout, int N, int C, int S) {
  for (long p = 0; p < (long)N * C; p++) {
    float g = dout[p] / S, *dx = dinp + p * S;
    for (int i = 0; i < S; i++) dx[i] += g;
  }
}
