/* test_ops_norm.c - normalisation, softmax, quantisation and resize ops (ops/norm.c,
 * ops/resize.c): hand-built nodes, inferred, lowered, run by the kernel interpreter
 * and compared with plain C references computed here. */
#include "opcheck.h"

/* fm_ops[] refers to the op functions weakly: name one per file so that the linker
   pulls norm.o and resize.o out of the static fm_compiler library. */
void *const force_link_norm[] = {(void *)fm_infer_Softmax, (void *)fm_infer_Resize};

static double frand(void) { return (double)rand() / RAND_MAX * 4 - 2; }

static int near_all(const float *e, const float *g, int n, double tol) {
  int bad = 0;
  for (int i = 0; i < n; i++)
    if (!(fabs(e[i] - g[i]) <= tol * (1 + fabs(e[i])))) {
      if (!bad) fprintf(stderr, "  [%d] expected %g got %g\n", i, e[i], g[i]);
      bad++;
    }
  return bad == 0;
}

/* ---------------- BatchNormalization ---------------- */

static void test_batchnorm(void) {
  float sc[3] = {1, 0.5f, 2}, bi[3] = {0, 1, -1}, mu[3] = {0.1f, -0.2f, 0.3f}, var[3] = {1, 0.25f, 4};
  for (int mode = 0; mode < 2; mode++) /* constant parameters, then graph inputs */
    for (int64_t batch = 2; batch <= 3; batch++) {
      float x[3 * 3 * 4], y[36], e[36];
      for (int i = 0; i < 36; i++) x[i] = (float)frand();
      Tensor *tx = oc_input(FM_F32, 4, (int64_t[]){-1, 3, 2, 2}, x), *p[4];
      float *pd[4] = {sc, bi, mu, var};
      for (int k = 0; k < 4; k++) p[k] = mode ? oc_input(FM_F32, 1, (int64_t[]){3}, pd[k]) : oc_const(FM_F32, 1, (int64_t[]){3}, pd[k]);
      Node *n = oc_node(OP_BatchNormalization, 15, 5, (Tensor *[]){tx, p[0], p[1], p[2], p[3]}, 1);
      oc_attr_f(n, "epsilon", 1e-3f);
      n->fused_act = mode ? OP_Relu : 0;
      n->out[0]->aux = y;
      CHECK(oc_infer(n) == 0 && n->out[0]->dims[0] == -1 && oc_run(n, batch) == 0);
      for (int i = 0; i < batch * 12; i++) {
        int c = (i / 4) % 3;
        double v = (x[i] - mu[c]) / sqrt(var[c] + 1e-3) * sc[c] + bi[c];
        e[i] = (float)(mode ? fmax(v, 0) : v);
      }
      CHECK(near_all(e, y, (int)batch * 12, 1e-5));
    }
  /* training mode: batch statistics; running stats updated with momentum */
  float x[2 * 3 * 2], y[12], rm[3], rv[3];
  for (int i = 0; i < 12; i++) x[i] = (float)frand();
  Tensor *tx = oc_input(FM_F32, 3, (int64_t[]){2, 3, 2}, x);
  Tensor *p[4];
  float *pd[4] = {sc, bi, mu, var};
  for (int k = 0; k < 4; k++) p[k] = oc_const(FM_F32, 1, (int64_t[]){3}, pd[k]);
  Node *n = oc_node(OP_BatchNormalization, 15, 5, (Tensor *[]){tx, p[0], p[1], p[2], p[3]}, 3);
  oc_attr_i(n, "training_mode", 1);
  oc_attr_f(n, "momentum", 0.8f);
  n->out[0]->aux = y, n->out[1]->aux = rm, n->out[2]->aux = rv;
  CHECK(oc_infer(n) == 0 && n->out[1]->dims[0] == 3 && oc_run(n, 1) == 0);
  for (int c = 0; c < 3; c++) {
    double m = 0, v = 0;
    for (int b = 0; b < 2; b++)
      for (int s = 0; s < 2; s++) m += x[(b * 3 + c) * 2 + s];
    m /= 4;
    for (int b = 0; b < 2; b++)
      for (int s = 0; s < 2; s++) v += pow(x[(b * 3 + c) * 2 + s] - m, 2);
    v /= 4;
    CHECK_NEAR(mu[c] * 0.8 + m * 0.2, rm[c], 1e-5);
    CHECK_NEAR(var[c] * 0.8 + v * 0.2, rv[c], 1e-5);
    CHECK_NEAR((x[c * 2] - m) / sqrt(v + 1e-5) * sc[c] + bi[c], y[c * 2], 1e-4);
  }
  /* parameters of the wrong size fail naming the node */
  Tensor *bad = oc_const(FM_F32, 1, (int64_t[]){2}, sc);
  n = oc_node(OP_BatchNormalization, 15, 5, (Tensor *[]){tx, bad, p[1], p[2], p[3]}, 1);
  CHECK(oc_infer(n) == -1 && strstr(fm_errmsg(), "BatchNormalization"));
}

