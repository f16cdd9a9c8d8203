/* ops.h - trainer layers as forward/backward pairs over plain float arrays.
 *
 * Every layer is a pair X_forward / X_backward in the style of llm.c: plain
 * `float *` buffers, the shapes written in a comment, no allocation inside.
 * Conventions shared by all ops:
 *
 *   - tensors are contiguous row-major, images are (N,C,H,W);
 *   - backward ADDS into every gradient it writes (dinp, dweight, dbias), so a
 *     tensor read by two layers simply receives both contributions; the caller
 *     zeroes gradients before a backward pass. Where a layer alone reads its input
 *     (fm_net_finish knows), a dinp_assign argument makes it write (=) dinp instead,
 *     and that zeroing is skipped (conv2d, batchnorm, relu, add);
 *   - a gradient pointer may be NULL: that gradient is not computed (e.g. the
 *     input of the first layer, or a frozen parameter);
 *   - ops that need scratch memory take `work`, sized by the matching
 *     X_workspace() function (in floats) for the given thread count;
 *   - `nthreads` is the OpenMP thread count used by the op; ops parallelise over
 *     the batch (or channels) and call OpenBLAS single-threaded inside.
 *
 * Worked example (a 3x3 conv, padding 1, on a batch of 8 RGB 32x32 images):
 *
 *   FmConvAttr a = fm_conv_attr(3, 16, 3, 1, 1, 1, 1);   // cin,cout,k,stride,pad,dil,groups
 *   float *work = malloc(sizeof(float) * fm_conv2d_workspace(&a, 32, 32, nt));
 *   fm_conv2d_forward(out, inp, w, b, 8, 32, 32, &a, work, nt);   // out is (8,16,32,32)
 *   fm_conv2d_backward(dinp, dw, db, dout, inp, w, 8, 32, 32, &a, work, nt, 0);
 */
#ifndef FM_TRAINER_OPS_H
#define FM_TRAINER_OPS_H
#include <stddef.h>
#include <stdint.h>

// ---------------------------------------------------------------------------
// rng (ops_elem.c): splitmix64; the whole state is one integer so it is
// trivially checkpointed. No global state: every user owns an FmRng.
typedef struct { uint64_t s; } FmRng;
void fm_rng_seed(FmRng *r, uint64_t seed);
uint64_t fm_rng_next(FmRng *r);
float fm_rng_uniform(FmRng *r);             // [0,1)
float fm_rng_normal(FmRng *r);              // N(0,1), Box-Muller

// ---------------------------------------------------------------------------
// gemm helper (ops_linear.c): row-major C = alpha*op(A)*op(B) + beta*C with the
// M rows of C split across nthreads OpenMP threads (OpenBLAS runs
// single-threaded inside each).
void fm_gemm(int transa, int transb, int M, int N, int K, float alpha,
             const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc, int nthreads);
// Makes OpenBLAS single-threaded (all trainer parallelism is OpenMP). Called
// by fm_net_new; idempotent.
void fm_blas_single_thread(void);

// ---------------------------------------------------------------------------
// convolution (ops_conv.c)
typedef struct {
  int cin, cout;            // channels in / out
  int kh, kw;               // kernel
  int sh, sw;               // stride
  int ph, pw;               // padding (symmetric)
  int dh, dw;               // dilation
  int groups;
  int oph, opw;             // output padding (conv_transpose2d only)
} FmConvAttr;
FmConvAttr fm_conv_attr(int cin, int cout, int k, int stride, int pad, int dil, int groups);
// output size of conv2d / conv_transpose2d along one axis
int fm_conv_out(int in, int k, int s, int p, int d);
int fm_convt_out(int in, int k, int s, int p, int d, int op);

// im2col: img (C,H,W) -> col (C*kh*kw, OH*OW); col2im adds col back into img.
void fm_im2col(float *col, const float *img, int C, int H, int W, const FmConvAttr *a);
void fm_col2im(float *img, const float *col, int C, int H, int W, const FmConvAttr *a);

// conv_fast.c: conv2d through the CPU kernel library's packed-im2col GEMM (compiler/cpu/) (no im2col
// matrix). fm_conv2d_forward/backward use it where *_ok says so; the workspace is
// included in fm_conv2d_workspace.
// W: the input width; groups 1, stride 1, output rows of whole 16-lane chunks
int fm_conv_fast_ok(const FmConvAttr *a, int W);        // forward
int fm_conv_fast_dinp_ok(const FmConvAttr *a, int W);   // input gradient (input width W too)
int fm_conv_fast_wgrad_ok(const FmConvAttr *a, int W);  // weight gradient: also cout >= 32
size_t fm_conv_fast_workspace(const FmConvAttr *a, int H, int W, int nthreads);
void fm_conv_fast_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                          int H, int W, const FmConvAttr *a, float *work, int nthreads);
// dweight += and dbias += (either may be NULL)
void fm_conv_fast_backward_weight(float *dweight, float *dbias, const float *dout, const float *inp, int N,
                                  int H, int W, const FmConvAttr *a, float *work, int nthreads);
