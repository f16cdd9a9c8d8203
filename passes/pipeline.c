/* pipeline.c - the pass pipeline, in order, with a verifier between passes. */
#include "passes/passes.h"
#include <string.h>

typedef struct {
  const char *name;
  void (*run)(Graph *);
  int fusion;
  void (*run_opts)(Graph *, const FmPassOpts *); /* instead of run: a pass with options */
} Pass;

static const Pass pipeline[] = {
  {"check_ops", fm_pass_check_ops, 0, NULL},
  {"shapes", fm_pass_shapes, 0, NULL},
  {"fold", fm_pass_fold, 0, NULL},
  {"noop", fm_pass_noop, 0, NULL},
  {"unpack", fm_pass_unpack, 0, NULL},
  {"fold_bn", fm_pass_fold_bn, 1, NULL},
  {"fuse_act", fm_pass_fuse_act, 1, NULL},
  {"weights", fm_pass_weights, 0, NULL},
  {"winograd", NULL, 0, fm_pass_winograd},
  {"dce", fm_pass_dce, 0, NULL},
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
    if (pipeline[i].run) pipeline[i].run(g);
    else pipeline[i].run_opts(g, o);
#ifndef NDEBUG
    fm_graph_verify(g);
#endif
    if (o->dump_after && (!strcmp(o->dump_after, "all") || !strcmp(o->dump_after, pipeline[i].name))) {
      fprintf(dump, "# after %s\n", pipeline[i].name);
      fm_graph_dump(g, dump);
    }
  }
}
