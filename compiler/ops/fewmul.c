/* fewmul.c - the ai.fewmul weight ops, lowered so that they spend few multiplications.
 *
 *   TernaryConv(X, W int8 {-1,0,1}, Alpha [M], B?)        Conv, W_float = Alpha[m] * W
 *   Pow2Conv(X, Sign int8 {-1,0,1}, Shift int8, B?, Scale?) Conv, W_float = Scale[m] * Sign * 2^Shift
 *   TernaryGemm, Pow2Gemm: the same over Gemm: X [N, K], W [M, K] (transB = 1, as the
 *   trainer writes it) or [K, M] (transB = 0); transA must be 0. X may also have more
 *   dims, [..., K] -> Y [..., M], its leading dims read as rows (how passes/weights.c
 *   rewrites MatMul(X, constant 2-D W)).
 * Alpha all 1 (a {-1, 0, 1} weight, e.g. the Strassen model's matrices): no multiply at
 * all; the kernels skip Alpha (alpha_unit).
 * Scale is compiler-internal: passes/weights.c adds it when a BatchNormalization has
 * been folded into a power-of-two layer; exported models never carry it.
 *
 * The integer weights are compile-time constants, so every output channel m becomes
 * tables (plan_build): its nonzero taps grouped by shift (one group for ternary), each
 * group a run of +1 taps then a run of -1 taps, every tap an offset into the input.
 * Row m is then
 *     acc = 0; for each group g (shifts ascending):
 *       acc = ldexp(acc, shift[g-1] - shift[g])          (pow2, not for the first group)
 *       acc += x[tap] for the +1 taps;  acc -= x[tap] for the -1 taps   (8 taps per pass)
 *     y = Alpha[m] * acc + B[m]          ternary: one multiplication per output
 *                                        (none when every Alpha is 1)
 *     y = ldexp(acc, shift[last]) + B[m] pow2: none (Scale: one per output)
 * Conv: acc is a whole output plane, so each tap is a pass over contiguous memory that
 * vectorises. The input is first packed per image and channel into zero-padded phase
 * planes (one per stride phase, Wph columns wide), which makes tap (c, kh, kw) a constant
 * shift: output q = oh*Wph + ow reads plane[q + off(c, kh, kw)]. The Wph - OW extra columns
 * per row are computed and dropped. 1xK-free convs without padding or stride read X as is.
 * Gemm: acc is a scalar per (row, output), a gather-add over X's row (Pow2Gemm, and
 * TernaryGemm with a Gemm alpha != 1 or beta other than 0/1). TernaryGemm otherwise runs
 * the CPU library's fm_ternary_gemm over bitmasks of W (lower_gemm_masks): vector masked adds,
 * the same one multiplication per output (none with Alpha all 1).
 */
#include "ops/fewmul_internal.h"
#include <stdlib.h>
#include <string.h>

#define SLOTS 8   /* Conv: chunks of (image, channel) items = accumulator planes */
#define CHUNK 8   /* taps added per pass (a power of two) */

/* ---- checking and shapes ---- */

static int is_pow2(const Node *n) { return n->op == OP_Pow2Conv || n->op == OP_Pow2Gemm; }

void fm_need_dtype(Node *n, const Tensor *t, FmDType want, const char *what) {
  if (t->dtype != want)
    fm_fail("node '%s' (%s): %s '%s' has dtype %s, expected %s", n->name, n->op_type, what, t->name,
            fm_dtype_name(t->dtype), fm_dtype_name(want));
}

static void need_vec(Node *n, const Tensor *t, int64_t M, const char *what) {
  fm_need_dtype(n, t, FM_F32, what);
  if (fm_numel(t) != M || (t->rank != 1 && !(t->rank == 2 && t->dims[0] == 1)))
    fm_fail("node '%s' (%s): %s '%s' must have shape [%lld]", n->name, n->op_type, what, t->name,
            (long long)M);
}

/* X float32; W (or Sign and Shift) int8 of one shape; returns W. */
static Tensor *check_common(Node *n) {
  Tensor *x = fm_in(n, 0), *w = fm_in(n, 1), *w2 = fm_in(n, 2);
  fm_need_dtype(n, x, FM_F32, "input");
  fm_need_dtype(n, w, FM_I8, is_pow2(n) ? "Sign" : "W");
  if (is_pow2(n)) {
    fm_need_dtype(n, w2, FM_I8, "Shift");
    if (w2->rank != w->rank || memcmp(w2->dims, w->dims, sizeof(int64_t) * (size_t)w->rank))
      fm_fail("node '%s' (%s): Shift '%s' must have the shape of Sign '%s'", n->name, n->op_type,
              w2->name, w->name);
  }
  for (int d = 0; d < w->rank; d++)
    if (w->dims[d] < 0)
      fm_fail("node '%s' (%s): weight '%s' must have a known shape", n->name, n->op_type, w->name);
  return w;
}

