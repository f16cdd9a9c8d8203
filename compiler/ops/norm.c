/* norm.c - normalisation (BatchNormalization, InstanceNormalization,
 * LayerNormalization, LRN, MeanVarianceNormalization), softmax-like ops
 * (Softmax, LogSoftmax, Hardmax) and quantisation (QuantizeLinear, DequantizeLinear).
 *
 * Most of these see a tensor as [outer, C, inner] around one axis: the outer*C
 * rows are independent (the parallel loop), and each row is reduced or scaled over
 * its inner elements. Means and variances take two passes (mean first, then the
 * squared deviations), which keeps them accurate for data far from zero.
 */
#include "ops/ops.h"
#include <math.h>
#include <string.h>

static int is_float(FmDType t) { return t == FM_F32 || t == FM_F64 || t == FM_F16; }

static Tensor *known_in(Node *n, int i) {
  Tensor *t = fm_in(n, i);
  if (t->dtype == FM_UNDEF || t->rank < 0)
    fm_fail("node '%s' (%s): type or shape of input '%s' is unknown", n->name, n->op_type, t->name);
  for (int d = 0; d < t->rank; d++)
    if (t->dims[d] == FM_DIM_UNKNOWN)
      fm_fail("node '%s' (%s): input '%s' has an unknown dimension", n->name, n->op_type, t->name);
  return t;
}

static Tensor *float_in(Node *n, int i) {
  Tensor *t = known_in(n, i);
  if (!is_float(t->dtype))
    fm_fail("node '%s' (%s): input '%s' must be float or double, got %s", n->name, n->op_type,
            t->name, fm_dtype_name(t->dtype));
  return t;
}

/* Optional input i (absent or empty name -> NULL). */
static Tensor *opt_in(Node *n, int i) { return i < n->nin ? n->in[i] : NULL; }
static Tensor *opt_out(Node *n, int i) { return i < n->nout ? n->out[i] : NULL; }

/* Product of dims[from..to) as an index expression (symbolic dims allowed). */
static KExpr *prod(KB *b, const Tensor *t, int from, int to) {
  KExpr *e = k_i(1);
  for (int d = from; d < to; d++) e = k_mul(e, kb_dim(b, t->dims[d]));
  return e;
}

/* ===================== BatchNormalization ===================== */

static int bn_training(Node *n) { return n->opset >= 14 && fm_attr_i(n, "training_mode", 0) != 0; }

void fm_infer_BatchNormalization(Graph *g, Node *n) {
  Tensor *x = float_in(n, 0);
  if (x->rank < 2) fm_fail("node '%s' (BatchNormalization): input '%s' needs rank >= 2", n->name, x->name);
  int64_t c = x->dims[1];
  if (c < 0) fm_fail("node '%s' (BatchNormalization): the channel dim of '%s' must be known", n->name, x->name);
  int spatial = n->opset < 9 ? (int)fm_attr_i(n, "spatial", 1) : 1;
  int64_t per = c;
  if (!spatial) {
    for (int d = 2; d < x->rank; d++) {
      if (x->dims[d] < 0) fm_fail("node '%s' (BatchNormalization): spatial=0 needs known dims", n->name);
      per *= x->dims[d];
    }
  }
  static const char *names[] = {"scale", "B", "mean", "var"};
  for (int i = 1; i < 5; i++) {
    Tensor *p = known_in(n, i);
    if (p->dtype != x->dtype)
      fm_fail("node '%s' (BatchNormalization): %s '%s' has type %s, input has %s", n->name,
              names[i - 1], p->name, fm_dtype_name(p->dtype), fm_dtype_name(x->dtype));
    if (fm_numel(p) != per)
      fm_fail("node '%s' (BatchNormalization): %s '%s' must have %lld elements", n->name,
              names[i - 1], p->name, (long long)per);
  }
  if (bn_training(n) && !spatial) fm_fail("node '%s' (BatchNormalization): training with spatial=0", n->name);
  fm_same_shape(n->out[0], x);
  /* running mean/var (and, before opset 14, saved mean/var): [C] */
  for (int j = 1; j < n->nout; j++)
    if (n->out[j]) fm_same_shape(n->out[j], n->in[j <= 2 ? j + 2 : j]);
}

