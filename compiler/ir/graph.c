/* graph.c - tensors, nodes and graphs of the graph IR. */
#include "ir/ir.h"
#include <assert.h>
#include <stdlib.h>
#include <string.h>

size_t fm_dtype_size(FmDType t) {
  switch (t) {
  case FM_F32: case FM_I32: case FM_U32: return 4;
  case FM_U8: case FM_I8: case FM_BOOL: return 1;
  case FM_U16: case FM_I16: case FM_F16: return 2;
  case FM_I64: case FM_U64: case FM_F64: return 8;
  default: return 0;
  }
}

const char *fm_dtype_name(FmDType t) {
  static const char *n[] = {"undefined", "float32", "uint8", "int8", "uint16", "int16", "int32",
                            "int64", "string", "bool", "float16", "float64", "uint32", "uint64"};
  return (unsigned)t < sizeof n / sizeof *n ? n[t] : "unknown";
}

const char *fm_dtype_ctype(FmDType t) {
  switch (t) {
  case FM_F32: return "float";
  case FM_F64: return "double";
  case FM_U8: case FM_BOOL: return "uint8_t";
  case FM_I8: return "int8_t";
  case FM_U16: case FM_F16: return "uint16_t";
  case FM_I16: return "int16_t";
  case FM_I32: return "int32_t";
  case FM_U32: return "uint32_t";
  case FM_I64: return "int64_t";
  case FM_U64: return "uint64_t";
  default: return "void";
  }
}

static const char *tname(const Tensor *t) { return t->name ? t->name : "?"; }

int64_t fm_numel(const Tensor *t) {
  if (t->rank < 0) return -1;
  int64_t n = 1;
  for (int i = 0; i < t->rank; i++) {
    if (t->dims[i] < 0) return -1;
    if (t->dims[i] == 0) n = 0; /* an empty tensor, whatever its other dims */
  }
  for (int i = 0; i < t->rank && n; i++)
    if (!fm_mul_ok(n, t->dims[i], &n))
      fm_fail("tensor '%s': element count overflows int64", tname(t));
  return n;
}

size_t fm_nbytes(const Tensor *t) {
  int64_t n = fm_numel(t), b;
  if (n < 0) return 0;
  if (!fm_mul_ok(n, (int64_t)fm_dtype_size(t->dtype), &b) || (uint64_t)b > SIZE_MAX)
    fm_fail("tensor '%s': byte size overflows", tname(t));
  return (size_t)b;
}

int64_t fm_check_size(const Tensor *t) {
  if (t->rank < 0) return -1;
  int64_t n = 1, es = (int64_t)(fm_dtype_size(t->dtype) ? fm_dtype_size(t->dtype) : 1);
  int zero = 0;
  for (int i = 0; i < t->rank; i++) {
    if (t->dims[i] == FM_DIM_UNKNOWN) return -1;
    zero |= t->dims[i] == 0;
  }
  if (zero) return 0;
  for (int i = 0; i < t->rank; i++) {
    int64_t d = t->dims[i] < 0 ? -t->dims[i] : t->dims[i]; /* k*N counts k per unit of N */
    if (!fm_mul_ok(n, d, &n) || n > FM_MAX_TENSOR_BYTES / es) {
      Arena a = {0};
      char shape[160];
      snprintf(shape, sizeof shape, "%s", fm_shape_str(&a, t));
      fm_arena_free(&a);
      fm_fail("tensor '%s': shape %s is too large (more than 2^40 bytes%s)", tname(t), shape,
              fm_has_sym(t) ? " per unit of the batch N" : "");
    }
  }
  return n * es;
}

int fm_shape_known(const Tensor *t) {
  if (t->rank < 0) return 0;
  for (int i = 0; i < t->rank; i++)
    if (t->dims[i] == FM_DIM_UNKNOWN) return 0;
  return 1;
}

int fm_has_sym(const Tensor *t) {
  for (int i = 0; i < t->rank; i++)
    if (fm_dim_sym(t->dims[i])) return 1;
  return 0;
}