static Tensor *bias_of(Node *n) { return n->nin > 3 ? n->in[3] : NULL; }
static Tensor *scale_of(Node *n) { return is_pow2(n) && n->nin > 4 ? n->in[4] : NULL; }

/* The Conv geometry, through fm_conv_setup on a float stand-in for the int8 weight. */
static void conv_setup(Node *n, FmConv *c) {
  Tensor *w = check_common(n), wf = *w;
  wf.dtype = FM_F32;
  Tensor *ins[3] = {n->in[0], &wf, bias_of(n)};
  Node fake = *n;
  fake.in = ins, fake.nin = 3;
  fm_conv_setup(&fake, c);
  c->w = w;
  if (!is_pow2(n)) need_vec(n, fm_in(n, 2), c->M, "Alpha");
  if (scale_of(n)) need_vec(n, scale_of(n), c->M, "Scale");
}

static void conv_infer(Node *n) {
  FmConv c;
  conv_setup(n, &c);
  int64_t dims[FM_MAXRANK];
  dims[0] = c.x->dims[0], dims[1] = c.M;
  for (int j = 0; j < c.win.nsp; j++) dims[2 + j] = c.win.out[j];
  fm_set_shape(c.y, FM_F32, c.win.nsp + 2, dims);
}

/* Every Alpha is 1: the ternary kernels skip the multiply. Not a pow2 node. */
static int alpha_unit(Node *n) {
  const Tensor *a = fm_in(n, 2);
  if (is_pow2(n) || !a->data || a->dtype != FM_F32 || fm_numel(a) < 0) return 0;
  for (int64_t i = 0; i < fm_numel(a); i++)
    if (((const float *)a->data)[i] != 1.0f) return 0;
  return 1;
}

typedef struct GemmGeo { int64_t N, K, M; int tb; float alpha, beta; } GemmGeo;

/* N: the rows of X [..., K], its leading dims multiplied in the dims encoding
   (< 0: that many times the batch); at most one of them may be symbolic. */
static int64_t gemm_rows(const Tensor *x) {
  int64_t r = 1;
  int sym = 0;
  for (int d = 0; d + 1 < x->rank; d++) {
    int64_t v = x->dims[d];
    if (v == FM_DIM_UNKNOWN || (v < 0 && sym++)) return FM_DIM_UNKNOWN;
    r *= v; /* the sign marks the one symbolic factor */
  }
  return r;
}

static void gemm_setup(Node *n, GemmGeo *q) {
  Tensor *x = fm_in(n, 0), *w = check_common(n);
  if (x->rank < 2 || w->rank != 2)
    fm_fail("node '%s' (%s): X '%s' must have rank >= 2 and W '%s' rank 2, got ranks %d and %d", n->name,
            n->op_type, x->name, w->name, x->rank, w->rank);
  if (fm_attr_i(n, "transA", 0))
    fm_fail("node '%s' (%s): transA = 1 is not supported", n->name, n->op_type);
  q->tb = fm_attr_i(n, "transB", 0) != 0;
  q->alpha = fm_attr_f(n, "alpha", 1), q->beta = fm_attr_f(n, "beta", 1);
  q->N = gemm_rows(x), q->K = x->dims[x->rank - 1];
  if (q->N == FM_DIM_UNKNOWN)
    fm_fail("node '%s' (%s): X '%s' needs known leading dims, at most one of them the batch", n->name,
            n->op_type, x->name);
  q->M = w->dims[!q->tb];
  if (q->K != w->dims[q->tb])
    fm_fail("node '%s' (%s): X '%s' has %lld columns but W '%s' has %lld inputs per output", n->name,
            n->op_type, x->name, (long long)q->K, w->name, (long long)w->dims[q->tb]);
  if (!is_pow2(n)) need_vec(n, fm_in(n, 2), q->M, "Alpha");
  if (bias_of(n)) need_vec(n, bias_of(n), q->M, "B");
  if (scale_of(n)) need_vec(n, scale_of(n), q->M, "Scale");
}

static void gemm_infer(Node *n) {
  GemmGeo q;
  gemm_setup(n, &q);
  const Tensor *x = fm_in(n, 0);
  int64_t dims[FM_MAXRANK];
  memcpy(dims, x->dims, sizeof(int64_t) * (size_t)x->rank);
  dims[x->rank - 1] = q.M;
  fm_set_shape(n->out[0], FM_F32, x->rank, dims);
}

void fm_infer_TernaryConv(Graph *g, Node *n) { (void)g, conv_infer(n); }
void fm_infer_Pow2Conv(Graph *g, Node *n) { (void)g, conv_infer(n); }
void fm_infer_TernaryGemm(Graph *g, Node *n) { (void)g, gemm_infer(n); }
void fm_infer_Pow2Gemm(Graph *g, Node *n) { (void)g, gemm_infer(n); }

