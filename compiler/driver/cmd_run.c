/* cmd_run.c - `fewmul run DIR --input x.npy ...`: a compiled model on files.
 * Inputs are checked against the model's description (dtype, shape, one consistent
 * batch size) before anything runs; outputs are summarised and optionally saved. */
#include "driver.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static const char help[] =
  "usage: fewmul run DIR|MODEL.so|MODEL.onnx --input FILE [--input NAME=FILE]... [options]\n"
  "\n"
  "Runs a compiled model on inputs read from .npy or ONNX TensorProto .pb files, given\n"
  "in graph input order or as NAME=FILE, and prints a summary of every output.\n"
  "\n"
  "  --input [NAME=]FILE      an input (repeatable)\n"
  "  -o, --output DIR         write DIR/<output name>.npy (or .pb with --format=pb); a\n"
  "                           name is sanitised to [A-Za-z0-9._-], and one that clashes\n"
  "                           with an earlier output's gets _2, _3, ...\n"
  "  --format npy|pb          format of the written outputs (default npy)\n"
  "  --batch N                batch size (default: from the inputs' shapes)\n"
  "  --threads T              OpenMP threads (at most 4 per CPU)\n"
  "  --shape NAME=DIMS        input shape, when MODEL.onnx is compiled first\n"
  "  --labels FILE            class labels (.npy, one per sample): prints the accuracy\n"
  "                           of the first output's argmax\n"
  "  --jit                    compile MODEL.onnx in-process with the LLVM JIT (no C\n"
  "                           compiler, linker or temporary files)\n"
  "  --device D               cpu, opencl[:I] or cuda[:I] (default: the kind the model\n"
  "                           was compiled for, device 0)\n"
  "  -q, --quiet              no summary\n";

#define MAXIN 64

/* Converts a to dtype want where that loses nothing a user would care about
   (float64 -> float32, int32 <-> int64, uint8 <-> bool); 0 if not convertible. */
static int convert(FmArray *a, int want) {
  if (a->dtype == want) return 1;
  if ((a->dtype == FM_U8 && want == FM_BOOL) || (a->dtype == FM_BOOL && want == FM_U8)) {
    a->dtype = want;
    return 1;
  }
  int64_t n = fm_array_numel(a);
  size_t es = fm_dtype_size((FmDType)want);
  void *d = malloc((size_t)n * es + 1);
  if (!d) fm_fail("out of memory");
  if (a->dtype == FM_F64 && want == FM_F32)
    for (int64_t i = 0; i < n; i++) ((float *)d)[i] = (float)((double *)a->data)[i];
  else if (a->dtype == FM_I32 && want == FM_I64)
    for (int64_t i = 0; i < n; i++) ((int64_t *)d)[i] = ((int32_t *)a->data)[i];
  else if (a->dtype == FM_I64 && want == FM_I32)
    for (int64_t i = 0; i < n; i++) {
      int64_t v = ((int64_t *)a->data)[i];
      if (v < INT32_MIN || v > INT32_MAX) return free(d), 0;
      ((int32_t *)d)[i] = (int32_t)v;
    }
  else return free(d), 0;
  free(a->data);
  a->data = d, a->dtype = want, a->nbytes = (size_t)n * es;
  return 1;
}

/* The element count of a, checked: a shape whose count overflows, or data that is not
   count x element size bytes, is refused (a reader's size must never be trusted). */
static void check_size(const char *what, const FmArray *a, const char *file) {
  char s1[160];
  int64_t n = 1;
  size_t es = fm_dtype_size((FmDType)a->dtype), bytes;
  int valid = a->rank >= 0 && a->rank <= FM_MAXRANK, fits = 1;
  for (int i = 0; valid && i < a->rank; i++) valid = a->dims[i] >= 0;
  for (int i = 0; valid && fits && i < a->rank; i++) fits = !__builtin_mul_overflow(n, a->dims[i], &n);
  if (!valid) fm_fail("%s: '%s' has an invalid shape", what, file);
  if (!fits || __builtin_mul_overflow((size_t)n, es, &bytes) || bytes > PTRDIFF_MAX)
    fm_fail("%s: '%s' claims shape %s, more elements than fit in memory", what, file,
            fm_dims_str(s1, sizeof s1, a->rank, a->dims, "N"));
  if (bytes != a->nbytes || (bytes && !a->data))
    fm_fail("%s: '%s' holds %zu bytes of data, its shape %s needs %zu", what, file, a->nbytes,
            fm_dims_str(s1, sizeof s1, a->rank, a->dims, "N"), bytes);
}

