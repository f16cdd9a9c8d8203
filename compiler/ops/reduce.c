/* reduce.c - reductions: ReduceSum/Mean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare,
 * ArgMax/ArgMin and CumSum.
 *
 * A reduction is lowered as loops over the kept dims (outermost parallel) around
 * loops over the reduced dims that accumulate into a scalar:
 *   for kept...: acc = init; for reduced...: acc op= f(x[..]); y[..] = fin(acc)
 * Integer reductions of small tensors with values (Shape arithmetic such as
 * ReduceProd(Shape(x)[1:])) are folded during inference.
 */
#include "ops/ops.h"
#include <assert.h>
#include <math.h>
#include <string.h>

static const char *const VN[FM_MAXRANK] = {"i0", "i1", "i2", "i3", "i4", "i5", "i6", "i7"};
static const char *const RN[FM_MAXRANK] = {"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"};

static Tensor *shaped_in(Node *n, int i) {
  Tensor *t = fm_in(n, i);
  if (t->rank < 0 || !fm_shape_known(t) || t->dtype == FM_UNDEF)
    fm_fail("node '%s' (%s): the shape of input '%s' is unknown", n->name, n->op_type, t->name);
  return t;
}

static int is_float(FmDType t) { return t == FM_F32 || t == FM_F64 || t == FM_F16; }

typedef enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_L1, R_L2, R_LOGSUM, R_LOGSUMEXP, R_SUMSQ } RKind;

static RKind rkind(OpKind op) {
  switch (op) {
  case OP_ReduceSum: return R_SUM;
  case OP_ReduceMean: return R_MEAN;
  case OP_ReduceMax: return R_MAX;
  case OP_ReduceMin: return R_MIN;
  case OP_ReduceProd: return R_PROD;
  case OP_ReduceL1: return R_L1;
  case OP_ReduceL2: return R_L2;
  case OP_ReduceLogSum: return R_LOGSUM;
  case OP_ReduceLogSumExp: return R_LOGSUMEXP;
  default: assert(op == OP_ReduceSumSquare); return R_SUMSQ;
  }
}

/* Which axes of x are reduced; returns 0 for a no-op (empty axes with
   noop_with_empty_axes), else 1. */
static int reduced_axes(Node *n, const Tensor *x, int *red) {
  int input_opset = n->op == OP_ReduceSum ? 13 : 18;
  int64_t axes[FM_MAXRANK];
  int na;
  if (n->opset < input_opset) {
    na = fm_attr_ints(n, "axes", axes, FM_MAXRANK);
  } else if (n->nin > 1 && n->in[1]) {
    Tensor *t = n->in[1];
    if (!t->data)
      fm_fail("node '%s' (%s): axes '%s' must be a constant", n->name, n->op_type, t->name);
    int64_t m = fm_numel(t);
    if (m > FM_MAXRANK) fm_fail("node '%s' (%s): too many axes", n->name, n->op_type);
    na = (int)m;
    for (int k = 0; k < na; k++) axes[k] = fm_const_int(t, k);
  } else {
    na = -1;
  }
  if (na <= 0 && n->opset >= input_opset && fm_attr_i(n, "noop_with_empty_axes", 0)) {
    for (int d = 0; d < x->rank; d++) red[d] = 0;
    return 0;
  }
  for (int d = 0; d < x->rank; d++) red[d] = na <= 0;
  for (int k = 0; k < na; k++) {
    int a = (int)fm_norm_axis(n, axes[k], x->rank);
    red[a] = 1;
  }
  return 1;
}

/* Output dims with reduced axes kept as 1 or dropped. */
static int reduced_dims(const Tensor *x, const int *red, int keep, int64_t *dims) {
  int r = 0;
  for (int d = 0; d < x->rank; d++)
    if (!red[d]) dims[r++] = x->dims[d];
    else if (keep) dims[r++] = 1;
  return r;
}

/* acc op v on compile-time values (ops.h encoding: constants or k*N); FM_DIM_UNKNOWN
   when the result is neither (N + 1, N * N). */
