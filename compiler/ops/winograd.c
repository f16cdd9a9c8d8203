/* winograd.c - WinogradConv (ai.fewmul): F(m x m, 3 x 3) convolution, native.
 *
 *   X [N, C, H, W], W [K, C, 3, 3], Bt [a, a], G [a, 3], At [m, a], B [K] (opt),
 *   R [N, K, OH, OW] (opt, internal: a residual the Winograd pass fused)  ->  Y [N, K, OH, OW]
 *   attributes: tile m, pads [t, l, b, r], bits (0: float)
 *
 * It is the trainer's exported op (`fewmul train --method winograd`, static or flex
 * transforms, b-bit Winograd-domain operands, computed exactly as its function body
 * defines: trainer/method_winograd.c) and what passes/winograd.c makes of an eligible
 * Conv (Cook-Toom transforms, bits 0, the bias as B). With a = m + 2, per m x m output
 * tile and output channel k:
 *   Y = At [sum_c U_kc ⊙ V_c] Att,  U = G W Gt (compile time),  V_c = Bt d_c Btt,
 * d_c the a x a input tile at rows ti*m - pad_t.., cols tj*m - pad_l.. (zeros outside).
 * bits > 0: U is rounded to a b-bit grid with one scale per layer (compile time), V with
 * one scale per sample (at run time, over all of the sample's tiles), as the body does.
 *
 * Lowering, per work item (image, block of TB tiles), in a parallel loop over chunks of
 * items that each own one slot of scratch:
 *   1. copy the rows of the padded input the block reads into Xp (zeros at the borders);
 *   2. input transform: straight-line kernel IR with Bt's entries as constants (0: nothing,
 *      ±1: add/sub, else fma), a vector loop over the block's tiles, writing
 *      V [a², C, TB] (tiles contiguous, the layout the batched GEMM reads);
 *   3. fm_wino_gemm (cpu/cpu_winograd.c): M_q [Kp, TB] = U_q [Kp, C] V_q [C, TB]
 *      for each of the a² positions, U packed at compile time;
 *   4. output transform with At's entries as constants; bias, residual and the fused
 *      activation in its store, and the crop of the last tile row/column.
 */
#include "ops/dense.h"
#include "ops/winograd.h"
#include "io/io.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 8               /* chunks of work items = scratch slots (>= threads) */
#define L2_BYTES (512 * 1024) /* V and M of one tile block should stay in about this much */
#define MAX_TILE 8
#define GROUP_BELOW 48        /* images with fewer tiles are grouped, G images per item ... */
#define GROUP_TILES 64        /* ... about this many tiles in all */

/* ---- Cook-Toom transforms (as trainer/method_winograd.c's fm_wino_transforms) ---- */

int fm_wino_cook_toom(int m, float *Bt, float *G, float *At) {
  static const double p2[] = {0, 1, -1}, p4[] = {0, 1, -1, 2, -2}, p6[] = {0, 1, -1, 2, -2, 0.5, -0.5};
  const double *pts = m == 2 ? p2 : m == 4 ? p4 : m == 6 ? p6 : NULL;
  if (!pts) return -1;
  int n = m + 2, nf = n - 1;
  double V[8][16], f[8];
  for (int j = 0; j < n; j++)   /* Vandermonde rows (∞: the leading coefficient) | identity */
    for (int l = 0; l < 2 * n; l++)
      V[j][l] = l >= n ? (l - n == j) : j < nf ? pow(pts[j], l) : (l == n - 1);
  for (int c = 0; c < n; c++) { /* Gauss-Jordan with partial pivoting */
    int piv = c;
    for (int r = c + 1; r < n; r++)
      if (fabs(V[r][c]) > fabs(V[piv][c])) piv = r;
    for (int l = 0; l < 2 * n; l++) {
      double t = V[c][l];
      V[c][l] = V[piv][l], V[piv][l] = t;
    }
    double d = V[c][c];
    for (int l = 0; l < 2 * n; l++) V[c][l] /= d;
    for (int r = 0; r < n; r++) {
      if (r == c || V[r][c] == 0) continue;
      double s = V[r][c];
      for (int l = 0; l < 2 * n; l++) V[r][l] -= s * V[c][l];
    }
  }
  for (int j = 0; j < n; j++) {
    f[j] = 1;
    if (j < nf)
      for (int l = 0; l < nf; l++)
        if (l != j) f[j] *= pts[j] - pts[l];
  }
  for (int j = 0; j < n; j++)
    for (int l = 0; l < n; l++) Bt[j * n + l] = (float)(f[j] * V[l][n + j]);
  for (int j = 0; j < n; j++)
    for (int k = 0; k < 3; k++) G[j * 3 + k] = (float)(j < nf ? pow(pts[j], k) / f[j] : (k == 2));
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) At[i * n + j] = (float)(j < nf ? pow(pts[j], i) : (i == m - 1));
  return 0;
}

