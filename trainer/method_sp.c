/* method_sp.c - StrassenNets SP conv / SP linear layers (method_sp.h): building
 * (explicit or through the FmNetOpts.method hook), forward/backward composed of
 * the conv2d / conv_transpose2d / linear / batchnorm / channel-scale ops, phases,
 * the exported form and the three-phase recipe.
 *
 * aux (fixed part first): W_B eff (nb) | W_C eff (nc) | BN mean (r) | BN invstd (r) |
 *                         per sample: H (hid) | BN(H) (hid) | a*BN(H) (hid)
 * workspace: full W_C output (n*full, only when cropping) | dS (n*hid) | dBN (n*hid) |
 *            the conv ops' scratch. */
#include "method_sp.h"
#include "onnx/onnx.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T(id) (&net->tensors[(id)])
#define SP_BN_EPS 1e-5f
#define SP_BN_MOMENTUM 0.1f
#define SP_A_MAX 100.0f

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }
static float *pdata(const FmNet *net, const FmLayer *l, int k) { return l->param[k] >= 0 ? net->params[l->param[k]].data : NULL; }
static float *pgrad(const FmNet *net, const FmLayer *l, int k) { return l->param[k] >= 0 ? net->params[l->param[k]].grad : NULL; }
static float *bdata(const FmNet *net, const FmLayer *l, int k) { return l->buf[k] >= 0 ? net->bufs[l->buf[k]].data : NULL; }
static void set_err(FmNet *net, const char *msg) {
  if (!net->err[0]) snprintf(net->err, sizeof net->err, "%s", msg);
}

static void sp_fwd(FmNet *net, FmLayer *l, int n, int train);
static void sp_bwd(FmNet *net, FmLayer *l, int n);
static size_t sp_ws(const FmNet *net, const FmLayer *l, int n);
static const FmLayerOps spconv_ops = {FM_LAYER_CUSTOM, "sp_conv2d", sp_fwd, sp_bwd, sp_ws};
static const FmLayerOps splin_ops = {FM_LAYER_CUSTOM, "sp_linear", sp_fwd, sp_bwd, sp_ws};

int fm_sp_layer(const FmLayer *l) { return l->ops == &spconv_ops || l->ops == &splin_ops; }
int fm_sp_layer_is_conv(const FmLayer *l) { return l->ops == &spconv_ops; }

int fm_sp_phase(const FmNet *net) {
  int ph = net->method.kind == FM_METHOD_SP ? net->method.sp_phase : 0;
  return ph >= FM_SP_FULL && ph <= FM_SP_FROZEN ? ph : FM_SP_TERNARY;
}

// --- geometry --------------------------------------------------------------------

int fm_sp_geom_conv(const FmConvAttr *a, int r, int p, int h, int w, FmSpGeom *g) {
  memset(g, 0, sizeof *g);
  g->conv = 1, g->r = r, g->p = p, g->M = a->cout;
  if (r < 1 || p < 1 || a->dh != 1 || a->dw != 1) return -1;
  int Sh = p * a->sh, Sw = p * a->sw;
  int eh = (h % Sh + 1) / 2, ew = (w % Sw + 1) / 2;   // ceil((H mod p*s) / 2)
  g->b = fm_conv_attr(a->cin, r, 1, 1, 0, 1, a->groups);
  g->b.kh = (p - 1) * a->sh + a->kh, g->b.kw = (p - 1) * a->sw + a->kw;
  g->b.sh = Sh, g->b.sw = Sw;
  g->b.ph = a->ph + eh, g->b.pw = a->pw + ew;
  g->c = fm_conv_attr(r, a->cout, p, p, 0, 1, a->groups);
  if (h + 2 * g->b.ph < g->b.kh || w + 2 * g->b.pw < g->b.kw || h + 2 * a->ph < a->kh || w + 2 * a->pw < a->kw)
    return -1;
  g->hb = fm_conv_out(h, g->b.kh, Sh, g->b.ph, 1), g->wb = fm_conv_out(w, g->b.kw, Sw, g->b.pw, 1);
  g->oh = fm_conv_out(h, a->kh, a->sh, a->ph, 1), g->ow = fm_conv_out(w, a->kw, a->sw, a->pw, 1);
  g->fh = g->hb * p, g->fw = g->wb * p;
  if (g->fh < g->oh || g->fw < g->ow) return -1;
  g->ch = (g->fh - g->oh + 1) / 2, g->cw = (g->fw - g->ow + 1) / 2;
  g->hid = (size_t)r * g->hb * g->wb;
  g->full = (size_t)g->M * g->fh * g->fw;
  return 0;
}

static int layer_r(const FmNet *net, const FmLayer *l) { return net->bufs[l->buf[0]].shape[0]; }

static void geom(const FmNet *net, const FmLayer *l, FmSpGeom *g) {
  const FmTensor *x = &net->tensors[l->in[0]];
  int r = layer_r(net, l);
  if (fm_sp_layer_is_conv(l)) {
    fm_sp_geom_conv(&l->a.conv, r, l->a.conv.oph, x->h, x->w, g);
  } else {
    memset(g, 0, sizeof *g);
    g->r = r, g->p = 1, g->M = l->a.conv.cout;
    g->hb = g->wb = g->fh = g->fw = g->oh = g->ow = 1;
    g->hid = (size_t)r, g->full = (size_t)g->M;
  }
}

