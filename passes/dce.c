/* dce.c - dead-code elimination: drops nodes none of whose outputs is used. */
#include "passes/passes.h"
#include <stdlib.h>

void fm_pass_dce(Graph *g) {
  int *uses = calloc((size_t)g->ntensors + 1, sizeof(int));
  for (int i = 0; i < g->noutputs; i++) uses[g->outputs[i]->id]++;
  for (int i = 0; i < g->nnodes; i++)
    for (int j = 0; j < g->nodes[i]->nin; j++)
      if (g->nodes[i]->in[j]) uses[g->nodes[i]->in[j]->id]++;
  for (int i = g->nnodes - 1; i >= 0; i--) {
    Node *n = g->nodes[i];
    int used = 0;
    for (int j = 0; j < n->nout; j++) used |= n->out[j] && uses[n->out[j]->id] > 0;
    if (used || n->dead) continue;
    n->dead = 1;
    for (int j = 0; j < n->nin; j++)
      if (n->in[j]) uses[n->in[j]->id]--;
  }
  free(uses);
  fm_graph_compact(g);
}