static int costs_mul(float c) { return c != 0 && c != 1 && c != -1; }

/* multiplications of Z = X S Xt for a rows x cols X (rows x cols x cols, then rows x rows x cols) */
FmWinoMuls fm_wino_muls(int m, const float *Bt, const float *At, int64_t C, int64_t K) {
  int a = m + 2;
  double bin = 0, bout = 0;
  for (int i = 0; i < a * a; i++) bin += costs_mul(Bt[i]);
  for (int i = 0; i < m * a; i++) bout += costs_mul(At[i]);
  FmWinoMuls r;
  r.in = (double)C * (bin * a + bin * a);      /* stage 1: a columns; stage 2: a rows */
  r.gemm = (double)a * a * (double)C * (double)K;
  r.out = (double)K * (bout * a + bout * m);   /* stage 1: a columns; stage 2: m rows */
  return r;
}

/* ---- the node ---- */

typedef struct Wino {
  Tensor *x, *w, *bt, *g, *at, *bias, *res, *y;
  int64_t C, K, IH, IW, OH, OW, pt, pl, pb, pr;
  int m, a, bits;
  int64_t th, tw, T;
} Wino;

static void need_f32(Node *n, const Tensor *t, const char *what) {
  if (t->dtype != FM_F32)
    fm_fail("node '%s' (%s): %s '%s' has dtype %s; float32 is supported", n->name, n->op_type, what, t->name,
            fm_dtype_name(t->dtype));
}

static void need_dims(Node *n, const Tensor *t, const char *what, int rank, const int64_t *dims) {
  int ok = t->rank == rank;
  for (int i = 0; ok && i < rank; i++) ok = t->dims[i] == dims[i];
  if (!ok) {
    char want[96];
    fm_dims_str(want, sizeof want, rank, dims, "N");
    fm_fail("node '%s' (%s): %s '%s' must have shape %s", n->name, n->op_type, what, t->name, want);
  }
}

