/* net.h - a small layer graph ("module system") for training.
 *
 * A network is a DAG of layers over activation tensors, kept in topological
 * (insertion) order. Builder functions add a layer and return the id of its
 * output tensor, so a model reads like functional PyTorch:
 *
 *   FmNetOpts o = fm_net_opts_default();
 *   FmNet *net = fm_net_new(1, 28, 28, &o);           // tensor 0 is the input (N,1,28,28)
 *   int x = fm_net_conv2d(net, 0, 32, 3, 1, 0, 1);    // cout, k, stride, pad, bias
 *   x = fm_net_relu(net, x);
 *   x = fm_net_flatten(net, x);
 *   x = fm_net_linear(net, x, 10, 1);
 *   fm_net_finish(net, x);                            // allocates + initialises parameters
 *
 *   fm_net_zero_grad(net);
 *   fm_net_forward(net, images, n, 1);                // images (n,1,28,28); returns logits (n,10)
 *   float loss = fm_net_loss(net, labels, n, &correct);   // mean CE; seeds d(logits)
 *   fm_net_backward(net);                             // adds into every parameter grad
 *   fm_net_step(net, opt, lr);                        // optimiser update (optim.h)
 *
 * Memory: all parameters live in one allocation (net->param_data), their
 * gradients in another of the same layout (net->grad_data), non-trained
 * buffers (BN running stats, input normalisation) in a third
 * (net->buf_data). Activations, their gradients and the state saved for
 * backward are carved from one arena sized for the largest batch seen
 * (fm_net_reserve); scratch memory for conv im2col etc. is one shared
 * workspace. Nothing is allocated in forward/backward once the arena fits.
 *
 * Threads: fm_net_new makes OpenBLAS single-threaded (process-wide) because
 * all trainer parallelism is OpenMP; forward/backward call
 * omp_set_num_threads(net->threads) on the calling thread. On a machine
 * shared with other busy processes OMP_WAIT_POLICY=passive (or threads = 1)
 * avoids threads spinning against each other.
 *
 * ---------------------------------------------------------------------------
 * ITERATING A NETWORK (the API that ONNX export is built on)
 *
 *   for (int i = 0; i < net->nlayers; i++) {
 *     const FmLayer *l = &net->layers[i];
 *     // l->kind            FM_LAYER_* (below); fm_layer_kind_name(l->kind) = "conv2d", ...
 *     // l->name            unique name, e.g. "conv2d_3"
 *     // l->in[0..nin-1]    input tensor ids; l->out its output tensor id
 *     // net->tensors[t]    .c .h .w per-sample shape (NCHW; a (N,F) tensor has c=F, h=w=1)
 *     //                    .flat = 1 for 2-D (N,F) tensors (after flatten/linear/gap)
 *     // l->a.conv / .pool / .bn / .p / .norm     attributes, by kind (see FmLayer)
 *     // fm_layer_param(net, l, k) -> const FmParam * or NULL: k-th parameter slot
 *     // fm_layer_buf(net, l, k)   -> const FmParam * or NULL: k-th buffer slot
 *     //   FmParam: .name .shape[] .ndim .size .data (float*, .size elements)
 *   }
 *   net->input (= 0) is the graph input, net->output the logits tensor.
 *
 * Parameter and buffer slots per kind (-1/NULL when absent):
 *   NORMALIZE        buf 0 = mean (C), buf 1 = std (C): y = (x - mean) / std
 *   CONV2D           param 0 = weight (cout, cin/g, kh, kw), param 1 = bias (cout)
 *   CONV_TRANSPOSE2D param 0 = weight (cin, cout/g, kh, kw), param 1 = bias (cout)
 *   LINEAR           param 0 = weight (out, in), param 1 = bias (out)   [y = x W^T + b]
 *   BATCHNORM        param 0 = gamma (C), param 1 = beta (C),
 *                    buf 0 = running_mean (C), buf 1 = running_var (C); a.bn.eps
 *   CHANNEL_SCALE    param 0 = scale (C)
 *   RELU, MAXPOOL, AVGPOOL (a.pool), GLOBAL_AVGPOOL, DROPOUT (a.p),
 *   DROPOUT2D (a.p), FLATTEN, ADD (two inputs): no parameters.
 *   AFFINE           buf 0 = scale (C), buf 1 = shift (C): y = x * scale + shift, frozen
 *                    (constant Add/Sub/Mul/Div of an imported ONNX graph)
 *   ACT (a.act: LeakyRelu, Clip, Sigmoid, Tanh), ELTWISE (a.elt: a * b or a - b, two
 *   inputs), CONCAT (channels, up to FM_MAX_IN inputs), RESHAPE (a view, like
 *   FLATTEN): no parameters.
 *   CUSTOM           layers added by other code through fm_net_add_layer with
 *                    their own FmLayerOps; l->ops->name names them, l->user
 *                    holds their attributes.
 * ---------------------------------------------------------------------------
 *
 * Training methods (ternary, DeepShift, quantised weights; method.h): with
 * FmNetOpts.method set, fm_net_conv2d/fm_net_linear build the method's variant
 * (FM_LAYER_CUSTOM, l->method != 0) whose parameters fm_net_finish adds once
 * the whole net is known; fm_net_step then applies the method's post-step rule.
 *
 * Custom layers (ternary conv, SP conv, shift, ...) plug in without touching
 * this file: fill an FmLayerOps with forward/backward/workspace callbacks,
 * call fm_net_add_layer() and fm_net_add_param()/fm_net_add_buf(), and read
 * tensors through net->tensors[id].data / .grad inside the callbacks.
 */
