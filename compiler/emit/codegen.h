/* codegen.h - whole-model code generation: the workspace memory plan
 * (passes/memplan.c) and the model writer (emit/codegen.c), which drives a backend
 * (emit.h: FmBackend, e.g. the C backend of emit/backend_c.c) to <name>.c / .h / .so.
 *
 *   Graph *g = fm_onnx_load("m.onnx", NULL);
 *   fm_run_passes(g, &(FmPassOpts){0});
 *   KProgram *p = fm_lower_graph(g);
 *   FmCodegenOpts o = {.outdir = "out", .name = "model", .source = "m.onnx"};
 *   fm_codegen(p, &o);   // out/model.c, out/model.h, out/model.so (+ out/model.weights)
 *
 * Sizes that depend on the batch N are linear functions a + b*N of bytes (FmLin).
 * The plan gives every intermediate tensor and every kernel scratch buffer an
 * offset (also an FmLin) in one workspace; both components are multiples of 64, so
 * every buffer is 64-byte aligned for every N. Offsets are chosen so that two buffers
 * alive at the same time are disjoint for every N >= 0 (componentwise ordering of
 * the linear offsets), and the workspace size is the maximum over the buffer ends,
 * which is exact for every N.
 */
#ifndef FM_CODEGEN_H
#define FM_CODEGEN_H
#include "ir/ir.h"
#include "kernel/kernel.h"
#include "emit/emit.h"

/* ---- memplan.c ---- */
typedef struct FmLin { int64_t a, b; } FmLin; /* a + b*N */
static inline int64_t fm_lin_at(FmLin l, int64_t n) { return l.a + l.b * n; }

/* One buffer to place: its size and its lifetime [first, last] in steps (kernels). */
typedef struct FmMemItem {
  FmLin size;          /* bytes; rounded up to 64 per component by the planner */
  int first, last;
  FmLin off;           /* result */
} FmMemItem;

/* Assigns items[i].off (greedy: biggest first, lowest non-conflicting slot among the
   ends of conflicting buffers). Returns the number of non-dominated ends written to
   ends[] (capacity n + 1); the workspace size at N is max over ends (0 if none). */
int fm_memplan_items(FmMemItem *items, int n, FmLin *ends);

typedef struct FmMemPlan {
  FmLin *tensor_off;   /* by Tensor.id; a < 0 when the tensor is not in the workspace */
  int ntensors;
  FmLin **scratch_off; /* [kernel index in program order][KBuf.id] (KBUF_SCRATCH only) */
  int nfns;
  FmLin *ends; int nends; /* workspace size(N) = max over ends, at least 64 */
  int nitems;
  FmLin naive;         /* sum of all sizes: what no reuse would cost */
  int64_t max_batch;   /* largest N for which every size and offset fits FM_MAX_PLAN_BYTES */
} FmMemPlan;
#define FM_MAX_PLAN_BYTES (INT64_MAX / 4) /* headroom for index arithmetic in the kernels */

/* Plans every non-constant intermediate tensor and scratch buffer of p. Graph inputs,
   outputs and constants are not in the workspace. Fails (fm_fail) on a tensor whose
   size is not linear in N (two symbolic dims) or unknown.
   Later: an output may alias an input dying at the same kernel (in-place). */
FmMemPlan *fm_memplan(KProgram *p);
size_t fm_memplan_size(const FmMemPlan *mp, int64_t batch); /* 0 when batch > max_batch */

/* Size in bytes of tensor t as a linear function of N; fails if not linear. */
FmLin fm_tensor_lin_bytes(const Tensor *t);

/* ---- codegen.c ---- */
typedef struct FmCodegenOpts {
  const FmBackend *backend; /* default &fm_backend_c */
  const char *march;      /* target ISA flag for the generated code's build (-march=VALUE);
                             default "native" (see fm_target_find, kernel.h) */
  const char *outdir;     /* created if missing */
  const char *name;       /* C identifier prefix and file stem; default "model" */
  const char *source;     /* model path, written into the header comment */
  int weights;            /* FM_WEIGHTS_AUTO / _EMBED / _FILE */
  int no_so;              /* write .c/.h (and weights) only */
  int quiet;
} FmCodegenOpts;
enum { FM_WEIGHTS_AUTO = 0, FM_WEIGHTS_EMBED, FM_WEIGHTS_FILE };
/* Above this many bytes of weights, FM_WEIGHTS_AUTO writes a weights file. */
#define FM_EMBED_LIMIT (64u << 20)

/* What a backend's hooks see (emit.h): the program, its memory plan and constants,
   and the module's open source file. */
struct FmModule {
  KProgram *p;
  Graph *g;
  const FmCodegenOpts *o;
  const char *name;           /* C identifier prefix */
  FmMemPlan *mp;
  int file_weights;           /* constants live in <name>.weights */
  Tensor **consts; int nconsts; /* constants in the order they are emitted */
  int *const_of;              /* by tensor id: index in consts or -1 */
  uint64_t *blob_off;         /* weights file: section offsets */
  uint64_t blob_total, checksum;
  FILE *f;                    /* the module's source (<name><file_ext>) */
  void *priv;                 /* the backend's own state (arena-allocated) */
};
/* Text helpers for backends: "128", "64 * N", "128 + 64 * N"; text safe inside a
   C comment; "[N, 3, 32, 32]". All allocated in a. */
const char *fm_lin_text(Arena *a, FmLin l);
const char *fm_comment_safe(Arena *a, const char *s);
const char *fm_model_shape_str(Arena *a, const Tensor *t);
/* "static const fm_io_desc <name>_<what>[n] = {...};" for the C-family backends
   (backend_c.c, emit_gpu.c); nothing when n is 0. */
void fm_write_io_desc(FmModule *G, FILE *f, const char *what, Tensor **ts, int n);

/* Writes <outdir>/<name>.{c,h[,weights],so}; fails with fm_fail and leaves no partial
   outputs (temporary names, renamed at the end). */
void fm_codegen(KProgram *p, const FmCodegenOpts *o);

/* Weights file layout (little-endian): a 64-byte header, then one 64-byte aligned
   section per constant tensor, at offsets compiled into the generated code. */
#define FM_WEIGHTS_MAGIC "FMW1"
typedef struct FmWeightsHeader {
  char magic[4];
  uint32_t count;        /* number of sections */
  uint64_t total;        /* file size in bytes */
  uint64_t checksum;     /* fm_weights_checksum of the bytes after the header */
  uint8_t pad[40];
} FmWeightsHeader;
/* FNV-1a over 64-bit words (tail bytes one by one). The runtime checks it on load. */
uint64_t fm_weights_checksum(const void *data, size_t n);

/* Helpers shared with the driver. */
int fm_is_c_ident(const char *s);
#endif
