/* onnx_import.c - a trainable net from any ONNX CNN/MLP graph (from_onnx.h,
 * fm_import_onnx): `fewmul train --from model.onnx` without --model.
 *
 *   fm_onnx_load -> check_ops -> shapes -> fold -> noop     (the compiler's loader and passes:
 *                   constants, Shape->Gather->Reshape chains, functions inlined, Identity gone)
 *   -> one walk over the nodes in order: each node becomes the trainer's layer(s) through the
 *      net builders (so --method converts conv/linear layers as in the built-in models),
 *      each output shape checked against shape inference's
 *   -> fm_net_finish -> weights from the initialisers (fm_from_apply_units, as --model X --from)
 *
 * Kept frozen: constant Add/Sub/Mul/Div (input normalisation) as affine layers. A final
 * Softmax/LogSoftmax is kept aside (net->final_act): the loss takes logits. Anything else
 * fails with one line naming the node and op. */
#include "from_onnx.h"
#include "from_onnx_internal.h"
#include "io/io.h"
#include "passes/passes.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  Graph *g;
  FmNet *net;
  const char *who;
  int *id;              /* graph tensor id -> net tensor id, -1: not computed by the net */
  int (*pad)[4];        /* graph tensor id -> pending zero padding (Pad) t, l, b, r */
  unsigned char *skip;  /* graph node index -> absorbed by an earlier node */
  FileUnit *units;
  int nunits;
  int64_t batch;        /* the input's batch dim (symbolic < 0, or fixed) */
} Imp;

static const char *const trainable_ops =
  "Conv, ConvTranspose, BatchNormalization, Gemm, MatMul, Relu, LeakyRelu, Clip, Sigmoid, Tanh, Add, Sub, Mul, "
  "Div, MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape, Squeeze, Unsqueeze, Concat, Dropout, Pad, "
  "Identity, and Softmax/LogSoftmax at the end";

#define NODE_FAIL(im, n, ...) fm_fail("%s: node '%s' (%s): %s", (im)->who, (n)->name, (n)->op_type, fm_sprintf(&(im)->g->arena, __VA_ARGS__))

static const Tensor *const_in(const Node *n, int i) {
  return i < n->nin && n->in[i] && n->in[i]->data ? n->in[i] : NULL;
}

/* The net tensor of computed input i of n. */
static int in_id(Imp *im, const Node *n, int i) {
  const Tensor *t = i < n->nin ? n->in[i] : NULL;
  if (!t) NODE_FAIL(im, n, "input %d is missing", i);
  int id = im->id[t->id];
  if (id < 0)
    NODE_FAIL(im, n, "input '%s' is %s", t->name,
              t->data ? "a constant where the trainer needs a computed tensor"
                      : "not computed from the model input by a trainable op");
  return id;
}

static int has_pad(Imp *im, const Tensor *t) {
  const int *p = im->pad[t->id];
  return p[0] || p[1] || p[2] || p[3];
}

/* A float32 weight input i of n (optional: may be absent). */
static const Tensor *weight(Imp *im, const Node *n, int i, int optional) {
  const Tensor *t = i < n->nin ? n->in[i] : NULL;
  if (!t) {
    if (optional) return NULL;
    NODE_FAIL(im, n, "input %d is missing", i);
  }
  if (!t->data) NODE_FAIL(im, n, "weight '%s' is not a constant (an initialiser); the trainer needs stored weights", t->name);
  if (t->dtype != FM_F32) NODE_FAIL(im, n, "weight '%s' is %s, not float32", t->name, fm_dtype_name(t->dtype));
  return t;
}

static void add_unit(Imp *im, UnitKind kind, const Node *n, const Tensor *a, const Tensor *b, const Tensor *c,
                     const Tensor *d) {
  FileUnit *u = &im->units[im->nunits++];
  memset(u, 0, sizeof *u);
  u->kind = kind, u->node = n, u->built = 1;
  u->t[0] = a, u->t[1] = b, u->t[2] = c, u->t[3] = d;
}

/* Does net tensor id hold what shape inference says n's output t is? Makes the net's
   tensor flat (N, F) or 4-D as the graph has it; returns the (possibly new) id. */
