/* test_ops_pool.c - MaxPool (with Indices), AveragePool, LpPool, GlobalAveragePool
 * and GlobalMaxPool (compiler/ops/pool.c) against a reference computed here, with a
 * symbolic batch run at N = 2 and 3, on the kernel interpreter. Output sizes are
 * written out by hand per case (ceil_mode, auto_pad), not computed by the code under
 * test. */
#include "check.h"
#include "ops/ops.h"
#include <stdlib.h>
#include <string.h>

static Graph *G;
static uint64_t rng = 0xD1B54A32D192ED03ull;
static double frand(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (double)(rng >> 11) / (double)(1ull << 53) * 2 - 1;
}

static Node *node(OpKind op, int nin, int nout) {
  Node *n = fm_node_new(G, op, NULL, nin, nout);
  n->attrs = fm_alloc(&G->arena, sizeof(Attr) * 16);
  for (int i = 0; i < nout; i++) {
    n->out[i] = fm_tensor_new(G, NULL);
    n->out[i]->producer = n;
  }
  return n;
}
static Attr *attr(Node *n, const char *name, AttrType t) {
  Attr *a = &n->attrs[n->nattrs++];
  a->name = name, a->type = t;
  return a;
}
static void attr_ints(Node *n, const char *name, int cnt, const int64_t *v) {
  Attr *a = attr(n, name, FA_INTS);
  a->ints = fm_alloc(&G->arena, sizeof(int64_t) * (size_t)cnt);
  memcpy(a->ints, v, sizeof(int64_t) * (size_t)cnt);
  a->n = cnt;
}

static int64_t numel_at(const Tensor *t, int64_t batch) {
  int64_t n = 1;
  for (int i = 0; i < t->rank; i++) n *= t->dims[i] < 0 ? -t->dims[i] * batch : t->dims[i];
  return n;
}

static void *to_buf(const double *v, int64_t n, FmDType t) {
  void *p = calloc((size_t)n + 1, fm_dtype_size(t));
  for (int64_t i = 0; i < n; i++) switch (t) {
    case FM_F32: ((float *)p)[i] = (float)v[i]; break;
    case FM_F64: ((double *)p)[i] = v[i]; break;
    case FM_I8: ((int8_t *)p)[i] = (int8_t)v[i]; break;
    default: ((uint8_t *)p)[i] = (uint8_t)v[i]; break;
    }
  return p;
}
static double at(const void *p, FmDType t, int64_t i) {
  switch (t) {
  case FM_F32: return ((const float *)p)[i];
  case FM_F64: return ((const double *)p)[i];
  case FM_I8: return ((const int8_t *)p)[i];
  case FM_I64: return (double)((const int64_t *)p)[i];
  default: return ((const uint8_t *)p)[i];
  }
}
/* distinct-ish floats; integers over the whole range of int8 / uint8 */
static double *rand_vals(int64_t n, FmDType t) {
  double *v = malloc(sizeof(double) * (size_t)(n + 1));
  for (int64_t i = 0; i < n; i++)
    v[i] = t == FM_I8 ? (double)(int)(frand() * 128) : t == FM_U8 ? (double)(int)((frand() + 1) * 127.9) : frand();
  return v;
}

static int run(Node *n, int64_t batch, void **host) {
  KB b;
  kb_begin(&b, G, n, "k");
  fm_ops[n->op].lower(&b, n);
  CHECK(b.depth == 0);
  KFn *fn = b.fn;
  void **ptrs = calloc((size_t)fn->nbufs + 1, sizeof(void *));
  for (int i = 0; i < fn->nbufs; i++) {
    KBuf *bf = fn->bufs[i];
    if (bf->kind == KBUF_TENSOR) ptrs[i] = bf->tensor->data ? bf->tensor->data : host[bf->tensor->id];
  }
  char err[512];
  int rc = fm_kinterp(fn, batch, ptrs, err, sizeof err);
  if (rc) fprintf(stderr, "kinterp: %s\n", err);
  free(ptrs);
  return rc;
}

