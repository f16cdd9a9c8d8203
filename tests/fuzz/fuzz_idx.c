/* fuzz_idx.c - libFuzzer target for the trainer's data readers: the gzip decoder
 * (trainer/data_gzip.c) on the input itself, and the IDX reader (trainer/data_idx.c,
 * which gunzips files starting 1f 8b) on an images/labels pair cut from the input:
 * bytes 0-3 (little-endian, modulo the rest's length) say where the labels begin.
 * The pair is written to two temporary files, as fm_data_load_idx reads paths.
 * Any input must load or fail with a message; never crash, leak or overread.
 * Seeds: tests/fuzz/corpus/idx (tiny IDX pairs, plain and gzipped).
 */
#include "data.h"
#include "data_internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64], img_path[96], lab_path[96];

static void cleanup(void) {
  unlink(img_path), unlink(lab_path), rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/fm_fuzz_idx_XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
  if (!mkdtemp(dir)) abort();
  snprintf(img_path, sizeof img_path, "%s/images", dir);
  snprintf(lab_path, sizeof lab_path, "%s/labels", dir);
  atexit(cleanup);
  return 0;
}

static void put(const char *path, const uint8_t *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *out = NULL;
  size_t outlen = 0;
  const char *why = NULL;
  if (fm_gunzip_(data, size, &out, &outlen, &why) == 0) free(out);
  else if (!why) __builtin_trap(); /* a failure always says why */

  if (size < 4) return 0;
  uint32_t cut = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24;
  const uint8_t *rest = data + 4;
  size_t n = size - 4, k = n ? cut % (n + 1) : 0;
  put(img_path, rest, k);
  put(lab_path, rest + k, n - k);
  FmDataset ds;
  char err[512] = "";
  if (fm_data_load_idx(&ds, img_path, lab_path, 10, err, sizeof err) == 0) {
    if (ds.n < 1 || !ds.pixels || !ds.labels) __builtin_trap();
    for (int i = 0; i < ds.n; i++)
      if (ds.labels[i] >= 10) __builtin_trap();
    fm_data_free(&ds);
  } else if (!err[0]) {
    __builtin_trap();
  }
  return 0;
}
