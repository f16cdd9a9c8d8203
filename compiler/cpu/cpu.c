/* cpu.c - the CPU kernel library: routines and macros that generated code uses.
 *
 * This text (with the other .c files of compiler/cpu/, in name order) is
 *   - compiled ONCE into the static library libfm_cpu.a with -DFM_CPU_LIB (CMake:
 *     gen/fm_cpu_all.c), whose API is declared in compiler/cpu/fm_cpu.h; the kernel
 *     interpreter (compiler/kernel/kinterp.c) and the trainer (trainer/conv_fast.c)
 *     call it there, built for the machine that builds fewmul;
 *   - embedded as text (fm_cpu_text) at the top of every generated model.c, where
 *     its routines are static and its #if __AVX2__ / __AVX512F__ paths follow the
 *     generated code's own flags (-march of `fewmul compile --target`), not fewmul's.
 * So folding at compile time and the emitted code run one implementation. Rules:
 * plain C11; API functions FM_API / FM_API_INLINE (declared in fm_cpu.h), internal
 * ones FM_INLINE (unused static inline) or `__attribute__((unused)) static`; only
 * <stdint.h> <string.h> <math.h> (and <immintrin.h> with AVX2), no malloc, no
 * globals, and every identifier starts with fm_ / FM_.
 *
 * Operation counts (the cost model's; each routine's comment below repeats its own):
 *   fm_sgemm        muls = adds = (m1-m0)*(n1-n0)*K
 *   fm_im2col_pack  none (data movement)
 *   fm_sgemm_pb     muls = (m1-m0)*n*K, adds = (m1-m0)*n*K + hasbias*(m1-m0)*n
 *   fm_ternary_gemm muls = hasalpha*(n1-n0)*(m1-m0),
 *                   adds = (n1-n0)*(nonzeros of rows m0..m1-1 of W) + hasbias*(n1-n0)*(m1-m0)
 * fm_cpu.h's FM_CPU_ROUTINES table lists them with their argument kinds, and the
 * cost model (kernel/kcost.c) evaluates these counts from the call's arguments.
 *
 * ---- calling a routine from kernel IR ----
 * A routine is a KS_CALL statement: kb_call(b, name, muls, adds, nargs, args...).
 * muls/adds are FM_I64 expressions of the work it does (the cost report counts
 * them); args are KExpr*: integers as FM_I64 expressions (k_i, k_var, kb_dim ...),
 * pointers as k_addr(buf, first_element_index). A routine must also be listed in
 * fm_cpu.h's FM_CPU_ROUTINES table (one line: kinds and operation counts) and get
 * an extent-checking wrapper in the interpreter (kinterp.c).
 *
 * fm_sgemm - C = op(A) * op(B), or C += when accumulate, row-major, single thread:
 *
 *   fm_sgemm(m0, m1, n0, n1, K, A, lda, transA, B, ldb, transB, C, ldc, accumulate)
 *
 *   computes rows [m0, m1) and columns [n0, n1) of the M x N result C:
 *     C[i*ldc + j] (+)= sum_k opA(i, k) * opB(k, j)
 *     opA(i, k) = transA ? A[k*lda + i] : A[i*lda + k]
 *     opB(k, j) = transB ? B[j*ldb + k] : B[k*ldb + j]
 *   The range lets the caller split the work over threads: give each iteration of a
 *   KL_PARALLEL loop a block of rows (or of columns when M is small).
 *
 *   Kernel IR for Y[M x N] = X[M x K] * W[K x N], parallel over 64-row blocks:
 *     KVar *t = kb_for(b, "mb", k_i(0), k_i((M + 63) / 64), KL_PARALLEL);
 *       KExpr *m0 = k_mul(k_var(t), k_i(64)), *m1 = k_min(k_add(m0, k_i(64)), k_i(M));
 *       KExpr *work = k_mul(k_mul(k_sub(m1, m0), k_i(N)), k_i(K));
 *       kb_call(b, "fm_sgemm", work, work, 14, m0, m1, k_i(0), k_i(N), k_i(K),
 *               k_addr(x, k_i(0)), k_i(K), k_i(0),     // A, lda, transA
 *               k_addr(w, k_i(0)), k_i(N), k_i(0),     // B, ldb, transB
 *               k_addr(y, k_i(0)), k_i(N), k_i(0));    // C, ldc, accumulate
 *     kb_end(b);
 *   (M may be symbolic: use kb_dim(b, d) instead of k_i(M).) Pointers point at
 *   element 0 of the full matrices; the range selects the block. Work per call is
 *   (m1-m0)*(n1-n0)*K multiplications and as many additions.
 *
 *   Packing buffers live on the stack (about 330 KB), so no scratch is needed.
 *   Speed: 8x32 AVX-512 (6x16 AVX2/FMA) register tile over packed A (MC x KC) and
 *   B (KC x NC) panels; a portable C tile when compiled without AVX2/FMA; dedicated
 *   paths for fewer than 4 rows (GEMV-like, e.g. a fully connected layer at batch 1).
 *
 * fm_im2col_pack + fm_sgemm_pb - Conv as a GEMM whose B operand im2col writes
 *   already packed, with bias and Relu applied as the tile is stored (below).
 *
 * fm_ternary_gemm - Y = alpha[m] * (X times a {-1,0,1} matrix given as bitmasks)
 *   (no alpha: adds only) (+ bias, Relu) with masked vector adds: TernaryGemm
 *   (ops/fewmul.c), below.
 *
 * ---- helpers the C printer (emit_c.c) uses ----
 *   fm_h2f / fm_f2h   float16 <-> float (round to nearest even)
 *   fm_signf, fm_sign, fm_isign, fm_iabs, fm_ipow, fm_imin/imax, fm_umin/umax
 *   FM_PARALLEL_FOR(cond), FM_PARALLEL_FOR2(cond), FM_SIMD, FM_UNROLL4   loop pragmas
 *   that vanish (or degrade) without OpenMP, so no -Wunknown-pragmas.
 */
#ifndef FM_CPU_C
#define FM_CPU_C
#include <stdint.h>
#include <string.h>
#include <math.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define FM_HAVE_AVX2 1
#endif

/* clang warns about unused static inline functions in a .c file: mark them. */
#define FM_INLINE __attribute__((unused)) static inline
/* The library's API (declared in fm_cpu.h): external functions when this text is
   compiled into libfm_cpu.a (FM_CPU_LIB), private to the model when it is embedded
   in generated code. */
