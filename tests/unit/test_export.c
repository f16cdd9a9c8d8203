/* test_export.c - train -> export ONNX -> (fewmul compile | ONNX Runtime) must give
 * the trainer's own eval-mode outputs: max abs difference < 1e-4 and identical argmax
 * on 1,000 test images (Fashion-MNIST when installed, else synthetic images).
 * The ONNX Runtime half is skipped, with a message, when onnxruntime-node is absent. */
#include "check.h"
#include "data.h"
#include "emit/codegen.h"
#include "export.h"
#include "fewmul.h"
#include "io/io.h"
#include "models.h"
#include "onnx/onnx.h"
#include "passes/passes.h"
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NIMG 1000

static int argmax(const float *r, int k) {
  int b = 0;
  for (int i = 1; i < k; i++)
    if (r[i] > r[b]) b = i;
  return b;
}

static void compare(const char *what, const float *ref, const float *got, int n, int k) {
  double maxd = 0;
  int same = 1;
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < k; j++) {
      double d = fabs((double)ref[i * k + j] - (double)got[i * k + j]);
      if (!(d <= maxd)) maxd = d; /* NaN propagates */
    }
    same &= argmax(ref + i * k, k) == argmax(got + i * k, k);
  }
  printf("  %-28s max abs diff %.3g, argmax %s\n", what, maxd, same ? "identical" : "DIFFERENT");
  CHECK(maxd < 1e-4);
  CHECK(same);
}

static void one_model(const char *name, const FmDataset *train, const float *x, int n, const char *tmp) {
  char err[512];
  FmNetOpts o = fm_net_opts_default();
  o.nmean = 1, o.mean[0] = 0.286f, o.std[0] = 0.353f;
  o.threads = 2;
  FmNet *net = fm_model_build(name, train->c, train->h, train->w, train->classes, &o, err, sizeof err);
  CHECK(net != NULL);
  if (!net) return;
  /* A few training steps so BN running statistics and weights are not the init. */
  FmOptimConfig oc;
  fm_optim_defaults(&oc, FM_OPT_SGD);
  oc.lr = 0.05f, oc.momentum = 0.9f;
  FmOptim *opt = fm_net_optim_new(net, &oc);
  FmLoaderConfig lc = {.batch = 32, .shuffle = 1, .seed = 7};
  FmLoader *ld = fm_loader_new(train, &lc, err, sizeof err);
  fm_loader_start_epoch(ld, 0);
  FmBatch b;
  for (int s = 0; s < 5 && fm_loader_next(ld, &b); s++) {
    fm_net_zero_grad(net);
    fm_net_forward(net, b.x, b.n, 1);
    fm_net_loss(net, b.y, b.n, NULL);
    fm_net_backward(net);
    fm_net_step(net, opt, oc.lr);
  }
  fm_loader_free(ld);
  int k = fm_net_num_classes(net);
  float *ref = malloc(sizeof(float) * (size_t)n * (size_t)k);
  for (int s = 0; s < n; s += 250) {
    int m = n - s < 250 ? n - s : 250;
    const float *y = fm_net_forward(net, x + (size_t)s * (size_t)(train->c * train->h * train->w), m, 0);
    memcpy(ref + (size_t)s * (size_t)k, y, sizeof(float) * (size_t)m * (size_t)k);
  }
  printf("%s (%d images)\n", name, n);

  /* Export, compile with fewmul, run with the runtime. */
  char onnx[600], out[600];
  snprintf(onnx, sizeof onnx, "%s/%s.onnx", tmp, name);
  snprintf(out, sizeof out, "%s/%s_c", tmp, name);
  CHECK(fm_export_onnx(net, onnx, err, sizeof err) == 0);
  FmTry t;
  FM_TRY(&t) {
    Graph *g = fm_onnx_load(onnx, NULL);
    fm_run_passes(g, NULL);
    KProgram *p = fm_lower_graph(g);
    FmCodegenOpts co = {.outdir = out, .name = "model", .quiet = 1};
    fm_codegen(p, &co);
    fm_graph_free(g);
    fm_try_pop(&t);
  } else {
    fprintf(stderr, "compile failed: %s\n", fm_errmsg());
    CHECK(0);
    return;
  }
  fm_model *mdl;
  CHECK(fm_load(out, &mdl) == FM_OK);
  float *got = malloc(sizeof(float) * (size_t)n * (size_t)k);
  const void *ins[1] = {x};
  void *outs[1] = {got};
  CHECK(fm_run(mdl, n, ins, outs) == FM_OK);
  compare("fewmul compile vs trainer:", ref, got, n, k);
  fm_free(mdl);

  /* The same model in ONNX Runtime. */
  char xin[600], res[600], cmd[2400], outnpy[700];
  snprintf(xin, sizeof xin, "%s/%s_x.npy", tmp, name);
  snprintf(res, sizeof res, "%s/%s_ort", tmp, name);
  FmArray a = {.dtype = FM_F32, .rank = 4, .dims = {n, train->c, train->h, train->w}, .data = (void *)x,
               .nbytes = sizeof(float) * (size_t)n * (size_t)(train->c * train->h * train->w)};
  fm_npy_write(xin, &a);
  snprintf(cmd, sizeof cmd, "node %s/tools/ort/ort_run.js %s %s %s", FM_SOURCE_DIR, onnx, res, xin);
  int rc = system(cmd);
  if (rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 77) {
    printf("  SKIP: ONNX Runtime (onnxruntime-node) is not installed: the ORT comparison is skipped\n");
  } else {
    CHECK(rc == 0);
    snprintf(outnpy, sizeof outnpy, "%s/output.npy", res);
    FmArray r = {0};
    FM_TRY(&t) {
      fm_npy_read(outnpy, &r);
      fm_try_pop(&t);
    } else {
      fprintf(stderr, "%s\n", fm_errmsg());
    }
    CHECK(r.data && fm_array_numel(&r) == (int64_t)n * k);
    if (r.data && fm_array_numel(&r) == (int64_t)n * k) compare("ONNX Runtime vs trainer:", ref, r.data, n, k);
    fm_array_free(&r);
  }
  free(ref), free(got);
  fm_optim_free(opt);
  fm_net_free(net);
}

