/* opcheck.h - the shared harness of the op unit tests (tests/unit/test_ops_*.c): build a
 * node by hand on one global graph, infer it, lower it and run it on the kernel
 * interpreter (fm_kinterp), then compare with a reference computed by the test.
 *
 *   oc_graph_new(17);                                   // oc_g: the graph everything goes in
 *   float x[6] = {...}, y[6];
 *   Tensor *tx = oc_input(FM_F32, 2, (int64_t[]){-1, 3}, x); // host buffer in tx->aux
 *   Node *n = oc_node(OP_LeakyRelu, 16, 1, &tx, 1);     // opset 0: the graph's opset
 *   oc_attr_f(n, "alpha", 0.1f);                        // fm_set_attr_* on oc_g
 *   n->out[0]->aux = y;                                 // where the output is written
 *   CHECK(oc_infer(n) == 0 && oc_run(n, 2) == 0);       // run at batch N = 2
 *   oc_graph_free();
 *
 * Buffers are bound, per tensor, to t->aux if set, else (for a tensor without constant
 * data) to host[t->id] when oc_run_ex is given a host array, else to the constant data;
 * scratch buffers are zeroed per run. Dims use the encoding of ir.h: d < 0 is -d times
 * the batch (oc_dim). Every run also CHECKs that the lowering closed all its loops.
 */
#ifndef FM_OPCHECK_H
#define FM_OPCHECK_H
#include "check.h"
#include "ops/ops.h"
#include <stdlib.h>
#include <string.h>

static Graph *oc_g;

/* Makes oc_g a fresh graph (opset 0: fm_graph_new's default) and returns it. */
static inline Graph *oc_graph_new(int opset) {
  oc_g = fm_graph_new();
  if (opset) oc_g->opset = opset;
  return oc_g;
}
static inline void oc_graph_free(void) {
  fm_graph_free(oc_g);
  oc_g = NULL;
}

/* ---- building nodes ---- */

/* A graph input (name NULL: generated) of dtype dt and dims; host (may be NULL) goes to t->aux. */
static inline Tensor *oc_tensor_in(const char *name, FmDType dt, int rank, const int64_t *dims, void *host) {
  Tensor *t = fm_tensor_new(oc_g, name);
  fm_set_shape(t, dt, rank, dims);
  t->is_input = 1, t->aux = host;
  return t;
}
static inline Tensor *oc_input(FmDType dt, int rank, const int64_t *dims, void *host) {
  return oc_tensor_in(NULL, dt, rank, dims, host);
}
static inline Tensor *oc_input_named(const char *name, FmDType dt, int rank, const int64_t *dims) {
  return oc_tensor_in(name, dt, rank, dims, NULL);
}
static inline Tensor *oc_const(FmDType dt, int rank, const int64_t *dims, const void *data) {
  return fm_tensor_const(oc_g, NULL, dt, rank, dims, data);
}
static inline Tensor *oc_const_i64(int64_t n, const int64_t *v) { return oc_const(FM_I64, 1, &n, v); }
static inline Tensor *oc_scalar_i64(int64_t v) { return oc_const(FM_I64, 0, NULL, &v); }

/* A node with inputs ins[0..nin) (ins NULL: set them later) and nout fresh outputs
   named <node>_out<j>; opset 0 keeps the graph's. */
static inline Node *oc_node(OpKind op, int opset, int nin, Tensor *const *ins, int nout) {
  Node *n = fm_node_new(oc_g, op, NULL, nin, nout);
  if (opset) n->opset = opset;
  for (int i = 0; ins && i < nin; i++) n->in[i] = ins[i];
  for (int j = 0; j < nout; j++) {
    n->out[j] = fm_tensor_new(oc_g, fm_sprintf(&oc_g->arena, "%s_out%d", n->name, j));
    n->out[j]->producer = n;
  }
  return n;
}

static inline void oc_attr_i(Node *n, const char *name, int64_t v) { fm_set_attr_i(oc_g, n, name, v); }
static inline void oc_attr_f(Node *n, const char *name, float v) { fm_set_attr_f(oc_g, n, name, v); }
static inline void oc_attr_s(Node *n, const char *name, const char *v) { fm_set_attr_s(oc_g, n, name, v); }
static inline void oc_attr_ints(Node *n, const char *name, int k, const int64_t *v) {
  fm_set_attr_ints(oc_g, n, name, k, v);
}
static inline void oc_attr_floats(Node *n, const char *name, int k, const float *v) {
  fm_set_attr_floats(oc_g, n, name, k, v);
}

/* ---- inference and running ---- */

/* Infers n: 0, or -1 with the message in fm_errmsg(). */
static inline int oc_infer(Node *n) {
  FmTry t;
  FM_TRY(&t) {
    fm_ops[n->op].infer(oc_g, n);
    fm_try_pop(&t);
    return 0;
  }
  return -1;
}

static inline int64_t oc_dim(int64_t d, int64_t batch) { return d < 0 ? -d * batch : d; }
static inline int64_t oc_numel(const Tensor *t, int64_t batch) {
  int64_t m = 1;
  for (int i = 0; i < t->rank; i++) m *= oc_dim(t->dims[i], batch);
  return m;
}
static inline void oc_dims_at(const Tensor *t, int64_t batch, int64_t *d) {
  for (int i = 0; i < t->rank; i++) d[i] = oc_dim(t->dims[i], batch);
}