/* Training mode: statistics of this batch normalise it, and update the running ones. */
static void bn_train(KB *b, Node *n) {
  Tensor *xt = n->in[0];
  FmDType t = xt->dtype;
  KBuf *x = kb_in(b, 0), *y = kb_out(b, 0), *sc = kb_in(b, 1), *bi = kb_in(b, 2);
  KBuf *rm = kb_in(b, 3), *rv = kb_in(b, 4), *om = kb_out(b, 1), *ov = kb_out(b, 2);
  double eps = fm_attr_f(n, "epsilon", 1e-5f), mom = fm_attr_f(n, "momentum", 0.9f);
  int64_t C = xt->dims[1];
  KExpr *inner = prod(b, xt, 2, xt->rank), *N = kb_dim(b, xt->dims[0]);
  KExpr *cnt = k_cast(t, k_mul(N, inner));
  KVar *c = kb_for(b, "c", k_i(0), k_i(C), KL_PARALLEL);
  KVar *s = kb_let(b, "s", t, k_const(t, 0));
  KVar *nn = kb_for(b, "n", k_i(0), N, KL_SERIAL);
  KExpr *row = k_mul(k_add(k_mul(k_var(nn), k_i(C)), k_var(c)), inner);
  KVar *i = kb_for(b, "i", k_i(0), inner, KL_SERIAL);
  kb_acc(b, s, KB_ADD, k_load(x, k_add(row, k_var(i))));
  kb_end(b), kb_end(b);
  KVar *mean = kb_let(b, "mean", t, k_div(k_var(s), cnt));
  KVar *v = kb_let(b, "v", t, k_const(t, 0));
  nn = kb_for(b, "n", k_i(0), N, KL_SERIAL);
  row = k_mul(k_add(k_mul(k_var(nn), k_i(C)), k_var(c)), inner);
  i = kb_for(b, "i", k_i(0), inner, KL_SERIAL);
  KVar *dv = kb_let(b, "d", t, k_sub(k_load(x, k_add(row, k_var(i))), k_var(mean)));
  kb_acc(b, v, KB_ADD, k_mul(k_var(dv), k_var(dv)));
  kb_end(b), kb_end(b);
  KVar *var = kb_let(b, "var", t, k_div(k_var(v), cnt));
  KVar *a = kb_let(b, "a", t, k_div(k_load(sc, k_var(c)), k_un(KU_SQRT, k_add(k_var(var), k_const(t, eps)))));
  nn = kb_for(b, "n", k_i(0), N, KL_SERIAL);
  row = k_mul(k_add(k_mul(k_var(nn), k_i(C)), k_var(c)), inner);
  i = kb_for(b, "i", k_i(0), inner, KL_SERIAL);
  KExpr *yv = k_add(k_mul(k_sub(k_load(x, k_add(row, k_var(i))), k_var(mean)), k_var(a)), k_load(bi, k_var(c)));
  kb_store(b, y, k_add(row, k_var(i)), fm_apply_act(n, yv));
  kb_end(b), kb_end(b);
  if (om)
    kb_store(b, om, k_var(c), k_add(k_mul(k_load(rm, k_var(c)), k_const(t, mom)), k_mul(k_var(mean), k_const(t, 1 - mom))));
  if (ov)
    kb_store(b, ov, k_var(c), k_add(k_mul(k_load(rv, k_var(c)), k_const(t, mom)), k_mul(k_var(var), k_const(t, 1 - mom))));
  kb_end(b);
}

/* Inference: y = x * a[c] + b[c] with a = scale / sqrt(var + eps), b = B - mean * a,
   folded at compile time when the parameters are constants. */
