/* emit_llvm.c - the LLVM backend's kernel printer: one KFn -> one LLVM function.
 *
 * Built with the LLVM-C API (no text), following the C printer's contract (emit.h)
 * and the interpreter's semantics (kernel/kinterp.c); see emit_llvm.h. Scalars live
 * in allocas of the function's entry block (mem2reg makes them SSA). Integer
 * arithmetic is done as the interpreter does it: on values extended to i64 and
 * wrapped back to the dtype, which instcombine narrows again; i64 add/sub/mul are
 * nsw like C's int64_t. && || and ?: whose right side may trap (a load or an
 * integer division) branch, like C; otherwise they are selects.
 */
#include "emit/emit_llvm_fn.h"
#include "emit/emit.h"
#include <llvm-c/DebugInfo.h>
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>


static int isf(FmDType t) { return t == FM_F32 || t == FM_F64 || t == FM_F16; }
static int isuns(FmDType t) { return t == FM_U8 || t == FM_U16 || t == FM_U32 || t == FM_U64 || t == FM_BOOL; }

/* Register type of a dtype (float16 computes as float, bool is i1). */
LLVMTypeRef fl_vt(FmLlvm *L, FmDType t) {
  switch (t) {
  case FM_F32: case FM_F16: return L->t_f32;
  case FM_F64: return L->t_f64;
  case FM_BOOL: return L->t_i1;
  case FM_I8: case FM_U8: return L->t_i8;
  case FM_I16: case FM_U16: return L->t_i16;
  case FM_I32: case FM_U32: return L->t_i32;
  default: return L->t_i64;
  }
}
/* Memory type (float16 as its bits, bool as a byte). */
LLVMTypeRef fl_mt(FmLlvm *L, FmDType t) {
  if (t == FM_F16) return L->t_i16;
  if (t == FM_BOOL) return L->t_i8;
  return fl_vt(L, t);
}

/* ---- helpers ---- */
LLVMValueRef fl_ci(LLVMTypeRef t, int64_t v) { return LLVMConstInt(t, (unsigned long long)v, 1); }
LLVMValueRef fl_i64(Fn *F, int64_t v) { return fl_ci(F->L->t_i64, v); }

/* A function of the module by name, declared with the given type if missing. */
LLVMValueRef fl_decl(FmLlvm *L, const char *name, LLVMTypeRef ret, LLVMTypeRef *params, int n) {
  LLVMValueRef fn = LLVMGetNamedFunction(L->mod, name);
  if (!fn) fn = LLVMAddFunction(L->mod, name, LLVMFunctionType(ret, params, (unsigned)n, 0));
  return fn;
}

LLVMValueRef fl_call(Fn *F, LLVMValueRef fn, LLVMValueRef *args, int n) {
  LLVMTypeRef ft = LLVMGlobalGetValueType(fn);
  return LLVMBuildCall2(F->b, ft, fn, args, (unsigned)n, "");
}

/* A math function of libm or an LLVM intrinsic, over values of type t. */
static LLVMValueRef mathcall(Fn *F, const char *name, LLVMTypeRef t, LLVMValueRef *args, int n) {
  LLVMTypeRef ps[3] = {t, t, t};
  return fl_call(F, fl_decl(F->L, name, t, ps, n), args, n);
}

static const char *intr(char *buf, size_t n, const char *base, FmDType t) {
  snprintf(buf, n, "llvm.%s.%s", base, t == FM_F64 ? "f64" : "f32");
  return buf;
}

static LLVMValueRef ext64(Fn *F, LLVMValueRef v, FmDType t) {
  if (t == FM_I64 || t == FM_U64) return v;
  return isuns(t) ? LLVMBuildZExt(F->b, v, F->L->t_i64, "") : LLVMBuildSExt(F->b, v, F->L->t_i64, "");
}

static LLVMValueRef wrap(Fn *F, LLVMValueRef v64, FmDType t) {
  if (t == FM_I64 || t == FM_U64) return v64;
  if (t == FM_BOOL) return LLVMBuildICmp(F->b, LLVMIntNE, v64, fl_i64(F, 0), "");
  return LLVMBuildTrunc(F->b, v64, fl_vt(F->L, t), "");
}

/* C truthiness of a value of dtype t, as i1. */
static LLVMValueRef truth(Fn *F, LLVMValueRef v, FmDType t) {
  if (t == FM_BOOL) return v;
  if (isf(t)) return LLVMBuildFCmp(F->b, LLVMRealUNE, v, LLVMConstReal(fl_vt(F->L, t), 0), "");
  return LLVMBuildICmp(F->b, LLVMIntNE, v, fl_ci(fl_vt(F->L, t), 0), "");
}

/* float -> float16 -> float (the rounding of a float16 store or cast). */
static LLVMValueRef round_half(Fn *F, LLVMValueRef v) {
  LLVMValueRef h = LLVMBuildFPTrunc(F->b, v, F->L->t_f16, "");
  return LLVMBuildFPExt(F->b, h, F->L->t_f32, "");
}

