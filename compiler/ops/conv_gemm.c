/* conv_gemm.c - float32 1-D/2-D Conv as im2col + fm_sgemm (the prelude's packed GEMM).
 *
 * Per image n and group g the convolution is a matrix product
 *   Y[n, g] (Mg x OH*OW) = W[g] (Mg x K) * col (K x OH*OW),  K = Cg*KH*KW,
 * where col row (c, kh, kw) holds the input pixels that tap meets at each output
 * position (zeros in the padding). Work is cut into items (image, group, block of
 * output rows, block of output channels) so that batch 1 still has a few items for
 * the threads and batch 64 has plenty: a KL_PARALLEL loop over at most SLOTS chunks
 * of consecutive items, each chunk owning one im2col slot of the scratch buffer, so
 * the scratch never grows with the batch. Bias and the fused activation are applied
 * to each block while it is still in cache. A 1x1, stride-1, unpadded conv needs no
 * im2col: the input image already is the K x OH*OW matrix.
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

/* col[crow + (oh-oh0)*OW + ow] for output rows [oh0, oh1): one row of the matrix per
   (c, kh, kw), each output row split into left padding, input, right padding. */
static void im2col(KB *b, const FmConv *c, const Geo2 *q, KBuf *X, KBuf *col, KExpr *xbase,
                   KExpr *colbase, KExpr *oh0, KExpr *oh1, int64_t ldcol) {
  KVar *ci = kb_for(b, "c", k_i(0), k_i(c->Cg), KL_SERIAL);
  KVar *kh = kb_for(b, "kh", k_i(0), k_i(q->KH), KL_SERIAL);
  KVar *kw = kb_for(b, "kw", k_i(0), k_i(q->KW), KL_SERIAL);
  KExpr *r = k_add(k_mul(k_add(k_mul(k_var(ci), k_i(q->KH)), k_var(kh)), k_i(q->KW)), k_var(kw));
  KVar *crow = kb_let(b, "crow", FM_I64, k_add(colbase, k_mul(r, k_i(ldcol))));
  KExpr *off = k_sub(k_i(q->PW), k_mul(k_var(kw), k_i(q->DW))); /* PW - kw*DW */
  KVar *lo = kb_let(b, "lo", FM_I64,
                    k_min(k_i(q->OW), k_div(k_max(k_i(0), k_add(off, k_i(q->SW - 1))), k_i(q->SW))));
  KVar *hi = kb_let(b, "hi", FM_I64,
                    k_max(k_var(lo), k_min(k_i(q->OW), k_div(k_max(k_i(0), k_add(off, k_i(q->IW - 1 + q->SW))),
                                                              k_i(q->SW)))));
  KVar *oh = kb_for(b, "oh", oh0, oh1, KL_SERIAL);
  KVar *dst = kb_let(b, "dst", FM_I64, k_add(k_var(crow), k_mul(k_sub(k_var(oh), oh0), k_i(q->OW))));
  KVar *ih = kb_let(b, "ih", FM_I64,
                    k_add(k_sub(k_mul(k_var(oh), k_i(q->SH)), k_i(q->PH)), k_mul(k_var(kh), k_i(q->DH))));
  kb_if(b, k_and(k_ge(k_var(ih), k_i(0)), k_lt(k_var(ih), k_i(q->IH))));
  KVar *src = kb_let(b, "src", FM_I64,
                     k_sub(k_add(xbase, k_add(k_mul(k_var(ci), k_i(q->IH * q->IW)), k_mul(k_var(ih), k_i(q->IW)))),
                           off));
  KVar *j = kb_for(b, "j", k_i(0), k_var(lo), KL_SERIAL);
  kb_store(b, col, k_add(k_var(dst), k_var(j)), k_f32(0));
  kb_end(b);
  j = kb_for(b, "j", k_var(lo), k_var(hi), KL_VECTOR);
  kb_store(b, col, k_add(k_var(dst), k_var(j)), k_load(X, k_add(k_var(src), k_mul(k_var(j), k_i(q->SW)))));
  kb_end(b);
  j = kb_for(b, "j", k_var(hi), k_i(q->OW), KL_SERIAL);
  kb_store(b, col, k_add(k_var(dst), k_var(j)), k_f32(0));
  kb_end(b);
  kb_else(b);
  j = kb_for(b, "j", k_i(0), k_i(q->OW), KL_VECTOR);
  kb_store(b, col, k_add(k_var(dst), k_var(j)), k_f32(0));
  kb_end(b);
  kb_end(b); /* if */
  kb_end(b); /* oh */
  kb_end(b), kb_end(b), kb_end(b); /* kw, kh, c */
}

