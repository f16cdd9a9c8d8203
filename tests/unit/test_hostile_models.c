/* test_hostile_models.c - models that once killed the host or lost data, built as
 * graph IR, written with the ONNX writer and compiled by the real pipeline.
 *
 *   test_hostile_models                 self-test: integer Div/Mod with a zero divisor
 *                                       and INT_MIN / -1, compiled and run in a child
 *                                       process (a signal is a failure), against the
 *                                       documented values (docs/OPS.md) and the
 *                                       constant folder's (the kernel interpreter's)
 *   test_hostile_models --write DIR     models for tests/e2e/hostile_*.sh:
 *                                       DIR/intdiv.onnx (the self-test's model),
 *                                       DIR/names.onnx (inputs 'x/1', 'x_1', outputs
 *                                       'y/1', 'y_1', 'y:1'),
 *                                       DIR/chain.onnx (a long chain: a slow C compile)
 */
#include "check.h"
#include "emit/codegen.h"
#include "fewmul.h"
#include "onnx/onnx.h"
#include "ops/ops.h"
#include "passes/passes.h"
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- graph building ---- */
static Tensor *add_io(Graph *g, Tensor *t, int input) {
  Tensor ***list = input ? &g->inputs : &g->outputs;
  int *n = input ? &g->ninputs : &g->noutputs;
  Tensor **grown = fm_alloc(&g->arena, sizeof(Tensor *) * (size_t)(*n + 1));
  if (*n) memcpy(grown, *list, sizeof(Tensor *) * (size_t)*n);
  grown[(*n)++] = t;
  *list = grown;
  if (input) t->is_input = 1;
  else t->is_output = 1;
  return t;
}

static Tensor *input(Graph *g, const char *name, FmDType dt, int rank, const int64_t *dims) {
  Tensor *t = fm_tensor_new(g, name);
  fm_set_shape(t, dt, rank, dims);
  return add_io(g, t, 1);
}

static Tensor *op2(Graph *g, OpKind op, Tensor *a, Tensor *b, const char *out) {
  Node *n = fm_node_new(g, op, NULL, b ? 2 : 1, 1);
  n->in[0] = a;
  if (b) n->in[1] = b;
  n->out[0] = fm_tensor_new(g, out);
  n->out[0]->producer = n;
  return n->out[0];
}

static int write_model(Graph *g, const char *path) {
  FmTry t;
  FM_TRY(&t) {
    fm_onnx_write(g, path, NULL);
    fm_try_pop(&t);
  } else {
    fprintf(stderr, "writing %s: %s\n", path, fm_errmsg());
    return -1;
  }
  fm_cleanup_forget(path);
  return 0;
}

/* ---- integer Div / Mod ---- */
#define NV 8
/* a / b and a % b for the cases of docs/OPS.md: truncation, both signs, INT_MIN / -1,
   a zero divisor (also 0 / 0). */
static const int64_t A32[NV] = {7, -7, 7, -7, INT32_MIN, INT32_MIN, 5, 0};
static const int64_t A64[NV] = {7, -7, 7, -7, INT64_MIN, INT64_MIN, 5, 0};
static const int64_t B[NV] = {2, 2, -2, -2, -1, 0, 0, 0};
/* documented results: x / 0 = 0, x % 0 = 0, INT_MIN / -1 = INT_MIN, INT_MIN % -1 = 0 */
static const int64_t WANT_DIV[NV] = {3, -3, -3, 3, 0 /* INT_MIN: want_of */, 0, 0, 0};
static const int64_t WANT_FMOD[NV] = {1, -1, 1, -1, 0, 0, 0, 0};  /* fmod=1: dividend's sign */
static const int64_t WANT_PMOD[NV] = {1, 1, -1, -1, 0, 0, 0, 0};  /* fmod=0: divisor's sign */

/* Div, Mod(fmod=0), Mod(fmod=1) over int32 and int64; as_const: a and b are
   initialisers, so the constant folder computes everything. */
