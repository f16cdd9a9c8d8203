/* kanalysis.c - facts about a kernel that every printer needs (C now; LLVM, OpenCL
 * and CUDA later), so that each backend takes the same decisions:
 *   fm_kfn_writes      does the kernel write a buffer (const parameters, noalias)
 *   fm_kstmts_use_batch / fm_kexpr_uses_batch   does N appear
 *   fm_kexpr_refs      does an expression read a variable
 *   fm_kconst_n1       an integer expression's value at N = 1, if constant
 *   fm_kwork           operations a statement list performs (an estimate)
 *   fm_kloop_reduces   does a loop body assign scalars declared outside it
 *   fm_kfork           whether (and when) a KL_PARALLEL loop is worth a fork, and
 *                      the perfectly nested inner loop it collapses with
 */
#include "kernel/kernel.h"
#include "emit/emit.h"
#include <assert.h>
#include <math.h>
#include <stdlib.h>

static int isf(FmDType t) { return t == FM_F32 || t == FM_F64 || t == FM_F16; }

static int writes(const KStmt *s, const KBuf *b) {
  for (; s; s = s->next) {
    if (s->k == KS_STORE && s->buf == b) return 1;
    if (s->k == KS_CALL) {
      const FmRoutine *r = fm_routine_find(s->fn);
      for (int i = 0; i < s->nargs; i++)
        if (s->args[i]->k == KE_ADDR && s->args[i]->buf == b && (!r || r->kinds[i] != 'c')) return 1;
    }
    if (writes(s->body, b) || writes(s->els, b)) return 1;
  }
  return 0;
}

int fm_kfn_writes(const KFn *fn, const KBuf *b) { return writes(fn->body, b); }

int fm_kexpr_uses_batch(const KExpr *e) {
  return e && (e->k == KE_BATCH || fm_kexpr_uses_batch(e->a) || fm_kexpr_uses_batch(e->b) ||
               fm_kexpr_uses_batch(e->c));
}

int fm_kstmts_use_batch(const KStmt *s) {
  for (; s; s = s->next) {
    if (fm_kexpr_uses_batch(s->lo) || fm_kexpr_uses_batch(s->hi) || fm_kexpr_uses_batch(s->e) ||
        fm_kexpr_uses_batch(s->idx))
      return 1;
    for (int i = 0; i < s->nargs; i++)
      if (fm_kexpr_uses_batch(s->args[i])) return 1;
    if (fm_kstmts_use_batch(s->body) || fm_kstmts_use_batch(s->els)) return 1;
  }
  return 0;
}

int fm_kexpr_refs(const KExpr *e, const KVar *v) {
  return e && ((e->k == KE_VAR && e->var == v) || fm_kexpr_refs(e->a, v) || fm_kexpr_refs(e->b, v) ||
               fm_kexpr_refs(e->c, v));
}

int fm_kconst_n1(const KExpr *e, int64_t *out) {
  int64_t a, b;
  if (!e || isf(e->t)) return 0;
  switch (e->k) {
  case KE_CONST: *out = e->i; return 1;
  case KE_BATCH: *out = 1; return 1;
  case KE_BIN:
    if (!fm_kconst_n1(e->a, &a) || !fm_kconst_n1(e->b, &b)) return 0;
    switch (e->op) {
    case KB_ADD: *out = a + b; return 1;
    case KB_SUB: *out = a - b; return 1;
    case KB_MUL: *out = a * b; return 1;
    case KB_DIV: if (!b) return 0; *out = a / b; return 1;
    case KB_MIN: *out = a < b ? a : b; return 1;
    case KB_MAX: *out = a > b ? a : b; return 1;
    default: return 0;
    }
  default: return 0;
  }
}

static double ework(const KExpr *e) {
  if (!e || e->k == KE_CONST || e->k == KE_VAR || e->k == KE_BATCH) return 0;
  return 1 + ework(e->a) + ework(e->b) + ework(e->c);
}