#ifndef FM_TRAINER_NET_H
#define FM_TRAINER_NET_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "method.h"
#include "ops.h"
#include "optim.h"

// The layer kinds, kept once as an X-macro: enum and names come from it.
#define FM_LAYER_KINDS(X)                             \
  X(FM_LAYER_NORMALIZE, "normalize")                  \
  X(FM_LAYER_CONV2D, "conv2d")                        \
  X(FM_LAYER_CONV_TRANSPOSE2D, "conv_transpose2d")    \
  X(FM_LAYER_LINEAR, "linear")                        \
  X(FM_LAYER_BATCHNORM, "batchnorm")                  \
  X(FM_LAYER_RELU, "relu")                            \
  X(FM_LAYER_MAXPOOL, "maxpool")                      \
  X(FM_LAYER_AVGPOOL, "avgpool")                      \
  X(FM_LAYER_GLOBAL_AVGPOOL, "global_avgpool")        \
  X(FM_LAYER_DROPOUT, "dropout")                      \
  X(FM_LAYER_DROPOUT2D, "dropout2d")                  \
  X(FM_LAYER_FLATTEN, "flatten")                      \
  X(FM_LAYER_ADD, "add")                              \
  X(FM_LAYER_CHANNEL_SCALE, "channel_scale")          \
  X(FM_LAYER_AFFINE, "affine")                        \
  X(FM_LAYER_ACT, "activation")                       \
  X(FM_LAYER_ELTWISE, "eltwise")                      \
  X(FM_LAYER_CONCAT, "concat")                        \
  X(FM_LAYER_RESHAPE, "reshape")                      \
  X(FM_LAYER_CUSTOM, "custom")

typedef enum {
#define FM_X_ENUM(id, name) id,
  FM_LAYER_KINDS(FM_X_ENUM)
#undef FM_X_ENUM
  FM_LAYER_KIND_COUNT
} FmLayerKind;

const char *fm_layer_kind_name(FmLayerKind k);

#define FM_MAX_IN 4
#define FM_MAX_PARAM 6
#define FM_MAX_BUF 4

typedef struct FmNet FmNet;
typedef struct FmLayer FmLayer;

// Activation tensor: (N, c, h, w) with N the current batch.
typedef struct {
  int c, h, w;
  int flat;             // 1: logically (N, c) (h = w = 1)
  size_t size;          // c*h*w elements per sample
  int alias;            // tensor id whose memory this one shares, or -1 (flatten)
  int needs_grad;       // does any parameter lie upstream? (else no grad buffer)
  int grad_assigned;    // its only reader assigns its gradient (never zeroed)
  size_t off, goff;     // arena offsets (floats, per batch of `cap` samples)
  float *data;          // (N, c, h, w), valid after fm_net_reserve
  float *grad;          // same shape, or NULL when !needs_grad
} FmTensor;