#ifdef FM_CPU_LIB
#define FM_LINKAGE
#define FM_API
#define FM_API_INLINE
#else
#define FM_LINKAGE static
#define FM_API __attribute__((unused)) static
#define FM_API_INLINE __attribute__((unused)) static inline
#endif
/* a*b + c: fused where the target has FMA, so the result does not depend on the
   compiler's -ffp-contract setting (the interpreter and model.c agree). */
#ifdef __FMA__
#define FM_MADD(a, b, c) fmaf(a, b, c)
#else
#define FM_MADD(a, b, c) ((a) * (b) + (c))
#endif

/* ---- loop pragmas ---- */
#define FM_PRAGMA(x) _Pragma(#x)
#if defined(_OPENMP)
#define FM_PARALLEL_FOR(cond) FM_PRAGMA(omp parallel for if(cond))
#define FM_PARALLEL_FOR2(cond) FM_PRAGMA(omp parallel for collapse(2) if(cond))
#else
#define FM_PARALLEL_FOR(cond)
#define FM_PARALLEL_FOR2(cond)
#endif
/* clang turns a loop hint it cannot honour into a warning (-Wpass-failed), so the
   vector and unroll hints are for gcc only; clang's vectoriser needs no hint. */
#if defined(__clang__) || !defined(__GNUC__)
#define FM_SIMD
#define FM_UNROLL4
#elif defined(_OPENMP)
#define FM_SIMD FM_PRAGMA(omp simd)
#define FM_UNROLL4 FM_PRAGMA(GCC unroll 4)
#else
#define FM_SIMD FM_PRAGMA(GCC ivdep)
#define FM_UNROLL4 FM_PRAGMA(GCC unroll 4)
#endif

/* The glue of a generated model (its run function: one call per kernel, pointer
   arithmetic) is compiled at -O1: gcc -O3 spends superlinear time on a function of
   thousands of calls (a 10,000-node graph took minutes) and gains nothing there; the
   kernels keep the model's -O3 (gcc does not inline across optimisation levels). */
#if defined(__GNUC__) && !defined(__clang__)
#define FM_GLUE __attribute__((optimize("O1")))
#else
#define FM_GLUE
#endif