static int cropped(const FmSpGeom *g) { return g->conv && (g->fh != g->oh || g->fw != g->ow); }

static size_t wb_size(const FmNet *net, const FmLayer *l, const FmSpGeom *g) {
  if (!g->conv) return (size_t)g->r * l->a.conv.cin;
  return (size_t)g->r * (g->b.cin / g->b.groups) * g->b.kh * g->b.kw;
}
static size_t wc_size(const FmSpGeom *g) {
  return g->conv ? (size_t)g->r * (g->M / g->c.groups) * g->p * g->p : (size_t)g->M * g->r;
}

// --- building --------------------------------------------------------------------

// the layer with its BN buffers (r is read from them) and aux sizes; no parameters yet
static int new_layer(FmNet *net, int x, const FmConvAttr *a, int conv, int r, int p, int bias) {
  if (x < 0) return -1;
  const FmTensor t = *T(x);
  FmConvAttr at = *a;
  FmSpGeom g;
  int oh = 1, ow = 1;
  if (conv) {
    at.cin = t.c;
    if (at.groups < 1 || at.cin % at.groups || at.cout % at.groups || r % at.groups) {
      set_err(net, "sp_conv2d: channels (and r) must be divisible by groups");
      return -1;
    }
    if (fm_sp_geom_conv(&at, r, p, t.h, t.w, &g)) {
      char msg[200];
      snprintf(msg, sizeof msg, "sp_conv2d: r %d, patch %d, kernel %d, stride %d, dilation %d do not fit a %dx%d input",
               r, p, at.kh, at.sh, at.dh, t.h, t.w);
      set_err(net, msg);
      return -1;
    }
    oh = g.oh, ow = g.ow;
  } else {
    at = fm_conv_attr((int)t.size, a->cout, 1, 1, 0, 1, 1);
    p = 1;
    if (r < 1) { set_err(net, "sp_linear: r must be >= 1"); return -1; }
  }
  at.oph = at.opw = p;
  int li = fm_net_add_layer(net, conv ? &spconv_ops : &splin_ops, &x, 1, at.cout, oh, ow, !conv);
  if (li < 0) return -1;
  FmLayer *l = &net->layers[li];
  l->a.conv = at;
  l->has_bias = bias;
  int s[1] = {r};
  if (fm_net_add_buf(net, li, "sp_running_mean", s, 1, FM_INIT_CONST, 0.0f) < 0 ||
      fm_net_add_buf(net, li, "sp_running_var", s, 1, FM_INIT_CONST, 1.0f) < 0)
    return -1;
  l = &net->layers[li];
  geom(net, l, &g);
  l->aux_fixed = align16(wb_size(net, l, &g)) + align16(wc_size(&g)) + 2 * (size_t)r;
  l->aux_per_sample = 3 * g.hid;
  net->tensors[l->out].needs_grad = 1;   // parameters come now or at fm_net_finish
  return li;
}

// Xavier(magnitude 2) as the reference: U(+-sqrt(4 / (fan_in + fan_out))), MXNet's fans
static float xavier(int fan_in, int fan_out) { return sqrtf(4.0f / (float)(fan_in + fan_out)); }

static int add_params(FmNet *net, int li) {
  FmLayer *l = &net->layers[li];
  FmSpGeom g;
  geom(net, l, &g);
  int r = g.r, M = g.M;
  int wbs[4], wcs[4], nd, fb_in, fb_out, fc_in, fc_out, fan_orig;
  if (g.conv) {
    int cg = g.b.cin / g.b.groups;
    wbs[0] = r, wbs[1] = cg, wbs[2] = g.b.kh, wbs[3] = g.b.kw, nd = 4;
    wcs[0] = r, wcs[1] = M / g.c.groups, wcs[2] = g.p, wcs[3] = g.p;
    fb_in = cg * g.b.kh * g.b.kw, fb_out = r * g.b.kh * g.b.kw;
    fc_in = M / g.c.groups * g.p * g.p, fc_out = r * g.p * g.p;
    fan_orig = cg * l->a.conv.kh * l->a.conv.kw;
  } else {
    wbs[0] = r, wbs[1] = l->a.conv.cin, wcs[0] = M, wcs[1] = r, nd = 2;
    fb_in = l->a.conv.cin, fb_out = r, fc_in = r, fc_out = M;
    fan_orig = l->a.conv.cin;
  }
  int s[1] = {r}, bs[1] = {M};
  l->nparam = 0;
  fm_net_add_param(net, li, "wb", wbs, nd, FM_INIT_UNIFORM, xavier(fb_in, fb_out));
  l = &net->layers[li];
  if (l->has_bias) fm_net_add_param(net, li, "bias", bs, 1, FM_INIT_UNIFORM, 1.0f / sqrtf((float)fan_orig));
  else l->nparam = 2;
  fm_net_add_param(net, li, "wc", wcs, nd, FM_INIT_UNIFORM, xavier(fc_in, fc_out));
  fm_net_add_param(net, li, "a", s, 1, FM_INIT_CONST, 1.0f);
  int gm = fm_net_add_param(net, li, "sp_bn_gamma", s, 1, FM_INIT_CONST, 1.0f);
  int bt = fm_net_add_param(net, li, "sp_bn_beta", s, 1, FM_INIT_CONST, 0.0f);
  if (gm < 0 || bt < 0) return -1;
  fm_net_set_param_group(net, gm, 1);   // fixed gamma, as the reference
  l = &net->layers[li];
  if (fm_sp_phase(net) == FM_SP_FROZEN) {
    fm_net_set_param_group(net, l->param[0], 1);
    fm_net_set_param_group(net, l->param[2], 1);
  }
  return 0;
}

