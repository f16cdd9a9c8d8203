/* net_graph.c - the layer kinds an imported ONNX graph needs beyond the built-in
 * models' (net.h): frozen affine, pointwise activations, elementwise product and
 * difference, channel concat, reshape views; and fm_net_predict (eval forward plus the
 * final softmax the import keeps aside). Ops in ops_graph.c. */
#include "net.h"
#include <stdlib.h>
#include <string.h>

#define T(id) (&net->tensors[(id)])
#define IN(l, i) T((l)->in[i])
#define OUT(l) T((l)->out)
static float *bdata(FmNet *net, FmLayer *l, int k) { return l->buf[k] >= 0 ? net->bufs[l->buf[k]].data : NULL; }

static void err(FmNet *net, const char *what, const char *msg) {
  if (!net->err[0]) snprintf(net->err, sizeof net->err, "%s: %s", what, msg);
}

static int add1(FmNet *net, const FmLayerOps *ops, int x, int c, int h, int w, int flat) {
  if (x < 0) return -1;
  return fm_net_add_layer(net, ops, &x, 1, c, h, w, flat);
}

// --- affine: y = x * scale[c] + shift[c], frozen buffers --------------------------
static void affine_fwd(FmNet *net, FmLayer *l, int n, int train) {
  FmTensor *x = IN(l, 0);
  fm_affine_forward(OUT(l)->data, x->data, bdata(net, l, 0), bdata(net, l, 1), n, x->c, x->h * x->w);
}
static void affine_bwd(FmNet *net, FmLayer *l, int n) {
  FmTensor *x = IN(l, 0);
  if (x->grad) fm_affine_backward(x->grad, OUT(l)->grad, bdata(net, l, 0), n, x->c, x->h * x->w);
}
static const FmLayerOps affine_ops = {FM_LAYER_AFFINE, "affine", affine_fwd, affine_bwd, NULL};

int fm_net_affine(FmNet *net, int x, const float *scale, const float *shift) {
  if (x < 0) return -1;
  FmTensor t = *T(x);
  int li = add1(net, &affine_ops, x, t.c, t.h, t.w, t.flat);
  if (li < 0) return -1;
  int shape[1] = {t.c};
  int s = fm_net_add_buf(net, li, "scale", shape, 1, FM_INIT_DATA, 0);
  int b = fm_net_add_buf(net, li, "shift", shape, 1, FM_INIT_DATA, 0);
  if (s < 0 || b < 0) return -1;
  float *sd = malloc(sizeof(float) * (size_t)t.c), *bd = malloc(sizeof(float) * (size_t)t.c);
  if (!sd || !bd) {
    free(sd), free(bd);
    err(net, net->layers[li].name, "out of memory");
    return -1;
  }
  for (int c = 0; c < t.c; c++) sd[c] = scale ? scale[c] : 1.0f, bd[c] = shift ? shift[c] : 0.0f;
  net->bufs[s].init_data = sd, net->bufs[b].init_data = bd;
  return net->layers[li].out;
}

// --- pointwise activations ---------------------------------------------------------
static void act_fwd(FmNet *net, FmLayer *l, int n, int train) {
  fm_act_forward(OUT(l)->data, IN(l, 0)->data, OUT(l)->size * (size_t)n, &l->a.act);
}
static void act_bwd(FmNet *net, FmLayer *l, int n) {
  FmTensor *x = IN(l, 0);
  if (x->grad) fm_act_backward(x->grad, OUT(l)->grad, x->data, OUT(l)->data, OUT(l)->size * (size_t)n, &l->a.act);
}
static const FmLayerOps act_ops = {FM_LAYER_ACT, "activation", act_fwd, act_bwd, NULL};

int fm_net_act(FmNet *net, int x, const FmActAttr *a) {
  if (x < 0) return -1;
  if (a->kind == FM_ACT_CLIP && !(a->lo <= a->hi)) { err(net, "activation", "clip with min > max"); return -1; }
  FmTensor t = *T(x);
  int li = add1(net, &act_ops, x, t.c, t.h, t.w, t.flat);
  if (li < 0) return -1;
  net->layers[li].a.act = *a;
  return net->layers[li].out;
}

// --- elementwise a * b, a - b --------------------------------------------------------
static void elt_fwd(FmNet *net, FmLayer *l, int n, int train) {
  fm_eltwise_forward(OUT(l)->data, IN(l, 0)->data, IN(l, 1)->data, OUT(l)->size * (size_t)n, l->a.elt);
}
static void elt_bwd(FmNet *net, FmLayer *l, int n) {
  fm_eltwise_backward(IN(l, 0)->grad, IN(l, 1)->grad, OUT(l)->grad, IN(l, 0)->data, IN(l, 1)->data,
                      OUT(l)->size * (size_t)n, l->a.elt);
}
static const FmLayerOps elt_ops = {FM_LAYER_ELTWISE, "eltwise", elt_fwd, elt_bwd, NULL};