/* ---- scalar helpers ---- */
FM_API_INLINE float fm_h2f(uint16_t h) {
  uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31u, m = h & 1023u, u;
  if (e == 31) u = s | 0x7f800000u | (m << 13);
  else if (e) u = s | ((e + 112) << 23) | (m << 13);
  else if (!m) u = s;
  else { /* subnormal half: normalise into a float */
    e = 113;
    while (!(m & 1024)) m <<= 1, e--;
    u = s | (e << 23) | ((m & 1023u) << 13);
  }
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* Round to nearest even (F. Giesen's float_to_half_fast3_rtne). */
FM_API_INLINE uint16_t fm_f2h(float x) {
  uint32_t f, sign, o;
  const uint32_t infty = 255u << 23, f16max = (127u + 16) << 23, magic = 126u << 23;
  memcpy(&f, &x, 4);
  sign = f & 0x80000000u;
  f ^= sign;
  if (f >= f16max) o = f > infty ? 0x7e00 : 0x7c00;
  else if (f < (113u << 23)) { /* subnormal or zero: let the FPU round */
    float v, mg;
    memcpy(&v, &f, 4), memcpy(&mg, &magic, 4);
    v += mg;
    memcpy(&f, &v, 4);
    o = f - magic;
  } else {
    uint32_t odd = (f >> 13) & 1;
    f += 0xc8000fffu; /* rebias exponent (15-127)<<23 and add the rounding bias */
    f += odd;
    o = f >> 13;
  }
  return (uint16_t)(o | (sign >> 16));
}

FM_API_INLINE float fm_signf(float x) { return x > 0 ? 1.0f : x < 0 ? -1.0f : x; }
FM_API_INLINE double fm_sign(double x) { return x > 0 ? 1.0 : x < 0 ? -1.0 : x; }
FM_API_INLINE int64_t fm_isign(int64_t x) { return (x > 0) - (x < 0); }
FM_INLINE int64_t fm_imin(int64_t a, int64_t b) { return a < b ? a : b; }
FM_INLINE int64_t fm_imax(int64_t a, int64_t b) { return a > b ? a : b; }
FM_INLINE uint64_t fm_umin(uint64_t a, uint64_t b) { return a < b ? a : b; }
FM_INLINE uint64_t fm_umax(uint64_t a, uint64_t b) { return a > b ? a : b; }
FM_API_INLINE int64_t fm_iabs(int64_t x) { return x < 0 ? (int64_t)(0 - (uint64_t)x) : x; }
/* Integer power with C-division semantics for negative exponents, wrapping. */
FM_API_INLINE int64_t fm_ipow(int64_t b, int64_t e) {
  if (e < 0) return b == 1 ? 1 : b == -1 ? ((e & 1) ? -1 : 1) : 0;
  uint64_t r = 1, x = (uint64_t)b;
  for (; e; e >>= 1, x *= x)
    if (e & 1) r *= x;
  return (int64_t)r;
}

/* ---- fm_sgemm ----
 * Register tile MR x NR: 8 x 32 (16 zmm accumulators) with AVX-512, 6 x 16 (12 ymm)
 * with AVX2/FMA, 6 x 16 portable C otherwise. */
#if defined(FM_HAVE_AVX2) && defined(__AVX512F__)
#define FM_HAVE_AVX512 1
#define FM_GEMM_MR 8
#define FM_GEMM_NR 32
#else
#define FM_GEMM_MR 6
#define FM_GEMM_NR 16
#endif
#define FM_GEMM_MC 72
#define FM_GEMM_KC 256
#define FM_GEMM_NC 256

/* Packs op(A)[i0 .. i0+mc) x [p0 .. p0+kc) as MR-row slivers, k-major, zero padded. */
FM_INLINE void fm_sgemm_pack_a(int64_t mc, int64_t kc, const float *A, int64_t lda,
                                   int64_t transA, int64_t i0, int64_t p0, float *ap) {
  for (int64_t ir = 0; ir < mc; ir += FM_GEMM_MR, ap += FM_GEMM_MR * kc) {
    int64_t mr = mc - ir < FM_GEMM_MR ? mc - ir : FM_GEMM_MR;
    if (!transA) {
      for (int64_t r = 0; r < FM_GEMM_MR; r++) {
        const float *src = A + (i0 + ir + r) * lda + p0;
        if (r < mr)
          for (int64_t k = 0; k < kc; k++) ap[k * FM_GEMM_MR + r] = src[k];
        else
          for (int64_t k = 0; k < kc; k++) ap[k * FM_GEMM_MR + r] = 0;
      }
    } else {
      for (int64_t k = 0; k < kc; k++) {
        const float *src = A + (p0 + k) * lda + i0 + ir;
        for (int64_t r = 0; r < FM_GEMM_MR; r++) ap[k * FM_GEMM_MR + r] = r < mr ? src[r] : 0;
      }
    }
  }
}

/* Packs op(B)[p0 .. p0+kc) x [j0 .. j0+nc) as NR-column slivers, k-major, zero padded. */
FM_API_INLINE void fm_sgemm_pack_b(int64_t kc, int64_t nc, const float *B, int64_t ldb,
                                   int64_t transB, int64_t p0, int64_t j0, float *bp) {
  for (int64_t jr = 0; jr < nc; jr += FM_GEMM_NR, bp += FM_GEMM_NR * kc) {
    int64_t nr = nc - jr < FM_GEMM_NR ? nc - jr : FM_GEMM_NR;
    if (!transB) {
      for (int64_t k = 0; k < kc; k++) {
        const float *src = B + (p0 + k) * ldb + j0 + jr;
        float *dst = bp + k * FM_GEMM_NR;
        if (nr == FM_GEMM_NR) memcpy(dst, src, sizeof(float) * FM_GEMM_NR);
        else
          for (int64_t c = 0; c < FM_GEMM_NR; c++) dst[c] = c < nr ? src[c] : 0;
      }
    } else {
      for (int64_t c = 0; c < FM_GEMM_NR; c++) {
        const float *src = B + (j0 + jr + c) * ldb + p0;
        if (c < nr)
          for (int64_t k = 0; k < kc; k++) bp[k * FM_GEMM_NR + c] = src[k];
        else
          for (int64_t k = 0; k < kc; k++) bp[k * FM_GEMM_NR + c] = 0;
      }
    }
  }
}

/* c[MR x NR] = A-sliver * b-sliver over kc (+ c when accum), then + bias[r] per row
   when bias is not NULL, then max(., 0) when relu - the order of the separate passes
   it replaces, so the sums round the same. A(r, k) = a[r*ars + k*aks]: a packed
   sliver (1, MR) or rows of a row-major matrix (lda, 1); b rows are NR floats apart.
   Always inlined, so each caller gets a copy specialised to its strides. */
__attribute__((unused, always_inline)) static inline void
fm_sgemm_ukr(int64_t kc, const float *a, int64_t ars, int64_t aks, const float *b, float *c,
             int64_t ldc, int64_t accum, const float *bias, int64_t relu) {
#if defined(FM_HAVE_AVX512)
  __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  __m512 c60 = c00, c61 = c00, c70 = c00, c71 = c00;
  for (int64_t k = 0; k < kc; k++, a += aks, b += 32) {
    __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), x;
#define FM_ROW_(r)                            \
  x = _mm512_set1_ps(a[r * ars]);             \
  c##r##0 = _mm512_fmadd_ps(x, b0, c##r##0); \
  c##r##1 = _mm512_fmadd_ps(x, b1, c##r##1);
    FM_ROW_(0) FM_ROW_(1) FM_ROW_(2) FM_ROW_(3) FM_ROW_(4) FM_ROW_(5) FM_ROW_(6) FM_ROW_(7)
#undef FM_ROW_
  }
  const __m512 z = _mm512_setzero_ps();
#define FM_OUT_(r)                                                                   \
  if (accum) {                                                                       \
    c##r##0 = _mm512_add_ps(c##r##0, _mm512_loadu_ps(c + r * ldc));                  \
    c##r##1 = _mm512_add_ps(c##r##1, _mm512_loadu_ps(c + r * ldc + 16));             \
  }                                                                                  \
  if (bias) {                                                                        \
    c##r##0 = _mm512_add_ps(c##r##0, _mm512_set1_ps(bias[r]));                       \
    c##r##1 = _mm512_add_ps(c##r##1, _mm512_set1_ps(bias[r]));                       \
  }                                                                                  \
  if (relu) c##r##0 = _mm512_max_ps(c##r##0, z), c##r##1 = _mm512_max_ps(c##r##1, z); \
  _mm512_storeu_ps(c + r * ldc, c##r##0);                                            \
  _mm512_storeu_ps(c + r * ldc + 16, c##r##1);
  FM_OUT_(0) FM_OUT_(1) FM_OUT_(2) FM_OUT_(3) FM_OUT_(4) FM_OUT_(5) FM_OUT_(6) FM_OUT_(7)
#undef FM_OUT_
#elif defined(FM_HAVE_AVX2)
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int64_t k = 0; k < kc; k++, a += aks, b += 16) {
    __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), x;
#define FM_ROW_(r)                        \
  x = _mm256_broadcast_ss(a + r * ars);   \
  c##r##0 = _mm256_fmadd_ps(x, b0, c##r##0); \
  c##r##1 = _mm256_fmadd_ps(x, b1, c##r##1);
    FM_ROW_(0) FM_ROW_(1) FM_ROW_(2) FM_ROW_(3) FM_ROW_(4) FM_ROW_(5)
#undef FM_ROW_
  }
  const __m256 z = _mm256_setzero_ps();
#define FM_OUT_(r)                                                                   \
  if (accum) {                                                                       \
    c##r##0 = _mm256_add_ps(c##r##0, _mm256_loadu_ps(c + r * ldc));                  \
    c##r##1 = _mm256_add_ps(c##r##1, _mm256_loadu_ps(c + r * ldc + 8));              \
  }                                                                                  \
  if (bias) {                                                                        \
    c##r##0 = _mm256_add_ps(c##r##0, _mm256_set1_ps(bias[r]));                       \
    c##r##1 = _mm256_add_ps(c##r##1, _mm256_set1_ps(bias[r]));                       \
  }                                                                                  \
  if (relu) c##r##0 = _mm256_max_ps(c##r##0, z), c##r##1 = _mm256_max_ps(c##r##1, z); \
  _mm256_storeu_ps(c + r * ldc, c##r##0);                                            \
  _mm256_storeu_ps(c + r * ldc + 8, c##r##1);
  FM_OUT_(0) FM_OUT_(1) FM_OUT_(2) FM_OUT_(3) FM_OUT_(4) FM_OUT_(5)
#undef FM_OUT_
#else
  float t[FM_GEMM_MR][FM_GEMM_NR];
  memset(t, 0, sizeof t);
  for (int64_t k = 0; k < kc; k++, a += aks, b += FM_GEMM_NR)
    for (int r = 0; r < FM_GEMM_MR; r++)
      for (int j = 0; j < FM_GEMM_NR; j++) t[r][j] = FM_MADD(a[r * ars], b[j], t[r][j]);
  for (int r = 0; r < FM_GEMM_MR; r++)
    for (int j = 0; j < FM_GEMM_NR; j++) {
      float v = accum ? c[r * ldc + j] + t[r][j] : t[r][j];
      if (bias) v = v + bias[r];
      c[r * ldc + j] = relu ? (v > 0 ? v : 0) : v;
    }
#endif
}

/* An mr x nr corner of a tile (mr <= MR, nr <= NR) from a packed A sliver: the full
   tile into t, then the valid part with the epilogue of fm_sgemm_ukr. */
__attribute__((unused, noinline)) static void fm_sgemm_edge(int64_t kc, const float *a, const float *b,
                                                            float *c, int64_t ldc, int64_t mr, int64_t nr,
                                                            int64_t accum, const float *bias, int64_t relu) {
  float t[FM_GEMM_MR * FM_GEMM_NR] __attribute__((aligned(64)));
  fm_sgemm_ukr(kc, a, 1, FM_GEMM_MR, b, t, FM_GEMM_NR, 0, NULL, 0);
  for (int64_t r = 0; r < mr; r++)
    for (int64_t j = 0; j < nr; j++) {
      float v = accum ? c[r * ldc + j] + t[r * FM_GEMM_NR + j] : t[r * FM_GEMM_NR + j];
      if (bias) v = v + bias[r];
      c[r * ldc + j] = relu ? (v > 0 ? v : 0) : v;
    }
}

/* Dot product of two contiguous float vectors. */
FM_INLINE float fm_sdot(int64_t n, const float *x, const float *y) {
  int64_t k = 0;
  float s = 0;
#ifdef FM_HAVE_AVX2
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (; k + 32 <= n; k += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k), _mm256_loadu_ps(y + k), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k + 8), _mm256_loadu_ps(y + k + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k + 16), _mm256_loadu_ps(y + k + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k + 24), _mm256_loadu_ps(y + k + 24), s3);
  }
  for (; k + 8 <= n; k += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k), _mm256_loadu_ps(y + k), s0);
  s0 = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  s = _mm_cvtss_f32(h);
