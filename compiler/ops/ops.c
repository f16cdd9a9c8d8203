/* ops.c - the op table (from ir/ops.def) and helpers shared by the op files. */
#include "ops/ops.h"
#include <string.h>

/* Every op of ops.def must have both functions: a missing one is a link error, so an
   op cannot be half-added. (ops.h declares them.) OP_UNKNOWN stands for every op
   that is not in the table; check_ops reports those before anything calls these. */
void fm_infer_UNKNOWN(Graph *g, Node *n) { fm_fail("node '%s': unsupported op %s", n->name, n->op_type); }
void fm_lower_UNKNOWN(KB *b, Node *n) { fm_fail("node '%s': unsupported op %s", n->name, n->op_type); }

const FmOpInfo fm_ops[OP_COUNT] = {
#define OP(id, domain, family) [OP_##id] = {#id, domain, #family, fm_infer_##id, fm_lower_##id},
#include "ir/ops.def"
#undef OP
};

const char *const fm_op_names[OP_COUNT] = {
#define OP(id, domain, family) [OP_##id] = #id,
#include "ir/ops.def"
#undef OP
};

OpKind fm_op_lookup(const char *domain, const char *op_type) {
  if (!domain || !strcmp(domain, "ai.onnx")) domain = "";
  for (int i = 1; i < OP_COUNT; i++)
    if (!strcmp(fm_op_names[i], op_type) && !strcmp(fm_ops[i].domain, domain)) return (OpKind)i;
  return OP_UNKNOWN;
}

Tensor *fm_in(Node *n, int i) {
  if (i >= n->nin || !n->in[i])
    fm_fail("node '%s' (%s): input %d is missing", n->name, n->op_type, i);
  return n->in[i];
}

void fm_set_shape(Tensor *t, FmDType dt, int rank, const int64_t *dims) {
  if (rank > FM_MAXRANK) fm_fail("tensor '%s': rank %d exceeds %d", t->name, rank, FM_MAXRANK);
  t->dtype = dt;
  t->rank = rank;
  for (int i = 0; i < rank; i++) t->dims[i] = dims[i];
  fm_check_size(t); /* the shapes pass names the node */
}

void fm_same_shape(Tensor *dst, const Tensor *src) { fm_set_shape(dst, src->dtype, src->rank, src->dims); }

int fm_bcast_shape(Node *n, int nin, Tensor **ins, int64_t *out) {
  int rank = 0;
  for (int i = 0; i < nin; i++)
    if (ins[i] && ins[i]->rank > rank) rank = ins[i]->rank;
  for (int d = 0; d < rank; d++) out[d] = 1;
  for (int i = 0; i < nin; i++) {
    Tensor *t = ins[i];
    if (!t) continue;
    for (int d = 0; d < t->rank; d++) {
      int od = rank - t->rank + d;
      int64_t a = out[od], b = t->dims[d];
      if (b == 1) continue;
      if (a == 1 || a == b) out[od] = b;
      else {
        Arena ar = {0};
        const char *s1 = fm_shape_str(&ar, ins[0]), *s2 = fm_shape_str(&ar, t);
        char m[300];
        snprintf(m, sizeof m, "node '%s' (%s): shapes %s and %s cannot be broadcast", n->name,
                 n->op_type, s1, s2);
        fm_arena_free(&ar);
        fm_fail("%s", m);
      }
    }
  }
  return rank;
}

int64_t fm_norm_axis(Node *n, int64_t axis, int rank) {
  if (axis < -rank || axis >= (rank ? rank : 1))
    fm_fail("node '%s' (%s): axis %lld out of range for rank %d", n->name, n->op_type,
            (long long)axis, rank);
  return axis < 0 ? axis + rank : axis;
}

const void *fm_const_data(Node *n, int i, const char *what) {
  Tensor *t = fm_in(n, i);
  if (!t->data)
    fm_fail("node '%s' (%s): %s ('%s') must be a constant known at compile time", n->name,
            n->op_type, what, t->name);
  return t->data;
}

int64_t fm_const_int(const Tensor *t, int64_t k) {
  switch (t->dtype) {
  case FM_I64: return ((const int64_t *)t->data)[k];
  case FM_I32: return ((const int32_t *)t->data)[k];
  case FM_I16: return ((const int16_t *)t->data)[k];
  case FM_I8: return ((const int8_t *)t->data)[k];
  case FM_U8: case FM_BOOL: return ((const uint8_t *)t->data)[k];
  case FM_U16: return ((const uint16_t *)t->data)[k];
  case FM_U32: return ((const uint32_t *)t->data)[k];
  case FM_U64: return (int64_t)((const uint64_t *)t->data)[k];
  case FM_F32: return (int64_t)((const float *)t->data)[k];
  case FM_F64: return (int64_t)((const double *)t->data)[k];
  default: fm_fail("tensor '%s': dtype %s not usable as an integer", t->name, fm_dtype_name(t->dtype));
  }
}

double fm_const_f(const Tensor *t, int64_t k) {
  switch (t->dtype) {
  case FM_F32: return ((const float *)t->data)[k];
  case FM_F64: return ((const double *)t->data)[k];
  default: return (double)fm_const_int(t, k);
  }
}

/* The activation a fusion pass folded into n (n->fused_act), applied to v. Relu is
   a compare and select, (v > 0) ? v : 0 - fmaxf(v, 0) for every v but -0 (and NaN
   gives 0 like fmaxf) - because C compilers turn it into vmaxps, where fmaxf stays
   a libm call that blocks vectorisation unless -ffinite-math-only. */
KExpr *fm_apply_act(Node *n, KExpr *v) {
  switch (n->fused_act) {
  case 0: return v;
  case OP_Relu: return k_select(k_bin(KB_GT, v, k_const(v->t, 0)), v, k_const(v->t, 0));
  case OP_LeakyRelu: return k_select(k_lt(v, k_const(v->t, 0)), k_mul(v, k_const(v->t, n->act_alpha)), v);
  case OP_Clip: return k_min(k_max(v, k_const(v->t, n->act_alpha)), k_const(v->t, n->act_beta));
  case OP_Sigmoid:
    return k_div(k_const(v->t, 1), k_add(k_const(v->t, 1), k_un(KU_EXP, k_un(KU_NEG, v))));
  case OP_Tanh: return k_un(KU_TANH, v);
  default: fm_fail("node '%s': cannot fuse activation %s", n->name, fm_op_names[n->fused_act]);
  }
}