int fm_net_sp_conv2d(FmNet *net, int x, const FmConvAttr *a, int r, int p, int bias) {
  int li = new_layer(net, x, a, 1, r, p, bias);
  if (li < 0 || add_params(net, li)) return -1;
  return net->layers[li].out;
}

int fm_net_sp_linear(FmNet *net, int x, int out, int r, int bias) {
  FmConvAttr a = fm_conv_attr(0, out, 1, 1, 0, 1, 1);
  int li = new_layer(net, x, &a, 0, r, 1, bias);
  if (li < 0 || add_params(net, li)) return -1;
  return net->layers[li].out;
}

static int width(const FmNet *net, int cout) {
  float f = net->method.sp_r > 0 ? net->method.sp_r : 1.0f;
  int r = (int)lroundf(f * (float)cout);
  return r < 1 ? 1 : r;
}

int fm_sp_method_conv2d(FmNet *net, int x, const FmConvAttr *a, int bias, int oh, int ow) {
  (void)oh, (void)ow;
  int r = width(net, a->cout);
  if (a->groups > 1) r = (r + a->groups - 1) / a->groups * a->groups;
  int li = new_layer(net, x, a, 1, r, net->method.sp_patch > 0 ? net->method.sp_patch : 1, bias);
  return li < 0 ? -1 : net->layers[li].out;
}

int fm_sp_method_linear(FmNet *net, int x, int out, int bias) {
  FmConvAttr a = fm_conv_attr(0, out, 1, 1, 0, 1, 1);
  int li = new_layer(net, x, &a, 0, width(net, out), 1, bias);
  return li < 0 ? -1 : net->layers[li].out;
}

// a deferred SP layer back to the dense conv2d / linear it replaces
static void make_dense(FmNet *net, int li) {
  FmLayer *l = &net->layers[li];
  int conv = fm_sp_layer_is_conv(l);
  const FmLayerOps *ops = fm_net_builtin_ops(conv ? FM_LAYER_CONV2D : FM_LAYER_LINEAR);
  FmConvAttr a = l->a.conv;
  a.oph = a.opw = 0;
  l->ops = ops, l->kind = ops->kind;
  l->a.conv = a;
  snprintf(l->name, sizeof l->name, "%s_%d", ops->name, li);
  l->nbuf = 0, l->buf[0] = l->buf[1] = -1;   // the BN buffers stay behind, unused
  l->aux_fixed = l->aux_per_sample = 0;
  int fan = conv ? a.cin / a.groups * a.kh * a.kw : a.cin;
  float bound = 1.0f / sqrtf((float)fan);
  int ws[4], nd, bs[1] = {a.cout};
  if (conv) ws[0] = a.cout, ws[1] = a.cin / a.groups, ws[2] = a.kh, ws[3] = a.kw, nd = 4;
  else ws[0] = a.cout, ws[1] = a.cin, nd = 2;
  fm_net_add_param(net, li, "weight", ws, nd, FM_INIT_UNIFORM, bound);
  if (net->layers[li].has_bias) fm_net_add_param(net, li, "bias", bs, 1, FM_INIT_UNIFORM, bound);
  else net->layers[li].nparam = 2;
}

int fm_sp_prepare(FmNet *net) {
  int first_conv = -1, last_linear = -1;
  for (int i = 0; i < net->nlayers; i++) {
    const FmLayer *l = &net->layers[i];
    if (fm_sp_layer(l) && !l->nparam) {
      if (fm_sp_layer_is_conv(l) && first_conv < 0) first_conv = i;
      if (!fm_sp_layer_is_conv(l)) last_linear = i;
    }
  }
  for (int i = 0; i < net->nlayers; i++) {
    FmLayer *l = &net->layers[i];
    if (!fm_sp_layer(l) || l->nparam) continue;
    if (!net->method.all && (i == first_conv || i == last_linear)) make_dense(net, i);
    else if (add_params(net, i)) return -1;
  }
  return net->err[0] ? -1 : 0;
}

void fm_sp_set_phase(FmNet *net, int phase) {
  net->method.sp_phase = phase;
  for (int i = 0; i < net->nlayers; i++) {
    FmLayer *l = &net->layers[i];
    if (!fm_sp_layer(l) || !l->nparam) continue;
    fm_net_set_param_group(net, l->param[0], phase == FM_SP_FROZEN ? 1 : 0);
    fm_net_set_param_group(net, l->param[2], phase == FM_SP_FROZEN ? 1 : 0);
  }
}

