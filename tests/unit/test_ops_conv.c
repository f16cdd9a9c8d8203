/* test_ops_conv.c - Conv and ConvTranspose (compiler/ops/conv*.c) against a
 * straightforward reference computed here: every case runs through the default
 * lowering (im2col + fm_sgemm where it applies) and the direct one (--conv=direct),
 * with a symbolic batch at N = 2 and 3 and a fixed batch of 1, on the kernel
 * interpreter. The cost model must count exactly the multiplications done. */
#include "opcheck.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double frand(void) { return oc_xorshift(&rng); }
static double *rand_vals(int64_t n) {
  double *v = malloc(sizeof(double) * (size_t)(n + 1));
  for (int64_t i = 0; i < n; i++) v[i] = frand();
  return v;
}

static double act(int a, double v) {
  if (a == OP_Relu) return v > 0 ? v : 0;
  if (a == OP_LeakyRelu) return v < 0 ? 0.1 * v : v;
  return v;
}

/* ---- Conv ---- */
typedef struct ConvCase {
  const char *name;
  int nsp;
  int64_t C, M, G;
  int64_t in[3], k[3], s[3], d[3], pb[3], pe[3]; /* pb/pe: the pads the op must end up with */
  const char *auto_pad;                          /* NULL: pads given as the attribute */
  int bias, act;
  FmDType dt;
  int gemm;                                      /* expected to take the im2col + sgemm path */
} ConvCase;

/* y[n, m, o] = b[m] + sum over c in m's group and taps k with o*s - pb + k*d inside */
static void ref_conv(const ConvCase *c, int64_t N, const int64_t *out, const double *x, const double *w,
                     const double *bias, double *y, int64_t *taps) {
  int64_t in[3], o3[3], k[3], s[3], d[3], pb[3];
  for (int j = 0; j < 3; j++) {
    int on = j < c->nsp;
    in[j] = on ? c->in[j] : 1, o3[j] = on ? out[j] : 1, k[j] = on ? c->k[j] : 1;
    s[j] = on ? c->s[j] : 1, d[j] = on ? c->d[j] : 1, pb[j] = on ? c->pb[j] : 0;
  }
  int64_t Cg = c->C / c->G, Mg = c->M / c->G;
  *taps = 0;
  for (int64_t n = 0; n < N; n++)
    for (int64_t m = 0; m < c->M; m++)
      for (int64_t a = 0; a < o3[0]; a++)
        for (int64_t bq = 0; bq < o3[1]; bq++)
          for (int64_t e = 0; e < o3[2]; e++) {
            double acc = c->bias ? bias[m] : 0;
            for (int64_t ci = 0; ci < Cg; ci++) {
              int64_t cc = m / Mg * Cg + ci;
              for (int64_t k0 = 0; k0 < k[0]; k0++)
                for (int64_t k1 = 0; k1 < k[1]; k1++)
                  for (int64_t k2 = 0; k2 < k[2]; k2++) {
                    int64_t i0 = a * s[0] - pb[0] + k0 * d[0], i1 = bq * s[1] - pb[1] + k1 * d[1];
                    int64_t i2 = e * s[2] - pb[2] + k2 * d[2];
                    if (i0 < 0 || i0 >= in[0] || i1 < 0 || i1 >= in[1] || i2 < 0 || i2 >= in[2]) continue;
                    (*taps)++;
                    acc += x[(((n * c->C + cc) * in[0] + i0) * in[1] + i1) * in[2] + i2] *
                           w[(((m * Cg + ci) * k[0] + k0) * k[1] + k1) * k[2] + k2];
                  }
            }
            y[(((n * c->M + m) * o3[0] + a) * o3[1] + bq) * o3[2] + e] = act(c->act, acc);
          }
}