const char *fm_shape_str(Arena *a, const Tensor *t) {
  if (t->rank < 0) return "?";
  if (t->rank == 0) return "scalar";
  char buf[256];
  int k = 0;
  for (int i = 0; i < t->rank && k < 200; i++) {
    int64_t d = t->dims[i];
    if (i) buf[k++] = 'x';
    if (d == FM_DIM_UNKNOWN) k += snprintf(buf + k, sizeof buf - k, "?");
    else if (d == -1) k += snprintf(buf + k, sizeof buf - k, "N");
    else if (d < 0) k += snprintf(buf + k, sizeof buf - k, "%lldN", (long long)-d);
    else k += snprintf(buf + k, sizeof buf - k, "%lld", (long long)d);
  }
  buf[k] = 0;
  return fm_strdup(a, buf);
}

Attr *fm_attr(const Node *n, const char *name) {
  for (int i = 0; i < n->nattrs; i++)
    if (!strcmp(n->attrs[i].name, name)) return &n->attrs[i];
  return NULL;
}

int64_t fm_attr_i(const Node *n, const char *name, int64_t def) {
  Attr *a = fm_attr(n, name);
  if (!a) return def;
  if (a->type == FA_INT) return a->i;
  if (a->type == FA_FLOAT) return (int64_t)a->f;
  fm_fail("node '%s' (%s): attribute '%s' must be an int", n->name, n->op_type, name);
}

float fm_attr_f(const Node *n, const char *name, float def) {
  Attr *a = fm_attr(n, name);
  if (!a) return def;
  if (a->type == FA_FLOAT) return a->f;
  if (a->type == FA_INT) return (float)a->i;
  fm_fail("node '%s' (%s): attribute '%s' must be a float", n->name, n->op_type, name);
}

const char *fm_attr_s(const Node *n, const char *name, const char *def) {
  Attr *a = fm_attr(n, name);
  if (!a) return def;
  if (a->type == FA_STRING) return a->s;
  fm_fail("node '%s' (%s): attribute '%s' must be a string", n->name, n->op_type, name);
}

int fm_attr_ints(const Node *n, const char *name, int64_t *out, int max) {
  Attr *a = fm_attr(n, name);
  if (!a) return -1;
  if (a->type == FA_INT) {
    if (max > 0) out[0] = a->i;
    return 1;
  }
  if (a->type != FA_INTS)
    fm_fail("node '%s' (%s): attribute '%s' must be a list of ints", n->name, n->op_type, name);
  if (a->n > max)
    fm_fail("node '%s' (%s): attribute '%s' has %d values, at most %d supported", n->name,
            n->op_type, name, a->n, max);
  memcpy(out, a->ints, sizeof(int64_t) * (size_t)a->n);
  return a->n;
}

Attr *fm_attr_add(Graph *g, Node *n, const char *name, AttrType type) {
  Attr *a = fm_alloc(&g->arena, sizeof(Attr) * (size_t)(n->nattrs + 1));
  if (n->nattrs) memcpy(a, n->attrs, sizeof(Attr) * (size_t)n->nattrs);
  n->attrs = a;
  Attr *r = &a[n->nattrs++];
  r->name = fm_strdup(&g->arena, name);
  r->type = type;
  return r;
}

void fm_set_attr_i(Graph *g, Node *n, const char *name, int64_t v) { fm_attr_add(g, n, name, FA_INT)->i = v; }
void fm_set_attr_f(Graph *g, Node *n, const char *name, float v) { fm_attr_add(g, n, name, FA_FLOAT)->f = v; }
void fm_set_attr_s(Graph *g, Node *n, const char *name, const char *v) {
  fm_attr_add(g, n, name, FA_STRING)->s = fm_strdup(&g->arena, v);
}

void fm_set_attr_ints(Graph *g, Node *n, const char *name, int k, const int64_t *v) {
  Attr *a = fm_attr_add(g, n, name, FA_INTS);
  a->ints = fm_alloc(&g->arena, sizeof(int64_t) * (size_t)(k ? k : 1));
  if (k) memcpy(a->ints, v, sizeof(int64_t) * (size_t)k);
  a->n = k;
}

