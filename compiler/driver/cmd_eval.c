/* cmd_eval.c - `fewmul eval MODEL.onnx --data NAME`: the test accuracy of any
 * classifier in ONNX form, compiled by fewmul and run by its runtime, on a data set
 * of the trainer's (images as pixels in [0, 1], N x C x H x W). A CLI command: it
 * uses the driver (compile to a temporary directory) and the trainer's data library. */
#include "driver.h"
#include "data.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char help[] =
  "usage: fewmul eval MODEL.onnx --data NAME [--data-dir DIR] [options]\n"
  "\n"
  "Compiles MODEL.onnx, runs it on the test split of a data set and prints the top-1\n"
  "accuracy. The model takes pixels scaled to [0, 1] (N x C x H x W) and gives one\n"
  "score per class (logits or log-probabilities).\n"
  "\n"
  "  --data NAME       fashion-mnist, mnist, cifar10, cifar100, synthetic[:CxHxW[:K]]\n"
  "  --data-dir DIR    where the data set files are\n"
  "  --train           evaluate on the training split instead\n"
  "  --limit K         the first K images only\n"
  "  --batch B         images per run (default 256)\n"
  "  --threads T       OpenMP threads (at most 4 per CPU)\n";

int fm_cmd_eval(int argc, char **argv) {
  const char *cmd = "eval";
  if (fm_wants_help(argc, argv)) return fputs(help, stdout), 0;
  const char *model = NULL, *data = NULL, *dir = NULL;
  int64_t limit = 0, batch = 256, threads = 0;
  int train = 0;
  for (int i = 0; i < argc; i++) {
    const char *v;
    if ((v = fm_opt(cmd, argc, argv, &i, "--data"))) data = v;
    else if ((v = fm_opt(cmd, argc, argv, &i, "--data-dir"))) dir = v;
    else if ((v = fm_opt(cmd, argc, argv, &i, "--limit"))) limit = fm_parse_int(cmd, "--limit", v, 1, INT32_MAX);
    else if ((v = fm_opt(cmd, argc, argv, &i, "--batch"))) batch = fm_parse_int(cmd, "--batch", v, 1, 1 << 20);
    else if ((v = fm_opt(cmd, argc, argv, &i, "--threads"))) threads = fm_parse_int(cmd, "--threads", v, 1, 4096);
    else if (fm_flag(argv, i, "--train")) train = 1;
    else if (argv[i][0] == '-' && argv[i][1]) fm_usage(cmd, "unknown option '%s'", argv[i]);
    else if (!model) model = argv[i];
    else fm_usage(cmd, "unexpected argument '%s'", argv[i]);
  }
  if (!model) fm_usage(cmd, "missing MODEL.onnx");
  if (!data) fm_usage(cmd, "missing --data NAME");

  char err[512];
  FmDataset ds;
  if (fm_data_load(&ds, data, dir, train, err, sizeof err)) fm_fail("%s", err);
  if (limit > 0) fm_data_take(&ds, (int)limit);

  const char *out = fm_driver_compile_tmp(model, NULL, 0);
  fm_model *m;
  if (fm_load(out, &m) != FM_OK) fm_fail("%s", fm_last_error());
  if (fm_num_inputs(m) != 1 || fm_num_outputs(m) < 1)
    fm_fail("'%s' has %d inputs and %d outputs; eval needs one image input and a score output", model,
            fm_num_inputs(m), fm_num_outputs(m));
  const fm_io_desc *in = fm_input(m, 0), *o = fm_output(m, 0);
  if (in->dtype != 1 || in->rank != 4 || in->dims[1] != ds.c || in->dims[2] != ds.h || in->dims[3] != ds.w)
  {
    char s[160];
    fm_fail("'%s' takes input '%s' of shape %s %s; the data set '%s' has %dx%dx%d images", model, in->name,
            fm_dims_str(s, sizeof s, in->rank, in->dims, "N"), fm_dtype_name((FmDType)in->dtype), data, ds.c, ds.h, ds.w);
  }
  if (o->dtype != 1 || o->rank != 2 || o->dims[1] < ds.classes)
    fm_fail("'%s': output '%s' must be (N, >= %d) float scores", model, o->name, ds.classes);
  int64_t fixed = in->dims[0] > 0 ? in->dims[0] : 0; /* a model compiled for a fixed batch */
  if (fixed) batch = fixed;
  if (threads) fm_driver_threads(m, threads);

  size_t img = (size_t)ds.c * ds.h * ds.w;
  int64_t classes = o->dims[1];
  /* checked sizes: a model compiled for a huge fixed batch is refused, not overflowed */
  float *x = calloc(fm_driver_io_bytes(in, batch) + sizeof(float), 1);
  float *y = calloc(fm_driver_io_bytes(o, batch) + sizeof(float), 1);
  if (!x || !y) fm_fail("out of memory");
  int64_t hit = 0, seen = 0;
  double secs = 0;
  for (int64_t s = 0; s < ds.n; s += batch) {
    int64_t n = ds.n - s < batch ? ds.n - s : batch;
    for (int64_t i = 0; i < n; i++) fm_data_image_float(&ds, (int)(s + i), x + (size_t)i * img);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const void *ins[1] = {x};
    void *outs[1] = {y};
    if (fm_run(m, fixed ? fixed : n, ins, outs) != FM_OK) fm_fail("%s", fm_last_error());
    clock_gettime(CLOCK_MONOTONIC, &t1);
    secs += (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    for (int64_t i = 0; i < n; i++) {
      const float *r = y + i * classes;
      int64_t best = 0;
      for (int64_t k = 1; k < classes; k++)
        if (r[k] > r[best]) best = k;
      hit += best == ds.labels[s + i];
    }
    seen += n;
  }
  printf("accuracy: %.2f%% (%lld of %lld %s images of %s), %.0f images/s\n", 100.0 * (double)hit / (double)seen,
         (long long)hit, (long long)seen, train ? "training" : "test", data, (double)seen / (secs > 0 ? secs : 1e-9));
  free(x), free(y);
  fm_free(m);
  fm_driver_tmp_done(out);
  fm_data_free(&ds);
  return 0;
}
