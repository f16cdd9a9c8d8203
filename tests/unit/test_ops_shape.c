/* test_ops_shape.c - shape and data-movement ops (compiler/ops/shape.c, move.c):
 * inference (dims, constant and symbolic values of shape arithmetic) and lowering,
 * run on the kernel interpreter against straightforward references, at batch 2 and 3
 * where a dim is symbolic. */
#include "opcheck.h"

static char lastmsg[512];

/* Runs inference; 1 if it succeeded, else 0 with the message in lastmsg. */
static int infer(Node *n) {
  if (oc_infer(n) == 0) return 1;
  snprintf(lastmsg, sizeof lastmsg, "%s", fm_errmsg());
  return 0;
}

/* Lowers n and runs it at batch; io[] holds a pointer per input then per output
   (NULL: the tensor's constant data, else zeros: an input the kernel does not read,
   like Shape's x). Returns 1 on success. */
static int run(Node *n, int64_t batch, void **io) {
  int nt = n->nin + n->nout;
  void **owned = calloc((size_t)nt + 1, sizeof(void *));
  for (int j = 0; j < nt; j++) {
    Tensor *t = j < n->nin ? n->in[j] : n->out[j - n->nin];
    if (!t) continue;
    t->aux = io[j];
    if (!io[j] && !t->data) t->aux = owned[j] = calloc((size_t)oc_numel(t, batch) + 1, 8);
  }
  int ok = oc_run(n, batch) == 0;
  for (int j = 0; j < nt; j++) {
    Tensor *t = j < n->nin ? n->in[j] : n->out[j - n->nin];
    if (t && owned[j]) t->aux = NULL;
    free(owned[j]);
  }
  free(owned);
  return ok;
}

static int dims_are(const Tensor *t, int r, const int64_t *d) {
  if (t->rank != r) return 0;
  for (int i = 0; i < r; i++)
    if (t->dims[i] != d[i]) return 0;
  return 1;
}

static float *ramp(int64_t m) {
  float *x = malloc(sizeof(float) * (size_t)(m ? m : 1));
  for (int64_t i = 0; i < m; i++) x[i] = (float)((i * 37) % 101) * 0.25f - 7.0f;
  return x;
}

static void unflat(int64_t k, int r, const int64_t *d, int64_t *idx) {
  for (int i = r - 1; i >= 0; i--) idx[i] = k % d[i], k /= d[i];
}
static int64_t flatten(int r, const int64_t *d, const int64_t *idx) {
  int64_t e = 0;
  for (int i = 0; i < r; i++) e = e * d[i] + idx[i];
  return e;
}

/* y = transpose(x, perm) on plain arrays: the reference for Transpose and *ToSpace. */
static void ref_transpose(const float *x, int r, const int64_t *xd, const int64_t *perm, float *y) {
  int64_t yd[8], yi[8], xi[8], m = 1;
  for (int i = 0; i < r; i++) yd[i] = xd[perm[i]], m *= xd[i];
  for (int64_t k = 0; k < m; k++) {
    unflat(k, r, yd, yi);
    for (int i = 0; i < r; i++) xi[perm[i]] = yi[i];
    y[k] = x[flatten(r, xd, xi)];
  }
}

static int same_f(const float *a, const float *b, int64_t m) {
  for (int64_t i = 0; i < m; i++)
    if (a[i] != b[i]) return 0;
  return 1;
}

/* ---- shape.c ---- */

static void test_reshape(void) {
  int64_t xd[] = {-1, 4, 6}, s[] = {0, -1, 3};
  Tensor *x = oc_input_named("rs_x", FM_F32, 3, xd);
  Node *n = oc_node(OP_Reshape, 14, 2, (Tensor *[]){x, oc_const_i64(3, s)}, 1);
  CHECK(infer(n));
  CHECK(dims_are(n->out[0], 3, (int64_t[]){-1, 8, 3}));
  for (int64_t batch = 2; batch <= 3; batch++) {
    int64_t m = oc_numel(x, batch);
    float *a = ramp(m), *y = calloc((size_t)m, sizeof(float));
    CHECK(run(n, batch, (void *[]){a, NULL, y}));
    CHECK(same_f(a, y, m));
    free(a), free(y);
  }
  /* [-1, 768] from a constant shape: N*12*64 -> N x 768 */
  Tensor *x2 = oc_input_named("rs_x2", FM_F32, 3, (int64_t[]){-1, 12, 64});
  Node *n2 = oc_node(OP_Reshape, 13, 2, (Tensor *[]){x2, oc_const_i64(2, (int64_t[]){-1, 768})}, 1);
  CHECK(infer(n2) && dims_are(n2->out[0], 2, (int64_t[]){-1, 768}));
  /* -1 absorbing the batch: [N, 10] -> [1, 10N] */
  Tensor *x3 = oc_input_named("rs_x3", FM_F32, 2, (int64_t[]){-1, 10});
  Node *n3 = oc_node(OP_Reshape, 13, 2, (Tensor *[]){x3, oc_const_i64(2, (int64_t[]){1, -1})}, 1);
  CHECK(infer(n3) && dims_are(n3->out[0], 2, (int64_t[]){1, -10}));
  /* allowzero: a 0 is a real zero dim */
  Tensor *x4 = oc_input_named("rs_x4", FM_F32, 2, (int64_t[]){0, 3});
  Node *n4 = oc_node(OP_Reshape, 14, 2, (Tensor *[]){x4, oc_const_i64(2, (int64_t[]){3, 0})}, 1);
  oc_attr_i(n4, "allowzero", 1);
  CHECK(infer(n4) && dims_are(n4->out[0], 2, (int64_t[]){3, 0}));
  /* constant input folds */
  float cv[6] = {1, 2, 3, 4, 5, 6};
  Tensor *c = oc_const(FM_F32, 2, (int64_t[]){2, 3}, cv);
  Node *n5 = oc_node(OP_Reshape, 13, 2, (Tensor *[]){c, oc_const_i64(1, (int64_t[]){-1})}, 1);
  CHECK(infer(n5) && n5->out[0]->data && ((float *)n5->out[0]->data)[5] == 6);
  /* errors name the node */
  Tensor *dyn = oc_input_named("rs_dyn", FM_I64, 1, (int64_t[]){2});
  Node *n6 = oc_node(OP_Reshape, 13, 2, (Tensor *[]){x, dyn}, 1);
  CHECK(!infer(n6) && strstr(lastmsg, n6->name) && strstr(lastmsg, "compile time"));
  Node *n7 = oc_node(OP_Reshape, 13, 2, (Tensor *[]){x, oc_const_i64(2, (int64_t[]){5, -1})}, 1);
  CHECK(!infer(n7) && strstr(lastmsg, n7->name));
  Node *n8 = oc_node(OP_Reshape, 13, 2, (Tensor *[]){x, oc_const_i64(2, (int64_t[]){-1, -1})}, 1);
  CHECK(!infer(n8));
}