#endif
  for (; k < n; k++) s = FM_MADD(x[k], y[k], s);
  return s;
}

/* Fewer than 4 rows: packing would waste most of a 6-row tile; stream B instead. */
FM_INLINE void fm_sgemm_rows(int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K,
                                 const float *A, int64_t lda, int64_t transA, const float *B,
                                 int64_t ldb, int64_t transB, float *C, int64_t ldc,
                                 int64_t accumulate) {
  for (int64_t i = m0; i < m1; i++) {
    float *c = C + i * ldc;
    if (transB && !transA) {
      for (int64_t j = n0; j < n1; j++) {
        float s = fm_sdot(K, A + i * lda, B + j * ldb);
        c[j] = accumulate ? c[j] + s : s;
      }
      continue;
    }
    if (!accumulate)
      for (int64_t j = n0; j < n1; j++) c[j] = 0;
    for (int64_t k = 0; k < K; k++) {
      float a = transA ? A[k * lda + i] : A[i * lda + k];
      if (!transB) {
        const float *b = B + k * ldb;
        for (int64_t j = n0; j < n1; j++) c[j] = FM_MADD(a, b[j], c[j]);
      } else {
        for (int64_t j = n0; j < n1; j++) c[j] = FM_MADD(a, B[j * ldb + k], c[j]);
      }
    }
  }
}

FM_API void fm_sgemm(int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                                             int64_t K, const float *A, int64_t lda,
                                             int64_t transA, const float *B, int64_t ldb,
                                             int64_t transB, float *C, int64_t ldc,
                                             int64_t accumulate) {
  if (m1 <= m0 || n1 <= n0) return;
  if (K <= 0) {
    if (!accumulate)
      for (int64_t i = m0; i < m1; i++) memset(C + i * ldc + n0, 0, sizeof(float) * (size_t)(n1 - n0));
    return;
  }
  if (m1 - m0 < 4) {
    fm_sgemm_rows(m0, m1, n0, n1, K, A, lda, transA, B, ldb, transB, C, ldc, accumulate);
    return;
  }
  float ap[FM_GEMM_MC * FM_GEMM_KC] __attribute__((aligned(64)));
  float bp[FM_GEMM_KC * FM_GEMM_NC] __attribute__((aligned(64)));
  for (int64_t jc = n0; jc < n1; jc += FM_GEMM_NC) {
    int64_t nc = n1 - jc < FM_GEMM_NC ? n1 - jc : FM_GEMM_NC;
    for (int64_t pc = 0; pc < K; pc += FM_GEMM_KC) {
      int64_t kc = K - pc < FM_GEMM_KC ? K - pc : FM_GEMM_KC;
      int64_t acc = accumulate || pc > 0;
      fm_sgemm_pack_b(kc, nc, B, ldb, transB, pc, jc, bp);
      for (int64_t ic = m0; ic < m1; ic += FM_GEMM_MC) {
        int64_t mc = m1 - ic < FM_GEMM_MC ? m1 - ic : FM_GEMM_MC;
        fm_sgemm_pack_a(mc, kc, A, lda, transA, ic, pc, ap);
        for (int64_t jr = 0; jr < nc; jr += FM_GEMM_NR) {
          int64_t nr = nc - jr < FM_GEMM_NR ? nc - jr : FM_GEMM_NR;
          for (int64_t ir = 0; ir < mc; ir += FM_GEMM_MR) {
            int64_t mr = mc - ir < FM_GEMM_MR ? mc - ir : FM_GEMM_MR;
            float *c = C + (ic + ir) * ldc + jc + jr;
            if (mr == FM_GEMM_MR && nr == FM_GEMM_NR)
              fm_sgemm_ukr(kc, ap + ir * kc, 1, FM_GEMM_MR, bp + jr * kc, c, ldc, acc, NULL, 0);
            else
              fm_sgemm_edge(kc, ap + ir * kc, bp + jr * kc, c, ldc, mr, nr, acc, NULL, 0);
          }
        }
      }
    }
  }
}

