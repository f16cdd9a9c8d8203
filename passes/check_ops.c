/* check_ops.c - names every op the compiler cannot handle, all at once. */
#include "passes/passes.h"
#include "ops/ops.h"
#include <string.h>

void fm_pass_check_ops(Graph *g) {
  char msg[1536];
  int k = 0, count = 0;
  msg[0] = 0;
  for (int i = 0; i < g->nnodes; i++) {
    Node *n = g->nodes[i];
    if (n->dead) continue;
    const FmOpInfo *op = &fm_ops[n->op];
    if (n->op != OP_UNKNOWN && op->infer && op->lower) continue;
    count++;
    if (k < (int)sizeof msg - 200)
      k += snprintf(msg + k, sizeof msg - (size_t)k, "%s%s%s%s (node '%s')", count > 1 ? ", " : "",
                    n->domain && *n->domain ? n->domain : "", n->domain && *n->domain ? "." : "",
                    n->op_type, n->name);
  }
  if (count) fm_fail("unsupported op%s: %s", count > 1 ? "s" : "", msg);
}