static void conv_case(const ConvCase *c) {
  oc_graph_new(0);
  int nsp = c->nsp, rank = nsp + 2;
  int64_t xd[5] = {-1, c->C}, wd[5] = {c->M, c->C / c->G}, out[3], bd[1] = {c->M};
  for (int j = 0; j < nsp; j++) {
    xd[2 + j] = c->in[j], wd[2 + j] = c->k[j];
    out[j] = (c->in[j] + c->pb[j] + c->pe[j] - ((c->k[j] - 1) * c->d[j] + 1)) / c->s[j] + 1;
  }
  int64_t wn = c->M * (c->C / c->G);
  for (int j = 0; j < nsp; j++) wn *= c->k[j];
  double *w = rand_vals(wn), *bias = rand_vals(c->M);
  void *wbuf = oc_to_buf(w, wn, c->dt), *bbuf = oc_to_buf(bias, c->M, c->dt);
  for (int fixed = 0; fixed < 2; fixed++) {
    /* fixed = 0: symbolic batch run at 2 and 3; fixed = 1: batch 1 in the shape */
    xd[0] = fixed ? 1 : -1;
    Tensor *x = oc_input(c->dt, rank, xd, NULL);
    Tensor *wt = oc_const(c->dt, rank, wd, wbuf);
    Tensor *bt = c->bias ? oc_const(c->dt, 1, bd, bbuf) : NULL;
    Node *n = oc_node(OP_Conv, 0, c->bias ? 3 : 2, NULL, 1);
    n->in[0] = x, n->in[1] = wt;
    if (bt) n->in[2] = bt;
    int64_t v[6];
    for (int j = 0; j < nsp; j++) v[j] = c->s[j];
    oc_attr_ints(n, "strides", nsp, v);
    for (int j = 0; j < nsp; j++) v[j] = c->d[j];
    oc_attr_ints(n, "dilations", nsp, v);
    oc_attr_ints(n, "kernel_shape", nsp, c->k);
    if (c->G != 1) oc_attr_i(n, "group", c->G);
    if (c->auto_pad) oc_attr_s(n, "auto_pad", c->auto_pad);
    else {
      for (int j = 0; j < nsp; j++) v[j] = c->pb[j], v[nsp + j] = c->pe[j];
      oc_attr_ints(n, "pads", 2 * nsp, v);
    }
    n->fused_act = c->act, n->act_alpha = 0.1f;
    fm_infer_Conv(oc_g, n);
    Tensor *y = n->out[0];
    CHECK(y->rank == rank && y->dtype == c->dt && y->dims[0] == xd[0] && y->dims[1] == c->M);
    for (int j = 0; j < nsp; j++) CHECK(y->dims[2 + j] == out[j]);
    for (int bi = 0; bi < 2 - fixed; bi++) {
      int64_t N = fixed ? 1 : 2 + bi;
      int64_t xn = oc_numel(x, N), yn = oc_numel(y, N);
      double *xv = rand_vals(xn), *want = malloc(sizeof(double) * (size_t)yn);
      int64_t taps;
      ref_conv(c, N, out, xv, w, bias, want, &taps);
      void *host[64] = {0};
      host[x->id] = oc_to_buf(xv, xn, c->dt);
      for (int mode = 0; mode < 2; mode++) {
        FmLowerOpts direct = *fm_lower_opts_default();
        direct.conv = FM_LOWER_DIRECT; /* --conv=direct */
        oc_lower_opts = mode ? &direct : NULL;
        host[y->id] = calloc((size_t)yn, fm_dtype_size(c->dt));
        KCost k;
        CHECK(oc_run_ex(n, N, host, &k) == 0);
        char what[160];
        snprintf(what, sizeof what, "%s (%s, N=%lld)", c->name, mode ? "direct" : "default", (long long)N);
        oc_compare(what, want, host[y->id], c->dt, yn, oc_tol(c->dt));
        int64_t macs = !mode && c->gemm ? yn * (c->C / c->G) * (wn / c->M / (c->C / c->G)) : taps;
        int64_t act_muls = c->act == OP_LeakyRelu ? yn : 0; /* alpha * v */
        if (k.muls != (double)(macs + act_muls))
          fprintf(stderr, "%s: cost %g muls, want %lld\n", what, k.muls, (long long)(macs + act_muls));
        CHECK(k.muls == (double)(macs + act_muls));
        /* the direct kernel starts from the bias, the GEMM path adds it afterwards */
        CHECK(k.adds == (double)(macs + (c->bias && !mode && c->gemm ? yn : 0)));
        free(host[y->id]);
      }
      oc_lower_opts = NULL;
      free(host[x->id]), free(xv), free(want);
    }
  }
  free(w), free(bias), free(wbuf), free(bbuf);
  oc_graph_free();
}

