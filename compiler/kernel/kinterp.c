/* kinterp.c - the kernel IR interpreter: constant folding and the reference backend.
 *
 * Semantics are those of the C the printer (emit/emit_c.c) writes, so folding at
 * compile time equals run time:
 *   - floats are doubles rounded to the dtype after every op (float32 -> float, so
 *     results match C float code; float16 values compute as float and round to
 *     half only when stored or cast to float16); transcendental ops call the float
 *     versions of <math.h> (expf, ...) for float32;
 *   - integers are int64 wrapped to their dtype after every op (C wrap-around of
 *     the narrow types; uint64 kept as its bit pattern; bool is 0/1);
 *   - KB_MIN/KB_MAX on floats are fm_fmin/fm_fmax (glibc's fminf/fmaxf semantics, the
 *     C printer's fm_fminf/fm_fmaxf), KB_MOD is fmod / C %, KU_ROUND is nearbyint,
 *     select and && / || evaluate lazily like C's ?: && ||;
 *   - integer division by zero, loads and stores outside a buffer (its element
 *     count at the given batch) and type errors in the tree return -1 with a message
 *     naming the kernel and the buffer, instead of crashing. That is the point: the
 *     lowerings are tested on this interpreter.
 * KS_CALL runs the CPU kernel library routine of the same name (libfm_cpu.a,
 * cpu/fm_cpu.h) through the table below.
 */
#include "kernel/kernel.h"
#include "emit/emit.h"
#include <assert.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- the CPU library routines the interpreter can call ----
 * Adding one: a line in fm_cpu.h's FM_CPU_ROUTINES and here a wrapper call_<name>
 * that checks the extents it touches (avail[k]: elements from pointer argument k to
 * its buffer end) and calls the routine. */
#define X_DECL(name, kinds, count) \
  static const char *call_##name(const FmArg *a, const int64_t *av, char *msg, size_t len);
FM_CPU_ROUTINES(X_DECL)
#undef X_DECL
#define X_ENTRY(name, kinds, count) {#name, kinds, count, call_##name},
static const FmRoutine routines[] = {FM_CPU_ROUTINES(X_ENTRY)};
#undef X_ENTRY

const FmRoutine *fm_routine_find(const char *name) {
  for (size_t i = 0; i < sizeof routines / sizeof *routines; i++)
    if (!strcmp(routines[i].name, name)) return &routines[i];
  return NULL;
}

/* Extent check: the highest element a routine touches through pointer k. */
static const char *need(const int64_t *av, int k, int64_t last, const char *what, char *msg,
                        size_t len) {
  if (last < av[k]) return NULL;
  snprintf(msg, len, "%s reaches element %lld past its pointer but only %lld remain", what,
           (long long)last, (long long)av[k]);
  return msg;
}

static const char *call_fm_sgemm(const FmArg *a, const int64_t *av, char *msg, size_t len) {
  int64_t m0 = a[0].i, m1 = a[1].i, n0 = a[2].i, n1 = a[3].i, K = a[4].i;
  int64_t lda = a[6].i, tA = a[7].i, ldb = a[9].i, tB = a[10].i, ldc = a[12].i;
  const char *e;
  if (m0 < 0 || n0 < 0 || K < 0) {
    snprintf(msg, len, "fm_sgemm: negative range (m0 %lld, n0 %lld, K %lld)", (long long)m0,
             (long long)n0, (long long)K);
    return msg;
  }
  if (m1 > m0 && n1 > n0) {
    if (K > 0) {
      if ((e = need(av, 5, tA ? (K - 1) * lda + m1 - 1 : (m1 - 1) * lda + K - 1, "fm_sgemm A", msg, len)))
        return e;
      if ((e = need(av, 8, tB ? (n1 - 1) * ldb + K - 1 : (K - 1) * ldb + n1 - 1, "fm_sgemm B", msg, len)))
        return e;
    }
    if ((e = need(av, 11, (m1 - 1) * ldc + n1 - 1, "fm_sgemm C", msg, len))) return e;
  }
  fm_sgemm(m0, m1, n0, n1, K, a[5].p, lda, tA, a[8].p, ldb, tB, a[11].p, ldc, a[13].i);
  return NULL;
}

