/* tensor_file.c - single TensorProto files (.pb), as the ONNX backend tests ship
 * their inputs and expected outputs. */
#include "onnx/onnx_internal.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

Tensor *fm_onnx_read_tensor(Graph *g, const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) fm_fail("cannot open '%s': %s", path, strerror(errno));
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
  size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
  fclose(f);
  if (!buf || n < 0 || got != (size_t)n) {
    free(buf);
    fm_fail("cannot read '%s'", path);
  }
  Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, (size_t)n, buf);
  free(buf);
  if (!tp) fm_fail("'%s' is not a valid ONNX TensorProto file (protobuf parse failed)", path);
  Ld L = {0};
  L.g = g;
  L.file = path;
  Tensor *t = fm_tensor_new(g, NULL);
  FmTry tr;
  FM_TRY(&tr) {
    ld_tensor(&L, tp, t, path);
    fm_try_pop(&tr);
  } else {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", fm_errmsg());
    onnx__tensor_proto__free_unpacked(tp, NULL);
    fm_fail("%s", msg);
  }
  onnx__tensor_proto__free_unpacked(tp, NULL);
  return t;
}
