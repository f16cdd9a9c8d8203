/* net_layers.c - the built-in layer kinds: a builder (shape checks, params)
 * plus forward/backward callbacks that call the ops in ops_*.c. */
#include "net.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define T(id) (&net->tensors[(id)])
#define IN(l, i) T((l)->in[i])
#define OUT(l) T((l)->out)
// parameter data / grad of slot k (NULL if absent)
static float *pdata(FmNet *net, FmLayer *l, int k) { return l->param[k] >= 0 ? net->params[l->param[k]].data : NULL; }
static float *pgrad(FmNet *net, FmLayer *l, int k) { return l->param[k] >= 0 ? net->params[l->param[k]].grad : NULL; }
static float *bdata(FmNet *net, FmLayer *l, int k) { return l->buf[k] >= 0 ? net->bufs[l->buf[k]].data : NULL; }

static void err(FmNet *net, const char *msg, const char *what) {
  if (!net->err[0]) snprintf(net->err, sizeof net->err, "%s: %s", what, msg);
}

static int add1(FmNet *net, const FmLayerOps *ops, int x, int c, int h, int w, int flat) {
  if (x < 0) return -1;
  return fm_net_add_layer(net, ops, &x, 1, c, h, w, flat);
}

// --- normalize ---------------------------------------------------------------
static void normalize_fwd(FmNet *net, FmLayer *l, int n, int train) {
  FmTensor *x = IN(l, 0);
  fm_normalize_forward(OUT(l)->data, x->data, bdata(net, l, 0), bdata(net, l, 1), n, x->c, x->h * x->w);
}
static void normalize_bwd(FmNet *net, FmLayer *l, int n) {
  FmTensor *x = IN(l, 0);
  if (x->grad) fm_normalize_backward(x->grad, OUT(l)->grad, bdata(net, l, 1), n, x->c, x->h * x->w);
}
static const FmLayerOps normalize_ops = {FM_LAYER_NORMALIZE, "normalize", normalize_fwd, normalize_bwd, NULL};

int fm_net_normalize(FmNet *net, int x, const float *mean, const float *std) {
  if (x < 0) return -1;
  FmTensor t = *T(x);
  int li = add1(net, &normalize_ops, x, t.c, t.h, t.w, t.flat);
  if (li < 0) return -1;
  net->layers[li].a.norm.C = t.c;
  int shape[1] = {t.c};
  int m = fm_net_add_buf(net, li, "mean", shape, 1, FM_INIT_DATA, 0);
  int s = fm_net_add_buf(net, li, "std", shape, 1, FM_INIT_DATA, 0);
  if (m < 0 || s < 0) return -1;
  net->bufs[m].init_data = malloc(sizeof(float) * t.c);
  net->bufs[s].init_data = malloc(sizeof(float) * t.c);
  for (int c = 0; c < t.c; c++) {
    net->bufs[m].init_data[c] = mean ? mean[c] : 0.0f;
    net->bufs[s].init_data[c] = std ? std[c] : 1.0f;
    if (std && !(std[c] > 0)) err(net, "std must be > 0", net->layers[li].name);
  }
  return net->layers[li].out;
}

// --- conv2d --------------------------------------------------------------------
static size_t conv_ws(const FmNet *net, const FmLayer *l, int n) {
  const FmTensor *x = &net->tensors[l->in[0]];
  return fm_conv2d_workspace(&l->a.conv, x->h, x->w, net->threads);
}
static void conv_fwd(FmNet *net, FmLayer *l, int n, int train) {
  FmTensor *x = IN(l, 0);
  fm_conv2d_forward(OUT(l)->data, x->data, pdata(net, l, 0), pdata(net, l, 1), n, x->h, x->w,
                    &l->a.conv, net->work, net->threads);
}
static void conv_bwd(FmNet *net, FmLayer *l, int n) {
  FmTensor *x = IN(l, 0);
  fm_conv2d_backward(x->grad, pgrad(net, l, 0), pgrad(net, l, 1), OUT(l)->grad, x->data,
                        pdata(net, l, 0), n, x->h, x->w, &l->a.conv, net->work, net->threads, l->assign[0]);
}
static const FmLayerOps conv_ops = {FM_LAYER_CONV2D, "conv2d", conv_fwd, conv_bwd, conv_ws};

