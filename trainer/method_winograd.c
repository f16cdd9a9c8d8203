/* method_winograd.c - Winograd-aware conv layers (method_winograd.h): Cook-Toom transforms,
 * building (explicit or through the FmNetOpts.method hook), forward/backward with
 * gradients for W and the flex transforms, b-bit fake quantisation of the Winograd-domain
 * operands, and the ONNX form.
 *
 * Layouts, with a = m + 2, A2 = a*a, T = tiles per sample, NT = n*T:
 *   U  (A2, K, C)     G W Gt per (k, c) at [xi*a+nu][k][c]
 *   V  (A2, C, NT)    Bt d Btt per (c, sample, tile)
 *   M  (A2, K, NT)    U[xi nu] V[xi nu], one (K x C)(C x NT) gemm per Winograd position
 * aux: U (fixed) | per sample: V, M.  workspace: dM, dV (n), dU. */
#include "method_winograd.h"
#include "onnx/onnx.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T(id) (&net->tensors[(id)])
#define WINO_EPS 1e-12f

static float *pdata(const FmNet *net, const FmLayer *l, int k) { return l->param[k] >= 0 ? net->params[l->param[k]].data : NULL; }
static void set_err(FmNet *net, const char *msg) {
  if (!net->err[0]) snprintf(net->err, sizeof net->err, "%s", msg);
}

// --- Cook-Toom transforms --------------------------------------------------------------

int fm_wino_transforms(int m, float *Bt, float *G, float *At) {
  static const double p2[] = {0, 1, -1}, p4[] = {0, 1, -1, 2, -2}, p6[] = {0, 1, -1, 2, -2, 0.5, -0.5};
  const double *pts = m == 2 ? p2 : m == 4 ? p4 : m == 6 ? p6 : NULL;
  if (!pts) return -1;
  int n = m + 2, nf = n - 1;
  double V[8][16], f[8];
  // V (n x n): rows = evaluation points of a degree n-1 polynomial (inf: its leading coefficient),
  // with the identity on the right for Gauss-Jordan inversion
  for (int j = 0; j < n; j++)
    for (int l = 0; l < 2 * n; l++)
      V[j][l] = l >= n ? (l - n == j) : j < nf ? pow(pts[j], l) : (l == n - 1);
  for (int c = 0; c < n; c++) {
    int piv = c;
    for (int r = c + 1; r < n; r++) if (fabs(V[r][c]) > fabs(V[piv][c])) piv = r;
    for (int l = 0; l < 2 * n; l++) { double t = V[c][l]; V[c][l] = V[piv][l], V[piv][l] = t; }
    double d = V[c][c];
    for (int l = 0; l < 2 * n; l++) V[c][l] /= d;
    for (int r = 0; r < n; r++) {
      if (r == c || V[r][c] == 0) continue;
      double s = V[r][c];
      for (int l = 0; l < 2 * n; l++) V[r][l] -= s * V[c][l];
    }
  }
  for (int j = 0; j < n; j++) {   // f_j = prod_{l != j} (p_j - p_l): moved from G into Bt
    f[j] = 1;
    if (j < nf)
      for (int l = 0; l < nf; l++) if (l != j) f[j] *= pts[j] - pts[l];
  }
  for (int j = 0; j < n; j++)
    for (int l = 0; l < n; l++) Bt[j * n + l] = (float)(f[j] * V[l][n + j]);   // f_j * inv(V)^T
  for (int j = 0; j < n; j++)
    for (int k = 0; k < 3; k++) G[j * 3 + k] = (float)(j < nf ? pow(pts[j], k) / f[j] : (k == 2));
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) At[i * n + j] = (float)(j < nf ? pow(pts[j], i) : (i == m - 1));
  return 0;
}

// --- geometry ------------------------------------------------------------------------

typedef struct {
  int m, a, A2, C, K, H, W, p, OH, OW, th, tw, T;
} Geom;

static void geom(const FmNet *net, const FmLayer *l, Geom *g) {
  const FmTensor *x = &net->tensors[l->in[0]];
  g->m = l->a.conv.oph, g->a = g->m + 2, g->A2 = g->a * g->a;
  g->C = x->c, g->K = l->a.conv.cout, g->H = x->h, g->W = x->w, g->p = l->a.conv.ph;
  g->OH = g->H + 2 * g->p - 2, g->OW = g->W + 2 * g->p - 2;
  g->th = (g->OH + g->m - 1) / g->m, g->tw = (g->OW + g->m - 1) / g->m, g->T = g->th * g->tw;
}

static int layer_bits(const FmLayer *l) { return l->a.conv.opw; }

