/* test_ops_elem.c - unary, activation, cast and broadcasting binary ops (ops/unary.c,
 * ops/binary.c): each node is built by hand, inferred, lowered and run by the
 * kernel interpreter, and compared with a plain C reference computed here. */
#include "opcheck.h"

/* fm_ops[] refers to the op functions weakly: name one per file so that the linker
   pulls unary.o and binary.o out of the static fm_compiler library. */
void *const force_link_elem[] = {(void *)fm_infer_Abs, (void *)fm_infer_Add};

static double frand(void) { return (double)rand() / RAND_MAX * 4 - 2; }

/* ---------------- unary ---------------- */

typedef struct { OpKind op; double (*ref)(double); double lo, hi; } UCase;
static double r_abs(double x) { return fabs(x); }
static double r_neg(double x) { return -x; }
static double r_recip(double x) { return 1 / x; }
static double r_sign(double x) { return x > 0 ? 1 : x < 0 ? -1 : 0; }
static double r_relu(double x) { return x > 0 ? x : 0; }
static double r_sigmoid(double x) { return 1 / (1 + exp(-x)); }
static double r_leaky(double x) { return x < 0 ? 0.01 * x : x; }
static double r_elu(double x) { return x < 0 ? exp(x) - 1 : x; }
static double r_selu(double x) {
  double a = 1.67326319217681884765625, g = 1.05070102214813232421875;
  return x <= 0 ? g * (a * exp(x) - a) : g * x;
}
static double r_celu(double x) { return fmax(0, x) + fmin(0, exp(x) - 1); }
static double r_hsig(double x) { return fmax(0, fmin(1, 0.2 * x + 0.5)); }
static double r_hswish(double x) { return x * fmax(0, fmin(1, x / 6 + 0.5)); }
static double r_softplus(double x) { return log(exp(x) + 1); }
static double r_softsign(double x) { return x / (1 + fabs(x)); }
static double r_mish(double x) { return x * tanh(log1p(exp(x))); }
static double r_thr(double x) { return x > 1 ? x : 0; }
static double r_shrink(double x) { return x < -0.5 ? x : x > 0.5 ? x : 0; }
static double r_round(double x) { return nearbyint(x); }

static const UCase ucases[] = {
    {OP_Abs, r_abs, -3, 3}, {OP_Neg, r_neg, -3, 3}, {OP_Sqrt, sqrt, 0.1, 4}, {OP_Exp, exp, -3, 3},
    {OP_Log, log, 0.1, 4}, {OP_Reciprocal, r_recip, 0.5, 3}, {OP_Floor, floor, -3, 3},
    {OP_Ceil, ceil, -3, 3}, {OP_Round, r_round, -3, 3}, {OP_Sign, r_sign, -3, 3}, {OP_Sin, sin, -3, 3},
    {OP_Cos, cos, -3, 3}, {OP_Tan, tan, -1, 1}, {OP_Asin, asin, -0.9, 0.9}, {OP_Acos, acos, -0.9, 0.9},
    {OP_Atan, atan, -3, 3}, {OP_Sinh, sinh, -3, 3}, {OP_Cosh, cosh, -3, 3}, {OP_Asinh, asinh, -3, 3},
    {OP_Acosh, acosh, 1.1, 4}, {OP_Atanh, atanh, -0.9, 0.9}, {OP_Erf, erf, -3, 3}, {OP_Tanh, tanh, -3, 3},
    {OP_Relu, r_relu, -3, 3}, {OP_Sigmoid, r_sigmoid, -6, 6}, {OP_LeakyRelu, r_leaky, -3, 3},
    {OP_Elu, r_elu, -3, 3}, {OP_Selu, r_selu, -3, 3}, {OP_Celu, r_celu, -3, 3},
    {OP_HardSigmoid, r_hsig, -4, 4}, {OP_HardSwish, r_hswish, -4, 4}, {OP_Softplus, r_softplus, -5, 5},
    {OP_Softsign, r_softsign, -3, 3}, {OP_Mish, r_mish, -3, 3}, {OP_ThresholdedRelu, r_thr, -3, 3},
    {OP_Shrink, r_shrink, -3, 3},
};

