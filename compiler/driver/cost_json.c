/* cost_json.c - `fewmul cost --json`: the per-layer report as one JSON object,
 *
 *   {"layers":[{"name":..,"op":..,"kind":..,"mul":..,"add":..,"shift":..,"dense_mul":..},...],
 *    "total":{"mul":..,"add":..,"shift":..,"dense_mul":..}}
 *
 * for the batch given (default 1). kind is the kernel family of the layer: dense (Conv,
 * Gemm, MatMul, ConvTranspose: one multiply per MAC), ternary, pow2, sp, shift, or
 * other (pooling, elementwise, data movement). */
#include "driver.h"

const char *fm_cost_kind(const Node *n) {
  if (!n) return "other";
  switch (n->op) {
  case OP_Conv: case OP_Gemm: case OP_MatMul: case OP_ConvTranspose: return "dense";
  case OP_TernaryConv: case OP_TernaryGemm: return "ternary";
  case OP_Pow2Conv: case OP_Pow2Gemm: return "pow2";
  case OP_SPConv: case OP_SPGemm: return "sp";
  case OP_Shift: return "shift";
  default: return "other";
  }
}

void fm_json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}