int fm_wino_eligible(const FmConvAttr *a) {
  return a->kh == 3 && a->kw == 3 && a->sh == 1 && a->sw == 1 && a->dh == 1 && a->dw == 1 && a->groups == 1 &&
         a->ph == a->pw && a->ph >= 0 && a->ph <= 2;
}

// --- small matrix helpers --------------------------------------------------------------

// C (r x c) (+)= op(A) (r x k) op(B) (k x c); op transposes when ta / tb
static void smm(float *C, const float *A, int ta, const float *B, int tb, int r, int k, int c, int acc) {
  for (int i = 0; i < r; i++)
    for (int j = 0; j < c; j++) {
      float s = 0;
      for (int l = 0; l < k; l++) s += (ta ? A[l * r + i] : A[i * k + l]) * (tb ? B[j * k + l] : B[l * c + j]);
      C[i * c + j] = acc ? C[i * c + j] + s : s;
    }
}

// Z (r x r) = X S Xt, S (k x k), X (r x k)
static void sandwich(float *Z, const float *X, const float *S, int r, int k, float *tmp) {
  smm(tmp, X, 0, S, 0, r, k, k, 0);
  smm(Z, tmp, 0, X, 1, r, k, r, 0);
}
// Z (k x k) += Xt S X, S (r x r), X (r x k)
static void sandwich_t(float *Z, const float *X, const float *S, int r, int k, float *tmp) {
  smm(tmp, X, 1, S, 0, k, r, r, 0);
  smm(Z, tmp, 0, X, 0, k, r, k, 1);
}
// dX (r x k) += dZ X S^T + dZ^T X S, the gradient of Z = X S Xt
static void sandwich_dx(float *dX, const float *X, const float *S, const float *dZ, int r, int k, float *tmp) {
  smm(tmp, dZ, 0, X, 0, r, r, k, 0);      // dZ X (r x k)
  smm(dX, tmp, 0, S, 1, r, k, k, 1);
  smm(tmp, dZ, 1, X, 0, r, r, k, 0);      // dZ^T X
  smm(dX, tmp, 0, S, 0, r, k, k, 1);
}

// --- quantisation ------------------------------------------------------------------------

static float qscale(float maxabs, int bits) {
  return fmaxf(maxabs, WINO_EPS) / (float)((1 << (bits - 1)) - 1);
}

void fm_wino_quantize(float *x, size_t n, int bits) {
  if (bits <= 0) return;
  float mx = 0;
  for (size_t i = 0; i < n; i++) mx = fmaxf(mx, fabsf(x[i]));
  float s = qscale(mx, bits);
  for (size_t i = 0; i < n; i++) x[i] = fm_round_even(x[i] / s) * s;
}

// V (A2, C, NT): sample j's values are V[q][c][j*T .. j*T + T)
static void quantize_v(float *V, const Geom *g, int n, int bits) {
  size_t NT = (size_t)n * g->T, rows = (size_t)g->A2 * g->C;
  for (int j = 0; j < n; j++) {
    float mx = 0;
    for (size_t r = 0; r < rows; r++)
      for (int t = 0; t < g->T; t++) mx = fmaxf(mx, fabsf(V[r * NT + (size_t)j * g->T + t]));
    float s = qscale(mx, bits);
    for (size_t r = 0; r < rows; r++)
      for (int t = 0; t < g->T; t++) {
        float *v = &V[r * NT + (size_t)j * g->T + t];
        *v = fm_round_even(*v / s) * s;
      }
  }
}

// --- building --------------------------------------------------------------------------

static void wf(FmNet *net, FmLayer *l, int n, int train);
static void wb(FmNet *net, FmLayer *l, int n);
static size_t wws(const FmNet *net, const FmLayer *l, int n);
static const FmLayerOps wino_ops = {FM_LAYER_CUSTOM, "winograd_conv2d", wf, wb, wws};

int fm_wino_layer(const FmLayer *l) { return l->ops == &wino_ops; }

static int transform_group(FmNet *net, int flex) {
  if (!flex) return 1;   // "frozen"
  for (int g = 0; g < net->ngroups; g++)
    if (!strcmp(net->groups[g].name, "winograd")) return g;
  return fm_net_add_group(net, "winograd", 1.0f, 0.0f, 0);   // no weight decay on the transforms
}

