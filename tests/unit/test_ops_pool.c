/* test_ops_pool.c - MaxPool (with Indices), AveragePool, LpPool, GlobalAveragePool
 * and GlobalMaxPool (compiler/ops/pool.c) against a reference computed here, with a
 * symbolic batch run at N = 2 and 3, on the kernel interpreter. Output sizes are
 * written out by hand per case (ceil_mode, auto_pad), not computed by the code under
 * test. */
#include "opcheck.h"

/* fm_ops[] refers to the op functions weakly: name one so that the linker pulls pool.o
   out of the static fm_compiler library. */
void *const force_link_pool[] = {(void *)fm_infer_MaxPool};

static uint64_t rng = 0xD1B54A32D192ED03ull;
static double frand(void) { return oc_xorshift(&rng); }

/* distinct-ish floats; integers over the whole range of int8 / uint8 */
static double *rand_vals(int64_t n, FmDType t) {
  double *v = malloc(sizeof(double) * (size_t)(n + 1));
  for (int64_t i = 0; i < n; i++)
    v[i] = t == FM_I8 ? (double)(int)(frand() * 128) : t == FM_U8 ? (double)(int)((frand() + 1) * 127.9) : frand();
  return v;
}

/* pooling reorders no arithmetic: tighter than oc_tol */
static double tol(FmDType t) { return t == FM_F32 ? 1e-5 : t == FM_F64 ? 1e-12 : 0; }

/* ---- windowed pools ---- */
typedef struct PoolCase {
  const char *name;
  OpKind op;
  int nsp;
  int64_t C, in[3], k[3], s[3], d[3], pb[3], pe[3]; /* pb/pe: the resolved pads */
  int64_t out[3];                                   /* expected output size */
  const char *auto_pad;                             /* NULL: pads attribute */
  int ceil, count_pad, indices, col_major;
  float p;                                          /* LpPool */
  FmDType dt;
} PoolCase;

static void ref_pool(const PoolCase *c, int64_t N, const double *x, double *y, double *ind) {
  int64_t in[3], o3[3], k[3], s[3], d[3], pb[3], pe[3];
  for (int j = 0; j < 3; j++) {
    int on = j < c->nsp;
    in[j] = on ? c->in[j] : 1, o3[j] = on ? c->out[j] : 1, k[j] = on ? c->k[j] : 1;
    s[j] = on ? c->s[j] : 1, d[j] = on ? c->d[j] : 1, pb[j] = on ? c->pb[j] : 0, pe[j] = on ? c->pe[j] : 0;
  }
  int64_t xsp = in[0] * in[1] * in[2], q = 0;
  for (int64_t nc = 0; nc < N * c->C; nc++)
    for (int64_t a = 0; a < o3[0]; a++)
      for (int64_t b = 0; b < o3[1]; b++)
        for (int64_t e = 0; e < o3[2]; e++, q++) {
          double best = -INFINITY, sum = 0;
          int64_t arg = 0, cnt = 0, cntpad = 0;
          for (int64_t k0 = 0; k0 < k[0]; k0++)
            for (int64_t k1 = 0; k1 < k[1]; k1++)
              for (int64_t k2 = 0; k2 < k[2]; k2++) {
                int64_t i[3] = {a * s[0] - pb[0] + k0 * d[0], b * s[1] - pb[1] + k1 * d[1], e * s[2] - pb[2] + k2 * d[2]};
                int inside = 1, inpad = 1;
                for (int j = 0; j < 3; j++) {
                  inside &= i[j] >= 0 && i[j] < in[j];
                  inpad &= i[j] >= -pb[j] && i[j] < in[j] + pe[j];
                }
                cntpad += inpad;
                if (!inside) continue;
                cnt++;
                int64_t sp = (i[0] * in[1] + i[1]) * in[2] + i[2];
                double v = x[nc * xsp + sp];
                if (v > best) {
                  best = v;
                  /* column-major spatial index: the first spatial dim fastest */
                  int64_t cm = i[0] + i[1] * in[0] + i[2] * in[0] * in[1];
                  arg = nc * xsp + (c->col_major ? cm : sp);
                }
                sum += c->op == OP_LpPool ? pow(fabs(v), c->p) : v;
              }
          if (c->op == OP_MaxPool) y[q] = best, ind[q] = (double)arg;
          else if (c->op == OP_AveragePool) y[q] = sum / (double)(c->count_pad ? cntpad : cnt);
          else y[q] = pow(sum, 1.0 / c->p);
        }
}

