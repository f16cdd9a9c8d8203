/* backend_opencl.c - the OpenCL backend (--emit opencl): <name>.cl holds the kernels
 * (OpenCL C 1.2, printed from the kernel IR by emit_gpu.c / emit_c.c), <name>.c the
 * host code (OpenCL 1.2 API, ocl-icd / Khronos headers) built into <name>.so:
 *   - the context, queue and program are created once (first run, or the device
 *     descriptor's init), the program from the .cl text embedded in the .so; a failing
 *     build reports its log;
 *   - the weights file is uploaded once into one read-only buffer;
 *   - every intermediate, input and output lives in one device buffer laid out by the
 *     memory plan (fm_layout), grown when a run needs more; a kernel parameter is
 *     (buffer, byte offset);
 *   - each run writes the inputs, enqueues the kernels in order, reads the outputs.
 * Status codes of run/init: 1 bad arguments, 2 no weights, 3 no platform or device,
 * 4 program build failed (log in the message), 5 out of device memory, 6 other
 * OpenCL error; the message is the device descriptor's error().
 * Work-group size: FM_OPENCL_WG (64), capped by the device's maximum.
 */
#include "emit/emit_gpu.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FM_OPENCL_WG 64

static const FmCDialect opencl_dialect = {
  .kernel = "__kernel void",
  .global = "__global ",
  .table = "__constant",
  .gid = "(int64_t)get_global_id(0)",
  .base_offset = 1,
};

static const char cl_prelude[] =
  "#pragma OPENCL FP_CONTRACT OFF\n"
  "#ifdef cl_khr_fp64\n#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n#define FM_F64 1\n#else\n#define FM_F64 0\n#endif\n"
  "typedef char int8_t;\ntypedef uchar uint8_t;\ntypedef short int16_t;\ntypedef ushort uint16_t;\n"
  "typedef int int32_t;\ntypedef uint uint32_t;\ntypedef long int64_t;\ntypedef ulong uint64_t;\n"
  "#define INT64_MIN LONG_MIN\n"
  "#define FM_DEV\n#define FM_AS_UINT(x) as_uint(x)\n#define FM_AS_FLOAT(x) as_float(x)\n"
  "/* C's float functions are OpenCL's overloads */\n"
  "#define fabsf fabs\n#define sqrtf sqrt\n#define expf exp\n#define logf log\n#define tanhf tanh\n"
  "#define erff erf\n#define floorf floor\n#define ceilf ceil\n#define nearbyintf rint\n#define nearbyint rint\n"
  "#define sinf sin\n#define cosf cos\n#define tanf tan\n#define asinf asin\n#define acosf acos\n"
  "#define atanf atan\n#define sinhf sinh\n#define coshf cosh\n#define asinhf asinh\n#define acoshf acosh\n"
  "#define atanhf atanh\n#define fmodf fmod\n#define fminf fmin\n#define fmaxf fmax\n#define powf pow\n"
  "#define fmaf fma\n#define ldexpf(a, b) ldexp((float)(a), (int)(b))\n";

static void cl_begin(FmModule *m) { fm_gpu_begin(m, &opencl_dialect, "opencl", cl_prelude); }
static void cl_entry(FmModule *m) { (void)m; }