/* Every unary op with default attributes on a [N, 5] input, at batch 2 and 3. */
static void test_unary(void) {
  for (size_t u = 0; u < sizeof ucases / sizeof *ucases; u++) {
    const UCase *c = &ucases[u];
    for (int64_t batch = 2; batch <= 3; batch++) {
      float x[15], y[15];
      for (int i = 0; i < 15; i++) x[i] = (float)(c->lo + (c->hi - c->lo) * (i + 0.37) / 15);
      if (c->op == OP_Round) x[0] = 2.5f, x[1] = -0.5f, x[2] = 1.5f; /* halves round to even */
      Tensor *in = oc_input(FM_F32, 2, (int64_t[]){-1, 5}, x);
      Node *n = oc_node(c->op, 17, 1, &in, 1);
      n->out[0]->aux = y;
      CHECK(oc_infer(n) == 0);
      CHECK(n->out[0]->dims[0] == -1 && n->out[0]->dtype == FM_F32);
      CHECK(oc_run(n, batch) == 0);
      int bad = 0;
      for (int i = 0; i < 5 * batch; i++) {
        double e = c->ref(x[i]);
        if (fabs(e - y[i]) > 1e-5 + 1e-5 * fabs(e)) {
          if (!bad++) fprintf(stderr, "%s(%g): expected %g got %g\n", fm_op_names[c->op], x[i], e, y[i]);
        }
      }
      CHECK(bad == 0);
    }
  }
}

static void test_unary_attrs(void) {
  float x[6] = {-2, -0.6f, -0.2f, 0.3f, 0.7f, 100};
  float y[6];
  Tensor *in = oc_input(FM_F32, 1, (int64_t[]){6}, x);
  /* LeakyRelu alpha, Shrink bias/lambd, ThresholdedRelu alpha, Celu alpha */
  Node *n = oc_node(OP_LeakyRelu, 16, 1, &in, 1);
  oc_attr_f(n, "alpha", 0.1f);
  n->out[0]->aux = y;
  CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
  CHECK_NEAR(-0.2, y[0], 1e-6);
  CHECK_NEAR(0.3, y[3], 1e-6);
  n = oc_node(OP_Shrink, 16, 1, &in, 1);
  oc_attr_f(n, "bias", 0.1f), oc_attr_f(n, "lambd", 0.4f);
  n->out[0]->aux = y;
  CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
  CHECK_NEAR(-1.9, y[0], 1e-6);
  CHECK_NEAR(-0.5, y[1], 1e-6);
  CHECK_NEAR(0, y[2], 1e-6);
  CHECK_NEAR(0.6, y[4], 1e-6);
  n = oc_node(OP_Celu, 16, 1, &in, 1);
  oc_attr_f(n, "alpha", 2.0f);
  n->out[0]->aux = y;
  CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
  CHECK_NEAR(2 * (exp(-1.0) - 1), y[0], 1e-6);
  /* Softplus stays finite for large inputs */
  n = oc_node(OP_Softplus, 16, 1, &in, 1);
  n->out[0]->aux = y;
  CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
  CHECK_NEAR(100, y[5], 1e-4);
  /* IsInf with detect_negative=0 */
  float xi[4] = {INFINITY, -INFINITY, NAN, 1};
  uint8_t yb[4];
  Tensor *ti = oc_input(FM_F32, 1, (int64_t[]){4}, xi);
  n = oc_node(OP_IsInf, 16, 1, &ti, 1);
  oc_attr_i(n, "detect_negative", 0);
  n->out[0]->aux = yb;
  CHECK(oc_infer(n) == 0 && n->out[0]->dtype == FM_BOOL && oc_run(n, 1) == 0);
  CHECK(yb[0] == 1 && yb[1] == 0 && yb[2] == 0 && yb[3] == 0);
  n = oc_node(OP_IsNaN, 16, 1, &ti, 1);
  n->out[0]->aux = yb;
  CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
  CHECK(yb[0] == 0 && yb[2] == 1);
  /* math on integers is a clear error */
  int32_t xs[2] = {1, 2};
  Tensor *tx = oc_input(FM_I32, 1, (int64_t[]){2}, xs);
  n = oc_node(OP_Sqrt, 16, 1, &tx, 1);
  CHECK(oc_infer(n) == -1 && strstr(fm_errmsg(), "must be float"));
}