void fm_lower_BatchNormalization(KB *b, Node *n) {
  if (bn_training(n)) { bn_train(b, n); return; }
  Tensor *xt = n->in[0];
  FmDType t = xt->dtype;
  double eps = fm_attr_f(n, "epsilon", 1e-5f);
  int64_t C = xt->dims[1];
  int64_t per = fm_numel(n->in[1]);
  int spatial = per == C;
  KBuf *x = kb_in(b, 0), *y = kb_out(b, 0);
  KBuf *pa = NULL, *pb = NULL;
  int isconst = 1;
  for (int i = 1; i < 5; i++) isconst &= n->in[i]->data != NULL;
  if (t == FM_F16) isconst = 0; /* the folded tables are float or double */
  if (isconst) {
    size_t es = fm_dtype_size(t);
    char *ca = fm_alloc(b->a, es * (size_t)per), *cb = fm_alloc(b->a, es * (size_t)per);
    for (int64_t k = 0; k < per; k++) {
      double sc = fm_const_f(n->in[1], k), bi = fm_const_f(n->in[2], k);
      double mu = fm_const_f(n->in[3], k), var = fm_const_f(n->in[4], k);
      double a = sc / sqrt(var + eps), bb = bi - mu * a;
      if (t == FM_F32) ((float *)ca)[k] = (float)a, ((float *)cb)[k] = (float)bb;
      else ((double *)ca)[k] = a, ((double *)cb)[k] = bb;
    }
    pa = kb_const(b, "bn_a", t, per, ca);
    pb = kb_const(b, "bn_b", t, per, cb);
  }
  KExpr *inner = prod(b, xt, 2, xt->rank);
  KVar *nc = kb_for(b, "nc", k_i(0), k_mul(kb_dim(b, xt->dims[0]), k_i(C)), KL_PARALLEL);
  KExpr *c = k_mod(k_var(nc), k_i(C));
  KExpr *a = NULL, *bb = NULL;
  if (spatial) {
    if (isconst) {
      a = k_var(kb_let(b, "a", t, k_load(pa, c)));
      bb = k_var(kb_let(b, "b", t, k_load(pb, c)));
    } else {
      KVar *va = kb_let(b, "a", t, k_div(k_load(kb_in(b, 1), c),
                                         k_un(KU_SQRT, k_add(k_load(kb_in(b, 4), c), k_const(t, eps)))));
      a = k_var(va);
      bb = k_var(kb_let(b, "b", t, k_sub(k_load(kb_in(b, 2), c), k_mul(k_load(kb_in(b, 3), c), a))));
    }
  }
  KVar *i = kb_for(b, "i", k_i(0), inner, KL_SERIAL);
  KExpr *idx = k_add(k_mul(k_var(nc), inner), k_var(i));
  if (!spatial) {
    KExpr *pi = k_add(k_mul(c, inner), k_var(i));
    if (isconst) a = k_load(pa, pi), bb = k_load(pb, pi);
    else {
      a = k_div(k_load(kb_in(b, 1), pi), k_un(KU_SQRT, k_add(k_load(kb_in(b, 4), pi), k_const(t, eps))));
      bb = k_sub(k_load(kb_in(b, 2), pi), k_mul(k_load(kb_in(b, 3), pi), a));
    }
  }
  kb_store(b, y, idx, fm_apply_act(n, k_fma(k_load(x, idx), a, bb)));
  kb_end(b);
  kb_end(b);
  /* inference: the "updated" statistics are the given ones */
  for (int j = 1; j < n->nout && j <= 4; j++) {
    KBuf *o = kb_out(b, j);
    if (!o) continue;
    KBuf *src = kb_in(b, j <= 2 ? j + 2 : j);
    KVar *k = kb_for(b, "k", k_i(0), k_i(per), KL_SERIAL);
    kb_store(b, o, k_var(k), k_load(src, k_var(k)));
    kb_end(b);
  }
}

/* ===================== InstanceNormalization ===================== */

void fm_infer_InstanceNormalization(Graph *g, Node *n) {
  Tensor *x = float_in(n, 0);
  if (x->rank < 3) fm_fail("node '%s' (InstanceNormalization): input '%s' needs rank >= 3", n->name, x->name);
  int64_t c = x->dims[1];
  for (int i = 1; i < 3; i++) {
    Tensor *p = known_in(n, i);
    if (p->dtype != x->dtype || fm_numel(p) != c)
      fm_fail("node '%s' (InstanceNormalization): '%s' must be %s with %lld elements", n->name,
              p->name, fm_dtype_name(x->dtype), (long long)c);
  }
  fm_same_shape(n->out[0], x);
}

/* Mean and variance of row[0..len) (two passes); returns the variance variable. */
static KVar *row_stats(KB *b, KBuf *x, KExpr *base, KExpr *len, FmDType t, KVar **mean) {
  KVar *s = kb_let(b, "s", t, k_const(t, 0));
  KVar *i = kb_for(b, "i", k_i(0), len, KL_SERIAL);
  kb_acc(b, s, KB_ADD, k_load(x, k_add(base, k_var(i))));
  kb_end(b);
  *mean = kb_let(b, "mean", t, k_div(k_var(s), k_cast(t, len)));
  KVar *v = kb_let(b, "v", t, k_const(t, 0));
  i = kb_for(b, "i", k_i(0), len, KL_SERIAL);
  KVar *d = kb_let(b, "d", t, k_sub(k_load(x, k_add(base, k_var(i))), k_var(*mean)));
  kb_acc(b, v, KB_ADD, k_mul(k_var(d), k_var(d)));
  kb_end(b);
  return kb_let(b, "var", t, k_div(k_var(v), k_cast(t, len)));
}

void fm_lower_InstanceNormalization(KB *b, Node *n) {
  Tensor *xt = n->in[0];
  FmDType t = xt->dtype;
  double eps = fm_attr_f(n, "epsilon", 1e-5f);
  int64_t C = xt->dims[1];
  KBuf *x = kb_in(b, 0), *y = kb_out(b, 0), *sc = kb_in(b, 1), *bi = kb_in(b, 2);
  KExpr *inner = prod(b, xt, 2, xt->rank);
  KVar *nc = kb_for(b, "nc", k_i(0), k_mul(kb_dim(b, xt->dims[0]), k_i(C)), KL_PARALLEL);
  KExpr *c = k_mod(k_var(nc), k_i(C)), *base = k_mul(k_var(nc), inner);
  KVar *mean, *var = row_stats(b, x, base, inner, t, &mean);
  KVar *a = kb_let(b, "a", t, k_div(k_load(sc, c), k_un(KU_SQRT, k_add(k_var(var), k_const(t, eps)))));
  KVar *bb = kb_let(b, "b", t, k_sub(k_load(bi, c), k_mul(k_var(mean), k_var(a))));
  KVar *i = kb_for(b, "i", k_i(0), inner, KL_SERIAL);
  kb_store(b, y, k_add(base, k_var(i)), k_fma(k_load(x, k_add(base, k_var(i))), k_var(a), k_var(bb)));
  kb_end(b);
  kb_end(b);
}

