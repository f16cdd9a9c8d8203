/* cmd_info.c - `fewmul info MODEL.onnx|DIR`: what a model takes, gives and holds. */
#include "driver.h"
#include "emit/codegen.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char help[] =
  "usage: fewmul info MODEL.onnx|DIR|MODEL.so [--shape NAME=DIMS]...\n"
  "\n"
  "For an .onnx model: inputs and outputs (symbolic dims by name), opset imports,\n"
  "node count per op, parameter count and bytes. For a compiled model: its inputs,\n"
  "outputs, workspace and weights sizes.\n";

static void print_tensor(const char *batch, const char *name, int dtype, int rank, const int64_t *dims) {
  char s[256];
  printf("  %-24s %-8s [%s]\n", name, fm_dtype_name((FmDType)dtype), fm_dims_str(s, sizeof s, rank, dims, batch));
}

static int by_count(const void *a, const void *b) {
  const int *x = a, *y = b;
  return x[1] != y[1] ? y[1] - x[1] : x[0] - y[0];
}

static void info_onnx(const char *path, const FmShapeOverride *shapes, int nshapes) {
  Graph *g = fm_driver_load(path, shapes, nshapes);
  printf("model: %s\n", path);
  if (g->name && *g->name) printf("graph: %s\n", g->name);
  printf("ir_version: %d%s%s\n", g->ir_version, g->producer && *g->producer ? "  producer: " : "",
         g->producer ? g->producer : "");
  /* opset imports: ai.onnx from the model, other domains from their nodes */
  printf("opsets: ai.onnx %d", g->opset);
  const char *doms[32];
  int nd = 0;
  for (int i = 0; i < g->nnodes; i++) {
    Node *n = g->nodes[i];
    if (!n->domain || !*n->domain || !strcmp(n->domain, "ai.onnx")) continue;
    int seen = 0;
    for (int k = 0; k < nd; k++) seen |= !strcmp(doms[k], n->domain);
    if (!seen && nd < 32) doms[nd++] = n->domain, printf(", %s %d", n->domain, n->opset);
  }
  printf("\ninputs (%d):\n", g->ninputs);
  for (int i = 0; i < g->ninputs; i++) {
    Tensor *t = g->inputs[i];
    print_tensor(g->batch_name, t->name, t->dtype, t->rank, t->dims);
  }
  printf("outputs (%d):\n", g->noutputs);
  for (int i = 0; i < g->noutputs; i++) {
    Tensor *t = g->outputs[i];
    if (t->rank < 0) printf("  %-24s %-8s [?]\n", t->name, fm_dtype_name(t->dtype));
    else print_tensor(g->batch_name, t->name, t->dtype, t->rank, t->dims);
  }
  /* node count per op_type (unknown ops keep their op_type) */
  const char **names = calloc((size_t)g->nnodes + 1, sizeof *names);
  int (*cnt)[2] = calloc((size_t)g->nnodes + 1, sizeof *cnt);
  int nk = 0;
  for (int i = 0; i < g->nnodes; i++) {
    const char *op = g->nodes[i]->op_type;
    int k = 0;
    while (k < nk && strcmp(names[k], op)) k++;
    if (k == nk) names[nk] = op, cnt[nk][0] = nk, nk++;
    cnt[k][1]++;
  }
  qsort(cnt, (size_t)nk, sizeof *cnt, by_count);
  printf("nodes: %d\n", g->nnodes);
  for (int k = 0; k < nk; k++) printf("  %-24s %d\n", names[cnt[k][0]], cnt[k][1]);
  int64_t params = 0;
  size_t bytes = 0;
  int nconst = 0;
  for (int i = 0; i < g->ntensors; i++) {
    Tensor *t = g->tensors[i];
    if (!t->data || t->producer || fm_numel(t) < 0) continue;
    nconst++;
    params += fm_numel(t);
    bytes += fm_nbytes(t);
  }
  printf("parameters: %lld in %d tensors (%zu bytes, %.2f MB)\n", (long long)params, nconst, bytes,
         (double)bytes / (1 << 20));
  free(names), free(cnt);
  fm_graph_free(g);
}

static void info_compiled(const char *path) {
  fm_model *m;
  if (fm_load(path, &m) != FM_OK) fm_fail("%s", fm_last_error());
  printf("compiled model: %s (ABI %d)\n", path, fm_rt_desc(m)->abi_version);
  printf("inputs (%d):\n", fm_num_inputs(m));
  for (int i = 0; i < fm_num_inputs(m); i++) {
    const fm_io_desc *d = fm_input(m, i);
    print_tensor("N", d->name, d->dtype, d->rank, d->dims);
  }
  printf("outputs (%d):\n", fm_num_outputs(m));
  for (int i = 0; i < fm_num_outputs(m); i++) {
    const fm_io_desc *d = fm_output(m, i);
    print_tensor("N", d->name, d->dtype, d->rank, d->dims);
  }
  const fm_model_desc *d = fm_rt_desc(m);
  printf("name: %s\n", d->name ? d->name : "?");
  printf("workspace: %zu bytes at N = 1, %zu at N = 8\n", d->workspace_size(1), d->workspace_size(8));
  if (strcmp(fm_device(m), "cpu") && fm_set_device(m, fm_device(m)) != FM_OK)
    printf("device: %s (unavailable: %s)\n", fm_device(m), fm_last_error());
  else
    printf("device: %s\n", fm_device(m));
  if (d->weights_size) printf("weights: %zu bytes in a weights file\n", d->weights_size);
  else printf("weights: embedded in the code\n");
  fm_free(m);
}

int fm_cmd_info(int argc, char **argv) {
  const char *cmd = "info";
  if (fm_wants_help(argc, argv)) return fputs(help, stdout), 0;
  Arena a = {0};
  const char *model = NULL;
  FmShapeOverride shapes[16];
  int nshapes = 0;
  for (int i = 0; i < argc; i++) {
    const char *v;
    if ((v = fm_opt(cmd, argc, argv, &i, "--shape"))) fm_driver_add_shape(cmd, &a, shapes, &nshapes, v);
    else if (argv[i][0] == '-' && argv[i][1]) fm_usage(cmd, "unknown option '%s'", argv[i]);
    else if (!model) model = argv[i];
    else fm_usage(cmd, "unexpected argument '%s'", argv[i]);
  }
  if (!model) fm_usage(cmd, "missing MODEL.onnx or compiled model directory");
  struct stat st;
  if (stat(model, &st) == 0 && (S_ISDIR(st.st_mode) || fm_has_suffix(model, ".so"))) info_compiled(model);
  else info_onnx(model, shapes, nshapes);
  fm_arena_free(&a);
  return 0;
}
