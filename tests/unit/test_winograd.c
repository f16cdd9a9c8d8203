/* test_winograd.c - Winograd-aware convs (trainer/method_winograd.h): Cook-Toom transforms
 * against direct correlation, static Winograd layers against the dense conv (F2/F4/F6, pads
 * 0 and 1, crops, bias), finite-difference gradients in float mode (input, W, bias, and the
 * flex transforms Bt, G, At), the fake quantiser, the method hook on mnist_cnn / resnet18,
 * and a training smoke.
 *
 * Also the helper of tests/e2e/winograd_export.sh:
 *   test_winograd --e2e DIR              trains Winograd models a few steps, writes DIR/<case>.onnx,
 *                                        _in.npy, _ref.npy (the trainer's eval forward); lists cases
 *   test_winograd --compare REF GOT TOL  max |REF - GOT| <= TOL and the same argmax per row */
#include "check.h"
#include "gradcheck.h"
#include "e2echeck.h"
#include "data.h"
#include "export.h"
#include "method_winograd.h"
#include "models.h"
#include "net.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// ---------------------------------------------------------------------------
// transforms: y = At[(G g) . (Bt d)] is the correlation y_i = sum_k g_k d_{i+k}

static void test_transforms(void) {
  FmRng r;
  fm_rng_seed(&r, 5);
  for (int m = 2; m <= 6; m += 2) {
    int a = m + 2;
    float Bt[64], G[24], At[48];
    CHECK(fm_wino_transforms(m, Bt, G, At) == 0);
    double worst = 0;
    for (int trial = 0; trial < 20; trial++) {
      double g[3], d[8], u[8], v[8];
      for (int k = 0; k < 3; k++) g[k] = fm_rng_normal(&r);
      for (int i = 0; i < a; i++) d[i] = fm_rng_normal(&r);
      for (int j = 0; j < a; j++) {
        u[j] = v[j] = 0;
        for (int k = 0; k < 3; k++) u[j] += G[j * 3 + k] * g[k];
        for (int i = 0; i < a; i++) v[j] += Bt[j * a + i] * d[i];
      }
      for (int i = 0; i < m; i++) {
        double y = 0, ref = 0;
        for (int j = 0; j < a; j++) y += At[i * a + j] * u[j] * v[j];
        for (int k = 0; k < 3; k++) ref += g[k] * d[i + k];
        worst = fmax(worst, fabs(y - ref));
      }
    }
    printf("F(%d,3) 1-D transforms: worst |error| %.2e\n", m, worst);
    CHECK(worst < 1e-5);
  }
  float Bt[64], G[24], At[48];
  CHECK(fm_wino_transforms(3, Bt, G, At) == -1);
  // F(2,3) with points 0, 1, -1: Bt integer, the 1/2 in G
  fm_wino_transforms(2, Bt, G, At);
  int integral = 1;
  for (int i = 0; i < 16; i++) integral &= Bt[i] == roundf(Bt[i]);
  CHECK(integral);
  CHECK_NEAR(0.5, fabs(G[3]), 0);
}

// ---------------------------------------------------------------------------
// a one-layer net: channel scale (so dX shows up as its gradient) -> winograd conv

static FmNet *one_layer(int c, int h, int w, int k, int pad, int m, int flex, int bits, int bias) {
  FmNetOpts o = fm_net_opts_default();
  o.seed = 7, o.threads = 1;
  FmNet *net = fm_net_new(c, h, w, &o);
  int x = fm_net_channel_scale(net, net->input, 1.0f);
  FmConvAttr a = fm_conv_attr(0, k, 3, 1, pad, 1, 1);
  x = fm_net_winograd_conv2d(net, x, &a, m, flex, bits, bias);
  if (fm_net_finish(net, x)) { fprintf(stderr, "one_layer: %s\n", net->err); fm_net_free(net); return NULL; }
  FmRng r;
  fm_rng_seed(&r, 21);
  const FmParam *sc = fm_layer_param(net, &net->layers[0], 0);
  for (size_t i = 0; i < sc->size; i++) sc->data[i] = 0.5f + fm_rng_uniform(&r);
  return net;
}