/* ===================== LayerNormalization (opset 17) ===================== */

/* Scale and B broadcast (unidirectionally) to X's dims [axis, rank). */
static void ln_check_param(Node *n, Tensor *x, int axis, Tensor *p) {
  int m = x->rank - axis;
  int ok = p->rank <= m;
  for (int d = 0; ok && d < p->rank; d++) {
    int64_t pd = p->dims[d], xd = x->dims[axis + m - p->rank + d];
    ok = pd == 1 || pd == xd;
  }
  if (!ok || p->dtype != x->dtype)
    fm_fail("node '%s' (LayerNormalization): '%s' (%s) must broadcast to the normalised dims of '%s' (%s)",
            n->name, p->name, fm_dtype_name(p->dtype), x->name, fm_dtype_name(x->dtype));
}

void fm_infer_LayerNormalization(Graph *g, Node *n) {
  Tensor *x = float_in(n, 0);
  int axis = (int)fm_norm_axis(n, fm_attr_i(n, "axis", -1), x->rank);
  ln_check_param(n, x, axis, known_in(n, 1));
  if (opt_in(n, 2)) ln_check_param(n, x, axis, known_in(n, 2));
  fm_same_shape(n->out[0], x);
  int64_t sd[FM_MAXRANK];
  for (int d = 0; d < x->rank; d++) sd[d] = d < axis ? x->dims[d] : 1;
  int64_t st = fm_attr_i(n, "stash_type", 1);
  FmDType u = st == 1 ? FM_F32 : (FmDType)st;
  if (u != FM_F32 && u != FM_F64) fm_fail("node '%s' (LayerNormalization): unsupported stash_type %lld", n->name, (long long)st);
  for (int j = 1; j < 3; j++)
    if (opt_out(n, j)) fm_set_shape(n->out[j], u, x->rank, sd);
}

/* Index into param p (broadcast to x's dims [axis, rank)) at flat position j of a row. */
static KExpr *ln_param_index(KB *b, Tensor *x, int axis, Tensor *p, KExpr *j) {
  int64_t pn = fm_numel(p);
  if (pn == 1) return k_i(0);
  int m = x->rank - axis, full = p->rank <= m;
  for (int d = 0; d < p->rank; d++) full &= p->dims[d] == x->dims[axis + m - p->rank + d];
  if (full) return p->rank == m ? j : k_mod(j, k_i(pn)); /* missing leading dims repeat it */
  KExpr *idx = k_i(0), *pstride = k_i(1), *xstride = k_i(1);
  for (int d = p->rank - 1; d >= 0; d--) {
    int64_t xd = x->dims[axis + m - p->rank + d];
    if (p->dims[d] != 1) idx = k_add(idx, k_mul(k_mod(k_div(j, xstride), kb_dim(b, xd)), pstride));
    pstride = k_mul(pstride, kb_dim(b, p->dims[d]));
    xstride = k_mul(xstride, kb_dim(b, xd));
  }
  return idx;
}

void fm_lower_LayerNormalization(KB *b, Node *n) {
  Tensor *xt = n->in[0], *st = n->in[1], *bt = opt_in(n, 2);
  FmDType t = xt->dtype;
  int axis = (int)fm_norm_axis(n, fm_attr_i(n, "axis", -1), xt->rank);
  double eps = fm_attr_f(n, "epsilon", 1e-5f);
  KBuf *x = kb_in(b, 0), *y = kb_out(b, 0), *sc = kb_in(b, 1), *bi = bt ? kb_in(b, 2) : NULL;
  KBuf *om = kb_out(b, 1), *oi = kb_out(b, 2);
  KExpr *outer = prod(b, xt, 0, axis), *inner = prod(b, xt, axis, xt->rank);
  KVar *r = kb_for(b, "r", k_i(0), outer, KL_PARALLEL);
  KExpr *base = k_mul(k_var(r), inner);
  KVar *mean, *var = row_stats(b, x, base, inner, t, &mean);
  KVar *inv = kb_let(b, "inv", t, k_div(k_const(t, 1), k_un(KU_SQRT, k_add(k_var(var), k_const(t, eps)))));
  KVar *i = kb_for(b, "i", k_i(0), inner, KL_SERIAL);
  KExpr *v = k_mul(k_mul(k_sub(k_load(x, k_add(base, k_var(i))), k_var(mean)), k_var(inv)),
                   k_load(sc, ln_param_index(b, xt, axis, st, k_var(i))));
  if (bi) v = k_add(v, k_load(bi, ln_param_index(b, xt, axis, bt, k_var(i))));
  kb_store(b, y, k_add(base, k_var(i)), v);
  kb_end(b);
  if (om) kb_store(b, om, k_var(r), k_cast(om->t, k_var(mean)));
  if (oi) kb_store(b, oi, k_var(r), k_cast(oi->t, k_var(inv)));
  kb_end(b);
}