static void setup(Node *n, Wino *w) {
  memset(w, 0, sizeof *w);
  w->x = fm_in(n, 0), w->w = fm_in(n, 1), w->bt = fm_in(n, 2), w->g = fm_in(n, 3), w->at = fm_in(n, 4);
  w->bias = n->nin > 5 ? n->in[5] : NULL;
  w->res = n->nin > 6 ? n->in[6] : NULL;
  w->y = n->out[0];
  need_f32(n, w->x, "input");
  need_f32(n, w->w, "weight");
  if (w->x->rank != 4)
    fm_fail("node '%s' (%s): input '%s' must be N x C x H x W", n->name, n->op_type, w->x->name);
  w->C = w->x->dims[1], w->IH = w->x->dims[2], w->IW = w->x->dims[3];
  if (w->C < 1 || w->IH < 1 || w->IW < 1)
    fm_fail("node '%s' (%s): channels and spatial dims of '%s' must be known", n->name, n->op_type, w->x->name);
  if (w->w->rank != 4 || w->w->dims[0] < 1 || w->w->dims[1] != w->C || w->w->dims[2] != 3 || w->w->dims[3] != 3)
    fm_fail("node '%s' (%s): weight '%s' must have shape [K, %lld, 3, 3]", n->name, n->op_type, w->w->name,
            (long long)w->C);
  w->K = w->w->dims[0];
  w->m = (int)fm_attr_i(n, "tile", 4);
  if (w->m < 1 || w->m > MAX_TILE)
    fm_fail("node '%s' (%s): tile %d must be in 1..%d", n->name, n->op_type, w->m, MAX_TILE);
  w->a = w->m + 2;
  need_f32(n, w->bt, "Bt"), need_f32(n, w->g, "G"), need_f32(n, w->at, "At");
  need_dims(n, w->bt, "Bt", 2, (int64_t[]){w->a, w->a});
  need_dims(n, w->g, "G", 2, (int64_t[]){w->a, 3});
  need_dims(n, w->at, "At", 2, (int64_t[]){w->m, w->a});
  w->bits = (int)fm_attr_i(n, "bits", 0);
  if (w->bits < 0 || w->bits == 1 || w->bits > 24)
    fm_fail("node '%s' (%s): bits %d must be 0 (float) or 2..24", n->name, n->op_type, w->bits);
  int64_t p[4] = {0, 0, 0, 0};
  int np = fm_attr_ints(n, "pads", p, 4);
  if (np >= 0 && np != 4)
    fm_fail("node '%s' (%s): pads must have 4 values (top, left, bottom, right)", n->name, n->op_type);
  for (int i = 0; i < 4; i++)
    if (p[i] < 0 || p[i] > 2) fm_fail("node '%s' (%s): pads must be in 0..2", n->name, n->op_type);
  w->pt = p[0], w->pl = p[1], w->pb = p[2], w->pr = p[3];
  w->OH = w->IH + w->pt + w->pb - 2, w->OW = w->IW + w->pl + w->pr - 2;
  if (w->OH < 1 || w->OW < 1)
    fm_fail("node '%s' (%s): the 3x3 window does not fit input '%s'", n->name, n->op_type, w->x->name);
  w->th = (w->OH + w->m - 1) / w->m, w->tw = (w->OW + w->m - 1) / w->m, w->T = w->th * w->tw;
  if (w->bias) {
    need_f32(n, w->bias, "bias");
    need_dims(n, w->bias, "bias", 1, (int64_t[]){w->K});
  }
  if (w->res) {
    need_f32(n, w->res, "residual");
    need_dims(n, w->res, "residual", 4, (int64_t[]){w->x->dims[0], w->K, w->OH, w->OW});
  }
}

void fm_infer_WinogradConv(Graph *g, Node *n) {
  Wino w;
  setup(n, &w);
  fm_set_shape(w.y, FM_F32, 4, (int64_t[]){w.x->dims[0], w.K, w.OH, w.OW});
}

/* ---- compile time: U = G W Gt (as the body: float MatMuls), quantised, packed ---- */

static float qscale(float mx, int bits) { return fmaxf(mx, 1e-12f) / (float)((1 << (bits - 1)) - 1); }

