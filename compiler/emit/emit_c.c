/* emit_c.c - the C backend: prints one kernel (KFn) as a C function.
 *
 *   static const float conv_0_wt[4] = {0.5f, -1.0f, 2.0f, 0.25f};
 *   static void relu_0(int64_t N, const float *restrict x, float *restrict y) {
 *     FM_PARALLEL_FOR(N * 64 >= 10923)   // fork only when N*64 iterations pay
 *     for (int64_t i = 0; i < N * 64; i++) {
 *       y[i] = fmaxf(x[i], 0.0f);
 *     }
 *   }
 *
 * The output means exactly what the interpreter (kernel/kinterp.c) computes: float32
 * arithmetic in float with f-suffixed <math.h> calls, narrow integer results cast
 * back to their type (C's wrap-around), explicit casts wherever the dtype changes,
 * bool as 0/1 in uint8_t, float16 as uint16_t in memory and float in arithmetic.
 * Loops: KL_PARALLEL -> FM_PARALLEL_FOR on the outermost parallel loop only, when
 * the work of the nest pays for a fork (>= FORK_WORK operations, decided here when
 * the trip count is a constant, else by an if() clause at run time), collapsed with
 * a perfectly nested inner loop so a batch-1 outer loop still spreads; KL_VECTOR ->
 * FM_SIMD unless the body carries a scalar reduction; KL_UNROLL -> FM_UNROLL4.
 */
#include "emit/emit.h"
#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  FILE *f;
  KFn *fn;
  char **bufname;      /* by buffer id: parameter or global table name */
  char **varname;      /* by var id */
  uint8_t *varread;    /* by var id */
  uint8_t *bufused;    /* by buffer id */
  char **names; int nnames; /* every identifier taken in this function */
  int in_parallel;
  const FmCKernel *k;  /* device kernel (fm_emit_c_kernel), or NULL */
} Em;

static int isf(FmDType t) { return t == FM_F32 || t == FM_F64 || t == FM_F16; }
/* Integer types C promotes to int: results are cast back to wrap like the dtype. */
static int narrow(FmDType t) { return t == FM_I8 || t == FM_U8 || t == FM_I16 || t == FM_U16 || t == FM_BOOL; }
static const char *vtype(FmDType t) { return t == FM_F16 ? "float" : fm_dtype_ctype(t); }

/* ---- identifiers ---- */
static const char *const reserved[] = {
  "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum",
  "extern", "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return",
  "short", "signed", "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void",
  "volatile", "while", "N", "main", "NAN", "INFINITY", "abs", "sqrt", "exp", "log", "tanh", "erf",
  "floor", "ceil", "nearbyint", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh",
  "asinh", "acosh", "atanh", "fabs", "fmod", "fmin", "fmax", "pow", "ldexp", "fma", "isnan",
  "isinf", "memcpy", "memset", "sqrtf", "expf", "logf", "tanhf", "erff", "floorf", "ceilf",
  "nearbyintf", "sinf", "cosf", "tanf", "asinf", "acosf", "atanf", "sinhf", "coshf", "asinhf",
  "acoshf", "atanhf", "fabsf", "fmodf", "fminf", "fmaxf", "powf", "ldexpf", "fmaf"};

/* Words of OpenCL C and CUDA C that device kernels must not shadow. */
static const char *const reserved_dev[] = {
  "global", "local", "constant", "private", "kernel", "half", "uchar", "ushort", "uint", "ulong",
  "long", "short", "bool", "size_t", "rint", "mad", "clamp", "select", "mix", "sign", "min", "max",
  "exp2", "log2", "barrier", "printf", "threadIdx", "blockIdx", "blockDim", "gridDim", "warpSize",
  "get_global_id", "get_local_id", "as_uint", "as_float", "isfinite", "trunc", "signbit"};

static int taken(Em *m, const char *s) {
  for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
    if (!strcmp(reserved[i], s)) return 1;
  if (m->k)
    for (size_t i = 0; i < sizeof reserved_dev / sizeof *reserved_dev; i++)
      if (!strcmp(reserved_dev[i], s)) return 1;
  size_t n = strlen(s);
  if (n >= 2 && !strcmp(s + n - 2, "_t")) return 1;
  if (!strncmp(s, "fm_", 3) || !strncmp(s, "FM_", 3) || !strncmp(s, "INT", 3) || !strncmp(s, "UINT", 4))
    return 1;
  for (int i = 0; i < m->nnames; i++)
    if (!strcmp(m->names[i], s)) return 1;
  return 0;
}

