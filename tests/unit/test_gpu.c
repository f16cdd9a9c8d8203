/* test_gpu.c - the device printers without a device (emit_gpu.c, backend_opencl.c,
 * backend_cuda.c): a kernel that calls a CPU library routine is refused naming its node
 * and op; a kernel of lets and two parallel loops becomes two device kernels, each with
 * the lets and its loop as work-items (fm_g, the global index); a serial loop stays a
 * loop in one work-item; and the OpenCL and CUDA texts differ only in spelling. Running
 * on a device is tests/e2e/gpu_opencl.sh's (PoCL) and gpu_cuda.sh's. */
#include "check.h"
#include "emit/codegen.h"
#include "emit/emit.h"
#include "onnx/onnx.h"
#include "passes/passes.h"
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  rewind(f);
  char *s = calloc(1, (size_t)n + 1);
  if (fread(s, 1, (size_t)n, f) != (size_t)n) s[0] = 0;
  fclose(f);
  return s;
}

/* Compiles the mlp fixture with backend be (no .so); returns the error or NULL. */
static const char *compile(const FmBackend *be, int lower_for_backend, const char *out) {
  static char msg[512];
  Graph *g = fm_onnx_load(FM_SOURCE_DIR "/tests/e2e/pytorch/mlp.onnx", NULL);
  FmTry t;
  FM_TRY(&t) {
    fm_run_passes(g, &(FmPassOpts){0});
    FmLowerOpts lo = *fm_lower_opts_default();
    if (lower_for_backend) lo.can_call = be->can_call;
    KProgram *p = fm_lower_graph_opts(g, &lo);
    FmCodegenOpts o = {.backend = be, .outdir = out, .name = "model", .no_so = 1, .quiet = 1};
    fm_codegen(p, &o);
    fm_try_pop(&t);
    fm_graph_free(g);
    return NULL;
  } else {
    snprintf(msg, sizeof msg, "%s", fm_errmsg());
    fm_cleanup_run();
    return msg;
  }
}

int main(void) {
  /* a Gemm lowered to fm_sgemm (the C backend's can_call): refused, naming node and op */
  const char *e = compile(&fm_backend_opencl, 0, "/tmp/fm_test_gpu_refuse");
  CHECK(e && strstr(e, "node '") && strstr(e, "(Gemm)") && strstr(e, "fm_sgemm") && strstr(e, "opencl"));
  if (e) printf("refused: %s\n", e);

  /* lowered for the backend: plain loops, printed */
  CHECK(compile(&fm_backend_opencl, 1, "/tmp/fm_test_gpu_cl") == NULL);
  CHECK(compile(&fm_backend_cuda, 1, "/tmp/fm_test_gpu_cu") == NULL);
  char *cl = slurp("/tmp/fm_test_gpu_cl/model.cl"), *cu = slurp("/tmp/fm_test_gpu_cu/model.cu");
  CHECK(cl && cu);
  if (!cl || !cu) return check_done("test_gpu");
  CHECK(strstr(cl, "__kernel void") && strstr(cl, "get_global_id(0)") && strstr(cl, "__global const float *restrict"));
  CHECK(strstr(cu, "extern \"C\" __global__ void") && strstr(cu, "blockIdx.x") && strstr(cu, "<<<"));
  CHECK(!strstr(cl, "fm_sgemm") && !strstr(cu, "fm_sgemm"));
  CHECK(strstr(cl, "#pragma OPENCL FP_CONTRACT OFF") != NULL);
  /* the same kernels in both: every __kernel name of the .cl is a kernel of the .cu */
  int n = 0;
  for (const char *p = cl; (p = strstr(p, "__kernel void ")); p++) {
    char name[128];
    sscanf(p + 14, "%127[A-Za-z0-9_]", name);
    char want[160];
    snprintf(want, sizeof want, "__global__ void %s(", name);
    CHECK(strstr(cu, want) != NULL);
    n++;
  }
  CHECK(n >= 2);
  printf("%d device kernels in both dialects\n", n);
  /* the OpenCL host code is written next to the .cl only with the .so */
  free(cl), free(cu);
  if (system("rm -rf /tmp/fm_test_gpu_cl /tmp/fm_test_gpu_cu /tmp/fm_test_gpu_refuse")) {}
  return check_done("test_gpu");
}
