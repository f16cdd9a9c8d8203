/* export.c - trainer network -> graph IR -> ONNX, through the compiler's writer. */
#include "export.h"
#include "onnx/onnx.h"
#include "ops/ops.h"
#include <string.h>

typedef struct {
  Graph *g;
  const FmNet *net;
  Tensor **t;       /* trainer tensor id -> graph tensor */
} Ex;

static Attr *add_attr(Graph *g, Node *n, const char *name, AttrType type) {
  Attr *a = fm_alloc(&g->arena, sizeof(Attr) * (size_t)(n->nattrs + 1));
  if (n->nattrs) memcpy(a, n->attrs, sizeof(Attr) * (size_t)n->nattrs);
  n->attrs = a;
  Attr *r = &a[n->nattrs++];
  r->name = fm_strdup(&g->arena, name);
  r->type = type;
  return r;
}

static void attr_i(Graph *g, Node *n, const char *name, int64_t v) { add_attr(g, n, name, FA_INT)->i = v; }
static void attr_f(Graph *g, Node *n, const char *name, float v) { add_attr(g, n, name, FA_FLOAT)->f = v; }
static void attr_ints(Graph *g, Node *n, const char *name, int k, const int64_t *v) {
  Attr *a = add_attr(g, n, name, FA_INTS);
  a->ints = fm_alloc(&g->arena, sizeof(int64_t) * (size_t)k);
  memcpy(a->ints, v, sizeof(int64_t) * (size_t)k);
  a->n = k;
}

/* The graph tensor for trainer tensor id, with its (N, c, h, w) or (N, c) shape. */
static Tensor *act(Ex *e, int id, const char *name) {
  const FmTensor *ft = &e->net->tensors[id];
  Tensor *t = fm_tensor_new(e->g, name);
  t->dtype = FM_F32;
  t->dims[0] = -1;
  t->dims[1] = ft->c;
  if (ft->flat) t->rank = 2;
  else t->rank = 4, t->dims[2] = ft->h, t->dims[3] = ft->w;
  return t;
}

static Tensor *param(Ex *e, const FmParam *p, int rank_override, const int64_t *dims_override) {
  int64_t dims[4];
  int rank = p->ndim;
  for (int i = 0; i < rank; i++) dims[i] = p->shape[i];
  if (rank_override) {
    rank = rank_override;
    memcpy(dims, dims_override, sizeof(int64_t) * (size_t)rank);
  }
  return fm_tensor_const(e->g, p->name, FM_F32, rank, dims, p->data);
}

static Node *node(Ex *e, OpKind op, const FmLayer *l, const char *suffix, int nin, Tensor *out) {
  Node *n = fm_node_new(e->g, op, suffix ? fm_sprintf(&e->g->arena, "%s_%s", l->name, suffix) : l->name, nin, 1);
  n->out[0] = out;
  out->producer = n;
  return n;
}

/* A 4-D (N,C,1,1) or (N,C,H,W) tensor flattened for a Linear layer. */
static Tensor *as2d(Ex *e, const FmLayer *l, Tensor *x) {
  if (x->rank == 2) return x;
  Tensor *y = fm_tensor_new(e->g, fm_sprintf(&e->g->arena, "%s_flat", l->name));
  y->dtype = FM_F32, y->rank = 2, y->dims[0] = -1, y->dims[1] = x->dims[1] * x->dims[2] * x->dims[3];
  Node *n = node(e, OP_Flatten, l, "flatten", 1, y);
  n->in[0] = x;
  attr_i(e->g, n, "axis", 1);
  return y;
}