static void test_static_equals_direct(void) {
  struct { int c, h, w, k, pad, m, bias; } cs[] = {
    {3, 8, 8, 4, 1, 2, 1}, {2, 7, 9, 3, 1, 4, 0}, {4, 12, 12, 5, 1, 6, 1}, {3, 11, 10, 2, 0, 4, 1},
    {2, 5, 5, 3, 0, 6, 0}, {3, 1, 1, 2, 1, 4, 1},
  };
  FmRng r;
  fm_rng_seed(&r, 3);
  for (size_t t = 0; t < sizeof cs / sizeof cs[0]; t++) {
    FmNet *net = one_layer(cs[t].c, cs[t].h, cs[t].w, cs[t].k, cs[t].pad, cs[t].m, 0, 0, cs[t].bias);
    CHECK(net != NULL);
    if (!net) continue;
    const FmLayer *l = &net->layers[1];
    CHECK(fm_wino_layer(l));
    int n = 3;
    size_t xs = (size_t)n * cs[t].c * cs[t].h * cs[t].w;
    float *x = malloc(sizeof(float) * xs);
    for (size_t i = 0; i < xs; i++) x[i] = fm_rng_normal(&r);
    const float *y = fm_net_forward(net, x, n, 0);
    const FmTensor *yt = &net->tensors[net->output];
    // direct conv of the scaled input
    const float *xs_ = net->tensors[l->in[0]].data;
    FmConvAttr a = fm_conv_attr(cs[t].c, cs[t].k, 3, 1, cs[t].pad, 1, 1);
    size_t ys = (size_t)n * yt->size;
    float *ref = malloc(sizeof(float) * ys), *work = malloc(sizeof(float) * fm_conv2d_workspace(&a, cs[t].h, cs[t].w, 1));
    const FmParam *b = fm_layer_param(net, l, 1);
    fm_conv2d_forward(ref, xs_, fm_layer_param(net, l, 0)->data, b ? b->data : NULL, n, cs[t].h, cs[t].w, &a, work, 1);
    double worst = 0, mag = 0;
    for (size_t i = 0; i < ys; i++) worst = fmax(worst, fabs((double)y[i] - ref[i])), mag = fmax(mag, fabs(ref[i]));
    printf("static F(%dx%d,3x3) vs direct conv %dx%dx%d pad %d: max |diff| %.2e (max |y| %.2f)\n", cs[t].m, cs[t].m,
           cs[t].c, cs[t].h, cs[t].w, cs[t].pad, worst, mag);
    CHECK(yt->h == cs[t].h + 2 * cs[t].pad - 2 && yt->w == cs[t].w + 2 * cs[t].pad - 2);
    CHECK(worst < 1e-5 * fmax(1.0, mag) * (cs[t].m == 6 ? 10 : 1));
    free(x), free(ref), free(work);
    fm_net_free(net);
  }
}

// ---------------------------------------------------------------------------
// gradients: d(sum y*R)/d(every trained parameter) by central differences

static int is_transform(const FmParam *p) {
  return strstr(p->name, ".Bt") || strstr(p->name, ".G") || strstr(p->name, ".At");
}

static void grad_check(const char *label, FmNet *net, int n, int want_transforms) {
  const FmTensor *in = &net->tensors[net->input];
  size_t xs = in->size * (size_t)n, ys = net->tensors[net->output].size * (size_t)n;
  float *x = malloc(sizeof(float) * xs), *R = malloc(sizeof(float) * ys);
  FmRng rng;
  fm_rng_seed(&rng, 99);
  for (size_t i = 0; i < xs; i++) x[i] = fm_rng_normal(&rng);
  for (size_t i = 0; i < ys; i++) R[i] = fm_rng_normal(&rng);
  GcResult r = gc_params(net, x, R, n, 12, is_transform, label, 1e-2);
  printf("grad check %-30s %3d entries (%2d of transforms), worst relative error %.2e\n", label, r.checked,
         r.counted, r.worst);
  CHECK(r.checked > 12 && r.worst < 1e-2);
  CHECK(want_transforms ? r.counted > 20 : r.counted == 0);
  free(x), free(R);
}

static void test_gradients(void) {
  struct { const char *label; int c, h, w, k, pad, m, flex, bias; } cs[] = {
    {"static F2 pad 1", 3, 6, 5, 4, 1, 2, 0, 1},
    {"static F4 pad 0 (crop)", 2, 9, 7, 3, 0, 4, 0, 0},
    {"flex F2 pad 1", 2, 5, 6, 3, 1, 2, 1, 1},
    {"flex F4 pad 1 (crop)", 3, 7, 7, 2, 1, 4, 1, 0},
    {"flex F6 pad 1", 2, 8, 8, 2, 1, 6, 1, 1},
  };
  for (size_t t = 0; t < sizeof cs / sizeof cs[0]; t++) {
    FmNet *net = one_layer(cs[t].c, cs[t].h, cs[t].w, cs[t].k, cs[t].pad, cs[t].m, cs[t].flex, 0, cs[t].bias);
    CHECK(net != NULL);
    if (!net) continue;
    grad_check(cs[t].label, net, 2, cs[t].flex);
    fm_net_free(net);
  }
}

// ---------------------------------------------------------------------------
// quantisation: values on the b-bit grid of max|x|; the layer with many bits ~ float