/* Checks a against desc, updating *batch (0 = not yet known). */
static void check_input(const fm_io_desc *d, FmArray *a, const char *file, int64_t *batch) {
  char s1[160], s2[160];
  char what[300];
  snprintf(what, sizeof what, "input '%s'", d->name);
  check_size(what, a, file);
  if (!convert(a, d->dtype))
    fm_fail("input '%s': '%s' holds %s, the model expects %s", d->name, file, fm_dtype_name(a->dtype),
            fm_dtype_name((FmDType)d->dtype));
  int ok = a->rank == d->rank;
  int64_t b = *batch;
  for (int i = 0; ok && i < d->rank; i++) {
    int64_t want = d->dims[i], got = a->dims[i];
    if (want >= 0) ok = want == got;
    else if (got % -want != 0 || got == 0) ok = 0;
    else if (!b) b = got / -want;
    else ok = b == got / -want;
  }
  if (!ok) {
    char extra[80] = "";
    if (*batch) snprintf(extra, sizeof extra, " with batch %lld", (long long)*batch);
    fm_fail("input '%s': shape %s of '%s' does not match the model's %s%s", d->name,
            fm_dims_str(s1, sizeof s1, a->rank, a->dims, "N"), file,
            fm_dims_str(s2, sizeof s2, d->rank, d->dims, "N"), extra);
  }
  *batch = b;
}

static void print_value(const FmArray *a, int64_t i) {
  const void *p = a->data;
  switch (a->dtype) {
  case FM_F32: printf("%.6g", ((const float *)p)[i]); break;
  case FM_F64: printf("%.8g", ((const double *)p)[i]); break;
  case FM_I64: printf("%lld", (long long)((const int64_t *)p)[i]); break;
  case FM_I32: printf("%d", ((const int32_t *)p)[i]); break;
  case FM_I8: printf("%d", ((const int8_t *)p)[i]); break;
  case FM_U8: case FM_BOOL: printf("%u", ((const uint8_t *)p)[i]); break;
  default: printf("?"); break;
  }
}

static void summarise(const char *name, const FmArray *a) {
  char s[160];
  int64_t n = fm_array_numel(a);
  printf("%s: %s [%s]", name, fm_dtype_name(a->dtype), fm_dims_str(s, sizeof s, a->rank, a->dims, "N"));
  printf(" =");
  for (int64_t i = 0; i < n && i < 8; i++) putchar(' '), print_value(a, i);
  if (n > 8) printf(" ...");
  putchar('\n');
  if (a->rank == 2 && a->dims[1] > 1 && (a->dtype == FM_F32 || a->dtype == FM_F64)) {
    printf("  argmax:");
    for (int64_t r = 0; r < a->dims[0] && r < 16; r++) {
      int64_t best = 0;
      for (int64_t c = 1; c < a->dims[1]; c++) {
        double v = a->dtype == FM_F32 ? ((float *)a->data)[r * a->dims[1] + c] : ((double *)a->data)[r * a->dims[1] + c];
        double w = a->dtype == FM_F32 ? ((float *)a->data)[r * a->dims[1] + best] : ((double *)a->data)[r * a->dims[1] + best];
        if (v > w) best = c;
      }
      printf(" %lld", (long long)best);
    }
    printf("%s\n", a->dims[0] > 16 ? " ..." : "");
  }
}

/* Accuracy of the argmax of a (batch, classes) output against labels. */
static void accuracy(const FmArray *a, const char *labels_file) {
  FmArray l = {0};
  fm_array_read(labels_file, &l);
  check_size("--labels", &l, labels_file);
  int64_t n = fm_array_numel(&l);
  if (a->rank != 2 || (a->dtype != FM_F32 && a->dtype != FM_F64))
    fm_fail("--labels: the first output must be (batch, classes) floats to score it");
  if (n != a->dims[0])
    fm_fail("--labels: '%s' holds %lld labels for a batch of %lld", labels_file, (long long)n, (long long)a->dims[0]);
  int64_t hit = 0;
  for (int64_t r = 0; r < n; r++) {
    int64_t want;
    switch (l.dtype) {
    case FM_I64: want = ((int64_t *)l.data)[r]; break;
    case FM_I32: want = ((int32_t *)l.data)[r]; break;
    case FM_U8: want = ((uint8_t *)l.data)[r]; break;
    default: fm_fail("--labels: '%s' holds %s; integer labels expected", labels_file, fm_dtype_name(l.dtype));
    }
    int64_t best = 0, c = a->dims[1];
    for (int64_t k = 1; k < c; k++) {
      double v = a->dtype == FM_F32 ? ((float *)a->data)[r * c + k] : ((double *)a->data)[r * c + k];
      double w = a->dtype == FM_F32 ? ((float *)a->data)[r * c + best] : ((double *)a->data)[r * c + best];
      if (v > w) best = k;
    }
    hit += best == want;
  }
  printf("accuracy: %.2f%% (%lld of %lld)\n", 100.0 * (double)hit / (double)(n ? n : 1), (long long)hit, (long long)n);
  fm_array_free(&l);
}

