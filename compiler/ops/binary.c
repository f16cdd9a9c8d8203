/* binary.c - broadcasting binary, variadic and ternary elementwise ops.
 *
 * Every op here is "out[i] = f(in0[b0(i)], in1[b1(i)], ...)" under ONNX
 * multidirectional broadcasting, lowered by one routine (lower_map) that first
 * collapses the output shape: dims of size 1 are dropped and neighbouring dims
 * that every input reads the same way (all full, or all broadcast) are merged.
 * Equal shapes therefore become one flat parallel loop, and [N,C,H,W] + [C,1,1]
 * becomes three loops whose innermost one streams H*W contiguous elements.
 *
 * Shape inference also evaluates small integer tensors on the host (shape
 * arithmetic such as Shape(x)[0] * 2): values may involve the batch N (Tensor.symval).
 */
#include "ops/ops.h"
#include <assert.h>
#include <math.h>
#include <string.h>

/* ---- shared checks ---- */

static void need_known(Node *n, int i) {
  Tensor *t = fm_in(n, i);
  if (t->dtype == FM_UNDEF || t->rank < 0)
    fm_fail("node '%s' (%s): type or shape of input '%s' is unknown", n->name, n->op_type, t->name);
  for (int d = 0; d < t->rank; d++)
    if (t->dims[d] == FM_DIM_UNKNOWN)
      fm_fail("node '%s' (%s): input '%s' has an unknown dimension", n->name, n->op_type, t->name);
  if (t->dtype == FM_STRING || !fm_dtype_size(t->dtype))
    fm_fail("node '%s' (%s): input '%s' has unsupported type %s", n->name, n->op_type, t->name,
            fm_dtype_name(t->dtype));
}

static int is_float(FmDType t) { return t == FM_F32 || t == FM_F64 || t == FM_F16; }
static int is_unsigned(FmDType t) { return t == FM_U8 || t == FM_U16 || t == FM_U32 || t == FM_U64 || t == FM_BOOL; }
static int is_int(FmDType t) { return !is_float(t) && t != FM_BOOL && t != FM_F16 && t != FM_STRING && t != FM_UNDEF; }

static void same_dtype(Node *n, int nin) {
  Tensor *a = fm_in(n, 0);
  for (int i = 1; i < nin; i++) {
    Tensor *t = fm_in(n, i);
    if (t->dtype != a->dtype)
      fm_fail("node '%s' (%s): inputs '%s' (%s) and '%s' (%s) must have the same type", n->name,
              n->op_type, a->name, fm_dtype_name(a->dtype), t->name, fm_dtype_name(t->dtype));
  }
}

/* ---- legacy (opset < 7) broadcasting: B's shape matches a contiguous run of A's dims
   starting at `axis` (default: the trailing dims), when attribute broadcast=1 ---- */

static int legacy_bcast(Node *n) { return n->opset < 7 && fm_attr_i(n, "broadcast", 0) != 0; }

/* The shape B is read with: A's rank, B's dims placed at axis, 1 elsewhere. */
static void legacy_shape(Node *n, const Tensor *a, const Tensor *bt, Tensor *v) {
  memset(v, 0, sizeof *v);
  v->name = bt->name, v->dtype = bt->dtype, v->rank = a->rank;
  int64_t axis = fm_attr(n, "axis") ? fm_attr_i(n, "axis", 0) : a->rank - bt->rank;
  if (axis < 0) axis += a->rank;
  if (axis < 0 || axis + bt->rank > a->rank)
    fm_fail("node '%s' (%s): legacy broadcast of '%s' at axis %lld does not fit rank %d", n->name,
            n->op_type, bt->name, (long long)axis, a->rank);
  for (int d = 0; d < a->rank; d++) v->dims[d] = 1;
  for (int d = 0; d < bt->rank; d++) {
    int64_t bd = bt->dims[d], ad = a->dims[axis + d];
    if (bd != 1 && bd != ad)
      fm_fail("node '%s' (%s): legacy broadcast: dim %d of '%s' (%lld) does not match '%s'", n->name,
              n->op_type, d, bt->name, (long long)bd, a->name);
    v->dims[axis + d] = bd;
  }
}