static int add_transform(FmNet *net, int li, const char *name, int r, int c, const float *v, int group) {
  int s[2] = {r, c};
  int id = fm_net_add_param(net, li, name, s, 2, FM_INIT_DATA, 0.0f);
  if (id < 0) return -1;
  net->params[id].init_data = malloc(sizeof(float) * (size_t)(r * c));
  if (!net->params[id].init_data) return -1;
  memcpy(net->params[id].init_data, v, sizeof(float) * (size_t)(r * c));
  fm_net_set_param_group(net, id, group);
  return id;
}

int fm_net_winograd_conv2d(FmNet *net, int x, const FmConvAttr *attr, int m, int flex, int bits, int bias) {
  if (x < 0) return -1;
  FmConvAttr a = *attr;
  const FmTensor t = *T(x);
  a.cin = t.c;
  float Bt[64], G[24], At[48];
  if (!fm_wino_eligible(&a) || fm_wino_transforms(m, Bt, G, At) || bits < 0 || bits == 1 || bits > 16 ||
      t.h + 2 * a.ph < 3 || t.w + 2 * a.pw < 3) {
    char msg[160];
    snprintf(msg, sizeof msg, "winograd_conv2d: needs a 3x3 stride-1 conv (pad <= 2, groups 1), tile 2/4/6, "
             "bits 0 or 2..16 (got k %d, s %d, tile %d, bits %d)", a.kh, a.sh, m, bits);
    set_err(net, msg);
    return -1;
  }
  int A = m + 2;
  a.oph = m, a.opw = bits;
  int li = fm_net_add_layer(net, &wino_ops, &x, 1, a.cout, t.h + 2 * a.ph - 2, t.w + 2 * a.pw - 2, 0);
  if (li < 0) return -1;
  net->layers[li].a.conv = a;
  float bound = 1.0f / sqrtf((float)(a.cin * 9));
  int ws[4] = {a.cout, a.cin, 3, 3}, bs[1] = {a.cout};
  fm_net_add_param(net, li, "weight", ws, 4, FM_INIT_UNIFORM, bound);
  if (bias) fm_net_add_param(net, li, "bias", bs, 1, FM_INIT_UNIFORM, bound);
  else net->layers[li].nparam = 2;
  int grp = transform_group(net, flex);
  if (grp < 0 || add_transform(net, li, "Bt", A, A, Bt, grp) < 0 || add_transform(net, li, "G", A, 3, G, grp) < 0 ||
      add_transform(net, li, "At", m, A, At, grp) < 0)
    return -1;
  FmLayer *l = &net->layers[li];
  Geom g;
  geom(net, l, &g);
  l->aux_fixed = (size_t)g.A2 * g.K * g.C;
  l->aux_per_sample = (size_t)g.A2 * g.T * (size_t)(g.C + g.K);
  return l->out;
}

// a layer through the normal builders with the method switched off
static int dense(FmNet *net, int x, const FmConvAttr *a, int conv, int out, int bias) {
  FmMethodKind k = net->method.kind;
  net->method.kind = FM_METHOD_NONE;
  int y = conv ? fm_net_conv2d_ex(net, x, a, bias) : fm_net_linear(net, x, out, bias);
  net->method.kind = k;
  return y;
}

int fm_wino_method_conv2d(FmNet *net, int x, const FmConvAttr *a, int bias) {
  int first = 1;
  for (int i = 0; i < net->nlayers && first; i++)
    first = net->layers[i].kind != FM_LAYER_CONV2D && !fm_wino_layer(&net->layers[i]);
  if (!fm_wino_eligible(a) || (first && !net->method.all)) return dense(net, x, a, 1, 0, bias);
  int m = net->method.wino_tile ? net->method.wino_tile : 4;
  return fm_net_winograd_conv2d(net, x, a, m, net->method.wino_flex, net->method.wino_bits, bias);
}

int fm_wino_method_linear(FmNet *net, int x, int out, int bias) { return dense(net, x, NULL, 0, out, bias); }

int fm_wino_check(const FmMethod *m, char *err, size_t errlen) {
  int t = m->wino_tile ? m->wino_tile : 4, b = m->wino_bits;
  if (t != 2 && t != 4 && t != 6) { snprintf(err, errlen, "--tile: F(2x2,3x3), F(4x4,3x3) or F(6x6,3x3): 2, 4 or 6, got %d", t); return -1; }
  if (b < 0 || b == 1 || b > 16) { snprintf(err, errlen, "--bits: 0 (float) or 2..16, got %d", b); return -1; }
  return 0;
}

