/* shape.c - ops that make or reinterpret shapes: Reshape, Flatten, Squeeze, Unsqueeze,
 * Shape, Size, Constant, ConstantOfShape, Range, EyeLike; and the compile-time values
 * of small integer tensors (ops.h: fm_values, fm_set_values, fm_fold_elems) through
 * which shape arithmetic on a symbolic batch resolves during inference.
 *
 * A size that involves the batch is c * N^p; a dim can hold p = 0 (c) or p = 1 (-c).
 */
#include "ops/ops.h"
#include <assert.h>
#include <math.h>
#include <string.h>

/* ---- compile-time values ---- */

static int is_intlike(FmDType t) {
  switch (t) {
  case FM_U8: case FM_I8: case FM_U16: case FM_I16: case FM_I32: case FM_I64: case FM_BOOL:
  case FM_U32: case FM_U64: return 1;
  default: return 0;
  }
}

static void put_num(void *p, FmDType t, int64_t k, double v) {
  switch (t) {
  case FM_F32: ((float *)p)[k] = (float)v; break;
  case FM_F64: ((double *)p)[k] = v; break;
  case FM_I64: ((int64_t *)p)[k] = (int64_t)v; break;
  case FM_I32: ((int32_t *)p)[k] = (int32_t)v; break;
  case FM_I16: ((int16_t *)p)[k] = (int16_t)v; break;
  case FM_I8: ((int8_t *)p)[k] = (int8_t)v; break;
  case FM_U8: ((uint8_t *)p)[k] = (uint8_t)v; break;
  case FM_BOOL: ((uint8_t *)p)[k] = v != 0; break;
  case FM_U16: ((uint16_t *)p)[k] = (uint16_t)v; break;
  case FM_U32: ((uint32_t *)p)[k] = (uint32_t)v; break;
  case FM_U64: ((uint64_t *)p)[k] = (uint64_t)v; break;
  default: assert(!"put_num: unsupported dtype");
  }
}

/* Integer stores go through int64 so that large values keep every bit. */
static void put_int(void *p, FmDType t, int64_t k, int64_t v) {
  switch (t) {
  case FM_I64: ((int64_t *)p)[k] = v; break;
  case FM_U64: ((uint64_t *)p)[k] = (uint64_t)v; break;
  case FM_I32: ((int32_t *)p)[k] = (int32_t)v; break;
  case FM_U32: ((uint32_t *)p)[k] = (uint32_t)v; break;
  default: put_num(p, t, k, (double)v);
  }
}

static int64_t to_sym(int64_t v) {
  if (v >= 0) return v;
  if (v < -((INT64_C(1) << 62) - 1)) v = -((INT64_C(1) << 62) - 1); /* "-infinity" markers */
  return FM_SYM_LIT(v);
}

static int64_t from_sym(int64_t v) { return fm_sym_is_lit(v) ? fm_sym_lit_value(v) : v; }

const int64_t *fm_values(Graph *g, const Tensor *t) {
  if (!is_intlike(t->dtype) || (!t->data && !t->symval)) return NULL;
  int64_t m = fm_numel(t);
  if (m < 0 || m > FM_FOLD_MAX) return NULL;
  int64_t *v = fm_alloc(&g->arena, sizeof(int64_t) * (size_t)(m ? m : 1));
  for (int64_t k = 0; k < m; k++) v[k] = t->data ? to_sym(fm_const_int(t, k)) : t->symval[k];
  return v;
}

void fm_set_values(Graph *g, Tensor *t, const int64_t *vals) {
  int64_t m = fm_numel(t);
  assert(m >= 0);
  int sym = 0;
  for (int64_t k = 0; k < m; k++) {
    if (vals[k] == FM_DIM_UNKNOWN) return;
    if (fm_dim_sym(vals[k]) && !fm_sym_is_lit(vals[k])) sym = 1;
  }
  if (sym) {
    if (!is_intlike(t->dtype)) return;
    t->symval = fm_alloc(&g->arena, sizeof(int64_t) * (size_t)(m ? m : 1));
    memcpy(t->symval, vals, sizeof(int64_t) * (size_t)m);
    return;
  }
  size_t sz = fm_dtype_size(t->dtype);
  if (!sz) return;
  void *d = fm_alloc(&g->arena, sz * (size_t)(m ? m : 1));
  for (int64_t k = 0; k < m; k++) put_int(d, t->dtype, k, from_sym(vals[k]));
  t->data = d;
  t->symval = NULL;
}

