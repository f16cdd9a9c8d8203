/* fewmul_sp.c - the StrassenNets sum-product ops of ai.fewmul, lowered natively so that
 * the code spends r multiplications per output patch and additions otherwise.
 *
 *   SPConv(X, WB int8 {-1,0,1} [r, C/g, kh, kw], A [r], WC int8 {-1,0,1} [r, M/g, ph, pw],
 *          ZB [r] (opt), B [M] (opt))      attributes wb_strides, wb_pads, out_patch, wc_pads, group
 *     H = Conv<wb_strides, wb_pads, group>(X, WB)       ternary: additions only
 *     H = A[j] * H + ZB[j]                              the r multiplications per hidden position
 *     Y = ConvTranspose<kernel = stride = out_patch, pads = wc_pads, group>(H, WC) + B
 *   SPGemm(X [N, K], WB [r, K], A [r], WC [M, r], ZB (opt), B (opt))
 *     Y = ((X WB^T) * A + ZB) WC^T + B
 * These are the model-local function bodies the trainer exports (trainer/method_sp.c),
 * which stay the reference: tests/unit/test_fewmul_sp.c compares the two. The other
 * attributes the exporter writes (the replaced conv's kernel_shape, strides, pads) are
 * not read by the body and not here either.
 *
 * Lowering. The first stage is the TernaryConv / TernaryGemm kernel of ops/fewmul.c
 * (fm_tap_conv, or a tap plan per hidden unit) with Alpha = A and bias ZB, writing H to
 * scratch. The second stage exploits that the transposed conv's patches do not overlap
 * (kernel = stride): output (m, oh, ow) with oh = ih*ph + kh - crop_top comes from hidden
 * position (ih, iw) alone, so every (m, kh, kw) is a 1x1 ternary conv over the r/g hidden
 * planes of its group - a tap plan of +1 / -1 whole-plane adds into an accumulator plane -
 * stored with stride ph (pw) into Y, the crop being the [lo, hi) ranges of ih, iw per kh, kw.
 * SPGemm's second stage is a gather-add over H's row. Neither stage multiplies.
 */
#include "ops/fewmul_internal.h"
#include <stdlib.h>
#include <string.h>

#define SP_SLOTS 8 /* accumulator planes of the second stage (chunks of rows) */

/* ---- checking ---- */

/* A float32 vector of cnt values (any shape of that many elements, as the body reshapes). */
static void need_vec(Node *n, const Tensor *t, int64_t cnt, const char *what) {
  fm_need_dtype(n, t, FM_F32, what);
  if (fm_numel(t) != cnt)
    fm_fail("node '%s' (%s): %s '%s' must hold %lld values, one per %s", n->name, n->op_type, what, t->name,
            (long long)cnt, !strcmp(what, "B") ? "output channel" : "hidden unit");
}

static void need_known(Node *n, const Tensor *t, int from, const char *what) {
  for (int d = from; d < t->rank; d++)
    if (t->dims[d] < 0)
      fm_fail("node '%s' (%s): %s '%s' must have a known shape (dim %d)", n->name, n->op_type, what, t->name, d);
}

static void need_rank(Node *n, const Tensor *t, int rank, const char *what, const char *shape) {
  if (t->rank != rank)
    fm_fail("node '%s' (%s): %s '%s' must be %s (rank %d), got rank %d", n->name, n->op_type, what, t->name,
            shape, rank, t->rank);
}

/* A ternary weight of SPConv/SPGemm: int8, the given rank, a known shape. */
static void need_weight(Node *n, const Tensor *t, int rank, const char *what, const char *shape) {
  fm_need_dtype(n, t, FM_I8, what);
  need_rank(n, t, rank, what, shape);
  need_known(n, t, 0, what);
}

/* Input i (optional): NULL when absent. */
static Tensor *opt_in(Node *n, int i) { return i < n->nin ? n->in[i] : NULL; }

static void check_arity(Node *n) {
  if (n->nin < 4 || n->nin > 6 || n->nout != 1)
    fm_fail("node '%s' (%s): expects inputs X, WB, A, WC, ZB (opt), B (opt) and one output, got %d inputs and "
            "%d outputs", n->name, n->op_type, n->nin, n->nout);
}

