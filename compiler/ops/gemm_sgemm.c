/* gemm_sgemm.c - float32 Gemm and MatMul through the CPU library's fm_sgemm.
 *
 * The output is cut into blocks of MB rows x NB columns (MB a multiple of the 6-row
 * GEMM tile); one KL_PARALLEL loop runs over (matrix, row block, column block)
 * items, each an fm_sgemm call on its block followed by the epilogue (alpha, beta*C,
 * fused activation) while the block is in cache.
 */
#include "ops/dense.h"

#define MB 36
#define NB 256

typedef struct Blocks { KVar *m0, *m1, *n0, *n1; } Blocks;

/* Opens the parallel item loop and the lets of one block; returns the matrix
   index (items are (mat, row block, column block), column block fastest). */
static KExpr *open_items(KB *b, KExpr *nmat, KExpr *M, int64_t N, Blocks *bl) {
  int64_t ncb = (N + NB - 1) / NB;
  KVar *nrb = kb_let(b, "nrb", FM_I64, k_div(k_add(M, k_i(MB - 1)), k_i(MB)));
  KExpr *items = k_mul(k_mul(nmat, k_var(nrb)), k_i(ncb));
  KVar *it = kb_for(b, "it", k_i(0), items, KL_PARALLEL);
  KVar *cb = kb_let(b, "cb", FM_I64, k_mod(k_var(it), k_i(ncb)));
  KVar *q = kb_let(b, "q", FM_I64, k_div(k_var(it), k_i(ncb)));
  KVar *rb = kb_let(b, "rb", FM_I64, k_mod(k_var(q), k_var(nrb)));
  KVar *mat = kb_let(b, "mat", FM_I64, k_div(k_var(q), k_var(nrb)));
  bl->m0 = kb_let(b, "m0", FM_I64, k_mul(k_var(rb), k_i(MB)));
  bl->m1 = kb_let(b, "m1", FM_I64, k_min(k_add(k_var(bl->m0), k_i(MB)), M));
  bl->n0 = kb_let(b, "n0", FM_I64, k_mul(k_var(cb), k_i(NB)));
  bl->n1 = kb_let(b, "n1", FM_I64, k_min(k_add(k_var(bl->n0), k_i(NB)), k_i(N)));
  return k_var(mat);
}

static KExpr *block_work(const Blocks *bl, int64_t K) {
  return k_mul(k_mul(k_sub(k_var(bl->m1), k_var(bl->m0)), k_sub(k_var(bl->n1), k_var(bl->n0))), k_i(K));
}

int fm_gemm_lower_sgemm(KB *b, Node *n, const FmGemm *G) {
  if (G->y->dtype != FM_F32 || G->N < 0) return 0;
  KBuf *A = kb_in(b, 0), *B = kb_in(b, 1), *Y = kb_out(b, 0);
  KExpr *M = kb_dim(b, G->M);
  kb_comment(b, "Gemm via fm_sgemm: K=%lld N=%lld%s%s", (long long)G->K, (long long)G->N,
             G->ta ? " transA" : "", G->tb ? " transB" : "");
  Blocks bl;
  open_items(b, k_i(1), M, G->N, &bl);
  kb_call(b, "fm_sgemm", block_work(&bl, G->K), block_work(&bl, G->K), 14, k_var(bl.m0), k_var(bl.m1),
          k_var(bl.n0), k_var(bl.n1), k_i(G->K), k_addr(A, k_i(0)), G->ta ? M : k_i(G->K), k_i(G->ta),
          k_addr(B, k_i(0)), k_i(G->tb ? G->K : G->N), k_i(G->tb), k_addr(Y, k_i(0)), k_i(G->N), k_i(0));
  if (G->alpha != 1.0f || (G->c && G->beta != 0.0f) || n->fused_act) {
    KVar *i = kb_for(b, "i", k_var(bl.m0), k_var(bl.m1), KL_SERIAL);
    KVar *j = kb_for(b, "j", k_var(bl.n0), k_var(bl.n1), KL_VECTOR);
    KExpr *yi = k_add(k_mul(k_var(i), k_i(G->N)), k_var(j));
    fm_dense_store(b, n, Y, yi, fm_gemm_epilogue(b, n, G, k_load(Y, yi), k_var(i), k_var(j)));
    kb_end(b);
    kb_end(b);
  }
  kb_end(b);
  return 1;
}