/* ---------------- Instance / Layer / LRN / MVN ---------------- */

static void test_instancenorm(void) {
  float x[2 * 3 * 5], y[30], e[30], sc[3] = {1, 2, 0.5f}, bi[3] = {0, 1, -1};
  for (int i = 0; i < 30; i++) x[i] = (float)(frand() * 3 + 5);
  Tensor *tx = oc_input(FM_F32, 3, (int64_t[]){-1, 3, 5}, x);
  Node *n = oc_node(OP_InstanceNormalization, 6, 3,
                 (Tensor *[]){tx, oc_const(FM_F32, 1, (int64_t[]){3}, sc), oc_const(FM_F32, 1, (int64_t[]){3}, bi)}, 1);
  n->out[0]->aux = y;
  CHECK(oc_infer(n) == 0 && oc_run(n, 2) == 0);
  for (int r = 0; r < 6; r++) {
    double m = 0, v = 0;
    for (int i = 0; i < 5; i++) m += x[r * 5 + i];
    m /= 5;
    for (int i = 0; i < 5; i++) v += pow(x[r * 5 + i] - m, 2);
    v /= 5;
    for (int i = 0; i < 5; i++) e[r * 5 + i] = (float)((x[r * 5 + i] - m) / sqrt(v + 1e-5) * sc[r % 3] + bi[r % 3]);
  }
  CHECK(near_all(e, y, 30, 1e-4));
}

/* LayerNorm over [axis, rank) of an [N, 3, 4] input, with Mean and InvStdDev. */
static void check_layernorm(int axis, int64_t batch, int prank) {
  float x[3 * 3 * 4], y[36], e[36], mean[12], inv[12], sc[12], bi[12];
  for (int i = 0; i < 36; i++) x[i] = (float)frand();
  for (int i = 0; i < 12; i++) sc[i] = (float)frand(), bi[i] = (float)frand();
  int64_t pd[2] = {3, 4};
  int64_t inner = axis == 1 ? 12 : 4, rows = batch * 12 / inner;
  Tensor *tx = oc_input(FM_F32, 3, (int64_t[]){-1, 3, 4}, x);
  Tensor *ts = oc_const(FM_F32, prank, pd + 2 - prank, sc), *tb = oc_const(FM_F32, prank, pd + 2 - prank, bi);
  Node *n = oc_node(OP_LayerNormalization, 17, 3, (Tensor *[]){tx, ts, tb}, 3);
  oc_attr_i(n, "axis", axis == 1 ? 1 : -1);
  n->out[0]->aux = y, n->out[1]->aux = mean, n->out[2]->aux = inv;
  CHECK(oc_infer(n) == 0);
  CHECK(n->out[1]->rank == 3 && n->out[1]->dims[0] == -1 && n->out[1]->dims[2] == 1);
  CHECK(n->out[1]->dims[1] == (axis == 1 ? 1 : 3));
  CHECK(oc_run(n, batch) == 0);
  int bad = 0;
  for (int r = 0; r < rows; r++) {
    double m = 0, v = 0;
    for (int i = 0; i < inner; i++) m += x[r * inner + i];
    m /= (double)inner;
    for (int i = 0; i < inner; i++) v += pow(x[r * inner + i] - m, 2);
    v /= (double)inner;
    double is = 1 / sqrt(v + 1e-5);
    bad += fabs(mean[r] - m) > 1e-5 || fabs(inv[r] - is) > 1e-4 * is;
    for (int i = 0; i < inner; i++) {
      int pi = prank == 1 ? i % 4 : i; /* a [4] scale repeats over the normalised [3, 4] */
      e[r * inner + i] = (float)((x[r * inner + i] - m) * is * sc[pi] + bi[pi]);
    }
  }
  CHECK(bad == 0);
  CHECK(near_all(e, y, (int)(rows * inner), 1e-4));
}