int fm_net_eltwise(FmNet *net, int a, int b, FmEltwiseOp op) {
  if (a < 0 || b < 0) return -1;
  FmTensor ta = *T(a), tb = *T(b);
  if (ta.c != tb.c || ta.h != tb.h || ta.w != tb.w) {
    char msg[96];
    snprintf(msg, sizeof msg, "shapes differ: %dx%dx%d vs %dx%dx%d", ta.c, ta.h, ta.w, tb.c, tb.h, tb.w);
    err(net, "eltwise", msg);
    return -1;
  }
  int ins[2] = {a, b};
  int li = fm_net_add_layer(net, &elt_ops, ins, 2, ta.c, ta.h, ta.w, ta.flat);
  if (li < 0) return -1;
  net->layers[li].a.elt = op;
  return net->layers[li].out;
}

// --- concat along channels ------------------------------------------------------------
static void concat_fwd(FmNet *net, FmLayer *l, int n, int train) {
  const float *ins[FM_MAX_IN];
  size_t size[FM_MAX_IN];
  for (int k = 0; k < l->nin; k++) ins[k] = IN(l, k)->data, size[k] = IN(l, k)->size;
  fm_concat_forward(OUT(l)->data, ins, size, l->nin, n);
}
static void concat_bwd(FmNet *net, FmLayer *l, int n) {
  float *d[FM_MAX_IN];
  size_t size[FM_MAX_IN];
  for (int k = 0; k < l->nin; k++) d[k] = IN(l, k)->grad, size[k] = IN(l, k)->size;
  fm_concat_backward(d, OUT(l)->grad, size, l->nin, n);
}
static const FmLayerOps concat_ops = {FM_LAYER_CONCAT, "concat", concat_fwd, concat_bwd, NULL};

// More than FM_MAX_IN inputs: a chain of concats (channels are contiguous per sample,
// so concat(a, b, c, d, e) = concat(concat(a, b, c, d), e) exactly).
int fm_net_concat(FmNet *net, const int *xs, int n) {
  if (n < 1) { err(net, "concat", "no inputs"); return -1; }
  for (int k = 0; k < n; k++)
    if (xs[k] < 0) return -1;
  if (n == 1) return xs[0];
  int first = xs[0], k = 1;
  while (k < n) {
    int ins[FM_MAX_IN], m = 0;
    ins[m++] = first;
    while (m < FM_MAX_IN && k < n) ins[m++] = xs[k++];
    FmTensor t0 = *T(ins[0]);
    int c = 0;
    for (int j = 0; j < m; j++) {
      FmTensor tj = *T(ins[j]);
      if (tj.h != t0.h || tj.w != t0.w || tj.flat != t0.flat) {
        char msg[96];
        snprintf(msg, sizeof msg, "spatial shapes differ: %dx%d vs %dx%d", t0.h, t0.w, tj.h, tj.w);
        err(net, "concat", msg);
        return -1;
      }
      c += tj.c;
    }
    int li = fm_net_add_layer(net, &concat_ops, ins, m, c, t0.h, t0.w, t0.flat);
    if (li < 0) return -1;
    first = net->layers[li].out;
  }
  return first;
}

// --- reshape: a view sharing its input's memory (as flatten) --------------------------
static void nop_fwd(FmNet *net, FmLayer *l, int n, int train) {}
static void nop_bwd(FmNet *net, FmLayer *l, int n) {}
static const FmLayerOps reshape_ops = {FM_LAYER_RESHAPE, "reshape", nop_fwd, nop_bwd, NULL};

int fm_net_reshape(FmNet *net, int x, int c, int h, int w, int flat) {
  if (x < 0) return -1;
  if (flat && (h != 1 || w != 1)) { err(net, "reshape", "a flat tensor is (N, C)"); return -1; }
  if ((size_t)c * (size_t)h * (size_t)w != T(x)->size) { err(net, "reshape", "the element count changes"); return -1; }
  int li = add1(net, &reshape_ops, x, c, h, w, flat);
  if (li < 0) return -1;
  FmTensor *t = &net->tensors[net->layers[li].out];
  t->alias = net->tensors[x].alias >= 0 ? net->tensors[x].alias : x;
  return net->layers[li].out;
}

// --- predict ----------------------------------------------------------------------------
float *fm_net_predict(FmNet *net, const float *x, int n) {
  float *y = fm_net_forward(net, x, n, 0);
  if (!y || net->final_act == FM_FINAL_NONE) return y;
  int K = (int)net->tensors[net->output].size;
  if (net->final_act == FM_FINAL_SOFTMAX) fm_softmax_forward(y, y, n, K);
  else fm_log_softmax_forward(y, y, n, K);
  return y;
}
