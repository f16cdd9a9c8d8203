/* test_trainer_grad.c - every trainer backward against finite differences.
 *
 * For each op the scalar L = sum(out * R) (R fixed random, so dL/dout = R) is
 * accumulated in double over the float forward. Each input and parameter
 * element is perturbed by +-eps (eps = 1e-3 for smooth ops, 1e-2 for ops that
 * are piecewise linear in the perturbed value, where a larger step only
 * reduces rounding noise) and the central difference, divided by the actual
 * float step, is compared with the analytic gradient:
 *     |numeric - analytic| <= 2e-3 + 1e-2 * |numeric|
 * Inputs of relu/maxpool are kept away from kinks and ties.
 */
#include "check.h"
#include "models.h"
#include "net.h"
#include "ops.h"
#include <stdlib.h>
#include <string.h>

#define ATOL 2e-3
#define RTOL 1e-2

static FmRng rng;
static float *out_buf, *R;    // forward output and the fixed dL/dout
static size_t nout;
static void (*fwd)(void);      // runs the op under test into out_buf

static double loss_fn(void) {
  fwd();
  double s = 0;
  for (size_t i = 0; i < nout; i++) s += (double)out_buf[i] * R[i];
  return s;
}

static float *rnd(size_t n, float lo, float hi) {
  float *p = malloc(sizeof(float) * (n + 1));
  for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * fm_rng_uniform(&rng);
  return p;
}
static float *zeros(size_t n) { return calloc(n + 1, sizeof(float)); }

// distinct values (spacing 0.05 in random order) away from 0: no ties, no kinks
static float *distinct(size_t n) {
  float *p = malloc(sizeof(float) * n);
  for (size_t i = 0; i < n; i++) p[i] = (float)(i + 1) * 0.05f * (i % 2 ? 1 : -1);
  for (size_t i = n; i > 1; i--) {
    size_t j = fm_rng_next(&rng) % i;
    float t = p[i - 1]; p[i - 1] = p[j]; p[j] = t;
  }
  return p;
}

static void set_out(size_t n) {
  free(out_buf), free(R);
  nout = n;
  out_buf = zeros(n);
  R = rnd(n, -1, 1);
}

// compares the analytic gradient of x (n elements) with central differences
static void check_grad(const char *what, float *x, size_t n, const float *ana, float eps) {
  int bad = 0;
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    float old = x[i];
    x[i] = old + eps;
    double h = (double)x[i];
    double lp = loss_fn();
    x[i] = old - eps;
    h -= (double)x[i];
    double lm = loss_fn();
    x[i] = old;
    double num = (lp - lm) / h, err = fabs(num - ana[i]);
    double tol = ATOL + RTOL * fabs(num);
    if (err / tol > worst) worst = err / tol;
    if (err > tol && bad++ < 3)
      fprintf(stderr, "  %s[%zu]: numeric %.6f analytic %.6f\n", what, i, num, ana[i]);
  }
  if (bad) fprintf(stderr, "%s: %d of %zu gradients off (worst err/tol %.2f)\n", what, bad, n, worst);
  CHECK(bad == 0);
}

// ---------------------------------------------------------------------------
// conv2d and conv_transpose2d

static struct { FmConvAttr a; int N, H, W, nt; float *x, *w, *b, *work; } cv;

static void conv_fwd(void) {
  fm_conv2d_forward(out_buf, cv.x, cv.w, cv.b, cv.N, cv.H, cv.W, &cv.a, cv.work, cv.nt);
}
static void convt_fwd(void) {
  fm_convt2d_forward(out_buf, cv.x, cv.w, cv.b, cv.N, cv.H, cv.W, &cv.a, cv.work, cv.nt);
}

