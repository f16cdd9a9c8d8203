/* train_cmd.c - `fewmul train`: build a model, train it on a data set with a
 * progress line per epoch, checkpoint atomically, export ONNX.
 *
 *   fewmul train --model mnist_cnn --data fashion-mnist --epochs 5 -o fmnist_cnn.onnx
 *   fewmul train --resume run/checkpoint.fm
 *   fewmul train --model resnet20 --data cifar10 --method ternary -o twn.onnx   (method.h)
 */
#include "train_cmd.h"
#include "checkpoint.h"
#include "data.h"
#include "dist.h"
#include "export.h"
#include "from_onnx.h"
#include "method_sp.h"
#include "method_winograd.h"
#include "models.h"
#include "net.h"
#include "optim.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef struct {
  const char *model, *data, *data_dir, *out, *ckpt, *resume, *optim, *schedule, *augment;
  int epochs, batch, threads, subset, test_subset, classes_override;
  int progress, progress_set;   // seconds between progress lines within an epoch
  long steps;
  float lr, momentum, wd, gamma, width, shift_lr;
  int nesterov, lr_set, momentum_set, optim_set, quiet, shift_lr_set;
  // training method (method.h)
  const char *method, *rounding, *quant_mode, *act_fixed;
  int weight_bits, zeroless, method_all, quant_range_set;
  float quant_range;
  // sp (method_sp.h) and continuation from a checkpoint's weights
  const char *sp_recipe, *from;
  const char *predict, *predict_out;   // --predict IN.npy [--predict-out OUT.npy]
  float sp_r;
  int sp_patch, sp_phase, sp_r_set, wd_set;
  int expansion;   // ShiftNet models (models/shiftresnet.c)
  const char *transforms;   // winograd (method_winograd.h)
  int tile, bits, bits_set;
  int sync_bn, dist_stats;   // data-parallel runs (dist.h)
  uint64_t seed;
} TrainArgs;

// DeepShift-PS: the lr of P and S without --lr or --shift-lr (docs/METHODS.md, "The preset")
#define FM_DEEPSHIFT_PS_SHIFT_LR 0.1f

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) { (void)sig; interrupted = 1; }

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void usage(FILE *f) {
  fprintf(f,
    "usage: fewmul train --model NAME --data NAME [options] -o model.onnx\n"
    "       fewmul train --resume run/checkpoint.fm [options]\n"
    "\n"
    "  --model NAME         a built-in model (below; fewmul train --list describes them)\n"
    "  --data NAME          fashion-mnist, mnist, cifar10, cifar100, synthetic[:CxHxW[:K]]\n"
    "  --data-dir DIR       where the data set files are (fashion-mnist: Debian's by default)\n"
    "  --epochs E           epochs (default 5)\n"
    "  --steps N            stop after N optimiser steps in all (smoke tests, benchmarks)\n"
    "  --batch B            batch size (default 64)\n"
    "  --optim NAME         sgd (default), adam, adamw, radam, adadelta, rmsprop\n"
    "  --lr X --momentum X --wd X --nesterov\n"
    "  --shift-lr X         deepshift-ps: the lr of P and S (default 0.1; --lr X alone sets both)\n"
    "  --schedule SPEC      const (default), step:S, multistep:M1,M2, exp, cosine[:T]\n"
    "  --gamma X            factor of step/multistep/exp schedules (default 0.1)\n"
    "  --augment SPEC       e.g. crop:4,flip (default none)\n"
    "  --width X            width multiplier (resnet18)\n"
    "  --method NAME        few-multiplication training of conv and linear layers (docs/METHODS.md):\n"
    "                       ternary, deepshift-q, deepshift-ps (RAdam, lr 1e-3, P and S 0.1 by default), quant\n"
    "  --method-all         apply it to the first conv and the last linear too (default: those stay dense)\n"
    "  --weight-bits B      deepshift: shifts in [-(2^(B-1)-2), 0] (default 5); quant: grid bits (default 8)\n"
    "  --rounding R         quant: stochastic (default) or deterministic\n"
    "  --zeroless           quant: a grid without 0\n"
    "  --quant-range S      quant: grid over [-S, S] (default: per layer max|W| at init)\n"
    "  --act-fixed I.F      deepshift: layer inputs rounded to I.F fixed point (the reference: 16.16)\n"
    "  --quant-mode M       quant: always (on the grid after every step; default) or fake (straight-through)\n"
    "  --method sp          StrassenNets SP layers (sp_resnet20 and sp_mlp use them by default):\n"
    "    --sp-r X           r = X * c_out hidden channels (multiplications per output patch; default 1)\n"
    "    --sp-patch P       P x P output patches (default 1)\n"
    "    --sp-phase N       1 full precision, 2 ternary W_B, W_C (default), 3 W_B, W_C frozen\n"
    "    --sp-recipe E1,E2,E3  the three phases in one run (SGD 0.9, wd 1e-4, lr 0.1 / 0.01 / 0.001\n"
    "                       with the reference's steps scaled to E1, E2; --lr sets the phase-1 lr)\n"
    "  --method winograd    Winograd-aware stride-1 3x3 convs (first conv and the rest dense):\n"
    "    --tile M           F(MxM,3x3): 2, 4 (default) or 6\n"
    "    --transforms T     static (Cook-Toom, default) or flex (learned, initialised from Cook-Toom)\n"
    "    --bits B           quantise the Winograd-domain operands to B bits (default 0: float)\n"
    "  --expansion E        shiftresnet20/56: conv1x1 expansion of the conv-shift-conv blocks, 1..9\n"
    "                       (default 1; the ShiftNet paper's 3c = 3)\n"
    "  --from PATH          start from the weights of checkpoint PATH (same model and method flags;\n"
    "                       e.g. the next SP phase), with a fresh optimiser and epoch count\n"
    "  --from dense.onnx    start any --method (or none) from a trained dense model of the same\n"
    "                       architecture (fewmul train -o); --epochs 0 only evaluates it\n"
    "  --from model.onnx    without --model: train any ONNX CNN/MLP (e.g. from PyTorch), built from\n"
    "                       its graph with its weights; --method converts its conv/linear layers\n"
    "  --task matmul2x2     learn a 2x2 (--n N: NxN) matrix product with --r R multiplications\n"
    "                       (fewmul train --task matmul2x2 --help)\n"
    "  --subset K           use only the first K training images\n"
    "  --test-subset K      evaluate on the first K test images\n"
    "  --seed S             (default 1)\n"
    "  --threads T          OpenMP threads (default: all cores)\n"
    "  --checkpoint PATH    write a checkpoint after every epoch (and on Ctrl-C, SIGTERM, SIGUSR1)\n"
    "  --resume PATH        continue the run saved in PATH (its arguments are in PATH.args)\n"
    "  -o PATH              export the trained model as ONNX\n"
    "  --quiet              no progress lines\n"
    "  --sync-bn            mpirun: batchnorm statistics over all processes (default: per process)\n"
    "  --dist-stats         print per-step forward/backward/allreduce times and their overlap\n"
    "  --progress S         a progress line within an epoch every S seconds (default 10; 0: every step)\n"
    "  --predict IN.npy     after training, write the net's outputs on IN.npy to --predict-out\n"
    "                       (default predict.npy)\n"
    "environment:\n"
    "  FEWMUL_PROFILE=1     print each layer's forward/backward ms per training step at the end\n"
    "  FEWMUL_CONV_IM2COL=1 convolutions through im2col + OpenBLAS only (to compare kernels)\n"
    "  FEWMUL_DIST_EXPORT_ALL=1  mpirun: every rank r > 0 also exports its weights to -o PATH.rankR\n"
    "  FEWMUL_DIST_BUCKET_KB=K   mpirun: gradients are summed in buckets of about K KiB (default 256)\n"
    "models:\n");
  for (const FmModelEntry *m = fm_models; m->name; m++) fprintf(f, "  %-14s %s\n", m->name, m->help ? m->help : "");
  if (fm_dist_built_with_mpi())
    fprintf(f, "data-parallel: this build is MPI-enabled: `mpirun -np N fewmul train ...` trains on N processes,\n"
            "  --batch is the global batch (docs/DISTRIBUTED.md)\n");
  else
    fprintf(f, "data-parallel: this build has no MPI (install libopenmpi-dev and rebuild for mpirun -np N)\n");
}

