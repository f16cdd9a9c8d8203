/* onnx_load.c - ModelProto -> graph IR: opsets, initialisers, inputs (and the
 * symbolic batch), nodes and attributes, outputs, value_info. Tensor contents are in
 * onnx_tensor.c, model-local functions in onnx_func.c. */
#include "onnx/onnx_internal.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

Tensor ld_absent;

/* ---- name map ---- */
static uint64_t hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

void *nm_get(const NameMap *m, const char *key) {
  if (!m->cap) return NULL;
  for (uint64_t i = hash(key) & (uint64_t)(m->cap - 1);; i = (i + 1) & (uint64_t)(m->cap - 1)) {
    if (!m->keys[i]) return NULL;
    if (!strcmp(m->keys[i], key)) return m->vals[i];
  }
}

void nm_put(NameMap *m, const char *key, void *val) {
  if (2 * (m->n + 1) > m->cap) {
    NameMap old = *m;
    m->cap = old.cap ? old.cap * 2 : 64;
    m->keys = fm_alloc(m->a, sizeof(char *) * (size_t)m->cap);
    m->vals = fm_alloc(m->a, sizeof(void *) * (size_t)m->cap);
    m->n = 0;
    for (int i = 0; i < old.cap; i++)
      if (old.keys[i]) nm_put(m, old.keys[i], old.vals[i]);
  }
  uint64_t i = hash(key) & (uint64_t)(m->cap - 1);
  while (m->keys[i] && strcmp(m->keys[i], key)) i = (i + 1) & (uint64_t)(m->cap - 1);
  if (!m->keys[i]) m->n++;
  m->keys[i] = key, m->vals[i] = val;
}

/* A new tensor "prefix/name" (made unique), for the body of an inlined function. */
Tensor *ld_fresh(Ld *L, const char *prefix, const char *name) {
  const char *s = fm_sprintf(&L->g->arena, "%s/%s", prefix, name);
  for (int k = 1; nm_get(&L->tensors, s); k++) s = fm_sprintf(&L->g->arena, "%s/%s_%d", prefix, name, k);
  Tensor *t = fm_tensor_new(L->g, s);
  nm_put(&L->tensors, t->name, t);
  return t;
}

void ld_count_node(Ld *L) {
  if (++L->nnodes > LD_MAX_NODES) fm_fail("'%s': more than %ld nodes", L->file, LD_MAX_NODES);
  if (L->g->arena.total > L->mem_cap)
    fm_fail("'%s': the graph grows past %zu MiB while loading (functions calling functions?)", L->file,
            L->mem_cap >> 20);
}

static const char *norm_domain(const char *d) { return !d || !strcmp(d, "ai.onnx") ? "" : d; }

int ld_opset(Ld *L, const Scope *sc, const char *domain) {
  if (sc && sc->fn)
    for (size_t i = 0; i < sc->fn->fp->n_opset_import; i++) {
      const Onnx__OperatorSetIdProto *o = sc->fn->fp->opset_import[i];
      if (!strcmp(norm_domain(o->domain), domain)) return (int)o->version;
    }
  for (size_t i = 0; i < L->m->n_opset_import; i++) {
    const Onnx__OperatorSetIdProto *o = L->m->opset_import[i];
    if (!strcmp(norm_domain(o->domain), domain)) return (int)o->version;
  }
  return !*domain ? L->g->opset : !strcmp(domain, "ai.fewmul") ? 1 : 0;
}

/* ---- attributes ---- */
static int attr_type(const Onnx__AttributeProto *a) {
  if (a->has_type && a->type) return a->type;
  /* IR v1 models leave the type out: take it from the field that is set */
  if (a->has_f) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
  if (a->has_i) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
  if (a->has_s) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
  if (a->t) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
  if (a->g) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH;
  if (a->n_floats) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
  if (a->n_ints) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
  if (a->n_strings) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS;
  return 0;
}

static const char *bytes_str(Arena *a, ProtobufCBinaryData b) {
  char *s = fm_alloc(a, b.len + 1);
  if (b.len) memcpy(s, b.data, b.len);
  return s;
}

/* AttributeProto -> Attr; returns 0 for kinds the graph IR has no slot for
   (sparse tensors, tensor/graph/type lists), which no op in ops.def uses. */
