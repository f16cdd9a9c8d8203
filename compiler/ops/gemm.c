/* gemm.c - Gemm and MatMul.
 *
 *   Gemm:   Y [M, N] = alpha * A' B' + beta * C,  A' = transA ? A^T : A (M x K),
 *           B' = transB ? B^T : B (K x N), C unidirectionally broadcast to [M, N]
 *   MatMul: numpy matmul: 1-D operands get a unit dim (removed from the result),
 *           batch dims broadcast.
 *
 * float32 goes through the CPU library's fm_sgemm (gemm_sgemm.c); other dtypes,
 * `--gemm=direct` and backends that cannot call fm_sgemm use the direct loops here.
 */
#include "ops/dense.h"
#include <stdlib.h>
#include <string.h>

static int gemm_dtype_ok(FmDType t) {
  return t == FM_F32 || t == FM_F64 || t == FM_I32 || t == FM_I64 || t == FM_U32 || t == FM_U64;
}

static void check_dtype(Node *n, const Tensor *t, FmDType want) {
  if (!gemm_dtype_ok(t->dtype))
    fm_fail("node '%s' (%s): input '%s' has dtype %s; float32/64 and (u)int32/64 are supported",
            n->name, n->op_type, t->name, fm_dtype_name(t->dtype));
  if (want && t->dtype != want)
    fm_fail("node '%s' (%s): input '%s' has dtype %s, expected %s like input A", n->name, n->op_type,
            t->name, fm_dtype_name(t->dtype), fm_dtype_name(want));
}

static int same_dim(int64_t a, int64_t b) { return a == b; }

/* ---- Gemm ---- */

void fm_gemm_setup(Node *n, FmGemm *G) {
  memset(G, 0, sizeof *G);
  Tensor *a = fm_in(n, 0), *b = fm_in(n, 1);
  Tensor *c = n->nin > 2 ? n->in[2] : NULL;
  check_dtype(n, a, 0);
  check_dtype(n, b, a->dtype);
  if (c) check_dtype(n, c, a->dtype);
  if (a->rank != 2 || b->rank != 2)
    fm_fail("node '%s' (Gemm): A '%s' and B '%s' must be matrices (rank 2), got ranks %d and %d",
            n->name, a->name, b->name, a->rank, b->rank);
  G->ta = fm_attr_i(n, "transA", 0) != 0, G->tb = fm_attr_i(n, "transB", 0) != 0;
  G->alpha = fm_attr_f(n, "alpha", 1.0f), G->beta = fm_attr_f(n, "beta", 1.0f);
  G->M = a->dims[G->ta], G->K = a->dims[!G->ta];
  int64_t k2 = b->dims[G->tb];
  G->N = b->dims[!G->tb];
  if (!same_dim(G->K, k2))
    fm_fail("node '%s' (Gemm): inner dims differ: A' is %lldx%lld, B' is %lldx%lld", n->name,
            (long long)G->M, (long long)G->K, (long long)k2, (long long)G->N);
  if (G->K < 0)
    fm_fail("node '%s' (Gemm): the inner dim must be a known size", n->name);
  G->a = a, G->b = b, G->c = c, G->y = n->out[0];
  if (c) {
    if (c->rank > 2)
      fm_fail("node '%s' (Gemm): C '%s' has rank %d; at most 2", n->name, c->name, c->rank);
    int64_t want[2] = {G->M, G->N};
    for (int d = 0; d < c->rank; d++) {
      int64_t cd = c->dims[d], od = want[2 - c->rank + d];
      if (cd != 1 && cd != od)
        fm_fail("node '%s' (Gemm): C '%s' (dim %d = %lld) cannot be broadcast to %lldx%lld", n->name,
                c->name, d, (long long)cd, (long long)G->M, (long long)G->N);
    }
  }
}

void fm_infer_Gemm(Graph *g, Node *n) {
  FmGemm G;
  fm_gemm_setup(n, &G);
  int64_t dims[2] = {G.M, G.N};
  fm_set_shape(n->out[0], G.a->dtype, 2, dims);
}

/* Index of C at output (i, j) under unidirectional broadcasting. */
KExpr *fm_gemm_c_index(KB *b, const FmGemm *G, KExpr *i, KExpr *j) {
  KExpr *idx[2] = {i, j};
  return kb_bcast_index(b, G->c, G->y, idx);
}

