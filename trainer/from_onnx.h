/* from_onnx.h - `fewmul train --from dense.onnx`: start a run from the weights of a
 * trained dense model in ONNX form (fewmul train -o writes it), read through the
 * compiler's ONNX loader (compiler/onnx/onnx.h).
 *
 *   FmNet *net = fm_model_build("resnet20", 3, 32, 32, 10, &opts, err, sizeof err);  // any method
 *   if (!fm_from_is_checkpoint("dense.onnx") &&
 *       fm_from_onnx(net, "dense.onnx", stderr, err, sizeof err))
 *     { fprintf(stderr, "fewmul: error: %s\n", err); exit(1); }
 *
 * Matching: the file's weighted layers (the Sub/Div input normalisation, Conv,
 * ConvTranspose, Gemm, BatchNormalization, Mul by a constant), in node order, pair
 * one to one with the net's layers that hold weights, in layer order; kinds, weight
 * shapes, bias presence and conv attributes must agree. Names are not used, so any
 * dense export of the same architecture fits (the layer names change with the method).
 * Every tensor of a pair is copied, except for SP layers (method_sp.h), whose W_B,
 * W_C, a and inner BN have no dense counterpart and keep their random init.
 * Then each weight method initialises itself from the dense W (fm_method_init):
 * ternary, DeepShift-Q and quant take W as their latent weight (quant: range max|W|),
 * DeepShift-PS sets P = log2|W| (clamped) and S = sign(W); Winograd convs take W and
 * keep their Cook-Toom transforms.
 *
 * Limits: the file must keep BatchNormalization as nodes (fewmul's export does; a
 * model whose BN was folded into the conv weights is refused, naming the layer), and
 * it must be dense (ai.fewmul weight ops or QDQ weights are refused).
 */
#ifndef FM_TRAINER_FROM_ONNX_H
#define FM_TRAINER_FROM_ONNX_H
#include <stddef.h>
#include <stdio.h>
#include "net.h"

// 1 when path starts with the fewmul checkpoint magic (checkpoint.h) or cannot be
// read (the checkpoint loader then says why); 0 otherwise (taken as ONNX).
int fm_from_is_checkpoint(const char *path);

// Copies the dense weights of the ONNX model at path into the finished net, as
// above. log (NULL: quiet) receives "from PATH: N tensors into N parameters ..."
// and which layers kept their random init. Returns 0, or -1 with one line in err
// naming the file and the tensor or layer; on error the net is left unchanged.
int fm_from_onnx(FmNet *net, const char *path, FILE *log, char *err, size_t errlen);

// Builds a trainable net from any ONNX CNN/MLP graph (onnx_import.c; `fewmul train --from
// model.onnx` without --model): the compiler's loader and passes (check_ops, shapes, fold,
// noop) give a clean graph, each node becomes the trainer's layer(s) through the net
// builders (so opts->method converts the conv and linear layers as in the built-in models),
// then the weights come from the initialisers as above. The model's input must be the
// data set's images, (N, c, h, w), or (N, c*h*w) for an MLP; its output (N, classes).
// Constant Add/Sub/Mul/Div (input normalisation) become frozen affine layers; a final
// Softmax/LogSoftmax is kept in net->final_act. Returns the finished net, or NULL with one
// line in err naming the file and the node (an op outside the trainable set, a shape the
// trainer does not take, a model without weights).
FmNet *fm_import_onnx(const char *path, const FmNetOpts *opts, int c, int h, int w, int classes, FILE *log,
                      char *err, size_t errlen);

// --predict IN.npy: writes the eval-mode outputs of the net (after a kept final Softmax) on
// the samples of IN.npy (float32, (n, ...) with the net's input size per sample) to OUT as
// an (n, classes) .npy; out NULL only checks IN (before training). 0, or -1 with one line in err.
int fm_net_predict_npy(FmNet *net, const char *in, const char *out, char *err, size_t errlen);

#endif
