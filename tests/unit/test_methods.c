/* test_methods.c - the training methods (trainer/method.h): quantisers on known
 * values, straight-through gradients against a dense twin net, layer choice,
 * post-step rules, export structure, and a few-step training smoke per method.
 *
 * Also the helper of tests/e2e/methods_export.sh:
 *   test_methods --e2e DIR                 trains each method a few steps, writes
 *                                          DIR/<case>.onnx, _in.npy, _ref.npy; lists cases
 *   test_methods --compare REF GOT TOL     max |REF - GOT| <= TOL and the same argmax per row
 *   test_methods --data SPEC DIR           the test split of data set SPEC as DIR/x.npy
 *   test_methods --accuracy LOGITS SPEC    accuracy (%) of LOGITS against SPEC's test labels */
#include "check.h"
#include "e2echeck.h"
#include "data.h"
#include "export.h"
#include "models.h"
#include "net.h"
#include "onnx/onnx.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// ---------------------------------------------------------------------------
// quantisers

static void test_ternary(void) {
  const float w[3 * 6] = {
    0.1f, -0.9f, 0.5f, 0.05f, -0.3f, 0.0f,   // mean|w| .30833, delta .21583
    0, 0, 0, 0, 0, 0,                        // nothing passes: alpha 0
    0.2f, 0.2f, -0.2f, 0.2f, -0.2f, 0.2f,    // all equal: all pass
  };
  int8_t q[18];
  float alpha[3], wq[18];
  fm_ternarize(w, 3, 6, q, alpha, wq);
  const int8_t q0[6] = {0, -1, 1, 0, -1, 0};
  CHECK(!memcmp(q, q0, 6));
  CHECK_NEAR((0.9 + 0.5 + 0.3) / 3, alpha[0], 1e-6);
  CHECK(alpha[1] == 0.0f);
  for (int i = 6; i < 12; i++) CHECK(q[i] == 0 && wq[i] == 0.0f);
  CHECK_NEAR(0.2, alpha[2], 1e-7);
  for (int i = 12; i < 18; i++) CHECK(q[i] == (w[i] > 0 ? 1 : -1));
  for (int i = 0; i < 18; i++) CHECK(wq[i] == (float)q[i] * alpha[i / 6]);
  // the threshold is strict: |w| == delta stays 0
  const float e[4] = {0.7f, 0.7f, 0.7f, 0.7f * 0.7f};
  int8_t qe[4];
  float ae;
  fm_ternarize(e, 1, 4, qe, &ae, NULL);
  CHECK(qe[0] == 1 && qe[1] == 1 && qe[2] == 1);
}

// --act-fixed I.F: multiples of 2^-F, round half to even, clamped to
// [-2^(I-1), 2^(I-1) - 2^-F]; in place works too
static void test_fixed_point(void) {
  const float x[9] = {0.3f, 0.125f, 0.375f, -0.375f, 100.0f, -100.0f, 7.75f, -8.0f, 1e-3f};
  const float want[9] = {0.25f, 0.0f, 0.5f, -0.5f, 7.75f, -8.0f, 7.75f, -8.0f, 0.0f};
  float y[9];
  fm_fixed_round(x, 9, 4, 2, y);
  for (int i = 0; i < 9; i++) CHECK(y[i] == want[i]);
  float lo, hi;
  fm_fixed_bounds(16, 16, &lo, &hi);
  CHECK(lo == -2147483648.0f && hi == 2147483648.0f);   // 2^31 - 1 rounds to 2^31 in float
  float z[2] = {1.0f / 3, -2.5f};
  fm_fixed_round(z, 2, 16, 16, z);
  CHECK(z[0] == 21845.0f / 65536 && z[1] == -2.5f);
  FmMethod m;
  char err[200];
  fm_method_defaults(&m, FM_METHOD_TERNARY);
  m.act_int = 16, m.act_frac = 16;
  CHECK(fm_method_check(&m, err, sizeof err) == -1 && strstr(err, "deepshift"));
  fm_method_defaults(&m, FM_METHOD_DEEPSHIFT_PS);
  m.act_int = 20, m.act_frac = 16;
  CHECK(fm_method_check(&m, err, sizeof err) == -1);
  m.act_int = 16;
  CHECK(fm_method_check(&m, err, sizeof err) == 0);
}

