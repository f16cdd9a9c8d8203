/* kcost.c - what a kernel costs: multiplications, additions, shifts, other ops.
 *
 * Counted on the kernel IR, so the report is what the emitted code performs:
 * every statement's operations times the trip counts of its loops at batch N.
 *   muls   multiplications and divisions of data values (float or narrow integer),
 *          the multiply of an fma, `*=` / `/=` accumulations, and the counts a CPU
 *          library routine states for a call (fm_cpu.h; the lowering's muls/adds
 *          expressions when the call's arguments are not static)
 *   adds   additions and subtractions of data values, the add of an fma,
 *          `+=` / `-=` accumulations, KS_CALL adds
 *   shifts ldexp (an exponent add), integer << and >> on data
 *   other  everything else on data: min/max, compares, select, unary ops (sqrt,
 *          exp, abs, ...), pow, mod, logic
 * Loads from constant integer tables (kb_const) are static: loop bounds read from them
 * (the tap lists of ops/fewmul.c) give exact trip counts.
 * Not counted: int64 arithmetic (that is index arithmetic: loop bounds, addresses,
 * indices), loads, stores and casts.
 * Trip counts are exact: a loop whose body's cost depends on the loop variable
 * (inner bounds, an if on loop indices such as padding checks, a call's work) is
 * evaluated iteration by iteration; an if on data takes the larger branch.
 */
#include "kernel/kernel.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EVAL_BUDGET 20000000 /* iteration-by-iteration steps before estimating */

typedef struct {
  KFn *fn;
  int64_t batch;
  int64_t *val;
  uint8_t *known;     /* by var id: value in val[] */
  KExpr **letinit;    /* by var id: init of a let never reassigned, else NULL */
  int64_t budget;
} Cost;

static int isf(FmDType t) { return t == FM_F32 || t == FM_F64 || t == FM_F16; }

/* Integer value of a static expression (no loads, known vars); 0 if not static. */
static int seval(Cost *c, KExpr *e, int64_t *out) {
  int64_t a, b;
  if (!e || isf(e->t)) return 0;
  switch (e->k) {
  case KE_CONST: *out = e->i; return 1;
  case KE_BATCH: *out = c->batch; return 1;
  case KE_VAR:
    if (!c->known[e->var->id]) return 0;
    *out = c->val[e->var->id];
    return 1;
  case KE_CAST:
    if (isf(e->a->t) || !seval(c, e->a, &a)) return 0;
    *out = e->t == FM_BOOL ? a != 0 : a;
    return 1;
  case KE_SELECT:
    if (!seval(c, e->a, &a)) return 0;
    return seval(c, a ? e->b : e->c, out);
  case KE_LOAD: /* an element of a constant integer table made by a lowering (kb_const) */
    if (e->buf->kind != KBUF_CONST || !seval(c, e->a, &a) || a < 0 || a >= e->buf->nelem) return 0;
    switch (e->buf->t) {
    case FM_I16: *out = ((const int16_t *)e->buf->data)[a]; return 1;
    case FM_I32: *out = ((const int32_t *)e->buf->data)[a]; return 1;
    case FM_I64: *out = ((const int64_t *)e->buf->data)[a]; return 1;
    default: return 0;
    }
  case KE_UN:
    if (!seval(c, e->a, &a)) return 0;
    switch (e->op) {
    case KU_NEG: *out = -a; return 1;
    case KU_NOT: *out = !a; return 1;
    case KU_ABS: *out = a < 0 ? -a : a; return 1;
    default: return 0;
    }
  case KE_BIN:
    if (isf(e->a->t) || !seval(c, e->a, &a) || !seval(c, e->b, &b)) return 0;
    switch (e->op) {
    case KB_ADD: *out = a + b; return 1;
    case KB_SUB: *out = a - b; return 1;
    case KB_MUL: *out = a * b; return 1;
    case KB_DIV: if (!b) return 0; *out = a / b; return 1;
    case KB_MOD: if (!b) return 0; *out = a % b; return 1;
    case KB_MIN: *out = a < b ? a : b; return 1;
    case KB_MAX: *out = a > b ? a : b; return 1;
    case KB_LT: *out = a < b; return 1;
    case KB_LE: *out = a <= b; return 1;
    case KB_GT: *out = a > b; return 1;
    case KB_GE: *out = a >= b; return 1;
    case KB_EQ: *out = a == b; return 1;
    case KB_NE: *out = a != b; return 1;
    case KB_AND: *out = a && b; return 1;
    case KB_OR: *out = a || b; return 1;
    case KB_XOR: *out = !a != !b; return 1;
    case KB_BITAND: *out = a & b; return 1;
    case KB_BITOR: *out = a | b; return 1;
    case KB_BITXOR: *out = a ^ b; return 1;
    case KB_SHL: *out = (int64_t)((uint64_t)a << (b & 63)); return 1;
    case KB_SHR: *out = a >> (b & 63); return 1;
    default: return 0;
    }
  default: return 0;
  }
}

