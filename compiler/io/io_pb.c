/* io_pb.c - single ONNX TensorProto files (.pb), as the ONNX backend test data
 * directories hold them (test_data_set_0/input_0.pb). */
#include "io/io.h"
#include "onnx.pb-c.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void *read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) fm_fail("cannot open '%s': %s", path, strerror(errno));
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  void *buf = len >= 0 ? malloc((size_t)len + 1) : NULL;
  size_t got = buf ? fread(buf, 1, (size_t)len, f) : 0;
  fclose(f);
  if (!buf || got != (size_t)len) {
    free(buf);
    fm_fail("cannot read '%s'", path);
  }
  *n = (size_t)len;
  return buf;
}

void fm_pb_read(const char *path, FmArray *a) {
  memset(a, 0, sizeof *a);
  size_t n;
  void *buf = read_file(path, &n);
  FmTry t;
  FM_TRY(&t) {
    fm_pb_read_mem(buf, n, path, a);
    fm_try_pop(&t);
  } else {
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", fm_errmsg());
    free(buf);
    fm_fail("%s", msg);
  }
  free(buf);
}

/* Values the typed field for dtype holds (onnx.proto: how each type is packed). */
static size_t typed_count(const Onnx__TensorProto *tp, int dtype) {
  switch (dtype) {
  case FM_F32: return tp->n_float_data;
  case FM_F64: return tp->n_double_data;
  case FM_I64: return tp->n_int64_data;
  case FM_U32: case FM_U64: return tp->n_uint64_data;
  default: return tp->n_int32_data; /* int32, int16, int8, uint16, uint8, bool, float16 */
  }
}

void fm_pb_read_mem(const void *buf, size_t n, const char *path, FmArray *a) {
  memset(a, 0, sizeof *a);
  Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, n, buf);
  if (!tp) fm_fail("'%s' is not an ONNX TensorProto file (protobuf parse failed)", path);
  char err[300] = "", shape[200];
  a->dtype = tp->data_type;
  size_t es = fm_dtype_size(a->dtype);
  if (!es || a->dtype == FM_STRING)
    snprintf(err, sizeof err, "unsupported data type %d", (int)tp->data_type);
  else if (tp->n_dims > FM_MAXRANK)
    snprintf(err, sizeof err, "rank %zu exceeds %d", tp->n_dims, FM_MAXRANK);
  else if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
    snprintf(err, sizeof err, "external data is not supported in input files");
  if (!err[0]) {
    a->rank = (int)tp->n_dims;
    for (int i = 0; i < a->rank; i++) {
      a->dims[i] = tp->dims[i];
      if (tp->dims[i] < 0) snprintf(err, sizeof err, "negative dim %lld", (long long)tp->dims[i]);
    }
  }
  if (!err[0] && !fm_array_nbytes(a, &a->nbytes))
    snprintf(err, sizeof err, "shape (%s) is too large (more than 2^40 bytes)",
             fm_dims_str(shape, sizeof shape, a->rank, a->dims, NULL));
  size_t numel = err[0] ? 0 : a->nbytes / es;
  /* the data the message holds, compared with the shape before anything is allocated */
  size_t have = err[0] ? 0 : tp->has_raw_data ? tp->raw_data.len / es : typed_count(tp, a->dtype);
  if (!err[0] && (have != numel || (tp->has_raw_data && tp->raw_data.len != a->nbytes)))
    snprintf(err, sizeof err, "holds %zu values, its shape (%s) needs %zu", have,
             fm_dims_str(shape, sizeof shape, a->rank, a->dims, NULL), numel);
  if (!err[0]) {
    a->data = calloc(1, a->nbytes ? a->nbytes : 1);
    if (tp->name && *tp->name) a->name = strdup(tp->name);
    if (!a->data) snprintf(err, sizeof err, "out of memory (%zu bytes)", a->nbytes);
  }
  if (!err[0]) {
    if (tp->has_raw_data) {
      if (a->nbytes) memcpy(a->data, tp->raw_data.data, a->nbytes);
    } else {
      switch (a->dtype) {
      case FM_F32: if (numel) memcpy(a->data, tp->float_data, a->nbytes); break;
      case FM_F64: if (numel) memcpy(a->data, tp->double_data, a->nbytes); break;
      case FM_I64: if (numel) memcpy(a->data, tp->int64_data, a->nbytes); break;
      case FM_U32: case FM_U64:
        for (size_t i = 0; i < numel; i++) {
          if (a->dtype == FM_U64) ((uint64_t *)a->data)[i] = tp->uint64_data[i];
          else ((uint32_t *)a->data)[i] = (uint32_t)tp->uint64_data[i];
        }
        break;
      default:
        for (size_t i = 0; i < numel; i++) {
          int32_t v = tp->int32_data[i];
          switch (es) {
          case 4: ((int32_t *)a->data)[i] = v; break;
          case 2: ((uint16_t *)a->data)[i] = (uint16_t)v; break;
          default: ((uint8_t *)a->data)[i] = (uint8_t)v; break;
          }
        }
      }
    }
  }
  onnx__tensor_proto__free_unpacked(tp, NULL);
  if (err[0]) {
    fm_array_free(a);
    fm_fail("'%s': %s", path, err);
  }
}

void fm_pb_write(const char *path, const FmArray *a, const char *name) {
  Onnx__TensorProto tp = ONNX__TENSOR_PROTO__INIT;
  tp.name = (char *)(name ? name : "");
  tp.has_data_type = 1;
  tp.data_type = a->dtype;
  tp.n_dims = (size_t)a->rank;
  tp.dims = (int64_t *)a->dims;
  tp.has_raw_data = 1;
  tp.raw_data.len = a->nbytes;
  tp.raw_data.data = a->data;
  size_t n = onnx__tensor_proto__get_packed_size(&tp);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) fm_fail("out of memory writing '%s'", path);
  onnx__tensor_proto__pack(&tp, buf);
  FILE *f = fopen(path, "wb");
  if (!f) {
    free(buf);
    fm_fail("cannot write '%s': %s", path, strerror(errno));
  }
  fm_cleanup_add(path);
  size_t put = fwrite(buf, 1, n, f);
  free(buf);
  if (put != n || fclose(f) != 0) fm_fail("cannot write '%s': %s", path, strerror(errno));
}