/* Shape -> Gather -> Unsqueeze -> Concat -> Reshape with a symbolic batch, as PyTorch
   exports x.view(x.size(0), -1). */
static void test_shape_chain(void) {
  int64_t xd[] = {-1, 3, 4, 5};
  Tensor *x = oc_input_named("ch_x", FM_F32, 4, xd);
  Node *sh = oc_node(OP_Shape, 13, 1, (Tensor *[]){x}, 1);
  CHECK(infer(sh));
  Tensor *s = sh->out[0];
  CHECK(s->dtype == FM_I64 && dims_are(s, 1, (int64_t[]){4}) && !s->data && s->symval);
  CHECK(s->symval && s->symval[0] == -1 && s->symval[3] == 5);
  Node *ga = oc_node(OP_Gather, 13, 2, (Tensor *[]){s, oc_scalar_i64(0)}, 1);
  CHECK(infer(ga) && ga->out[0]->rank == 0 && ga->out[0]->symval && ga->out[0]->symval[0] == -1);
  Node *un = oc_node(OP_Unsqueeze, 13, 2, (Tensor *[]){ga->out[0], oc_const_i64(1, (int64_t[]){0})}, 1);
  CHECK(infer(un) && dims_are(un->out[0], 1, (int64_t[]){1}) && un->out[0]->symval);
  Node *cat = oc_node(OP_Concat, 13, 2, (Tensor *[]){un->out[0], oc_const_i64(1, (int64_t[]){-1})}, 1);
  oc_attr_i(cat, "axis", 0);
  CHECK(infer(cat) && dims_are(cat->out[0], 1, (int64_t[]){2}) && cat->out[0]->symval);
  CHECK(cat->out[0]->symval && cat->out[0]->symval[0] == -1 && fm_sym_is_lit(cat->out[0]->symval[1]));
  Node *rs = oc_node(OP_Reshape, 13, 2, (Tensor *[]){x, cat->out[0]}, 1);
  CHECK(infer(rs) && dims_are(rs->out[0], 2, (int64_t[]){-1, 60}));
  /* Gather of a known dim gives a constant; Slice of the shape too */
  Node *g2 = oc_node(OP_Gather, 13, 2, (Tensor *[]){s, oc_const_i64(1, (int64_t[]){-1})}, 1);
  CHECK(infer(g2) && g2->out[0]->data && ((int64_t *)g2->out[0]->data)[0] == 5);
  Node *sl = oc_node(OP_Slice, 13, 3, (Tensor *[]){s, oc_const_i64(1, (int64_t[]){1}), oc_const_i64(1, (int64_t[]){INT64_MAX})}, 1);
  CHECK(infer(sl) && sl->out[0]->data && dims_are(sl->out[0], 1, (int64_t[]){3}));
  CHECK(sl->out[0]->data && ((int64_t *)sl->out[0]->data)[2] == 5);
  /* Concat(N, 60) -> Reshape to [N, 60] */
  Node *cat2 = oc_node(OP_Concat, 13, 2, (Tensor *[]){un->out[0], oc_const_i64(1, (int64_t[]){60})}, 1);
  oc_attr_i(cat2, "axis", 0);
  CHECK(infer(cat2));
  Node *rs2 = oc_node(OP_Reshape, 13, 2, (Tensor *[]){x, cat2->out[0]}, 1);
  CHECK(infer(rs2) && dims_are(rs2->out[0], 2, (int64_t[]){-1, 60}));
  /* Squeeze keeps symbolic values; Expand consumes them */
  Node *sq = oc_node(OP_Squeeze, 13, 2, (Tensor *[]){un->out[0], oc_const_i64(1, (int64_t[]){0})}, 1);
  CHECK(infer(sq) && sq->out[0]->rank == 0 && sq->out[0]->symval && sq->out[0]->symval[0] == -1);
  Tensor *e = oc_input_named("ch_e", FM_F32, 2, (int64_t[]){3, 1});
  Node *ex = oc_node(OP_Expand, 13, 2, (Tensor *[]){e, cat2->out[0]}, 1);
  CHECK(!infer(ex)); /* [3,1] against [N, 60]: 3 vs N does not broadcast */
  Tensor *y = oc_input_named("ch_y", FM_F32, 3, (int64_t[]){-1, 1, 4});
  Node *sy = oc_node(OP_Shape, 13, 1, (Tensor *[]){y}, 1);
  CHECK(infer(sy));
  Node *ex2 = oc_node(OP_Expand, 13, 2, (Tensor *[]){e, sy->out[0]}, 1);
  CHECK(infer(ex2) && dims_are(ex2->out[0], 3, (int64_t[]){-1, 3, 4}));
  for (int64_t batch = 2; batch <= 3; batch++) {
    float ev[3] = {1.5f, -2, 7}, out[3 * 3 * 4];
    CHECK(run(ex2, batch, (void *[]){ev, NULL, out}));
    int ok = 1;
    for (int i = 0; i < batch * 12; i++) ok &= out[i] == ev[(i / 4) % 3];
    CHECK(ok);
  }
  /* Shape of a fully known tensor is constant data; Shape lowering stores N */
  Tensor *k = oc_input_named("ch_k", FM_F32, 2, (int64_t[]){2, 7});
  Node *sk = oc_node(OP_Shape, 13, 1, (Tensor *[]){k}, 1);
  CHECK(infer(sk) && sk->out[0]->data && ((int64_t *)sk->out[0]->data)[1] == 7);
  int64_t sv[4];
  CHECK(run(sh, 3, (void *[]){NULL, sv}));
  CHECK(sv[0] == 3 && sv[1] == 3 && sv[2] == 4 && sv[3] == 5);
}