static int fit_shape(Imp *im, const Node *n, const Tensor *t, int id) {
  FmNet *net = im->net;
  if (id < 0) fm_fail("%s: node '%s' (%s): %s", im->who, n->name, n->op_type, net->err[0] ? net->err : "cannot build");
  const FmTensor *ft = &net->tensors[id];
  if (t->rank != 2 && t->rank != 4)
    NODE_FAIL(im, n, "output '%s' is %s; the trainer takes (N, C, H, W) images and (N, F) features", t->name,
              fm_shape_str(&im->g->arena, t));
  if (t->dims[0] != im->batch) NODE_FAIL(im, n, "output '%s' is %s: the batch dimension changes", t->name, fm_shape_str(&im->g->arena, t));
  int ok = t->rank == 2 ? t->dims[1] == (int64_t)ft->size
                        : t->dims[1] == ft->c && t->dims[2] == ft->h && t->dims[3] == ft->w;
  if (!ok)
    NODE_FAIL(im, n, "output '%s' is %s, the trainer's layer gives %dx%dx%d (an attribute the trainer does not "
              "take, e.g. ceil_mode or asymmetric padding?)", t->name, fm_shape_str(&im->g->arena, t), ft->c, ft->h, ft->w);
  if (t->rank == 2 && !ft->flat) id = fm_net_reshape(net, id, (int)t->dims[1], 1, 1, 1);
  else if (t->rank == 4 && ft->flat) id = fm_net_reshape(net, id, ft->c, ft->h, ft->w, 0);
  if (id < 0) fm_fail("%s: node '%s': %s", im->who, n->name, net->err);
  return id;
}

static void set_out(Imp *im, const Node *n, int id) { im->id[n->out[0]->id] = fit_shape(im, n, n->out[0], id); }

/* pads of a Conv / pool node plus pending Pad padding of its input; symmetric or a failure */
static void node_pads(Imp *im, const Node *n, const Tensor *x, int kh, int kw, int sh, int sw, int dh, int dw,
                      int *ph, int *pw) {
  int64_t p[4] = {0, 0, 0, 0};
  const char *ap = fm_attr_s(n, "auto_pad", "NOTSET");
  if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
    const Tensor *y = n->out[0];
    int64_t in[2] = {x->dims[2], x->dims[3]}, k[2] = {kh, kw}, s[2] = {sh, sw}, d[2] = {dh, dw};
    for (int i = 0; i < 2; i++) {
      int64_t total = (y->dims[2 + i] - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in[i];
      if (total < 0) total = 0;
      p[i] = total / 2, p[i + 2] = total - total / 2;
    }
  } else if (strcmp(ap, "VALID")) {
    fm_attr_ints(n, "pads", p, 4);
  }
  const int *q = im->pad[x->id];
  for (int i = 0; i < 4; i++) p[i] += q[i];
  if (p[0] != p[2] || p[1] != p[3] || p[0] < 0 || p[1] < 0)
    NODE_FAIL(im, n, "padding %lld,%lld,%lld,%lld is not symmetric; the trainer's layers pad alike on both sides",
              (long long)p[0], (long long)p[1], (long long)p[2], (long long)p[3]);
  *ph = (int)p[0], *pw = (int)p[1];
}

static void pair2(const Node *n, const char *name, int64_t def, int *a, int *b) {
  int64_t v[2] = {def, def};
  fm_attr_ints(n, name, v, 2);
  *a = (int)v[0], *b = (int)v[1];
}

