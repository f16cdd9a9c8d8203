/* driver.h - the `fewmul` command line: one file per command, shared helpers.
 *
 * Failure conventions: a bad command line is fm_usage() (one line, exit 2); any
 * other failure is fm_fail() (one line "fewmul: error: ...", partial outputs
 * removed through fm_cleanup_add, exit 1).
 */
#ifndef FM_DRIVER_H
#define FM_DRIVER_H
#include "ir/ir.h"
#include "kernel/kernel.h"
#include "onnx/onnx.h"
#include "fewmul.h"

/* ---- main.c: argument helpers ---- */
_Noreturn void fm_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* If argv[*i] is `name` or `name=V`, returns V (taking argv[*i+1] when no '='),
   advancing *i; NULL if argv[*i] is another argument. A missing value is fm_usage. */
const char *fm_opt(const char *cmd, int argc, char **argv, int *i, const char *name);
int fm_flag(char **argv, int i, const char *name); /* exact match of a valueless flag */
int64_t fm_parse_int(const char *cmd, const char *flag, const char *v, int64_t lo, int64_t hi);
int fm_wants_help(int argc, char **argv);
int fm_has_suffix(const char *s, const char *suffix);
/* mkdir -p for one level; registers a created directory for cleanup. */
void fm_make_dir(const char *path);
/* Removes the files directly under dir, then dir (temporary compile outputs). */
void fm_remove_tree(const char *dir);
/* Bytes of a model input/output at batch; fm_fail if they do not fit in memory. */
size_t fm_driver_io_bytes(const fm_io_desc *d, int64_t batch);
/* fm_set_threads(m, n), with a note on stderr when the runtime clamped the count. */
void fm_driver_threads(fm_model *m, int64_t n);

/* ---- cmd_compile.c: the pipeline shared by compile, cost and bench ---- */
/* What the code is generated for and how: --target, --emit, --conv, --gemm,
   --specialize, --winograd (zero: native, c, auto, auto, auto, auto). */
typedef struct FmBuildFlags {
  const char *target, *emit;
  int conv, gemm;      /* FmLowerChoice (kernel.h) */
  int specialize;      /* FM_SPECIALIZE_* (passes.h) */
  int winograd;        /* FM_WINO_AUTO (0), FM_WINO_OFF (-1), or a tile 2/4/6 (passes.h) */
} FmBuildFlags;
/* If argv[*i] is one of the flags above, stores it in f (advancing *i past a separate
   value) and returns 1; a bad value is fm_usage naming the choices. */
int fm_driver_build_flag(const char *cmd, int argc, char **argv, int *i, FmBuildFlags *f);
extern const char fm_driver_build_help[]; /* their lines for --help */

typedef struct FmCompileArgs {
  const char *model, *outdir, *name, *dump_after;
  FmShapeOverride shapes[16]; int nshapes;
  int weights, dump_kernel, no_so, no_fuse, quiet;
  FmBuildFlags build;
} FmCompileArgs;
Graph *fm_driver_load(const char *path, const FmShapeOverride *shapes, int nshapes);
/* Passes and lowering for build flags bf (NULL: defaults). */
KProgram *fm_driver_lower(Graph *g, const char *dump_after, int dump_kernel, int no_fuse, const FmBuildFlags *bf);
void fm_driver_compile(const FmCompileArgs *a);
/* Compiles an .onnx into a fresh temporary directory (registered for cleanup) and
   returns the directory; bench and run accept models this way. */
/* Parses one --shape value into shapes[*n] (at most 16). */
void fm_driver_add_shape(const char *cmd, Arena *a, FmShapeOverride *shapes, int *n, const char *v);
const char *fm_driver_compile_tmp(const char *onnx, const FmShapeOverride *shapes, int nshapes);
/* Removes a directory of fm_driver_compile_tmp (no longer needed) and forgets it. */
void fm_driver_tmp_done(const char *dir);
/* `--jit`: the .onnx loaded, lowered and compiled in-process by the LLVM JIT
   (compiler/jit/jit.h); prints the compile time unless quiet. */
fm_model *fm_driver_jit(const char *onnx, const FmShapeOverride *shapes, int nshapes, int quiet);

#include "io/io.h"

/* runtime/runtime.c: the loaded model's description (CLI only, not public API) */
const fm_model_desc *fm_rt_desc(const fm_model *m);

/* ---- commands ---- */
int fm_cmd_compile(int argc, char **argv);
int fm_cmd_run(int argc, char **argv);
int fm_cmd_info(int argc, char **argv);
int fm_cmd_cost(int argc, char **argv);
int fm_cmd_bench(int argc, char **argv);
/* cmd_eval.c: test accuracy of a model on a data set of the trainer (trainer/data.h) */
int fm_cmd_eval(int argc, char **argv);
/* train: trainer/train_cmd.h */
#include "train_cmd.h"
/* cost_json.c: `fewmul cost --json` */
const char *fm_cost_kind(const Node *n);
void fm_json_str(FILE *f, const char *s);

#endif