/* ---- the plan: per output row, groups of +1 / -1 taps (types in fewmul_internal.h) ---- */

typedef FmTapPlan Plan;
typedef FmTapTabs Tabs;
typedef FmTapAcc Acc;

typedef struct Tap { int shift, sign; int32_t off; } Tap;

static int tap_cmp(const void *a, const void *b) {
  const Tap *x = a, *y = b;
  if (x->shift != y->shift) return x->shift < y->shift ? -1 : 1;
  if (x->sign != y->sign) return x->sign > y->sign ? -1 : 1; /* +1 taps first */
  return x->off < y->off ? -1 : x->off > y->off;
}

/* Weight element (row m, tap r): w[m*rs + r*cs] (and its shift); off[r] its input offset. */
void fm_tap_plan(Node *n, Arena *a, Plan *p, const int8_t *w, const int8_t *sh, const char *wname,
                 int64_t M, int64_t R, int64_t rs, int64_t cs, const int64_t *off) {
  memset(p, 0, sizeof *p);
  p->pow2 = sh != NULL, p->M = M;
  int64_t nnz = 0;
  for (int64_t i = 0; i < M * R; i++) {
    int8_t v = w[(i / R) * rs + (i % R) * cs];
    if (v < -1 || v > 1)
      fm_fail("node '%s' (%s): weight '%s' holds %d; only -1, 0 and 1 are allowed", n->name,
              n->op_type, wname, v);
    nnz += v != 0;
  }
  Tap *row = malloc(sizeof(Tap) * (size_t)(R ? R : 1));
  p->gs = fm_alloc(a, sizeof(int32_t) * (size_t)(M + 1));
  p->fin = fm_alloc(a, sizeof(int32_t) * (size_t)M);
  p->tap = fm_alloc(a, sizeof(int32_t) * (size_t)(nnz ? nnz : 1));
  /* at most one group per distinct shift per row: bounded by nnz */
  p->ts = fm_alloc(a, sizeof(int32_t) * (size_t)(nnz + 1));
  p->tm = fm_alloc(a, sizeof(int32_t) * (size_t)(nnz + 1));
  p->delta = fm_alloc(a, sizeof(int32_t) * (size_t)(nnz + 1));
  int64_t ng = 0, nt = 0;
  for (int64_t m = 0; m < M; m++) {
    int k = 0;
    for (int64_t r = 0; r < R; r++) {
      int64_t i = m * rs + r * cs;
      if (w[i]) row[k++] = (Tap){sh ? sh[i] : 0, w[i], (int32_t)off[r]};
    }
    qsort(row, (size_t)k, sizeof *row, tap_cmp);
    p->gs[m] = (int32_t)ng;
    for (int i = 0; i < k; i++) {
      if (i == 0 || row[i].shift != row[i - 1].shift) {
        p->delta[ng] = i ? row[i - 1].shift - row[i].shift : 0;
        p->ts[ng] = p->tm[ng] = (int32_t)nt;
        ng++;
      }
      if (row[i].sign > 0) p->tm[ng - 1] = (int32_t)nt + 1;
      p->tap[nt++] = row[i].off;
    }
    p->fin[m] = k ? row[k - 1].shift : 0;
  }
  p->gs[M] = (int32_t)ng, p->ts[ng] = (int32_t)nt;
  p->ngroups = ng, p->ntaps = nt;
  free(row);
}

/* The node's own integer weights (input 1, and the Shift input 2 for pow2), which must be constants. */
static void plan_build(Node *n, Arena *a, Plan *p, int64_t M, int64_t R, int64_t rs, int64_t cs,
                       const int64_t *off) {
  const int8_t *w = fm_in(n, 1)->data, *sh = is_pow2(n) ? fm_in(n, 2)->data : NULL;
  if (!w || (is_pow2(n) && !sh))
    fm_fail("node '%s' (%s): the integer weights must be constants (initialisers)", n->name, n->op_type);
  fm_tap_plan(n, a, p, w, sh, fm_in(n, 1)->name, M, R, rs, cs, off);
}

/* Tables as the narrowest of int16 / int32 that holds them. */
static KBuf *table(KB *b, const char *name, const int32_t *v, int64_t n) {
  int narrow = 1;
  for (int64_t i = 0; i < n; i++) narrow &= v[i] >= INT16_MIN && v[i] <= INT16_MAX;
  if (!narrow) return kb_const(b, name, FM_I32, n ? n : 1, v);
  int16_t *h = fm_alloc(b->a, sizeof(int16_t) * (size_t)(n ? n : 1));
  for (int64_t i = 0; i < n; i++) h[i] = (int16_t)v[i];
  return kb_const(b, name, FM_I16, n ? n : 1, h);
}

