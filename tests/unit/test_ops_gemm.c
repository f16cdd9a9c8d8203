/* test_ops_gemm.c - Gemm and MatMul (compiler/ops/gemm*.c) against references computed
 * here, through fm_sgemm (default) and the direct loops (--gemm=direct), with
 * symbolic batch dims run at N = 2 and 3, on the kernel interpreter; the cost model
 * must count exactly the multiplications and additions done. */
#include "opcheck.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static double frand(void) { return oc_xorshift(&rng); }

static int isint(FmDType t) { return t == FM_I32 || t == FM_I64; }
/* floats in [-1, 1), integers in [-9, 9] */
static double *rand_vals(int64_t n, FmDType t) {
  double *v = malloc(sizeof(double) * (size_t)(n + 1));
  for (int64_t i = 0; i < n; i++) v[i] = isint(t) ? (double)(int)(frand() * 9.99) : frand();
  return v;
}

/* Runs n at N = 2, 3 in both modes against ref(N, inputs..., want). ins: the
   non-constant inputs, vals[i] their values per N (filled by the caller's ref). */
typedef void (*RefFn)(const void *ctx, int64_t N, double **in, double *want, int64_t *muls, int64_t *adds);

static void run_both(const char *name, Node *n, int nin, const void *ctx, RefFn ref) {
  FmLowerOpts direct = *fm_lower_opts_default();
  direct.gemm = FM_LOWER_DIRECT; /* --gemm=direct */
  Tensor *y = n->out[0];
  FmDType t = y->dtype;
  for (int64_t N = 2; N <= 3; N++) {
    double *vals[4] = {0};
    void *host[64] = {0};
    for (int i = 0; i < nin; i++) {
      Tensor *x = n->in[i];
      if (!x) continue;
      if (x->data) { /* constant: its values as doubles */
        int64_t k = fm_numel(x);
        vals[i] = malloc(sizeof(double) * (size_t)(k + 1));
        for (int64_t j = 0; j < k; j++) vals[i][j] = oc_at(x->data, t, j);
      } else {
        vals[i] = rand_vals(oc_numel(x, N), t);
        host[x->id] = oc_to_buf(vals[i], oc_numel(x, N), t);
      }
    }
    int64_t yn = oc_numel(y, N), muls, adds;
    double *want = malloc(sizeof(double) * (size_t)(yn + 1));
    ref(ctx, N, vals, want, &muls, &adds);
    for (int mode = 0; mode < 2; mode++) {
      oc_lower_opts = mode ? &direct : NULL;
      host[y->id] = calloc((size_t)yn + 1, fm_dtype_size(t));
      KCost k;
      CHECK(oc_run_ex(n, N, host, &k) == 0);
      char what[200];
      snprintf(what, sizeof what, "%s (%s, N=%lld)", name, mode ? "direct" : "default", (long long)N);
      oc_compare(what, want, host[y->id], t, yn, oc_tol(t));
      /* the cost model takes int64 arithmetic for index arithmetic: not counted */
      if (t == FM_I64) muls = adds = 0;
      if (k.muls != (double)muls || k.adds != (double)adds)
        fprintf(stderr, "%s: cost %g muls %g adds, want %lld %lld\n", what, k.muls, k.adds, (long long)muls,
                (long long)adds);
      CHECK(k.muls == (double)muls && k.adds == (double)adds);
      free(host[y->id]);
    }
    oc_lower_opts = NULL;
    for (int i = 0; i < nin; i++) {
      free(vals[i]);
      if (n->in[i]) free(host[n->in[i]->id]);
    }
    free(want);
  }
}

/* ---- Gemm ---- */
typedef struct GemmCase {
  const char *name;
  int64_t M, K, N;       /* M < 0: -M times the batch */
  int ta, tb;
  float alpha, beta;
  int crank;             /* -1: no C */
  int64_t cd[2];         /* C dims (-1: M symbolic) */
  int act, bconst;       /* fused activation; B a constant */
  FmDType dt;
} GemmCase;

static void gemm_ref(const void *ctx, int64_t Nb, double **in, double *y, int64_t *muls, int64_t *adds) {
  const GemmCase *c = ctx;
  int64_t M = oc_dim(c->M, Nb), K = c->K, N = c->N;
  int64_t cd0 = c->crank == 2 ? oc_dim(c->cd[0], Nb) : 1, cd1 = c->crank >= 1 ? c->cd[c->crank - 1] : 1;
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double s = 0;
      for (int64_t k = 0; k < K; k++)
        s += in[0][c->ta ? k * M + i : i * K + k] * in[1][c->tb ? j * K + k : k * N + j];
      double v = c->alpha * s;
      if (isint(c->dt)) v = s * (int64_t)c->alpha;
      if (c->crank >= 0 && c->beta != 0) v += c->beta * in[2][(cd0 == 1 ? 0 : i) * cd1 + (cd1 == 1 ? 0 : j)];
      y[i * N + j] = c->act == OP_Relu && v < 0 ? 0 : v;
    }
  int64_t mn = M * N, hasc = c->crank >= 0 && c->beta != 0;
  *muls = mn * K + (c->alpha != 1 ? mn : 0) + (hasc && c->beta != 1 ? mn : 0);
  *adds = mn * K + (hasc ? mn : 0);
}

