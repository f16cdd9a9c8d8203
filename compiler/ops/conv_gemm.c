/* conv_gemm.c - float32 1-D/2-D Conv as im2col + fm_sgemm (the CPU library's packed GEMM).
 *
 * Per image n and group g the convolution is a matrix product
 *   Y[n, g] (Mg x OH*OW) = W[g] (Mg x K) * col (K x OH*OW),  K = Cg*KH*KW,
 * where col row (c, kh, kw) holds the input pixels that tap meets at each output
 * position (zeros in the padding). Work is cut into items (image, group, block of
 * output rows, block of output channels) so that batch 1 still has a few items for
 * the threads and batch 64 has plenty: a KL_PARALLEL loop over at most SLOTS chunks
 * of consecutive items, each chunk owning one im2col slot of the scratch buffer, so
 * the scratch never grows with the batch. im2col writes its block straight into
 * the GEMM's packed B layout (fm_im2col_pack), and fm_sgemm_pb adds the bias and
 * applies a fused Relu as it stores each register tile; other fused activations
 * run over the block while it is still in cache.
 */
#include "ops/dense.h"

#define SLOTS 8          /* chunks of work items = im2col slots (>= threads used) */
#define COLS_TARGET 256  /* output positions per item: the GEMM's N block */
#define ITEMS_MIN 4      /* split output channels when an image has fewer items */
typedef struct Geo2 { int64_t IH, IW, OH, OW, KH, KW, SH, SW, DH, DW, PH, PW; } Geo2;

static void geo2(const FmWin *w, Geo2 *q) {
  int j = w->nsp - 1; /* the last spatial dim is the width */
  q->IW = w->in[j], q->OW = w->out[j], q->KW = w->k[j], q->SW = w->s[j], q->DW = w->d[j], q->PW = w->pb[j];
  if (w->nsp == 2)
    q->IH = w->in[0], q->OH = w->out[0], q->KH = w->k[0], q->SH = w->s[0], q->DH = w->d[0], q->PH = w->pb[0];
  else
    q->IH = q->OH = q->KH = q->SH = q->DH = 1, q->PH = 0;
}

