/* cmd_bench.c - `fewmul bench DIR|MODEL.onnx`: latency on random inputs.
 * The last four lines are machine-readable: median_ms, min_ms, max_ms, peak_rss_mb. */
#include "driver.h"
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static const char help[] =
  "usage: fewmul bench DIR|MODEL.so|MODEL.onnx [options]\n"
  "\n"
  "Runs the model on random inputs and reports per-iteration times, then as the last\n"
  "lines median_ms, min_ms, max_ms and peak_rss_mb. An .onnx is compiled first.\n"
  "\n"
  "  --batch N       batch size (default 1)\n"
  "  --threads T     OpenMP threads (default: OpenMP's choice; at most 4 per CPU)\n"
  "  --warmup K      untimed runs first (default 10)\n"
  "  --iters K       timed runs (default 50)\n"
  "  --shape NAME=DIMS   input shape when compiling an .onnx\n"
  "  --jit           compile the .onnx in-process with the LLVM JIT (no C compiler)\n"

  "  --device D      cpu, opencl[:I] or cuda[:I] (default: the model's kind, device 0);\n"
  "                  times are complete runs (copies in and out included); a device\n"
  "                  model also reports kernel_ms, the median kernel time from\n"
  "                  profiling events, before the last four lines\n";

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (uint32_t)(rng >> 32);
}

/* Random contents of the right type: floats in [-1, 1), integers in {0, 1} (valid as
   indices, counts and booleans for any dim >= 2). */
static void fill_random(void *p, int dtype, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float f = (float)rnd() / 4294967296.0f * 2 - 1;
    int v = (int)(rnd() & 1);
    switch (dtype) {
    case FM_F32: ((float *)p)[i] = f; break;
    case FM_F64: ((double *)p)[i] = f; break;
    case FM_I64: case FM_U64: ((int64_t *)p)[i] = v; break;
    case FM_I32: case FM_U32: ((int32_t *)p)[i] = v; break;
    case FM_I16: case FM_U16: ((int16_t *)p)[i] = (int16_t)v; break;
    case FM_F16: ((uint16_t *)p)[i] = 0x3c00; break; /* 1.0 */
    default: ((uint8_t *)p)[i] = (uint8_t)v; break;
    }
  }
}

