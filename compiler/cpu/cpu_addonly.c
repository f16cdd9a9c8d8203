/* cpu_addonly.c - the CPU kernel library, part 2 (after cpu.c in the one text, see cpu.c
 * for the rules): float min/max and ldexpf with libm's semantics, inline.
 *
 * fm_fminf / fm_fmaxf (and the double fm_fmin / fm_fmax) are the kernel IR's KB_MIN /
 * KB_MAX on floats, in the C printer (kops.def) and in the interpreter (kinterp.c), so
 * folded constants and generated code agree bit for bit. They are glibc's (x86-64)
 * fminf/fmaxf, signed zeros included:
 *   fmaxf(x, y) = (x > y || y != y) ? x : y      (a NaN operand gives the other one;
 *   fminf(x, y) = (x < y || y != y) ? x : y       of equal values, the second: -0, +0 -> +0)
 * but, unlike the libm calls (which gcc inlines only with -ffinite-math-only), plain
 * compares and selects that vectorise: every Relu/Clip/HardSigmoid element used to be
 * a call into libm.
 */
#ifndef FM_CPU_ADDONLY_C
#define FM_CPU_ADDONLY_C

FM_API_INLINE float fm_fmaxf(float x, float y) { return (x > y || y != y) ? x : y; }
FM_API_INLINE float fm_fminf(float x, float y) { return (x < y || y != y) ? x : y; }
FM_API_INLINE double fm_fmax(double x, double y) { return (x > y || y != y) ? x : y; }
FM_API_INLINE double fm_fmin(double x, double y) { return (x < y || y != y) ? x : y; }

/* fm_ldexpf(x, n) = ldexpf(x, n), bit for bit: the kernel IR's KB_LDEXP on float32, the
 * exponent add that replaces a multiplication by a power of two (pow2 kernels). A
 * normal x with a normal result is an integer add on the exponent field; zeros,
 * subnormals, inf/NaN and results out of the normal range take one rounding of the exact
 * double product x * 2^n (n clamped to +-400: the result is then 0 or inf either way).
 * Both sides are computed and one selected, so loops vectorise; libm's ldexpf was a call
 * per element. */
FM_API_INLINE float fm_ldexpf(float x, int n) {
  uint32_t u, r;
  memcpy(&u, &x, 4);
  int e = (int)(u >> 23 & 255u), m = n < -400 ? -400 : n > 400 ? 400 : n;
  r = u + ((uint32_t)m << 23);
  uint64_t pb = (uint64_t)(m + 1023) << 52;
  double p;
  memcpy(&p, &pb, 8);
  float slow = (float)((double)x * p), fast;
  memcpy(&fast, &r, 4);
  return e != 0 && e != 255 && e + m >= 1 && e + m <= 254 ? fast : slow;
}

/* ---- fm_addconv: a ternary convolution by shared partial sums (ops/fewmul_addconv.c) ----
 *
 *   fm_addconv(q0, q1, x, plan, ps, pe, acc, ldacc, nr)
 *
 *   for q in [q0, q1) and r < nr (nr <= 4 output channels, a "tile"):
 *     acc[r*ldacc + q] = sum over the groups g of plan[ps .. pe):  t(g, r) * s(g, q)
 *     s(g, q) = x[q + off_0] + ... + x[q + off_{np-1}] - x[q + off_np] - ... - x[q + off_{np+nm-1}]
 *   A group is plan[p] = code, plan[p+1] = np >= 1, plan[p+2] = nm, plan[p+3 ..] = its
 *   np + nm input offsets: all the taps whose weights over the tile's 4 channels have the
 *   same pattern (np of them) or its negation (nm). code bit 2r: t(g, r) != 0, bit
 *   2r+1: t(g, r) = -1. So each tap costs one add for all 4 channels and each group one
 *   add per nonzero channel, where the tap list per channel costs one add per nonzero
 *   weight: for a ternary weight at 55% density about half the adds, no multiplication.
 *   Exact count: (q1-q0) * sum over the groups of (np + nm - 1 + nonzero channels r < nr).
 *   AVX-512: 64 positions per pass (four vectors, the tail masked) with the 4x4 sums in
 *   registers; otherwise the same over 16 positions in C. The order of the adds is the
 *   same in every path (a sum starts with its first tap; acc starts with 0 plus the first
 *   group), so the paths agree bit for bit.
 */
#if defined(FM_HAVE_AVX512)
/* 64 positions per pass: four independent add chains per group sum (the add latency,
   not the throughput, bounds two), 4 channels x 4 vectors of sums in 16 registers */
#define FM_AC_LD(o, v) _mm512_maskz_loadu_ps(k##v, xq + (o) + 16 * v)
/* acc_r += s under the +1 mask, -= s under the -1 mask: masked, not branched (the
   patterns of a tile are random, a branch per channel mispredicted about half the time) */