static int parse_args(TrainArgs *a, int argc, char **argv, char *err, size_t errlen) {
  for (int i = 0; i < argc; i++) {
    const char *k = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define STR(flag, field) if (!strcmp(k, flag)) { if (!v) goto missing; a->field = v; i++; continue; }
/* integers are range-checked against their field: --epochs 4294967296 is refused, not wrapped to 0 */
#define NUM(flag, field, max) if (!strcmp(k, flag)) { if (!v) goto missing; char *e; errno = 0; \
    long long x = strtoll(v, &e, 10); \
    if (*e || e == v || x < 0 || errno == ERANGE || x > (long long)(max)) { snprintf(err, errlen, \
      "%s: '%s' is not an integer in [0, %lld]", flag, v, (long long)(max)); return -1; } a->field = x; i++; continue; }
#define INT(flag, field) NUM(flag, field, INT_MAX)
#define LNG(flag, field) NUM(flag, field, LONG_MAX)
#define FLT(flag, field) if (!strcmp(k, flag)) { if (!v) goto missing; char *e; float x = strtof(v, &e); \
    if (*e) { snprintf(err, errlen, "%s: '%s' is not a number", flag, v); return -1; } a->field = x; i++; continue; }
    if (!strcmp(k, "--optim")) { a->optim_set = 1; }
    STR("--model", model) STR("--data", data) STR("--data-dir", data_dir) STR("-o", out)
    STR("--checkpoint", ckpt) STR("--resume", resume) STR("--optim", optim) STR("--schedule", schedule)
    STR("--augment", augment) STR("--sp-recipe", sp_recipe) STR("--from", from)
    STR("--predict", predict) STR("--predict-out", predict_out)
    INT("--sp-patch", sp_patch) INT("--sp-phase", sp_phase) INT("--expansion", expansion)
    STR("--transforms", transforms) INT("--tile", tile)
    if (!strcmp(k, "--bits")) { a->bits_set = 1; }
    INT("--bits", bits)
    if (!strcmp(k, "--sp-r")) { a->sp_r_set = 1; }
    FLT("--sp-r", sp_r)
    if (!strcmp(k, "--wd")) { a->wd_set = 1; }
    STR("--method", method) STR("--rounding", rounding) STR("--quant-mode", quant_mode) STR("--act-fixed", act_fixed)
    INT("--weight-bits", weight_bits)
    if (!strcmp(k, "--quant-range")) { a->quant_range_set = 1; }
    FLT("--quant-range", quant_range)
    if (!strcmp(k, "--zeroless")) { a->zeroless = 1; continue; }
    if (!strcmp(k, "--method-all")) { a->method_all = 1; continue; }
    INT("--epochs", epochs) INT("--batch", batch) NUM("--threads", threads, 4096) INT("--subset", subset)
    INT("--test-subset", test_subset) LNG("--steps", steps) NUM("--seed", seed, INT64_MAX)
    FLT("--wd", wd) FLT("--gamma", gamma) FLT("--width", width)
    if (!strcmp(k, "--lr")) { a->lr_set = 1; }
    FLT("--lr", lr)
    if (!strcmp(k, "--shift-lr")) { a->shift_lr_set = 1; }
    FLT("--shift-lr", shift_lr)
    if (!strcmp(k, "--momentum")) { a->momentum_set = 1; }
    FLT("--momentum", momentum)
    if (!strcmp(k, "--nesterov")) { a->nesterov = 1; continue; }
    if (!strcmp(k, "--quiet")) { a->quiet = 1; continue; }
    if (!strcmp(k, "--sync-bn")) { a->sync_bn = 1; continue; }
    if (!strcmp(k, "--dist-stats")) { a->dist_stats = 1; continue; }
    if (!strcmp(k, "--progress")) { a->progress_set = 1; }
    INT("--progress", progress)
    snprintf(err, errlen, "train: unknown option '%s' (fewmul train --help)", k);
    return -1;
  missing:
    snprintf(err, errlen, "train: option '%s' needs a value", k);
    return -1;