static void compare(const char *what, const double *want, const void *got, FmDType t, int64_t n) {
  int64_t bad = -1;
  double tol = t == FM_F32 ? 1e-5 : t == FM_F64 ? 1e-12 : 0;
  for (int64_t i = 0; i < n && bad < 0; i++)
    if (!(fabs(want[i] - at(got, t, i)) <= tol * (1 + fabs(want[i])))) bad = i;
  if (bad >= 0)
    fprintf(stderr, "%s: element %lld: want %.8g got %.8g\n", what, (long long)bad, want[bad], at(got, t, bad));
  CHECK(bad < 0);
}

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
  G = fm_graph_new();
  int nsp = c->nsp, rank = nsp + 2;
  int64_t xd[5] = {-1, c->C};
  for (int j = 0; j < nsp; j++) xd[2 + j] = c->in[j];
  Tensor *x = fm_tensor_new(G, NULL);
  x->dtype = c->dt, x->rank = rank, x->is_input = 1;
  memcpy(x->dims, xd, sizeof xd);
  Node *n = node(c->op, 1, c->indices ? 2 : 1);
  n->in[0] = x;
  attr_ints(n, "kernel_shape", nsp, c->k);
  int64_t v[6];
  for (int j = 0; j < nsp; j++) v[j] = c->s[j];
  attr_ints(n, "strides", nsp, v);
  for (int j = 0; j < nsp; j++) v[j] = c->d[j];
  if (c->d[0] > 1 || (nsp > 1 && c->d[1] > 1)) attr_ints(n, "dilations", nsp, v);
  if (c->auto_pad) attr(n, "auto_pad", FA_STRING)->s = c->auto_pad;
  else {
    for (int j = 0; j < nsp; j++) v[j] = c->pb[j], v[nsp + j] = c->pe[j];
    attr_ints(n, "pads", 2 * nsp, v);
  }
  if (c->ceil) attr(n, "ceil_mode", FA_INT)->i = 1;
  if (c->count_pad) attr(n, "count_include_pad", FA_INT)->i = 1;
  if (c->col_major) attr(n, "storage_order", FA_INT)->i = 1;
  if (c->op == OP_LpPool) attr(n, "p", FA_INT)->i = (int64_t)c->p;
  fm_ops[c->op].infer(G, n);
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
    int64_t xn = numel_at(x, N), yn = numel_at(y, N);
    double *xv = rand_vals(xn, c->dt), *want = malloc(sizeof(double) * (size_t)yn);
    double *wind = malloc(sizeof(double) * (size_t)yn);
    ref_pool(c, N, xv, want, wind);
    void *host[16] = {0};
    host[x->id] = to_buf(xv, xn, c->dt);
    host[y->id] = calloc((size_t)yn, fm_dtype_size(c->dt));
    if (ind) host[ind->id] = calloc((size_t)yn, sizeof(int64_t));
    CHECK(run(n, N, host) == 0);
    char what[160];
    snprintf(what, sizeof what, "%s (N=%lld)", c->name, (long long)N);
    compare(what, want, host[y->id], c->dt, yn);
    if (ind) compare(what, wind, host[ind->id], FM_I64, yn);
    free(host[x->id]), free(host[y->id]), free(ind ? host[ind->id] : NULL);
    free(xv), free(want), free(wind);
  }
  fm_graph_free(G);
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
  G = fm_graph_new();
  Tensor *x = fm_tensor_new(G, NULL);
  x->dtype = dt, x->rank = rank, x->is_input = 1;
  memcpy(x->dims, dims, sizeof(int64_t) * (size_t)rank);
  Node *n = node(op, 1, 1);
  n->in[0] = x;
  fm_ops[op].infer(G, n);
  Tensor *y = n->out[0];
  CHECK(y->rank == rank && y->dims[0] == dims[0] && y->dims[1] == dims[1] && y->dtype == dt);
  for (int d = 2; d < rank; d++) CHECK(y->dims[d] == 1);
  for (int64_t N = 2; N <= 3; N++) {
    int64_t xn = numel_at(x, N), yn = numel_at(y, N), sp = xn / yn;
    double *xv = rand_vals(xn, dt), *want = malloc(sizeof(double) * (size_t)yn);
    for (int64_t i = 0; i < yn; i++) {
      double s = 0, m = -INFINITY;
      for (int64_t j = 0; j < sp; j++) s += xv[i * sp + j], m = xv[i * sp + j] > m ? xv[i * sp + j] : m;
      want[i] = op == OP_GlobalMaxPool ? m : s / (double)sp;
    }
    void *host[16] = {0};
    host[x->id] = to_buf(xv, xn, dt);
    host[y->id] = calloc((size_t)yn, fm_dtype_size(dt));
    CHECK(run(n, N, host) == 0);
    compare(fm_op_names[op], want, host[y->id], dt, yn);
    free(host[x->id]), free(host[y->id]), free(xv), free(want);
  }
  fm_graph_free(G);
}

static void errors(void) {
  G = fm_graph_new();
  int64_t xd[4] = {-1, 3, 4, 4};
  Tensor *x = fm_tensor_new(G, NULL);
  x->dtype = FM_F32, x->rank = 4, x->is_input = 1;
  memcpy(x->dims, xd, sizeof xd);
  Node *n = node(OP_MaxPool, 1, 1);
  n->in[0] = x;
  int64_t k[2] = {6, 6};
  attr_ints(n, "kernel_shape", 2, k);
  FmTry t;
  int failed = 0;
  FM_TRY(&t) {
    fm_infer_MaxPool(G, n);
    fm_try_pop(&t);
  } else {
    failed = 1;
    CHECK(strstr(fm_errmsg(), n->name) && strstr(fm_errmsg(), "does not fit"));
  }
  CHECK(failed);
  fm_graph_free(G);
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