int fm_net_conv2d_ex(FmNet *net, int x, const FmConvAttr *attr, int bias) {
  if (x < 0) return -1;
  FmConvAttr a = *attr;
  FmTensor t = *T(x);
  a.cin = t.c;
  if (a.groups < 1 || a.cin % a.groups || a.cout % a.groups) {
    err(net, "channels not divisible by groups", "conv2d");
    return -1;
  }
  int oh = fm_conv_out(t.h, a.kh, a.sh, a.ph, a.dh), ow = fm_conv_out(t.w, a.kw, a.sw, a.pw, a.dw);
  if (net->method.kind) return fm_method_conv2d(net, x, &a, bias, oh, ow);   // method.h
  int li = add1(net, &conv_ops, x, a.cout, oh, ow, 0);
  if (li < 0) return -1;
  net->layers[li].a.conv = a;
  int fan_in = a.cin / a.groups * a.kh * a.kw;
  float bound = 1.0f / sqrtf((float)fan_in);
  int ws[4] = {a.cout, a.cin / a.groups, a.kh, a.kw}, bs[1] = {a.cout};
  fm_net_add_param(net, li, "weight", ws, 4, FM_INIT_UNIFORM, bound);
  if (bias) fm_net_add_param(net, li, "bias", bs, 1, FM_INIT_UNIFORM, bound);
  else net->layers[li].nparam = 2;   // slot 1 stays -1: no bias
  return net->layers[li].out;
}

int fm_net_conv2d(FmNet *net, int x, int cout, int k, int stride, int pad, int bias) {
  FmConvAttr a = fm_conv_attr(0, cout, k, stride, pad, 1, 1);
  return fm_net_conv2d_ex(net, x, &a, bias);
}

// --- conv_transpose2d --------------------------------------------------------------
static size_t convt_ws(const FmNet *net, const FmLayer *l, int n) {
  const FmTensor *x = &net->tensors[l->in[0]];
  return fm_convt2d_workspace(&l->a.conv, x->h, x->w, net->threads);
}
static void convt_fwd(FmNet *net, FmLayer *l, int n, int train) {
  FmTensor *x = IN(l, 0);
  fm_convt2d_forward(OUT(l)->data, x->data, pdata(net, l, 0), pdata(net, l, 1), n, x->h, x->w,
                     &l->a.conv, net->work, net->threads);
}
static void convt_bwd(FmNet *net, FmLayer *l, int n) {
  FmTensor *x = IN(l, 0);
  fm_convt2d_backward(x->grad, pgrad(net, l, 0), pgrad(net, l, 1), OUT(l)->grad, x->data,
                      pdata(net, l, 0), n, x->h, x->w, &l->a.conv, net->work, net->threads);
}
static const FmLayerOps convt_ops = {FM_LAYER_CONV_TRANSPOSE2D, "conv_transpose2d", convt_fwd, convt_bwd, convt_ws};

int fm_net_conv_transpose2d(FmNet *net, int x, const FmConvAttr *attr, int bias) {
  if (x < 0) return -1;
  FmConvAttr a = *attr;
  FmTensor t = *T(x);
  a.cin = t.c;
  if (a.groups < 1 || a.cin % a.groups || a.cout % a.groups || a.oph >= a.sh || a.opw >= a.sw) {
    err(net, "bad groups or output padding", "conv_transpose2d");
    return -1;
  }
  int oh = fm_convt_out(t.h, a.kh, a.sh, a.ph, a.dh, a.oph), ow = fm_convt_out(t.w, a.kw, a.sw, a.pw, a.dw, a.opw);
  int li = add1(net, &convt_ops, x, a.cout, oh, ow, 0);
  if (li < 0) return -1;
  net->layers[li].a.conv = a;
  float bound = 1.0f / sqrtf((float)(a.cout / a.groups * a.kh * a.kw));
  int ws[4] = {a.cin, a.cout / a.groups, a.kh, a.kw}, bs[1] = {a.cout};
  fm_net_add_param(net, li, "weight", ws, 4, FM_INIT_UNIFORM, bound);
  if (bias) fm_net_add_param(net, li, "bias", bs, 1, FM_INIT_UNIFORM, bound);
  else net->layers[li].nparam = 2;
  return net->layers[li].out;
}