/* floats of a packed B operand of n columns and K rows (fm_im2col_pack) */
static int64_t packed_b_size(int64_t n, int64_t K) {
  int64_t nr = fm_cpu_gemm_nr();
  return (n + nr - 1) / nr * K * nr;
}

static const char *call_fm_im2col_pack(const FmArg *a, const int64_t *av, char *msg, size_t len) {
  int64_t v[14];
  for (int k = 0; k < 14; k++) v[k] = a[1 + k].i;
  int64_t C = v[0], IH = v[1], IW = v[2], KH = v[3], KW = v[4], OW = v[11], p0 = v[12], p1 = v[13];
  const char *e;
  for (int k = 0; k < 14; k++)
    if (v[k] < 0 || (k >= 3 && k <= 6 && v[k] == 0) || (k >= 9 && k <= 11 && v[k] == 0)) {
      snprintf(msg, len, "fm_im2col_pack: bad geometry argument %d (%lld)", k + 1, (long long)v[k]);
      return msg;
    }
  if (p1 <= p0) return NULL;
  if (C > 0 && (e = need(av, 0, C * IH * IW - 1, "fm_im2col_pack x", msg, len))) return e;
  if ((e = need(av, 15, packed_b_size(p1 - p0, C * KH * KW) - 1, "fm_im2col_pack B", msg, len))) return e;
  fm_im2col_pack(a[0].p, C, IH, IW, KH, KW, v[5], v[6], v[7], v[8], v[9], v[10], OW, p0, p1, a[15].p);
  return NULL;
}

static const char *call_fm_sgemm_pb(const FmArg *a, const int64_t *av, char *msg, size_t len) {
  int64_t m0 = a[0].i, m1 = a[1].i, n = a[2].i, K = a[3].i, lda = a[5].i, ldc = a[8].i, hasbias = a[10].i;
  const char *e;
  if (m0 < 0 || K < 0) {
    snprintf(msg, len, "fm_sgemm_pb: negative range (m0 %lld, K %lld)", (long long)m0, (long long)K);
    return msg;
  }
  if (m1 > m0 && n > 0) {
    if (K > 0) {
      if ((e = need(av, 4, (m1 - 1) * lda + K - 1, "fm_sgemm_pb A", msg, len))) return e;
      if ((e = need(av, 6, packed_b_size(n, K) - 1, "fm_sgemm_pb B", msg, len))) return e;
    }
    if ((e = need(av, 7, (m1 - 1) * ldc + n - 1, "fm_sgemm_pb C", msg, len))) return e;
    if (hasbias && (e = need(av, 9, m1 - 1, "fm_sgemm_pb bias", msg, len))) return e;
  }
  fm_sgemm_pb(m0, m1, n, K, a[4].p, lda, a[6].p, a[7].p, ldc, a[9].p, hasbias, a[11].i);
  return NULL;
}

