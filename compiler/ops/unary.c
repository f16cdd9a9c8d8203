/* unary.c - elementwise unary ops and activations, Cast, Identity, Dropout.
 *
 * Each op is y[i] = f(x[i]) over one flat parallel loop (shapes are equal), so the
 * body vectorises. f is built by unary_expr from the op and its attributes (ONNX
 * defaults); Clip's bounds (inputs since opset 11) are loaded once before the loop.
 */
#include "ops/ops.h"
#include <float.h>
#include <math.h>
#include <string.h>

static int is_float(FmDType t) { return t == FM_F32 || t == FM_F64 || t == FM_F16; }
static int is_unsigned(FmDType t) { return t == FM_U8 || t == FM_U16 || t == FM_U32 || t == FM_U64; }

static void need_known(Node *n, Tensor *t) {
  if (t->dtype == FM_UNDEF || t->rank < 0)
    fm_fail("node '%s' (%s): type or shape of input '%s' is unknown", n->name, n->op_type, t->name);
  for (int d = 0; d < t->rank; d++)
    if (t->dims[d] == FM_DIM_UNKNOWN)
      fm_fail("node '%s' (%s): input '%s' has an unknown dimension", n->name, n->op_type, t->name);
}

static void check_type(Node *n, Tensor *t, FmDType dt) {
  if (dt == FM_STRING || dt == FM_UNDEF || !fm_dtype_size(dt))
    fm_fail("node '%s' (%s): tensor '%s' has unsupported type %s", n->name, n->op_type, t->name,
            fm_dtype_name(dt));
}

/* Ops that are only defined on floating point types. */
static int float_only(OpKind op) {
  switch (op) {
  case OP_Abs: case OP_Neg: case OP_Sign: case OP_Not: case OP_Relu: case OP_Clip:
  case OP_Cast: case OP_CastLike: case OP_Identity: case OP_Dropout: case OP_Shrink:
    return 0;
  default: return 1;
  }
}

/* Output 0 has the input's shape; dtype dt. */
static void infer_same(Node *n, FmDType dt) {
  Tensor *x = fm_in(n, 0);
  need_known(n, x);
  check_type(n, x, x->dtype);
  if (float_only(n->op) && !is_float(x->dtype))
    fm_fail("node '%s' (%s): input '%s' must be float or double, got %s", n->name, n->op_type,
            x->name, fm_dtype_name(x->dtype));
  if (n->op == OP_Not && x->dtype != FM_BOOL)
    fm_fail("node '%s' (Not): input '%s' must be bool, got %s", n->name, x->name, fm_dtype_name(x->dtype));
  fm_set_shape(n->out[0], dt, x->rank, x->dims);
}

static KExpr *c(KExpr *like, double v) { return k_const(like->t, v); }

static KExpr *sigmoid(KExpr *x) { return k_div(c(x, 1), k_add(c(x, 1), k_un(KU_EXP, k_un(KU_NEG, x)))); }

/* log(1 + exp(x)) without overflow: max(x, 0) + log(1 + exp(-|x|)). */
static KExpr *softplus(KExpr *x) {
  return k_add(k_max(x, c(x, 0)), k_un(KU_LOG, k_add(c(x, 1), k_un(KU_EXP, k_un(KU_NEG, k_un(KU_ABS, x))))));
}