/* ===================== LRN (across channels) ===================== */

void fm_infer_LRN(Graph *g, Node *n) {
  Tensor *x = float_in(n, 0);
  if (x->rank < 3) fm_fail("node '%s' (LRN): input '%s' needs rank >= 3", n->name, x->name);
  if (x->dims[1] < 0) fm_fail("node '%s' (LRN): the channel dim of '%s' must be known", n->name, x->name);
  if (!fm_attr(n, "size") || fm_attr_i(n, "size", 0) < 1)
    fm_fail("node '%s' (LRN): attribute 'size' (>= 1) is required", n->name);
  fm_same_shape(n->out[0], x);
}

/* y = x / (bias + alpha/size * sum of x^2 over channels [c - floor((size-1)/2), c + ceil((size-1)/2)])^beta */
void fm_lower_LRN(KB *b, Node *n) {
  Tensor *xt = n->in[0];
  FmDType t = xt->dtype;
  int64_t size = fm_attr_i(n, "size", 1), C = xt->dims[1];
  double alpha = fm_attr_f(n, "alpha", 1e-4f), beta = fm_attr_f(n, "beta", 0.75f), bias = fm_attr_f(n, "bias", 1.0f);
  int64_t lo = (size - 1) / 2, hi = size - 1 - lo;
  KBuf *x = kb_in(b, 0), *y = kb_out(b, 0);
  KExpr *inner = prod(b, xt, 2, xt->rank);
  KVar *nc = kb_for(b, "nc", k_i(0), k_mul(kb_dim(b, xt->dims[0]), k_i(C)), KL_PARALLEL);
  KExpr *c = k_mod(k_var(nc), k_i(C));
  KExpr *nbase = k_sub(k_var(nc), c); /* n*C */
  KVar *c0 = kb_let(b, "c0", FM_I64, k_max(k_i(0), k_sub(c, k_i(lo))));
  KVar *c1 = kb_let(b, "c1", FM_I64, k_min(k_i(C), k_add(c, k_i(hi + 1))));
  KVar *i = kb_for(b, "i", k_i(0), inner, KL_SERIAL);
  KVar *s = kb_let(b, "s", t, k_const(t, 0));
  KVar *cc = kb_for(b, "cc", k_var(c0), k_var(c1), KL_SERIAL);
  KVar *v = kb_let(b, "v", t, k_load(x, k_add(k_mul(k_add(nbase, k_var(cc)), inner), k_var(i))));
  kb_acc(b, s, KB_ADD, k_mul(k_var(v), k_var(v)));
  kb_end(b);
  KExpr *idx = k_add(k_mul(k_var(nc), inner), k_var(i));
  KExpr *den = k_bin(KB_POW, k_fma(k_var(s), k_const(t, alpha / (double)size), k_const(t, bias)), k_const(t, beta));
  kb_store(b, y, idx, k_div(k_load(x, idx), den));
  kb_end(b);
  kb_end(b);
}

/* ===================== MeanVarianceNormalization ===================== */

/* Reduced-axes mask from the attribute 'axes' (default [0, 2, 3]). */
static unsigned mvn_axes(Node *n, int rank) {
  int64_t ax[FM_MAXRANK];
  int na = fm_attr_ints(n, "axes", ax, FM_MAXRANK);
  if (na < 0) {
    na = 3, ax[0] = 0, ax[1] = 2, ax[2] = 3;
    if (rank < 4)
      fm_fail("node '%s' (MeanVarianceNormalization): the default axes [0,2,3] need rank 4, got %d", n->name, rank);
  }
  unsigned m = 0;
  for (int i = 0; i < na; i++) m |= 1u << fm_norm_axis(n, ax[i], rank);
  return m;
}

void fm_infer_MeanVarianceNormalization(Graph *g, Node *n) {
  Tensor *x = float_in(n, 0);
  mvn_axes(n, x->rank);
  fm_same_shape(n->out[0], x);
}

