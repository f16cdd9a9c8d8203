/* data.c - data sets: the fm_data_load dispatcher, file reading, synthetic data,
 * statistics. The format readers live in data_idx.c and data_cifar.c. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "data_internal.h"

int fm_data_fail_(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

int fm_data_read_file_(const char *path, uint8_t **data, size_t *len, char *err, size_t errlen) {
  *data = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return fm_data_fail_(err, errlen, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return fm_data_fail_(err, errlen, "%s: not a regular file", path);
  }
  size_t n = (size_t)st.st_size;
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) {
    fclose(f);
    return fm_data_fail_(err, errlen, "%s: out of memory reading %zu bytes", path, n);
  }
  size_t got = fread(buf, 1, n, f);
  int ioerr = ferror(f);
  fclose(f);
  if (got != n || ioerr) {
    free(buf);
    return fm_data_fail_(err, errlen, "%s: read error", path);
  }
  if (n >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) {
    uint8_t *raw;
    size_t rawlen;
    const char *why;
    int rc = fm_gunzip_(buf, n, &raw, &rawlen, &why);
    free(buf);
    if (rc) return fm_data_fail_(err, errlen, "%s: %s", path, why);
    buf = raw;
    n = rawlen;
  }
  *data = buf;
  *len = n;
  return 0;
}

int fm_data_alloc_(FmDataset *ds, const char *name, int n, int c, int h, int w, int classes,
                   char *err, size_t errlen) {
  memset(ds, 0, sizeof *ds);
  snprintf(ds->name, sizeof ds->name, "%s", name);
  size_t npix = (size_t)n * c * h * w;
  ds->pixels = malloc(npix ? npix : 1);
  ds->labels = malloc(n ? (size_t)n * sizeof *ds->labels : 1);
  if (!ds->pixels || !ds->labels) {
    fm_data_free(ds);
    return fm_data_fail_(err, errlen, "%s: out of memory for %d images of %dx%dx%d", name, n, c, h, w);
  }
  ds->n = n;
  ds->c = c;
  ds->h = h;
  ds->w = w;
  ds->classes = classes;
  return 0;
}

void fm_data_free(FmDataset *ds) {
  free(ds->pixels);
  free(ds->labels);
  memset(ds, 0, sizeof *ds);
}

int fm_data_check_split(const FmDataset *train, const FmDataset *test, char *err, size_t errlen) {
  if (train->c != test->c || train->h != test->h || train->w != test->w)
    return fm_data_fail_(err, errlen, "%s: the training images are %dx%dx%d, the test images %dx%dx%d", train->name,
                         train->c, train->h, train->w, test->c, test->h, test->w);
  if (train->classes != test->classes)
    return fm_data_fail_(err, errlen, "%s: the training split has %d classes, the test split %d", train->name,
                         train->classes, test->classes);
  for (int i = 0; i < test->n; i++)
    if (test->labels[i] < 0 || test->labels[i] >= train->classes)
      return fm_data_fail_(err, errlen, "%s: test label %d of image %d is outside [0, %d)", test->name,
                           (int)test->labels[i], i, train->classes);
  return 0;
}

void fm_data_take(FmDataset *ds, int k) {
  if (k >= 0 && k < ds->n) ds->n = k;
}

void fm_data_image_float(const FmDataset *ds, int i, float *out) {
  size_t chw = (size_t)ds->c * ds->h * ds->w;
  const uint8_t *p = ds->pixels + (size_t)i * chw;
  for (size_t j = 0; j < chw; j++) out[j] = p[j] * (1.0f / 255.0f);
}

void fm_data_mean_std(const FmDataset *ds, float *mean, float *std) {
  size_t hw = (size_t)ds->h * ds->w;
  for (int c = 0; c < ds->c; c++) {
    uint64_t sum = 0, sumsq = 0;  /* exact in integers: 255^2 * 2^40 fits */
    for (int i = 0; i < ds->n; i++) {
      const uint8_t *p = ds->pixels + ((size_t)i * ds->c + c) * hw;
      for (size_t j = 0; j < hw; j++) {
        sum += p[j];
        sumsq += (uint64_t)p[j] * p[j];
      }
    }
    double cnt = (double)ds->n * (double)hw;
    double m = cnt > 0 ? (double)sum / cnt : 0, var = cnt > 0 ? (double)sumsq / cnt - m * m : 0;
    mean[c] = (float)(m / 255.0);
    std[c] = (float)(sqrt(var > 0 ? var : 0) / 255.0);
  }
}

void fm_data_class_counts(const FmDataset *ds, int *counts) {
  memset(counts, 0, (size_t)ds->classes * sizeof *counts);
  for (int i = 0; i < ds->n; i++) counts[ds->labels[i]]++;
}