static void test_layernorm(void) {
  for (int64_t batch = 2; batch <= 3; batch++)
    check_layernorm(-1, batch, 1), check_layernorm(1, batch, 2), check_layernorm(1, batch, 1);
}

static void test_lrn(void) {
  for (int size = 2; size <= 3; size++) {
    float x[5 * 2], y[10], e[10];
    for (int i = 0; i < 10; i++) x[i] = (float)frand();
    Tensor *tx = oc_input(FM_F32, 4, (int64_t[]){1, 5, 1, 2}, x);
    Node *n = oc_node(OP_LRN, 13, 1, &tx, 1);
    oc_attr_i(n, "size", size), oc_attr_f(n, "alpha", 0.1f), oc_attr_f(n, "bias", 2);
    n->out[0]->aux = y;
    CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
    for (int c = 0; c < 5; c++)
      for (int s = 0; s < 2; s++) {
        double sum = 0;
        for (int k = c - (size - 1) / 2; k <= c + size / 2; k++)
          if (k >= 0 && k < 5) sum += x[k * 2 + s] * x[k * 2 + s];
        e[c * 2 + s] = (float)(x[c * 2 + s] / pow(2 + 0.1 / size * sum, 0.75));
      }
    CHECK(near_all(e, y, 10, 1e-5));
  }
  Tensor *tx = oc_input(FM_F32, 4, (int64_t[]){1, 5, 1, 2}, NULL);
  Node *n = oc_node(OP_LRN, 13, 1, &tx, 1);
  CHECK(oc_infer(n) == -1 && strstr(fm_errmsg(), "size"));
}

static void test_mvn(void) {
  float x[2 * 3 * 4], y[24], e[24];
  for (int i = 0; i < 24; i++) x[i] = (float)(frand() + 1);
  Tensor *tx = oc_input(FM_F32, 4, (int64_t[]){-1, 3, 2, 2}, x);
  Node *n = oc_node(OP_MeanVarianceNormalization, 13, 1, &tx, 1);
  n->out[0]->aux = y;
  CHECK(oc_infer(n) == 0 && oc_run(n, 2) == 0);
  for (int c = 0; c < 3; c++) { /* default axes [0, 2, 3]: per channel */
    double m = 0, m2 = 0;
    for (int b = 0; b < 2; b++)
      for (int s = 0; s < 4; s++) m += x[(b * 3 + c) * 4 + s], m2 += pow(x[(b * 3 + c) * 4 + s], 2);
    m /= 8, m2 /= 8;
    for (int b = 0; b < 2; b++)
      for (int s = 0; s < 4; s++) e[(b * 3 + c) * 4 + s] = (float)((x[(b * 3 + c) * 4 + s] - m) / (sqrt(m2 - m * m) + 1e-9));
  }
  CHECK(near_all(e, y, 24, 1e-4));
}

/* ---------------- softmax family ---------------- */

/* Softmax of x [2,3,4] normalising groups of `len` elements `stride` apart. */
static void ref_softmax(OpKind op, const float *x, float *e, int len, int stride) {
  for (int s = 0; s < 24; s++) {
    if ((s / stride) % len) continue; /* s: first element of a group */
    double m = -INFINITY, sum = 0;
    for (int j = 0; j < len; j++) m = fmax(m, x[s + j * stride]);
    int am = 0;
    for (int j = 0; j < len; j++) {
      sum += exp(x[s + j * stride] - m);
      if (x[s + j * stride] > x[s + am * stride]) am = j;
    }
    for (int j = 0; j < len; j++) {
      double v = x[s + j * stride];
      e[s + j * stride] = (float)(op == OP_Softmax ? exp(v - m) / sum : op == OP_LogSoftmax ? v - m - log(sum) : j == am);
    }
  }
}

