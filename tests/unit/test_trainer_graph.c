/* test_trainer_graph.c - the layers of imported ONNX graphs (trainer/net_graph.c,
 * ops_graph.c): each forward against its formula, and the gradients of small nets
 * built around each one against finite differences (gradcheck.h), so every backward
 * (input gradients too, through the convs before the layer) is checked. */
#include "check.h"
#include "gradcheck.h"
#include "net.h"
#include "ops.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static FmRng rng;

static float *rnd(size_t n, float lo, float hi) {
  float *p = malloc(sizeof(float) * (n + 1));
  for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * fm_rng_uniform(&rng);
  return p;
}

static void test_forward(void) {
  float x[6] = {-2, -0.5f, 0, 0.25f, 1, 3}, y[6];
  FmActAttr leaky = {FM_ACT_LEAKY, 0.1f, 0, 0}, clip = {FM_ACT_CLIP, 0, -0.5f, 0.5f};
  FmActAttr sig = {FM_ACT_SIGMOID, 0, 0, 0}, th = {FM_ACT_TANH, 0, 0, 0};
  fm_act_forward(y, x, 6, &leaky);
  CHECK_NEAR(-0.2, y[0], 1e-7); CHECK_NEAR(3, y[5], 0);
  fm_act_forward(y, x, 6, &clip);
  CHECK(y[0] == -0.5f && y[1] == -0.5f && y[3] == 0.25f && y[5] == 0.5f);
  fm_act_forward(y, x, 6, &sig);
  CHECK_NEAR(1 / (1 + exp(2.0)), y[0], 1e-7); CHECK_NEAR(0.5, y[2], 1e-7);
  fm_act_forward(y, x, 6, &th);
  CHECK_NEAR(tanh(3.0), y[5], 1e-6);
  /* affine over (N=1, C=2, S=3) */
  float sc[2] = {2, -1}, sh[2] = {0.5f, 1};
  fm_affine_forward(y, x, sc, sh, 1, 2, 3);
  CHECK(y[0] == -3.5f && y[2] == 0.5f && y[3] == 0.75f && y[5] == -2.0f);
  /* eltwise */
  fm_eltwise_forward(y, x, x + 3, 3, FM_ELT_MUL);
  CHECK(y[0] == -0.5f && y[1] == -0.5f && y[2] == 0);
  fm_eltwise_forward(y, x, x + 3, 3, FM_ELT_SUB);
  CHECK(y[0] == -2.25f && y[1] == -1.5f && y[2] == -3);
  /* concat of (N=2, 1) and (N=2, 2) per sample */
  float a[2] = {1, 2}, b[4] = {3, 4, 5, 6}, c[6];
  const float *ins[2] = {a, b};
  size_t size[2] = {1, 2};
  fm_concat_forward(c, ins, size, 2, 2);
  CHECK(c[0] == 1 && c[1] == 3 && c[2] == 4 && c[3] == 2 && c[4] == 5 && c[5] == 6);
  float da[2] = {0}, db[4] = {0}, *d[2] = {da, db};
  fm_concat_backward(d, c, size, 2, 2);
  CHECK(da[1] == 2 && db[0] == 3 && db[3] == 6);
}

/* activation backward at points away from the kinks, against central differences */
static void test_act_backward(void) {
  float x[8] = {-1.3f, -0.7f, -0.2f, 0.1f, 0.35f, 0.6f, 0.9f, 1.7f}, y[8], yp[8], ym[8], g[8];
  for (int k = 0; k < 4; k++) {
    FmActAttr a = {(FmActKind)k, 0.2f, -0.5f, 0.5f};
    fm_act_forward(y, x, 8, &a);
    float d[8] = {0}, ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    fm_act_backward(d, ones, x, y, 8, &a);
    for (int i = 0; i < 8; i++) {
      float h = 1e-3f, xp[8], xm[8];
      memcpy(xp, x, sizeof x), memcpy(xm, x, sizeof x);
      xp[i] += h, xm[i] -= h;
      fm_act_forward(yp, xp, 8, &a), fm_act_forward(ym, xm, 8, &a);
      g[i] = (yp[i] - ym[i]) / (xp[i] - xm[i]);
      CHECK_NEAR(g[i], d[i], 2e-3);
    }
  }
}