/* The interpreter's conversion fl_conv(v, from, to). */
LLVMValueRef fl_conv(Fn *F, LLVMValueRef v, FmDType from, FmDType to) {
  FmLlvm *L = F->L;
  LLVMBuilderRef b = F->b;
  if (from == to) return v;
  if (isf(from)) {
    if (to == FM_F16) {
      if (from == FM_F64) v = LLVMBuildFPTrunc(b, v, L->t_f32, "");
      return round_half(F, v);
    }
    if (to == FM_F64) return LLVMBuildFPExt(b, v, L->t_f64, "");
    if (to == FM_F32) return from == FM_F64 ? LLVMBuildFPTrunc(b, v, L->t_f32, "") : v;
    if (to == FM_BOOL) return truth(F, v, from);
    if (to == FM_U64) {
      LLVMValueRef big = LLVMBuildFCmp(b, LLVMRealOGE, v, LLVMConstReal(LLVMTypeOf(v), 9223372036854775808.0), "");
      return LLVMBuildSelect(b, big, LLVMBuildFPToUI(b, v, L->t_i64, ""), LLVMBuildFPToSI(b, v, L->t_i64, ""), "");
    }
    return wrap(F, LLVMBuildFPToSI(b, v, L->t_i64, ""), to);
  }
  if (isf(to)) {
    LLVMTypeRef ft = to == FM_F64 ? L->t_f64 : L->t_f32;
    LLVMValueRef r = isuns(from) ? LLVMBuildUIToFP(b, v, ft, "") : LLVMBuildSIToFP(b, v, ft, "");
    return to == FM_F16 ? round_half(F, r) : r;
  }
  if (to == FM_BOOL) return truth(F, v, from);
  return wrap(F, ext64(F, v, from), to);
}

/* ---- operators ---- */
static LLVMValueRef ipow_fn(FmLlvm *L);

static LLVMValueRef unop(Fn *F, int op, FmDType t, LLVMValueRef a) {
  FmLlvm *L = F->L;
  LLVMBuilderRef b = F->b;
  LLVMTypeRef ty = fl_vt(L, t);
  char nm[64];
  if (op == KU_NOT) return LLVMBuildNot(b, truth(F, a, t), "");
  if (op == KU_ISNAN || op == KU_ISINF) {
    if (!isf(t)) return fl_ci(L->t_i1, 0);
    if (op == KU_ISNAN) return LLVMBuildFCmp(b, LLVMRealUNO, a, a, "");
    LLVMValueRef ab = mathcall(F, intr(nm, sizeof nm, "fabs", t), ty, &a, 1);
    return LLVMBuildFCmp(b, LLVMRealOEQ, ab, LLVMConstReal(ty, INFINITY), "");
  }
  if (isf(t)) {
    switch (op) {
    case KU_NEG: return LLVMBuildFNeg(b, a, "");
    case KU_ABS: return mathcall(F, intr(nm, sizeof nm, "fabs", t), ty, &a, 1);
    case KU_SQRT: return mathcall(F, intr(nm, sizeof nm, "sqrt", t), ty, &a, 1);
    case KU_FLOOR: return mathcall(F, intr(nm, sizeof nm, "floor", t), ty, &a, 1);
    case KU_CEIL: return mathcall(F, intr(nm, sizeof nm, "ceil", t), ty, &a, 1);
    case KU_ROUND: return mathcall(F, intr(nm, sizeof nm, "nearbyint", t), ty, &a, 1);
    case KU_SIGN: {
      LLVMValueRef pos = LLVMBuildFCmp(b, LLVMRealOGT, a, LLVMConstReal(ty, 0), "");
      LLVMValueRef neg = LLVMBuildFCmp(b, LLVMRealOLT, a, LLVMConstReal(ty, 0), "");
      LLVMValueRef r = LLVMBuildSelect(b, neg, LLVMConstReal(ty, -1), a, "");
      return LLVMBuildSelect(b, pos, LLVMConstReal(ty, 1), r, "");
    }
    case KU_BITNOT: assert(0 && "bitnot of a float"); return a;
    default: { /* libm, the function the interpreter calls */
      const char *fn = t == FM_F64 ? fm_kun[op].c_double : fm_kun[op].c_float;
      assert(fn);
      return mathcall(F, fn, ty, &a, 1);
    }
    }
  }
  switch (op) {
  case KU_FLOOR: case KU_CEIL: case KU_ROUND: return a;
  case KU_NEG: return wrap(F, LLVMBuildSub(b, fl_i64(F, 0), ext64(F, a, t), ""), t);
  case KU_BITNOT: return wrap(F, LLVMBuildXor(b, ext64(F, a, t), fl_i64(F, -1), ""), t);
  case KU_ABS: {
    if (isuns(t)) return a;
    LLVMValueRef x = ext64(F, a, t);
    LLVMValueRef neg = LLVMBuildICmp(b, LLVMIntSLT, x, fl_i64(F, 0), "");
    return wrap(F, LLVMBuildSelect(b, neg, LLVMBuildSub(b, fl_i64(F, 0), x, ""), x, ""), t);
  }
  case KU_SIGN: {
    LLVMValueRef x = ext64(F, a, t);
    LLVMValueRef pos = LLVMBuildZExt(b, LLVMBuildICmp(b, t == FM_U64 ? LLVMIntNE : LLVMIntSGT, x, fl_i64(F, 0), ""), L->t_i64, "");
    LLVMValueRef neg = t == FM_U64 ? fl_i64(F, 0)
                                   : LLVMBuildZExt(b, LLVMBuildICmp(b, LLVMIntSLT, x, fl_i64(F, 0), ""), L->t_i64, "");
    return wrap(F, LLVMBuildSub(b, pos, neg, ""), t);
  }
  default: assert(0 && "unary op on an integer"); return a;
  }
}