/* Lowers n and runs it at batch (binding as at the top; host may be NULL); cost, if
   given, receives fm_kcost of the kernel. Returns fm_kinterp's code, 0 on success. */
static const FmLowerOpts *oc_lower_opts; /* NULL: the defaults (e.g. --conv=direct otherwise) */
static inline int oc_run_ex(Node *n, int64_t batch, void *const *host, KCost *cost) {
  KB b;
  kb_begin(&b, oc_g, n, "k");
  if (oc_lower_opts) b.opts = oc_lower_opts;
  fm_ops[n->op].lower(&b, n);
  CHECK(b.depth == 0);
  KFn *fn = b.fn;
  void **ptrs = calloc((size_t)fn->nbufs + 1, sizeof(void *));
  void **scratch = calloc((size_t)fn->nbufs + 1, sizeof(void *));
  for (int i = 0; i < fn->nbufs; i++) {
    KBuf *bf = fn->bufs[i];
    if (bf->kind == KBUF_TENSOR) {
      Tensor *t = bf->tensor;
      ptrs[i] = t->aux ? t->aux : host && !t->data ? host[t->id] : NULL;
    } else if (bf->kind == KBUF_SCRATCH) {
      size_t es = fm_dtype_size(bf->t) > 8 ? fm_dtype_size(bf->t) : 8;
      ptrs[i] = scratch[i] = calloc((size_t)oc_dim(bf->nelem, batch) + 1, es);
    }
  }
  char err[512];
  int rc = fm_kinterp(fn, batch, ptrs, err, sizeof err);
  if (rc) fprintf(stderr, "kinterp: %s: %s\n", n->name, err);
  for (int i = 0; i < fn->nbufs; i++) free(scratch[i]);
  free(ptrs), free(scratch);
  if (cost) *cost = fm_kcost(fn, batch);
  return rc;
}
static inline int oc_run(Node *n, int64_t batch) { return oc_run_ex(n, batch, NULL, NULL); }

/* ---- values and comparisons ---- */

/* Flat index into a (rank ra, dims da) tensor broadcast to an output (rank ro, dims dout)
   at the output's flat index k. */
static inline int64_t oc_bidx(int ro, const int64_t *dout, int ra, const int64_t *da, int64_t k) {
  int64_t c[FM_MAXRANK], idx = 0;
  for (int d = ro - 1; d >= 0; d--) c[d] = k % dout[d], k /= dout[d];
  for (int d = 0; d < ra; d++) idx = idx * da[d] + (da[d] == 1 ? 0 : c[ro - ra + d]);
  return idx;
}

/* xorshift64 in [-1, 1): each test keeps its own state (and seed). */
static inline double oc_xorshift(uint64_t *s) {
  *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
  return (double)(*s >> 11) / (double)(1ull << 53) * 2 - 1;
}

/* n values as doubles <-> a buffer (calloc'd, one element spare) of dtype t. */
static inline void *oc_to_buf(const double *v, int64_t n, FmDType t) {
  void *p = calloc((size_t)n + 1, fm_dtype_size(t));
  for (int64_t i = 0; i < n; i++) switch (t) {
    case FM_F32: ((float *)p)[i] = (float)v[i]; break;
    case FM_F64: ((double *)p)[i] = v[i]; break;
    case FM_I8: ((int8_t *)p)[i] = (int8_t)v[i]; break;
    case FM_U8: case FM_BOOL: ((uint8_t *)p)[i] = (uint8_t)v[i]; break;
    case FM_I32: ((int32_t *)p)[i] = (int32_t)v[i]; break;
    case FM_I64: ((int64_t *)p)[i] = (int64_t)v[i]; break;
    default: fprintf(stderr, "oc_to_buf: dtype %d\n", (int)t); abort();
    }
  return p;
}
static inline double oc_at(const void *p, FmDType t, int64_t i) {
  switch (t) {
  case FM_F32: return ((const float *)p)[i];
  case FM_F64: return ((const double *)p)[i];
  case FM_I8: return ((const int8_t *)p)[i];
  case FM_U8: case FM_BOOL: return ((const uint8_t *)p)[i];
  case FM_I32: return ((const int32_t *)p)[i];
  case FM_I64: return (double)((const int64_t *)p)[i];
  default: fprintf(stderr, "oc_at: dtype %d\n", (int)t); abort();
  }
}

/* The usual relative tolerance per dtype: 1e-4 float, 1e-10 double, exact integers. */
static inline double oc_tol(FmDType t) { return t == FM_F32 ? 1e-4 : t == FM_F64 ? 1e-10 : 0; }

/* One CHECK that got (dtype t) matches want within tol * (1 + |want|); prints the first
   mismatch under the label what. */
static inline void oc_compare(const char *what, const double *want, const void *got, FmDType t, int64_t n,
                              double tol) {
  int64_t bad = -1;
  for (int64_t i = 0; i < n && bad < 0; i++)
    if (!(fabs(want[i] - oc_at(got, t, i)) <= tol * (1 + fabs(want[i])))) bad = i;
  if (bad >= 0)
    fprintf(stderr, "%s: element %lld: want %.8g got %.8g\n", what, (long long)bad, want[bad], oc_at(got, t, bad));
  CHECK(bad < 0);
}

#endif