/* Input shapes as the op reads them (legacy broadcasting rewritten), output shape. */
static int bcast_shapes(Node *n, int nin, Tensor *views, int64_t *out) {
  for (int i = 0; i < nin; i++) views[i] = *fm_in(n, i);
  if (nin == 2 && legacy_bcast(n)) {
    legacy_shape(n, n->in[0], n->in[1], &views[1]);
    memcpy(out, n->in[0]->dims, sizeof(int64_t) * (size_t)n->in[0]->rank);
    return n->in[0]->rank;
  }
  Tensor *ptrs[16];
  assert(nin <= 16);
  for (int i = 0; i < nin; i++) ptrs[i] = &views[i];
  return fm_bcast_shape(n, nin, ptrs, out);
}

/* ---- inference-time values ----
   Shape arithmetic must be known while shapes are inferred (a Reshape reads it), before
   the fold pass runs: all-constant small nodes are evaluated now through their own
   lowering, and integer values involving N (symval) are tracked as a*N + c. */

void fm_fold_small(Graph *g, Node *n) {
  for (int i = 0; i < n->nin; i++)
    if (n->in[i] && !n->in[i]->data) return;
  int any = 0;
  for (int j = 0; j < n->nout; j++) {
    Tensor *o = n->out[j];
    if (!o) continue;
    int64_t m = fm_numel(o);
    if (m < 0 || m > FM_FOLD_MAX || o->data || !fm_dtype_size(o->dtype)) return;
    any = 1;
  }
  if (!any || !fm_ops[n->op].lower) return;
  KB b;
  kb_begin(&b, g, n, "fold");
  fm_ops[n->op].lower(&b, n);
  void **ptrs = fm_alloc(&g->arena, sizeof(void *) * (size_t)(b.fn->nbufs + 1));
  void *outs[64] = {0};
  for (int i = 0; i < b.fn->nbufs; i++) {
    KBuf *bf = b.fn->bufs[i];
    if (bf->kind == KBUF_TENSOR) {
      Tensor *t = bf->tensor;
      ptrs[i] = t->data ? t->data : fm_alloc(&g->arena, fm_nbytes(t) + 1);
    } else if (bf->kind == KBUF_SCRATCH) {
      if (bf->nelem < 0) return;
      ptrs[i] = fm_alloc(&g->arena, (size_t)bf->nelem * fm_dtype_size(bf->t) + 1);
    }
  }
  char err[256];
  if (fm_kinterp(b.fn, 1, ptrs, err, sizeof err))
    fm_fail("node '%s' (%s): evaluating constant inputs failed: %s", n->name, n->op_type, err);
  for (int j = 0; j < n->nout && j < 64; j++)
    if (n->out[j]) outs[j] = ptrs[kb_tensor(&b, n->out[j])->id];
  for (int j = 0; j < n->nout && j < 64; j++)
    if (n->out[j]) n->out[j]->data = outs[j];
}

typedef struct { int64_t a, c; } Lin; /* a*N + c */

static Lin lin_of(int64_t v) {
  if (fm_sym_is_lit(v)) return (Lin){0, fm_sym_lit_value(v)};
  return v < 0 ? (Lin){-v, 0} : (Lin){0, v};
}

static int64_t lin_enc(Lin x) {
  if (x.a == 0) return x.c >= 0 ? x.c : FM_SYM_LIT(x.c);
  return x.a > 0 && x.c == 0 ? -x.a : FM_DIM_UNKNOWN;
}

static int lin_op(OpKind op, Lin x, Lin y, Lin *r) {
  int same = x.a == y.a && x.c == y.c, cst = !x.a && !y.a;
  switch (op) {
  case OP_Add: case OP_Sum: *r = (Lin){x.a + y.a, x.c + y.c}; return 1;
  case OP_Sub: *r = (Lin){x.a - y.a, x.c - y.c}; return 1;
  case OP_Mul:
    if (x.a && y.a) return 0;
    *r = (Lin){x.a * y.c + y.a * x.c, x.c * y.c};
    return 1;
  case OP_Div:
    if (y.a || y.c == 0 || (y.c == -1 && (x.a == INT64_MIN || x.c == INT64_MIN))) return 0;
    if (x.a && (x.a % y.c || x.c % y.c)) return 0;
    *r = (Lin){x.a / y.c, x.c / y.c};
    return 1;
  case OP_Max: case OP_Min:
    if (same) { *r = x; return 1; }
    if (!cst) return 0;
    *r = (Lin){0, (op == OP_Max) == (x.c > y.c) ? x.c : y.c};
    return 1;
  case OP_Equal:
    if (!same && !cst) return 0;
    *r = (Lin){0, same};
    return 1;
  case OP_Less: case OP_Greater: case OP_LessOrEqual: case OP_GreaterOrEqual:
    if (!same && !cst) return 0;
    if (same) *r = (Lin){0, op == OP_LessOrEqual || op == OP_GreaterOrEqual};
    else *r = (Lin){0, op == OP_Less ? x.c < y.c : op == OP_Greater ? x.c > y.c : op == OP_LessOrEqual ? x.c <= y.c : x.c >= y.c};
    return 1;
  default: return 0;
  }
}

