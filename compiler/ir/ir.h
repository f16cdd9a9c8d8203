/* ir.h - the graph IR: tensors, nodes, graphs; arenas; the compiler's error path.
 *
 * A Graph owns an Arena; everything a pass allocates comes from it and is freed
 * at once with fm_graph_free. Errors in user input or models go through fm_fail(),
 * which longjmps to the innermost FM_TRY (the driver prints the message and exits 1;
 * the fuzzer and tests catch it). Internal bugs use assert().
 *
 *   FmTry t;
 *   FM_TRY(&t) {
 *     Graph *g = fm_onnx_load("model.onnx", NULL);
 *     fm_pass_shapes(g);
 *     fm_try_pop(&t);
 *   } else {
 *     fprintf(stderr, "fewmul: error: %s\n", fm_errmsg());
 *   }
 *
 * Dimensions: a dim is an int64. A dim >= 0 is a known size. The batch dimension
 * may stay symbolic: a dim < 0 (and != FM_DIM_UNKNOWN) means (-dim) * N where N is
 * the batch size given at run time (so -1 is N itself, -2 is 2N). Ops that would
 * need anything else of a symbolic dim fail with a clear error.
 */
#ifndef FM_IR_H
#define FM_IR_H
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- arena ---- */
typedef struct ArenaBlock ArenaBlock;
typedef struct Arena { ArenaBlock *head; size_t total; } Arena;
void *fm_alloc(Arena *a, size_t n);            /* zeroed, 16-byte aligned */
char *fm_strdup(Arena *a, const char *s);
char *fm_sprintf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fm_arena_free(Arena *a);

/* ---- errors ---- */
typedef struct FmTry { jmp_buf jb; struct FmTry *prev; } FmTry;
void fm_try_push(FmTry *t);
void fm_try_pop(FmTry *t);
/* FmTry t; FM_TRY(&t) { body...; fm_try_pop(&t); } else { error: fm_errmsg() }
   fm_fail pops the handler before it jumps; with no handler it prints
   "fewmul: error: MSG", removes registered partial outputs and exits 1. */
#define FM_TRY(t) fm_try_push(t); if (setjmp((t)->jb) == 0)
_Noreturn void fm_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *fm_errmsg(void);
/* No partial outputs (cleanup.c): paths registered here are removed, last registered
   first, if the process fails (fm_cleanup_run) or is interrupted; a tree is removed
   with everything in it. A child registered with fm_cleanup_child (the leader of its
   own process group, e.g. the C compiler; 0: none) is stopped and reaped first.
   fm_cleanup_signals makes SIGINT, SIGTERM and SIGHUP do this, then end the process
   by the same signal (signals ignored at startup stay ignored). */
void fm_cleanup_add(const char *path);
void fm_cleanup_add_tree(const char *dir);
void fm_cleanup_forget(const char *path);
void fm_cleanup_child(int pid);
void fm_cleanup_run(void);
void fm_cleanup_signals(void);

/* ---- data types (ONNX TensorProto.DataType numbering) ---- */
typedef enum {
  FM_UNDEF = 0, FM_F32 = 1, FM_U8 = 2, FM_I8 = 3, FM_U16 = 4, FM_I16 = 5, FM_I32 = 6,
  FM_I64 = 7, FM_STRING = 8, FM_BOOL = 9, FM_F16 = 10, FM_F64 = 11, FM_U32 = 12, FM_U64 = 13,
} FmDType;
size_t fm_dtype_size(FmDType t);       /* 0 for unsupported */
const char *fm_dtype_name(FmDType t);  /* "float32", "int64", ... */
const char *fm_dtype_ctype(FmDType t); /* "float", "int64_t", "uint8_t" (bool -> "uint8_t") */

#define FM_MAXRANK 8
#define FM_DIM_UNKNOWN INT64_MIN
static inline int fm_dim_sym(int64_t d) { return d < 0 && d != FM_DIM_UNKNOWN; }

/* ---- checked arithmetic ----
   Every size, stride and offset the compiler computes from a model goes through these
   (or is bounded by a tensor size that did): they return 0 when the exact result does
   not fit int64, and the caller refuses the model with fm_fail naming the node or file.
     int64_t n;
     if (!fm_mul_ok(rows, cols, &n)) fm_fail("node '%s' (Tile): size overflows", name);
   Limits: one tensor holds at most FM_MAX_TENSOR_BYTES bytes (for a tensor with the
   symbolic batch: per unit of N); the batch-dependent sizes of a compiled model are
   checked again at run time against the largest N the model supports. */
#define FM_MAX_TENSOR_BYTES (INT64_C(1) << 40)
static inline int fm_mul_ok(int64_t a, int64_t b, int64_t *r) { return !__builtin_mul_overflow(a, b, r); }
static inline int fm_add_ok(int64_t a, int64_t b, int64_t *r) { return !__builtin_add_overflow(a, b, r); }
static inline int fm_sub_ok(int64_t a, int64_t b, int64_t *r) { return !__builtin_sub_overflow(a, b, r); }

/* ---- tensors ---- */
typedef struct Node Node;
typedef struct Graph Graph;
typedef struct Tensor {
  const char *name;
  FmDType dtype;          /* FM_UNDEF until known */
  int rank;               /* -1 until known */
  int64_t dims[FM_MAXRANK];
  void *data;             /* constant contents (initialiser or folded), else NULL */
  int64_t *symval;        /* small int64 tensors whose values involve N (e.g. Shape(x)):
                             per element a dim in the encoding above; NULL otherwise */
  Node *producer;         /* NULL for graph inputs and constants */
  int is_input, is_output;
  int id;                 /* index in g->tensors */
  void *aux;              /* per-pass scratch */
} Tensor;

