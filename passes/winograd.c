/* winograd.c - the Winograd pass (after weights): eligible 3x3 Convs become WinogradConv.
 *
 * Eligible: a float32 2-D Conv with a constant weight [K, C, 3, 3] (any exporter), stride 1,
 * dilation 1, group 1, pads 0..2 (after auto_pad), known spatial size. It becomes
 * WinogradConv (ops/winograd.c) with Cook-Toom transforms for F(m x m, 3 x 3), bits 0,
 * the Conv's bias as B and its fused activation kept. When the Conv's output is read only
 * by an Add of a same-shaped tensor (a residual connection), the Add joins it as the input
 * R and the Add's activation moves into the Winograd op's store.
 *
 * The tile: FmPassOpts.winograd (--winograd): FM_WINO_OFF none, 2/4/6 every eligible Conv
 * with that tile, FM_WINO_AUTO the tile the cost model below picks per layer, or none
 * where it does not pay. The layer's op_type then reads "Winograd[F4]" ("Winograd[F4+add]"
 * with a fused residual; "Conv[wino:no]" for an eligible Conv that auto left alone), so
 * `fewmul cost` shows the choice. The trainer's WinogradConv reads "WinogradConv[F4]"
 * ("WinogradConv[F4q8]" with 8-bit operands) and takes a following bias Add as its B.
 *
 * The cost model estimates nanoseconds per image from op counts with rates measured on
 * the project's machine (bench/winograd_layers.sh, docs/benchmarks.md): the im2col+sgemm
 * conv at RATE_GEMM multiply-adds per ns, the Winograd GEMM at RATE_WGEMM, and the
 * transforms per tile element and channel (the gathers of the input tiles, the add/fma
 * trees, the scattered stores), with the Winograd kernels' 16-tile vectors rounded up.
 */
#include "passes/passes.h"
#include "ops/dense.h"
#include "ops/winograd.h"
#include <stdlib.h>
#include <string.h>

#define RATE_GEMM 85.0    /* multiply-adds per ns of im2col + fm_sgemm_pb (3x3, >= 16 channels) */
#define RATE_WGEMM 80.0   /* multiply-adds per ns of fm_wino_gemm */
#define NS_F2 0.12        /* ns per transformed tile element and channel (input and output), F(2,3) */
#define NS_F4 0.25        /* the same for F(4,3) (36 gathers per input tile, more spills) */
#define MIN_CHANNELS 8    /* below this the transforms cost more than they save */
#define GROUP_BELOW 48    /* ops/winograd.c groups images of fewer tiles ... */
#define GROUP_TILES 64    /* ... into items of about this many tiles */

static int eligible(Node *n, FmConv *c) {
  if (n->op != OP_Conv || n->nout != 1) return 0;
  Tensor *x = n->in[0], *w = n->nin > 1 ? n->in[1] : NULL, *b = n->nin > 2 ? n->in[2] : NULL;
  if (!x || !w || x->dtype != FM_F32 || w->dtype != FM_F32 || !w->data || x->rank != 4 || w->rank != 4) return 0;
  if (b && (!b->data || b->dtype != FM_F32)) return 0;
  if (w->dims[2] != 3 || w->dims[3] != 3 || x->dims[1] < 1 || x->dims[2] < 1 || x->dims[3] < 1) return 0;
  fm_conv_setup(n, c);
  const FmWin *v = &c->win;
  if (c->G != 1 || v->s[0] != 1 || v->s[1] != 1 || v->d[0] != 1 || v->d[1] != 1) return 0;
  for (int j = 0; j < 2; j++)
    if (v->pb[j] < 0 || v->pb[j] > 2 || v->pe[j] < 0 || v->pe[j] > 2) return 0;
  return 1;
}

/* estimated ns per image at batch nb; m = 0: im2col + GEMM. The Winograd kernels run
   16 tiles per vector: an item of fewer tiles (a small image, at batch 1) pays for 16. */