/* conv -> LAYER -> conv -> flatten -> linear (the convs' parameters see the layer's input
   gradient); which: 0..3 activations, 4 affine, 5 eltwise mul, 6 eltwise sub, 7 concat of
   6 branches (two chained concat layers), 8 reshape (C,H,W) -> (H,C,W), 9 pool2d 3x2 */
static void grad_net(int which, const char *label) {
  FmNetOpts o = fm_net_opts_default();
  o.seed = 11 + (uint64_t)which;
  o.threads = 1;
  FmNet *net = fm_net_new(2, 6, 6, &o);
  int x = fm_net_conv2d(net, 0, 4, 3, 1, 1, 1), y;
  if (which < 4) {
    FmActAttr a = {(FmActKind)which, 0.2f, -2.0f, 2.0f};   /* clip: kinks in test_act_backward */
    y = fm_net_act(net, x, &a);
  } else if (which == 4) {
    float s[4] = {1.5f, -0.5f, 2, 0.25f}, b[4] = {0.1f, 0, -0.2f, 0.3f};
    y = fm_net_affine(net, x, s, b);
  } else if (which == 5 || which == 6) {
    int x2 = fm_net_conv2d(net, 0, 4, 1, 1, 0, 1);
    y = fm_net_eltwise(net, x, x2, which == 5 ? FM_ELT_MUL : FM_ELT_SUB);
  } else if (which == 7) {
    int xs[6] = {x, fm_net_conv2d(net, 0, 2, 1, 1, 0, 1), x, fm_net_conv2d(net, 0, 1, 3, 1, 1, 0), x, x};
    y = fm_net_concat(net, xs, 6);
    CHECK(y >= 0 && net->tensors[y].c == 4 * 4 + 2 + 1);
    CHECK(net->layers[net->nlayers - 1].kind == FM_LAYER_CONCAT && net->layers[net->nlayers - 2].kind == FM_LAYER_CONCAT);
  } else if (which == 8) {
    y = fm_net_reshape(net, x, 6, 4, 6, 0);
  } else {
    FmPoolAttr pa = {3, 2, 1, 2, 1, 0};
    y = fm_net_pool2d(net, x, 0, &pa);
    CHECK(y >= 0 && net->tensors[y].h == 6 && net->tensors[y].w == 3);
  }
  y = fm_net_conv2d(net, y, 3, 3, 1, 0, 1);
  y = fm_net_flatten(net, y);
  y = fm_net_linear(net, y, 5, 1);
  CHECK(fm_net_finish(net, y) == 0);
  if (net->err[0]) fprintf(stderr, "%s: %s\n", label, net->err);
  int n = 2;
  float *in = rnd((size_t)n * 72, -1, 1), *R = rnd((size_t)n * 5, -1, 1);
  GcResult r = gc_params(net, in, R, n, 10, NULL, label, 2e-2);
  CHECK(r.checked > 30);
  CHECK(r.worst < 2e-2);
  if (r.worst >= 2e-2) fprintf(stderr, "%s: worst %g\n", label, r.worst);
  free(in), free(R);
  fm_net_free(net);
}

static void test_errors(void) {
  FmNet *net = fm_net_new(2, 4, 4, NULL);
  int a = fm_net_conv2d(net, 0, 3, 3, 1, 1, 1), b = fm_net_conv2d(net, 0, 3, 3, 2, 1, 1);
  CHECK(fm_net_eltwise(net, a, b, FM_ELT_MUL) < 0 && strstr(net->err, "shapes differ"));
  fm_net_free(net);
  net = fm_net_new(2, 4, 4, NULL);
  CHECK(fm_net_reshape(net, 0, 5, 1, 1, 1) < 0 && strstr(net->err, "element count"));
  fm_net_free(net);
  net = fm_net_new(2, 4, 4, NULL);
  a = fm_net_conv2d(net, 0, 3, 3, 1, 1, 1), b = fm_net_conv2d(net, 0, 3, 3, 2, 1, 1);
  int xs[2] = {a, b};
  CHECK(fm_net_concat(net, xs, 2) < 0 && strstr(net->err, "spatial shapes differ"));
  fm_net_free(net);
}

int main(void) {
  fm_rng_seed(&rng, 5);
  test_forward();
  test_act_backward();
  static const char *names[] = {"leaky_relu", "clip", "sigmoid", "tanh", "affine", "eltwise mul",
                                "eltwise sub", "concat x6", "reshape", "avgpool 3x2"};
  for (int w = 0; w < 10; w++) grad_net(w, names[w]);
  test_errors();
  return check_done("test_trainer_graph");
}
