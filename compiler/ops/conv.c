/* conv.c - Conv and ConvTranspose: shape inference and the direct-loop lowerings.
 *
 * Conv 2-D float32 goes through im2col + fm_sgemm (conv_gemm.c) where it fits;
 * everything else - depthwise, grouped, 1-D/3-D, dilated, float64 - uses the direct
 * kernel below, which also stays available as the reference (--conv=direct).
 *
 *   X [N, C, in...], W [M, C/G, k...], B [M]  ->  Y [N, M, out...]
 */
#include "ops/dense.h"
#include <assert.h>
#include <string.h>

static void check_float(Node *n, const Tensor *t, FmDType want) {
  if (t->dtype != FM_F32 && t->dtype != FM_F64)
    fm_fail("node '%s' (%s): input '%s' has dtype %s; float32 and float64 are supported", n->name,
            n->op_type, t->name, fm_dtype_name(t->dtype));
  if (want && t->dtype != want)
    fm_fail("node '%s' (%s): input '%s' has dtype %s, expected %s like the data input", n->name,
            n->op_type, t->name, fm_dtype_name(t->dtype), fm_dtype_name(want));
}

/* Checks and resolves the inputs shared by Conv and ConvTranspose; the weight's
   kernel dims are cross-checked against kernel_shape when that is given. */
static void setup_common(Node *n, FmConv *c, int64_t *kernel) {
  memset(c, 0, sizeof *c);
  c->x = fm_in(n, 0), c->w = fm_in(n, 1);
  c->bias = n->nin > 2 ? n->in[2] : NULL;
  assert(n->nout >= 1 && n->out[0]);
  c->y = n->out[0];
  check_float(n, c->x, 0);
  check_float(n, c->w, c->x->dtype);
  if (c->bias) check_float(n, c->bias, c->x->dtype);
  if (c->x->rank < 3)
    fm_fail("node '%s' (%s): input '%s' has rank %d; expected N x C x spatial dims (rank >= 3)",
            n->name, n->op_type, c->x->name, c->x->rank);
  if (c->w->rank != c->x->rank)
    fm_fail("node '%s' (%s): weight '%s' has rank %d, expected %d like the input", n->name,
            n->op_type, c->w->name, c->w->rank, c->x->rank);
  for (int d = 0; d < c->w->rank; d++)
    if (c->w->dims[d] < 0)
      fm_fail("node '%s' (%s): weight '%s' must have a known shape", n->name, n->op_type, c->w->name);
  int nsp = c->x->rank - 2;
  for (int j = 0; j < nsp; j++) kernel[j] = c->w->dims[2 + j];
  int64_t ks[2 * FM_MAXRANK];
  int nk = fm_attr_ints(n, "kernel_shape", ks, 2 * FM_MAXRANK);
  if (nk >= 0) {
    if (nk != nsp)
      fm_fail("node '%s' (%s): kernel_shape has %d values, expected %d", n->name, n->op_type, nk, nsp);
    for (int j = 0; j < nsp; j++)
      if (ks[j] != kernel[j])
        fm_fail("node '%s' (%s): kernel_shape[%d] = %lld but weight '%s' has %lld", n->name,
                n->op_type, j, (long long)ks[j], c->w->name, (long long)kernel[j]);
  }
  c->G = fm_attr_i(n, "group", 1);
  if (c->G < 1) fm_fail("node '%s' (%s): group must be >= 1", n->name, n->op_type);
  c->C = c->x->dims[1];
  if (c->C < 0)
    fm_fail("node '%s' (%s): the channel dim of '%s' must be a known size", n->name, n->op_type,
            c->x->name);
}

static void check_bias(Node *n, const FmConv *c) {
  if (c->bias && (c->bias->rank != 1 || c->bias->dims[0] != c->M))
    fm_fail("node '%s' (%s): bias '%s' must have shape [%lld]", n->name, n->op_type, c->bias->name,
            (long long)c->M);
}