// FM_INIT_DATA copies init_data (size floats, kept until fm_net_finish).
typedef enum { FM_INIT_CONST, FM_INIT_UNIFORM, FM_INIT_NORMAL, FM_INIT_DATA } FmInitKind;

// Trainable parameter or non-trained buffer (same record; buffers have no grad).
typedef struct FmParam {
  char name[48];        // "<layer>.weight", "<layer>.running_mean", ...
  int shape[4], ndim;
  size_t size, off;     // elements; offset in param_data / buf_data
  int group;            // parameter group (params only)
  FmInitKind init;      // how fm_net_finish initialises it
  float init_val;       // constant, uniform bound or normal std
  float *init_data;     // FM_INIT_DATA values (owned; freed by fm_net_finish)
  float *data, *grad;   // grad NULL for buffers
} FmParam;

// Callbacks implementing one layer kind. workspace: floats of shared scratch
// for a batch of n (may be NULL = 0). aux (set at add time) says how much
// state the layer saves for backward. Backward accumulates (+=) into its inputs'
// gradients, except that the kinds fm_layer_assigns_grad names write (=) input i's
// gradient when l->assign[i] is set (fm_net_finish sets it where the layer is the
// tensor's only reader, and fm_net_zero_act_grad then leaves that gradient alone).
typedef struct FmLayerOps {
  FmLayerKind kind;
  const char *name;
  void (*forward)(FmNet *net, FmLayer *l, int n, int train);
  void (*backward)(FmNet *net, FmLayer *l, int n);
  size_t (*workspace)(const FmNet *net, const FmLayer *l, int n);
} FmLayerOps;
int fm_layer_assigns_grad(const FmLayerOps *ops);   // net_layers.c

typedef struct { int C; } FmNormAttr;

// What a net imported from ONNX ends in (net_graph.c): the loss takes the logits, so a
// final Softmax / LogSoftmax is kept aside and applied by export and fm_net_predict only.
typedef enum { FM_FINAL_NONE, FM_FINAL_SOFTMAX, FM_FINAL_LOG_SOFTMAX } FmFinalAct;

struct FmLayer {
  FmLayerKind kind;
  const FmLayerOps *ops;
  char name[32];
  int in[FM_MAX_IN], nin;       // input tensor ids
  unsigned char assign[FM_MAX_IN];   // backward writes (=) this input's gradient
  int out;                      // output tensor id
  int param[FM_MAX_PARAM], nparam;   // ids into net->params, -1 = absent
  int buf[FM_MAX_BUF], nbuf;         // ids into net->bufs, -1 = absent
  union {
    FmConvAttr conv;            // CONV2D, CONV_TRANSPOSE2D
    FmPoolAttr pool;            // MAXPOOL, AVGPOOL
    FmBnAttr bn;                // BATCHNORM
    float p;                    // DROPOUT, DROPOUT2D: drop probability
    FmNormAttr norm;            // NORMALIZE
    FmActAttr act;              // ACT
    FmEltwiseOp elt;            // ELTWISE
  } a;
  void *user;                   // CUSTOM layers' attributes (owned by the caller)
  size_t aux_per_sample, aux_fixed;  // floats saved for backward (per sample, fixed)
  size_t aux_off;
  float *aux;                   // valid after fm_net_reserve
  int train;                    // mode of the last forward
  FmMethodKind method;          // training-method layers (method.h): the method, else 0
  int has_bias;                 // method layers: bias wanted (added by fm_net_finish)
};

typedef struct {
  uint64_t seed;        // parameter init and dropout
  int threads;          // OpenMP threads; <= 0: omp_get_max_threads()
  float width;          // width multiplier for models that have one (default 1)
  int nmean;            // input normalisation: channels given (0 = none: mean 0, std 1)
  float mean[8], std[8];
  FmMethod method;      // training method of conv2d/linear layers (method.h); kind 0 = dense
} FmNetOpts;

