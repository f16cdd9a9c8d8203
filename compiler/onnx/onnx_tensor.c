/* onnx_tensor.c - TensorProto contents in every storage form ONNX allows (typed
 * fields, raw little-endian bytes, external files) and Constant nodes, each size
 * checked against the shape before anything is allocated. */
#include "onnx/onnx_internal.h"
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "raw_data is little endian; so must the host be");

#define MAX_BYTES FM_MAX_TENSOR_BYTES

static const char *shape_str(Ld *L, const Tensor *t) {
  return fm_sprintf(&L->g->arena, "%s %s", fm_dtype_name(t->dtype), fm_shape_str(&L->g->arena, t));
}

/* Reads `nbytes` of external data into t->data, refusing paths outside the model's directory. */
static void external(Ld *L, const Onnx__TensorProto *tp, Tensor *t, size_t nbytes, const char *what) {
  if (!L->dir) fm_fail("%s: external data is not allowed here", what);
  const char *loc = NULL, *off = NULL, *len = NULL;
  for (size_t i = 0; i < tp->n_external_data; i++) {
    const char *k = S(tp->external_data[i]->key), *v = S(tp->external_data[i]->value);
    if (!strcmp(k, "location")) loc = v;
    else if (!strcmp(k, "offset")) off = v;
    else if (!strcmp(k, "length")) len = v;
  }
  if (!loc || !*loc) fm_fail("%s: external data without a location", what);
  if (loc[0] == '/') fm_fail("%s: external data path '%s' must be relative to the model", what, loc);
  for (const char *p = loc; *p;) {
    size_t seg = strcspn(p, "/");
    if (seg == 2 && p[0] == '.' && p[1] == '.')
      fm_fail("%s: external data path '%s' leaves the model's directory", what, loc);
    p += seg + (p[seg] == '/');
  }
  int64_t o[2] = {0, (int64_t)nbytes};
  const char *v[2] = {off, len};
  for (int i = 0; i < 2; i++) {
    if (!v[i]) continue;
    char *end;
    errno = 0;
    long long x = strtoll(v[i], &end, 10);
    if (errno || end == v[i] || *end || x < 0)
      fm_fail("%s: bad external data %s '%s'", what, i ? "length" : "offset", v[i]);
    o[i] = x;
  }
  if (o[1] != (int64_t)nbytes)
    fm_fail("%s: external data length %lld, but %s needs %zu bytes", what, (long long)o[1], shape_str(L, t), nbytes);

  Arena *a = &L->g->arena;
  const char *path = fm_sprintf(a, "%s/%s", L->dir, loc);
  /* a symlink may still lead out: compare the resolved paths */
  char *rpath = realpath(path, NULL);
  int e = errno;
  if (!rpath) fm_fail("%s: cannot open external data '%s': %s", what, path, strerror(e));
  char *rdir = realpath(L->dir, NULL);
  size_t dl = rdir ? strlen(rdir) : 0;
  int inside = rdir && !strncmp(rpath, rdir, dl) && (rpath[dl] == '/' || !strcmp(rdir, "/"));
  free(rdir), free(rpath);
  if (!inside) fm_fail("%s: external data path '%s' leaves the model's directory", what, loc);
  int fd = open(path, O_RDONLY);
  if (fd < 0) fm_fail("%s: cannot open external data '%s': %s", what, path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    fm_fail("%s: external data '%s' is not a regular file", what, path);
  }
  if (o[0] > st.st_size || (int64_t)nbytes > st.st_size - o[0]) {
    close(fd);
    fm_fail("%s: external data '%s' has %lld bytes, too few for %zu bytes at offset %lld", what, path,
            (long long)st.st_size, nbytes, (long long)o[0]);
  }
  t->data = fm_alloc(a, nbytes ? nbytes : 1);
  for (size_t done = 0; done < nbytes;) {
    ssize_t r = pread(fd, (char *)t->data + done, nbytes - done, (off_t)(o[0] + (int64_t)done));
    if (r <= 0) {
      int err = r < 0 ? errno : EIO;
      close(fd);
      fm_fail("%s: cannot read external data '%s': %s", what, path, strerror(err));
    }
    done += (size_t)r;
  }
  close(fd);
}

/* Typed storage: int32_data carries every type of 16 bits or fewer (float16 as its bits). */
static void typed(Ld *L, const Onnx__TensorProto *tp, Tensor *t, size_t n, const char *what) {
  size_t have = 0;
  switch (t->dtype) {
  case FM_F32: have = tp->n_float_data; break;
  case FM_I64: have = tp->n_int64_data; break;
  case FM_F64: have = tp->n_double_data; break;
  case FM_U32: case FM_U64: have = tp->n_uint64_data; break;
  default: have = tp->n_int32_data; break;
  }
  if (have != n) {
    if (!have && n) fm_fail("%s (%s) has no data", what, shape_str(L, t));
    fm_fail("%s has %zu values, but %s has %zu elements", what, have, shape_str(L, t), n);
  }
  void *d = t->data;
  for (size_t i = 0; i < n; i++) {
    switch (t->dtype) {
    case FM_F32: ((float *)d)[i] = tp->float_data[i]; break;
    case FM_I64: ((int64_t *)d)[i] = tp->int64_data[i]; break;
    case FM_F64: ((double *)d)[i] = tp->double_data[i]; break;
    case FM_U32: ((uint32_t *)d)[i] = (uint32_t)tp->uint64_data[i]; break;
    case FM_U64: ((uint64_t *)d)[i] = tp->uint64_data[i]; break;
    case FM_I32: ((int32_t *)d)[i] = tp->int32_data[i]; break;
    case FM_I16: ((int16_t *)d)[i] = (int16_t)tp->int32_data[i]; break;
    case FM_U16: case FM_F16: ((uint16_t *)d)[i] = (uint16_t)tp->int32_data[i]; break;
    case FM_I8: ((int8_t *)d)[i] = (int8_t)tp->int32_data[i]; break;
    case FM_U8: ((uint8_t *)d)[i] = (uint8_t)tp->int32_data[i]; break;
    case FM_BOOL: ((uint8_t *)d)[i] = tp->int32_data[i] != 0; break;
    default: assert(0);
    }
  }
}