static void test_softmax(void) {
  OpKind ops[] = {OP_Softmax, OP_LogSoftmax, OP_Hardmax};
  for (int o = 0; o < 3; o++) {
    float x[24], y[24], e[24];
    for (int i = 0; i < 24; i++) x[i] = (float)(frand() * 3 + 1000); /* large: needs the max shift */
    x[5] = x[6]; /* a tie: Hardmax takes the first */
    Tensor *tx = oc_input(FM_F32, 3, (int64_t[]){2, 3, 4}, x);
    /* opset 11, axis 1: [2, 12] rows */
    Node *n = oc_node(ops[o], 11, 1, &tx, 1);
    oc_attr_i(n, "axis", 1);
    n->out[0]->aux = y;
    CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
    ref_softmax(ops[o], x, e, 12, 1);
    CHECK(near_all(e, y, 24, 1e-4));
    /* opset 13, axis 1: the single axis of 3, stride 4 */
    n = oc_node(ops[o], 13, 1, &tx, 1);
    oc_attr_i(n, "axis", 1);
    n->out[0]->aux = y;
    CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
    ref_softmax(ops[o], x, e, 3, 4);
    CHECK(near_all(e, y, 24, 1e-4));
    /* opset 13 default axis -1 on a symbolic batch; opset 1 default axis 1 */
    Tensor *ts = oc_input(FM_F32, 3, (int64_t[]){-1, 3, 4}, x);
    n = oc_node(ops[o], 13, 1, &ts, 1);
    n->out[0]->aux = y;
    CHECK(oc_infer(n) == 0 && oc_run(n, 2) == 0);
    ref_softmax(ops[o], x, e, 4, 1);
    CHECK(near_all(e, y, 24, 1e-4));
    n = oc_node(ops[o], 1, 1, &ts, 1);
    n->out[0]->aux = y;
    CHECK(oc_infer(n) == 0 && oc_run(n, 2) == 0);
    ref_softmax(ops[o], x, e, 12, 1);
    CHECK(near_all(e, y, 24, 1e-4));
  }
  /* Hardmax ties pick the first maximum */
  float x[4] = {1, 3, 3, 2}, y[4];
  Tensor *tx = oc_input(FM_F32, 2, (int64_t[]){1, 4}, x);
  Node *n = oc_node(OP_Hardmax, 13, 1, &tx, 1);
  n->out[0]->aux = y;
  CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
  CHECK(y[0] == 0 && y[1] == 1 && y[2] == 0 && y[3] == 0);
  n = oc_node(OP_Softmax, 13, 1, &tx, 1);
  oc_attr_i(n, "axis", 2);
  CHECK(oc_infer(n) == -1 && strstr(fm_errmsg(), "axis"));
}

/* ---------------- quantisation ---------------- */

static double rne(double v) { return v - floor(v) == 0.5 ? 2 * floor(v / 2 + 0.5) : floor(v + 0.5); }