struct FmNet {
  char model[32];                 // model name (fm_model_build sets it)
  FmMethod method;                // from FmNetOpts: conv2d/linear builders make its layers
  FmLayer *layers; int nlayers, layers_cap;
  FmTensor *tensors; int ntensors, tensors_cap;
  FmParam *params; int nparams, params_cap;
  FmParam *bufs; int nbufs, bufs_cap;
  FmParamGroup *groups; int ngroups;
  FmOptimSeg *segs;               // one per param, for the optimiser
  float *param_data, *grad_data, *buf_data;
  size_t nparam_floats, nbuf_floats;
  int input, output;              // tensor ids
  FmFinalAct final_act;           // applied after the output at export and fm_net_predict, not in training
  int finished;
  char err[256];                  // first build error ("" if none)
  // runtime
  int threads;
  FmRng rng;
  int cap;                        // batch the arena is sized for
  int n;                          // batch of the last forward
  float *arena; size_t arena_floats;
  float *work; size_t work_floats;
  float *probs;                   // (cap, classes) softmax saved by fm_net_loss
  int probs_cap;
  double *prof;                   // FEWMUL_PROFILE=1: per layer, train fwd | bwd seconds
  long prof_steps;                // training forwards profiled
  // data-parallel training (trainer/dist.h); all unset in a plain run
  uint64_t seed;                  // opts->seed
  int64_t step;                   // the global optimiser step of this forward (the trainer sets it)
  const int *sample_id;           // (n) data-set indices of the batch, or NULL: dropout then draws
                                  // its masks per sample keyed by (seed, step, layer, id), so a
                                  // sample draws the same mask whichever process computes it
  int loss_batch;                 // > 0: fm_net_loss divides by this (the global batch), not n
  const FmBnSync *bn_sync;        // --sync-bn: batchnorm statistics over all processes (ops.h)
  // called after layer i's backward (i descending): gradient buckets start their allreduce
  void (*backward_hook)(FmNet *net, int layer, void *ctx);
  void *backward_hook_ctx;
};

// --- building --------------------------------------------------------------
FmNetOpts fm_net_opts_default(void);
FmNet *fm_net_new(int c, int h, int w, const FmNetOpts *opts);
void fm_net_free(FmNet *net);
// FEWMUL_PROFILE=1: print per-layer training forward/backward times (ms per step).
void fm_net_profile_print(const FmNet *net, FILE *f);
// Allocates parameters/buffers and initialises them (from opts->seed); out
// becomes the network output. Returns 0, -1 on allocation failure.
int fm_net_finish(FmNet *net, int out);

// Built-in layers; each returns its output tensor id. Initialisation follows
// PyTorch defaults (conv/linear: U(+-1/sqrt(fan_in)) for weight and bias).
int fm_net_normalize(FmNet *net, int x, const float *mean, const float *std);
int fm_net_conv2d(FmNet *net, int x, int cout, int k, int stride, int pad, int bias);
int fm_net_conv2d_ex(FmNet *net, int x, const FmConvAttr *a, int bias);   // cin is taken from x
int fm_net_conv_transpose2d(FmNet *net, int x, const FmConvAttr *a, int bias);
int fm_net_linear(FmNet *net, int x, int out, int bias);
int fm_net_batchnorm(FmNet *net, int x, float eps, float momentum, int fixed_gamma);
int fm_net_bn(FmNet *net, int x);                     // eps 1e-5, momentum 0.1
int fm_net_relu(FmNet *net, int x);
int fm_net_maxpool(FmNet *net, int x, int k, int stride, int pad);
int fm_net_avgpool(FmNet *net, int x, int k, int stride, int pad);
int fm_net_global_avgpool(FmNet *net, int x);         // -> (N, C)
int fm_net_dropout(FmNet *net, int x, float p);
int fm_net_dropout2d(FmNet *net, int x, float p);
int fm_net_flatten(FmNet *net, int x);                // -> (N, C*H*W), shares memory
int fm_net_add(FmNet *net, int a, int b);
int fm_net_channel_scale(FmNet *net, int x, float init);
// net_graph.c: the layers an imported ONNX graph needs (trainer/from_onnx.h)
int fm_net_affine(FmNet *net, int x, const float *scale, const float *shift);   // C each, copied
int fm_net_act(FmNet *net, int x, const FmActAttr *a);
int fm_net_eltwise(FmNet *net, int a, int b, FmEltwiseOp op);                  // same shapes
int fm_net_concat(FmNet *net, const int *xs, int n);     // channels; same h, w; any n >= 1
int fm_net_reshape(FmNet *net, int x, int c, int h, int w, int flat);   // same size, shares memory
int fm_net_pool2d(FmNet *net, int x, int max, const FmPoolAttr *a);     // any kernel/stride/pad
// Eval-mode forward of n samples x, then net->final_act: returns (n, classes) scores.
float *fm_net_predict(FmNet *net, const float *x, int n);