/* Opens loops over the dims of t in mask (the first opened one gets `first`). */
static void open_dims(KB *b, const Tensor *t, unsigned mask, KExpr **idx, KLoop first, int *nopen) {
  static const char *names[] = {"d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7"};
  for (int d = 0; d < t->rank; d++) {
    if (!(mask & (1u << d))) continue;
    idx[d] = k_var(kb_for(b, names[d], k_i(0), kb_dim(b, t->dims[d]), *nopen == 0 ? first : KL_SERIAL));
    (*nopen)++;
  }
}

static void close_n(KB *b, int k) { while (k--) kb_end(b); }

/* y = (x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9), as the ONNX function body defines it. */
void fm_lower_MeanVarianceNormalization(KB *b, Node *n) {
  Tensor *xt = n->in[0];
  FmDType t = xt->dtype;
  unsigned red = mvn_axes(n, xt->rank), keep = ((1u << xt->rank) - 1) & ~red;
  KBuf *x = kb_in(b, 0), *y = kb_out(b, 0);
  KExpr *idx[FM_MAXRANK];
  int nk = 0;
  open_dims(b, xt, keep, idx, KL_PARALLEL, &nk);
  KExpr *cnt = k_i(1);
  for (int d = 0; d < xt->rank; d++)
    if (red & (1u << d)) cnt = k_mul(cnt, kb_dim(b, xt->dims[d]));
  KVar *s = kb_let(b, "s", t, k_const(t, 0)), *s2 = kb_let(b, "s2", t, k_const(t, 0));
  int nr = nk;
  open_dims(b, xt, red, idx, nk ? KL_SERIAL : KL_PARALLEL, &nr);
  KVar *v = kb_let(b, "v", t, k_load(x, kb_index(b, xt, idx)));
  kb_acc(b, s, KB_ADD, k_var(v));
  kb_acc(b, s2, KB_ADD, k_mul(k_var(v), k_var(v)));
  close_n(b, nr - nk);
  KVar *mean = kb_let(b, "mean", t, k_div(k_var(s), k_cast(t, cnt)));
  KExpr *var = k_sub(k_div(k_var(s2), k_cast(t, cnt)), k_mul(k_var(mean), k_var(mean)));
  KVar *den = kb_let(b, "den", t, k_add(k_un(KU_SQRT, k_max(var, k_const(t, 0))), k_const(t, 1e-9)));
  nr = nk;
  open_dims(b, xt, red, idx, KL_SERIAL, &nr);
  KExpr *ix = kb_index(b, xt, idx);
  kb_store(b, y, ix, k_div(k_sub(k_load(x, ix), k_var(mean)), k_var(den)));
  close_n(b, nr - nk);
  close_n(b, nk);
}

/* ===================== Softmax, LogSoftmax, Hardmax ===================== */

/* Opset < 13: x is seen as 2-D [prod dims[:axis], prod dims[axis:]] (default axis 1);
   from 13 the op runs along the single axis (default -1). Returns the axis and sets
   the number of dims normalised together (rank - axis, or 1). */
static int smax_axis(Node *n, int rank, int *span) {
  int old = n->opset < 13;
  int axis = (int)fm_norm_axis(n, fm_attr_i(n, "axis", old ? 1 : -1), rank);
  *span = old ? rank - axis : 1;
  return axis;
}

static void infer_smax(Node *n) {
  Tensor *x = float_in(n, 0);
  if (x->rank == 0) fm_fail("node '%s' (%s): input '%s' is a scalar", n->name, n->op_type, x->name);
  int span;
  smax_axis(n, x->rank, &span);
  fm_same_shape(n->out[0], x);
}

void fm_infer_Softmax(Graph *g, Node *n) { infer_smax(n); }
void fm_infer_LogSoftmax(Graph *g, Node *n) { infer_smax(n); }
void fm_infer_Hardmax(Graph *g, Node *n) { infer_smax(n); }

