/* export.c - trainer network -> graph IR -> ONNX, through the compiler's writer.
 * Training-method layers (method.h) become ai.fewmul TernaryConv/TernaryGemm and
 * Pow2Conv/Pow2Gemm nodes, each op also written as a model-local function in
 * standard ONNX ops, or standard QDQ (DequantizeLinear of int8 weights). */
#include "export.h"
#include "method_shift.h"
#include "method_sp.h"
#include "method_winograd.h"
#include "onnx/onnx.h"
#include "ops/ops.h"
#include <math.h>
#include <string.h>

typedef struct {
  Graph *g;
  const FmNet *net;
  Tensor **t;       /* trainer tensor id -> graph tensor */
} Ex;

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

static void conv_attrs(Graph *g, Node *n, const FmConvAttr *a) {
  fm_set_attr_ints(g, n, "kernel_shape", 2, (int64_t[]){a->kh, a->kw});
  fm_set_attr_ints(g, n, "strides", 2, (int64_t[]){a->sh, a->sw});
  fm_set_attr_ints(g, n, "pads", 4, (int64_t[]){a->ph, a->pw, a->ph, a->pw});
  fm_set_attr_ints(g, n, "dilations", 2, (int64_t[]){a->dh, a->dw});
  fm_set_attr_i(g, n, "group", a->groups);
}

/* A 4-D (N,C,1,1) or (N,C,H,W) tensor flattened for a Linear layer. */
static Tensor *as2d(Ex *e, const FmLayer *l, Tensor *x) {
  if (x->rank == 2) return x;
  Tensor *y = fm_tensor_new(e->g, fm_sprintf(&e->g->arena, "%s_flat", l->name));
  y->dtype = FM_F32, y->rank = 2, y->dims[0] = -1, y->dims[1] = x->dims[1] * x->dims[2] * x->dims[3];
  Node *n = node(e, OP_Flatten, l, "flatten", 1, y);
  n->in[0] = x;
  fm_set_attr_i(e->g, n, "axis", 1);
  return y;
}

/* DeepShift --act-fixed I.F: the layer input rounded to fixed point as the trainer does
   (method.h): Mul(2^F) -> Round (half to even) -> Clip(lo, hi) -> Mul(2^-F), all exact
   in float but the rounding, so ONNX Runtime and fewmul reproduce the trainer. */
static Tensor *fixed_point(Ex *e, const FmLayer *l, Tensor *x) {
  Graph *g = e->g;
  const FmMethod *m = &e->net->method;
  float up = ldexpf(1.0f, m->act_frac), down = ldexpf(1.0f, -m->act_frac), lo, hi;
  fm_fixed_bounds(m->act_int, m->act_frac, &lo, &hi);
  static const char *step[4] = {"fx_scaled", "fx_rounded", "fx_clipped", "fx"};
  Tensor *t[4];
  for (int i = 0; i < 4; i++) {
    t[i] = fm_tensor_new(g, fm_sprintf(&g->arena, "%s_%s", l->name, step[i]));
    fm_same_shape(t[i], x);
  }
  Node *n = node(e, OP_Mul, l, step[0], 2, t[0]);
  n->in[0] = x, n->in[1] = fm_tensor_const(g, fm_sprintf(&g->arena, "%s.fx_up", l->name), FM_F32, 0, NULL, &up);
  n = node(e, OP_Round, l, step[1], 1, t[1]);
  n->in[0] = t[0];
  n = node(e, OP_Clip, l, step[2], 3, t[2]);
  n->in[0] = t[1];
  n->in[1] = fm_tensor_const(g, fm_sprintf(&g->arena, "%s.fx_lo", l->name), FM_F32, 0, NULL, &lo);
  n->in[2] = fm_tensor_const(g, fm_sprintf(&g->arena, "%s.fx_hi", l->name), FM_F32, 0, NULL, &hi);
  n = node(e, OP_Mul, l, step[3], 2, t[3]);
  n->in[0] = t[2], n->in[1] = fm_tensor_const(g, fm_sprintf(&g->arena, "%s.fx_down", l->name), FM_F32, 0, NULL, &down);
  return t[3];
}

/* A training-method layer (method.h), in eval form:
     ternary      TernaryConv / TernaryGemm (X, W int8 {-1,0,1}, Alpha [M], B)
     deepshift    Pow2Conv / Pow2Gemm (X, Sign int8, Shift int8, B): W = Sign * 2^Shift
     quant        DequantizeLinear(W int8, scale, zero point 0) -> Conv / Gemm
   The Gemm forms take W as (M, K), with transB = 1 as a Linear layer has it. */