void fm_sp_describe(const FmMethod *m, char *buf, size_t n) {
  static const char *ph[] = {"", "full precision", "ternary W_B, W_C (straight-through)",
                             "W_B, W_C frozen ternary; a and BN train"};
  int phase = m->sp_phase >= 1 && m->sp_phase <= 3 ? m->sp_phase : 2;
  int p = m->sp_patch > 0 ? m->sp_patch : 1;
  snprintf(buf, n, "sp (StrassenNets), r = %g x c_out, %dx%d output patches, phase %d (%s), %s",
           (double)(m->sp_r > 0 ? m->sp_r : 1.0f), p, p, phase, ph[phase],
           m->all ? "every conv and linear layer" : "first conv and last linear dense");
}

// --- forward / backward ------------------------------------------------------------

typedef struct {
  FmSpGeom g;
  size_t nb, nc;
  float *wbe, *wce, *mean, *invstd;   // aux, fixed part
  float *H, *Bn, *S;                  // aux, per sample (n)
  float *full, *dS, *dBn, *cws;       // workspace
  FmBnAttr bn;
} View;

static void view(FmNet *net, FmLayer *l, int n, View *v) {
  geom(net, l, &v->g);
  v->nb = wb_size(net, l, &v->g), v->nc = wc_size(&v->g);
  float *a = l->aux;
  v->wbe = a, a += align16(v->nb);
  v->wce = a, a += align16(v->nc);
  v->mean = a, v->invstd = a + v->g.r, a += 2 * (size_t)v->g.r;
  v->H = a, v->Bn = a + n * v->g.hid, v->S = a + 2 * n * v->g.hid;
  float *w = net->work;
  v->full = w, w += cropped(&v->g) ? n * v->g.full : 0;
  v->dS = w, v->dBn = w + n * v->g.hid, v->cws = w + 2 * n * v->g.hid;
  v->bn = (FmBnAttr){v->g.r, SP_BN_EPS, SP_BN_MOMENTUM, 1, net->bn_sync};
}

static size_t sp_ws(const FmNet *net, const FmLayer *l, int n) {
  FmSpGeom g;
  geom(net, l, &g);
  size_t w = (size_t)n * (2 * g.hid + (cropped(&g) ? g.full : 0));
  if (g.conv) {
    const FmTensor *x = &net->tensors[l->in[0]];
    size_t a = fm_conv2d_workspace(&g.b, x->h, x->w, net->threads);
    size_t b = fm_convt2d_workspace(&g.c, g.hb, g.wb, net->threads);
    w += a > b ? a : b;
  }
  return w;
}

// effective weight: the latent one (phase 1) or TWN over the whole tensor into dst
static const float *eff(FmNet *net, FmLayer *l, int k, size_t n, float *dst) {
  const float *w = pdata(net, l, k);
  if (fm_sp_phase(net) == FM_SP_FULL) return w;
  float alpha;
  fm_ternarize(w, 1, n, NULL, &alpha, dst);
  return dst;
}

static void sp_fwd(FmNet *net, FmLayer *l, int n, int train) {
  View v;
  view(net, l, n, &v);
  FmTensor *x = T(l->in[0]), *y = T(l->out);
  const FmSpGeom *g = &v.g;
  float *a = pdata(net, l, 3);
  (void)train;   // a in [0, 100], clipped as the reference does before each forward
  for (int i = 0; i < g->r; i++) a[i] = a[i] < 0 ? 0.0f : a[i] > SP_A_MAX ? SP_A_MAX : a[i];
  const float *wb = eff(net, l, 0, v.nb, v.wbe), *wc = eff(net, l, 2, v.nc, v.wce);
  int S = g->hb * g->wb;
  if (g->conv) fm_conv2d_forward(v.H, x->data, wb, NULL, n, x->h, x->w, &g->b, v.cws, net->threads);
  else fm_linear_forward(v.H, x->data, wb, NULL, n, (int)x->size, g->r, net->threads);
  fm_batchnorm_forward(v.Bn, v.mean, v.invstd, v.H, pdata(net, l, 4), pdata(net, l, 5), bdata(net, l, 0),
                       bdata(net, l, 1), n, S, &v.bn, train, net->threads);
  fm_chscale_forward(v.S, v.Bn, a, n, g->r, S);
  if (!g->conv) {
    fm_linear_forward(y->data, v.S, wc, pdata(net, l, 1), n, g->r, g->M, net->threads);
    return;
  }
  if (!cropped(g)) {
    fm_convt2d_forward(y->data, v.S, wc, pdata(net, l, 1), n, g->hb, g->wb, &g->c, v.cws, net->threads);
    return;
  }
  fm_convt2d_forward(v.full, v.S, wc, pdata(net, l, 1), n, g->hb, g->wb, &g->c, v.cws, net->threads);
  for (size_t nm = 0; nm < (size_t)n * g->M; nm++)
    for (int i = 0; i < g->oh; i++)
      memcpy(y->data + (nm * g->oh + i) * g->ow, v.full + (nm * g->fh + i + g->ch) * g->fw + g->cw,
             sizeof(float) * g->ow);
}