int fm_cmd_bench(int argc, char **argv) {
  const char *cmd = "bench";
  if (fm_wants_help(argc, argv)) return fputs(help, stdout), 0;
  Arena ar = {0};
  const char *model = NULL, *device = NULL;
  int64_t batch = 1, warmup = 10, iters = 50, threads = 0;
  int nshapes = 0, jit = 0;
  FmShapeOverride shapes[16];
  for (int i = 0; i < argc; i++) {
    const char *v;
    if ((v = fm_opt(cmd, argc, argv, &i, "--batch"))) batch = fm_parse_int(cmd, "--batch", v, 1, INT32_MAX);
    else if ((v = fm_opt(cmd, argc, argv, &i, "--threads"))) threads = fm_parse_int(cmd, "--threads", v, 1, 4096);
    else if ((v = fm_opt(cmd, argc, argv, &i, "--warmup"))) warmup = fm_parse_int(cmd, "--warmup", v, 0, 1000000);
    else if ((v = fm_opt(cmd, argc, argv, &i, "--iters"))) iters = fm_parse_int(cmd, "--iters", v, 1, 1000000);
    else if ((v = fm_opt(cmd, argc, argv, &i, "--shape"))) fm_driver_add_shape(cmd, &ar, shapes, &nshapes, v);
    else if (fm_flag(argv, i, "--jit")) jit = 1;
    else if ((v = fm_opt(cmd, argc, argv, &i, "--device"))) device = v;
    else if (argv[i][0] == '-' && argv[i][1]) fm_usage(cmd, "unknown option '%s'", argv[i]);
    else if (!model) model = argv[i];
    else fm_usage(cmd, "unexpected argument '%s'", argv[i]);
  }
  if (!model) fm_usage(cmd, "missing the model (compiled directory or .onnx)");
  const char *dir = model;
  fm_model *m;
  if (jit) m = fm_driver_jit(model, shapes, nshapes, 0);
  else {
    if (fm_has_suffix(model, ".onnx")) {
      double t0 = now_ms();
      dir = fm_driver_compile_tmp(model, shapes, nshapes);
      printf("compiled %s in %.0f ms\n", model, now_ms() - t0);
    }
    if (fm_load(dir, &m) != FM_OK) fm_fail("%s", fm_last_error());
  }
  if (threads) fm_driver_threads(m, threads);
  if (device && fm_set_device(m, device) != FM_OK) fm_fail("%s", fm_last_error());
  int on_device = strcmp(fm_device(m), "cpu") != 0;
  if (on_device) fm_set_profiling(m, 1);
  int nin = fm_num_inputs(m), nout = fm_num_outputs(m);
  const void **in = calloc((size_t)nin + 1, sizeof *in);
  void **out = calloc((size_t)nout + 1, sizeof *out);
  for (int i = 0; i < nin; i++) {
    const fm_io_desc *d = fm_input(m, i);
    int64_t n = fm_io_numel(d, batch);
    void *p = aligned_alloc(64, (fm_driver_io_bytes(d, batch) + 127) & ~(size_t)63);
    if (!p) fm_fail("out of memory for input '%s'", d->name);
    fill_random(p, d->dtype, n);
    in[i] = p;
  }
  for (int i = 0; i < nout; i++) {
    const fm_io_desc *d = fm_output(m, i);
    out[i] = aligned_alloc(64, (fm_driver_io_bytes(d, batch) + 127) & ~(size_t)63);
    if (!out[i]) fm_fail("out of memory for output '%s'", d->name);
  }
  for (int64_t k = 0; k < warmup; k++)
    if (fm_run(m, batch, in, out) != FM_OK) fm_fail("%s", fm_last_error());
  double *t = malloc(sizeof(double) * (size_t)iters), sum = 0;
  double *kt = malloc(sizeof(double) * (size_t)iters);
  for (int64_t k = 0; k < iters; k++) {
    double t0 = now_ms();
    if (fm_run(m, batch, in, out) != FM_OK) fm_fail("%s", fm_last_error());
    t[k] = now_ms() - t0;
    sum += t[k];
    if (on_device) fm_kernel_ms(m, &kt[k]);
  }
  const fm_model_desc *d = fm_rt_desc(m);
  char th[32] = "default";
  if (threads) snprintf(th, sizeof th, "%d", fm_get_threads(m));
  printf("model: %s  device: %s  batch: %lld  threads: %s  warmup: %lld  iters: %lld  workspace: %zu bytes\n",
         d->name ? d->name : "?", fm_device(m), (long long)batch, th,
         (long long)warmup, (long long)iters, d->workspace_size(batch));
  printf("times_ms:");
  for (int64_t k = 0; k < iters; k++) printf(" %.3f", t[k]);
  printf("\nmean_ms: %.4f  throughput: %.1f samples/s\n", sum / (double)iters,
         (double)batch * 1000.0 * (double)iters / (sum > 0 ? sum : 1));
  qsort(t, (size_t)iters, sizeof *t, cmp_double);
  if (on_device) {
    qsort(kt, (size_t)iters, sizeof *kt, cmp_double);
    printf("kernel_ms: %.4f (median of the kernels' profiled time per run)\n",
           iters % 2 ? kt[iters / 2] : (kt[iters / 2 - 1] + kt[iters / 2]) / 2);
  }
  double median = iters % 2 ? t[iters / 2] : (t[iters / 2 - 1] + t[iters / 2]) / 2;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("median_ms: %.4f\nmin_ms: %.4f\nmax_ms: %.4f\npeak_rss_mb: %.1f\n", median, t[0], t[iters - 1],
         (double)ru.ru_maxrss / 1024.0);
  for (int i = 0; i < nin; i++) free((void *)in[i]);
  for (int i = 0; i < nout; i++) free(out[i]);
  free(in), free(out), free(t), free(kt);
  fm_free(m);
  if (dir != model) fm_driver_tmp_done(dir);
  fm_arena_free(&ar);
  return 0;
}
