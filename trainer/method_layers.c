/* method_layers.c - the training methods' variants of conv2d and linear
 * (method.h): building, parameters added at fm_net_finish, forward/backward
 * with straight-through gradients, post-step rules and the exported form.
 *
 * A method layer computes its effective weight W_e (ternary, power of two or
 * grid values) into its aux memory in forward, then runs the dense conv2d or
 * linear op with it. Backward runs the dense backward with W_e and sends the
 * weight gradient straight through to the latent parameter. aux holds
 *   W_e (wsize) | alpha (M, ternary) | dW_e (wsize, deepshift-ps only). */
#include "net.h"
#include "method_sp.h"
#include "method_winograd.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define T(id) (&net->tensors[(id)])

static float *pdata(const FmNet *net, const FmLayer *l, int k) { return l->param[k] >= 0 ? net->params[l->param[k]].data : NULL; }
static float *pgrad(const FmNet *net, const FmLayer *l, int k) { return l->param[k] >= 0 ? net->params[l->param[k]].grad : NULL; }

// weight elements; *M = output channels, *K = elements per output channel
static size_t wsize(const FmNet *net, const FmLayer *l, int *M, size_t *K) {
  size_t k;
  if (fm_method_layer_is_conv(l)) {
    const FmConvAttr *a = &l->a.conv;
    *M = a->cout;
    k = (size_t)(a->cin / a->groups) * (size_t)(a->kh * a->kw);
  } else {
    *M = T(l->out)->c;
    k = T(l->in[0])->size;
  }
  if (K) *K = k;
  return (size_t)*M * k;
}

static int always_on_grid(const FmNet *net, const FmLayer *l) {
  return l->method == FM_METHOD_QUANT && net->method.quant_mode == FM_QUANT_ALWAYS;
}

static float quant_step(const FmNet *net, const FmLayer *l) {
  return fm_quant_step(net->bufs[l->buf[0]].data[0], net->method.weight_bits);
}

// The effective weight of this forward: into aux, or the parameter itself
// when it always lies on the grid.
static const float *eff_weight(FmNet *net, FmLayer *l, int train) {
  int M;
  size_t K, n = wsize(net, l, &M, &K);
  const float *w = pdata(net, l, 0);
  float *we = l->aux;
  int pmin = fm_deepshift_pmin(net->method.weight_bits);
  switch (l->method) {
  case FM_METHOD_TERNARY: fm_ternarize(w, M, K, NULL, we + n, we); break;
  case FM_METHOD_DEEPSHIFT_Q: fm_pow2_round(w, n, pmin, NULL, NULL, we); break;
  case FM_METHOD_DEEPSHIFT_PS: fm_pow2_ps(w, pdata(net, l, 2), n, pmin, NULL, NULL, we); break;
  case FM_METHOD_QUANT:
    if (always_on_grid(net, l)) return w;
    fm_quant_array(w, n, quant_step(net, l), net->method.weight_bits, net->method.zeroless,
                   train && net->method.stochastic ? &net->rng : NULL, NULL, we);
    break;
  default: abort();
  }
  return we;
}

// Backward's view: the weight forward used, and where the weight gradient goes.
static const float *bwd_weight(FmNet *net, FmLayer *l) {
  return always_on_grid(net, l) ? pdata(net, l, 0) : l->aux;
}
static float *bwd_wgrad(FmNet *net, FmLayer *l, size_t n, int M) {
  if (l->method != FM_METHOD_DEEPSHIFT_PS) return pgrad(net, l, 0);   // straight through
  float *g = l->aux + n + M;
  memset(g, 0, sizeof(float) * n);
  return g;
}
// deepshift-ps: W = 2^P * S, with the reference's gradients dP = dW * W * ln 2, dS = dW
static void bwd_finish(FmNet *net, FmLayer *l, size_t n, int M) {
  if (l->method != FM_METHOD_DEEPSHIFT_PS) return;
  const float *we = l->aux, *g = l->aux + n + M;
  float *gp = pgrad(net, l, 0), *gs = pgrad(net, l, 2);
  const float ln2 = 0.69314718f;
  for (size_t i = 0; i < n; i++) gp[i] += g[i] * we[i] * ln2, gs[i] += g[i];
}

/* DeepShift with --act-fixed: the layer reads its input rounded to fixed point. The
   rounded copy lives in the workspace after what the conv needs (off floats in), and
   backward rounds again (the input has not changed) instead of keeping it. */