static void test_quant(void) {
  /* per tensor, uint8, zero point 128: ties round to even, results saturate */
  float x[8] = {0.25f, 1, 1.5f, 2.5f, -0.75f, 300, -300, 0.75f}, s = 0.5f;
  uint8_t z = 128, y[8];
  Tensor *tx = oc_input(FM_F32, 1, (int64_t[]){8}, x);
  Node *n = oc_node(OP_QuantizeLinear, 13, 3, (Tensor *[]){tx, oc_const(FM_F32, 0, NULL, &s), oc_const(FM_U8, 0, NULL, &z)}, 1);
  n->out[0]->aux = y;
  CHECK(oc_infer(n) == 0 && n->out[0]->dtype == FM_U8 && oc_run(n, 1) == 0);
  for (int i = 0; i < 8; i++) CHECK(y[i] == (uint8_t)fmin(255, fmax(0, rne(x[i] / 0.5) + 128)));
  CHECK(y[0] == 128 && y[4] == 126 && y[7] == 130 && y[5] == 255 && y[6] == 0); /* 0.5, -1.5, 1.5: to even */
  /* per axis (axis 1), int8 */
  float xs[2 * 3 * 2], sc[3] = {0.1f, 1, 0.02f};
  int8_t zp[3] = {0, -10, 5}, q[12];
  for (int i = 0; i < 12; i++) xs[i] = (float)(frand() * 3);
  Tensor *txs = oc_input(FM_F32, 3, (int64_t[]){-1, 3, 2}, xs);
  Tensor *tsc = oc_const(FM_F32, 1, (int64_t[]){3}, sc), *tzp = oc_const(FM_I8, 1, (int64_t[]){3}, zp);
  n = oc_node(OP_QuantizeLinear, 13, 3, (Tensor *[]){txs, tsc, tzp}, 1);
  n->out[0]->aux = q;
  CHECK(oc_infer(n) == 0 && n->out[0]->dtype == FM_I8 && oc_run(n, 2) == 0);
  int bad = 0;
  for (int i = 0; i < 12; i++) {
    int c = (i / 2) % 3;
    bad += q[i] != (int8_t)fmin(127, fmax(-128, rne((double)(xs[i] / sc[c])) + zp[c]));
  }
  CHECK(bad == 0);
  /* dequantize back, per axis */
  float d[12];
  Tensor *tq = oc_input(FM_I8, 3, (int64_t[]){-1, 3, 2}, q);
  n = oc_node(OP_DequantizeLinear, 13, 3, (Tensor *[]){tq, tsc, tzp}, 1);
  n->out[0]->aux = d;
  CHECK(oc_infer(n) == 0 && n->out[0]->dtype == FM_F32 && oc_run(n, 2) == 0);
  bad = 0;
  for (int i = 0; i < 12; i++) bad += fabs(d[i] - (q[i] - zp[(i / 2) % 3]) * sc[(i / 2) % 3]) > 1e-6;
  CHECK(bad == 0);
  /* opset 10 has no per-axis form */
  n = oc_node(OP_DequantizeLinear, 10, 3, (Tensor *[]){tq, tsc, tzp}, 1);
  CHECK(oc_infer(n) == -1 && strstr(fm_errmsg(), "scalar"));
}

/* ---------------- resize ---------------- */

/* Bilinear, half_pixel, of an h x w plane to oh x ow (the textbook formula). */
static float bilinear(const float *x, int h, int w, double sy, double sx, int oy, int ox) {
  double fy = fmin(fmax((oy + 0.5) / sy - 0.5, 0), h - 1), fx = fmin(fmax((ox + 0.5) / sx - 0.5, 0), w - 1);
  int y0 = (int)floor(fy), x0 = (int)floor(fx), y1 = y0 + 1 < h ? y0 + 1 : h - 1, x1 = x0 + 1 < w ? x0 + 1 : w - 1;
  double ty = fy - y0, tx = fx - x0;
  return (float)((1 - ty) * ((1 - tx) * x[y0 * w + x0] + tx * x[y0 * w + x1]) +
                 ty * ((1 - tx) * x[y1 * w + x0] + tx * x[y1 * w + x1]));
}

