/* emit_gpu.h - what the OpenCL and CUDA backends share (emit_gpu.c).
 *
 * A kernel (KFn) becomes one or more device kernels ("phases"), launched in order:
 *   - when its top level is only `let`s and loops (and no loop assigns a top-level
 *     scalar, and no top-level let reads a buffer the kernel writes), each top-level
 *     loop is a phase, preceded by copies of the lets before it;
 *   - a phase whose loop is parallel (or a vector loop without a reduction) with
 *     bounds in N and constants runs one work-item per iteration, collapsed with a
 *     perfectly nested inner loop (the C backend's collapse(2) rule): the grid;
 *   - anything else runs in one work-item (correct, not fast).
 * Every buffer lives in one device allocation laid out by the memory plan (the
 * workspace, then the inputs and the outputs), or in the weights buffer (the
 * weights file, uploaded once); a kernel parameter is (base, byte offset).
 * A kernel that calls a CPU library routine is refused, naming its node and op
 * (can_call answers 0 for every routine, so only ops that have no loop lowering get
 * there).
 */
#ifndef FM_EMIT_GPU_H
#define FM_EMIT_GPU_H
#include "emit/codegen.h"
#include "emit/emit.h"

typedef struct GpuPhase {
  KFn *fn;
  int step;                  /* the kernel's index in program order (scratch offsets) */
  const char *name;          /* the device kernel's name */
  const KStmt *grid, *inner; /* NULL grid: one work-item */
  struct GpuPhase *next;
} GpuPhase;

typedef struct FmGpu {
  const FmCDialect *d;
  const char *api;           /* "opencl", "cuda" */
  GpuPhase *phases, **tail;
  int nphases, step;
  KFn *last_fn;              /* the kernel whose tables were printed last */
} FmGpu;

/* Hooks shared by both backends. */
void fm_gpu_begin(FmModule *m, const FmCDialect *d, const char *api, const char *prelude);
void fm_gpu_const(FmModule *m, int k);
void fm_gpu_fn(FmModule *m, KFn *fn);
int fm_gpu_can_call(const char *routine);

/* Host code pieces, written into the host file f. */
void fm_gpu_host_common(FmModule *m, FILE *f);  /* io descs, fm_layout, weights, workspace_size */
/* The phase's launch size (work-items) as a C int64_t expression of N. */
void fm_gpu_host_trips(FmModule *m, FILE *f, const GpuPhase *ph);
/* Buffer parameter b of ph: the device base ("W" weights, "D" data) and its byte
   offset as a C expression (io[] from fm_layout for inputs and outputs). */
const char *fm_gpu_host_off(FmModule *m, const GpuPhase *ph, const KBuf *b, char *base);
/* The host copies after the kernels: outputs that are inputs, constants or repeats.
   Returns nonzero if output i is read back from the device. */
int fm_gpu_output_on_device(FmModule *m, int i);
void fm_gpu_host_copies(FmModule *m, FILE *f);
/* The device descriptor's functions over the host state S (select, init, name, error,
   profiling) and <name>_device; the model descriptor and the exported entry points. */
void fm_gpu_host_device(FmModule *m, FILE *f, const char *api);
void fm_gpu_host_desc(FmModule *m, FILE *f);
/* The device functions both dialects share (float16, sign, integer helpers). */
extern const char fm_gpu_helpers[];
/* The device source as a C string literal's contents, from the file at path. */
void fm_gpu_write_cstring(FILE *f, const char *path);
/* The fm_device_desc type (also in fewmul.h). */
extern const char fm_gpu_device_desc[];
/* Runs argv (argv[0] found on PATH) with output to log; exit code, 127 not found. */
int fm_gpu_spawn(const char *const *argv, const char *log);
const char *fm_gpu_first_error(Arena *a, const char *log);
#endif
