/* fuzz_onnx.c - libFuzzer target for the ONNX loader (and the writer behind it).
 *
 * Any input must either load or fail through fm_fail (caught here): no crash, no
 * leak, no sanitizer report, no exit. A graph that loads must also survive
 * write -> load again with the same node count; anything else is a bug and traps.
 * With FM_FUZZ_SEED_DIR set, LLVMFuzzerInitialize writes a model with a
 * model-local function there, a seed the backend-test models cannot give.
 */
#include "onnx/onnx.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void write_seed(const char *dir) {
  static const char *ins[] = {"a", "b"}, *outs[] = {"y"}, *attrs[] = {"alpha"};
  Graph *body = fm_graph_new(), *g = fm_graph_new();
  Tensor *a = fm_tensor_new(body, "a"), *b = fm_tensor_new(body, "b");
  float c1 = 2.5f;
  Tensor *c = fm_tensor_const(body, "c", FM_F32, 0, NULL, &c1);
  Tensor *t = fm_tensor_new(body, "t"), *u = fm_tensor_new(body, "u"), *y = fm_tensor_new(body, "y");
  Node *n = fm_node_new(body, OP_Add, NULL, 2, 1);
  n->in[0] = a, n->in[1] = b, n->out[0] = t;
  n = fm_node_new(body, OP_Mul, NULL, 2, 1);
  n->in[0] = t, n->in[1] = c, n->out[0] = u;
  n = fm_node_new(body, OP_LeakyRelu, NULL, 1, 1);
  n->in[0] = u, n->out[0] = y;
  n->attrs = fm_alloc(&body->arena, sizeof(Attr)), n->nattrs = 1;
  n->attrs[0] = (Attr){.name = "alpha", .type = FA_FLOAT, .ref = "alpha"};

  Tensor *x = fm_tensor_new(g, "x");
  x->dtype = FM_F32, x->rank = 2, x->dims[0] = -1, x->dims[1] = 4, x->is_input = 1;
  g->inputs = fm_alloc(&g->arena, sizeof(Tensor *));
  g->inputs[g->ninputs++] = x;
  float wv[4] = {1, 2, 3, 4};
  int64_t wd[1] = {4};
  Tensor *w = fm_tensor_const(g, "w", FM_F32, 1, wd, wv);
  Tensor *z = fm_tensor_new(g, "z"), *o = fm_tensor_new(g, "out");
  n = fm_node_new(g, OP_UNKNOWN, "call", 2, 1);
  n->op_type = "AddMulLeaky", n->domain = "my.dom";
  n->in[0] = x, n->in[1] = w, n->out[0] = z, z->producer = n;
  n->attrs = fm_alloc(&g->arena, sizeof(Attr)), n->nattrs = 1;
  n->attrs[0] = (Attr){.name = "alpha", .type = FA_FLOAT, .f = 0.2f};
  n = fm_node_new(g, fm_op_lookup("ai.fewmul", "Shift"), "shift", 1, 1);
  n->op_type = "Shift", n->domain = "ai.fewmul";
  n->in[0] = z, n->out[0] = o, o->producer = n, o->is_output = 1;
  g->outputs = fm_alloc(&g->arena, sizeof(Tensor *));
  g->outputs[g->noutputs++] = o;
  Graph *id = fm_graph_new(); /* Shift's stand-in body: y = Identity(a) */
  n = fm_node_new(id, OP_Identity, NULL, 1, 1);
  n->in[0] = fm_tensor_new(id, "a"), n->out[0] = fm_tensor_new(id, "y");
  FmFunction f[2] = {{"my.dom", "AddMulLeaky", ins, 2, outs, 1, attrs, 1, body},
                     {"ai.fewmul", "Shift", ins, 1, outs, 1, NULL, 0, id}};
  FmWriteOpts wo = {.functions = f, .nfunctions = 2};
  char path[1024];
  snprintf(path, sizeof path, "%s/function.onnx", dir);
  fm_onnx_write(g, path, &wo);
  fm_graph_free(g);
  fm_graph_free(body);
  fm_graph_free(id);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  const char *dir = getenv("FM_FUZZ_SEED_DIR");
  if (dir) write_seed(dir);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FmLoadOpts lo = {.no_external_data = 1};
  Graph *volatile g = NULL, *volatile h = NULL;
  void *volatile buf = NULL;
  volatile int stage = 0;
  FmTry t;
  FM_TRY(&t) {
    g = fm_onnx_load_mem(data, size, "fuzz.onnx", &lo);
    stage = 1;
    size_t n;
    buf = fm_onnx_write_mem(g, NULL, &n);
    h = fm_onnx_load_mem(buf, n, "rewritten.onnx", &lo);
    if (h->nnodes != g->nnodes) {
      fprintf(stderr, "fuzz_onnx: rewritten model has %d nodes, not %d\n", h->nnodes, g->nnodes);
      __builtin_trap();
    }
    fm_try_pop(&t);
  } else {
    if (stage) { /* the input loaded; its rewrite must too */
      fprintf(stderr, "fuzz_onnx: a loaded model failed to write or re-load: %s\n", fm_errmsg());
      __builtin_trap();
    }
  }
  free(buf);
  fm_graph_free(h);
  fm_graph_free(g);
  return 0;
}