void fm_fold_elems(Graph *g, Node *n, int oi, const int *src, const int64_t *idx) {
  Tensor *out = n->out[oi];
  if (!out) return;
  int64_t m = fm_numel(out);
  if (m < 0 || m > FM_FOLD_MAX) return;
  int used[64] = {0};
  assert(n->nin <= 64);
  for (int64_t k = 0; k < m; k++) used[src ? src[k] : 0] = 1;
  int alldata = 1, allval = is_intlike(out->dtype);
  const int64_t *vals[64] = {0};
  for (int i = 0; i < n->nin; i++) {
    if (!used[i]) continue;
    Tensor *t = n->in[i];
    if (!t->data || t->dtype != out->dtype) alldata = 0;
    if (allval && !(vals[i] = fm_values(g, t))) allval = 0;
  }
  if (alldata) {
    size_t sz = fm_dtype_size(out->dtype);
    unsigned char *d = fm_alloc(&g->arena, sz * (size_t)(m ? m : 1));
    for (int64_t k = 0; k < m; k++) {
      const unsigned char *s = n->in[src ? src[k] : 0]->data;
      memcpy(d + (size_t)k * sz, s + (size_t)(idx ? idx[k] : k) * sz, sz);
    }
    out->data = d;
  } else if (allval) {
    int64_t *v = fm_alloc(&g->arena, sizeof(int64_t) * (size_t)(m ? m : 1));
    for (int64_t k = 0; k < m; k++) v[k] = vals[src ? src[k] : 0][idx ? idx[k] : k];
    fm_set_values(g, out, v);
  }
}

void fm_copy_values(Graph *g, Tensor *out, const Tensor *in) {
  int64_t m = fm_numel(out);
  if (m < 0 || m > FM_FOLD_MAX || m != fm_numel(in)) return;
  if (in->data && fm_dtype_size(out->dtype) && fm_dtype_size(in->dtype)) {
    void *d = fm_alloc(&g->arena, fm_dtype_size(out->dtype) * (size_t)(m ? m : 1));
    for (int64_t k = 0; k < m; k++) {
      if (is_intlike(in->dtype)) put_int(d, out->dtype, k, fm_const_int(in, k));
      else put_num(d, out->dtype, k, fm_const_f(in, k));
    }
    out->data = d;
  } else if (in->symval && is_intlike(out->dtype)) {
    const int64_t *v = fm_values(g, in);
    if (v) fm_set_values(g, out, v);
  }
}

/* ---- helpers ---- */

/* Input i with a known shape. */
static Tensor *shaped_in(Node *n, int i) {
  Tensor *t = fm_in(n, i);
  if (t->rank < 0 || !fm_shape_known(t) || t->dtype == FM_UNDEF)
    fm_fail("node '%s' (%s): the shape of input '%s' is unknown", n->name, n->op_type, t->name);
  return t;
}

typedef struct { int64_t c; int p; } Size; /* c * N^p */

static Size dims_size(Node *nd, const int64_t *d, int n) {
  Size s = {1, 0};
  for (int i = 0; i < n; i++)
    if (d[i] == 0) return (Size){0, 0};
  for (int i = 0; i < n; i++) {
    if (d[i] == FM_DIM_UNKNOWN || !fm_mul_ok(s.c, d[i] >= 0 ? d[i] : -d[i], &s.c))
      fm_fail("node '%s' (%s): element count overflows int64", nd->name, nd->op_type);
    s.p += d[i] < 0;
  }
  return s;
}

/* A Size as a dim, failing when it is not of the form c or c*N. */
static int64_t size_dim(Node *n, Size s, const char *what) {
  if (s.p == 0) return s.c;
  if (s.p == 1) return -s.c;
  fm_fail("node '%s' (%s): %s would be a multiple of N^%d (the batch size to a power); "
          "only constants and multiples of N are supported", n->name, n->op_type, what, s.p);
}