void fm_set_attr_floats(Graph *g, Node *n, const char *name, int k, const float *v) {
  Attr *a = fm_attr_add(g, n, name, FA_FLOATS);
  a->floats = fm_alloc(&g->arena, sizeof(float) * (size_t)(k ? k : 1));
  if (k) memcpy(a->floats, v, sizeof(float) * (size_t)k);
  a->n = k;
}

Graph *fm_graph_new(void) {
  Arena a = {0};
  Graph *g = fm_alloc(&a, sizeof *g);
  g->arena = a;
  g->opset = 13;
  g->batch_name = "N";
  return g;
}

void fm_graph_free(Graph *g) {
  if (!g) return;
  Arena a = g->arena; /* g lives in its own arena */
  fm_arena_free(&a);
}

static void grow(Arena *a, void **arr, int *cap, int n, size_t elt) {
  if (n < *cap) return;
  int nc = *cap ? *cap * 2 : 16;
  void *p = fm_alloc(a, elt * (size_t)nc);
  if (*arr) memcpy(p, *arr, elt * (size_t)*cap);
  *arr = p, *cap = nc;
}

Tensor *fm_tensor_find(Graph *g, const char *name) {
  /* linear scan with a small hash cache */
  for (int i = g->ntensors - 1; i >= 0; i--)
    if (!strcmp(g->tensors[i]->name, name)) return g->tensors[i];
  return NULL;
}

Tensor *fm_tensor_new(Graph *g, const char *name) {
  grow(&g->arena, (void **)&g->tensors, &g->captensors, g->ntensors, sizeof(Tensor *));
  Tensor *t = fm_alloc(&g->arena, sizeof *t);
  t->name = name ? fm_strdup(&g->arena, name) : fm_sprintf(&g->arena, "_t%d", g->ntensors);
  t->rank = -1;
  t->id = g->ntensors;
  g->tensors[g->ntensors++] = t;
  return t;
}

Tensor *fm_tensor_const(Graph *g, const char *name, FmDType dt, int rank, const int64_t *dims,
                        const void *data) {
  char buf[64];
  if (!name) {
    snprintf(buf, sizeof buf, "_const%d", g->ntensors);
    name = buf;
  }
  Tensor *t = fm_tensor_new(g, name);
  t->dtype = dt;
  t->rank = rank;
  for (int i = 0; i < rank; i++) t->dims[i] = dims[i];
  size_t nb = fm_nbytes(t);
  t->data = fm_alloc(&g->arena, nb ? nb : 1);
  if (data && nb) memcpy(t->data, data, nb);
  return t;
}

Node *fm_node_new(Graph *g, OpKind op, const char *name, int nin, int nout) {
  grow(&g->arena, (void **)&g->nodes, &g->capnodes, g->nnodes, sizeof(Node *));
  Node *n = fm_alloc(&g->arena, sizeof *n);
  n->op = op;
  n->op_type = fm_op_names[op];
  n->domain = "";
  n->opset = g->opset;
  n->name = name ? fm_strdup(&g->arena, name) : fm_sprintf(&g->arena, "%s_%d", n->op_type, g->nnodes);
  n->nin = nin, n->nout = nout;
  n->in = fm_alloc(&g->arena, sizeof(Tensor *) * (size_t)(nin ? nin : 1));
  n->out = fm_alloc(&g->arena, sizeof(Tensor *) * (size_t)(nout ? nout : 1));
  n->id = g->nnodes;
  g->nodes[g->nnodes++] = n;
  return n;
}