/* ---- convolution through fm_sgemm_pb ----
 * fm_im2col_pack writes the im2col matrix of one image straight into the packed
 * B layout of fm_sgemm_pb, so the GEMM needs no packing pass of its own:
 *
 *   fm_im2col_pack(x, C, IH, IW, KH, KW, SH, SW, PH, PW, DH, DW, OW, p0, p1, bp)
 *
 *   x: channel 0 of the image (C x IH x IW); output positions [p0, p1) of the
 *   OH x OW output (flat, oh*OW + ow) become the n = p1 - p0 columns, K = C*KH*KW
 *   rows (c, kh, kw). Column j, row k lands at
 *     bp[(j / NR) * K * NR + k * NR + j % NR]   (NR = FM_GEMM_NR),
 *   columns past n of the last sliver are zero: bp holds ceil(n / NR) * K * NR
 *   floats (FM_GEMM_NR divides 64, so K * roundup(n, 64) is always enough).
 *
 *   fm_sgemm_pb(m0, m1, n, K, A, lda, bp, C, ldc, bias, hasbias, relu)
 *
 *   C[i*ldc + j] = A[i, :] . B[:, j] (+ bias[i] when hasbias) (max 0 when relu) for
 *   rows [m0, m1), columns [0, n), B packed as above. */
FM_API void fm_im2col_pack(const float *x, int64_t C, int64_t IH, int64_t IW,
                                                   int64_t KH, int64_t KW, int64_t SH, int64_t SW,
                                                   int64_t PH, int64_t PW, int64_t DH, int64_t DW,
                                                   int64_t OW, int64_t p0, int64_t p1, float *bp) {
  int64_t K = C * KH * KW;
#if defined(FM_HAVE_AVX512)
  /* stride 1 over whole output rows whose w-lane chunks (w = 16, or OW when OW
     divides 16) stay inside one sliver: per (sliver, k, chunk) one masked load -
     masked-off lanes, the padding, read nothing and come back 0 - and one store, in
     the order of bp. A chunk's lane mask depends only on kw and its place in the
     row (mk). */
  int64_t w = OW < 16 ? OW : 16, cpr = OW / (w ? w : 1);
  if (SW == 1 && p0 % OW == 0 && p1 % OW == 0 && (OW % 16 == 0 || 16 % OW == 0) && KW * cpr <= 256) {
    int64_t oh0 = p0 / OW, n = p1 - p0, nq = n / w, cps = FM_GEMM_NR / w;
    __mmask16 mk[256];
    for (int64_t kw = 0; kw < KW; kw++)
      for (int64_t ci = 0; ci < cpr; ci++) {
        int64_t off = kw * DW - PW, lo = off >= 0 ? 0 : -off, hi = IW - off < OW ? IW - off : OW;
        int64_t a = lo - ci * w, e = hi - ci * w;
        if (a < 0) a = 0;
        if (e > w) e = w;
        mk[kw * cpr + ci] = e > a ? (__mmask16)(((1u << e) - 1) & ~((1u << a) - 1)) : 0;
      }
    const __m512 zero = _mm512_setzero_ps();
    const __mmask16 wm = (__mmask16)((1u << w) - 1);
    for (int64_t q0 = 0; q0 < nq; q0 += cps)
      for (int64_t i = 0; i < cps; i++) {
        /* chunk i of the sliver: its w columns of every row k, NR floats apart */
        float *d = bp + (q0 / cps) * K * FM_GEMM_NR + i * w;
        int64_t q = q0 + i, oh = oh0 + q / cpr, ci = q % cpr;
        for (int64_t c = 0; c < C; c++)
          for (int64_t kh = 0; kh < KH; kh++) {
            int64_t ih = oh * SH - PH + kh * DH, in = q < nq && ih >= 0 && ih < IH;
            /* lane 0's address may lie outside x: only unmasked lanes are read */
            uintptr_t src = (uintptr_t)x + (uintptr_t)(c * IH * IW + ih * IW + ci * w - PW) * sizeof(float);
            for (int64_t kw = 0; kw < KW; kw++, d += FM_GEMM_NR, src += DW * sizeof(float)) {
              /* a load only where some lane is inside the image: a masked load whose
                 lanes are all off can still cost a microcode assist on some CPUs */
              __mmask16 m = in ? mk[kw * cpr + ci] : 0;
              __m512 v = m == (__mmask16)0xFFFF ? _mm512_loadu_ps((const float *)src)
                         : m ? _mm512_maskz_loadu_ps(m, (const float *)src) : zero;
              if (w == 16) _mm512_storeu_ps(d, v); /* plain stores: partial masks are slow */
              else if (w == 8) _mm256_storeu_ps(d, _mm512_castps512_ps256(v));
              else _mm512_mask_storeu_ps(d, wm, v);
            }
          }
      }
    return;
  }
#endif
  for (int64_t q0 = p0; q0 < p1; q0 += FM_GEMM_NR, bp += K * FM_GEMM_NR) {
    int64_t q1 = p1 - q0 < FM_GEMM_NR ? p1 : q0 + FM_GEMM_NR;
    float *d = bp;
    for (int64_t c = 0; c < C; c++)
      for (int64_t kh = 0; kh < KH; kh++)
        for (int64_t kw = 0; kw < KW; kw++, d += FM_GEMM_NR) {
          /* output columns ow in [lo, hi) read input column ow*SW + off inside the row */
          int64_t off = kw * DW - PW;
          int64_t lo = off >= 0 ? 0 : (-off + SW - 1) / SW;
          int64_t hi = IW - off <= 0 ? 0 : (IW - off + SW - 1) / SW;
          if (hi > OW) hi = OW;
          if (lo > hi) lo = hi;
          const float *xc = x + c * IH * IW;
          int64_t j = 0;
          for (int64_t pos = q0; pos < q1;) {
            int64_t oh = pos / OW, ow = pos - oh * OW;
            int64_t run = OW - ow < q1 - pos ? OW - ow : q1 - pos, end = ow + run;
            int64_t ih = oh * SH - PH + kh * DH;
            if (ih < 0 || ih >= IH) {
              for (int64_t t = 0; t < run; t++) d[j + t] = 0;
            } else {
              const float *xr = xc + ih * IW;
              int64_t a = ow > lo ? ow : lo, e = end < hi ? end : hi, jo = j - ow, t = ow;
              for (; t < a && t < end; t++) d[jo + t] = 0;
              if (SW == 1)
                for (; t < e; t++) d[jo + t] = xr[t + off];
              else
                for (; t < e; t++) d[jo + t] = xr[t * SW + off];
              for (; t < end; t++) d[jo + t] = 0;
            }
            j += run, pos += run;
          }
          for (; j < FM_GEMM_NR; j++) d[j] = 0;
        }
  }
}