static const char *sstr(Graph *g, const Tensor *t) { return fm_shape_str(&g->arena, t); }

/* out = a flat copy of in (Reshape and its relatives). */
static void lower_copy(KB *b, Node *n) {
  KBuf *x = kb_in(b, 0), *y = kb_out(b, 0);
  KVar *i = kb_for(b, "i", k_i(0), kb_numel(b, n->out[0]), KL_PARALLEL);
  kb_store(b, y, k_var(i), k_load(x, k_var(i)));
  kb_end(b);
}

/* Axes from an attribute (opset < first_input_opset) or from input 1. Returns the
   count, or -1 when absent. */
static int read_axes(Graph *g, Node *n, int input_opset, int in_idx, int64_t *axes) {
  if (n->opset < input_opset) return fm_attr_ints(n, "axes", axes, FM_MAXRANK);
  if (in_idx >= n->nin || !n->in[in_idx]) return -1;
  Tensor *t = n->in[in_idx];
  if (!t->data)
    fm_fail("node '%s' (%s): axes input '%s' must be a constant", n->name, n->op_type, t->name);
  int64_t m = fm_numel(t);
  if (m > FM_MAXRANK) fm_fail("node '%s' (%s): too many axes (%lld)", n->name, n->op_type, (long long)m);
  for (int64_t k = 0; k < m; k++) axes[k] = fm_const_int(t, k);
  return (int)m;
}

/* ---- Reshape ---- */

void fm_infer_Reshape(Graph *g, Node *n) {
  Tensor *x = shaped_in(n, 0), *s = shaped_in(n, 1), *y = n->out[0];
  if (s->rank != 1 || s->dims[0] < 0)
    fm_fail("node '%s' (Reshape): shape input '%s' must be 1-D (got %s)", n->name, s->name, sstr(g, s));
  const int64_t *v = fm_values(g, s);
  if (!v)
    fm_fail("node '%s' (Reshape): target shape '%s' is not known at compile time (it must be "
            "a constant or computed from input shapes)", n->name, s->name);
  int r = (int)s->dims[0], allowzero = (int)fm_attr_i(n, "allowzero", 0), infer = -1;
  if (r > FM_MAXRANK) fm_fail("node '%s' (Reshape): rank %d exceeds %d", n->name, r, FM_MAXRANK);
  int64_t dims[FM_MAXRANK];
  for (int i = 0; i < r; i++) {
    int64_t e = v[i];
    if (e == FM_DIM_UNKNOWN)
      fm_fail("node '%s' (Reshape): element %d of the target shape is unknown at compile time", n->name, i);
    if (fm_sym_is_lit(e)) {
      if (fm_sym_lit_value(e) != -1 || infer >= 0)
        fm_fail("node '%s' (Reshape): invalid target shape (element %d is %lld; at most one -1 allowed)",
                n->name, i, (long long)fm_sym_lit_value(e));
      infer = i, dims[i] = 1;
    } else if (e == 0 && !allowzero) {
      if (i >= x->rank)
        fm_fail("node '%s' (Reshape): target element %d is 0 (copy) but the input has rank %d", n->name, i, x->rank);
      dims[i] = x->dims[i];
    } else {
      dims[i] = e;
    }
  }
  Size in = dims_size(n, x->dims, x->rank), out = dims_size(n, dims, r);
  if (infer >= 0) {
    if (out.c == 0 || in.c % out.c)
      fm_fail("node '%s' (Reshape): cannot infer the -1 of the target shape: input %s", n->name, sstr(g, x));
    Size q = {in.c / out.c, in.p - out.p};
    if (q.c == 0) q.p = 0;
    if (q.p < 0)
      fm_fail("node '%s' (Reshape): input %s does not fit the target shape", n->name, sstr(g, x));
    dims[infer] = size_dim(n, q, "the inferred dim");
  } else if (in.c != out.c || in.p != out.p) {
    Arena a = {0};
    Tensor tmp = {.rank = r};
    memcpy(tmp.dims, dims, sizeof dims);
    char m[256];
    snprintf(m, sizeof m, "%s into %s", fm_shape_str(&a, x), fm_shape_str(&a, &tmp));
    fm_arena_free(&a);
    fm_fail("node '%s' (Reshape): cannot reshape %s (element counts differ)", n->name, m);
  }
  fm_set_shape(y, x->dtype, r, dims);
  fm_fold_elems(g, n, 0, NULL, NULL);
}

