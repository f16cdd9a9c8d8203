/* test_target.c - the lowering follows the target (FmLowerOpts, `--target`), not the
 * machine that built fewmul: a Conv on a small image with 48 output channels splits
 * them into blocks that are multiples of the CPU library's row tile under the target's
 * ISA (6 on x86-64-v3, 8 on x86-64-v4: blocks of 12 and 16), and both lowerings compute
 * the same values. Also: fm_target_get's table, and a backend that cannot call a CPU
 * library routine gets loops (no call in the kernel). */
#include "check.h"
#include "opcheck.h"
#include <stdlib.h>
#include <string.h>

static char *dump(KFn *fn) {
  char *s;
  size_t n;
  FILE *f = open_memstream(&s, &n);
  fm_kdump(fn, f);
  fclose(f);
  return s;
}

static int no_routines(const char *routine) { (void)routine; return 0; }

/* lowers n with opts; returns the dump (caller frees) and runs it at N = 1 into y */
static char *lower_run(Node *n, const FmLowerOpts *o, float *x, float *y) {
  KB b;
  kb_begin(&b, oc_g, n, "k");
  b.opts = o;
  fm_ops[n->op].lower(&b, n);
  void *ptrs[16] = {0};
  for (int i = 0; i < b.fn->nbufs; i++) {
    KBuf *bf = b.fn->bufs[i];
    if (bf->kind == KBUF_TENSOR && bf->tensor == n->in[0]) ptrs[i] = x;
    if (bf->kind == KBUF_TENSOR && bf->tensor == n->out[0]) ptrs[i] = y;
  }
  char err[256];
  CHECK(fm_kinterp(b.fn, 1, ptrs, err, sizeof err) == 0);
  return dump(b.fn);
}

int main(void) {
  FmTarget t;
  CHECK(fm_target_get("x86-64-v3", &t) == 0 && t.avx2 && !t.avx512 && t.gemm_mr == 6 && !strcmp(t.march, "x86-64-v3"));
  CHECK(fm_target_get("x86-64-v4", &t) == 0 && t.avx512 && t.gemm_mr == 8 && t.gemm_nr == 32);
  CHECK(fm_target_get("generic", &t) == 0 && !t.avx2 && !strcmp(t.march, "x86-64"));
  CHECK(fm_target_get("native", &t) == 0 && !strcmp(t.march, "native"));
  CHECK(fm_target_get("pentium", &t) == -1);

  oc_graph_new(13);
  enum { C = 8, M = 48, H = 8 };
  static float w[M * C * 9], x[C * H * H], y3[M * H * H], y4[M * H * H], yd[M * H * H];
  for (int i = 0; i < M * C * 9; i++) w[i] = (float)((i * 7) % 11) * 0.125f - 0.6f;
  for (int i = 0; i < C * H * H; i++) x[i] = (float)((i * 5) % 13) * 0.25f - 1.5f;
  Tensor *X = oc_input_named("x", FM_F32, 4, (int64_t[]){-1, C, H, H});
  Tensor *W = oc_const(FM_F32, 4, (int64_t[]){M, C, 3, 3}, w);
  Node *n = oc_node(OP_Conv, 0, 2, (Tensor *[]){X, W}, 1);
  oc_attr_ints(n, "pads", 4, (int64_t[]){1, 1, 1, 1});
  CHECK(oc_infer(n) == 0);

  FmLowerOpts v3 = {0}, v4 = {0}, loops = {0};
  fm_target_get("x86-64-v3", &v3.target);
  fm_target_get("x86-64-v4", &v4.target);
  fm_target_get("x86-64-v4", &loops.target);
  loops.can_call = no_routines;
  char *d3 = lower_run(n, &v3, x, y3), *d4 = lower_run(n, &v4, x, y4), *dd = lower_run(n, &loops, x, yd);
  CHECK(strstr(d3, "fm_sgemm_pb") && strstr(d4, "fm_sgemm_pb"));
  CHECK(strstr(d3, "rb * 12") && !strstr(d3, "rb * 16")); /* 48 channels in 4 blocks of 12 = 2 x 6 */
  CHECK(strstr(d4, "rb * 16") && !strstr(d4, "rb * 12")); /* ... in 3 blocks of 16 = 2 x 8 */
  CHECK(!strstr(dd, "call ") && strstr(dd, "Conv direct"));
  if (!strstr(d3, "rb * 12") || !strstr(d4, "rb * 16")) fprintf(stderr, "v3:\n%s\nv4:\n%s\n", d3, d4);
  int same = 1;
  for (int i = 0; i < M * H * H; i++)
    same &= fabsf(y3[i] - y4[i]) <= 1e-4f * (1 + fabsf(y4[i])) && fabsf(yd[i] - y4[i]) <= 1e-4f * (1 + fabsf(y4[i]));
  CHECK(same);
  free(d3), free(d4), free(dd);
  oc_graph_free();
  return check_done("test_target");
}
