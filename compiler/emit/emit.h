/* emit.h - printers of the kernel IR (backends) and the C prelude's routine table.
 *
 * A backend prints one KFn (kernel.h) as a function of its target language; the
 * whole-model writer (emit/model_c.c) calls it once per kernel after it wrote the
 * prelude text (fm_prelude_text, compiler/emit/prelude.c) at the top of the file:
 *
 *   fputs(fm_prelude_text, f);
 *   for (KFn *fn = prog->fns; fn; fn = fn->next) fm_backend_c.emit_fn(f, fn);
 *   ...  fn->name(N, ptr0, ptr1, ...);   // one pointer per KBUF_TENSOR/KBUF_SCRATCH
 *                                        // buffer, in buffer-id order (fm_emit_c_params)
 *
 * The C printer's contract (emit_c.c):
 *   - every referenced KBUF_CONST buffer becomes
 *       static const <ctype> <fn>_<buf>[n] = {...};   (exact literals)
 *   - the kernel becomes
 *       static void <fn>(int64_t N, <ctype> *restrict <buf>, ...)
 *     with one pointer per KBUF_TENSOR / KBUF_SCRATCH buffer in buffer-id order,
 *     const when the kernel never writes it. Distinct parameters must not alias
 *     (restrict): an in-place plan must not pass one block as two buffers.
 *   - float16 buffers are uint16_t in memory; their values compute as float.
 *   - the output compiles warning-free with gcc/clang -Wall -Wextra -Werror, with
 *     or without -fopenmp (pragmas go through the prelude's FM_* macros). For results
 *     bit-identical to the interpreter compile with -ffp-contract=off (the default
 *     "fast" lets gcc fuse a*b+c into one FMA where -mfma is on).
 */
#ifndef FM_EMIT_H
#define FM_EMIT_H
#include <stdio.h>
#include "kernel/kernel.h"

/* ---- backends: printers of the kernel IR behind one vtable ---- */
typedef struct FmBackend {
  const char *name;                    /* "c", later "llvm", "opencl", "cuda" */
  const char *file_ext;                /* ".c" */
  void (*emit_fn)(FILE *f, KFn *fn);   /* one kernel (and its constant tables) */
  const char *prelude;                 /* text written once before the kernels, or NULL */
} FmBackend;
extern const FmBackend fm_backend_c;
const FmBackend *fm_backend_find(const char *name); /* NULL if unknown */

/* emit_c.c */
void fm_emit_c_fn(FILE *f, KFn *fn);
/* Whether fn writes buffer b (stores to it or passes it as a written pointer to a
   prelude routine); the C parameter of a buffer it never writes is const. */
int fm_kfn_writes(const KFn *fn, const KBuf *b);

/* prelude.c, embedded as text by CMake (cmake/embed.cmake) */
extern const char fm_prelude_text[];

/* ---- the prelude's routines, callable from kernel IR with kb_call ----
 * The table lives in kinterp.c (the interpreter calls the compiled-in prelude);
 * printers use it for argument kinds. kinds has one letter per argument:
 *   i  integer (any integer KExpr; int64_t in C)
 *   f  float scalar (a float KExpr)
 *   p  pointer the routine writes   (k_addr(buf, idx))
 *   c  pointer the routine only reads (k_addr(buf, idx))
 * call() gets the marshalled arguments and, per pointer, how many elements remain
 * from it to the end of its buffer; it returns NULL or a message (bad extents). */
typedef union FmArg { int64_t i; double f; void *p; } FmArg;
typedef struct FmRoutine {
  const char *name;
  const char *kinds;
  const char *(*call)(const FmArg *a, const int64_t *avail, char *msg, size_t msglen);
} FmRoutine;
const FmRoutine *fm_routine_find(const char *name); /* NULL if unknown */

#endif