static LLVMValueRef icmp(Fn *F, int op, FmDType t, LLVMValueRef a, LLVMValueRef b) {
  int u = isuns(t);
  LLVMIntPredicate p;
  switch (op) {
  case KB_LT: p = u ? LLVMIntULT : LLVMIntSLT; break;
  case KB_LE: p = u ? LLVMIntULE : LLVMIntSLE; break;
  case KB_GT: p = u ? LLVMIntUGT : LLVMIntSGT; break;
  case KB_GE: p = u ? LLVMIntUGE : LLVMIntSGE; break;
  case KB_EQ: p = LLVMIntEQ; break;
  default: p = LLVMIntNE; break;
  }
  return LLVMBuildICmp(F->b, p, a, b, "");
}

/* a op b on operands of dtype t; bt is b's dtype (differs for shifts and ldexp). */
static LLVMValueRef binop(Fn *F, int op, FmDType t, LLVMValueRef a, LLVMValueRef bv, FmDType bt) {
  FmLlvm *L = F->L;
  LLVMBuilderRef b = F->b;
  LLVMTypeRef ty = fl_vt(L, t);
  char nm[64];
  if (op == KB_AND) return LLVMBuildAnd(b, truth(F, a, t), truth(F, bv, bt), "");
  if (op == KB_OR) return LLVMBuildOr(b, truth(F, a, t), truth(F, bv, bt), "");
  if (op == KB_XOR) return LLVMBuildXor(b, truth(F, a, t), truth(F, bv, bt), "");
  if (isf(t)) {
    LLVMValueRef args[2] = {a, bv};
    switch (op) {
    case KB_ADD: return LLVMBuildFAdd(b, a, bv, "");
    case KB_SUB: return LLVMBuildFSub(b, a, bv, "");
    case KB_MUL: return LLVMBuildFMul(b, a, bv, "");
    case KB_DIV: return LLVMBuildFDiv(b, a, bv, "");
    case KB_MOD: return LLVMBuildFRem(b, a, bv, "");
    case KB_MIN: return mathcall(F, intr(nm, sizeof nm, "minnum", t), ty, args, 2);
    case KB_MAX: return mathcall(F, intr(nm, sizeof nm, "maxnum", t), ty, args, 2);
    case KB_POW: return mathcall(F, t == FM_F64 ? "pow" : "powf", ty, args, 2);
    case KB_LT: return LLVMBuildFCmp(b, LLVMRealOLT, a, bv, "");
    case KB_LE: return LLVMBuildFCmp(b, LLVMRealOLE, a, bv, "");
    case KB_GT: return LLVMBuildFCmp(b, LLVMRealOGT, a, bv, "");
    case KB_GE: return LLVMBuildFCmp(b, LLVMRealOGE, a, bv, "");
    case KB_EQ: return LLVMBuildFCmp(b, LLVMRealOEQ, a, bv, "");
    case KB_NE: return LLVMBuildFCmp(b, LLVMRealUNE, a, bv, "");
    case KB_LDEXP: {
      LLVMValueRef e = LLVMBuildTrunc(b, ext64(F, bv, bt), L->t_i32, "");
      LLVMTypeRef ps[2] = {ty, L->t_i32};
      LLVMValueRef xs[2] = {a, e};
      return fl_call(F, fl_decl(L, t == FM_F64 ? "ldexp" : "ldexpf", ty, ps, 2), xs, 2);
    }
    default: assert(0 && "integer operator on floats"); return a;
    }
  }
  if (op >= KB_LT && op <= KB_NE) return icmp(F, op, t, a, bv);
  if (op == KB_BITAND) return LLVMBuildAnd(b, a, bv, "");
  if (op == KB_BITOR) return LLVMBuildOr(b, a, bv, "");
  if (op == KB_BITXOR) return LLVMBuildXor(b, a, bv, "");
  if (op == KB_MIN || op == KB_MAX) {
    LLVMValueRef c = icmp(F, op == KB_MIN ? KB_LT : KB_GT, t, a, bv);
    return LLVMBuildSelect(b, c, a, bv, "");
  }
  LLVMValueRef x = ext64(F, a, t), y = ext64(F, bv, bt), r;
  switch (op) {
  case KB_ADD: r = t == FM_I64 ? LLVMBuildNSWAdd(b, x, y, "") : LLVMBuildAdd(b, x, y, ""); break;
  case KB_SUB: r = t == FM_I64 ? LLVMBuildNSWSub(b, x, y, "") : LLVMBuildSub(b, x, y, ""); break;
  case KB_MUL: r = t == FM_I64 ? LLVMBuildNSWMul(b, x, y, "") : LLVMBuildMul(b, x, y, ""); break;
  case KB_DIV: case KB_MOD: {
    int div = op == KB_DIV;
    if (t == FM_U64 || (isuns(t))) {
      r = div ? LLVMBuildUDiv(b, x, y, "") : LLVMBuildURem(b, x, y, "");
      break;
    }
    if (t == FM_I64 && !(LLVMIsAConstantInt(y) && LLVMConstIntGetSExtValue(y) != -1)) {
      /* INT64_MIN / -1 is undefined in LLVM; the interpreter gives INT64_MIN and 0 */
      LLVMValueRef m1 = LLVMBuildICmp(b, LLVMIntEQ, y, fl_i64(F, -1), "");
      LLVMValueRef safe = LLVMBuildSelect(b, m1, fl_i64(F, 1), y, "");
      LLVMValueRef q = div ? LLVMBuildSDiv(b, x, safe, "") : LLVMBuildSRem(b, x, safe, "");
      LLVMValueRef alt = div ? LLVMBuildSub(b, fl_i64(F, 0), x, "") : fl_i64(F, 0);
      r = LLVMBuildSelect(b, m1, alt, q, "");
    } else {
      r = div ? LLVMBuildSDiv(b, x, y, "") : LLVMBuildSRem(b, x, y, "");
    }
    break;
  }
  case KB_POW: {
    LLVMValueRef xs[2] = {x, y};
    r = fl_call(F, ipow_fn(L), xs, 2);
    break;
  }
  case KB_SHL: case KB_SHR: {
    LLVMValueRef s = LLVMBuildAnd(b, y, fl_i64(F, 63), "");
    if (op == KB_SHL) r = LLVMBuildShl(b, x, s, "");
    else r = isuns(t) ? LLVMBuildLShr(b, x, s, "") : LLVMBuildAShr(b, x, s, "");
    break;
  }
  default: assert(0 && "float operator on integers"); return a;
  }
  return wrap(F, r, t);
}

