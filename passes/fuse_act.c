/* fuse_act.c - an activation that reads one op's output, and is that output's only
 * reader, is applied inside the op as it stores its result (n->fused_act). */
#include "passes/passes.h"
#include "ops/ops.h"
#include <float.h>

static int fusable_producer(OpKind op) {
  return op == OP_Conv || op == OP_ConvTranspose || op == OP_Gemm || op == OP_MatMul ||
         op == OP_BatchNormalization || op == OP_Add;
}

void fm_pass_fuse_act(Graph *g) {
  for (int i = 0; i < g->nnodes; i++) {
    Node *a = g->nodes[i];
    if (a->dead || !a->in[0] || a->nin < 1) continue;
    float alpha = 0, beta = 0;
    switch (a->op) {
    case OP_Relu: case OP_Sigmoid: case OP_Tanh: break;
    case OP_LeakyRelu: alpha = fm_attr_f(a, "alpha", 0.01f); break;
    case OP_Clip:
      if (a->opset < 11) {
        alpha = fm_attr_f(a, "min", -FLT_MAX), beta = fm_attr_f(a, "max", FLT_MAX);
      } else {
        Tensor *lo = a->nin > 1 ? a->in[1] : NULL, *hi = a->nin > 2 ? a->in[2] : NULL;
        if ((lo && (!lo->data || lo->dtype != FM_F32)) || (hi && (!hi->data || hi->dtype != FM_F32))) continue;
        alpha = lo ? *(float *)lo->data : -FLT_MAX;
        beta = hi ? *(float *)hi->data : FLT_MAX;
      }
      break;
    default: continue;
    }
    Tensor *x = a->in[0];
    Node *p = x->producer;
    if (!p || p->dead || p->fused_act || !fusable_producer(p->op) || p->nout != 1) continue;
    if (x->is_output || fm_tensor_uses(g, x) != 1 || x->dtype != FM_F32) continue;
    p->fused_act = a->op;
    p->act_alpha = alpha, p->act_beta = beta;
    Tensor *y = a->out[0];
    y->producer = p;
    x->producer = NULL;
    p->out[0] = y;
    a->dead = 1;
  }
  fm_graph_compact(g);
}