static void test_conv(const char *name, FmConvAttr a, int N, int H, int W, int transpose, int nt) {
  cv.a = a, cv.N = N, cv.H = H, cv.W = W, cv.nt = nt;
  int G = a.groups, OH, OW;
  size_t wsize, nx = (size_t)N * a.cin * H * W;
  if (!transpose) {
    OH = fm_conv_out(H, a.kh, a.sh, a.ph, a.dh), OW = fm_conv_out(W, a.kw, a.sw, a.pw, a.dw);
    wsize = (size_t)a.cout * (a.cin / G) * a.kh * a.kw;
    cv.work = zeros(fm_conv2d_workspace(&a, H, W, nt));
  } else {
    OH = fm_convt_out(H, a.kh, a.sh, a.ph, a.dh, a.oph), OW = fm_convt_out(W, a.kw, a.sw, a.pw, a.dw, a.opw);
    wsize = (size_t)a.cin * (a.cout / G) * a.kh * a.kw;
    cv.work = zeros(fm_convt2d_workspace(&a, H, W, nt));
  }
  set_out((size_t)N * a.cout * OH * OW);
  cv.x = rnd(nx, -1, 1), cv.w = rnd(wsize, -0.5f, 0.5f), cv.b = rnd(a.cout, -0.5f, 0.5f);
  float *dx = zeros(nx), *dw = zeros(wsize), *db = zeros(a.cout);
  fwd = transpose ? convt_fwd : conv_fwd;
  fwd();
  if (!transpose) fm_conv2d_backward(dx, dw, db, R, cv.x, cv.w, N, H, W, &a, cv.work, nt, 0);
  else fm_convt2d_backward(dx, dw, db, R, cv.x, cv.w, N, H, W, &a, cv.work, nt);
  char what[96];
  snprintf(what, sizeof what, "%s dinp", name), check_grad(what, cv.x, nx, dx, 1e-2f);
  snprintf(what, sizeof what, "%s dweight", name), check_grad(what, cv.w, wsize, dw, 1e-2f);
  snprintf(what, sizeof what, "%s dbias", name), check_grad(what, cv.b, a.cout, db, 1e-2f);
  // backward must ADD: a second call doubles the gradients
  float *dx2 = zeros(nx);
  memcpy(dx2, dx, sizeof(float) * nx);
  if (!transpose) fm_conv2d_backward(dx2, NULL, NULL, R, cv.x, cv.w, N, H, W, &a, cv.work, nt, 0);
  else fm_convt2d_backward(dx2, NULL, NULL, R, cv.x, cv.w, N, H, W, &a, cv.work, nt);
  int ok = 1;
  for (size_t i = 0; i < nx; i++) ok &= fabsf(dx2[i] - 2 * dx[i]) <= 1e-5f * (1 + fabsf(dx[i]));
  CHECK(ok);
  free(cv.x), free(cv.w), free(cv.b), free(cv.work), free(dx), free(dw), free(db), free(dx2);
}

static void test_convs(void) {
  test_conv("conv 3x3 p1", fm_conv_attr(3, 4, 3, 1, 1, 1, 1), 2, 6, 5, 0, 1);
  test_conv("conv 3x3 p1 (2 threads)", fm_conv_attr(8, 8, 3, 1, 1, 1, 1), 4, 10, 10, 0, 2);   // above the parallel threshold
  FmConvAttr a = {4, 6, 3, 2, 2, 1, 1, 0, 2, 1, 1, 0, 0};   // kh3 kw2, stride (2,1), pad (1,0), dil (2,1)
  test_conv("conv strided/dilated/non-square", a, 2, 9, 7, 0, 2);
  test_conv("conv grouped dilated", fm_conv_attr(4, 6, 3, 1, 2, 2, 2), 2, 7, 7, 0, 1);
  test_conv("conv depthwise s2", fm_conv_attr(4, 4, 3, 2, 1, 1, 4), 2, 7, 8, 0, 1);
  test_conv("conv 1x1", fm_conv_attr(5, 3, 1, 1, 0, 1, 1), 2, 4, 4, 0, 2);
  test_conv("conv 1x1 grouped", fm_conv_attr(4, 6, 1, 1, 0, 1, 2), 2, 3, 4, 0, 1);
  test_conv("conv 1x1 s2", fm_conv_attr(3, 4, 1, 2, 0, 1, 1), 2, 5, 5, 0, 1);
  FmConvAttr t = fm_conv_attr(4, 6, 3, 2, 1, 1, 2);
  t.oph = t.opw = 1;
  test_conv("conv_transpose k3 s2 p1 op1 g2", t, 2, 4, 3, 1, 2);
  test_conv("conv_transpose k2 s2", fm_conv_attr(3, 2, 2, 2, 0, 1, 1), 2, 3, 3, 1, 1);
  test_conv("conv_transpose dilated", fm_conv_attr(2, 3, 3, 1, 1, 2, 1), 2, 4, 4, 1, 1);
}

