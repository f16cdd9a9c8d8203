/* test_shift.c - ShiftNet (trainer/method_shift.h, models/shiftresnet.c,
 * compiler/ops/fewmul_shift.c): the grouping rule, forward against a naive reference,
 * backward as the exact adjoint and by finite differences through a small net, the
 * compiled ai.fewmul Shift op against the trainer's forward (0 multiplications, 0
 * additions), model parameter counts against the reference's, the exported form.
 *
 * Also the helper of tests/e2e/shift_export.sh:
 *   test_shift --e2e DIR              trains shift models a few steps, writes DIR/<case>.onnx,
 *                                     _in.npy, _ref.npy (the trainer's eval forward); lists cases
 *   test_shift --compare REF GOT TOL  max |REF - GOT| <= TOL and the same argmax per row */
#include "check.h"
#include "gradcheck.h"
#include "e2echeck.h"
#include "data.h"
#include "export.h"
#include "method_shift.h"
#include "models.h"
#include "net.h"
#include "onnx/onnx.h"
#include "opcheck.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// naive reference: channel c's group from the rule written out again
static void ref_shift(float *y, const float *x, int n, int C, int H, int W, int k, int d) {
  int G = C / (k * k);
  for (int b = 0; b < n; b++)
    for (int c = 0; c < C; c++) {
      int i = G > 0 && c < G * k * k ? c / G : -1;
      int dy = i < 0 ? 0 : (i / k - k / 2) * d, dx = i < 0 ? 0 : (i % k - k / 2) * d;
      for (int h = 0; h < H; h++)
        for (int w = 0; w < W; w++) {
          int sh = h + dy, sw = w + dx;
          size_t o = (((size_t)b * C + c) * H + h) * W + w;
          y[o] = sh >= 0 && sh < H && sw >= 0 && sw < W ? x[(((size_t)b * C + c) * H + sh) * W + sw] : 0.0f;
        }
    }
}

static void fill(float *x, size_t n, uint64_t seed) {
  FmRng r;
  fm_rng_seed(&r, seed);
  for (size_t i = 0; i < n; i++) x[i] = fm_rng_normal(&r);
}

// ---------------------------------------------------------------------------
// the grouping rule: k^2 contiguous groups of floor(C / k^2), remainder unmoved

static void test_offsets(void) {
  int dy, dx;
  fm_shift_offset(20, 0, 3, 1, &dy, &dx);
  CHECK(dy == -1 && dx == -1);   // group 0: (-1, -1)
  fm_shift_offset(20, 3, 3, 1, &dy, &dx);
  CHECK(dy == -1 && dx == 0);    // group 1 (G = 2)
  fm_shift_offset(20, 8, 3, 1, &dy, &dx);
  CHECK(dy == 0 && dx == 0);     // group 4: the centre
  fm_shift_offset(20, 17, 3, 1, &dy, &dx);
  CHECK(dy == 1 && dx == 1);    // group 8
  fm_shift_offset(20, 18, 3, 1, &dy, &dx);
  CHECK(dy == 0 && dx == 0);    // remainder
  fm_shift_offset(20, 19, 3, 1, &dy, &dx);
  CHECK(dy == 0 && dx == 0);
  fm_shift_offset(5, 0, 3, 1, &dy, &dx);
  CHECK(dy == 0 && dx == 0);      // C < k^2: none moves
  fm_shift_offset(25, 0, 5, 2, &dy, &dx);
  CHECK(dy == -4 && dx == -4);   // k = 5, dilation 2
  fm_shift_offset(25, 7, 5, 2, &dy, &dx);
  CHECK(dy == -2 && dx == 0);
}

// ---------------------------------------------------------------------------
// forward = the naive reference; backward = the exact adjoint: <S x, r> = <x, S^T r>

