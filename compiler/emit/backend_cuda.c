/* backend_cuda.c - the CUDA backend (--emit cuda): <name>.cu holds the kernels (CUDA C,
 * printed from the kernel IR by the same printer as OpenCL: emit_gpu.c / emit_c.c in
 * the CUDA dialect) followed by the host code (CUDA runtime API), built by nvcc
 * ($NVCC, else nvcc on PATH, else /usr/local/cuda/bin/nvcc) with warnings as errors
 * into <name>.so. Same structure as the OpenCL backend: the device is initialised and
 * the weights uploaded once; one device allocation holds the planned workspace, the
 * inputs and the outputs; the kernels run in order on the default stream.
 * Status codes as OpenCL's (backend_opencl.c): 3 no device, 5 out of device memory,
 * 6 other CUDA error (4 never: kernels are compiled ahead of time).
 * Threads per block: FM_CUDA_WG (256).
 */
#include "emit/emit_gpu.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FM_CUDA_WG 256

static const FmCDialect cuda_dialect = {
  .kernel = "extern \"C\" __global__ void",
  .global = "",
  .table = "static __device__ const",
  .gid = "((int64_t)blockIdx.x * blockDim.x + threadIdx.x)",
  .base_offset = 0,
};

static const char cu_prelude[] =
  "#include <stdint.h>\n#include <math.h>\n#include <string.h>\n"
  "#define restrict __restrict__\n#define FM_F64 1\n"
  "#define FM_DEV __device__ __forceinline__\n"
  "#define FM_AS_UINT(x) __float_as_uint(x)\n#define FM_AS_FLOAT(x) __uint_as_float(x)\n";

static void cu_begin(FmModule *m) { fm_gpu_begin(m, &cuda_dialect, "cuda", cu_prelude); }

static const char cu_host_rt[] =
  "static struct {\n"
  "  pthread_mutex_t mu;\n  int ready, index, profile;\n"
  "  unsigned char *w, *d;\n  size_t d_size;\n  cudaEvent_t e0, e1;\n"
  "  double kernel_ms;\n  char name[256];\n  char err[4096];\n"
  "} S = {PTHREAD_MUTEX_INITIALIZER};\n\n"
  "static int fm_err(int code, const char *fmt, ...) {\n"
  "  va_list ap;\n  va_start(ap, fmt);\n  vsnprintf(S.err, sizeof S.err, fmt, ap);\n  va_end(ap);\n  return code;\n}\n\n"
  "static int fm_code(cudaError_t e) { return e == cudaErrorMemoryAllocation ? 5 : 6; }\n\n"
  "static void fm_release(void) {\n"
  "  if (S.d) cudaFree(S.d), S.d = 0;\n  if (S.w) cudaFree(S.w), S.w = 0;\n"
  "  if (S.ready) cudaEventDestroy(S.e0), cudaEventDestroy(S.e1);\n  S.d_size = 0, S.ready = 0;\n}\n\n"
  "static int fm_init(void) {\n"
  "  if (S.ready) return cudaSetDevice(S.index) == cudaSuccess ? 0 : 6;\n"
  "  int n = 0;\n  cudaError_t e = cudaGetDeviceCount(&n);\n"
  "  if (e != cudaSuccess || n == 0)\n"
  "    return fm_err(3, \"no CUDA device (%s)\", e != cudaSuccess ? cudaGetErrorString(e) : \"none found\");\n"
  "  if (S.index >= n) return fm_err(3, \"no CUDA device cuda:%d (%d found)\", S.index, n);\n"
  "  if ((e = cudaSetDevice(S.index)) != cudaSuccess) return fm_err(6, \"cuda:%d: %s\", S.index, cudaGetErrorString(e));\n"
  "  cudaDeviceProp p;\n  if (cudaGetDeviceProperties(&p, S.index) == cudaSuccess) snprintf(S.name, sizeof S.name, \"%s\", p.name);\n"
  "  if (FM_WEIGHTS_BYTES) {\n"
  "    if (!FM_BLOB) return fm_err(2, \"the weights are not set (set_weights)\");\n"
  "    if ((e = cudaMalloc((void **)&S.w, FM_WEIGHTS_BYTES)) != cudaSuccess ||\n"
  "        (e = cudaMemcpy(S.w, FM_BLOB, FM_WEIGHTS_BYTES, cudaMemcpyHostToDevice)) != cudaSuccess) {\n"
  "      if (S.w) cudaFree(S.w), S.w = 0;\n"
  "      return fm_err(fm_code(e), \"cannot upload %llu bytes of weights: %s\", (unsigned long long)FM_WEIGHTS_BYTES,\n"
  "                    cudaGetErrorString(e));\n    }\n  }\n"
  "  cudaEventCreate(&S.e0), cudaEventCreate(&S.e1);\n"
  "  S.ready = 1;\n  return 0;\n}\n\n"
  "static unsigned fm_blocks(int64_t trips, int grid) { return grid ? (unsigned)((trips + FM_WG - 1) / FM_WG) : 1u; }\n\n";

