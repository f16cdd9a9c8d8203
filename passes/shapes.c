/* shapes.c - shape and type inference: each node's fm_infer_X, in topological order.
 * A node whose inference computed every output's value (shape arithmetic on
 * constants) becomes dead and its outputs constants. */
#include "passes/passes.h"
#include "ops/ops.h"
#include <string.h>

static void check_known(Node *n, Tensor *t) {
  if (t->dtype == FM_UNDEF || !fm_shape_known(t)) {
    Arena a = {0};
    char shape[128];
    snprintf(shape, sizeof shape, "%s", fm_shape_str(&a, t));
    fm_arena_free(&a);
    fm_fail("node '%s' (%s): could not infer the type and shape of output '%s' (got %s %s)",
            n->name, n->op_type, t->name, fm_dtype_name(t->dtype), shape);
  }
}

/* fm_infer_X, with errors that do not name the node (a tensor too large, from
   fm_set_shape or fm_numel) prefixed by it. */
static void infer(Graph *g, Node *n) {
  FmTry t;
  FM_TRY(&t) {
    fm_ops[n->op].infer(g, n);
    for (int j = 0; j < n->nout; j++)
      if (n->out[j]) fm_check_size(n->out[j]);
    fm_try_pop(&t);
  } else {
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", fm_errmsg()); /* fm_fail formats into the same buffer */
    if (!strncmp(msg, "node '", 6)) fm_fail("%s", msg);
    fm_fail("node '%s' (%s): %s", n->name, n->op_type, msg);
  }
}

void fm_pass_shapes(Graph *g) {
  for (int i = 0; i < g->ninputs; i++) {
    Tensor *t = g->inputs[i];
    if (t->dtype == FM_UNDEF || !fm_shape_known(t))
      fm_fail("graph input '%s' has no known type and shape", t->name);
    fm_check_size(t);
  }
  for (int i = 0; i < g->nnodes; i++) {
    Node *n = g->nodes[i];
    if (n->dead) continue;
    for (int j = 0; j < n->nin; j++)
      if (n->in[j] && !n->in[j]->data && !n->in[j]->producer && !n->in[j]->is_input)
        fm_fail("node '%s' (%s): input '%s' is not produced by any node, input or initialiser",
                n->name, n->op_type, n->in[j]->name);
    infer(g, n);
    int all_const = n->nout > 0;
    for (int j = 0; j < n->nout; j++) {
      Tensor *t = n->out[j];
      if (!t) continue;
      check_known(n, t);
      if (!t->data) all_const = 0;
    }
    if (all_const) {
      n->dead = 1;
      for (int j = 0; j < n->nout; j++)
        if (n->out[j]) n->out[j]->producer = NULL;
    }
  }
  fm_graph_compact(g);
}