static void test_shape_size(void) {
  Tensor *x = oc_input_named("ss_x", FM_F32, 4, (int64_t[]){2, 3, 4, 5});
  Node *n = oc_node(OP_Shape, 15, 1, (Tensor *[]){x}, 1);
  oc_attr_i(n, "start", 1), oc_attr_i(n, "end", -1);
  CHECK(infer(n) && dims_are(n->out[0], 1, (int64_t[]){2}) && n->out[0]->data);
  CHECK(n->out[0]->data && ((int64_t *)n->out[0]->data)[0] == 3 && ((int64_t *)n->out[0]->data)[1] == 4);
  Node *n2 = oc_node(OP_Shape, 15, 1, (Tensor *[]){x}, 1);
  oc_attr_i(n2, "start", -10), oc_attr_i(n2, "end", 10); /* clamped */
  CHECK(infer(n2) && dims_are(n2->out[0], 1, (int64_t[]){4}));
  Node *n3 = oc_node(OP_Shape, 15, 1, (Tensor *[]){x}, 1);
  oc_attr_i(n3, "start", 3), oc_attr_i(n3, "end", 1);
  CHECK(infer(n3) && dims_are(n3->out[0], 1, (int64_t[]){0}));
  Tensor *y = oc_input_named("ss_y", FM_F32, 3, (int64_t[]){-1, 3, 4});
  Node *sz = oc_node(OP_Size, 13, 1, (Tensor *[]){y}, 1);
  CHECK(infer(sz) && sz->out[0]->rank == 0 && sz->out[0]->symval && sz->out[0]->symval[0] == -12);
  int64_t v = 0;
  CHECK(run(sz, 3, (void *[]){NULL, &v}) && v == 36);
  Node *sz2 = oc_node(OP_Size, 13, 1, (Tensor *[]){x}, 1);
  CHECK(infer(sz2) && sz2->out[0]->data && *(int64_t *)sz2->out[0]->data == 120);
}

static void test_flatten_squeeze(void) {
  Tensor *x = oc_input_named("fl_x", FM_F32, 3, (int64_t[]){-1, 3, 4});
  int64_t want[4][2] = {{1, -12}, {-1, 12}, {-3, 4}, {-12, 1}};
  for (int axis = 0; axis <= 3; axis++) {
    Node *n = oc_node(OP_Flatten, 13, 1, (Tensor *[]){x}, 1);
    oc_attr_i(n, "axis", axis == 2 ? -1 : axis);
    CHECK(infer(n) && dims_are(n->out[0], 2, want[axis]));
    float *a = ramp(24), y[24];
    CHECK(run(n, 2, (void *[]){a, y}) && same_f(a, y, 24));
    free(a);
  }
  Tensor *s = oc_input_named("sq_x", FM_F32, 4, (int64_t[]){2, 1, 3, 1});
  Node *q = oc_node(OP_Squeeze, 11, 1, (Tensor *[]){s}, 1);
  oc_attr_ints(q, "axes", 2, (int64_t[]){1, -1});
  CHECK(infer(q) && dims_are(q->out[0], 2, (int64_t[]){2, 3}));
  Node *q2 = oc_node(OP_Squeeze, 13, 2, (Tensor *[]){s, oc_const_i64(1, (int64_t[]){-3})}, 1);
  CHECK(infer(q2) && dims_are(q2->out[0], 3, (int64_t[]){2, 3, 1}));
  Node *q3 = oc_node(OP_Squeeze, 13, 1, (Tensor *[]){s}, 1); /* no axes: every 1 */
  CHECK(infer(q3) && dims_are(q3->out[0], 2, (int64_t[]){2, 3}));
  Node *q4 = oc_node(OP_Squeeze, 13, 2, (Tensor *[]){s, oc_const_i64(1, (int64_t[]){0})}, 1);
  CHECK(!infer(q4) && strstr(lastmsg, "not of size 1"));
  Node *u = oc_node(OP_Unsqueeze, 11, 1, (Tensor *[]){x}, 1);
  oc_attr_ints(u, "axes", 2, (int64_t[]){4, 0});
  CHECK(infer(u) && dims_are(u->out[0], 5, (int64_t[]){1, -1, 3, 4, 1}));
  Node *u2 = oc_node(OP_Unsqueeze, 13, 2, (Tensor *[]){x, oc_const_i64(2, (int64_t[]){-1, 1})}, 1);
  CHECK(infer(u2) && dims_are(u2->out[0], 5, (int64_t[]){-1, 1, 3, 4, 1}));
  float *a = ramp(36), y[36];
  CHECK(run(u2, 3, (void *[]){a, NULL, y}) && same_f(a, y, 36));
  free(a);
}

