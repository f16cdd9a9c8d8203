/* kroutines.c - the exact operation counts of the CPU kernel library's routines
 * (fm_cpu.h's FM_CPU_ROUTINES), from a call's arguments. The cost model
 * (kcost.c) uses them for every call whose integer arguments are static; the
 * formulas are the ones each routine's comment in compiler/cpu/cpu.c states. */
#include "kernel/kernel.h"

static double span(int64_t a, int64_t b) { return b > a ? (double)(b - a) : 0; }

/* fm_sgemm(m0, m1, n0, n1, K, A, lda, tA, B, ldb, tB, C, ldc, acc):
   (m1-m0)*(n1-n0)*K multiply-adds */
int fm_count_sgemm(const FmArg *a, double *muls, double *adds) {
  double k = a[4].i > 0 ? (double)a[4].i : 0;
  *muls = *adds = span(a[0].i, a[1].i) * span(a[2].i, a[3].i) * k;
  return 1;
}

int fm_count_none(const FmArg *a, double *muls, double *adds) {
  (void)a;
  *muls = *adds = 0;
  return 1;
}

/* fm_sgemm_pb(m0, m1, n, K, A, lda, bp, C, ldc, bias, hasbias, relu):
   (m1-m0)*n*K multiply-adds, plus one add per output with a bias */
int fm_count_sgemm_pb(const FmArg *a, double *muls, double *adds) {
  double outs = span(a[0].i, a[1].i) * (a[2].i > 0 ? (double)a[2].i : 0);
  double k = a[3].i > 0 ? (double)a[3].i : 0;
  *muls = outs * k;
  *adds = outs * k + (a[10].i ? outs : 0);
  return 1;
}

/* fm_ternary_gemm(n0, n1, m0, m1, K, X, ldx, msk, kc, alpha, hasalpha, bias, hasbias, relu, Y, ldy):
   per sample, one add per nonzero weight of outputs [m0, m1) (the low 16 bits of
   each mask word), one multiply per output with alpha, one add per output with a bias */
int fm_count_ternary_gemm(const FmArg *a, double *muls, double *adds) {
  const int32_t *msk = a[7].p;
  if (!msk) return 0;
  double ns = span(a[0].i, a[1].i), outs = ns * span(a[2].i, a[3].i), nnz = 0;
  for (int64_t m = a[2].i; m < a[3].i; m++)
    for (int64_t c = 0; c < a[8].i; c++) nnz += __builtin_popcount((uint32_t)msk[m * a[8].i + c] & 0xffffu);
  *muls = a[10].i ? outs : 0;
  *adds = ns * nnz + (a[12].i ? outs : 0);
  return 1;
}

/* fm_addconv(q0, q1, x, plan, ps, pe, acc, ldacc, nr): (q1-q0) * sum over the groups of
   plan[ps .. pe) (code, np, nm, np + nm offsets) of (np + nm - 1 + nonzero channels r < nr) adds */
int fm_count_addconv(const FmArg *a, double *muls, double *adds) {
  const int32_t *plan = a[3].p;
  if (!plan) return 0;
  double per = 0;
  for (int64_t p = a[4].i; p < a[5].i; p += 3 + plan[p + 1] + plan[p + 2]) {
    per += plan[p + 1] + plan[p + 2] - 1;
    for (int64_t r = 0; r < a[8].i && r < 4; r++) per += (uint32_t)plan[p] >> (2 * r) & 1u;
  }
  *muls = 0;
  *adds = span(a[0].i, a[1].i) * per;
  return 1;
}

/* fm_wino_gemm(a2, Kp, C, nt, U, V, ldv, M): the lowering (ops/winograd.c) states the
   count, a2 * K * C * nt multiply-adds: the rows K..Kp that pad Kp to a multiple of 8
   are zero rows of U, executed (a2 * (Kp - K) * C * nt more) but not counted. */
int fm_count_wino_gemm(const FmArg *a, double *muls, double *adds) {
  (void)a, (void)muls, (void)adds;
  return 0;
}
