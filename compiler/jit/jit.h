/* jit.h - the LLVM backend as the driver sees it: in-process JIT (ORC LLJIT) and
 * `compile --emit llvm`. Built with or without LLVM (jit_none.c fails with one
 * clear line when fewmul was built without it).
 *
 *   KProgram *p = fm_driver_lower(g, ...);
 *   fm_model *m = fm_jit_model(p, "model");   // no C compiler, linker or file
 *   fm_run(m, N, in, out);                     // the JIT code lives until exit
 */
#ifndef FM_JIT_H
#define FM_JIT_H
#include "kernel/kernel.h"
#include "fewmul.h"

int fm_llvm_available(void);        /* 1 when built with LLVM */
/* The program compiled in-process (kernels, entry, weights embedded) and wrapped as
   a runtime model; fm_fail on any error. The machine code stays until exit. */
fm_model *fm_jit_model(KProgram *p, const char *name);
#endif