void fm_tap_tabs(KB *b, const Plan *p, Tabs *t) {
  t->gs = table(b, "grp_start", p->gs, p->M + 1);
  t->ts = table(b, "tap_start", p->ts, p->ngroups + 1);
  t->tm = table(b, "tap_minus", p->tm, p->ngroups);
  t->tap = table(b, "taps", p->tap, p->ntaps);
  t->delta = p->pow2 ? table(b, "grp_shift", p->delta, p->ngroups) : NULL;
  t->fin = p->pow2 ? kb_const(b, "row_shift", FM_I32, p->M, p->fin) : NULL;
}

static KExpr *ld(KBuf *t, KExpr *i) { return k_cast(FM_I64, k_load(t, i)); }

static KExpr *tap_sum(Acc *a, KExpr *at, KExpr **offs, int k) {
  KExpr *s[CHUNK];
  for (int i = 0; i < k; i++) s[i] = k_load(a->x, k_add(k_add(k_var(a->base), offs[i]), at));
  while (k > 1) { /* a balanced tree: short dependency chains */
    int h = 0;
    for (int i = 0; i + 1 < k; i += 2) s[h++] = k_add(s[i], s[i + 1]);
    if (k % 2) s[h++] = s[k - 1];
    k = h;
  }
  return s[0];
}

/* Row m of the plan: groups, each its +1 taps then its -1 taps, CHUNK per pass. */
void fm_tap_row(KB *b, const Plan *p, const Tabs *t, KExpr *m, Acc *A) {
  KVar *grp = kb_for(b, "grp", ld(t->gs, m), ld(t->gs, k_add(m, k_i(1))), KL_SERIAL);
  if (p->pow2) {
    kb_if(b, k_bin(KB_GT, k_var(grp), ld(t->gs, m)));
    A->shift(b, A, k_cast(FM_I32, k_load(t->delta, k_var(grp))));
    kb_end(b);
  }
  for (int neg = 0; neg < 2; neg++) {
    KExpr *lo = neg ? ld(t->tm, k_var(grp)) : ld(t->ts, k_var(grp));
    KExpr *hi = neg ? ld(t->ts, k_add(k_var(grp), k_i(1))) : ld(t->tm, k_var(grp));
    KBinOp op = neg ? KB_SUB : KB_ADD;
    KVar *a0 = kb_let(b, neg ? "m0" : "p0", FM_I64, lo);
    KVar *a1 = kb_let(b, neg ? "m1" : "p1", FM_I64, hi);
    /* passes of CHUNK taps, then at most one of CHUNK/2, ..., then single taps */
    KVar *cur = a0;
    for (int size = CHUNK; size >= 1; size /= 2) {
      KExpr *cnt = k_div(k_sub(k_var(a1), k_var(cur)), k_i(size));
      if (size != CHUNK && size != 1) cnt = k_min(cnt, k_i(1));
      KVar *nc = kb_let(b, "nc", FM_I64, cnt);
      KVar *cj = kb_for(b, "cj", k_i(0), k_var(nc), KL_SERIAL);
      KVar *j = kb_let(b, "j", FM_I64, k_add(k_var(cur), k_mul(k_var(cj), k_i(size))));
      KExpr *offs[CHUNK];
      for (int i = 0; i < size; i++) {
        static const char *const on[] = {"o0", "o1", "o2", "o3", "o4", "o5", "o6", "o7"};
        offs[i] = k_var(kb_let(b, on[i], FM_I64, ld(t->tap, k_add(k_var(j), k_i(i)))));
      }
      A->add(b, A, op, offs, size);
      kb_end(b);
      if (size > 1) cur = kb_let(b, "next", FM_I64, k_add(k_var(cur), k_mul(k_var(nc), k_i(size))));
    }
  }
  kb_end(b); /* grp */
}

/* ---- Conv ---- */

void fm_tap_conv_add(KB *b, Acc *a, KBinOp op, KExpr **offs, int k) {
  KVar *q = kb_for(b, "q", k_i(0), k_i(a->q), KL_VECTOR);
  kb_store_acc(b, a->acc, k_add(k_var(a->ab), k_var(q)), op, tap_sum(a, k_var(q), offs, k));
  kb_end(b);
}

static void conv_shift(KB *b, Acc *a, KExpr *d) {
  KVar *dv = kb_let(b, "d", FM_I32, d);
  KVar *q = kb_for(b, "q", k_i(0), k_i(a->q), KL_VECTOR);
  KExpr *i = k_add(k_var(a->ab), k_var(q));
  kb_store(b, a->acc, i, k_bin(KB_LDEXP, k_load(a->acc, i), k_var(dv)));
  kb_end(b);
}

static int64_t cdiv(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }
static int64_t fdiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

