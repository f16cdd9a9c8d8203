/* passes.h - the graph pass pipeline. Each pass is `void fm_pass_X(Graph *g)` in
 * passes/X.c; fm_run_passes calls them in order (passes/pipeline.c), verifying the
 * graph between passes and printing it after the pass named by --dump-after.
 *
 *   Graph *g = fm_onnx_load(path, &lopts);
 *   FmPassOpts po = {.dump_after = "fold"};
 *   fm_run_passes(g, &po);             // check_ops, shapes, fold, noop, unpack, fold_bn, fuse_act, weights, winograd, dce
 *   KProgram *p = fm_lower_graph(g);   // passes/lower.c: one KFn per node
 */
#ifndef FM_PASSES_H
#define FM_PASSES_H
#include "ir/ir.h"
#include "kernel/kernel.h"

typedef struct FmPassOpts {
  const char *dump_after;   /* pass name, "all", or NULL */
  FILE *dump;               /* default stderr */
  int no_fuse;              /* skip BN folding and activation fusion */
  int specialize;           /* weights pass: FM_SPECIALIZE_AUTO / _ALL / _NONE */
  int winograd;             /* 3x3 Convs as Winograd: FM_WINO_AUTO (cost model), FM_WINO_OFF, or tile 2/4/6 */
} FmPassOpts;
/* auto: rewrite a Conv/Gemm/MatMul to its add/shift kind where the pass measures it
   faster; all: wherever the weights qualify; none: never (`--specialize=`). */
enum { FM_SPECIALIZE_AUTO = 0, FM_SPECIALIZE_ALL, FM_SPECIALIZE_NONE };
enum { FM_WINO_OFF = -1, FM_WINO_AUTO = 0 };

void fm_run_passes(Graph *g, const FmPassOpts *o);
extern const char *const fm_pass_names[]; /* NULL-terminated, in pipeline order */

void fm_pass_check_ops(Graph *g); /* every unsupported op and its node, at once */
void fm_pass_shapes(Graph *g);    /* shape and type inference (per-op fm_infer_X) */
void fm_pass_fold(Graph *g);      /* constant folding through the kernel interpreter */
void fm_pass_noop(Graph *g);      /* Identity, inference Dropout, redundant Reshape */
void fm_pass_unpack(Graph *g);    /* ai.fewmul weight ops with constant weights -> Conv/Gemm (weights.c) */
void fm_pass_fold_bn(Graph *g);   /* BatchNormalization into a preceding Conv/Gemm */
void fm_pass_fuse_act(Graph *g);  /* Relu/LeakyRelu/Clip/... into the producing op */
void fm_pass_weights(Graph *g);   /* ternary / power-of-two Conv/Gemm/MatMul -> ai.fewmul kinds (weights.c) */
void fm_pass_weights_mode(Graph *g, int specialize); /* FM_SPECIALIZE_*; fm_pass_weights is _AUTO */
void fm_pass_winograd(Graph *g, const FmPassOpts *o); /* 3x3 Convs -> WinogradConv (winograd.c) */
void fm_pass_dce(Graph *g);       /* nodes whose outputs nobody uses */

/* Lowers one node (shapes known) to a KFn named `name`. */
KFn *fm_lower_node(Graph *g, Node *n, const char *name);
#endif