static double layer_ns(int m, int64_t nb, int64_t C, int64_t K, int64_t OH, int64_t OW) {
  if (!m) return 9.0 * (double)C * (double)K * (double)(OH * OW) / RATE_GEMM;
  int64_t a = m + 2, T = ((OH + m - 1) / m) * ((OW + m - 1) / m), Kp = (K + 7) / 8 * 8, ni = 1;
  if (T < GROUP_BELOW) ni = GROUP_TILES / T < 1 ? 1 : GROUP_TILES / T;
  if (ni > nb) ni = nb;
  double cols = (double)((ni * T + 15) / 16 * 16) / (double)ni; /* tile columns per image */
  return (double)(a * a) * (double)Kp * (double)C * cols / RATE_WGEMM +
         (double)(a * a) * (double)(C + K) * cols * (m == 2 ? NS_F2 : NS_F4);
}

/* F(6,3) is never chosen: no layer measured faster than F(4,3), and its error is 2-3x F(4,3)'s */
static int choose(const FmConv *c, int mode) {
  if (mode > 0) return mode;
  int64_t C = c->C, K = c->M, OH = c->win.out[0], OW = c->win.out[1];
  int64_t nb = c->x->dims[0] > 0 ? c->x->dims[0] : 1; /* a symbolic batch: plan for 1 */
  if (C < MIN_CHANNELS || K < MIN_CHANNELS) return 0;
  int best = 0;
  double bt = layer_ns(0, nb, C, K, OH, OW);
  for (int m = 2; m <= 4; m += 2) {
    double t = layer_ns(m, nb, C, K, OH, OW);
    if (t < bt) bt = t, best = m;
  }
  return best;
}

/* The Add that alone reads y, with a same-shaped other operand; its index in *at. */
static Node *residual_add(Graph *g, Tensor *y, int *at) {
  if (y->is_output || fm_tensor_uses(g, y) != 1) return NULL;
  for (int i = 0; i < g->nnodes; i++) {
    Node *a = g->nodes[i];
    if (a->dead || a->op != OP_Add || a->nin != 2 || a->nout != 1) continue;
    if (a->in[0] != y && a->in[1] != y) continue;
    Tensor *r = a->in[0] == y ? a->in[1] : a->in[0];
    if (r == y || r->dtype != FM_F32 || r->rank != 4 || a->out[0]->dtype != FM_F32) return NULL;
    for (int d = 0; d < 4; d++)
      if (r->dims[d] != y->dims[d]) return NULL;
    *at = i;
    return a;
  }
  return NULL;
}

static Tensor *transform(Graph *g, const char *node, const char *what, int r, int c, const float *v) {
  return fm_tensor_const(g, fm_sprintf(&g->arena, "%s_%s", node, what), FM_F32, 2, (int64_t[]){r, c}, v);
}

static void rewrite(Graph *g, Node *n, int idx, const FmConv *c, int m) {
  float Bt[64], G[24], At[48];
  fm_wino_cook_toom(m, Bt, G, At);
  int a = m + 2;
  Tensor **in = fm_alloc(&g->arena, 7 * sizeof(Tensor *));
  in[0] = n->in[0], in[1] = n->in[1], in[5] = n->nin > 2 ? n->in[2] : NULL, in[6] = NULL;
  in[2] = transform(g, n->name, "Bt", a, a, Bt);
  in[3] = transform(g, n->name, "G", a, 3, G);
  in[4] = transform(g, n->name, "At", m, a, At);
  int nin = in[5] ? 6 : 5;
  int at;
  Node *add = n->fused_act ? NULL : residual_add(g, n->out[0], &at);
  if (add) {
    in[6] = add->in[0] == n->out[0] ? add->in[1] : add->in[0], nin = 7;
    n->fused_act = add->fused_act, n->act_alpha = add->act_alpha, n->act_beta = add->act_beta;
    Tensor *y = add->out[0];
    n->out[0]->producer = NULL;
    n->out[0] = y, y->producer = n;
    add->dead = 1;
    g->nodes[at] = n, g->nodes[idx] = add; /* R may be computed after the conv: run at the Add */
  }
  n->in = in, n->nin = nin;
  n->op = OP_WinogradConv, n->domain = "ai.fewmul";
  n->op_type = fm_sprintf(&g->arena, "Winograd[F%d%s]", m, add ? "+add" : "");
  n->attrs = NULL, n->nattrs = 0;
  fm_set_attr_i(g, n, "tile", m);
  fm_set_attr_ints(g, n, "pads", 4, (int64_t[]){c->win.pb[0], c->win.pb[1], c->win.pe[0], c->win.pe[1]});
  fm_set_attr_i(g, n, "bits", 0);
}