// ---------------------------------------------------------------------------
// linear

static struct { int N, I, O; float *x, *w, *b; } ln;
static void linear_fwd(void) { fm_linear_forward(out_buf, ln.x, ln.w, ln.b, ln.N, ln.I, ln.O, 2); }

static void test_linear(void) {
  ln.N = 5, ln.I = 7, ln.O = 4;
  set_out((size_t)ln.N * ln.O);
  ln.x = rnd(ln.N * ln.I, -1, 1), ln.w = rnd(ln.O * ln.I, -1, 1), ln.b = rnd(ln.O, -1, 1);
  float *dx = zeros(ln.N * ln.I), *dw = zeros(ln.O * ln.I), *db = zeros(ln.O);
  fm_linear_backward(dx, dw, db, R, ln.x, ln.w, ln.N, ln.I, ln.O, 2);
  fwd = linear_fwd;
  check_grad("linear dinp", ln.x, ln.N * ln.I, dx, 1e-2f);
  check_grad("linear dweight", ln.w, ln.O * ln.I, dw, 1e-2f);
  check_grad("linear dbias", ln.b, ln.O, db, 1e-2f);
  free(ln.x), free(ln.w), free(ln.b), free(dx), free(dw), free(db);
}

// ---------------------------------------------------------------------------
// batchnorm (train and eval), normalize, channel scale

static struct { FmBnAttr a; int N, S, train; float *x, *g, *b, *rm, *rv, *mean, *invstd; } bn;
static void bn_fwd(void) {
  // running stats are updated in train mode; they do not affect the output
  fm_batchnorm_forward(out_buf, bn.mean, bn.invstd, bn.x, bn.g, bn.b, bn.rm, bn.rv, bn.N, bn.S,
                       &bn.a, bn.train, 2);
}

static void test_bn(int train, int fixed_gamma, int S) {
  int C = 3;
  bn.a = (FmBnAttr){C, 1e-5f, 0.1f, fixed_gamma, NULL};
  bn.N = 4, bn.S = S, bn.train = train;
  size_t n = (size_t)bn.N * C * S;
  set_out(n);
  bn.x = rnd(n, -2, 2), bn.g = rnd(C, 0.5f, 1.5f), bn.b = rnd(C, -1, 1);
  bn.rm = rnd(C, -0.5f, 0.5f), bn.rv = rnd(C, 0.5f, 2), bn.mean = zeros(C), bn.invstd = zeros(C);
  float *dx = zeros(n), *dg = zeros(C), *db = zeros(C);
  fwd = bn_fwd;
  fwd();
  fm_batchnorm_backward(dx, dg, db, R, bn.x, bn.mean, bn.invstd, bn.g, bn.N, S, &bn.a, train, 2, 0);
  char what[64];
  snprintf(what, sizeof what, "batchnorm %s S=%d dinp", train ? "train" : "eval", S);
  check_grad(what, bn.x, n, dx, 1e-3f);
  if (fixed_gamma) {
    CHECK(dg[0] == 0 && dg[1] == 0 && dg[2] == 0);
  } else {
    snprintf(what, sizeof what, "batchnorm %s dgamma", train ? "train" : "eval");
    check_grad(what, bn.g, C, dg, 1e-3f);
  }
  snprintf(what, sizeof what, "batchnorm %s dbeta", train ? "train" : "eval");
  check_grad(what, bn.b, C, db, 1e-3f);
  free(bn.x), free(bn.g), free(bn.b), free(bn.rm), free(bn.rv), free(bn.mean), free(bn.invstd);
  free(dx), free(dg), free(db);
}