static Graph *intdiv_graph(int as_const) {
  Graph *g = fm_graph_new();
  g->opset = 13;
  int64_t n = NV;
  const char *names[2][3] = {{"div32", "pmod32", "fmod32"}, {"div64", "pmod64", "fmod64"}};
  for (int w = 0; w < 2; w++) {
    FmDType dt = w ? FM_I64 : FM_I32;
    const int64_t *av = w ? A64 : A32;
    Tensor *a, *b;
    char an[8], bn[8];
    snprintf(an, sizeof an, "a%d", w ? 64 : 32), snprintf(bn, sizeof bn, "b%d", w ? 64 : 32);
    if (as_const) {
      int32_t a32[NV], b32[NV];
      for (int i = 0; i < NV; i++) a32[i] = (int32_t)av[i], b32[i] = (int32_t)B[i];
      a = fm_tensor_const(g, an, dt, 1, &n, w ? (const void *)av : a32);
      b = fm_tensor_const(g, bn, dt, 1, &n, w ? (const void *)B : b32);
    } else {
      a = input(g, an, dt, 1, &n);
      b = input(g, bn, dt, 1, &n);
    }
    add_io(g, op2(g, OP_Div, a, b, names[w][0]), 0);
    Tensor *pm = add_io(g, op2(g, OP_Mod, a, b, names[w][1]), 0);
    fm_set_attr_i(g, pm->producer, "fmod", 0);
    Tensor *fmod = add_io(g, op2(g, OP_Mod, a, b, names[w][2]), 0);
    fm_set_attr_i(g, fmod->producer, "fmod", 1);
  }
  return g;
}

static int64_t want_of(int which, int w, int i) {
  const int64_t *t = which == 0 ? WANT_DIV : which == 1 ? WANT_PMOD : WANT_FMOD;
  if (which == 0 && i == 4) return w ? INT64_MIN : INT32_MIN;
  return t[i];
}

static int64_t at(const void *p, int w, int i) { return w ? ((const int64_t *)p)[i] : ((const int32_t *)p)[i]; }

/* got[k] for output k = w*3 + which */
static void check_values(const char *what, void *const *got) {
  int bad = 0;
  for (int w = 0; w < 2; w++)
    for (int which = 0; which < 3; which++)
      for (int i = 0; i < NV; i++) {
        int64_t want = want_of(which, w, i), have = at(got[w * 3 + which], w, i);
        if (want != have && !bad++)
          fprintf(stderr, "%s: int%d %s element %d (%lld, %lld): want %lld, got %lld\n", what, w ? 64 : 32,
                  which == 0 ? "Div" : which == 1 ? "Mod(fmod=0)" : "Mod(fmod=1)", i, (long long)(w ? A64 : A32)[i],
                  (long long)B[i], (long long)want, (long long)have);
      }
  CHECK(bad == 0);
}

static void test_intdiv(const char *tmp) {
  char path[512], dir[512];
  /* the compiled model */
  Graph *g = intdiv_graph(0);
  snprintf(path, sizeof path, "%s/intdiv.onnx", tmp);
  snprintf(dir, sizeof dir, "%s/intdiv_c", tmp);
  CHECK(write_model(g, path) == 0);
  fm_graph_free(g);
  FmTry t;
  FM_TRY(&t) {
    Graph *lg = fm_onnx_load(path, NULL);
    fm_run_passes(lg, NULL);
    KProgram *p = fm_lower_graph(lg);
    FmCodegenOpts co = {.outdir = dir, .name = "model", .quiet = 1};
    fm_codegen(p, &co);
    fm_graph_free(lg);
    fm_try_pop(&t);
  } else {
    fprintf(stderr, "compiling intdiv: %s\n", fm_errmsg());
    CHECK(0);
    return;
  }
  /* run it in a child: SIGFPE there is a failure here, not a crash of the test */
  size_t bytes = 6 * NV * sizeof(int64_t);
  char *shared = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(shared != MAP_FAILED);
  void *outs[6];
  for (int k = 0; k < 6; k++) outs[k] = shared + (size_t)k * NV * sizeof(int64_t);
  pid_t pid = fork();
  if (pid == 0) {
    int32_t a32[NV], b32[NV];
    for (int i = 0; i < NV; i++) a32[i] = (int32_t)A32[i], b32[i] = (int32_t)B[i];
    const void *ins[4] = {a32, b32, A64, B};
    fm_model *m;
    if (fm_load(dir, &m) != FM_OK) fprintf(stderr, "%s\n", fm_last_error()), _exit(2);
    if (fm_run(m, 1, ins, outs) != FM_OK) fprintf(stderr, "%s\n", fm_last_error()), _exit(3);
    fm_free(m);
    _exit(0);
  }
  int st = 0;
  CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
  if (WIFSIGNALED(st)) fprintf(stderr, "compiled intdiv: killed by signal %d\n", WTERMSIG(st));
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) check_values("compiled", outs);
  munmap(shared, bytes);

  /* the constant folder: the same lowering, run by the kernel interpreter */
  g = intdiv_graph(1);
  snprintf(path, sizeof path, "%s/intdiv_const.onnx", tmp);
  CHECK(write_model(g, path) == 0);
  fm_graph_free(g);
  FM_TRY(&t) {
    Graph *lg = fm_onnx_load(path, NULL);
    fm_run_passes(lg, NULL);
    void *got[6];
    int folded = lg->noutputs == 6;
    for (int k = 0; k < lg->noutputs && k < 6; k++) folded &= (got[k] = lg->outputs[k]->data) != NULL;
    CHECK(folded);
    if (folded) check_values("folded", got);
    fm_graph_free(lg);
    fm_try_pop(&t);
  } else {
    fprintf(stderr, "folding intdiv: %s\n", fm_errmsg());
    CHECK(0);
  }
}