static int64_t fold_combine(RKind k, int64_t acc, int64_t v) {
  if (acc == FM_DIM_UNKNOWN || v == FM_DIM_UNKNOWN) return FM_DIM_UNKNOWN;
  int ca = acc >= 0 || fm_sym_is_lit(acc), cv = v >= 0 || fm_sym_is_lit(v);
  if (ca && cv) {
    int64_t a = fm_sym_is_lit(acc) ? fm_sym_lit_value(acc) : acc, b = fm_sym_is_lit(v) ? fm_sym_lit_value(v) : v;
    int64_t r = k == R_SUM ? a + b : k == R_PROD ? a * b : k == R_MAX ? (a > b ? a : b) : (a < b ? a : b);
    return r >= 0 ? r : FM_SYM_LIT(r);
  }
  if (k == R_SUM) {
    if (!ca && !cv) return acc + v; /* (-a) + (-b): (a+b)*N */
    if (acc == 0) return v;
    if (v == 0) return acc;
  } else if (k == R_PROD && ca != cv) {
    int64_t c = ca ? acc : v, s = ca ? v : acc;
    if (c >= 0) return s * c; /* -(k*c): k*c*N */
  }
  return FM_DIM_UNKNOWN;
}

static void fold_reduce(Graph *g, Node *n, RKind k, const int *red) {
  Tensor *x = n->in[0], *y = n->out[0];
  if (is_float(x->dtype) || (k != R_SUM && k != R_PROD && k != R_MAX && k != R_MIN)) return;
  int64_t m = fm_numel(y), mx = fm_numel(x);
  const int64_t *v = fm_values(g, x);
  if (!v || m < 0 || mx < 0 || m == 0) return;
  int64_t *out = fm_alloc(&g->arena, sizeof(int64_t) * (size_t)m);
  char *seen = fm_alloc(&g->arena, (size_t)m);
  if (mx == 0) { /* empty reduction: the identity */
    if (k != R_SUM && k != R_PROD) return;
    for (int64_t e = 0; e < m; e++) out[e] = k == R_PROD;
  }
  int64_t idx[FM_MAXRANK];
  for (int64_t e = 0; e < mx; e++) {
    int64_t rem = e, o = 0;
    for (int d = x->rank - 1; d >= 0; d--) idx[d] = rem % x->dims[d], rem /= x->dims[d];
    for (int d = 0; d < x->rank; d++)
      if (!red[d]) o = o * x->dims[d] + idx[d];
    out[o] = seen[o] ? fold_combine(k, out[o], v[e]) : v[e];
    seen[o] = 1;
  }
  fm_set_values(g, y, out);
}

static void infer_reduce(Graph *g, Node *n) {
  Tensor *x = shaped_in(n, 0), *y = n->out[0];
  int red[FM_MAXRANK];
  int64_t dims[FM_MAXRANK];
  if (!reduced_axes(n, x, red)) {
    fm_same_shape(y, x);
    fm_copy_values(g, y, x);
    return;
  }
  int r = reduced_dims(x, red, (int)fm_attr_i(n, "keepdims", 1), dims);
  fm_set_shape(y, x->dtype, r, dims);
  fold_reduce(g, n, rkind(n->op), red);
}

/* Opens loops over the kept dims of x (vars in kv[], unused for reduced dims). */
static int open_kept(KB *b, const Tensor *x, const int *red, KVar **kv) {
  int opened = 0;
  for (int d = 0; d < x->rank; d++)
    if (!red[d]) kv[d] = kb_for(b, VN[d], k_i(0), kb_dim(b, x->dims[d]), opened++ ? KL_SERIAL : KL_PARALLEL);
  return opened;
}

static int open_reduced(KB *b, const Tensor *x, const int *red, KVar **rv) {
  int opened = 0;
  for (int d = 0; d < x->rank; d++)
    if (red[d]) rv[d] = kb_for(b, RN[d], k_i(0), kb_dim(b, x->dims[d]), KL_SERIAL), opened++;
  return opened;
}

static void close_loops(KB *b, int k) {
  while (k-- > 0) kb_end(b);
}