static void test_deepshift(void) {
  CHECK(fm_deepshift_pmin(5) == -14);
  CHECK(fm_deepshift_pmin(2) == 0);
  CHECK(fm_deepshift_pmin(8) == -126);
  const float w[7] = {0.3f, -0.75f, 3.0f, 1e-6f, 0.0f, -0.0625f, 0.5f};
  int8_t sg[7], sh[7];
  float wq[7];
  fm_pow2_round(w, 7, -14, sg, sh, wq);
  CHECK(wq[0] == 0.25f && sh[0] == -2 && sg[0] == 1);         // log2 .3 = -1.74
  CHECK(wq[1] == -1.0f && sh[1] == 0 && sg[1] == -1);         // log2 .75 = -0.42
  CHECK(wq[2] == 1.0f && sh[2] == 0);                         // clamped to 2^0
  CHECK(wq[3] == ldexpf(1, -14) && sh[3] == -14);             // clamped to 2^pmin
  CHECK(wq[4] == 0.0f && sg[4] == 0);                         // zero stays zero
  CHECK(wq[5] == -0.0625f && sh[5] == -4);                    // exact powers are kept
  CHECK(wq[6] == 0.5f && sh[6] == -1);
  float w3 = 0.1f, q3;
  fm_pow2_round(&w3, 1, fm_deepshift_pmin(3), NULL, NULL, &q3);   // 3 bits: shifts [-2, 0]
  CHECK(q3 == 0.25f);

  const float P[6] = {-2.4f, -2.6f, 0.7f, -20.0f, -1.0f, -3.5f};
  const float S[6] = {1.0f, -0.6f, 2.0f, 0.3f, 0.5f, 1.5f};
  fm_pow2_ps(P, S, 6, -14, sg, sh, wq);
  CHECK(wq[0] == 0.25f);                    // P rounds to -2
  CHECK(wq[1] == -0.125f);                  // -3, sign(round(-0.6)) = -1
  CHECK(wq[2] == 1.0f && sh[2] == 0);       // round(0.7) = 1, clamped to 0
  CHECK(wq[3] == 0.0f && sg[3] == 0);       // round(0.3) = 0: sign 0
  CHECK(wq[4] == 0.0f);                     // round(0.5) = 0 (ties to even, as torch.round)
  CHECK(wq[5] == 0.0625f && sg[5] == 1);    // round(-3.5) = -4; round(1.5) = 2 -> sign 1
  fm_pow2_ps(&P[3], &S[0], 1, -14, NULL, sh, NULL);
  CHECK(sh[0] == -14);
}

static void test_grid(void) {
  int lo, hi;
  fm_quant_grid_range(3, 0, &lo, &hi);
  CHECK(lo == -4 && hi == 3);
  fm_quant_grid_range(3, 1, &lo, &hi);
  CHECK(lo == -4 && hi == 4);
  fm_quant_grid_range(8, 0, &lo, &hi);
  CHECK(lo == -128 && hi == 127);
  CHECK(fm_quant_step(1.0f, 3) == 0.25f);
  float st = 0.25f;
  // deterministic: nearest grid point, ties to even, clamped
  CHECK(fm_quant_round(0.3f, st, 3, 0, NULL) == 1);
  CHECK(fm_quant_round(0.375f, st, 3, 0, NULL) == 2);    // 1.5 -> 2
  CHECK(fm_quant_round(0.625f, st, 3, 0, NULL) == 2);    // 2.5 -> 2
  CHECK(fm_quant_round(-0.1f, st, 3, 0, NULL) == 0);
  CHECK(fm_quant_round(10.0f, st, 3, 0, NULL) == 3);
  CHECK(fm_quant_round(-10.0f, st, 3, 0, NULL) == -4);
  CHECK(fm_quant_round(NAN, st, 3, 0, NULL) == -4);
  // zero-less: never 0, +-1 nearest to 0, range to +-2^(b-1)
  CHECK(fm_quant_round(0.01f, st, 3, 1, NULL) == 1);
  CHECK(fm_quant_round(-0.01f, st, 3, 1, NULL) == -1);
  CHECK(fm_quant_round(0.0f, st, 3, 1, NULL) == 1);
  CHECK(fm_quant_round(0.9f, st, 3, 1, NULL) == 4);
  CHECK(fm_quant_round(-1.2f, st, 3, 1, NULL) == -4);
  CHECK(fm_quant_round(-0.3f, st, 3, 1, NULL) == -1);
  CHECK(fm_quant_round(0.625f, st, 3, 1, NULL) == 2);
  // 1-bit zero-less is binary
  CHECK(fm_quant_round(-0.2f, 1.0f, 1, 1, NULL) == -1 && fm_quant_round(0.2f, 1.0f, 1, 1, NULL) == 1);
  FmRng r;
  fm_rng_seed(&r, 3);
  int zeros = 0, outside = 0;
  for (int i = 0; i < 20000; i++) {
    float x = (fm_rng_uniform(&r) - 0.5f) * 3;
    int d = fm_quant_round(x, st, 3, 1, NULL), s = fm_quant_round(x, st, 3, 1, &r);
    zeros += d == 0 || s == 0;
    outside += d < -4 || d > 4 || s < -4 || s > 4;
  }
  CHECK(zeros == 0 && outside == 0);
  // arrays: values are k * step; deterministic quantisation is idempotent
  float w[5] = {0.3f, -0.7f, 0.05f, 1.0f, -1.0f}, k2[5];
  int8_t k[5];
  fm_quant_array(w, 5, st, 3, 0, NULL, k, w);
  for (int i = 0; i < 5; i++) CHECK(w[i] == (float)k[i] * st);
  memcpy(k2, w, sizeof w);
  fm_quant_array(k2, 5, st, 3, 0, NULL, NULL, k2);
  CHECK(!memcmp(k2, w, sizeof w));
}