int fm_conv_lower_gemm(KB *b, Node *n, const FmConv *c) {
  const FmWin *w = &c->win;
  /* depthwise (one input channel per group) has K = KH*KW: the direct kernel wins */
  if (c->y->dtype != FM_F32 || w->nsp > 2 || (c->Cg == 1 && b->opts->conv != FM_LOWER_GEMM)) return 0;
  if (!fm_lower_can_call(b, "fm_im2col_pack") || !fm_lower_can_call(b, "fm_sgemm_pb")) return 0;
  /* channel blocks are multiples of the CPU library's row tile (FM_GEMM_MR) under the
     target's ISA (--target), not the ISA fewmul was built with: only a blocking
     choice, any value is correct */
  int64_t tile_m = b->opts->target.gemm_mr;
  Geo2 q;
  geo2(w, &q);
  int64_t K = c->Cg * q.KH * q.KW, HW = q.OH * q.OW, XS = q.IH * q.IW;
  int64_t R = COLS_TARGET / q.OW;
  if (R < 1) R = 1;
  if (R > q.OH) R = q.OH;
  /* a slot holds the packed K x R*OW block: fm_im2col_pack's slivers of
     FM_GEMM_NR (16 or 32) columns, so columns rounded up to 64 always fit */
  int64_t nbc = (q.OH + R - 1) / R, ldp = (R * q.OW + 63) / 64 * 64;
  /* blocks of output channels (multiples of the GEMM's row tile) for small images */
  int64_t nbr = 1, mb = c->Mg, per_img = c->G * nbc;
  if (per_img < ITEMS_MIN && c->Mg >= 24) {
    int64_t want = (ITEMS_MIN + per_img - 1) / per_img;
    if (want > c->Mg / 12) want = c->Mg / 12;
    mb = (c->Mg + want - 1) / want;
    mb = (mb + tile_m - 1) / tile_m * tile_m;
    nbr = (c->Mg + mb - 1) / mb;
  }
  int relu = n->fused_act == OP_Relu, other_act = n->fused_act && !relu;
  KBuf *X = kb_in(b, 0), *W = kb_in(b, 1), *B = c->bias ? kb_in(b, 2) : NULL, *Y = kb_out(b, 0);
  KBuf *col = kb_scratch(b, "col", FM_F32, SLOTS * K * ldp);
  kb_comment(b, "Conv im2col(packed)+sgemm: M=%lld K=%lld N=%lld per image and group, %lld items per image",
             (long long)c->Mg, (long long)K, (long long)HW, (long long)(per_img * nbr));

  KExpr *items = k_mul(kb_dim(b, c->y->dims[0]), k_i(per_img * nbr));
  KVar *nitems = kb_let(b, "items", FM_I64, items);
  KVar *nch = kb_let(b, "chunks", FM_I64, k_min(k_var(nitems), k_i(SLOTS)));
  KVar *t = kb_for(b, "t", k_i(0), k_var(nch), KL_PARALLEL);
  KVar *lo = kb_let(b, "first", FM_I64, k_div(k_mul(k_var(t), k_var(nitems)), k_var(nch)));
  KExpr *hi = k_div(k_mul(k_add(k_var(t), k_i(1)), k_var(nitems)), k_var(nch));
  KVar *it = kb_for(b, "it", k_var(lo), hi, KL_SERIAL);
  /* it = ((image * G + g) * nbc + cb) * nbr + rb */
  KVar *rb = kb_let(b, "rb", FM_I64, k_mod(k_var(it), k_i(nbr)));
  KVar *q1 = kb_let(b, "q1", FM_I64, k_div(k_var(it), k_i(nbr)));
  KVar *cb = kb_let(b, "cb", FM_I64, k_mod(k_var(q1), k_i(nbc)));
  KVar *q2 = kb_let(b, "q2", FM_I64, k_div(k_var(q1), k_i(nbc)));
  KVar *g = kb_let(b, "g", FM_I64, k_mod(k_var(q2), k_i(c->G)));
  KVar *img = kb_let(b, "img", FM_I64, k_div(k_var(q2), k_i(c->G)));
  KVar *p0 = kb_let(b, "p0", FM_I64, k_mul(k_var(cb), k_i(R * q.OW)));
  KVar *p1 = kb_let(b, "p1", FM_I64, k_min(k_add(k_var(p0), k_i(R * q.OW)), k_i(HW)));
  KVar *xbase = kb_let(b, "xbase", FM_I64,
                       k_mul(k_add(k_mul(k_var(img), k_i(c->C)), k_mul(k_var(g), k_i(c->Cg))), k_i(XS)));
  KVar *colbase = kb_let(b, "colbase", FM_I64, k_mul(k_var(t), k_i(K * ldp)));
  /* consecutive channel blocks of one image share its packed block */
  kb_if(b, k_bin(KB_OR, k_bin(KB_EQ, k_var(rb), k_i(0)), k_bin(KB_EQ, k_var(it), k_var(lo))));
  kb_call(b, "fm_im2col_pack", k_i(0), k_i(0), 16, k_addr(X, k_var(xbase)), k_i(c->Cg), k_i(q.IH),
          k_i(q.IW), k_i(q.KH), k_i(q.KW), k_i(q.SH), k_i(q.SW), k_i(q.PH), k_i(q.PW), k_i(q.DH),
          k_i(q.DW), k_i(q.OW), k_var(p0), k_var(p1), k_addr(col, k_var(colbase)));
  kb_end(b);
  KVar *m0 = kb_let(b, "m0", FM_I64, k_mul(k_var(rb), k_i(mb)));
  KVar *m1 = kb_let(b, "m1", FM_I64, k_min(k_add(k_var(m0), k_i(mb)), k_i(c->Mg)));
  KVar *ybase = kb_let(b, "ybase", FM_I64,
                       k_add(k_mul(k_add(k_mul(k_var(img), k_i(c->M)), k_mul(k_var(g), k_i(c->Mg))), k_i(HW)),
                             k_var(p0)));
  KVar *ncols = kb_let(b, "ncols", FM_I64, k_sub(k_var(p1), k_var(p0)));
  KExpr *work = k_mul(k_mul(k_sub(k_var(m1), k_var(m0)), k_var(ncols)), k_i(K));
  /* bias and Relu ride on the GEMM's stores; without a bias, W stands in (unread) */
  KExpr *bias = B ? k_addr(B, k_mul(k_var(g), k_i(c->Mg))) : k_addr(W, k_i(0));
  KExpr *adds = B ? k_add(work, k_mul(k_sub(k_var(m1), k_var(m0)), k_var(ncols))) : work;
  kb_call(b, "fm_sgemm_pb", work, adds, 12, k_var(m0), k_var(m1), k_var(ncols), k_i(K),
          k_addr(W, k_mul(k_var(g), k_i(c->Mg * K))), k_i(K), k_addr(col, k_var(colbase)),
          k_addr(Y, k_var(ybase)), k_i(HW), bias, k_i(B != NULL), k_i(relu));
  if (other_act) {
    KVar *m = kb_for(b, "m", k_var(m0), k_var(m1), KL_SERIAL);
    KVar *row = kb_let(b, "row", FM_I64, k_add(k_var(ybase), k_mul(k_var(m), k_i(HW))));
    KVar *j = kb_for(b, "j", k_i(0), k_var(ncols), KL_VECTOR);
    KExpr *yi = k_add(k_var(row), k_var(j));
    fm_dense_store(b, n, Y, yi, k_load(Y, yi));
    kb_end(b);
    kb_end(b);
  }
  kb_end(b); /* it */
  kb_end(b); /* t */
  return 1;
}