static void layer(Ex *e, const FmLayer *l) {
  Graph *g = e->g;
  const FmNet *net = e->net;
  int out = l->out;
  const char *oname = out == net->output ? "output" : fm_sprintf(&g->arena, "%s_out", l->name);
  Tensor *x = e->t[l->in[0]];
  Tensor *y = NULL;
  Node *n;
  switch (l->kind) {
  case FM_LAYER_NORMALIZE: {
    const FmParam *mean = fm_layer_buf(net, l, 0), *std = fm_layer_buf(net, l, 1);
    int64_t d[3] = {(int64_t)mean->size, 1, 1};
    Tensor *mid = fm_tensor_new(g, fm_sprintf(&g->arena, "%s_centered", l->name));
    fm_same_shape(mid, x);
    n = node(e, OP_Sub, l, "sub", 2, mid);
    n->in[0] = x, n->in[1] = param(e, mean, 3, d);
    y = act(e, out, oname);
    n = node(e, OP_Div, l, NULL, 2, y);
    n->in[0] = mid, n->in[1] = param(e, std, 3, d);
    break;
  }
  case FM_LAYER_CONV2D: {
    const FmConvAttr *a = &l->a.conv;
    const FmParam *b = fm_layer_param(net, l, 1);
    y = act(e, out, oname);
    n = node(e, OP_Conv, l, NULL, b ? 3 : 2, y);
    n->in[0] = x, n->in[1] = param(e, fm_layer_param(net, l, 0), 0, NULL);
    if (b) n->in[2] = param(e, b, 0, NULL);
    attr_ints(g, n, "kernel_shape", 2, (int64_t[]){a->kh, a->kw});
    attr_ints(g, n, "strides", 2, (int64_t[]){a->sh, a->sw});
    attr_ints(g, n, "pads", 4, (int64_t[]){a->ph, a->pw, a->ph, a->pw});
    attr_ints(g, n, "dilations", 2, (int64_t[]){a->dh, a->dw});
    attr_i(g, n, "group", a->groups);
    break;
  }
  case FM_LAYER_CONV_TRANSPOSE2D: {
    const FmConvAttr *a = &l->a.conv;
    const FmParam *b = fm_layer_param(net, l, 1);
    y = act(e, out, oname);
    n = node(e, OP_ConvTranspose, l, NULL, b ? 3 : 2, y);
    n->in[0] = x, n->in[1] = param(e, fm_layer_param(net, l, 0), 0, NULL);
    if (b) n->in[2] = param(e, b, 0, NULL);
    attr_ints(g, n, "kernel_shape", 2, (int64_t[]){a->kh, a->kw});
    attr_ints(g, n, "strides", 2, (int64_t[]){a->sh, a->sw});
    attr_ints(g, n, "pads", 4, (int64_t[]){a->ph, a->pw, a->ph, a->pw});
    attr_ints(g, n, "dilations", 2, (int64_t[]){a->dh, a->dw});
    attr_ints(g, n, "output_padding", 2, (int64_t[]){a->oph, a->opw});
    attr_i(g, n, "group", a->groups);
    break;
  }
  case FM_LAYER_LINEAR: {
    const FmParam *b = fm_layer_param(net, l, 1);
    x = as2d(e, l, x);
    y = act(e, out, oname);
    n = node(e, OP_Gemm, l, NULL, b ? 3 : 2, y);
    n->in[0] = x, n->in[1] = param(e, fm_layer_param(net, l, 0), 0, NULL);
    if (b) n->in[2] = param(e, b, 0, NULL);
    attr_i(g, n, "transB", 1);
    break;
  }
  case FM_LAYER_BATCHNORM:
    y = act(e, out, oname);
    n = node(e, OP_BatchNormalization, l, NULL, 5, y);
    n->in[0] = x;
    n->in[1] = param(e, fm_layer_param(net, l, 0), 0, NULL);
    n->in[2] = param(e, fm_layer_param(net, l, 1), 0, NULL);
    n->in[3] = param(e, fm_layer_buf(net, l, 0), 0, NULL);
    n->in[4] = param(e, fm_layer_buf(net, l, 1), 0, NULL);
    attr_f(g, n, "epsilon", l->a.bn.eps);
    attr_f(g, n, "momentum", 1 - l->a.bn.momentum);
    break;
  case FM_LAYER_RELU:
    y = act(e, out, oname);
    n = node(e, OP_Relu, l, NULL, 1, y);
    n->in[0] = x;
    break;
  case FM_LAYER_MAXPOOL: case FM_LAYER_AVGPOOL: {
    const FmPoolAttr *a = &l->a.pool;
    y = act(e, out, oname);
    n = node(e, l->kind == FM_LAYER_MAXPOOL ? OP_MaxPool : OP_AveragePool, l, NULL, 1, y);
    n->in[0] = x;
    attr_ints(g, n, "kernel_shape", 2, (int64_t[]){a->kh, a->kw});
    attr_ints(g, n, "strides", 2, (int64_t[]){a->sh, a->sw});
    attr_ints(g, n, "pads", 4, (int64_t[]){a->ph, a->pw, a->ph, a->pw});
    if (l->kind == FM_LAYER_AVGPOOL) attr_i(g, n, "count_include_pad", 1);
    break;
  }
  case FM_LAYER_GLOBAL_AVGPOOL: {
    /* ONNX's GlobalAveragePool keeps (N,C,1,1); the trainer's output is (N,C). */
    Tensor *mid = fm_tensor_new(g, fm_sprintf(&g->arena, "%s_pooled", l->name));
    mid->dtype = FM_F32, mid->rank = 4;
    mid->dims[0] = -1, mid->dims[1] = x->dims[1], mid->dims[2] = 1, mid->dims[3] = 1;
    n = node(e, OP_GlobalAveragePool, l, "pool", 1, mid);
    n->in[0] = x;
    y = act(e, out, oname);
    if (y->rank == 2) {
      n = node(e, OP_Flatten, l, NULL, 1, y);
      n->in[0] = mid;
      attr_i(g, n, "axis", 1);
    } else {
      e->t[out] = mid;
      return;
    }
    break;
  }
  case FM_LAYER_DROPOUT: case FM_LAYER_DROPOUT2D:
    if (out == net->output) fm_fail("export: a network may not end in dropout");
    e->t[out] = x; /* identity at inference */
    return;
  case FM_LAYER_FLATTEN:
    y = act(e, out, oname);
    n = node(e, OP_Flatten, l, NULL, 1, y);
    n->in[0] = x;
    attr_i(g, n, "axis", 1);
    break;
  case FM_LAYER_ADD:
    y = act(e, out, oname);
    n = node(e, OP_Add, l, NULL, 2, y);
    n->in[0] = x, n->in[1] = e->t[l->in[1]];
    break;
  case FM_LAYER_CHANNEL_SCALE: {
    const FmParam *s = fm_layer_param(net, l, 0);
    y = act(e, out, oname);
    n = node(e, OP_Mul, l, NULL, 2, y);
    n->in[0] = x;
    if (x->rank == 4) n->in[1] = param(e, s, 3, (int64_t[]){(int64_t)s->size, 1, 1});
    else n->in[1] = param(e, s, 0, NULL);
    break;
  }
  default:
    fm_fail("export: layer '%s' (%s) has no ONNX export", l->name,
            l->ops && l->ops->name ? l->ops->name : fm_layer_kind_name(l->kind));
  }
  e->t[out] = y;
}