static const char cl_host_rt[] =
  "static struct {\n"
  "  pthread_mutex_t mu;\n"
  "  int ready, index, profile;\n"
  "  cl_context ctx;\n  cl_device_id dev;\n  cl_command_queue q;\n  cl_program prog;\n"
  "  cl_kernel k[FM_NK + 1];\n  cl_mem w, d;\n  size_t d_size, wg;\n"
  "  double kernel_ms;\n  char name[256];\n  char err[16384];\n"
  "} S = {PTHREAD_MUTEX_INITIALIZER};\n\n"
  "static int fm_err(int code, const char *fmt, ...) {\n"
  "  va_list ap;\n  va_start(ap, fmt);\n  vsnprintf(S.err, sizeof S.err, fmt, ap);\n  va_end(ap);\n  return code;\n}\n\n"
  "static const char *fm_clerr(cl_int e) {\n"
  "  static char buf[32];\n"
  "  switch (e) {\n"
  "  case CL_MEM_OBJECT_ALLOCATION_FAILURE: return \"CL_MEM_OBJECT_ALLOCATION_FAILURE\";\n"
  "  case CL_OUT_OF_RESOURCES: return \"CL_OUT_OF_RESOURCES\";\n"
  "  case CL_OUT_OF_HOST_MEMORY: return \"CL_OUT_OF_HOST_MEMORY\";\n"
  "  case CL_INVALID_BUFFER_SIZE: return \"CL_INVALID_BUFFER_SIZE\";\n"
  "  case CL_BUILD_PROGRAM_FAILURE: return \"CL_BUILD_PROGRAM_FAILURE\";\n"
  "  case CL_DEVICE_NOT_FOUND: return \"CL_DEVICE_NOT_FOUND\";\n"
  "  default: snprintf(buf, sizeof buf, \"OpenCL error %d\", (int)e); return buf;\n"
  "  }\n}\n\n"
  "static int fm_code(cl_int e) {\n"
  "  return e == CL_MEM_OBJECT_ALLOCATION_FAILURE || e == CL_OUT_OF_RESOURCES || e == CL_OUT_OF_HOST_MEMORY ||\n"
  "         e == CL_INVALID_BUFFER_SIZE ? 5 : 6;\n}\n\n"
  "static void fm_release(void) {\n"
  "  for (int i = 0; i < FM_NK; i++) if (S.k[i]) clReleaseKernel(S.k[i]), S.k[i] = 0;\n"
  "  if (S.d) clReleaseMemObject(S.d), S.d = 0;\n  if (S.w) clReleaseMemObject(S.w), S.w = 0;\n"
  "  if (S.prog) clReleaseProgram(S.prog), S.prog = 0;\n  if (S.q) clReleaseCommandQueue(S.q), S.q = 0;\n"
  "  if (S.ctx) clReleaseContext(S.ctx), S.ctx = 0;\n  S.d_size = 0, S.ready = 0;\n}\n\n"
  "static int fm_init(void) {\n"
  "  if (S.ready) return 0;\n"
  "  cl_platform_id plats[16];\n  cl_uint np = 0;\n  cl_int e;\n"
  "  if (clGetPlatformIDs(16, plats, &np) != CL_SUCCESS || !np)\n"
  "    return fm_err(3, \"no OpenCL platform (install an OpenCL driver, e.g. Debian's pocl-opencl-icd)\");\n"
  "  int seen = 0;\n  S.dev = 0;\n"
  "  for (cl_uint p = 0; p < np && p < 16 && !S.dev; p++) {\n"
  "    cl_device_id ds[16];\n    cl_uint nd = 0;\n"
  "    if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 16, ds, &nd) != CL_SUCCESS) continue;\n"
  "    for (cl_uint d = 0; d < nd && d < 16; d++)\n      if (seen++ == S.index) S.dev = ds[d];\n  }\n"
  "  if (!S.dev) return fm_err(3, \"no OpenCL device opencl:%d (%d found)\", S.index, seen);\n"
  "  clGetDeviceInfo(S.dev, CL_DEVICE_NAME, sizeof S.name - 1, S.name, NULL);\n"
  "  S.ctx = clCreateContext(NULL, 1, &S.dev, NULL, NULL, &e);\n"
  "  if (!S.ctx) return fm_err(fm_code(e), \"cannot create an OpenCL context on %s: %s\", S.name, fm_clerr(e));\n"
  "  S.q = clCreateCommandQueue(S.ctx, S.dev, CL_QUEUE_PROFILING_ENABLE, &e);\n"
  "  if (!S.q) { fm_release(); return fm_err(fm_code(e), \"cannot create an OpenCL queue: %s\", fm_clerr(e)); }\n"
  "  const char *src = fm_src;\n  size_t len = sizeof fm_src - 1;\n"
  "  S.prog = clCreateProgramWithSource(S.ctx, 1, &src, &len, &e);\n"
  "  if (!S.prog) { fm_release(); return fm_err(fm_code(e), \"cannot create the OpenCL program: %s\", fm_clerr(e)); }\n"
  "  e = clBuildProgram(S.prog, 1, &S.dev, \"-cl-std=CL1.2\", NULL, NULL);\n"
  "  if (e != CL_SUCCESS) {\n"
  "    char log[12288] = \"\";\n    size_t n = 0;\n"
  "    clGetProgramBuildInfo(S.prog, S.dev, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, &n);\n"
  "    log[n < sizeof log ? n : sizeof log - 1] = 0;\n    fm_release();\n"
  "    return fm_err(4, \"OpenCL build of \" FM_CL_NAME \" failed on %s: %s\", S.name, log);\n  }\n"
  "  for (int i = 0; i < FM_NK; i++) {\n"
  "    S.k[i] = clCreateKernel(S.prog, fm_kname[i], &e);\n"
  "    if (!S.k[i]) { fm_release(); return fm_err(6, \"no kernel %s in the program: %s\", fm_kname[i], fm_clerr(e)); }\n  }\n"
  "  if (FM_WEIGHTS_BYTES) {\n"
  "    if (!FM_BLOB) { fm_release(); return fm_err(2, \"the weights are not set (set_weights)\"); }\n"
  "    S.w = clCreateBuffer(S.ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, FM_WEIGHTS_BYTES, (void *)FM_BLOB, &e);\n"
  "    if (!S.w) { fm_release(); return fm_err(fm_code(e), \"cannot upload %llu bytes of weights: %s\",\n"
  "                                           (unsigned long long)FM_WEIGHTS_BYTES, fm_clerr(e)); }\n  }\n"
  "  size_t wg = 1;\n  clGetDeviceInfo(S.dev, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);\n"
  "  S.wg = wg < FM_WG ? wg : FM_WG;\n  if (!S.wg) S.wg = 1;\n"
  "  S.ready = 1;\n  return 0;\n}\n\n"
  "static int fm_launch(int p, int64_t N, int nb, const cl_mem *mem, const size_t *off, int64_t trips, int grid,\n"
  "                     cl_event *ev) {\n"
  "  cl_kernel k = S.k[p];\n  cl_long n = N;\n  cl_int e = clSetKernelArg(k, 0, sizeof n, &n);\n"
  "  for (int i = 0; i < nb && e == CL_SUCCESS; i++) {\n"
  "    cl_long o = (cl_long)off[i];\n"
  "    e = clSetKernelArg(k, (cl_uint)(1 + 2 * i), sizeof(cl_mem), &mem[i]);\n"
  "    if (e == CL_SUCCESS) e = clSetKernelArg(k, (cl_uint)(2 + 2 * i), sizeof o, &o);\n  }\n"
  "  if (e != CL_SUCCESS) return fm_err(6, \"kernel %s: setting its arguments: %s\", fm_kname[p], fm_clerr(e));\n"
  "  if (trips <= 0) return 0;\n"
  "  size_t l = grid ? S.wg : 1, gsz = ((size_t)trips + l - 1) / l * l;\n"
  "  e = clEnqueueNDRangeKernel(S.q, k, 1, NULL, &gsz, &l, 0, NULL, S.profile ? ev : NULL);\n"
  "  if (e != CL_SUCCESS) return fm_err(fm_code(e), \"kernel %s: %s\", fm_kname[p], fm_clerr(e));\n"
  "  return 0;\n}\n\n";