static void conv_node(Imp *im, const Node *n, int transpose) {
  const Tensor *x = n->in[0];
  int xid = in_id(im, n, 0);
  const Tensor *w = weight(im, n, 1, 0), *b = weight(im, n, 2, 1);
  if (w->rank != 4 || x->rank != 4) NODE_FAIL(im, n, "only 2-D convolutions (4-D weights and inputs) are trainable");
  FmConvAttr a = {0};
  a.groups = (int)fm_attr_i(n, "group", 1);
  a.kh = (int)w->dims[2], a.kw = (int)w->dims[3];
  pair2(n, "strides", 1, &a.sh, &a.sw);
  pair2(n, "dilations", 1, &a.dh, &a.dw);
  if (transpose) {
    if (has_pad(im, x)) NODE_FAIL(im, n, "a Pad before ConvTranspose is not trainable");
    if (strcmp(fm_attr_s(n, "auto_pad", "NOTSET"), "NOTSET")) NODE_FAIL(im, n, "auto_pad on ConvTranspose is not trainable");
    int64_t p[4] = {0, 0, 0, 0};
    fm_attr_ints(n, "pads", p, 4);
    if (p[0] != p[2] || p[1] != p[3]) NODE_FAIL(im, n, "asymmetric pads are not trainable");
    a.ph = (int)p[0], a.pw = (int)p[1];
    pair2(n, "output_padding", 0, &a.oph, &a.opw);
    a.cout = (int)w->dims[1] * a.groups;
  } else {
    node_pads(im, n, x, a.kh, a.kw, a.sh, a.sw, a.dh, a.dw, &a.ph, &a.pw);
    a.cout = (int)w->dims[0];
  }
  int y = transpose ? fm_net_conv_transpose2d(im->net, xid, &a, b != NULL) : fm_net_conv2d_ex(im->net, xid, &a, b != NULL);
  add_unit(im, transpose ? U_CONVT : U_CONV, n, w, b, NULL, NULL);
  set_out(im, n, y);
}

/* The one node reading t, or NULL (several readers, or a graph output). */
static const Node *only_reader(Imp *im, const Tensor *t, int *index) {
  if (t->is_output || fm_tensor_uses(im->g, t) != 1) return NULL;
  for (int i = 0; i < im->g->nnodes; i++) {
    const Node *m = im->g->nodes[i];
    for (int k = 0; k < m->nin; k++)
      if (m->in[k] == t) { *index = i; return m; }
  }
  return NULL;
}

static void linear_node(Imp *im, const Node *n) {
  int xid = in_id(im, n, 0);
  const Tensor *w = weight(im, n, 1, 0), *b = NULL;
  int transposed, M;
  float alpha = 1, beta = 1;
  if (w->rank != 2) NODE_FAIL(im, n, "weight '%s' is not 2-D", w->name);
  if (n->op == OP_Gemm) {
    if (fm_attr_i(n, "transA", 0)) NODE_FAIL(im, n, "transA is not trainable");
    transposed = !fm_attr_i(n, "transB", 0);
    alpha = fm_attr_f(n, "alpha", 1), beta = fm_attr_f(n, "beta", 1);
    b = weight(im, n, 2, 1);
  } else {   /* MatMul(x, W (K, M)), and a following Add of a constant (M) as its bias */
    transposed = 1;
    int idx;
    const Node *r = only_reader(im, n->out[0], &idx);
    const Tensor *c = r && r->op == OP_Add ? const_in(r, r->in[0] == n->out[0] ? 1 : 0) : NULL;
    if (c && c->dtype == FM_F32 && fm_numel(c) == w->dims[1] && c->dims[c->rank - 1] == w->dims[1]) {
      b = c;
      im->skip[idx] = 1;
      n = r;   /* the Add's output is the layer's */
    }
  }
  M = (int)(transposed ? w->dims[1] : w->dims[0]);
  if (b && fm_numel(b) != M) NODE_FAIL(im, n, "bias '%s' is not one value per output (%d)", b->name, M);
  const FmTensor *xt = &im->net->tensors[xid];
  if ((int64_t)xt->size != (transposed ? w->dims[0] : w->dims[1]))
    NODE_FAIL(im, n, "weight '%s' does not fit the %zu input features", w->name, xt->size);
  int y = fm_net_linear(im->net, xid, M, b != NULL);
  add_unit(im, U_GEMM, n, w, b, NULL, NULL);
  FileUnit *u = &im->units[im->nunits - 1];
  u->transposed = transposed, u->alpha = alpha, u->beta = beta;
  set_out(im, n, y);
}