int ld_attr(Ld *L, const Onnx__AttributeProto *a, const char *name, const char *where, Attr *out) {
  Arena *ar = &L->g->arena;
  memset(out, 0, sizeof *out);
  out->name = fm_strdup(ar, name);
  switch (attr_type(a)) {
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: out->type = FA_FLOAT, out->f = a->f; return 1;
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: out->type = FA_INT, out->i = a->i; return 1;
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
    out->type = FA_STRING, out->s = bytes_str(ar, a->s);
    return 1;
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: {
    if (!a->t) fm_fail("%s: attribute '%s' has no tensor", where, name);
    Tensor *t = fm_alloc(ar, sizeof *t);
    t->name = fm_sprintf(ar, "%s.%s", where, name);
    t->id = -1;
    ld_tensor(L, a->t, t, fm_sprintf(ar, "%s: attribute '%s'", where, name));
    out->type = FA_TENSOR, out->t = t;
    return 1;
  }
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH:
    out->type = FA_GRAPH; /* subgraph bodies are not loaded: If/Loop/Scan are unsupported ops */
    return 1;
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
    out->type = FA_FLOATS, out->n = (int)a->n_floats;
    out->floats = fm_alloc(ar, sizeof(float) * (a->n_floats + 1));
    if (a->n_floats) memcpy(out->floats, a->floats, sizeof(float) * a->n_floats);
    return 1;
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
    out->type = FA_INTS, out->n = (int)a->n_ints;
    out->ints = fm_alloc(ar, sizeof(int64_t) * (a->n_ints + 1));
    if (a->n_ints) memcpy(out->ints, a->ints, sizeof(int64_t) * a->n_ints);
    return 1;
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS:
    out->type = FA_STRINGS, out->n = (int)a->n_strings;
    out->strings = fm_alloc(ar, sizeof(char *) * (a->n_strings + 1));
    for (size_t i = 0; i < a->n_strings; i++) out->strings[i] = bytes_str(ar, a->strings[i]);
    return 1;
  default: return 0;
  }
}

/* The node's attributes, references to the calling function's attributes resolved. */
static int node_attrs(Ld *L, const Onnx__NodeProto *np, const Scope *sc, const char *where, Attr **out) {
  Attr *at = fm_alloc(&L->g->arena, sizeof(Attr) * (np->n_attribute + 1));
  int k = 0;
  for (size_t i = 0; i < np->n_attribute; i++) {
    const Onnx__AttributeProto *a = np->attribute[i];
    const char *name = S(a->name);
    if (!*name) fm_fail("%s: attribute %zu has no name", where, i);
    const char *ref = S(a->ref_attr_name);
    if (!*ref) {
      k += ld_attr(L, a, name, where, &at[k]);
      continue;
    }
    if (!sc->prefix) fm_fail("%s: attribute '%s' refers to '%s' outside a function", where, name, ref);
    const Attr *c = NULL;
    for (int j = 0; j < sc->ncattrs; j++)
      if (!strcmp(sc->cattrs[j].name, ref)) c = &sc->cattrs[j];
    if (c) {
      at[k] = *c;
      at[k++].name = fm_strdup(&L->g->arena, name);
      continue;
    }
    for (int j = 0; j < sc->fn->ndefaults; j++)
      if (!strcmp(S(sc->fn->defaults[j]->name), ref)) {
        k += ld_attr(L, sc->fn->defaults[j], name, where, &at[k]);
        break;
      }
    /* neither given nor defaulted: the attribute is absent, as ONNX says */
  }
  *out = at;
  return k;
}

/* ---- nodes ---- */
static const char *node_name(Ld *L, const Onnx__NodeProto *np, size_t idx, const Scope *sc) {
  Arena *a = &L->g->arena;
  const char *base = *S(np->name) ? np->name : NULL;
  const char *s;
  if (!sc->prefix && base) s = fm_strdup(a, base); /* the model's own names stay as they are */
  else {
    const char *b = base ? base : fm_sprintf(a, "%s_%zu", np->op_type, idx);
    const char *p = sc->prefix ? fm_sprintf(a, "%s/%s", sc->prefix, b) : b;
    s = p;
    for (int k = 1; nm_get(&L->nodes, s); k++) s = fm_sprintf(a, "%s_%d", p, k);
  }
  nm_put(&L->nodes, s, (void *)1);
  return s;
}