Graph *fm_export_graph(const FmNet *net) {
  Graph *g = fm_graph_new();
  g->name = fm_strdup(&g->arena, net->model[0] ? net->model : "fewmul");
  g->producer = "fewmul";
  g->opset = 13;
  g->batch_name = "N";
  Ex e = {g, net, fm_alloc(&g->arena, sizeof(Tensor *) * (size_t)net->ntensors)};
  Tensor *in = act(&e, net->input, "input");
  in->is_input = 1;
  g->inputs = fm_alloc(&g->arena, sizeof(Tensor *));
  g->inputs[0] = in, g->ninputs = 1;
  e.t[net->input] = in;
  for (int i = 0; i < net->nlayers; i++) layer(&e, &net->layers[i]);
  Tensor *out = e.t[net->output];
  if (strcmp(out->name, "output")) fm_fail("export: internal: the output tensor is '%s'", out->name);
  out->is_output = 1;
  g->outputs = fm_alloc(&g->arena, sizeof(Tensor *));
  g->outputs[0] = out, g->noutputs = 1;
  return g;
}

int fm_export_onnx(const FmNet *net, const char *path, char *err, size_t errlen) {
  Graph *volatile g = NULL;
  FmTry t;
  FM_TRY(&t) {
    g = fm_export_graph(net);
    fm_onnx_write(g, path, NULL);
    fm_try_pop(&t);
  } else {
    snprintf(err, errlen, "%s", fm_errmsg());
    fm_graph_free(g);
    return -1;
  }
  fm_graph_free(g);
  return 0;
}
