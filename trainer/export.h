/* export.h - a trained network as a standard ONNX model (opset 13).
 *
 *   char err[256];
 *   if (fm_export_onnx(net, "model.onnx", err, sizeof err)) fprintf(stderr, "%s\n", err);
 *
 * The graph takes `input` (N x C x H x W float pixels in [0, 1]: the input
 * normalisation is part of the graph) with a symbolic batch N, and gives `output`
 * (N x classes logits). BatchNormalization is exported in inference form with the
 * running statistics; dropout is the identity at inference and is not exported.
 *
 * Training-method layers (method.h) are exported with their integer weights:
 * ternary as ai.fewmul TernaryConv/TernaryGemm, DeepShift as Pow2Conv/Pow2Gemm
 * (each op used is also written as a model-local function whose body is standard
 * ONNX, so ONNX Runtime runs the model; opsets ai.onnx 13 and ai.fewmul 1), and
 * quantised weights as DequantizeLinear(int8, scale, zero point 0) -> Conv/Gemm.
 */
#ifndef FM_EXPORT_H
#define FM_EXPORT_H
#include <stddef.h>
#include "net.h"
#include "ir/ir.h"

/* Builds the graph IR of net (eval mode). Fails through fm_fail. */
Graph *fm_export_graph(const FmNet *net);
/* Writes net to path; returns 0, or -1 with a message in err. No partial file. */
int fm_export_onnx(const FmNet *net, const char *path, char *err, size_t errlen);
#endif