static int fixed_input(const FmNet *net, const FmLayer *l) {
  return net->method.act_int && (l->method == FM_METHOD_DEEPSHIFT_Q || l->method == FM_METHOD_DEEPSHIFT_PS);
}
static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }
static const float *layer_input(FmNet *net, const FmLayer *l, int n, size_t off) {
  const FmTensor *x = T(l->in[0]);
  if (!fixed_input(net, l)) return x->data;
  float *xq = net->work + align16(off);
  fm_fixed_round(x->data, (size_t)n * x->size, net->method.act_int, net->method.act_frac, xq);
  return xq;
}
static size_t fixed_ws(const FmNet *net, const FmLayer *l, int n, size_t off) {
  return fixed_input(net, l) ? align16(off) + (size_t)n * T(l->in[0])->size : off;
}

static size_t conv_ws(const FmNet *net, const FmLayer *l) {
  const FmTensor *x = &net->tensors[l->in[0]];
  return fm_conv2d_workspace(&l->a.conv, x->h, x->w, net->threads);
}
static size_t mconv_ws(const FmNet *net, const FmLayer *l, int n) { return fixed_ws(net, l, n, conv_ws(net, l)); }
static void mconv_fwd(FmNet *net, FmLayer *l, int n, int train) {
  FmTensor *x = T(l->in[0]);
  const float *w = eff_weight(net, l, train), *in = layer_input(net, l, n, conv_ws(net, l));
  fm_conv2d_forward(T(l->out)->data, in, w, pdata(net, l, 1), n, x->h, x->w, &l->a.conv, net->work,
                    net->threads);
}
static void mconv_bwd(FmNet *net, FmLayer *l, int n) {
  FmTensor *x = T(l->in[0]);
  int M;
  size_t ws = wsize(net, l, &M, NULL);
  const float *in = layer_input(net, l, n, conv_ws(net, l));
  fm_conv2d_backward(x->grad, bwd_wgrad(net, l, ws, M), pgrad(net, l, 1), T(l->out)->grad, in,
                     bwd_weight(net, l), n, x->h, x->w, &l->a.conv, net->work, net->threads, 0);
  bwd_finish(net, l, ws, M);
}
static size_t mlin_ws(const FmNet *net, const FmLayer *l, int n) { return fixed_ws(net, l, n, 0); }
static void mlin_fwd(FmNet *net, FmLayer *l, int n, int train) {
  FmTensor *x = T(l->in[0]);
  const float *w = eff_weight(net, l, train), *in = layer_input(net, l, n, 0);
  fm_linear_forward(T(l->out)->data, in, w, pdata(net, l, 1), n, (int)x->size, T(l->out)->c, net->threads);
}
static void mlin_bwd(FmNet *net, FmLayer *l, int n) {
  FmTensor *x = T(l->in[0]);
  int M;
  size_t ws = wsize(net, l, &M, NULL);
  const float *in = layer_input(net, l, n, 0);
  fm_linear_backward(x->grad, bwd_wgrad(net, l, ws, M), pgrad(net, l, 1), T(l->out)->grad, in,
                     bwd_weight(net, l), n, (int)x->size, M, net->threads);
  bwd_finish(net, l, ws, M);
}

static const FmLayerOps conv_ops[FM_METHOD_COUNT] = {
  [FM_METHOD_TERNARY] = {FM_LAYER_CUSTOM, "ternary_conv2d", mconv_fwd, mconv_bwd, mconv_ws},
  [FM_METHOD_DEEPSHIFT_Q] = {FM_LAYER_CUSTOM, "shiftq_conv2d", mconv_fwd, mconv_bwd, mconv_ws},
  [FM_METHOD_DEEPSHIFT_PS] = {FM_LAYER_CUSTOM, "shiftps_conv2d", mconv_fwd, mconv_bwd, mconv_ws},
  [FM_METHOD_QUANT] = {FM_LAYER_CUSTOM, "quant_conv2d", mconv_fwd, mconv_bwd, mconv_ws},
};
static const FmLayerOps lin_ops[FM_METHOD_COUNT] = {
  [FM_METHOD_TERNARY] = {FM_LAYER_CUSTOM, "ternary_linear", mlin_fwd, mlin_bwd, NULL},
  [FM_METHOD_DEEPSHIFT_Q] = {FM_LAYER_CUSTOM, "shiftq_linear", mlin_fwd, mlin_bwd, mlin_ws},
  [FM_METHOD_DEEPSHIFT_PS] = {FM_LAYER_CUSTOM, "shiftps_linear", mlin_fwd, mlin_bwd, mlin_ws},
  [FM_METHOD_QUANT] = {FM_LAYER_CUSTOM, "quant_linear", mlin_fwd, mlin_bwd, NULL},
};

