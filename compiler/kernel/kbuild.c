/* kbuild.c - building kernel IR: buffers, loops, statements, expressions. */
#include "kernel/kernel.h"
#include <assert.h>
#include <stdarg.h>
#include <string.h>

static _Thread_local Arena *karena; /* the arena expressions are allocated in (kb_begin) */

static void *kalloc(size_t n) {
  assert(karena && "kb_begin must be called before building expressions");
  return fm_alloc(karena, n);
}

static void push_ptr(Arena *a, void ***arr, int *n, int *cap, void *p) {
  if (*n == *cap) {
    int nc = *cap ? *cap * 2 : 16;
    void **q = fm_alloc(a, sizeof(void *) * (size_t)nc);
    if (*arr) memcpy(q, *arr, sizeof(void *) * (size_t)*n);
    *arr = q, *cap = nc;
  }
  (*arr)[(*n)++] = p;
}

KFn *kb_begin(KB *b, Graph *g, Node *n, const char *name) {
  Arena *a = &g->arena;
  memset(b, 0, sizeof *b);
  b->a = a, b->g = g, b->node = n;
  b->opts = fm_lower_opts_default();
  karena = a;
  KFn *fn = fm_alloc(a, sizeof *fn);
  fn->name = fm_strdup(a, name);
  fn->node = n;
  b->fn = fn;
  b->tail = &fn->body;
  if (n) {
    b->inbufs = fm_alloc(a, sizeof(KBuf *) * (size_t)(n->nin + 1));
    b->outbufs = fm_alloc(a, sizeof(KBuf *) * (size_t)(n->nout + 1));
    for (int i = 0; i < n->nin; i++) b->inbufs[i] = n->in[i] ? kb_tensor(b, n->in[i]) : NULL;
    for (int i = 0; i < n->nout; i++) b->outbufs[i] = n->out[i] ? kb_tensor(b, n->out[i]) : NULL;
  }
  return fn;
}

static KBuf *newbuf(KB *b, KBufKind kind, const char *name, FmDType t) {
  KBuf *buf = fm_alloc(b->a, sizeof *buf);
  buf->kind = kind, buf->name = fm_strdup(b->a, name), buf->t = t;
  buf->id = b->fn->nbufs;
  push_ptr(b->a, (void ***)&b->fn->bufs, &b->fn->nbufs, &b->fn->capbufs, buf);
  return buf;
}

KBuf *kb_tensor(KB *b, Tensor *t) {
  for (int i = 0; i < b->fn->nbufs; i++)
    if (b->fn->bufs[i]->tensor == t) return b->fn->bufs[i];
  KBuf *buf = newbuf(b, KBUF_TENSOR, t->name, t->dtype);
  buf->tensor = t;
  buf->nelem = fm_numel(t);
  return buf;
}

KBuf *kb_in(KB *b, int i) { return i < b->node->nin ? b->inbufs[i] : NULL; }
KBuf *kb_out(KB *b, int i) { return i < b->node->nout ? b->outbufs[i] : NULL; }

KBuf *kb_const(KB *b, const char *name, FmDType t, int64_t nelem, const void *data) {
  KBuf *buf = newbuf(b, KBUF_CONST, name, t);
  buf->nelem = nelem;
  size_t nb = (size_t)nelem * fm_dtype_size(t);
  buf->data = fm_alloc(b->a, nb ? nb : 1);
  if (data) memcpy(buf->data, data, nb);
  return buf;
}

KBuf *kb_scratch(KB *b, const char *name, FmDType t, int64_t nelem) {
  KBuf *buf = newbuf(b, KBUF_SCRATCH, name, t);
  buf->nelem = nelem;
  return buf;
}

KExpr *kb_dim(KB *b, int64_t d) {
  assert(d != FM_DIM_UNKNOWN);
  return d >= 0 ? k_i(d) : k_mul(k_i(-d), k_batch());
}

KExpr *kb_numel(KB *b, const Tensor *t) {
  KExpr *e = k_i(1);
  for (int i = 0; i < t->rank; i++) e = k_mul(e, kb_dim(b, t->dims[i]));
  return e;
}

/* ---- statements ---- */
static KStmt *emit(KB *b, KStmtKind k) {
  KStmt *s = fm_alloc(b->a, sizeof *s);
  s->k = k;
  s->accop = -1;
  *b->tail = s;
  b->tail = &s->next;
  return s;
}

static void open_block(KB *b, KStmt *s, KStmt **child) {
  assert(b->depth < 64);
  b->stack[b->depth] = b->tail;
  b->open[b->depth] = s;
  b->depth++;
  b->tail = child;
}

