/* winograd.h - Winograd F(m x m, 3 x 3) convolution: the WinogradConv op (ops/winograd.c)
 * and what the Winograd pass (passes/winograd.c) needs to make one from a Conv.
 *
 *   float Bt[64], G[24], At[48];
 *   fm_wino_cook_toom(4, Bt, G, At);   // Bt (6 x 6), G (6 x 3), At (4 x 6), row-major
 *
 * The transforms are the trainer's (trainer/method_winograd.c, docs/METHODS.md): points
 * F2 {0, ±1, ∞}, F4 {0, ±1, ±2, ∞}, F6 {0, ±1, ±2, ±1/2, ∞}, with the Vandermonde factors
 * moved into Bt so that Bt is integer for F2 and F4. Y = At [sum_c (G W Gt) ⊙ (Bt d Btt)] Att
 * per m x m output tile, d the (m+2) x (m+2) input tile.
 */
#ifndef FM_WINOGRAD_H
#define FM_WINOGRAD_H
#include "ops/ops.h"

/* Cook-Toom transforms for m = 2, 4 or 6; -1 for any other m. */
int fm_wino_cook_toom(int m, float *Bt, float *G, float *At);

/* Multiplications of WinogradConv F(m, 3) with the given transforms per output tile,
   for C input and K output channels: the input transform's (per channel), the
   Winograd-domain products, the output transform's. Coefficients 0 and ±1 cost none. */
typedef struct FmWinoMuls { double in, gemm, out; } FmWinoMuls;
FmWinoMuls fm_wino_muls(int m, const float *Bt, const float *At, int64_t C, int64_t K);
#endif