static void pool_case(const PoolCase *c) {
  oc_graph_new(0);
  int nsp = c->nsp, rank = nsp + 2;
  int64_t xd[5] = {-1, c->C};
  for (int j = 0; j < nsp; j++) xd[2 + j] = c->in[j];
  Tensor *x = oc_input(c->dt, rank, xd, NULL);
  Node *n = oc_node(c->op, 0, 1, NULL, c->indices ? 2 : 1);
  n->in[0] = x;
  oc_attr_ints(n, "kernel_shape", nsp, c->k);
  int64_t v[6];
  for (int j = 0; j < nsp; j++) v[j] = c->s[j];
  oc_attr_ints(n, "strides", nsp, v);
  for (int j = 0; j < nsp; j++) v[j] = c->d[j];
  if (c->d[0] > 1 || (nsp > 1 && c->d[1] > 1)) oc_attr_ints(n, "dilations", nsp, v);
  if (c->auto_pad) oc_attr_s(n, "auto_pad", c->auto_pad);
  else {
    for (int j = 0; j < nsp; j++) v[j] = c->pb[j], v[nsp + j] = c->pe[j];
    oc_attr_ints(n, "pads", 2 * nsp, v);
  }
  if (c->ceil) oc_attr_i(n, "ceil_mode", 1);
  if (c->count_pad) oc_attr_i(n, "count_include_pad", 1);
  if (c->col_major) oc_attr_i(n, "storage_order", 1);
  if (c->op == OP_LpPool) oc_attr_i(n, "p", (int64_t)c->p);
  fm_ops[c->op].infer(oc_g, n);
  Tensor *y = n->out[0], *ind = c->indices ? n->out[1] : NULL;
  CHECK(y->rank == rank && y->dims[0] == -1 && y->dims[1] == c->C && y->dtype == c->dt);
  for (int j = 0; j < nsp; j++) {
    if (y->dims[2 + j] != c->out[j])
      fprintf(stderr, "%s: spatial dim %d is %lld, want %lld\n", c->name, j, (long long)y->dims[2 + j],
              (long long)c->out[j]);
    CHECK(y->dims[2 + j] == c->out[j]);
  }
  if (ind) CHECK(ind->dtype == FM_I64 && ind->rank == rank && ind->dims[2] == c->out[0]);
  for (int64_t N = 2; N <= 3; N++) {
    int64_t xn = oc_numel(x, N), yn = oc_numel(y, N);
    double *xv = rand_vals(xn, c->dt), *want = malloc(sizeof(double) * (size_t)yn);
    double *wind = malloc(sizeof(double) * (size_t)yn);
    ref_pool(c, N, xv, want, wind);
    void *host[16] = {0};
    host[x->id] = oc_to_buf(xv, xn, c->dt);
    host[y->id] = calloc((size_t)yn, fm_dtype_size(c->dt));
    if (ind) host[ind->id] = calloc((size_t)yn, sizeof(int64_t));
    CHECK(oc_run_ex(n, N, host, NULL) == 0);
    char what[160];
    snprintf(what, sizeof what, "%s (N=%lld)", c->name, (long long)N);
    oc_compare(what, want, host[y->id], c->dt, yn, tol(c->dt));
    if (ind) oc_compare(what, wind, host[ind->id], FM_I64, yn, tol(FM_I64));
    free(host[x->id]), free(host[y->id]), free(ind ? host[ind->id] : NULL);
    free(xv), free(want), free(wind);
  }
  oc_graph_free();
}