/* Kahn's algorithm over producer links. */
void fm_graph_toposort(Graph *g) {
  int n = g->nnodes;
  int *indeg = calloc((size_t)n + 1, sizeof(int));
  Node **order = calloc((size_t)n + 1, sizeof(Node *));
  for (int i = 0; i < n; i++) g->nodes[i]->id = i;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < g->nodes[i]->nin; j++) {
      Tensor *t = g->nodes[i]->in[j];
      if (t && t->producer && !t->producer->dead) indeg[i]++;
    }
  int head = 0, tail = 0;
  for (int i = 0; i < n; i++)
    if (!indeg[i]) order[tail++] = g->nodes[i];
  while (head < tail) {
    Node *p = order[head++];
    for (int i = 0; i < n; i++) {
      Node *c = g->nodes[i];
      for (int j = 0; j < c->nin; j++)
        if (c->in[j] && c->in[j]->producer == p && --indeg[i] == 0) order[tail++] = c;
    }
  }
  if (tail != n) {
    const char *bad = "?";
    for (int i = 0; i < n; i++)
      if (indeg[i]) { bad = g->nodes[i]->name; break; }
    free(indeg), free(order);
    fm_fail("graph has a cycle (at node '%s')", bad);
  }
  memcpy(g->nodes, order, sizeof(Node *) * (size_t)n);
  for (int i = 0; i < n; i++) g->nodes[i]->id = i;
  free(indeg), free(order);
}

void fm_graph_compact(Graph *g) {
  int k = 0;
  for (int i = 0; i < g->nnodes; i++)
    if (!g->nodes[i]->dead) g->nodes[k] = g->nodes[i], g->nodes[k]->id = k, k++;
  g->nnodes = k;
}

int fm_tensor_uses(Graph *g, const Tensor *t) {
  int u = 0;
  for (int i = 0; i < g->nnodes; i++) {
    Node *n = g->nodes[i];
    if (n->dead) continue;
    for (int j = 0; j < n->nin; j++) u += n->in[j] == t;
  }
  for (int i = 0; i < g->noutputs; i++) u += g->outputs[i] == t;
  return u;
}

void fm_replace_uses(Graph *g, Tensor *from, Tensor *to) {
  for (int i = 0; i < g->nnodes; i++) {
    Node *n = g->nodes[i];
    for (int j = 0; j < n->nin; j++)
      if (n->in[j] == from) n->in[j] = to;
  }
}

void fm_graph_verify(Graph *g) {
  for (int i = 0; i < g->nnodes; i++) {
    Node *n = g->nodes[i];
    assert(n->op >= 0 && n->op < OP_COUNT);
    for (int j = 0; j < n->nout; j++)
      assert(!n->out[j] || n->out[j]->producer == n || n->dead);
    for (int j = 0; j < n->nin; j++) {
      Tensor *t = n->in[j];
      if (t && t->producer) assert(t->producer->id < n->id && !t->producer->dead);
    }
  }
}

void fm_graph_dump(Graph *g, FILE *f) {
  Arena a = {0};
  fprintf(f, "graph %s (opset %d)\n", g->name ? g->name : "", g->opset);
  for (int i = 0; i < g->ninputs; i++) {
    Tensor *t = g->inputs[i];
    fprintf(f, "  input %s: %s[%s]\n", t->name, fm_dtype_name(t->dtype), fm_shape_str(&a, t));
  }
  for (int i = 0; i < g->nnodes; i++) {
    Node *n = g->nodes[i];
    if (n->dead) continue;
    fprintf(f, "  ");
    for (int j = 0; j < n->nout; j++) {
      Tensor *t = n->out[j];
      if (!t) continue;
      fprintf(f, "%s%s: %s[%s]", j ? ", " : "", t->name, fm_dtype_name(t->dtype), fm_shape_str(&a, t));
    }
    fprintf(f, " = %s%s%s(", n->domain && *n->domain ? n->domain : "",
            n->domain && *n->domain ? "." : "", fm_op_names[n->op]);
    for (int j = 0; j < n->nin; j++)
      fprintf(f, "%s%s%s", j ? ", " : "", n->in[j] ? n->in[j]->name : "<none>",
              n->in[j] && n->in[j]->data ? "(const)" : "");
    fprintf(f, ")");
    if (n->fused_act) fprintf(f, " +%s", fm_op_names[n->fused_act]);
    fprintf(f, "  # %s\n", n->name);
  }
  for (int i = 0; i < g->noutputs; i++) {
    Tensor *t = g->outputs[i];
    fprintf(f, "  output %s: %s[%s]\n", t->name, fm_dtype_name(t->dtype), fm_shape_str(&a, t));
  }
  fm_arena_free(&a);
}