#define QM 2
static void test_quant(void) {
  float x[7] = {0.3f, -1.27f, 0.011f, 0.5f, 0.0f, 1.0f, -0.634f};
  fm_wino_quantize(x, 7, 8);
  float s = 1.27f / 127.0f;
  int on_grid = 1;
  for (int i = 0; i < 7; i++) on_grid &= fabsf(x[i] / s - roundf(x[i] / s)) < 1e-3f;
  CHECK(on_grid);
  CHECK_NEAR(-1.27, x[1], 1e-6);
  CHECK_NEAR(0.0, x[4], 0);
  float z[3] = {0, 0, 0};
  fm_wino_quantize(z, 3, 4);   // all zero: no NaN
  CHECK(z[0] == 0 && z[2] == 0);
  FmRng r;
  fm_rng_seed(&r, 8);
  int n = 2;
  float xin[2 * 3 * 8 * 8];
  for (int i = 0; i < 2 * 3 * 64; i++) xin[i] = fm_rng_normal(&r);
  double diff[3];
  int bits[3] = {16, 8, 3};
  FmNet *ref = one_layer(3, 8, 8, 4, 1, QM, 0, 0, 1);
  const float *y0 = fm_net_forward(ref, xin, n, 0);
  size_t ys = (size_t)n * ref->tensors[ref->output].size;
  for (int b = 0; b < 3; b++) {
    FmNet *net = one_layer(3, 8, 8, 4, 1, QM, 0, bits[b], 1);
    const float *y = fm_net_forward(net, xin, n, 0);
    diff[b] = 0;
    for (size_t i = 0; i < ys; i++) diff[b] = fmax(diff[b], fabs((double)y[i] - y0[i]));
    fm_net_free(net);
  }
  printf("quantised F%d vs float: max |diff| 16 bits %.2e, 8 bits %.2e, 3 bits %.2e\n", QM, diff[0], diff[1], diff[2]);
  CHECK(diff[0] < 1e-3 && diff[1] > diff[0] && diff[2] > diff[1]);
  // straight-through: the quantised layer's gradients equal the float ones closely at 16 bits
  FmNet *q = one_layer(3, 8, 8, 4, 1, QM, 1, 16, 1);
  float R[2 * 4 * 8 * 8];
  for (size_t i = 0; i < ys; i++) R[i] = fm_rng_normal(&r);
  FmNet *nets[2] = {ref, q};
  float *g[2];
  for (int k = 0; k < 2; k++) {
    fm_net_zero_grad(nets[k]);
    fm_net_forward(nets[k], xin, n, 1);
    fm_net_zero_act_grad(nets[k]);
    memcpy(nets[k]->tensors[nets[k]->output].grad, R, sizeof(float) * ys);
    fm_net_backward(nets[k]);
    g[k] = fm_layer_param(nets[k], &nets[k]->layers[1], 0)->grad;
  }
  double gd = 0;
  for (int i = 0; i < 4 * 3 * 9; i++) gd = fmax(gd, fabs((double)g[0][i] - g[1][i]));
  CHECK(gd < 1e-2);
  CHECK(fm_layer_param(q, &q->layers[1], 2)->grad[0] != 0 || fm_layer_param(q, &q->layers[1], 2)->grad[1] != 0);
  fm_net_free(ref), fm_net_free(q);
}

// ---------------------------------------------------------------------------
// the method hook: stride-1 3x3 convs become Winograd layers, the first conv and linears stay dense

static FmNet *model(const char *name, int c, int hw, int classes, int m, int flex, int bits, int all) {
  FmNetOpts o = fm_net_opts_default();
  o.seed = 11, o.threads = 1, o.width = 0.125f;
  fm_method_defaults(&o.method, FM_METHOD_WINOGRAD);
  o.method.wino_tile = m, o.method.wino_flex = flex, o.method.wino_bits = bits, o.method.all = all;
  char err[256];
  FmNet *net = fm_model_build(name, c, hw, hw, classes, &o, err, sizeof err);
  if (!net) fprintf(stderr, "%s: %s\n", name, err);
  return net;
}

static void count(const FmNet *net, int *wino, int *conv, int *lin) {
  *wino = *conv = *lin = 0;
  for (int i = 0; i < net->nlayers; i++) {
    const FmLayer *l = &net->layers[i];
    *wino += fm_wino_layer(l);
    *conv += l->kind == FM_LAYER_CONV2D;
    *lin += l->kind == FM_LAYER_LINEAR;
  }
}