int64_t fm_numel(const Tensor *t);     /* -1 if any dim unknown or symbolic; fails on overflow */
size_t fm_nbytes(const Tensor *t);     /* numel * dtype size; 0 if unknown; fails on overflow */
/* Fails ("tensor 'NAME': ...") unless t's element count and byte size fit
   FM_MAX_TENSOR_BYTES (per unit of N for a symbolic batch). Returns the byte count
   (the per-N coefficient when symbolic; -1 when a dim is unknown). */
int64_t fm_check_size(const Tensor *t);
int fm_shape_known(const Tensor *t);   /* rank and every dim known or symbolic */
int fm_has_sym(const Tensor *t);
const char *fm_shape_str(Arena *a, const Tensor *t); /* "1x3xNx32", "?" */

/* ---- attributes ---- */
typedef enum { FA_FLOAT = 1, FA_INT, FA_STRING, FA_TENSOR, FA_GRAPH, FA_FLOATS, FA_INTS, FA_STRINGS } AttrType;
typedef struct Attr {
  const char *name;
  AttrType type;
  float f;
  int64_t i;
  const char *s;
  float *floats; int64_t *ints; const char **strings; int n; /* list length */
  Tensor *t;
  Graph *g;
  const char *ref;        /* in a function body (FmFunction): the caller's attribute it refers to */
} Attr;

/* ---- ops: one table, compiler/ir/ops.def ---- */
typedef enum {
#define OP(id, domain, family) OP_##id,
#include "ir/ops.def"
#undef OP
  OP_COUNT
} OpKind;
extern const char *const fm_op_names[OP_COUNT];
OpKind fm_op_lookup(const char *domain, const char *op_type); /* OP_UNKNOWN if none */

/* ---- nodes ---- */
struct Node {
  OpKind op;
  const char *name;       /* never NULL: a generated "op_type_K" if the model has none */
  const char *op_type, *domain; /* as in the model ("" domain = ai.onnx) */
  int opset;              /* opset version of the node's domain */
  Tensor **in; int nin;   /* an absent optional input is NULL */
  Tensor **out; int nout;
  Attr *attrs; int nattrs;
  int fused_act;          /* OpKind of an activation fused into this op, or 0 */
  float act_alpha, act_beta; /* its parameters (LeakyRelu alpha, Clip min/max, ...) */
  int dead;               /* set by passes; fm_graph_compact removes dead nodes */
  int id;
  void *aux;
};

Attr *fm_attr(const Node *n, const char *name);          /* NULL if absent */
int64_t fm_attr_i(const Node *n, const char *name, int64_t def);
float fm_attr_f(const Node *n, const char *name, float def);
const char *fm_attr_s(const Node *n, const char *name, const char *def);
/* list attribute: copies up to max ints into out and returns the count; -1 when absent */
int fm_attr_ints(const Node *n, const char *name, int64_t *out, int max);
/* Adding attributes to a node built in code (export, passes, tests); values are
   copied into the graph's arena. */
Attr *fm_attr_add(Graph *g, Node *n, const char *name, AttrType type);
void fm_set_attr_i(Graph *g, Node *n, const char *name, int64_t v);
void fm_set_attr_f(Graph *g, Node *n, const char *name, float v);
void fm_set_attr_s(Graph *g, Node *n, const char *name, const char *v);
void fm_set_attr_ints(Graph *g, Node *n, const char *name, int k, const int64_t *v);
void fm_set_attr_floats(Graph *g, Node *n, const char *name, int k, const float *v);

/* ---- graph ---- */
struct Graph {
  Arena arena;
  const char *name;
  Node **nodes; int nnodes, capnodes;       /* topological order after fm_graph_toposort */
  Tensor **tensors; int ntensors, captensors;
  Tensor **inputs; int ninputs;             /* non-constant graph inputs, in model order */
  Tensor **outputs; int noutputs;
  int opset;                                /* ai.onnx opset of the model */
  int ir_version;
  const char *producer;
  const char *batch_name;                   /* name of the symbolic batch dim ("N" if none) */
};

Graph *fm_graph_new(void);
void fm_graph_free(Graph *g);
Tensor *fm_tensor_new(Graph *g, const char *name);           /* unique name required */
Tensor *fm_tensor_find(Graph *g, const char *name);          /* NULL if absent */
Tensor *fm_tensor_const(Graph *g, const char *name, FmDType t, int rank, const int64_t *dims,
                        const void *data); /* copies data; name NULL -> generated */
Node *fm_node_new(Graph *g, OpKind op, const char *name, int nin, int nout);
void fm_graph_toposort(Graph *g);            /* fails on a cycle */
void fm_graph_compact(Graph *g);             /* drop dead nodes, renumber */
void fm_graph_verify(Graph *g);              /* internal consistency; asserts */
void fm_graph_dump(Graph *g, FILE *f);       /* human-readable IR */
int fm_tensor_uses(Graph *g, const Tensor *t); /* number of node inputs + graph outputs using t */
void fm_replace_uses(Graph *g, Tensor *from, Tensor *to);

#endif
