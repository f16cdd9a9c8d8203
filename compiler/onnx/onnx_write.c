/* onnx_write.c - graph IR -> ModelProto (ir_version 8): constants as raw_data
 * initialisers, the symbolic batch as dim_param, value_info for known intermediate
 * shapes, fused activations split back out, model-local functions. The protobuf-c
 * structs point into a scratch arena and the graph; the file is written atomically. */
#include "onnx/onnx_internal.h"
#include "ops/ops.h"
#include <assert.h>
#include <errno.h>
#include <float.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct W {
  Arena a;
  Graph *g;
  const FmWriteOpts *o;
  const char *dom[32]; int64_t ver[32]; int ndom; /* opset imports */
} W;

#define NEW(w, T, INIT) ({ T *p_ = fm_alloc(&(w)->a, sizeof(T)); *p_ = (T)INIT; p_; })
#define ARR(w, T, n) ((T *)fm_alloc(&(w)->a, sizeof(T) * ((size_t)(n) + 1)))

static char *str(const char *s) { return (char *)(s ? s : ""); }

static void use_domain(W *w, const char *d, int64_t v) {
  d = !d || !strcmp(d, "ai.onnx") ? "" : d;
  for (int i = 0; i < w->ndom; i++)
    if (!strcmp(w->dom[i], d)) return;
  if (w->ndom == 32) fm_fail("cannot write a model using more than 32 op domains");
  if (!strcmp(d, "ai.fewmul")) v = 1; /* the one version of the op set (docs/OPS.md) */
  w->dom[w->ndom] = d, w->ver[w->ndom++] = v > 0 ? v : 1;
}

static Onnx__TensorProto *tensor(W *w, const Tensor *t, const char *name) {
  Onnx__TensorProto *p = NEW(w, Onnx__TensorProto, ONNX__TENSOR_PROTO__INIT);
  assert(t->data && t->rank >= 0 && fm_dtype_size(t->dtype));
  p->name = str(name);
  p->n_dims = (size_t)t->rank;
  p->dims = (int64_t *)t->dims;
  p->has_data_type = 1, p->data_type = t->dtype;
  p->has_raw_data = 1;
  p->raw_data.len = fm_nbytes(t);
  p->raw_data.data = t->data;
  return p;
}

static Onnx__ValueInfoProto *vinfo(W *w, const Tensor *t) {
  Onnx__ValueInfoProto *v = NEW(w, Onnx__ValueInfoProto, ONNX__VALUE_INFO_PROTO__INIT);
  v->name = str(t->name);
  Onnx__TypeProto *tp = NEW(w, Onnx__TypeProto, ONNX__TYPE_PROTO__INIT);
  Onnx__TypeProto__Tensor *tt = NEW(w, Onnx__TypeProto__Tensor, ONNX__TYPE_PROTO__TENSOR__INIT);
  tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, tp->tensor_type = tt;
  v->type = tp;
  if (t->dtype) tt->has_elem_type = 1, tt->elem_type = t->dtype;
  if (t->rank < 0) return v;
  Onnx__TensorShapeProto *sh = NEW(w, Onnx__TensorShapeProto, ONNX__TENSOR_SHAPE_PROTO__INIT);
  sh->n_dim = (size_t)t->rank;
  sh->dim = ARR(w, Onnx__TensorShapeProto__Dimension *, t->rank);
  for (int i = 0; i < t->rank; i++) {
    Onnx__TensorShapeProto__Dimension *d =
        NEW(w, Onnx__TensorShapeProto__Dimension, ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT);
    int64_t x = t->dims[i];
    if (x >= 0) d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE, d->dim_value = x;
    else if (x != FM_DIM_UNKNOWN) {
      d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
      d->dim_param = x == -1 ? str(w->g->batch_name) : fm_sprintf(&w->a, "%lld*%s", (long long)-x, w->g->batch_name);
    }
    sh->dim[i] = d;
  }
  tt->shape = sh;
  return v;
}

static Onnx__GraphProto *graph(W *w, Graph *g);