void fm_lower_Reshape(KB *b, Node *n) { lower_copy(b, n); }

/* ---- Flatten ---- */

void fm_infer_Flatten(Graph *g, Node *n) {
  Tensor *x = shaped_in(n, 0);
  int64_t axis = fm_attr_i(n, "axis", 1);
  if (axis < -x->rank || axis > x->rank)
    fm_fail("node '%s' (Flatten): axis %lld out of range for rank %d", n->name, (long long)axis, x->rank);
  if (axis < 0) axis += x->rank;
  int64_t dims[2] = {size_dim(n, dims_size(n, x->dims, (int)axis), "the outer size"),
                     size_dim(n, dims_size(n, x->dims + axis, x->rank - (int)axis), "the inner size")};
  fm_set_shape(n->out[0], x->dtype, 2, dims);
  fm_fold_elems(g, n, 0, NULL, NULL);
}

void fm_lower_Flatten(KB *b, Node *n) { lower_copy(b, n); }

/* ---- Squeeze / Unsqueeze ---- */

void fm_infer_Squeeze(Graph *g, Node *n) {
  Tensor *x = shaped_in(n, 0);
  int64_t axes[FM_MAXRANK];
  int na = read_axes(g, n, 13, 1, axes);
  int drop[FM_MAXRANK] = {0};
  if (na < 0) { /* all dims of size 1 (a symbolic dim is never taken to be 1) */
    for (int i = 0; i < x->rank; i++) drop[i] = x->dims[i] == 1;
  } else {
    for (int k = 0; k < na; k++) {
      int a = (int)fm_norm_axis(n, axes[k], x->rank);
      if (x->dims[a] != 1)
        fm_fail("node '%s' (Squeeze): axis %d of input %s is not of size 1", n->name, a, sstr(g, x));
      drop[a] = 1;
    }
  }
  int64_t dims[FM_MAXRANK];
  int r = 0;
  for (int i = 0; i < x->rank; i++)
    if (!drop[i]) dims[r++] = x->dims[i];
  fm_set_shape(n->out[0], x->dtype, r, dims);
  fm_fold_elems(g, n, 0, NULL, NULL);
}

void fm_lower_Squeeze(KB *b, Node *n) { lower_copy(b, n); }

void fm_infer_Unsqueeze(Graph *g, Node *n) {
  Tensor *x = shaped_in(n, 0);
  int64_t axes[FM_MAXRANK];
  int na = read_axes(g, n, 13, 1, axes);
  if (na < 0) fm_fail("node '%s' (Unsqueeze): axes are required", n->name);
  int r = x->rank + na;
  if (r > FM_MAXRANK) fm_fail("node '%s' (Unsqueeze): rank %d exceeds %d", n->name, r, FM_MAXRANK);
  int ins[FM_MAXRANK] = {0};
  for (int k = 0; k < na; k++) {
    int a = (int)fm_norm_axis(n, axes[k], r);
    if (ins[a]) fm_fail("node '%s' (Unsqueeze): axis %d repeated", n->name, a);
    ins[a] = 1;
  }
  int64_t dims[FM_MAXRANK];
  for (int i = 0, j = 0; i < r; i++) dims[i] = ins[i] ? 1 : x->dims[j++];
  fm_set_shape(n->out[0], x->dtype, r, dims);
  fm_fold_elems(g, n, 0, NULL, NULL);
}

void fm_lower_Unsqueeze(KB *b, Node *n) { lower_copy(b, n); }

/* ---- Shape / Size ---- */

static void shape_range(Node *n, const Tensor *x, int64_t *start, int64_t *end) {
  int64_t r = x->rank;
  int64_t s = n->opset >= 15 ? fm_attr_i(n, "start", 0) : 0;
  int64_t e = n->opset >= 15 ? fm_attr_i(n, "end", r) : r;
  if (s < 0) s += r;
  if (e < 0) e += r;
  s = s < 0 ? 0 : s > r ? r : s;
  e = e < 0 ? 0 : e > r ? r : e;
  *start = s, *end = e > s ? e : s;
}

