/* cpu_winograd.c - the CPU kernel library, part 3 (after cpu.c and cpu_addonly.c in the
 * one text; cpu.c's rules hold): the batched GEMM of the Winograd convolution
 * (ops/winograd.c).
 *
 * fm_wino_gemm - one product per Winograd position q of a tile block:
 *
 *   fm_wino_gemm(a2, Kp, C, nt, U, V, ldv, M)
 *
 *   for q < a2, k < Kp, t < nt:   M[(q*Kp + k)*ldv + t] = sum_c U_q[k][c] * V[(q*C + c)*ldv + t]
 *
 *   U is packed at compile time as [q][Kp/8][C][8] (row k = kb*8 + r at U[((q*(Kp/8) + kb)*C
 *   + c)*8 + r], rows >= K zero), so Kp is a multiple of 8. V and M are the transformed
 *   input and the products, tiles contiguous (ld ldv >= nt, a multiple of 16); only
 *   columns [0, nt) are read and written. Work: a2 * Kp * C * nt multiply-adds (the cost
 *   report counts the a2 * K * C * nt that matter). AVX-512: an 8 x 32 register tile (8 broadcasts of U,
 *   2 vector loads of V, 16 FMAs per channel); otherwise portable loops.
 */
#ifndef FM_CPU_WINOGRAD_C
#define FM_CPU_WINOGRAD_C

#if defined(FM_HAVE_AVX512)
/* rows kb*8 .. kb*8+7 of M_q for columns [j, j + 16*nv), nv = 1 or 2; nv = 1 with
   fewer than 16 columns (mask) reads and writes only those */
FM_INLINE void fm_wino_tile(int64_t C, const float *u, const float *v, int64_t ldv, float *m, int64_t ldm, int nv,
                            __mmask16 mask) {
  __m512 c0[8], c1[8];
  for (int r = 0; r < 8; r++) c0[r] = c1[r] = _mm512_setzero_ps();
  if (nv == 2) {
    for (int64_t c = 0; c < C; c++, u += 8, v += ldv) {
      __m512 b0 = _mm512_loadu_ps(v), b1 = _mm512_loadu_ps(v + 16);
      for (int r = 0; r < 8; r++) {
        __m512 a = _mm512_set1_ps(u[r]);
        c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
        c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
      }
    }
    for (int r = 0; r < 8; r++) _mm512_storeu_ps(m + r * ldm, c0[r]), _mm512_storeu_ps(m + r * ldm + 16, c1[r]);
  } else {
    for (int64_t c = 0; c < C; c++, u += 8, v += ldv) {
      __m512 b0 = _mm512_maskz_loadu_ps(mask, v);
      for (int r = 0; r < 8; r++) c0[r] = _mm512_fmadd_ps(_mm512_set1_ps(u[r]), b0, c0[r]);
    }
    for (int r = 0; r < 8; r++) _mm512_mask_storeu_ps(m + r * ldm, mask, c0[r]);
  }
}
#endif

FM_API void fm_wino_gemm(int64_t a2, int64_t Kp, int64_t C, int64_t nt, const float *U, const float *V, int64_t ldv,
                         float *M) {
  int64_t nkb = Kp / 8;
  for (int64_t q = 0; q < a2; q++) {
    const float *vq = V + q * C * ldv;
    float *mq = M + q * Kp * ldv;
    for (int64_t kb = 0; kb < nkb; kb++) {
      const float *u = U + (q * nkb + kb) * C * 8;
      float *m = mq + kb * 8 * ldv;
#if defined(FM_HAVE_AVX512)
      int64_t j = 0;
      for (; j + 32 <= nt; j += 32) fm_wino_tile(C, u, vq + j, ldv, m + j, ldv, 2, 0xffff);
      for (; j < nt; j += 16)
        fm_wino_tile(C, u, vq + j, ldv, m + j, ldv, 1, nt - j >= 16 ? 0xffff : (__mmask16)((1u << (nt - j)) - 1));
#else
      for (int r = 0; r < 8; r++) {
        float *mr = m + r * ldv;
        for (int64_t j = 0; j < nt; j++) mr[j] = 0;
        for (int64_t c = 0; c < C; c++) {
          float w = u[c * 8 + r];
          const float *vc = vq + c * ldv;
          for (int64_t j = 0; j < nt; j++) mr[j] = FM_MADD(w, vc[j], mr[j]);
        }
      }
#endif
    }
  }
}
#endif
