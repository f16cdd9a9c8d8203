/* ops.h - the per-op functions behind compiler/ir/ops.def.
 *
 * For every op X in ops.def, its family file (compiler/ops/<family>.c) defines
 *   void fm_infer_X(Graph *g, Node *n);  output dtypes and shapes (and, for
 *        shape-computing ops, constant or symbolic values: t->data / t->symval);
 *        fails with fm_fail("node '%s' (X): ...") on invalid attributes or shapes
 *   void fm_lower_X(KB *b, Node *n);     the kernel IR (kernel.h) computing it
 * Both are looked up through fm_ops[]; a missing one means "unsupported".
 */
#ifndef FM_OPS_H
#define FM_OPS_H
#include "ir/ir.h"
#include "kernel/kernel.h"

typedef void (*FmInferFn)(Graph *g, Node *n);
typedef void (*FmLowerFn)(KB *b, Node *n);
typedef struct FmOpInfo {
  const char *name, *domain, *family;
  FmInferFn infer;
  FmLowerFn lower;
} FmOpInfo;
extern const FmOpInfo fm_ops[OP_COUNT];

#define OP(id, domain, family) \
  void fm_infer_##id(Graph *g, Node *n); \
  void fm_lower_##id(KB *b, Node *n);
#include "ir/ops.def"
#undef OP

/* Helpers shared by op files (ops/util.c). */
Tensor *fm_in(Node *n, int i);            /* n->in[i], failing clearly if absent */
void fm_set_shape(Tensor *t, FmDType dt, int rank, const int64_t *dims);
void fm_same_shape(Tensor *dst, const Tensor *src);
int fm_bcast_shape(Node *n, int nin, Tensor **ins, int64_t *out_dims); /* returns rank; fails */
int64_t fm_norm_axis(Node *n, int64_t axis, int rank);                  /* negative -> +rank; fails */
const void *fm_const_data(Node *n, int i, const char *what);            /* input i must be constant */
int64_t fm_const_int(const Tensor *t, int64_t k);                       /* element k as int64 */
double fm_const_f(const Tensor *t, int64_t k);                          /* element k as double */
/* Applies n->fused_act (Relu, LeakyRelu alpha=act_alpha, Clip [act_alpha, act_beta],
   Sigmoid, Tanh; set by passes/fuse_act.c) to a value about to be stored. Ops that
   accept fusion (Conv, ConvTranspose, Gemm, MatMul, BatchNormalization, Add) call it. */
KExpr *fm_apply_act(Node *n, KExpr *v);

/* Compile-time values of small integer tensors (ops/shape.c). Shape arithmetic such as
   Shape -> Gather -> Unsqueeze -> Concat -> Reshape resolves during inference: an output
   gets t->data when every element is a constant, else t->symval when every element is
   a constant or k*N. In symval and in the value arrays below an element is a dim of the
   ir.h encoding (>= 0, or -k for k*N), or FM_SYM_LIT(c) for a known NEGATIVE constant c
   (the -1 of a Reshape target, which the dim encoding cannot hold). */
#define FM_FOLD_MAX 4096                           /* largest tensor folded during inference */
#define FM_SYM_LIT(c) (INT64_MIN / 2 + (c))        /* c in [-(2^62-1), -1] */
static inline int fm_sym_is_lit(int64_t v) { return v < INT64_MIN / 2 && v != INT64_MIN; }
static inline int64_t fm_sym_lit_value(int64_t v) { return v - INT64_MIN / 2; }
/* Per-element values of an integer/bool tensor with data or symval and at most
   FM_FOLD_MAX elements (arena array), else NULL. */
const int64_t *fm_values(Graph *g, const Tensor *t);
/* Sets t's data (all constant) or symval from vals (t's dtype and shape already set);
   does nothing if some element is FM_DIM_UNKNOWN. */
void fm_set_values(Graph *g, Tensor *t, const int64_t *vals);
/* Folds output oi of a data-movement node: its element k is element idx[k] (idx NULL:
   k) of input src[k] (src NULL: input 0). Sets data when those inputs are constant,
   symval when they have values; does nothing for outputs over FM_FOLD_MAX elements. */
void fm_fold_elems(Graph *g, Node *n, int oi, const int *src, const int64_t *idx);
/* For Identity, Cast and the like: out (dtype and shape set, same numel as in) gets
   in's constant data converted to out's dtype, or in's symval when out is an integer. */
void fm_copy_values(Graph *g, Tensor *out, const Tensor *in);
/* Called at the end of an infer function: when every input of n is constant and every
   output has at most FM_FOLD_MAX elements, runs n's own lowering in the interpreter
   now and sets the outputs' data (ops/binary.c). */
void fm_fold_small(Graph *g, Node *n);
#endif