void fm_infer_Shape(Graph *g, Node *n) {
  Tensor *x = shaped_in(n, 0), *y = n->out[0];
  int64_t s, e;
  shape_range(n, x, &s, &e);
  int64_t len = e - s;
  fm_set_shape(y, FM_I64, 1, &len);
  fm_set_values(g, y, x->dims + s); /* dims are already in the value encoding */
}

void fm_lower_Shape(KB *b, Node *n) {
  Tensor *x = n->in[0];
  int64_t s, e;
  shape_range(n, x, &s, &e);
  KBuf *y = kb_out(b, 0);
  for (int64_t i = s; i < e; i++) kb_store(b, y, k_i(i - s), kb_dim(b, x->dims[i]));
}

void fm_infer_Size(Graph *g, Node *n) {
  Tensor *x = shaped_in(n, 0), *y = n->out[0];
  fm_set_shape(y, FM_I64, 0, NULL);
  Size s = dims_size(n, x->dims, x->rank);
  if (s.p <= 1) {
    int64_t v = s.p ? -s.c : s.c;
    fm_set_values(g, y, &v);
  }
}

void fm_lower_Size(KB *b, Node *n) { kb_store(b, kb_out(b, 0), k_i(0), kb_numel(b, n->in[0])); }

/* ---- Constant ---- */

void fm_infer_Constant(Graph *g, Node *n) {
  Tensor *y = n->out[0];
  Attr *a = NULL;
  for (int i = 0; i < n->nattrs; i++)
    if (strcmp(n->attrs[i].name, "value") == 0 || strncmp(n->attrs[i].name, "value_", 6) == 0 ||
        strcmp(n->attrs[i].name, "sparse_value") == 0)
      a = &n->attrs[i];
  if (!a) fm_fail("node '%s' (Constant): no value attribute", n->name);
  if (!strcmp(a->name, "value") && a->type == FA_TENSOR && a->t) {
    Tensor *t = a->t;
    if (!fm_dtype_size(t->dtype) || !t->data)
      fm_fail("node '%s' (Constant): value of type %s is not supported", n->name, fm_dtype_name(t->dtype));
    fm_set_shape(y, t->dtype, t->rank, t->dims);
    y->data = t->data;
  } else if (!strcmp(a->name, "value_float")) {
    fm_set_shape(y, FM_F32, 0, NULL);
    y->data = fm_alloc(&g->arena, sizeof(float));
    *(float *)y->data = fm_attr_f(n, "value_float", 0);
  } else if (!strcmp(a->name, "value_int")) {
    fm_set_shape(y, FM_I64, 0, NULL);
    y->data = fm_alloc(&g->arena, sizeof(int64_t));
    *(int64_t *)y->data = fm_attr_i(n, "value_int", 0);
  } else if (!strcmp(a->name, "value_floats") && a->type == FA_FLOATS) {
    int64_t m = a->n;
    fm_set_shape(y, FM_F32, 1, &m);
    y->data = fm_alloc(&g->arena, sizeof(float) * (size_t)(m ? m : 1));
    memcpy(y->data, a->floats, sizeof(float) * (size_t)m);
  } else if (!strcmp(a->name, "value_ints") && a->type == FA_INTS) {
    int64_t m = a->n;
    fm_set_shape(y, FM_I64, 1, &m);
    y->data = fm_alloc(&g->arena, sizeof(int64_t) * (size_t)(m ? m : 1));
    memcpy(y->data, a->ints, sizeof(int64_t) * (size_t)m);
  } else {
    fm_fail("node '%s' (Constant): attribute '%s' is not supported", n->name, a->name);
  }
}

/* Only reached if a pass dropped the data: the value becomes a constant buffer. */
void fm_lower_Constant(KB *b, Node *n) {
  Tensor *y = n->out[0];
  if (!y->data) fm_infer_Constant(b->g, n);
  KBuf *c = kb_const(b, "value", y->dtype, fm_numel(y), y->data), *o = kb_out(b, 0);
  KVar *i = kb_for(b, "i", k_i(0), k_i(fm_numel(y)), KL_PARALLEL);
  kb_store(b, o, k_var(i), k_load(c, k_var(i)));
  kb_end(b);
}