// --- linear --------------------------------------------------------------------
static void linear_fwd(FmNet *net, FmLayer *l, int n, int train) {
  FmTensor *x = IN(l, 0);
  fm_linear_forward(OUT(l)->data, x->data, pdata(net, l, 0), pdata(net, l, 1), n, (int)x->size,
                    OUT(l)->c, net->threads);
}
static void linear_bwd(FmNet *net, FmLayer *l, int n) {
  FmTensor *x = IN(l, 0);
  fm_linear_backward(x->grad, pgrad(net, l, 0), pgrad(net, l, 1), OUT(l)->grad, x->data,
                     pdata(net, l, 0), n, (int)x->size, OUT(l)->c, net->threads);
}
static const FmLayerOps linear_ops = {FM_LAYER_LINEAR, "linear", linear_fwd, linear_bwd, NULL};

int fm_net_linear(FmNet *net, int x, int out, int bias) {
  if (x < 0) return -1;
  if (net->method.kind) return fm_method_linear(net, x, out, bias);   // method.h
  int in = (int)T(x)->size;
  int li = add1(net, &linear_ops, x, out, 1, 1, 1);
  if (li < 0) return -1;
  float bound = 1.0f / sqrtf((float)in);
  int ws[2] = {out, in}, bs[1] = {out};
  fm_net_add_param(net, li, "weight", ws, 2, FM_INIT_UNIFORM, bound);
  if (bias) fm_net_add_param(net, li, "bias", bs, 1, FM_INIT_UNIFORM, bound);
  else net->layers[li].nparam = 2;
  return net->layers[li].out;
}

// --- batchnorm -----------------------------------------------------------------
// aux: mean (C) then invstd (C)
static void bn_fwd(FmNet *net, FmLayer *l, int n, int train) {
  FmTensor *x = IN(l, 0);
  int C = l->a.bn.C;
  FmBnAttr at = l->a.bn;
  at.sync = net->bn_sync;
  fm_batchnorm_forward(OUT(l)->data, l->aux, l->aux + C, x->data, pdata(net, l, 0), pdata(net, l, 1),
                       bdata(net, l, 0), bdata(net, l, 1), n, x->h * x->w, &at, train, net->threads);
}
static void bn_bwd(FmNet *net, FmLayer *l, int n) {
  FmTensor *x = IN(l, 0);
  int C = l->a.bn.C;
  FmBnAttr at = l->a.bn;
  at.sync = net->bn_sync;
  fm_batchnorm_backward(x->grad, pgrad(net, l, 0), pgrad(net, l, 1), OUT(l)->grad, x->data, l->aux,
                           l->aux + C, pdata(net, l, 0), n, x->h * x->w, &at, l->train, net->threads,
                           l->assign[0]);
}
static const FmLayerOps bn_ops = {FM_LAYER_BATCHNORM, "batchnorm", bn_fwd, bn_bwd, NULL};

int fm_net_batchnorm(FmNet *net, int x, float eps, float momentum, int fixed_gamma) {
  if (x < 0) return -1;
  FmTensor t = *T(x);
  int li = add1(net, &bn_ops, x, t.c, t.h, t.w, t.flat);
  if (li < 0) return -1;
  FmLayer *l = &net->layers[li];
  l->a.bn = (FmBnAttr){t.c, eps, momentum, fixed_gamma, NULL};
  l->aux_fixed = 2 * (size_t)t.c;
  int s[1] = {t.c};
  int g = fm_net_add_param(net, li, "weight", s, 1, FM_INIT_CONST, 1.0f);
  fm_net_add_param(net, li, "bias", s, 1, FM_INIT_CONST, 0.0f);
  fm_net_add_buf(net, li, "running_mean", s, 1, FM_INIT_CONST, 0.0f);
  fm_net_add_buf(net, li, "running_var", s, 1, FM_INIT_CONST, 1.0f);
  if (fixed_gamma && g >= 0) fm_net_set_param_group(net, g, 1);   // "frozen"
  return net->layers[li].out;
}

int fm_net_bn(FmNet *net, int x) { return fm_net_batchnorm(net, x, 1e-5f, 0.1f, 0); }

