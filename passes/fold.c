/* fold.c - constant folding: a node whose inputs are all constant is lowered to
 * kernel IR and run by the interpreter at compile time; its outputs become
 * constants. The same lowering that the emitted code uses computes the value, so
 * folding can never disagree with run time. */
#include "passes/passes.h"
#include "ops/ops.h"
#include <stdlib.h>

/* Constants materialised at compile time are bounded: a node whose outputs would hold
   more than this is left to run time (docs/ARCHITECTURE.md, "Limits"). */
#define FOLD_MAX_BYTES ((size_t)256 << 20)

static int foldable(Node *n) {
  if (n->nout == 0) return 0;
  for (int j = 0; j < n->nin; j++)
    if (n->in[j] && !n->in[j]->data) return 0;
  for (int j = 0; j < n->nout; j++)
    if (n->out[j] && (fm_numel(n->out[j]) < 0 || fm_nbytes(n->out[j]) > FOLD_MAX_BYTES)) return 0;
  return 1;
}

static void fold_node(Graph *g, Node *n) {
  KFn *fn = fm_lower_node(g, n, "fold");
  void **ptrs = calloc((size_t)fn->nbufs + 1, sizeof(void *));
  void **scratch = calloc((size_t)fn->nbufs + 1, sizeof(void *));
  for (int i = 0; i < fn->nbufs; i++) {
    KBuf *b = fn->bufs[i];
    if (b->kind == KBUF_TENSOR) {
      Tensor *t = b->tensor;
      if (!t->data) {
        size_t nb = fm_nbytes(t);
        t->data = fm_alloc(&g->arena, nb ? nb : 1);
      }
      ptrs[i] = t->data;
    } else if (b->kind == KBUF_SCRATCH) {
      int64_t nb;
      if (!fm_mul_ok(b->nelem > 0 ? b->nelem : 1, (int64_t)fm_dtype_size(b->t), &nb) ||
          nb > (int64_t)FOLD_MAX_BYTES || !(ptrs[i] = scratch[i] = calloc(1, (size_t)nb))) {
        for (int k = 0; k < i; k++) free(scratch[k]);
        free(ptrs), free(scratch);
        fm_fail("node '%s' (%s): constant folding needs a %lld-element scratch buffer, too large",
                n->name, n->op_type, (long long)b->nelem);
      }
    }
  }
  char err[512];
  int rc = fm_kinterp(fn, 1, ptrs, err, sizeof err);
  for (int i = 0; i < fn->nbufs; i++) free(scratch[i]);
  free(ptrs), free(scratch);
  if (rc) fm_fail("node '%s' (%s): constant folding failed: %s", n->name, n->op_type, err);
  n->dead = 1;
  for (int j = 0; j < n->nout; j++)
    if (n->out[j]) n->out[j]->producer = NULL;
}

void fm_pass_fold(Graph *g) {
  for (int i = 0; i < g->nnodes; i++) {
    Node *n = g->nodes[i];
    if (!n->dead && foldable(n)) fold_node(g, n);
  }
  fm_graph_compact(g);
}