/* A unique C identifier made from prefix + name. */
static char *ident(Em *m, const char *prefix, const char *name) {
  size_t n = strlen(prefix) + strlen(name) + 24;
  char *s = malloc(n), *p;
  assert(s);
  int k = snprintf(s, n, "%s", prefix);
  p = s + k;
  if (!*prefix && !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z'))) *p++ = 'v';
  for (const char *q = name; *q; q++) {
    char c = *q;
    *p++ = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ? c : '_';
  }
  *p = 0;
  if (taken(m, s)) {
    size_t base = strlen(s);
    for (int i = 2; taken(m, s); i++) snprintf(s + base, 24, "_%d", i);
  }
  m->names = realloc(m->names, sizeof(char *) * (size_t)(m->nnames + 1));
  assert(m->names);
  m->names[m->nnames++] = s;
  return s;
}

/* ---- uses ---- */
static void use_expr(Em *m, const KExpr *e) {
  if (!e) return;
  if (e->k == KE_VAR) m->varread[e->var->id] = 1;
  if (e->k == KE_LOAD || e->k == KE_ADDR) m->bufused[e->buf->id] = 1;
  use_expr(m, e->a), use_expr(m, e->b), use_expr(m, e->c);
}

static void use_stmts(Em *m, const KStmt *s) {
  for (; s; s = s->next) {
    use_expr(m, s->lo), use_expr(m, s->hi), use_expr(m, s->e), use_expr(m, s->idx);
    if (s->k == KS_STORE) m->bufused[s->buf->id] = 1;
    if (s->k == KS_SET && s->accop >= 0) m->varread[s->var->id] = 1;
    for (int i = 0; i < s->nargs; i++) use_expr(m, s->args[i]);
    use_stmts(m, s->body), use_stmts(m, s->els);
  }
}

/* ---- literals ---- */
static void print_float(FILE *f, double v, FmDType t) {
  const char *suf = t == FM_F64 ? "" : "f";
  if (isnan(v)) { fputs(t == FM_F64 ? "(double)NAN" : "NAN", f); return; }
  if (isinf(v)) { fprintf(f, "%s%s", v < 0 ? "-" : "", t == FM_F64 ? "(double)INFINITY" : "INFINITY"); return; }
  char s[40];
  if (v == trunc(v) && fabs(v) < 1e15) { /* integral: 1000.0f, not 1e+03f */
    fprintf(f, "%.0f.0%s", v, suf);
    return;
  }
  for (int p = 1; p <= 17; p++) { /* shortest text that reads back to the same value */
    snprintf(s, sizeof s, "%.*g", p, v);
    if (t == FM_F64 ? strtod(s, NULL) == v : strtof(s, NULL) == (float)v) break;
  }
  if (!strpbrk(s, ".e")) strcat(s, ".0");
  fprintf(f, "%s%s", s, suf);
}

static void print_int(FILE *f, int64_t v, FmDType t) {
  if (t == FM_U64) fprintf(f, "%" PRIu64 "u", (uint64_t)v);
  else if (v == INT64_MIN) fputs("INT64_MIN", f);
  else if (t == FM_U32 && v > INT32_MAX) fprintf(f, "%" PRId64 "u", v);
  else fprintf(f, "%" PRId64, v);
}

/* ---- expressions: C precedence (16 postfix/call, 15 unary/cast, ... 3 ?:) ---- */
static void pe(Em *m, const KExpr *e, int minprec);

static int binprec(int op) { return fm_kbin[op].c_prec; }
#define binop_c(op) fm_kbin[op].c_op

static int is_const(const KExpr *e) { return e->k == KE_CONST; }
static int const_true(const KExpr *e) { return isf(e->t) ? e->f != 0 : e->i != 0; }

/* Integer binary ops whose result is cast back to a narrow dtype. */
static int wraps(const KExpr *e) {
  int p = binprec(e->op);
  return narrow(e->t) && !(p >= 9 && p <= 10) && e->op != KB_AND && e->op != KB_OR &&
         e->op != KB_XOR && e->op != KB_MIN && e->op != KB_MAX;
}

/* Precedence of e as printed. */
static int eprec(const KExpr *e) {
  switch (e->k) {
  case KE_CONST:
    if (isf(e->t)) return (e->f < 0 || (e->f == 0 && signbit(e->f))) && !isnan(e->f) ? 1 : 16;
    return fm_kwrap(e->t, e->i) < 0 && e->i != INT64_MIN ? 1 : 16;
  case KE_VAR: case KE_BATCH: case KE_LOAD: case KE_FMA: return 16;
  case KE_ADDR: return 12;
  case KE_UN:
    if (e->op == KU_NOT || e->op == KU_NEG || e->op == KU_BITNOT || !isf(e->a->t)) return 15;
    return 16;
  case KE_BIN:
    if ((e->op == KB_AND || e->op == KB_OR) && (is_const(e->a) || is_const(e->b))) return 16;
    if (binprec(e->op) == 16) return narrow(e->t) && e->op == KB_POW ? 15 : 16;
    if (e->op == KB_MOD && isf(e->a->t)) return 16;
    if (!isf(e->a->t) && wraps(e)) return 15;
    return binprec(e->op);
  case KE_SELECT: return 3;
  case KE_CAST:
    if (e->t == FM_BOOL) return 9;
    if (e->t == FM_F16) return 16;
    return 15;
  }
  return 0;
}

/* An operand of a shift, comparison, bitwise or logical operator: gcc's
   -Wparentheses wants any binary operand in parentheses. */
static void operand(Em *m, const KExpr *x, int prec, int op) {
  int strict = op == KB_SHL || op == KB_SHR || (binprec(op) <= 10 && binprec(op) >= 4);
  if (strict && (x->k == KE_BIN || x->k == KE_SELECT || x->k == KE_CAST) && eprec(x) < 15 &&
      !(x->k == KE_BIN && x->op == op && (op == KB_AND || op == KB_OR)))
    prec = 17;
  pe(m, x, prec);
}

static const char *unfn(int op, int s) { return s ? fm_kun[op].c_float : fm_kun[op].c_double; }

static void pcast_open(Em *m, FmDType t) { fprintf(m->f, "(%s)(", vtype(t)); }

static void pe_un(Em *m, const KExpr *e) {
  FILE *f = m->f;
  FmDType t = e->a->t;
  if (e->op == KU_NOT) { fputc('!', f); operand(m, e->a, 15, KB_AND); return; }
  if (isf(t)) {
    if (e->op == KU_NEG) { fputc('-', f); pe(m, e->a, 15); return; }
    if (e->op == KU_BITNOT) { assert(0 && "bitnot of a float"); }
    /* isinf/isnan return any nonzero int (glibc: -1 for -inf); a bool must be 0/1 */
    int cls = e->op == KU_ISNAN || e->op == KU_ISINF;
    fprintf(f, "%s%s(", cls ? "(" : "", unfn(e->op, t != FM_F64));
    pe(m, e->a, 0);
    fputs(cls ? ") != 0)" : ")", f);
    return;
  }
  if (e->op == KU_ISNAN || e->op == KU_ISINF) { fputc('0', f); return; }
  int wrap = narrow(e->t);
  if (wrap) pcast_open(m, e->t);
  switch (e->op) {
  case KU_NEG: fputc('-', f), pe(m, e->a, 15); break;
  case KU_BITNOT: fputc('~', f), pe(m, e->a, 15); break;
  case KU_ABS: fputs("fm_iabs(", f), pe(m, e->a, 0), fputc(')', f); break;
  case KU_SIGN:
    if (t == FM_U64) fputc('(', f), pe(m, e->a, 10), fputs(" != 0)", f);
    else fputs("fm_isign(", f), pe(m, e->a, 0), fputc(')', f);
    break;
  case KU_FLOOR: case KU_CEIL: case KU_ROUND: pe(m, e->a, 15); break;
  default: assert(0 && "unary op on an integer");
  }
  if (wrap) fputc(')', f);
}

static void pe_bin(Em *m, const KExpr *e) {
  FILE *f = m->f;
  FmDType t = e->a->t;
  int op = e->op, p = binprec(op);
  if (op == KB_AND || op == KB_OR) {
    const KExpr *c = is_const(e->a) ? e->a : is_const(e->b) ? e->b : NULL;
    if (c) { /* fold, so clang does not warn about a constant operand */
      const KExpr *o = c == e->a ? e->b : e->a;
      if (const_true(c) == (op == KB_OR)) fputs(op == KB_OR ? "(1)" : "(0)", f);
      else fputc('(', f), operand(m, o, 10, KB_NE), fputs(" != 0)", f);
      return;
    }
  }
  if (isf(t)) {
    const char *fn = t != FM_F64 ? fm_kbin[op].c_float : fm_kbin[op].c_double;
    if (fn) {
      fprintf(f, "%s(", fn);
      pe(m, e->a, 0), fputs(", ", f), pe(m, e->b, 0), fputc(')', f);
      return;
    }
    operand(m, e->a, p, op);
    fprintf(f, " %s ", binop_c(op));
    operand(m, e->b, p + 1, op);
    return;
  }
  if (op == KB_MIN || op == KB_MAX || op == KB_POW) {
    int wrap = narrow(e->t) && op == KB_POW;
    if (wrap) pcast_open(m, e->t);
    fprintf(f, "%s(", op == KB_POW ? "fm_ipow" : t == FM_U64 ? (op == KB_MIN ? "fm_umin" : "fm_umax")
                                                             : (op == KB_MIN ? "fm_imin" : "fm_imax"));
    pe(m, e->a, 0), fputs(", ", f), pe(m, e->b, 0), fputc(')', f);
    if (wrap) fputc(')', f);
    return;
  }
  int cmp = p >= 9 && p <= 10;
  if (cmp && fm_dtype_size(t) < 8) { /* widen: no -Wtype-limits on narrow types */
    if (!is_const(e->a)) fputs("(int64_t)", f);
    pe(m, e->a, 15);
    fprintf(f, " %s ", binop_c(op));
    if (!is_const(e->b)) fputs("(int64_t)", f);
    pe(m, e->b, 15);
    return;
  }
  int wrap = wraps(e);
  if (wrap) pcast_open(m, e->t);
  if (op == KB_XOR) { /* logical xor of 0/1 values */
    fputc('(', f), pe(m, e->a, 0), fputs(") ^ (", f), pe(m, e->b, 0), fputc(')', f);
  } else {
    operand(m, e->a, p, op);
    fprintf(f, " %s ", binop_c(op));
    operand(m, e->b, p + 1, op);
  }
  if (wrap) fputc(')', f);
}

static void pe_cast(Em *m, const KExpr *e) {
  FILE *f = m->f;
  FmDType from = e->a->t, to = e->t;
  if (to == FM_BOOL) {
    operand(m, e->a, 10, KB_NE);
    fputs(" != 0", f);
  } else if (to == FM_F16) {
    fputs("fm_h2f(fm_f2h(", f);
    if (from != FM_F32 && from != FM_F16) fputs("(float)", f), pe(m, e->a, 15);
    else pe(m, e->a, 0);
    fputs("))", f);
  } else {
    fprintf(f, "(%s)", vtype(to));
    pe(m, e->a, 15);
  }
}

static void pe(Em *m, const KExpr *e, int minprec) {
  FILE *f = m->f;
  int paren = eprec(e) < minprec;
  if (paren) fputc('(', f);
  switch (e->k) {
  case KE_CONST:
    if (isf(e->t)) print_float(f, e->t == FM_F64 ? e->f : (double)(float)e->f, e->t);
    else print_int(f, fm_kwrap(e->t, e->i), e->t);
    break;
  case KE_VAR: fputs(m->varname[e->var->id], f); break;
  case KE_BATCH: fputc('N', f); break;
  case KE_LOAD:
    if (e->buf->t == FM_F16) fputs("fm_h2f(", f);
    fprintf(f, "%s[", m->bufname[e->buf->id]);
    pe(m, e->a, 0);
    fputc(']', f);
    if (e->buf->t == FM_F16) fputc(')', f);
    break;
  case KE_ADDR:
    fputs(m->bufname[e->buf->id], f);
    if (!(e->a->k == KE_CONST && e->a->i == 0)) fputs(" + ", f), pe(m, e->a, 13);
    break;
  case KE_UN: pe_un(m, e); break;
  case KE_BIN: pe_bin(m, e); break;
  case KE_FMA:
    if (isf(e->t)) {
      fprintf(f, "%s(", e->t == FM_F64 ? "fma" : "fmaf");
      pe(m, e->a, 0), fputs(", ", f), pe(m, e->b, 0), fputs(", ", f), pe(m, e->c, 0);
      fputc(')', f);
    } else {
      if (narrow(e->t)) pcast_open(m, e->t);
      else fputc('(', f);
      pe(m, e->a, 13), fputs(" * ", f), pe(m, e->b, 14), fputs(" + ", f), pe(m, e->c, 13);
      fputc(')', f);
    }
    break;
  case KE_SELECT:
    if (e->a->t == FM_BOOL) operand(m, e->a, 4, KB_OR);
    else fputc('(', f), operand(m, e->a, 10, KB_NE), fputs(" != 0)", f);
    fputs(" ? ", f), pe(m, e->b, 0), fputs(" : ", f), pe(m, e->c, 3);
    break;
  case KE_CAST: pe_cast(m, e); break;
  }
  if (paren) fputc(')', f);
}

/* e converted to type `to` (C conversion spelled out as the interpreter does it). */
static void pe_as(Em *m, const KExpr *e, FmDType to, int minprec) {
  if (e->t == to) { pe(m, e, minprec); return; }
  KExpr c = {.k = KE_CAST, .t = to, .a = (KExpr *)e};
  pe(m, &c, minprec);
}

/* ---- statements ---- */
static void stmts(Em *m, const KStmt *s, int ind);

static void trip(Em *m, const KStmt *s) {
  if (s->lo->k == KE_CONST && s->lo->i == 0) pe(m, s->hi, 13);
  else fputc('(', m->f), pe(m, s->hi, 0), fputs(" - ", m->f), pe(m, s->lo, 13), fputc(')', m->f);
}

static void for_head(Em *m, const KStmt *s, int ind) {
  fprintf(m->f, "%*sfor (int64_t %s = ", 2 * ind, "", m->varname[s->var->id]);
  pe_as(m, s->lo, FM_I64, 0);
  fprintf(m->f, "; %s < ", m->varname[s->var->id]);
  pe_as(m, s->hi, FM_I64, 11);
  fprintf(m->f, "; %s++)", m->varname[s->var->id]);
}

/* (hi - lo) of loop s as int64_t. */
static void span(Em *m, const KStmt *s) {
  fputc('(', m->f), pe_as(m, s->hi, FM_I64, 12), fputs(" - ", m->f), pe_as(m, s->lo, FM_I64, 13);
  fputc(')', m->f);
}

/* A device kernel's grid loop (and its collapsed inner loop): one work-item per
   iteration, numbered by the dialect's global index. */
static void print_grid(Em *m, const KStmt *s, int ind) {
  FILE *f = m->f;
  const KStmt *in = m->k->inner;
  fprintf(f, "%*sconst int64_t fm_g = %s;\n", 2 * ind, "", m->k->d->gid);
  fprintf(f, "%*sif (fm_g >= ", 2 * ind, "");
  span(m, s);
  if (in) fputs(" * ", f), span(m, in);
  fputs(") return;\n", f);
  fprintf(f, "%*sconst int64_t %s = ", 2 * ind, "", m->varname[s->var->id]);
  pe_as(m, s->lo, FM_I64, 12);
  fputs(in ? " + fm_g / " : " + fm_g;\n", f);
  if (in) span(m, in), fputs(";\n", f);
  fprintf(f, "%*s(void)%s;\n", 2 * ind, "", m->varname[s->var->id]);
  if (in) {
    fprintf(f, "%*sconst int64_t %s = ", 2 * ind, "", m->varname[in->var->id]);
    pe_as(m, in->lo, FM_I64, 12);
    fputs(" + fm_g % ", f), span(m, in), fputs(";\n", f);
    fprintf(f, "%*s(void)%s;\n", 2 * ind, "", m->varname[in->var->id]);
  }
  stmts(m, in ? in->body : s->body, ind);
}

static void print_for(Em *m, const KStmt *s, int ind) {
  FILE *f = m->f;
  const KStmt *inner = NULL;
  int par = 0;
  if (m->k && s == m->k->grid) { print_grid(m, s, ind); return; }
  if (s->loop == KL_PARALLEL && !m->in_parallel) {
    KFork fk = fm_kfork(s);
    inner = fk.inner;
    par = fk.mode != KFORK_NEVER;
    if (fk.mode == KFORK_ALWAYS) {
      fprintf(f, "%*s%s(1)\n", 2 * ind, "", inner ? "FM_PARALLEL_FOR2" : "FM_PARALLEL_FOR");
    } else if (fk.mode == KFORK_IF) {
      fprintf(f, "%*s%s(", 2 * ind, "", inner ? "FM_PARALLEL_FOR2" : "FM_PARALLEL_FOR");
      trip(m, s);
      if (inner) fputs(" * ", f), trip(m, inner);
      fprintf(f, " >= %.0f)\n", fk.min_trips);
    }
  } else if (s->loop == KL_VECTOR && !fm_kloop_reduces(m->fn, s->body)) {
    fprintf(f, "%*sFM_SIMD\n", 2 * ind, "");
  } else if (s->loop == KL_UNROLL) {
    fprintf(f, "%*sFM_UNROLL4\n", 2 * ind, "");
  }
  for_head(m, s, ind);
  if (inner) { /* collapse(2): perfectly nested, no braces in between */
    fputc('\n', f);
    for_head(m, inner, ind + 1);
    s = inner;
  }
  fputs(" {\n", f);
  int save = m->in_parallel, inner_ind = ind + (inner != NULL);
  m->in_parallel |= par;
  stmts(m, s->body, inner_ind + 1);
  m->in_parallel = save;
  fprintf(f, "%*s}\n", 2 * inner_ind, "");
}

/* tgt (op)= e, where cur reads the target (a KE_VAR or a KE_LOAD) of type t. */
static void assign(Em *m, const char *tgt, const KExpr *cur, FmDType t, int accop, const KExpr *e) {
  FILE *f = m->f;
  int half = cur->k == KE_LOAD && cur->buf->t == FM_F16;
  if (accop < 0) {
    fprintf(f, "%s = ", tgt);
    if (half) fputs("fm_f2h(", f), pe_as(m, e, FM_F32, 0), fputc(')', f);
    else pe_as(m, e, t, 0);
    fputs(";\n", f);
    return;
  }
  int compound = !half &&
                 (accop == KB_ADD || accop == KB_SUB || accop == KB_MUL || accop == KB_DIV ||
                  (!isf(t) && (accop == KB_MOD || accop == KB_BITAND || accop == KB_BITOR ||
                               accop == KB_BITXOR || accop == KB_SHL || accop == KB_SHR)));
  if (compound) {
    fprintf(f, "%s %s= ", tgt, binop_c(accop));
    pe_as(m, e, t, 0);
    fputs(";\n", f);
    return;
  }
  KExpr op = {.k = KE_BIN, .t = t, .op = accop, .a = (KExpr *)cur, .b = (KExpr *)e};
  if (accop >= KB_LT && accop <= KB_NE) op.t = FM_BOOL;
  assign(m, tgt, cur, t, -1, &op);
}

static void stmts(Em *m, const KStmt *s, int ind) {
  FILE *f = m->f;
  for (; s; s = s->next) {
    switch (s->k) {
    case KS_FOR: print_for(m, s, ind); break;
    case KS_LET:
      fprintf(f, "%*s%s %s = ", 2 * ind, "", vtype(s->var->t), m->varname[s->var->id]);
      pe_as(m, s->e, s->var->t, 0);
      fputs(";\n", f);
      if (!m->varread[s->var->id]) fprintf(f, "%*s(void)%s;\n", 2 * ind, "", m->varname[s->var->id]);
      break;
    case KS_SET: {
      KExpr cur = {.k = KE_VAR, .t = s->var->t, .var = s->var};
      fprintf(f, "%*s", 2 * ind, "");
      assign(m, m->varname[s->var->id], &cur, s->var->t, s->accop, s->e);
      break;
    }
    case KS_STORE: {
      char *tgt;
      size_t len;
      FILE *mem = open_memstream(&tgt, &len);
      assert(mem);
      FILE *save = m->f;
      m->f = mem;
      fprintf(mem, "%s[", m->bufname[s->buf->id]);
      pe(m, s->idx, 0);
      fputc(']', mem);
      fclose(mem);
      m->f = save;
      KExpr load = {.k = KE_LOAD, .t = s->buf->t, .buf = s->buf, .a = s->idx};
      fprintf(f, "%*s", 2 * ind, "");
      assign(m, tgt, &load, s->buf->t, s->accop, s->e);
      free(tgt);
      break;
    }
    case KS_IF:
      fprintf(f, "%*sif (", 2 * ind, "");
      if (isf(s->e->t)) operand(m, s->e, 10, KB_NE), fputs(" != 0", f);
      else pe(m, s->e, 0);
      fputs(") {\n", f);
      stmts(m, s->body, ind + 1);
      if (s->els) {
        fprintf(f, "%*s} else {\n", 2 * ind, "");
        stmts(m, s->els, ind + 1);
      }
      fprintf(f, "%*s}\n", 2 * ind, "");
      break;
    case KS_CALL:
      fprintf(f, "%*s%s(", 2 * ind, "", s->fn);
      for (int i = 0; i < s->nargs; i++) {
        if (i) fputs(", ", f);
        pe(m, s->args[i], 0);
      }
      fputs(");\n", f);
      break;
    case KS_COMMENT: {
      fprintf(f, "%*s/* ", 2 * ind, "");
      for (const char *c = s->fn; *c; c++)
        if (!(c[0] == '*' && c[1] == '/') && *c != '\n') fputc(*c, f);
      fputs(" */\n", f);
      break;
    }
    }
  }
}

/* ---- constant tables ---- */
static void print_table(Em *m, const KBuf *b) {
  FILE *f = m->f;
  int64_t n = b->nelem;
  assert(n >= 0 && "a KBUF_CONST size cannot involve N");
  fprintf(f, "%s %s %s[%" PRId64 "] = {", m->k ? m->k->d->table : "static const", fm_dtype_ctype(b->t),
          m->bufname[b->id], n ? n : 1);
  if (!n) fputs("0", f);
  for (int64_t i = 0; i < n; i++) {
    fputs(i % 8 ? " " : "\n  ", f);
    const char *p = b->data;
    switch (b->t) {
    case FM_F32: print_float(f, ((const float *)p)[i], FM_F32); break;
    case FM_F64: print_float(f, ((const double *)p)[i], FM_F64); break;
    case FM_F16: case FM_U16: fprintf(f, "%u", (unsigned)((const uint16_t *)p)[i]); break;
    case FM_I8: fprintf(f, "%d", ((const int8_t *)p)[i]); break;
    case FM_U8: case FM_BOOL: fprintf(f, "%u", (unsigned)((const uint8_t *)p)[i]); break;
    case FM_I16: fprintf(f, "%d", ((const int16_t *)p)[i]); break;
    case FM_I32: fprintf(f, "%" PRId32, ((const int32_t *)p)[i]); break;
    case FM_U32: fprintf(f, "%" PRIu32 "u", ((const uint32_t *)p)[i]); break;
    case FM_I64: print_int(f, ((const int64_t *)p)[i], FM_I64); break;
    case FM_U64: print_int(f, ((const int64_t *)p)[i], FM_U64); break;
    default: assert(0 && "unsupported constant dtype");
    }
    if (i + 1 < n) fputc(',', f);
  }
  fputs("\n};\n", f);
}

static void em_init(Em *m, FILE *f, KFn *fn, const FmCKernel *k, int canonical) {
  *m = (Em){.f = f, .fn = fn, .k = k};
  const char *fname = canonical ? "K" : fn->name;
  size_t nb = (size_t)fn->nbufs + 1, nv = (size_t)fn->nvars + 1;
  m->bufname = calloc(nb, sizeof(char *));
  m->varname = calloc(nv, sizeof(char *));
  m->varread = calloc(nv, 1);
  m->bufused = calloc(nb, 1);
  assert(m->bufname && m->varname && m->varread && m->bufused);
  use_stmts(m, fn->body);

  m->names = malloc(sizeof(char *));
  m->names[m->nnames++] = strdup(fname);
  for (int i = 0; i < fn->nbufs; i++) {
    KBuf *b = fn->bufs[i];
    char nm[32];
    snprintf(nm, sizeof nm, "b%d", i);
    if (b->kind == KBUF_CONST) {
      char pre[256];
      snprintf(pre, sizeof pre, "%s_", fname);
      m->bufname[i] = ident(m, pre, canonical ? nm : b->name);
    } else m->bufname[i] = ident(m, "", canonical ? nm : b->name);
  }
  for (int i = 0; i < fn->nvars; i++) {
    char nm[32];
    snprintf(nm, sizeof nm, "v%d", i);
    m->varname[i] = ident(m, "", canonical ? nm : fn->vars[i]->name);
  }
}

static void em_free(Em *m) {
  for (int i = 0; i < m->nnames; i++) free(m->names[i]);
  free(m->names), free(m->bufname), free(m->varname), free(m->varread), free(m->bufused);
}

void fm_emit_c_kernel(FILE *f, KFn *fn, const FmCKernel *k) {
  Em m;
  const FmCDialect *d = k->d;
  em_init(&m, f, fn, k, 0);
  m.in_parallel = 1; /* loops inside a work-item are plain loops */
  if (k->tables)
    for (int i = 0; i < fn->nbufs; i++)
      if (fn->bufs[i]->kind == KBUF_CONST && m.bufused[i]) print_table(&m, fn->bufs[i]);
  fprintf(f, "%s %s(int64_t N", d->kernel, k->name);
  for (int i = 0; i < fn->nbufs; i++) {
    KBuf *b = fn->bufs[i];
    if (b->kind == KBUF_CONST) continue;
    if (d->base_offset) fprintf(f, ", %suchar *fm_b%d, int64_t fm_o%d", d->global, i, i);
    else fprintf(f, ", %s%s%s *restrict %s", d->global, fm_kfn_writes(fn, b) ? "" : "const ",
                 fm_dtype_ctype(b->t), m.bufname[i]);
  }
  fputs(") {\n  (void)N;\n", f);
  for (int i = 0; i < fn->nbufs; i++) {
    KBuf *b = fn->bufs[i];
    if (b->kind == KBUF_CONST) continue;
    const char *c = fm_kfn_writes(fn, b) ? "" : "const ", *t = fm_dtype_ctype(b->t);
    if (d->base_offset)
      fprintf(f, "  %s%s%s *restrict %s = (%s%s%s *)(fm_b%d + fm_o%d);\n", d->global, c, t, m.bufname[i],
              d->global, c, t, i, i);
    fprintf(f, "  (void)%s;\n", m.bufname[i]);
  }
  for (int i = 0; i < k->nstmts; i++) {
    const KStmt *s = k->stmts[i];
    KStmt one = *s;
    one.next = NULL;
    if (s == k->grid) print_for(&m, s, 1);
    else stmts(&m, &one, 1);
    if (s->k == KS_LET) fprintf(f, "  (void)%s;\n", m.varname[s->var->id]);
  }
  fputs("}\n\n", f);
  em_free(&m);
}

void fm_emit_c_expr(FILE *f, const KExpr *e) {
  Em m = {.f = f};
  pe_as(&m, e, FM_I64, 0);
}

void fm_emit_c_fn(FILE *f, KFn *fn, int canonical) {
  Em m;
  const char *fname = canonical ? "K" : fn->name;
  em_init(&m, f, fn, NULL, canonical);

  if (fn->node && !canonical)
    fprintf(f, "/* %s: node '%s' (%s) */\n", fn->name, fn->node->name, fn->node->op_type);
  for (int i = 0; i < fn->nbufs; i++)
    if (fn->bufs[i]->kind == KBUF_CONST && m.bufused[i]) print_table(&m, fn->bufs[i]);

  fprintf(f, "static void %s(int64_t N", fname);
  for (int i = 0; i < fn->nbufs; i++) {
    KBuf *b = fn->bufs[i];
    if (b->kind == KBUF_CONST) continue;
    fprintf(f, ", %s%s *restrict %s", fm_kfn_writes(fn, b) ? "" : "const ", fm_dtype_ctype(b->t), m.bufname[i]);
  }
  fputs(") {\n", f);
  if (!fm_kstmts_use_batch(fn->body)) fputs("  (void)N;\n", f);
  for (int i = 0; i < fn->nbufs; i++)
    if (fn->bufs[i]->kind != KBUF_CONST && !m.bufused[i]) fprintf(f, "  (void)%s;\n", m.bufname[i]);
  stmts(&m, fn->body, 1);
  fputs("}\n\n", f);
  em_free(&m);
}

/* ---- backends ---- */
static const FmBackend *const all_backends[] = {&fm_backend_c, &fm_backend_llvm, &fm_backend_opencl, &fm_backend_cuda};

const FmBackend *fm_backend_find(const char *name) {
  for (size_t i = 0; i < sizeof all_backends / sizeof *all_backends; i++)
    if (!strcmp(all_backends[i]->name, name)) return all_backends[i];
  return NULL;
}

const char *fm_backend_names(void) { return "c, llvm, opencl, cuda"; }