static void test_resize(void) {
  /* linear, half_pixel, scales [1, 1, 2, 1.5] on [N, 2, 3, 4] */
  for (int64_t batch = 2; batch <= 3; batch++) {
    float x[3 * 2 * 12], y[3 * 2 * 6 * 6], e[3 * 2 * 36];
    for (int i = 0; i < 72; i++) x[i] = (float)frand();
    float scales[4] = {1, 1, 2, 1.5f};
    Tensor *tx = oc_input(FM_F32, 4, (int64_t[]){-1, 2, 3, 4}, x);
    Node *n = oc_node(OP_Resize, 13, 3, (Tensor *[]){tx, NULL, oc_const(FM_F32, 1, (int64_t[]){4}, scales)}, 1);
    oc_attr_s(n, "mode", "linear");
    n->out[0]->aux = y;
    CHECK(oc_infer(n) == 0);
    Tensor *o = n->out[0];
    CHECK(o->dims[0] == -1 && o->dims[1] == 2 && o->dims[2] == 6 && o->dims[3] == 6);
    CHECK(oc_run(n, batch) == 0);
    for (int p = 0; p < batch * 2; p++)
      for (int oy = 0; oy < 6; oy++)
        for (int ox = 0; ox < 6; ox++) e[(p * 6 + oy) * 6 + ox] = bilinear(x + p * 12, 3, 4, 2, 1.5, oy, ox);
    CHECK(near_all(e, y, (int)batch * 72, 1e-5));
  }
  /* nearest, asymmetric, floor, from sizes: out[i] = in[floor(i * in / out)] */
  {
    float x[6] = {1, 2, 3, 4, 5, 6}, y[4 * 5];
    int64_t sizes[4] = {1, 1, 4, 5};
    Tensor *tx = oc_input(FM_F32, 4, (int64_t[]){1, 1, 2, 3}, x);
    Node *n = oc_node(OP_Resize, 13, 4, (Tensor *[]){tx, NULL, NULL, oc_const(FM_I64, 1, (int64_t[]){4}, sizes)}, 1);
    oc_attr_s(n, "coordinate_transformation_mode", "asymmetric"), oc_attr_s(n, "nearest_mode", "floor");
    n->out[0]->aux = y;
    CHECK(oc_infer(n) == 0 && n->out[0]->dims[2] == 4 && n->out[0]->dims[3] == 5 && oc_run(n, 1) == 0);
    int bad = 0;
    for (int oy = 0; oy < 4; oy++)
      for (int ox = 0; ox < 5; ox++) bad += y[oy * 5 + ox] != x[(oy * 2 / 4) * 3 + (int)floor(ox * 3.0 / 5)];
    CHECK(bad == 0);
  }
  /* cubic, align_corners: reproduces a linear ramp away from the borders */
  {
    float x[8], y[15];
    for (int i = 0; i < 8; i++) x[i] = (float)(2 * i + 1);
    float scales[2] = {1, 15.0f / 8};
    Tensor *tx = oc_input(FM_F32, 2, (int64_t[]){1, 8}, x);
    Node *n = oc_node(OP_Resize, 11, 3, (Tensor *[]){tx, oc_const(FM_F32, 1, (int64_t[]){0}, NULL), oc_const(FM_F32, 1, (int64_t[]){2}, scales)}, 1);
    oc_attr_s(n, "mode", "cubic"), oc_attr_s(n, "coordinate_transformation_mode", "align_corners");
    n->out[0]->aux = y;
    CHECK(oc_infer(n) == 0 && n->out[0]->dims[1] == 15 && oc_run(n, 1) == 0);
    for (int o = 3; o < 12; o++) CHECK_NEAR(2 * (o * 7.0 / 14) + 1, y[o], 1e-4);
  }
  /* Upsample (opset 9), nearest x2 in H and x3 in W */
  {
    float x[4] = {1, 2, 3, 4}, y[2 * 2 * 3 * 2], sc[4] = {1, 1, 2, 3};
    Tensor *tx = oc_input(FM_F32, 4, (int64_t[]){1, 1, 2, 2}, x);
    Node *n = oc_node(OP_Upsample, 9, 2, (Tensor *[]){tx, oc_const(FM_F32, 1, (int64_t[]){4}, sc)}, 1);
    n->out[0]->aux = y;
    CHECK(oc_infer(n) == 0 && n->out[0]->dims[2] == 4 && n->out[0]->dims[3] == 6 && oc_run(n, 1) == 0);
    int bad = 0;
    for (int oy = 0; oy < 4; oy++)
      for (int ox = 0; ox < 6; ox++) bad += y[oy * 6 + ox] != x[(oy / 2) * 2 + ox / 3];
    CHECK(bad == 0);
  }
  /* scaling the batch axis, or non-constant scales, fail clearly */
  float s2[4] = {2, 1, 1, 1};
  Tensor *tx = oc_input(FM_F32, 4, (int64_t[]){-1, 1, 2, 2}, NULL);
  Node *n = oc_node(OP_Resize, 13, 3, (Tensor *[]){tx, NULL, oc_const(FM_F32, 1, (int64_t[]){4}, s2)}, 1);
  CHECK(oc_infer(n) == -1 && strstr(fm_errmsg(), "batch"));
  n = oc_node(OP_Resize, 13, 3, (Tensor *[]){tx, NULL, oc_input(FM_F32, 1, (int64_t[]){4}, s2)}, 1);
  CHECK(oc_infer(n) == -1 && strstr(fm_errmsg(), "constant"));
}

int main(void) {
  srand(2);
  oc_graph_new(17);
  test_batchnorm();
  test_instancenorm();
  test_layernorm();
  test_lrn();
  test_mvn();
  test_softmax();
  test_quant();
  test_resize();
  oc_graph_free();
  return check_done("test_ops_norm");
}