void fm_conv_setup(Node *n, FmConv *c) {
  int64_t kernel[FM_MAXRANK];
  setup_common(n, c, kernel);
  c->M = c->w->dims[0];
  if (c->C != c->w->dims[1] * c->G)
    fm_fail("node '%s' (%s): input '%s' has %lld channels but weight '%s' expects %lld x group %lld",
            n->name, n->op_type, c->x->name, (long long)c->C, c->w->name, (long long)c->w->dims[1],
            (long long)c->G);
  if (c->M % c->G)
    fm_fail("node '%s' (%s): %lld output channels are not divisible by group %lld", n->name,
            n->op_type, (long long)c->M, (long long)c->G);
  c->Cg = c->C / c->G, c->Mg = c->M / c->G;
  check_bias(n, c);
  fm_win_forward(n, c->x, kernel, c->x->rank - 2, 0, &c->win);
}

static void transpose_setup(Node *n, FmConv *c) {
  int64_t kernel[FM_MAXRANK];
  setup_common(n, c, kernel);
  if (c->w->dims[0] != c->C)
    fm_fail("node '%s' (%s): input '%s' has %lld channels but weight '%s' has %lld", n->name,
            n->op_type, c->x->name, (long long)c->C, c->w->name, (long long)c->w->dims[0]);
  if (c->C % c->G)
    fm_fail("node '%s' (%s): %lld input channels are not divisible by group %lld", n->name,
            n->op_type, (long long)c->C, (long long)c->G);
  c->Mg = c->w->dims[1], c->M = c->Mg * c->G, c->Cg = c->C / c->G;
  check_bias(n, c);
  fm_win_transpose(n, c->x, kernel, c->x->rank - 2, &c->win);
}

static void set_out(FmConv *c) {
  int64_t dims[FM_MAXRANK];
  dims[0] = c->x->dims[0], dims[1] = c->M;
  for (int j = 0; j < c->win.nsp; j++) dims[2 + j] = c->win.out[j];
  fm_set_shape(c->y, c->x->dtype, c->win.nsp + 2, dims);
}

void fm_infer_Conv(Graph *g, Node *n) {
  FmConv c;
  fm_conv_setup(n, &c);
  set_out(&c);
}

void fm_infer_ConvTranspose(Graph *g, Node *n) {
  FmConv c;
  transpose_setup(n, &c);
  set_out(&c);
}

static const char *const ovar[] = {"o0", "o1", "o2", "o3", "o4", "o5"};
static const char *const kvar[] = {"k0", "k1", "k2", "k3", "k4", "k5"};
static const char *const pvar[] = {"p0", "p1", "p2", "p3", "p4", "p5"};

/* Direct convolution, one output row (the last spatial dim) at a time: the row is
   initialised with the bias, then every (channel, kernel tap) adds a shifted input
   row times one weight. Each tap's row range is clipped to the input so the inner
   loop has no bounds tests and vectorises; the outer spatial dims test bounds once
   per row. */
