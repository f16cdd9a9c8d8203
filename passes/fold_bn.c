/* fold_bn.c - folds an inference BatchNormalization into the Conv or Gemm before it:
 *   y = (conv(x, W) + b - mean) * s + beta,  s = gamma / sqrt(var + eps)
 *     = conv(x, W * s) + (b - mean) * s + beta
 * so the BN costs nothing at run time. Needs constant weights and BN parameters and
 * a conv output that nothing else reads. */
#include "passes/passes.h"
#include "ops/ops.h"
#include <math.h>
#include <string.h>

static int all_const(Node *n, int from, int to) {
  for (int j = from; j < to; j++)
    if (j >= n->nin || !n->in[j] || !n->in[j]->data || n->in[j]->dtype != FM_F32) return 0;
  return 1;
}

/* Output channel m of weight w: for Conv, dim 0 (contiguous blocks of `inner`);
   for Gemm, row m when transB=1, column m when transB=0. */
static void fold(Graph *g, Node *p, Node *bn) {
  Tensor *w = p->in[1];
  const float *gamma = bn->in[1]->data, *beta = bn->in[2]->data;
  const float *mean = bn->in[3]->data, *var = bn->in[4]->data;
  float eps = fm_attr_f(bn, "epsilon", 1e-5f);
  int64_t m = bn->in[1]->dims[0];
  int gemm = p->op == OP_Gemm;
  int transB = gemm ? (int)fm_attr_i(p, "transB", 0) : 0;
  int64_t numel = fm_numel(w), inner = numel / m;
  Tensor *nw = fm_tensor_const(g, fm_sprintf(&g->arena, "%s_bnw", w->name), FM_F32, w->rank, w->dims, w->data);
  float *W = nw->data;
  float bias[m > 0 ? m : 1];
  const float *ob = p->nin > 2 && p->in[2] ? p->in[2]->data : NULL;
  float alpha = gemm ? fm_attr_f(p, "alpha", 1) : 1, betaC = gemm ? fm_attr_f(p, "beta", 1) : 1;
  for (int64_t c = 0; c < m; c++) {
    float s = gamma[c] / sqrtf(var[c] + eps);
    if (!gemm || transB)
      for (int64_t k = 0; k < inner; k++) W[c * inner + k] *= s * alpha;
    else
      for (int64_t k = 0; k < inner; k++) W[k * m + c] *= s * alpha;
    float b0 = ob ? ob[c] * betaC : 0;
    bias[c] = (b0 - mean[c]) * s + beta[c];
  }
  int64_t bd[1] = {m};
  Tensor *nb = fm_tensor_const(g, fm_sprintf(&g->arena, "%s_bnb", p->name), FM_F32, 1, bd, bias);
  if (p->nin < 3) { /* grow the input list to hold the bias */
    Tensor **in = fm_alloc(&g->arena, sizeof(Tensor *) * 3);
    memcpy(in, p->in, sizeof(Tensor *) * (size_t)p->nin);
    p->in = in, p->nin = 3;
  }
  p->in[1] = nw, p->in[2] = nb;
  if (gemm) {
    Attr *a = fm_attr(p, "alpha"), *b = fm_attr(p, "beta");
    if (a) a->f = 1;
    if (b) b->f = 1;
  }
  /* p now produces the BN's output. */
  Tensor *y = bn->out[0];
  y->producer = p;
  p->out[0]->producer = NULL;
  p->out[0] = y;
  bn->dead = 1;
}

void fm_pass_fold_bn(Graph *g) {
  for (int i = 0; i < g->nnodes; i++) {
    Node *bn = g->nodes[i];
    if (bn->dead || bn->op != OP_BatchNormalization || bn->nout > 1 || !all_const(bn, 1, 5)) continue;
    if (fm_attr_i(bn, "training_mode", 0)) continue;
    Tensor *x = bn->in[0];
    Node *p = x->producer;
    if (!p || p->dead || x->is_output || fm_tensor_uses(g, x) != 1 || p->fused_act) continue;
    if (p->op != OP_Conv && p->op != OP_Gemm) continue;
    if (!all_const(p, 1, 2) || (p->nin > 2 && p->in[2] && !all_const(p, 2, 3))) continue;
    if (p->op == OP_Gemm) {
      /* Gemm's C must be absent or a per-output-column vector for the fold to hold. */
      if (p->nin > 2 && p->in[2] && !(p->in[2]->rank == 1 && p->in[2]->dims[0] == bn->in[1]->dims[0]))
        continue;
      if (x->rank != 2) continue;
    }
    if (bn->in[1]->dims[0] != p->in[1]->dims[p->op == OP_Gemm && !fm_attr_i(p, "transB", 0) ? 1 : 0])
      continue;
    fold(g, p, bn);
  }
  fm_graph_compact(g);
}