static const struct { int n, C, H, W, k, d; } cases[] = {
  {2, 9, 5, 5, 3, 1}, {1, 20, 6, 7, 3, 1}, {2, 5, 4, 4, 3, 1}, {1, 27, 9, 8, 5, 2},
  {1, 18, 3, 3, 3, 2}, {1, 10, 4, 4, 1, 1}, {1, 9, 2, 2, 3, 3},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

static void test_forward_backward(void) {
  for (int t = 0; t < NCASES; t++) {
    int n = cases[t].n, C = cases[t].C, H = cases[t].H, W = cases[t].W, k = cases[t].k, d = cases[t].d;
    size_t sz = (size_t)n * C * H * W;
    float *x = malloc(sizeof(float) * sz), *y = malloc(sizeof(float) * sz), *yr = malloc(sizeof(float) * sz);
    float *r = malloc(sizeof(float) * sz), *g = malloc(sizeof(float) * sz);
    fill(x, sz, 1 + t), fill(r, sz, 100 + t);
    fm_shift_forward(y, x, n, C, H, W, k, d);
    ref_shift(yr, x, n, C, H, W, k, d);
    CHECK(memcmp(y, yr, sizeof(float) * sz) == 0);
    for (size_t i = 0; i < sz; i++) g[i] = 0.5f;   // backward adds
    fm_shift_backward(g, r, n, C, H, W, k, d);
    double a = 0, b = 0;
    for (size_t i = 0; i < sz; i++) a += (double)y[i] * r[i], b += (double)x[i] * (g[i] - 0.5f);
    CHECK_NEAR(a, b, 1e-4 * (1 + fabs(a)));
    free(x), free(y), free(yr), free(r), free(g);
  }
}

// finite differences through conv1x1 -> shift -> conv1x1 -> flatten -> linear
static void grad_check(int C, int hw, int k, int d) {
  FmNetOpts o = fm_net_opts_default();
  o.threads = 1;
  FmNet *net = fm_net_new(2, hw, hw, &o);
  int x = fm_net_conv2d(net, net->input, C, 1, 1, 0, 1);
  x = fm_net_shift(net, x, k, d);
  x = fm_net_conv2d(net, x, 3, 1, 1, 0, 1);
  x = fm_net_linear(net, fm_net_flatten(net, x), 4, 1);
  CHECK(fm_net_finish(net, x) == 0);
  const int n = 2;
  size_t xs = net->tensors[net->input].size * n, ys = 4 * n;
  float *in = malloc(sizeof(float) * xs), *R = malloc(sizeof(float) * ys);
  fill(in, xs, 7), fill(R, ys, 8);
  GcResult r = gc_params(net, in, R, n, 16, NULL, "shift", 0);
  printf("grad check conv1x1-shift(k=%d,d=%d,C=%d)-conv1x1-linear: %d entries, worst relative error %.2e\n", k, d, C,
         r.checked, r.worst);
  CHECK(r.checked > 30 && r.worst < 1e-2);
  fm_net_free(net);
  free(in), free(R);
}

// ---------------------------------------------------------------------------
// the compiled op (kernel interpreter) = the trainer's forward, with no arithmetic

static void test_compiled_op(void) {
  for (int t = 0; t < NCASES; t++) {
    int n = cases[t].n, C = cases[t].C, H = cases[t].H, W = cases[t].W, k = cases[t].k, d = cases[t].d;
    size_t sz = (size_t)n * C * H * W;
    float *x = malloc(sizeof(float) * sz), *y = malloc(sizeof(float) * sz), *want = malloc(sizeof(float) * sz);
    fill(x, sz, 30 + t);
    for (size_t i = 0; i < sz; i++) y[i] = NAN;   // every output must be written
    fm_shift_forward(want, x, n, C, H, W, k, d);
    oc_graph_new(13);
    Tensor *tx = oc_input(FM_F32, 4, (int64_t[]){-1, C, H, W}, x);
    Node *nd = oc_node(OP_Shift, 0, 1, &tx, 1);
    nd->domain = "ai.fewmul";
    oc_attr_i(nd, "kernel_size", k);
    oc_attr_i(nd, "dilation", d);
    nd->out[0]->aux = y;
    KCost cost = {0};
    CHECK(oc_infer(nd) == 0);
    CHECK(oc_run_ex(nd, n, NULL, &cost) == 0);
    CHECK(memcmp(y, want, sizeof(float) * sz) == 0);
    CHECK(cost.muls == 0 && cost.adds == 0 && cost.shifts == 0);
    oc_graph_free();
    free(x), free(y), free(want);
  }
  // bad attributes and shapes fail clearly
  oc_graph_new(13);
  Tensor *tx = oc_input(FM_F32, 4, (int64_t[]){-1, 9, 4, 4}, NULL);
  Node *nd = oc_node(OP_Shift, 0, 1, &tx, 1);
  oc_attr_i(nd, "kernel_size", 4);
  CHECK(oc_infer(nd) != 0 && strstr(fm_errmsg(), "kernel_size"));
  Tensor *t2 = oc_input(FM_F32, 2, (int64_t[]){-1, 9}, NULL);
  Node *n2 = oc_node(OP_Shift, 0, 1, &t2, 1);
  CHECK(oc_infer(n2) != 0 && strstr(fm_errmsg(), "4-D"));
  oc_graph_free();
  printf("compiled Shift = trainer forward on %d cases, 0 multiplications, 0 additions\n", NCASES);
}

// ---------------------------------------------------------------------------
// models: parameter counts (the reference's count.py: weights + BN gamma/beta + fc)

static FmNet *shift_model(const char *name, int e, int c, int hw, int classes) {
  FmNetOpts o = fm_net_opts_default();
  o.threads = 2;
  o.method.shift_expansion = e;
  char err[256];
  FmNet *net = fm_model_build(name, c, hw, hw, classes, &o, err, sizeof err);
  if (!net) fprintf(stderr, "%s: %s\n", name, err);
  return net;
}

static long nparams(const FmNet *net) {
  long s = 0;
  for (int i = 0; i < net->nparams; i++) s += (long)net->params[i].size;
  return s;
}

static void test_models(void) {
  struct { const char *name; int e; long want; } m[] = {
    {"shiftresnet20", 1, 0}, {"shiftresnet20", 3, 95642}, {"shiftresnet20", 6, 0}, {"shiftresnet20", 9, 0},
    {"shiftresnet56", 1, 0}, {"shiftresnet56", 3, 0},
  };
  for (int i = 0; i < (int)(sizeof m / sizeof m[0]); i++) {
    FmNet *net = shift_model(m[i].name, m[i].e, 3, 32, 10);
    CHECK(net != NULL);
    if (!net) continue;
    int shifts = 0;
    for (int l = 0; l < net->nlayers; l++) shifts += fm_shift_layer(&net->layers[l]);
    long p = nparams(net);
    printf("%s --expansion %d (CIFAR-10): %ld parameters, %d shift layers%s\n", m[i].name, m[i].e, p, shifts,
           m[i].want ? " (reference count.py: 95642)" : "");
    if (m[i].want) CHECK(p == m[i].want);
    CHECK(shifts == (!strcmp(m[i].name, "shiftresnet20") ? 9 : 27));
    fm_net_free(net);
  }
  FmNet *r = shift_model("resnet20", 0, 3, 32, 10);
  if (r) printf("resnet20 (CIFAR-10): %ld parameters (reference: 272474)\n", nparams(r)), fm_net_free(r);
}

// ---------------------------------------------------------------------------
// export: Shift nodes with attributes and one function body in standard ops

static void test_export_form(void) {
  FmNet *net = shift_model("shiftresnet20", 1, 3, 8, 4);
  CHECK(net != NULL);
  if (!net) return;
  Graph *g = fm_export_graph(net);
  int shifts = 0;
  for (int i = 0; i < g->nnodes; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_Shift) continue;
    shifts++;
    CHECK(!strcmp(n->domain, "ai.fewmul") && fm_attr_i(n, "kernel_size", 0) == 3 && fm_attr_i(n, "dilation", 0) == 1);
  }
  CHECK(shifts == 9);
  Graph *b = fm_graph_new();
  FmFunction f;
  fm_shift_function(&f, g, b);
  int pads = 0, concat = 0;
  for (int i = 0; i < b->nnodes; i++) pads += b->nodes[i]->op == OP_Pad, concat += b->nodes[i]->op == OP_Concat;
  CHECK(!strcmp(f.name, "Shift") && f.ninputs == 1 && f.nattributes == 2);
  CHECK(pads == 8 && concat == 1);   // the centre group and the remainder are copied as they are
  fm_graph_free(b);
  fm_graph_free(g);
  fm_net_free(net);
}

