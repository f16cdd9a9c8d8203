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
#endif