static void bn_node(Imp *im, const Node *n) {
  if (n->nout > 1 && fm_tensor_uses(im->g, n->out[1])) NODE_FAIL(im, n, "training-mode outputs are not trainable");
  int xid = in_id(im, n, 0);
  const Tensor *t[4];
  for (int k = 0; k < 4; k++) t[k] = weight(im, n, k + 1, 0);
  float eps = fm_attr_f(n, "epsilon", 1e-5f), mom = fm_attr_f(n, "momentum", 0.9f);
  int y = fm_net_batchnorm(im->net, xid, eps, 1 - mom, 0);
  add_unit(im, U_BN, n, t[0], t[1], t[2], t[3]);
  set_out(im, n, y);
}

/* The constant k of a binary node as one value per channel of x (scalar or (C) broadcast
   along the channel axis); fails otherwise. */
static float *per_channel(Imp *im, const Node *n, const Tensor *k, const Tensor *x, int C) {
  if (k->dtype != FM_F32) NODE_FAIL(im, n, "constant '%s' is %s, not float32", k->name, fm_dtype_name(k->dtype));
  float *v = fm_alloc(&im->g->arena, sizeof(float) * (size_t)C);
  const float *d = k->data;
  int64_t nk = fm_numel(k);
  if (nk == 1) {
    for (int c = 0; c < C; c++) v[c] = d[0];
    return v;
  }
  int ok = k->rank <= x->rank && nk == C;
  for (int j = 0; ok && j < k->rank; j++) {
    int axis = j + x->rank - k->rank;
    ok = axis == 1 ? k->dims[j] == C : k->dims[j] == 1;
  }
  if (!ok)
    NODE_FAIL(im, n, "constant '%s' (%s) is neither a scalar nor one value per channel of %s; the trainer keeps "
              "such constants as a frozen per-channel affine", k->name, fm_shape_str(&im->g->arena, k),
              fm_shape_str(&im->g->arena, x));
  memcpy(v, d, sizeof(float) * (size_t)C);
  return v;
}

static void binary_node(Imp *im, const Node *n) {
  const Tensor *k0 = const_in(n, 0), *k1 = const_in(n, 1);
  if (!k0 && !k1) {   /* two computed tensors: a residual add, a difference, a product */
    int a = in_id(im, n, 0), b = in_id(im, n, 1);
    if (n->op == OP_Div) NODE_FAIL(im, n, "a division of two computed tensors is not trainable");
    const FmTensor *ta = &im->net->tensors[a], *tb = &im->net->tensors[b];
    if (ta->c != tb->c || ta->h != tb->h || ta->w != tb->w)
      NODE_FAIL(im, n, "inputs '%s' and '%s' have different shapes (%s, %s); the trainer adds and multiplies "
                "tensors of one shape", n->in[0]->name, n->in[1]->name, fm_shape_str(&im->g->arena, n->in[0]),
                fm_shape_str(&im->g->arena, n->in[1]));
    int y = n->op == OP_Add ? fm_net_add(im->net, a, b) : fm_net_eltwise(im->net, a, b, n->op == OP_Mul ? FM_ELT_MUL : FM_ELT_SUB);
    set_out(im, n, y);
    return;
  }
  if (k0 && k1) NODE_FAIL(im, n, "both inputs are constants (not folded)");
  int xi = k0 ? 1 : 0, xid = in_id(im, n, xi);
  const Tensor *x = n->in[xi], *k = k0 ? k0 : k1;
  int C = im->net->tensors[xid].c;
  float *v = per_channel(im, n, k, x, C);
  float *scale = fm_alloc(&im->g->arena, sizeof(float) * (size_t)C), *shift = fm_alloc(&im->g->arena, sizeof(float) * (size_t)C);
  for (int c = 0; c < C; c++) {
    scale[c] = 1, shift[c] = 0;
    switch (n->op) {
    case OP_Add: shift[c] = v[c]; break;
    case OP_Sub: if (k0) scale[c] = -1, shift[c] = v[c]; else shift[c] = -v[c]; break;
    case OP_Mul: scale[c] = v[c]; break;
    default:   /* Div */
      if (k0) NODE_FAIL(im, n, "a constant divided by a tensor is not trainable");
      if (v[c] == 0) NODE_FAIL(im, n, "division by zero in constant '%s'", k->name);
      scale[c] = 1.0f / v[c];
    }
  }
  set_out(im, n, fm_net_affine(im->net, xid, scale, shift));
}