static void declare(Ld *L, Scope *sc, const char *name, const char *nname, const char *op) {
  if (sc->prefix) {
    for (int k = 0; k < sc->nfout; k++)
      if (!strcmp(sc->fouts[k], name)) {
        if (sc->fout_done[k]) break;
        sc->fout_done[k] = 1;
        nm_put(sc->names, name, sc->fout_t[k]);
        return;
      }
    if (nm_get(sc->names, name))
      fm_fail("node '%s' (%s): output '%s' is already defined in function '%s'", nname, op, name,
              S(sc->fn->fp->name));
    nm_put(sc->names, name, ld_fresh(L, sc->prefix, name));
    return;
  }
  if (nm_get(&L->tensors, name))
    fm_fail("node '%s' (%s): output '%s' is already defined (by an input, initialiser or another node)",
            nname, op, name);
  Tensor *t = fm_tensor_new(L->g, name);
  nm_put(&L->tensors, t->name, t);
}

static void make_node(Ld *L, Scope *sc, const Onnx__NodeProto *np, const char *name) {
  Graph *g = L->g;
  const char *dom = norm_domain(np->domain), *op = np->op_type;
  int nin = (int)np->n_input, nout = (int)np->n_output;
  Tensor **ins = fm_alloc(&g->arena, sizeof(Tensor *) * (size_t)(nin + 1));
  Tensor **outs = fm_alloc(&g->arena, sizeof(Tensor *) * (size_t)(nout + 1));
  for (int j = 0; j < nin; j++) {
    const char *s = np->input[j];
    if (!*s) continue;
    Tensor *t = nm_get(sc->names, s);
    if (!t) {
      if (sc->prefix)
        fm_fail("node '%s' (%s): input '%s' is not produced by any node or input of function '%s'",
                name, op, s, S(sc->fn->fp->name));
      fm_fail("node '%s' (%s): input '%s' is not produced by any node, input or initialiser", name, op, s);
    }
    ins[j] = t == &ld_absent ? NULL : t;
  }
  for (int j = 0; j < nout; j++) outs[j] = *np->output[j] ? nm_get(sc->names, np->output[j]) : NULL;
  const char *where = fm_sprintf(&g->arena, "node '%s' (%s)", name, op);
  Attr *attrs;
  int na = node_attrs(L, np, sc, where, &attrs);

  if (!*dom && !strcmp(op, "Constant")) {
    if (nout != 1) fm_fail("%s: must have one output", where);
    if (outs[0]) ld_constant(L, name, np, attrs, na, outs[0]);
    return;
  }
  OpKind k = fm_op_lookup(dom, op);
  int native = !strcmp(dom, "ai.fewmul") && k != OP_UNKNOWN && !L->opts->inline_fewmul;
  LdFunc *f = native ? NULL : ld_find_func(L, dom, op);
  if (f) {
    ld_inline(L, f, name, op, ins, nin, outs, nout, attrs, na);
    return;
  }
  ld_count_node(L);
  Node *n = fm_node_new(g, k, name, nin, nout);
  n->op_type = fm_strdup(&g->arena, op);
  n->domain = fm_strdup(&g->arena, dom);
  n->opset = ld_opset(L, sc, dom);
  memcpy(n->in, ins, sizeof(Tensor *) * (size_t)nin);
  memcpy(n->out, outs, sizeof(Tensor *) * (size_t)nout);
  for (int j = 0; j < nout; j++)
    if (outs[j]) outs[j]->producer = n;
  n->attrs = attrs, n->nattrs = na;
}

/* Outputs first, then nodes: the model may list a consumer before its producer. */
void ld_nodes(Ld *L, Onnx__NodeProto *const *nodes, size_t n, Scope *sc) {
  const char **names = fm_alloc(&L->g->arena, sizeof(char *) * (n + 1));
  for (size_t i = 0; i < n; i++) {
    const Onnx__NodeProto *np = nodes[i];
    if (!*S(np->op_type))
      fm_fail("'%s': node %zu%s%s%s has no op_type", L->file, i, *S(np->name) ? " ('" : "",
              S(np->name), *S(np->name) ? "')" : "");
    names[i] = node_name(L, np, i, sc);
    for (size_t j = 0; j < np->n_output; j++)
      if (*np->output[j]) declare(L, sc, np->output[j], names[i], np->op_type);
  }
  for (size_t i = 0; i < n; i++) make_node(L, sc, nodes[i], names[i]);
}