static struct { int N, C, S; float *x, *p, *q; } pc;   // generic per-channel op state
static void normalize_fwd(void) { fm_normalize_forward(out_buf, pc.x, pc.p, pc.q, pc.N, pc.C, pc.S); }
static void chscale_fwd(void) { fm_chscale_forward(out_buf, pc.x, pc.p, pc.N, pc.C, pc.S); }

static void test_channel_ops(void) {
  pc.N = 3, pc.C = 4, pc.S = 5;
  size_t n = (size_t)pc.N * pc.C * pc.S;
  set_out(n);
  pc.x = rnd(n, -1, 1), pc.p = rnd(pc.C, -1, 1), pc.q = rnd(pc.C, 0.5f, 2);
  float *dx = zeros(n), *dp = zeros(pc.C);
  fm_normalize_backward(dx, R, pc.q, pc.N, pc.C, pc.S);
  fwd = normalize_fwd;
  check_grad("normalize dinp", pc.x, n, dx, 1e-2f);
  memset(dx, 0, sizeof(float) * n);
  fm_chscale_backward(dx, dp, R, pc.x, pc.p, pc.N, pc.C, pc.S);
  fwd = chscale_fwd;
  check_grad("channel_scale dinp", pc.x, n, dx, 1e-2f);
  check_grad("channel_scale dscale", pc.p, pc.C, dp, 1e-2f);
  free(pc.x), free(pc.p), free(pc.q), free(dx), free(dp);
}

// ---------------------------------------------------------------------------
// relu, pools, dropout, add

static struct { int N, C, H, W; FmPoolAttr a; float *x, *y, *mask; int32_t *idx; float p; uint64_t seed; } pl;
static void relu_fwd(void) { fm_relu_forward(out_buf, pl.x, (size_t)pl.N * pl.C * pl.H * pl.W); }
static void maxpool_fwd(void) { fm_maxpool_forward(out_buf, pl.idx, pl.x, pl.N, pl.C, pl.H, pl.W, &pl.a); }
static void avgpool_fwd(void) { fm_avgpool_forward(out_buf, pl.x, pl.N, pl.C, pl.H, pl.W, &pl.a); }
static void gap_fwd(void) { fm_gap_forward(out_buf, pl.x, pl.N, pl.C, pl.H * pl.W); }
static void add_fwd(void) { fm_add_forward(out_buf, pl.x, pl.y, (size_t)pl.N * pl.C * pl.H * pl.W); }
// the same mask on every call: reseed before drawing it
static void dropout_fwd(void) {
  FmRng r; fm_rng_seed(&r, pl.seed);
  fm_dropout_forward(out_buf, pl.mask, pl.x, pl.N, pl.C * pl.H * pl.W, pl.p, &r);
}
static void dropout2d_fwd(void) {
  FmRng r; fm_rng_seed(&r, pl.seed);
  fm_dropout2d_forward(out_buf, pl.mask, pl.x, pl.N, pl.C, pl.H * pl.W, pl.p, &r);
}

static void test_pool(const char *name, int maxp, int k, int s, int p) {
  pl.N = 2, pl.C = 3, pl.H = 7, pl.W = 6;
  pl.a = (FmPoolAttr){k, k, s, s, p, p};
  int OH = fm_conv_out(pl.H, k, s, p, 1), OW = fm_conv_out(pl.W, k, s, p, 1);
  size_t n = (size_t)pl.N * pl.C * pl.H * pl.W, no = (size_t)pl.N * pl.C * OH * OW;
  set_out(no);
  pl.x = distinct(n);
  pl.idx = malloc(sizeof(int32_t) * no);
  float *dx = zeros(n);
  fwd = maxp ? maxpool_fwd : avgpool_fwd;
  fwd();
  if (maxp) fm_maxpool_backward(dx, R, pl.idx, pl.N, pl.C, pl.H, pl.W, &pl.a);
  else fm_avgpool_backward(dx, R, pl.N, pl.C, pl.H, pl.W, &pl.a);
  check_grad(name, pl.x, n, dx, 1e-2f);
  free(pl.x), free(pl.idx), free(dx);
}