double fm_kwork(const KStmt *s) {
  double w = 0;
  for (; s; s = s->next) {
    int64_t lo, hi, v;
    switch (s->k) {
    case KS_FOR:
      w += (fm_kconst_n1(s->lo, &lo) && fm_kconst_n1(s->hi, &hi) ? (double)(hi > lo ? hi - lo : 0) : 16) *
           fm_kwork(s->body);
      break;
    case KS_IF: {
      double a = fm_kwork(s->body), b = fm_kwork(s->els);
      w += 1 + ework(s->e) + (a > b ? a : b);
      break;
    }
    case KS_CALL:
      w += s->muls && fm_kconst_n1(s->muls, &v) ? (double)v : FM_FORK_WORK;
      break;
    case KS_COMMENT: break;
    default: w += 1 + ework(s->e) + ework(s->idx); break;
    }
  }
  return w;
}

/* A loop whose body assigns scalars declared outside it carries a reduction
   (omp simd would race on it); a call may do anything. */
static void mark_lets(const KStmt *s, uint8_t *inner) {
  for (; s; s = s->next) {
    if (s->k == KS_LET) inner[s->var->id] = 1;
    mark_lets(s->body, inner), mark_lets(s->els, inner);
  }
}
static int sets_other(const KStmt *s, const uint8_t *inner) {
  for (; s; s = s->next) {
    if (s->k == KS_CALL || (s->k == KS_SET && !inner[s->var->id])) return 1;
    if (sets_other(s->body, inner) || sets_other(s->els, inner)) return 1;
  }
  return 0;
}
int fm_kloop_reduces(const KFn *fn, const KStmt *body) {
  uint8_t *inner = calloc((size_t)fn->nvars + 1, 1);
  assert(inner);
  mark_lets(body, inner);
  int r = sets_other(body, inner);
  free(inner);
  return r;
}

KFork fm_kfork(const KStmt *s) {
  KFork k = {0};
  const KStmt *b = s->body;
  if (b && !b->next && b->k == KS_FOR && (b->loop == KL_SERIAL || b->loop == KL_PARALLEL) &&
      !fm_kexpr_refs(b->lo, s->var) && !fm_kexpr_refs(b->hi, s->var))
    k.inner = b;
  int64_t lo, hi, lo2 = 0, hi2 = 1;
  double w = fm_kwork(k.inner ? k.inner->body : s->body);
  int fixed = fm_kconst_n1(s->lo, &lo) && fm_kconst_n1(s->hi, &hi) && !fm_kexpr_uses_batch(s->lo) &&
              !fm_kexpr_uses_batch(s->hi);
  if (k.inner)
    fixed = fixed && fm_kconst_n1(k.inner->lo, &lo2) && fm_kconst_n1(k.inner->hi, &hi2) &&
            !fm_kexpr_uses_batch(k.inner->lo) && !fm_kexpr_uses_batch(k.inner->hi);
  if (w < 1) w = 1;
  if (fixed) {
    double n = (double)(hi - lo) * (double)(hi2 - lo2);
    k.mode = n >= 2 && n * w >= FM_FORK_WORK ? KFORK_ALWAYS : KFORK_NEVER;
  } else {
    k.mode = KFORK_IF;
    k.min_trips = ceil(FM_FORK_WORK / w);
  }
  if (k.mode == KFORK_NEVER) k.inner = NULL;
  return k;
}

int64_t fm_kbuf_nelem(const KBuf *b, int64_t batch) {
  int64_t n = 1;
  if (b->kind != KBUF_TENSOR) {
    if (b->nelem == FM_DIM_UNKNOWN) return -1;
    return b->nelem >= 0 ? b->nelem : fm_mul_ok(-b->nelem, batch, &n) ? n : -1;
  }
  const Tensor *t = b->tensor;
  if (!t || t->rank < 0) return -1;
  for (int d = 0; d < t->rank; d++) {
    int64_t x = t->dims[d], e;
    if (x == FM_DIM_UNKNOWN) return -1;
    if (x < 0 && !fm_mul_ok(-x, batch, &x)) return -1;
    if (!fm_mul_ok(n, x, &e)) return -1;
    n = e;
  }
  return n;
}