void fm_wino_describe(const FmMethod *m, char *buf, size_t n) {
  char q[32] = "float";
  int t = m->wino_tile ? m->wino_tile : 4;
  if (m->wino_bits) snprintf(q, sizeof q, "%d-bit", m->wino_bits);
  snprintf(buf, n, "winograd F(%dx%d,3x3), %s transforms, %s Winograd domain, other convs and linears dense%s",
           t, t, m->wino_flex ? "flex (learned)" : "static Cook-Toom", q,
           m->all ? "" : ", first conv dense");
}

// --- forward / backward ------------------------------------------------------------------

typedef struct {
  Geom g;
  float *U, *V, *M;                 // aux
  const float *W, *Bt, *G, *At;
} View;

static void view(FmNet *net, FmLayer *l, int n, View *v) {
  geom(net, l, &v->g);
  v->U = l->aux;
  v->V = v->U + (size_t)v->g.A2 * v->g.K * v->g.C;
  v->M = v->V + (size_t)v->g.A2 * v->g.C * v->g.T * n;
  v->W = pdata(net, l, 0), v->Bt = pdata(net, l, 2), v->G = pdata(net, l, 3), v->At = pdata(net, l, 4);
}

static size_t wws(const FmNet *net, const FmLayer *l, int n) {
  Geom g;
  geom(net, l, &g);
  return (size_t)g.A2 * ((size_t)n * g.T * (g.K + g.C) + (size_t)g.K * g.C);
}

// input tile (a x a) of plane img (H x W) at tile (ti, tj), zero outside
static void get_tile(float *d, const float *img, const Geom *g, int ti, int tj) {
  int r0 = ti * g->m - g->p, c0 = tj * g->m - g->p;
  for (int i = 0; i < g->a; i++)
    for (int j = 0; j < g->a; j++) {
      int r = r0 + i, c = c0 + j;
      d[i * g->a + j] = r >= 0 && r < g->H && c >= 0 && c < g->W ? img[r * g->W + c] : 0.0f;
    }
}

static void wf(FmNet *net, FmLayer *l, int n, int train) {
  (void)train;
  View v;
  view(net, l, n, &v);
  const Geom *g = &v.g;
  FmTensor *x = T(l->in[0]), *y = T(l->out);
  const float *bias = pdata(net, l, 1);
  int a = g->a, m = g->m, A2 = g->A2, bits = layer_bits(l);
  size_t NT = (size_t)n * g->T;
  float d[64], z[64], tmp[64];
  for (int k = 0; k < g->K; k++)   // U = G W Gt
    for (int c = 0; c < g->C; c++) {
      sandwich(z, v.G, v.W + ((size_t)k * g->C + c) * 9, a, 3, tmp);
      for (int q = 0; q < A2; q++) v.U[((size_t)q * g->K + k) * g->C + c] = z[q];
    }
  fm_wino_quantize(v.U, (size_t)A2 * g->K * g->C, bits);
  // quantised: V as the exported body computes it, KB = Bt (x) Bt rounded to float, V = KB vec(d),
  // so that values on a rounding boundary round as in ONNX Runtime far more often
  float KB[64 * 64];
  if (bits)
    for (int q = 0; q < A2; q++)
      for (int e = 0; e < A2; e++) KB[q * A2 + e] = v.Bt[(q / a) * a + e / a] * v.Bt[(q % a) * a + e % a];
  for (int j = 0; j < n; j++)   // V = Bt d Btt
    for (int c = 0; c < g->C; c++) {
      const float *img = x->data + ((size_t)j * g->C + c) * g->H * g->W;
      for (int ti = 0; ti < g->th; ti++)
        for (int tj = 0; tj < g->tw; tj++) {
          get_tile(d, img, g, ti, tj);
          if (bits) smm(z, KB, 0, d, 0, A2, A2, 1, 0);
          else sandwich(z, v.Bt, d, a, a, tmp);
          size_t col = (size_t)j * g->T + ti * g->tw + tj;
          for (int q = 0; q < A2; q++) v.V[((size_t)q * g->C + c) * NT + col] = z[q];
        }
    }
  if (bits) quantize_v(v.V, g, n, bits);
  for (int q = 0; q < A2; q++)   // M = U V per Winograd position
    fm_gemm(0, 0, g->K, (int)NT, g->C, 1.0f, v.U + (size_t)q * g->K * g->C, g->C, v.V + (size_t)q * g->C * NT,
            (int)NT, 0.0f, v.M + (size_t)q * g->K * NT, (int)NT, net->threads);
  for (int j = 0; j < n; j++)   // Y = At M Att, cropped
    for (int k = 0; k < g->K; k++) {
      float *out = y->data + ((size_t)j * g->K + k) * g->OH * g->OW, b = bias ? bias[k] : 0.0f;
      for (int ti = 0; ti < g->th; ti++)
        for (int tj = 0; tj < g->tw; tj++) {
          size_t col = (size_t)j * g->T + ti * g->tw + tj;
          for (int q = 0; q < A2; q++) d[q] = v.M[((size_t)q * g->K + k) * NT + col];
          sandwich(z, v.At, d, m, a, tmp);
          for (int p = 0; p < m && ti * m + p < g->OH; p++)
            for (int s = 0; s < m && tj * m + s < g->OW; s++) out[(ti * m + p) * g->OW + tj * m + s] = z[p * m + s] + b;
        }
    }
}