void fm_tap_conv(KB *b, const FmTapConv *tc) {
  Node *n = tc->n;
  FmConv c = *tc->c;
  const FmWin *w = &c.win;
  if (w->nsp > 2)
    fm_fail("node '%s' (%s): %d-D convolutions are not supported (1-D and 2-D are)", n->name,
            n->op_type, w->nsp);
  int L = w->nsp - 1; /* the width */
  int64_t IH = L ? w->in[0] : 1, OH = L ? w->out[0] : 1, KH = L ? w->k[0] : 1, SH = L ? w->s[0] : 1;
  int64_t DH = L ? w->d[0] : 1, PH = L ? w->pb[0] : 0, PHE = L ? w->pe[0] : 0;
  int64_t IW = w->in[L], OW = w->out[L], KW = w->k[L], SW = w->s[L], DW = w->d[L], PW = w->pb[L], PWE = w->pe[L];
  int direct = SH == 1 && SW == 1 && !PH && !PHE && !PW && !PWE && KW == 1;
  int64_t SP = direct ? 1 : SH * SW;
  int64_t Hph = direct ? IH : cdiv(IH + PH + PHE, SH), Wph = direct ? IW : cdiv(IW + PW + PWE, SW);
  int64_t PL = direct ? IH * IW : Hph * Wph + Wph; /* a row of slack for the extra columns */
  int64_t R = c.Cg * KH * KW, Q = OH * Wph;
  int64_t *off = malloc(sizeof(int64_t) * (size_t)(R ? R : 1));
  for (int64_t ci = 0; ci < c.Cg; ci++)
    for (int64_t kh = 0; kh < KH; kh++)
      for (int64_t kw = 0; kw < KW; kw++) {
        int64_t ph = (kh * DH % SH) * SW + kw * DW % SW;
        off[(ci * KH + kh) * KW + kw] = (ci * SP + ph) * PL + kh * DH / SH * Wph + kw * DW / SW;
      }
  if (c.Cg * SP * PL > INT32_MAX) fm_fail("node '%s' (%s): input too large", n->name, n->op_type);
  Plan p;
  fm_tap_plan(n, b->a, &p, tc->w, tc->shift, c.w->name, c.M, R, R, 1, off);
  free(off);
  Tabs t;
  fm_tap_tabs(b, &p, &t);
  KBuf *X = tc->x, *B = tc->bias, *Y = tc->y, *Al = tc->alpha, *Sc = tc->scale;
  KExpr *N = kb_dim(b, c.x->dims[0]);
  kb_comment(b, "%s: %lld->%lld channels, group %lld, %lld of %lld taps nonzero, %lld shift groups; "
             "%s planes %lldx%lld", n->op_type, (long long)c.C, (long long)c.M, (long long)c.G,
             (long long)p.ntaps, (long long)(c.M * R), (long long)p.ngroups, direct ? "input" : "packed",
             (long long)Hph, (long long)Wph);
  KBuf *P = X;
  if (!direct) {
    /* zero-padded phase planes: P[img, ch, phase] row i col j = X[img, ch, i*SH+ph-PH, j*SW+pw-PW] */
    int32_t jlo[64], jhi[64];
    if (SW > 64) fm_fail("node '%s' (%s): stride %lld too large", n->name, n->op_type, (long long)SW);
    for (int64_t pw = 0; pw < SW; pw++) {
      int64_t lo = cdiv(PW - pw, SW), hi = fdiv(IW - 1 + PW - pw, SW) + 1;
      lo = lo < 0 ? 0 : lo > Wph ? Wph : lo, hi = hi > Wph ? Wph : hi < lo ? lo : hi;
      jlo[pw] = (int32_t)lo, jhi[pw] = (int32_t)hi;
    }
    KBuf *JL = kb_const(b, "col_lo", FM_I32, SW, jlo), *JH = kb_const(b, "col_hi", FM_I32, SW, jhi);
    P = kb_scratch(b, "packed", FM_F32, c.x->dims[0] * c.C * SP * PL);
    KVar *ncp = kb_for(b, "ncp", k_i(0), k_mul(N, k_i(c.C * SP)), KL_PARALLEL);
    KVar *ph = kb_let(b, "ph", FM_I64, k_mod(k_var(ncp), k_i(SP)));
    KVar *xo = kb_let(b, "xo", FM_I64, k_mul(k_div(k_var(ncp), k_i(SP)), k_i(IH * IW)));
    KVar *po = kb_let(b, "po", FM_I64, k_mul(k_var(ncp), k_i(PL)));
    KVar *phh = kb_let(b, "phh", FM_I64, k_div(k_var(ph), k_i(SW)));
    KVar *phw = kb_let(b, "phw", FM_I64, k_mod(k_var(ph), k_i(SW)));
    KVar *lo = kb_let(b, "jlo", FM_I64, ld(JL, k_var(phw))), *hi = kb_let(b, "jhi", FM_I64, ld(JH, k_var(phw)));
    KVar *i = kb_for(b, "i", k_i(0), k_i(Hph), KL_SERIAL);
    KVar *rs = kb_let(b, "rs", FM_I64, k_sub(k_add(k_mul(k_var(i), k_i(SH)), k_var(phh)), k_i(PH)));
    KVar *pr = kb_let(b, "pr", FM_I64, k_add(k_var(po), k_mul(k_var(i), k_i(Wph))));
    kb_if(b, k_and(k_ge(k_var(rs), k_i(0)), k_lt(k_var(rs), k_i(IH))));
    KVar *xr = kb_let(b, "xr", FM_I64, k_sub(k_add(k_add(k_var(xo), k_mul(k_var(rs), k_i(IW))), k_var(phw)), k_i(PW)));
    KVar *j = kb_for(b, "j", k_i(0), k_var(lo), KL_VECTOR);
    kb_store(b, P, k_add(k_var(pr), k_var(j)), k_f32(0));
    kb_end(b);
    j = kb_for(b, "j", k_var(lo), k_var(hi), KL_VECTOR);
    kb_store(b, P, k_add(k_var(pr), k_var(j)), k_load(X, k_add(k_var(xr), k_mul(k_var(j), k_i(SW)))));
    kb_end(b);
    j = kb_for(b, "j", k_var(hi), k_i(Wph), KL_VECTOR);
    kb_store(b, P, k_add(k_var(pr), k_var(j)), k_f32(0));
    kb_end(b);
    kb_else(b);
    j = kb_for(b, "j", k_i(0), k_i(Wph), KL_VECTOR);
    kb_store(b, P, k_add(k_var(pr), k_var(j)), k_f32(0));
    kb_end(b);
    kb_end(b); /* if */
    kb_end(b); /* i */
    j = kb_for(b, "j", k_i(Hph * Wph), k_i(PL), KL_VECTOR);
    kb_store(b, P, k_add(k_var(po), k_var(j)), k_f32(0));
    kb_end(b);
    kb_end(b); /* ncp */
  }
  /* rows: items (image, output channel) in at most SLOTS chunks, one accumulator plane each */
  KBuf *acc = kb_scratch(b, "acc", FM_F32, SLOTS * Q);
  KVar *items = kb_let(b, "items", FM_I64, k_mul(N, k_i(c.M)));
  KVar *nch = kb_let(b, "chunks", FM_I64, k_min(k_var(items), k_i(SLOTS)));
  KVar *tt = kb_for(b, "t", k_i(0), k_var(nch), KL_PARALLEL);
  KVar *first = kb_let(b, "first", FM_I64, k_div(k_mul(k_var(tt), k_var(items)), k_var(nch)));
  KVar *it = kb_for(b, "it", k_var(first),
                    k_div(k_mul(k_add(k_var(tt), k_i(1)), k_var(items)), k_var(nch)), KL_SERIAL);
  KVar *m = kb_let(b, "m", FM_I64, k_mod(k_var(it), k_i(c.M)));
  KVar *img = kb_let(b, "img", FM_I64, k_div(k_var(it), k_i(c.M)));
  KExpr *ch0 = k_add(k_mul(k_var(img), k_i(c.C)), k_mul(k_div(k_var(m), k_i(c.Mg)), k_i(c.Cg)));
  Acc A = {.add = fm_tap_conv_add, .shift = conv_shift, .x = P, .acc = acc, .q = Q};
  A.base = kb_let(b, "base", FM_I64, k_mul(ch0, k_i(SP * PL)));
  A.ab = kb_let(b, "ab", FM_I64, k_mul(k_var(tt), k_i(Q)));
  KVar *q = kb_for(b, "q", k_i(0), k_i(Q), KL_VECTOR);
  kb_store(b, acc, k_add(k_var(A.ab), k_var(q)), k_f32(0));
  kb_end(b);
  fm_tap_row(b, &p, &t, k_var(m), &A);
  /* y = Alpha[m] * acc | ldexp(acc, fin[m]) (* Scale[m]), + B[m], activation */
  KVar *mult = NULL;
  int unit = !p.pow2 && tc->unit_alpha;
  if (!p.pow2 && !unit) mult = kb_let(b, "alpha", FM_F32, k_load(Al, k_var(m)));
  else if (Sc) mult = kb_let(b, "mult", FM_F32, k_bin(KB_LDEXP, k_load(Sc, k_var(m)), k_load(t.fin, k_var(m))));
  KVar *bias = B ? kb_let(b, "bias", FM_F32, k_load(B, k_var(m))) : NULL;
  KVar *oh = kb_for(b, "oh", k_i(0), k_i(OH), KL_SERIAL);
  KVar *ow = kb_for(b, "ow", k_i(0), k_i(OW), KL_VECTOR);
  KExpr *v = k_load(acc, k_add(k_add(k_var(A.ab), k_mul(k_var(oh), k_i(Wph))), k_var(ow)));
  v = mult ? k_mul(k_var(mult), v) : unit ? v : k_bin(KB_LDEXP, v, k_load(t.fin, k_var(m)));
  if (bias) v = k_add(v, k_var(bias));
  KExpr *yi = k_add(k_mul(k_var(it), k_i(OH * OW)), k_add(k_mul(k_var(oh), k_i(OW)), k_var(ow)));
  if (tc->act) fm_dense_store(b, n, Y, yi, v);
  else kb_store(b, Y, yi, v);
  kb_end(b);
  kb_end(b);
  kb_end(b); /* it */
  kb_end(b); /* t */
}

