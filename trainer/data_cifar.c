/* data_cifar.c - the CIFAR-10 and CIFAR-100 binary formats.
 *
 * A file is a run of fixed-size records with no header:
 *   CIFAR-10   <label> <3072 pixels>              (data_batch_1..5.bin, test_batch.bin)
 *   CIFAR-100  <coarse> <fine> <3072 pixels>      (train.bin, test.bin)
 * The pixels are 1024 red, 1024 green, 1024 blue bytes, each 32x32 row-major:
 * one record's image is already (C,H,W). */
#include <stdlib.h>
#include <string.h>
#include "data_internal.h"

#define CIFAR_PIXELS (3 * 32 * 32)

/* Records carry nlab label bytes; label j must be < limit[j]; label `pick` is kept. */
static int load_cifar(FmDataset *ds, const char *name, const char *const *paths, int npaths,
                      int nlab, int pick, const int *limit, char *err, size_t errlen) {
  memset(ds, 0, sizeof *ds);
  if (npaths <= 0) return fm_data_fail_(err, errlen, "%s: no files given", name);
  size_t rec = (size_t)nlab + CIFAR_PIXELS;
  uint8_t **buf = calloc((size_t)npaths, sizeof *buf);
  size_t *len = calloc((size_t)npaths, sizeof *len);
  int rc = -1;
  if (!buf || !len) {
    fm_data_fail_(err, errlen, "%s: out of memory", name);
    goto done;
  }
  /* read and check every file before allocating the data set */
  size_t n = 0;
  for (int f = 0; f < npaths; f++) {
    if (fm_data_read_file_(paths[f], &buf[f], &len[f], err, errlen)) goto done;
    if (len[f] == 0 || len[f] % rec) {
      fm_data_fail_(err, errlen, "%s: %zu bytes is not a whole number of %zu-byte %s records (truncated?)",
                    paths[f], len[f], rec, name);
      goto done;
    }
    for (size_t r = 0; r < len[f] / rec; r++)
      for (int j = 0; j < nlab; j++)
        if (buf[f][r * rec + j] >= limit[j]) {
          fm_data_fail_(err, errlen, "%s: record %zu has %slabel %d, out of range [0, %d)",
                        paths[f], r, nlab == 1 ? "" : j == 0 ? "coarse " : "fine ",
                        buf[f][r * rec + j], limit[j]);
          goto done;
        }
    n += len[f] / rec;
    if (n > (1u << 30)) {
      fm_data_fail_(err, errlen, "%s: too many records", paths[f]);
      goto done;
    }
  }
  if (fm_data_alloc_(ds, name, (int)n, 3, 32, 32, limit[pick], err, errlen)) goto done;
  size_t i = 0;
  for (int f = 0; f < npaths; f++)
    for (size_t r = 0; r < len[f] / rec; r++, i++) {
      const uint8_t *p = buf[f] + r * rec;
      ds->labels[i] = p[pick];
      memcpy(ds->pixels + i * CIFAR_PIXELS, p + nlab, CIFAR_PIXELS);
    }
  rc = 0;
done:
  if (buf)
    for (int f = 0; f < npaths; f++) free(buf[f]);
  free(buf);
  free(len);
  return rc;
}

int fm_data_load_cifar10(FmDataset *ds, const char *const *paths, int npaths,
                         char *err, size_t errlen) {
  static const int limit[1] = {10};
  return load_cifar(ds, "cifar10", paths, npaths, 1, 0, limit, err, errlen);
}

int fm_data_load_cifar100(FmDataset *ds, const char *const *paths, int npaths, int coarse,
                          char *err, size_t errlen) {
  static const int limit[2] = {20, 100};
  return load_cifar(ds, coarse ? "cifar100-coarse" : "cifar100", paths, npaths, 2, coarse ? 0 : 1,
                    limit, err, errlen);
}