static void act_node(Imp *im, const Node *n) {
  int xid = in_id(im, n, 0);
  FmActAttr a = {0};
  switch (n->op) {
  case OP_Relu: set_out(im, n, fm_net_relu(im->net, xid)); return;
  case OP_LeakyRelu: a.kind = FM_ACT_LEAKY, a.alpha = fm_attr_f(n, "alpha", 0.01f); break;
  case OP_Sigmoid: a.kind = FM_ACT_SIGMOID; break;
  case OP_Tanh: a.kind = FM_ACT_TANH; break;
  default: {   /* Clip: min/max inputs (opset 11+) or attributes */
    a.kind = FM_ACT_CLIP, a.lo = fm_attr_f(n, "min", -INFINITY), a.hi = fm_attr_f(n, "max", INFINITY);
    for (int i = 1; i <= 2; i++) {
      if (i >= n->nin || !n->in[i]) continue;
      const Tensor *c = const_in(n, i);
      if (!c || c->dtype != FM_F32 || fm_numel(c) != 1) NODE_FAIL(im, n, "its bound '%s' is not a float constant", n->in[i]->name);
      if (i == 1) a.lo = *(const float *)c->data;
      else a.hi = *(const float *)c->data;
    }
    if (a.lo == 0 && isinf(a.hi) && a.hi > 0) { set_out(im, n, fm_net_relu(im->net, xid)); return; }
  }
  }
  set_out(im, n, fm_net_act(im->net, xid, &a));
}

static void pool_node(Imp *im, const Node *n) {
  const Tensor *x = n->in[0];
  int xid = in_id(im, n, 0);
  if (n->op == OP_GlobalAveragePool) {
    if (has_pad(im, x)) NODE_FAIL(im, n, "a Pad before GlobalAveragePool is not trainable");
    set_out(im, n, fm_net_global_avgpool(im->net, xid));
    return;
  }
  if (x->rank != 4) NODE_FAIL(im, n, "only 2-D pooling is trainable");
  int64_t k[2] = {1, 1}, d[2] = {1, 1};
  if (fm_attr_ints(n, "kernel_shape", k, 2) != 2) NODE_FAIL(im, n, "kernel_shape is not 2-D");
  fm_attr_ints(n, "dilations", d, 2);
  if (d[0] != 1 || d[1] != 1) NODE_FAIL(im, n, "dilated pooling is not trainable");
  int max = n->op == OP_MaxPool;
  if (n->nout > 1 && n->out[1] && fm_tensor_uses(im->g, n->out[1])) NODE_FAIL(im, n, "the Indices output is not trainable");
  FmPoolAttr a = {(int)k[0], (int)k[1], 1, 1, 0, 0};
  pair2(n, "strides", 1, &a.sh, &a.sw);
  if (max && has_pad(im, x)) NODE_FAIL(im, n, "a zero Pad before MaxPool is not trainable");
  int64_t own[4] = {0, 0, 0, 0};
  fm_attr_ints(n, "pads", own, 4);
  if (!max && (own[0] || own[1] || own[2] || own[3]) && !fm_attr_i(n, "count_include_pad", 0))
    NODE_FAIL(im, n, "padding with count_include_pad = 0 is not trainable (the trainer's average counts the zeros)");
  node_pads(im, n, x, a.kh, a.kw, a.sh, a.sw, 1, 1, &a.ph, &a.pw);
  set_out(im, n, fm_net_pool2d(im->net, xid, max, &a));
}

