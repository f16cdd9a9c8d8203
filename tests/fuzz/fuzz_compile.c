/* fuzz_compile.c - libFuzzer target for the whole compile pipeline short of the C
 * compiler: ONNX load -> passes (shapes, fold, fusion, weights, ...) -> lowering to
 * kernel IR -> memory plan, and the cost model over the kernels.
 *
 * Any input must either compile that far or fail through fm_fail (caught here): no
 * crash, no leak, no sanitizer report (ASan+UBSan: every size computed from the model
 * is checked arithmetic), no exit. A plan that is made must be consistent: its
 * workspace holds every planned buffer at N = 1 and at its max_batch.
 * Seeds: tests/fuzz/corpus/compile (hostile models from test_overflow --write-corpus)
 * and small backend-test models (tests/fuzz/run.sh).
 */
#include "emit/codegen.h"
#include "onnx/onnx.h"
#include "passes/passes.h"
#include <stdio.h>
#include <stdlib.h>

static void check_plan(const FmMemPlan *mp) {
  if (mp->max_batch < 1) {
    fprintf(stderr, "fuzz_compile: a plan with max_batch %lld\n", (long long)mp->max_batch);
    __builtin_trap();
  }
  int64_t ns[2] = {1, mp->max_batch};
  for (int k = 0; k < 2; k++) {
    size_t ws = fm_memplan_size(mp, ns[k]);
    for (int i = 0; i < mp->nends; i++)
      if (ws < (size_t)fm_lin_at(mp->ends[i], ns[k]) || ws == 0 || (int64_t)ws > FM_MAX_PLAN_BYTES) {
        fprintf(stderr, "fuzz_compile: workspace %zu at N = %lld misses end %d\n", ws, (long long)ns[k], i);
        __builtin_trap();
      }
  }
  if (mp->max_batch < INT64_MAX && fm_memplan_size(mp, mp->max_batch + 1) != 0) {
    fprintf(stderr, "fuzz_compile: a workspace size past max_batch\n");
    __builtin_trap();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FmLoadOpts lo = {.no_external_data = 1};
  Graph *volatile g = NULL;
  FmTry t;
  FM_TRY(&t) {
    g = fm_onnx_load_mem(data, size, "fuzz.onnx", &lo);
    fm_run_passes(g, NULL);
    KProgram *p = fm_lower_graph(g);
    FmMemPlan *mp = fm_memplan(p);
    check_plan(mp);
    fm_try_pop(&t);
  }
  fm_graph_free(g);
  return 0;
}