static void test_constants(void) {
  /* ConstantOfShape of a symbolic shape: lowered, run at batch 2 */
  Tensor *x = oc_input_named("co_x", FM_F32, 2, (int64_t[]){-1, 4});
  Node *sh = oc_node(OP_Shape, 13, 1, (Tensor *[]){x}, 1);
  CHECK(infer(sh));
  Node *c = oc_node(OP_ConstantOfShape, 13, 1, (Tensor *[]){sh->out[0]}, 1);
  Tensor *val = oc_const(FM_I64, 1, (int64_t[]){1}, (int64_t[]){7});
  fm_attr_add(oc_g, c, "value", FA_TENSOR)->t = val;
  CHECK(infer(c) && c->out[0]->dtype == FM_I64 && dims_are(c->out[0], 2, (int64_t[]){-1, 4}) && !c->out[0]->data);
  int64_t out[8] = {0};
  CHECK(run(c, 2, (void *[]){NULL, out}));
  int ok = 1;
  for (int i = 0; i < 8; i++) ok &= out[i] == 7;
  CHECK(ok);
  Node *c2 = oc_node(OP_ConstantOfShape, 13, 1, (Tensor *[]){oc_const_i64(2, (int64_t[]){2, 3})}, 1);
  CHECK(infer(c2) && c2->out[0]->dtype == FM_F32 && c2->out[0]->data && ((float *)c2->out[0]->data)[5] == 0);
  /* Range: folded when constant; the lowering computes the same */
  float fs = 1, fl = 5, fd = 1.5f;
  Tensor *rs = oc_const(FM_F32, 0, NULL, &fs), *rl = oc_const(FM_F32, 0, NULL, &fl),
         *rd = oc_const(FM_F32, 0, NULL, &fd);
  Node *r = oc_node(OP_Range, 13, 3, (Tensor *[]){rs, rl, rd}, 1);
  CHECK(infer(r) && dims_are(r->out[0], 1, (int64_t[]){3}) && r->out[0]->data);
  float rv[3];
  CHECK(run(r, 1, (void *[]){NULL, NULL, NULL, rv}));
  CHECK(rv[0] == 1 && rv[1] == 2.5f && rv[2] == 4);
  CHECK(r->out[0]->data && ((float *)r->out[0]->data)[2] == 4);
  int32_t is = 10, il = 4, id = -3;
  Node *r2 = oc_node(OP_Range, 13, 3,
                (Tensor *[]){oc_const(FM_I32, 0, NULL, &is), oc_const(FM_I32, 0, NULL, &il),
                             oc_const(FM_I32, 0, NULL, &id)}, 1);
  CHECK(infer(r2) && dims_are(r2->out[0], 1, (int64_t[]){2}));
  CHECK(r2->out[0]->data && ((int32_t *)r2->out[0]->data)[1] == 7);
  /* Range(0, N, 1) */
  Node *gsz = oc_node(OP_Gather, 13, 2, (Tensor *[]){sh->out[0], oc_scalar_i64(0)}, 1);
  CHECK(infer(gsz));
  Node *r3 = oc_node(OP_Range, 13, 3, (Tensor *[]){oc_scalar_i64(0), gsz->out[0], oc_scalar_i64(1)}, 1);
  CHECK(infer(r3) && dims_are(r3->out[0], 1, (int64_t[]){-1}));
  int64_t r3v[3];
  CHECK(run(r3, 3, (void *[]){NULL, NULL, NULL, r3v}) && r3v[0] == 0 && r3v[2] == 2);
  /* EyeLike with k and dtype */
  Tensor *e = oc_input_named("ey_x", FM_F32, 2, (int64_t[]){3, 4});
  Node *ey = oc_node(OP_EyeLike, 13, 1, (Tensor *[]){e}, 1);
  oc_attr_i(ey, "k", 1), oc_attr_i(ey, "dtype", FM_I32);
  CHECK(infer(ey) && ey->out[0]->dtype == FM_I32);
  int32_t ev[12];
  CHECK(run(ey, 1, (void *[]){NULL, ev}));
  ok = 1;
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 4; j++) ok &= ev[i * 4 + j] == (j - i == 1);
  CHECK(ok);
  /* Constant from attributes */
  Node *k = oc_node(OP_Constant, 13, 0, NULL, 1);
  oc_attr_ints(k, "value_ints", 3, (int64_t[]){4, -1, 2});
  CHECK(infer(k) && k->out[0]->data && dims_are(k->out[0], 1, (int64_t[]){3}) && ((int64_t *)k->out[0]->data)[1] == -1);
  Node *k2 = oc_node(OP_Constant, 13, 0, NULL, 1);
  oc_attr_f(k2, "value_float", 2.5f);
  CHECK(infer(k2) && k2->out[0]->rank == 0 && *(float *)k2->out[0]->data == 2.5f);
}