FM_API void fm_sgemm_pb(int64_t m0, int64_t m1, int64_t n, int64_t K,
                                                const float *A, int64_t lda, const float *bp,
                                                float *C, int64_t ldc, const float *bias,
                                                int64_t hasbias, int64_t relu) {
  if (m1 <= m0 || n <= 0) return;
  if (K <= 0) {
    for (int64_t i = m0; i < m1; i++)
      for (int64_t j = 0; j < n; j++) {
        float v = hasbias ? 0.0f + bias[i] : 0.0f;
        C[i * ldc + j] = relu ? (v > 0 ? v : 0) : v;
      }
    return;
  }
  /* A is read in place (8 or 6 row streams that stay in L1 over a B sliver); only a
     last sliver of fewer than MR rows is packed, zero padded */
  float ap[FM_GEMM_MR * FM_GEMM_KC] __attribute__((aligned(64)));
  int64_t mfull = m0 + (m1 - m0) / FM_GEMM_MR * FM_GEMM_MR;
  for (int64_t pc = 0; pc < K; pc += FM_GEMM_KC) {
    int64_t kc = K - pc < FM_GEMM_KC ? K - pc : FM_GEMM_KC, last = pc + kc == K;
    if (mfull < m1) fm_sgemm_pack_a(m1 - mfull, kc, A, lda, 0, mfull, pc, ap);
    for (int64_t jr = 0; jr < n; jr += FM_GEMM_NR) {
      int64_t nr = n - jr < FM_GEMM_NR ? n - jr : FM_GEMM_NR;
      const float *b = bp + (jr / FM_GEMM_NR) * K * FM_GEMM_NR + pc * FM_GEMM_NR;
      for (int64_t i = m0; i < m1; i += FM_GEMM_MR) {
        float *c = C + i * ldc + jr;
        const float *bi = last && hasbias ? bias + i : NULL;
        if (i < mfull && nr == FM_GEMM_NR)
          fm_sgemm_ukr(kc, A + i * lda + pc, lda, 1, b, c, ldc, pc > 0, bi, last && relu);
        else if (i < mfull) {
          float as[FM_GEMM_MR * FM_GEMM_KC] __attribute__((aligned(64)));
          fm_sgemm_pack_a(FM_GEMM_MR, kc, A, lda, 0, i, pc, as);
          fm_sgemm_edge(kc, as, b, c, ldc, FM_GEMM_MR, nr, pc > 0, bi, last && relu);
        } else
          fm_sgemm_edge(kc, ap, b, c, ldc, m1 - i, nr, pc > 0, bi, last && relu);
      }
    }
  }
}

/* ---- ternary GEMM over bitmasks (ops/fewmul.c's TernaryGemm) ----
 *
 *   fm_ternary_gemm(n0, n1, m0, m1, K, X, ldx, msk, kc, alpha, hasalpha, bias, hasbias, relu, Y, ldy)
 *
 *   for n in [n0, n1), m in [m0, m1):
 *     Y[n*ldy + m] = alpha[m] * sum_k t(m, k) * X[n*ldx + k]  (the bare sum when !hasalpha,
 *                    + bias[m] when hasbias, then (v > 0 ? v : 0) when relu)
 *   with t(m, k) in {-1, 0, 1} given as bitmasks: msk[m*kc + c] (kc = (K + 15) / 16)
 *   covers columns 16c .. 16c+15, bit j for column 16c+j: the low 16 bits where
 *   t != 0, the high 16 bits where t = -1; bits past K are 0. The sum is adds only (a
 *   sign flip is an xor): the one multiplication per output is alpha's, none without.
 *   AVX-512: per 16-column chunk, X's lanes get their sign flipped under the -1 mask
 *   (masked xor) and are added into an accumulator under the nonzero mask (masked
 *   add), one 16-lane add per chunk, sample and output; register tiles of 4 samples x
 *   2 outputs (1 x 8 for the samples left over) share the loads; the tail of K is a
 *   masked load. AVX2: the same on 8-lane halves with lane masks built from the bits
 *   (tiles 4 x 1 and 1 x 4), the last K mod 16 columns by bit tests. Otherwise a bit
 *   test per column. The order of the adds differs between the paths (and from a
 *   dense GEMM): float rounding, not results.
 */
/* scalar: s[a*nr + r] += the sums over chunks [c0, kc) of samples a < ns, outputs r < nr */
FM_INLINE void fm_tg_bits(int ns, int nr, int64_t c0, int64_t K, int64_t kc, const float *x, int64_t ldx,
                          const int32_t *w, float *s) {
  for (int64_t c = c0; c < kc; c++)
    for (int r = 0; r < nr; r++) {
      uint32_t m = (uint32_t)w[r * kc + c];
      for (int j = 0; j < 16 && 16 * c + j < K; j++)
        if (m >> j & 1u)
          for (int a = 0; a < ns; a++) {
            float v = x[a * ldx + 16 * c + j];
            s[a * nr + r] = m >> (16 + j) & 1u ? s[a * nr + r] - v : s[a * nr + r] + v;
          }
    }
}

#if defined(FM_HAVE_AVX512)
#define FM_TG_BIG 4, 4, fm_tg_4x4
#define FM_TG_ROW 8, fm_tg_1x8
/* the two 16-bit halves of a mask word (x86 is little-endian) straight into mask
   registers; the -1 lanes as a vector of sign bits, shared by the tile's samples */
