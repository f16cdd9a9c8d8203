/* pool.c - MaxPool (with optional Indices), AveragePool, LpPool, GlobalAveragePool,
 * GlobalMaxPool.
 *
 *   X [N, C, in...] -> Y [N, C, out...]; one loop over (n, c) images, one per output
 *   spatial dim, one per kernel tap; taps that fall into the padding are skipped
 *   (AveragePool with count_include_pad still counts them in the divisor).
 */
#include "ops/dense.h"
#include <math.h>
#include <string.h>

typedef enum { POOL_MAX, POOL_AVG, POOL_LP } PoolKind;

typedef struct Pool {
  PoolKind kind;
  Tensor *x, *y, *ind;  /* ind: MaxPool's optional Indices output */
  FmWin win;
  int count_pad;        /* AveragePool count_include_pad */
  int col_major;        /* MaxPool storage_order = 1 */
  float p;              /* LpPool */
} Pool;

static void check_x(Node *n, const Tensor *x, int allow_int8) {
  FmDType t = x->dtype;
  if (!(t == FM_F32 || t == FM_F64 || (allow_int8 && (t == FM_I8 || t == FM_U8))))
    fm_fail("node '%s' (%s): input '%s' has dtype %s; supported: float32, float64%s", n->name,
            n->op_type, x->name, fm_dtype_name(t), allow_int8 ? ", int8, uint8" : "");
  if (x->rank < 3)
    fm_fail("node '%s' (%s): input '%s' has rank %d; expected N x C x spatial dims (rank >= 3)",
            n->name, n->op_type, x->name, x->rank);
  if (x->dims[1] < 0)
    fm_fail("node '%s' (%s): the channel dim of '%s' must be a known size", n->name, n->op_type, x->name);
}

static void pool_setup(Node *n, PoolKind kind, Pool *P) {
  memset(P, 0, sizeof *P);
  P->kind = kind;
  P->x = fm_in(n, 0);
  P->y = n->out[0];
  P->ind = kind == POOL_MAX && n->nout > 1 ? n->out[1] : NULL;
  check_x(n, P->x, kind == POOL_MAX);
  int nsp = P->x->rank - 2;
  int64_t kernel[2 * FM_MAXRANK];
  int nk = fm_attr_ints(n, "kernel_shape", kernel, 2 * FM_MAXRANK);
  if (nk < 0) fm_fail("node '%s' (%s): attribute 'kernel_shape' is required", n->name, n->op_type);
  if (nk != nsp)
    fm_fail("node '%s' (%s): kernel_shape has %d values but input '%s' has %d spatial dims", n->name,
            n->op_type, nk, P->x->name, nsp);
  int ceil_mode = (int)fm_attr_i(n, "ceil_mode", 0);
  fm_win_forward(n, P->x, kernel, nsp, ceil_mode, &P->win);
  P->count_pad = kind == POOL_AVG && fm_attr_i(n, "count_include_pad", 0);
  P->col_major = kind == POOL_MAX && fm_attr_i(n, "storage_order", 0);
  P->p = kind == POOL_LP ? fm_attr_f(n, "p", 2.0f) : 0;
  if (kind == POOL_LP && !(P->p > 0))
    fm_fail("node '%s' (LpPool): p must be positive (got %g)", n->name, P->p);
}

static void set_out(Pool *P) {
  int64_t dims[FM_MAXRANK];
  dims[0] = P->x->dims[0], dims[1] = P->x->dims[1];
  for (int j = 0; j < P->win.nsp; j++) dims[2 + j] = P->win.out[j];
  fm_set_shape(P->y, P->x->dtype, P->win.nsp + 2, dims);
  if (P->ind) fm_set_shape(P->ind, FM_I64, P->win.nsp + 2, dims);
}

/* The identity of max for dtype t: -inf, or the smallest integer. */
static KExpr *max_identity(FmDType t) {
  switch (t) {
  case FM_I8: return k_const(t, -128);
  case FM_U8: return k_const(t, 0);
  default: return k_const(t, -INFINITY);
  }
}

/* AveragePool divisors, one per output position: the taps inside the input, or with
   count_include_pad inside the padded input. Per dim the count only depends on
   that dim's output index, so the table is a product of per-dim counts. */