static void test_clip(void) {
  float x[5] = {-2, -0.5f, 0, 0.7f, 3};
  float y[5];
  Tensor *in = oc_input(FM_F32, 1, (int64_t[]){5}, x);
  /* opset 6: attributes */
  Node *n = oc_node(OP_Clip, 6, 1, &in, 1);
  oc_attr_f(n, "min", -1), oc_attr_f(n, "max", 0.5f);
  n->out[0]->aux = y;
  CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
  CHECK(y[0] == -1 && y[1] == -0.5f && y[3] == 0.5f && y[4] == 0.5f);
  /* opset 13: only max given, as a graph input */
  float mx = 0.1f;
  Tensor *tmax = oc_input(FM_F32, 0, NULL, &mx);
  n = oc_node(OP_Clip, 13, 3, (Tensor *[]){in, NULL, tmax}, 1);
  n->out[0]->aux = y;
  CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
  CHECK(y[0] == -2 && y[3] == 0.1f && y[4] == 0.1f);
  /* int8 with both bounds */
  int8_t xi[4] = {-100, -3, 5, 100}, yi[4], lo = -4, hi = 6;
  Tensor *ti = oc_input(FM_I8, 1, (int64_t[]){4}, xi);
  Tensor *tl = oc_const(FM_I8, 0, NULL, &lo), *th = oc_const(FM_I8, 0, NULL, &hi);
  n = oc_node(OP_Clip, 12, 3, (Tensor *[]){ti, tl, th}, 1);
  n->out[0]->aux = yi;
  CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
  CHECK(yi[0] == -4 && yi[1] == -3 && yi[2] == 5 && yi[3] == 6);
}

static void test_cast(void) {
  float x[6] = {-2.7f, 2.7f, -0.5f, 0, 1e3f, 0.25f};
  int32_t yi[6];
  Tensor *in = oc_input(FM_F32, 1, (int64_t[]){6}, x);
  Node *n = oc_node(OP_Cast, 13, 1, &in, 1);
  oc_attr_i(n, "to", FM_I32);
  n->out[0]->aux = yi;
  CHECK(oc_infer(n) == 0 && n->out[0]->dtype == FM_I32 && oc_run(n, 1) == 0);
  CHECK(yi[0] == -2 && yi[1] == 2 && yi[2] == 0 && yi[4] == 1000); /* toward zero */
  uint8_t yb[6];
  n = oc_node(OP_Cast, 13, 1, &in, 1);
  oc_attr_i(n, "to", FM_BOOL);
  n->out[0]->aux = yb;
  CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
  CHECK(yb[0] == 1 && yb[2] == 1 && yb[3] == 0 && yb[5] == 1);
  /* bool -> double, via CastLike */
  double yd[6], like = 0;
  Tensor *tb = oc_input(FM_BOOL, 1, (int64_t[]){6}, yb);
  Tensor *tl = oc_const(FM_F64, 0, NULL, &like);
  n = oc_node(OP_CastLike, 15, 2, (Tensor *[]){tb, tl}, 1);
  n->out[0]->aux = yd;
  CHECK(oc_infer(n) == 0 && n->out[0]->dtype == FM_F64 && oc_run(n, 1) == 0);
  CHECK(yd[0] == 1 && yd[3] == 0);
  /* opset 1: the target is a string; small constants are cast during inference */
  int64_t ci[3] = {-1, 4, 7};
  Tensor *tc = oc_const(FM_I64, 1, (int64_t[]){3}, ci);
  n = oc_node(OP_Cast, 1, 1, &tc, 1);
  oc_attr_s(n, "to", "FLOAT");
  CHECK(oc_infer(n) == 0 && n->out[0]->dtype == FM_F32 && n->out[0]->data);
  CHECK(((float *)n->out[0]->data)[2] == 7.0f);
  n = oc_node(OP_Cast, 13, 1, &in, 1);
  oc_attr_i(n, "to", FM_STRING);
  CHECK(oc_infer(n) == -1 && strstr(fm_errmsg(), "unsupported type"));
}

