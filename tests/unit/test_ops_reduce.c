/* test_ops_reduce.c - reductions, ArgMax/ArgMin and CumSum (compiler/ops/reduce.c):
 * every Reduce kind over several axis sets, with keepdims on and off, axes as an
 * attribute and as an input, on a symbolic batch run at batch 2 and 3, against a
 * reference that loops over the input in double precision; plus the folding of
 * integer shape arithmetic (ReduceProd of a Shape slice). */
#include "opcheck.h"

/* 1 if inference succeeded, else 0 with the message on stderr. */
static int infer(Node *n) {
  if (oc_infer(n) == 0) return 1;
  fprintf(stderr, "infer: %s\n", fm_errmsg());
  return 0;
}

/* Lowers n and runs it at batch with x bound to input 0 and y to output 0; 1 on success. */
static int run(Node *n, int64_t batch, void *x, void *y) {
  n->in[0]->aux = x, n->out[0]->aux = y;
  return oc_run(n, batch) == 0;
}

/* ---- the reference ---- */

typedef enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_L1, R_L2, R_LOGSUM, R_LOGSUMEXP, R_SUMSQ, R_N } RKind;
static const OpKind rops[R_N] = {OP_ReduceSum, OP_ReduceMean, OP_ReduceMax, OP_ReduceMin, OP_ReduceProd,
                                 OP_ReduceL1, OP_ReduceL2, OP_ReduceLogSum, OP_ReduceLogSumExp,
                                 OP_ReduceSumSquare};

/* x is [B, 3, 4]; red[] marks reduced axes; y is indexed by the kept axes in order. */
static void ref_reduce(RKind k, const float *x, int64_t B, const int *red, double *y, int64_t *ny) {
  int64_t d[3] = {B, 3, 4}, m = 1;
  for (int a = 0; a < 3; a++) m *= red[a] ? 1 : d[a];
  double acc[64];
  int seen[64] = {0};
  for (int64_t i = 0; i < B; i++)
    for (int64_t j = 0; j < 3; j++)
      for (int64_t l = 0; l < 4; l++) {
        int64_t idx[3] = {i, j, l}, o = 0;
        for (int a = 0; a < 3; a++)
          if (!red[a]) o = o * d[a] + idx[a];
        double v = x[(i * 3 + j) * 4 + l], c;
        switch (k) {
        case R_L1: c = fabs(v); break;
        case R_L2: case R_SUMSQ: c = v * v; break;
        case R_LOGSUMEXP: c = exp(v); break;
        default: c = v;
        }
        if (!seen[o]) acc[o] = c, seen[o] = 1;
        else if (k == R_MAX) acc[o] = c > acc[o] ? c : acc[o];
        else if (k == R_MIN) acc[o] = c < acc[o] ? c : acc[o];
        else if (k == R_PROD) acc[o] *= c;
        else acc[o] += c;
      }
  int64_t cnt = B * 12 / m;
  for (int64_t o = 0; o < m; o++) {
    double v = acc[o];
    if (k == R_MEAN) v /= (double)cnt;
    if (k == R_L2) v = sqrt(v);
    if (k == R_LOGSUM || k == R_LOGSUMEXP) v = log(v);
    y[o] = v;
  }
  *ny = m;
}

static void test_reduce_kinds(void) {
  Tensor *x = oc_input_named("rx", FM_F32, 3, (int64_t[]){-1, 3, 4});
  /* axis sets: {1}, {0, 2}, {-1}, all (no axes) */
  const int64_t axsets[4][2] = {{1, 0}, {0, 2}, {-1, 0}, {0, 0}};
  const int naxes[4] = {1, 2, 1, 0};
  const int reds[4][3] = {{0, 1, 0}, {1, 0, 1}, {0, 0, 1}, {1, 1, 1}};
  for (int k = 0; k < R_N; k++)
    for (int s = 0; s < 4; s++)
      for (int keep = 0; keep <= 1; keep++)
        for (int form = 0; form <= 1; form++) { /* 0: attribute (opset 11), 1: input (13 / 18) */
          int opset = form ? (k == R_SUM ? 13 : 18) : 11;
          Node *n;
          if (form && naxes[s]) n = oc_node(rops[k], opset, 2, (Tensor *[]){x, oc_const_i64(naxes[s], axsets[s])}, 1);
          else n = oc_node(rops[k], opset, 1, (Tensor *[]){x}, 1);
          if (!form && naxes[s]) oc_attr_ints(n, "axes", naxes[s], axsets[s]);
          oc_attr_i(n, "keepdims", keep);
          if (!infer(n)) { CHECK(0); continue; }
          /* output shape */
          int64_t want[3], r = 0;
          const int64_t xd[3] = {-1, 3, 4};
          for (int a = 0; a < 3; a++)
            if (!reds[s][a]) want[r++] = xd[a];
            else if (keep) want[r++] = 1;
          int shape_ok = n->out[0]->rank == r && n->out[0]->dtype == FM_F32;
          for (int a = 0; shape_ok && a < r; a++) shape_ok = n->out[0]->dims[a] == want[a];
          CHECK(shape_ok);
          for (int64_t B = 2; B <= 3; B++) {
            float xv[36], y[36];
            for (int i = 0; i < B * 12; i++) {
              float v = (float)((i * 29) % 17) / 8.0f - 1.0f;
              if (k == R_LOGSUM || k == R_PROD) v = fabsf(v) * 0.5f + 0.6f; /* positive, modest products */
              xv[i] = v;
            }
            double ref[36];
            int64_t m;
            ref_reduce((RKind)k, xv, B, reds[s], ref, &m);
            CHECK(run(n, B, xv, y));
            int ok = 1;
            for (int64_t o = 0; o < m; o++) ok &= fabs(ref[o] - y[o]) <= 1e-4 * (1 + fabs(ref[o]));
            if (!ok) fprintf(stderr, "%s axes set %d keepdims %d opset %d batch %lld\n", fm_op_names[rops[k]], s, keep,
                             opset, (long long)B);
            CHECK(ok);
          }
        }
}