/* y = f(x) for node n; lo/hi are Clip's bounds (NULL: unbounded). */
static KExpr *unary_expr(Node *n, KExpr *x, KExpr *lo, KExpr *hi) {
  FmDType t = x->t;
  switch (n->op) {
  case OP_Abs: return is_unsigned(t) ? x : k_un(KU_ABS, x);
  case OP_Neg: return k_un(KU_NEG, x);
  case OP_Sqrt: return k_un(KU_SQRT, x);
  case OP_Exp: return k_un(KU_EXP, x);
  case OP_Log: return k_un(KU_LOG, x);
  case OP_Reciprocal: return k_div(c(x, 1), x);
  case OP_Floor: return k_un(KU_FLOOR, x);
  case OP_Ceil: return k_un(KU_CEIL, x);
  case OP_Round: return k_un(KU_ROUND, x);
  case OP_Sign:
    if (is_unsigned(t)) return k_cast(t, k_bin(KB_NE, x, c(x, 0)));
    return k_un(KU_SIGN, x);
  case OP_Not: return k_un(KU_NOT, x);
  case OP_IsNaN: return k_un(KU_ISNAN, x);
  case OP_IsInf: {
    int neg = fm_attr_i(n, "detect_negative", 1) != 0, pos = fm_attr_i(n, "detect_positive", 1) != 0;
    KExpr *inf = k_un(KU_ISINF, x);
    if (neg && pos) return inf;
    if (pos) return k_and(inf, k_bin(KB_GT, x, c(x, 0)));
    if (neg) return k_and(inf, k_lt(x, c(x, 0)));
    return k_const(FM_BOOL, 0);
  }
  case OP_Sin: return k_un(KU_SIN, x);
  case OP_Cos: return k_un(KU_COS, x);
  case OP_Tan: return k_un(KU_TAN, x);
  case OP_Asin: return k_un(KU_ASIN, x);
  case OP_Acos: return k_un(KU_ACOS, x);
  case OP_Atan: return k_un(KU_ATAN, x);
  case OP_Sinh: return k_un(KU_SINH, x);
  case OP_Cosh: return k_un(KU_COSH, x);
  case OP_Asinh: return k_un(KU_ASINH, x);
  case OP_Acosh: return k_un(KU_ACOSH, x);
  case OP_Atanh: return k_un(KU_ATANH, x);
  case OP_Erf: return k_un(KU_ERF, x);
  case OP_Tanh: return k_un(KU_TANH, x);
  case OP_Relu: return k_max(x, c(x, 0));
  case OP_LeakyRelu: {
    double a = fm_attr_f(n, "alpha", 0.01f);
    return k_select(k_lt(x, c(x, 0)), k_mul(x, c(x, a)), x);
  }
  case OP_Elu: {
    double a = fm_attr_f(n, "alpha", 1.0f);
    return k_select(k_lt(x, c(x, 0)), k_mul(c(x, a), k_sub(k_un(KU_EXP, x), c(x, 1))), x);
  }
  case OP_Selu: {
    double a = fm_attr_f(n, "alpha", 1.67326319217681884765625f);
    double gm = fm_attr_f(n, "gamma", 1.05070102214813232421875f);
    return k_select(k_bin(KB_LE, x, c(x, 0)), k_mul(c(x, gm), k_sub(k_mul(c(x, a), k_un(KU_EXP, x)), c(x, a))),
                    k_mul(c(x, gm), x));
  }
  case OP_Celu: {
    double a = fm_attr_f(n, "alpha", 1.0f);
    KExpr *e = k_mul(c(x, a), k_sub(k_un(KU_EXP, k_div(x, c(x, a))), c(x, 1)));
    return k_add(k_max(x, c(x, 0)), k_min(c(x, 0), e));
  }
  case OP_Sigmoid: return sigmoid(x);
  case OP_HardSigmoid: {
    double a = fm_attr_f(n, "alpha", 0.2f), be = fm_attr_f(n, "beta", 0.5f);
    return k_max(c(x, 0), k_min(c(x, 1), k_fma(x, c(x, a), c(x, be))));
  }
  case OP_HardSwish:
    return k_mul(x, k_max(c(x, 0), k_min(c(x, 1), k_fma(x, c(x, 1.0 / 6.0), c(x, 0.5)))));
  case OP_Softplus: return softplus(x);
  case OP_Softsign: return k_div(x, k_add(c(x, 1), k_un(KU_ABS, x)));
  case OP_Mish: return k_mul(x, k_un(KU_TANH, softplus(x)));
  case OP_ThresholdedRelu: {
    double a = fm_attr_f(n, "alpha", 1.0f);
    return k_select(k_bin(KB_GT, x, c(x, a)), x, c(x, 0));
  }
  case OP_Shrink: {
    double bias = fm_attr_f(n, "bias", 0.0f), l = fm_attr_f(n, "lambd", 0.5f);
    /* compare in double so that integer inputs see the exact float thresholds */
    KExpr *xd = k_cast(FM_F64, x);
    return k_select(k_lt(xd, k_const(FM_F64, -l)), k_add(x, c(x, bias)),
                    k_select(k_bin(KB_GT, xd, k_const(FM_F64, l)), k_sub(x, c(x, bias)), c(x, 0)));
  }
  case OP_Clip: {
    KExpr *y = x;
    if (lo) y = k_max(y, lo);
    if (hi) y = k_min(y, hi);
    return y;
  }
  default:
    fm_fail("node '%s' (%s): not an elementwise unary op", n->name, n->op_type);
  }
}