static void test_dropout(void) {
  float x[4] = {1, -2, 3, -4}, y[4];
  uint8_t m[4] = {0};
  Tensor *in = oc_input(FM_F32, 2, (int64_t[]){-1, 2}, x);
  Node *n = oc_node(OP_Dropout, 13, 1, &in, 2);
  n->out[0]->aux = y, n->out[1]->aux = m;
  CHECK(oc_infer(n) == 0 && n->out[1]->dtype == FM_BOOL && oc_run(n, 2) == 0);
  CHECK(y[1] == -2 && y[3] == -4 && m[0] == 1 && m[3] == 1);
  uint8_t tm = 1;
  float ratio = 0.5f;
  Tensor *tr = oc_const(FM_F32, 0, NULL, &ratio);
  Tensor *tt = oc_const(FM_BOOL, 0, NULL, &tm);
  n = oc_node(OP_Dropout, 13, 3, (Tensor *[]){in, tr, tt}, 1);
  CHECK(oc_infer(n) == -1 && strstr(fm_errmsg(), "training mode"));
}

/* ---------------- binary ---------------- */

/* out = f(a, b) with broadcasting, float32, vs the reference. */
static void check_bin_f32(OpKind op, int ra, const int64_t *da, int rb, const int64_t *db, int64_t batch,
                          double (*ref)(double, double)) {
  float a[256], bb[256], y[256];
  int64_t na = 1, nb = 1;
  int64_t dar[8], dbr[8];
  for (int d = 0; d < ra; d++) dar[d] = da[d] < 0 ? -da[d] * batch : da[d], na *= dar[d];
  for (int d = 0; d < rb; d++) dbr[d] = db[d] < 0 ? -db[d] * batch : db[d], nb *= dbr[d];
  for (int i = 0; i < na; i++) a[i] = (float)frand();
  for (int i = 0; i < nb; i++) bb[i] = (float)frand() + 3; /* no division by ~0 */
  Tensor *ta = oc_input(FM_F32, ra, da, a), *tb = oc_input(FM_F32, rb, db, bb);
  Node *n = oc_node(op, 14, 2, (Tensor *[]){ta, tb}, 1);
  n->out[0]->aux = y;
  CHECK(oc_infer(n) == 0);
  Tensor *o = n->out[0];
  int64_t dor[8], no = 1;
  for (int d = 0; d < o->rank; d++) dor[d] = o->dims[d] < 0 ? -o->dims[d] * batch : o->dims[d], no *= dor[d];
  CHECK(oc_run(n, batch) == 0);
  int bad = 0;
  for (int64_t k = 0; k < no; k++) {
    double e = ref(a[oc_bidx(o->rank, dor, ra, dar, k)], bb[oc_bidx(o->rank, dor, rb, dbr, k)]);
    if (fabs(e - y[k]) > 1e-5 * (1 + fabs(e))) bad++;
  }
  CHECK(bad == 0);
}

static double r_add(double a, double b) { return a + b; }
static double r_sub(double a, double b) { return a - b; }
static double r_mul(double a, double b) { return a * b; }
static double r_div(double a, double b) { return a / b; }
static double r_pow(double a, double b) { return pow(fabs(a), b - 3); }

