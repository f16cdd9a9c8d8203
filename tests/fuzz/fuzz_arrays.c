/* fuzz_arrays.c - libFuzzer target for the array readers of compiler/io: .npy through
 * a memory FILE (fmemopen) and ONNX TensorProto .pb from memory, chosen by the first
 * byte ('N' or anything else: both). Any input must read or fail through fm_fail naming
 * the file; a read array must hold exactly the bytes its shape needs.
 * Seeds: tests/fuzz/corpus/arrays (hostile and good .npy/.pb files).
 */
#include "io/io.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check(const FmArray *a) {
  size_t nb;
  if (!fm_array_nbytes(a, &nb) || nb != a->nbytes || !a->data) {
    fprintf(stderr, "fuzz_arrays: an array of %zu bytes read for its shape\n", a->nbytes);
    __builtin_trap();
  }
}

static void npy(const uint8_t *data, size_t size) {
  FILE *f = size ? fmemopen((void *)data, size, "rb") : NULL;
  if (!f) return;
  FmArray a;
  FmTry t;
  FM_TRY(&t) {
    fm_npy_read_file(f, "fuzz.npy", &a);
    fm_try_pop(&t);
    check(&a);
    fm_array_free(&a);
  }
}

static void pb(const uint8_t *data, size_t size) {
  FmArray a;
  FmTry t;
  FM_TRY(&t) {
    fm_pb_read_mem(data, size, "fuzz.pb", &a);
    fm_try_pop(&t);
    check(&a);
    fm_array_free(&a);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  npy(data, size);
  if (!size || data[0] != 0x93) pb(data, size); /* .npy files start with 0x93 */
  return 0;
}