static const ConvCase conv_cases[] = {
  /* name               nsp  C   M  G  in            k          s          d          pb         pe */
  {"3x3 pad1 relu", 2, 16, 16, 1, {12, 12}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, NULL, 1, OP_Relu, FM_F32, 1},
  {"strided asym pads, channel blocks", 2, 8, 48, 1, {20, 20}, {3, 3}, {2, 1}, {1, 1}, {1, 0}, {2, 1}, NULL, 1, 0, FM_F32, 1},
  {"dilated 5x3 leaky", 2, 3, 30, 1, {11, 27}, {5, 3}, {1, 2}, {2, 3}, {3, 0}, {1, 4}, NULL, 0, OP_LeakyRelu, FM_F32, 1},
  {"1x1 as plain gemm", 2, 24, 30, 1, {9, 7}, {1, 1}, {1, 1}, {1, 1}, {0, 0}, {0, 0}, NULL, 1, 0, FM_F32, 1},
  {"1x1 end padding", 2, 4, 6, 1, {5, 6}, {1, 1}, {1, 1}, {1, 1}, {0, 0}, {1, 2}, NULL, 1, 0, FM_F32, 1},
  {"1x1 stride 2", 2, 5, 7, 1, {9, 10}, {1, 1}, {2, 2}, {1, 1}, {0, 0}, {0, 0}, NULL, 0, OP_Relu, FM_F32, 1},
  {"tall image, row blocks", 2, 2, 4, 1, {40, 70}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, NULL, 1, 0, FM_F32, 1},
  {"groups 2", 2, 8, 12, 2, {7, 6}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, NULL, 1, OP_Relu, FM_F32, 1},
  {"depthwise x2 stride 2", 2, 6, 12, 6, {9, 8}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {1, 1}, NULL, 1, 0, FM_F32, 0},
  {"depthwise dilated", 2, 4, 4, 4, {10, 9}, {3, 2}, {1, 1}, {2, 3}, {2, 1}, {0, 2}, NULL, 0, OP_Relu, FM_F32, 0},
  {"1-D dilated strided", 1, 4, 6, 1, {40}, {5}, {2}, {2}, {3}, {1}, NULL, 1, 0, FM_F32, 1},
  {"1-D groups 2", 1, 4, 2, 2, {13}, {3}, {1}, {1}, {0}, {0}, NULL, 1, 0, FM_F32, 1},
  {"3-D", 1 + 2, 3, 4, 1, {5, 6, 7}, {2, 3, 3}, {1, 2, 1}, {1, 1, 2}, {1, 0, 2}, {0, 1, 1}, NULL, 1, OP_Relu, FM_F32, 0},
  {"SAME_UPPER stride 2", 2, 3, 5, 1, {7, 8}, {3, 3}, {2, 2}, {1, 1}, {1, 0}, {1, 1}, "SAME_UPPER", 1, 0, FM_F32, 1},
  {"SAME_LOWER stride 2", 2, 3, 5, 1, {7, 8}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {1, 0}, "SAME_LOWER", 1, 0, FM_F32, 1},
  {"SAME_UPPER even kernel", 2, 2, 3, 1, {6, 5}, {2, 4}, {1, 1}, {1, 1}, {0, 1}, {1, 2}, "SAME_UPPER", 0, 0, FM_F32, 1},
  {"VALID", 2, 3, 4, 1, {8, 9}, {3, 2}, {2, 3}, {1, 1}, {0, 0}, {0, 0}, "VALID", 1, 0, FM_F32, 1},
  {"float64", 2, 4, 6, 2, {6, 7}, {3, 3}, {1, 2}, {1, 1}, {1, 1}, {0, 1}, NULL, 1, 0, FM_F64, 0},
  {"float64 1-D", 1, 2, 3, 1, {9}, {4}, {1}, {2}, {2}, {2}, NULL, 0, 0, FM_F64, 0},
};

/* ---- ConvTranspose ---- */
typedef struct TCase {
  const char *name;
  int nsp;
  int64_t C, M, G;
  int64_t in[3], k[3], s[3], d[3], pb[3], pe[3], op[3];
  const char *auto_pad;
  int64_t oshape[3]; /* output_shape attribute when [0] > 0 */
  int bias;
  int64_t out[3];    /* expected output size */
} TCase;