static Onnx__AttributeProto *attr(W *w, const Attr *a) {
  Onnx__AttributeProto *p = NEW(w, Onnx__AttributeProto, ONNX__ATTRIBUTE_PROTO__INIT);
  p->name = str(a->name);
  p->has_type = 1;
  if (a->ref) p->ref_attr_name = str(a->ref);
  switch (a->type) {
  case FA_FLOAT: p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, p->has_f = 1, p->f = a->f; break;
  case FA_INT: p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, p->has_i = 1, p->i = a->i; break;
  case FA_STRING:
    p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING, p->has_s = 1;
    p->s.data = (uint8_t *)str(a->s), p->s.len = strlen(str(a->s));
    break;
  case FA_TENSOR:
    p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    if (a->t) p->t = tensor(w, a->t, a->t->name);
    break;
  case FA_GRAPH:
    p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH;
    if (a->g) p->g = graph(w, a->g);
    else if (!a->ref) return NULL; /* a subgraph the loader did not keep */
    break;
  case FA_FLOATS:
    p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS, p->n_floats = (size_t)a->n, p->floats = a->floats;
    break;
  case FA_INTS: p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS, p->n_ints = (size_t)a->n, p->ints = a->ints; break;
  case FA_STRINGS:
    p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS, p->n_strings = (size_t)a->n;
    p->strings = ARR(w, ProtobufCBinaryData, a->n);
    for (int i = 0; i < a->n; i++)
      p->strings[i].data = (uint8_t *)str(a->strings[i]), p->strings[i].len = strlen(str(a->strings[i]));
    break;
  default: assert(0 && "attribute type");
  }
  return p;
}

static Onnx__NodeProto *node(W *w, const Node *n, const char *op, const char *dom, const char *name) {
  Onnx__NodeProto *p = NEW(w, Onnx__NodeProto, ONNX__NODE_PROTO__INIT);
  p->name = str(name), p->op_type = str(op);
  if (*dom) p->domain = str(dom);
  use_domain(w, dom, n ? n->opset : 0);
  return p;
}

static void ios(W *w, Onnx__NodeProto *p, Tensor *const *in, int nin, Tensor *const *out, int nout) {
  p->n_input = (size_t)nin, p->input = ARR(w, char *, nin);
  for (int i = 0; i < nin; i++) p->input[i] = in[i] ? str(in[i]->name) : "";
  p->n_output = (size_t)nout, p->output = ARR(w, char *, nout);
  for (int i = 0; i < nout; i++) p->output[i] = out[i] ? str(out[i]->name) : "";
}

static Onnx__AttributeProto *fattr(W *w, const char *name, float v) {
  Attr a = {.name = name, .type = FA_FLOAT, .f = v};
  return attr(w, &a);
}

/* A fused activation becomes its own node again; other runtimes know nothing of fusion. */
static Onnx__NodeProto *unfuse(W *w, const Node *n, Tensor *pre, Onnx__TensorProto ***inits, size_t *ninit) {
  OpKind a = (OpKind)n->fused_act;
  Onnx__NodeProto *p = node(w, NULL, fm_op_names[a], "", fm_sprintf(&w->a, "%s/%s", n->name, fm_op_names[a]));
  Tensor *in[3] = {pre, NULL, NULL};
  int nin = 1;
  if (a == OP_LeakyRelu || a == OP_Elu || a == OP_HardSigmoid || a == OP_Selu || a == OP_Celu ||
      a == OP_ThresholdedRelu) {
    p->n_attribute = a == OP_HardSigmoid || a == OP_Selu ? 2 : 1;
    p->attribute = ARR(w, Onnx__AttributeProto *, 2);
    p->attribute[0] = fattr(w, "alpha", n->act_alpha);
    if (p->n_attribute == 2) p->attribute[1] = fattr(w, a == OP_Selu ? "gamma" : "beta", n->act_beta);
  } else if (a == OP_Clip) { /* min and max are inputs since opset 11 */
    float lim[2] = {n->act_alpha, n->act_beta};
    for (int i = 0; i < 2; i++) {
      if ((i == 0 && lim[0] <= -FLT_MAX) || (i == 1 && lim[1] >= FLT_MAX)) continue;
      Tensor *c = fm_alloc(&w->a, sizeof *c);
      c->name = fm_sprintf(&w->a, "%s/clip_%s", n->name, i ? "max" : "min");
      c->dtype = FM_F32, c->rank = 0, c->data = fm_alloc(&w->a, sizeof(float));
      *(float *)c->data = lim[i];
      in[1 + i] = c, nin = 2 + i;
      (*inits)[(*ninit)++] = tensor(w, c, c->name);
    }
  }
  ios(w, p, in, nin, &n->out[0], 1);
  return p;
}