/* Flat index into x from kept vars and reduced vars (zero_red: reduced dims at 0). */
static KExpr *x_index(KB *b, const Tensor *x, const int *red, KVar **kv, KVar **rv, int zero_red) {
  KExpr *e = k_i(0);
  for (int d = 0; d < x->rank; d++) {
    KExpr *i = red[d] ? (zero_red ? k_i(0) : k_var(rv[d])) : k_var(kv[d]);
    e = k_add(k_mul(e, kb_dim(b, x->dims[d])), i);
  }
  return e;
}

static KExpr *y_index(KB *b, const Tensor *x, const int *red, KVar **kv) {
  KExpr *e = k_i(0);
  for (int d = 0; d < x->rank; d++)
    if (!red[d]) e = k_add(k_mul(e, kb_dim(b, x->dims[d])), k_var(kv[d]));
  return e;
}

static KExpr *lowest(FmDType t, int neg) {
  if (is_float(t)) return k_const(t, neg ? -INFINITY : INFINITY);
  double lo, hi;
  switch (t) {
  case FM_I8: lo = INT8_MIN, hi = INT8_MAX; break;
  case FM_I16: lo = INT16_MIN, hi = INT16_MAX; break;
  case FM_I32: lo = INT32_MIN, hi = INT32_MAX; break;
  case FM_I64: lo = (double)INT64_MIN, hi = 9223372036854775807.0; break;
  case FM_U8: case FM_BOOL: lo = 0, hi = UINT8_MAX; break;
  case FM_U16: lo = 0, hi = UINT16_MAX; break;
  case FM_U32: lo = 0, hi = UINT32_MAX; break;
  default: lo = 0, hi = (double)UINT64_MAX; break;
  }
  if (t == FM_I64) return k_cast(t, neg ? k_i(INT64_MIN) : k_i(INT64_MAX));
  return k_const(t, neg ? lo : hi);
}

static void lower_reduce(KB *b, Node *n) {
  Tensor *x = n->in[0], *y = n->out[0];
  FmDType t = x->dtype;
  RKind rk = rkind(n->op);
  int red[FM_MAXRANK];
  KBuf *xb = kb_in(b, 0), *yb = kb_out(b, 0);
  if (!reduced_axes(n, x, red)) {
    KVar *i = kb_for(b, "i", k_i(0), kb_numel(b, y), KL_PARALLEL);
    kb_store(b, yb, k_var(i), k_load(xb, k_var(i)));
    kb_end(b);
    return;
  }
  int64_t cnt = 1; /* |number of reduced elements| (k*N counts as k) */
  for (int d = 0; d < x->rank; d++)
    if (red[d]) cnt *= x->dims[d] < 0 ? -x->dims[d] : x->dims[d];
  KExpr *count = k_i(1);
  for (int d = 0; d < x->rank; d++)
    if (red[d]) count = k_mul(count, kb_dim(b, x->dims[d]));
  KVar *kv[FM_MAXRANK], *rv[FM_MAXRANK];
  int nk = open_kept(b, x, red, kv);
  KExpr *yi = y_index(b, x, red, kv);
  if (cnt == 0) { /* empty reduction: the op's identity */
    KExpr *e = rk == R_PROD ? k_const(t, 1) : rk == R_MAX ? lowest(t, 1) : rk == R_MIN ? lowest(t, 0)
             : rk == R_LOGSUM || rk == R_LOGSUMEXP ? k_const(t, -INFINITY) : k_const(t, 0);
    kb_store(b, yb, yi, e);
    close_loops(b, nk);
    return;
  }
  KVar *mx = NULL;
  if (rk == R_LOGSUMEXP) { /* max first, so that exp cannot overflow */
    mx = kb_let(b, "mx", t, k_load(xb, x_index(b, x, red, kv, rv, 1)));
    int nr = open_reduced(b, x, red, rv);
    kb_acc(b, mx, KB_MAX, k_load(xb, x_index(b, x, red, kv, rv, 0)));
    close_loops(b, nr);
  }
  KExpr *init = rk == R_PROD ? k_const(t, 1)
              : rk == R_MAX || rk == R_MIN ? k_load(xb, x_index(b, x, red, kv, rv, 1)) /* max/min are idempotent */
              : k_const(t, 0);
  KVar *acc = kb_let(b, "acc", t, init);
  int nr = open_reduced(b, x, red, rv);
  KExpr *v = k_load(xb, x_index(b, x, red, kv, rv, 0));
  switch (rk) {
  case R_L1: v = k_un(KU_ABS, v); break;
  case R_L2: case R_SUMSQ: v = k_mul(v, v); break;
  case R_LOGSUMEXP: v = k_un(KU_EXP, k_sub(v, k_var(mx))); break;
  default: break;
  }
  KBinOp op = rk == R_PROD ? KB_MUL : rk == R_MAX ? KB_MAX : rk == R_MIN ? KB_MIN : KB_ADD;
  kb_acc(b, acc, op, v);
  close_loops(b, nr);
  KExpr *res = k_var(acc);
  FmDType ft = is_float(t) ? t : FM_F64; /* integer L2 / LogSum go through double */
  switch (rk) {
  case R_MEAN: res = k_div(res, k_cast(t, count)); break;
  case R_L2: res = k_cast(t, k_un(KU_SQRT, k_cast(ft, res))); break;
  case R_LOGSUM: res = k_cast(t, k_un(KU_LOG, k_cast(ft, res))); break;
  case R_LOGSUMEXP: res = k_add(k_var(mx), k_un(KU_LOG, res)); break;
  default: break;
  }
  kb_store(b, yb, yi, res);
  close_loops(b, nk);
}