#define FM_AC_ONE(r, v)                                                                  \
  {                                                                                      \
    const __mmask16 kp = (__mmask16)(0u - (code >> (2 * r) & ~(code >> (2 * r + 1)) & 1u)); \
    const __mmask16 km = (__mmask16)(0u - (code >> (2 * r + 1) & 1u));                   \
    v##0 = _mm512_mask_add_ps(v##0, kp, v##0, s0), v##1 = _mm512_mask_add_ps(v##1, kp, v##1, s1); \
    v##2 = _mm512_mask_add_ps(v##2, kp, v##2, s2), v##3 = _mm512_mask_add_ps(v##3, kp, v##3, s3); \
    v##0 = _mm512_mask_sub_ps(v##0, km, v##0, s0), v##1 = _mm512_mask_sub_ps(v##1, km, v##1, s1); \
    v##2 = _mm512_mask_sub_ps(v##2, km, v##2, s2), v##3 = _mm512_mask_sub_ps(v##3, km, v##3, s3); \
  }
#define FM_AC_ST(r, v)                                                                   \
  _mm512_mask_storeu_ps(y + r * ldacc, k0, v##0), _mm512_mask_storeu_ps(y + r * ldacc + 16, k1, v##1), \
  _mm512_mask_storeu_ps(y + r * ldacc + 32, k2, v##2), _mm512_mask_storeu_ps(y + r * ldacc + 48, k3, v##3)
FM_INLINE __mmask16 fm_ac_mask(int64_t left) {
  return left >= 16 ? (__mmask16)0xFFFF : left > 0 ? (__mmask16)((1u << left) - 1) : (__mmask16)0;
}
FM_API void fm_addconv(int64_t q0, int64_t q1, const float *x, const int32_t *plan, int64_t ps, int64_t pe,
                       float *acc, int64_t ldacc, int64_t nr) {
  for (int64_t q = q0; q < q1; q += 64) {
    int64_t left = q1 - q;
    const __mmask16 k0 = fm_ac_mask(left), k1 = fm_ac_mask(left - 16), k2 = fm_ac_mask(left - 32),
                    k3 = fm_ac_mask(left - 48);
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    __m512 c0 = a0, c1 = a0, c2 = a0, c3 = a0, d0 = a0, d1 = a0, d2 = a0, d3 = a0;
    const float *xq = x + q;
    for (int64_t p = ps; p < pe;) {
      uint32_t code = (uint32_t)plan[p];
      int32_t n = plan[p + 1], nm = plan[p + 2];
      const int32_t *o = plan + p + 3;
      p += 3 + n + nm;
      __m512 s0 = FM_AC_LD(o[0], 0), s1 = FM_AC_LD(o[0], 1), s2 = FM_AC_LD(o[0], 2), s3 = FM_AC_LD(o[0], 3);
      for (int32_t i = 1; i < n; i++) {
        s0 = _mm512_add_ps(s0, FM_AC_LD(o[i], 0)), s1 = _mm512_add_ps(s1, FM_AC_LD(o[i], 1));
        s2 = _mm512_add_ps(s2, FM_AC_LD(o[i], 2)), s3 = _mm512_add_ps(s3, FM_AC_LD(o[i], 3));
      }
      for (int32_t i = n; i < n + nm; i++) {
        s0 = _mm512_sub_ps(s0, FM_AC_LD(o[i], 0)), s1 = _mm512_sub_ps(s1, FM_AC_LD(o[i], 1));
        s2 = _mm512_sub_ps(s2, FM_AC_LD(o[i], 2)), s3 = _mm512_sub_ps(s3, FM_AC_LD(o[i], 3));
      }
      FM_AC_ONE(0, a)
      FM_AC_ONE(1, b)
      FM_AC_ONE(2, c)
      FM_AC_ONE(3, d)
    }
    float *y = acc + q;
    FM_AC_ST(0, a);
    if (nr > 1) FM_AC_ST(1, b);
    if (nr > 2) FM_AC_ST(2, c);
    if (nr > 3) FM_AC_ST(3, d);
  }
}
#else
FM_API void fm_addconv(int64_t q0, int64_t q1, const float *x, const int32_t *plan, int64_t ps, int64_t pe,
                       float *acc, int64_t ldacc, int64_t nr) {
  for (int64_t q = q0; q < q1; q += 16) {
    int64_t w = q1 - q < 16 ? q1 - q : 16;
    float a[4][16], s[16];
    memset(a, 0, sizeof a);
    const float *xq = x + q;
    for (int64_t p = ps; p < pe;) {
      uint32_t code = (uint32_t)plan[p];
      int32_t n = plan[p + 1], nm = plan[p + 2];
      const int32_t *o = plan + p + 3;
      p += 3 + n + nm;
      for (int64_t l = 0; l < w; l++) s[l] = xq[o[0] + l];
      for (int32_t i = 1; i < n; i++)
        for (int64_t l = 0; l < w; l++) s[l] += xq[o[i] + l];
      for (int32_t i = n; i < n + nm; i++)
        for (int64_t l = 0; l < w; l++) s[l] -= xq[o[i] + l];
      for (int r = 0; r < 4; r++)
        if (code >> (2 * r) & 1u) {
          if (code >> (2 * r + 1) & 1u)
            for (int64_t l = 0; l < w; l++) a[r][l] -= s[l];
          else
            for (int64_t l = 0; l < w; l++) a[r][l] += s[l];
        }
    }
    for (int64_t r = 0; r < nr; r++)
      for (int64_t l = 0; l < w; l++) acc[r * ldacc + q + l] = a[r][l];
  }
}
#endif

#endif /* FM_CPU_ADDONLY_C */