static Tensor *method_layer(Ex *e, const FmLayer *l, Tensor *x, int out, const char *oname) {
  Graph *g = e->g;
  FmMethodExport me;
  if (fm_method_export(e->net, l, &me)) fm_fail("export: layer '%s': out of memory", l->name);
  int conv = me.conv, ternary = me.kind == FM_METHOD_TERNARY, quant = me.kind == FM_METHOD_QUANT;
  const FmParam *bias = me.bias;
  float scale = me.scale;
  int8_t zero = 0;
  /* graph copies of the integer weights, so nothing is left to free if a later step fails */
  Tensor *wq = fm_tensor_const(g, fm_sprintf(&g->arena, "%s.%s", l->name, ternary || quant ? "weight_q" : "sign"),
                               FM_I8, me.wrank, me.wdims, me.q);
  Tensor *w2 = NULL;
  if (ternary) w2 = fm_tensor_const(g, fm_sprintf(&g->arena, "%s.alpha", l->name), FM_F32, 1, (int64_t[]){me.M}, me.alpha);
  else if (!quant) w2 = fm_tensor_const(g, fm_sprintf(&g->arena, "%s.shift", l->name), FM_I8, me.wrank, me.wdims, me.shift);
  fm_method_export_free(&me);
  if (!conv) x = as2d(e, l, x);
  if (!ternary && !quant && e->net->method.act_int) x = fixed_point(e, l, x);
  Tensor *b = bias ? param(e, bias, 0, NULL) : NULL;
  Tensor *y = act(e, out, oname);
  Node *n;
  if (quant) {
    Tensor *wf = fm_tensor_new(g, fm_sprintf(&g->arena, "%s.weight_dq", l->name));
    wf->dtype = FM_F32, wf->rank = wq->rank;
    memcpy(wf->dims, wq->dims, sizeof wf->dims);
    n = node(e, OP_DequantizeLinear, l, "dequant", 3, wf);
    n->in[0] = wq;
    n->in[1] = fm_tensor_const(g, fm_sprintf(&g->arena, "%s.scale", l->name), FM_F32, 0, NULL, &scale);
    n->in[2] = fm_tensor_const(g, fm_sprintf(&g->arena, "%s.zero_point", l->name), FM_I8, 0, NULL, &zero);
    n = node(e, conv ? OP_Conv : OP_Gemm, l, NULL, b ? 3 : 2, y);
    n->in[0] = x, n->in[1] = wf;
    if (b) n->in[2] = b;
  } else {
    const char *op = ternary ? (conv ? "TernaryConv" : "TernaryGemm") : (conv ? "Pow2Conv" : "Pow2Gemm");
    /* a native op of the compiler's table when it has one, else written by name */
    n = node(e, fm_op_lookup("ai.fewmul", op), l, NULL, b ? 4 : 3, y);
    n->op_type = op, n->domain = "ai.fewmul";
    n->in[0] = x, n->in[1] = wq, n->in[2] = w2;
    if (b) n->in[3] = b;
  }
  if (conv) conv_attrs(g, n, &l->a.conv);
  else fm_set_attr_i(g, n, "transB", 1);
  return y;
}

