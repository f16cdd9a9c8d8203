/* data_idx.c - the IDX format of MNIST and Fashion-MNIST.
 *
 * A file is a big-endian magic 0x0000TTRR (TT = element type, 0x08 = uint8;
 * RR = rank), RR big-endian uint32 dimensions, then the elements row-major.
 * Images are rank 3 (n, h, w); labels are rank 1 (n). */
#include <stdlib.h>
#include <string.h>
#include "data_internal.h"

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Checks the header and size of one uint8 IDX file of the given rank. */
static int idx_check(const char *path, const uint8_t *d, size_t len, int rank, int *dims,
                     char *err, size_t errlen) {
  const char *what = rank == 3 ? "images" : "labels";
  uint32_t want = 0x0800u | (uint32_t)rank;
  if (len < 4)
    return fm_data_fail_(err, errlen, "%s: truncated: %zu bytes, too short for an IDX header", path, len);
  uint32_t magic = be32(d);
  if (magic != want)
    return fm_data_fail_(err, errlen, "%s: bad magic 0x%08x, expected 0x%08x (IDX uint8 %s of rank %d)",
                         path, magic, want, what, rank);
  size_t hdr = 4 + 4 * (size_t)rank;
  if (len < hdr)
    return fm_data_fail_(err, errlen, "%s: truncated: %zu bytes, the IDX header needs %zu", path, len, hdr);
  size_t elems = 1;
  for (int i = 0; i < rank; i++) {
    uint32_t v = be32(d + 4 + 4 * i);
    if (v == 0 || v > (1u << 30) || elems > ((size_t)1 << 40) / v)
      return fm_data_fail_(err, errlen, "%s: bad IDX dimension %d: %u", path, i, v);
    dims[i] = (int)v;
    elems *= v;
  }
  size_t want_len = hdr + elems;
  if (len < want_len)
    return fm_data_fail_(err, errlen, "%s: truncated: expected %zu bytes, got %zu", path, want_len, len);
  if (len > want_len)
    return fm_data_fail_(err, errlen, "%s: %zu bytes after the last of the %zu the header announces",
                         path, len - want_len, want_len);
  return 0;
}

int fm_data_load_idx(FmDataset *ds, const char *images_path, const char *labels_path,
                     int classes, char *err, size_t errlen) {
  memset(ds, 0, sizeof *ds);
  uint8_t *img = NULL, *lab = NULL;
  size_t ilen, llen;
  int idims[3], ldims[1], rc = -1;
  if (fm_data_read_file_(images_path, &img, &ilen, err, errlen) ||
      idx_check(images_path, img, ilen, 3, idims, err, errlen) ||
      fm_data_read_file_(labels_path, &lab, &llen, err, errlen) ||
      idx_check(labels_path, lab, llen, 1, ldims, err, errlen))
    goto done;
  if (idims[0] != ldims[0]) {
    fm_data_fail_(err, errlen, "%s: %d labels, but %s has %d images", labels_path, ldims[0],
                  images_path, idims[0]);
    goto done;
  }
  const uint8_t *lp = lab + 8;
  for (int i = 0; i < ldims[0]; i++)
    if (lp[i] >= classes) {
      fm_data_fail_(err, errlen, "%s: label %d of sample %d is out of range [0, %d)",
                    labels_path, lp[i], i, classes);
      goto done;
    }
  if (fm_data_alloc_(ds, "idx", idims[0], 1, idims[1], idims[2], classes, err, errlen)) goto done;
  memcpy(ds->pixels, img + 16, (size_t)idims[0] * idims[1] * idims[2]);
  for (int i = 0; i < ds->n; i++) ds->labels[i] = lp[i];
  rc = 0;
done:
  free(img);
  free(lab);
  return rc;
}