static void gemm_case(const GemmCase *c) {
  oc_graph_new(0);
  int64_t ad[2] = {c->ta ? c->K : c->M, c->ta ? c->M : c->K}, bd[2] = {c->tb ? c->N : c->K, c->tb ? c->K : c->N};
  Node *n = oc_node(OP_Gemm, 0, c->crank >= 0 ? 3 : 2, NULL, 1);
  n->in[0] = oc_input(c->dt, 2, ad, NULL);
  if (c->bconst) {
    double *bv = rand_vals(c->K * c->N, c->dt);
    void *bb = oc_to_buf(bv, c->K * c->N, c->dt);
    n->in[1] = oc_const(c->dt, 2, bd, bb);
    free(bv), free(bb);
  } else {
    n->in[1] = oc_input(c->dt, 2, bd, NULL);
  }
  if (c->crank >= 0) n->in[2] = oc_input(c->dt, c->crank, c->cd, NULL);
  if (c->ta) oc_attr_i(n, "transA", 1);
  if (c->tb) oc_attr_i(n, "transB", 1);
  if (c->alpha != 1) oc_attr_f(n, "alpha", c->alpha);
  if (c->beta != 1) oc_attr_f(n, "beta", c->beta);
  n->fused_act = c->act;
  fm_infer_Gemm(oc_g, n);
  Tensor *y = n->out[0];
  CHECK(y->rank == 2 && y->dims[0] == c->M && y->dims[1] == c->N && y->dtype == c->dt);
  run_both(c->name, n, n->nin, c, gemm_ref);
  oc_graph_free();
}

static const GemmCase gemm_cases[] = {
  {"plain", 5, 7, 3, 0, 0, 1, 1, -1, {0}, 0, 0, FM_F32},
  {"transA transB alpha beta, C [M,N]", 4, 6, 9, 1, 1, 0.5f, 2.0f, 2, {4, 9}, 0, 0, FM_F32},
  {"C scalar", 3, 5, 4, 0, 1, 1, 1, 0, {0}, 0, 0, FM_F32},
  {"C [N] relu, B const", -3, 17, 11, 0, 1, 1, 1, 1, {11}, OP_Relu, 1, FM_F32},
  {"C [1,N]", 6, 4, 5, 1, 0, 1, -1.5f, 2, {1, 5}, 0, 0, FM_F32},
  {"C [M,1] symbolic", -2, 5, 6, 0, 0, 1, 1, 2, {-2, 1}, 0, 0, FM_F32},
  {"C [1] beta 0", 3, 3, 3, 0, 0, 1, 0, 1, {1}, 0, 0, FM_F32},
  {"row and column blocks", -40, 33, 300, 0, 1, 1, 1, 1, {300}, OP_Relu, 1, FM_F32},
  {"transA symbolic M", -7, 9, 20, 1, 0, 2, 1, -1, {0}, 0, 0, FM_F32},
  {"float64", 4, 5, 6, 1, 0, 0.25f, 3, 2, {4, 6}, 0, 0, FM_F64},
  {"int32", -2, 5, 3, 0, 1, 1, 1, 1, {3}, 0, 0, FM_I32},
  {"int64 alpha 2", 3, 4, 2, 1, 1, 2, 1, 2, {3, 2}, 0, 0, FM_I64},
};

/* ---- MatMul ---- */
typedef struct MMCase {
  const char *name;
  int ra; int64_t ad[4];
  int rb; int64_t bd[4];
  int ry; int64_t yd[4];   /* expected output shape */
  int act, bconst;
  FmDType dt;
} MMCase;

static void mm_ref(const void *ctx, int64_t Nb, double **in, double *y, int64_t *muls, int64_t *adds) {
  const MMCase *c = ctx;
  /* A as [ab.., M, K], B as [bb.., K, N], batch dims right-aligned to 4 */
  int64_t A[6] = {1, 1, 1, 1, 1, 1}, B[6] = {1, 1, 1, 1, 1, 1};
  if (c->ra == 1) A[5] = c->ad[0];
  else for (int d = 0; d < c->ra; d++) A[6 - c->ra + d] = oc_dim(c->ad[d], Nb);
  if (c->rb == 1) B[4] = c->bd[0];
  else for (int d = 0; d < c->rb; d++) B[6 - c->rb + d] = oc_dim(c->bd[d], Nb);
  int64_t M = A[4], K = A[5], N = B[5], Y[4], k = 0;
  for (int d = 0; d < 4; d++) Y[d] = A[d] > B[d] ? A[d] : B[d];
  for (int64_t b0 = 0; b0 < Y[0]; b0++)
    for (int64_t b1 = 0; b1 < Y[1]; b1++)
      for (int64_t b2 = 0; b2 < Y[2]; b2++)
        for (int64_t b3 = 0; b3 < Y[3]; b3++) {
          int64_t bi[4] = {b0, b1, b2, b3}, ao = 0, bo = 0;
          for (int d = 0; d < 4; d++) {
            ao = ao * A[d] + (A[d] == 1 ? 0 : bi[d]);
            bo = bo * B[d] + (B[d] == 1 ? 0 : bi[d]);
          }
          for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
              double s = 0;
              for (int64_t q = 0; q < K; q++) s += in[0][ao * M * K + i * K + q] * in[1][bo * K * N + q * N + j];
              y[k++] = c->act == OP_Relu && s < 0 ? 0 : s;
            }
        }
  *muls = *adds = k * K;
}