/* The layers of imported graphs (net_graph.c) as the ONNX ops they came from. */
static void graph_layer(Ex *e, const FmLayer *l, Tensor *x, Tensor *y) {
  Graph *g = e->g;
  const FmNet *net = e->net;
  Node *n;
  switch (l->kind) {
  case FM_LAYER_AFFINE: {   /* Mul by scale (unless all 1), then Add shift (unless all 0) */
    const FmParam *s = fm_layer_buf(net, l, 0), *b = fm_layer_buf(net, l, 1);
    int64_t d[3] = {(int64_t)s->size, 1, 1};
    int rank = x->rank == 4 ? 3 : 1, mul = 0, add = 0;
    for (size_t i = 0; i < s->size; i++) mul |= s->data[i] != 1, add |= b->data[i] != 0;
    Tensor *mid = x;
    if (mul) {
      mid = add ? fm_tensor_new(g, fm_sprintf(&g->arena, "%s_scaled", l->name)) : y;
      if (add) fm_same_shape(mid, x);
      n = node(e, OP_Mul, l, add ? "mul" : NULL, 2, mid);
      n->in[0] = x, n->in[1] = param(e, s, rank, d);
    }
    if (add || !mul) {
      n = node(e, OP_Add, l, NULL, 2, y);
      n->in[0] = mid, n->in[1] = param(e, b, rank, d);
    }
    return;
  }
  case FM_LAYER_ACT: {
    const FmActAttr *a = &l->a.act;
    static const OpKind ops[] = {[FM_ACT_LEAKY] = OP_LeakyRelu, [FM_ACT_CLIP] = OP_Clip, [FM_ACT_SIGMOID] = OP_Sigmoid,
                                 [FM_ACT_TANH] = OP_Tanh};
    n = node(e, ops[a->kind], l, NULL, a->kind == FM_ACT_CLIP ? 3 : 1, y);
    n->in[0] = x;
    if (a->kind == FM_ACT_LEAKY) fm_set_attr_f(g, n, "alpha", a->alpha);
    if (a->kind == FM_ACT_CLIP) {
      n->in[1] = fm_tensor_const(g, fm_sprintf(&g->arena, "%s.min", l->name), FM_F32, 0, NULL, &a->lo);
      n->in[2] = fm_tensor_const(g, fm_sprintf(&g->arena, "%s.max", l->name), FM_F32, 0, NULL, &a->hi);
    }
    return;
  }
  case FM_LAYER_ELTWISE:
    n = node(e, l->a.elt == FM_ELT_MUL ? OP_Mul : OP_Sub, l, NULL, 2, y);
    n->in[0] = x, n->in[1] = e->t[l->in[1]];
    return;
  case FM_LAYER_CONCAT:
    n = node(e, OP_Concat, l, NULL, l->nin, y);
    for (int k = 0; k < l->nin; k++) n->in[k] = e->t[l->in[k]];
    fm_set_attr_i(g, n, "axis", 1);
    return;
  default: {   /* RESHAPE */
    const FmTensor *t = &net->tensors[l->out];
    int64_t shape[4] = {-1, t->c, t->h, t->w};
    n = node(e, OP_Reshape, l, NULL, 2, y);
    n->in[0] = x;
    n->in[1] = fm_tensor_const(g, fm_sprintf(&g->arena, "%s.shape", l->name), FM_I64, 1, (int64_t[]){t->flat ? 2 : 4}, shape);
    return;
  }
  }
}