static void host_run(FmModule *G, FILE *f) {
  FmGpu *gs = G->priv;
  Graph *g = G->g;
  const char *nm = G->name;
  int nio = g->ninputs + g->noutputs;
  fprintf(f, "static int fm_run_locked(int64_t N, const void *const *in, void *const *out) {\n");
  fprintf(f, "  size_t io[%d];\n  cl_event ev[FM_NK + 1];\n  int rc = fm_init(), p = 0;\n  cl_int e = CL_SUCCESS;\n",
          nio + 1);
  fprintf(f, "  (void)in, (void)out, (void)ev;\n  if (rc) return rc;\n");
  fprintf(f, "  size_t need = fm_layout(N, io);\n");
  fprintf(f, "  if (need > S.d_size) {\n    if (S.d) clReleaseMemObject(S.d), S.d = 0, S.d_size = 0;\n"
             "    S.d = clCreateBuffer(S.ctx, CL_MEM_READ_WRITE, need, NULL, &e);\n"
             "    if (!S.d) return fm_err(fm_code(e), \"cannot allocate %%zu bytes of device memory: %%s\", need, fm_clerr(e));\n"
             "    S.d_size = need;\n  }\n");
  fprintf(f, "  for (int i = 0; i < %d && e == CL_SUCCESS; i++)\n"
             "    if (fm_io_bytes(N, i)) e = clEnqueueWriteBuffer(S.q, S.d, CL_FALSE, io[i], fm_io_bytes(N, i), in[i], 0, NULL, NULL);\n",
          g->ninputs);
  fprintf(f, "  if (e != CL_SUCCESS) return fm_err(fm_code(e), \"copying the inputs to the device: %%s\", fm_clerr(e));\n");
  int p = 0;
  for (GpuPhase *ph = gs->phases; ph; ph = ph->next, p++) {
    KFn *fn = ph->fn;
    fprintf(f, "  { /* %s */\n    const cl_mem m[] = {S.d", ph->name);
    int nb = 0;
    char base;
    for (int k = 0; k < fn->nbufs; k++)
      if (fn->bufs[k]->kind != KBUF_CONST) {
        fm_gpu_host_off(G, ph, fn->bufs[k], &base);
        fputs(base == 'W' ? ", S.w" : ", S.d", f);
        nb++;
      }
    fprintf(f, "};\n    const size_t o[] = {0");
    for (int k = 0; k < fn->nbufs; k++)
      if (fn->bufs[k]->kind != KBUF_CONST) fprintf(f, ", %s", fm_gpu_host_off(G, ph, fn->bufs[k], &base));
    fprintf(f, "};\n    if ((rc = fm_launch(%d, N, %d, m + 1, o + 1, ", p, nb);
    fm_gpu_host_trips(G, f, ph);
    fprintf(f, ", %d, &ev[p++]))) goto done;\n  }\n", ph->grid != NULL);
  }
  for (int i = 0; i < g->noutputs; i++)
    if (fm_gpu_output_on_device(G, i))
      fprintf(f, "  if (e == CL_SUCCESS && fm_io_bytes(N, %d))\n"
                 "    e = clEnqueueReadBuffer(S.q, S.d, CL_FALSE, io[%d], fm_io_bytes(N, %d), out[%d], 0, NULL, NULL);\n",
              g->ninputs + i, g->ninputs + i, g->ninputs + i, i);
  fprintf(f, "  if (e == CL_SUCCESS) e = clFinish(S.q);\n");
  fprintf(f, "  if (e != CL_SUCCESS) { rc = fm_err(fm_code(e), \"running the kernels: %%s\", fm_clerr(e)); goto done; }\n");
  fm_gpu_host_copies(G, f);
  fprintf(f, "  S.kernel_ms = 0;\n"
             "  for (int i = 0; S.profile && i < p; i++) {\n"
             "    cl_ulong t0 = 0, t1 = 0;\n"
             "    clGetEventProfilingInfo(ev[i], CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL);\n"
             "    clGetEventProfilingInfo(ev[i], CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL);\n"
             "    S.kernel_ms += (double)(t1 - t0) * 1e-6;\n  }\n");
  fprintf(f, "done:\n  if (rc) clFinish(S.q);\n  for (int i = 0; S.profile && i < p; i++) clReleaseEvent(ev[i]);\n"
             "  return rc;\n}\n\n");
  fprintf(f, "int %s_run(int64_t N, const void *const *in, void *const *out, void *ws) {\n", nm);
  fprintf(f, "  (void)ws;\n  if (N <= 0%s%s) return 1;\n", g->ninputs ? " || !in" : "", g->noutputs ? " || !out" : "");
  fprintf(f, "  pthread_mutex_lock(&S.mu);\n  int rc = fm_run_locked(N, in, out);\n  pthread_mutex_unlock(&S.mu);\n"
             "  return rc;\n}\n\n");
}