/* ---- ConstantOfShape ---- */

/* Dims from a 1-D shape input with data or symval; what names it in errors. */
static int shape_from_input(Graph *g, Node *n, int i, int64_t *dims, const char *what) {
  Tensor *s = shaped_in(n, i);
  if (s->rank != 1 || s->dims[0] < 0)
    fm_fail("node '%s' (%s): %s '%s' must be 1-D (got %s)", n->name, n->op_type, what, s->name, sstr(g, s));
  if (s->dims[0] > FM_MAXRANK)
    fm_fail("node '%s' (%s): %s has %lld elements, at most %d supported", n->name, n->op_type, what,
            (long long)s->dims[0], FM_MAXRANK);
  const int64_t *v = fm_values(g, s);
  if (!v)
    fm_fail("node '%s' (%s): %s '%s' is not known at compile time", n->name, n->op_type, what, s->name);
  for (int k = 0; k < s->dims[0]; k++) {
    if (v[k] == FM_DIM_UNKNOWN || fm_sym_is_lit(v[k]))
      fm_fail("node '%s' (%s): element %d of %s '%s' is %s", n->name, n->op_type, k, what, s->name,
              v[k] == FM_DIM_UNKNOWN ? "unknown" : "negative");
    dims[k] = v[k];
  }
  return (int)s->dims[0];
}

static FmDType cos_dtype(Node *n, double *val) {
  Attr *a = fm_attr(n, "value");
  *val = 0;
  if (!a) return FM_F32;
  if (a->type != FA_TENSOR || !a->t || !a->t->data || fm_numel(a->t) != 1)
    fm_fail("node '%s' (ConstantOfShape): value must be a one-element tensor", n->name);
  *val = fm_const_f(a->t, 0);
  return a->t->dtype;
}

void fm_infer_ConstantOfShape(Graph *g, Node *n) {
  int64_t dims[FM_MAXRANK];
  int r = shape_from_input(g, n, 0, dims, "shape");
  double val;
  FmDType dt = cos_dtype(n, &val);
  Tensor *y = n->out[0];
  fm_set_shape(y, dt, r, dims);
  int64_t m = fm_numel(y);
  if (m >= 0 && m <= FM_FOLD_MAX) {
    y->data = fm_alloc(&g->arena, fm_dtype_size(dt) * (size_t)(m ? m : 1));
    Attr *a = fm_attr(n, "value");
    for (int64_t k = 0; k < m; k++)
      if (a && is_intlike(dt)) put_int(y->data, dt, k, fm_const_int(a->t, 0));
      else put_num(y->data, dt, k, val);
  }
}

void fm_lower_ConstantOfShape(KB *b, Node *n) {
  double val;
  FmDType dt = cos_dtype(n, &val);
  KBuf *y = kb_out(b, 0);
  Attr *a = fm_attr(n, "value");
  KExpr *c = a && is_intlike(dt) ? k_cast(dt, k_i(fm_const_int(a->t, 0))) : k_const(dt, val);
  KVar *i = kb_for(b, "i", k_i(0), kb_numel(b, n->out[0]), KL_PARALLEL);
  kb_store(b, y, k_var(i), c);
  kb_end(b);
}

/* ---- Range ---- */

static int is_float(FmDType t) { return t == FM_F32 || t == FM_F64 || t == FM_F16; }