int fm_method_layer(const FmLayer *l) { return l->kind == FM_LAYER_CUSTOM && l->method != FM_METHOD_NONE; }
int fm_method_layer_is_conv(const FmLayer *l) {
  return fm_method_layer(l) && l->ops == &conv_ops[l->method];
}

// --- building --------------------------------------------------------------------

static int add(FmNet *net, int x, const FmLayerOps *table, int bias, int c, int h, int w, int flat) {
  FmMethodKind k = net->method.kind;
  if (k <= FM_METHOD_NONE || k >= FM_METHOD_COUNT) {
    if (!net->err[0]) snprintf(net->err, sizeof net->err, "unknown training method %d", (int)k);
    return -1;
  }
  int li = fm_net_add_layer(net, &table[k], &x, 1, c, h, w, flat);
  if (li < 0) return -1;
  FmLayer *l = &net->layers[li];
  l->method = k;
  l->has_bias = bias;
  net->tensors[l->out].needs_grad = 1;   // its parameters come at fm_net_finish
  return li;
}

static int weight_conv2d(FmNet *net, int x, const FmConvAttr *a, int bias, int oh, int ow) {
  int li = add(net, x, conv_ops, bias, a->cout, oh, ow, 0);
  if (li < 0) return -1;
  net->layers[li].a.conv = *a;
  return net->layers[li].out;
}

static int weight_linear(FmNet *net, int x, int out, int bias) {
  int li = add(net, x, lin_ops, bias, out, 1, 1, 1);
  return li < 0 ? -1 : net->layers[li].out;
}

// weight (and bias) as the dense builders make them: U(+-1/sqrt(fan_in))
static int weight_params(FmNet *net, int li, const char *wname) {
  FmLayer *l = &net->layers[li];
  int M;
  size_t K, n = wsize(net, l, &M, &K);
  (void)n;
  float bound = 1.0f / sqrtf((float)K);
  int ws[4], nd, bs[1] = {M};
  if (fm_method_layer_is_conv(l)) {
    const FmConvAttr *a = &l->a.conv;
    ws[0] = a->cout, ws[1] = a->cin / a->groups, ws[2] = a->kh, ws[3] = a->kw, nd = 4;
  } else {
    ws[0] = M, ws[1] = (int)K, nd = 2;
  }
  int w = fm_net_add_param(net, li, wname, ws, nd, FM_INIT_UNIFORM, bound);
  if (l->has_bias) fm_net_add_param(net, li, "bias", bs, 1, FM_INIT_UNIFORM, bound);
  else l->nparam = 2;   // slot 1 stays -1: no bias
  return w;
}

static void make_dense(FmNet *net, int li) {
  FmLayer *l = &net->layers[li];
  const FmLayerOps *ops = fm_net_builtin_ops(fm_method_layer_is_conv(l) ? FM_LAYER_CONV2D : FM_LAYER_LINEAR);
  snprintf(l->name, sizeof l->name, "%s_%d", ops->name, li);   // as the dense builder names it
  weight_params(net, li, "weight");   // reads the shapes while l is still a method layer
  l->ops = ops;
  l->kind = ops->kind;
  l->method = FM_METHOD_NONE;
}

static int shift_group(FmNet *net) {
  for (int g = 0; g < net->ngroups; g++)
    if (!strcmp(net->groups[g].name, "deepshift")) return g;
  return fm_net_add_group(net, "deepshift", 1.0f, 0.0f, 0);   // no weight decay on P and S
}

