/* io_npy.c - NumPy .npy files (format versions 1-3, little-endian, C order). */
#include "io/io.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct { const char *code; int dtype; } codes[] = {
  {"f4", FM_F32}, {"f8", FM_F64}, {"f2", FM_F16}, {"i8", FM_I64}, {"i4", FM_I32}, {"i2", FM_I16},
  {"i1", FM_I8}, {"u1", FM_U8}, {"u2", FM_U16}, {"u4", FM_U32}, {"u8", FM_U64}, {"b1", FM_BOOL},
};

static int has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

int64_t fm_array_numel(const FmArray *a) {
  int64_t n = 1;
  for (int i = 0; i < a->rank; i++)
    if (a->dims[i] < 0) return -1;
    else if (a->dims[i] == 0) return 0;
  for (int i = 0; i < a->rank; i++)
    if (!fm_mul_ok(n, a->dims[i], &n)) return -1;
  return n;
}

int fm_array_nbytes(const FmArray *a, size_t *nbytes) {
  int64_t n = fm_array_numel(a), b;
  if (n < 0 || !fm_dtype_size(a->dtype) || !fm_mul_ok(n, (int64_t)fm_dtype_size(a->dtype), &b) ||
      b > FM_MAX_TENSOR_BYTES || (uint64_t)b > SIZE_MAX)
    return 0;
  *nbytes = (size_t)b;
  return 1;
}

void fm_array_free(FmArray *a) {
  free(a->data);
  free(a->name);
  a->data = NULL, a->name = NULL;
}

const char *fm_dims_str(char *buf, size_t n, int rank, const int64_t *dims, const char *batch) {
  size_t k = 0;
  buf[0] = 0;
  if (rank == 0) return snprintf(buf, n, "scalar"), buf;
  for (int i = 0; i < rank && k + 32 < n; i++) {
    int64_t d = dims[i];
    if (i) buf[k++] = 'x';
    if (d == FM_DIM_UNKNOWN) k += (size_t)snprintf(buf + k, n - k, "?");
    else if (d == -1) k += (size_t)snprintf(buf + k, n - k, "%s", batch ? batch : "N");
    else if (d < 0) k += (size_t)snprintf(buf + k, n - k, "%lld*%s", (long long)-d, batch ? batch : "N");
    else k += (size_t)snprintf(buf + k, n - k, "%lld", (long long)d);
  }
  buf[k] = 0;
  return buf;
}

/* Value text after 'key': in the header dict, or NULL. */
static const char *dict_value(const char *hdr, const char *key) {
  char pat[32];
  snprintf(pat, sizeof pat, "'%s'", key);
  const char *p = strstr(hdr, pat);
  if (!p) return NULL;
  p = strchr(p + strlen(pat), ':');
  if (!p) return NULL;
  p++;
  while (*p == ' ') p++;
  return p;
}

void fm_npy_read(const char *path, FmArray *a) {
  memset(a, 0, sizeof *a);
  FILE *f = fopen(path, "rb");
  if (!f) fm_fail("cannot open '%s': %s", path, strerror(errno));
  fm_npy_read_file(f, path, a);
}

/* Bytes from the current position to the end of f, or -1 when f cannot seek. */
static int64_t bytes_left(FILE *f) {
  long pos = ftell(f);
  if (pos < 0 || fseek(f, 0, SEEK_END) != 0) return -1;
  long end = ftell(f);
  if (end < 0 || fseek(f, pos, SEEK_SET) != 0) return -1;
  return end >= pos ? (int64_t)(end - pos) : 0;
}