static KVar *newvar(KB *b, const char *name, FmDType t) {
  KVar *v = fm_alloc(b->a, sizeof *v);
  v->id = b->fn->nvars;
  v->name = fm_strdup(b->a, name);
  v->t = t;
  push_ptr(b->a, (void ***)&b->fn->vars, &b->fn->nvars, &b->fn->capvars, v);
  return v;
}

KVar *kb_for(KB *b, const char *name, KExpr *lo, KExpr *hi, KLoop loop) {
  KStmt *s = emit(b, KS_FOR);
  s->var = newvar(b, name, FM_I64);
  s->lo = lo, s->hi = hi, s->loop = loop;
  open_block(b, s, &s->body);
  return s->var;
}

void kb_if(KB *b, KExpr *cond) {
  KStmt *s = emit(b, KS_IF);
  s->e = cond;
  open_block(b, s, &s->body);
}

void kb_else(KB *b) {
  assert(b->depth > 0 && b->open[b->depth - 1]->k == KS_IF);
  b->tail = &b->open[b->depth - 1]->els;
}

void kb_end(KB *b) {
  assert(b->depth > 0);
  b->depth--;
  b->tail = b->stack[b->depth];
}

KVar *kb_let(KB *b, const char *name, FmDType t, KExpr *init) {
  KStmt *s = emit(b, KS_LET);
  s->var = newvar(b, name, t);
  s->e = init;
  return s->var;
}

void kb_set(KB *b, KVar *v, KExpr *e) {
  KStmt *s = emit(b, KS_SET);
  s->var = v, s->e = e;
}

void kb_acc(KB *b, KVar *v, KBinOp op, KExpr *e) {
  KStmt *s = emit(b, KS_SET);
  s->var = v, s->e = e, s->accop = op;
}

void kb_store(KB *b, KBuf *buf, KExpr *idx, KExpr *e) {
  KStmt *s = emit(b, KS_STORE);
  s->buf = buf, s->idx = idx, s->e = e;
}

void kb_store_acc(KB *b, KBuf *buf, KExpr *idx, KBinOp op, KExpr *e) {
  KStmt *s = emit(b, KS_STORE);
  s->buf = buf, s->idx = idx, s->e = e, s->accop = op;
}

void kb_call(KB *b, const char *fn, KExpr *muls, KExpr *adds, int nargs, ...) {
  KStmt *s = emit(b, KS_CALL);
  s->fn = fm_strdup(b->a, fn);
  s->muls = muls, s->adds = adds;
  s->nargs = nargs;
  s->args = fm_alloc(b->a, sizeof(KExpr *) * (size_t)(nargs ? nargs : 1));
  va_list ap;
  va_start(ap, nargs);
  for (int i = 0; i < nargs; i++) s->args[i] = va_arg(ap, KExpr *);
  va_end(ap);
}

void kb_comment(KB *b, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  KStmt *s = emit(b, KS_COMMENT);
  s->fn = fm_strdup(b->a, buf);
}

/* ---- expressions ---- */
static KExpr *ex(KExprKind k, FmDType t) {
  KExpr *e = kalloc(sizeof *e);
  e->k = k, e->t = t;
  return e;
}

static int isfloat(FmDType t) { return t == FM_F32 || t == FM_F64 || t == FM_F16; }

KExpr *k_const(FmDType t, double v) {
  KExpr *e = ex(KE_CONST, t);
  if (isfloat(t)) e->f = v;
  else e->i = t == FM_BOOL ? v != 0 : (int64_t)v, e->f = (double)e->i; /* as the cast would */
  return e;
}
KExpr *k_f32(double v) { return k_const(FM_F32, v); }
KExpr *k_i(int64_t v) {
  KExpr *e = ex(KE_CONST, FM_I64);
  e->i = v, e->f = (double)v;
  return e;
}
KExpr *k_var(KVar *v) {
  KExpr *e = ex(KE_VAR, v->t);
  e->var = v;
  return e;
}
KExpr *k_batch(void) { return ex(KE_BATCH, FM_I64); }
KExpr *k_load(KBuf *buf, KExpr *idx) {
  KExpr *e = ex(KE_LOAD, buf->t);
  e->buf = buf, e->a = idx;
  return e;
}
KExpr *k_addr(KBuf *buf, KExpr *idx) {
  KExpr *e = ex(KE_ADDR, buf->t);
  e->buf = buf, e->a = idx;
  return e;
}
KExpr *k_un(KUnOp op, KExpr *a) {
  FmDType t = (op == KU_ISNAN || op == KU_ISINF || op == KU_NOT) ? FM_BOOL : a->t;
  KExpr *e = ex(KE_UN, t);
  e->op = op, e->a = a;
  return e;
}

static int is_cmp(KBinOp op) { return op >= KB_LT && op <= KB_NE; }