static int weight_prepare(FmNet *net) {
  char err[200];
  if (fm_method_check(&net->method, err, sizeof err)) {
    if (!net->err[0]) snprintf(net->err, sizeof net->err, "%s", err);
    return -1;
  }
  int first_conv = -1, last_linear = -1;
  for (int i = 0; i < net->nlayers; i++) {
    const FmLayer *l = &net->layers[i];
    if (!fm_method_layer(l)) continue;
    if (fm_method_layer_is_conv(l) && first_conv < 0) first_conv = i;
    if (!fm_method_layer_is_conv(l)) last_linear = i;
  }
  for (int i = 0; i < net->nlayers; i++) {
    FmLayer *l = &net->layers[i];
    if (!fm_method_layer(l) || l->nparam) continue;
    if (!net->method.all && (i == first_conv || i == last_linear)) {
      make_dense(net, i);
      continue;
    }
    int M;
    size_t n = wsize(net, l, &M, NULL);
    int ps = l->method == FM_METHOD_DEEPSHIFT_PS;
    // deepshift-ps: P starts as a dense draw, turned into log2|W| by fm_method_init
    int w = weight_params(net, i, ps ? "shift" : "weight");
    if (w < 0) return -1;
    if (ps) {
      int shape[4], nd = net->params[w].ndim;   // copied: adding a parameter may move net->params
      memcpy(shape, net->params[w].shape, sizeof shape);
      int s = fm_net_add_param(net, i, "sign", shape, nd, FM_INIT_CONST, 0.0f);
      int g = shift_group(net);
      if (s < 0 || g < 0) return -1;
      fm_net_set_param_group(net, w, g);
      fm_net_set_param_group(net, s, g);
    }
    if (l->method == FM_METHOD_QUANT) {
      int one[1] = {1};
      if (fm_net_add_buf(net, i, "range", one, 1, FM_INIT_CONST, 0.0f) < 0) return -1;
    }
    l->aux_fixed = always_on_grid(net, l) ? 0 : n + (size_t)M + (ps ? n : 0);
  }
  return net->err[0] ? -1 : 0;
}

static void quant_in_place(FmNet *net, FmLayer *l) {
  int M;
  size_t n = wsize(net, l, &M, NULL);
  float *w = pdata(net, l, 0);
  fm_quant_array(w, n, quant_step(net, l), net->method.weight_bits, net->method.zeroless,
                 net->method.stochastic ? &net->rng : NULL, NULL, w);
}

static void weight_init(FmNet *net) {
  int pmin = fm_deepshift_pmin(net->method.weight_bits);
  for (int i = 0; i < net->nlayers; i++) {
    FmLayer *l = &net->layers[i];
    if (!fm_method_layer(l)) continue;
    int M;
    size_t n = wsize(net, l, &M, NULL);
    float *w = pdata(net, l, 0);
    if (l->method == FM_METHOD_DEEPSHIFT_PS) {
      float *s = pdata(net, l, 2);
      for (size_t j = 0; j < n; j++) {
        float a = fabsf(w[j]), p = a > 0 ? log2f(a) : (float)pmin;
        s[j] = w[j] < 0 ? -1.0f : 1.0f;
        w[j] = p < (float)pmin ? (float)pmin : p > 0 ? 0.0f : p;
      }
    } else if (l->method == FM_METHOD_QUANT) {
      float s = net->method.range;
      if (!(s > 0)) {
        s = 0;
        for (size_t j = 0; j < n; j++) s = fmaxf(s, fabsf(w[j]));
        if (!(s > 0)) s = 1;
      }
      net->bufs[l->buf[0]].data[0] = s;
      if (always_on_grid(net, l)) quant_in_place(net, l);
    }
  }
}

static void weight_post_step(FmNet *net) {
  float pmin = (float)fm_deepshift_pmin(net->method.weight_bits);
  for (int i = 0; i < net->nlayers; i++) {
    FmLayer *l = &net->layers[i];
    if (!fm_method_layer(l)) continue;
    if (l->method == FM_METHOD_DEEPSHIFT_PS) {
      int M;
      size_t n = wsize(net, l, &M, NULL);
      float *p = pdata(net, l, 0);
      for (size_t j = 0; j < n; j++) p[j] = p[j] < pmin ? pmin : p[j] > 0 ? 0.0f : p[j];
    } else if (always_on_grid(net, l)) {
      quant_in_place(net, l);
    }
  }
}

// --- the method table: the net builders and the trainer dispatch through it ------------

static int wino_conv2d(FmNet *net, int x, const FmConvAttr *a, int bias, int oh, int ow) {
  (void)oh, (void)ow;
  return fm_wino_method_conv2d(net, x, a, bias);
}
static int built_complete(FmNet *net) { return net->err[0] ? -1 : 0; }

#define WEIGHT_METHOD(k, nm) {k, nm, fm_method_describe, weight_conv2d, weight_linear, weight_prepare, weight_init, weight_post_step}
static const FmMethodOps method_table[] = {
  WEIGHT_METHOD(FM_METHOD_TERNARY, "ternary"),
  WEIGHT_METHOD(FM_METHOD_DEEPSHIFT_Q, "deepshift-q"),
  WEIGHT_METHOD(FM_METHOD_DEEPSHIFT_PS, "deepshift-ps"),
  WEIGHT_METHOD(FM_METHOD_QUANT, "quant"),
  // SP: a is clipped in forward, nothing after a step (method_sp.c)
  {FM_METHOD_SP, "sp", fm_sp_describe, fm_sp_method_conv2d, fm_sp_method_linear, fm_sp_prepare, NULL, NULL},
  {FM_METHOD_WINOGRAD, "winograd", fm_wino_describe, wino_conv2d, fm_wino_method_linear, built_complete, NULL, NULL},
};
#undef WEIGHT_METHOD