static void sp_bwd(FmNet *net, FmLayer *l, int n) {
  View v;
  view(net, l, n, &v);
  FmTensor *x = T(l->in[0]), *y = T(l->out);
  const FmSpGeom *g = &v.g;
  int phase = fm_sp_phase(net), S = g->hb * g->wb;
  const float *wb = phase == FM_SP_FULL ? pdata(net, l, 0) : v.wbe;
  const float *wc = phase == FM_SP_FULL ? pdata(net, l, 2) : v.wce;
  // straight through: the latent W_B, W_C receive the gradient of the ternary ones
  float *dwb = net->groups[net->params[l->param[0]].group].frozen ? NULL : pgrad(net, l, 0);
  float *dwc = net->groups[net->params[l->param[2]].group].frozen ? NULL : pgrad(net, l, 2);
  size_t hn = (size_t)n * g->hid;
  memset(v.dS, 0, sizeof(float) * hn);
  if (!g->conv) {
    fm_linear_backward(v.dS, dwc, pgrad(net, l, 1), y->grad, v.S, wc, n, g->r, g->M, net->threads);
  } else {
    const float *dy = y->grad;
    if (cropped(g)) {
      memset(v.full, 0, sizeof(float) * (size_t)n * g->full);
      for (size_t nm = 0; nm < (size_t)n * g->M; nm++)
        for (int i = 0; i < g->oh; i++)
          memcpy(v.full + (nm * g->fh + i + g->ch) * g->fw + g->cw, y->grad + (nm * g->oh + i) * g->ow,
                 sizeof(float) * g->ow);
      dy = v.full;
    }
    fm_convt2d_backward(v.dS, dwc, pgrad(net, l, 1), dy, v.S, wc, n, g->hb, g->wb, &g->c, v.cws, net->threads);
  }
  memset(v.dBn, 0, sizeof(float) * hn);
  fm_chscale_backward(v.dBn, pgrad(net, l, 3), v.dS, v.Bn, pdata(net, l, 3), n, g->r, S);
  float *dH = v.dS;   // dS is no longer needed
  memset(dH, 0, sizeof(float) * hn);
  fm_batchnorm_backward(dH, NULL, pgrad(net, l, 5), v.dBn, v.H, v.mean, v.invstd, pdata(net, l, 4), n, S, &v.bn,
                        l->train, net->threads, 0);
  if (g->conv)
    fm_conv2d_backward(x->grad, dwb, NULL, dH, x->data, wb, n, x->h, x->w, &g->b, v.cws, net->threads, 0);
  else
    fm_linear_backward(x->grad, dwb, NULL, dH, x->data, wb, n, (int)x->size, g->r, net->threads);
}

// --- export --------------------------------------------------------------------------

void fm_sp_export_free(FmSpExport *e) {
  free(e->qb), free(e->qc), free(e->wbf), free(e->wcf), free(e->A), free(e->ZB);
  memset(e, 0, sizeof *e);
}

int fm_sp_export(const FmNet *net, const FmLayer *l, FmSpExport *e) {
  memset(e, 0, sizeof *e);
  if (!fm_sp_layer(l) || l->param[0] < 0) return -1;
  geom(net, l, &e->g);
  const FmSpGeom *g = &e->g;
  const FmParam *pb = &net->params[l->param[0]], *pc = &net->params[l->param[2]];
  e->brank = pb->ndim, e->crank = pc->ndim;
  for (int i = 0; i < pb->ndim; i++) e->bdims[i] = pb->shape[i];
  for (int i = 0; i < pc->ndim; i++) e->cdims[i] = pc->shape[i];
  e->bsize = pb->size, e->csize = pc->size;
  e->bias = l->param[1] >= 0 ? &net->params[l->param[1]] : NULL;
  e->ternary = fm_sp_phase(net) != FM_SP_FULL;
  e->A = malloc(sizeof(float) * (size_t)g->r);
  e->ZB = malloc(sizeof(float) * (size_t)g->r);
  if (e->ternary) e->qb = malloc(e->bsize), e->qc = malloc(e->csize);
  else e->wbf = malloc(sizeof(float) * e->bsize), e->wcf = malloc(sizeof(float) * e->csize);
  if (!e->A || !e->ZB || (e->ternary ? !e->qb || !e->qc : !e->wbf || !e->wcf)) {
    fm_sp_export_free(e);
    return -1;
  }
  double ab = 1, ac = 1;
  if (e->ternary) {
    float fb, fc;
    fm_ternarize(pb->data, 1, e->bsize, e->qb, &fb, NULL);
    fm_ternarize(pc->data, 1, e->csize, e->qc, &fc, NULL);
    ab = fb, ac = fc;
  } else {
    memcpy(e->wbf, pb->data, sizeof(float) * e->bsize);
    memcpy(e->wcf, pc->data, sizeof(float) * e->csize);
  }
  // y = ac * W_C[a * (gamma * (ab * h - mean) * invstd + beta)]   (h from the integer W_B)
  const float *a = pdata(net, l, 3), *gamma = pdata(net, l, 4), *beta = pdata(net, l, 5);
  const float *mean = bdata(net, l, 0), *var = bdata(net, l, 1);
  for (int i = 0; i < g->r; i++) {
    double ai = fmin(fmax((double)a[i], 0.0), SP_A_MAX);   // as the next forward clips it
    double inv = 1.0 / sqrt((double)var[i] + SP_BN_EPS), s = ai * gamma[i] * inv;
    e->A[i] = (float)(ac * s * ab);
    e->ZB[i] = (float)(ac * (ai * beta[i] - s * mean[i]));
  }
  return 0;
}

// --- recipe --------------------------------------------------------------------------