static void host_run(FmModule *G, FILE *f) {
  FmGpu *gs = G->priv;
  Graph *g = G->g;
  const char *nm = G->name;
  fprintf(f, "static int fm_run_locked(int64_t N, const void *const *in, void *const *out) {\n");
  fprintf(f, "  size_t io[%d];\n  int rc = fm_init();\n  cudaError_t e = cudaSuccess;\n  int64_t t;\n",
          g->ninputs + g->noutputs + 1);
  fprintf(f, "  (void)in, (void)out, (void)t;\n  if (rc) return rc;\n  size_t need = fm_layout(N, io);\n");
  fprintf(f, "  if (need > S.d_size) {\n    if (S.d) cudaFree(S.d), S.d = 0, S.d_size = 0;\n"
             "    if ((e = cudaMalloc((void **)&S.d, need)) != cudaSuccess)\n"
             "      return fm_err(fm_code(e), \"cannot allocate %%zu bytes of device memory: %%s\", need, cudaGetErrorString(e));\n"
             "    S.d_size = need;\n  }\n");
  fprintf(f, "  for (int i = 0; i < %d && e == cudaSuccess; i++)\n"
             "    if (fm_io_bytes(N, i)) e = cudaMemcpy(S.d + io[i], in[i], fm_io_bytes(N, i), cudaMemcpyHostToDevice);\n"
             "  if (e != cudaSuccess) return fm_err(fm_code(e), \"copying the inputs to the device: %%s\", cudaGetErrorString(e));\n",
          g->ninputs);
  fprintf(f, "  if (S.profile) cudaEventRecord(S.e0);\n");
  for (GpuPhase *ph = gs->phases; ph; ph = ph->next) {
    KFn *fn = ph->fn;
    fprintf(f, "  t = ");
    fm_gpu_host_trips(G, f, ph);
    fprintf(f, ";\n  if (t > 0) %s<<<fm_blocks(t, %d), %s>>>(N", ph->name, ph->grid != NULL, ph->grid ? "FM_WG" : "1");
    for (int k = 0; k < fn->nbufs; k++) {
      KBuf *b = fn->bufs[k];
      if (b->kind == KBUF_CONST) continue;
      char base;
      const char *off = fm_gpu_host_off(G, ph, b, &base);
      fprintf(f, ", (%s *)(%s + %s)", fm_dtype_ctype(b->t), base == 'W' ? "S.w" : "S.d", off);
    }
    fprintf(f, ");\n");
  }
  fprintf(f, "  if (S.profile) cudaEventRecord(S.e1);\n");
  fprintf(f, "  if ((e = cudaGetLastError()) != cudaSuccess) return fm_err(fm_code(e), \"launching the kernels: %%s\", cudaGetErrorString(e));\n");
  for (int i = 0; i < g->noutputs; i++)
    if (fm_gpu_output_on_device(G, i))
      fprintf(f, "  if (e == cudaSuccess && fm_io_bytes(N, %d))\n"
                 "    e = cudaMemcpy(out[%d], S.d + io[%d], fm_io_bytes(N, %d), cudaMemcpyDeviceToHost);\n",
              g->ninputs + i, i, g->ninputs + i, g->ninputs + i);
  fprintf(f, "  if (e == cudaSuccess) e = cudaDeviceSynchronize();\n");
  fprintf(f, "  if (e != cudaSuccess) return fm_err(fm_code(e), \"running the kernels: %%s\", cudaGetErrorString(e));\n");
  fm_gpu_host_copies(G, f);
  fprintf(f, "  float ms = 0;\n  if (S.profile && cudaEventElapsedTime(&ms, S.e0, S.e1) == cudaSuccess) S.kernel_ms = ms;\n");
  fprintf(f, "  return 0;\n}\n\n");
  fprintf(f, "int %s_run(int64_t N, const void *const *in, void *const *out, void *ws) {\n", nm);
  fprintf(f, "  (void)ws;\n  if (N <= 0%s%s) return 1;\n", g->ninputs ? " || !in" : "", g->noutputs ? " || !out" : "");
  fprintf(f, "  pthread_mutex_lock(&S.mu);\n  int rc = fm_run_locked(N, in, out);\n  pthread_mutex_unlock(&S.mu);\n"
             "  return rc;\n}\n\n");
}