static float *tgrad(FmNet *net, FmLayer *l, int k) {
  const FmParam *p = &net->params[l->param[k]];
  return net->groups[p->group].frozen ? NULL : p->grad;
}

static void wb(FmNet *net, FmLayer *l, int n) {
  View v;
  view(net, l, n, &v);
  const Geom *g = &v.g;
  FmTensor *x = T(l->in[0]), *y = T(l->out);
  int a = g->a, m = g->m, A2 = g->A2;
  size_t NT = (size_t)n * g->T;
  float *dM = net->work, *dV = dM + (size_t)A2 * g->K * NT, *dU = dV + (size_t)A2 * g->C * NT;
  float *dW = net->params[l->param[0]].grad, *db = l->param[1] >= 0 ? net->params[l->param[1]].grad : NULL;
  float *dBt = tgrad(net, l, 2), *dG = tgrad(net, l, 3), *dAt = tgrad(net, l, 4);
  float d[64], z[64], tmp[64], dy[64];
  for (int j = 0; j < n; j++)   // dM = Att dY At per tile; dAt += dY At Mt + dYt At M
    for (int k = 0; k < g->K; k++) {
      const float *go = y->grad + ((size_t)j * g->K + k) * g->OH * g->OW;
      for (int ti = 0; ti < g->th; ti++)
        for (int tj = 0; tj < g->tw; tj++) {
          size_t col = (size_t)j * g->T + ti * g->tw + tj;
          for (int p = 0; p < m; p++)
            for (int s = 0; s < m; s++) {
              int r = ti * m + p, c = tj * m + s;
              dy[p * m + s] = r < g->OH && c < g->OW ? go[r * g->OW + c] : 0.0f;
              if (db && r < g->OH && c < g->OW) db[k] += dy[p * m + s];
            }
          memset(z, 0, sizeof(float) * (size_t)A2);
          sandwich_t(z, v.At, dy, m, a, tmp);
          for (int q = 0; q < A2; q++) dM[((size_t)q * g->K + k) * NT + col] = z[q];
          if (dAt) {
            for (int q = 0; q < A2; q++) d[q] = v.M[((size_t)q * g->K + k) * NT + col];
            sandwich_dx(dAt, v.At, d, dy, m, a, tmp);
          }
        }
    }
  for (int q = 0; q < A2; q++) {   // dV = Ut dM, dU = dM Vt (straight through the quantisers)
    const float *Uq = v.U + (size_t)q * g->K * g->C, *Vq = v.V + (size_t)q * g->C * NT, *dMq = dM + (size_t)q * g->K * NT;
    fm_gemm(1, 0, g->C, (int)NT, g->K, 1.0f, Uq, g->C, dMq, (int)NT, 0.0f, dV + (size_t)q * g->C * NT, (int)NT, net->threads);
    fm_gemm(0, 1, g->K, g->C, (int)NT, 1.0f, dMq, (int)NT, Vq, (int)NT, 0.0f, dU + (size_t)q * g->K * g->C, g->C, net->threads);
  }
  for (int k = 0; k < g->K; k++)   // dW += Gt dU G; dG += dU G Wt + dUt G W
    for (int c = 0; c < g->C; c++) {
      for (int q = 0; q < A2; q++) z[q] = dU[((size_t)q * g->K + k) * g->C + c];
      const float *w = v.W + ((size_t)k * g->C + c) * 9;
      if (dW) sandwich_t(dW + ((size_t)k * g->C + c) * 9, v.G, z, a, 3, tmp);
      if (dG) sandwich_dx(dG, v.G, w, z, a, 3, tmp);
    }
  if (!x->grad && !dBt) return;
  for (int j = 0; j < n; j++)   // dd = Btt dV Bt scattered into dx; dBt += dV Bt dt + dVt Bt d
    for (int c = 0; c < g->C; c++) {
      size_t plane = ((size_t)j * g->C + c) * g->H * g->W;
      for (int ti = 0; ti < g->th; ti++)
        for (int tj = 0; tj < g->tw; tj++) {
          size_t col = (size_t)j * g->T + ti * g->tw + tj;
          for (int q = 0; q < A2; q++) dy[q] = dV[((size_t)q * g->C + c) * NT + col];
          if (dBt) {
            get_tile(d, x->data + plane, g, ti, tj);
            sandwich_dx(dBt, v.Bt, d, dy, a, a, tmp);
          }
          if (!x->grad) continue;
          memset(z, 0, sizeof(float) * (size_t)A2);
          sandwich_t(z, v.Bt, dy, a, a, tmp);
          int r0 = ti * m - g->p, c0 = tj * m - g->p;
          float *gi = x->grad + plane;
          for (int i = 0; i < a; i++)
            for (int s = 0; s < a; s++) {
              int r = r0 + i, cc = c0 + s;
              if (r >= 0 && r < g->H && cc >= 0 && cc < g->W) gi[r * g->W + cc] += z[i * a + s];
            }
        }
    }
}