/* An ints attribute of exactly cnt values (def when absent), each >= lo. */
static void ints_attr(Node *n, const char *name, int cnt, const int64_t *def, int64_t lo, int64_t *out) {
  Attr *a = fm_attr(n, name);
  if (!a) {
    memcpy(out, def, sizeof(int64_t) * (size_t)cnt);
    return;
  }
  if (a->type != FA_INTS || a->n != cnt)
    fm_fail("node '%s' (%s): attribute %s must be %d integers", n->name, n->op_type, name, cnt);
  for (int i = 0; i < cnt; i++) {
    if (a->ints[i] < lo)
      fm_fail("node '%s' (%s): attribute %s[%d] = %lld is not supported (must be >= %lld)", n->name, n->op_type,
              name, i, (long long)a->ints[i], (long long)lo);
    out[i] = a->ints[i];
  }
}

static const int8_t *const_i8(Node *n, const Tensor *t, const char *what) {
  if (!t->data)
    fm_fail("node '%s' (%s): %s '%s' must be a constant (initialiser)", n->name, n->op_type, what, t->name);
  return t->data;
}

/* ---- SPConv ---- */

typedef struct SpConv {
  Tensor *x, *wb, *a, *wc, *zb, *bias, *y;
  int64_t C, H, W, r, G, Cg, rg, M, Mg;
  int64_t kh, kw, sh, sw, pad[4]; /* WB's conv: kernel, wb_strides, wb_pads [t, l, b, r] */
  int64_t HB, WB;                 /* hidden planes */
  int64_t ph, pw, crop[4];        /* out_patch, wc_pads [t, l, b, r] */
  int64_t OH, OW;
} SpConv;

static void spconv_setup(Node *n, SpConv *s) {
  memset(s, 0, sizeof *s);
  check_arity(n);
  s->x = fm_in(n, 0), s->wb = fm_in(n, 1), s->a = fm_in(n, 2), s->wc = fm_in(n, 3);
  s->zb = opt_in(n, 4), s->bias = opt_in(n, 5), s->y = n->out[0];
  fm_need_dtype(n, s->x, FM_F32, "input");
  need_rank(n, s->x, 4, "input", "[N, C, H, W]");
  need_known(n, s->x, 1, "input");
  need_weight(n, s->wb, 4, "WB", "[r, C/group, kh, kw]");
  need_weight(n, s->wc, 4, "WC", "[r, M/group, ph, pw]");
  s->C = s->x->dims[1], s->H = s->x->dims[2], s->W = s->x->dims[3];
  s->r = s->wb->dims[0], s->kh = s->wb->dims[2], s->kw = s->wb->dims[3];
  s->G = fm_attr_i(n, "group", 1);
  if (s->G < 1) fm_fail("node '%s' (%s): group %lld is not supported (must be >= 1)", n->name, n->op_type, (long long)s->G);
  if (s->r < 1 || s->kh < 1 || s->kw < 1)
    fm_fail("node '%s' (%s): WB '%s' must have r >= 1 rows and a kernel of at least 1x1", n->name, n->op_type,
            s->wb->name);
  if (s->r % s->G)
    fm_fail("node '%s' (%s): r = %lld hidden channels (WB '%s') are not divisible by group %lld", n->name,
            n->op_type, (long long)s->r, s->wb->name, (long long)s->G);
  if (s->C != s->wb->dims[1] * s->G)
    fm_fail("node '%s' (%s): input '%s' has %lld channels but WB '%s' expects %lld x group %lld", n->name,
            n->op_type, s->x->name, (long long)s->C, s->wb->name, (long long)s->wb->dims[1], (long long)s->G);
  if (s->wc->dims[0] != s->r)
    fm_fail("node '%s' (%s): WC '%s' has %lld hidden channels, WB '%s' has %lld", n->name, n->op_type,
            s->wc->name, (long long)s->wc->dims[0], s->wb->name, (long long)s->r);
  s->Cg = s->C / s->G, s->rg = s->r / s->G;
  s->Mg = s->wc->dims[1], s->M = s->Mg * s->G;
  if (s->Mg < 1) fm_fail("node '%s' (%s): WC '%s' has no output channels", n->name, n->op_type, s->wc->name);
  need_vec(n, s->a, s->r, "A");
  if (s->zb) need_vec(n, s->zb, s->r, "ZB");
  if (s->bias) need_vec(n, s->bias, s->M, "B");
  /* the hidden conv */
  int64_t st[2], one[2] = {1, 1}, zero[4] = {0, 0, 0, 0};
  ints_attr(n, "wb_strides", 2, one, 1, st);
  s->sh = st[0], s->sw = st[1];
  ints_attr(n, "wb_pads", 4, zero, 0, s->pad);
  int64_t eh = s->H + s->pad[0] + s->pad[2], ew = s->W + s->pad[1] + s->pad[3];
  if (eh < s->kh || ew < s->kw)
    fm_fail("node '%s' (%s): the %lldx%lld WB kernel does not fit the padded %lldx%lld input", n->name,
            n->op_type, (long long)s->kh, (long long)s->kw, (long long)eh, (long long)ew);
  s->HB = (eh - s->kh) / s->sh + 1, s->WB = (ew - s->kw) / s->sw + 1;
  /* the transposed conv: non-overlapping patches, cropped */
  int64_t patch[2], kern[2] = {s->wc->dims[2], s->wc->dims[3]};
  ints_attr(n, "out_patch", 2, one, 1, patch);
  if (patch[0] != kern[0] || patch[1] != kern[1])
    fm_fail("node '%s' (%s): out_patch [%lld, %lld] differs from WC '%s''s %lldx%lld kernel; only "
            "non-overlapping patches (kernel = stride = out_patch) are supported", n->name, n->op_type,
            (long long)patch[0], (long long)patch[1], s->wc->name, (long long)kern[0], (long long)kern[1]);
  s->ph = patch[0], s->pw = patch[1];
  ints_attr(n, "wc_pads", 4, zero, 0, s->crop);
  s->OH = s->HB * s->ph - s->crop[0] - s->crop[2], s->OW = s->WB * s->pw - s->crop[1] - s->crop[3];
  if (s->OH < 1 || s->OW < 1)
    fm_fail("node '%s' (%s): wc_pads crop the %lldx%lld output of WC '%s' to nothing", n->name, n->op_type,
            (long long)(s->HB * s->ph), (long long)(s->WB * s->pw), s->wc->name);
  for (int i = 0; i < n->nattrs; i++)
    if (!strcmp(n->attrs[i].name, "dilations") || !strcmp(n->attrs[i].name, "auto_pad"))
      fm_fail("node '%s' (%s): attribute %s is not supported", n->name, n->op_type, n->attrs[i].name);
}