/* [outer, len, inner] view; per (outer, inner): max pass, sum-of-exp pass, write pass. */
static void lower_smax(KB *b, Node *n) {
  Tensor *xt = n->in[0];
  FmDType t = xt->dtype;
  int span, axis = smax_axis(n, xt->rank, &span);
  KExpr *outer = prod(b, xt, 0, axis), *len = prod(b, xt, axis, axis + span);
  KExpr *inner = prod(b, xt, axis + span, xt->rank);
  KBuf *x = kb_in(b, 0), *y = kb_out(b, 0);
  int flat_inner = inner->k == KE_CONST && inner->i == 1;
  KVar *o;
  KExpr *base;
  if (flat_inner) {
    o = kb_for(b, "o", k_i(0), outer, KL_PARALLEL);
    base = k_mul(k_var(o), len);
  } else {
    o = kb_for(b, "o", k_i(0), k_mul(outer, inner), KL_PARALLEL);
    KExpr *oo = k_div(k_var(o), inner), *ii = k_mod(k_var(o), inner);
    base = k_add(k_mul(k_mul(oo, len), inner), ii);
  }
  KVar *bv = kb_let(b, "base", FM_I64, base);
  #define AT(j) k_add(k_var(bv), k_mul(j, inner))
  KVar *m = kb_let(b, "m", t, k_load(x, k_var(bv)));
  if (n->op == OP_Hardmax) {
    KVar *am = kb_let(b, "am", FM_I64, k_i(0));
    KVar *j = kb_for(b, "j", k_i(1), len, KL_SERIAL);
    KVar *v = kb_let(b, "v", t, k_load(x, AT(k_var(j))));
    kb_set(b, am, k_select(k_bin(KB_GT, k_var(v), k_var(m)), k_var(j), k_var(am)));
    kb_set(b, m, k_max(k_var(m), k_var(v)));
    kb_end(b);
    j = kb_for(b, "j", k_i(0), len, KL_SERIAL);
    kb_store(b, y, AT(k_var(j)), k_select(k_bin(KB_EQ, k_var(j), k_var(am)), k_const(t, 1), k_const(t, 0)));
    kb_end(b);
    kb_end(b);
    return;
  }
  KVar *j = kb_for(b, "j", k_i(1), len, KL_SERIAL);
  kb_acc(b, m, KB_MAX, k_load(x, AT(k_var(j))));
  kb_end(b);
  KVar *s = kb_let(b, "s", t, k_const(t, 0));
  j = kb_for(b, "j", k_i(0), len, KL_SERIAL);
  KExpr *e = k_un(KU_EXP, k_sub(k_load(x, AT(k_var(j))), k_var(m)));
  if (n->op == OP_Softmax) {
    KVar *ev = kb_let(b, "e", t, e);
    kb_store(b, y, AT(k_var(j)), k_var(ev)); /* the exps, scaled in the last pass */
    kb_acc(b, s, KB_ADD, k_var(ev));
  } else {
    kb_acc(b, s, KB_ADD, e);
  }
  kb_end(b);
  if (n->op == OP_Softmax) {
    KVar *inv = kb_let(b, "inv", t, k_div(k_const(t, 1), k_var(s)));
    j = kb_for(b, "j", k_i(0), len, KL_SERIAL);
    kb_store(b, y, AT(k_var(j)), k_mul(k_load(y, AT(k_var(j))), k_var(inv)));
    kb_end(b);
  } else {
    KVar *ls = kb_let(b, "ls", t, k_add(k_var(m), k_un(KU_LOG, k_var(s))));
    j = kb_for(b, "j", k_i(0), len, KL_SERIAL);
    kb_store(b, y, AT(k_var(j)), k_sub(k_load(x, AT(k_var(j))), k_var(ls)));
    kb_end(b);
  }
  #undef AT
  kb_end(b);
}

void fm_lower_Softmax(KB *b, Node *n) { lower_smax(b, n); }
void fm_lower_LogSoftmax(KB *b, Node *n) { lower_smax(b, n); }
void fm_lower_Hardmax(KB *b, Node *n) { lower_smax(b, n); }

/* ===================== QuantizeLinear / DequantizeLinear ===================== */

/* Scale (and zero point) are scalars, or 1-D along `axis` (opset >= 13).
   Returns the axis of a per-axis quantisation, or -1. */
static int q_axis(Node *n, Tensor *x) {
  Tensor *s = known_in(n, 1), *z = opt_in(n, 2);
  int64_t ns = fm_numel(s);
  if (s->rank == 0 || (s->rank == 1 && ns == 1)) {
    if (z && fm_numel(z) != 1)
      fm_fail("node '%s' (%s): zero point '%s' must be a scalar like the scale", n->name, n->op_type, z->name);
    return -1;
  }
  if (s->rank != 1 || n->opset < 13)
    fm_fail("node '%s' (%s): scale '%s' must be a scalar%s", n->name, n->op_type, s->name,
            n->opset < 13 ? "" : " or 1-D");
  int axis = (int)fm_norm_axis(n, fm_attr_i(n, "axis", 1), x->rank);
  if (x->dims[axis] != ns)
    fm_fail("node '%s' (%s): scale '%s' has %lld elements, axis %d of '%s' has %lld", n->name,
            n->op_type, s->name, (long long)ns, axis, x->name, (long long)x->dims[axis]);
  if (z && fm_numel(z) != ns)
    fm_fail("node '%s' (%s): zero point '%s' must have %lld elements", n->name, n->op_type, z->name, (long long)ns);
  return axis;
}