#define FM_TG_K(i, wp)                                                  \
  uint16_t z16##i, g16##i;                                              \
  memcpy(&z16##i, (const char *)(wp), 2);                               \
  memcpy(&g16##i, (const char *)(wp) + 2, 2);                           \
  const __mmask16 z##i = (__mmask16)z16##i;                             \
  const __m512 s##i = _mm512_maskz_mov_ps((__mmask16)g16##i, sb)
#define FM_TG_ADD(acc, xv, i) acc = _mm512_mask_add_ps(acc, z##i, acc, _mm512_xor_ps(xv, s##i))
#define FM_TG_X(p) _mm512_maskz_loadu_ps(ld, p)
#define FM_TG_LOOP                                                                           \
  const __m512 sb = _mm512_castsi512_ps(_mm512_set1_epi32((int)0x80000000u));               \
  const __mmask16 tail = (__mmask16)((1u << (K % 16)) - 1);                                  \
  for (int64_t c = 0, full = K / 16; c < kc; c++) {                                          \
    const __mmask16 ld = c < full ? (__mmask16)0xFFFF : tail;                                \
    const float *p = x + 16 * c;                                                             \
    (void)p;
#define FM_TG_SUM(v) _mm512_reduce_add_ps(v)
#define FM_TG_Z _mm512_setzero_ps()

FM_INLINE void fm_tg_4x4(int64_t K, int64_t kc, const float *x, int64_t ldx, const int32_t *w, float *s) {
  __m512 a0 = FM_TG_Z, a1 = FM_TG_Z, a2 = FM_TG_Z, a3 = FM_TG_Z, a4 = FM_TG_Z, a5 = FM_TG_Z, a6 = FM_TG_Z,
         a7 = FM_TG_Z, a8 = FM_TG_Z, a9 = FM_TG_Z, a10 = FM_TG_Z, a11 = FM_TG_Z, a12 = FM_TG_Z, a13 = FM_TG_Z,
         a14 = FM_TG_Z, a15 = FM_TG_Z;
  FM_TG_LOOP
  __m512 x0 = FM_TG_X(p), x1 = FM_TG_X(p + ldx), x2 = FM_TG_X(p + 2 * ldx), x3 = FM_TG_X(p + 3 * ldx);
  FM_TG_K(0, w + c);
  FM_TG_K(1, w + kc + c);
  FM_TG_K(2, w + 2 * kc + c);
  FM_TG_K(3, w + 3 * kc + c);
  FM_TG_ADD(a0, x0, 0), FM_TG_ADD(a1, x0, 1), FM_TG_ADD(a2, x0, 2), FM_TG_ADD(a3, x0, 3);
  FM_TG_ADD(a4, x1, 0), FM_TG_ADD(a5, x1, 1), FM_TG_ADD(a6, x1, 2), FM_TG_ADD(a7, x1, 3);
  FM_TG_ADD(a8, x2, 0), FM_TG_ADD(a9, x2, 1), FM_TG_ADD(a10, x2, 2), FM_TG_ADD(a11, x2, 3);
  FM_TG_ADD(a12, x3, 0), FM_TG_ADD(a13, x3, 1), FM_TG_ADD(a14, x3, 2), FM_TG_ADD(a15, x3, 3);
  }
  s[0] = FM_TG_SUM(a0), s[1] = FM_TG_SUM(a1), s[2] = FM_TG_SUM(a2), s[3] = FM_TG_SUM(a3);
  s[4] = FM_TG_SUM(a4), s[5] = FM_TG_SUM(a5), s[6] = FM_TG_SUM(a6), s[7] = FM_TG_SUM(a7);
  s[8] = FM_TG_SUM(a8), s[9] = FM_TG_SUM(a9), s[10] = FM_TG_SUM(a10), s[11] = FM_TG_SUM(a11);
  s[12] = FM_TG_SUM(a12), s[13] = FM_TG_SUM(a13), s[14] = FM_TG_SUM(a14), s[15] = FM_TG_SUM(a15);
}

FM_INLINE void fm_tg_1x8(int64_t K, int64_t kc, const float *x, int64_t ldx, const int32_t *w, float *s) {
  (void)ldx;
  __m512 a0 = FM_TG_Z, a1 = FM_TG_Z, a2 = FM_TG_Z, a3 = FM_TG_Z, a4 = FM_TG_Z, a5 = FM_TG_Z, a6 = FM_TG_Z,
         a7 = FM_TG_Z;
  FM_TG_LOOP
  __m512 x0 = FM_TG_X(p);
  FM_TG_K(0, w + c);
  FM_TG_K(1, w + kc + c);
  FM_TG_K(2, w + 2 * kc + c);
  FM_TG_K(3, w + 3 * kc + c);
  FM_TG_K(4, w + 4 * kc + c);
  FM_TG_K(5, w + 5 * kc + c);
  FM_TG_K(6, w + 6 * kc + c);
  FM_TG_K(7, w + 7 * kc + c);
  FM_TG_ADD(a0, x0, 0), FM_TG_ADD(a1, x0, 1), FM_TG_ADD(a2, x0, 2), FM_TG_ADD(a3, x0, 3);
  FM_TG_ADD(a4, x0, 4), FM_TG_ADD(a5, x0, 5), FM_TG_ADD(a6, x0, 6), FM_TG_ADD(a7, x0, 7);
  }
  s[0] = FM_TG_SUM(a0), s[1] = FM_TG_SUM(a1), s[2] = FM_TG_SUM(a2), s[3] = FM_TG_SUM(a3);
  s[4] = FM_TG_SUM(a4), s[5] = FM_TG_SUM(a5), s[6] = FM_TG_SUM(a6), s[7] = FM_TG_SUM(a7);
}

FM_INLINE void fm_tg_1x1(int64_t K, int64_t kc, const float *x, int64_t ldx, const int32_t *w, float *s) {
  (void)ldx;
  __m512 a0 = FM_TG_Z;
  FM_TG_LOOP
  __m512 x0 = FM_TG_X(p);
  FM_TG_K(0, w + c);
  FM_TG_ADD(a0, x0, 0);
  }
  s[0] = FM_TG_SUM(a0);
}

#elif defined(FM_HAVE_AVX2)
#define FM_TG_BIG 4, 1, fm_tg_4x1
#define FM_TG_ROW 4, fm_tg_1x4
/* lane masks of 8 bits: all ones where the bit is set (nonzero), the sign bit (-1) */
#define FM_TG_K(i, word)                                                                          \
  const __m256 z##i = _mm256_castsi256_ps(_mm256_cmpeq_epi32(                                     \
      _mm256_and_si256(_mm256_set1_epi32((int)(((uint32_t)(word) >> (8 * h)) & 255u)), bit), bit)); \
  const __m256 g##i = _mm256_and_ps(                                                              \
      _mm256_castsi256_ps(_mm256_cmpeq_epi32(                                                     \
          _mm256_and_si256(_mm256_set1_epi32((int)(((uint32_t)(word) >> (16 + 8 * h)) & 255u)), bit), bit)), \
      sb)