#undef STR
#undef NUM
#undef INT
#undef LNG
#undef FLT
  }
  return 0;
}

/* PATH.args, malloc'ed (the same name on save and load, whatever the path's length) */
static char *args_path(const char *ckpt, const char *suffix) {
  size_t n = strlen(ckpt) + strlen(".args") + strlen(suffix) + 1;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s.args%s", ckpt, suffix);
  return p;
}

/* The arguments of a run, saved next to its checkpoint so --resume rebuilds it. */
static int save_args(const char *ckpt, int argc, char **argv) {
  char *path = args_path(ckpt, ""), *tmp = args_path(ckpt, ".tmp");
  FILE *f = path && tmp ? fopen(tmp, "w") : NULL;
  int rc = -1;
  if (f) {
    for (int i = 0; i < argc; i++)
      if (strcmp(argv[i], "--resume")) fprintf(f, "%s\n", argv[i]);
      else i++;
    int bad = ferror(f);
    if (!fclose(f) && !bad) rc = rename(tmp, path);
  }
  free(path), free(tmp);
  return rc;
}

static int load_args(const char *ckpt, int *argc, char ***argv, char *err, size_t errlen) {
  char *path = args_path(ckpt, ""), *line = NULL;
  size_t cap = 0;
  FILE *f = path ? fopen(path, "r") : NULL;
  if (!f) {
    snprintf(err, errlen, "--resume: cannot open '%s' (the run's arguments): %s", path ? path : ckpt, strerror(errno));
    free(path);
    return -1;
  }
  free(path);
  int n = 0;
  char **v = NULL;
  while (getline(&line, &cap, f) >= 0) {   /* lines of any length: an argument is one line */
    line[strcspn(line, "\n")] = 0;
    v = realloc(v, sizeof(char *) * (size_t)(n + 1));
    v[n++] = strdup(line);
  }
  free(line);
  fclose(f);
  *argc = n, *argv = v;
  return 0;
}

static int parse_augment(FmAugment *aug, const char *spec, char *err, size_t errlen) {
  memset(aug, 0, sizeof *aug);
  if (!spec || !*spec || !strcmp(spec, "none")) return 0;
  char buf[128];
  snprintf(buf, sizeof buf, "%s", spec);
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
    if (!strncmp(tok, "crop:", 5)) aug->pad = atoi(tok + 5);
    else if (!strcmp(tok, "flip")) aug->flip = 1;
    else {
      snprintf(err, errlen, "--augment: unknown item '%s' (crop:P, flip)", tok);
      return -1;
    }
  }
  return 0;
}