static void lower_conv(KB *b, Node *n) {
  FmConv c;
  conv_setup(n, &c);
  const int8_t *w = c.w->data, *sh = is_pow2(n) ? fm_in(n, 2)->data : NULL;
  if (!w || (is_pow2(n) && !sh))
    fm_fail("node '%s' (%s): the integer weights must be constants (initialisers)", n->name, n->op_type);
  FmTapConv tc = {.n = n, .c = &c, .w = w, .shift = sh, .x = kb_in(b, 0), .y = kb_out(b, 0), .act = 1,
                  .alpha = is_pow2(n) ? NULL : kb_in(b, 2), .bias = bias_of(n) ? kb_in(b, 3) : NULL,
                  .scale = scale_of(n) ? kb_in(b, 4) : NULL, .unit_alpha = alpha_unit(n)};
  fm_tap_conv(b, &tc);
}

void fm_lower_TernaryConv(KB *b, Node *n) { lower_conv(b, n); }
void fm_lower_Pow2Conv(KB *b, Node *n) { lower_conv(b, n); }

/* ---- Gemm ---- */

void fm_tap_gemm_add(KB *b, Acc *a, KBinOp op, KExpr **offs, int k) {
  kb_acc(b, a->var, op, tap_sum(a, k_i(0), offs, k));
}