#define REDUCE(X) \
  void fm_infer_##X(Graph *g, Node *n) { infer_reduce(g, n); } \
  void fm_lower_##X(KB *b, Node *n) { lower_reduce(b, n); }
REDUCE(ReduceSum) REDUCE(ReduceMean) REDUCE(ReduceMax) REDUCE(ReduceMin) REDUCE(ReduceProd)
REDUCE(ReduceL1) REDUCE(ReduceL2) REDUCE(ReduceLogSum) REDUCE(ReduceLogSumExp) REDUCE(ReduceSumSquare)
#undef REDUCE

/* ---- ArgMax / ArgMin ---- */

static void infer_arg(Graph *g, Node *n) {
  Tensor *x = shaped_in(n, 0);
  int red[FM_MAXRANK] = {0};
  int64_t dims[FM_MAXRANK];
  if (x->rank < 1) fm_fail("node '%s' (%s): input must have rank >= 1", n->name, n->op_type);
  int axis = (int)fm_norm_axis(n, fm_attr_i(n, "axis", 0), x->rank);
  if (x->dims[axis] == 0) fm_fail("node '%s' (%s): axis %d is empty", n->name, n->op_type, axis);
  red[axis] = 1;
  int r = reduced_dims(x, red, (int)fm_attr_i(n, "keepdims", 1), dims);
  fm_set_shape(n->out[0], FM_I64, r, dims);
}

/* best = x[.., 0, ..]; for k: if (x[.., k, ..] beats best) best = it, arg = k */
static void lower_arg(KB *b, Node *n, int is_max) {
  Tensor *x = n->in[0];
  int red[FM_MAXRANK] = {0};
  int axis = (int)fm_norm_axis(n, fm_attr_i(n, "axis", 0), x->rank);
  int last = n->opset >= 12 && fm_attr_i(n, "select_last_index", 0);
  red[axis] = 1;
  KBuf *xb = kb_in(b, 0);
  KVar *kv[FM_MAXRANK], *rv[FM_MAXRANK];
  int nk = open_kept(b, x, red, kv);
  KVar *best = kb_let(b, "best", x->dtype, k_load(xb, x_index(b, x, red, kv, rv, 1)));
  KVar *arg = kb_let(b, "arg", FM_I64, k_i(0));
  rv[axis] = kb_for(b, RN[axis], k_i(1), kb_dim(b, x->dims[axis]), KL_SERIAL);
  KVar *v = kb_let(b, "v", x->dtype, k_load(xb, x_index(b, x, red, kv, rv, 0)));
  KBinOp cmp = is_max ? (last ? KB_GE : KB_GT) : (last ? KB_LE : KB_LT);
  kb_if(b, k_bin(cmp, k_var(v), k_var(best)));
  kb_set(b, best, k_var(v));
  kb_set(b, arg, k_var(rv[axis]));
  kb_end(b);
  kb_end(b);
  kb_store(b, kb_out(b, 0), y_index(b, x, red, kv), k_var(arg));
  close_loops(b, nk);
}

