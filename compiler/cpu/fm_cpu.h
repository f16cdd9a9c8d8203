/* fm_cpu.h - the CPU kernel library (the .c files of compiler/cpu/): its API and routine table.
 *
 * The library is compiled once into libfm_cpu.a (linked by the compiler, the
 * interpreter and the trainer) and embedded as text into every generated model.c
 * (fm_cpu_text), see cpu.c. Kernel IR calls a routine with a KS_CALL statement:
 *
 *   kb_call(b, "fm_sgemm", muls, adds, 14, m0, m1, n0, n1, k_i(K), k_addr(A, k_i(0)), ...);
 *
 * and every routine has one line in FM_CPU_ROUTINES below: its argument kinds and
 * the exact operations one call performs, which the cost model (kernel/kcost.c)
 * evaluates from the call's arguments. A backend that cannot call the library
 * (FmBackend.can_call, emit.h) gets loops instead from the lowering.
 *
 *   float y[6 * 16];
 *   fm_sgemm(0, 6, 0, 16, 32, a, 32, 0, b, 16, 0, y, 16, 0);   // y = a (6x32) * b (32x16)
 */
#ifndef FM_CPU_H
#define FM_CPU_H
#include <stddef.h>
#include <stdint.h>

/* ---- scalar helpers (the C printer's fm_* calls) ---- */
float fm_h2f(uint16_t h);               /* float16 -> float */
uint16_t fm_f2h(float x);               /* float -> float16, round to nearest even */
float fm_signf(float x);
double fm_sign(double x);
int64_t fm_isign(int64_t x);
int64_t fm_iabs(int64_t x);             /* wraps like C's unsigned negation */
int64_t fm_ipow(int64_t b, int64_t e);  /* e < 0: 0 unless |b| = 1 */
/* min/max with glibc's fminf/fmaxf semantics, inline (cpu_addonly.c): KB_MIN/KB_MAX */
float fm_fminf(float x, float y);
float fm_fmaxf(float x, float y);
double fm_fmin(double x, double y);
double fm_fmax(double x, double y);
float fm_ldexpf(float x, int n);        /* ldexpf, inline (cpu_addonly.c): KB_LDEXP */

/* ---- routines (contracts in cpu.c) ---- */
void fm_sgemm(int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, const float *A, int64_t lda,
              int64_t transA, const float *B, int64_t ldb, int64_t transB, float *C, int64_t ldc,
              int64_t accumulate);
void fm_sgemm_pack_b(int64_t kc, int64_t nc, const float *B, int64_t ldb, int64_t transB, int64_t pc,
                     int64_t jc, float *bp);
void fm_im2col_pack(const float *x, int64_t C, int64_t IH, int64_t IW, int64_t KH, int64_t KW, int64_t SH,
                    int64_t SW, int64_t PH, int64_t PW, int64_t DH, int64_t DW, int64_t OW, int64_t p0,
                    int64_t p1, float *bp);
void fm_sgemm_pb(int64_t m0, int64_t m1, int64_t n, int64_t K, const float *A, int64_t lda, const float *bp,
                 float *C, int64_t ldc, const float *bias, int64_t hasbias, int64_t relu);
void fm_ternary_gemm(int64_t n0, int64_t n1, int64_t m0, int64_t m1, int64_t K, const float *X, int64_t ldx,
                     const int32_t *msk, int64_t kc, const float *alpha, int64_t hasalpha, const float *bias,
                     int64_t hasbias, int64_t relu, float *Y, int64_t ldy);
/* Ternary conv by shared partial sums over a tile of <= 4 output channels (cpu_addonly.c) */
void fm_addconv(int64_t q0, int64_t q1, const float *x, const int32_t *plan, int64_t ps, int64_t pe, float *acc,
                int64_t ldacc, int64_t nr);
/* The batched GEMM of the Winograd convolution (cpu_winograd.c) */
void fm_wino_gemm(int64_t a2, int64_t Kp, int64_t C, int64_t nt, const float *U, const float *V, int64_t ldv,
                  float *M);
/* The register tile of this build of the library (rows x columns): callers size
   fm_im2col_pack's panels with the column count (NR divides 64). */
int fm_cpu_gemm_mr(void);
int fm_cpu_gemm_nr(void);

/* The library's text, embedded into generated code (CMake, cmake/embed.cmake). */
extern const char fm_cpu_text[];

/* ---- the routine table ----
 * kinds: one letter per argument:
 *   i  integer (any integer KExpr; int64_t in C)
 *   f  float scalar
 *   p  pointer the routine writes   (k_addr(buf, idx))
 *   c  pointer the routine only reads (k_addr(buf, idx))
 * count(a, muls, adds): the exact multiplications and additions of one call from
 * its arguments (integers a[k].i; a[k].p of a pointer is the data of a constant
 * buffer, or NULL when not known at compile time); returns 0 if it needs a pointer
 * it was not given. */
typedef union FmArg { int64_t i; double f; void *p; } FmArg;
typedef int (*FmRoutineCount)(const FmArg *a, double *muls, double *adds);
int fm_count_sgemm(const FmArg *a, double *muls, double *adds);
int fm_count_none(const FmArg *a, double *muls, double *adds);
int fm_count_sgemm_pb(const FmArg *a, double *muls, double *adds);
int fm_count_ternary_gemm(const FmArg *a, double *muls, double *adds);
int fm_count_addconv(const FmArg *a, double *muls, double *adds);
int fm_count_wino_gemm(const FmArg *a, double *muls, double *adds);

/* X(name, kinds, count) */
#define FM_CPU_ROUTINES(X)                                  \
  X(fm_sgemm, "iiiiiciiciipii", fm_count_sgemm)             \
  X(fm_im2col_pack, "ciiiiiiiiiiiiiip", fm_count_none)      \
  X(fm_sgemm_pb, "iiiicicpicii", fm_count_sgemm_pb)         \
  X(fm_ternary_gemm, "iiiiiciciciciipi", fm_count_ternary_gemm) \
  X(fm_addconv, "iicciipii", fm_count_addconv)             \
  X(fm_wino_gemm, "iiiiccip", fm_count_wino_gemm)
#endif