static void lower_direct(KB *b, Node *n, const FmConv *c) {
  const FmWin *w = &c->win;
  int L = w->nsp - 1;
  FmDType t = c->y->dtype;
  KBuf *X = kb_in(b, 0), *W = kb_in(b, 1), *B = c->bias ? kb_in(b, 2) : NULL, *Y = kb_out(b, 0);
  int64_t xsp = fm_win_prod(w->in, w->nsp), ysp = fm_win_prod(w->out, w->nsp);
  int64_t wk = fm_win_prod(w->k, w->nsp);
  kb_comment(b, "Conv direct: %lld->%lld channels, group %lld, %d-D", (long long)c->C,
             (long long)c->M, (long long)c->G, w->nsp);
  KVar *nm = kb_for(b, "nm", k_i(0), k_mul(kb_dim(b, c->y->dims[0]), k_i(c->M)), KL_PARALLEL);
  KVar *m = kb_let(b, "m", FM_I64, k_mod(k_var(nm), k_i(c->M)));
  KVar *xg = kb_let(b, "xg", FM_I64,
                    k_add(k_mul(k_div(k_var(nm), k_i(c->M)), k_i(c->C)),
                          k_mul(k_div(k_var(m), k_i(c->Mg)), k_i(c->Cg))));
  KExpr *o[FM_MAXRANK];
  for (int j = 0; j < L; j++) o[j] = k_var(kb_for(b, ovar[j], k_i(0), k_i(w->out[j]), KL_SERIAL));
  KVar *yrow = kb_let(b, "yrow", FM_I64,
                      k_add(k_mul(k_var(nm), k_i(ysp)), k_mul(fm_win_flat(o, w->out, L), k_i(w->out[L]))));
  KVar *ow = kb_for(b, "ow", k_i(0), k_i(w->out[L]), KL_VECTOR);
  kb_store(b, Y, k_add(k_var(yrow), k_var(ow)), B ? k_load(B, k_var(m)) : k_const(t, 0));
  kb_end(b);
  KVar *ci = kb_for(b, "c", k_i(0), k_i(c->Cg), KL_SERIAL);
  KVar *xc = kb_let(b, "xc", FM_I64, k_mul(k_add(k_var(xg), k_var(ci)), k_i(xsp)));
  KVar *wc = kb_let(b, "wc", FM_I64, k_mul(k_add(k_mul(k_var(m), k_i(c->Cg)), k_var(ci)), k_i(wk)));
  KExpr *pos[FM_MAXRANK], *kk[FM_MAXRANK];
  for (int j = 0; j < L; j++) {
    kk[j] = k_var(kb_for(b, kvar[j], k_i(0), k_i(w->k[j]), KL_SERIAL));
    pos[j] = k_add(k_sub(k_mul(o[j], k_i(w->s[j])), k_i(w->pb[j])), k_mul(kk[j], k_i(w->d[j])));
    KVar *p = kb_let(b, pvar[j], FM_I64, pos[j]);
    pos[j] = k_var(p);
    kb_if(b, k_and(k_ge(pos[j], k_i(0)), k_lt(pos[j], k_i(w->in[j]))));
  }
  KVar *xrow = kb_let(b, "xrow", FM_I64, k_add(k_var(xc), k_mul(fm_win_flat(pos, w->in, L), k_i(w->in[L]))));
  KVar *wrow = kb_let(b, "wrow", FM_I64, k_add(k_var(wc), k_mul(fm_win_flat(kk, w->k, L), k_i(w->k[L]))));
  int64_t s = w->s[L], d = w->d[L], pb = w->pb[L];
  KVar *kw = kb_for(b, "kw", k_i(0), k_i(w->k[L]), KL_SERIAL);
  /* outputs ow with 0 <= ow*s - pb + kw*d < in: numerators kept >= 0 so that C
     division truncates the way we need */
  KExpr *off = k_sub(k_i(pb), k_mul(k_var(kw), k_i(d)));   /* pb - kw*d */
  KExpr *lo = k_div(k_max(k_i(0), k_add(off, k_i(s - 1))), k_i(s));
  KExpr *hi = k_min(k_i(w->out[L]), k_div(k_max(k_i(0), k_add(off, k_i(w->in[L] - 1 + s))), k_i(s)));
  KVar *wv = kb_let(b, "wv", t, k_load(W, k_add(k_var(wrow), k_var(kw))));
  KVar *ow2 = kb_for(b, "ox", lo, hi, KL_VECTOR);
  KExpr *xi = k_sub(k_add(k_var(xrow), k_mul(k_var(ow2), k_i(s))), off);
  kb_store_acc(b, Y, k_add(k_var(yrow), k_var(ow2)), KB_ADD, k_mul(k_load(X, xi), k_var(wv)));
  kb_end(b); /* ow */
  kb_end(b); /* kw */
  for (int j = 0; j < L; j++) kb_end(b), kb_end(b); /* if, k_j */
  kb_end(b); /* c */
  if (n->fused_act) {
    KVar *ow3 = kb_for(b, "oa", k_i(0), k_i(w->out[L]), KL_VECTOR);
    KExpr *yi = k_add(k_var(yrow), k_var(ow3));
    fm_dense_store(b, n, Y, yi, k_load(Y, yi));
    kb_end(b);
  }
  for (int j = 0; j < L; j++) kb_end(b);
  kb_end(b); /* nm */
}

void fm_lower_Conv(KB *b, Node *n) {
  FmConv c;
  fm_conv_setup(n, &c);
  if (!fm_conv_direct(b) && fm_conv_lower_gemm(b, n, &c)) return;
  lower_direct(b, n, &c);
}