static void test_broadcast(void) {
  check_bin_f32(OP_Add, 3, (int64_t[]){2, 3, 4}, 2, (int64_t[]){3, 1}, 1, r_add);
  check_bin_f32(OP_Sub, 1, (int64_t[]){4}, 3, (int64_t[]){2, 3, 4}, 1, r_sub);
  check_bin_f32(OP_Mul, 4, (int64_t[]){2, 3, 1, 5}, 3, (int64_t[]){3, 4, 1}, 1, r_mul);
  check_bin_f32(OP_Div, 2, (int64_t[]){3, 4}, 0, NULL, 1, r_div);
  for (int64_t batch = 2; batch <= 3; batch++) {
    check_bin_f32(OP_Add, 3, (int64_t[]){-1, 3, 4}, 1, (int64_t[]){4}, batch, r_add);
    check_bin_f32(OP_Mul, 3, (int64_t[]){-1, 3, 4}, 3, (int64_t[]){-1, 3, 4}, batch, r_mul);
    check_bin_f32(OP_Div, 3, (int64_t[]){-1, 1, 4}, 3, (int64_t[]){1, 3, 1}, batch, r_div);
  }
  /* float exponent of |a| (Pow on negative bases with float exponents is NaN) */
  float a[3] = {2, 3, 4}, e[3] = {0.5f, 2, -1}, y[3];
  Tensor *ta = oc_input(FM_F32, 1, (int64_t[]){3}, a), *te = oc_input(FM_F32, 1, (int64_t[]){3}, e);
  Node *n = oc_node(OP_Pow, 15, 2, (Tensor *[]){ta, te}, 1);
  n->out[0]->aux = y;
  CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
  CHECK_NEAR(sqrt(2), y[0], 1e-6);
  CHECK_NEAR(9, y[1], 1e-6);
  CHECK_NEAR(0.25, y[2], 1e-7);
  (void)r_pow;
  /* incompatible shapes fail naming the node */
  Tensor *t1 = oc_input(FM_F32, 1, (int64_t[]){3}, a), *t2 = oc_input(FM_F32, 1, (int64_t[]){4}, a);
  n = oc_node(OP_Add, 14, 2, (Tensor *[]){t1, t2}, 1);
  CHECK(oc_infer(n) == -1 && strstr(fm_errmsg(), "cannot be broadcast"));
  /* a symbolic dim against a different known one fails too */
  t1 = oc_input(FM_F32, 2, (int64_t[]){-1, 3}, a), t2 = oc_input(FM_F32, 2, (int64_t[]){2, 3}, a);
  n = oc_node(OP_Add, 14, 2, (Tensor *[]){t1, t2}, 1);
  CHECK(oc_infer(n) == -1);
}

static void test_int_arith(void) {
  int32_t a[6] = {-7, 7, -7, 7, 5, -6}, b[6] = {2, -2, 3, -3, 5, 4}, y[6];
  Tensor *ta = oc_input(FM_I32, 1, (int64_t[]){6}, a), *tb = oc_input(FM_I32, 1, (int64_t[]){6}, b);
  Node *n = oc_node(OP_Div, 14, 2, (Tensor *[]){ta, tb}, 1);
  n->out[0]->aux = y;
  CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
  for (int i = 0; i < 6; i++) CHECK(y[i] == a[i] / b[i]); /* truncation */
  /* Mod, fmod=0: the result takes the divisor's sign (Python) */
  n = oc_node(OP_Mod, 13, 2, (Tensor *[]){ta, tb}, 1);
  n->out[0]->aux = y;
  CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
  for (int i = 0; i < 6; i++) {
    int32_t r = a[i] % b[i];
    if (r != 0 && (r < 0) != (b[i] < 0)) r += b[i];
    CHECK(y[i] == r);
  }
  CHECK(y[0] == 1 && y[1] == -1 && y[2] == 2);
  /* Mod fmod=1 on floats: the dividend's sign */
  float fa[3] = {-7.5f, 7.5f, -4}, fb[3] = {2, -2, 3}, fy[3];
  Tensor *tfa = oc_input(FM_F32, 1, (int64_t[]){3}, fa), *tfb = oc_input(FM_F32, 1, (int64_t[]){3}, fb);
  n = oc_node(OP_Mod, 13, 2, (Tensor *[]){tfa, tfb}, 1);
  oc_attr_i(n, "fmod", 1);
  n->out[0]->aux = fy;
  CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
  CHECK(fy[0] == -1.5f && fy[1] == 1.5f && fy[2] == -1);
  /* Pow: int base, float exponent -> int; float base, int64 exponent -> float */
  float e[6] = {2, 1, 0, 3, 2, 1};
  Tensor *te = oc_input(FM_F32, 1, (int64_t[]){6}, e);
  n = oc_node(OP_Pow, 15, 2, (Tensor *[]){ta, te}, 1);
  n->out[0]->aux = y;
  CHECK(oc_infer(n) == 0 && n->out[0]->dtype == FM_I32 && oc_run(n, 1) == 0);
  CHECK(y[0] == 49 && y[1] == 7 && y[2] == 1 && y[3] == 343 && y[5] == -6);
  int64_t ie[3] = {2, 3, 0};
  Tensor *tie = oc_input(FM_I64, 1, (int64_t[]){3}, ie);
  n = oc_node(OP_Pow, 15, 2, (Tensor *[]){tfa, tie}, 1);
  n->out[0]->aux = fy;
  CHECK(oc_infer(n) == 0 && n->out[0]->dtype == FM_F32 && oc_run(n, 1) == 0);
  CHECK(fy[0] == 56.25f && fy[1] == 421.875f && fy[2] == 1);
  /* BitShift on uint8 */
  uint8_t ua[3] = {16, 4, 1}, ub[3] = {1, 2, 3}, uy[3];
  Tensor *tua = oc_input(FM_U8, 1, (int64_t[]){3}, ua), *tub = oc_input(FM_U8, 1, (int64_t[]){3}, ub);
  n = oc_node(OP_BitShift, 11, 2, (Tensor *[]){tua, tub}, 1);
  oc_attr_s(n, "direction", "RIGHT");
  n->out[0]->aux = uy;
  CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
  CHECK(uy[0] == 8 && uy[1] == 1 && uy[2] == 0);
  n = oc_node(OP_BitShift, 11, 2, (Tensor *[]){tua, tub}, 1);
  oc_attr_s(n, "direction", "LEFT");
  n->out[0]->aux = uy;
  CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
  CHECK(uy[0] == 32 && uy[1] == 16 && uy[2] == 8);
  /* mixed types are an error */
  n = oc_node(OP_Add, 14, 2, (Tensor *[]){ta, te}, 1);
  CHECK(oc_infer(n) == -1 && strstr(fm_errmsg(), "same type"));
}