/* ---- move.c ---- */

static void test_transpose(void) {
  int64_t perms[][4] = {{0, 2, 3, 1}, {0, 3, 1, 2}, {3, 2, 1, 0}, {1, 0, 3, 2}, {0, 1, 2, 3}};
  Tensor *x = oc_input_named("tr_x", FM_F32, 4, (int64_t[]){-1, 3, 4, 5});
  for (int p = 0; p < 5; p++) {
    Node *n = oc_node(OP_Transpose, 13, 1, (Tensor *[]){x}, 1);
    if (p != 2) oc_attr_ints(n, "perm", 4, perms[p]); /* p == 2: the default, reversed */
    CHECK(infer(n));
    for (int64_t batch = 2; batch <= 3; batch++) {
      int64_t xd[4], m = oc_numel(x, batch);
      oc_dims_at(x, batch, xd);
      float *a = ramp(m), *y = calloc((size_t)m, 4), *want = calloc((size_t)m, 4);
      ref_transpose(a, 4, xd, perms[p], want);
      CHECK(run(n, batch, (void *[]){a, y}) && same_f(want, y, m));
      free(a), free(y), free(want);
    }
  }
  Node *bad = oc_node(OP_Transpose, 13, 1, (Tensor *[]){x}, 1);
  oc_attr_ints(bad, "perm", 4, (int64_t[]){0, 1, 1, 2});
  CHECK(!infer(bad));
}

static void test_concat_split(void) {
  Tensor *a = oc_input_named("cc_a", FM_F32, 3, (int64_t[]){-1, 2, 3}), *b = oc_input_named("cc_b", FM_F32, 3, (int64_t[]){-1, 4, 3});
  Node *n = oc_node(OP_Concat, 13, 2, (Tensor *[]){a, b}, 1);
  oc_attr_i(n, "axis", -2);
  CHECK(infer(n) && dims_are(n->out[0], 3, (int64_t[]){-1, 6, 3}));
  for (int64_t batch = 2; batch <= 3; batch++) {
    float *av = ramp(batch * 6), *bv = ramp(batch * 12), y[3 * 18];
    for (int i = 0; i < batch * 12; i++) bv[i] += 100;
    CHECK(run(n, batch, (void *[]){av, bv, y}));
    int ok = 1;
    for (int i = 0; i < batch; i++)
      for (int r = 0; r < 6; r++)
        for (int c = 0; c < 3; c++)
          ok &= y[(i * 6 + r) * 3 + c] == (r < 2 ? av[(i * 2 + r) * 3 + c] : bv[(i * 4 + r - 2) * 3 + c]);
    CHECK(ok);
    /* split it back: opset 13 split input */
    Node *s = oc_node(OP_Split, 13, 2, (Tensor *[]){n->out[0], oc_const_i64(2, (int64_t[]){2, 4})}, 2);
    oc_attr_i(s, "axis", 1);
    CHECK(infer(s) && dims_are(s->out[0], 3, (int64_t[]){-1, 2, 3}) && dims_are(s->out[1], 3, (int64_t[]){-1, 4, 3}));
    float s0[3 * 6], s1[3 * 12];
    CHECK(run(s, batch, (void *[]){y, NULL, s0, s1}));
    CHECK(same_f(s0, av, batch * 6) && same_f(s1, bv, batch * 12));
    free(av), free(bv);
  }
  /* concat along the batch: N + 2N = 3N; N + 3 is an error */
  Tensor *c = oc_input_named("cc_c", FM_F32, 2, (int64_t[]){-2, 3}), *d = oc_input_named("cc_d", FM_F32, 2, (int64_t[]){3, 3});
  Node *n2 = oc_node(OP_Concat, 13, 2, (Tensor *[]){a, c}, 1);
  oc_attr_i(n2, "axis", 0);
  CHECK(!infer(n2)); /* rank mismatch */
  Tensor *a2 = oc_input_named("cc_a2", FM_F32, 2, (int64_t[]){-1, 3});
  Node *n3 = oc_node(OP_Concat, 13, 2, (Tensor *[]){a2, c}, 1);
  oc_attr_i(n3, "axis", 0);
  CHECK(infer(n3) && dims_are(n3->out[0], 2, (int64_t[]){-3, 3}));
  Node *n4 = oc_node(OP_Concat, 13, 2, (Tensor *[]){a2, d}, 1);
  oc_attr_i(n4, "axis", 0);
  CHECK(!infer(n4) && strstr(lastmsg, n4->name));
  /* Split variants: equal, attribute (opset 11), num_outputs (opset 18, uneven) */
  Tensor *x = oc_input_named("sp_x", FM_F32, 2, (int64_t[]){2, 7});
  Node *e = oc_node(OP_Split, 11, 1, (Tensor *[]){x}, 2);
  oc_attr_i(e, "axis", 1);
  CHECK(!infer(e)); /* 7 does not split in 2 */
  Node *e2 = oc_node(OP_Split, 11, 1, (Tensor *[]){x}, 3);
  oc_attr_i(e2, "axis", -1), oc_attr_ints(e2, "split", 3, (int64_t[]){1, 0, 6});
  CHECK(infer(e2) && e2->out[1]->dims[1] == 0 && e2->out[2]->dims[1] == 6);
  Node *e3 = oc_node(OP_Split, 18, 1, (Tensor *[]){x}, 4);
  oc_attr_i(e3, "axis", 1), oc_attr_i(e3, "num_outputs", 4);
  CHECK(infer(e3) && e3->out[0]->dims[1] == 2 && e3->out[3]->dims[1] == 1);
  float *xv = ramp(14), o[4][4];
  CHECK(run(e3, 1, (void *[]){xv, o[0], o[1], o[2], o[3]}));
  CHECK(o[3][0] == xv[6] && o[3][1] == xv[13] && o[1][1] == xv[3] && o[1][2] == xv[9]);
  free(xv);
  Tensor *y = oc_input_named("sp_y", FM_F32, 2, (int64_t[]){-2, 3});
  Node *e4 = oc_node(OP_Split, 13, 1, (Tensor *[]){y}, 2);
  CHECK(infer(e4) && e4->out[0]->dims[0] == -1);
}