#define FM_TG_ADD(acc, xv, i) acc = _mm256_add_ps(acc, _mm256_and_ps(_mm256_xor_ps(xv, g##i), z##i))
#define FM_TG_X(p) _mm256_loadu_ps(p)
#define FM_TG_LOOP                                                                           \
  const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);                        \
  const __m256 sb = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));                \
  int64_t c = 0;                                                                             \
  for (; c < K / 16; c++)                                                                    \
    for (int h = 0; h < 2; h++) {                                                            \
      const float *p = x + 16 * c + 8 * h;
FM_INLINE float fm_tg_sum8(__m256 v) {
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
  return _mm_cvtss_f32(q);
}
#define FM_TG_SUM(v) fm_tg_sum8(v)
#define FM_TG_Z _mm256_setzero_ps()

FM_INLINE void fm_tg_4x1(int64_t K, int64_t kc, const float *x, int64_t ldx, const int32_t *w, float *s) {
  __m256 a0 = FM_TG_Z, a1 = FM_TG_Z, a2 = FM_TG_Z, a3 = FM_TG_Z;
  FM_TG_LOOP
  __m256 x0 = FM_TG_X(p), x1 = FM_TG_X(p + ldx), x2 = FM_TG_X(p + 2 * ldx), x3 = FM_TG_X(p + 3 * ldx);
  FM_TG_K(0, w[c]);
  FM_TG_ADD(a0, x0, 0), FM_TG_ADD(a1, x1, 0), FM_TG_ADD(a2, x2, 0), FM_TG_ADD(a3, x3, 0);
  }
  s[0] = FM_TG_SUM(a0), s[1] = FM_TG_SUM(a1), s[2] = FM_TG_SUM(a2), s[3] = FM_TG_SUM(a3);
  fm_tg_bits(4, 1, c, K, kc, x, ldx, w, s);
}

FM_INLINE void fm_tg_1x4(int64_t K, int64_t kc, const float *x, int64_t ldx, const int32_t *w, float *s) {
  __m256 a0 = FM_TG_Z, a1 = FM_TG_Z, a2 = FM_TG_Z, a3 = FM_TG_Z;
  FM_TG_LOOP
  __m256 x0 = FM_TG_X(p);
  FM_TG_K(0, w[c]);
  FM_TG_K(1, w[kc + c]);
  FM_TG_K(2, w[2 * kc + c]);
  FM_TG_K(3, w[3 * kc + c]);
  FM_TG_ADD(a0, x0, 0), FM_TG_ADD(a1, x0, 1), FM_TG_ADD(a2, x0, 2), FM_TG_ADD(a3, x0, 3);
  }
  s[0] = FM_TG_SUM(a0), s[1] = FM_TG_SUM(a1), s[2] = FM_TG_SUM(a2), s[3] = FM_TG_SUM(a3);
  fm_tg_bits(1, 4, c, K, kc, x, ldx, w, s);
}

FM_INLINE void fm_tg_1x1(int64_t K, int64_t kc, const float *x, int64_t ldx, const int32_t *w, float *s) {
  __m256 a0 = FM_TG_Z;
  FM_TG_LOOP
  __m256 x0 = FM_TG_X(p);
  FM_TG_K(0, w[c]);
  FM_TG_ADD(a0, x0, 0);
  }
  s[0] = FM_TG_SUM(a0);
  fm_tg_bits(1, 1, c, K, kc, x, ldx, w, s);
}

#else
FM_INLINE void fm_tg_1x1(int64_t K, int64_t kc, const float *x, int64_t ldx, const int32_t *w, float *s) {
  s[0] = 0;
  fm_tg_bits(1, 1, 0, K, kc, x, ldx, w, s);
}
#endif

/* Y for tile (samples n .. n+ns-1) x (outputs m .. m+nr-1) from its sums s */
FM_INLINE void fm_tg_out(int ns, int nr, int64_t n, int64_t m, const float *s, const float *alpha,
                         int64_t hasalpha, const float *bias, int64_t hasbias, int64_t relu, float *Y,
                         int64_t ldy) {
  for (int a = 0; a < ns; a++)
    for (int r = 0; r < nr; r++) {
      float v = hasalpha ? alpha[m + r] * s[a * nr + r] : s[a * nr + r];
      if (hasbias) v = v + bias[m + r];
      Y[(n + a) * ldy + m + r] = relu ? (v > 0 ? v : 0) : v;
    }
}

/* kept out of line and unspecialised: inlined with the caller's constant shapes, gcc 12
   warns (-Waggressive-loop-optimizations, an error under -Werror) about iterations of
   the remainder loops that cannot run */
#if defined(__GNUC__) && !defined(__clang__)
#define FM_TG_NOIPA __attribute__((unused, noipa))
#else
#define FM_TG_NOIPA __attribute__((unused, noinline))
#endif
FM_TG_NOIPA FM_LINKAGE void fm_ternary_gemm(int64_t n0, int64_t n1, int64_t m0, int64_t m1, int64_t K,
                                                    const float *X, int64_t ldx, const int32_t *msk,
                                                    int64_t kc, const float *alpha, int64_t hasalpha,
                                                    const float *bias, int64_t hasbias, int64_t relu, float *Y,
                                                    int64_t ldy) {
  float s[16];
  int64_t n = n0;
#ifdef FM_TG_BIG
#define FM_TG_BIG_(ns, nr, fn)                                                      \
  for (; n + ns <= n1; n += ns) {                                                   \
    int64_t m = m0;                                                                 \
    for (; m + nr <= m1; m += nr) {                                                 \
      fn(K, kc, X + n * ldx, ldx, msk + m * kc, s);                                 \
      fm_tg_out(ns, nr, n, m, s, alpha, hasalpha, bias, hasbias, relu, Y, ldy);     \
    }                                                                               \
    for (; m < m1; m++)                                                             \
      for (int a = 0; a < ns; a++) {                                                \
        fm_tg_1x1(K, kc, X + (n + a) * ldx, ldx, msk + m * kc, s);                  \
        fm_tg_out(1, 1, n + a, m, s, alpha, hasalpha, bias, hasbias, relu, Y, ldy); \
      }                                                                             \
  }
#define FM_TG_ROW_(nr, fn)                                                          \
  for (; m + nr <= m1; m += nr) {                                                   \
    fn(K, kc, X + n * ldx, ldx, msk + m * kc, s);                                   \
    fm_tg_out(1, nr, n, m, s, alpha, hasalpha, bias, hasbias, relu, Y, ldy);        \
  }
#define FM_TG_EXPAND(mac, args) mac args
  FM_TG_EXPAND(FM_TG_BIG_, (FM_TG_BIG))
#endif
  for (; n < n1; n++) {
    int64_t m = m0;
#ifdef FM_TG_ROW
    FM_TG_EXPAND(FM_TG_ROW_, (FM_TG_ROW))
#endif
    for (; m < m1; m++) {
      fm_tg_1x1(K, kc, X + n * ldx, ldx, msk + m * kc, s);
      fm_tg_out(1, 1, n, m, s, alpha, hasalpha, bias, hasbias, relu, Y, ldy);
    }
  }
}

#ifdef FM_CPU_LIB
/* the tile of this build, for callers that size buffers for fm_im2col_pack */
int fm_cpu_gemm_mr(void) { return FM_GEMM_MR; }
int fm_cpu_gemm_nr(void) { return FM_GEMM_NR; }
#endif
#endif /* FM_CPU_C */