/* --method and its settings; flags of another method are refused, not ignored. */
static int parse_method(FmMethod *m, const TrainArgs *a, char *err, size_t errlen) {
  fm_method_defaults(m, FM_METHOD_NONE);
  int sp_model = a->model && !strncmp(a->model, "sp_", 3);
  int kind = a->method ? (!strcmp(a->method, "none") ? (int)FM_METHOD_NONE : fm_method_parse_any(a->method))
                       : sp_model ? (int)FM_METHOD_SP : FM_METHOD_NONE;
  if (kind < 0) {
    snprintf(err, errlen, "--method: unknown method '%s' (ternary, deepshift-q, deepshift-ps, quant, sp, winograd)", a->method);
    return -1;
  }
  if (a->act_fixed && kind != FM_METHOD_DEEPSHIFT_Q && kind != FM_METHOD_DEEPSHIFT_PS) {
    snprintf(err, errlen, "--act-fixed applies to --method deepshift-q and deepshift-ps only");
    return -1;
  }
  if (sp_model && kind != FM_METHOD_SP) {
    snprintf(err, errlen, "--method: model %s is built of SP layers (--method sp)", a->model);
    return -1;
  }
  const char *sp_only = a->sp_r_set ? "--sp-r" : a->sp_patch ? "--sp-patch" : a->sp_phase ? "--sp-phase"
                      : a->sp_recipe ? "--sp-recipe" : NULL;
  if (sp_only && kind != FM_METHOD_SP) {
    snprintf(err, errlen, "%s applies to --method sp only", sp_only);
    return -1;
  }
  const char *wino_only = a->tile ? "--tile" : a->transforms ? "--transforms" : a->bits_set ? "--bits" : NULL;
  if (wino_only && kind != FM_METHOD_WINOGRAD) {
    snprintf(err, errlen, "%s applies to --method winograd only", wino_only);
    return -1;
  }
  if (kind == FM_METHOD_WINOGRAD) {
    fm_method_defaults(m, FM_METHOD_WINOGRAD);
    if (a->rounding || a->zeroless || a->quant_range_set || a->quant_mode || a->weight_bits) {
      snprintf(err, errlen, "--method winograd takes --bits, not the weight quantiser flags");
      return -1;
    }
    m->wino_tile = a->tile ? a->tile : 4;
    m->wino_bits = a->bits;
    if (a->transforms && strcmp(a->transforms, "static") && strcmp(a->transforms, "flex")) {
      snprintf(err, errlen, "--transforms: '%s' is not static or flex", a->transforms);
      return -1;
    }
    m->wino_flex = a->transforms && !strcmp(a->transforms, "flex");
    m->all = a->method_all;
    return fm_wino_check(m, err, errlen);
  }
  if (kind == FM_METHOD_SP) {
    fm_method_defaults(m, FM_METHOD_SP);
    if (a->rounding || a->zeroless || a->quant_range_set || a->quant_mode || a->weight_bits) {
      snprintf(err, errlen, "--method sp takes no quantiser flags (W_B, W_C are ternary by TWN)");
      return -1;
    }
    if (a->sp_r_set && !(a->sp_r > 0 && a->sp_r <= 64)) {
      snprintf(err, errlen, "--sp-r: must be in (0, 64], a multiple of c_out");
      return -1;
    }
    if (a->sp_patch > 8) { snprintf(err, errlen, "--sp-patch: must be 1..8"); return -1; }
    if (a->sp_phase > 3) { snprintf(err, errlen, "--sp-phase: must be 1, 2 or 3"); return -1; }
    if (a->sp_recipe && a->sp_phase) { snprintf(err, errlen, "--sp-recipe sets the phases; drop --sp-phase"); return -1; }
    m->sp_r = a->sp_r_set ? a->sp_r : 1.0f;
    m->sp_patch = a->sp_patch ? a->sp_patch : 1;
    m->sp_phase = a->sp_phase ? a->sp_phase : FM_SP_TERNARY;
    m->all = a->method_all;
    return 0;
  }
  fm_method_defaults(m, (FmMethodKind)kind);
  const char *quant_only = a->rounding ? "--rounding" : a->zeroless ? "--zeroless" : a->quant_range_set ? "--quant-range"
                         : a->quant_mode ? "--quant-mode" : NULL;
  if (quant_only && kind != FM_METHOD_QUANT) {
    snprintf(err, errlen, "%s applies to --method quant only", quant_only);
    return -1;
  }
  if (a->weight_bits && (kind == FM_METHOD_NONE || kind == FM_METHOD_TERNARY)) {
    snprintf(err, errlen, "--weight-bits applies to --method deepshift-q, deepshift-ps and quant");
    return -1;
  }
  if (a->method_all && kind == FM_METHOD_NONE) {
    snprintf(err, errlen, "--method-all needs a --method");
    return -1;
  }
  if (a->weight_bits) m->weight_bits = a->weight_bits;
  m->all = a->method_all;
  m->zeroless = a->zeroless;
  if (a->rounding) {
    if (!strcmp(a->rounding, "stochastic")) m->stochastic = 1;
    else if (!strcmp(a->rounding, "deterministic")) m->stochastic = 0;
    else { snprintf(err, errlen, "--rounding: '%s' is not stochastic or deterministic", a->rounding); return -1; }
  }
  if (a->quant_mode) {
    if (!strcmp(a->quant_mode, "always")) m->quant_mode = FM_QUANT_ALWAYS;
    else if (!strcmp(a->quant_mode, "fake")) m->quant_mode = FM_QUANT_FAKE;
    else { snprintf(err, errlen, "--quant-mode: '%s' is not always or fake", a->quant_mode); return -1; }
  }
  if (a->quant_range_set) {
    if (!(a->quant_range > 0) || isinf(a->quant_range)) {
      snprintf(err, errlen, "--quant-range: must be a positive number");
      return -1;
    }
    m->range = a->quant_range;
  }
  if (a->act_fixed) {
    char extra;
    if (sscanf(a->act_fixed, "%d.%d%c", &m->act_int, &m->act_frac, &extra) != 2) {
      snprintf(err, errlen, "--act-fixed: '%s' is not I.F (integer and fraction bits, e.g. 16.16)", a->act_fixed);
      return -1;
    }
    if (m->act_int < 1) {   // 0 would mean "off"
      snprintf(err, errlen, "--act-fixed I.F: needs I >= 1 (got '%s')", a->act_fixed);
      return -1;
    }
  }
  return fm_method_check(m, err, errlen);
}

/* Test loss and accuracy with the test set split over the processes and the sums added
 * (every process calls it); one process: fm_net_eval. */
static void eval_split(FmNet *net, FmDist *d, const float *x, const int *y, int n, int batch,
                       float *loss, float *acc) {
  int r = fm_dist_rank(d), R = fm_dist_size(d);
  if (R == 1) { fm_net_eval(net, x, y, n, batch, loss, acc); return; }
  int lo = (int)((long long)n * r / R), hi = (int)((long long)n * (r + 1) / R);
  float l = 0, a = 0;
  if (hi > lo) fm_net_eval(net, x + (size_t)lo * net->tensors[net->input].size, y + lo, hi - lo, batch, &l, &a);
  double s[2] = {(double)l * (hi - lo), (double)lroundf(a * (float)(hi - lo))};
  fm_dist_sum(d, s, 2);
  *loss = n ? (float)(s[0] / n) : 0, *acc = n ? (float)(s[1] / n) : 0;
}

