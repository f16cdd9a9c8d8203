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

#endif /* FM_CPU_ADDONLY_C */