// A builder given a bad shape records the first error in net->err and returns
// -1; builders given a -1 input return -1, and fm_net_finish then fails, so
// a model function needs no error checks of its own.

// The built-in ops of a kind (NULL for FM_LAYER_CUSTOM), for code that turns a
// layer into a built-in one (method.c keeps the first conv dense this way).
const FmLayerOps *fm_net_builtin_ops(FmLayerKind kind);

// Generic layer construction (for custom kinds). Adds a layer reading ins[]
// and producing a new (c,h,w) tensor; returns the layer index (-1 on error).
int fm_net_add_layer(FmNet *net, const FmLayerOps *ops, const int *ins, int nin,
                     int c, int h, int w, int flat);
// Adds a parameter/buffer to layer li (next free slot); returns its id.
int fm_net_add_param(FmNet *net, int li, const char *suffix, const int *shape, int ndim,
                     FmInitKind init, float init_val);
int fm_net_add_buf(FmNet *net, int li, const char *suffix, const int *shape, int ndim,
                   FmInitKind init, float init_val);

// Parameter groups: group 0 "default" (lr_mult 1, optimiser weight decay),
// group 1 "frozen" (fixed BN gamma). Returns the new group's id.
int fm_net_add_group(FmNet *net, const char *name, float lr_mult, float weight_decay, int frozen);
void fm_net_set_param_group(FmNet *net, int param, int group);

// --- running ---------------------------------------------------------------
// Sizes the activation arena and workspace for batches of up to n (done
// automatically by forward). Returns 0, -1 on allocation failure.
int fm_net_reserve(FmNet *net, int n);
void fm_net_set_threads(FmNet *net, int threads);
// x is (n, c, h, w) and is read, never written; must stay valid until
// backward. Returns the output (n, classes). train selects BN batch stats and
// dropout.
float *fm_net_forward(FmNet *net, const float *x, int n, int train);
// Mean cross-entropy of the last forward's output against labels; zeroes the
// activation gradients and writes d(loss)/d(logits) into the output grad
// (with net->loss_batch > 0: the gradient of sum(loss) / loss_batch, this
// process's share of a batch split over processes).
// correct (may be NULL) receives the number of argmax hits.
float fm_net_loss(FmNet *net, const int *labels, int n, int *correct);
// Zeroes activation grads (for a custom loss that then writes
// net->tensors[net->output].grad itself).
void fm_net_zero_act_grad(FmNet *net);
// Back-propagates from the output grad; ADDS into parameter grads.
void fm_net_backward(FmNet *net);
void fm_net_zero_grad(FmNet *net);
// One optimiser step over all parameters with their groups, then the training
// method's post-step rule (quantised weights back onto the grid, ...).
void fm_net_step(FmNet *net, FmOptim *opt, float lr);
// The key of layer `layer`'s random draws at net->step (keyed dropout).
uint64_t fm_net_step_key(const FmNet *net, int layer);
// Evaluates count samples in batches (eval mode): mean loss and accuracy.
void fm_net_eval(FmNet *net, const float *x, const int *labels, int count, int batch,
                 float *loss, float *accuracy);
// Builds an optimiser sized for this net.
FmOptim *fm_net_optim_new(FmNet *net, const FmOptimConfig *cfg);

// --- iteration helpers -----------------------------------------------------
const FmParam *fm_layer_param(const FmNet *net, const FmLayer *l, int k);
const FmParam *fm_layer_buf(const FmNet *net, const FmLayer *l, int k);
int fm_net_num_classes(const FmNet *net);
// Multi-line summary (layers, shapes, parameter counts) to f.
void fm_net_print(const FmNet *net, FILE *f);

#endif