/* ---- types, inputs and the symbolic batch ---- */
/* The declared type; for anything but a graph input (what == NULL) an unsupported
   type is left for the passes to report with the ops that produce it. */
static const Onnx__TensorShapeProto *tensor_type(Ld *L, const Onnx__ValueInfoProto *vi, const char *what,
                                                 FmDType *dt) {
  const Onnx__TypeProto *tp = vi->type;
  *dt = FM_UNDEF;
  if (!tp) return NULL;
  if (!what) {
    if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type) return NULL;
    int et = tp->tensor_type->elem_type;
    const Onnx__TensorShapeProto *sh = tp->tensor_type->shape;
    if (et == FM_STRING || (et && !fm_dtype_size((FmDType)et)) || (sh && sh->n_dim > FM_MAXRANK)) return NULL;
  }
  if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
    fm_fail("'%s': %s '%s' is not a tensor (sequence, map, optional and sparse types are unsupported)",
            L->file, what, S(vi->name));
  int et = tp->tensor_type->elem_type;
  if (et == FM_STRING) fm_fail("'%s': %s '%s' holds strings, which are unsupported", L->file, what, vi->name);
  if (et && !fm_dtype_size((FmDType)et))
    fm_fail("'%s': %s '%s' has unsupported element type %d", L->file, what, vi->name, et);
  *dt = (FmDType)et;
  const Onnx__TensorShapeProto *sh = tp->tensor_type->shape;
  if (sh && sh->n_dim > FM_MAXRANK)
    fm_fail("'%s': %s '%s' has rank %zu, more than %d", L->file, what, vi->name, sh->n_dim, FM_MAXRANK);
  return sh;
}

static const FmShapeOverride *find_override(Ld *L, const char *name) {
  for (int i = 0; i < L->opts->nshapes; i++)
    if (!strcmp(S(L->opts->shapes[i].name), name)) return &L->opts->shapes[i];
  return NULL;
}

static const char *shape_hint(Ld *L, const Onnx__TensorShapeProto *sh) {
  char buf[512];
  int k = 0;
  for (size_t i = 0; i < sh->n_dim && k < 400; i++) {
    const Onnx__TensorShapeProto__Dimension *d = sh->dim[i];
    if (i) buf[k++] = 'x';
    if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
      k += snprintf(buf + k, sizeof buf - (size_t)k, "%lld", (long long)d->dim_value);
    else if (i == 0) k += snprintf(buf + k, sizeof buf - (size_t)k, "1");
    else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && *S(d->dim_param))
      k += snprintf(buf + k, sizeof buf - (size_t)k, "<%.40s>", d->dim_param);
    else k += snprintf(buf + k, sizeof buf - (size_t)k, "<%zu>", i);
  }
  buf[k] = 0;
  return fm_strdup(&L->g->arena, buf);
}

static void load_input(Ld *L, const Onnx__ValueInfoProto *vi, Tensor *t) {
  FmDType dt;
  const Onnx__TensorShapeProto *sh = tensor_type(L, vi, "input", &dt);
  const char *name = t->name;
  t->dtype = dt;
  const FmShapeOverride *o = find_override(L, name);
  if (o) {
    if (o->rank < 0 || o->rank > FM_MAXRANK) fm_fail("--shape %s: bad rank %d", name, o->rank);
    if (sh && (int)sh->n_dim != o->rank)
      fm_fail("--shape %s: gives %d dimensions, but the model declares %zu", name, o->rank, sh->n_dim);
    for (int i = 0; i < o->rank; i++) {
      const Onnx__TensorShapeProto__Dimension *d = sh ? sh->dim[i] : NULL;
      if (o->dims[i] < 0) fm_fail("--shape %s: dimension %d is negative", name, i);
      if (d && d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && d->dim_value != o->dims[i])
        fm_fail("--shape %s: axis %d is %lld, but the model says %lld", name, i, (long long)o->dims[i],
                (long long)d->dim_value);
      t->dims[i] = o->dims[i];
    }
    t->rank = o->rank;
    return;
  }
  if (!sh) fm_fail("input '%s' has no shape: give it with --shape %s=...", name, name);
  t->rank = (int)sh->n_dim;
  for (int i = 0; i < t->rank; i++) {
    const Onnx__TensorShapeProto__Dimension *d = sh->dim[i];
    if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
      if (d->dim_value < 0) fm_fail("input '%s' has negative dimension %lld at axis %d", name, (long long)d->dim_value, i);
      t->dims[i] = d->dim_value;
      continue;
    }
    const char *p = d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM ? S(d->dim_param) : "";
    if (i == 0 && *p && L->batch_named && strcmp(p, L->g->batch_name))
      fm_fail("input '%s' has unknown dimension '%s' at axis 0 (the batch is already '%s'): give it with "
              "--shape %s=%s", name, p, L->g->batch_name, name, shape_hint(L, sh));
    if (i != 0)
      fm_fail("input '%s' has unknown dimension '%s' at axis %d: give it with --shape %s=%s", name,
              *p ? p : "?", i, name, shape_hint(L, sh));
    if (*p && !L->batch_named) L->g->batch_name = fm_strdup(&L->g->arena, p), L->batch_named = 1;
    t->dims[0] = -1;
    L->batch_sym = 1;
  }
}