/* Pad: zero padding of H and W only, taken by the Conv or AveragePool that reads it. */
static void pad_node(Imp *im, const Node *n) {
  int xid = in_id(im, n, 0);
  const Tensor *x = n->in[0];
  int64_t p[8] = {0};
  const Tensor *pt = const_in(n, 1);
  if (n->nin > 1 && n->in[1]) {
    if (!pt || pt->dtype != FM_I64 || fm_numel(pt) != 2 * x->rank) NODE_FAIL(im, n, "pads are not a constant");
    memcpy(p, pt->data, sizeof(int64_t) * (size_t)(2 * x->rank));
  } else {
    fm_attr_ints(n, "pads", p, 8);
  }
  const Tensor *cv = const_in(n, 2);
  float value = cv && cv->dtype == FM_F32 ? *(const float *)cv->data : fm_attr_f(n, "value", 0);
  if (strcmp(fm_attr_s(n, "mode", "constant"), "constant") || value != 0 || x->rank != 4 || p[0] || p[1] || p[4] || p[5] ||
      (n->nin > 3 && n->in[3]))
    NODE_FAIL(im, n, "only zero padding of H and W (then read by Conv or AveragePool) is trainable");
  int idx;
  const Node *r = only_reader(im, n->out[0], &idx);
  if (!r || (r->op != OP_Conv && r->op != OP_AveragePool))
    NODE_FAIL(im, n, "only zero padding of H and W read by one Conv or AveragePool is trainable");
  int *q = im->pad[n->out[0]->id];
  const int *q0 = im->pad[x->id];
  q[0] = q0[0] + (int)p[2], q[1] = q0[1] + (int)p[3], q[2] = q0[2] + (int)p[6], q[3] = q0[3] + (int)p[7];
  im->id[n->out[0]->id] = xid;   /* the reader builds from the unpadded tensor */
}

static void reshape_node(Imp *im, const Node *n) {
  int xid = in_id(im, n, 0);
  const Tensor *y = n->out[0];
  if (has_pad(im, n->in[0])) NODE_FAIL(im, n, "a Pad before a reshape is not trainable");
  if (n->op == OP_Flatten && fm_attr_i(n, "axis", 1) != 1 && !(y->rank == 2 && y->dims[0] == im->batch))
    NODE_FAIL(im, n, "only Flatten at axis 1 is trainable");
  if (y->rank == 2) { set_out(im, n, fm_net_flatten(im->net, xid)); return; }
  if (y->rank != 4) NODE_FAIL(im, n, "output is %s; the trainer keeps (N, C, H, W) and (N, F)", fm_shape_str(&im->g->arena, y));
  set_out(im, n, fm_net_reshape(im->net, xid, (int)y->dims[1], (int)y->dims[2], (int)y->dims[3], 0));
}

static void concat_node(Imp *im, const Node *n) {
  const Tensor *y = n->out[0];
  int64_t axis = fm_attr_i(n, "axis", 1);
  if (axis < 0) axis += y->rank;
  if (axis != 1) NODE_FAIL(im, n, "only concatenation along the channels (axis 1) is trainable");
  int *xs = fm_alloc(&im->g->arena, sizeof(int) * (size_t)n->nin);
  for (int i = 0; i < n->nin; i++) {
    xs[i] = in_id(im, n, i);
    if (has_pad(im, n->in[i])) NODE_FAIL(im, n, "a Pad before Concat is not trainable");
  }
  set_out(im, n, fm_net_concat(im->net, xs, n->nin));
}

static void softmax_node(Imp *im, const Node *n) {
  const Tensor *y = n->out[0];
  int64_t axis = fm_attr_i(n, "axis", -1);
  if (axis < 0) axis += y->rank;
  if (!y->is_output || y->rank != 2 || axis != 1)
    NODE_FAIL(im, n, "only a Softmax/LogSoftmax over the classes at the very end is trainable");
  im->net->final_act = n->op == OP_Softmax ? FM_FINAL_SOFTMAX : FM_FINAL_LOG_SOFTMAX;
  im->id[y->id] = in_id(im, n, 0);
}