static const PoolCase pool_cases[] = {
  /* name                   op           nsp C  in        k       s       d       pb      pe      out */
  {"max 2x2", OP_MaxPool, 2, 3, {6, 7}, {2, 2}, {2, 2}, {1, 1}, {0, 0}, {0, 0}, {3, 3}, NULL, 0, 0, 0, 0, 0, FM_F32},
  {"max pads indices", OP_MaxPool, 2, 2, {5, 6}, {3, 3}, {2, 1}, {1, 1}, {1, 2}, {1, 0}, {3, 6}, NULL, 0, 0, 1, 0, 0, FM_F32},
  {"max indices col-major", OP_MaxPool, 2, 2, {5, 4}, {2, 3}, {1, 1}, {1, 1}, {0, 1}, {1, 1}, {5, 4}, NULL, 0, 0, 1, 1, 0, FM_F32},
  /* ceil: (8 - 3) / 2 = 2.5 -> 4 windows (floor: 3); (9 - 2) / 3 = 2.3 -> 4, but the
     4th would start at 9, past the input: 3 */
  {"max ceil", OP_MaxPool, 2, 1, {8, 9}, {3, 2}, {2, 3}, {1, 1}, {0, 0}, {0, 0}, {4, 3}, NULL, 1, 0, 0, 0, 0, FM_F32},
  /* ceil with a window that would start in the end padding: (5+1+1-2)/2 = 2.5 -> 4, dropped to 3 */
  {"max ceil clipped", OP_MaxPool, 1, 2, {5}, {2}, {2}, {1}, {1}, {1}, {3}, NULL, 1, 0, 1, 0, 0, FM_F32},
  {"max dilated", OP_MaxPool, 2, 2, {8, 9}, {2, 3}, {1, 2}, {3, 2}, {1, 0}, {0, 1}, {6, 3}, NULL, 0, 0, 1, 0, 0, FM_F32},
  /* SAME_UPPER: out = ceil(7/2) = 4, total (4-1)*2+3-7 = 2 -> 1,1; ceil(6/2) = 3, total 2*2+3-6 = 1 -> 0,1 */
  {"max SAME_UPPER", OP_MaxPool, 2, 2, {7, 6}, {3, 3}, {2, 2}, {1, 1}, {1, 0}, {1, 1}, {4, 3}, "SAME_UPPER", 0, 0, 0, 0, 0, FM_F32},
  {"max SAME_LOWER", OP_MaxPool, 2, 2, {7, 6}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {1, 0}, {4, 3}, "SAME_LOWER", 0, 0, 1, 0, 0, FM_F32},
  {"max VALID", OP_MaxPool, 2, 1, {7, 6}, {3, 2}, {2, 2}, {1, 1}, {0, 0}, {0, 0}, {3, 3}, "VALID", 0, 0, 0, 0, 0, FM_F32},
  {"max 1-D", OP_MaxPool, 1, 3, {11}, {3}, {2}, {1}, {1}, {1}, {6}, NULL, 0, 0, 1, 0, 0, FM_F32},
  {"max 3-D indices", OP_MaxPool, 3, 2, {4, 5, 6}, {2, 2, 3}, {2, 1, 2}, {1, 1, 1}, {0, 1, 1}, {0, 0, 1}, {2, 5, 3}, NULL, 0, 0, 1, 0, 0, FM_F32},
  {"max 3-D col-major", OP_MaxPool, 3, 1, {3, 4, 5}, {2, 2, 2}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, {0, 0, 0}, {2, 3, 4}, NULL, 0, 0, 1, 1, 0, FM_F32},
  {"max uint8", OP_MaxPool, 2, 2, {5, 5}, {2, 2}, {1, 1}, {1, 1}, {1, 1}, {0, 0}, {5, 5}, NULL, 0, 0, 0, 0, 0, FM_U8},
  {"max int8", OP_MaxPool, 2, 2, {5, 5}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {1, 1}, {3, 3}, NULL, 0, 0, 1, 0, 0, FM_I8},
  {"max float64", OP_MaxPool, 2, 2, {4, 5}, {2, 2}, {2, 2}, {1, 1}, {0, 0}, {0, 1}, {2, 3}, NULL, 0, 0, 0, 0, 0, FM_F64},
  {"avg pads", OP_AveragePool, 2, 3, {6, 7}, {3, 3}, {1, 2}, {1, 1}, {1, 1}, {1, 2}, {6, 4}, NULL, 0, 0, 0, 0, 0, FM_F32},
  {"avg pads count_include_pad", OP_AveragePool, 2, 3, {6, 7}, {3, 3}, {1, 2}, {1, 1}, {1, 1}, {1, 2}, {6, 4}, NULL, 0, 1, 0, 0, 0, FM_F32},
  /* ceil + count_include_pad: the last window reaches past the end padding and
     only counts up to it; (7+1+0-3)/2 = 2.5 -> 4 */
  {"avg ceil count_include_pad", OP_AveragePool, 2, 2, {7, 7}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {0, 0}, {4, 4}, NULL, 1, 1, 0, 0, 0, FM_F32},
  {"avg ceil", OP_AveragePool, 1, 2, {8}, {3}, {2}, {1}, {0}, {0}, {4}, NULL, 1, 0, 0, 0, 0, FM_F32},
  {"avg SAME_LOWER", OP_AveragePool, 2, 2, {5, 5}, {2, 3}, {1, 1}, {1, 1}, {1, 1}, {0, 1}, {5, 5}, "SAME_LOWER", 0, 0, 0, 0, 0, FM_F32},
  {"avg SAME_UPPER count_include_pad", OP_AveragePool, 2, 2, {5, 5}, {2, 3}, {1, 1}, {1, 1}, {0, 1}, {1, 1}, {5, 5}, "SAME_UPPER", 0, 1, 0, 0, 0, FM_F32},
  {"avg 3-D float64", OP_AveragePool, 3, 2, {4, 4, 5}, {2, 3, 2}, {2, 1, 2}, {1, 1, 1}, {0, 1, 0}, {0, 1, 1}, {2, 4, 3}, NULL, 0, 0, 0, 0, 0, FM_F64},
  {"avg dilated", OP_AveragePool, 2, 1, {7, 7}, {2, 2}, {1, 1}, {2, 3}, {1, 0}, {0, 1}, {6, 5}, NULL, 0, 0, 0, 0, 0, FM_F32},
  {"lp p=2", OP_LpPool, 2, 2, {5, 6}, {2, 3}, {1, 2}, {1, 1}, {1, 0}, {0, 1}, {5, 3}, NULL, 0, 0, 0, 0, 2, FM_F32},
  {"lp p=1", OP_LpPool, 1, 2, {9}, {3}, {2}, {1}, {1}, {1}, {5}, NULL, 0, 0, 0, 0, 1, FM_F32},
  {"lp p=3", OP_LpPool, 2, 1, {4, 4}, {2, 2}, {2, 2}, {1, 1}, {0, 0}, {0, 0}, {2, 2}, NULL, 0, 0, 0, 0, 3, FM_F32},
};