// --- ONNX form (trainer/export.c calls these) ------------------------------------------
//
// WinogradConv(X, W [K,C,3,3], Bt [a,a], G [a,3], At [m,a]) with attributes tile m, pads,
// bits, and, derived from them and the input size, the shapes its body reads:
//   tile_strides [m, m], tile_pads [p, p, th*m+2-H-p, tw*m+2-W-p] (the tiles cover the output),
//   v_shape [-1, C, a*a, T], y_shape [m, m, -1, K, th, tw], full_shape [0, 0, th*m, tw*m],
//   out_size [OH, OW].
// Body (standard ops, opset 13):
//   U  = Transpose(Reshape(G W Gt, [0,0,-1]), [2,0,1])                 (a², K, C)
//   KB = Reshape(Unsqueeze(Bt,[1,3]) * Unsqueeze(Bt,[0,2]), [-1,1,0,0]) (a², 1, a, a): Bt⊗Bt
//   V  = Conv<tile_strides, tile_pads>(Reshape(X, [-1,1,0,0]), KB)     (N*C, a², th, tw)
//   V  = Transpose(Reshape(V, v_shape), [2,0,1,3])                      (a², N, C, T)
//   [bits > 0: U, V = Round(x / s) * s, s = Max(ReduceMax|x|, 1e-12) / (2^(b-1)-1),
//    one s for U, one per sample (ReduceMax over axes 0, 2, 3) for V]
//   M  = MatMul(Unsqueeze(U, [1]), V)                                   (a², N, K, T)
//   Y  = MatMul(Flatten(At⊗At, 2), Flatten(M, 1))                       (m², N*K*T)
//   Y  = Slice(Reshape(Transpose(Reshape(Y, y_shape), [2,3,4,0,5,1]), full_shape), 0, out_size)
// A bias is an Add after the node (the exporter never passes the optional B input).

static Tensor *gt(Graph *g, const char *name, int rank, const int64_t *dims) {
  Tensor *t = fm_tensor_new(g, name);
  t->dtype = FM_F32, t->rank = rank;
  memcpy(t->dims, dims, sizeof(int64_t) * (size_t)rank);
  return t;
}

static Tensor *pconst(Graph *g, const FmParam *p) {
  int64_t d[4];
  for (int i = 0; i < p->ndim; i++) d[i] = p->shape[i];
  return fm_tensor_const(g, p->name, FM_F32, p->ndim, d, p->data);
}

void fm_wino_export_nodes(Graph *g, const FmNet *net, const FmLayer *l, Tensor *x, Tensor *y) {
  Geom w;
  geom(net, l, &w);
  const FmParam *bias = fm_layer_param(net, l, 1);
  Tensor *out = y;
  if (bias) out = gt(g, fm_sprintf(&g->arena, "%s_nobias", l->name), 4, (int64_t[]){-1, w.K, w.OH, w.OW});
  Node *n = fm_node_new(g, fm_op_lookup("ai.fewmul", "WinogradConv"), l->name, 5, 1);
  n->op_type = "WinogradConv", n->domain = "ai.fewmul";
  n->out[0] = out, out->producer = n;
  n->in[0] = x;
  for (int k = 0; k < 4; k++) n->in[k + 1] = pconst(g, fm_layer_param(net, l, k ? k + 1 : 0));
  int64_t m = w.m, p = w.p;
  fm_set_attr_i(g, n, "tile", m);
  fm_set_attr_ints(g, n, "pads", 4, (int64_t[]){p, p, p, p});
  fm_set_attr_i(g, n, "bits", layer_bits(l));
  fm_set_attr_ints(g, n, "tile_strides", 2, (int64_t[]){m, m});
  fm_set_attr_ints(g, n, "tile_pads", 4, (int64_t[]){p, p, w.th * m + 2 - w.H - p, w.tw * m + 2 - w.W - p});
  fm_set_attr_ints(g, n, "v_shape", 4, (int64_t[]){-1, w.C, w.A2, w.T});
  fm_set_attr_ints(g, n, "y_shape", 6, (int64_t[]){m, m, -1, w.K, w.th, w.tw});
  fm_set_attr_ints(g, n, "full_shape", 4, (int64_t[]){0, 0, w.th * m, w.tw * m});
  fm_set_attr_ints(g, n, "out_size", 2, (int64_t[]){w.OH, w.OW});
  if (!bias) return;
  Node *add = fm_node_new(g, OP_Add, fm_sprintf(&g->arena, "%s_bias", l->name), 2, 1);
  add->in[0] = out;
  add->in[1] = fm_tensor_const(g, bias->name, FM_F32, 3, (int64_t[]){w.K, 1, 1}, bias->data);
  add->out[0] = y, y->producer = add;
}