static void test_reduce_special(void) {
  Tensor *x = oc_input_named("rsx", FM_F32, 2, (int64_t[]){2, 3});
  /* noop_with_empty_axes: identity */
  Node *n = oc_node(OP_ReduceSum, 13, 1, (Tensor *[]){x}, 1);
  oc_attr_i(n, "noop_with_empty_axes", 1);
  CHECK(infer(n) && n->out[0]->rank == 2 && n->out[0]->dims[1] == 3);
  float xv[6] = {1, -2, 3, 4, 5, -6}, y[6];
  CHECK(run(n, 1, xv, y) && y[5] == -6 && y[1] == -2);
  /* empty axes input without the flag: reduce everything */
  int64_t none = 0;
  Node *n2 = oc_node(OP_ReduceSum, 13, 2, (Tensor *[]){x, oc_const(FM_I64, 1, &none, NULL)}, 1);
  CHECK(infer(n2) && n2->out[0]->rank == 2 && n2->out[0]->dims[0] == 1 && n2->out[0]->dims[1] == 1);
  CHECK(run(n2, 1, xv, y) && y[0] == 5);
  /* integer ReduceMax */
  Tensor *xi = oc_input_named("rsi", FM_I32, 2, (int64_t[]){2, 3});
  Node *n3 = oc_node(OP_ReduceMax, 11, 1, (Tensor *[]){xi}, 1);
  oc_attr_ints(n3, "axes", 1, (int64_t[]){1}), oc_attr_i(n3, "keepdims", 0);
  CHECK(infer(n3) && n3->out[0]->rank == 1);
  int32_t iv[6] = {-5, -9, -7, 3, 8, 8}, iy[2];
  CHECK(run(n3, 1, iv, iy) && iy[0] == -5 && iy[1] == 8);
  /* bad axis */
  Node *n4 = oc_node(OP_ReduceMean, 11, 1, (Tensor *[]){x}, 1);
  oc_attr_ints(n4, "axes", 1, (int64_t[]){2});
  CHECK(oc_infer(n4) == -1 && strstr(fm_errmsg(), n4->name));
}

/* Integer reductions of shapes resolve at compile time, symbolic ones too. */
static void test_reduce_fold(void) {
  Tensor *x = oc_input_named("rfx", FM_F32, 4, (int64_t[]){-1, 3, 4, 5});
  Node *sh = oc_node(OP_Shape, 13, 1, (Tensor *[]){x}, 1);
  CHECK(infer(sh));
  Node *sl = oc_node(OP_Slice, 13, 3, (Tensor *[]){sh->out[0], oc_const_i64(1, (int64_t[]){1}), oc_const_i64(1, (int64_t[]){4})}, 1);
  CHECK(infer(sl));
  Node *p = oc_node(OP_ReduceProd, 13, 1, (Tensor *[]){sl->out[0]}, 1);
  oc_attr_i(p, "keepdims", 1);
  CHECK(infer(p) && p->out[0]->data && *(int64_t *)p->out[0]->data == 60);
  Node *p2 = oc_node(OP_ReduceProd, 13, 1, (Tensor *[]){sh->out[0]}, 1);
  oc_attr_i(p2, "keepdims", 0);
  CHECK(infer(p2) && p2->out[0]->symval && p2->out[0]->symval[0] == -60);
  Node *s = oc_node(OP_ReduceSum, 11, 1, (Tensor *[]){sh->out[0]}, 1);
  CHECK(infer(s) && !s->out[0]->data && !s->out[0]->symval); /* N + 12 is neither */
}