static int isconst(KExpr *e, double v) { return e->k == KE_CONST && e->f == v; }

KExpr *k_bin(KBinOp op, KExpr *a, KExpr *b) {
  /* fold integer index arithmetic on constants */
  if (a->k == KE_CONST && b->k == KE_CONST && a->t == FM_I64 && b->t == FM_I64) {
    int64_t x = a->i, y = b->i;
    switch (op) {
    case KB_ADD: return k_i(x + y);
    case KB_SUB: return k_i(x - y);
    case KB_MUL: return k_i(x * y);
    case KB_DIV: if (y && x >= 0 && y > 0) return k_i(x / y); break;
    case KB_MOD: if (y && x >= 0 && y > 0) return k_i(x % y); break;
    case KB_MIN: return k_i(x < y ? x : y);
    case KB_MAX: return k_i(x > y ? x : y);
    default: break;
    }
  }
  if (a->t == FM_I64 && b->t == FM_I64) {
    if (op == KB_ADD && isconst(a, 0)) return b;
    if ((op == KB_ADD || op == KB_SUB) && isconst(b, 0)) return a;
    if (op == KB_MUL && isconst(a, 1)) return b;
    if ((op == KB_MUL || op == KB_DIV) && isconst(b, 1)) return a;
    if (op == KB_MUL && (isconst(a, 0) || isconst(b, 0))) return k_i(0);
  }
  KExpr *e = ex(KE_BIN, is_cmp(op) ? FM_BOOL : a->t);
  e->op = op, e->a = a, e->b = b;
  return e;
}

KExpr *k_add(KExpr *a, KExpr *b) { return k_bin(KB_ADD, a, b); }
KExpr *k_sub(KExpr *a, KExpr *b) { return k_bin(KB_SUB, a, b); }
KExpr *k_mul(KExpr *a, KExpr *b) { return k_bin(KB_MUL, a, b); }
KExpr *k_div(KExpr *a, KExpr *b) { return k_bin(KB_DIV, a, b); }
KExpr *k_mod(KExpr *a, KExpr *b) { return k_bin(KB_MOD, a, b); }
KExpr *k_min(KExpr *a, KExpr *b) { return k_bin(KB_MIN, a, b); }
KExpr *k_max(KExpr *a, KExpr *b) { return k_bin(KB_MAX, a, b); }
KExpr *k_lt(KExpr *a, KExpr *b) { return k_bin(KB_LT, a, b); }
KExpr *k_ge(KExpr *a, KExpr *b) { return k_bin(KB_GE, a, b); }
KExpr *k_and(KExpr *a, KExpr *b) { return k_bin(KB_AND, a, b); }

KExpr *k_fma(KExpr *a, KExpr *b, KExpr *c) {
  KExpr *e = ex(KE_FMA, a->t);
  e->a = a, e->b = b, e->c = c;
  return e;
}
KExpr *k_select(KExpr *c, KExpr *a, KExpr *b) {
  KExpr *e = ex(KE_SELECT, a->t);
  e->a = c, e->b = a, e->c = b;
  return e;
}
KExpr *k_cast(FmDType t, KExpr *a) {
  if (a->t == t) return a;
  if (a->k == KE_CONST) return k_const(t, isfloat(a->t) ? a->f : (double)a->i);
  KExpr *e = ex(KE_CAST, t);
  e->a = a;
  return e;
}

/* ---- indexing ---- */
KExpr *kb_index(KB *b, const Tensor *t, KExpr **idx) {
  KExpr *e = k_i(0);
  for (int d = 0; d < t->rank; d++) e = k_add(k_mul(e, kb_dim(b, t->dims[d])), idx[d]);
  return e;
}

KExpr *kb_bcast_index(KB *b, const Tensor *in, const Tensor *out, KExpr **idx) {
  KExpr *e = k_i(0);
  for (int d = 0; d < in->rank; d++) {
    int od = out->rank - in->rank + d;
    KExpr *i = in->dims[d] == 1 && out->dims[od] != 1 ? k_i(0) : idx[od];
    e = k_add(k_mul(e, kb_dim(b, in->dims[d])), i);
  }
  return e;
}

void kb_loops(KB *b, const Tensor *t, KVar **vars) {
  static const char *names[] = {"i0", "i1", "i2", "i3", "i4", "i5", "i6", "i7"};
  for (int d = 0; d < t->rank; d++)
    vars[d] = kb_for(b, names[d], k_i(0), kb_dim(b, t->dims[d]), d == 0 ? KL_PARALLEL : KL_SERIAL);
}

void kb_end_loops(KB *b, const Tensor *t) {
  for (int d = 0; d < t->rank; d++) kb_end(b);
}