// --- relu --------------------------------------------------------------------------
static void relu_fwd(FmNet *net, FmLayer *l, int n, int train) {
  fm_relu_forward(OUT(l)->data, IN(l, 0)->data, OUT(l)->size * n);
}
static void relu_bwd(FmNet *net, FmLayer *l, int n) {
  if (IN(l, 0)->grad) fm_relu_backward(IN(l, 0)->grad, OUT(l)->grad, OUT(l)->data, OUT(l)->size * n, l->assign[0]);
}
static const FmLayerOps relu_ops = {FM_LAYER_RELU, "relu", relu_fwd, relu_bwd, NULL};

int fm_net_relu(FmNet *net, int x) {
  if (x < 0) return -1;
  FmTensor t = *T(x);
  int li = add1(net, &relu_ops, x, t.c, t.h, t.w, t.flat);
  return li < 0 ? -1 : net->layers[li].out;
}

// --- pools -----------------------------------------------------------------------
static void maxpool_fwd(FmNet *net, FmLayer *l, int n, int train) {
  FmTensor *x = IN(l, 0);
  fm_maxpool_forward(OUT(l)->data, (int32_t *)l->aux, x->data, n, x->c, x->h, x->w, &l->a.pool);
}
static void maxpool_bwd(FmNet *net, FmLayer *l, int n) {
  FmTensor *x = IN(l, 0);
  if (x->grad) fm_maxpool_backward(x->grad, OUT(l)->grad, (const int32_t *)l->aux, n, x->c, x->h, x->w, &l->a.pool);
}
static const FmLayerOps maxpool_ops = {FM_LAYER_MAXPOOL, "maxpool", maxpool_fwd, maxpool_bwd, NULL};

static void avgpool_fwd(FmNet *net, FmLayer *l, int n, int train) {
  FmTensor *x = IN(l, 0);
  fm_avgpool_forward(OUT(l)->data, x->data, n, x->c, x->h, x->w, &l->a.pool);
}
static void avgpool_bwd(FmNet *net, FmLayer *l, int n) {
  FmTensor *x = IN(l, 0);
  if (x->grad) fm_avgpool_backward(x->grad, OUT(l)->grad, n, x->c, x->h, x->w, &l->a.pool);
}
static const FmLayerOps avgpool_ops = {FM_LAYER_AVGPOOL, "avgpool", avgpool_fwd, avgpool_bwd, NULL};

static int pool_ex(FmNet *net, const FmLayerOps *ops, int x, const FmPoolAttr *pa) {
  if (x < 0) return -1;
  FmTensor t = *T(x);
  FmPoolAttr a = *pa;
  if (a.kh < 1 || a.kw < 1 || a.sh < 1 || a.sw < 1 || a.ph < 0 || a.pw < 0) {
    err(net, "bad kernel, stride or padding", ops->name);
    return -1;
  }
  if (2 * a.ph > a.kh || 2 * a.pw > a.kw) { err(net, "padding larger than half the kernel", ops->name); return -1; }
  int li = add1(net, ops, x, t.c, fm_conv_out(t.h, a.kh, a.sh, a.ph, 1), fm_conv_out(t.w, a.kw, a.sw, a.pw, 1), 0);
  if (li < 0) return -1;
  FmLayer *l = &net->layers[li];
  l->a.pool = a;
  if (ops == &maxpool_ops) l->aux_per_sample = net->tensors[l->out].size;   // argmax (int32)
  return l->out;
}

static int pool(FmNet *net, const FmLayerOps *ops, int x, int k, int stride, int pad) {
  FmPoolAttr a = {k, k, stride, stride, pad, pad};
  return pool_ex(net, ops, x, &a);
}
int fm_net_maxpool(FmNet *net, int x, int k, int stride, int pad) { return pool(net, &maxpool_ops, x, k, stride, pad); }
int fm_net_avgpool(FmNet *net, int x, int k, int stride, int pad) { return pool(net, &avgpool_ops, x, k, stride, pad); }
int fm_net_pool2d(FmNet *net, int x, int max, const FmPoolAttr *a) {
  return pool_ex(net, max ? &maxpool_ops : &avgpool_ops, x, a);
}