int fm_sp_recipe_parse(FmSpRecipe *r, const char *spec, char *err, size_t errlen) {
  memset(r, 0, sizeof *r);
  int k = 0;
  const char *s = spec;
  while (k < 3) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || v < 0 || v > 100000) break;
    r->e[k++] = (int)v;
    s = end;
    if (*s != ',') break;
    s++;
  }
  if (k != 3 || *s || fm_sp_recipe_epochs(r) < 1) {
    snprintf(err, errlen, "--sp-recipe: '%s' is not E1,E2,E3 (epochs of the three phases, e.g. 250,40,10)", spec);
    return -1;
  }
  return 0;
}

int fm_sp_recipe_epochs(const FmSpRecipe *r) { return r->e[0] + r->e[1] + r->e[2]; }

int fm_sp_recipe_phase(const FmSpRecipe *r, int epoch) {
  return epoch < r->e[0] ? 1 : epoch < r->e[0] + r->e[1] ? 2 : 3;
}

float fm_sp_recipe_lr(const FmSpRecipe *r, int epoch, float base) {
  int ph = fm_sp_recipe_phase(r, epoch);
  if (ph == 1) {   // x0.1 at 150 and 200 of 250
    int m1 = (int)lroundf(0.6f * (float)r->e[0]), m2 = (int)lroundf(0.8f * (float)r->e[0]);
    return base * (epoch >= m2 ? 0.01f : epoch >= m1 ? 0.1f : 1.0f);
  }
  if (ph == 2) {   // lr/10, x0.1 every 10 of 40
    int pe = epoch - r->e[0], step = r->e[1] / 4 > 0 ? r->e[1] / 4 : 1;
    return base * 0.1f * powf(0.1f, (float)(pe / step));
  }
  return base * 0.01f;
}

// --- ONNX form (trainer/export.c calls these) ----------------------------------------
//
// SPConv(X, WB int8, A, WC int8, ZB, B?) carries the replaced conv's kernel_shape, strides,
// pads, group and out_patch [p, p], and, derived from them and the input size, the
// attributes its function body (and a lowering) reads directly:
//   wb_strides [p*s, p*s], wb_pads (pads + the reference's extra pad, symmetric),
//   wc_pads: the crop as ConvTranspose pads [ch, cw, fh-oh-ch, fw-ow-cw].
// Body: H = Conv<wb_strides, wb_pads, group>(X, Cast(WB)); H = H * A + ZB (per channel);
//       Y = ConvTranspose<out_patch, wc_pads, group>(H, Cast(WC), B).
// SPGemm(X, WB [r,K], A, WC [M,r], ZB, B?): Y = Gemm<transB>(Gemm<transB>(X, WB) * A + ZB, WC, B).
// Phase 1 (float W_B, W_C) is written as those standard ops inline instead.

static Tensor *tmp(Graph *g, const char *name, int rank, const int64_t *dims) {
  Tensor *t = fm_tensor_new(g, name);
  t->dtype = FM_F32, t->rank = rank;
  memcpy(t->dims, dims, sizeof(int64_t) * (size_t)rank);
  return t;
}

static Node *mk(Graph *g, OpKind op, const char *name, int nin, Tensor *out) {
  Node *n = fm_node_new(g, op, name, nin, 1);
  n->out[0] = out;
  out->producer = n;
  return n;
}

static void ref_attr(Graph *g, Node *n, const char *name, AttrType t, const char *ref) {
  fm_attr_add(g, n, name, t)->ref = fm_strdup(&g->arena, ref);
}