/* fm_ipow of the CPU library, as an internal function of the module. */
static LLVMValueRef ipow_fn(FmLlvm *L) {
  LLVMValueRef fn = LLVMGetNamedFunction(L->mod, "fm.ipow");
  if (fn) return fn;
  LLVMTypeRef ps[2] = {L->t_i64, L->t_i64};
  fn = LLVMAddFunction(L->mod, "fm.ipow", LLVMFunctionType(L->t_i64, ps, 2, 0));
  LLVMSetLinkage(fn, LLVMInternalLinkage);
  LLVMBuilderRef b = LLVMCreateBuilderInContext(L->ctx);
  LLVMValueRef base = LLVMGetParam(fn, 0), e = LLVMGetParam(fn, 1);
  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(L->ctx, fn, "entry");
  LLVMBasicBlockRef negb = LLVMAppendBasicBlockInContext(L->ctx, fn, "neg");
  LLVMBasicBlockRef loop = LLVMAppendBasicBlockInContext(L->ctx, fn, "loop");
  LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(L->ctx, fn, "done");
  LLVMValueRef zero = fl_ci(L->t_i64, 0), one = fl_ci(L->t_i64, 1), mone = fl_ci(L->t_i64, -1);
  LLVMPositionBuilderAtEnd(b, entry);
  LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, e, zero, ""), negb, loop);
  /* e < 0: 1 for base 1, +-1 for base -1, else 0 */
  LLVMPositionBuilderAtEnd(b, negb);
  LLVMValueRef odd = LLVMBuildICmp(b, LLVMIntNE, LLVMBuildAnd(b, e, one, ""), zero, "");
  LLVMValueRef rm1 = LLVMBuildSelect(b, odd, mone, one, "");
  LLVMValueRef r = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntEQ, base, mone, ""), rm1, zero, "");
  r = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntEQ, base, one, ""), one, r, "");
  LLVMBuildRet(b, r);
  /* loop: for (r = 1, x = base; e; e >>= 1, x *= x) if (e & 1) r *= x; */
  LLVMPositionBuilderAtEnd(b, loop);
  LLVMValueRef pr = LLVMBuildPhi(b, L->t_i64, "r"), px = LLVMBuildPhi(b, L->t_i64, "x"), pe = LLVMBuildPhi(b, L->t_i64, "e");
  LLVMValueRef isz = LLVMBuildICmp(b, LLVMIntEQ, pe, zero, "");
  LLVMValueRef bit = LLVMBuildICmp(b, LLVMIntNE, LLVMBuildAnd(b, pe, one, ""), zero, "");
  LLVMValueRef nr = LLVMBuildSelect(b, bit, LLVMBuildMul(b, pr, px, ""), pr, "");
  LLVMValueRef nx = LLVMBuildMul(b, px, px, ""), ne = LLVMBuildAShr(b, pe, one, "");
  LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(L->ctx, fn, "step");
  LLVMBuildCondBr(b, isz, done, body);
  LLVMPositionBuilderAtEnd(b, body);
  LLVMBuildBr(b, loop);
  LLVMBasicBlockRef from[2] = {entry, body};
  LLVMValueRef vr[2] = {one, nr}, vx[2] = {base, nx}, ve[2] = {e, ne};
  LLVMAddIncoming(pr, vr, from, 2);
  LLVMAddIncoming(px, vx, from, 2);
  LLVMAddIncoming(pe, ve, from, 2);
  LLVMPositionBuilderAtEnd(b, done);
  LLVMBuildRet(b, pr);
  LLVMDisposeBuilder(b);
  return fn;
}