/* Flat host index into t for output flat index k of shape (rank, dims). */
static int64_t host_bcast_index(const Tensor *t, int rank, const int64_t *dims, int64_t k) {
  int64_t idx = 0, stride = 1, rem = k;
  int64_t coord[FM_MAXRANK];
  for (int d = rank - 1; d >= 0; d--) coord[d] = rem % dims[d], rem /= dims[d];
  for (int d = t->rank - 1; d >= 0; d--) {
    int od = rank - t->rank + d;
    if (t->dims[d] != 1) idx += coord[od] * stride;
    stride *= t->dims[d];
  }
  return idx;
}

/* Values of a small integer op whose inputs all have values, some involving N. */
static void eval_sym(Graph *g, Node *n, int nin, Tensor *views) {
  Tensor *o = n->out[0];
  int64_t ne = fm_numel(o);
  if (ne < 0 || ne > FM_FOLD_MAX) return;
  const int64_t *vals[16];
  for (int i = 0; i < nin; i++)
    if (!(vals[i] = fm_values(g, n->in[i]))) return;
  int64_t *res = fm_alloc(&g->arena, sizeof(int64_t) * (size_t)(ne ? ne : 1));
  for (int64_t k = 0; k < ne; k++) {
    Lin v[16] = {{0, 0}};
    for (int i = 0; i < nin; i++) v[i] = lin_of(vals[i][host_bcast_index(&views[i], o->rank, o->dims, k)]);
    Lin acc = v[0];
    if (n->op == OP_Where) acc = v[0].a ? (Lin){0, 1} : v[0].c ? v[1] : v[2]; /* k*N is never 0 */
    else
      for (int i = 1; i < nin; i++)
        if (!lin_op(n->op, acc, v[i], &acc)) return;
    res[k] = lin_enc(acc);
  }
  fm_set_values(g, o, res);
}

static void eval_small(Graph *g, Node *n, int nin, Tensor *views) {
  int alldata = 1;
  for (int i = 0; i < nin; i++) alldata &= n->in[i]->data != NULL;
  if (alldata) fm_fold_small(g, n);
  else eval_sym(g, n, nin, views);
}

/* ---- the elementwise map ---- */

typedef KExpr *(*MapFn)(Node *n, KExpr **v);

/* Stores f(loads) into out (shape oshape) reading bufs[i] with shapes[i] broadcast. */
static void lower_map(KB *b, Node *n, KBuf *out, const Tensor *oshape, int nin, KBuf **bufs,
                      const Tensor *shapes, MapFn f) {
  int r = oshape->rank;
  /* bc[i][d]: input i reads output dim d at index 0 */
  unsigned char bc[16][FM_MAXRANK];
  assert(nin <= 16);
  for (int i = 0; i < nin; i++)
    for (int d = 0; d < r; d++) {
      int id = d - (r - shapes[i].rank);
      int64_t dim = id >= 0 ? shapes[i].dims[id] : 1;
      bc[i][d] = dim == 1 && oshape->dims[d] != 1;
    }
  /* collapsed groups */
  Tensor vo;
  memset(&vo, 0, sizeof vo);
  vo.rank = 0;
  unsigned char gbc[16][FM_MAXRANK];
  for (int d = 0; d < r; d++) {
    int64_t dim = oshape->dims[d];
    if (dim == 1) continue;
    int merge = vo.rank > 0;
    if (merge) {
      int64_t prev = vo.dims[vo.rank - 1];
      if (prev < 0 && dim < 0) merge = 0;
      for (int i = 0; i < nin && merge; i++)
        if (gbc[i][vo.rank - 1] != bc[i][d]) merge = 0;
    }
    if (merge) {
      int64_t prev = vo.dims[vo.rank - 1];
      vo.dims[vo.rank - 1] = prev < 0 || dim < 0 ? -((prev < 0 ? -prev : prev) * (dim < 0 ? -dim : dim)) : prev * dim;
    } else {
      for (int i = 0; i < nin; i++) gbc[i][vo.rank] = bc[i][d];
      vo.dims[vo.rank++] = dim;
    }
  }
  KVar *vars[FM_MAXRANK];
  kb_loops(b, &vo, vars);
  KExpr *idx[FM_MAXRANK];
  for (int d = 0; d < vo.rank; d++) idx[d] = k_var(vars[d]);
  KExpr *vals[16];
  for (int i = 0; i < nin; i++) {
    Tensor vi = vo;
    for (int d = 0; d < vo.rank; d++)
      if (gbc[i][d]) vi.dims[d] = 1;
    vals[i] = k_load(bufs[i], kb_bcast_index(b, &vi, &vo, idx));
  }
  kb_store(b, out, kb_index(b, &vo, idx), f(n, vals));
  kb_end_loops(b, &vo);
}