static void test_stochastic(void) {
  FmRng r;
  const int N = 200000;
  struct { float x, step; int bits, zl; } c[] = {
    {0.3f, 0.25f, 3, 0},     // u = 1.2: 1 or 2
    {-0.45f, 0.25f, 3, 0},   // u = -1.8
    {0.05f, 0.25f, 3, 1},    // u = 0.2: -1 or 1 (zero-less), P(1) = 0.6
    {-0.1f, 0.25f, 3, 1},    // u = -0.4
    {0.07f, 0.01f, 8, 0},    // u = 7
  };
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
    fm_rng_seed(&r, 42 + i);
    double sum = 0;
    int lo = 1 << 20, hi = -(1 << 20);
    for (int t = 0; t < N; t++) {
      int k = fm_quant_round(c[i].x, c[i].step, c[i].bits, c[i].zl, &r);
      sum += k;
      lo = k < lo ? k : lo, hi = k > hi ? k : hi;
    }
    double u = c[i].x / c[i].step;
    CHECK_NEAR(u, sum / N, 0.01);                 // unbiased
    CHECK(lo >= floor(u) - (c[i].zl && fabs(u) < 1) && hi <= ceil(u) + (c[i].zl && fabs(u) < 1));   // neighbours only
  }
  // seeded: the same draws again
  FmRng a, b;
  fm_rng_seed(&a, 9), fm_rng_seed(&b, 9);
  int same = 1;
  for (int t = 0; t < 1000; t++) same &= fm_quant_round(0.33f, 0.1f, 4, 0, &a) == fm_quant_round(0.33f, 0.1f, 4, 0, &b);
  CHECK(same);
}

// ---------------------------------------------------------------------------
// straight-through gradients: a method net against a dense twin holding its
// effective weights gives the same output, and the latent weights receive
// exactly the dense weight gradients (deepshift-ps: dP = dW * W * ln 2, dS = dW)

static FmNet *tiny(const FmMethod *m) {
  FmNetOpts o = fm_net_opts_default();
  o.seed = 5, o.threads = 1;
  if (m) o.method = *m;
  FmNet *net = fm_net_new(2, 6, 6, &o);
  int x = fm_net_conv2d(net, net->input, 3, 3, 1, 1, 1);
  x = fm_net_relu(net, x);
  x = fm_net_linear(net, fm_net_flatten(net, x), 4, 1);
  if (fm_net_finish(net, x)) { fprintf(stderr, "tiny: %s\n", net->err); fm_net_free(net); return NULL; }
  return net;
}