static const char *call_fm_ternary_gemm(const FmArg *a, const int64_t *av, char *msg, size_t len) {
  int64_t n0 = a[0].i, n1 = a[1].i, m0 = a[2].i, m1 = a[3].i, K = a[4].i, ldx = a[6].i, kc = a[8].i;
  int64_t hasalpha = a[10].i, hasbias = a[12].i, ldy = a[15].i;
  const char *e;
  if (n0 < 0 || m0 < 0 || K < 0 || kc != (K + 15) / 16 || ldx < K || ldy < m1) {
    snprintf(msg, len, "fm_ternary_gemm: bad geometry (n0 %lld, m0 %lld, m1 %lld, K %lld, kc %lld, ldx %lld, ldy %lld)",
             (long long)n0, (long long)m0, (long long)m1, (long long)K, (long long)kc, (long long)ldx,
             (long long)ldy);
    return msg;
  }
  if (n1 <= n0 || m1 <= m0) return NULL;
  if (K > 0 && (e = need(av, 5, (n1 - 1) * ldx + K - 1, "fm_ternary_gemm X", msg, len))) return e;
  if (kc > 0 && (e = need(av, 7, m1 * kc - 1, "fm_ternary_gemm masks", msg, len))) return e;
  if (hasalpha && (e = need(av, 9, m1 - 1, "fm_ternary_gemm alpha", msg, len))) return e;
  if (hasbias && (e = need(av, 11, m1 - 1, "fm_ternary_gemm bias", msg, len))) return e;
  if ((e = need(av, 14, (n1 - 1) * ldy + m1 - 1, "fm_ternary_gemm Y", msg, len))) return e;
  fm_ternary_gemm(n0, n1, m0, m1, K, a[5].p, ldx, a[7].p, kc, a[9].p, hasalpha, a[11].p, hasbias, a[13].i, a[14].p,
                  ldy);
  return NULL;
}

static const char *call_fm_addconv(const FmArg *a, const int64_t *av, char *msg, size_t len) {
  int64_t q0 = a[0].i, q1 = a[1].i, ps = a[4].i, pe = a[5].i, ld = a[7].i, nr = a[8].i;
  const int32_t *plan = a[3].p;
  const char *e;
  if (q0 < 0 || ps < 0 || pe > av[3] || nr < 1 || nr > 4 || ld < q1) {
    snprintf(msg, len, "fm_addconv: bad geometry (q0 %lld, q1 %lld, plan %lld..%lld, ld %lld, nr %lld)",
             (long long)q0, (long long)q1, (long long)ps, (long long)pe, (long long)ld, (long long)nr);
    return msg;
  }
  if (q1 <= q0) return NULL;
  int64_t hi = -1, lo = 0;
  for (int64_t p = ps; p < pe; p += 3 + plan[p + 1] + plan[p + 2]) {
    if (p + 2 >= pe || plan[p + 1] < 1 || plan[p + 2] < 0 || p + 3 + plan[p + 1] + plan[p + 2] > pe) {
      snprintf(msg, len, "fm_addconv: bad plan group at %lld", (long long)p);
      return msg;
    }
    for (int32_t i = 0; i < plan[p + 1] + plan[p + 2]; i++) {
      hi = plan[p + 3 + i] > hi ? plan[p + 3 + i] : hi;
      lo = plan[p + 3 + i] < lo ? plan[p + 3 + i] : lo;
    }
  }
  if (lo < 0) {
    snprintf(msg, len, "fm_addconv: negative offset");
    return msg;
  }
  if (hi >= 0 && (e = need(av, 2, hi + q1 - 1, "fm_addconv x", msg, len))) return e;
  if ((e = need(av, 6, (nr - 1) * ld + q1 - 1, "fm_addconv acc", msg, len))) return e;
  fm_addconv(q0, q1, a[2].p, plan, ps, pe, a[6].p, ld, nr);
  return NULL;
}

static const char *call_fm_wino_gemm(const FmArg *a, const int64_t *av, char *msg, size_t len) {
  int64_t a2 = a[0].i, Kp = a[1].i, C = a[2].i, nt = a[3].i, ldv = a[6].i;
  const char *e;
  if (a2 < 1 || Kp < 8 || Kp % 8 || C < 1 || nt < 0 || ldv < nt || ldv % 16) {
    snprintf(msg, len, "fm_wino_gemm: bad geometry (a2 %lld, Kp %lld, C %lld, nt %lld, ldv %lld)", (long long)a2,
             (long long)Kp, (long long)C, (long long)nt, (long long)ldv);
    return msg;
  }
  if (!nt) return NULL;
  if ((e = need(av, 4, a2 * Kp * C - 1, "fm_wino_gemm U", msg, len))) return e;
  if ((e = need(av, 5, a2 * C * ldv - 1, "fm_wino_gemm V", msg, len))) return e;
  if ((e = need(av, 7, a2 * Kp * ldv - 1, "fm_wino_gemm M", msg, len))) return e;
  fm_wino_gemm(a2, Kp, C, nt, a[4].p, a[5].p, ldv, a[7].p);
  return NULL;
}