static void layer(Ex *e, const FmLayer *l) {
  Graph *g = e->g;
  const FmNet *net = e->net;
  int out = l->out;
  const char *oname = out == net->output && !net->final_act ? "output" : fm_sprintf(&g->arena, "%s_out", l->name);
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
    conv_attrs(g, n, a);
    break;
  }
  case FM_LAYER_CONV_TRANSPOSE2D: {
    const FmConvAttr *a = &l->a.conv;
    const FmParam *b = fm_layer_param(net, l, 1);
    y = act(e, out, oname);
    n = node(e, OP_ConvTranspose, l, NULL, b ? 3 : 2, y);
    n->in[0] = x, n->in[1] = param(e, fm_layer_param(net, l, 0), 0, NULL);
    if (b) n->in[2] = param(e, b, 0, NULL);
    fm_set_attr_ints(g, n, "kernel_shape", 2, (int64_t[]){a->kh, a->kw});
    fm_set_attr_ints(g, n, "strides", 2, (int64_t[]){a->sh, a->sw});
    fm_set_attr_ints(g, n, "pads", 4, (int64_t[]){a->ph, a->pw, a->ph, a->pw});
    fm_set_attr_ints(g, n, "dilations", 2, (int64_t[]){a->dh, a->dw});
    fm_set_attr_ints(g, n, "output_padding", 2, (int64_t[]){a->oph, a->opw});
    fm_set_attr_i(g, n, "group", a->groups);
    break;
  }
  case FM_LAYER_LINEAR: {
    const FmParam *b = fm_layer_param(net, l, 1);
    x = as2d(e, l, x);
    y = act(e, out, oname);
    n = node(e, OP_Gemm, l, NULL, b ? 3 : 2, y);
    n->in[0] = x, n->in[1] = param(e, fm_layer_param(net, l, 0), 0, NULL);
    if (b) n->in[2] = param(e, b, 0, NULL);
    fm_set_attr_i(g, n, "transB", 1);
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
    fm_set_attr_f(g, n, "epsilon", l->a.bn.eps);
    fm_set_attr_f(g, n, "momentum", 1 - l->a.bn.momentum);
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
    fm_set_attr_ints(g, n, "kernel_shape", 2, (int64_t[]){a->kh, a->kw});
    fm_set_attr_ints(g, n, "strides", 2, (int64_t[]){a->sh, a->sw});
    fm_set_attr_ints(g, n, "pads", 4, (int64_t[]){a->ph, a->pw, a->ph, a->pw});
    if (l->kind == FM_LAYER_AVGPOOL) fm_set_attr_i(g, n, "count_include_pad", 1);
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
      fm_set_attr_i(g, n, "axis", 1);
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
    fm_set_attr_i(g, n, "axis", 1);
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
  case FM_LAYER_AFFINE: case FM_LAYER_ACT: case FM_LAYER_ELTWISE: case FM_LAYER_CONCAT: case FM_LAYER_RESHAPE:
    y = act(e, out, oname);
    graph_layer(e, l, x, y);
    break;
  case FM_LAYER_CUSTOM:
    if (fm_wino_layer(l)) {   /* Winograd-aware convs: ai.fewmul WinogradConv (method_winograd.c) */
      y = act(e, out, oname);
      fm_wino_export_nodes(g, net, l, x, y);
      break;
    }
    if (fm_sp_layer(l)) {   /* StrassenNets SP layers: SPConv / SPGemm (method_sp.c) */
      y = act(e, out, oname);
      fm_sp_export_nodes(g, net, l, fm_sp_layer_is_conv(l) ? x : as2d(e, l, x), y);
      break;
    }
    if (fm_method_layer(l)) {
      y = method_layer(e, l, x, out, oname);
      break;
    }
    if (fm_shift_layer(l)) {   /* ShiftNet: ai.fewmul Shift (method_shift.c) */
      y = act(e, out, oname);
      fm_shift_export_node(g, l, x, y);
      break;
    }
    fm_fail("export: layer '%s' (%s) has no ONNX export", l->name, l->ops && l->ops->name ? l->ops->name : "custom");
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
  if (net->final_act) {   /* an imported model's Softmax / LogSoftmax (net.h) */
    Tensor *y = act(&e, net->output, "output");
    Node *n = fm_node_new(g, net->final_act == FM_FINAL_SOFTMAX ? OP_Softmax : OP_LogSoftmax, "final_softmax", 1, 1);
    n->in[0] = e.t[net->output], n->out[0] = y, y->producer = n;
    fm_set_attr_i(g, n, "axis", 1);
    e.t[net->output] = y;
  }
  Tensor *out = e.t[net->output];
  if (strcmp(out->name, "output")) fm_fail("export: internal: the output tensor is '%s'", out->name);
  out->is_output = 1;
  g->outputs = fm_alloc(&g->arena, sizeof(Tensor *));
  g->outputs[0] = out, g->noutputs = 1;
  return g;
}

/* ---- model-local functions: the ai.fewmul weight ops in standard ONNX ----
   TernaryConv/Gemm(X, W, Alpha, B):  Wf = Cast(W) * Reshape(Alpha, [-1,1,1,1] | [-1,1])
   Pow2Conv/Gemm(X, Sign, Shift, B):  Wf = Cast(Sign) * Pow(2, Cast(Shift))
   then Y = Conv(X, Wf, B) | Gemm(X, Wf, B), the caller's attributes passed by reference. */
static const char *const fewmul_weight_ops[] = {"TernaryConv", "TernaryGemm", "Pow2Conv", "Pow2Gemm",
                                                "SPConv", "SPGemm", "Shift",   /* SP: method_sp.c, Shift: method_shift.c */
                                                "WinogradConv"};               /* method_winograd.c */
#define N_FEWMUL_WEIGHT_OPS ((int)(sizeof fewmul_weight_ops / sizeof fewmul_weight_ops[0]))

static Tensor *body_op(Graph *b, OpKind op, const char *out, Tensor *in0, Tensor *in1, Tensor *in2) {
  int nin = in2 ? 3 : in1 ? 2 : 1;
  Node *n = fm_node_new(b, op, NULL, nin, 1);
  n->in[0] = in0, n->in[1] = in1;
  if (in2) n->in[2] = in2;
  n->out[0] = fm_tensor_new(b, out);
  n->out[0]->producer = n;
  return n->out[0];
}

static Tensor *body_cast_float(Graph *b, Tensor *in, const char *out) {
  Tensor *t = body_op(b, OP_Cast, out, in, NULL, NULL);
  Node *n = t->producer;
  n->attrs = fm_alloc(&b->arena, sizeof(Attr)), n->nattrs = 1;
  n->attrs[0] = (Attr){.name = "to", .type = FA_INT, .i = FM_F32};
  return t;
}