void fm_infer_SPConv(Graph *g, Node *n) {
  (void)g;
  SpConv s;
  spconv_setup(n, &s);
  int64_t dims[4] = {s.x->dims[0], s.M, s.OH, s.OW};
  fm_set_shape(s.y, FM_F32, 4, dims);
}

/* [lo, hi) of the hidden index i whose patch position k lands inside the cropped output:
   0 <= i*p + k - crop < out. */
static void crop_range(int64_t p, int64_t crop, int64_t out, int64_t hidden, int32_t *lo, int32_t *hi) {
  for (int64_t k = 0; k < p; k++) {
    int64_t l = 0, h = hidden;
    while (l < hidden && l * p + k - crop < 0) l++;
    while (h > l && (h - 1) * p + k - crop >= out) h--;
    lo[k] = (int32_t)l, hi[k] = (int32_t)h;
  }
}

void fm_lower_SPConv(KB *b, Node *n) {
  SpConv s;
  spconv_setup(n, &s);
  const int8_t *wb = const_i8(n, s.wb, "WB"), *wc = const_i8(n, s.wc, "WC");
  int64_t Q = s.HB * s.WB, P2 = s.ph * s.pw, rows = s.M * P2;
  if (s.r * Q > INT32_MAX || s.ph > 4096 || s.pw > 4096)
    fm_fail("node '%s' (%s): hidden planes too large", n->name, n->op_type);
  kb_comment(b, "SPConv: %lld->%lld channels, group %lld, r %lld hidden %lldx%lld, patch %lldx%lld, "
             "output %lldx%lld", (long long)s.C, (long long)s.M, (long long)s.G, (long long)s.r,
             (long long)s.HB, (long long)s.WB, (long long)s.ph, (long long)s.pw, (long long)s.OH,
             (long long)s.OW);

  /* stage 1: H = A[j] * TernaryConv(X, WB)[j] + ZB[j] into scratch [N, r, HB, WB] */
  FmConv c = {.x = s.x, .w = s.wb, .C = s.C, .M = s.r, .G = s.G, .Cg = s.Cg, .Mg = s.rg};
  c.win.nsp = 2;
  c.win.in[0] = s.H, c.win.in[1] = s.W, c.win.out[0] = s.HB, c.win.out[1] = s.WB;
  c.win.k[0] = s.kh, c.win.k[1] = s.kw, c.win.s[0] = s.sh, c.win.s[1] = s.sw, c.win.d[0] = c.win.d[1] = 1;
  c.win.pb[0] = s.pad[0], c.win.pb[1] = s.pad[1], c.win.pe[0] = s.pad[2], c.win.pe[1] = s.pad[3];
  KBuf *Hs = kb_scratch(b, "hidden", FM_F32, s.x->dims[0] * s.r * Q);
  FmTapConv tc = {.n = n, .c = &c, .w = wb, .x = kb_in(b, 0), .alpha = kb_in(b, 2),
                  .bias = s.zb ? kb_in(b, 4) : NULL, .y = Hs, .act = 0};
  fm_tap_conv(b, &tc);

  /* stage 2: row (m, kh, kw) = the signed sum of its group's hidden planes, WC[j, m%Mg, kh, kw] */
  int8_t *wt = malloc((size_t)(rows * s.rg));
  int64_t *off = malloc(sizeof(int64_t) * (size_t)s.rg);
  for (int64_t m = 0; m < s.M; m++)
    for (int64_t k = 0; k < P2; k++)
      for (int64_t jl = 0; jl < s.rg; jl++) {
        int64_t j = m / s.Mg * s.rg + jl;
        wt[(m * P2 + k) * s.rg + jl] = wc[(j * s.Mg + m % s.Mg) * P2 + k];
      }
  for (int64_t jl = 0; jl < s.rg; jl++) off[jl] = jl * Q;
  FmTapPlan p;
  fm_tap_plan(n, b->a, &p, wt, NULL, s.wc->name, rows, s.rg, s.rg, 1, off);
  free(wt), free(off);
  FmTapTabs t;
  fm_tap_tabs(b, &p, &t);
  int32_t ilo[4096], ihi[4096], jlo[4096], jhi[4096];
  crop_range(s.ph, s.crop[0], s.OH, s.HB, ilo, ihi);
  crop_range(s.pw, s.crop[1], s.OW, s.WB, jlo, jhi);
  KBuf *IL = kb_const(b, "row_lo", FM_I32, s.ph, ilo), *IH = kb_const(b, "row_hi", FM_I32, s.ph, ihi);
  KBuf *JL = kb_const(b, "col_lo", FM_I32, s.pw, jlo), *JH = kb_const(b, "col_hi", FM_I32, s.pw, jhi);
  KBuf *B = s.bias ? kb_in(b, 5) : NULL, *Y = kb_out(b, 0);
  kb_comment(b, "SPConv patches: %lld of %lld WC taps nonzero, additions only", (long long)p.ntaps,
             (long long)(rows * s.rg));
  KBuf *acc = kb_scratch(b, "acc", FM_F32, SP_SLOTS * Q);
  KVar *items = kb_let(b, "items", FM_I64, k_mul(kb_dim(b, s.x->dims[0]), k_i(rows)));
  KVar *nch = kb_let(b, "chunks", FM_I64, k_min(k_var(items), k_i(SP_SLOTS)));
  KVar *tt = kb_for(b, "t", k_i(0), k_var(nch), KL_PARALLEL);
  KVar *first = kb_let(b, "first", FM_I64, k_div(k_mul(k_var(tt), k_var(items)), k_var(nch)));
  KVar *it = kb_for(b, "it", k_var(first),
                    k_div(k_mul(k_add(k_var(tt), k_i(1)), k_var(items)), k_var(nch)), KL_SERIAL);
  KVar *row = kb_let(b, "row", FM_I64, k_mod(k_var(it), k_i(rows)));
  KVar *img = kb_let(b, "img", FM_I64, k_div(k_var(it), k_i(rows)));
  KVar *m = kb_let(b, "m", FM_I64, k_div(k_var(row), k_i(P2)));
  KVar *kh = kb_let(b, "kh", FM_I64, k_div(k_mod(k_var(row), k_i(P2)), k_i(s.pw)));
  KVar *kw = kb_let(b, "kw", FM_I64, k_mod(k_var(row), k_i(s.pw)));
  FmTapAcc A = {.add = fm_tap_conv_add, .x = Hs, .acc = acc, .q = Q};
  A.base = kb_let(b, "base", FM_I64,
                  k_mul(k_add(k_mul(k_var(img), k_i(s.r)), k_mul(k_div(k_var(m), k_i(s.Mg)), k_i(s.rg))), k_i(Q)));
  A.ab = kb_let(b, "ab", FM_I64, k_mul(k_var(tt), k_i(Q)));
  KVar *q = kb_for(b, "q", k_i(0), k_i(Q), KL_VECTOR);
  kb_store(b, acc, k_add(k_var(A.ab), k_var(q)), k_f32(0));
  kb_end(b);
  fm_tap_row(b, &p, &t, k_var(row), &A);
  /* Y[img, m, ih*ph + kh - top, iw*pw + kw - left] = acc[ih, iw] + B[m] over the uncropped range */
  KVar *bias = B ? kb_let(b, "bias", FM_F32, k_load(B, k_var(m))) : NULL;
  KVar *yb = kb_let(b, "ybase", FM_I64,
                    k_add(k_mul(k_add(k_mul(k_var(img), k_i(s.M)), k_var(m)), k_i(s.OH * s.OW)),
                          k_add(k_mul(k_sub(k_var(kh), k_i(s.crop[0])), k_i(s.OW)), k_sub(k_var(kw), k_i(s.crop[1])))));
  KVar *ih = kb_for(b, "ih", k_cast(FM_I64, k_load(IL, k_var(kh))), k_cast(FM_I64, k_load(IH, k_var(kh))), KL_SERIAL);
  KVar *iw = kb_for(b, "iw", k_cast(FM_I64, k_load(JL, k_var(kw))), k_cast(FM_I64, k_load(JH, k_var(kw))), KL_VECTOR);
  KExpr *v = k_load(acc, k_add(k_var(A.ab), k_add(k_mul(k_var(ih), k_i(s.WB)), k_var(iw))));
  if (bias) v = k_add(v, k_var(bias));
  KExpr *yi = k_add(k_var(yb), k_add(k_mul(k_var(ih), k_i(s.ph * s.OW)), k_mul(k_var(iw), k_i(s.pw))));
  fm_dense_store(b, n, Y, yi, v);
  kb_end(b); /* iw */
  kb_end(b); /* ih */
  kb_end(b); /* it */
  kb_end(b); /* t */
}