/* ---- expressions ---- */

/* Whether evaluating e may fault (a load, an integer division): C evaluates such
   operands of && || ?: only when needed, so they branch. */
static int may_trap(const KExpr *e) {
  if (!e) return 0;
  if (e->k == KE_LOAD) return 1;
  if (e->k == KE_BIN && (e->op == KB_DIV || e->op == KB_MOD) && !isf(e->t)) return 1;
  return may_trap(e->a) || may_trap(e->b) || may_trap(e->c);
}

static LLVMValueRef gep(Fn *F, KBuf *buf, const KExpr *idx) {
  LLVMValueRef i = fl_conv(F, fl_ex(F, idx), idx->t, FM_I64);
  return LLVMBuildInBoundsGEP2(F->b, fl_mt(F->L, buf->t), F->buf[buf->id], &i, 1, "");
}

static LLVMValueRef load_at(Fn *F, KBuf *buf, LLVMValueRef p) {
  FmLlvm *L = F->L;
  LLVMValueRef v = LLVMBuildLoad2(F->b, fl_mt(L, buf->t), p, "");
  if (buf->t == FM_F16) return LLVMBuildFPExt(F->b, LLVMBuildBitCast(F->b, v, L->t_f16, ""), L->t_f32, "");
  if (buf->t == FM_BOOL) return LLVMBuildICmp(F->b, LLVMIntNE, v, fl_ci(L->t_i8, 0), "");
  return v;
}

static void store_at(Fn *F, KBuf *buf, LLVMValueRef p, LLVMValueRef v) {
  FmLlvm *L = F->L;
  if (buf->t == FM_F16) v = LLVMBuildBitCast(F->b, LLVMBuildFPTrunc(F->b, v, L->t_f16, ""), L->t_i16, "");
  else if (buf->t == FM_BOOL) v = LLVMBuildZExt(F->b, v, L->t_i8, "");
  LLVMBuildStore(F->b, v, p);
}

/* c ? then() : else() with branches; the arms are expressions (or NULL = value). */
static LLVMValueRef lazy(Fn *F, LLVMValueRef c, const KExpr *x, LLVMValueRef xv, const KExpr *y, LLVMValueRef yv,
                         FmDType t) {
  LLVMBasicBlockRef bx = LLVMAppendBasicBlockInContext(F->L->ctx, F->f, "sel.t");
  LLVMBasicBlockRef by = LLVMAppendBasicBlockInContext(F->L->ctx, F->f, "sel.f");
  LLVMBasicBlockRef bj = LLVMAppendBasicBlockInContext(F->L->ctx, F->f, "sel.j");
  LLVMBuildCondBr(F->b, c, bx, by);
  LLVMPositionBuilderAtEnd(F->b, bx);
  if (x) xv = fl_ex(F, x), xv = t == FM_BOOL && x->t != FM_BOOL ? truth(F, xv, x->t) : xv;
  LLVMBasicBlockRef ex_x = LLVMGetInsertBlock(F->b);
  LLVMBuildBr(F->b, bj);
  LLVMPositionBuilderAtEnd(F->b, by);
  if (y) yv = fl_ex(F, y), yv = t == FM_BOOL && y->t != FM_BOOL ? truth(F, yv, y->t) : yv;
  LLVMBasicBlockRef ex_y = LLVMGetInsertBlock(F->b);
  LLVMBuildBr(F->b, bj);
  LLVMPositionBuilderAtEnd(F->b, bj);
  LLVMValueRef phi = LLVMBuildPhi(F->b, fl_vt(F->L, t), "");
  LLVMValueRef vs[2] = {xv, yv};
  LLVMBasicBlockRef bs[2] = {ex_x, ex_y};
  LLVMAddIncoming(phi, vs, bs, 2);
  return phi;
}

LLVMValueRef fl_ex(Fn *F, const KExpr *e) {
  FmLlvm *L = F->L;
  LLVMBuilderRef b = F->b;
  switch (e->k) {
  case KE_CONST:
    if (isf(e->t)) return LLVMConstReal(fl_vt(L, e->t), e->t == FM_F64 ? e->f : (double)(float)e->f);
    return fl_ci(fl_vt(L, e->t), fm_kwrap(e->t, e->i));
  case KE_VAR: return LLVMBuildLoad2(b, fl_vt(L, e->var->t), F->slot[e->var->id], "");
  case KE_BATCH: return F->N;
  case KE_LOAD: return load_at(F, e->buf, gep(F, e->buf, e->a));
  case KE_ADDR: return LLVMBuildBitCast(b, gep(F, e->buf, e->a), L->t_i8p, "");
  case KE_UN: return unop(F, e->op, e->a->t, fl_ex(F, e->a));
  case KE_BIN:
    if ((e->op == KB_AND || e->op == KB_OR) && may_trap(e->b)) {
      LLVMValueRef c = truth(F, fl_ex(F, e->a), e->a->t);
      if (e->op == KB_AND) return lazy(F, c, e->b, NULL, NULL, fl_ci(L->t_i1, 0), FM_BOOL);
      return lazy(F, c, NULL, fl_ci(L->t_i1, 1), e->b, NULL, FM_BOOL);
    }
    return binop(F, e->op, e->a->t, fl_ex(F, e->a), fl_ex(F, e->b), e->b->t);
  case KE_FMA: {
    LLVMValueRef a = fl_ex(F, e->a), x = fl_ex(F, e->b), c = fl_ex(F, e->c);
    if (isf(e->t)) {
      char nm[32];
      LLVMValueRef args[3] = {a, x, c};
      return mathcall(F, intr(nm, sizeof nm, "fma", e->t), fl_vt(L, e->t), args, 3);
    }
    LLVMValueRef r = LLVMBuildAdd(b, LLVMBuildMul(b, ext64(F, a, e->t), ext64(F, x, e->t), ""), ext64(F, c, e->t), "");
    return wrap(F, r, e->t);
  }
  case KE_SELECT: {
    LLVMValueRef c = truth(F, fl_ex(F, e->a), e->a->t);
    if (may_trap(e->b) || may_trap(e->c)) return lazy(F, c, e->b, NULL, e->c, NULL, e->t);
    return LLVMBuildSelect(b, c, fl_ex(F, e->b), fl_ex(F, e->c), "");
  }
  case KE_CAST: return fl_conv(F, fl_ex(F, e->a), e->a->t, e->t);
  }
  assert(0 && "bad expression");
  return NULL;
}