// dinp += (or = when assign) the input gradient of a stride-1 conv
void fm_conv_fast_backward_data(float *dinp, const float *dout, const float *weight, int N, int H, int W,
                                const FmConvAttr *a, float *work, int nthreads, int assign);

// conv2d: inp (N,cin,H,W), weight (cout,cin/groups,kh,kw), bias (cout) or NULL,
// out (N,cout,OH,OW).
size_t fm_conv2d_workspace(const FmConvAttr *a, int H, int W, int nthreads);
void fm_conv2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                       int N, int H, int W, const FmConvAttr *a, float *work, int nthreads);
void fm_conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int N, int H, int W,
                        const FmConvAttr *a, float *work, int nthreads, int dinp_assign);

// conv_transpose2d (PyTorch ConvTranspose2d): inp (N,cin,H,W),
// weight (cin,cout/groups,kh,kw), bias (cout) or NULL, out (N,cout,OH,OW) with
// OH = (H-1)*sh - 2*ph + dh*(kh-1) + oph + 1.
size_t fm_convt2d_workspace(const FmConvAttr *a, int H, int W, int nthreads);
void fm_convt2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                        int N, int H, int W, const FmConvAttr *a, float *work, int nthreads);
void fm_convt2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight,
                         int N, int H, int W, const FmConvAttr *a, float *work, int nthreads);

// ---------------------------------------------------------------------------
// linear (ops_linear.c): inp (N,In), weight (Out,In), bias (Out) or NULL, out (N,Out)
void fm_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                       int N, int In, int Out, int nthreads);
void fm_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int N, int In, int Out, int nthreads);

// ---------------------------------------------------------------------------
// normalisation and per-channel affine ops (ops_norm.c); x is (N,C,S), S = H*W
// (S = 1 for a (N,C) input).

// batchnorm. Train mode normalises with the batch statistics and updates the
// running stats: running = (1-momentum)*running + momentum*batch (unbiased
// variance), as PyTorch. Eval mode normalises with the running stats. Either
// way the statistics used are saved in mean/invstd (C each) for backward.
// gamma/beta are (C); with fixed_gamma the gamma gradient is not computed.
//
// Synchronised batchnorm (--sync-bn, trainer/dist.h): with a.sync set, train mode
// takes its statistics over the batches of all processes. The per-channel sums are
// shifted by the running mean (the same on every process), added over processes by
// sync->allreduce (an in-place sum of n doubles), and the backward pass sums
// sum(dy) and sum(dy*xhat) the same way, so N processes compute what one process
// computes on their union. With one process it is a no-op reduction.
typedef struct FmBnSync {
  void (*allreduce)(void *ctx, double *buf, int n);
  void *ctx;
} FmBnSync;
typedef struct { int C; float eps, momentum; int fixed_gamma; const FmBnSync *sync; } FmBnAttr;
void fm_batchnorm_forward(float *out, float *mean, float *invstd, const float *inp,
                          const float *gamma, const float *beta,
                          float *running_mean, float *running_var,
                          int N, int S, const FmBnAttr *a, int train, int nthreads);
// train must match the forward: train mode back-propagates through the batch
// statistics, eval mode treats mean/invstd as constants.
void fm_batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                           const float *inp, const float *mean, const float *invstd,
                           const float *gamma, int N, int S, const FmBnAttr *a,
                           int train, int nthreads, int dinp_assign);

// fixed input normalisation: out = (inp - mean[c]) / std[c]
void fm_normalize_forward(float *out, const float *inp, const float *mean, const float *std,
                          int N, int C, int S);
void fm_normalize_backward(float *dinp, const float *dout, const float *std, int N, int C, int S);

// channel-wise scale: out[n,c,s] = inp[n,c,s] * scale[c]
void fm_chscale_forward(float *out, const float *inp, const float *scale, int N, int C, int S);
void fm_chscale_backward(float *dinp, float *dscale, const float *dout, const float *inp,
                         const float *scale, int N, int C, int S);

// ---------------------------------------------------------------------------
// pooling (ops_pool.c): inp (N,C,H,W), out (N,C,OH,OW), OH = fm_conv_out(H,kh,sh,ph,1)
typedef struct { int kh, kw, sh, sw, ph, pw; } FmPoolAttr;
// maxpool saves the argmax (index into the H*W plane; -1 if the window only
// covers padding) in idx (N,C,OH,OW).
void fm_maxpool_forward(float *out, int32_t *idx, const float *inp,
                        int N, int C, int H, int W, const FmPoolAttr *a);
void fm_maxpool_backward(float *dinp, const float *dout, const int32_t *idx,
                         int N, int C, int H, int W, const FmPoolAttr *a);
// avgpool counts padded zeros (PyTorch count_include_pad=True).
void fm_avgpool_forward(float *out, const float *inp, int N, int C, int H, int W,
                        const FmPoolAttr *a);