static void test_prelu(void) {
  float x[24], s[3] = {0.1f, 0.2f, 0.3f}, y[24];
  for (int i = 0; i < 24; i++) x[i] = (float)(i - 12) / 4;
  Tensor *tx = oc_input(FM_F32, 4, (int64_t[]){2, 3, 2, 2}, x);
  Tensor *ts = oc_const(FM_F32, 3, (int64_t[]){3, 1, 1}, s);
  Node *n = oc_node(OP_PRelu, 16, 2, (Tensor *[]){tx, ts}, 1);
  n->out[0]->aux = y;
  CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
  int bad = 0;
  for (int i = 0; i < 24; i++) {
    double e = x[i] < 0 ? s[(i / 4) % 3] * x[i] : x[i];
    bad += fabs(e - y[i]) > 1e-6;
  }
  CHECK(bad == 0);
  /* opset 6: a 1-D slope of C values is per channel */
  Tensor *ts1 = oc_const(FM_F32, 1, (int64_t[]){3}, s);
  n = oc_node(OP_PRelu, 6, 2, (Tensor *[]){tx, ts1}, 1);
  n->out[0]->aux = y;
  CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
  bad = 0;
  for (int i = 0; i < 24; i++) {
    double e = x[i] < 0 ? s[(i / 4) % 3] * x[i] : x[i];
    bad += fabs(e - y[i]) > 1e-6;
  }
  CHECK(bad == 0);
}