/* ---- values and types ---- */
typedef union { double f; int64_t i; } KVal;

typedef struct { char *p; int64_t n; size_t esz; } BufState;

typedef struct {
  KFn *fn;
  int64_t batch;
  KVal *vars;
  BufState *bufs;
  char *err; size_t errlen;
  jmp_buf jb;
} Interp;

static int isf(FmDType t) { return t == FM_F32 || t == FM_F64 || t == FM_F16; }

static _Noreturn void fail(Interp *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static _Noreturn void fail(Interp *in, const char *fmt, ...) {
  int n = snprintf(in->err, in->errlen, "kernel '%s': ", in->fn->name);
  if (n >= 0 && (size_t)n < in->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(in->err + n, in->errlen - (size_t)n, fmt, ap);
    va_end(ap);
  }
  longjmp(in->jb, 1);
}

static double fround(FmDType t, double v) { return t == FM_F64 ? v : (double)(float)v; }

/* C conversion of v from type `from` to `to`. Out-of-range float -> int is undefined
   in C; here it gives what x86 cvttsd2si gives (INT64_MIN), then wraps. */
static KVal conv(KVal v, FmDType from, FmDType to) {
  KVal r;
  if (from == to) return v; /* values are kept rounded/wrapped to their dtype */
  if (isf(from)) {
    if (isf(to)) r.f = to == FM_F16 ? (double)fm_h2f(fm_f2h((float)v.f)) : fround(to, v.f);
    else if (to == FM_BOOL) r.i = v.f != 0;
    else {
      double x = trunc(v.f);
      if (to == FM_U64 && x >= 9223372036854775808.0 && x < 18446744073709551616.0)
        r.i = (int64_t)(uint64_t)x;
      else r.i = x >= -9223372036854775808.0 && x < 9223372036854775808.0 ? (int64_t)x : INT64_MIN;
      r.i = fm_kwrap(to, r.i);
    }
  } else {
    if (to == FM_F64) r.f = from == FM_U64 ? (double)(uint64_t)v.i : (double)v.i;
    else if (isf(to)) {
      r.f = from == FM_U64 ? (double)(float)(uint64_t)v.i : (double)(float)v.i;
      if (to == FM_F16) r.f = fm_h2f(fm_f2h((float)r.f));
    } else r.i = fm_kwrap(to, v.i);
  }
  return r;
}

/* ---- buffers ---- */
static inline void check_idx(Interp *in, KBuf *b, int64_t i, const char *what) {
  if (i < 0 || i >= in->bufs[b->id].n)
    fail(in, "%s out of bounds: buffer '%s' index %lld not in [0, %lld)", what, b->name,
         (long long)i, (long long)in->bufs[b->id].n);
}

static inline KVal load(Interp *in, KBuf *b, int64_t i) {
  check_idx(in, b, i, "load");
  char *p = in->bufs[b->id].p;
  KVal v;
  switch (b->t) {
  case FM_F32: v.f = ((float *)p)[i]; break;
  case FM_F64: v.f = ((double *)p)[i]; break;
  case FM_F16: v.f = fm_h2f(((uint16_t *)p)[i]); break;
  case FM_I8: v.i = ((int8_t *)p)[i]; break;
  case FM_U8: case FM_BOOL: v.i = ((uint8_t *)p)[i]; break;
  case FM_I16: v.i = ((int16_t *)p)[i]; break;
  case FM_U16: v.i = ((uint16_t *)p)[i]; break;
  case FM_I32: v.i = ((int32_t *)p)[i]; break;
  case FM_U32: v.i = ((uint32_t *)p)[i]; break;
  case FM_I64: case FM_U64: v.i = ((int64_t *)p)[i]; break;
  default: fail(in, "buffer '%s' has unsupported dtype %s", b->name, fm_dtype_name(b->t));
  }
  return v;
}

static void store(Interp *in, KBuf *b, int64_t i, KVal v) {
  check_idx(in, b, i, "store");
  char *p = in->bufs[b->id].p;
  switch (b->t) {
  case FM_F32: ((float *)p)[i] = (float)v.f; break;
  case FM_F64: ((double *)p)[i] = v.f; break;
  case FM_F16: ((uint16_t *)p)[i] = fm_f2h((float)v.f); break;
  case FM_I8: ((int8_t *)p)[i] = (int8_t)v.i; break;
  case FM_U8: case FM_BOOL: ((uint8_t *)p)[i] = (uint8_t)v.i; break;
  case FM_I16: ((int16_t *)p)[i] = (int16_t)v.i; break;
  case FM_U16: ((uint16_t *)p)[i] = (uint16_t)v.i; break;
  case FM_I32: ((int32_t *)p)[i] = (int32_t)v.i; break;
  case FM_U32: ((uint32_t *)p)[i] = (uint32_t)v.i; break;
  case FM_I64: case FM_U64: ((int64_t *)p)[i] = v.i; break;
  default: fail(in, "buffer '%s' has unsupported dtype %s", b->name, fm_dtype_name(b->t));
  }
}

/* ---- operators ---- */
static KVal unop(Interp *in, int op, FmDType t, KVal a) {
  KVal r;
  if (op == KU_ISNAN || op == KU_ISINF) {
    r.i = isf(t) && (op == KU_ISNAN ? isnan(a.f) : isinf(a.f));
    return r;
  }
  if (op == KU_NOT) { r.i = isf(t) ? a.f == 0 : a.i == 0; return r; }
  if (isf(t)) {
    int s = t != FM_F64; /* single precision: the f-suffixed <math.h> functions */
    float x = (float)a.f;
    double d = a.f;
    switch (op) {
    case KU_NEG: r.f = -d; break;
    case KU_ABS: r.f = fabs(d); break;
    case KU_SQRT: r.f = s ? sqrtf(x) : sqrt(d); break;
    case KU_EXP: r.f = s ? expf(x) : exp(d); break;
    case KU_LOG: r.f = s ? logf(x) : log(d); break;
    case KU_TANH: r.f = s ? tanhf(x) : tanh(d); break;
    case KU_ERF: r.f = s ? erff(x) : erf(d); break;
    case KU_FLOOR: r.f = floor(d); break;
    case KU_CEIL: r.f = ceil(d); break;
    case KU_ROUND: r.f = nearbyint(d); break;
    case KU_SIN: r.f = s ? sinf(x) : sin(d); break;
    case KU_COS: r.f = s ? cosf(x) : cos(d); break;
    case KU_TAN: r.f = s ? tanf(x) : tan(d); break;
    case KU_ASIN: r.f = s ? asinf(x) : asin(d); break;
    case KU_ACOS: r.f = s ? acosf(x) : acos(d); break;
    case KU_ATAN: r.f = s ? atanf(x) : atan(d); break;
    case KU_SINH: r.f = s ? sinhf(x) : sinh(d); break;
    case KU_COSH: r.f = s ? coshf(x) : cosh(d); break;
    case KU_ASINH: r.f = s ? asinhf(x) : asinh(d); break;
    case KU_ACOSH: r.f = s ? acoshf(x) : acosh(d); break;
    case KU_ATANH: r.f = s ? atanhf(x) : atanh(d); break;
    case KU_SIGN: r.f = fm_sign(d); break;
    default: fail(in, "%s on %s", fm_kun[op].name, fm_dtype_name(t));
    }
    r.f = fround(t, r.f);
    return r;
  }
  switch (op) {
  case KU_NEG: r.i = (int64_t)(0 - (uint64_t)a.i); break;
  case KU_ABS: r.i = fm_iabs(a.i); break;
  case KU_BITNOT: r.i = ~a.i; break;
  case KU_SIGN: r.i = t == FM_U64 ? a.i != 0 : fm_isign(a.i); break;
  case KU_FLOOR: case KU_CEIL: case KU_ROUND: r.i = a.i; break;
  default: fail(in, "%s on %s", fm_kun[op].name, fm_dtype_name(t));
  }
  r.i = fm_kwrap(t, r.i);
  return r;
}

/* a op b for operands of type t (the result is t, or bool for comparisons). */
static KVal binop(Interp *in, int op, FmDType t, KVal a, KVal b) {
  KVal r;
  if (isf(t)) {
    int s = t != FM_F64;
    switch (op) {
    case KB_ADD: r.f = a.f + b.f; break;
    case KB_SUB: r.f = a.f - b.f; break;
    case KB_MUL: r.f = a.f * b.f; break;
    case KB_DIV: r.f = a.f / b.f; break;
    case KB_MOD: r.f = fmod(a.f, b.f); break;
    case KB_MIN: r.f = fm_fmin(a.f, b.f); break; /* the C printer's, cpu_addonly.c */
    case KB_MAX: r.f = fm_fmax(a.f, b.f); break;
    case KB_POW: r.f = s ? powf((float)a.f, (float)b.f) : pow(a.f, b.f); break;
    case KB_LT: r.i = a.f < b.f; return r;
    case KB_LE: r.i = a.f <= b.f; return r;
    case KB_GT: r.i = a.f > b.f; return r;
    case KB_GE: r.i = a.f >= b.f; return r;
    case KB_EQ: r.i = a.f == b.f; return r;
    case KB_NE: r.i = a.f != b.f; return r;
    case KB_LDEXP: r.f = s ? fm_ldexpf((float)a.f, (int)b.i) : ldexp(a.f, (int)b.i); break;
    default: fail(in, "%s on %s", fm_kbin[op].name, fm_dtype_name(t));
    }
    r.f = fround(t, r.f);
    return r;
  }
  int u64 = t == FM_U64;
  uint64_t x = (uint64_t)a.i, y = (uint64_t)b.i;
  switch (op) {
  case KB_ADD: r.i = (int64_t)(x + y); break;
  case KB_SUB: r.i = (int64_t)(x - y); break;
  case KB_MUL: r.i = (int64_t)(x * y); break;
  case KB_DIV: case KB_MOD:
    if (b.i == 0) fail(in, "integer %s by zero", op == KB_DIV ? "division" : "remainder");
    if (u64) r.i = (int64_t)(op == KB_DIV ? x / y : x % y);
    else if (a.i == INT64_MIN && b.i == -1) r.i = op == KB_DIV ? INT64_MIN : 0;
    else r.i = op == KB_DIV ? a.i / b.i : a.i % b.i;
    break;
  case KB_MIN: r.i = (u64 ? x < y : a.i < b.i) ? a.i : b.i; break;
  case KB_MAX: r.i = (u64 ? x > y : a.i > b.i) ? a.i : b.i; break;
  case KB_POW: r.i = fm_ipow(a.i, b.i); break;
  case KB_LT: r.i = u64 ? x < y : a.i < b.i; return r;
  case KB_LE: r.i = u64 ? x <= y : a.i <= b.i; return r;
  case KB_GT: r.i = u64 ? x > y : a.i > b.i; return r;
  case KB_GE: r.i = u64 ? x >= y : a.i >= b.i; return r;
  case KB_EQ: r.i = a.i == b.i; return r;
  case KB_NE: r.i = a.i != b.i; return r;
  case KB_AND: r.i = a.i && b.i; return r;
  case KB_OR: r.i = a.i || b.i; return r;
  case KB_XOR: r.i = !a.i != !b.i; return r;
  case KB_BITAND: r.i = a.i & b.i; break;
  case KB_BITOR: r.i = a.i | b.i; break;
  case KB_BITXOR: r.i = a.i ^ b.i; break;
  case KB_SHL: r.i = (int64_t)(x << (b.i & 63)); break;
  case KB_SHR: r.i = u64 ? (int64_t)(x >> (b.i & 63)) : a.i >> (b.i & 63); break;
  default: fail(in, "%s on %s", fm_kbin[op].name, fm_dtype_name(t));
  }
  r.i = fm_kwrap(t, r.i);
  return r;
}

/* ---- evaluation ---- */
static KVal eval(Interp *in, KExpr *e);

/* Leaves inline: most nodes of an index expression are loop variables and constants. */
static inline KVal leaf(Interp *in, KExpr *e) {
  if (e->k == KE_VAR) return in->vars[e->var->id];
  if (e->k == KE_CONST && e->t == FM_I64) return (KVal){.i = e->i};
  return eval(in, e);
}

static KVal eval(Interp *in, KExpr *e) {
  KVal r, a, b;
  switch (e->k) {
  case KE_CONST:
    if (e->t == FM_I64) { r.i = e->i; return r; }
    if (isf(e->t)) r.f = fround(e->t, e->f);
    else r.i = fm_kwrap(e->t, e->i);
    return r;
  case KE_VAR: return in->vars[e->var->id];
  case KE_BATCH: r.i = in->batch; return r;
  case KE_LOAD: return load(in, e->buf, leaf(in, e->a).i);
  case KE_ADDR: fail(in, "address of '%s' outside a call", e->buf->name);
  case KE_UN: return unop(in, e->op, e->a->t, eval(in, e->a));
  case KE_BIN:
    if (e->op == KB_AND || e->op == KB_OR) { /* lazy, like C */
      a = eval(in, e->a);
      int ta = isf(e->a->t) ? a.f != 0 : a.i != 0;
      if (ta == (e->op == KB_OR)) { r.i = ta; return r; }
      b = eval(in, e->b);
      r.i = isf(e->b->t) ? b.f != 0 : b.i != 0;
      return r;
    }
    a = leaf(in, e->a), b = leaf(in, e->b);
    if (e->a->t == FM_I64) { /* index arithmetic: the hot path */
      switch (e->op) {
      case KB_ADD: r.i = (int64_t)((uint64_t)a.i + (uint64_t)b.i); return r;
      case KB_SUB: r.i = (int64_t)((uint64_t)a.i - (uint64_t)b.i); return r;
      case KB_MUL: r.i = (int64_t)((uint64_t)a.i * (uint64_t)b.i); return r;
      default: break;
      }
    }
    return binop(in, e->op, e->a->t, a, b);
  case KE_FMA:
    a = eval(in, e->a), b = eval(in, e->b), r = eval(in, e->c);
    if (e->t == FM_F64) r.f = fma(a.f, b.f, r.f);
    else if (isf(e->t)) r.f = fmaf((float)a.f, (float)b.f, (float)r.f);
    else r.i = fm_kwrap(e->t, (int64_t)((uint64_t)a.i * (uint64_t)b.i + (uint64_t)r.i));
    return r;
  case KE_SELECT:
    a = eval(in, e->a);
    return (isf(e->a->t) ? a.f != 0 : a.i != 0) ? eval(in, e->b) : eval(in, e->c);
  case KE_CAST: return conv(eval(in, e->a), e->a->t, e->t);
  }
  fail(in, "bad expression kind %d", (int)e->k);
}

static void exec(Interp *in, KStmt *s);

static void call(Interp *in, KStmt *s) {
  const FmRoutine *r = fm_routine_find(s->fn);
  FmArg args[32];
  int64_t avail[32];
  char msg[256];
  assert(r && s->nargs <= 32); /* checked by validate() */
  for (int k = 0; k < s->nargs; k++) {
    KExpr *x = s->args[k];
    avail[k] = 0;
    if (x->k == KE_ADDR) {
      int64_t i = eval(in, x->a).i;
      BufState *bs = &in->bufs[x->buf->id];
      if (i < 0 || i > bs->n)
        fail(in, "call %s: argument %d: address of buffer '%s' index %lld not in [0, %lld]", s->fn,
             k, x->buf->name, (long long)i, (long long)bs->n);
      args[k].p = bs->p + (size_t)i * bs->esz;
      avail[k] = bs->n - i;
    } else if (isf(x->t)) args[k].f = eval(in, x).f;
    else args[k].i = eval(in, x).i;
  }
  const char *err = r->call(args, avail, msg, sizeof msg);
  if (err) fail(in, "call %s: %s", s->fn, err);
}

static void exec(Interp *in, KStmt *s) {
  for (; s; s = s->next) {
    switch (s->k) {
    case KS_FOR: {
      int64_t lo = eval(in, s->lo).i, hi = eval(in, s->hi).i;
      KVal *v = &in->vars[s->var->id];
      for (int64_t i = lo; i < hi; i++) {
        v->i = i;
        exec(in, s->body);
      }
      break;
    }
    case KS_LET: in->vars[s->var->id] = conv(eval(in, s->e), s->e->t, s->var->t); break;
    case KS_SET: {
      KVal x = conv(eval(in, s->e), s->e->t, s->var->t);
      KVal *v = &in->vars[s->var->id];
      *v = s->accop < 0 ? x : binop(in, s->accop, s->var->t, *v, x);
      break;
    }
    case KS_STORE: {
      int64_t i = leaf(in, s->idx).i;
      KVal x = conv(leaf(in, s->e), s->e->t, s->buf->t);
      if (s->accop >= 0) x = binop(in, s->accop, s->buf->t, load(in, s->buf, i), x);
      store(in, s->buf, i, x);
      break;
    }
    case KS_IF: {
      KVal c = eval(in, s->e);
      exec(in, (isf(s->e->t) ? c.f != 0 : c.i != 0) ? s->body : s->els);
      break;
    }
    case KS_CALL: call(in, s); break;
    case KS_COMMENT: break;
    }
  }
}

int fm_kinterp(KFn *fn, int64_t batch, void **ptrs, char *err, size_t errlen) {
  char dummy[8];
  if (!err || !errlen) err = dummy, errlen = sizeof dummy;
  err[0] = 0;
  if (fm_kverify_at(fn, batch, err, errlen)) return -1;
  Interp in = {.fn = fn, .batch = batch, .err = err, .errlen = errlen};
  in.vars = calloc((size_t)fn->nvars + 1, sizeof *in.vars);
  in.bufs = calloc((size_t)fn->nbufs + 1, sizeof *in.bufs);
  void **owned = calloc((size_t)fn->nbufs + 1, sizeof *owned);
  int rc = -1;
  if (!in.vars || !in.bufs || !owned) {
    snprintf(err, errlen, "kernel '%s': out of memory", fn->name);
    goto done;
  }
  if (setjmp(in.jb)) goto done;
  for (int i = 0; i < fn->nbufs; i++) {
    KBuf *b = fn->bufs[i];
    BufState *bs = &in.bufs[i];
    bs->esz = fm_dtype_size(b->t);
    bs->n = fm_kbuf_nelem(b, batch);
    if (bs->n < 0) fail(&in, "buffer '%s' has an unknown size", b->name);
    if (!bs->esz) fail(&in, "buffer '%s' has unsupported dtype %s", b->name, fm_dtype_name(b->t));
    if (b->kind == KBUF_CONST) bs->p = b->data;
    else if (ptrs && ptrs[i]) bs->p = ptrs[i];
    else if (b->kind == KBUF_TENSOR && b->tensor->data) bs->p = b->tensor->data;
    else if (b->kind == KBUF_SCRATCH) {
      bs->p = owned[i] = calloc((size_t)bs->n + 1, bs->esz);
      if (!bs->p) fail(&in, "out of memory for scratch '%s'", b->name);
    } else if (bs->n > 0) fail(&in, "buffer '%s' is not bound (ptrs[%d] is NULL)", b->name, i);
    if (!bs->p) bs->n = 0;
  }
  exec(&in, fn->body);
  rc = 0;
done:
  if (owned)
    for (int i = 0; i < fn->nbufs; i++) free(owned[i]);
  free(owned), free(in.vars), free(in.bufs);
  return rc;
}