void fm_npy_read_file(FILE *f, const char *path, FmArray *a) {
  memset(a, 0, sizeof *a);
  unsigned char pre[10];
  if (fread(pre, 1, 8, f) != 8 || memcmp(pre, "\x93NUMPY", 6) != 0) {
    fclose(f);
    fm_fail("'%s' is not a .npy file (bad magic)", path);
  }
  uint32_t hlen;
  if (pre[6] == 1) {
    unsigned char b[2];
    if (fread(b, 1, 2, f) != 2) hlen = UINT32_MAX;
    else hlen = b[0] | (uint32_t)b[1] << 8;
  } else if (pre[6] == 2 || pre[6] == 3) {
    unsigned char b[4];
    if (fread(b, 1, 4, f) != 4) hlen = UINT32_MAX;
    else hlen = b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
  } else {
    fclose(f);
    fm_fail("'%s': unsupported .npy version %d", path, pre[6]);
  }
  if (hlen > (1u << 20)) {
    fclose(f);
    fm_fail("'%s': bad .npy header", path);
  }
  char *hdr = calloc(1, hlen + 1);
  if (!hdr || fread(hdr, 1, hlen, f) != hlen) {
    free(hdr), fclose(f);
    fm_fail("'%s': truncated .npy header", path);
  }
  char err[160] = "";
  const char *d = dict_value(hdr, "descr"), *fo = dict_value(hdr, "fortran_order"),
             *sh = dict_value(hdr, "shape");
  if (!d || !fo || !sh || *d != '\'' || strnlen(d, 4) < 4) /* d[1..3]: order and code */
    snprintf(err, sizeof err, "malformed .npy header");
  else if (!strncmp(fo, "True", 4)) snprintf(err, sizeof err, "Fortran-order arrays are not supported");
  else {
    char order = d[1];
    const char *code = d + 2;
    a->dtype = 0;
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
      if (!strncmp(code, codes[i].code, 2) && code[2] == '\'') a->dtype = codes[i].dtype;
    if (!a->dtype) snprintf(err, sizeof err, "unsupported dtype %.8s", d);
    else if (order == '>' && fm_dtype_size(a->dtype) > 1)
      snprintf(err, sizeof err, "big-endian arrays are not supported");
    if (!err[0] && *sh == '(') {
      const char *p = sh + 1;
      while (*p && *p != ')') {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ')') break;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || a->rank >= FM_MAXRANK) {
          snprintf(err, sizeof err, "bad shape in .npy header");
          break;
        }
        a->dims[a->rank++] = v;
        p = end;
      }
    } else if (!err[0]) snprintf(err, sizeof err, "bad shape in .npy header");
  }
  free(hdr);
  if (err[0]) {
    fclose(f);
    fm_fail("'%s': %s", path, err);
  }
  char shape[200];
  if (!fm_array_nbytes(a, &a->nbytes)) {
    fclose(f);
    fm_fail("'%s': shape (%s) is too large (more than 2^40 bytes)", path,
            fm_dims_str(shape, sizeof shape, a->rank, a->dims, NULL));
  }
  int64_t left = bytes_left(f); /* before allocating what the header claims */
  if (left >= 0 && (uint64_t)left != a->nbytes) {
    fclose(f);
    fm_fail("'%s': shape (%s) needs %zu bytes of data, the file has %lld", path,
            fm_dims_str(shape, sizeof shape, a->rank, a->dims, NULL), a->nbytes, (long long)left);
  }
  a->data = malloc(a->nbytes ? a->nbytes : 1);
  size_t got = a->data ? fread(a->data, 1, a->nbytes, f) : 0;
  int extra = fgetc(f) != EOF;
  fclose(f);
  if (!a->data || got != a->nbytes || extra) {
    fm_array_free(a);
    fm_fail("'%s': data size does not match the header's shape", path);
  }
}

void fm_npy_write(const char *path, const FmArray *a) {
  const char *code = NULL;
  for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
    if (codes[i].dtype == a->dtype) code = codes[i].code;
  if (!code) fm_fail("'%s': cannot write dtype %s to .npy", path, fm_dtype_name(a->dtype));
  char shape[256];
  int k = 0;
  for (int i = 0; i < a->rank; i++) k += snprintf(shape + k, sizeof shape - (size_t)k, "%lld,%s",
                                                  (long long)a->dims[i], i + 1 < a->rank ? " " : "");
  if (a->rank > 1) shape[--k] = 0; /* "(2, 3)" but "(5,)" */
  shape[k] = 0;
  char hdr[512];
  int n = snprintf(hdr, sizeof hdr, "{'descr': '%c%s', 'fortran_order': False, 'shape': (%s), }",
                   code[1] == '1' ? '|' : '<', code, shape);
  int total = 10 + n + 1, pad = (64 - total % 64) % 64;
  memset(hdr + n, ' ', (size_t)pad);
  hdr[n + pad] = '\n';
  n += pad + 1;
  FILE *f = fopen(path, "wb");
  if (!f) fm_fail("cannot write '%s': %s", path, strerror(errno));
  fm_cleanup_add(path);
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(n & 255), (unsigned char)(n >> 8)};
  fwrite(pre, 1, 10, f);
  fwrite(hdr, 1, (size_t)n, f);
  fwrite(a->data, 1, a->nbytes, f);
  if (ferror(f) | (fclose(f) != 0)) fm_fail("cannot write '%s': %s", path, strerror(errno));
}

void fm_array_read(const char *path, FmArray *a) {
  if (has_suffix(path, ".npy")) fm_npy_read(path, a);
  else if (has_suffix(path, ".pb")) fm_pb_read(path, a);
  else fm_fail("'%s': unknown input format (expected .npy or .pb)", path);
}
