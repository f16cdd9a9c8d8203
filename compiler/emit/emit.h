/* emit.h - backends: printers of the kernel IR behind one module-level vtable.
 *
 * fm_codegen (codegen.c) turns a lowered program into a loadable model through a
 * backend's hooks, in this order (FmModule, codegen.h, carries the program, the memory
 * plan, the constants and the open output file):
 *
 *   be->begin_module(m);                        // file header, library code, ...
 *   for (k = 0; k < m->nconsts; k++) be->emit_const(m, k);   // weights
 *   for (fn = prog->fns; fn; fn = fn->next) be->emit_fn(m, fn); // one per kernel
 *   be->emit_entry(m);                          // workspace_size, run(): the kernels
 *                                               // in order on the memory plan, desc
 *   if (be->finish) be->finish(m);              // close the module's text
 *   if (!no_so) be->build(m, tmpdir, src, so);  // <name>.so exporting fewmul_model()
 *
 * Capabilities: be->caps says what the generated code may rely on, and
 * be->can_call(routine) whether a kernel may call a CPU kernel library routine
 * (KS_CALL, compiler/cpu/); the lowering asks it (fm_lower_can_call, kernel.h) and
 * otherwise lowers to loops, so a GPU backend answers 0 and gets plain loops or
 * supplies a device version of the routine.
 *
 * The C backend (backend_c.c, with the kernel printer emit_c.c) is one implementation.
 * The C printer's contract (emit_c.c):
 *   - every referenced KBUF_CONST buffer becomes
 *       static const <ctype> <fn>_<buf>[n] = {...};   (exact literals)
 *   - the kernel becomes
 *       static void <fn>(int64_t N, <ctype> *restrict <buf>, ...)
 *     with one pointer per KBUF_TENSOR / KBUF_SCRATCH buffer in buffer-id order,
 *     const when the kernel never writes it (fm_kfn_writes). Distinct parameters must
 *     not alias (restrict): an in-place plan must not pass one block as two buffers.
 *   - float16 buffers are uint16_t in memory; their values compute as float.
 *   - the output compiles warning-free with gcc/clang -Wall -Wextra -Werror, with
 *     or without -fopenmp (pragmas go through the library's FM_* macros). For results
 *     bit-identical to the interpreter compile with -ffp-contract=off (the default
 *     "fast" lets gcc fuse a*b+c into one FMA where -mfma is on).
 */
#ifndef FM_EMIT_H
#define FM_EMIT_H
#include <stdio.h>
#include "kernel/kernel.h"

/* ---- backends ---- */
typedef struct FmModule FmModule; /* codegen.h */
typedef struct FmBackendCaps {
  int cpu_routines;   /* kernels may call CPU kernel library routines (see can_call) */
  int host_threads;   /* KL_PARALLEL loops run on host threads (OpenMP) */
  int shared_object;  /* build makes <name>.so exporting fewmul_model() (the runtime's ABI) */
  int weights_file;   /* constants always go to <name>.weights (device backends upload it) */
} FmBackendCaps;

typedef struct FmBackend {
  const char *name;                    /* "c"; later "llvm", "opencl", "cuda" */
  const char *file_ext;                /* the module's source file: ".c" */
  FmBackendCaps caps;
  int (*can_call)(const char *routine);            /* 1: the code may call it; 0: lower to loops */
  void (*begin_module)(FmModule *m);
  void (*emit_const)(FmModule *m, int k);          /* m->consts[k] (embedded or a blob offset) */
  void (*emit_fn)(FmModule *m, KFn *fn);
  void (*emit_entry)(FmModule *m);                 /* runs m->p on the plan m->mp */
  void (*finish)(FmModule *m);                     /* optional */
  /* Builds <so_path> from the module written to src_path, in the private directory
     dir (logs, objects); fm_fail naming the first compiler error. */
  void (*build)(FmModule *m, const char *dir, const char *src_path, const char *so_path);
} FmBackend;
extern const FmBackend fm_backend_c;
/* backend_llvm.c (compiler/jit/jit_none.c without LLVM: every hook fails saying so) */
extern const FmBackend fm_backend_llvm;
extern const FmBackend fm_backend_opencl; /* backend_opencl.c */
extern const FmBackend fm_backend_cuda;   /* backend_cuda.c */
const FmBackend *fm_backend_find(const char *name); /* NULL if unknown */
const char *fm_backend_names(void);                 /* "c" (for --help and errors) */

/* emit_c.c */
/* One kernel as a C function named fn->name. canonical: named K, buffers b<id>,
   variables v<id>, no comment - two kernels that print the same canonical text
   compute the same function of their positional arguments (backend_c.c shares one). */
void fm_emit_c_fn(FILE *f, KFn *fn, int canonical);

/* Device dialects of the C printer (OpenCL C, CUDA C; emit_gpu.c). The kernel text is
   the C printer's; the dialect spells what differs. */
typedef struct FmCDialect {
  const char *kernel;     /* "__kernel void" / "extern \"C\" __global__ void" */
  const char *global;     /* address space of buffer pointers: "__global " / "" */
  const char *table;      /* storage of constant tables: "__constant" / "static __device__ const" */
  const char *gid;        /* the work-item's global index as int64_t */
  int base_offset;        /* 1: each buffer is a (base, byte offset) parameter pair */
} FmCDialect;
/* One device kernel printed from (part of) fn: the top-level statements stmts[0..n-1]
   in order; `grid` (NULL or the last of them, a loop) runs as work-items, one per
   iteration, collapsed with `inner` (NULL or grid's only statement, a loop) so one
   work-item runs one (grid, inner) iteration. tables: print fn's constant tables. */
typedef struct FmCKernel {
  const FmCDialect *d;
  const char *name;
  const KStmt *const *stmts; int nstmts;
  const KStmt *grid, *inner;
  int tables;
} FmCKernel;
void fm_emit_c_kernel(FILE *f, KFn *fn, const FmCKernel *k);
/* An integer expression of constants and N as C (int64_t): host-side launch sizes. */
void fm_emit_c_expr(FILE *f, const KExpr *e);

#endif