static void fmt_time(char *buf, size_t n, double s) {
  if (s < 60) snprintf(buf, n, "%.0fs", s);
  else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
  else snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

int fm_cmd_train(int argc, char **argv) {
  TrainArgs a = {.epochs = 5, .batch = 64, .seed = 1, .gamma = 0.1f, .width = 1, .optim = "sgd",
                 .schedule = "const"};
  char err[1024];
  FmDist *dist = NULL;
  for (int i = 0; i < argc; i++)
    if (!strcmp(argv[i], "--task")) return fm_cmd_train_matmul(argc, argv);   // strassen.c
  for (int i = 0; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
    else if (!strcmp(argv[i], "--list")) {
      for (const FmModelEntry *m = fm_models; m->name; m++) printf("%-12s %s\n", m->name, m->help ? m->help : "");
      return 0;
    }
  /* --resume: the saved arguments first, then anything given now on top. */
  const char *resume = NULL;
  for (int i = 0; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--resume")) resume = argv[i + 1];
  int sargc = 0;
  char **sargv = NULL;
  if (resume) {
    if (load_args(resume, &sargc, &sargv, err, sizeof err) || parse_args(&a, sargc, sargv, err, sizeof err)) goto fail;
  }
  if (parse_args(&a, argc, argv, err, sizeof err)) goto fail;
  if (resume && !a.ckpt) a.ckpt = resume;
  /* --from model.onnx without --model: the net is built from the file's graph (onnx_import.c) */
  int import = !a.model && a.from && !fm_from_is_checkpoint(a.from);
  if (!a.model && !import) {
    snprintf(err, sizeof err, "train: --model is required (fewmul train --list), or --from model.onnx to train any ONNX CNN/MLP");
    goto fail;
  }
  if (a.predict_out && !a.predict) { snprintf(err, sizeof err, "train: --predict-out needs --predict IN.npy"); goto fail; }
  if (!a.data) { snprintf(err, sizeof err, "train: --data is required"); goto fail; }
  if (a.batch <= 0) { snprintf(err, sizeof err, "train: --batch must be positive"); goto fail; }
  if (!(a.width > 0) || !isfinite(a.width)) { snprintf(err, sizeof err, "train: --width must be a positive number"); goto fail; }
  /* Data-parallel (dist.h): one rank unless mpirun started us. Rank 0 alone prints,
     checkpoints and exports; every failure from here on ends the whole job. */
  if (!(dist = fm_dist_init(err, sizeof err))) goto fail;
  int rank = fm_dist_rank(dist), nranks = fm_dist_size(dist);
  int show = !a.quiet;   /* evaluations are split over the processes, so all run them */
  if (rank > 0) a.quiet = 1;

  FmMethod method;
  if (parse_method(&method, &a, err, sizeof err)) goto fail;
  if (a.expansion && (!a.model || strncmp(a.model, "shiftresnet", 11))) {
    snprintf(err, sizeof err, "--expansion applies to the shiftresnet models only");
    goto fail;
  }
  if (a.expansion > 9) { snprintf(err, sizeof err, "--expansion: must be 1..9"); goto fail; }
  method.shift_expansion = a.expansion;
  /* --sp-recipe E1,E2,E3: the reference's three phases, SGD 0.9, wd 1e-4, lr 0.1 -> 0.01 -> 0.001 */
  FmSpRecipe recipe = {{0}};
  int use_recipe = a.sp_recipe != NULL;
  if (use_recipe) {
    if (fm_sp_recipe_parse(&recipe, a.sp_recipe, err, sizeof err)) goto fail;
    if (a.optim_set && strcmp(a.optim, "sgd")) { snprintf(err, sizeof err, "--sp-recipe trains with SGD; drop --optim"); goto fail; }
    if (strcmp(a.schedule, "const")) { snprintf(err, sizeof err, "--sp-recipe sets the lr schedule; drop --schedule"); goto fail; }
    a.epochs = fm_sp_recipe_epochs(&recipe);
    if (!a.lr_set) a.lr = 0.1f, a.lr_set = 1;
    if (!a.wd_set) a.wd = 1e-4f;
    method.sp_phase = 1;
  }
  /* DeepShift-PS needs RAdam (the method's recipe) unless told otherwise */
  if (method.kind == FM_METHOD_DEEPSHIFT_PS && !a.optim_set) a.optim = "radam";
  FmOptimConfig oc;
  int kind = fm_optim_kind_parse(a.optim);
  if (kind < 0) { snprintf(err, sizeof err, "--optim: unknown optimiser '%s'", a.optim); goto fail; }
  fm_optim_defaults(&oc, (FmOptimKind)kind);
  if (a.lr_set) oc.lr = a.lr;
  else if (kind == FM_OPT_SGD) oc.lr = 0.01f;
  /* DeepShift-PS: P and S (the "deepshift" parameter group) have their own lr. Without --lr
     the preset (docs/METHODS.md): the other parameters at the optimiser's default (RAdam 1e-3,
     as a dense model trains), P and S at 0.1: an adaptive step moves P by about its lr, i.e. |W|
     by a factor 2^lr, and S must move by 0.5 to change a weight, so they need a far larger lr
     than the dense weights. --lr alone sets both (--shift-lr then defaults to --lr). */
  if (a.shift_lr_set && method.kind != FM_METHOD_DEEPSHIFT_PS) {
    snprintf(err, sizeof err, "--shift-lr applies to --method deepshift-ps only");
    goto fail;
  }
  if (a.shift_lr_set && !(a.shift_lr > 0 && isfinite(a.shift_lr))) {
    snprintf(err, sizeof err, "--shift-lr: must be a positive number");
    goto fail;
  }
  float shift_lr = a.shift_lr_set ? a.shift_lr : a.lr_set ? oc.lr : FM_DEEPSHIFT_PS_SHIFT_LR;
  if (a.momentum_set) oc.momentum = a.momentum;
  else if (kind == FM_OPT_SGD) oc.momentum = 0.9f;
  oc.weight_decay = a.wd;
  oc.nesterov = a.nesterov;
  FmSched sched;
  if (fm_sched_parse(&sched, a.schedule, a.gamma, a.epochs, err, sizeof err)) goto fail;
  FmAugment aug;
  if (parse_augment(&aug, a.augment, err, sizeof err)) goto fail;

  /* Data. */
  FmDataset train = {0}, test = {0};
  if (fm_data_load(&train, a.data, a.data_dir, 1, err, sizeof err) ||
      fm_data_load(&test, a.data, a.data_dir, 0, err, sizeof err) || fm_data_check_split(&train, &test, err, sizeof err))
    goto fail;
  if (a.subset > 0) fm_data_take(&train, a.subset);
  if (a.test_subset > 0) fm_data_take(&test, a.test_subset);

  /* Model, with the data set's normalisation as its first (fixed) layer. */
  FmNetOpts no = fm_net_opts_default();
  no.seed = a.seed;
  no.threads = a.threads;
  no.width = a.width;
  no.method = method;
  no.nmean = train.c <= 8 ? train.c : 0;
  if (no.nmean) fm_data_mean_std(&train, no.mean, no.std);   /* c entries: mean[8] holds at most 8 */
  for (int c = 0; c < no.nmean; c++)
    if (no.std[c] <= 0) no.std[c] = 1;
  FmNet *net = import ? fm_import_onnx(a.from, &no, train.c, train.h, train.w, train.classes, a.quiet ? NULL : stderr,
                                       err, sizeof err)
                      : fm_model_build(a.model, train.c, train.h, train.w, train.classes, &no, err, sizeof err);
  if (!net) goto fail;
  if (import) {
    /* built with its weights */
  } else if (a.from && !fm_from_is_checkpoint(a.from)) {   /* a dense model's ONNX export (from_onnx.h) */
    if (fm_from_onnx(net, a.from, a.quiet ? NULL : stderr, err, sizeof err)) goto fail;
  } else if (a.from) {   /* the weights (and BN statistics) of another run, e.g. the previous SP phase */
    FmCheckpointInfo finfo;
    if (fm_checkpoint_load(a.from, net, NULL, &finfo, err, sizeof err)) goto fail;
    if (!a.quiet) fprintf(stderr, "weights from %s (epoch %lld)\n", a.from, (long long)finfo.epoch);
  }
  if (a.predict && fm_net_predict_npy(net, a.predict, NULL, err, sizeof err)) goto fail;
  if (fm_sp_needs_calibration(net)) {   /* SP layers from a dense W: a and BN on the first images */
    int cn = train.n < a.batch ? train.n : a.batch;
    size_t chw = (size_t)train.c * (size_t)train.h * (size_t)train.w;
    float *cx = malloc(sizeof(float) * chw * (size_t)(cn > 0 ? cn : 1));
    if (!cx) { snprintf(err, sizeof err, "out of memory"); goto fail; }
    for (int i = 0; i < cn; i++) fm_data_image_float(&train, i, cx + (size_t)i * chw);
    if (cn > 0) fm_sp_calibrate(net, cx, cn);
    free(cx);
  }
  if (method.kind == FM_METHOD_DEEPSHIFT_PS)
    for (int g = 0; g < net->ngroups; g++)
      if (!strcmp(net->groups[g].name, "deepshift")) net->groups[g].lr_mult = oc.lr > 0 ? shift_lr / oc.lr : 1.0f;
  FmOptim *opt = fm_net_optim_new(net, &oc);
  int64_t step = 0, start_batch = 0;
  int start_epoch = 0;
  if (resume) {
    FmCheckpointInfo info;
    if (fm_checkpoint_load(resume, net, opt, &info, err, sizeof err)) goto fail;
    step = info.step;
    start_epoch = (int)info.epoch;
    start_batch = info.epoch_batch;
    /* mid-epoch: the same global batches, so the position means the same samples */
    if (start_batch && info.global_batch && info.global_batch != a.batch) {
      snprintf(err, sizeof err, "--resume: '%s' was saved inside epoch %d with --batch %d; resume with that batch",
               resume, start_epoch + 1, info.global_batch);
      goto fail;
    }
    if (!a.quiet)
      fprintf(stderr, "resumed %s at epoch %d, batch %lld, step %lld (saved by %d process%s)\n", resume,
              start_epoch + 1, (long long)start_batch, (long long)step, info.nranks ? info.nranks : 1,
              info.nranks > 1 ? "es" : "");
  }
  const char *bkb = getenv("FEWMUL_DIST_BUCKET_KB");   /* gradient bucket size (dist.h) */
  if (fm_dist_attach(dist, net, a.sync_bn, bkb && atol(bkb) > 0 ? (size_t)atol(bkb) << 10 : 0)) {
    snprintf(err, sizeof err, "out of memory");
    goto fail;
  }
  if (rank == 0 && a.ckpt && save_args(a.ckpt, resume ? sargc : argc, resume ? sargv : argv)) {
    snprintf(err, sizeof err, "cannot write '%s.args'", a.ckpt);
    goto fail;
  }

  FmLoaderConfig lc = {.batch = a.batch, .shuffle = 1, .drop_last = 0, .threaded = 1, .seed = a.seed, .aug = aug,
                       .rank = rank, .nranks = nranks};
  FmLoader *ld = fm_loader_new(&train, &lc, err, sizeof err);
  if (!ld) goto fail;
  float *tx = malloc(sizeof(float) * (size_t)test.n * (size_t)(test.c * test.h * test.w));
  int *ty = malloc(sizeof(int) * (size_t)(test.n ? test.n : 1));
  for (int i = 0; i < test.n; i++) {
    fm_data_image_float(&test, i, tx + (size_t)i * (size_t)(test.c * test.h * test.w));
    ty[i] = test.labels[i];
  }
  if (!a.quiet) {
    long long np = 0;
    for (int i = 0; i < net->nparams; i++) np += (long long)net->params[i].size;
    fprintf(stderr, "train %s on %s: %d train / %d test images %dx%dx%d, %d classes, %lld parameters, "
            "%s lr %g, batch %d, %d threads\n", net->model, a.data, train.n, test.n, train.c, train.h, train.w,
            train.classes, np, fm_optim_kind_name(oc.kind), (double)oc.lr, a.batch, net->threads);
    if (nranks > 1)
      fprintf(stderr, "data-parallel: %d processes x %d threads, %d samples per process per batch, %d gradient "
              "buckets, batchnorm statistics %s\n", nranks, net->threads, (a.batch + nranks - 1) / nranks,
              fm_dist_nbuckets(dist), a.sync_bn ? "over all processes (--sync-bn)" : "per process");
    if (method.kind == FM_METHOD_DEEPSHIFT_PS)
      fprintf(stderr, "deepshift-ps: P and S at lr %g, the other parameters at lr %g (scheduled alike)\n",
              (double)shift_lr, (double)oc.lr);
    if (method.kind) {
      char desc[256];
      fm_method_describe_any(&method, desc, sizeof desc);
      fprintf(stderr, "method: %s\n", desc);
      if (use_recipe)
        fprintf(stderr, "sp recipe: phase 1 %d epochs, phase 2 %d, phase 3 %d\n", recipe.e[0], recipe.e[1], recipe.e[2]);
    }
  }
  signal(SIGINT, on_sigint);
  signal(SIGTERM, on_sigint);
  signal(SIGUSR1, on_sigint);   /* mpirun forwards it to every rank at once (docs/DISTRIBUTED.md) */
  if (a.dist_stats) fm_dist_measure_allreduce(dist, 10);
  if (nranks > 1) {   /* the same data and the same starting weights everywhere (hosts may differ) */
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t bytes = (size_t)train.n * (size_t)(train.c * train.h * train.w);
    for (size_t i = 0; i < bytes; i++) h = (h ^ train.pixels[i]) * 0x100000001b3ULL;
    for (int i = 0; i < train.n; i++) h = (h ^ (uint32_t)train.labels[i]) * 0x100000001b3ULL;
    if (!fm_dist_same(dist, h)) {
      snprintf(err, sizeof err, "rank %d: the processes read different training data ('%s'%s%s)", rank, a.data,
               a.data_dir ? " in " : "", a.data_dir ? a.data_dir : "");
      goto fail;
    }
    if (!fm_dist_same(dist, fm_dist_weights_checksum(net))) {
      snprintf(err, sizeof err, "rank %d: the processes start from different weights", rank);
      goto fail;
    }
  }

  int rc = 0, stop = 0, sig_stop = 0;
  double t_start = now();
  long steps_done_here = 0;
  double train_secs = 0, train_samples = 0; /* the training loop alone, for samples/s */
  float test_acc = -1, test_loss = 0;
  int evaluated = 0;   /* test_acc/test_loss are of the current weights (the last epoch's line) */
  double progress_s = a.progress_set ? a.progress : 10, last_line = now();
  long epoch_steps = ((long)train.n + a.batch - 1) / a.batch;
  int epoch = start_epoch;
  for (; epoch < a.epochs && !stop && !(a.steps && step >= a.steps); epoch++) {
    float lr = oc.lr * fm_sched_factor(&sched, epoch);
    if (use_recipe) {
      int ph = fm_sp_recipe_phase(&recipe, epoch);
      lr = fm_sp_recipe_lr(&recipe, epoch, oc.lr);
      if (ph != fm_sp_phase(net)) fm_sp_set_phase(net, ph);
      if (epoch > 0 && ph != fm_sp_recipe_phase(&recipe, epoch - 1) && !(epoch == start_epoch && start_batch)) {
        /* a fresh optimiser per phase, as the reference's new Trainer */
        fm_optim_free(opt);
        opt = fm_net_optim_new(net, &oc);
        if (!a.quiet) fprintf(stderr, "sp phase %d from epoch %d, lr %g\n", ph, epoch + 1, (double)lr);
      }
    }
    /* a run saved mid-epoch continues at its batch: the epoch's order is f(seed, epoch) */
    int ebatch = epoch == start_epoch ? (int)start_batch : 0;
    fm_loader_start_epoch_at(ld, epoch, ebatch);
    double t0 = now(), loss_sum = 0;
    long seen = 0, correct_sum = 0;
    FmBatch b;
    while (fm_loader_next(ld, &b)) {
      fm_dist_step_start(dist);
      fm_net_zero_grad(net);
      /* randomness keyed to (seed, step, sample), the loss divided by the global batch:
         N processes compute what one computes (dist.h) */
      net->step = step, net->sample_id = b.index, net->loss_batch = b.global_n;
      fm_net_forward(net, b.x, b.n, 1);
      int correct = 0;
      float loss = fm_net_loss(net, b.y, b.n, &correct);
      double st[4] = {(double)loss * b.n, correct, !isfinite(loss), interrupted};
      fm_dist_backward_start(dist, st, 4);
      fm_net_backward(net);
      fm_dist_step_end(dist);   /* gradients and st summed over the processes */
      if (st[2] > 0) {
        if (rank == 0)
          fprintf(stderr, "fewmul: error: the loss became %s at epoch %d, step %lld; stopping%s\n",
                  isfinite(loss) ? "non-finite on another process" : isnan(loss) ? "NaN" : "infinite", epoch + 1,
                  (long long)step, a.ckpt ? " (the last good checkpoint is kept)" : "");
        rc = 1, stop = 1;
        break;
      }
      fm_net_step(net, opt, lr);
      step++, steps_done_here++, ebatch++, evaluated = 0;
      loss_sum += st[0], correct_sum += (long)st[1], seen += b.global_n;
      if (st[3] > 0) sig_stop = 1;
      if (!a.quiet && now() - last_line >= progress_s) {   /* a line within the epoch */
        double t = now(), rate = (double)seen / (t - t0);
        long in_epoch = (seen + a.batch - 1) / a.batch, left = epoch_steps - in_epoch;
        if (a.steps) left = a.steps - step < left ? a.steps - step : left;
        char eta[32];
        fmt_time(eta, sizeof eta, rate > 0 ? (double)left * a.batch / rate : 0);
        fprintf(stderr, "epoch %d/%d  step %ld/%ld  loss %.4f  %.0f samples/s  epoch ETA %s\n", epoch + 1, a.epochs,
                in_epoch, epoch_steps, loss_sum / (double)seen, rate, eta);
        last_line = t;
      }
      if ((a.steps && step >= a.steps) || sig_stop) { stop = 1; break; }
    }
    if (rc) break;
    double dt = now() - t0;
    train_secs += dt, train_samples += (double)seen;
    /* every rank holds the same weights (checked), and rank 0 saves where the run stands:
       after the epoch, or inside it (Ctrl-C, --steps) at its next batch */
    fm_dist_average_bufs(dist, net);
    uint64_t wsum = fm_dist_weights_checksum(net);
    if (!fm_dist_same(dist, wsum)) {
      fprintf(stderr, "fewmul: error: rank %d: the processes hold different weights after epoch %d\n", rank, epoch + 1);
      fm_dist_abort(dist, 1);
    }
    if ((nranks > 1 && !a.quiet) || (a.dist_stats && rank == 0))
      fprintf(stderr, "epoch %d: weights checksum %016llx, the same on all %d processes\n", epoch + 1,
              (unsigned long long)wsum, nranks);
    int complete = ebatch >= fm_loader_num_batches(ld);
    FmCheckpointPos pos = {complete ? epoch + 1 : epoch, step, complete ? 0 : ebatch, a.batch, nranks};
    if (rank == 0 && a.ckpt && fm_checkpoint_save_at(a.ckpt, net, opt, &pos, err, sizeof err)) {
      fprintf(stderr, "fewmul: error: %s\n", err);
      if (nranks > 1) fm_dist_abort(dist, 1);
      rc = 1;
      break;
    }
    if (sig_stop && rank == 0 && a.ckpt)
      fprintf(stderr, "interrupted: checkpoint written to %s at epoch %d, batch %d (resume with --resume %s)\n",
              a.ckpt, (int)pos.epoch + 1, (int)pos.epoch_batch, a.ckpt);
    else if (sig_stop && rank == 0)
      fprintf(stderr, "interrupted (no --checkpoint given, nothing saved)\n");
    if (show && seen) eval_split(net, dist, tx, ty, test.n, a.batch, &test_loss, &test_acc), evaluated = 1;
    if (!a.quiet && seen) {
      last_line = now();
      char eta[32];
      double per = (now() - t_start) / (epoch + 1 - start_epoch);
      fmt_time(eta, sizeof eta, per * (a.epochs - epoch - 1));
      fprintf(stderr, "epoch %d/%d  loss %.4f  acc %.2f%%  test loss %.4f  test acc %.2f%%  %.0f samples/s  lr %g  %.1fs  ETA %s\n",
              epoch + 1, a.epochs, loss_sum / (double)seen, 100.0 * (double)correct_sum / (double)seen,
              (double)test_loss, 100.0 * (double)test_acc, (double)seen / dt, (double)lr, dt, stop ? "-" : eta);
    }
  }
  net->sample_id = NULL, net->loss_batch = 0;
  if (sig_stop) rc = 130;
  if (!rc && !evaluated) eval_split(net, dist, tx, ty, test.n, a.batch, &test_loss, &test_acc);   /* not twice */
  if (!rc && rank == 0) {
    double total = now() - t_start;
    printf("test accuracy: %.2f%% (%d images), test loss %.4f, %ld steps in %.1fs\n", 100.0 * (double)test_acc,
           test.n, (double)test_loss, steps_done_here, total);
    printf("samples_per_s: %.1f\n", train_secs > 0 ? train_samples / train_secs : 0.0);
    if (nranks > 1) printf("samples_per_s_per_process: %.1f\n", train_secs > 0 ? train_samples / train_secs / nranks : 0.0);
  }
  if (!rc && rank == 0 && a.predict) {
    const char *po = a.predict_out ? a.predict_out : "predict.npy";
    if (fm_net_predict_npy(net, a.predict, po, err, sizeof err)) {
      fprintf(stderr, "fewmul: error: %s\n", err);
      rc = 1;
    } else if (!a.quiet) {
      fprintf(stderr, "wrote %s (the outputs on %s)\n", po, a.predict);
    }
  }
  const char *all = getenv("FEWMUL_DIST_EXPORT_ALL");
  if (!rc && a.out && (rank == 0 || (all && *all && strcmp(all, "0")))) {
    char rpath[1100];
    if (rank > 0) snprintf(rpath, sizeof rpath, "%s.rank%d", a.out, rank);
    if (fm_export_onnx(net, rank > 0 ? rpath : a.out, err, sizeof err)) {
      fprintf(stderr, "fewmul: error: %s\n", err);
      rc = 1;
    } else if (!a.quiet) {
      fprintf(stderr, "wrote %s\n", a.out);
    }
  }
  if (a.dist_stats && rank == 0) fm_dist_stats_print(dist, stderr);
  fm_loader_free(ld);
  free(tx), free(ty);
  if (rank == 0) fm_net_profile_print(net, stderr);
  fm_optim_free(opt);
  fm_net_free(net);
  fm_data_free(&train), fm_data_free(&test);
  fm_dist_finalize(dist);
  return rc;
fail:
  fprintf(stderr, "fewmul: error: %s\n", err);
  if (dist && fm_dist_size(dist) > 1) fm_dist_abort(dist, 1);
  fm_dist_finalize(dist);
  return 1;
}