static void test_cmp_logic_where(void) {
  int64_t a[6] = {1, 5, 3, 4, 4, 0}, b[3] = {2, 5, 0};
  uint8_t y[6];
  Tensor *ta = oc_input(FM_I64, 2, (int64_t[]){2, 3}, a), *tb = oc_input(FM_I64, 1, (int64_t[]){3}, b);
  OpKind ops[] = {OP_Equal, OP_Greater, OP_Less, OP_GreaterOrEqual, OP_LessOrEqual};
  for (int o = 0; o < 5; o++) {
    Node *n = oc_node(ops[o], 16, 2, (Tensor *[]){ta, tb}, 1);
    n->out[0]->aux = y;
    CHECK(oc_infer(n) == 0 && n->out[0]->dtype == FM_BOOL && oc_run(n, 1) == 0);
    int bad = 0;
    for (int i = 0; i < 6; i++) {
      int64_t p = a[i], q = b[i % 3];
      int e = o == 0 ? p == q : o == 1 ? p > q : o == 2 ? p < q : o == 3 ? p >= q : p <= q;
      bad += y[i] != e;
    }
    CHECK(bad == 0);
  }
  uint8_t p[4] = {0, 0, 1, 1}, q[2] = {0, 1}, z[4];
  Tensor *tp = oc_input(FM_BOOL, 2, (int64_t[]){2, 2}, p), *tq = oc_input(FM_BOOL, 1, (int64_t[]){2}, q);
  OpKind lops[] = {OP_And, OP_Or, OP_Xor};
  for (int o = 0; o < 3; o++) {
    Node *n = oc_node(lops[o], 7, 2, (Tensor *[]){tp, tq}, 1);
    n->out[0]->aux = z;
    CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
    int bad = 0;
    for (int i = 0; i < 4; i++) {
      int u = p[i], v = q[i % 2];
      bad += z[i] != (o == 0 ? u && v : o == 1 ? u || v : u != v);
    }
    CHECK(bad == 0);
  }
  /* Where: cond [2,1], x [1,3], y scalar -> [2,3] */
  uint8_t c[2] = {1, 0};
  float x[3] = {1, 2, 3}, yv = -1, out[6];
  Tensor *tc = oc_input(FM_BOOL, 2, (int64_t[]){2, 1}, c), *tx = oc_input(FM_F32, 2, (int64_t[]){1, 3}, x);
  Tensor *ty = oc_input(FM_F32, 0, NULL, &yv);
  Node *n = oc_node(OP_Where, 16, 3, (Tensor *[]){tc, tx, ty}, 1);
  n->out[0]->aux = out;
  CHECK(oc_infer(n) == 0 && n->out[0]->rank == 2 && n->out[0]->dims[1] == 3 && oc_run(n, 1) == 0);
  CHECK(out[0] == 1 && out[2] == 3 && out[3] == -1 && out[5] == -1);
}

static void test_variadic(void) {
  float a[6], b[2], c[1] = {0.25f}, y[6];
  for (int i = 0; i < 6; i++) a[i] = (float)frand();
  b[0] = 0.5f, b[1] = -0.5f;
  Tensor *ta = oc_input(FM_F32, 2, (int64_t[]){2, 3}, a), *tb = oc_input(FM_F32, 2, (int64_t[]){2, 1}, b);
  Tensor *tc = oc_input(FM_F32, 1, (int64_t[]){1}, c);
  OpKind ops[] = {OP_Max, OP_Min, OP_Sum, OP_Mean};
  for (int o = 0; o < 4; o++) {
    Node *n = oc_node(ops[o], 13, 3, (Tensor *[]){ta, tb, tc}, 1);
    n->out[0]->aux = y;
    CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
    int bad = 0;
    for (int i = 0; i < 6; i++) {
      double u = a[i], v = b[i / 3], w = c[0];
      double e = o == 0 ? fmax(u, fmax(v, w)) : o == 1 ? fmin(u, fmin(v, w)) : o == 2 ? u + v + w : (u + v + w) / 3;
      bad += fabs(e - y[i]) > 1e-6;
    }
    CHECK(bad == 0);
  }
  /* one input: a copy */
  Node *n = oc_node(OP_Max, 13, 1, &ta, 1);
  n->out[0]->aux = y;
  CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0 && y[4] == a[4]);
}

/* Opset < 7 broadcasting (broadcast=1, axis) and a fused activation on Add. */
static void test_legacy_and_fused(void) {
  float a[24], b[3] = {-10, 0, 10}, y[24];
  for (int i = 0; i < 24; i++) a[i] = (float)i;
  Tensor *ta = oc_input(FM_F32, 3, (int64_t[]){2, 3, 4}, a), *tb = oc_input(FM_F32, 1, (int64_t[]){3}, b);
  Node *n = oc_node(OP_Add, 6, 2, (Tensor *[]){ta, tb}, 1);
  oc_attr_i(n, "broadcast", 1), oc_attr_i(n, "axis", 1);
  n->fused_act = OP_Relu;
  n->out[0]->aux = y;
  CHECK(oc_infer(n) == 0 && oc_run(n, 1) == 0);
  int bad = 0;
  for (int i = 0; i < 24; i++) bad += y[i] != fmaxf(a[i] + b[(i / 4) % 3], 0);
  CHECK(bad == 0);
}