static void gap_fwd(FmNet *net, FmLayer *l, int n, int train) {
  FmTensor *x = IN(l, 0);
  fm_gap_forward(OUT(l)->data, x->data, n, x->c, x->h * x->w);
}
static void gap_bwd(FmNet *net, FmLayer *l, int n) {
  FmTensor *x = IN(l, 0);
  if (x->grad) fm_gap_backward(x->grad, OUT(l)->grad, n, x->c, x->h * x->w);
}
static const FmLayerOps gap_ops = {FM_LAYER_GLOBAL_AVGPOOL, "global_avgpool", gap_fwd, gap_bwd, NULL};

int fm_net_global_avgpool(FmNet *net, int x) {
  if (x < 0) return -1;
  int li = add1(net, &gap_ops, x, T(x)->c, 1, 1, 1);
  return li < 0 ? -1 : net->layers[li].out;
}

// --- dropout -------------------------------------------------------------------
// aux: the mask; eval mode copies the input through
static void dropout_fwd(FmNet *net, FmLayer *l, int n, int train) {
  FmTensor *x = IN(l, 0);
  if (!train || l->a.p <= 0) { memcpy(OUT(l)->data, x->data, sizeof(float) * x->size * n); return; }
  if (net->sample_id) {   // per-sample masks keyed by (seed, step, layer, sample id): net.h
    uint64_t key = fm_net_step_key(net, (int)(l - net->layers));
    if (l->kind == FM_LAYER_DROPOUT)
      fm_dropout_forward_keyed(OUT(l)->data, l->aux, x->data, n, (int)x->size, l->a.p, key, net->sample_id);
    else
      fm_dropout2d_forward_keyed(OUT(l)->data, l->aux, x->data, n, x->c, x->h * x->w, l->a.p, key, net->sample_id);
  } else if (l->kind == FM_LAYER_DROPOUT)
    fm_dropout_forward(OUT(l)->data, l->aux, x->data, n, (int)x->size, l->a.p, &net->rng);
  else
    fm_dropout2d_forward(OUT(l)->data, l->aux, x->data, n, x->c, x->h * x->w, l->a.p, &net->rng);
}
static void dropout_bwd(FmNet *net, FmLayer *l, int n) {
  FmTensor *x = IN(l, 0);
  if (!x->grad) return;
  if (!l->train || l->a.p <= 0) fm_add_backward(x->grad, NULL, OUT(l)->grad, x->size * n, 0, 0);
  else if (l->kind == FM_LAYER_DROPOUT) fm_dropout_backward(x->grad, OUT(l)->grad, l->aux, n, (int)x->size);
  else fm_dropout2d_backward(x->grad, OUT(l)->grad, l->aux, n, x->c, x->h * x->w);
}
static const FmLayerOps dropout_ops = {FM_LAYER_DROPOUT, "dropout", dropout_fwd, dropout_bwd, NULL};
static const FmLayerOps dropout2d_ops = {FM_LAYER_DROPOUT2D, "dropout2d", dropout_fwd, dropout_bwd, NULL};

static int dropout(FmNet *net, const FmLayerOps *ops, int x, float p) {
  if (x < 0) return -1;
  if (!(p >= 0 && p < 1)) { err(net, "p must be in [0,1)", ops->name); return -1; }
  FmTensor t = *T(x);
  int li = add1(net, ops, x, t.c, t.h, t.w, t.flat);
  if (li < 0) return -1;
  FmLayer *l = &net->layers[li];
  l->a.p = p;
  l->aux_per_sample = ops == &dropout_ops ? t.size : (size_t)t.c;
  return l->out;
}

int fm_net_dropout(FmNet *net, int x, float p) { return dropout(net, &dropout_ops, x, p); }
int fm_net_dropout2d(FmNet *net, int x, float p) { return dropout(net, &dropout2d_ops, x, p); }

// --- flatten: shares its input's memory, so forward and backward do nothing ----------
static void nop_fwd(FmNet *net, FmLayer *l, int n, int train) {}
static void nop_bwd(FmNet *net, FmLayer *l, int n) {}
static const FmLayerOps flatten_ops = {FM_LAYER_FLATTEN, "flatten", nop_fwd, nop_bwd, NULL};