static void ref_convT(const TCase *c, int64_t N, const double *x, const double *w, const double *bias,
                      double *y) {
  int64_t in[3], o3[3], k[3], s[3], d[3], pb[3];
  for (int j = 0; j < 3; j++) {
    int on = j < c->nsp;
    in[j] = on ? c->in[j] : 1, o3[j] = on ? c->out[j] : 1, k[j] = on ? c->k[j] : 1;
    s[j] = on ? c->s[j] : 1, d[j] = on ? c->d[j] : 1, pb[j] = on ? c->pb[j] : 0;
  }
  int64_t Cg = c->C / c->G, Mg = c->M / c->G, ysp = o3[0] * o3[1] * o3[2];
  for (int64_t n = 0; n < N; n++)
    for (int64_t m = 0; m < c->M; m++)
      for (int64_t i = 0; i < ysp; i++) y[(n * c->M + m) * ysp + i] = c->bias ? bias[m] : 0;
  /* scatter: input i reaches output i*s - pb + k*d */
  for (int64_t n = 0; n < N; n++)
    for (int64_t ci = 0; ci < c->C; ci++)
      for (int64_t mm = 0; mm < Mg; mm++) {
        int64_t m = ci / Cg * Mg + mm;
        for (int64_t a = 0; a < in[0]; a++)
          for (int64_t bq = 0; bq < in[1]; bq++)
            for (int64_t e = 0; e < in[2]; e++)
              for (int64_t k0 = 0; k0 < k[0]; k0++)
                for (int64_t k1 = 0; k1 < k[1]; k1++)
                  for (int64_t k2 = 0; k2 < k[2]; k2++) {
                    int64_t o0 = a * s[0] - pb[0] + k0 * d[0], o1 = bq * s[1] - pb[1] + k1 * d[1];
                    int64_t o2 = e * s[2] - pb[2] + k2 * d[2];
                    if (o0 < 0 || o0 >= o3[0] || o1 < 0 || o1 >= o3[1] || o2 < 0 || o2 >= o3[2]) continue;
                    y[(((n * c->M + m) * o3[0] + o0) * o3[1] + o1) * o3[2] + o2] +=
                        x[(((n * c->C + ci) * in[0] + a) * in[1] + bq) * in[2] + e] *
                        w[(((ci * Mg + mm) * k[0] + k0) * k[1] + k1) * k[2] + k2];
                  }
      }
}

static void convT_case(const TCase *c) {
  oc_graph_new(0);
  int nsp = c->nsp, rank = nsp + 2;
  int64_t xd[5] = {-1, c->C}, wd[5] = {c->C, c->M / c->G}, bd[1] = {c->M};
  int64_t wn = c->C * (c->M / c->G);
  for (int j = 0; j < nsp; j++) xd[2 + j] = c->in[j], wd[2 + j] = c->k[j], wn *= c->k[j];
  double *w = rand_vals(wn), *bias = rand_vals(c->M);
  Tensor *x = oc_input(FM_F32, rank, xd, NULL);
  void *wbuf = oc_to_buf(w, wn, FM_F32), *bbuf = oc_to_buf(bias, c->M, FM_F32);
  Tensor *wt = oc_const(FM_F32, rank, wd, wbuf);
  Node *n = oc_node(OP_ConvTranspose, 0, c->bias ? 3 : 2, NULL, 1);
  n->in[0] = x, n->in[1] = wt;
  if (c->bias) n->in[2] = oc_const(FM_F32, 1, bd, bbuf);
  int64_t v[6];
  for (int j = 0; j < nsp; j++) v[j] = c->s[j];
  oc_attr_ints(n, "strides", nsp, v);
  for (int j = 0; j < nsp; j++) v[j] = c->d[j];
  oc_attr_ints(n, "dilations", nsp, v);
  for (int j = 0; j < nsp; j++) v[j] = c->op[j];
  oc_attr_ints(n, "output_padding", nsp, v);
  if (c->G != 1) oc_attr_i(n, "group", c->G);
  if (c->oshape[0] > 0) oc_attr_ints(n, "output_shape", nsp, c->oshape);
  if (c->auto_pad) oc_attr_s(n, "auto_pad", c->auto_pad);
  else if (c->oshape[0] <= 0) {
    for (int j = 0; j < nsp; j++) v[j] = c->pb[j], v[nsp + j] = c->pe[j];
    oc_attr_ints(n, "pads", 2 * nsp, v);
  }
  fm_infer_ConvTranspose(oc_g, n);
  Tensor *y = n->out[0];
  CHECK(y->rank == rank && y->dims[0] == -1 && y->dims[1] == c->M);
  for (int j = 0; j < nsp; j++) CHECK(y->dims[2 + j] == c->out[j]);
  for (int64_t N = 2; N <= 3; N++) {
    int64_t xn = oc_numel(x, N), yn = oc_numel(y, N);
    double *xv = rand_vals(xn), *want = malloc(sizeof(double) * (size_t)yn);
    ref_convT(c, N, xv, w, bias, want);
    void *host[64] = {0};
    host[x->id] = oc_to_buf(xv, xn, FM_F32);
    host[y->id] = calloc((size_t)yn, sizeof(float));
    CHECK(oc_run_ex(n, N, host, NULL) == 0);
    char what[160];
    snprintf(what, sizeof what, "ConvTranspose %s (N=%lld)", c->name, (long long)N);
    oc_compare(what, want, host[y->id], FM_F32, yn, oc_tol(FM_F32));
    free(host[x->id]), free(host[y->id]), free(xv), free(want);
  }
  free(w), free(bias), free(wbuf), free(bbuf);
  oc_graph_free();
}