void ld_tensor(Ld *L, const Onnx__TensorProto *tp, Tensor *t, const char *what) {
  int dt = tp->data_type;
  if (!dt) fm_fail("%s has no data type", what);
  if (dt == FM_STRING) fm_fail("%s: string tensors are unsupported", what);
  if (!fm_dtype_size((FmDType)dt)) fm_fail("%s has unsupported data type %d", what, dt);
  if (tp->n_dims > FM_MAXRANK) fm_fail("%s has rank %zu, more than %d", what, tp->n_dims, FM_MAXRANK);
  if (tp->segment) fm_fail("%s: segmented tensors are unsupported", what);
  t->dtype = (FmDType)dt;
  t->rank = (int)tp->n_dims;
  int64_t n = 1, esz = (int64_t)fm_dtype_size(t->dtype);
  for (int i = 0; i < t->rank; i++) {
    int64_t d = tp->dims[i];
    if (d < 0) fm_fail("%s has negative dimension %lld at axis %d", what, (long long)d, i);
    t->dims[i] = d;
    if (d && n > MAX_BYTES / esz / d) fm_fail("%s is too large (more than 2^40 bytes)", what);
    n *= d;
  }
  size_t nbytes = (size_t)(n * esz);
  if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
    external(L, tp, t, nbytes, what);
    return;
  }
  if (tp->has_raw_data) {
    if (tp->raw_data.len != nbytes)
      fm_fail("%s: raw_data has %zu bytes, but %s needs %zu", what, tp->raw_data.len, shape_str(L, t), nbytes);
    t->data = fm_alloc(&L->g->arena, nbytes ? nbytes : 1);
    if (nbytes) memcpy(t->data, tp->raw_data.data, nbytes);
    return;
  }
  /* typed() checks the count before this allocation is filled, but allocate only
     what the message can hold: one value is at least one byte on the wire */
  size_t have = tp->n_float_data + tp->n_int32_data + tp->n_int64_data + tp->n_double_data + tp->n_uint64_data;
  if ((size_t)n > have) {
    if (!have && n) fm_fail("%s (%s) has no data", what, shape_str(L, t));
    fm_fail("%s has %zu values, but %s has %lld elements", what, have, shape_str(L, t), (long long)n);
  }
  t->data = fm_alloc(&L->g->arena, nbytes ? nbytes : 1);
  typed(L, tp, t, (size_t)n, what);
}

/* A Constant node becomes constant contents of its output. */
void ld_constant(Ld *L, const char *name, const Onnx__NodeProto *np, const Attr *attrs, int na, Tensor *out) {
  Arena *a = &L->g->arena;
  for (size_t i = 0; i < np->n_attribute; i++)
    if (!strcmp(S(np->attribute[i]->name), "sparse_value"))
      fm_fail("node '%s' (Constant): sparse_value is unsupported", name);
  if (na != 1) fm_fail("node '%s' (Constant): needs exactly one value attribute, has %d", name, na);
  const Attr *at = &attrs[0];
  const char *an = at->name;
  if (!strcmp(an, "value") && at->type == FA_TENSOR) {
    out->dtype = at->t->dtype, out->rank = at->t->rank;
    memcpy(out->dims, at->t->dims, sizeof out->dims);
    out->data = at->t->data;
  } else if (!strcmp(an, "value_float") && at->type == FA_FLOAT) {
    out->dtype = FM_F32, out->rank = 0;
    out->data = fm_alloc(a, sizeof(float));
    *(float *)out->data = at->f;
  } else if (!strcmp(an, "value_int") && at->type == FA_INT) {
    out->dtype = FM_I64, out->rank = 0;
    out->data = fm_alloc(a, sizeof(int64_t));
    *(int64_t *)out->data = at->i;
  } else if (!strcmp(an, "value_floats") && at->type == FA_FLOATS) {
    out->dtype = FM_F32, out->rank = 1, out->dims[0] = at->n;
    out->data = fm_alloc(a, sizeof(float) * (size_t)(at->n + 1));
    memcpy(out->data, at->floats, sizeof(float) * (size_t)at->n);
  } else if (!strcmp(an, "value_ints") && at->type == FA_INTS) {
    out->dtype = FM_I64, out->rank = 1, out->dims[0] = at->n;
    out->data = fm_alloc(a, sizeof(int64_t) * (size_t)(at->n + 1));
    memcpy(out->data, at->ints, sizeof(int64_t) * (size_t)at->n);
  } else if (!strncmp(an, "value_string", 12)) {
    fm_fail("node '%s' (Constant): string constants are unsupported", name);
  } else {
    fm_fail("node '%s' (Constant): unexpected attribute '%s'", name, an);
  }
  out->producer = NULL;
}