/* Lowers node n as out0 = f(in...) with its inputs' (legacy-aware) broadcasting. */
static void lower_nodes_map(KB *b, Node *n, int nin, MapFn f) {
  Tensor views[16];
  int64_t od[FM_MAXRANK];
  bcast_shapes(n, nin, views, od);
  KBuf *bufs[16];
  for (int i = 0; i < nin; i++) bufs[i] = kb_in(b, i);
  lower_map(b, n, kb_out(b, 0), n->out[0], nin, bufs, views, f);
}

/* Common inference: broadcast shape, output dtype dt. */
static void infer_bcast(Graph *g, Node *n, int nin, FmDType dt) {
  Tensor views[16];
  int64_t od[FM_MAXRANK];
  if (nin > 16) fm_fail("node '%s' (%s): at most 16 inputs supported, got %d", n->name, n->op_type, nin);
  if (nin < 1) fm_fail("node '%s' (%s): needs at least one input", n->name, n->op_type);
  for (int i = 0; i < nin; i++) need_known(n, i);
  int r = bcast_shapes(n, nin, views, od);
  fm_set_shape(n->out[0], dt, r, od);
  eval_small(g, n, nin, views);
}

/* ---- arithmetic ---- */

static void infer_arith(Graph *g, Node *n) {
  int nin = n->op == OP_Sum || n->op == OP_Mean || n->op == OP_Max || n->op == OP_Min ? n->nin : 2;
  for (int i = 0; i < nin; i++) fm_in(n, i);
  same_dtype(n, nin);
  FmDType t = n->in[0]->dtype;
  if (t == FM_BOOL) fm_fail("node '%s' (%s): bool inputs are not supported", n->name, n->op_type);
  infer_bcast(g, n, nin, t);
}

void fm_infer_Add(Graph *g, Node *n) { infer_arith(g, n); }
void fm_infer_Sub(Graph *g, Node *n) { infer_arith(g, n); }
void fm_infer_Mul(Graph *g, Node *n) { infer_arith(g, n); }
void fm_infer_Div(Graph *g, Node *n) { infer_arith(g, n); }
void fm_infer_Max(Graph *g, Node *n) { infer_arith(g, n); }
void fm_infer_Min(Graph *g, Node *n) { infer_arith(g, n); }
void fm_infer_Sum(Graph *g, Node *n) { infer_arith(g, n); }
void fm_infer_Mean(Graph *g, Node *n) {
  infer_arith(g, n);
  if (!is_float(n->out[0]->dtype))
    fm_fail("node '%s' (Mean): needs float inputs, got %s", n->name, fm_dtype_name(n->out[0]->dtype));
}

static KExpr *f_add(Node *n, KExpr **v) { return fm_apply_act(n, k_add(v[0], v[1])); }
static KExpr *f_sub(Node *n, KExpr **v) { return fm_apply_act(n, k_sub(v[0], v[1])); }
static KExpr *f_mul(Node *n, KExpr **v) { return fm_apply_act(n, k_mul(v[0], v[1])); }
/* Integer a / b and a % b never trap (docs/OPS.md): x / 0 = 0 and x % 0 = 0; INT_MIN / -1
   wraps to INT_MIN and INT_MIN % -1 = 0. The divisor itself is made safe (1 where b is 0,
   or b is -1 and a is the type's minimum: a / 1 = a, a % 1 = 0), so no evaluation order
   of the select can trap, and every backend and the interpreter print the same tree. */