static Onnx__GraphProto *graph(W *w, Graph *g) {
  Onnx__GraphProto *gp = NEW(w, Onnx__GraphProto, ONNX__GRAPH_PROTO__INIT);
  gp->name = str(g->name && *g->name ? g->name : "fewmul");
  char *used = fm_alloc(&w->a, (size_t)g->ntensors + 1);
  int nlive = 0, nfused = 0;
  for (int i = 0; i < g->nnodes; i++) {
    Node *n = g->nodes[i];
    if (n->dead) continue;
    nlive++, nfused += n->fused_act != 0;
    for (int j = 0; j < n->nin; j++)
      if (n->in[j] && n->in[j]->id >= 0 && n->in[j]->id < g->ntensors) used[n->in[j]->id] = 1;
  }
  for (int i = 0; i < g->noutputs; i++)
    if (g->outputs[i]->id >= 0 && g->outputs[i]->id < g->ntensors) used[g->outputs[i]->id] = 1;
  gp->node = ARR(w, Onnx__NodeProto *, nlive + nfused);
  gp->initializer = ARR(w, Onnx__TensorProto *, g->ntensors + 2 * nfused);
  for (int i = 0; i < g->ntensors; i++) {
    Tensor *t = g->tensors[i];
    if (t->data && used[i]) gp->initializer[gp->n_initializer++] = tensor(w, t, t->name);
  }
  for (int i = 0; i < g->nnodes; i++) {
    Node *n = g->nodes[i];
    if (n->dead) continue;
    int known = n->op != OP_UNKNOWN;
    const char *op = known ? fm_op_names[n->op] : n->op_type;
    const char *dom = known ? fm_ops[n->op].domain : str(n->domain);
    Onnx__NodeProto *p = node(w, n, op, dom, n->name);
    Tensor **outs = n->out, *pre = NULL;
    if (n->fused_act) {
      assert(n->nout >= 1 && n->out[0]);
      pre = fm_alloc(&w->a, sizeof *pre);
      *pre = *n->out[0];
      pre->name = fm_sprintf(&w->a, "%s/preact", n->name);
      for (int k = 1; fm_tensor_find(g, pre->name); k++) pre->name = fm_sprintf(&w->a, "%s/preact_%d", n->name, k);
      outs = ARR(w, Tensor *, n->nout);
      memcpy(outs, n->out, sizeof(Tensor *) * (size_t)n->nout);
      outs[0] = pre;
    }
    ios(w, p, n->in, n->nin, outs, n->nout);
    p->attribute = ARR(w, Onnx__AttributeProto *, n->nattrs);
    for (int j = 0; j < n->nattrs; j++) {
      Onnx__AttributeProto *a = attr(w, &n->attrs[j]);
      if (a) p->attribute[p->n_attribute++] = a;
    }
    gp->node[gp->n_node++] = p;
    if (pre) gp->node[gp->n_node++] = unfuse(w, n, pre, &gp->initializer, &gp->n_initializer);
  }
  gp->input = ARR(w, Onnx__ValueInfoProto *, g->ninputs);
  for (int i = 0; i < g->ninputs; i++) gp->input[gp->n_input++] = vinfo(w, g->inputs[i]);
  gp->output = ARR(w, Onnx__ValueInfoProto *, g->noutputs);
  for (int i = 0; i < g->noutputs; i++) gp->output[gp->n_output++] = vinfo(w, g->outputs[i]);
  if (w->o->no_value_info) return gp;
  gp->value_info = ARR(w, Onnx__ValueInfoProto *, g->ntensors);
  for (int i = 0; i < g->ntensors; i++) {
    Tensor *t = g->tensors[i];
    if (t->data || t->is_input || t->is_output || !t->producer || t->producer->dead || !t->dtype ||
        !fm_shape_known(t))
      continue;
    gp->value_info[gp->n_value_info++] = vinfo(w, t);
  }
  return gp;
}

/* Function bodies have no initialisers: their constants become Constant nodes. */
static Onnx__FunctionProto *function(W *w, const FmFunction *f) {
  Onnx__FunctionProto *fp = NEW(w, Onnx__FunctionProto, ONNX__FUNCTION_PROTO__INIT);
  Graph *b = f->body;
  fp->name = str(f->name), fp->domain = str(f->domain);
  fp->n_input = (size_t)f->ninputs, fp->input = (char **)f->inputs;
  fp->n_output = (size_t)f->noutputs, fp->output = (char **)f->outputs;
  fp->n_attribute = (size_t)f->nattributes, fp->attribute = (char **)f->attributes;
  Onnx__GraphProto *gp = graph(w, b);
  fp->node = ARR(w, Onnx__NodeProto *, gp->n_initializer + gp->n_node);
  for (size_t i = 0; i < gp->n_initializer; i++) {
    Onnx__NodeProto *c = node(w, NULL, "Constant", "", fm_sprintf(&w->a, "%s/const%zu", f->name, i));
    Tensor *out = fm_alloc(&w->a, sizeof *out);
    out->name = gp->initializer[i]->name;
    ios(w, c, NULL, 0, &out, 1);
    c->n_attribute = 1, c->attribute = ARR(w, Onnx__AttributeProto *, 1);
    Onnx__AttributeProto *a = NEW(w, Onnx__AttributeProto, ONNX__ATTRIBUTE_PROTO__INIT);
    a->name = "value", a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    a->t = gp->initializer[i];
    c->attribute[0] = a;
    fp->node[fp->n_node++] = c;
  }
  for (size_t i = 0; i < gp->n_node; i++) fp->node[fp->n_node++] = gp->node[i];
  return fp; /* its opset imports are the model's (set in build), which cover every domain it uses */
}

