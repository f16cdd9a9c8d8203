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

/* ---- cmd_compile.c: the pipeline shared by compile, cost and bench ---- */
typedef struct FmCompileArgs {
  const char *model, *outdir, *name, *dump_after;
  FmShapeOverride shapes[16]; int nshapes;
  int weights, dump_kernel, no_so, no_fuse, quiet;
  int winograd;   /* --winograd: FM_WINO_AUTO (0), FM_WINO_OFF (-1), or a tile 2/4/6 */
} FmCompileArgs;
Graph *fm_driver_load(const char *path, const FmShapeOverride *shapes, int nshapes);
KProgram *fm_driver_lower(Graph *g, const char *dump_after, int dump_kernel, int no_fuse);
/* the same with a --winograd mode */
KProgram *fm_driver_lower_wino(Graph *g, const char *dump_after, int dump_kernel, int no_fuse, int winograd);
/* --winograd VALUE (auto | off | 2 | 4 | 6) as a mode; bad values are fm_usage */
int fm_driver_winograd_arg(const char *cmd, const char *v);
void fm_driver_compile(const FmCompileArgs *a);
/* Compiles an .onnx into a fresh temporary directory (registered for cleanup) and
   returns the directory; bench and run accept models this way. */
/* Parses one --shape value into shapes[*n] (at most 16). */
void fm_driver_add_shape(const char *cmd, Arena *a, FmShapeOverride *shapes, int *n, const char *v);
const char *fm_driver_compile_tmp(const char *onnx, const FmShapeOverride *shapes, int nshapes);

#include "io/io.h"

/* runtime/runtime.c: the loaded model's description (CLI only, not public API) */
const fm_model_desc *fm_rt_desc(const fm_model *m);

/* ---- commands ---- */
int fm_cmd_compile(int argc, char **argv);
int fm_cmd_run(int argc, char **argv);
int fm_cmd_info(int argc, char **argv);
int fm_cmd_cost(int argc, char **argv);
int fm_cmd_bench(int argc, char **argv);
/* train and eval: trainer/train_cmd.h */
#include "train_cmd.h"
#endif