static const TCase convT_cases[] = {
  /* name          nsp C  M  G  in        k       s       d       pb      pe      op   auto  oshape bias out */
  {"stride 2 pad 1 outpad 1", 2, 3, 4, 1, {4, 5}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, NULL, {0}, 1, {8, 10}},
  {"groups 2 dilated", 2, 4, 6, 2, {3, 4}, {2, 3}, {1, 2}, {2, 1}, {0, 1}, {1, 0}, {0, 0}, NULL, {0}, 1, {4, 8}},
  {"1-D stride 3", 1, 2, 3, 1, {5}, {4}, {3}, {1}, {2}, {0}, {2}, NULL, {0}, 0, {16}},
  {"3-D", 3, 2, 2, 1, {2, 3, 2}, {2, 2, 3}, {2, 1, 2}, {1, 1, 1}, {0, 1, 1}, {1, 0, 0}, {0, 0, 1}, NULL, {0}, 1, {3, 3, 5}},
  /* output_shape: total padding 3*(3-1)+3-9 = 0 / 2*(4-1)+3-8 = 1 -> begin 1 (NOTSET) */
  {"output_shape", 2, 1, 2, 1, {3, 4}, {3, 3}, {3, 2}, {1, 1}, {0, 1}, {0, 0}, {0, 0}, NULL, {9, 8}, 1, {9, 8}},
  /* output_shape larger than the full output: negative end pad, zeros + bias */
  {"output_shape grown", 2, 1, 2, 1, {3, 3}, {3, 3}, {3, 2}, {1, 1}, {0, 0}, {-1, -1}, {0, 0}, NULL, {10, 8}, 1, {10, 8}},
  /* SAME_UPPER: out = in*s; total 2*(3-1)+3-6 = 1 -> pads 0 begin, 1 end */
  {"SAME_UPPER", 2, 1, 2, 1, {3, 3}, {3, 3}, {2, 2}, {1, 1}, {0, 0}, {1, 1}, {0, 0}, "SAME_UPPER", {0}, 0, {6, 6}},
  {"SAME_LOWER", 2, 1, 2, 1, {3, 3}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {0, 0}, {0, 0}, "SAME_LOWER", {0}, 0, {6, 6}},
};

static void errors(void) {
  oc_graph_new(0);
  int64_t xd[4] = {-1, 3, 8, 8}, wd[4] = {4, 2, 3, 3};
  Node *n = oc_node(OP_Conv, 0, 2, NULL, 1);
  n->in[0] = oc_input(FM_F32, 4, xd, NULL);
  n->in[1] = oc_const(FM_F32, 4, wd, NULL);
  CHECK(oc_infer(n) == -1);
  CHECK(strstr(fm_errmsg(), n->name) && strstr(fm_errmsg(), "channels"));
  oc_graph_free();
}

int main(void) {
  for (size_t i = 0; i < sizeof conv_cases / sizeof *conv_cases; i++) conv_case(&conv_cases[i]);
  for (size_t i = 0; i < sizeof convT_cases / sizeof *convT_cases; i++) convT_case(&convT_cases[i]);
  errors();
  return check_done("test_ops_conv");
}