/* value_info and graph outputs: informative; kept only when every dim is known. */
static void load_info(Ld *L, const Onnx__ValueInfoProto *vi, Tensor *t) {
  if (t->data || t->is_input) return;
  FmDType dt;
  const Onnx__TensorShapeProto *sh = tensor_type(L, vi, NULL, &dt);
  if (dt) t->dtype = dt;
  if (!sh) return;
  int64_t dims[FM_MAXRANK];
  for (size_t i = 0; i < sh->n_dim; i++) {
    const Onnx__TensorShapeProto__Dimension *d = sh->dim[i];
    if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && d->dim_value >= 0) {
      dims[i] = d->dim_value;
      continue;
    }
    const char *p = d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM ? S(d->dim_param) : "";
    const char *bn = L->g->batch_name;
    size_t bl = strlen(bn);
    long long k = 1;
    char *end = (char *)p;
    if (*p >= '1' && *p <= '9') k = strtoll(p, &end, 10), end += *end == '*'; /* "2*N" as the writer puts it */
    if (!L->batch_sym || !L->batch_named || strncmp(end, bn, bl) || end[bl] || k < 1 || k > (1 << 20)) return;
    dims[i] = -k;
  }
  t->rank = (int)sh->n_dim;
  memcpy(t->dims, dims, sizeof(int64_t) * sh->n_dim);
}

/* ONNX requires sorted nodes, but some exporters do not sort. Kahn's algorithm in
   linear time (a model may inline to a great many nodes); the same order as
   fm_graph_toposort. */
static void toposort(Ld *L) {
  Graph *g = L->g;
  int n = g->nnodes, sorted = 1;
  for (int i = 0; i < n; i++) g->nodes[i]->id = i;
  size_t ne = 0;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < g->nodes[i]->nin; j++) {
      Tensor *t = g->nodes[i]->in[j];
      if (t && t->producer) ne++, sorted &= t->producer->id < i;
    }
  if (sorted) return;
  Arena *a = &g->arena;
  int *indeg = fm_alloc(a, sizeof(int) * (size_t)(n + 1)), *start = fm_alloc(a, sizeof(int) * (size_t)(n + 2));
  int *adj = fm_alloc(a, sizeof(int) * (ne + 1)), *fill = fm_alloc(a, sizeof(int) * (size_t)(n + 1));
  Node **order = fm_alloc(a, sizeof(Node *) * (size_t)(n + 1));
  for (int i = 0; i < n; i++)
    for (int j = 0; j < g->nodes[i]->nin; j++) {
      Tensor *t = g->nodes[i]->in[j];
      if (t && t->producer) indeg[i]++, start[t->producer->id + 1]++;
    }
  for (int i = 0; i < n; i++) start[i + 1] += start[i];
  for (int i = 0; i < n; i++)
    for (int j = 0; j < g->nodes[i]->nin; j++) {
      Tensor *t = g->nodes[i]->in[j];
      if (t && t->producer) {
        int p = t->producer->id;
        adj[start[p] + fill[p]++] = i;
      }
    }
  int head = 0, tail = 0;
  for (int i = 0; i < n; i++)
    if (!indeg[i]) order[tail++] = g->nodes[i];
  while (head < tail) {
    int p = order[head++]->id;
    for (int k = start[p]; k < start[p + 1]; k++)
      if (--indeg[adj[k]] == 0) order[tail++] = g->nodes[adj[k]];
  }
  if (tail != n) {
    for (int i = 0; i < n; i++)
      if (indeg[i]) fm_fail("'%s': the graph has a cycle (at node '%s')", L->file, g->nodes[i]->name);
  }
  memcpy(g->nodes, order, sizeof(Node *) * (size_t)n);
  for (int i = 0; i < n; i++) g->nodes[i]->id = i;
}