static void opsets(W *w, Onnx__OperatorSetIdProto ***out, size_t *n) {
  *out = ARR(w, Onnx__OperatorSetIdProto *, w->ndom);
  *n = (size_t)w->ndom;
  for (int i = 0; i < w->ndom; i++) {
    Onnx__OperatorSetIdProto *o = NEW(w, Onnx__OperatorSetIdProto, ONNX__OPERATOR_SET_ID_PROTO__INIT);
    o->domain = str(w->dom[i]), o->has_version = 1, o->version = w->ver[i];
    (*out)[i] = o;
  }
}

static void build(W *w, Onnx__ModelProto *m) {
  Graph *g = w->g;
  /* ai.onnx first, at the graph's opset: node attributes follow that opset */
  use_domain(w, "", g->opset > 0 ? g->opset : 13);
  m->has_ir_version = 1, m->ir_version = 8;
  m->producer_name = str(w->o->producer ? w->o->producer : g->producer && *g->producer ? g->producer : "fewmul");
  m->graph = graph(w, g);
  m->functions = ARR(w, Onnx__FunctionProto *, w->o->nfunctions);
  for (int i = 0; i < w->o->nfunctions; i++) {
    const FmFunction *f = &w->o->functions[i];
    assert(f->name && f->body);
    m->functions[m->n_functions++] = function(w, f);
  }
  for (int i = 0; i < w->o->nfunctions; i++) use_domain(w, w->o->functions[i].domain, 1);
  opsets(w, &m->opset_import, &m->n_opset_import);
  for (size_t i = 0; i < m->n_functions; i++) /* a function may use any domain the model imports */
    m->functions[i]->opset_import = m->opset_import, m->functions[i]->n_opset_import = m->n_opset_import;
  size_t n = onnx__model_proto__get_packed_size(m);
  if (n > 0x7fffffffu) fm_fail("model '%s' is %zu MiB, past protobuf's 2 GiB limit", str(g->name), n >> 20);
}

static void *pack(Graph *g, const FmWriteOpts *o, size_t *size) {
  static const FmWriteOpts def = {0};
  W *w = calloc(1, sizeof *w);
  if (!w) fm_fail("out of memory writing a model");
  w->g = g, w->o = o ? o : &def;
  Onnx__ModelProto *m = fm_alloc(&w->a, sizeof *m);
  *m = (Onnx__ModelProto)ONNX__MODEL_PROTO__INIT;
  FmTry t;
  FM_TRY(&t) {
    build(w, m);
    fm_try_pop(&t);
  } else {
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", fm_errmsg());
    fm_arena_free(&w->a), free(w);
    fm_fail("%s", msg);
  }
  size_t n = onnx__model_proto__get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf) {
    size_t k = onnx__model_proto__pack(m, buf);
    assert(k == n);
    (void)k;
  }
  fm_arena_free(&w->a), free(w);
  if (!buf) fm_fail("out of memory writing a %zu MiB model", n >> 20);
  *size = n;
  return buf;
}

void *fm_onnx_write_mem(Graph *g, const FmWriteOpts *opts, size_t *size) { return pack(g, opts, size); }

void fm_onnx_write(Graph *g, const char *path, const FmWriteOpts *opts) {
  size_t n;
  uint8_t *buf = pack(g, opts, &n);
  char *tmp = malloc(strlen(path) + 16);
  if (!tmp) free(buf), fm_fail("cannot write '%s': out of memory", path);
  sprintf(tmp, "%s.tmpXXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    int e = errno;
    free(buf), free(tmp);
    fm_fail("cannot write '%s': %s", path, strerror(e));
  }
  fm_cleanup_add(tmp);
  mode_t um = umask(0);
  umask(um);
  int ok = fchmod(fd, 0666 & ~um) == 0;
  for (size_t done = 0; ok && done < n;) {
    ssize_t r = write(fd, buf + done, n - done);
    if (r <= 0) ok = 0;
    else done += (size_t)r;
  }
  ok = ok && fsync(fd) == 0;
  int e = errno;
  ok = close(fd) == 0 && ok;
  if (ok && rename(tmp, path) != 0) ok = 0, e = errno;
  if (!ok) unlink(tmp);
  fm_cleanup_forget(tmp);
  free(buf), free(tmp);
  if (!ok) fm_fail("cannot write '%s': %s", path, strerror(e ? e : EIO));
}
