/* from_onnx_internal.h - what from_onnx.c (weights into a named model) and
 * onnx_import.c (a net built from any ONNX graph) share: the file's weighted layers
 * as units, paired in order with the net's weighted layers, checked, copied. */
#ifndef FM_TRAINER_FROM_ONNX_INTERNAL_H
#define FM_TRAINER_FROM_ONNX_INTERNAL_H
#include "net.h"
#include "onnx/onnx.h"
#include <stdio.h>

/* The weighted layer kinds, as both sides see them. */
typedef enum { U_NORM, U_CONV, U_CONVT, U_GEMM, U_BN, U_SCALE } UnitKind;

/* One weighted layer of the file: its constants in the net's slot order
   (norm: mean, std; conv/gemm: W, B; BN: scale, bias, mean, var; scale: s). */
typedef struct {
  UnitKind kind;
  const Node *node;
  const Tensor *t[4];   /* NULL: absent (a bias-less Conv) */
  int transposed;       /* Gemm with transB = 0, MatMul: W is stored (in, out) */
  int built;            /* the net's layer was built from this node: attributes agree by construction */
  float alpha, beta;    /* Gemm: W and B are scaled by these on copy (0: 1) */
} FileUnit;

/* Pairs f[0..nf) with the finished net's weighted layers in layer order, checks every
   pair (kinds, shapes, bias, attributes), copies, then initialises each method layer
   from the dense W (fm_method_init) and logs what it did. Fails through fm_fail. */
void fm_from_apply_units(Graph *g, FmNet *net, const char *path, const char *who, FILE *log,
                         const FileUnit *f, int nf);

#endif