/* Does e read v's value (directly or through lets that were never reassigned)? */
static int refs(Cost *c, KExpr *e, KVar *v) {
  if (!e) return 0;
  if (e->k == KE_VAR)
    return e->var == v || (c->letinit[e->var->id] && refs(c, c->letinit[e->var->id], v));
  return refs(c, e->a, v) || refs(c, e->b, v) || refs(c, e->c, v);
}

/* Does the cost of running list depend on v's value? */
static int depends(Cost *c, KStmt *s, KVar *v) {
  for (; s; s = s->next) {
    switch (s->k) {
    case KS_FOR:
      if (refs(c, s->lo, v) || refs(c, s->hi, v) || depends(c, s->body, v)) return 1;
      break;
    case KS_IF:
      if (refs(c, s->e, v) || depends(c, s->body, v) || depends(c, s->els, v)) return 1;
      break;
    case KS_CALL:
      if (refs(c, s->muls, v) || refs(c, s->adds, v)) return 1;
      for (int i = 0; i < s->nargs; i++) /* what the routine's count reads */
        if ((s->args[i]->k != KE_ADDR || s->args[i]->buf->kind == KBUF_CONST) && refs(c, s->args[i], v)) return 1;
      break;
    default: break;
    }
  }
  return 0;
}

static void count_class(KCost *k, KCostClass c) {
  switch (c) {
  case KC_ADD: k->adds += 1; break;
  case KC_MUL: k->muls += 1; break;
  case KC_SHIFT: k->shifts += 1; break;
  case KC_OTHER: k->other += 1; break;
  }
}
static void count_op(KCost *k, int op) { count_class(k, fm_kbin[op].cost); }

/* Operations in one evaluation of e (indices not counted). */
static void eops(KExpr *e, KCost *k) {
  if (!e) return;
  switch (e->k) {
  case KE_CONST: case KE_VAR: case KE_BATCH: case KE_LOAD: case KE_ADDR: return;
  case KE_CAST: eops(e->a, k); return;
  case KE_UN:
    eops(e->a, k);
    if (e->a->t != FM_I64) count_class(k, fm_kun[e->op].cost);
    return;
  case KE_BIN:
    eops(e->a, k), eops(e->b, k);
    if (e->a->t != FM_I64) count_op(k, e->op);
    return;
  case KE_FMA:
    eops(e->a, k), eops(e->b, k), eops(e->c, k);
    if (e->t != FM_I64) k->muls += 1, k->adds += 1;
    return;
  case KE_SELECT:
    eops(e->a, k), eops(e->b, k), eops(e->c, k);
    if (e->t != FM_I64) k->other += 1;
    return;
  }
}

static void kadd(KCost *a, KCost b, double times) {
  a->muls += b.muls * times, a->adds += b.adds * times;
  a->shifts += b.shifts * times, a->other += b.other * times;
}

/* The routine's own count (fm_cpu.h) when its integer arguments are static; pointers
   into constant buffers are passed as their data. */