int fm_data_synthetic(FmDataset *ds, int n, int c, int h, int w, int classes, uint64_t seed,
                      char *err, size_t errlen) {
  memset(ds, 0, sizeof *ds);
  if (n <= 0 || c <= 0 || h <= 0 || w <= 0 || classes < 2 || classes > 1000 ||
      (size_t)c * h * w > (1u << 24))
    return fm_data_fail_(err, errlen, "synthetic: bad shape n=%d %dx%dx%d with %d classes",
                         n, c, h, w, classes);
  if (fm_data_alloc_(ds, "synthetic", n, c, h, w, classes, err, errlen)) return -1;
  size_t d = (size_t)c * h * w;
  float *proj = malloc((size_t)classes * d * sizeof *proj);
  if (!proj) {
    fm_data_free(ds);
    return fm_data_fail_(err, errlen, "synthetic: out of memory");
  }
  /* the projection depends on the shape only, so train and test share it */
  uint64_t ps = fm_mix64_(0x5eed0f5eedull ^ (uint64_t)c << 48 ^ (uint64_t)h << 32 ^
                          (uint64_t)w << 16 ^ (uint64_t)classes);
  for (size_t j = 0; j < (size_t)classes * d; j++)
    proj[j] = (float)((double)(fm_rng_next_(&ps) >> 11) * 0x1.0p-53 - 0.5);
  uint64_t s = fm_mix64_(seed ^ 0xda7a5e7ull);
  for (int i = 0; i < n; i++) {
    uint8_t *x = ds->pixels + (size_t)i * d;
    for (size_t j = 0; j < d; j++) x[j] = (uint8_t)fm_rng_below_(&s, 256);
    int best = 0;
    double bestv = 0;
    for (int k = 0; k < classes; k++) {
      double v = 0;
      for (size_t j = 0; j < d; j++) v += proj[k * d + j] * (x[j] - 127.5);
      if (k == 0 || v > bestv) { best = k; bestv = v; }
    }
    ds->labels[i] = best;
  }
  free(proj);
  return 0;
}

/* "synthetic[:CxHxW[:K]]" */
static int load_synthetic(FmDataset *ds, const char *name, int train, char *err, size_t errlen) {
  int c = 1, h = 28, w = 28, k = 10;
  const char *spec = name + strlen("synthetic");
  if (*spec) {
    char tail;
    int got = sscanf(spec, ":%dx%dx%d:%d%c", &c, &h, &w, &k, &tail);
    if (got != 3 && got != 4)
      return fm_data_fail_(err, errlen, "%s: expected synthetic[:CxHxW[:CLASSES]], e.g. synthetic:3x32x32:10", name);
  }
  return fm_data_synthetic(ds, train ? 4096 : 1024, c, h, w, k, train ? 1 : 2, err, errlen);
}

static int is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* dir/base, or dir/base.gz when only that exists. */
static int find_idx(char *path, size_t len, const char *dir, const char *base, char *err, size_t errlen) {
  snprintf(path, len, "%s/%s", dir, base);
  if (is_file(path)) return 0;
  snprintf(path, len, "%s/%s.gz", dir, base);
  if (is_file(path)) return 0;
  return fm_data_fail_(err, errlen, "%s/%s: missing (nor is there %s/%s.gz)", dir, base, dir, base);
}

int fm_data_load(FmDataset *ds, const char *name, const char *dir, int train,
                 char *err, size_t errlen) {
  memset(ds, 0, sizeof *ds);
  if (!name) return fm_data_fail_(err, errlen, "no data set named");
  if (strncmp(name, "synthetic", 9) == 0 && (name[9] == 0 || name[9] == ':'))
    return load_synthetic(ds, name, train, err, errlen);

  int idx = !strcmp(name, "fashion-mnist") || !strcmp(name, "mnist");
  int c10 = !strcmp(name, "cifar10");
  int c100 = !strcmp(name, "cifar100") || !strcmp(name, "cifar100-coarse");
  if (!idx && !c10 && !c100)
    return fm_data_fail_(err, errlen, "%s: unknown data set (fashion-mnist, mnist, cifar10, "
                         "cifar100, cifar100-coarse, synthetic[:CxHxW[:K]])", name);
  int dflt = !dir && !strcmp(name, "fashion-mnist");
  if (dflt) dir = FM_DATA_FASHION_MNIST_DIR;
  if (!dir) return fm_data_fail_(err, errlen, "%s: no data directory given (--data-dir DIR)", name);
  if (!is_dir(dir))
    return fm_data_fail_(err, errlen, "%s: no such directory (data set %s%s)", dir, name,
                         dflt ? "; install the Debian package dataset-fashion-mnist or give --data-dir" : "");

  char p[2][4096];
  int rc;
  if (idx) {
    const char *split = train ? "train" : "t10k";
    char base[64];
    snprintf(base, sizeof base, "%s-images-idx3-ubyte", split);
    if (find_idx(p[0], sizeof p[0], dir, base, err, errlen)) return -1;
    snprintf(base, sizeof base, "%s-labels-idx1-ubyte", split);
    if (find_idx(p[1], sizeof p[1], dir, base, err, errlen)) return -1;
    rc = fm_data_load_idx(ds, p[0], p[1], 10, err, errlen);
  } else if (c10) {
    char buf[5][4096];
    const char *paths[5];
    int np = train ? 5 : 1;
    for (int i = 0; i < np; i++) {
      if (train) snprintf(buf[i], sizeof buf[i], "%s/data_batch_%d.bin", dir, i + 1);
      else snprintf(buf[i], sizeof buf[i], "%s/test_batch.bin", dir);
      paths[i] = buf[i];
    }
    rc = fm_data_load_cifar10(ds, paths, np, err, errlen);
  } else {
    snprintf(p[0], sizeof p[0], "%s/%s", dir, train ? "train.bin" : "test.bin");
    const char *paths[1] = {p[0]};
    rc = fm_data_load_cifar100(ds, paths, 1, !strcmp(name, "cifar100-coarse"), err, errlen);
  }
  if (rc == 0) snprintf(ds->name, sizeof ds->name, "%s", name);
  return rc;
}
