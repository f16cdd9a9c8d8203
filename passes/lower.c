/* lower.c - the graph, shapes known and constants folded, to kernel IR: one KFn per
 * node that computes something at run time. */
#include "passes/passes.h"
#include "ops/ops.h"
#include <ctype.h>
#include <string.h>

static KFn *lower_node(Graph *g, Node *n, const char *name, const FmLowerOpts *opts) {
  const FmOpInfo *op = &fm_ops[n->op];
  if (!op->lower) fm_fail("node '%s' (%s): no lowering for this op", n->name, n->op_type);
  KB b;
  KFn *fn = kb_begin(&b, g, n, name);
  if (opts) b.opts = opts;
  op->lower(&b, n);
  if (b.depth != 0) fm_fail("internal: lowering of %s left %d blocks open", n->op_type, b.depth);
#ifndef NDEBUG
  char err[512];
  if (fm_kverify(fn, err, sizeof err)) fm_fail("internal: node '%s' (%s): %s", n->name, n->op_type, err);
#endif
  return fn;
}

KFn *fm_lower_node(Graph *g, Node *n, const char *name) { return lower_node(g, n, name, NULL); }

/* A C identifier from the node name: k<index>_<name with [^A-Za-z0-9_] -> _>. */
static const char *fn_name(Graph *g, Node *n, int k) {
  char buf[64];
  int len = snprintf(buf, sizeof buf, "k%d_", k);
  for (const char *s = n->name; *s && len < (int)sizeof buf - 1; s++)
    buf[len++] = isalnum((unsigned char)*s) ? *s : '_';
  buf[len] = 0;
  return fm_strdup(&g->arena, buf);
}

KProgram *fm_lower_graph(Graph *g) { return fm_lower_graph_opts(g, NULL); }

KProgram *fm_lower_graph_opts(Graph *g, const FmLowerOpts *opts) {
  KProgram *p = fm_alloc(&g->arena, sizeof *p);
  p->g = g;
  p->last = &p->fns;
  for (int i = 0; i < g->nnodes; i++) {
    Node *n = g->nodes[i];
    if (n->dead) continue;
    int live = 0;
    for (int j = 0; j < n->nout; j++) live |= n->out[j] && !n->out[j]->data;
    if (!live) continue;
    KFn *fn = lower_node(g, n, fn_name(g, n, p->nfns), opts);
    *p->last = fn;
    p->last = &fn->next;
    p->nfns++;
  }
  return p;
}