static void weight_function(FmFunction *f, const char *op, Graph *b) {
  static const char *tern_in[] = {"X", "W", "Alpha", "B"}, *pow2_in[] = {"X", "Sign", "Shift", "B"}, *outs[] = {"Y"};
  static const char *conv_attr[] = {"kernel_shape", "strides", "pads", "dilations", "group"};
  static const char *gemm_attr[] = {"transA", "transB", "alpha", "beta"};
  static const AttrType conv_type[] = {FA_INTS, FA_INTS, FA_INTS, FA_INTS, FA_INT};
  static const AttrType gemm_type[] = {FA_INT, FA_INT, FA_FLOAT, FA_FLOAT};
  if (!strncmp(op, "SP", 2)) {
    fm_sp_function(f, op, b);
    return;
  }
  int ternary = !strncmp(op, "Ternary", 7), conv = strstr(op, "Conv") != NULL;
  const char **ins = ternary ? tern_in : pow2_in;
  b->opset = 13;
  Tensor *x = fm_tensor_new(b, ins[0]), *w = fm_tensor_new(b, ins[1]), *a = fm_tensor_new(b, ins[2]);
  Tensor *bias = fm_tensor_new(b, ins[3]);
  Tensor *wc = body_cast_float(b, w, "Wc"), *wf;
  if (ternary) {
    int64_t shape[4] = {-1, 1, 1, 1}, rank = conv ? 4 : 2;
    Tensor *s = fm_tensor_const(b, "AlphaShape", FM_I64, 1, &rank, shape);
    wf = body_op(b, OP_Mul, "Wf", wc, body_op(b, OP_Reshape, "AlphaCol", a, s, NULL), NULL);
  } else {
    float two = 2.0f;
    Tensor *base = fm_tensor_const(b, "Two", FM_F32, 0, NULL, &two);
    wf = body_op(b, OP_Mul, "Wf", wc, body_op(b, OP_Pow, "Pow2", base, body_cast_float(b, a, "ShiftF"), NULL), NULL);
  }
  Tensor *y = body_op(b, conv ? OP_Conv : OP_Gemm, outs[0], x, wf, bias);
  Node *n = y->producer;
  int na = conv ? 5 : 4;
  n->attrs = fm_alloc(&b->arena, sizeof(Attr) * (size_t)na), n->nattrs = na;
  for (int i = 0; i < na; i++) {
    const char *nm = conv ? conv_attr[i] : gemm_attr[i];
    n->attrs[i] = (Attr){.name = nm, .type = conv ? conv_type[i] : gemm_type[i], .ref = nm};
  }
  *f = (FmFunction){"ai.fewmul", op, ins, 4, outs, 1, conv ? conv_attr : gemm_attr, na, b};
}

int fm_export_onnx(const FmNet *net, const char *path, char *err, size_t errlen) {
  Graph *volatile g = NULL;
  Graph *volatile bodies[N_FEWMUL_WEIGHT_OPS] = {0};
  FmFunction fns[N_FEWMUL_WEIGHT_OPS];
  volatile int rc = 0;
  FmTry t;
  FM_TRY(&t) {
    g = fm_export_graph(net);
    int nf = 0;
    for (int k = 0; k < N_FEWMUL_WEIGHT_OPS; k++) {
      int used = 0;
      for (int i = 0; i < g->nnodes && !used; i++)
        used = !strcmp(g->nodes[i]->domain, "ai.fewmul") && !strcmp(g->nodes[i]->op_type, fewmul_weight_ops[k]);
      if (!used) continue;
      bodies[nf] = fm_graph_new();
      if (!strcmp(fewmul_weight_ops[k], "Shift")) fm_shift_function(&fns[nf], g, bodies[nf]);
      else if (!strcmp(fewmul_weight_ops[k], "WinogradConv")) fm_wino_function(&fns[nf], bodies[nf], g);
      else weight_function(&fns[nf], fewmul_weight_ops[k], bodies[nf]);
      nf++;
    }
    FmWriteOpts wo = {.functions = fns, .nfunctions = nf};
    fm_onnx_write(g, path, &wo);
    fm_try_pop(&t);
  } else {
    snprintf(err, errlen, "%s", fm_errmsg());
    rc = -1;
  }
  for (int k = 0; k < N_FEWMUL_WEIGHT_OPS; k++) fm_graph_free(bodies[k]);
  fm_graph_free(g);
  return rc;
}