/* The host code follows the kernels in the same .cu. */
static void cu_entry(FmModule *G) {
  FILE *f = G->f;
  const char *nm = G->name;
  fprintf(f, "/* ---- host code ---- */\n#include \"%s.h\"\n#include <pthread.h>\n#include <stdarg.h>\n#include <stdio.h>\n\n%s\n",
          nm, fm_gpu_device_desc);
  fprintf(f, "#define FM_WG %d\n#define FM_WEIGHTS_BYTES %lluu\n#define FM_BLOB %s_blob\n\n", FM_CUDA_WG,
          (unsigned long long)G->blob_total, nm);
  fm_gpu_host_common(G, f);
  fputs(cu_host_rt, f);
  host_run(G, f);
  fm_gpu_host_device(G, f, "cuda");
  fm_gpu_host_desc(G, f);
}

static const char *find_nvcc(void) {
  const char *e = getenv("NVCC");
  if (e && *e) return e;
  const char *path = getenv("PATH");
  char buf[4096];
  for (const char *p = path ? path : ""; *p;) {
    size_t n = strcspn(p, ":");
    snprintf(buf, sizeof buf, "%.*s/nvcc", (int)n, p);
    if (n && access(buf, X_OK) == 0) return "nvcc";
    p += n + (p[n] == ':');
  }
  return access("/usr/local/cuda/bin/nvcc", X_OK) == 0 ? "/usr/local/cuda/bin/nvcc" : "nvcc";
}

static void cu_build(FmModule *G, const char *dir, const char *cu_path, const char *so_path) {
  Arena *a = &G->g->arena;
  const char *nvcc = find_nvcc();
  const char *log = fm_sprintf(a, "%s/nvcc.log", dir);
  fm_cleanup_add(log);
  fm_cleanup_add(so_path);
  const char *argv[] = {nvcc, "-O3", "-shared", "-Xcompiler", "-fPIC,-Wall", "-Werror", "all-warnings",
                        "-fmad=false", "-DFM_SHARED", "-I", dir, "-o", so_path, cu_path, NULL};
  int code = fm_gpu_spawn(argv, log);
  if (code != 0) {
    if (code == 127) fm_fail("CUDA compiler '%s' not found (install the CUDA toolkit or set NVCC)", nvcc);
    const char *why = fm_gpu_first_error(a, log);
    fm_fail("nvcc failed building %s.so (exit %d)%s%s", G->name, code, *why ? ": " : "", why);
  }
  unlink(log);
  fm_cleanup_forget(log);
}

const FmBackend fm_backend_cuda = {
  .name = "cuda",
  .file_ext = ".cu",
  .caps = {.cpu_routines = 0, .host_threads = 0, .shared_object = 1, .weights_file = 1},
  .can_call = fm_gpu_can_call,
  .begin_module = cu_begin,
  .emit_const = fm_gpu_const,
  .emit_fn = fm_gpu_fn,
  .emit_entry = cu_entry,
  .finish = NULL,
  .build = cu_build,
};