static Tensor *op(Graph *b, OpKind k, const char *out, Tensor *i0, Tensor *i1) {
  Node *n = fm_node_new(b, k, NULL, i1 ? 2 : 1, 1);
  n->in[0] = i0;
  if (i1) n->in[1] = i1;
  n->out[0] = fm_tensor_new(b, out);
  n->out[0]->producer = n;
  return n->out[0];
}

static Tensor *ints(Graph *b, const char *name, int k, const int64_t *v) {
  int64_t d = k;
  return fm_tensor_const(b, name, FM_I64, 1, &d, v);
}

// a Constant whose value_ints is the caller's attribute attr
static Tensor *attr_ints(Graph *b, const char *attr) {
  Node *n = fm_node_new(b, OP_Constant, NULL, 0, 1);
  fm_attr_add(b, n, "value_ints", FA_INTS)->ref = fm_strdup(&b->arena, attr);
  n->out[0] = fm_tensor_new(b, fm_sprintf(&b->arena, "%s_c", attr));
  n->out[0]->producer = n;
  return n->out[0];
}

static Tensor *kron(Graph *b, Tensor *t, const char *name, Tensor *ax13, Tensor *ax02) {
  Tensor *p = op(b, OP_Mul, fm_sprintf(&b->arena, "%s4", name), op(b, OP_Unsqueeze, fm_sprintf(&b->arena, "%s_r", name), t, ax13),
                 op(b, OP_Unsqueeze, fm_sprintf(&b->arena, "%s_c", name), t, ax02));
  return p;
}

// Round(x / s) * s with s = Max(ReduceMax(|x|, axes), eps) / qmax (axes NULL: all)
static Tensor *fake_quant(Graph *b, Tensor *x, const char *name, int bits, const int64_t *axes, int naxes) {
  Arena *ar = &b->arena;
  float eps = WINO_EPS, qmax = (float)((1 << (bits - 1)) - 1);
  Tensor *mx = op(b, OP_ReduceMax, fm_sprintf(ar, "%s_max", name), op(b, OP_Abs, fm_sprintf(ar, "%s_abs", name), x, NULL), NULL);
  if (axes) fm_set_attr_ints(b, mx->producer, "axes", naxes, axes);
  fm_set_attr_i(b, mx->producer, "keepdims", axes ? 1 : 0);
  Tensor *ce = fm_tensor_const(b, fm_sprintf(ar, "%s_eps", name), FM_F32, 0, NULL, &eps);
  Tensor *cq = fm_tensor_const(b, fm_sprintf(ar, "%s_qmax", name), FM_F32, 0, NULL, &qmax);
  Tensor *s = op(b, OP_Div, fm_sprintf(ar, "%s_scale", name), op(b, OP_Max, fm_sprintf(ar, "%s_maxe", name), mx, ce), cq);
  Tensor *r = op(b, OP_Round, fm_sprintf(ar, "%s_round", name), op(b, OP_Div, fm_sprintf(ar, "%s_div", name), x, s), NULL);
  return op(b, OP_Mul, fm_sprintf(ar, "%s_q", name), r, s);
}