static KBuf *avg_divisors(KB *b, const Pool *P) {
  const FmWin *w = &P->win;
  int64_t ysp = fm_win_prod(w->out, w->nsp);
  KBuf *t = kb_const(b, "divisor", P->y->dtype, ysp, NULL);
  int64_t *per[FM_MAXRANK];
  for (int j = 0; j < w->nsp; j++) {
    per[j] = fm_alloc(b->a, sizeof(int64_t) * (size_t)w->out[j]);
    int64_t lo = P->count_pad ? -w->pb[j] : 0, hi = P->count_pad ? w->in[j] + w->pe[j] : w->in[j];
    for (int64_t o = 0; o < w->out[j]; o++) {
      int64_t c = 0;
      for (int64_t k = 0; k < w->k[j]; k++) {
        int64_t pos = o * w->s[j] - w->pb[j] + k * w->d[j];
        c += pos >= lo && pos < hi;
      }
      per[j][o] = c;
    }
  }
  for (int64_t f = 0; f < ysp; f++) {
    int64_t rem = f, c = 1;
    for (int j = w->nsp - 1; j >= 0; j--) c *= per[j][rem % w->out[j]], rem /= w->out[j];
    if (P->y->dtype == FM_F64) ((double *)t->data)[f] = (double)c;
    else ((float *)t->data)[f] = (float)c;
  }
  return t;
}

static void lower_pool(KB *b, Node *n, const Pool *P) {
  static const char *ov[] = {"o0", "o1", "o2", "o3", "o4", "o5"};
  static const char *kv[] = {"k0", "k1", "k2", "k3", "k4", "k5"};
  static const char *pv[] = {"p0", "p1", "p2", "p3", "p4", "p5"};
  const FmWin *w = &P->win;
  int nsp = w->nsp;
  FmDType t = P->y->dtype;
  KBuf *X = kb_in(b, 0), *Y = kb_out(b, 0), *I = P->ind ? kb_out(b, 1) : NULL;
  KBuf *div = P->kind == POOL_AVG ? avg_divisors(b, P) : NULL;
  int64_t xsp = fm_win_prod(w->in, nsp), ysp = fm_win_prod(w->out, nsp);
  kb_comment(b, "%s %d-D", n->op_type, nsp);
  KVar *nc = kb_for(b, "nc", k_i(0), k_mul(kb_dim(b, P->x->dims[0]), k_i(P->x->dims[1])), KL_PARALLEL);
  KVar *xb = kb_let(b, "xb", FM_I64, k_mul(k_var(nc), k_i(xsp)));
  KExpr *o[FM_MAXRANK], *pos[FM_MAXRANK];
  for (int j = 0; j < nsp; j++) o[j] = k_var(kb_for(b, ov[j], k_i(0), k_i(w->out[j]), KL_SERIAL));
  KVar *acc = kb_let(b, "acc", t, P->kind == POOL_MAX ? max_identity(t) : k_const(t, 0));
  KVar *arg = I ? kb_let(b, "arg", FM_I64, k_i(0)) : NULL;
  for (int j = 0; j < nsp; j++) {
    KExpr *kk = k_var(kb_for(b, kv[j], k_i(0), k_i(w->k[j]), KL_SERIAL));
    KVar *pj = kb_let(b, pv[j], FM_I64,
                      k_add(k_sub(k_mul(o[j], k_i(w->s[j])), k_i(w->pb[j])), k_mul(kk, k_i(w->d[j]))));
    pos[j] = k_var(pj);
    kb_if(b, k_and(k_ge(pos[j], k_i(0)), k_lt(pos[j], k_i(w->in[j]))));
  }
  KExpr *xi = fm_win_flat(pos, w->in, nsp);
  KExpr *v = k_load(X, k_add(k_var(xb), xi));
  switch (P->kind) {
  case POOL_MAX:
    if (I) {
      KVar *xv = kb_let(b, "xv", t, v);
      kb_if(b, k_bin(KB_GT, k_var(xv), k_var(acc)));
      kb_set(b, acc, k_var(xv));
      KExpr *si = xi;
      if (P->col_major) { /* spatial index with the first spatial dim fastest */
        si = k_i(0);
        for (int j = nsp - 1; j >= 0; j--) si = k_add(k_mul(si, k_i(w->in[j])), pos[j]);
      }
      kb_set(b, arg, k_add(k_var(xb), si));
      kb_end(b);
    } else {
      kb_acc(b, acc, KB_MAX, v);
    }
    break;
  case POOL_AVG: kb_acc(b, acc, KB_ADD, v); break;
  case POOL_LP:
    if (P->p == 2.0f) kb_acc(b, acc, KB_ADD, k_mul(v, v));
    else if (P->p == 1.0f) kb_acc(b, acc, KB_ADD, k_un(KU_ABS, v));
    else kb_acc(b, acc, KB_ADD, k_bin(KB_POW, k_un(KU_ABS, v), k_const(t, P->p)));
    break;
  }
  for (int j = 0; j < nsp; j++) kb_end(b), kb_end(b); /* if, k_j */
  KExpr *yo = fm_win_flat(o, w->out, nsp);
  KExpr *res = k_var(acc);
  if (P->kind == POOL_AVG) res = k_div(res, k_load(div, yo));
  if (P->kind == POOL_LP) {
    if (P->p == 2.0f) res = k_un(KU_SQRT, res);
    else if (P->p != 1.0f) res = k_bin(KB_POW, res, k_const(t, 1.0 / P->p));
  }
  KExpr *yi = k_add(k_mul(k_var(nc), k_i(ysp)), yo);
  kb_store(b, Y, yi, res);
  if (I) kb_store(b, I, yi, k_var(arg));
  for (int j = 0; j < nsp; j++) kb_end(b);
  kb_end(b);
}

