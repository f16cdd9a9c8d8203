/* emit_llvm_fn.h - internal to the LLVM kernel printer (emit_llvm.c) and its
 * parallel-loop outliner (emit_llvm_par.c): the state of one function being filled
 * and the helpers both use. */
#ifndef FM_EMIT_LLVM_FN_H
#define FM_EMIT_LLVM_FN_H
#include "emit/emit_llvm.h"

typedef struct Fn {
  FmLlvm *L;
  LLVMBuilderRef b;
  KFn *kf;
  LLVMValueRef f;          /* the LLVM function being filled */
  LLVMValueRef N;          /* i64 batch */
  LLVMValueRef *buf;       /* by buffer id: typed element pointer */
  LLVMValueRef *slot;      /* by var id: alloca in this function */
  LLVMBasicBlockRef allocas;
  int in_parallel;
} Fn;

LLVMTypeRef fl_vt(FmLlvm *L, FmDType t);   /* register type of a dtype */
LLVMTypeRef fl_mt(FmLlvm *L, FmDType t);   /* memory type */
LLVMValueRef fl_ci(LLVMTypeRef t, int64_t v);
LLVMValueRef fl_i64(Fn *F, int64_t v);
LLVMValueRef fl_decl(FmLlvm *L, const char *name, LLVMTypeRef ret, LLVMTypeRef *params, int n);
LLVMValueRef fl_call(Fn *F, LLVMValueRef fn, LLVMValueRef *args, int n);
LLVMValueRef fl_conv(Fn *F, LLVMValueRef v, FmDType from, FmDType to); /* kinterp's conv() */
LLVMValueRef fl_ex(Fn *F, const KExpr *e);
LLVMValueRef fl_slot(Fn *F, KVar *v);       /* the variable's alloca in F */
void fl_stmts(Fn *F, const KStmt *s);
/* for (*var = lo; *var < hi; ++*var) body(F, arg), with the loop mark's metadata */
typedef void (*BodyFn)(Fn *F, const void *arg);
void fl_loop(Fn *F, LLVMValueRef var, LLVMValueRef lo, LLVMValueRef hi, KLoop mark, BodyFn body, const void *arg);
void fl_body_stmts(Fn *F, const void *s);   /* BodyFn: the statements of loop s */

/* emit_llvm_par.c: a KL_PARALLEL loop fm_kfork says to fork */
void fl_par_for(Fn *F, const KStmt *s, KFork fk);
#endif