void fm_wino_function(FmFunction *f, Graph *b, const Graph *g) {
  static const char *ins[] = {"X", "W", "Bt", "G", "At"}, *outs[] = {"Y"};
  static const char *attrs[] = {"tile", "pads", "bits", "tile_strides", "tile_pads", "v_shape", "y_shape",
                                "full_shape", "out_size"};
  int bits = -1;
  for (int i = 0; i < g->nnodes; i++) {
    const Node *n = g->nodes[i];
    if (strcmp(n->domain, "ai.fewmul") || strcmp(n->op_type, "WinogradConv")) continue;
    int nb = (int)fm_attr_i(n, "bits", 0);
    if (bits >= 0 && nb != bits) fm_fail("export: WinogradConv nodes with %d and %d bits in one model (one function body)", bits, nb);
    bits = nb;
  }
  b->opset = 13;
  Tensor *x = fm_tensor_new(b, ins[0]), *w = fm_tensor_new(b, ins[1]), *bt = fm_tensor_new(b, ins[2]);
  Tensor *gm = fm_tensor_new(b, ins[3]), *at = fm_tensor_new(b, ins[4]);
  Tensor *ax13 = ints(b, "Axes13", 2, (int64_t[]){1, 3}), *ax02 = ints(b, "Axes02", 2, (int64_t[]){0, 2});
  Tensor *flat4 = ints(b, "Shape_1_0_0", 4, (int64_t[]){-1, 1, 0, 0});
  // U = G W Gt as (a², K, C)
  Tensor *gtr = op(b, OP_Transpose, "Gt", gm, NULL);
  Tensor *u4 = op(b, OP_MatMul, "U4", op(b, OP_MatMul, "GW", gm, w), gtr);
  Tensor *u = op(b, OP_Transpose, "U", op(b, OP_Reshape, "U3", u4, ints(b, "Shape_0_0_1", 3, (int64_t[]){0, 0, -1})), NULL);
  fm_set_attr_ints(b, u->producer, "perm", 3, (int64_t[]){2, 0, 1});
  if (bits > 0) u = fake_quant(b, u, "U", bits, NULL, 0);
  u = op(b, OP_Unsqueeze, "Uu", u, ints(b, "Axes1", 1, (int64_t[]){1}));
  // V = Bt d Btt of every tile: one Conv with the a² kernels Bt⊗Bt over (N*C, 1, H, W)
  Tensor *kb = op(b, OP_Reshape, "KB", kron(b, bt, "KB", ax13, ax02), flat4);
  Tensor *vc = op(b, OP_Conv, "Vc", op(b, OP_Reshape, "Xr", x, flat4), kb);
  fm_attr_add(b, vc->producer, "strides", FA_INTS)->ref = fm_strdup(&b->arena, "tile_strides");
  fm_attr_add(b, vc->producer, "pads", FA_INTS)->ref = fm_strdup(&b->arena, "tile_pads");
  Tensor *v = op(b, OP_Transpose, "V", op(b, OP_Reshape, "V4", vc, attr_ints(b, "v_shape")), NULL);
  fm_set_attr_ints(b, v->producer, "perm", 4, (int64_t[]){2, 0, 1, 3});
  if (bits > 0) v = fake_quant(b, v, "V", bits, (int64_t[]){0, 2, 3}, 3);
  // M = U V per Winograd position; Y = (At⊗At) M
  Tensor *mm = op(b, OP_Flatten, "Mf", op(b, OP_MatMul, "M", u, v), NULL);
  fm_set_attr_i(b, mm->producer, "axis", 1);
  Tensor *aa = op(b, OP_Flatten, "AA", kron(b, at, "AA", ax13, ax02), NULL);
  fm_set_attr_i(b, aa->producer, "axis", 2);
  Tensor *y2 = op(b, OP_MatMul, "Y2", aa, mm);
  Tensor *y6 = op(b, OP_Transpose, "Y6t", op(b, OP_Reshape, "Y6", y2, attr_ints(b, "y_shape")), NULL);
  fm_set_attr_ints(b, y6->producer, "perm", 6, (int64_t[]){2, 3, 4, 0, 5, 1});
  Tensor *yf = op(b, OP_Reshape, "Yf", y6, attr_ints(b, "full_shape"));
  Tensor *ends = attr_ints(b, "out_size");   // made before the Slice: bodies are written in node order
  Node *sl = fm_node_new(b, OP_Slice, NULL, 4, 1);
  sl->in[0] = yf, sl->in[1] = ints(b, "Zeros2", 2, (int64_t[]){0, 0}), sl->in[2] = ends;
  sl->in[3] = ints(b, "Axes23", 2, (int64_t[]){2, 3});
  sl->out[0] = fm_tensor_new(b, outs[0]), sl->out[0]->producer = sl;
  *f = (FmFunction){"ai.fewmul", "WinogradConv", ins, 5, outs, 1, attrs, 9, b};
}