/* Shape arithmetic: values with the batch N stay known through inference. */
static void test_symval(void) {
  int64_t dims[2] = {2, 0};
  Tensor *s = fm_tensor_new(oc_g, NULL);
  s->dtype = FM_I64, s->rank = 1, s->dims[0] = 2;
  s->symval = fm_alloc(&oc_g->arena, sizeof(int64_t) * 2);
  s->symval[0] = -1, s->symval[1] = 12; /* Shape(x) of an [N, 12] tensor */
  int64_t two[1] = {2}, k[2] = {3, 4};
  Tensor *t2 = oc_const(FM_I64, 1, (int64_t[]){1}, two);
  Node *n = oc_node(OP_Mul, 14, 2, (Tensor *[]){s, t2}, 1);
  CHECK(oc_infer(n) == 0 && n->out[0]->symval);
  CHECK(n->out[0]->symval[0] == -2 && n->out[0]->symval[1] == 24);
  n = oc_node(OP_Div, 14, 2, (Tensor *[]){s, t2}, 1);
  CHECK(oc_infer(n) == 0 && !n->out[0]->symval); /* N/2 is not a multiple of N */
  Tensor *tk = oc_const(FM_I64, 1, (int64_t[]){2}, k);
  n = oc_node(OP_Add, 14, 2, (Tensor *[]){tk, t2}, 1);
  CHECK(oc_infer(n) == 0 && n->out[0]->data && ((int64_t *)n->out[0]->data)[1] == 6);
  (void)dims;
  /* the exporters' Reshape pattern: Where(Equal(target, 0), Shape(x), target) */
  int64_t target[2] = {0, -1}, zero[1] = {0};
  Tensor *tt = oc_const(FM_I64, 1, (int64_t[]){2}, target);
  n = oc_node(OP_Equal, 13, 2, (Tensor *[]){tt, oc_const(FM_I64, 1, (int64_t[]){1}, zero)}, 1);
  CHECK(oc_infer(n) == 0 && n->out[0]->data);
  Tensor *eq = n->out[0];
  CHECK(((uint8_t *)eq->data)[0] == 1 && ((uint8_t *)eq->data)[1] == 0);
  n = oc_node(OP_Where, 16, 3, (Tensor *[]){eq, s, tt}, 1);
  CHECK(oc_infer(n) == 0 && n->out[0]->symval);
  CHECK(n->out[0]->symval[0] == -1 && fm_sym_is_lit(n->out[0]->symval[1]) &&
        fm_sym_lit_value(n->out[0]->symval[1]) == -1);
  /* symbolic values pass through Cast; small float constants fold */
  n = oc_node(OP_Cast, 13, 1, &s, 1);
  oc_attr_i(n, "to", FM_I32);
  CHECK(oc_infer(n) == 0 && n->out[0]->symval && n->out[0]->symval[0] == -1);
  float f[2] = {1.5f, 2}, two_f = 2;
  n = oc_node(OP_Mul, 14, 2, (Tensor *[]){oc_const(FM_F32, 1, (int64_t[]){2}, f),
                                       oc_const(FM_F32, 0, NULL, &two_f)}, 1);
  CHECK(oc_infer(n) == 0 && n->out[0]->data && ((float *)n->out[0]->data)[0] == 3.0f);
  n = oc_node(OP_Floor, 14, 1, &n->out[0], 1);
  CHECK(oc_infer(n) == 0 && n->out[0]->data && ((float *)n->out[0]->data)[1] == 4.0f);
}

int main(void) {
  srand(1);
  oc_graph_new(17);
  test_unary();
  test_unary_attrs();
  test_clip();
  test_cast();
  test_dropout();
  test_broadcast();
  test_int_arith();
  test_prelu();
  test_cmp_logic_where();
  test_variadic();
  test_legacy_and_fused();
  test_symval();
  oc_graph_free();
  return check_done("test_ops_elem");
}