static void write_host(FmModule *G, FILE *f, const char *cl_path) {
  FmGpu *gs = G->priv;
  const char *nm = G->name;
  fprintf(f, "/* %s.c - generated by fewmul: the OpenCL host code of %s.cl (embedded below).\n"
             " * Build: cc -O2 -shared -fPIC -DFM_SHARED %s.c -lOpenCL -lpthread. Do not edit. */\n", nm, nm, nm);
  fprintf(f, "#define CL_TARGET_OPENCL_VERSION 120\n#include \"%s.h\"\n#include <CL/cl.h>\n", nm);
  fprintf(f, "#include <pthread.h>\n#include <stdarg.h>\n#include <stdio.h>\n#include <string.h>\n\n%s\n",
          fm_gpu_device_desc);
  fprintf(f, "#pragma GCC diagnostic ignored \"-Woverlength-strings\"\n");
  fprintf(f, "static const char fm_src[] =\n");
  fm_gpu_write_cstring(f, cl_path);
  fprintf(f, ";\n\n#define FM_CL_NAME \"%s.cl\"\n#define FM_NK %d\n#define FM_WG %d\n", nm, gs->nphases, FM_OPENCL_WG);
  fprintf(f, "#define FM_WEIGHTS_BYTES %lluu\n#define FM_BLOB %s_blob\n", (unsigned long long)G->blob_total, nm);
  fprintf(f, "static const char *const fm_kname[FM_NK + 1] = {");
  for (GpuPhase *ph = gs->phases; ph; ph = ph->next) fprintf(f, "\"%s\", ", ph->name);
  fprintf(f, "0};\n\n");
  fm_gpu_host_common(G, f);
  fputs(cl_host_rt, f);
  host_run(G, f);
  fm_gpu_host_device(G, f, "opencl");
  fm_gpu_host_desc(G, f);
}