/* packed [q][Kp/8][C][8] (cpu/cpu_winograd.c) */
static float *weight_transform(const Wino *w, const float *W, const float *G, int64_t Kp) {
  int a = w->a, a2 = a * a;
  int64_t K = w->K, C = w->C;
  float *u = calloc((size_t)(a2 * K * C), sizeof(float)), *pk = calloc((size_t)(a2 * Kp * C), sizeof(float));
  if (!u || !pk) fm_fail("out of memory (Winograd weights)");
  float mx = 0;
  for (int64_t kc = 0; kc < K * C; kc++) {
    const float *wk = W + kc * 9;
    float gw[MAX_TILE + 2][3];
    for (int i = 0; i < a; i++)
      for (int j = 0; j < 3; j++) {
        float s = 0;
        for (int l = 0; l < 3; l++) s = fmaf(G[i * 3 + l], wk[l * 3 + j], s);
        gw[i][j] = s;
      }
    for (int i = 0; i < a; i++)
      for (int j = 0; j < a; j++) {
        float s = 0;
        for (int l = 0; l < 3; l++) s = fmaf(gw[i][l], G[j * 3 + l], s);
        u[(i * a + j) * K * C + kc] = s;
        mx = fmaxf(mx, fabsf(s));
      }
  }
  if (w->bits > 0) {
    float s = qscale(mx, w->bits);
    for (int64_t i = 0; i < a2 * K * C; i++) u[i] = nearbyintf(u[i] / s) * s;
  }
  int64_t nkb = Kp / 8;
  for (int q = 0; q < a2; q++)
    for (int64_t k = 0; k < K; k++)
      for (int64_t c = 0; c < C; c++) pk[((q * nkb + k / 8) * C + c) * 8 + k % 8] = u[(q * K + k) * C + c];
  free(u);
  return pk;
}

/* sum_i coef[i] * v[i] with 0 skipped, ±1 as add/sub, others as fma */
static KExpr *lincomb(const float *coef, int stride, KVar **v, int n) {
  KExpr *e = NULL;
  for (int i = 0; i < n; i++) {
    float c = coef[i * stride];
    KExpr *x = k_var(v[i]);
    if (c == 0) continue;
    if (!e) e = c == 1 ? x : c == -1 ? k_un(KU_NEG, x) : k_mul(k_f32(c), x);
    else if (c == 1) e = k_add(e, x);
    else if (c == -1) e = k_sub(e, x);
    else e = k_fma(k_f32(c), x, e);
  }
  return e ? e : k_f32(0);
}

/* Z = X S Xt of an a x a (S) with X rows x a: stage 1 T = X S (rows x a), stage 2 Z = T Xt */
static void sandwich(KB *b, const float *X, int rows, int a, KVar **S, KVar **Z, const char *tn, const char *zn) {
  KVar *T[(MAX_TILE + 2) * (MAX_TILE + 2)], *col[MAX_TILE + 2];
  for (int i = 0; i < rows; i++)
    for (int s = 0; s < a; s++) {
      for (int r = 0; r < a; r++) col[r] = S[r * a + s];
      T[i * a + s] = kb_let(b, tn, FM_F32, lincomb(X + i * a, 1, col, a));
    }
  for (int i = 0; i < rows; i++)
    for (int j = 0; j < rows; j++) Z[i * rows + j] = kb_let(b, zn, FM_F32, lincomb(X + j * a, 1, T + i * a, a));
}