int main(void) {
  char err[512];
  FmDataset train, test;
  int real = fm_data_load(&train, "fashion-mnist", NULL, 1, err, sizeof err) == 0 &&
             fm_data_load(&test, "fashion-mnist", NULL, 0, err, sizeof err) == 0;
  if (!real) {
    printf("Fashion-MNIST not installed (%s): using synthetic 1x28x28 images\n", err);
    CHECK(fm_data_load(&train, "synthetic:1x28x28", NULL, 1, err, sizeof err) == 0);
    CHECK(fm_data_load(&test, "synthetic:1x28x28", NULL, 0, err, sizeof err) == 0);
  }
  fm_data_take(&train, 2000);
  int n = test.n < NIMG ? test.n : NIMG;
  size_t img = (size_t)test.c * test.h * test.w;
  float *x = malloc(sizeof(float) * (size_t)n * img);
  for (int i = 0; i < n; i++) fm_data_image_float(&test, i, x + (size_t)i * img);
  char tmp[] = "/tmp/fm_test_export_XXXXXX";
  CHECK(mkdtemp(tmp) != NULL);
  one_model("mnist_cnn", &train, x, n, tmp);
  one_model("resnet20", &train, x, n, tmp);
  one_model("mlp", &train, x, n, tmp);
  char rm[700];
  snprintf(rm, sizeof rm, "rm -rf %s", tmp);
  if (system(rm)) {}
  free(x);
  fm_data_free(&train), fm_data_free(&test);
  return check_done("test_export");
}