int fm_matmul_lower_sgemm(KB *b, Node *n, const FmMatMul *mm) {
  if (mm->y->dtype != FM_F32 || mm->N < 0 || mm->K < 0) return 0;
  KBuf *A = kb_in(b, 0), *B = kb_in(b, 1), *Y = kb_out(b, 0);
  int b_shared = 1, a_full = !mm->a1;
  for (int d = 0; d < mm->nb; d++) b_shared &= mm->bbd[d] == 1, a_full &= mm->abd[d] == mm->batch[d];
  KExpr *M = kb_dim(b, mm->M), *nmat = k_i(1);
  for (int d = 0; d < mm->nb; d++) nmat = k_mul(nmat, kb_dim(b, mm->batch[d]));
  /* one B for every A matrix, A's batch contiguous: a single (batch*M) x K product */
  int fold = b_shared && a_full;
  if (fold) M = k_mul(M, nmat), nmat = k_i(1);
  kb_comment(b, "MatMul via fm_sgemm: K=%lld N=%lld%s", (long long)mm->K, (long long)mm->N,
             fold && mm->nb ? ", batch folded into M" : "");
  Blocks bl;
  KExpr *mat = open_items(b, nmat, M, mm->N, &bl);
  KExpr *aoff = k_i(0), *boff = k_i(0), *yoff = k_i(0);
  if (!fold) {
    /* batch indices of matrix `mat`, last dim fastest */
    static const char *bn[] = {"bi0", "bi1", "bi2", "bi3", "bi4", "bi5"};
    KExpr *bi[FM_MAXRANK], *rest = mat;
    for (int d = mm->nb - 1; d >= 0; d--) {
      bi[d] = k_var(kb_let(b, bn[d], FM_I64, k_mod(rest, kb_dim(b, mm->batch[d]))));
      rest = k_div(rest, kb_dim(b, mm->batch[d]));
    }
    KExpr *mk = k_mul(kb_dim(b, mm->M), k_i(mm->K));
    aoff = k_mul(fm_matmul_batch_off(b, mm, mm->abd, bi), mk);
    boff = k_mul(fm_matmul_batch_off(b, mm, mm->bbd, bi), k_i(mm->K * mm->N));
    yoff = k_mul(mat, k_mul(kb_dim(b, mm->M), k_i(mm->N)));
  }
  KVar *ab = kb_let(b, "abase", FM_I64, aoff), *bb = kb_let(b, "bbase", FM_I64, boff);
  KVar *yb = kb_let(b, "ybase", FM_I64, yoff);
  kb_call(b, "fm_sgemm", block_work(&bl, mm->K), block_work(&bl, mm->K), 14, k_var(bl.m0), k_var(bl.m1),
          k_var(bl.n0), k_var(bl.n1), k_i(mm->K), k_addr(A, k_var(ab)), k_i(mm->K), k_i(0),
          k_addr(B, k_var(bb)), k_i(mm->N), k_i(0), k_addr(Y, k_var(yb)), k_i(mm->N), k_i(0));
  if (n->fused_act) {
    KVar *i = kb_for(b, "i", k_var(bl.m0), k_var(bl.m1), KL_SERIAL);
    KVar *j = kb_for(b, "j", k_var(bl.n0), k_var(bl.n1), KL_VECTOR);
    KExpr *yi = k_add(k_var(yb), k_add(k_mul(k_var(i), k_i(mm->N)), k_var(j)));
    fm_dense_store(b, n, Y, yi, k_load(Y, yi));
    kb_end(b);
    kb_end(b);
  }
  kb_end(b);
  return 1;
}