int fm_net_flatten(FmNet *net, int x) {
  if (x < 0) return -1;
  int li = add1(net, &flatten_ops, x, (int)T(x)->size, 1, 1, 1);
  if (li < 0) return -1;
  FmTensor *t = &net->tensors[net->layers[li].out];
  t->alias = net->tensors[x].alias >= 0 ? net->tensors[x].alias : x;
  return net->layers[li].out;
}

// --- residual add ------------------------------------------------------------------
static void add_fwd(FmNet *net, FmLayer *l, int n, int train) {
  fm_add_forward(OUT(l)->data, IN(l, 0)->data, IN(l, 1)->data, OUT(l)->size * n);
}
static void add_bwd(FmNet *net, FmLayer *l, int n) {
  fm_add_backward(IN(l, 0)->grad, IN(l, 1)->grad, OUT(l)->grad, OUT(l)->size * n, l->assign[0], l->assign[1]);
}
static const FmLayerOps add_ops = {FM_LAYER_ADD, "add", add_fwd, add_bwd, NULL};

int fm_net_add(FmNet *net, int a, int b) {
  if (a < 0 || b < 0) return -1;
  FmTensor ta = *T(a), tb = *T(b);
  if (ta.c != tb.c || ta.h != tb.h || ta.w != tb.w) {
    char msg[96];
    snprintf(msg, sizeof msg, "shapes differ: %dx%dx%d vs %dx%dx%d", ta.c, ta.h, ta.w, tb.c, tb.h, tb.w);
    err(net, msg, "add");
    return -1;
  }
  int ins[2] = {a, b};
  int li = fm_net_add_layer(net, &add_ops, ins, 2, ta.c, ta.h, ta.w, ta.flat);
  return li < 0 ? -1 : net->layers[li].out;
}

// --- channel scale -------------------------------------------------------------------
static void chscale_fwd(FmNet *net, FmLayer *l, int n, int train) {
  FmTensor *x = IN(l, 0);
  fm_chscale_forward(OUT(l)->data, x->data, pdata(net, l, 0), n, x->c, x->h * x->w);
}
static void chscale_bwd(FmNet *net, FmLayer *l, int n) {
  FmTensor *x = IN(l, 0);
  fm_chscale_backward(x->grad, pgrad(net, l, 0), OUT(l)->grad, x->data, pdata(net, l, 0), n, x->c, x->h * x->w);
}
static const FmLayerOps chscale_ops = {FM_LAYER_CHANNEL_SCALE, "channel_scale", chscale_fwd, chscale_bwd, NULL};

int fm_net_channel_scale(FmNet *net, int x, float init) {
  if (x < 0) return -1;
  FmTensor t = *T(x);
  int li = add1(net, &chscale_ops, x, t.c, t.h, t.w, t.flat);
  if (li < 0) return -1;
  int s[1] = {t.c};
  fm_net_add_param(net, li, "scale", s, 1, FM_INIT_CONST, init);
  return net->layers[li].out;
}

const FmLayerOps *fm_net_builtin_ops(FmLayerKind kind) {
  static const FmLayerOps *const table[FM_LAYER_KIND_COUNT] = {
    [FM_LAYER_NORMALIZE] = &normalize_ops, [FM_LAYER_CONV2D] = &conv_ops,
    [FM_LAYER_CONV_TRANSPOSE2D] = &convt_ops, [FM_LAYER_LINEAR] = &linear_ops,
    [FM_LAYER_BATCHNORM] = &bn_ops, [FM_LAYER_RELU] = &relu_ops, [FM_LAYER_MAXPOOL] = &maxpool_ops,
    [FM_LAYER_AVGPOOL] = &avgpool_ops, [FM_LAYER_GLOBAL_AVGPOOL] = &gap_ops,
    [FM_LAYER_DROPOUT] = &dropout_ops, [FM_LAYER_DROPOUT2D] = &dropout2d_ops,
    [FM_LAYER_FLATTEN] = &flatten_ops, [FM_LAYER_ADD] = &add_ops, [FM_LAYER_CHANNEL_SCALE] = &chscale_ops,
  };
  return kind >= 0 && kind < FM_LAYER_KIND_COUNT ? table[kind] : NULL;
}

// the kinds whose backward honours l->assign (net.h)
int fm_layer_assigns_grad(const FmLayerOps *ops) {
  return ops == &conv_ops || ops == &bn_ops || ops == &relu_ops || ops == &add_ops;
}