// the float weights a method layer's export stands for
static void export_weights(const FmNet *net, const FmLayer *l, float *w) {
  FmMethodExport me;
  if (fm_method_export(net, l, &me)) { memset(w, 0, sizeof(float)); return; }
  size_t K = me.wsize / (size_t)me.M;
  for (size_t i = 0; i < me.wsize; i++) {
    switch (me.kind) {
    case FM_METHOD_TERNARY: w[i] = (float)me.q[i] * me.alpha[i / K]; break;
    case FM_METHOD_QUANT: w[i] = (float)me.q[i] * me.scale; break;
    default: w[i] = (float)me.q[i] * ldexpf(1.0f, me.shift[i]); break;
    }
  }
  fm_method_export_free(&me);
}

static void test_ste(FmMethodKind kind, int mode) {
  FmMethod m;
  fm_method_defaults(&m, kind);
  m.all = 1, m.quant_mode = (FmQuantMode)mode, m.stochastic = 0, m.weight_bits = kind == FM_METHOD_QUANT ? 4 : 5;
  FmNet *net = tiny(&m), *twin = tiny(NULL);
  CHECK(net && twin);
  if (!net || !twin) { fm_net_free(net), fm_net_free(twin); return; }
  // deepshift-ps: spread S over [-1, 1] so that some signs round to 0
  if (kind == FM_METHOD_DEEPSHIFT_PS) {
    FmRng r;
    fm_rng_seed(&r, 1);
    for (int li = 0; li < net->nlayers; li++) {
      const FmParam *s = fm_layer_param(net, &net->layers[li], 2);
      if (s && fm_method_layer(&net->layers[li]))
        for (size_t i = 0; i < s->size; i++) s->data[i] = 2 * fm_rng_uniform(&r) - 1;
    }
  }
  int nmethod = 0;
  for (int li = 0; li < net->nlayers; li++) {
    FmLayer *l = &net->layers[li];
    if (!fm_method_layer(l)) continue;
    nmethod++;
    const FmParam *tw = fm_layer_param(twin, &twin->layers[li], 0), *tb = fm_layer_param(twin, &twin->layers[li], 1);
    export_weights(net, l, tw->data);
    memcpy(tb->data, fm_layer_param(net, l, 1)->data, sizeof(float) * tb->size);
  }
  CHECK(nmethod == 2);
  int n = 5;
  float x[5 * 72], g[5 * 4];
  FmRng r;
  fm_rng_seed(&r, 2);
  for (int i = 0; i < n * 72; i++) x[i] = 2 * fm_rng_uniform(&r) - 1;
  for (int i = 0; i < n * 4; i++) g[i] = 2 * fm_rng_uniform(&r) - 1;
  FmNet *nets[2] = {net, twin};
  for (int k = 0; k < 2; k++) {
    fm_net_zero_grad(nets[k]);
    fm_net_forward(nets[k], x, n, 1);
    fm_net_zero_act_grad(nets[k]);
    memcpy(nets[k]->tensors[nets[k]->output].grad, g, sizeof g);
    fm_net_backward(nets[k]);
  }
  const float *ya = net->tensors[net->output].data, *yb = twin->tensors[twin->output].data;
  float dy = 0;
  for (int i = 0; i < n * 4; i++) dy = fmaxf(dy, fabsf(ya[i] - yb[i]));
  CHECK(dy == 0.0f);
  float dg = 0, ds = 0;
  for (int li = 0; li < net->nlayers; li++) {
    FmLayer *l = &net->layers[li];
    if (!fm_method_layer(l)) continue;
    const FmParam *lw = fm_layer_param(net, l, 0), *tw = fm_layer_param(twin, &twin->layers[li], 0);
    const FmParam *lb = fm_layer_param(net, l, 1), *tb = fm_layer_param(twin, &twin->layers[li], 1);
    for (size_t i = 0; i < lb->size; i++) dg = fmaxf(dg, fabsf(lb->grad[i] - tb->grad[i]));
    for (size_t i = 0; i < lw->size; i++) {
      float want = tw->grad[i];
      if (kind == FM_METHOD_DEEPSHIFT_PS) want = tw->grad[i] * tw->data[i] * 0.69314718f;
      dg = fmaxf(dg, fabsf(lw->grad[i] - want));
    }
    if (kind == FM_METHOD_DEEPSHIFT_PS) {
      const FmParam *s = fm_layer_param(net, l, 2);
      for (size_t i = 0; i < s->size; i++) ds = fmaxf(ds, fabsf(s->grad[i] - tw->grad[i]));
    }
  }
  printf("ste %-12s mode %d: max |dy| %g, max |dlatent - dW| %g, |dS - dW| %g\n", fm_method_name(kind), mode,
         (double)dy, (double)dg, (double)ds);
  CHECK(dg == 0.0f && ds == 0.0f);
  fm_net_free(net), fm_net_free(twin);
}