static void gemm_shift(KB *b, Acc *a, KExpr *d) {
  kb_set(b, a->var, k_bin(KB_LDEXP, k_var(a->var), d));
}

/* TernaryGemm through the CPU library's fm_ternary_gemm: W as two bitmasks per output and
   16-column chunk (one int32: bits 0-15 where w != 0, 16-31 where w = -1), blocks of
   MBLK outputs in a parallel loop. Y = Alpha[m] * acc + B[m] (Y = acc + B[m] when every
   Alpha is 1: hasalpha = 0, no multiply), the order of the tap-loop lowering; a fused
   Relu rides on the store, another activation runs over the block. */
#define MBLK 16

static int lower_gemm_masks(KB *b, Node *n, const GemmGeo *q) {
  if (is_pow2(n) || q->alpha != 1 || (bias_of(n) && q->beta != 1 && q->beta != 0)) return 0;
  if (!fm_lower_can_call(b, "fm_ternary_gemm")) return 0;
  const int8_t *w = fm_in(n, 1)->data;
  if (!w) fm_fail("node '%s' (%s): the integer weights must be constants (initialisers)", n->name, n->op_type);
  int64_t M = q->M, K = q->K, kc = (K + 15) / 16, nnz = 0;
  int64_t nmk = M * kc;
  if (nmk > INT32_MAX) return 0;
  int32_t *msk = fm_alloc(b->a, sizeof(int32_t) * (size_t)(nmk ? nmk : 1));
  int32_t *nzc = fm_alloc(b->a, sizeof(int32_t) * (size_t)(M + 1));
  memset(msk, 0, sizeof(int32_t) * (size_t)nmk);
  nzc[0] = 0;
  for (int64_t m = 0; m < M; m++) {
    for (int64_t k = 0; k < K; k++) {
      int8_t v = w[q->tb ? m * K + k : k * M + m];
      if (v < -1 || v > 1)
        fm_fail("node '%s' (%s): weight '%s' holds %d; only -1, 0 and 1 are allowed", n->name,
                n->op_type, fm_in(n, 1)->name, v);
      if (v) msk[m * kc + k / 16] |= (int32_t)((1u << (k % 16)) | (v < 0 ? 1u << (16 + k % 16) : 0));
      nnz += v != 0;
    }
    if (nnz > INT32_MAX) return 0;
    nzc[m + 1] = (int32_t)nnz;
  }
  KBuf *X = kb_in(b, 0), *Al = kb_in(b, 2), *Y = kb_out(b, 0);
  KBuf *B = bias_of(n) && q->beta != 0 ? kb_in(b, 3) : NULL;
  KBuf *MK = kb_const(b, "masks", FM_I32, nmk ? nmk : 1, msk);
  KBuf *NZ = kb_const(b, "nnz_upto", FM_I32, M + 1, nzc); /* for the cost only */
  int relu = n->fused_act == OP_Relu, other_act = n->fused_act && !relu, unit = alpha_unit(n);
  kb_comment(b, "%s: %lld x %lld, %lld of %lld weights nonzero, bitmasks of %lld chunks per output%s", n->op_type,
             (long long)K, (long long)M, (long long)nnz, (long long)(K * M), (long long)kc,
             unit ? ", Alpha = 1: adds only" : "");
  KExpr *N = kb_dim(b, q->N);
  KVar *mb = kb_for(b, "mb", k_i(0), k_i((M + MBLK - 1) / MBLK), KL_PARALLEL);
  KVar *m0 = kb_let(b, "m0", FM_I64, k_mul(k_var(mb), k_i(MBLK)));
  KVar *m1 = kb_let(b, "m1", FM_I64, k_min(k_add(k_var(m0), k_i(MBLK)), k_i(M)));
  KExpr *outs = k_mul(N, k_sub(k_var(m1), k_var(m0)));
  KExpr *adds = k_mul(N, k_sub(ld(NZ, k_var(m1)), ld(NZ, k_var(m0))));
  if (B) adds = k_add(adds, outs);
  kb_call(b, "fm_ternary_gemm", unit ? k_i(0) : outs, adds, 16, k_i(0), N, k_var(m0), k_var(m1), k_i(K),
          k_addr(X, k_i(0)), k_i(K), k_addr(MK, k_i(0)), k_i(kc), k_addr(Al, k_i(0)), k_i(!unit),
          k_addr(B ? B : Al, k_i(0)), k_i(B != NULL), k_i(relu), k_addr(Y, k_i(0)), k_i(M));
  if (other_act) {
    KVar *i = kb_for(b, "i", k_i(0), N, KL_SERIAL);
    KVar *m = kb_for(b, "m", k_var(m0), k_var(m1), KL_VECTOR);
    KExpr *yi = k_add(k_mul(k_var(i), k_i(M)), k_var(m));
    fm_dense_store(b, n, Y, yi, k_load(Y, yi));
    kb_end(b);
    kb_end(b);
  }
  kb_end(b); /* mb */
  return 1;
}

