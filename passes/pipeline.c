/* pipeline.c - the pass pipeline, in order, with a verifier between passes. */
#include "passes/passes.h"
#include <string.h>

/* A pass is run(g), or run_o(g, opts) when it takes an option. */
typedef struct { const char *name; void (*run)(Graph *); void (*run_o)(Graph *, const FmPassOpts *); int fusion; } Pass;

static void weights_pass(Graph *g, const FmPassOpts *o) { fm_pass_weights_mode(g, o->specialize); }

static const Pass pipeline[] = {
  {"check_ops", fm_pass_check_ops, NULL, 0},
  {"shapes", fm_pass_shapes, NULL, 0},
  {"fold", fm_pass_fold, NULL, 0},
  {"noop", fm_pass_noop, NULL, 0},
  {"unpack", fm_pass_unpack, NULL, 0},
  {"fold_bn", fm_pass_fold_bn, NULL, 1},
  {"fuse_act", fm_pass_fuse_act, NULL, 1},
  {"weights", NULL, weights_pass, 0},
  {"winograd", NULL, fm_pass_winograd, 0},
  {"dce", fm_pass_dce, NULL, 0},
};
#define NPASS (int)(sizeof pipeline / sizeof *pipeline)

const char *const fm_pass_names[] = {"check_ops", "shapes", "fold", "noop", "unpack", "fold_bn",
                                     "fuse_act", "weights", "winograd", "dce", NULL};

void fm_run_passes(Graph *g, const FmPassOpts *o) {
  FmPassOpts def = {0};
  if (!o) o = &def;
  FILE *dump = o->dump ? o->dump : stderr;
  if (o->dump_after && strcmp(o->dump_after, "all") && strcmp(o->dump_after, "load")) {
    int ok = 0;
    for (int i = 0; i < NPASS; i++) ok |= !strcmp(pipeline[i].name, o->dump_after);
    if (!ok) fm_fail("--dump-after: unknown pass '%s' (passes: load check_ops shapes fold noop "
                     "unpack fold_bn fuse_act weights winograd dce, or all)", o->dump_after);
  }
  if (o->dump_after && !strcmp(o->dump_after, "load")) {
    fprintf(dump, "# after load\n");
    fm_graph_dump(g, dump);
  }
  for (int i = 0; i < NPASS; i++) {
    if (pipeline[i].fusion && o->no_fuse) continue;
    if (pipeline[i].run_o) pipeline[i].run_o(g, o);
    else pipeline[i].run(g);
#ifndef NDEBUG
    fm_graph_verify(g);
#endif
    if (o->dump_after && (!strcmp(o->dump_after, "all") || !strcmp(o->dump_after, pipeline[i].name))) {
      fprintf(dump, "# after %s\n", pipeline[i].name);
      fm_graph_dump(g, dump);
    }
  }
}