// ---------------------------------------------------------------------------
// which layers, parameters, post-step rules, export

static FmNet *model(const char *name, int c, int hw, int classes, const FmMethod *m, uint64_t seed) {
  FmNetOpts o = fm_net_opts_default();
  o.seed = seed, o.threads = 1;
  if (m) o.method = *m;
  char err[256];
  FmNet *net = fm_model_build(name, c, hw, hw, classes, &o, err, sizeof err);
  if (!net) fprintf(stderr, "%s: %s\n", name, err);
  return net;
}

static void test_layer_choice(void) {
  FmMethod m;
  fm_method_defaults(&m, FM_METHOD_TERNARY);
  FmNet *net = model("mnist_cnn", 1, 12, 4, &m, 1);
  CHECK(net);
  if (!net) return;
  // conv, conv, linear, linear: the first conv and the last linear stay dense
  const char *want[4] = {"conv2d", "ternary_conv2d", "ternary_linear", "linear"};
  int k = 0;
  for (int i = 0; i < net->nlayers; i++) {
    const FmLayer *l = &net->layers[i];
    if (l->kind != FM_LAYER_CONV2D && l->kind != FM_LAYER_LINEAR && !fm_method_layer(l)) continue;
    CHECK(k < 4 && !strcmp(l->ops->name, want[k]));
    CHECK(!strncmp(l->name, want[k], strlen(want[k])));
    CHECK(!strncmp(fm_layer_param(net, l, 0)->name, l->name, strlen(l->name)));
    k++;
  }
  CHECK(k == 4);
  fm_net_free(net);
  m.all = 1;
  net = model("resnet20", 3, 8, 10, &m, 1);
  CHECK(net);
  int nm = 0, nd = 0;
  for (int i = 0; net && i < net->nlayers; i++) {
    nm += fm_method_layer(&net->layers[i]);
    nd += net->layers[i].kind == FM_LAYER_CONV2D || net->layers[i].kind == FM_LAYER_LINEAR;
  }
  CHECK(nm == 22 && nd == 0);   // 19 3x3 convs + 2 projections + fc
  fm_net_free(net);
  // bad settings fail the build with a message
  fm_method_defaults(&m, FM_METHOD_QUANT);
  m.weight_bits = 8, m.zeroless = 1;
  FmNetOpts o = fm_net_opts_default();
  o.method = m;
  char err[256] = "";
  CHECK(fm_model_build("mlp", 1, 4, 4, 3, &o, err, sizeof err) == NULL && strstr(err, "weight-bits"));
}