void fm_avgpool_backward(float *dinp, const float *dout, int N, int C, int H, int W,
                         const FmPoolAttr *a);
// global average pool: inp (N,C,S) -> out (N,C)
void fm_gap_forward(float *out, const float *inp, int N, int C, int S);
void fm_gap_backward(float *dinp, const float *dout, int N, int C, int S);

// ---------------------------------------------------------------------------
// elementwise (ops_elem.c); D is the number of elements per sample
// sum of n floats (vectorised, 8 lanes)
float fm_sumf(const float *x, int n);
// relu: out = max(inp, 0); backward reads out
void fm_relu_forward(float *out, const float *inp, size_t n);
void fm_relu_backward(float *dinp, const float *dout, const float *out, size_t n, int dinp_assign);
// residual add: out = a + b
void fm_add_forward(float *out, const float *a, const float *b, size_t n);
void fm_add_backward(float *da, float *db, const float *dout, size_t n, int da_assign, int db_assign);
// dropout with probability p (inverted: kept values scaled by 1/(1-p)).
// mask (N,D) is filled from rng: each entry 0 or 1/(1-p).
// dropout2d zeroes whole channels: inp (N,C,S), mask (N,C).
void fm_dropout_forward(float *out, float *mask, const float *inp, int N, int D, float p, FmRng *rng);
void fm_dropout_backward(float *dinp, const float *dout, const float *mask, int N, int D);
void fm_dropout2d_forward(float *out, float *mask, const float *inp, int N, int C, int S,
                          float p, FmRng *rng);
void fm_dropout2d_backward(float *dinp, const float *dout, const float *mask, int N, int C, int S);
// The same masks drawn per sample from a generator keyed by (key, id[i]): sample i's
// mask depends on its id (its index in the data set), not on its place in the batch,
// so a sample split off to another process draws the same mask (trainer/dist.h).
void fm_dropout_forward_keyed(float *out, float *mask, const float *inp, int N, int D, float p,
                              uint64_t key, const int *id);
void fm_dropout2d_forward_keyed(float *out, float *mask, const float *inp, int N, int C, int S,
                                float p, uint64_t key, const int *id);

// ---------------------------------------------------------------------------
// softmax and losses (ops_loss.c); logits are (N,K), labels (N) in [0,K)
void fm_softmax_forward(float *out, const float *inp, int N, int K);
void fm_softmax_backward(float *dinp, const float *dout, const float *out, int N, int K);
void fm_log_softmax_forward(float *out, const float *inp, int N, int K);
void fm_log_softmax_backward(float *dinp, const float *dout, const float *out, int N, int K);
// cross-entropy from logits, mean over the batch; saves softmax in probs (N,K).
float fm_crossentropy_forward(float *probs, const float *logits, const int *labels, int N, int K);
// dlogits += dloss * (probs - onehot(labels)) / N
void fm_crossentropy_backward(float *dlogits, const float *probs, const int *labels,
                              int N, int K, float dloss);
// negative log-likelihood of log-probabilities, mean over the batch
float fm_nll_forward(const float *logp, const int *labels, int N, int K);
void fm_nll_backward(float *dlogp, const int *labels, int N, int K, float dloss);

// ---------------------------------------------------------------------------
// ops of imported ONNX graphs (ops_graph.c); backward adds (+=) into every gradient
// pointwise activation: LeakyRelu (alpha), Clip [lo, hi], Sigmoid, Tanh
typedef enum { FM_ACT_LEAKY, FM_ACT_CLIP, FM_ACT_SIGMOID, FM_ACT_TANH } FmActKind;
typedef struct { FmActKind kind; float alpha, lo, hi; } FmActAttr;
void fm_act_forward(float *out, const float *inp, size_t n, const FmActAttr *a);
// reads inp (leaky, clip) or out (sigmoid, tanh)
void fm_act_backward(float *dinp, const float *dout, const float *inp, const float *out, size_t n,
                     const FmActAttr *a);
// frozen per-channel affine: out[n,c,s] = inp[n,c,s] * scale[c] + shift[c]  (x is (N,C,S))
void fm_affine_forward(float *out, const float *inp, const float *scale, const float *shift, int N, int C, int S);
void fm_affine_backward(float *dinp, const float *dout, const float *scale, int N, int C, int S);
// out = a * b or a - b over n elements; da/db may be NULL
typedef enum { FM_ELT_MUL, FM_ELT_SUB } FmEltwiseOp;
void fm_eltwise_forward(float *out, const float *a, const float *b, size_t n, FmEltwiseOp op);
void fm_eltwise_backward(float *da, float *db, const float *dout, const float *a, const float *b, size_t n,
                         FmEltwiseOp op);
// channel concat: ins[k] is (N, size[k]) per sample, out (N, sum of size); dins[k] may be NULL
void fm_concat_forward(float *out, const float *const *ins, const size_t *size, int nin, int N);
void fm_concat_backward(float *const *dins, const float *dout, const size_t *size, int nin, int N);

#endif