static KExpr *int_divmod(KBinOp op, KExpr *a, KExpr *b) {
  FmDType t = a->t;
  KExpr *zero = k_const(t, 0), *bz = k_bin(KB_EQ, b, zero), *bad = bz;
  if (!is_unsigned(t)) {
    int bits = (int)fm_dtype_size(t) * 8;
    KExpr *min = k_const(t, -ldexp(1.0, bits - 1));
    bad = k_bin(KB_OR, bz, k_and(k_bin(KB_EQ, b, k_const(t, -1)), k_bin(KB_EQ, a, min)));
  }
  KExpr *r = k_bin(op, a, k_select(bad, k_const(t, 1), b));
  return k_select(bz, zero, r);
}

static KExpr *f_div(Node *n, KExpr **v) {
  if (!is_int(v[0]->t)) return fm_apply_act(n, k_div(v[0], v[1]));
  return fm_apply_act(n, int_divmod(KB_DIV, v[0], v[1]));
}

static KExpr *fold_all(Node *n, KExpr **v, KBinOp op) {
  KExpr *e = v[0];
  for (int i = 1; i < n->nin; i++) e = k_bin(op, e, v[i]);
  return e;
}
static KExpr *f_max(Node *n, KExpr **v) { return fold_all(n, v, KB_MAX); }
static KExpr *f_min(Node *n, KExpr **v) { return fold_all(n, v, KB_MIN); }
static KExpr *f_sum(Node *n, KExpr **v) { return fold_all(n, v, KB_ADD); }
static KExpr *f_mean(Node *n, KExpr **v) {
  KExpr *s = fold_all(n, v, KB_ADD);
  return n->nin == 1 ? s : k_div(s, k_const(s->t, n->nin));
}

void fm_lower_Add(KB *b, Node *n) { lower_nodes_map(b, n, 2, f_add); }
void fm_lower_Sub(KB *b, Node *n) { lower_nodes_map(b, n, 2, f_sub); }
void fm_lower_Mul(KB *b, Node *n) { lower_nodes_map(b, n, 2, f_mul); }
void fm_lower_Div(KB *b, Node *n) { lower_nodes_map(b, n, 2, f_div); }
void fm_lower_Max(KB *b, Node *n) { lower_nodes_map(b, n, n->nin, f_max); }
void fm_lower_Min(KB *b, Node *n) { lower_nodes_map(b, n, n->nin, f_min); }
void fm_lower_Sum(KB *b, Node *n) { lower_nodes_map(b, n, n->nin, f_sum); }
void fm_lower_Mean(KB *b, Node *n) { lower_nodes_map(b, n, n->nin, f_mean); }

/* Pow: base and exponent types may differ; the result has the base's type. */
void fm_infer_Pow(Graph *g, Node *n) {
  fm_in(n, 0), fm_in(n, 1);
  if (n->in[0]->dtype == FM_BOOL || n->in[1]->dtype == FM_BOOL)
    fm_fail("node '%s' (Pow): bool inputs are not supported", n->name);
  infer_bcast(g, n, 2, n->in[0]->dtype);
}

static KExpr *f_pow(Node *n, KExpr **v) {
  FmDType t = v[0]->t;
  /* float bases compute in their own precision; integer bases in double, as numpy */
  FmDType ct = is_float(t) ? t : FM_F64;
  KExpr *r = k_bin(KB_POW, k_cast(ct, v[0]), k_cast(ct, v[1]));
  return k_cast(t, r);
}
void fm_lower_Pow(KB *b, Node *n) { lower_nodes_map(b, n, 2, f_pow); }

/* Mod: fmod=1 takes the dividend's sign (C fmod / %); fmod=0 the divisor's (Python). */
void fm_infer_Mod(Graph *g, Node *n) {
  fm_in(n, 0), fm_in(n, 1);
  same_dtype(n, 2);
  int64_t fm = fm_attr_i(n, "fmod", 0);
  if (fm != 0 && fm != 1) fm_fail("node '%s' (Mod): fmod must be 0 or 1, got %lld", n->name, (long long)fm);
  infer_bcast(g, n, 2, n->in[0]->dtype);
}

