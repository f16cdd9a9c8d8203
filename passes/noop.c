/* noop.c - removes nodes that compute nothing: Identity, Dropout at inference,
 * reshapes to the same shape, and the inner half of a reshape chain. */
#include "passes/passes.h"
#include <string.h>

static int same_shape(const Tensor *a, const Tensor *b) {
  if (a->rank != b->rank || a->dtype != b->dtype) return 0;
  for (int i = 0; i < a->rank; i++)
    if (a->dims[i] != b->dims[i]) return 0;
  return 1;
}

static int is_reshape(OpKind op) {
  return op == OP_Reshape || op == OP_Flatten || op == OP_Squeeze || op == OP_Unsqueeze;
}

/* y = f(x) where f is a no-op: readers of y read x instead. Kept when y is a graph
   output, so that outputs keep their names and caller buffers. */
static int bypass(Graph *g, Node *n) {
  Tensor *x = n->in[0], *y = n->out[0];
  if (!x || y->is_output) return 0;
  for (int j = 1; j < n->nout; j++)
    if (n->out[j] && fm_tensor_uses(g, n->out[j])) return 0; /* e.g. a used Dropout mask */
  fm_replace_uses(g, y, x);
  n->dead = 1;
  return 1;
}

void fm_pass_noop(Graph *g) {
  for (int i = 0; i < g->nnodes; i++) {
    Node *n = g->nodes[i];
    if (n->dead || n->nin == 0 || !n->in[0]) continue;
    if (n->op == OP_Identity || n->op == OP_Dropout) {
      if (n->op == OP_Dropout && n->nin > 2 && n->in[2]) {
        Tensor *tm = n->in[2]; /* training_mode */
        if (!tm->data || *(const uint8_t *)tm->data) continue;
      }
      bypass(g, n);
    } else if (is_reshape(n->op)) {
      if (same_shape(n->in[0], n->out[0]) && bypass(g, n)) continue;
      /* Reshape(Reshape(x)) -> Reshape(x): only the data matters. */
      Node *p = n->in[0]->producer;
      if (p && !p->dead && is_reshape(p->op) && !n->in[0]->is_output && fm_tensor_uses(g, n->in[0]) == 1 &&
          n->op == OP_Reshape) {
        n->in[0] = p->in[0];
        p->dead = 1;
      }
    }
  }
  fm_graph_compact(g);
}