static void test_slice(void) {
  Tensor *x = oc_input_named("sl_x", FM_F32, 3, (int64_t[]){-1, 10, 6});
  /* negative steps, clamping, INT64_MIN end, negative axes */
  Node *n = oc_node(OP_Slice, 13, 5,
               (Tensor *[]){x, oc_const_i64(2, (int64_t[]){8, 5}), oc_const_i64(2, (int64_t[]){1, INT64_MIN}),
                            oc_const_i64(2, (int64_t[]){1, -1}), oc_const_i64(2, (int64_t[]){-2, -2})}, 1);
  CHECK(infer(n) && dims_are(n->out[0], 3, (int64_t[]){-1, 4, 3}));
  for (int64_t batch = 2; batch <= 3; batch++) {
    float *a = ramp(batch * 60), y[3 * 12];
    CHECK(run(n, batch, (void *[]){a, NULL, NULL, NULL, NULL, y}));
    int ok = 1;
    for (int b = 0; b < batch; b++)
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) ok &= y[(b * 4 + i) * 3 + j] == a[(b * 10 + 8 - 2 * i) * 6 + 5 - 2 * j];
    CHECK(ok);
    free(a);
  }
  /* opset 9 attributes: starts beyond the end clamp, ends 1000 clamp */
  Node *n2 = oc_node(OP_Slice, 9, 1, (Tensor *[]){x}, 1);
  oc_attr_ints(n2, "starts", 2, (int64_t[]){-3, 20}), oc_attr_ints(n2, "ends", 2, (int64_t[]){1000, 30});
  oc_attr_ints(n2, "axes", 2, (int64_t[]){1, 2});
  CHECK(infer(n2) && dims_are(n2->out[0], 3, (int64_t[]){-1, 3, 0}));
  Node *n3 = oc_node(OP_Slice, 13, 3, (Tensor *[]){x, oc_const_i64(1, (int64_t[]){-4}), oc_const_i64(1, (int64_t[]){-1})}, 1);
  CHECK(!infer(n3)); /* axis 0 is the batch */
  Node *n4 = oc_node(OP_Slice, 13, 4,
                (Tensor *[]){x, oc_const_i64(1, (int64_t[]){0}), oc_const_i64(1, (int64_t[]){INT64_MAX}), oc_const_i64(1, (int64_t[]){0})}, 1);
  CHECK(infer(n4) && dims_are(n4->out[0], 3, (int64_t[]){-1, 10, 6}));
  Node *n5 = oc_node(OP_Slice, 13, 4,
                (Tensor *[]){x, oc_const_i64(1, (int64_t[]){1}), oc_const_i64(1, (int64_t[]){INT64_MAX}), oc_const_i64(1, (int64_t[]){0})}, 1);
  CHECK(!infer(n5) && strstr(lastmsg, "batch"));
}