/* Every --shape must name a runtime input: checked first, as a typo there
   explains the errors that would follow. */
static void check_overrides(Ld *L, const Onnx__GraphProto *gp) {
  for (int i = 0; i < L->opts->nshapes; i++) {
    const char *name = S(L->opts->shapes[i].name);
    int found = 0;
    for (size_t j = 0; j < gp->n_input && !found; j++) found = !strcmp(S(gp->input[j]->name), name);
    Tensor *t = nm_get(&L->tensors, name);
    if (found && t && t->data) fm_fail("--shape %s: '%s' is an initialiser (a constant), not an input", name, name);
    if (found) continue;
    char list[512] = "";
    int k = 0;
    for (size_t j = 0; j < gp->n_input && k < 400; j++) {
      Tensor *c = nm_get(&L->tensors, S(gp->input[j]->name));
      if (!c || !c->data) k += snprintf(list + k, sizeof list - (size_t)k, "%s%s", k ? ", " : "", S(gp->input[j]->name));
    }
    fm_fail("--shape names '%s', which is not an input of the model (inputs: %s)", name, *list ? list : "none");
  }
}

/* ---- the model ---- */
static void load_model(Ld *L, const uint8_t *buf, size_t n) {
  Graph *g = L->g;
  Arena *a = &g->arena;
  if (!ld_pb_nesting_ok(buf, n) || !(L->m = onnx__model_proto__unpack(NULL, n, buf)))
    fm_fail("'%s' is not a valid ONNX model (protobuf parse failed)", L->file);
  const Onnx__ModelProto *m = L->m;
  const Onnx__GraphProto *gp = m->graph;
  if (!gp) fm_fail("'%s' is not a valid ONNX model (it has no graph)", L->file);
  g->ir_version = (int)m->ir_version;
  g->producer = fm_strdup(a, S(m->producer_name));
  g->name = fm_strdup(a, S(gp->name));
  for (size_t i = 0; i < m->n_opset_import; i++)
    if (!*norm_domain(m->opset_import[i]->domain)) {
      int64_t v = m->opset_import[i]->version;
      if (v < 1 || v > 1000) fm_fail("'%s': bad ai.onnx opset version %lld", L->file, (long long)v);
      g->opset = (int)v;
    }
  L->tensors.a = L->nodes.a = a;
  ld_funcs_init(L);

  if (gp->n_sparse_initializer)
    fm_fail("'%s': sparse initialiser '%s' is unsupported", L->file,
            gp->sparse_initializer[0]->values ? S(gp->sparse_initializer[0]->values->name) : "?");
  for (size_t i = 0; i < gp->n_initializer; i++) {
    const Onnx__TensorProto *tp = gp->initializer[i];
    const char *name = S(tp->name);
    if (!*name) fm_fail("'%s': initialiser %zu has no name", L->file, i);
    if (nm_get(&L->tensors, name)) fm_fail("'%s': initialiser '%s' is defined twice", L->file, name);
    Tensor *t = fm_tensor_new(g, name);
    nm_put(&L->tensors, t->name, t);
    ld_tensor(L, tp, t, fm_sprintf(a, "initialiser '%s'", name));
  }
  check_overrides(L, gp);
  g->inputs = fm_alloc(a, sizeof(Tensor *) * (gp->n_input + 1));
  for (size_t i = 0; i < gp->n_input; i++) {
    const Onnx__ValueInfoProto *vi = gp->input[i];
    const char *name = S(vi->name);
    if (!*name) fm_fail("'%s': graph input %zu has no name", L->file, i);
    Tensor *t = nm_get(&L->tensors, name);
    if (t && t->data) continue; /* an initialiser listed as an input is a constant */
    if (t) fm_fail("'%s': graph input '%s' is listed twice", L->file, name);
    t = fm_tensor_new(g, name);
    nm_put(&L->tensors, t->name, t);
    t->is_input = 1;
    load_input(L, vi, t);
    g->inputs[g->ninputs++] = t;
  }
  L->mem_cap = g->arena.total + ((size_t)256 << 20) + 64 * n;
  Scope sc = {.names = &L->tensors};
  ld_nodes(L, gp->node, gp->n_node, &sc);

  g->outputs = fm_alloc(a, sizeof(Tensor *) * (gp->n_output + 1));
  for (size_t i = 0; i < gp->n_output; i++) {
    const char *name = S(gp->output[i]->name);
    Tensor *t = nm_get(&L->tensors, name);
    if (!t) fm_fail("graph output '%s' is not produced by any node, input or initialiser", name);
    if (t->is_output) fm_fail("'%s': graph output '%s' is listed twice", L->file, name);
    t->is_output = 1;
    load_info(L, gp->output[i], t);
    g->outputs[g->noutputs++] = t;
  }
  for (size_t i = 0; i < gp->n_value_info; i++) {
    Tensor *t = nm_get(&L->tensors, S(gp->value_info[i]->name));
    if (t) load_info(L, gp->value_info[i], t);
  }
  toposort(L);
}