static void node(Imp *im, const Node *n) {
  int any_float = 0;
  for (int k = 0; k < n->nout; k++) any_float |= n->out[k] && n->out[k]->dtype == FM_F32;
  if (!any_float) return;   /* shape arithmetic (Shape, Gather, ... feeding a Reshape) */
  switch (n->op) {
  case OP_Conv: conv_node(im, n, 0); break;
  case OP_ConvTranspose: conv_node(im, n, 1); break;
  case OP_Gemm: case OP_MatMul: linear_node(im, n); break;
  case OP_BatchNormalization: bn_node(im, n); break;
  case OP_Add: case OP_Sub: case OP_Mul: case OP_Div: binary_node(im, n); break;
  case OP_Relu: case OP_LeakyRelu: case OP_Sigmoid: case OP_Tanh: case OP_Clip: act_node(im, n); break;
  case OP_MaxPool: case OP_AveragePool: case OP_GlobalAveragePool: pool_node(im, n); break;
  case OP_Pad: pad_node(im, n); break;
  case OP_Flatten: case OP_Reshape: case OP_Squeeze: case OP_Unsqueeze: reshape_node(im, n); break;
  case OP_Concat: concat_node(im, n); break;
  case OP_Softmax: case OP_LogSoftmax: softmax_node(im, n); break;
  case OP_Identity: im->id[n->out[0]->id] = in_id(im, n, 0); break;
  case OP_Dropout: {
    int xid = in_id(im, n, 0);
    const Tensor *r = const_in(n, 1);
    float p = r && r->dtype == FM_F32 ? *(const float *)r->data : fm_attr_f(n, "ratio", 0.5f);
    set_out(im, n, fm_net_dropout(im->net, xid, p));
    break;
  }
  default:
    fm_fail("%s: node '%s' is %s%s%s, which the trainer cannot train (trainable: %s)", im->who, n->name,
            *n->domain ? n->domain : "", *n->domain ? " " : "", n->op_type, trainable_ops);
  }
}

/* The net's name: the file's base name without .onnx */
static void net_name(FmNet *net, const char *path) {
  const char *b = strrchr(path, '/');
  b = b ? b + 1 : path;
  size_t len = strlen(b);
  if (len > 5 && !strcmp(b + len - 5, ".onnx")) len -= 5;
  if (len >= sizeof net->model) len = sizeof net->model - 1;
  memcpy(net->model, b, len);
  net->model[len] = 0;
}

static FmNet *build(Graph *g, const char *path, const char *who, const FmNetOpts *opts, int c, int h, int w,
                    int classes, FILE *log, FmNet *volatile *keep) {
  if (g->ninputs != 1) fm_fail("%s has %d inputs; the trainer takes models with one image or feature input", who, g->ninputs);
  if (g->noutputs != 1) fm_fail("%s has %d outputs; the trainer takes models with one score output", who, g->noutputs);
  const Tensor *in = g->inputs[0];
  const char *ins = fm_shape_str(&g->arena, in);
  int flat = in->rank == 2;
  if (in->dtype != FM_F32) fm_fail("%s: input '%s' is %s, not float32", who, in->name, fm_dtype_name(in->dtype));
  if (flat ? in->dims[1] != (int64_t)c * h * w
           : in->rank != 4 || in->dims[1] != c || in->dims[2] != h || in->dims[3] != w)
    fm_fail("%s: the model's input '%s' is %s, the data set's images are %dx%dx%d (--data)", who, in->name, ins, c, h, w);
  FmNet *net = fm_net_new(flat ? c * h * w : c, flat ? 1 : h, flat ? 1 : w, opts);
  *keep = net;
  if (!net) fm_fail("%s: out of memory", who);
  net->tensors[net->input].flat = flat;
  net_name(net, path);
  Imp im = {.g = g, .net = net, .who = who};
  im.batch = in->dims[0];
  im.id = fm_alloc(&g->arena, sizeof(int) * (size_t)g->ntensors);
  im.pad = fm_alloc(&g->arena, sizeof(int[4]) * (size_t)g->ntensors);
  im.skip = fm_alloc(&g->arena, (size_t)g->nnodes + 1);
  im.units = fm_alloc(&g->arena, sizeof(FileUnit) * (size_t)(g->nnodes + 1));
  for (int i = 0; i < g->ntensors; i++) im.id[i] = -1;
  memset(im.pad, 0, sizeof(int[4]) * (size_t)g->ntensors);
  memset(im.skip, 0, (size_t)g->nnodes + 1);
  im.id[in->id] = net->input;
  for (int i = 0; i < g->nnodes; i++)
    if (!im.skip[i]) node(&im, g->nodes[i]);
  const Tensor *out = g->outputs[0];
  int y = im.id[out->id];
  if (y < 0) fm_fail("%s: output '%s' is not computed from the input by trainable ops", who, out->name);
  if (out->rank != 2) fm_fail("%s: output '%s' is %s; the trainer takes (N, classes) scores", who, out->name, fm_shape_str(&g->arena, out));
  if (im.nunits == 0) fm_fail("%s has no weights (no Conv, Gemm or MatMul with initialisers): nothing to train", who);
  if ((int)out->dims[1] != classes)
    fm_fail("%s: output '%s' is %s: %lld classes, the data set has %d", who, out->name,
            fm_shape_str(&g->arena, out), (long long)out->dims[1], classes);
  if (fm_net_finish(net, y)) fm_fail("%s: %s", who, net->err[0] ? net->err : "out of memory");
  if (log)
    fprintf(log, "from %s: built %d layers from %d nodes (input %s, output %s%s)\n", path, net->nlayers, g->nnodes, ins,
            fm_shape_str(&g->arena, out), net->final_act == FM_FINAL_SOFTMAX ? " after Softmax"
                                          : net->final_act == FM_FINAL_LOG_SOFTMAX ? " after LogSoftmax" : "");
  fm_from_apply_units(g, net, path, who, log, im.units, im.nunits);
  return net;
}