static int routine_count(Cost *c, KStmt *s, double *muls, double *adds) {
  const FmRoutine *r = fm_routine_find(s->fn);
  FmArg a[32];
  if (!r || !r->count || s->nargs > 32) return 0;
  for (int i = 0; i < s->nargs; i++) {
    KExpr *x = s->args[i];
    a[i].p = NULL;
    if (x->k == KE_ADDR) {
      int64_t off;
      if (x->buf->kind == KBUF_CONST && seval(c, x->a, &off) && off >= 0 && off < x->buf->nelem)
        a[i].p = (char *)x->buf->data + off * (int64_t)fm_dtype_size(x->buf->t);
    } else if (r->kinds[i] == 'i' && !seval(c, x, &a[i].i)) {
      return 0;
    }
  }
  return r->count(a, muls, adds);
}

static KCost walk(Cost *c, KStmt *s) {
  KCost k = {0};
  for (; s; s = s->next) {
    switch (s->k) {
    case KS_FOR: {
      int64_t lo = 0, hi = 1; /* data-dependent bounds: counted as one trip */
      int st = seval(c, s->lo, &lo) && seval(c, s->hi, &hi);
      if (!st) lo = 0, hi = 1;
      int64_t trip = hi > lo ? hi - lo : 0;
      int id = s->var->id;
      if (!trip) break;
      c->known[id] = 1;
      if (st && depends(c, s->body, s->var) && c->budget >= trip) {
        c->budget -= trip;
        for (int64_t i = lo; i < hi; i++) {
          c->val[id] = i;
          kadd(&k, walk(c, s->body), 1);
        }
      } else {
        c->val[id] = lo;
        kadd(&k, walk(c, s->body), (double)trip);
      }
      c->known[id] = 0;
      break;
    }
    case KS_LET: {
      int64_t v;
      eops(s->e, &k);
      int id = s->var->id;
      c->known[id] = c->letinit[id] && seval(c, s->e, &v);
      if (c->known[id]) c->val[id] = v;
      break;
    }
    case KS_SET: case KS_STORE: {
      eops(s->e, &k);
      FmDType t = s->k == KS_SET ? s->var->t : s->buf->t;
      if (s->accop >= 0 && t != FM_I64) count_op(&k, s->accop);
      break;
    }
    case KS_IF: {
      int64_t v;
      eops(s->e, &k);
      if (seval(c, s->e, &v)) {
        kadd(&k, walk(c, v ? s->body : s->els), 1);
      } else {
        KCost a = walk(c, s->body), b = walk(c, s->els);
        k.muls += a.muls > b.muls ? a.muls : b.muls;
        k.adds += a.adds > b.adds ? a.adds : b.adds;
        k.shifts += a.shifts > b.shifts ? a.shifts : b.shifts;
        k.other += a.other > b.other ? a.other : b.other;
      }
      break;
    }
    case KS_CALL: {
      double m, a;
      if (routine_count(c, s, &m, &a)) {
        k.muls += m, k.adds += a;
        break;
      }
      int64_t v; /* arguments not static: the lowering's own estimate */
      if (s->muls && seval(c, s->muls, &v)) k.muls += (double)v;
      if (s->adds && seval(c, s->adds, &v)) k.adds += (double)v;
      break;
    }
    case KS_COMMENT: break;
    }
  }
  return k;
}

static void find_lets(Cost *c, KStmt *s, uint8_t *assigned) {
  for (; s; s = s->next) {
    if (s->k == KS_LET) c->letinit[s->var->id] = s->e;
    if (s->k == KS_SET) assigned[s->var->id] = 1;
    find_lets(c, s->body, assigned);
    find_lets(c, s->els, assigned);
  }
}

KCost fm_kcost(KFn *fn, int64_t batch) {
  KCost k = {0};
  size_t n = (size_t)fn->nvars + 1;
  Cost c = {.fn = fn, .batch = batch, .budget = EVAL_BUDGET};
  c.val = calloc(n, sizeof *c.val);
  c.known = calloc(n, 1);
  c.letinit = calloc(n, sizeof *c.letinit);
  uint8_t *assigned = calloc(n, 1);
  if (c.val && c.known && c.letinit && assigned) {
    find_lets(&c, fn->body, assigned);
    for (int i = 0; i < fn->nvars; i++)
      if (assigned[i]) c.letinit[i] = NULL;
    k = walk(&c, fn->body);
  }
  free(c.val), free(c.known), free(c.letinit), free(assigned);
  return k;
}
