/* test_llvm.c - the LLVM backend against the interpreter, kernel by kernel.
 *
 * 1. The hand-built kernels of test_kernel.c (elementwise, matmul with an unrolled
 *    loop, vector reductions, if/else, triangular loops, a parallel fm_sgemm call,
 *    integer/bool/float16/cast semantics, every store flavour, a collapsed parallel
 *    nest), and 2. every kernel of small real models (the PyTorch fixtures of
 *    tests/e2e/pytorch and the shipped models/fmnist_cnn.onnx, lowered by the normal
 *    pipeline), are compiled with the LLVM backend (exported, with a thunk taking an
 *    array of pointers), optimised at O3 and run through ORC LLJIT on the same random
 *    buffers as the interpreter (kinterp.c). The LLVM backend never contracts or
 *    reassociates, so every buffer must be bit-identical.
 * Without LLVM the test says so and passes (nothing to test).
 */
#define main test_kernel_main
#include "test_kernel.c"
#undef main

#ifdef FM_HAVE_LLVM
#include "jit/jit_llvm.h"
#include "onnx/onnx.h"
#include "passes/passes.h"

/* Runs fns[0..n) in the interpreter and through the JIT at batch N; counts the
   kernels the interpreter refused (random indices out of bounds) in *skipped. */
static void compare(const char *what, KFn **fns, int n, int64_t N, int *skipped) {
  FmLlvm *L = fm_jit_llvm(what);
  char **thunks = calloc((size_t)n, sizeof *thunks);
  for (int k = 0; k < n; k++) {
    LLVMValueRef f = fm_llvm_kernel(L, fns[k], 1);
    fm_llvm_thunk(L, fns[k], f);
    thunks[k] = malloc(strlen(fns[k]->name) + 8);
    sprintf(thunks[k], "%s.thunk", fns[k]->name);
  }
  fm_llvm_optimize(L);
  FmJit *J = fm_jit_add(L);
  for (int k = 0; k < n; k++) {
    KFn *fn = fns[k];
    void (*fp)(int64_t, void **);
    *(void **)&fp = (void *)(uintptr_t)fm_jit_lookup(J, thunks[k]);
    void **p1 = alloc_bufs(fn, N);
    for (int i = 0; i < fn->nbufs; i++) /* constant weights: their real values (indices stay in range) */
      if (fn->bufs[i]->kind == KBUF_TENSOR && fn->bufs[i]->tensor->data)
        memcpy(p1[i], fn->bufs[i]->tensor->data, (size_t)nelem(fn->bufs[i], N) * fm_dtype_size(fn->bufs[i]->t));
    void **p2 = clone_bufs(fn, N, p1);
    char err[256];
    if (fm_kinterp(fn, N, p1, err, sizeof err) != 0) {
      ++*skipped;
      free_bufs(fn, p1), free_bufs(fn, p2);
      continue;
    }
    fp(N, p2);
    int same = 1;
    for (int i = 0; i < fn->nbufs; i++)
      if (p1[i] && memcmp(p1[i], p2[i], (size_t)nelem(fn->bufs[i], N) * fm_dtype_size(fn->bufs[i]->t))) {
        same = 0;
        fprintf(stderr, "%s: kernel %s: buffer %s differs between LLVM and the interpreter\n", what, fn->name,
                fn->bufs[i]->name);
      }
    CHECK(same);
    free_bufs(fn, p1), free_bufs(fn, p2);
  }
  fm_jit_free(J);
  for (int k = 0; k < n; k++) free(thunks[k]);
  free(thunks);
}

static void test_handmade(void) {
  test_elementwise();
  test_matmul();
  test_reduce();
  test_if();
  test_call();
  test_semantics();
  test_loops();
  test_stores();
  int skipped = 0;
  for (int k = 0; k < nprinted; k++) { /* one module per batch size */
    KFn *one[1] = {printed[k]};
    compare(printed[k]->name, one, 1, printed_batch[k], &skipped);
  }
  CHECK(skipped == 0);
  printf("test_llvm: %d hand-built kernels bit-identical\n", nprinted);
}

static void test_model(const char *path, int64_t N) {
  FmTry t;
  Graph *mg = NULL;
  KProgram *p = NULL;
  FM_TRY(&t) {
    mg = fm_onnx_load(path, NULL);
    FmPassOpts po = {0};
    fm_run_passes(mg, &po);
    p = fm_lower_graph(mg);
    fm_try_pop(&t);
  } else {
    fprintf(stderr, "%s: %s\n", path, fm_errmsg());
    CHECK(0);
    return;
  }
  KFn **fns = calloc((size_t)p->nfns + 1, sizeof *fns);
  int n = 0, skipped = 0;
  for (KFn *fn = p->fns; fn; fn = fn->next) fns[n++] = fn;
  int before = check_fail_;
  compare(strrchr(path, '/') + 1, fns, n, N, &skipped);
  printf("test_llvm: %s: %d kernels at N = %lld, %s (%d not run: the interpreter refused random inputs)\n",
         strrchr(path, '/') + 1, n, (long long)N, check_fail_ == before ? "bit-identical" : "DIFFERENT", skipped);
  CHECK(n > 0 && skipped < n);
  free(fns);
  fm_graph_free(mg);
}

int main(void) {
  g = fm_graph_new();
  test_handmade();
  static const char *const models[] = {"tests/e2e/pytorch/mlp.onnx", "tests/e2e/pytorch/lenet.onnx",
                                       "tests/e2e/pytorch/convmix.onnx", "tests/e2e/pytorch/resnet_tiny.onnx",
                                       "tests/e2e/pytorch/export_ops.onnx", "tests/e2e/pytorch/export_ops17.onnx",
                                       "models/fmnist_cnn.onnx"};
  for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", FM_SOURCE_DIR, models[i]);
    test_model(path, 2);
  }
  fm_graph_free(g);
  return check_done("test_llvm");
}
#else
int main(void) {
  printf("test_llvm: this fewmul was built without LLVM: nothing to test\n");
  (void)test_kernel_main;
  return 0;
}
#endif