static KExpr *f_mod(Node *n, KExpr **v) {
  KExpr *r = is_int(v[0]->t) ? int_divmod(KB_MOD, v[0], v[1]) : k_mod(v[0], v[1]);
  if (fm_attr_i(n, "fmod", 0) || is_unsigned(v[0]->t)) return r;
  /* r != 0 and sign(r) != sign(divisor): shift by the divisor */
  KExpr *z = k_const(r->t, 0);
  KExpr *fix = k_and(k_bin(KB_NE, r, z), k_bin(KB_XOR, k_lt(r, z), k_lt(v[1], z)));
  return k_select(fix, k_add(r, v[1]), r);
}
void fm_lower_Mod(KB *b, Node *n) { lower_nodes_map(b, n, 2, f_mod); }

/* PRelu: slope broadcasts unidirectionally to X. Before opset 7, a 1-D slope of
   X's channel count is per channel (dim 1). */
static void prelu_slope_shape(Node *n, Tensor *v) {
  Tensor *x = n->in[0], *s = n->in[1];
  *v = *s;
  if (n->opset < 7 && s->rank == 1 && x->rank > 2 && s->dims[0] == x->dims[1] && s->dims[0] != 1) {
    v->rank = x->rank - 1;
    v->dims[0] = s->dims[0];
    for (int d = 1; d < v->rank; d++) v->dims[d] = 1;
  }
}

void fm_infer_PRelu(Graph *g, Node *n) {
  need_known(n, 0), need_known(n, 1);
  same_dtype(n, 2);
  Tensor *x = n->in[0], v;
  prelu_slope_shape(n, &v);
  Tensor *pair[2] = {x, &v};
  int64_t od[FM_MAXRANK];
  int r = fm_bcast_shape(n, 2, pair, od);
  if (r != x->rank || memcmp(od, x->dims, sizeof(int64_t) * (size_t)r))
    fm_fail("node '%s' (PRelu): slope '%s' does not broadcast to the shape of '%s'", n->name,
            n->in[1]->name, x->name);
  fm_same_shape(n->out[0], x);
}

static KExpr *f_prelu(Node *n, KExpr **v) {
  return k_select(k_lt(v[0], k_const(v[0]->t, 0)), k_mul(v[0], v[1]), v[0]);
}
void fm_lower_PRelu(KB *b, Node *n) {
  Tensor views[2] = {*n->in[0]};
  prelu_slope_shape(n, &views[1]);
  KBuf *bufs[2] = {kb_in(b, 0), kb_in(b, 1)};
  lower_map(b, n, kb_out(b, 0), n->out[0], 2, bufs, views, f_prelu);
}

/* BitShift: direction LEFT or RIGHT, on unsigned integers. */
static int shift_left(Node *n) {
  const char *d = fm_attr_s(n, "direction", NULL);
  if (!d) fm_fail("node '%s' (BitShift): attribute 'direction' is required", n->name);
  if (!strcmp(d, "LEFT")) return 1;
  if (!strcmp(d, "RIGHT")) return 0;
  fm_fail("node '%s' (BitShift): direction must be LEFT or RIGHT, got '%s'", n->name, d);
}

void fm_infer_BitShift(Graph *g, Node *n) {
  fm_in(n, 0), fm_in(n, 1);
  same_dtype(n, 2);
  shift_left(n);
  if (!is_int(n->in[0]->dtype))
    fm_fail("node '%s' (BitShift): needs integer inputs, got %s", n->name, fm_dtype_name(n->in[0]->dtype));
  infer_bcast(g, n, 2, n->in[0]->dtype);
}

static KExpr *f_shift(Node *n, KExpr **v) { return k_bin(shift_left(n) ? KB_SHL : KB_SHR, v[0], v[1]); }
void fm_lower_BitShift(KB *b, Node *n) { lower_nodes_map(b, n, 2, f_shift); }

/* ---- comparisons and logic: bool outputs ---- */

static void infer_cmp(Graph *g, Node *n) {
  fm_in(n, 0), fm_in(n, 1);
  same_dtype(n, 2);
  infer_bcast(g, n, 2, FM_BOOL);
}