FmNet *fm_import_onnx(const char *path, const FmNetOpts *opts, int c, int h, int w, int classes, FILE *log,
                      char *err, size_t errlen) {
  Graph *volatile g = NULL;
  FmNet *volatile net = NULL;
  FmNet *volatile res = NULL;
  FmTry t;
  FM_TRY(&t) {
    g = fm_onnx_load(path, NULL);
    const char *who = fm_sprintf(&g->arena, "--from '%s'", path);
    fm_pass_check_ops(g);
    fm_pass_shapes(g);
    fm_pass_fold(g);
    fm_pass_noop(g);
    res = build(g, path, who, opts, c, h, w, classes, log, &net);
    fm_try_pop(&t);
  } else {
    const char *msg = fm_errmsg();
    if (!strncmp(msg, "--from", 6)) snprintf(err, errlen, "%s", msg);
    else snprintf(err, errlen, "--from '%s': %s", path, msg);
    fm_net_free(net);
    res = NULL;
  }
  fm_graph_free(g);
  return res;
}

/* ---- --predict IN.npy: the net's eval-mode outputs (after net->final_act) ---- */
int fm_net_predict_npy(FmNet *net, const char *in, const char *out, char *err, size_t errlen) {
  FmArray a = {0}, y = {0};
  FmArray *volatile pa = &a;
  volatile int rc = 0;
  FmTry t;
  FM_TRY(&t) {
    fm_array_read(in, &a);
    const FmTensor *x = &net->tensors[net->input];
    int64_t n = a.rank > 0 ? a.dims[0] : 0, per = n > 0 ? fm_array_numel(&a) / n : 0;
    if (a.dtype != FM_F32 || a.rank < 2 || n <= 0 || n > INT32_MAX || per != (int64_t)x->size)
      fm_fail("--predict '%s': expected float32 (n, ...) with %zu values per sample (the net's input %dx%dx%d)", in,
              x->size, x->c, x->h, x->w);
    if (!out) {   /* only the check, before training */
      fm_try_pop(&t);
      fm_array_free(pa);
      return 0;
    }
    const float *p = fm_net_predict(net, a.data, (int)n);
    if (!p) fm_fail("--predict: out of memory");
    int K = (int)net->tensors[net->output].size;
    y.dtype = FM_F32, y.rank = 2, y.dims[0] = n, y.dims[1] = K;
    y.nbytes = sizeof(float) * (size_t)n * (size_t)K;
    y.data = (void *)p;
    fm_npy_write(out, &y);
    fm_try_pop(&t);
  } else {
    snprintf(err, errlen, "%s", fm_errmsg());
    rc = -1;
  }
  fm_array_free(pa);
  return rc;
}