void fm_infer_ArgMax(Graph *g, Node *n) { infer_arg(g, n); }
void fm_infer_ArgMin(Graph *g, Node *n) { infer_arg(g, n); }
void fm_lower_ArgMax(KB *b, Node *n) { lower_arg(b, n, 1); }
void fm_lower_ArgMin(KB *b, Node *n) { lower_arg(b, n, 0); }

/* ---- CumSum ---- */

static int cumsum_axis(Node *n, const Tensor *x) {
  Tensor *a = fm_in(n, 1);
  fm_const_data(n, 1, "axis");
  if (fm_numel(a) != 1) fm_fail("node '%s' (CumSum): axis must be a scalar", n->name);
  if (a->dtype != FM_I32 && a->dtype != FM_I64)
    fm_fail("node '%s' (CumSum): axis must be int32 or int64", n->name);
  return (int)fm_norm_axis(n, fm_const_int(a, 0), x->rank);
}

void fm_infer_CumSum(Graph *g, Node *n) {
  Tensor *x = shaped_in(n, 0);
  if (x->rank < 1) fm_fail("node '%s' (CumSum): input must have rank >= 1", n->name);
  cumsum_axis(n, x);
  fm_same_shape(n->out[0], x);
}

/* Rows along the axis, each a contiguous run of `inner` elements:
   y[o, first, j] = excl ? 0 : x[o, first, j]; y[o, d, j] = y[o, prev, j] + x[o, excl ? prev : d, j] */
void fm_lower_CumSum(KB *b, Node *n) {
  Tensor *x = n->in[0];
  int axis = cumsum_axis(n, x);
  int excl = (int)fm_attr_i(n, "exclusive", 0), rev = (int)fm_attr_i(n, "reverse", 0);
  if (x->dims[axis] == 0) return;
  KExpr *outer = k_i(1), *inner = k_i(1), *D = kb_dim(b, x->dims[axis]);
  for (int d = 0; d < axis; d++) outer = k_mul(outer, kb_dim(b, x->dims[d]));
  for (int d = axis + 1; d < x->rank; d++) inner = k_mul(inner, kb_dim(b, x->dims[d]));
  KBuf *xb = kb_in(b, 0), *yb = kb_out(b, 0);
  KVar *o = kb_for(b, "o", k_i(0), outer, KL_PARALLEL);
  KExpr *base = k_mul(k_var(o), k_mul(D, inner));
  KExpr *first = rev ? k_sub(D, k_i(1)) : k_i(0);
  KVar *j = kb_for(b, "j", k_i(0), inner, KL_VECTOR);
  KExpr *at = k_add(k_add(base, k_mul(first, inner)), k_var(j));
  kb_store(b, yb, at, excl ? k_const(x->dtype, 0) : k_load(xb, at));
  kb_end(b);
  KVar *t = kb_for(b, "t", k_i(1), D, KL_SERIAL);
  KExpr *d = rev ? k_sub(k_sub(D, k_i(1)), k_var(t)) : k_var(t);
  KExpr *p = rev ? k_add(d, k_i(1)) : k_sub(d, k_i(1));
  j = kb_for(b, "j", k_i(0), inner, KL_VECTOR);
  KExpr *yd = k_add(k_add(base, k_mul(d, inner)), k_var(j)), *yp = k_add(k_add(base, k_mul(p, inner)), k_var(j));
  kb_store(b, yb, yd, k_add(k_load(yb, yp), k_load(xb, excl ? yp : yd)));
  kb_end(b);
  kb_end(b);
  kb_end(b);
}