static void test_elementwise(void) {
  pl.N = 2, pl.C = 3, pl.H = 4, pl.W = 5;
  size_t n = (size_t)pl.N * pl.C * pl.H * pl.W;
  set_out(n);
  pl.x = distinct(n), pl.y = rnd(n, -1, 1), pl.mask = zeros(n);
  float *dx = zeros(n), *dy = zeros(n);
  fwd = relu_fwd, fwd();
  fm_relu_backward(dx, R, out_buf, n, 0);
  check_grad("relu dinp", pl.x, n, dx, 1e-2f);

  memset(dx, 0, sizeof(float) * n);
  fm_add_backward(dx, dy, R, n, 0, 0);
  fwd = add_fwd;
  check_grad("add da", pl.x, n, dx, 1e-2f);
  check_grad("add db", pl.y, n, dy, 1e-2f);

  pl.p = 0.4f, pl.seed = 7;
  fwd = dropout_fwd, fwd();
  memset(dx, 0, sizeof(float) * n);
  fm_dropout_backward(dx, R, pl.mask, pl.N, pl.C * pl.H * pl.W);
  check_grad("dropout dinp", pl.x, n, dx, 1e-2f);
  int zeros_seen = 0;
  for (size_t i = 0; i < n; i++) zeros_seen += pl.mask[i] == 0;
  CHECK(zeros_seen > 0 && zeros_seen < (int)n);   // some dropped, some kept

  fwd = dropout2d_fwd, fwd();
  memset(dx, 0, sizeof(float) * n);
  fm_dropout2d_backward(dx, R, pl.mask, pl.N, pl.C, pl.H * pl.W);
  check_grad("dropout2d dinp", pl.x, n, dx, 1e-2f);

  set_out((size_t)pl.N * pl.C);
  memset(dx, 0, sizeof(float) * n);
  fm_gap_backward(dx, R, pl.N, pl.C, pl.H * pl.W);
  fwd = gap_fwd;
  check_grad("global_avgpool dinp", pl.x, n, dx, 1e-2f);
  free(pl.x), free(pl.y), free(pl.mask), free(dx), free(dy);
}

// ---------------------------------------------------------------------------
// softmax, log-softmax, cross-entropy, NLL

static struct { int N, K; float *x, *probs; int labels[8]; } sm;
static void softmax_fwd(void) { fm_softmax_forward(out_buf, sm.x, sm.N, sm.K); }
static void log_softmax_fwd(void) { fm_log_softmax_forward(out_buf, sm.x, sm.N, sm.K); }
// losses: out_buf[0] = loss and R[0] = 1, so L = loss
static void ce_fwd(void) { out_buf[0] = fm_crossentropy_forward(sm.probs, sm.x, sm.labels, sm.N, sm.K); }
static void nll_fwd(void) { out_buf[0] = fm_nll_forward(sm.x, sm.labels, sm.N, sm.K); }

static void test_softmax_losses(void) {
  sm.N = 4, sm.K = 5;
  size_t n = (size_t)sm.N * sm.K;
  for (int i = 0; i < sm.N; i++) sm.labels[i] = (i * 3) % sm.K;
  sm.x = rnd(n, -2, 2), sm.probs = zeros(n);
  float *dx = zeros(n);
  set_out(n);
  fwd = softmax_fwd, fwd();
  fm_softmax_backward(dx, R, out_buf, sm.N, sm.K);
  check_grad("softmax dinp", sm.x, n, dx, 1e-3f);
  memset(dx, 0, sizeof(float) * n);
  fwd = log_softmax_fwd, fwd();
  fm_log_softmax_backward(dx, R, out_buf, sm.N, sm.K);
  check_grad("log_softmax dinp", sm.x, n, dx, 1e-3f);

  set_out(1);
  R[0] = 1;
  memset(dx, 0, sizeof(float) * n);
  fwd = ce_fwd, fwd();
  fm_crossentropy_backward(dx, sm.probs, sm.labels, sm.N, sm.K, 1.0f);
  check_grad("cross_entropy dlogits", sm.x, n, dx, 1e-3f);
  // CE(logits) == NLL(log_softmax(logits))
  float *lp = zeros(n);
  ce_fwd();
  fm_log_softmax_forward(lp, sm.x, sm.N, sm.K);
  CHECK_NEAR(fm_nll_forward(lp, sm.labels, sm.N, sm.K), out_buf[0], 1e-5);
  memset(dx, 0, sizeof(float) * n);
  fm_nll_backward(dx, sm.labels, sm.N, sm.K, 1.0f);
  fwd = nll_fwd;
  check_grad("nll dlogp", sm.x, n, dx, 1e-3f);
  free(sm.x), free(sm.probs), free(dx), free(lp);
}