/* The file stem of output i: its name with every character but [A-Za-z0-9._-] as '_'
   (no leading '.'), "output_<i>" if empty. Names that come out the same as an earlier
   output's stem (compared ignoring case: 'y/1', 'y_1' and 'Y:1' all give y_1) get
   "_2", "_3", ... in output order, so no output overwrites another. */
static const char *file_name(Arena *ar, const char **taken, int i, const char *name) {
  char buf[200];
  size_t k = 0;
  for (const char *s = name; *s && k + 1 < sizeof buf; s++, k++)
    buf[k] = isalnum((unsigned char)*s) || *s == '-' || *s == '_' || (*s == '.' && k) ? *s : '_';
  buf[k] = 0;
  if (!k) snprintf(buf, sizeof buf, "output_%d", i);
  const char *stem = fm_strdup(ar, buf);
  for (int n = 2;; n++) {
    int clash = 0;
    for (int j = 0; j < i && !clash; j++) clash = !strcasecmp(taken[j], stem);
    if (!clash) break;
    stem = fm_sprintf(ar, "%s_%d", buf, n);
  }
  return taken[i] = stem;
}

int fm_cmd_run(int argc, char **argv) {
  const char *cmd = "run";
  if (fm_wants_help(argc, argv)) return fputs(help, stdout), 0;
  Arena ar = {0};
  const char *model = NULL, *outdir = NULL, *labels = NULL, *specs[MAXIN], *device = NULL;
  int nspecs = 0, pb = 0, quiet = 0, threads = 0, nshapes = 0, jit = 0;
  int64_t batch_arg = 0;
  FmShapeOverride shapes[16];
  for (int i = 0; i < argc; i++) {
    const char *v;
    if ((v = fm_opt(cmd, argc, argv, &i, "--input")) || (v = fm_opt(cmd, argc, argv, &i, "-i"))) {
      if (nspecs == MAXIN) fm_usage(cmd, "at most %d inputs", MAXIN);
      specs[nspecs++] = v;
    } else if ((v = fm_opt(cmd, argc, argv, &i, "-o")) || (v = fm_opt(cmd, argc, argv, &i, "--output"))) outdir = v;
    else if ((v = fm_opt(cmd, argc, argv, &i, "--format"))) {
      if (strcmp(v, "npy") && strcmp(v, "pb")) fm_usage(cmd, "--format must be npy or pb, got '%s'", v);
      pb = !strcmp(v, "pb");
    } else if ((v = fm_opt(cmd, argc, argv, &i, "--batch"))) batch_arg = fm_parse_int(cmd, "--batch", v, 1, INT32_MAX);
    else if ((v = fm_opt(cmd, argc, argv, &i, "--threads"))) threads = (int)fm_parse_int(cmd, "--threads", v, 1, 4096);
    else if ((v = fm_opt(cmd, argc, argv, &i, "--shape"))) fm_driver_add_shape(cmd, &ar, shapes, &nshapes, v);
    else if ((v = fm_opt(cmd, argc, argv, &i, "--labels"))) labels = v;
    else if ((v = fm_opt(cmd, argc, argv, &i, "--device"))) device = v;
    else if (fm_flag(argv, i, "-q") || fm_flag(argv, i, "--quiet")) quiet = 1;
    else if (fm_flag(argv, i, "--jit")) jit = 1;
    else if (argv[i][0] == '-' && argv[i][1]) fm_usage(cmd, "unknown option '%s'", argv[i]);
    else if (!model) model = argv[i];
    else fm_usage(cmd, "unexpected argument '%s' (inputs go with --input)", argv[i]);
  }
  if (!model) fm_usage(cmd, "missing the compiled model directory");

  const char *dir = model;
  fm_model *m;
  if (jit) m = fm_driver_jit(model, shapes, nshapes, 1);
  else {
    if (fm_has_suffix(model, ".onnx")) dir = fm_driver_compile_tmp(model, shapes, nshapes);
    if (fm_load(dir, &m) != FM_OK) fm_fail("%s", fm_last_error());
  }
  if (device && fm_set_device(m, device) != FM_OK) fm_fail("%s", fm_last_error());
  int nin = fm_num_inputs(m), nout = fm_num_outputs(m);
  if (nspecs > nin) fm_fail("model '%s' has %d input%s, got %d --input", model, nin, nin == 1 ? "" : "s", nspecs);

  /* assign files to inputs: NAME=FILE where NAME is an input, else in order */
  const char *files[MAXIN] = {0};
  int next = 0;
  for (int s = 0; s < nspecs; s++) {
    const char *eq = strchr(specs[s], '=');
    int idx = -1;
    if (eq) {
      char *nm = fm_strdup(&ar, specs[s]);
      nm[eq - specs[s]] = 0;
      idx = fm_input_index(m, nm);
      if (idx < 0 && access(specs[s], F_OK) != 0)
        fm_fail("model has no input named '%s' (--input %s)", nm, specs[s]);
    }
    if (idx >= 0) {
      if (files[idx]) fm_fail("input '%s' given twice", fm_input(m, idx)->name);
      files[idx] = eq + 1;
    } else {
      while (next < nin && files[next]) next++;
      if (next == nin) fm_fail("too many inputs: the model has %d", nin);
      files[next++] = specs[s];
    }
  }
  for (int i = 0; i < nin; i++)
    if (!files[i]) fm_fail("missing input '%s' (give --input %s=FILE)", fm_input(m, i)->name, fm_input(m, i)->name);

  FmArray *in = calloc((size_t)nin + 1, sizeof *in), *out = calloc((size_t)nout + 1, sizeof *out);
  const void **inp = calloc((size_t)nin + 1, sizeof *inp);
  void **outp = calloc((size_t)nout + 1, sizeof *outp);
  int64_t batch = batch_arg;
  for (int i = 0; i < nin; i++) {
    fm_array_read(files[i], &in[i]);
    check_input(fm_input(m, i), &in[i], files[i], &batch);
    inp[i] = in[i].data;
  }
  if (!batch) batch = 1;
  for (int i = 0; i < nout; i++) {
    const fm_io_desc *d = fm_output(m, i);
    FmArray *a = &out[i];
    a->nbytes = fm_driver_io_bytes(d, batch); /* checked: the dims below do not overflow */
    a->dtype = d->dtype, a->rank = d->rank;
    for (int k = 0; k < d->rank; k++) a->dims[k] = d->dims[k] < 0 ? -d->dims[k] * batch : d->dims[k];
    a->data = calloc(1, a->nbytes + 64);
    if (!a->data) fm_fail("out of memory for output '%s'", d->name);
    outp[i] = a->data;
  }
  if (threads) fm_driver_threads(m, threads);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (fm_run(m, batch, inp, outp) != FM_OK) fm_fail("%s", fm_last_error());
  clock_gettime(CLOCK_MONOTONIC, &t1);

  const char **written = NULL; /* output files, removed if anything later fails */
  if (outdir) {
    fm_make_dir(outdir);
    const char **taken = fm_alloc(&ar, sizeof(char *) * (size_t)(nout + 1));
    written = fm_alloc(&ar, sizeof(char *) * (size_t)(nout + 1));
    for (int i = 0; i < nout; i++) {
      const char *p = written[i] = fm_sprintf(&ar, "%s/%s.%s", outdir, file_name(&ar, taken, i, fm_output(m, i)->name),
                                 pb ? "pb" : "npy");
      if (pb) fm_pb_write(p, &out[i], fm_output(m, i)->name);
      else fm_npy_write(p, &out[i]);
    }
  }
  if (!quiet) {
    if (batch > 1 || batch_arg) printf("batch: %lld\n", (long long)batch);
    for (int i = 0; i < nout; i++) summarise(fm_output(m, i)->name, &out[i]);
    printf("run: %.3f ms (batch %lld, first run)\n",
           (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-6, (long long)batch);
  }
  if (labels && nout) accuracy(&out[0], labels);
  for (int i = 0; i < nin; i++) fm_array_free(&in[i]);
  for (int i = 0; i < nout; i++) fm_array_free(&out[i]);
  free(in), free(out), free(inp), free(outp);
  fm_free(m);
  if (dir != model) fm_driver_tmp_done(dir);
  for (int i = 0; written && i < nout; i++) fm_cleanup_forget(written[i]); /* complete */
  fm_cleanup_forget(outdir ? outdir : "");
  fm_arena_free(&ar);
  return 0;
}