/* alpha * acc + beta * C[i, j] (the fused activation is left to the store). */
KExpr *fm_gemm_epilogue(KB *b, Node *n, const FmGemm *G, KExpr *acc, KExpr *i, KExpr *j) {
  FmDType t = acc->t;
  KExpr *v = G->alpha != 1.0f ? k_mul(k_const(t, G->alpha), acc) : acc;
  if (G->c && G->beta != 0.0f) {
    KExpr *cv = k_load(kb_in(b, 2), fm_gemm_c_index(b, G, i, j));
    v = k_add(v, G->beta != 1.0f ? k_mul(k_const(t, G->beta), cv) : cv);
  }
  return v;
}

static void gemm_direct(KB *b, Node *n, const FmGemm *G) {
  FmDType t = G->y->dtype;
  KBuf *A = kb_in(b, 0), *B = kb_in(b, 1), *Y = kb_out(b, 0);
  kb_comment(b, "Gemm direct%s%s", G->ta ? " transA" : "", G->tb ? " transB" : "");
  KExpr *M = kb_dim(b, G->M), *N = kb_dim(b, G->N), *K = k_i(G->K);
  KVar *i = kb_for(b, "i", k_i(0), M, KL_PARALLEL);
  KVar *j = kb_for(b, "j", k_i(0), N, KL_SERIAL);
  KVar *acc = kb_let(b, "acc", t, k_const(t, 0));
  KVar *k = kb_for(b, "k", k_i(0), K, KL_SERIAL);
  KExpr *ai = G->ta ? k_add(k_mul(k_var(k), M), k_var(i)) : k_add(k_mul(k_var(i), K), k_var(k));
  KExpr *bi = G->tb ? k_add(k_mul(k_var(j), K), k_var(k)) : k_add(k_mul(k_var(k), N), k_var(j));
  kb_acc(b, acc, KB_ADD, k_mul(k_load(A, ai), k_load(B, bi)));
  kb_end(b);
  fm_dense_store(b, n, Y, k_add(k_mul(k_var(i), N), k_var(j)), fm_gemm_epilogue(b, n, G, k_var(acc), k_var(i), k_var(j)));
  kb_end(b);
  kb_end(b);
}

void fm_lower_Gemm(KB *b, Node *n) {
  FmGemm G;
  fm_gemm_setup(n, &G);
  if (!fm_gemm_direct(b) && fm_gemm_lower_sgemm(b, n, &G)) return;
  gemm_direct(b, n, &G);
}

/* ---- MatMul ---- */

void fm_matmul_setup(Node *n, FmMatMul *mm) {
  memset(mm, 0, sizeof *mm);
  Tensor *a = fm_in(n, 0), *b = fm_in(n, 1);
  check_dtype(n, a, 0);
  check_dtype(n, b, a->dtype);
  if (a->rank < 1 || b->rank < 1)
    fm_fail("node '%s' (MatMul): operands must have rank >= 1 (got %d and %d)", n->name, a->rank, b->rank);
  mm->a = a, mm->b = b, mm->y = n->out[0];
  mm->a1 = a->rank == 1, mm->b1 = b->rank == 1;
  mm->M = mm->a1 ? 1 : a->dims[a->rank - 2];
  mm->K = a->dims[a->rank - 1];
  int64_t k2 = mm->b1 ? b->dims[0] : b->dims[b->rank - 2];
  mm->N = mm->b1 ? 1 : b->dims[b->rank - 1];
  if (mm->K != k2) {
    Arena ar = {0};
    char sa[64], sb[64];
    snprintf(sa, sizeof sa, "%s", fm_shape_str(&ar, a));
    snprintf(sb, sizeof sb, "%s", fm_shape_str(&ar, b));
    fm_arena_free(&ar);
    fm_fail("node '%s' (MatMul): inner dims differ: %s x %s", n->name, sa, sb);
  }
  /* batch dims: numpy broadcasting of A[:-2] and B[:-2] */
  int nba = a->rank > 2 ? a->rank - 2 : 0, nbb = b->rank > 2 ? b->rank - 2 : 0;
  mm->nb = nba > nbb ? nba : nbb;
  for (int d = 0; d < mm->nb; d++) {
    int da = d - (mm->nb - nba), db = d - (mm->nb - nbb);
    int64_t x = da >= 0 ? a->dims[da] : 1, y = db >= 0 ? b->dims[db] : 1;
    mm->abd[d] = x, mm->bbd[d] = y;
    if (x == 1) mm->batch[d] = y;
    else if (y == 1 || x == y) mm->batch[d] = x;
    else fm_fail("node '%s' (MatMul): batch dim %d of '%s' (%lld) and '%s' (%lld) cannot be broadcast",
                 n->name, d, a->name, (long long)x, b->name, (long long)y);
  }
}