/* A constant per-channel Add after a WinogradConv without bias (the trainer's export: the
   bias is an Add of a [K, 1, 1] constant) becomes its input B. */
static void fuse_bias(Graph *g, Node *n, int idx) {
  int64_t K = n->in[1]->dims[0];
  Tensor *y = n->out[0];
  if ((n->nin > 5 && n->in[5]) || n->fused_act || y->is_output || fm_tensor_uses(g, y) != 1) return;
  for (int i = idx + 1; i < g->nnodes; i++) {
    Node *a = g->nodes[i];
    if (a->dead || a->op != OP_Add || a->nin != 2 || (a->in[0] != y && a->in[1] != y)) continue;
    Tensor *b = a->in[0] == y ? a->in[1] : a->in[0];
    if (!b->data || b->dtype != FM_F32 || fm_numel(b) != K || b->rank > 4) return;
    for (int d = 0; d < b->rank; d++) /* [K], [K,1,1], [1,K,1,1]: K along the channel axis */
      if (b->dims[d] != 1 && b->rank - d != 3) return;
    Tensor **in = fm_alloc(&g->arena, 7 * sizeof(Tensor *));
    memcpy(in, n->in, sizeof(Tensor *) * (size_t)n->nin);
    for (int k = n->nin; k < 7; k++) in[k] = NULL;
    in[5] = fm_tensor_const(g, fm_sprintf(&g->arena, "%s_bias", n->name), FM_F32, 1, &K, b->data);
    n->in = in, n->nin = 6;
    n->fused_act = a->fused_act, n->act_alpha = a->act_alpha, n->act_beta = a->act_beta;
    n->out[0] = a->out[0], a->out[0]->producer = n, y->producer = NULL;
    a->dead = 1;
    g->nodes[i] = n, g->nodes[idx] = a;
    return;
  }
}

void fm_pass_winograd(Graph *g, const FmPassOpts *o) {
  int mode = o ? o->winograd : FM_WINO_AUTO;
  if (mode != FM_WINO_OFF && mode != FM_WINO_AUTO && mode != 2 && mode != 4 && mode != 6)
    fm_fail("winograd: tile %d is not one of auto, off, 2, 4, 6", mode);
  for (int i = 0; i < g->nnodes; i++) { /* the trainer's WinogradConv: name its tile, take its bias */
    Node *n = g->nodes[i];
    if (n->dead || n->op != OP_WinogradConv || strcmp(n->op_type, "WinogradConv")) continue;
    int64_t bits = fm_attr_i(n, "bits", 0);
    n->op_type = fm_sprintf(&g->arena, "WinogradConv[F%lld%s%.0lld]", (long long)fm_attr_i(n, "tile", 4),
                            bits ? "q" : "", (long long)bits);
    if (n->nin >= 5 && n->in[1] && n->in[1]->rank == 4) fuse_bias(g, n, i);
  }
  for (int i = 0; mode != FM_WINO_OFF && i < g->nnodes; i++) {
    Node *n = g->nodes[i];
    FmConv c;
    if (n->dead || !eligible(n, &c)) continue;
    int m = choose(&c, mode);
    if (!m) {
      n->op_type = "Conv[wino:no]";
      continue;
    }
    rewrite(g, n, i, &c, m);
  }
  fm_graph_compact(g);
}