static void mm_case(const MMCase *c) {
  oc_graph_new(0);
  Node *n = oc_node(OP_MatMul, 0, 2, NULL, 1);
  n->in[0] = oc_input(c->dt, c->ra, c->ad, NULL);
  if (c->bconst) {
    int64_t k = 1;
    for (int d = 0; d < c->rb; d++) k *= c->bd[d];
    double *bv = rand_vals(k, c->dt);
    void *bb = oc_to_buf(bv, k, c->dt);
    n->in[1] = oc_const(c->dt, c->rb, c->bd, bb);
    free(bv), free(bb);
  } else {
    n->in[1] = oc_input(c->dt, c->rb, c->bd, NULL);
  }
  n->fused_act = c->act;
  fm_infer_MatMul(oc_g, n);
  Tensor *y = n->out[0];
  CHECK(y->rank == c->ry && y->dtype == c->dt);
  for (int d = 0; d < c->ry && d < y->rank; d++) CHECK(y->dims[d] == c->yd[d]);
  run_both(c->name, n, 2, c, mm_ref);
  oc_graph_free();
}

static const MMCase mm_cases[] = {
  {"2-D", 2, {5, 7}, 2, {7, 4}, 2, {5, 4}, 0, 0, FM_F32},
  {"symbolic rows, const B, relu", 2, {-1, 20}, 2, {20, 10}, 2, {-1, 10}, OP_Relu, 1, FM_F32},
  {"1-D x 2-D", 1, {6}, 2, {6, 3}, 1, {3}, 0, 0, FM_F32},
  {"2-D x 1-D", 2, {4, 6}, 1, {6}, 1, {4}, 0, 0, FM_F32},
  {"1-D x 1-D", 1, {8}, 1, {8}, 0, {0}, 0, 0, FM_F32},
  {"3-D x 2-D folded", 3, {-1, 5, 9}, 2, {9, 7}, 3, {-1, 5, 7}, 0, 1, FM_F32},
  {"2-D x 3-D", 2, {3, 4}, 3, {-1, 4, 5}, 3, {-1, 3, 5}, 0, 0, FM_F32},
  {"batch broadcast", 4, {2, 1, 3, 4}, 3, {3, 4, 2}, 4, {2, 3, 3, 2}, 0, 0, FM_F32},
  {"batched symbolic", 3, {-1, 4, 6}, 3, {-1, 6, 3}, 3, {-1, 4, 3}, 0, 0, FM_F32},
  {"1-D x 3-D", 1, {4}, 3, {2, 4, 5}, 2, {2, 5}, 0, 0, FM_F32},
  {"big blocks", 2, {-45, 19}, 2, {19, 270}, 2, {-45, 270}, 0, 1, FM_F32},
  {"float64 batched", 3, {2, 3, 4}, 3, {2, 4, 2}, 3, {2, 3, 2}, 0, 0, FM_F64},
  {"int64", 3, {-1, 2, 3}, 2, {3, 4}, 3, {-1, 2, 4}, 0, 0, FM_I64},
  {"int32 1-D", 1, {5}, 2, {5, 2}, 1, {2}, 0, 0, FM_I32},
};

static void errors(void) {
  oc_graph_new(0);
  int64_t ad[2] = {3, 4}, bd[2] = {5, 2};
  Node *n = oc_node(OP_MatMul, 0, 2, NULL, 1);
  n->in[0] = oc_input(FM_F32, 2, ad, NULL), n->in[1] = oc_input(FM_F32, 2, bd, NULL);
  CHECK(oc_infer(n) == -1);
  CHECK(strstr(fm_errmsg(), n->name) && strstr(fm_errmsg(), "inner dims"));
  oc_graph_free();
}

int main(void) {
  for (size_t i = 0; i < sizeof gemm_cases / sizeof *gemm_cases; i++) gemm_case(&gemm_cases[i]);
  for (size_t i = 0; i < sizeof mm_cases / sizeof *mm_cases; i++) mm_case(&mm_cases[i]);
  errors();
  return check_done("test_ops_gemm");
}
