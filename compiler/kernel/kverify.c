/* kverify.c - the kernel IR verifier: what every printer may assume of a KFn.
 *
 * Run between lowering and printing (passes/lower.c, in every build without NDEBUG,
 * and so in every test), and by the interpreter before it runs a kernel. It checks
 *   - ownership: every variable and buffer an expression names is this kernel's,
 *     a variable is read only inside the block that declares it (let or for);
 *   - operand dtypes: indices and loop bounds are integers; both operands of a
 *     binary operator have one dtype (shifts and ldexp excepted: ldexp is (float,
 *     int)); comparisons and logic give bool; an operator's dtype is its operands';
 *     fma and select agree; op= assigns a value of the target's dtype; unary ops
 *     on floats are the float ones; calls match their routine's argument kinds;
 *   - stores: never into a constant buffer, never to a loop variable;
 *   - loop marks: a KL_PARALLEL loop does not assign a scalar declared outside it
 *     (its iterations would race on it; a KL_VECTOR loop may: a reduction, which
 *     printers vectorise without the simd hint);
 *   - static buffer bounds: a load, store or &buf[i] that runs unconditionally (not
 *     under an if or a select) and whose index has a static range (loop variables
 *     with constant bounds, N at 1 and 64, lets of such values, constant tables)
 *     stays inside the buffer. fm_kverify_at checks one batch (the interpreter's).
 * Returns 0, or -1 with "kernel K: what" in err.
 */
#include "kernel/kernel.h"
#include "emit/emit.h"
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { int ok; int64_t lo, hi; } Range; /* ok: lo <= value <= hi */

typedef struct {
  const KFn *fn;
  char *err; size_t errlen;
  jmp_buf jb;
  uint8_t *live;      /* by var id: declared in an enclosing block */
  uint8_t *loopvar;   /* by var id: a for variable */
  uint8_t *assigned;  /* by var id: some KS_SET writes it */
  Range *vr;          /* by var id: static range */
  int64_t batch;      /* N for the bounds pass */
  int guarded;        /* under an if or inside a select branch */
} V;

static int isf(FmDType t) { return t == FM_F32 || t == FM_F64 || t == FM_F16; }
static int isint(FmDType t) { return !isf(t) && fm_dtype_size(t) > 0; }

__attribute__((format(printf, 2, 3))) static _Noreturn void bad(V *v, const char *fmt, ...) {
  int k = snprintf(v->err, v->errlen, "kernel '%s': ", v->fn->name);
  if (k < 0 || (size_t)k >= v->errlen) k = 0;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(v->err + k, v->errlen - (size_t)k, fmt, ap);
  va_end(ap);
  longjmp(v->jb, 1);
}

/* ---- static ranges ---- */
static const Range NONE = {0, 0, 0};
static Range rng(int64_t lo, int64_t hi) { return (Range){1, lo, hi}; }
static int big(int64_t x) { return x > (INT64_C(1) << 40) || x < -(INT64_C(1) << 40); }
static Range fit(Range r) { return r.ok && !big(r.lo) && !big(r.hi) ? r : NONE; }

static Range erange(V *v, const KExpr *e);

/* The values of constant table b at the indices in ix (all of them when ix is unknown
   or not inside the table): a lookup by a loop variable yields only the entries that
   variable reaches (ops/winograd.c's per-tile offset tables at a small batch). */