/* ---- loops ---- */

LLVMValueRef fl_slot(Fn *F, KVar *v) {
  if (!F->slot[v->id]) {
    LLVMBuilderRef ab = LLVMCreateBuilderInContext(F->L->ctx);
    LLVMPositionBuilderBefore(ab, LLVMGetBasicBlockTerminator(F->allocas));
    F->slot[v->id] = LLVMBuildAlloca(ab, fl_vt(F->L, v->t), v->name);
    LLVMDisposeBuilder(ab);
  }
  return F->slot[v->id];
}

/* llvm.loop metadata: a self-referencing node with the given options. */
static void loop_md(FmLlvm *L, LLVMValueRef br, KLoop mark) {
  LLVMMetadataRef opt[2];
  if (mark == KL_VECTOR) {
    opt[0] = LLVMMDStringInContext2(L->ctx, "llvm.loop.vectorize.enable", 26);
    opt[1] = LLVMValueAsMetadata(fl_ci(L->t_i1, 1));
  } else {
    opt[0] = LLVMMDStringInContext2(L->ctx, "llvm.loop.unroll.count", 22);
    opt[1] = LLVMValueAsMetadata(fl_ci(L->t_i32, 4));
  }
  LLVMMetadataRef tmp = LLVMTemporaryMDNode(L->ctx, NULL, 0);
  LLVMMetadataRef ops[2] = {tmp, LLVMMDNodeInContext2(L->ctx, opt, 2)};
  LLVMMetadataRef node = LLVMMDNodeInContext2(L->ctx, ops, 2);
  LLVMMetadataReplaceAllUsesWith(tmp, node);
  LLVMSetMetadata(br, L->md_loop, LLVMMetadataAsValue(L->ctx, node));
}

/* for (var = lo; var < hi; var++) body(), with an optional loop mark. */
void fl_loop(Fn *F, LLVMValueRef var, LLVMValueRef lo, LLVMValueRef hi, KLoop mark, BodyFn body,
                      const void *arg) {
  FmLlvm *L = F->L;
  LLVMBasicBlockRef cond = LLVMAppendBasicBlockInContext(L->ctx, F->f, "for.cond");
  LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(L->ctx, F->f, "for.body");
  LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(L->ctx, F->f, "for.end");
  LLVMBuildStore(F->b, lo, var);
  LLVMBuildBr(F->b, cond);
  LLVMPositionBuilderAtEnd(F->b, cond);
  LLVMValueRef i = LLVMBuildLoad2(F->b, L->t_i64, var, "");
  LLVMBuildCondBr(F->b, LLVMBuildICmp(F->b, LLVMIntSLT, i, hi, ""), bb, done);
  LLVMPositionBuilderAtEnd(F->b, bb);
  body(F, arg);
  i = LLVMBuildLoad2(F->b, L->t_i64, var, "");
  LLVMBuildStore(F->b, LLVMBuildNSWAdd(F->b, i, fl_i64(F, 1), ""), var);
  LLVMValueRef br = LLVMBuildBr(F->b, cond);
  if (mark == KL_VECTOR || mark == KL_UNROLL) loop_md(L, br, mark);
  LLVMPositionBuilderAtEnd(F->b, done);
}

void fl_body_stmts(Fn *F, const void *arg) { fl_stmts(F, ((const KStmt *)arg)->body); }

/* ---- statements ---- */
static void store_stmt(Fn *F, const KStmt *s) {
  LLVMValueRef p = gep(F, s->buf, s->idx);
  LLVMValueRef x = fl_conv(F, fl_ex(F, s->e), s->e->t, s->buf->t);
  if (s->accop >= 0) {
    x = binop(F, s->accop, s->buf->t, load_at(F, s->buf, p), x, s->buf->t);
    if (s->accop >= KB_LT && s->accop <= KB_XOR) x = fl_conv(F, x, FM_BOOL, s->buf->t);
  }
  store_at(F, s->buf, p, x);
}