/* ---- models for the e2e scripts ---- */

/* Inputs and outputs whose names sanitise alike: x/1 and x_1 (both read by one kernel:
   C identifiers), y/1 = Relu(x/1), y_1 = x/1 + x_1, y:1 = |x_1 - x/1| (one file name). */
static int write_names(const char *dir) {
  Graph *g = fm_graph_new();
  g->opset = 13;
  int64_t d[2] = {-1, 3};
  Tensor *x1 = input(g, "x/1", FM_F32, 2, d), *x2 = input(g, "x_1", FM_F32, 2, d);
  add_io(g, op2(g, OP_Relu, x1, NULL, "y/1"), 0);
  add_io(g, op2(g, OP_Add, x1, x2, "y_1"), 0);
  add_io(g, op2(g, OP_Abs, op2(g, OP_Sub, x2, x1, "d"), NULL, "y:1"), 0);
  char path[1024];
  snprintf(path, sizeof path, "%s/names.onnx", dir);
  int rc = write_model(g, path);
  fm_graph_free(g);
  return rc;
}

/* x -> (x * c_i + c_i') repeated: thousands of kernels, so `cc` takes a while. */
static int write_chain(const char *dir, int len) {
  Graph *g = fm_graph_new();
  g->opset = 13;
  int64_t d[2] = {-1, 16};
  Tensor *t = input(g, "x", FM_F32, 2, d);
  float c[16];
  for (int i = 0; i < len; i++) {
    for (int k = 0; k < 16; k++) c[k] = 1.0f + 0.001f * (float)((i * 7 + k) % 13);
    Tensor *w = fm_tensor_const(g, NULL, FM_F32, 2, (int64_t[]){1, 16}, c);
    char nm[32];
    snprintf(nm, sizeof nm, "t%d", i);
    t = op2(g, i % 2 ? OP_Add : OP_Mul, t, w, i + 1 == len ? "y" : nm);
    t = i % 3 == 2 ? op2(g, OP_Relu, t, NULL, fm_sprintf(&g->arena, "r%d", i)) : t;
  }
  add_io(g, t, 0);
  char path[1024];
  snprintf(path, sizeof path, "%s/chain.onnx", dir);
  int rc = write_model(g, path);
  fm_graph_free(g);
  return rc;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--write")) {
    mkdir(argv[2], 0777);
    char path[1024];
    snprintf(path, sizeof path, "%s/intdiv.onnx", argv[2]);
    Graph *g = intdiv_graph(0);
    int rc = write_model(g, path);
    fm_graph_free(g);
    return rc || write_names(argv[2]) || write_chain(argv[2], 3000) ? 1 : 0;
  }
  if (argc != 1) {
    fprintf(stderr, "usage: test_hostile_models [--write DIR]\n");
    return 2;
  }
  char tmp[] = "/tmp/fm_test_hostile_XXXXXX";
  CHECK(mkdtemp(tmp) != NULL);
  test_intdiv(tmp);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
  CHECK(system(cmd) == 0);
  return check_done("test_hostile_models");
}