// ---------------------------------------------------------------------------
// helper modes for tests/e2e/shift_export.sh

// a small net around one shift: conv1x1 (-> C) -> BN -> relu -> shift(k, d) -> conv1x1 -> GAP -> fc
static FmNet *small_net(int c, int hw, int classes, int C, int k, int d) {
  FmNetOpts o = fm_net_opts_default();
  o.threads = 2;
  FmNet *net = fm_net_new(c, hw, hw, &o);
  snprintf(net->model, sizeof net->model, "shift_k%d_d%d", k, d);
  int x = fm_net_relu(net, fm_net_bn(net, fm_net_conv2d(net, net->input, C, 1, 1, 0, 0)));
  x = fm_net_conv2d(net, fm_net_shift(net, x, k, d), 8, 1, 1, 0, 1);
  x = fm_net_linear(net, fm_net_global_avgpool(net, x), classes, 1);
  if (fm_net_finish(net, x)) { fm_net_free(net); return NULL; }
  return net;
}

static int e2e_case(const char *dir, const char *name, FmNet *net, int c, int hw, int classes) {
  if (!net) { fprintf(stderr, "%s: build failed\n", name); return 1; }
  // a few steps: BN statistics and weights move off their init
  return ec_e2e_case(dir, name, net, c, hw, classes, (EcTrain){64, 8, 4, 0, FM_OPT_SGD, 0.05f});
}

static int cmd_e2e(const char *dir) {
  mkdir(dir, 0755);
  int rc = 0;
  rc |= e2e_case(dir, "shiftresnet20_e1", shift_model("shiftresnet20", 1, 3, 32, 10), 3, 32, 10);
  rc |= e2e_case(dir, "shift_k3_c18", small_net(3, 9, 5, 18, 3, 1), 3, 9, 5);     // no remainder
  rc |= e2e_case(dir, "shift_k5_d2_c27", small_net(3, 11, 5, 27, 5, 2), 3, 11, 5); // remainder 2
  return rc ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--e2e")) return cmd_e2e(argv[2]);
  if (argc == 5 && !strcmp(argv[1], "--compare")) return ec_compare(argv[2], argv[3], atof(argv[4]));
  test_offsets();
  test_forward_backward();
  grad_check(9, 5, 3, 1);
  grad_check(11, 6, 3, 2);
  grad_check(25, 7, 5, 1);
  test_compiled_op();
  test_models();
  test_export_form();
  return check_done("test_shift");
}