void fm_lower_WinogradConv(KB *b, Node *n) {
  Wino w;
  setup(n, &w);
  const float *W = fm_const_data(n, 1, "weight W"), *Bt = fm_const_data(n, 2, "transform Bt");
  const float *G = fm_const_data(n, 3, "transform G"), *At = fm_const_data(n, 4, "transform At");
  int m = w.m, a = w.a, a2 = a * a;
  int64_t C = w.C, K = w.K, Kp = (K + 7) / 8 * 8, T = w.T, tw = w.tw;
  /* tiles per block: V and M of a block in about L2_BYTES; a whole image when V is
     quantised (one scale per sample). Small images: NI whole images per item, so that the
     vector loops over tiles and the GEMM's columns are not mostly empty. */
  int64_t TB = L2_BYTES / (4 * (int64_t)a2 * (C + Kp)) / 16 * 16, Tr = (T + 15) / 16 * 16, NI = 1;
  if (TB < 16) TB = 16;
  if (w.bits == 0 && T < GROUP_BELOW) {
    NI = (TB < GROUP_TILES ? TB : GROUP_TILES) / T;
    if (NI < 1) NI = 1;
  }
  if (NI > 1) TB = (NI * T + 15) / 16 * 16;
  else if (TB > Tr || w.bits > 0) TB = Tr;
  int64_t nblk = NI > 1 ? 1 : (T + TB - 1) / TB;
  int64_t span = (TB + tw - 1) / tw + 1;
  if (span > w.th || NI > 1) span = w.th;
  int64_t RB = span * m + 2, Wp = tw * m + 2; /* rows and row length of the padded band */
  int64_t GT = NI * T, XS = C * RB * Wp;     /* tiles of an item's images; padded floats per image */
  /* the per-tile offsets as 32-bit lane values: the C compiler gathers and scatters 16
     lanes at once (with 64-bit indices 8) */
  int idx32 = NI * XS < INT32_MAX && NI * K * w.OH * w.OW < INT32_MAX;

  float *pk = weight_transform(&w, W, G, Kp);
  KBuf *U = kb_const(b, "U", FM_F32, a2 * Kp * C, pk);
  free(pk);
  /* per tile tt of the item (image g = tt / T): its row and column, and its offsets in
     the padded input and in Y (from the item's first image) */
  int64_t *tab = malloc(sizeof(int64_t) * (size_t)(4 * GT));
  for (int64_t tt = 0; tt < GT; tt++) {
    int64_t g = tt / T, t = tt % T, tr = t / tw * m, tc = t % tw * m;
    tab[tt] = tr, tab[GT + tt] = tc;
    tab[2 * GT + tt] = g * XS + tr * Wp + tc, tab[3 * GT + tt] = g * K * w.OH * w.OW + tr * w.OW + tc;
  }
  KBuf *TR = kb_const(b, "trow", FM_I64, GT, tab), *TC = kb_const(b, "tcol", FM_I64, GT, tab + GT);
  KBuf *TX = kb_const(b, "txoff", FM_I64, GT, tab + 2 * GT), *TY = kb_const(b, "tyoff", FM_I64, GT, tab + 3 * GT);
  free(tab);
  KBuf *X = kb_in(b, 0), *Y = kb_out(b, 0), *B = w.bias ? kb_in(b, 5) : NULL, *R = w.res ? kb_in(b, 6) : NULL;
  KBuf *Xp = kb_scratch(b, "xpad", FM_F32, SLOTS * NI * XS);
  KBuf *Vs = kb_scratch(b, "V", FM_F32, SLOTS * a2 * C * TB);
  KBuf *Ms = kb_scratch(b, "M", FM_F32, SLOTS * a2 * Kp * TB);
  kb_comment(b, "WinogradConv F(%dx%d,3x3): %lld->%lld channels, %lldx%lld tiles, %lld per block (%lld images)%s", m,
             m, (long long)C, (long long)K, (long long)w.th, (long long)tw, (long long)TB, (long long)NI,
             w.bits ? ", quantised" : "");

  KExpr *nimg = kb_dim(b, w.y->dims[0]);
  KVar *items = kb_let(b, "items", FM_I64, NI > 1 ? k_div(k_add(nimg, k_i(NI - 1)), k_i(NI)) : k_mul(nimg, k_i(nblk)));
  KVar *nch = kb_let(b, "chunks", FM_I64, k_min(k_var(items), k_i(SLOTS)));
  KVar *sl = kb_for(b, "slot", k_i(0), k_var(nch), KL_PARALLEL);
  KVar *lo = kb_let(b, "first", FM_I64, k_div(k_mul(k_var(sl), k_var(items)), k_var(nch)));
  KExpr *hi = k_div(k_mul(k_add(k_var(sl), k_i(1)), k_var(items)), k_var(nch));
  KVar *it = kb_for(b, "it", k_var(lo), hi, KL_SERIAL);
  KVar *img = kb_let(b, "img", FM_I64, NI > 1 ? k_mul(k_var(it), k_i(NI)) : k_div(k_var(it), k_i(nblk)));
  KVar *ng = kb_let(b, "ng", FM_I64, NI > 1 ? k_min(k_i(NI), k_sub(kb_dim(b, w.y->dims[0]), k_var(img))) : k_i(1));
  KVar *t0 = kb_let(b, "t0", FM_I64, NI > 1 ? k_i(0) : k_mul(k_mod(k_var(it), k_i(nblk)), k_i(TB)));
  KVar *nt = kb_let(b, "nt", FM_I64, NI > 1 ? k_mul(k_var(ng), k_i(T)) : k_min(k_i(TB), k_sub(k_i(T), k_var(t0))));
  KVar *r0 = kb_let(b, "r0", FM_I64, k_mul(k_div(k_var(t0), k_i(tw)), k_i(m)));
  KVar *nrows = kb_let(b, "nrows", FM_I64,
                       NI > 1 ? k_i(RB)
                             : k_add(k_sub(k_mul(k_div(k_sub(k_add(k_var(t0), k_var(nt)), k_i(1)), k_i(tw)), k_i(m)),
                                           k_var(r0)),
                                     k_i(a)));
  KVar *xb = kb_let(b, "xb", FM_I64, k_mul(k_var(sl), k_i(NI * XS)));
  KVar *vb = kb_let(b, "vb", FM_I64, k_mul(k_var(sl), k_i(a2 * C * TB)));
  KVar *mb = kb_let(b, "mb", FM_I64, k_mul(k_var(sl), k_i(a2 * Kp * TB)));

  /* 1. the padded rows r0 - pad_t .. of the block */
  KVar *gi = kb_for(b, "g", k_i(0), k_var(ng), KL_SERIAL);
  KVar *c = kb_for(b, "c", k_i(0), k_i(C), KL_SERIAL);
  KVar *xs = kb_let(b, "xs", FM_I64,
                    k_mul(k_add(k_mul(k_add(k_var(img), k_var(gi)), k_i(C)), k_var(c)), k_i(w.IH * w.IW)));
  KVar *rr = kb_for(b, "rr", k_i(0), k_var(nrows), KL_SERIAL);
  KVar *sr = kb_let(b, "sr", FM_I64, k_add(k_sub(k_var(r0), k_i(w.pt)), k_var(rr)));
  KVar *dst = kb_let(b, "dst", FM_I64,
                     k_add(k_add(k_var(xb), k_mul(k_var(gi), k_i(XS))),
                           k_mul(k_add(k_mul(k_var(c), k_i(RB)), k_var(rr)), k_i(Wp))));
  kb_if(b, k_and(k_ge(k_var(sr), k_i(0)), k_lt(k_var(sr), k_i(w.IH))));
  if (w.pl) {
    KVar *z = kb_for(b, "z", k_i(0), k_i(w.pl), KL_SERIAL);
    kb_store(b, Xp, k_add(k_var(dst), k_var(z)), k_f32(0));
    kb_end(b);
  }
  KVar *cc = kb_for(b, "cc", k_i(0), k_i(w.IW), KL_VECTOR);
  kb_store(b, Xp, k_add(k_add(k_var(dst), k_i(w.pl)), k_var(cc)),
           k_load(X, k_add(k_add(k_var(xs), k_mul(k_var(sr), k_i(w.IW))), k_var(cc))));
  kb_end(b);
  if (w.pl + w.IW < Wp) {
    KVar *z = kb_for(b, "z", k_i(w.pl + w.IW), k_i(Wp), KL_SERIAL);
    kb_store(b, Xp, k_add(k_var(dst), k_var(z)), k_f32(0));
    kb_end(b);
  }
  kb_else(b);
  KVar *z = kb_for(b, "z", k_i(0), k_i(Wp), KL_VECTOR);
  kb_store(b, Xp, k_add(k_var(dst), k_var(z)), k_f32(0));
  kb_end(b);
  kb_end(b); /* if */
  kb_end(b); /* rr */
  kb_end(b); /* c */
  kb_end(b); /* g */

  /* 2. V = Bt d Btt per channel and tile */
  KVar *d[(MAX_TILE + 2) * (MAX_TILE + 2)], *v[(MAX_TILE + 2) * (MAX_TILE + 2)];
  c = kb_for(b, "c", k_i(0), k_i(C), KL_SERIAL);
  KVar *xc = kb_let(b, "xc", FM_I64, k_sub(k_add(k_var(xb), k_mul(k_var(c), k_i(RB * Wp))), k_mul(k_var(r0), k_i(Wp))));
  KVar *vc = kb_let(b, "vc", FM_I64, k_add(k_var(vb), k_mul(k_var(c), k_i(TB))));
  KVar *u = kb_for(b, "u", k_i(0), k_var(nt), KL_VECTOR);
  KExpr *tt = k_add(k_var(t0), k_var(u));
  FmDType ot = idx32 ? FM_I32 : FM_I64;
  KVar *po = kb_let(b, "po", ot, k_cast(ot, k_load(TX, tt)));
  for (int r = 0; r < a; r++)
    for (int s = 0; s < a; s++)
      d[r * a + s] =
          kb_let(b, "d", FM_F32, k_load(Xp, k_add(k_add(k_var(xc), k_cast(FM_I64, k_var(po))), k_i(r * Wp + s))));
  sandwich(b, Bt, a, a, d, v, "bd", "v");
  for (int q = 0; q < a2; q++) kb_store(b, Vs, k_add(k_add(k_var(vc), k_i(q * C * TB)), k_var(u)), k_var(v[q]));
  kb_end(b); /* u */
  kb_end(b); /* c */

  if (w.bits > 0) { /* one scale per sample over all of its V (the block is the image) */
    KVar *mx = kb_let(b, "vmax", FM_F32, k_f32(0));
    KVar *row = kb_for(b, "row", k_i(0), k_i(a2 * C), KL_SERIAL);
    KVar *j = kb_for(b, "j", k_i(0), k_var(nt), KL_SERIAL);
    kb_acc(b, mx, KB_MAX, k_un(KU_ABS, k_load(Vs, k_add(k_add(k_var(vb), k_mul(k_var(row), k_i(TB))), k_var(j)))));
    kb_end(b), kb_end(b);
    KVar *sc = kb_let(b, "vscale", FM_F32,
                      k_div(k_max(k_var(mx), k_f32(1e-12)), k_f32((double)((1 << (w.bits - 1)) - 1))));
    row = kb_for(b, "row", k_i(0), k_i(a2 * C), KL_SERIAL);
    j = kb_for(b, "j", k_i(0), k_var(nt), KL_VECTOR);
    KExpr *vi = k_add(k_add(k_var(vb), k_mul(k_var(row), k_i(TB))), k_var(j));
    kb_store(b, Vs, vi, k_mul(k_un(KU_ROUND, k_div(k_load(Vs, vi), k_var(sc))), k_var(sc)));
    kb_end(b), kb_end(b);
  }

  /* 3. M_q = U_q V_q for the a² positions */
  if (fm_lower_can_call(b, "fm_wino_gemm")) {
    KExpr *work = k_mul(k_var(nt), k_i(a2 * K * C));
    kb_call(b, "fm_wino_gemm", work, work, 8, k_i(a2), k_i(Kp), k_i(C), k_var(nt), k_addr(U, k_i(0)),
            k_addr(Vs, k_var(vb)), k_i(TB), k_addr(Ms, k_var(mb)));
  } else { /* a backend without the CPU library (the GPU printers): the same products as loops */
    KVar *q = kb_for(b, "q", k_i(0), k_i(a2), KL_SERIAL);
    KVar *kk = kb_for(b, "kk", k_i(0), k_i(K), KL_SERIAL);
    KVar *t = kb_for(b, "t", k_i(0), k_var(nt), KL_SERIAL);
    KVar *acc = kb_let(b, "acc", FM_F32, k_f32(0));
    KVar *c = kb_for(b, "c", k_i(0), k_i(C), KL_SERIAL);
    /* U packed [q][Kp/8][C][8] (cpu/cpu_winograd.c) */
    KExpr *ui = k_add(k_mul(k_add(k_mul(k_add(k_mul(k_var(q), k_i(Kp / 8)), k_div(k_var(kk), k_i(8))), k_i(C)), k_var(c)),
                            k_i(8)),
                      k_mod(k_var(kk), k_i(8)));
    KExpr *vi = k_add(k_add(k_var(vb), k_mul(k_add(k_mul(k_var(q), k_i(C)), k_var(c)), k_i(TB))), k_var(t));
    kb_acc(b, acc, KB_ADD, k_mul(k_load(U, ui), k_load(Vs, vi)));
    kb_end(b); /* c */
    kb_store(b, Ms, k_add(k_add(k_var(mb), k_mul(k_add(k_mul(k_var(q), k_i(Kp)), k_var(kk)), k_i(TB))), k_var(t)),
             k_var(acc));
    kb_end(b), kb_end(b), kb_end(b); /* t, kk, q */
  }

  /* 4. Y = At M Att (+ bias, + residual, activation), cropped */
  int64_t full_r = w.OH - (w.th - 1) * m, full_c = w.OW - (tw - 1) * m; /* rows/cols of the last tiles */
  KVar *k = kb_for(b, "k", k_i(0), k_i(K), KL_SERIAL);
  KVar *bk = B ? kb_let(b, "bk", FM_F32, k_load(B, k_var(k))) : NULL;
  KVar *yk = kb_let(b, "yk", FM_I64, k_mul(k_add(k_mul(k_var(img), k_i(K)), k_var(k)), k_i(w.OH * w.OW)));
  KVar *mk = kb_let(b, "mk", FM_I64, k_add(k_var(mb), k_mul(k_var(k), k_i(TB))));
  u = kb_for(b, "u", k_i(0), k_var(nt), KL_VECTOR);
  tt = k_add(k_var(t0), k_var(u));
  KVar *trow = kb_let(b, "trow", FM_I64, k_load(TR, tt)), *tcol = kb_let(b, "tcol", FM_I64, k_load(TC, tt));
  KVar *yo = kb_let(b, "yo", ot, k_cast(ot, k_load(TY, tt)));
  for (int q = 0; q < a2; q++)
    d[q] = kb_let(b, "mq", FM_F32, k_load(Ms, k_add(k_add(k_var(mk), k_i(q * Kp * TB)), k_var(u))));
  sandwich(b, At, m, a, d, v, "am", "y");
  for (int i = 0; i < m; i++)
    for (int j = 0; j < m; j++) {
      KExpr *val = k_var(v[i * m + j]), *yi = k_add(k_add(k_var(yk), k_cast(FM_I64, k_var(yo))), k_i(i * w.OW + j));
      KExpr *cond = NULL;
      if (i >= full_r) cond = k_lt(k_add(k_var(trow), k_i(i)), k_i(w.OH));
      if (j >= full_c) {
        KExpr *cj = k_lt(k_add(k_var(tcol), k_i(j)), k_i(w.OW));
        cond = cond ? k_and(cond, cj) : cj;
      }
      if (cond) kb_if(b, cond);
      if (bk) val = k_add(val, k_var(bk));
      if (R) val = k_add(val, k_load(R, yi));
      fm_dense_store(b, n, Y, yi, val);
      if (cond) kb_end(b);
    }
  kb_end(b); /* u */
  kb_end(b); /* k */
  kb_end(b); /* it */
  kb_end(b); /* slot */
}