static Range table_range(const KBuf *b, Range ix) {
  int64_t lo = INT64_MAX, hi = INT64_MIN, i0 = 0, i1 = b->nelem;
  if (ix.ok && ix.lo >= 0 && ix.hi < b->nelem) i0 = ix.lo, i1 = ix.hi + 1;
  for (int64_t i = i0; i < i1; i++) {
    int64_t x;
    switch (b->t) {
    case FM_I16: x = ((const int16_t *)b->data)[i]; break;
    case FM_I32: x = ((const int32_t *)b->data)[i]; break;
    case FM_I64: x = ((const int64_t *)b->data)[i]; break;
    default: return NONE;
    }
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  return b->nelem > 0 ? fit(rng(lo, hi)) : NONE;
}

static Range bin_range(int op, Range a, Range b) {
  if (!a.ok || !b.ok) return NONE;
  switch (op) {
  case KB_ADD: return fit(rng(a.lo + b.lo, a.hi + b.hi));
  case KB_SUB: return fit(rng(a.lo - b.hi, a.hi - b.lo));
  case KB_MUL: {
    int64_t p[4] = {a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi}, lo = p[0], hi = p[0];
    for (int i = 1; i < 4; i++) lo = p[i] < lo ? p[i] : lo, hi = p[i] > hi ? p[i] : hi;
    return fit(rng(lo, hi));
  }
  case KB_DIV: /* C division truncates toward zero: monotone for a positive divisor */
    if (b.lo <= 0) return NONE;
    return rng(a.lo >= 0 ? a.lo / b.hi : a.lo / b.lo, a.hi >= 0 ? a.hi / b.lo : a.hi / b.hi);
  case KB_MOD:
    if (b.lo <= 0 || a.lo < 0) return NONE;
    return rng(0, a.hi < b.hi - 1 ? a.hi : b.hi - 1);
  case KB_MIN: return rng(a.lo < b.lo ? a.lo : b.lo, a.hi < b.hi ? a.hi : b.hi);
  case KB_MAX: return rng(a.lo > b.lo ? a.lo : b.lo, a.hi > b.hi ? a.hi : b.hi);
  case KB_LT: case KB_LE: case KB_GT: case KB_GE: case KB_EQ: case KB_NE:
  case KB_AND: case KB_OR: case KB_XOR: return rng(0, 1);
  default: return NONE;
  }
}

static Range erange(V *v, const KExpr *e) {
  if (!e || isf(e->t)) return NONE;
  switch (e->k) {
  case KE_CONST: return rng(e->i, e->i);
  case KE_BATCH: return rng(v->batch, v->batch);
  case KE_VAR: return v->vr[e->var->id];
  case KE_CAST: return e->t == FM_BOOL ? rng(0, 1) : isf(e->a->t) ? NONE : erange(v, e->a);
  case KE_LOAD: return e->buf->kind == KBUF_CONST ? table_range(e->buf, erange(v, e->a)) : NONE;
  /* a select's branches hold only under their conditions (reflect padding): unknown */
  case KE_BIN: return bin_range(e->op, erange(v, e->a), erange(v, e->b));
  default: return NONE;
  }
}

static void bounds(V *v, const KBuf *b, const KExpr *idx, int addr) {
  if (v->guarded) return;
  int64_t n = fm_kbuf_nelem(b, v->batch);
  Range r = erange(v, idx);
  if (n < 0 || !r.ok) return;
  if (r.lo < 0 || r.hi > n - !addr)
    bad(v, "%s%s[%lld..%lld] is outside its %lld elements (at N = %lld)", addr ? "&" : "", b->name,
        (long long)r.lo, (long long)r.hi, (long long)n, (long long)v->batch);
}

/* ---- expressions ---- */
static void own_buf(V *v, const KBuf *b) {
  if (!b || b->id < 0 || b->id >= v->fn->nbufs || v->fn->bufs[b->id] != b)
    bad(v, "buffer '%s' is not of this kernel", b ? b->name : "?");
}

static void vexpr(V *v, const KExpr *e) {
  if (!e) bad(v, "missing expression");
  switch (e->k) {
  case KE_CONST: case KE_BATCH: return;
  case KE_VAR: {
    const KVar *x = e->var;
    if (x->id < 0 || x->id >= v->fn->nvars || v->fn->vars[x->id] != x)
      bad(v, "variable '%s' is not of this kernel", x->name);
    if (!v->live[x->id]) bad(v, "variable '%s' is read outside the block that declares it", x->name);
    if (e->t != x->t) bad(v, "variable '%s' (%s) read as %s", x->name, fm_dtype_name(x->t), fm_dtype_name(e->t));
    return;
  }
  case KE_LOAD: case KE_ADDR:
    own_buf(v, e->buf);
    vexpr(v, e->a);
    if (!isint(e->a->t)) bad(v, "index into '%s' is %s", e->buf->name, fm_dtype_name(e->a->t));
    if (e->k == KE_LOAD && e->t != e->buf->t)
      bad(v, "load of '%s' (%s) typed %s", e->buf->name, fm_dtype_name(e->buf->t), fm_dtype_name(e->t));
    bounds(v, e->buf, e->a, e->k == KE_ADDR);
    return;
  case KE_UN:
    vexpr(v, e->a);
    if (e->op < 0 || e->op >= KU_COUNT) bad(v, "unary operator %d", e->op);
    if (e->op == KU_ISNAN || e->op == KU_ISINF) {
      if (e->t != FM_BOOL) bad(v, "%s gives bool, not %s", fm_kun[e->op].name, fm_dtype_name(e->t));
    } else if (e->t != e->a->t) {
      bad(v, "%s of %s typed %s", fm_kun[e->op].name, fm_dtype_name(e->a->t), fm_dtype_name(e->t));
    }
    if (isf(e->a->t) && e->op == KU_BITNOT) bad(v, "bitnot of %s", fm_dtype_name(e->a->t));
    if (!isf(e->a->t) && e->op != KU_NEG && e->op != KU_ABS && e->op != KU_NOT && e->op != KU_BITNOT &&
        e->op != KU_SIGN && e->op != KU_FLOOR && e->op != KU_CEIL && e->op != KU_ROUND &&
        e->op != KU_ISNAN && e->op != KU_ISINF)
      bad(v, "%s of an integer (%s)", fm_kun[e->op].name, fm_dtype_name(e->a->t));
    return;
  case KE_BIN: {
    vexpr(v, e->a), vexpr(v, e->b);
    int op = e->op;
    if (op < 0 || op >= KB_COUNT) bad(v, "binary operator %d", op);
    const char *nm = fm_kbin[op].name;
    if (op == KB_LDEXP) {
      if (!isf(e->a->t) || !isint(e->b->t)) bad(v, "ldexp needs (float, int)");
    } else if (op == KB_SHL || op == KB_SHR) {
      if (!isint(e->a->t) || !isint(e->b->t)) bad(v, "%s of %s", nm, fm_dtype_name(e->a->t));
    } else if (e->a->t != e->b->t) {
      bad(v, "%s of %s and %s (insert k_cast)", nm, fm_dtype_name(e->a->t), fm_dtype_name(e->b->t));
    }
    int cmp = (op >= KB_LT && op <= KB_NE) || op == KB_AND || op == KB_OR || op == KB_XOR;
    FmDType want = cmp ? FM_BOOL : e->a->t;
    if (e->t != want) bad(v, "%s of %s typed %s, not %s", nm, fm_dtype_name(e->a->t), fm_dtype_name(e->t), fm_dtype_name(want));
    if (isf(e->a->t) && op >= KB_BITAND && op <= KB_SHR) bad(v, "%s of %s", nm, fm_dtype_name(e->a->t));
    return;
  }
  case KE_FMA:
    vexpr(v, e->a), vexpr(v, e->b), vexpr(v, e->c);
    if (e->a->t != e->t || e->b->t != e->t || e->c->t != e->t) bad(v, "fma of mixed types");
    return;
  case KE_SELECT:
    vexpr(v, e->a);
    v->guarded++;
    vexpr(v, e->b), vexpr(v, e->c);
    v->guarded--;
    if (e->b->t != e->c->t || e->t != e->b->t)
      bad(v, "select of %s and %s", fm_dtype_name(e->b->t), fm_dtype_name(e->c->t));
    return;
  case KE_CAST:
    vexpr(v, e->a);
    if (!fm_dtype_size(e->t)) bad(v, "cast to %s", fm_dtype_name(e->t));
    return;
  }
  bad(v, "bad expression kind %d", (int)e->k);
}

/* ---- statements ---- */
static int sets_outer(V *v, const KStmt *s, const uint8_t *outer) {
  for (; s; s = s->next) {
    if (s->k == KS_SET && outer[s->var->id]) return s->var->id + 1;
    int r = sets_outer(v, s->body, outer);
    if (!r) r = sets_outer(v, s->els, outer);
    if (r) return r;
  }
  return 0;
}

static void undeclare(V *v, const KStmt *s) {
  for (; s; s = s->next)
    if (s->k == KS_LET) v->live[s->var->id] = 0;
}

static void vstmts(V *v, const KStmt *s) {
  const KStmt *first = s;
  for (; s; s = s->next) {
    switch (s->k) {
    case KS_FOR: {
      int id = s->var->id;
      vexpr(v, s->lo), vexpr(v, s->hi);
      if (!isint(s->lo->t) || !isint(s->hi->t)) bad(v, "loop '%s' bounds are not integers", s->var->name);
      if (id < 0 || id >= v->fn->nvars || v->fn->vars[id] != s->var) bad(v, "loop variable '%s' is not of this kernel", s->var->name);
      if (v->live[id]) bad(v, "loop variable '%s' is declared twice", s->var->name);
      if (s->loop == KL_PARALLEL) {
        int r = sets_outer(v, s->body, v->live);
        if (r) bad(v, "parallel loop '%s' assigns '%s', declared outside it", s->var->name, v->fn->vars[r - 1]->name);
      }
      Range lo = erange(v, s->lo), hi = erange(v, s->hi);
      /* only bounds independent of other loops: a range from correlated bounds
         (for k = i .. i + 3) would overstate the indices built from it */
      int exact = lo.ok && hi.ok && lo.lo == lo.hi && hi.lo == hi.hi;
      v->vr[id] = exact && hi.hi > lo.lo ? rng(lo.lo, hi.hi - 1) : NONE;
      v->live[id] = 1, v->loopvar[id] = 1;
      vstmts(v, s->body);
      v->live[id] = 0, v->vr[id] = NONE;
      break;
    }
    case KS_LET: {
      int id = s->var->id;
      vexpr(v, s->e);
      if (id < 0 || id >= v->fn->nvars || v->fn->vars[id] != s->var) bad(v, "variable '%s' is not of this kernel", s->var->name);
      if (v->live[id]) bad(v, "variable '%s' is declared twice", s->var->name);
      if (!fm_dtype_size(s->var->t)) bad(v, "let '%s' of type %s", s->var->name, fm_dtype_name(s->var->t));
      v->live[id] = 1;
      v->vr[id] = v->assigned[id] ? NONE : erange(v, s->e);
      break;
    }
    case KS_SET:
      vexpr(v, s->e);
      if (!v->live[s->var->id]) bad(v, "assignment to '%s' outside the block that declares it", s->var->name);
      if (v->loopvar[s->var->id]) bad(v, "assignment to loop variable '%s'", s->var->name);
      if (s->accop >= KB_COUNT) bad(v, "accumulation operator %d", s->accop);
      if (s->accop >= 0 && s->e->t != s->var->t)
        bad(v, "%s= on '%s' (%s) of %s", fm_kbin[s->accop].name, s->var->name, fm_dtype_name(s->var->t),
            fm_dtype_name(s->e->t));
      break;
    case KS_STORE:
      own_buf(v, s->buf);
      vexpr(v, s->idx), vexpr(v, s->e);
      if (!isint(s->idx->t)) bad(v, "index into '%s' is %s", s->buf->name, fm_dtype_name(s->idx->t));
      if (s->buf->kind == KBUF_CONST) bad(v, "store to constant buffer '%s'", s->buf->name);
      if (s->accop >= KB_COUNT) bad(v, "accumulation operator %d", s->accop);
      if (s->accop >= 0 && s->e->t != s->buf->t)
        bad(v, "%s= into '%s' (%s) of %s", fm_kbin[s->accop].name, s->buf->name, fm_dtype_name(s->buf->t),
            fm_dtype_name(s->e->t));
      bounds(v, s->buf, s->idx, 0);
      break;
    case KS_IF:
      vexpr(v, s->e);
      v->guarded++;
      vstmts(v, s->body), vstmts(v, s->els);
      v->guarded--;
      break;
    case KS_CALL: {
      const FmRoutine *r = fm_routine_find(s->fn);
      if (!r) bad(v, "call of unknown routine '%s' (not in the CPU library's routine table)", s->fn);
      if ((size_t)s->nargs != strlen(r->kinds) || s->nargs > 32)
        bad(v, "call %s with %d arguments, it takes %zu", s->fn, s->nargs, strlen(r->kinds));
      for (int k = 0; k < s->nargs; k++) {
        KExpr *x = s->args[k];
        char want = r->kinds[k];
        vexpr(v, x);
        int ok = want == 'p' || want == 'c' ? x->k == KE_ADDR
                 : want == 'f'              ? isf(x->t) && x->k != KE_ADDR
                                            : isint(x->t) && x->k != KE_ADDR;
        if (!ok) bad(v, "call %s: argument %d is not of kind '%c'", s->fn, k, want);
        if (want == 'p' && x->buf->kind == KBUF_CONST)
          bad(v, "call %s: argument %d writes constant buffer '%s'", s->fn, k, x->buf->name);
      }
      if (s->muls) vexpr(v, s->muls);
      if (s->adds) vexpr(v, s->adds);
      break;
    }
    case KS_COMMENT: break;
    default: bad(v, "bad statement kind %d", (int)s->k);
    }
  }
  undeclare(v, first);
}

static void mark_assigned(V *v, const KStmt *s) {
  for (; s; s = s->next) {
    if (s->k == KS_SET && s->var->id >= 0 && s->var->id < v->fn->nvars) v->assigned[s->var->id] = 1;
    mark_assigned(v, s->body), mark_assigned(v, s->els);
  }
}

static int verify(const KFn *fn, const int64_t *batches, int nb, char *err, size_t errlen) {
  char dummy[8];
  if (!err || !errlen) err = dummy, errlen = sizeof dummy;
  err[0] = 0;
  V v = {.fn = fn, .err = err, .errlen = errlen};
  size_t n = (size_t)fn->nvars + 1;
  v.live = calloc(n, 1), v.loopvar = calloc(n, 1), v.assigned = calloc(n, 1);
  v.vr = calloc(n, sizeof *v.vr);
  int rc = -1;
  if (!v.live || !v.loopvar || !v.assigned || !v.vr) {
    snprintf(err, errlen, "kernel %s: out of memory", fn->name);
    goto done;
  }
  if (setjmp(v.jb)) goto done;
  for (int i = 0; i < fn->nbufs; i++)
    if (!fn->bufs[i] || fn->bufs[i]->id != i) bad(&v, "buffer %d has id %d", i, fn->bufs[i] ? fn->bufs[i]->id : -1);
  for (int i = 0; i < fn->nvars; i++)
    if (!fn->vars[i] || fn->vars[i]->id != i) bad(&v, "variable %d has id %d", i, fn->vars[i] ? fn->vars[i]->id : -1);
  mark_assigned(&v, fn->body);
  for (int b = 0; b < nb; b++) {
    v.batch = batches[b];
    memset(v.live, 0, n), memset(v.loopvar, 0, n);
    vstmts(&v, fn->body);
  }
  rc = 0;
done:
  free(v.live), free(v.loopvar), free(v.assigned), free(v.vr);
  return rc;
}

int fm_kverify(const KFn *fn, char *err, size_t errlen) {
  static const int64_t batches[] = {1, 64}; /* sizes and indices are linear in N */
  return verify(fn, batches, 2, err, errlen);
}

int fm_kverify_at(const KFn *fn, int64_t batch, char *err, size_t errlen) {
  return verify(fn, &batch, 1, err, errlen);
}
