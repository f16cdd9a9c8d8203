/* ops_linear.c - fully connected layer and the threaded gemm helper. */
#include "ops.h"
#include <cblas.h>
#include <omp.h>

void fm_blas_single_thread(void) { openblas_set_num_threads(1); }

// Row-major gemm; rows of C are split in contiguous blocks across threads.
void fm_gemm(int transa, int transb, int M, int N, int K, float alpha,
             const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc, int nthreads) {
  if (M <= 0 || N <= 0) return;
  if (nthreads < 1) nthreads = 1;
  // small problems: not worth waking threads
  if ((double)M * N * K < 1e5 || M < 2 * nthreads) nthreads = 1;
#pragma omp parallel num_threads(nthreads)
  {
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    int m0 = (int)((long)M * t / nt), m1 = (int)((long)M * (t + 1) / nt);
    if (m1 > m0) {
      // rows m0.. of op(A): row offset if A is not transposed, column offset if it is
      const float *a = transa ? A + m0 : A + (size_t)m0 * lda;
      cblas_sgemm(CblasRowMajor, transa ? CblasTrans : CblasNoTrans,
                  transb ? CblasTrans : CblasNoTrans, m1 - m0, N, K, alpha, a, lda, B, ldb,
                  beta, C + (size_t)m0 * ldc, ldc);
    }
  }
}

// inp (N,I), weight (O,I), bias (O), out (N,O)
void fm_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                       int N, int In, int Out, int nthreads) {
  fm_gemm(0, 1, N, Out, In, 1.0f, inp, In, weight, In, 0.0f, out, Out, nthreads);
  if (bias)
    for (int n = 0; n < N; n++)
      for (int o = 0; o < Out; o++) out[(size_t)n * Out + o] += bias[o];
}

void fm_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int N, int In, int Out, int nthreads) {
  // dinp (N,I) += dout (N,O) x weight (O,I)
  if (dinp) fm_gemm(0, 0, N, In, Out, 1.0f, dout, Out, weight, In, 1.0f, dinp, In, nthreads);
  // dweight (O,I) += dout^T (O,N) x inp (N,I)
  if (dweight) fm_gemm(1, 0, Out, In, N, 1.0f, dout, Out, inp, In, 1.0f, dweight, In, nthreads);
  if (dbias)
    for (int n = 0; n < N; n++)
      for (int o = 0; o < Out; o++) dbias[o] += dout[(size_t)n * Out + o];
}