static void test_post_step(void) {
  FmMethod m;
  fm_method_defaults(&m, FM_METHOD_DEEPSHIFT_PS);
  m.all = 1;
  FmNet *net = tiny(&m);
  fm_method_defaults(&m, FM_METHOD_QUANT);
  m.all = 1, m.weight_bits = 3;
  FmNet *qn = tiny(&m);
  CHECK(net && qn);
  if (!net || !qn) { fm_net_free(net), fm_net_free(qn); return; }
  FmOptimConfig cfg;
  fm_optim_defaults(&cfg, FM_OPT_SGD);
  FmNet *nets[2] = {net, qn};
  for (int k = 0; k < 2; k++) {
    const FmParam *w = fm_layer_param(nets[k], &nets[k]->layers[0], 0);
    if (k == 1) {   // mode A: on the grid from the start, range = max|W| at init
      float s = fm_layer_buf(qn, &qn->layers[0], 0)->data[0], st = fm_quant_step(s, 3), bad = 0;
      CHECK(s > 0 && s <= 1.0f / sqrtf(18.0f));
      for (size_t i = 0; i < w->size; i++) bad = fmaxf(bad, fabsf(w->data[i] / st - nearbyintf(w->data[i] / st)));
      CHECK(bad < 1e-5f);
    }
    FmOptim *opt = fm_net_optim_new(nets[k], &cfg);
    for (size_t i = 0; i < nets[k]->nparam_floats; i++) nets[k]->grad_data[i] = (i % 2 ? 1.0f : -1.0f) * 50;
    fm_net_step(nets[k], opt, 1.0f);
    fm_optim_free(opt);
    float lo = 1e9f, hi = -1e9f, off = 0;
    float s = k ? fm_layer_buf(qn, &qn->layers[0], 0)->data[0] : 1, st = fm_quant_step(s, 3);
    for (size_t i = 0; i < w->size; i++) {
      lo = fminf(lo, w->data[i]), hi = fmaxf(hi, w->data[i]);
      off = fmaxf(off, fabsf(w->data[i] / st - nearbyintf(w->data[i] / st)));
    }
    if (k == 0) CHECK(lo == -14.0f && hi == 0.0f);                    // P clamped to [-14, 0]
    else CHECK(off < 1e-5f && lo >= -4 * st && hi <= 3 * st);         // back on the 3-bit grid
  }
  // deepshift-ps parameters: no weight decay (their own group), P and S named
  const FmParam *p = fm_layer_param(net, &net->layers[0], 0), *sg = fm_layer_param(net, &net->layers[0], 2);
  CHECK(strstr(p->name, ".shift") && strstr(sg->name, ".sign"));
  CHECK(net->groups[p->group].weight_decay == 0.0f && p->group == sg->group);
  fm_net_free(net), fm_net_free(qn);
}

static int count_nodes(const Graph *g, const char *op) {
  int c = 0;
  for (int i = 0; i < g->nnodes; i++) c += !strcmp(g->nodes[i]->op_type, op);
  return c;
}

static void export_case(FmMethodKind kind, const char *convop, const char *gemmop, int idx) {
  FmMethod m;
  fm_method_defaults(&m, kind);
  FmNet *net = model("mnist_cnn", 1, 12, 4, &m, 3);
  if (!net) { CHECK(0); return; }
  Graph *volatile g = NULL;
  FmTry t;
  FM_TRY(&t) {
    g = fm_export_graph(net);
    fm_try_pop(&t);
  } else {
    fprintf(stderr, "export: %s\n", fm_errmsg());
  }
  CHECK(g);
  if (g) {
    // one method conv and one method linear; the first conv and last linear dense
    if (kind == FM_METHOD_QUANT) {
      CHECK(count_nodes(g, "DequantizeLinear") == 2 && count_nodes(g, "Conv") == 2 && count_nodes(g, "Gemm") == 2);
    } else {
      CHECK(count_nodes(g, convop) == 1 && count_nodes(g, gemmop) == 1);
      CHECK(count_nodes(g, "Conv") == 1 && count_nodes(g, "Gemm") == 1);
    }
    int int8 = 0;
    for (int j = 0; j < g->ntensors; j++) int8 += g->tensors[j]->data && g->tensors[j]->dtype == FM_I8;
    CHECK(int8 == (kind == FM_METHOD_TERNARY ? 2 : 4));   // weights (+ shifts, + zero points)
  }
  fm_graph_free(g);
  // the file: the compiler's loader reads it back (functions inlined or ops native)
  char path[256], err[512];
  snprintf(path, sizeof path, "%s/methods_%d.onnx", FM_BINARY_DIR, idx);
  CHECK(fm_export_onnx(net, path, err, sizeof err) == 0);
  Graph *volatile h = NULL;
  FM_TRY(&t) {
    h = fm_onnx_load(path, NULL);
    fm_try_pop(&t);
  } else {
    fprintf(stderr, "load %s: %s\n", path, fm_errmsg());
  }
  CHECK(h && h->ninputs == 1 && h->noutputs == 1);
  fm_graph_free(h);
  remove(path);
  fm_net_free(net);
}

static void test_export_graph(void) {
  export_case(FM_METHOD_TERNARY, "TernaryConv", "TernaryGemm", 0);
  export_case(FM_METHOD_DEEPSHIFT_Q, "Pow2Conv", "Pow2Gemm", 1);
  export_case(FM_METHOD_DEEPSHIFT_PS, "Pow2Conv", "Pow2Gemm", 2);
  export_case(FM_METHOD_QUANT, "Conv", "Gemm", 3);
}

// ---------------------------------------------------------------------------
// training smoke: class k is a bright quadrant k of a noisy 12x12 image

