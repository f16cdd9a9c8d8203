/* e2echeck.h - the helper modes the method tests (test_methods, test_sp, test_winograd,
 * test_shift) share for their tests/e2e scripts: float32 .npy in and out (compiler/io),
 * argmax, `--compare REF GOT TOL`, and one e2e case (train a net a few steps on synthetic
 * data, write DIR/<case>.onnx, _in.npy, _ref.npy (the trainer's eval forward), list it).
 *
 *   if (argc == 5 && !strcmp(argv[1], "--compare")) return ec_compare(argv[2], argv[3], atof(argv[4]));
 *   rc |= ec_e2e_case(dir, "name", net, c, hw, classes, (EcTrain){128, 16, 8, 0, FM_OPT_SGD, 0.05f});
 */
#ifndef FM_E2ECHECK_H
#define FM_E2ECHECK_H
#include "data.h"
#include "export.h"
#include "io/io.h"
#include "net.h"
#include "optim.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// x as a float32 .npy of shape dims[0..rank); 0 or -1 (the reason on stderr)
static int ec_write_npy(const char *path, const float *x, int rank, const int *dims) {
  FmArray a;
  memset(&a, 0, sizeof a);
  a.dtype = FM_F32, a.rank = rank, a.data = (void *)(uintptr_t)x;
  size_t count = 1;
  for (int i = 0; i < rank; i++) a.dims[i] = dims[i], count *= (size_t)dims[i];
  a.nbytes = count * sizeof(float);
  FmTry t;
  FM_TRY(&t) {
    fm_npy_write(path, &a);
    fm_try_pop(&t);
  } else {
    fprintf(stderr, "%s\n", fm_errmsg());
    return -1;
  }
  fm_cleanup_forget(path);   // complete: not a partial output any more
  return 0;
}

// a float32 .npy as rows x cols (the last dim is cols); malloc'ed, NULL (the reason on stderr)
static float *ec_read_npy(const char *path, int *rows, int *cols) {
  FmArray a;
  memset(&a, 0, sizeof a);
  FmTry t;
  FM_TRY(&t) {
    fm_npy_read(path, &a);
    fm_try_pop(&t);
  } else {
    fprintf(stderr, "%s\n", fm_errmsg());
    return NULL;
  }
  if (a.dtype != FM_F32) {
    fprintf(stderr, "%s: not float32\n", path);
    fm_array_free(&a);
    return NULL;
  }
  int64_t total = fm_array_numel(&a);
  *cols = a.rank ? (int)a.dims[a.rank - 1] : 1;
  *rows = (int)(total / (*cols ? *cols : 1));
  float *x = a.data ? a.data : malloc(sizeof(float));
  a.data = NULL;
  fm_array_free(&a);
  return x;
}

static int ec_argmax(const float *r, int k) {
  int b = 0;
  for (int i = 1; i < k; i++) if (r[i] > r[b]) b = i;
  return b;
}

// --compare REF GOT TOL: max |REF - GOT| <= TOL and the same argmax per row; 0 or 1.
// TOL < 0: relative to the outputs' scale, max |REF - GOT| <= |TOL| * max(1, max |REF|).
static int ec_compare(const char *ref, const char *got, double tol) {
  int r1, c1, r2, c2;
  float *a = ec_read_npy(ref, &r1, &c1), *b = ec_read_npy(got, &r2, &c2);
  if (!a || !b || r1 != r2 || c1 != c2) {
    printf("compare: cannot read or shapes differ (%s, %s)\n", ref, got);
    free(a), free(b);
    return 1;
  }
  double md = 0;
  int diff_arg = 0;
  for (int i = 0; i < r1; i++) {
    for (int j = 0; j < c1; j++) md = fmax(md, fabs((double)a[i * c1 + j] - b[i * c1 + j]));
    diff_arg += ec_argmax(a + i * c1, c1) != ec_argmax(b + i * c1, c1);
  }
  if (tol < 0) {
    double big = 1;
    for (int i = 0; i < r1 * c1; i++) big = fmax(big, fabs((double)a[i]));
    tol = -tol * big;
  }
  int nbig = 0;
  for (int i = 0; i < r1 * c1; i++) nbig += fabs((double)a[i] - b[i]) > 1e-4;
  printf("max abs diff %.3g (tolerance %.3g) over %dx%d, %d above 1e-4, %d argmax differ\n", md, tol, r1, c1,
         nbig, diff_arg);
  free(a), free(b);
  return md <= tol && !diff_arg ? 0 : 1;
}

// how an e2e case trains: `samples` synthetic images (seed 5), `steps` steps of `batch`
// (momentum 0.9 for SGD), then `settle` train-mode forwards (BN running statistics)
typedef struct EcTrain {
  int samples, batch, steps, settle;
  FmOptimKind opt;
  float lr;
} EcTrain;

// trains net (taken: freed here; NULL fails), writes DIR/NAME.onnx, NAME_in.npy (16 inputs)
// and NAME_ref.npy (the trainer's eval forward on them); prints NAME when all went well
static int ec_e2e_case(const char *dir, const char *name, FmNet *net, int c, int hw, int classes, EcTrain t) {
  if (!net) return 1;
  FmDataset tr;
  char err[512], path[1024];
  if (fm_data_synthetic(&tr, t.samples, c, hw, hw, classes, 5, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    fm_net_free(net);
    return 1;
  }
  size_t d = (size_t)c * hw * hw;
  const int batch = t.batch, n = 16;
  float *x = malloc(sizeof(float) * d * tr.n);
  int *y = malloc(sizeof(int) * tr.n);
  for (int i = 0; i < tr.n; i++) fm_data_image_float(&tr, i, x + i * d), y[i] = tr.labels[i];
  FmOptimConfig cfg;
  fm_optim_defaults(&cfg, t.opt);
  cfg.lr = t.lr, cfg.momentum = t.opt == FM_OPT_SGD ? 0.9f : 0;
  FmOptim *opt = fm_net_optim_new(net, &cfg);
  for (int s = 0; s < t.steps; s++) {
    int o = (s * batch) % (tr.n - batch + 1);
    fm_net_zero_grad(net);
    fm_net_forward(net, x + o * d, batch, 1);
    fm_net_loss(net, y + o, batch, NULL);
    fm_net_backward(net);
    fm_net_step(net, opt, cfg.lr);
  }
  for (int s = 0; s < t.settle; s++) fm_net_forward(net, x + (s % 4) * batch * d, batch, 1);
  const float *out = fm_net_forward(net, x, n, 0);
  int rc = 0;
  snprintf(path, sizeof path, "%s/%s_in.npy", dir, name);
  rc |= ec_write_npy(path, x, 4, (int[]){n, c, hw, hw});
  snprintf(path, sizeof path, "%s/%s_ref.npy", dir, name);
  rc |= ec_write_npy(path, out, 2, (int[]){n, classes});
  snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
  if (fm_export_onnx(net, path, err, sizeof err)) fprintf(stderr, "%s: %s\n", name, err), rc = 1;
  if (!rc) printf("%s\n", name);
  fm_optim_free(opt);
  fm_net_free(net);
  fm_data_free(&tr);
  free(x), free(y);
  return rc;
}

#endif