void fm_sp_export_nodes(Graph *g, const FmNet *net, const FmLayer *l, Tensor *x, Tensor *y) {
  FmSpExport e;
  if (fm_sp_export(net, l, &e)) fm_fail("export: layer '%s': out of memory", l->name);
  const FmSpGeom sg = e.g;
  const char *nm = l->name;
  Arena *ar = &g->arena;
  int64_t r = sg.r, r3[3] = {r, 1, 1};
  int conv = sg.conv, ternary = e.ternary;
  Tensor *wb, *wc;
  if (ternary) {
    wb = fm_tensor_const(g, fm_sprintf(ar, "%s.wb_q", nm), FM_I8, e.brank, e.bdims, e.qb);
    wc = fm_tensor_const(g, fm_sprintf(ar, "%s.wc_q", nm), FM_I8, e.crank, e.cdims, e.qc);
  } else {
    wb = fm_tensor_const(g, fm_sprintf(ar, "%s.wb", nm), FM_F32, e.brank, e.bdims, e.wbf);
    wc = fm_tensor_const(g, fm_sprintf(ar, "%s.wc", nm), FM_F32, e.crank, e.cdims, e.wcf);
  }
  Tensor *A = fm_tensor_const(g, fm_sprintf(ar, "%s.A", nm), FM_F32, conv && !ternary ? 3 : 1, conv && !ternary ? r3 : &r, e.A);
  Tensor *ZB = fm_tensor_const(g, fm_sprintf(ar, "%s.ZB", nm), FM_F32, conv && !ternary ? 3 : 1, conv && !ternary ? r3 : &r, e.ZB);
  Tensor *B = NULL;
  if (e.bias) B = fm_tensor_const(g, e.bias->name, FM_F32, 1, (int64_t[]){e.bias->size}, e.bias->data);
  fm_sp_export_free(&e);
  const FmConvAttr *a = &l->a.conv;
  int64_t wbs[2] = {sg.b.sh, sg.b.sw}, wbp[4] = {sg.b.ph, sg.b.pw, sg.b.ph, sg.b.pw};
  int64_t pp[2] = {sg.p, sg.p};
  int64_t wcp[4] = {sg.ch, sg.cw, sg.fh - sg.oh - sg.ch, sg.fw - sg.ow - sg.cw};
  if (ternary) {
    const char *op = conv ? "SPConv" : "SPGemm";
    Node *n = mk(g, fm_op_lookup("ai.fewmul", op), nm, B ? 6 : 5, y);
    n->op_type = op, n->domain = "ai.fewmul";
    n->in[0] = x, n->in[1] = wb, n->in[2] = A, n->in[3] = wc, n->in[4] = ZB;
    if (B) n->in[5] = B;
    if (conv) {
      fm_set_attr_ints(g, n, "kernel_shape", 2, (int64_t[]){a->kh, a->kw});
      fm_set_attr_ints(g, n, "strides", 2, (int64_t[]){a->sh, a->sw});
      fm_set_attr_ints(g, n, "pads", 4, (int64_t[]){a->ph, a->pw, a->ph, a->pw});
      fm_set_attr_ints(g, n, "out_patch", 2, pp);
      fm_set_attr_i(g, n, "group", a->groups);
      fm_set_attr_ints(g, n, "wb_strides", 2, wbs);
      fm_set_attr_ints(g, n, "wb_pads", 4, wbp);
      fm_set_attr_ints(g, n, "wc_pads", 4, wcp);
    }
    return;
  }
  // phase 1: the same computation in standard ops with float weights
  int64_t hd[4] = {-1, r, sg.hb, sg.wb};
  int hr = conv ? 4 : 2;
  Tensor *h = tmp(g, fm_sprintf(ar, "%s_h", nm), hr, hd);
  Node *n = mk(g, conv ? OP_Conv : OP_Gemm, fm_sprintf(ar, "%s_wb", nm), 2, h);
  n->in[0] = x, n->in[1] = wb;
  if (conv) {
    fm_set_attr_ints(g, n, "strides", 2, wbs);
    fm_set_attr_ints(g, n, "pads", 4, wbp);
    fm_set_attr_i(g, n, "group", a->groups);
  } else {
    fm_set_attr_i(g, n, "transB", 1);
  }
  Tensor *hs = tmp(g, fm_sprintf(ar, "%s_ha", nm), hr, hd);
  n = mk(g, OP_Mul, fm_sprintf(ar, "%s_a", nm), 2, hs);
  n->in[0] = h, n->in[1] = A;
  Tensor *hz = tmp(g, fm_sprintf(ar, "%s_hz", nm), hr, hd);
  n = mk(g, OP_Add, fm_sprintf(ar, "%s_zb", nm), 2, hz);
  n->in[0] = hs, n->in[1] = ZB;
  n = mk(g, conv ? OP_ConvTranspose : OP_Gemm, nm, B ? 3 : 2, y);
  n->in[0] = hz, n->in[1] = wc;
  if (B) n->in[2] = B;
  if (conv) {
    fm_set_attr_ints(g, n, "kernel_shape", 2, pp);
    fm_set_attr_ints(g, n, "strides", 2, pp);
    fm_set_attr_ints(g, n, "pads", 4, wcp);
    fm_set_attr_i(g, n, "group", a->groups);
  } else {
    fm_set_attr_i(g, n, "transB", 1);
  }
}

static Tensor *bop(Graph *b, OpKind op, const char *out, int nin, Tensor *i0, Tensor *i1, Tensor *i2) {
  Node *n = fm_node_new(b, op, NULL, nin, 1);
  n->in[0] = i0;
  if (nin > 1) n->in[1] = i1;
  if (nin > 2) n->in[2] = i2;
  n->out[0] = fm_tensor_new(b, out);
  n->out[0]->producer = n;
  return n->out[0];
}

static Tensor *bcast(Graph *b, Tensor *in, const char *out) {
  Tensor *t = bop(b, OP_Cast, out, 1, in, NULL, NULL);
  fm_set_attr_i(b, t->producer, "to", FM_F32);
  return t;
}

