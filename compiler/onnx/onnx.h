/* onnx.h - ONNX models in and out of the graph IR (protobuf-c over onnx.proto).
 *
 * Loading turns a ModelProto into a Graph: initialisers and Constant nodes become
 * constant tensors (t->data), model-local functions are inlined (except the native
 * ai.fewmul ops, kept as single nodes), the batch dim stays symbolic (-1), and nodes
 * come out topologically sorted. Unknown ops do not fail here (n->op == OP_UNKNOWN,
 * op_type and domain kept) so fm_pass_check_ops can list them all at once. Every
 * problem with the file is an fm_fail naming the file, node or tensor.
 *
 *   FmShapeOverride sh;
 *   fm_shape_override_parse(&arena, "x=1x3x32x32", &sh);     // from --shape x=1x3x32x32
 *   FmLoadOpts lo = {.shapes = &sh, .nshapes = 1};
 *   Graph *g = fm_onnx_load("model.onnx", &lo);      // NULL opts: defaults
 *   ...
 *   FmWriteOpts wo = {.functions = fns, .nfunctions = k};
 *   fm_onnx_write(g, "out.onnx", &wo);               // atomic: temp file + rename
 *   fm_graph_free(g);
 */
#ifndef FM_ONNX_H
#define FM_ONNX_H
#include "ir/ir.h"

/* --shape name=1x3x32x32: fixes every dim of one graph input (the batch too). */
typedef struct FmShapeOverride {
  const char *name;
  int rank;
  int64_t dims[FM_MAXRANK];
} FmShapeOverride;

typedef struct FmLoadOpts {
  const FmShapeOverride *shapes; int nshapes;
  int inline_fewmul;     /* inline ai.fewmul ops that have a model-local function body */
  int no_external_data;  /* refuse external tensor data (the fuzzer sets this) */
} FmLoadOpts;

Graph *fm_onnx_load(const char *path, const FmLoadOpts *opts);
/* The same from memory; name_for_errors names the model in messages, and its
   directory is where external data files are looked up. */
Graph *fm_onnx_load_mem(const void *buf, size_t n, const char *name_for_errors,
                        const FmLoadOpts *opts);
/* One TensorProto file (.pb, as the ONNX backend tests ship their data) as a
   constant tensor of g (compiler/onnx/tensor_file.c). */
Tensor *fm_onnx_read_tensor(Graph *g, const char *path);
/* Parses "name=1x3x32x32" (also "name=1,3,32,32"); the name is copied into a.
   A bad spec is an fm_fail. */
void fm_shape_override_parse(Arena *a, const char *spec, FmShapeOverride *o);

/* A model-local function (FunctionProto): `body` is a graph whose nodes read and
   write tensors named as `inputs` / `outputs`; attributes of body nodes with
   Attr.ref set refer to the caller's attribute of that name. Constant tensors of
   the body become Constant nodes. */
typedef struct FmFunction {
  const char *domain, *name;
  const char *const *inputs; int ninputs;
  const char *const *outputs; int noutputs;
  const char *const *attributes; int nattributes;
  Graph *body;
} FmFunction;

typedef struct FmWriteOpts {
  const FmFunction *functions; int nfunctions;
  const char *producer;   /* default g->producer, else "fewmul" */
  int no_value_info;      /* leave out intermediate shapes */
} FmWriteOpts;

void fm_onnx_write(Graph *g, const char *path, const FmWriteOpts *opts);

/* A TensorProto file (.pb, as in the ONNX backend tests' test_data_set_*) as a new
   constant tensor of g (tensor_file.c). Fails naming the file. */
Tensor *fm_onnx_read_tensor(Graph *g, const char *path);
/* The serialised model in a malloc'ed buffer (caller frees); for tests and tools. */
void *fm_onnx_write_mem(Graph *g, const FmWriteOpts *opts, size_t *size);
#endif