const FmMethodOps *fm_method_ops(FmMethodKind kind) {
  for (size_t i = 0; i < sizeof method_table / sizeof *method_table; i++)
    if (method_table[i].kind == kind) return &method_table[i];
  return NULL;
}

int fm_method_parse_any(const char *name) {
  for (size_t i = 0; i < sizeof method_table / sizeof *method_table; i++)
    if (!strcmp(method_table[i].name, name)) return (int)method_table[i].kind;
  return -1;
}

void fm_method_describe_any(const FmMethod *m, char *buf, size_t n) {
  const FmMethodOps *o = fm_method_ops(m->kind);
  if (o) o->describe(m, buf, n);
  else snprintf(buf, n, "dense");
}

static const FmMethodOps *ops_of(FmNet *net) {
  const FmMethodOps *o = fm_method_ops(net->method.kind);
  if (!o && !net->err[0]) snprintf(net->err, sizeof net->err, "unknown training method %d", (int)net->method.kind);
  return o;
}

int fm_method_conv2d(FmNet *net, int x, const FmConvAttr *a, int bias, int oh, int ow) {
  const FmMethodOps *o = x < 0 ? NULL : ops_of(net);
  return o ? o->conv2d(net, x, a, bias, oh, ow) : -1;
}
int fm_method_linear(FmNet *net, int x, int out, int bias) {
  const FmMethodOps *o = x < 0 ? NULL : ops_of(net);
  return o ? o->linear(net, x, out, bias) : -1;
}
int fm_method_prepare(FmNet *net) {
  const FmMethodOps *o = ops_of(net);
  return o ? o->prepare(net) : -1;
}
void fm_method_init(FmNet *net) {
  const FmMethodOps *o = fm_method_ops(net->method.kind);
  if (o && o->init) o->init(net);
}
void fm_method_post_step(FmNet *net) {
  const FmMethodOps *o = fm_method_ops(net->method.kind);
  if (o && o->post_step) o->post_step(net);
}

// --- export --------------------------------------------------------------------------

void fm_method_export_free(FmMethodExport *me) {
  free(me->q), free(me->shift), free(me->alpha);
  memset(me, 0, sizeof *me);
}

int fm_method_export(const FmNet *net, const FmLayer *l, FmMethodExport *me) {
  memset(me, 0, sizeof *me);
  if (!fm_method_layer(l) || l->param[0] < 0) return -1;
  int M;
  size_t K, n = wsize(net, l, &M, &K);
  const FmParam *w = &net->params[l->param[0]];
  me->kind = l->method;
  me->conv = fm_method_layer_is_conv(l);
  me->wsize = n, me->M = M;
  me->wrank = w->ndim;
  for (int i = 0; i < w->ndim; i++) me->wdims[i] = w->shape[i];
  me->bias = l->param[1] >= 0 ? &net->params[l->param[1]] : NULL;
  me->q = malloc(n + 1);
  if (l->method == FM_METHOD_DEEPSHIFT_Q || l->method == FM_METHOD_DEEPSHIFT_PS) me->shift = malloc(n + 1);
  if (l->method == FM_METHOD_TERNARY) me->alpha = malloc(sizeof(float) * (size_t)M);
  if (!me->q || (!me->shift && (l->method == FM_METHOD_DEEPSHIFT_Q || l->method == FM_METHOD_DEEPSHIFT_PS)) ||
      (!me->alpha && l->method == FM_METHOD_TERNARY)) {
    fm_method_export_free(me);
    return -1;
  }
  int pmin = fm_deepshift_pmin(net->method.weight_bits);
  switch (l->method) {
  case FM_METHOD_TERNARY: fm_ternarize(w->data, M, K, me->q, me->alpha, NULL); break;
  case FM_METHOD_DEEPSHIFT_Q: fm_pow2_round(w->data, n, pmin, me->q, me->shift, NULL); break;
  case FM_METHOD_DEEPSHIFT_PS: fm_pow2_ps(w->data, net->params[l->param[2]].data, n, pmin, me->q, me->shift, NULL); break;
  case FM_METHOD_QUANT:
    me->scale = quant_step(net, l);
    fm_quant_array(w->data, n, me->scale, net->method.weight_bits, net->method.zeroless, NULL, me->q, NULL);
    break;
  default: break;
  }
  return 0;
}
