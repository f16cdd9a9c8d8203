/* jit_llvm.h - ORC LLJIT over an FmLlvm module (jit.c); used by fm_jit_model and by
 * tests that run single kernels.
 *
 *   FmLlvm *L = fm_jit_llvm("k");                 // module in a JIT context, host CPU
 *   fm_llvm_kernel(L, fn, 1); fm_llvm_optimize(L);
 *   FmJit *J = fm_jit_add(L);                     // takes the module; frees L
 *   void (*f)(int64_t, ...) = (void *)fm_jit_lookup(J, fn->name);
 */
#ifndef FM_JIT_LLVM_H
#define FM_JIT_LLVM_H
#include "emit/emit_llvm.h"

typedef struct FmJit FmJit;
FmLlvm *fm_jit_llvm(const char *modname);
FmJit *fm_jit_add(FmLlvm *L);
uint64_t fm_jit_lookup(FmJit *j, const char *name); /* fm_fail if missing */
void fm_jit_free(FmJit *j);
#endif