void fm_infer_Range(Graph *g, Node *n) {
  Tensor *st = shaped_in(n, 0), *li = shaped_in(n, 1), *de = shaped_in(n, 2), *y = n->out[0];
  for (int i = 0; i < 3; i++)
    if (fm_numel(n->in[i]) != 1)
      fm_fail("node '%s' (Range): input '%s' must be a scalar", n->name, n->in[i]->name);
  if (st->dtype != li->dtype || st->dtype != de->dtype)
    fm_fail("node '%s' (Range): start, limit and delta must have the same type", n->name);
  FmDType dt = st->dtype;
  int64_t len;
  if (st->data && li->data && de->data) {
    double s = fm_const_f(st, 0), l = fm_const_f(li, 0), d = fm_const_f(de, 0);
    if (d == 0) fm_fail("node '%s' (Range): delta is 0", n->name);
    double c = is_float(dt) ? ceil((l - s) / d) : 0;
    if (!is_float(dt)) { /* exact integer ceil division */
      int64_t si = fm_const_int(st, 0), lim = fm_const_int(li, 0), di = fm_const_int(de, 0), num;
      if (!fm_sub_ok(lim, si, &num) || (di == -1 && num == INT64_MIN))
        fm_fail("node '%s' (Range): the range from %lld to %lld is too long", n->name, (long long)si,
                (long long)lim);
      int64_t q = num / di;
      if (q * di != num && ((num > 0) == (di > 0))) q++;
      c = (double)q;
    }
    if (c > (double)FM_MAX_TENSOR_BYTES) /* also before the cast: a huge double has no int64 */
      fm_fail("node '%s' (Range): %g elements is too many", n->name, c);
    len = c > 0 ? (int64_t)c : 0;
  } else {
    /* range(0, k*N, 1): the classic arange(x.size(0)) */
    const int64_t *lv = fm_values(g, li);
    int zero_one = st->data && de->data && fm_const_f(st, 0) == 0 && fm_const_f(de, 0) == 1;
    if (!(lv && zero_one && fm_dim_sym(lv[0]) && !fm_sym_is_lit(lv[0])))
      fm_fail("node '%s' (Range): start, limit and delta must be known at compile time "
              "(or be 0, a multiple of N and 1)", n->name);
    len = lv[0];
  }
  fm_set_shape(y, dt, 1, &len);
  if (len >= 0 && len <= FM_FOLD_MAX) {
    y->data = fm_alloc(&g->arena, fm_dtype_size(dt) * (size_t)(len ? len : 1));
    for (int64_t k = 0; k < len; k++)
      if (is_float(dt)) put_num(y->data, dt, k, fm_const_f(st, 0) + (double)k * fm_const_f(de, 0));
      else put_int(y->data, dt, k, fm_const_int(st, 0) + k * fm_const_int(de, 0));
  }
}

void fm_lower_Range(KB *b, Node *n) {
  KBuf *s = kb_in(b, 0), *d = kb_in(b, 2), *y = kb_out(b, 0);
  FmDType dt = n->out[0]->dtype;
  KVar *i = kb_for(b, "i", k_i(0), kb_dim(b, n->out[0]->dims[0]), KL_PARALLEL);
  kb_store(b, y, k_var(i), k_add(k_load(s, k_i(0)), k_mul(k_cast(dt, k_var(i)), k_load(d, k_i(0)))));
  kb_end(b);
}

/* ---- EyeLike ---- */

static FmDType eye_dtype(Node *n) {
  int64_t dt = fm_attr_i(n, "dtype", 0);
  return dt ? (FmDType)dt : n->in[0]->dtype;
}

void fm_infer_EyeLike(Graph *g, Node *n) {
  Tensor *x = shaped_in(n, 0);
  if (x->rank != 2) fm_fail("node '%s' (EyeLike): input must be 2-D (got %s)", n->name, sstr(g, x));
  FmDType dt = eye_dtype(n);
  if (!fm_dtype_size(dt)) fm_fail("node '%s' (EyeLike): unsupported dtype %d", n->name, (int)dt);
  fm_set_shape(n->out[0], dt, 2, x->dims);
}

void fm_lower_EyeLike(KB *b, Node *n) {
  Tensor *y = n->out[0];
  KBuf *o = kb_out(b, 0);
  int64_t k = fm_attr_i(n, "k", 0);
  KVar *i = kb_for(b, "i", k_i(0), kb_dim(b, y->dims[0]), KL_PARALLEL);
  KVar *j = kb_for(b, "j", k_i(0), kb_dim(b, y->dims[1]), KL_VECTOR);
  KExpr *on = k_bin(KB_EQ, k_sub(k_var(j), k_var(i)), k_i(k));
  kb_store(b, o, k_add(k_mul(k_var(i), kb_dim(b, y->dims[1])), k_var(j)),
           k_select(on, k_const(y->dtype, 1), k_const(y->dtype, 0)));
  kb_end(b);
  kb_end(b);
}