#define POOL_OP(Op, kind)                                                                          \
  void fm_infer_##Op(Graph *g, Node *n) { Pool P; pool_setup(n, kind, &P); set_out(&P); }          \
  void fm_lower_##Op(KB *b, Node *n) { Pool P; pool_setup(n, kind, &P); lower_pool(b, n, &P); }
POOL_OP(MaxPool, POOL_MAX)
POOL_OP(AveragePool, POOL_AVG)
POOL_OP(LpPool, POOL_LP)

/* ---- global pools: one reduction over all spatial positions per (n, c) ---- */

static void global_infer(Node *n) {
  Tensor *x = fm_in(n, 0);
  check_x(n, x, 0);
  int64_t dims[FM_MAXRANK];
  dims[0] = x->dims[0], dims[1] = x->dims[1];
  for (int d = 2; d < x->rank; d++) {
    if (x->dims[d] < 0)
      fm_fail("node '%s' (%s): spatial dim %d of '%s' must be a known size", n->name, n->op_type, d - 2,
              x->name);
    dims[d] = 1;
  }
  fm_set_shape(n->out[0], x->dtype, x->rank, dims);
}

static void global_lower(KB *b, Node *n, int is_max) {
  Tensor *x = fm_in(n, 0);
  FmDType t = x->dtype;
  KBuf *X = kb_in(b, 0), *Y = kb_out(b, 0);
  int64_t sp = 1;
  for (int d = 2; d < x->rank; d++) sp *= x->dims[d];
  kb_comment(b, "%s over %lld positions", n->op_type, (long long)sp);
  KVar *nc = kb_for(b, "nc", k_i(0), k_mul(kb_dim(b, x->dims[0]), k_i(x->dims[1])), KL_PARALLEL);
  KVar *acc = kb_let(b, "acc", t, is_max ? max_identity(t) : k_const(t, 0));
  KVar *i = kb_for(b, "i", k_i(0), k_i(sp), KL_SERIAL);
  kb_acc(b, acc, is_max ? KB_MAX : KB_ADD, k_load(X, k_add(k_mul(k_var(nc), k_i(sp)), k_var(i))));
  kb_end(b);
  kb_store(b, Y, k_var(nc), is_max ? k_var(acc) : k_div(k_var(acc), k_const(t, (double)sp)));
  kb_end(b);
}

void fm_infer_GlobalAveragePool(Graph *g, Node *n) { global_infer(n); }
void fm_infer_GlobalMaxPool(Graph *g, Node *n) { global_infer(n); }
void fm_lower_GlobalAveragePool(KB *b, Node *n) { global_lower(b, n, 0); }
void fm_lower_GlobalMaxPool(KB *b, Node *n) { global_lower(b, n, 1); }