/* y = f(x) over the flat tensor. */
static void lower_flat(KB *b, Node *n, KExpr *lo, KExpr *hi) {
  KBuf *x = kb_in(b, 0), *y = kb_out(b, 0);
  KVar *i = kb_for(b, "i", k_i(0), kb_numel(b, n->out[0]), KL_PARALLEL);
  kb_store(b, y, k_var(i), unary_expr(n, k_load(x, k_var(i)), lo, hi));
  kb_end(b);
}

#define UNARY(op) \
  void fm_infer_##op(Graph *g, Node *n) { infer_same(n, fm_in(n, 0)->dtype); fm_fold_small(g, n); } \
  void fm_lower_##op(KB *b, Node *n) { lower_flat(b, n, NULL, NULL); }
UNARY(Abs) UNARY(Neg) UNARY(Sqrt) UNARY(Exp) UNARY(Log) UNARY(Reciprocal) UNARY(Floor)
UNARY(Ceil) UNARY(Round) UNARY(Sign) UNARY(Not)
UNARY(Sin) UNARY(Cos) UNARY(Tan) UNARY(Asin) UNARY(Acos) UNARY(Atan) UNARY(Sinh) UNARY(Cosh)
UNARY(Asinh) UNARY(Acosh) UNARY(Atanh) UNARY(Erf)
UNARY(Relu) UNARY(LeakyRelu) UNARY(Elu) UNARY(Selu) UNARY(Celu) UNARY(Sigmoid) UNARY(Tanh)
UNARY(HardSigmoid) UNARY(HardSwish) UNARY(Softplus) UNARY(Softsign) UNARY(Mish)
UNARY(ThresholdedRelu) UNARY(Shrink)
#undef UNARY

void fm_infer_IsNaN(Graph *g, Node *n) { infer_same(n, FM_BOOL); fm_fold_small(g, n); }
void fm_lower_IsNaN(KB *b, Node *n) { lower_flat(b, n, NULL, NULL); }
void fm_infer_IsInf(Graph *g, Node *n) { infer_same(n, FM_BOOL); fm_fold_small(g, n); }
void fm_lower_IsInf(KB *b, Node *n) { lower_flat(b, n, NULL, NULL); }

/* ---- Clip: attributes min/max before opset 11, optional scalar inputs after ---- */

void fm_infer_Clip(Graph *g, Node *n) {
  Tensor *x = fm_in(n, 0);
  infer_same(n, x->dtype);
  if (n->opset < 11) {
    fm_fold_small(g, n);
    return;
  }
  for (int i = 1; i < 3 && i < n->nin; i++) {
    Tensor *t = n->in[i];
    if (!t) continue;
    need_known(n, t);
    if (t->dtype != x->dtype)
      fm_fail("node '%s' (Clip): bound '%s' has type %s, input has %s", n->name, t->name,
              fm_dtype_name(t->dtype), fm_dtype_name(x->dtype));
    if (fm_numel(t) != 1)
      fm_fail("node '%s' (Clip): bound '%s' must be a scalar", n->name, t->name);
  }
  fm_fold_small(g, n);
}

void fm_lower_Clip(KB *b, Node *n) {
  FmDType t = n->in[0]->dtype;
  KExpr *lo = NULL, *hi = NULL;
  if (n->opset < 11) {
    if (fm_attr(n, "min")) lo = k_const(t, fm_attr_f(n, "min", 0));
    if (fm_attr(n, "max")) hi = k_const(t, fm_attr_f(n, "max", 0));
  } else {
    KBuf *bl = kb_in(b, 1), *bh = kb_in(b, 2);
    if (bl) lo = k_var(kb_let(b, "lo", t, k_load(bl, k_i(0))));
    if (bh) hi = k_var(kb_let(b, "hi", t, k_load(bh, k_i(0))));
  }
  lower_flat(b, n, lo, hi);
}

/* ---- Cast / CastLike ---- */