#define HW 12
static void make_data(float *x, int *y, int n, uint64_t seed) {
  FmRng r;
  fm_rng_seed(&r, seed);
  for (int i = 0; i < n; i++) {
    int k = (int)(fm_rng_next(&r) % 4);
    y[i] = k;
    float *img = x + (size_t)i * HW * HW;
    for (int p = 0; p < HW * HW; p++) img[p] = 0.4f * fm_rng_uniform(&r);
    int oy = (k / 2) * 6 + 1, ox = (k % 2) * 6 + 1;
    for (int a = 0; a < 4; a++)
      for (int b = 0; b < 4; b++) img[(oy + a) * HW + ox + b] = 0.6f + 0.4f * fm_rng_uniform(&r);
  }
}

static void smoke(const char *label, FmMethod m, FmOptimKind ok, float lr) {
  const int steps = 40, batch = 16;
  float *x = malloc(sizeof(float) * steps * batch * HW * HW);
  int *y = malloc(sizeof(int) * steps * batch);
  make_data(x, y, steps * batch, 7);
  m.all = 1;   // every layer under the method
  FmNet *net = model("mnist_cnn", 1, HW, 4, &m, 11);
  CHECK(net);
  if (!net) { free(x), free(y); return; }
  FmOptimConfig cfg;
  fm_optim_defaults(&cfg, ok);
  cfg.lr = lr;
  if (ok == FM_OPT_SGD) cfg.momentum = 0.9f;
  FmOptim *opt = fm_net_optim_new(net, &cfg);
  float first = 0, last = 0;
  int q = steps / 4;
  for (int s = 0; s < steps; s++) {
    fm_net_zero_grad(net);
    fm_net_forward(net, x + (size_t)s * batch * HW * HW, batch, 1);
    float loss = fm_net_loss(net, y + s * batch, batch, NULL);
    fm_net_backward(net);
    fm_net_step(net, opt, cfg.lr);
    if (s < q) first += loss / q;
    if (s >= steps - q) last += loss / q;
  }
  printf("train %-28s loss %.3f -> %.3f\n", label, (double)first, (double)last);
  CHECK(isfinite(last) && last < 0.8f * first);
  fm_optim_free(opt);
  fm_net_free(net);
  free(x), free(y);
}

static void test_training(void) {
  FmMethod m;
  fm_method_defaults(&m, FM_METHOD_TERNARY);
  smoke("ternary", m, FM_OPT_SGD, 0.05f);
  fm_method_defaults(&m, FM_METHOD_DEEPSHIFT_Q);
  smoke("deepshift-q", m, FM_OPT_SGD, 0.02f);
  fm_method_defaults(&m, FM_METHOD_DEEPSHIFT_PS);
  smoke("deepshift-ps (radam)", m, FM_OPT_RADAM, 0.3f);   // P moves by ~lr a step: short runs need a big one
  fm_method_defaults(&m, FM_METHOD_QUANT);
  m.weight_bits = 4;
  smoke("quant 4-bit stochastic", m, FM_OPT_SGD, 0.02f);
  m.quant_mode = FM_QUANT_FAKE, m.stochastic = 0;
  smoke("quant 4-bit fake deterministic", m, FM_OPT_SGD, 0.02f);
  m.quant_mode = FM_QUANT_ALWAYS, m.stochastic = 1, m.zeroless = 1, m.weight_bits = 3;
  smoke("quant 3-bit zero-less", m, FM_OPT_SGD, 0.02f);
}

// ---------------------------------------------------------------------------
// helper modes for tests/e2e/methods_export.sh