/* ConvTranspose as a gather: output o receives input i through tap k when
   o = i*s - pb + k*d, i.e. i = (o + pb - k*d) / s when that divides exactly.
   W is [C, M/G, k...]. */
void fm_lower_ConvTranspose(KB *b, Node *n) {
  FmConv c;
  transpose_setup(n, &c);
  const FmWin *w = &c.win;
  int nsp = w->nsp;
  FmDType t = c.y->dtype;
  KBuf *X = kb_in(b, 0), *W = kb_in(b, 1), *B = c.bias ? kb_in(b, 2) : NULL, *Y = kb_out(b, 0);
  int64_t xsp = fm_win_prod(w->in, nsp), ysp = fm_win_prod(w->out, nsp), wk = fm_win_prod(w->k, nsp);
  kb_comment(b, "ConvTranspose direct: %lld->%lld channels, group %lld, %d-D", (long long)c.C,
             (long long)c.M, (long long)c.G, nsp);
  KVar *nm = kb_for(b, "nm", k_i(0), k_mul(kb_dim(b, c.y->dims[0]), k_i(c.M)), KL_PARALLEL);
  KVar *m = kb_let(b, "m", FM_I64, k_mod(k_var(nm), k_i(c.M)));
  KVar *cg = kb_let(b, "cg", FM_I64, k_mul(k_div(k_var(m), k_i(c.Mg)), k_i(c.Cg))); /* first channel of the group */
  KVar *xn = kb_let(b, "xn", FM_I64, k_mul(k_div(k_var(nm), k_i(c.M)), k_i(c.C)));
  KExpr *o[FM_MAXRANK];
  for (int j = 0; j < nsp; j++) o[j] = k_var(kb_for(b, ovar[j], k_i(0), k_i(w->out[j]), KL_SERIAL));
  KVar *acc = kb_let(b, "acc", t, B ? k_load(B, k_var(m)) : k_const(t, 0));
  KVar *ci = kb_for(b, "c", k_i(0), k_i(c.Cg), KL_SERIAL);
  KVar *xc = kb_let(b, "xc", FM_I64, k_mul(k_add(k_add(k_var(xn), k_var(cg)), k_var(ci)), k_i(xsp)));
  KVar *wc = kb_let(b, "wc", FM_I64,
                    k_mul(k_add(k_mul(k_add(k_var(cg), k_var(ci)), k_i(c.Mg)), k_mod(k_var(m), k_i(c.Mg))),
                          k_i(wk)));
  KExpr *ii[FM_MAXRANK], *kk[FM_MAXRANK];
  for (int j = 0; j < nsp; j++) {
    kk[j] = k_var(kb_for(b, kvar[j], k_i(0), k_i(w->k[j]), KL_SERIAL));
    KVar *tv = kb_let(b, pvar[j], FM_I64, k_sub(k_add(o[j], k_i(w->pb[j])), k_mul(kk[j], k_i(w->d[j]))));
    KExpr *tp = k_var(tv);
    ii[j] = w->s[j] == 1 ? tp : k_div(tp, k_i(w->s[j]));
    KExpr *ok = k_and(k_ge(tp, k_i(0)), k_lt(ii[j], k_i(w->in[j])));
    if (w->s[j] > 1) ok = k_and(ok, k_bin(KB_EQ, k_mod(tp, k_i(w->s[j])), k_i(0)));
    kb_if(b, ok);
  }
  kb_acc(b, acc, KB_ADD,
         k_mul(k_load(X, k_add(k_var(xc), fm_win_flat(ii, w->in, nsp))),
               k_load(W, k_add(k_var(wc), fm_win_flat(kk, w->k, nsp)))));
  for (int j = 0; j < nsp; j++) kb_end(b), kb_end(b);
  kb_end(b); /* c */
  fm_dense_store(b, n, Y, k_add(k_mul(k_var(nm), k_i(ysp)), fm_win_flat(o, w->out, nsp)), k_var(acc));
  for (int j = 0; j < nsp; j++) kb_end(b);
  kb_end(b);
}
