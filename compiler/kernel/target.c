/* target.c - the machine the generated code is for (`fewmul compile --target`), which
 * is not necessarily the machine that built fewmul or the one running it:
 *
 *   target      -march= of the generated code   ISA it may use      GEMM tile (MR x NR)
 *   native      native (the machine running fewmul; its ISA read with cpuid)
 *   x86-64-v4   x86-64-v4                       AVX-512, AVX2, FMA  8 x 32
 *   x86-64-v3   x86-64-v3                       AVX2, FMA           6 x 16
 *   generic     x86-64                          SSE2                6 x 16 (portable C)
 *
 * The CPU kernel library's ISA paths are chosen by the generated code's own flags
 * (compiler/cpu/cpu.c's #if __AVX512F__ ...), so the lowering only needs the tile
 * those flags give, to block its work in multiples of it (conv_gemm.c).
 */
#include "kernel/kernel.h"
#include <string.h>

static void isa(FmTarget *t, int avx2, int avx512) {
  t->avx2 = avx2, t->avx512 = avx2 && avx512;
  t->gemm_mr = t->avx512 ? 8 : 6;
  t->gemm_nr = t->avx512 ? 32 : 16;
}

int fm_target_get(const char *name, FmTarget *t) {
  memset(t, 0, sizeof *t);
  if (!name || !strcmp(name, "native")) {
    t->name = "native", t->march = "native";
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    isa(t, __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"), __builtin_cpu_supports("avx512f"));
#else
    isa(t, 0, 0);
#endif
    return 0;
  }
  if (!strcmp(name, "x86-64-v4")) t->name = t->march = "x86-64-v4", isa(t, 1, 1);
  else if (!strcmp(name, "x86-64-v3")) t->name = t->march = "x86-64-v3", isa(t, 1, 0);
  else if (!strcmp(name, "generic")) t->name = "generic", t->march = "x86-64", isa(t, 0, 0);
  else return -1;
  return 0;
}

const char *fm_target_names(void) { return "native, x86-64-v3, x86-64-v4, generic"; }

const FmLowerOpts *fm_lower_opts_default(void) {
  static FmLowerOpts d;
  static int init;
  if (!init) fm_target_get("native", &d.target), init = 1;
  return &d;
}

int fm_lower_can_call(const KB *b, const char *routine) {
  const FmLowerOpts *o = b->opts ? b->opts : fm_lower_opts_default();
  return !o->can_call || o->can_call(routine);
}