int fm_conv_lower_gemm(KB *b, Node *n, const FmConv *c) {
  const FmWin *w = &c->win;
  /* depthwise (one input channel per group) has K = KH*KW: the direct kernel wins */
  if (c->y->dtype != FM_F32 || w->nsp > 2 || c->Cg == 1) return 0;
  Geo2 q;
  geo2(w, &q);
  int64_t K = c->Cg * q.KH * q.KW, HW = q.OH * q.OW, XS = q.IH * q.IW;
  int no_col = q.KH == 1 && q.KW == 1 && q.SH == 1 && q.SW == 1 && q.PH == 0 && q.PW == 0 &&
               q.OH == q.IH && q.OW == q.IW;
  int64_t R = COLS_TARGET / q.OW;
  if (R < 1) R = 1;
  if (R > q.OH) R = q.OH;
  /* col rows 64-byte aligned and an odd number of cache lines apart, so that the
     GEMM's packing, which reads a line from each of K rows, spreads over the L1 sets */
  int64_t nbc = (q.OH + R - 1) / R, ldcol = (R * q.OW + 15) / 16 * 16;
  if ((ldcol / 16) % 2 == 0) ldcol += 16;
  /* blocks of output channels (multiples of the 6-row GEMM tile) for small images */
  int64_t nbr = 1, mb = c->Mg, per_img = c->G * nbc;
  if (per_img < ITEMS_MIN && c->Mg >= 24) {
    int64_t want = (ITEMS_MIN + per_img - 1) / per_img;
    if (want > c->Mg / 12) want = c->Mg / 12;
    mb = (c->Mg + want - 1) / want;
    mb = (mb + 5) / 6 * 6;
    nbr = (c->Mg + mb - 1) / mb;
  }
  KBuf *X = kb_in(b, 0), *W = kb_in(b, 1), *B = c->bias ? kb_in(b, 2) : NULL, *Y = kb_out(b, 0);
  KBuf *col = no_col ? NULL : kb_scratch(b, "col", FM_F32, SLOTS * K * ldcol);
  kb_comment(b, "Conv %s+sgemm: M=%lld K=%lld N=%lld per image and group, %lld items per image",
             no_col ? "1x1" : "im2col", (long long)c->Mg, (long long)K, (long long)HW,
             (long long)(per_img * nbr));

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
  KVar *oh0 = kb_let(b, "oh0", FM_I64, k_mul(k_var(cb), k_i(R)));
  KVar *oh1 = kb_let(b, "oh1", FM_I64, k_min(k_add(k_var(oh0), k_i(R)), k_i(q.OH)));
  KVar *ncols = kb_let(b, "ncols", FM_I64, k_mul(k_sub(k_var(oh1), k_var(oh0)), k_i(q.OW)));
  KVar *xbase = kb_let(b, "xbase", FM_I64,
                       k_mul(k_add(k_mul(k_var(img), k_i(c->C)), k_mul(k_var(g), k_i(c->Cg))), k_i(XS)));
  KExpr *bmat, *ldb;
  if (no_col) {
    bmat = k_addr(X, k_add(k_var(xbase), k_mul(k_var(oh0), k_i(q.OW))));
    ldb = k_i(XS);
  } else {
    KVar *colbase = kb_let(b, "colbase", FM_I64, k_mul(k_var(t), k_i(K * ldcol)));
    /* consecutive channel blocks of one image share its col block */
    kb_if(b, k_bin(KB_OR, k_bin(KB_EQ, k_var(rb), k_i(0)), k_bin(KB_EQ, k_var(it), k_var(lo))));
    im2col(b, c, &q, X, col, k_var(xbase), k_var(colbase), k_var(oh0), k_var(oh1), ldcol);
    kb_end(b);
    bmat = k_addr(col, k_var(colbase));
    ldb = k_i(ldcol);
  }
  KVar *m0 = kb_let(b, "m0", FM_I64, k_mul(k_var(rb), k_i(mb)));
  KVar *m1 = kb_let(b, "m1", FM_I64, k_min(k_add(k_var(m0), k_i(mb)), k_i(c->Mg)));
  KVar *ybase = kb_let(b, "ybase", FM_I64,
                       k_add(k_mul(k_add(k_mul(k_var(img), k_i(c->M)), k_mul(k_var(g), k_i(c->Mg))), k_i(HW)),
                             k_mul(k_var(oh0), k_i(q.OW))));
  KExpr *work = k_mul(k_mul(k_sub(k_var(m1), k_var(m0)), k_var(ncols)), k_i(K));
  kb_call(b, "fm_sgemm", work, work, 14, k_var(m0), k_var(m1), k_i(0), k_var(ncols), k_i(K),
          k_addr(W, k_mul(k_var(g), k_i(c->Mg * K))), k_i(K), k_i(0), bmat, ldb, k_i(0),
          k_addr(Y, k_var(ybase)), k_i(HW), k_i(0));
  if (B || n->fused_act) {
    KVar *m = kb_for(b, "m", k_var(m0), k_var(m1), KL_SERIAL);
    KVar *row = kb_let(b, "row", FM_I64, k_add(k_var(ybase), k_mul(k_var(m), k_i(HW))));
    KVar *bv = B ? kb_let(b, "bv", FM_F32, k_load(B, k_add(k_mul(k_var(g), k_i(c->Mg)), k_var(m)))) : NULL;
    KVar *j = kb_for(b, "j", k_i(0), k_var(ncols), KL_VECTOR);
    KExpr *yi = k_add(k_var(row), k_var(j));
    KExpr *v = k_load(Y, yi);
    if (bv) v = k_add(v, k_var(bv));
    fm_dense_store(b, n, Y, yi, v);
    kb_end(b);
    kb_end(b);
  }
  kb_end(b); /* it */
  kb_end(b); /* t */
  return 1;
}
