/* cpu_addonly.c - the CPU kernel library, part 2 (after cpu.c in the one text, see cpu.c
 * for the rules): float min/max with libm's semantics, inline.
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

#endif /* FM_CPU_ADDONLY_C */