void fm_infer_QuantizeLinear(Graph *g, Node *n) {
  Tensor *x = known_in(n, 0), *s = known_in(n, 1), *z = opt_in(n, 2);
  if (x->dtype != FM_F32 && x->dtype != FM_I32 && x->dtype != FM_F64)
    fm_fail("node '%s' (QuantizeLinear): input '%s' must be float or int32, got %s", n->name, x->name, fm_dtype_name(x->dtype));
  if (!is_float(s->dtype)) fm_fail("node '%s' (QuantizeLinear): scale '%s' must be float", n->name, s->name);
  FmDType qt = z ? known_in(n, 2)->dtype : FM_U8;
  if (qt != FM_U8 && qt != FM_I8)
    fm_fail("node '%s' (QuantizeLinear): output type %s is not supported (uint8, int8)", n->name, fm_dtype_name(qt));
  q_axis(n, x);
  fm_set_shape(n->out[0], qt, x->rank, x->dims);
}

void fm_infer_DequantizeLinear(Graph *g, Node *n) {
  Tensor *x = known_in(n, 0), *s = known_in(n, 1), *z = opt_in(n, 2);
  if (x->dtype != FM_U8 && x->dtype != FM_I8 && x->dtype != FM_I32)
    fm_fail("node '%s' (DequantizeLinear): input '%s' must be uint8, int8 or int32, got %s", n->name, x->name, fm_dtype_name(x->dtype));
  if (z && known_in(n, 2)->dtype != x->dtype)
    fm_fail("node '%s' (DequantizeLinear): zero point '%s' must have the type of '%s'", n->name, z->name, x->name);
  if (!is_float(s->dtype)) fm_fail("node '%s' (DequantizeLinear): scale '%s' must be float", n->name, s->name);
  q_axis(n, x);
  fm_set_shape(n->out[0], s->dtype, x->rank, x->dims);
}

/* Loops over x as [outer, C, inner] for per-axis parameters (flat when per-tensor);
   calls back with the element index and the parameter index. */
typedef KExpr *(*QFn)(Node *n, KB *b, KExpr *xv, KExpr *s, KExpr *z);

static void lower_q(KB *b, Node *n, QFn f) {
  Tensor *xt = n->in[0];
  int axis = q_axis(n, xt);
  KBuf *x = kb_in(b, 0), *y = kb_out(b, 0), *sb = kb_in(b, 1), *zb = kb_in(b, 2);
  FmDType st = sb->t;
  if (axis < 0) {
    KVar *s = kb_let(b, "s", st, k_load(sb, k_i(0)));
    KVar *z = zb ? kb_let(b, "z", zb->t, k_load(zb, k_i(0))) : NULL;
    KVar *i = kb_for(b, "i", k_i(0), kb_numel(b, n->out[0]), KL_PARALLEL);
    kb_store(b, y, k_var(i), f(n, b, k_load(x, k_var(i)), k_var(s), z ? k_var(z) : NULL));
    kb_end(b);
    return;
  }
  int64_t C = xt->dims[axis];
  KExpr *outer = prod(b, xt, 0, axis), *inner = prod(b, xt, axis + 1, xt->rank);
  KVar *oc = kb_for(b, "oc", k_i(0), k_mul(outer, k_i(C)), KL_PARALLEL);
  KExpr *c = k_mod(k_var(oc), k_i(C));
  KVar *s = kb_let(b, "s", st, k_load(sb, c));
  KVar *z = zb ? kb_let(b, "z", zb->t, k_load(zb, c)) : NULL;
  KVar *i = kb_for(b, "i", k_i(0), inner, KL_SERIAL);
  KExpr *idx = k_add(k_mul(k_var(oc), inner), k_var(i));
  kb_store(b, y, idx, f(n, b, k_load(x, idx), k_var(s), z ? k_var(z) : NULL));
  kb_end(b);
  kb_end(b);
}

/* y = saturate(round_half_even(x / s) + z) */
static KExpr *f_quant(Node *n, KB *b, KExpr *xv, KExpr *s, KExpr *z) {
  FmDType ct = s->t, qt = n->out[0]->dtype;
  KExpr *v = k_un(KU_ROUND, k_div(k_cast(ct, xv), s));
  if (z) v = k_add(v, k_cast(ct, z));
  double lo = qt == FM_U8 ? 0 : -128, hi = qt == FM_U8 ? 255 : 127;
  return k_cast(qt, k_min(k_max(v, k_const(ct, lo)), k_const(ct, hi)));
}

/* y = (x - z) * s */
static KExpr *f_dequant(Node *n, KB *b, KExpr *xv, KExpr *s, KExpr *z) {
  KExpr *d = k_cast(FM_I32, xv);
  if (z) d = k_sub(d, k_cast(FM_I32, z));
  return k_mul(k_cast(s->t, d), s);
}

void fm_lower_QuantizeLinear(KB *b, Node *n) { lower_q(b, n, f_quant); }
void fm_lower_DequantizeLinear(KB *b, Node *n) { lower_q(b, n, f_dequant); }