static void test_gather(void) {
  Tensor *x = oc_input_named("ga_x", FM_F32, 3, (int64_t[]){-1, 3, 4});
  int64_t iv[4] = {0, -1, 2, 1};
  Tensor *ind = oc_const(FM_I64, 2, (int64_t[]){2, 2}, iv);
  Node *n = oc_node(OP_Gather, 13, 2, (Tensor *[]){x, ind}, 1);
  oc_attr_i(n, "axis", 1);
  CHECK(infer(n) && dims_are(n->out[0], 4, (int64_t[]){-1, 2, 2, 4}));
  for (int64_t batch = 2; batch <= 3; batch++) {
    float *a = ramp(batch * 12), y[3 * 16];
    CHECK(run(n, batch, (void *[]){a, NULL, y}));
    int ok = 1;
    for (int b = 0; b < batch; b++)
      for (int k = 0; k < 4; k++)
        for (int j = 0; j < 4; j++) ok &= y[(b * 4 + k) * 4 + j] == a[(b * 3 + (iv[k] + 3) % 3) * 4 + j];
    CHECK(ok);
    free(a);
  }
  /* runtime int32 indices, axis 0 of a 2-D tensor */
  Tensor *x2 = oc_input_named("ga_x2", FM_F32, 2, (int64_t[]){5, 2}), *i2 = oc_input_named("ga_i2", FM_I32, 1, (int64_t[]){3});
  Node *n2 = oc_node(OP_Gather, 13, 2, (Tensor *[]){x2, i2}, 1);
  CHECK(infer(n2) && dims_are(n2->out[0], 2, (int64_t[]){3, 2}));
  float *a = ramp(10), y[6];
  int32_t idx[3] = {4, -5, 2};
  CHECK(run(n2, 1, (void *[]){a, idx, y}));
  CHECK(y[0] == a[8] && y[1] == a[9] && y[2] == a[0] && y[5] == a[5]);
  /* GatherElements, axis 1, negative index */
  Tensor *gi = oc_input_named("ge_i", FM_I64, 2, (int64_t[]){5, 2});
  Node *ge = oc_node(OP_GatherElements, 13, 2, (Tensor *[]){x2, gi}, 1);
  oc_attr_i(ge, "axis", -1);
  CHECK(infer(ge) && dims_are(ge->out[0], 2, (int64_t[]){5, 2}));
  int64_t gv[10] = {1, 0, -1, -2, 0, 0, 1, 1, -1, 0};
  float gy[10];
  CHECK(run(ge, 1, (void *[]){a, gv, gy}));
  int ok = 1;
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 2; j++) ok &= gy[i * 2 + j] == a[i * 2 + (gv[i * 2 + j] + 2) % 2];
  CHECK(ok);
  free(a);
}

/* numpy.pad on one axis index: the source index or -1 for the constant */
static int64_t pad_src(int64_t o, int64_t pb, int64_t d, const char *mode) {
  int64_t s = o - pb;
  if (s >= 0 && s < d) return s;
  if (!strcmp(mode, "constant")) return -1;
  if (!strcmp(mode, "edge")) return s < 0 ? 0 : d - 1;
  while (s < 0 || s >= d) s = s < 0 ? -s : 2 * (d - 1) - s; /* reflect */
  return s;
}

static void test_pad(void) {
  const char *modes[] = {"constant", "reflect", "edge"};
  int64_t pads[] = {0, 1, 2, 0, 2, 1}; /* begin[3], end[3] */
  Tensor *x = oc_input_named("pd_x", FM_F32, 3, (int64_t[]){-1, 3, 4});
  for (int mi = 0; mi < 3; mi++) {
    for (int opset = 2; opset <= 11; opset += 9) {
      Node *n;
      float cv = 9.5f;
      if (opset == 2) {
        n = oc_node(OP_Pad, 2, 1, (Tensor *[]){x}, 1);
        oc_attr_ints(n, "pads", 6, pads);
        oc_attr_f(n, "value", cv);
      } else {
        n = oc_node(OP_Pad, 11, 3, (Tensor *[]){x, oc_const_i64(6, pads), oc_const(FM_F32, 0, NULL, &cv)}, 1);
      }
      oc_attr_s(n, "mode", modes[mi]);
      CHECK(infer(n) && dims_are(n->out[0], 3, (int64_t[]){-1, 6, 7}));
      int64_t batch = 2;
      float *a = ramp(batch * 12), y[2 * 42];
      CHECK(run(n, batch, opset == 2 ? (void *[]){a, y} : (void *[]){a, NULL, NULL, y}));
      int ok = 1;
      for (int b = 0; b < batch; b++)
        for (int i = 0; i < 6; i++)
          for (int j = 0; j < 7; j++) {
            int64_t si = pad_src(i, 1, 3, modes[mi]), sj = pad_src(j, 2, 4, modes[mi]);
            float want = si < 0 || sj < 0 ? cv : a[(b * 3 + si) * 4 + sj];
            ok &= y[(b * 6 + i) * 7 + j] == want;
          }
      CHECK(ok);
      free(a);
    }
  }
  /* negative pads crop; opset 18 axes */
  Tensor *x2 = oc_input_named("pd_x2", FM_F32, 2, (int64_t[]){3, 5});
  Node *n2 = oc_node(OP_Pad, 18, 4, (Tensor *[]){x2, oc_const_i64(2, (int64_t[]){-1, 2}), NULL, oc_const_i64(1, (int64_t[]){-1})}, 1);
  CHECK(infer(n2) && dims_are(n2->out[0], 2, (int64_t[]){3, 6}));
  float *a = ramp(15), y[18];
  CHECK(run(n2, 1, (void *[]){a, NULL, NULL, NULL, y}));
  CHECK(y[0] == a[1] && y[3] == a[4] && y[4] == 0 && y[6] == a[6]);
  free(a);
  Node *n3 = oc_node(OP_Pad, 11, 2, (Tensor *[]){x, oc_const_i64(6, (int64_t[]){1, 0, 0, 0, 0, 0})}, 1);
  CHECK(!infer(n3) && strstr(lastmsg, "batch"));
}