/* ---- SPGemm ---- */

typedef struct SpGemm { Tensor *x, *wb, *a, *wc, *zb, *bias; int64_t N, K, r, M; } SpGemm;

static void spgemm_setup(Node *n, SpGemm *s) {
  memset(s, 0, sizeof *s);
  check_arity(n);
  s->x = fm_in(n, 0), s->wb = fm_in(n, 1), s->a = fm_in(n, 2), s->wc = fm_in(n, 3);
  s->zb = opt_in(n, 4), s->bias = opt_in(n, 5);
  fm_need_dtype(n, s->x, FM_F32, "input");
  need_rank(n, s->x, 2, "input", "[N, K]");
  need_known(n, s->x, 1, "input");
  need_weight(n, s->wb, 2, "WB", "[r, K]");
  need_weight(n, s->wc, 2, "WC", "[M, r]");
  s->N = s->x->dims[0], s->K = s->x->dims[1], s->r = s->wb->dims[0], s->M = s->wc->dims[0];
  if (s->wb->dims[1] != s->K)
    fm_fail("node '%s' (%s): input '%s' has %lld columns but WB '%s' has %lld", n->name, n->op_type,
            s->x->name, (long long)s->K, s->wb->name, (long long)s->wb->dims[1]);
  if (s->wc->dims[1] != s->r)
    fm_fail("node '%s' (%s): WC '%s' has %lld hidden columns, WB '%s' has %lld rows", n->name, n->op_type,
            s->wc->name, (long long)s->wc->dims[1], s->wb->name, (long long)s->r);
  if (s->r < 1 || s->M < 1)
    fm_fail("node '%s' (%s): WB '%s' and WC '%s' must not be empty", n->name, n->op_type, s->wb->name, s->wc->name);
  need_vec(n, s->a, s->r, "A");
  if (s->zb) need_vec(n, s->zb, s->r, "ZB");
  if (s->bias) need_vec(n, s->bias, s->M, "B");
}