/* Opset < 6 names the target type as a string. */
static FmDType cast_target(Node *n) {
  Attr *a = fm_attr(n, "to");
  if (!a) fm_fail("node '%s' (Cast): attribute 'to' is required", n->name);
  if (a->type == FA_STRING) {
    static const struct { const char *s; FmDType t; } names[] = {
        {"FLOAT", FM_F32}, {"UINT8", FM_U8}, {"INT8", FM_I8}, {"UINT16", FM_U16}, {"INT16", FM_I16},
        {"INT32", FM_I32}, {"INT64", FM_I64}, {"BOOL", FM_BOOL}, {"FLOAT16", FM_F16},
        {"DOUBLE", FM_F64}, {"UINT32", FM_U32}, {"UINT64", FM_U64}, {"STRING", FM_STRING}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
      if (!strcmp(a->s, names[i].s)) return names[i].t;
    fm_fail("node '%s' (Cast): unknown target type '%s'", n->name, a->s);
  }
  return (FmDType)fm_attr_i(n, "to", 0);
}

static void infer_cast(Graph *g, Node *n, FmDType to) {
  Tensor *x = fm_in(n, 0);
  need_known(n, x);
  check_type(n, x, x->dtype);
  check_type(n, n->out[0], to);
  fm_set_shape(n->out[0], to, x->rank, x->dims);
  /* shape values stay known: integer values (also k*N) pass, small constants fold */
  if (x->symval) fm_copy_values(g, n->out[0], x);
  else fm_fold_small(g, n);
}

void fm_infer_Cast(Graph *g, Node *n) { infer_cast(g, n, cast_target(n)); }
void fm_infer_CastLike(Graph *g, Node *n) { infer_cast(g, n, fm_in(n, 1)->dtype); }

/* C conversions truncate float -> int toward zero, as ONNX/numpy do; to bool is != 0. */
static void lower_cast(KB *b, Node *n) {
  KBuf *x = kb_in(b, 0), *y = kb_out(b, 0);
  KVar *i = kb_for(b, "i", k_i(0), kb_numel(b, n->out[0]), KL_PARALLEL);
  KExpr *v = k_load(x, k_var(i));
  if (y->t == FM_BOOL && v->t != FM_BOOL) v = k_bin(KB_NE, v, k_const(v->t, 0));
  kb_store(b, y, k_var(i), k_cast(y->t, v));
  kb_end(b);
}
void fm_lower_Cast(KB *b, Node *n) { lower_cast(b, n); }
void fm_lower_CastLike(KB *b, Node *n) { lower_cast(b, n); }

/* ---- Identity, Dropout (inference: the identity; mask all true) ---- */

void fm_infer_Identity(Graph *g, Node *n) {
  Tensor *x = fm_in(n, 0), *y = n->out[0];
  infer_same(n, x->dtype);
  fm_copy_values(g, y, x);
}

static void lower_copy(KB *b, Node *n) {
  KBuf *x = kb_in(b, 0), *y = kb_out(b, 0);
  KVar *i = kb_for(b, "i", k_i(0), kb_numel(b, n->out[0]), KL_PARALLEL);
  kb_store(b, y, k_var(i), k_load(x, k_var(i)));
  kb_end(b);
}
void fm_lower_Identity(KB *b, Node *n) { lower_copy(b, n); }

/* Training mode is accepted only when it cannot drop anything (ratio 0). */
static void dropout_check(Node *n) {
  int training = 0;
  double ratio = 0.5;
  if (n->opset >= 12) {
    Tensor *tm = n->nin > 2 ? n->in[2] : NULL, *r = n->nin > 1 ? n->in[1] : NULL;
    if (tm) {
      if (!tm->data)
        fm_fail("node '%s' (Dropout): training_mode '%s' must be a constant", n->name, tm->name);
      training = fm_const_int(tm, 0) != 0;
    }
    if (r && r->data) ratio = fm_const_f(r, 0);
    else if (r && training)
      fm_fail("node '%s' (Dropout): ratio '%s' must be a constant in training mode", n->name, r->name);
  } else if (n->opset < 7) {
    training = fm_attr_i(n, "is_test", 0) == 0;
    ratio = fm_attr_f(n, "ratio", 0.5f);
  }
  if (training && ratio != 0)
    fm_fail("node '%s' (Dropout): training mode (random dropout, ratio %g) is not supported",
            n->name, ratio);
}

void fm_infer_Dropout(Graph *g, Node *n) {
  Tensor *x = fm_in(n, 0);
  infer_same(n, x->dtype);
  dropout_check(n);
  /* the mask was of the data type before opset 10 */
  if (n->nout > 1 && n->out[1]) fm_set_shape(n->out[1], n->opset < 10 ? x->dtype : FM_BOOL, x->rank, x->dims);
}

void fm_lower_Dropout(KB *b, Node *n) {
  KBuf *x = kb_in(b, 0), *y = kb_out(b, 0), *m = kb_out(b, 1);
  KVar *i = kb_for(b, "i", k_i(0), kb_numel(b, n->out[0]), KL_PARALLEL);
  kb_store(b, y, k_var(i), k_load(x, k_var(i)));
  if (m) kb_store(b, m, k_var(i), k_const(m->t, 1));
  kb_end(b);
}