static void test_models(void) {
  int w, c, l;
  FmNet *net = model("mnist_cnn", 1, 12, 4, 4, 0, 0, 0);
  CHECK(net != NULL);
  count(net, &w, &c, &l);
  CHECK(w == 1 && c == 1 && l == 2);
  fm_net_free(net);
  net = model("mnist_cnn", 1, 12, 4, 2, 1, 8, 1);
  count(net, &w, &c, &l);
  CHECK(w == 2 && c == 0 && l == 2);
  fm_net_free(net);
  // resnet18 (CIFAR form): 17 3x3 convs, all stride 1; the stem stays dense, 3 1x1 shortcuts dense
  net = model("resnet18", 3, 16, 10, 4, 1, 8, 0);
  CHECK(net != NULL);
  count(net, &w, &c, &l);
  printf("resnet18 winograd: %d Winograd convs, %d dense convs, %d linear\n", w, c, l);
  CHECK(w == 16 && c == 5 && l == 1);   // the stem and 4 1x1 shortcuts dense
  fm_net_free(net);
}

// ---------------------------------------------------------------------------
// training smoke: a flex 8-bit mnist_cnn fits a batch of a synthetic task

static void test_training(void) {
  FmNet *net = model("mnist_cnn", 1, 12, 4, 4, 1, 8, 1);
  FmDataset tr;
  char err[256];
  CHECK(fm_data_synthetic(&tr, 128, 1, 12, 12, 4, 5, err, sizeof err) == 0);
  size_t d = 144;
  float *x = malloc(sizeof(float) * d * tr.n);
  int *y = malloc(sizeof(int) * tr.n);
  for (int i = 0; i < tr.n; i++) fm_data_image_float(&tr, i, x + i * d), y[i] = tr.labels[i];
  FmOptimConfig cfg;
  fm_optim_defaults(&cfg, FM_OPT_SGD);
  cfg.lr = 0.01f, cfg.momentum = 0.9f;
  FmOptim *opt = fm_net_optim_new(net, &cfg);
  int wl = 0;
  while (!fm_wino_layer(&net->layers[wl])) wl++;
  const FmParam *bt = fm_layer_param(net, &net->layers[wl], 2);
  float bt0 = bt->data[1];
  float first = 0, last = 0;
  for (int s = 0; s < 40; s++) {   // fits one batch
    int o = 0;
    fm_net_zero_grad(net);
    fm_net_forward(net, x + o * d, 32, 1);
    float L = fm_net_loss(net, y + o, 32, NULL);
    if (s < 4) first += L / 4;
    if (s >= 36) last += L / 4;
    fm_net_backward(net);
    fm_net_step(net, opt, cfg.lr);
  }
  printf("training flex F4 8-bit mnist_cnn: loss %.3f -> %.3f, Bt[0][1] %.4f -> %.4f\n", first, last, bt0, bt->data[1]);
  CHECK(last < first);
  CHECK(bt->data[1] != bt0);   // flex: the transforms moved
  fm_optim_free(opt);
  fm_net_free(net);
  fm_data_free(&tr);
  free(x), free(y);
}

// ---------------------------------------------------------------------------
// helper modes for tests/e2e/winograd_export.sh

static int e2e_case(const char *dir, const char *name, const char *mname, int c, int hw, int classes, int m, int flex,
                    int bits, int all) {
  // 6 steps, then 30 train-mode forwards: BN running stats settle
  return ec_e2e_case(dir, name, model(mname, c, hw, classes, m, flex, bits, all), c, hw, classes,
                     (EcTrain){64, 16, 6, 30, FM_OPT_SGD, 0.01f});
}

static int cmd_e2e(const char *dir) {
  mkdir(dir, 0777);
  int rc = 0;
  rc |= e2e_case(dir, "cnn_static_f2", "mnist_cnn", 1, 12, 4, 2, 0, 0, 1);   // pad 0, crops
  rc |= e2e_case(dir, "cnn_flex_f4", "mnist_cnn", 1, 13, 4, 4, 1, 0, 0);
  rc |= e2e_case(dir, "cnn_static_f6", "mnist_cnn", 1, 12, 4, 6, 0, 0, 1);
  rc |= e2e_case(dir, "cnn_flex_f4_8bit", "mnist_cnn", 1, 12, 4, 4, 1, 8, 1);
  rc |= e2e_case(dir, "cnn_static_f2_4bit", "mnist_cnn", 1, 12, 4, 2, 0, 4, 0);
  rc |= e2e_case(dir, "resnet18_flex_f4", "resnet18", 3, 16, 5, 4, 1, 0, 0);
  rc |= e2e_case(dir, "resnet18_static_f2_8bit", "resnet18", 3, 8, 5, 2, 0, 8, 0);
  return rc;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--e2e")) return cmd_e2e(argv[2]);
  if (argc == 5 && !strcmp(argv[1], "--compare")) return ec_compare(argv[2], argv[3], atof(argv[4]));
  test_transforms();
  test_static_equals_direct();
  test_gradients();
  test_quant();
  test_models();
  test_training();
  return check_done("test_winograd");
}