void fm_infer_SPGemm(Graph *g, Node *n) {
  (void)g;
  SpGemm s;
  spgemm_setup(n, &s);
  int64_t dims[2] = {s.N, s.M};
  fm_set_shape(n->out[0], FM_F32, 2, dims);
}

/* A ternary matrix [rows, R] (row-major) as a tap plan over offsets 0..R-1. */
static void gemm_plan(KB *b, Node *n, const Tensor *w, FmTapPlan *p, FmTapTabs *t) {
  int64_t rows = w->dims[0], R = w->dims[1];
  if (R > INT32_MAX) fm_fail("node '%s' (%s): '%s' too large", n->name, n->op_type, w->name);
  int64_t *off = malloc(sizeof(int64_t) * (size_t)(R ? R : 1));
  for (int64_t k = 0; k < R; k++) off[k] = k;
  fm_tap_plan(n, b->a, p, const_i8(n, w, w == fm_in(n, 1) ? "WB" : "WC"), NULL, w->name, rows, R, R, 1, off);
  free(off);
  fm_tap_tabs(b, p, t);
}

void fm_lower_SPGemm(KB *b, Node *n) {
  SpGemm s;
  spgemm_setup(n, &s);
  FmTapPlan pb, pc;
  FmTapTabs tb, tcb;
  gemm_plan(b, n, s.wb, &pb, &tb);
  gemm_plan(b, n, s.wc, &pc, &tcb);
  KBuf *X = kb_in(b, 0), *Al = kb_in(b, 2), *ZB = s.zb ? kb_in(b, 4) : NULL;
  KBuf *B = s.bias ? kb_in(b, 5) : NULL, *Y = kb_out(b, 0);
  KExpr *N = kb_dim(b, s.N);
  kb_comment(b, "SPGemm: %lld -> r %lld -> %lld, %lld of %lld WB and %lld of %lld WC weights nonzero",
             (long long)s.K, (long long)s.r, (long long)s.M, (long long)pb.ntaps, (long long)(s.r * s.K),
             (long long)pc.ntaps, (long long)(s.M * s.r));
  /* stage 1: H[i, j] = A[j] * (sum of X[i, k] over WB[j, k] = +1, minus over -1) + ZB[j] */
  KBuf *Hs = kb_scratch(b, "hidden", FM_F32, s.N * s.r);
  KVar *nj = kb_for(b, "nj", k_i(0), k_mul(N, k_i(s.r)), KL_PARALLEL);
  KVar *j = kb_let(b, "j", FM_I64, k_mod(k_var(nj), k_i(s.r)));
  FmTapAcc A = {.add = fm_tap_gemm_add, .x = X};
  A.base = kb_let(b, "base", FM_I64, k_mul(k_div(k_var(nj), k_i(s.r)), k_i(s.K)));
  A.var = kb_let(b, "acc", FM_F32, k_f32(0));
  fm_tap_row(b, &pb, &tb, k_var(j), &A);
  KExpr *h = k_mul(k_load(Al, k_var(j)), k_var(A.var));
  if (ZB) h = k_add(h, k_load(ZB, k_var(j)));
  kb_store(b, Hs, k_var(nj), h);
  kb_end(b);
  /* stage 2: Y[i, m] = (sum of H[i, j] over WC[m, j] = +1, minus over -1) + B[m] */
  KVar *nm = kb_for(b, "nm", k_i(0), k_mul(N, k_i(s.M)), KL_PARALLEL);
  KVar *m = kb_let(b, "m", FM_I64, k_mod(k_var(nm), k_i(s.M)));
  FmTapAcc C = {.add = fm_tap_gemm_add, .x = Hs};
  C.base = kb_let(b, "base", FM_I64, k_mul(k_div(k_var(nm), k_i(s.M)), k_i(s.r)));
  C.var = kb_let(b, "acc", FM_F32, k_f32(0));
  fm_tap_row(b, &pc, &tcb, k_var(m), &C);
  KExpr *v = k_var(C.var);
  if (B) v = k_add(v, k_load(B, k_var(m)));
  fm_dense_store(b, n, Y, k_var(nm), v);
  kb_end(b);
}