static Graph *load(const void *buf, size_t n, const char *name, void *owned, const FmLoadOpts *opts) {
  FmLoadOpts def = {0};
  Ld *L = calloc(1, sizeof *L);
  if (!L) fm_fail("out of memory loading '%s'", name);
  L->opts = opts ? opts : &def;
  L->file = name;
  if (!L->opts->no_external_data) {
    const char *sl = strrchr(name, '/');
    L->dir = sl ? strndup(name, sl == name ? 1 : (size_t)(sl - name)) : strdup(".");
  }
  L->g = fm_graph_new();
  FmTry t;
  FM_TRY(&t) {
    load_model(L, buf, n);
    fm_try_pop(&t);
  } else {
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", fm_errmsg());
    ld_funcs_free(L);
    if (L->m) onnx__model_proto__free_unpacked(L->m, NULL);
    fm_graph_free(L->g);
    free((void *)L->dir), free(L), free(owned);
    fm_fail("%s", msg);
  }
  Graph *g = L->g;
  ld_funcs_free(L);
  onnx__model_proto__free_unpacked(L->m, NULL);
  free((void *)L->dir), free(L), free(owned);
  return g;
}

Graph *fm_onnx_load_mem(const void *buf, size_t n, const char *name_for_errors, const FmLoadOpts *opts) {
  return load(buf, n, name_for_errors ? name_for_errors : "<memory>", NULL, opts);
}

Graph *fm_onnx_load(const char *path, const FmLoadOpts *opts) {
  FILE *f = fopen(path, "rb");
  if (!f) fm_fail("cannot open '%s': %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    int e = S_ISDIR(st.st_mode) ? EISDIR : errno;
    fclose(f);
    fm_fail("cannot read '%s': %s", path, strerror(e ? e : EINVAL));
  }
  size_t n = (size_t)st.st_size;
  void *buf = malloc(n ? n : 1);
  if (!buf) {
    fclose(f);
    fm_fail("cannot read '%s': out of memory", path);
  }
  if (fread(buf, 1, n, f) != n) {
    int e = errno;
    fclose(f), free(buf);
    fm_fail("cannot read '%s': %s", path, strerror(e ? e : EIO));
  }
  fclose(f);
  return load(buf, n, path, buf, opts);
}

void fm_shape_override_parse(Arena *a, const char *spec, FmShapeOverride *o) {
  const char *eq = strrchr(spec, '=');
  memset(o, 0, sizeof *o);
  if (!eq || eq == spec) fm_fail("--shape '%s': expected NAME=DIMS, e.g. x=1x3x32x32", spec);
  char *name = fm_alloc(a, (size_t)(eq - spec) + 1);
  memcpy(name, spec, (size_t)(eq - spec));
  o->name = name;
  const char *p = eq + 1;
  if (!*p) return; /* a scalar */
  for (;;) {
    char *end;
    if (*p < '0' || *p > '9') fm_fail("--shape '%s': '%s' is not a dimension", spec, p);
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (errno || v < 0) fm_fail("--shape '%s': dimension out of range", spec);
    if (o->rank == FM_MAXRANK) fm_fail("--shape '%s': more than %d dimensions", spec, FM_MAXRANK);
    o->dims[o->rank++] = v;
    if (!*end) return;
    if (*end != 'x' && *end != 'X' && *end != ',') fm_fail("--shape '%s': unexpected '%c'", spec, *end);
    p = end + 1;
  }
}
