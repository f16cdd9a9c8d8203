/* emit_llvm.h - the LLVM backend: kernel IR -> LLVM IR through the LLVM-C API.
 *
 *   FmLlvm *L = fm_llvm_new("model", "native");     // context, module, target machine
 *   for (KFn *fn = p->fns; fn; fn = fn->next) fm_llvm_kernel(L, fn, 0);
 *   fm_llvm_entry(L, &entry);                       // model_run, workspace_size, desc
 *   fm_llvm_optimize(L);                            // LLVMVerifyModule + default<O3>
 *   fm_llvm_write_object(L, "model.o");  ...  fm_llvm_free(L);
 *
 * Kernels (emit_llvm.c) follow the C printer's contract of emit.h: one function
 *   void <fn>(i64 N, T* noalias b0, T* noalias b1, ...)
 * with one pointer per KBUF_TENSOR / KBUF_SCRATCH buffer in buffer-id order (readonly
 * where the kernel never writes it), float16 buffers as i16 and bool buffers as i8
 * in memory. The values mean what the interpreter (kernel/kinterp.c) computes: no
 * fast-math flags and no contraction, so results are bit-identical to it except for
 * libm calls that the host's libm and the interpreter share anyway.
 *
 * Loops: KL_SERIAL plain; KL_VECTOR with llvm.loop.vectorize.enable (unless the body
 * carries a reduction, the C printer's rule); KL_UNROLL with unroll.count 4;
 * KL_PARALLEL, outermost and when the work pays (the C printer's fork rule), is
 * outlined into <fn>.par<k>(i8 *ctx) run by libgomp's GOMP_parallel, each thread
 * taking one contiguous block of the (collapsed) iteration space, like
 * `omp parallel for schedule(static)`.
 *
 * CPU library routines (KS_CALL) are external functions "fmk_<routine>" with every
 * integer argument as i64 and every pointer as i8* (the C ABI of the routines);
 * the JIT binds them to the routines compiled into fewmul, the .so path to C
 * wrappers built from the same library text (fm_llvm_glue_text).
 */
#ifndef FM_EMIT_LLVM_H
#define FM_EMIT_LLVM_H
#include "emit/codegen.h"
#include "kernel/kernel.h"
#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

typedef struct FmLlvm {
  LLVMContextRef ctx;
  LLVMModuleRef mod;
  LLVMBuilderRef b;
  LLVMTargetMachineRef tm;
  char *cpu, *features, *triple;
  LLVMTypeRef t_void, t_i1, t_i8, t_i16, t_i32, t_i64, t_f16, t_f32, t_f64, t_i8p;
  unsigned md_loop;
  int own_ctx;
  void *jit_tsc;        /* LLVMOrcThreadSafeContextRef of a JIT module (jit.c) */
  int nouter;           /* outlined parallel bodies so far (unique names) */
} FmLlvm;

/* target: "native" (default when NULL), "generic", or an LLVM CPU name
   (x86-64-v3, x86-64-v4, skylake-avx512, ...). fm_fail on an unknown one. */
FmLlvm *fm_llvm_new(const char *modname, const char *target);
/* In a given context (the JIT's thread-safe context), for JIT code (jit: no PIC). */
FmLlvm *fm_llvm_new_ctx(const char *modname, const char *target, LLVMContextRef ctx, int jit);
void fm_llvm_free(FmLlvm *L);

/* emit_llvm.c: one kernel as a function named fn->name; exported (external
   linkage) or internal to the module. */
LLVMValueRef fm_llvm_kernel(FmLlvm *L, KFn *fn, int exported);
/* void <fn>.thunk(i64 N, i8 **ptrs): calls kernel k with ptrs[buffer id] (tests). */
LLVMValueRef fm_llvm_thunk(FmLlvm *L, KFn *fn, LLVMValueRef k);
/* The external declaration of a CPU library routine (by routine name). */
LLVMValueRef fm_llvm_routine(FmLlvm *L, const char *name);
/* nounwind, target-cpu and target-features of the module's target. */
void fm_llvm_fn_attrs(FmLlvm *L, LLVMValueRef fn);

/* emit_llvm_model.c: the model around the kernels, same ABI as model_c.c. */
typedef struct FmLlvmEntry {
  KProgram *p;
  FmMemPlan *mp;
  const char *name;            /* C prefix: <name>_run, <name>_desc, ... */
  Tensor **consts; int nconsts; int *const_of; /* constant tensors (by tensor id -> k) */
  int file_weights;            /* constants live in a weights blob at blob_off[k] */
  const uint64_t *blob_off; uint64_t blob_total, checksum;
  int shared;                  /* also define fewmul_model() (the .so / JIT entry) */
} FmLlvmEntry;
void fm_llvm_entry(FmLlvm *L, const FmLlvmEntry *e); /* makes missing constants too */
/* Constant tensor k of model <name> as the private global <name>.w<k>. */
void fm_llvm_const(FmLlvm *L, const char *name, int k, const Tensor *t);

/* Verifies (fm_fail naming the first problem: an internal error) and runs the new
   pass manager's default<O3> pipeline for the target. */
void fm_llvm_optimize(FmLlvm *L);
void fm_llvm_write_ir(FmLlvm *L, const char *path);     /* readable .ll */
void fm_llvm_write_object(FmLlvm *L, const char *path); /* ELF object for the target */

/* C text that defines every routine fmk_<name> as a wrapper of the CPU library
   routine <name> (the .so path links it with the object). */
const char *fm_llvm_glue_text(FmLlvm *L, Arena *a);
#endif