static void call_stmt(Fn *F, const KStmt *s) {
  const FmRoutine *r = fm_routine_find(s->fn);
  assert(r && s->nargs <= 32);
  LLVMValueRef args[32];
  for (int i = 0; i < s->nargs; i++) {
    const KExpr *a = s->args[i];
    LLVMValueRef v = fl_ex(F, a);
    if (a->k == KE_ADDR) args[i] = v;
    else if (r->kinds[i] == 'f') args[i] = fl_conv(F, v, a->t, FM_F32);
    else args[i] = fl_conv(F, v, a->t, FM_I64);
  }
  fl_call(F, fm_llvm_routine(F->L, s->fn), args, s->nargs);
}

void fl_stmts(Fn *F, const KStmt *s) {
  FmLlvm *L = F->L;
  for (; s; s = s->next) {
    switch (s->k) {
    case KS_FOR: {
      if (s->loop == KL_PARALLEL && !F->in_parallel) {
        KFork fk = fm_kfork(s);
        if (fk.mode != KFORK_NEVER) {
          fl_par_for(F, s, fk);
          break;
        }
      }
      LLVMValueRef lo = fl_conv(F, fl_ex(F, s->lo), s->lo->t, FM_I64), hi = fl_conv(F, fl_ex(F, s->hi), s->hi->t, FM_I64);
      KLoop mark = s->loop;
      if (mark == KL_VECTOR && fm_kloop_reduces(F->kf, s->body)) mark = KL_SERIAL;
      fl_loop(F, fl_slot(F, s->var), lo, hi, mark, fl_body_stmts, s);
      break;
    }
    case KS_LET: LLVMBuildStore(F->b, fl_conv(F, fl_ex(F, s->e), s->e->t, s->var->t), fl_slot(F, s->var)); break;
    case KS_SET: {
      LLVMValueRef x = fl_conv(F, fl_ex(F, s->e), s->e->t, s->var->t), p = fl_slot(F, s->var);
      if (s->accop >= 0) {
        x = binop(F, s->accop, s->var->t, LLVMBuildLoad2(F->b, fl_vt(L, s->var->t), p, ""), x, s->var->t);
        if (s->accop >= KB_LT && s->accop <= KB_XOR) x = fl_conv(F, x, FM_BOOL, s->var->t);
      }
      LLVMBuildStore(F->b, x, p);
      break;
    }
    case KS_STORE: store_stmt(F, s); break;
    case KS_IF: {
      LLVMValueRef c = truth(F, fl_ex(F, s->e), s->e->t);
      LLVMBasicBlockRef bt = LLVMAppendBasicBlockInContext(L->ctx, F->f, "if.then");
      LLVMBasicBlockRef be = LLVMAppendBasicBlockInContext(L->ctx, F->f, "if.else");
      LLVMBasicBlockRef bj = LLVMAppendBasicBlockInContext(L->ctx, F->f, "if.end");
      LLVMBuildCondBr(F->b, c, bt, be);
      LLVMPositionBuilderAtEnd(F->b, bt);
      fl_stmts(F, s->body);
      LLVMBuildBr(F->b, bj);
      LLVMPositionBuilderAtEnd(F->b, be);
      fl_stmts(F, s->els);
      LLVMBuildBr(F->b, bj);
      LLVMPositionBuilderAtEnd(F->b, bj);
      break;
    }
    case KS_CALL: call_stmt(F, s); break;
    case KS_COMMENT: break;
    }
  }
}

LLVMValueRef fm_llvm_routine(FmLlvm *L, const char *name) {
  const FmRoutine *r = fm_routine_find(name);
  assert(r);
  char sym[128];
  snprintf(sym, sizeof sym, "fmk_%s", name);
  LLVMTypeRef ps[32];
  int n = (int)strlen(r->kinds);
  for (int i = 0; i < n; i++) {
    char k = r->kinds[i];
    ps[i] = k == 'p' || k == 'c' ? L->t_i8p : k == 'f' ? L->t_f32 : L->t_i64;
  }
  LLVMValueRef fn = LLVMGetNamedFunction(L->mod, sym);
  if (!fn) {
    fn = LLVMAddFunction(L->mod, sym, LLVMFunctionType(L->t_void, ps, (unsigned)n, 0));
    unsigned nounwind = LLVMGetEnumAttributeKindForName("nounwind", 8);
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(L->ctx, nounwind, 0));
  }
  return fn;
}

static void attr(FmLlvm *L, LLVMValueRef fn, unsigned idx, const char *name) {
  unsigned k = LLVMGetEnumAttributeKindForName(name, strlen(name));
  assert(k);
  LLVMAddAttributeAtIndex(fn, idx, LLVMCreateEnumAttribute(L->ctx, k, 0));
}

void fm_llvm_fn_attrs(FmLlvm *L, LLVMValueRef fn) {
  attr(L, fn, LLVMAttributeFunctionIndex, "nounwind");
  LLVMAddTargetDependentFunctionAttr(fn, "target-cpu", L->cpu);
  if (L->features && *L->features) LLVMAddTargetDependentFunctionAttr(fn, "target-features", L->features);
}