static void infer_logic(Graph *g, Node *n) {
  fm_in(n, 0), fm_in(n, 1);
  for (int i = 0; i < 2; i++)
    if (n->in[i]->dtype != FM_BOOL)
      fm_fail("node '%s' (%s): input '%s' must be bool, got %s", n->name, n->op_type, n->in[i]->name,
              fm_dtype_name(n->in[i]->dtype));
  infer_bcast(g, n, 2, FM_BOOL);
}

void fm_infer_Equal(Graph *g, Node *n) { infer_cmp(g, n); }
void fm_infer_Greater(Graph *g, Node *n) { infer_cmp(g, n); }
void fm_infer_Less(Graph *g, Node *n) { infer_cmp(g, n); }
void fm_infer_GreaterOrEqual(Graph *g, Node *n) { infer_cmp(g, n); }
void fm_infer_LessOrEqual(Graph *g, Node *n) { infer_cmp(g, n); }
void fm_infer_And(Graph *g, Node *n) { infer_logic(g, n); }
void fm_infer_Or(Graph *g, Node *n) { infer_logic(g, n); }
void fm_infer_Xor(Graph *g, Node *n) { infer_logic(g, n); }

static KExpr *f_eq(Node *n, KExpr **v) { return k_bin(KB_EQ, v[0], v[1]); }
static KExpr *f_gt(Node *n, KExpr **v) { return k_bin(KB_GT, v[0], v[1]); }
static KExpr *f_lt(Node *n, KExpr **v) { return k_bin(KB_LT, v[0], v[1]); }
static KExpr *f_ge(Node *n, KExpr **v) { return k_bin(KB_GE, v[0], v[1]); }
static KExpr *f_le(Node *n, KExpr **v) { return k_bin(KB_LE, v[0], v[1]); }
static KExpr *f_and(Node *n, KExpr **v) { return k_bin(KB_AND, v[0], v[1]); }
static KExpr *f_or(Node *n, KExpr **v) { return k_bin(KB_OR, v[0], v[1]); }
static KExpr *f_xor(Node *n, KExpr **v) { return k_bin(KB_XOR, v[0], v[1]); }

void fm_lower_Equal(KB *b, Node *n) { lower_nodes_map(b, n, 2, f_eq); }
void fm_lower_Greater(KB *b, Node *n) { lower_nodes_map(b, n, 2, f_gt); }
void fm_lower_Less(KB *b, Node *n) { lower_nodes_map(b, n, 2, f_lt); }
void fm_lower_GreaterOrEqual(KB *b, Node *n) { lower_nodes_map(b, n, 2, f_ge); }
void fm_lower_LessOrEqual(KB *b, Node *n) { lower_nodes_map(b, n, 2, f_le); }
void fm_lower_And(KB *b, Node *n) { lower_nodes_map(b, n, 2, f_and); }
void fm_lower_Or(KB *b, Node *n) { lower_nodes_map(b, n, 2, f_or); }
void fm_lower_Xor(KB *b, Node *n) { lower_nodes_map(b, n, 2, f_xor); }

/* Where(cond, X, Y): three-way broadcast. */
void fm_infer_Where(Graph *g, Node *n) {
  fm_in(n, 0), fm_in(n, 1), fm_in(n, 2);
  if (n->in[0]->dtype != FM_BOOL)
    fm_fail("node '%s' (Where): condition '%s' must be bool, got %s", n->name, n->in[0]->name,
            fm_dtype_name(n->in[0]->dtype));
  if (n->in[1]->dtype != n->in[2]->dtype)
    fm_fail("node '%s' (Where): '%s' (%s) and '%s' (%s) must have the same type", n->name,
            n->in[1]->name, fm_dtype_name(n->in[1]->dtype), n->in[2]->name, fm_dtype_name(n->in[2]->dtype));
  Tensor views[3];
  int64_t od[FM_MAXRANK];
  for (int i = 0; i < 3; i++) need_known(n, i);
  int r = bcast_shapes(n, 3, views, od);
  fm_set_shape(n->out[0], n->in[1]->dtype, r, od);
  eval_small(g, n, 3, views);
}

static KExpr *f_where(Node *n, KExpr **v) { return k_select(v[0], v[1], v[2]); }
void fm_lower_Where(KB *b, Node *n) { lower_nodes_map(b, n, 3, f_where); }