// ---------------------------------------------------------------------------
// whole network: a residual block with BN (train mode), pools, linear (the
// graph is kept smooth; relu is checked on its own above); the
// loss is the net's own cross-entropy. Checks every parameter gradient of
// the graph walk (add fan-out, flatten alias, no-grad input path).

static FmNet *gnet;
static float *gx;
static int glabels[3] = {0, 2, 1};
static double net_loss(void) {
  fm_net_forward(gnet, gx, 3, 1);
  return fm_net_loss(gnet, glabels, 3, NULL);
}

static void test_net(void) {
  FmNetOpts o = fm_net_opts_default();
  o.seed = 3, o.threads = 2;
  gnet = fm_net_new(2, 6, 6, &o);
  int x = fm_net_conv2d(gnet, 0, 4, 3, 1, 1, 1);
  int y = fm_model_conv_bn(gnet, x, 4, 3, 1, 1, 0);   // no relu: a kink within eps of a
                                                    // BN output would spoil the difference
  y = fm_net_bn(gnet, fm_net_conv2d(gnet, y, 4, 3, 1, 1, 0));
  x = fm_net_add(gnet, y, x);
  x = fm_net_channel_scale(gnet, x, 0.7f);
  x = fm_net_avgpool(gnet, x, 2, 2, 0);
  x = fm_net_flatten(gnet, x);
  x = fm_net_linear(gnet, x, 3, 1);
  CHECK(fm_net_finish(gnet, x) == 0);
  gx = rnd(3 * 2 * 6 * 6, -1, 1);
  fm_net_zero_grad(gnet);
  net_loss();
  fm_net_backward(gnet);
  float *ana = malloc(sizeof(float) * gnet->nparam_floats);
  memcpy(ana, gnet->grad_data, sizeof(float) * gnet->nparam_floats);
  fwd = NULL;
  for (int p = 0; p < gnet->nparams; p++) {
    FmParam *pr = &gnet->params[p];
    int bad = 0;
    for (size_t i = 0; i < pr->size; i++) {
      float old = pr->data[i];
      pr->data[i] = old + 1e-3f;
      double h = pr->data[i], lp = net_loss();
      pr->data[i] = old - 1e-3f;
      h -= pr->data[i];
      double lm = net_loss();
      pr->data[i] = old;
      double num = (lp - lm) / h, a = ana[pr->off + i];
      if (fabs(num - a) > ATOL / 10 + RTOL * fabs(num) && bad++ < 3)
        fprintf(stderr, "  net %s[%zu]: numeric %.6f analytic %.6f\n", pr->name, i, num, a);
    }
    CHECK(bad == 0);
  }
  free(ana), free(gx);
  fm_net_free(gnet);
}

int main(void) {
  fm_rng_seed(&rng, 42);
  test_convs();
  test_linear();
  test_bn(1, 0, 5);
  test_bn(1, 1, 1);    // BatchNorm1d-like, fixed gamma
  test_bn(0, 0, 5);
  test_channel_ops();
  test_pool("maxpool k2 s2", 1, 2, 2, 0);
  test_pool("maxpool k3 s2 p1", 1, 3, 2, 1);
  test_pool("avgpool k3 s2 p1", 0, 3, 2, 1);
  test_pool("avgpool k2 s1", 0, 2, 1, 0);
  test_elementwise();
  test_softmax_losses();
  test_net();
  free(out_buf), free(R);
  return check_done("test_trainer_grad");
}