static void test_tile_expand(void) {
  Tensor *x = oc_input_named("ti_x", FM_F32, 2, (int64_t[]){-1, 2});
  Node *n = oc_node(OP_Tile, 13, 2, (Tensor *[]){x, oc_const_i64(2, (int64_t[]){2, 3})}, 1);
  CHECK(infer(n) && dims_are(n->out[0], 2, (int64_t[]){-2, 6}));
  for (int64_t batch = 2; batch <= 3; batch++) {
    float *a = ramp(batch * 2), y[6 * 6];
    CHECK(run(n, batch, (void *[]){a, NULL, y}));
    int ok = 1;
    for (int i = 0; i < 2 * batch; i++)
      for (int j = 0; j < 6; j++) ok &= y[i * 6 + j] == a[(i % batch) * 2 + j % 2];
    CHECK(ok);
    free(a);
  }
  float cv[2] = {1, 2};
  Tensor *c = oc_const(FM_F32, 2, (int64_t[]){2, 1}, cv);
  Node *e = oc_node(OP_Expand, 13, 2, (Tensor *[]){c, oc_const_i64(3, (int64_t[]){2, 1, 3})}, 1);
  CHECK(infer(e) && dims_are(e->out[0], 3, (int64_t[]){2, 2, 3}) && e->out[0]->data);
  CHECK(e->out[0]->data && ((float *)e->out[0]->data)[4] == 2 && ((float *)e->out[0]->data)[8] == 1);
}

static void test_depth_space(void) {
  int64_t xd[4] = {2, 8, 2, 3}, bs = 2;
  Tensor *x = oc_input_named("ds_x", FM_F32, 4, (int64_t[]){-1, 8, 2, 3});
  for (int crd = 0; crd <= 1; crd++) {
    Node *n = oc_node(OP_DepthToSpace, 13, 1, (Tensor *[]){x}, 1);
    oc_attr_i(n, "blocksize", bs);
    if (crd) oc_attr_s(n, "mode", "CRD");
    CHECK(infer(n) && dims_are(n->out[0], 4, (int64_t[]){-1, 2, 4, 6}));
    float *a = ramp(96), y[96], want[96];
    /* the spec: reshape to 6-D, transpose, reshape */
    if (crd) ref_transpose(a, 6, (int64_t[]){2, 2, 2, 2, 2, 3}, (int64_t[]){0, 1, 4, 2, 5, 3}, want);
    else ref_transpose(a, 6, (int64_t[]){2, 2, 2, 2, 2, 3}, (int64_t[]){0, 3, 4, 1, 5, 2}, want);
    CHECK(run(n, 2, (void *[]){a, y}) && same_f(want, y, 96));
    if (!crd) { /* SpaceToDepth undoes DCR DepthToSpace */
      Node *s = oc_node(OP_SpaceToDepth, 13, 1, (Tensor *[]){n->out[0]}, 1);
      oc_attr_i(s, "blocksize", bs);
      CHECK(infer(s) && dims_are(s->out[0], 4, (int64_t[]){-1, 8, 2, 3}));
      float back[96];
      CHECK(run(s, 2, (void *[]){y, back}) && same_f(a, back, 96));
    }
    free(a);
  }
  (void)xd;
}

static void test_trilu_onehot(void) {
  Tensor *x = oc_input_named("tl_x", FM_F32, 3, (int64_t[]){-1, 3, 4});
  for (int upper = 0; upper <= 1; upper++) {
    int64_t k = upper ? 1 : -1;
    Node *n = oc_node(OP_Trilu, 14, 2, (Tensor *[]){x, oc_scalar_i64(k)}, 1);
    oc_attr_i(n, "upper", upper);
    CHECK(infer(n));
    float *a = ramp(36), y[36];
    CHECK(run(n, 3, (void *[]){a, NULL, y}));
    int ok = 1;
    for (int b = 0; b < 3; b++)
      for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) {
          int keep = upper ? j - i >= k : j - i <= k;
          ok &= y[(b * 3 + i) * 4 + j] == (keep ? a[(b * 3 + i) * 4 + j] : 0);
        }
    CHECK(ok);
    free(a);
  }
  Tensor *ind = oc_input_named("oh_i", FM_I64, 2, (int64_t[]){-1, 3});
  float vals[2] = {-1, 5}, depth = 4;
  Node *n = oc_node(OP_OneHot, 11, 3,
               (Tensor *[]){ind, oc_const(FM_F32, 0, NULL, &depth),
                            oc_const(FM_F32, 1, (int64_t[]){2}, vals)}, 1);
  oc_attr_i(n, "axis", 1);
  CHECK(infer(n) && dims_are(n->out[0], 3, (int64_t[]){-1, 4, 3}) && n->out[0]->dtype == FM_F32);
  int64_t iv[6] = {0, 3, -1, 2, 7, -4};
  float y[24];
  CHECK(run(n, 2, (void *[]){iv, NULL, NULL, y}));
  int ok = 1;
  for (int b = 0; b < 2; b++)
    for (int d = 0; d < 4; d++)
      for (int j = 0; j < 3; j++) {
        int64_t q = iv[b * 3 + j];
        if (q < 0) q += 4;
        ok &= y[(b * 4 + d) * 3 + j] == (q == d ? 5 : -1);
      }
  CHECK(ok);
}

int main(void) {
  /* Direct references pull shape.o and move.o out of the static library even where
     fm_ops[] only holds weak references to them. */
  volatile FmInferFn pull[] = {fm_infer_Reshape, fm_infer_Transpose};
  (void)pull;
  oc_graph_new(0);
  test_reshape();
  test_shape_chain();
  test_shape_size();
  test_flatten_squeeze();
  test_constants();
  test_transpose();
  test_concat_split();
  test_slice();
  test_gather();
  test_pad();
  test_tile_expand();
  test_depth_space();
  test_trilu_onehot();
  oc_graph_free();
  return check_done("test_ops_shape");
}