/* ---- global pools ---- */
static void global_case(OpKind op, int rank, const int64_t *dims, FmDType dt) {
  oc_graph_new(0);
  Tensor *x = oc_input(dt, rank, dims, NULL);
  Node *n = oc_node(op, 0, 1, NULL, 1);
  n->in[0] = x;
  fm_ops[op].infer(oc_g, n);
  Tensor *y = n->out[0];
  CHECK(y->rank == rank && y->dims[0] == dims[0] && y->dims[1] == dims[1] && y->dtype == dt);
  for (int d = 2; d < rank; d++) CHECK(y->dims[d] == 1);
  for (int64_t N = 2; N <= 3; N++) {
    int64_t xn = oc_numel(x, N), yn = oc_numel(y, N), sp = xn / yn;
    double *xv = rand_vals(xn, dt), *want = malloc(sizeof(double) * (size_t)yn);
    for (int64_t i = 0; i < yn; i++) {
      double s = 0, m = -INFINITY;
      for (int64_t j = 0; j < sp; j++) s += xv[i * sp + j], m = xv[i * sp + j] > m ? xv[i * sp + j] : m;
      want[i] = op == OP_GlobalMaxPool ? m : s / (double)sp;
    }
    void *host[16] = {0};
    host[x->id] = oc_to_buf(xv, xn, dt);
    host[y->id] = calloc((size_t)yn, fm_dtype_size(dt));
    CHECK(oc_run_ex(n, N, host, NULL) == 0);
    oc_compare(fm_op_names[op], want, host[y->id], dt, yn, tol(dt));
    free(host[x->id]), free(host[y->id]), free(xv), free(want);
  }
  oc_graph_free();
}

static void errors(void) {
  oc_graph_new(0);
  int64_t xd[4] = {-1, 3, 4, 4};
  Tensor *x = oc_input(FM_F32, 4, xd, NULL);
  Node *n = oc_node(OP_MaxPool, 0, 1, NULL, 1);
  n->in[0] = x;
  int64_t k[2] = {6, 6};
  oc_attr_ints(n, "kernel_shape", 2, k);
  CHECK(oc_infer(n) == -1);
  CHECK(strstr(fm_errmsg(), n->name) && strstr(fm_errmsg(), "does not fit"));
  oc_graph_free();
}

int main(void) {
  for (size_t i = 0; i < sizeof pool_cases / sizeof *pool_cases; i++) pool_case(&pool_cases[i]);
  int64_t d3[3] = {-1, 3, 7}, d4[4] = {-1, 2, 5, 6}, d5[5] = {-2, 2, 3, 2, 4};
  global_case(OP_GlobalAveragePool, 3, d3, FM_F32);
  global_case(OP_GlobalAveragePool, 4, d4, FM_F32);
  global_case(OP_GlobalAveragePool, 5, d5, FM_F64);
  global_case(OP_GlobalMaxPool, 4, d4, FM_F32);
  global_case(OP_GlobalMaxPool, 5, d5, FM_F32);
  errors();
  return check_done("test_ops_pool");
}