LLVMValueRef fm_llvm_kernel(FmLlvm *L, KFn *kf, int exported) {
  LLVMTypeRef ps[1 + 256];
  int np = 0, *pidx = calloc((size_t)kf->nbufs + 1, sizeof(int));
  ps[np++] = L->t_i64;
  for (int i = 0; i < kf->nbufs; i++) {
    if (kf->bufs[i]->kind == KBUF_CONST) continue;
    if (np > 256) fm_fail("kernel '%s': more than 256 buffers", kf->name);
    pidx[i] = np;
    ps[np++] = LLVMPointerType(fl_mt(L, kf->bufs[i]->t), 0);
  }
  LLVMValueRef fn = LLVMAddFunction(L->mod, kf->name, LLVMFunctionType(L->t_void, ps, (unsigned)np, 0));
  if (!exported) LLVMSetLinkage(fn, LLVMInternalLinkage);
  fm_llvm_fn_attrs(L, fn);
  Fn F = {.L = L, .kf = kf, .f = fn};
  F.b = L->b;
  F.buf = calloc((size_t)kf->nbufs + 1, sizeof *F.buf);
  F.slot = calloc((size_t)kf->nvars + 1, sizeof *F.slot);
  F.N = LLVMGetParam(fn, 0);
  LLVMSetValueName2(F.N, "N", 1);
  for (int i = 0; i < kf->nbufs; i++) {
    KBuf *bf = kf->bufs[i];
    if (bf->kind == KBUF_CONST) {
      /* a private constant table, <fn>.<buf> */
      char gname[300];
      snprintf(gname, sizeof gname, "%s.%s", kf->name, bf->name);
      int64_t n = bf->nelem > 0 ? bf->nelem : 0;
      size_t nbytes = (size_t)n * fm_dtype_size(bf->t);
      LLVMValueRef init = LLVMConstStringInContext(L->ctx, nbytes ? bf->data : "", (unsigned)nbytes, 1);
      LLVMValueRef gv = LLVMAddGlobal(L->mod, LLVMTypeOf(init), gname);
      LLVMSetInitializer(gv, init);
      LLVMSetGlobalConstant(gv, 1);
      LLVMSetLinkage(gv, LLVMPrivateLinkage);
      LLVMSetUnnamedAddress(gv, LLVMGlobalUnnamedAddr);
      LLVMSetAlignment(gv, 64);
      F.buf[i] = LLVMConstBitCast(gv, LLVMPointerType(fl_mt(L, bf->t), 0));
      continue;
    }
    LLVMValueRef p = LLVMGetParam(fn, (unsigned)pidx[i]);
    LLVMSetValueName2(p, bf->name, strlen(bf->name));
    F.buf[i] = p;
    attr(L, fn, (unsigned)pidx[i] + 1, "noalias");
    if (!fm_kfn_writes(kf, bf)) attr(L, fn, (unsigned)pidx[i] + 1, "readonly");
  }
  F.allocas = LLVMAppendBasicBlockInContext(L->ctx, fn, "allocas");
  LLVMBasicBlockRef start = LLVMAppendBasicBlockInContext(L->ctx, fn, "start");
  LLVMPositionBuilderAtEnd(F.b, F.allocas);
  LLVMBuildBr(F.b, start);
  LLVMPositionBuilderAtEnd(F.b, start);
  fl_stmts(&F, kf->body);
  LLVMBuildRetVoid(F.b);
  free(F.buf), free(F.slot), free(pidx);
  return fn;
}

/* void <fn>.thunk(i64 N, i8 **p): calls the kernel k with p[i] for each of its
   non-constant buffers i (buffer-id order), so a caller with an array of pointers
   (a test, a debugger) can run any kernel. */
LLVMValueRef fm_llvm_thunk(FmLlvm *L, KFn *kf, LLVMValueRef k) {
  char name[300];
  snprintf(name, sizeof name, "%s.thunk", kf->name);
  LLVMTypeRef i8pp = LLVMPointerType(L->t_i8p, 0), ps[2] = {L->t_i64, i8pp};
  LLVMValueRef fn = LLVMAddFunction(L->mod, name, LLVMFunctionType(L->t_void, ps, 2, 0));
  fm_llvm_fn_attrs(L, fn);
  LLVMBuilderRef b = LLVMCreateBuilderInContext(L->ctx);
  LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(L->ctx, fn, "entry"));
  LLVMValueRef args[257];
  int na = 0;
  args[na++] = LLVMGetParam(fn, 0);
  for (int i = 0; i < kf->nbufs; i++) {
    if (kf->bufs[i]->kind == KBUF_CONST) continue;
    LLVMValueRef idx = fl_ci(L->t_i64, i);
    LLVMValueRef p = LLVMBuildLoad2(b, L->t_i8p, LLVMBuildInBoundsGEP2(b, L->t_i8p, LLVMGetParam(fn, 1), &idx, 1, ""), "");
    args[na] = LLVMBuildBitCast(b, p, LLVMTypeOf(LLVMGetParam(k, (unsigned)na)), "");
    na++;
  }
  LLVMBuildCall2(b, LLVMGlobalGetValueType(k), k, args, (unsigned)na, "");
  LLVMBuildRetVoid(b);
  LLVMDisposeBuilder(b);
  return fn;
}