static void cl_build(FmModule *G, const char *dir, const char *cl_path, const char *so_path) {
  Arena *a = &G->g->arena;
  const char *host = fm_sprintf(a, "%s/%s.c", dir, G->name);
  FILE *f = fopen(host, "wb");
  if (!f) fm_fail("cannot write '%s'", host);
  fm_cleanup_add(host);
  write_host(G, f, cl_path);
  if (ferror(f) | (fclose(f) != 0)) fm_fail("cannot write '%s'", host);
  const char *cc = getenv("CC");
  if (!cc || !*cc) cc = "gcc";
  const char *log = fm_sprintf(a, "%s/cc.log", dir);
  fm_cleanup_add(log);
  fm_cleanup_add(so_path);
  const char *argv[64];
  int argc = 0;
  char *ccw = fm_strdup(a, cc);
  for (char *t = strtok(ccw, " \t"); t && argc < 40; t = strtok(NULL, " \t")) argv[argc++] = t;
  if (!argc) fm_fail("CC is empty");
  const char *const flags[] = {"-O2", "-shared", "-fPIC", "-DFM_SHARED", "-o"};
  for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) argv[argc++] = flags[i];
  argv[argc++] = so_path, argv[argc++] = host, argv[argc++] = "-lOpenCL", argv[argc++] = "-lpthread";
  argv[argc] = NULL;
  int code = fm_gpu_spawn(argv, log);
  if (code != 0) {
    if (code == 127) fm_fail("C compiler '%s' not found (set CC to a C compiler)", cc);
    const char *why = fm_gpu_first_error(a, log);
    fm_fail("C compiler '%s' failed building the OpenCL host code of %s.so (exit %d; are the OpenCL headers "
            "and libOpenCL installed?)%s%s", cc, G->name, code, *why ? ": " : "", why);
  }
  unlink(log);
  fm_cleanup_forget(log);
  /* the host source goes next to the .cl */
  const char *fin = fm_sprintf(a, "%s/%s.c", G->o->outdir ? G->o->outdir : ".", G->name);
  if (rename(host, fin) != 0) fm_fail("cannot create '%s'", fin);
  fm_cleanup_forget(host);
}

const FmBackend fm_backend_opencl = {
  .name = "opencl",
  .file_ext = ".cl",
  .caps = {.cpu_routines = 0, .host_threads = 0, .shared_object = 1, .weights_file = 1},
  .can_call = fm_gpu_can_call,
  .begin_module = cl_begin,
  .emit_const = fm_gpu_const,
  .emit_fn = fm_gpu_fn,
  .emit_entry = cl_entry,
  .finish = NULL,
  .build = cl_build,
};