void fm_infer_MatMul(Graph *g, Node *n) {
  FmMatMul mm;
  fm_matmul_setup(n, &mm);
  int64_t dims[FM_MAXRANK];
  int r = 0;
  for (int d = 0; d < mm.nb; d++) dims[r++] = mm.batch[d];
  if (!mm.a1) dims[r++] = mm.M;
  if (!mm.b1) dims[r++] = mm.N;
  fm_set_shape(n->out[0], mm.a->dtype, r, dims);
}

/* Offset (in matrices) of one operand's matrix for output batch index bi[]. */
KExpr *fm_matmul_batch_off(KB *b, const FmMatMul *mm, const int64_t *opd, KExpr **bi) {
  KExpr *e = k_i(0);
  for (int d = 0; d < mm->nb; d++) {
    int bc = opd[d] == 1 && mm->batch[d] != 1;
    e = k_add(k_mul(e, kb_dim(b, opd[d])), bc ? k_i(0) : bi[d]);
  }
  return e;
}

static void matmul_direct(KB *b, Node *n, const FmMatMul *mm) {
  static const char *bn[] = {"b0", "b1", "b2", "b3", "b4", "b5"};
  FmDType t = mm->y->dtype;
  KBuf *A = kb_in(b, 0), *B = kb_in(b, 1), *Y = kb_out(b, 0);
  kb_comment(b, "MatMul direct");
  KExpr *M = kb_dim(b, mm->M), *N = kb_dim(b, mm->N), *K = kb_dim(b, mm->K);
  KExpr *bi[FM_MAXRANK];
  for (int d = 0; d < mm->nb; d++)
    bi[d] = k_var(kb_for(b, bn[d], k_i(0), kb_dim(b, mm->batch[d]), d == 0 ? KL_PARALLEL : KL_SERIAL));
  KExpr *aoff = k_mul(fm_matmul_batch_off(b, mm, mm->abd, bi), k_mul(M, K));
  KExpr *boff = k_mul(fm_matmul_batch_off(b, mm, mm->bbd, bi), k_mul(K, N));
  KExpr *yoff = k_i(0);
  for (int d = 0; d < mm->nb; d++) yoff = k_add(k_mul(yoff, kb_dim(b, mm->batch[d])), bi[d]);
  yoff = k_mul(yoff, k_mul(M, N));
  KVar *i = kb_for(b, "i", k_i(0), M, mm->nb ? KL_SERIAL : KL_PARALLEL);
  KVar *j = kb_for(b, "j", k_i(0), N, KL_SERIAL);
  KVar *acc = kb_let(b, "acc", t, k_const(t, 0));
  KVar *k = kb_for(b, "k", k_i(0), K, KL_SERIAL);
  KExpr *av = k_load(A, k_add(aoff, k_add(k_mul(k_var(i), K), k_var(k))));
  KExpr *bv = k_load(B, k_add(boff, k_add(k_mul(k_var(k), N), k_var(j))));
  kb_acc(b, acc, KB_ADD, k_mul(av, bv));
  kb_end(b);
  fm_dense_store(b, n, Y, k_add(yoff, k_add(k_mul(k_var(i), N), k_var(j))), k_var(acc));
  kb_end(b);
  kb_end(b);
  for (int d = 0; d < mm->nb; d++) kb_end(b);
}

void fm_lower_MatMul(KB *b, Node *n) {
  FmMatMul mm;
  fm_matmul_setup(n, &mm);
  if (!fm_gemm_direct(b) && fm_matmul_lower_sgemm(b, n, &mm)) return;
  matmul_direct(b, n, &mm);
}