static int cmd_data(const char *spec, const char *dir) {
  FmDataset ds;
  char err[256], path[1024];
  if (fm_data_load(&ds, spec, NULL, 0, err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
  size_t d = (size_t)ds.c * ds.h * ds.w;
  float *x = malloc(sizeof(float) * d * ds.n);
  for (int i = 0; i < ds.n; i++) fm_data_image_float(&ds, i, x + i * d);
  snprintf(path, sizeof path, "%s/x.npy", dir);
  int rc = ec_write_npy(path, x, 4, (int[]){ds.n, ds.c, ds.h, ds.w});
  free(x);
  fm_data_free(&ds);
  return rc ? 1 : 0;
}

static int cmd_accuracy(const char *logits, const char *spec) {
  FmDataset ds;
  char err[256];
  int rows, cols;
  if (fm_data_load(&ds, spec, NULL, 0, err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
  float *x = ec_read_npy(logits, &rows, &cols);
  if (!x || rows != ds.n) { fprintf(stderr, "accuracy: %s does not hold %d rows\n", logits, ds.n); return 1; }
  int correct = 0;
  for (int i = 0; i < rows; i++) correct += ec_argmax(x + (size_t)i * cols, cols) == ds.labels[i];
  printf("%.2f\n", 100.0 * correct / rows);
  free(x);
  fm_data_free(&ds);
  return 0;
}

// each case: a model trained a few steps under a method (every layer), exported,
// with an input batch and the trainer's eval output for it
static int e2e_case(const char *dir, const char *name, const char *mname, int c, int hw, int classes,
                    FmMethod m, FmOptimKind ok, float lr) {
  m.all = 1;
  return ec_e2e_case(dir, name, model(mname, c, hw, classes, &m, 21), c, hw, classes, (EcTrain){128, 16, 8, 0, ok, lr});
}

static int cmd_e2e(const char *dir) {
  mkdir(dir, 0777);
  struct { const char *name; FmMethodKind k; int bits, stochastic, zeroless, fake; FmOptimKind opt; float lr; } c[] = {
    {"ternary", FM_METHOD_TERNARY, 0, 0, 0, 0, FM_OPT_SGD, 0.05f},
    {"deepshift_q", FM_METHOD_DEEPSHIFT_Q, 5, 0, 0, 0, FM_OPT_SGD, 0.05f},
    {"deepshift_ps", FM_METHOD_DEEPSHIFT_PS, 5, 0, 0, 0, FM_OPT_RADAM, 0.01f},
    {"deepshift_ps4", FM_METHOD_DEEPSHIFT_PS, 4, 0, 0, 0, FM_OPT_RADAM, 0.01f},
    {"quant4_stoch", FM_METHOD_QUANT, 4, 1, 0, 0, FM_OPT_SGD, 0.05f},
    {"quant8_fake", FM_METHOD_QUANT, 8, 0, 0, 1, FM_OPT_SGD, 0.05f},
    {"quant3_zeroless", FM_METHOD_QUANT, 3, 1, 1, 0, FM_OPT_SGD, 0.05f},
  };
  int rc = 0;
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
    FmMethod m;
    fm_method_defaults(&m, c[i].k);
    if (c[i].bits) m.weight_bits = c[i].bits;
    m.stochastic = c[i].stochastic, m.zeroless = c[i].zeroless;
    m.quant_mode = c[i].fake ? FM_QUANT_FAKE : FM_QUANT_ALWAYS;
    char name[64];
    snprintf(name, sizeof name, "%s_cnn", c[i].name);   // conv + linear with biases
    rc |= e2e_case(dir, name, "mnist_cnn", 1, 12, 4, m, c[i].opt, c[i].lr);
    snprintf(name, sizeof name, "%s_resnet", c[i].name);   // convs without bias, BN, residuals
    rc |= e2e_case(dir, name, "resnet20", 3, 8, 5, m, c[i].opt, c[i].lr);
  }
  return rc;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--e2e")) return cmd_e2e(argv[2]);
  if (argc == 5 && !strcmp(argv[1], "--compare")) return ec_compare(argv[2], argv[3], atof(argv[4]));
  if (argc == 4 && !strcmp(argv[1], "--data")) return cmd_data(argv[2], argv[3]);
  if (argc == 4 && !strcmp(argv[1], "--accuracy")) return cmd_accuracy(argv[2], argv[3]);
  test_ternary();
  test_deepshift();
  test_fixed_point();
  test_grid();
  test_stochastic();
  test_ste(FM_METHOD_TERNARY, 0);
  test_ste(FM_METHOD_DEEPSHIFT_Q, 0);
  test_ste(FM_METHOD_DEEPSHIFT_PS, 0);
  test_ste(FM_METHOD_QUANT, FM_QUANT_ALWAYS);
  test_ste(FM_METHOD_QUANT, FM_QUANT_FAKE);
  test_layer_choice();
  test_post_step();
  test_export_graph();
  test_training();
  return check_done("test_methods");
}