static void test_arg(void) {
  Tensor *x = oc_input_named("ax", FM_F32, 3, (int64_t[]){-1, 3, 4});
  for (int op = 0; op <= 1; op++)
    for (int last = 0; last <= 1; last++)
      for (int axis = -1; axis <= 1; axis++)
        for (int keep = 0; keep <= 1; keep++) {
          Node *n = oc_node(op ? OP_ArgMin : OP_ArgMax, 13, 1, (Tensor *[]){x}, 1);
          oc_attr_i(n, "axis", axis), oc_attr_i(n, "keepdims", keep), oc_attr_i(n, "select_last_index", last);
          CHECK(infer(n) && n->out[0]->dtype == FM_I64 && n->out[0]->rank == 3 - !keep);
          int a = axis < 0 ? axis + 3 : axis;
          int64_t B = 3, d[3] = {B, 3, 4};
          float xv[36];
          for (int i = 0; i < 36; i++) xv[i] = (float)((i * 7) % 5 >= 2); /* ties for max and min */
          int64_t y[36];
          CHECK(run(n, B, xv, y));
          int ok = 1;
          int64_t o = 0;
          for (int64_t i = 0; i < (a == 0 ? 1 : B); i++)
            for (int64_t j = 0; j < (a == 1 ? 1 : 3); j++)
              for (int64_t l = 0; l < (a == 2 ? 1 : 4); l++, o++) {
                int64_t best = -1;
                float bv = 0;
                for (int64_t t = 0; t < d[a]; t++) {
                  int64_t idx[3] = {i, j, l};
                  idx[a] = t;
                  float v = xv[(idx[0] * 3 + idx[1]) * 4 + idx[2]];
                  int better = best < 0 || (op ? v < bv : v > bv) || (last && v == bv);
                  if (better) best = t, bv = v;
                }
                ok &= y[o] == best;
              }
          CHECK(ok);
        }
}

static void test_cumsum(void) {
  Tensor *x = oc_input_named("cx", FM_F32, 3, (int64_t[]){-1, 3, 4});
  for (int axis = 0; axis <= 2; axis++)
    for (int excl = 0; excl <= 1; excl++)
      for (int rev = 0; rev <= 1; rev++) {
        int32_t av = axis == 2 ? -1 : axis;
        Node *n = oc_node(OP_CumSum, 14, 2, (Tensor *[]){x, oc_const(FM_I32, 0, NULL, &av)}, 1);
        oc_attr_i(n, "exclusive", excl), oc_attr_i(n, "reverse", rev);
        CHECK(infer(n) && n->out[0]->rank == 3 && n->out[0]->dims[0] == -1);
        int64_t B = 2, d[3] = {B, 3, 4};
        float xv[24], y[24];
        for (int i = 0; i < 24; i++) xv[i] = (float)((i * 5) % 7) - 3;
        CHECK(run(n, B, xv, y));
        int ok = 1;
        for (int64_t i = 0; i < B; i++)
          for (int64_t j = 0; j < 3; j++)
            for (int64_t l = 0; l < 4; l++) {
              int64_t idx[3] = {i, j, l}, pos = idx[axis];
              double s = 0;
              for (int64_t t = 0; t < d[axis]; t++) {
                int take = rev ? (excl ? t > pos : t >= pos) : (excl ? t < pos : t <= pos);
                idx[axis] = t;
                if (take) s += xv[(idx[0] * 3 + idx[1]) * 4 + idx[2]];
              }
              ok &= y[(i * 3 + j) * 4 + l] == (float)s;
            }
        CHECK(ok);
      }
  /* integer CumSum */
  Tensor *xi = oc_input_named("cxi", FM_I64, 1, (int64_t[]){5});
  int64_t ax = 0;
  Node *n = oc_node(OP_CumSum, 14, 2, (Tensor *[]){xi, oc_const(FM_I64, 0, NULL, &ax)}, 1);
  CHECK(infer(n));
  int64_t iv[5] = {1, 2, 3, 4, 5}, iy[5];
  CHECK(run(n, 1, iv, iy) && iy[4] == 15 && iy[2] == 6);
}

int main(void) {
  /* A direct reference pulls reduce.o (and shape.o, move.o for the fold test) out of
     the static library even where fm_ops[] only holds weak references. */
  volatile FmInferFn pull[] = {fm_infer_ReduceSum, fm_infer_Shape, fm_infer_Slice};
  (void)pull;
  oc_graph_new(0);
  test_reduce_kinds();
  test_reduce_special();
  test_reduce_fold();
  test_arg();
  test_cumsum();
  oc_graph_free();
  return check_done("test_ops_reduce");
}