void fm_sp_function(FmFunction *f, const char *op, Graph *b) {
  static const char *ins[] = {"X", "WB", "A", "WC", "ZB", "B"}, *outs[] = {"Y"};
  static const char *conv_attrs[] = {"kernel_shape", "strides", "pads", "out_patch", "group",
                                     "wb_strides", "wb_pads", "wc_pads"};
  int conv = !strcmp(op, "SPConv");
  b->opset = 13;
  Tensor *x = fm_tensor_new(b, ins[0]), *wb = fm_tensor_new(b, ins[1]), *a = fm_tensor_new(b, ins[2]);
  Tensor *wc = fm_tensor_new(b, ins[3]), *zb = fm_tensor_new(b, ins[4]), *bias = fm_tensor_new(b, ins[5]);
  Tensor *wbf = bcast(b, wb, "WBf"), *wcf = bcast(b, wc, "WCf");
  Tensor *h = bop(b, conv ? OP_Conv : OP_Gemm, "H", 2, x, wbf, NULL);
  if (conv) {
    ref_attr(b, h->producer, "strides", FA_INTS, "wb_strides");
    ref_attr(b, h->producer, "pads", FA_INTS, "wb_pads");
    ref_attr(b, h->producer, "group", FA_INT, "group");
    int64_t shape[3] = {-1, 1, 1}, three = 3;
    Tensor *s = fm_tensor_const(b, "ChanShape", FM_I64, 1, &three, shape);
    a = bop(b, OP_Reshape, "Ac", 2, a, s, NULL);
    zb = bop(b, OP_Reshape, "ZBc", 2, zb, s, NULL);
  } else {
    fm_set_attr_i(b, h->producer, "transB", 1);
  }
  Tensor *hz = bop(b, OP_Add, "Hz", 2, bop(b, OP_Mul, "Ha", 2, h, a, NULL), zb, NULL);
  Tensor *y = bop(b, conv ? OP_ConvTranspose : OP_Gemm, outs[0], 3, hz, wcf, bias);
  if (conv) {
    ref_attr(b, y->producer, "strides", FA_INTS, "out_patch");
    ref_attr(b, y->producer, "kernel_shape", FA_INTS, "out_patch");
    ref_attr(b, y->producer, "pads", FA_INTS, "wc_pads");
    ref_attr(b, y->producer, "group", FA_INT, "group");
  } else {
    fm_set_attr_i(b, y->producer, "transB", 1);
  }
  *f = (FmFunction){"ai.fewmul", op, ins, 6, outs, 1, conv ? conv_attrs : NULL, conv ? 8 : 0, b};
}

// --- starting from a dense layer (--from dense.onnx) ------------------------------------
// A marked layer (l->user) waits for fm_sp_calibrate.
static const char sp_dense_mark = 1;

int fm_sp_dense_fits(const FmNet *net, const FmLayer *l) {
  if (!fm_sp_layer(l) || l->param[0] < 0 || l->param[2] < 0) return 0;
  FmSpGeom g;
  geom(net, l, &g);
  if (g.r != g.M || g.p != 1) return 0;
  if (!g.conv) return 1;
  const FmConvAttr *a = &l->a.conv;
  return !cropped(&g) && g.b.kh == a->kh && g.b.kw == a->kw && g.b.sh == a->sh && g.b.sw == a->sw &&
         g.b.ph == a->ph && g.b.pw == a->pw && g.b.groups == a->groups;
}

void fm_sp_from_dense(FmNet *net, FmLayer *l) {
  FmSpGeom g;
  geom(net, l, &g);
  float *wc = pdata(net, l, 2), *a = pdata(net, l, 3), *gamma = pdata(net, l, 4), *beta = pdata(net, l, 5);
  size_t nc = wc_size(&g);
  memset(wc, 0, sizeof(float) * nc);
  if (g.conv) {   // W_C (r, M/groups, 1, 1): hidden channel j -> output channel j
    int mg = g.M / g.c.groups;
    for (int j = 0; j < g.r; j++) wc[(size_t)j * (size_t)mg + (size_t)(j % mg)] = 1;
  } else {        // W_C (M, r) = I
    for (int j = 0; j < g.r; j++) wc[(size_t)j * (size_t)g.r + (size_t)j] = 1;
  }
  for (int j = 0; j < g.r; j++) {
    a[j] = 1, beta[j] = 0;
    if (gamma) gamma[j] = 1;
    bdata(net, l, 0)[j] = 0, bdata(net, l, 1)[j] = 1;
  }
  l->user = (void *)&sp_dense_mark;
}

int fm_sp_needs_calibration(const FmNet *net) {
  for (int i = 0; i < net->nlayers; i++)
    if (net->layers[i].user == &sp_dense_mark) return 1;
  return 0;
}

// Layer by layer, in order (each sees the calibrated layers before it): one training-mode
// forward of x gives the batch statistics mu, sigma of the hidden channels H = W_B x; then
// a = sigma, beta = mu / sigma and the running statistics mu, sigma^2 make a * BN(H) = H
// on x in training and eval mode, so the layer starts as the ternary layer of W_B. The
// other buffers (running statistics of other BNs) are restored after each forward.
void fm_sp_calibrate(FmNet *net, const float *x, int n) {
  float *save = malloc(sizeof(float) * (net->nbuf_floats + 1));
  if (!save) return;
  for (int i = 0; i < net->nlayers; i++) {
    FmLayer *l = &net->layers[i];
    if (l->user != &sp_dense_mark) continue;
    memcpy(save, net->buf_data, sizeof(float) * net->nbuf_floats);
    fm_net_forward(net, x, n, 1);
    memcpy(net->buf_data, save, sizeof(float) * net->nbuf_floats);
    View v;
    view(net, l, n, &v);
    float *a = pdata(net, l, 3), *beta = pdata(net, l, 5), *rm = bdata(net, l, 0), *rv = bdata(net, l, 1);
    for (int j = 0; j < v.g.r; j++) {
      float sigma = 1.0f / v.invstd[j];
      a[j] = sigma > SP_A_MAX ? SP_A_MAX : sigma;
      beta[j] = v.mean[j] * v.invstd[j];
      rm[j] = v.mean[j];
      rv[j] = fmaxf(sigma * sigma - v.bn.eps, 0.0f);
    }
    l->user = NULL;
  }
  free(save);
}
