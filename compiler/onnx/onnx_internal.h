/* onnx_internal.h - shared by the loader's files:
 *   onnx_load.c    model, graph inputs/outputs, node lists, attributes
 *   onnx_tensor.c  TensorProto contents (typed, raw, external) and Constant nodes
 *   onnx_func.c    model-local functions (inlining) and the protobuf nesting check
 */
#ifndef FM_ONNX_INTERNAL_H
#define FM_ONNX_INTERNAL_H
#include "onnx/onnx.h"
#include "onnx.pb-c.h"

#define S(s) ((s) ? (s) : "")

/* name -> pointer, open addressing, memory from an arena. */
typedef struct NameMap { const char **keys; void **vals; int cap, n; Arena *a; } NameMap;
void *nm_get(const NameMap *m, const char *key);
void nm_put(NameMap *m, const char *key, void *val);

typedef struct LdFunc {
  const Onnx__FunctionProto *fp;
  const char *domain;                  /* "" for ai.onnx */
  Onnx__AttributeProto **defaults;     /* FunctionProto.attribute_proto (field 11), newer ONNX */
  int ndefaults;
  int active;                          /* being inlined: a second entry is recursion */
} LdFunc;

typedef struct Ld {
  Graph *g;
  const char *file;                    /* the model, for messages */
  const char *dir;                     /* where external data lives; NULL: refused */
  const FmLoadOpts *opts;
  Onnx__ModelProto *m;
  NameMap tensors;                     /* every tensor of g by name */
  NameMap nodes;                       /* node names given out */
  LdFunc *fns; int nfns;
  int depth;                           /* function inlining depth */
  long nnodes;                         /* nodes and function instances made */
  size_t mem_cap;                      /* arena bound while making nodes: a few bytes of
                                          nested function calls must not expand to gigabytes */
  int batch_named;                     /* g->batch_name came from the model */
  int batch_sym;                       /* some input kept the symbolic batch */
} Ld;

/* A naming scope: the main graph (prefix NULL) or one inlined function instance. */
typedef struct Scope {
  NameMap *names;                      /* name -> Tensor* (ld_absent for a missing input) */
  const char *prefix;                  /* calling node's name inside a function */
  const Attr *cattrs; int ncattrs;     /* the calling node's attributes */
  const LdFunc *fn;
  char *const *fouts; Tensor **fout_t; char *fout_done; int nfout; /* formal outputs */
} Scope;

extern Tensor ld_absent;               /* marks a formal input the caller left out */
#define LD_MAX_NODES 2000000L
#define LD_MAX_DEPTH 64

/* onnx_load.c */
void ld_count_node(Ld *L);             /* fails past LD_MAX_NODES or mem_cap */
void ld_nodes(Ld *L, Onnx__NodeProto *const *nodes, size_t n, Scope *sc);
Tensor *ld_fresh(Ld *L, const char *prefix, const char *name);
int ld_opset(Ld *L, const Scope *sc, const char *domain);
int ld_attr(Ld *L, const Onnx__AttributeProto *a, const char *name, const char *where, Attr *out);
/* onnx_tensor.c */
void ld_tensor(Ld *L, const Onnx__TensorProto *tp, Tensor *t, const char *what);
void ld_constant(Ld *L, const char *name, const Onnx__NodeProto *np, const Attr *attrs, int na,
                 Tensor *out);
/* onnx_func.c */
void ld_funcs_init(Ld *L);
void ld_funcs_free(Ld *L);
LdFunc *ld_find_func(Ld *L, const char *domain, const char *op_type);
void ld_inline(Ld *L, LdFunc *f, const char *callname, const char *op_type, Tensor **ins, int nin,
               Tensor **outs, int nout, const Attr *attrs, int na);
int ld_pb_nesting_ok(const uint8_t *p, size_t n);
#endif