static void lower_gemm(KB *b, Node *n) {
  GemmGeo q;
  gemm_setup(n, &q);
  if (lower_gemm_masks(b, n, &q)) return;
  int64_t *off = malloc(sizeof(int64_t) * (size_t)(q.K ? q.K : 1));
  for (int64_t k = 0; k < q.K; k++) off[k] = k;
  if (q.K > INT32_MAX) fm_fail("node '%s' (%s): K too large", n->name, n->op_type);
  Plan p;
  plan_build(n, b->a, &p, q.M, q.K, q.tb ? q.K : 1, q.tb ? 1 : q.M, off);
  free(off);
  Tabs t;
  fm_tap_tabs(b, &p, &t);
  KBuf *X = kb_in(b, 0), *B = bias_of(n) ? kb_in(b, 3) : NULL, *Y = kb_out(b, 0);
  KBuf *Al = p.pow2 ? NULL : kb_in(b, 2), *Sc = scale_of(n) ? kb_in(b, 4) : NULL;
  kb_comment(b, "%s: %lld x %lld, %lld of %lld weights nonzero, %lld shift groups", n->op_type,
             (long long)q.K, (long long)q.M, (long long)p.ntaps, (long long)(q.K * q.M), (long long)p.ngroups);
  KVar *nm = kb_for(b, "nm", k_i(0), k_mul(kb_dim(b, q.N), k_i(q.M)), KL_PARALLEL);
  KVar *m = kb_let(b, "m", FM_I64, k_mod(k_var(nm), k_i(q.M)));
  Acc A = {.add = fm_tap_gemm_add, .shift = gemm_shift, .x = X};
  A.base = kb_let(b, "base", FM_I64, k_mul(k_div(k_var(nm), k_i(q.M)), k_i(q.K)));
  A.var = kb_let(b, "acc", FM_F32, k_f32(0));
  fm_tap_row(b, &p, &t, k_var(m), &A);
  KExpr *v = k_var(A.var);
  if (!p.pow2) {
    KExpr *al = alpha_unit(n) ? NULL : k_load(Al, k_var(m)); /* NULL: Alpha all 1 */
    if (al && q.alpha != 1) al = k_mul(k_f32(q.alpha), al);
    else if (q.alpha != 1) al = k_f32(q.alpha);
    if (al) v = k_mul(al, v);
  } else {
    v = k_bin(KB_LDEXP, v, k_load(t.fin, k_var(m)));
    if (Sc) v = k_mul(k_load(Sc, k_var(m)), v);
    if (q.alpha != 1) v = k_mul(k_f32(q.alpha), v);
  }
  if (B && q.beta != 0) {
    KExpr *bv = k_load(B, k_var(m));
    v = k_add(v, q.beta != 1 ? k_mul(k_f32(q.beta), bv) : bv);
  }
  fm_dense_store(b, n, Y, k_var(nm), v);
  kb_end(b);
}

void fm_lower_TernaryGemm(KB *b, Node *n) { lower_gemm(b, n); }
void fm_lower_Pow2Gemm(KB *b, Node *n) { lower_gemm(b, n); }
