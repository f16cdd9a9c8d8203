/* runtime.c - loading compiled models (dlopen) and running them on caller buffers.
 *
 * A model directory written by `fewmul compile` holds <name>.so and, when compiled
 * with --weights=file, <name>.weights. The weights file is mapped read-only and
 * handed to the model once; since dlopen returns the same handle (and the same
 * static weights pointer) for a .so loaded twice, mappings are shared per library
 * and reference-counted, so freeing one handle never pulls weights from another.
 */
#include "fewmul.h"
#include "device.h"
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

fm_status fm_rt_fail(fm_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The weights file header written by the compiler (compiler/emit/codegen.h). */
typedef struct {
  char magic[4];
  uint32_t count;
  uint64_t total;
  uint64_t checksum;
  uint8_t pad[40];
} WeightsHeader;
_Static_assert(sizeof(WeightsHeader) == 64, "weights header is 64 bytes");

/* Same function as fm_weights_checksum in the compiler (model_c.c). */
static uint64_t checksum(const void *data, size_t n) {
  const unsigned char *p = data;
  uint64_t h = 1469598103934665603ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = (h ^ w) * 1099511628211ull;
  }
  for (; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

/* One mapped weights file per loaded library. */
typedef struct Shared {
  void *dl;
  void *blob;
  size_t size;
  int refs;
  struct Shared *next;
} Shared;
static Shared *shared_list;
static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;

struct fm_model {
  const fm_model_desc *desc;
  void *dl;           /* NULL for fm_wrap */
  Shared *weights;
  void *ws;           /* workspace, 64-byte aligned */
  size_t ws_size;
  FmRtDevice device;  /* device models (device.c) */
};
FmRtDevice *fm_rt_device(const fm_model *m) { return (FmRtDevice *)&m->device; }

size_t fm_dtype_bytes(int dtype) {
  switch (dtype) {
  case 1: case 6: case 12: return 4;        /* float, int32, uint32 */
  case 2: case 3: case 9: return 1;         /* uint8, int8, bool */
  case 4: case 5: case 10: return 2;        /* uint16, int16, float16 */
  case 7: case 11: case 13: return 8;       /* int64, double, uint64 */
  default: return 0;
  }
}

int64_t fm_io_numel(const fm_io_desc *d, int64_t batch) {
  if (!d) return 0;
  int64_t n = 1;
  for (int i = 0; i < d->rank; i++) n *= d->dims[i] < 0 ? -d->dims[i] * batch : d->dims[i];
  return n;
}

static fm_status check_desc(const fm_model_desc *d, const char *what) {
  if (!d) return fm_rt_fail(FM_ERR_FORMAT, "%s: no model description", what);
  if (d->abi_version != FM_ABI_VERSION)
    return fm_rt_fail(FM_ERR_FORMAT, "%s: model ABI version %d, this runtime supports %d", what,
                      d->abi_version, FM_ABI_VERSION);
  if (!d->run || !d->workspace_size || d->ninputs < 0 || d->noutputs < 0 ||
      (d->ninputs && !d->inputs) || (d->noutputs && !d->outputs))
    return fm_rt_fail(FM_ERR_FORMAT, "%s: incomplete model description", what);
  for (int i = 0; i < d->ninputs + d->noutputs; i++) {
    const fm_io_desc *io = i < d->ninputs ? &d->inputs[i] : &d->outputs[i - d->ninputs];
    if (io->rank < 0 || io->rank > 8 || !fm_dtype_bytes(io->dtype))
      return fm_rt_fail(FM_ERR_FORMAT, "%s: bad description of '%s'", what,
                        io->name ? io->name : "?");
  }
  if (d->weights_size && !d->set_weights)
    return fm_rt_fail(FM_ERR_FORMAT, "%s: model needs a weights file but has no set_weights", what);
  return FM_OK;
}

static int has_suffix(const char *s, const char *suf) {
  size_t n = strlen(s), k = strlen(suf);
  return n >= k && !strcmp(s + n - k, suf);
}

/* The single .so of a model directory. */
static fm_status find_so(const char *dir, char *out, size_t outlen) {
  DIR *d = opendir(dir);
  if (!d) return fm_rt_fail(FM_ERR_IO, "cannot open model directory '%s': %s", dir, strerror(errno));
  int found = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.' || !has_suffix(e->d_name, ".so")) continue;
    if (found++ == 0) snprintf(out, outlen, "%s/%s", dir, e->d_name);
  }
  closedir(d);
  if (found == 0)
    return fm_rt_fail(FM_ERR_IO, "no compiled model (.so) in '%s' (run fewmul compile first)", dir);
  if (found > 1)
    return fm_rt_fail(FM_ERR_ARG, "'%s' holds %d .so files; pass the path of one", dir, found);
  return FM_OK;
}

static fm_status map_weights(const char *path, size_t expect, void **blob) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return fm_rt_fail(FM_ERR_IO, "cannot open weights file '%s': %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || (size_t)st.st_size != expect) {
    close(fd);
    return fm_rt_fail(FM_ERR_FORMAT, "weights file '%s' has %lld bytes, the model expects %zu",
                      path, (long long)st.st_size, expect);
  }
  void *p = mmap(NULL, expect, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return fm_rt_fail(FM_ERR_IO, "cannot map '%s': %s", path, strerror(errno));
  const WeightsHeader *h = p;
  if (expect < sizeof *h || memcmp(h->magic, "FMW1", 4) != 0 || h->total != expect ||
      checksum((const char *)p + sizeof *h, expect - sizeof *h) != h->checksum) {
    munmap(p, expect);
    return fm_rt_fail(FM_ERR_FORMAT, "weights file '%s' is corrupt (bad magic, size or checksum)", path);
  }
  *blob = p;
  return FM_OK;
}

/* Maps (or reuses the mapping of) the weights of library dl and hands them over. */
static fm_status attach_weights(fm_model *m, const char *so_path) {
  const fm_model_desc *d = m->desc;
  pthread_mutex_lock(&shared_mu);
  Shared *s = shared_list;
  while (s && s->dl != m->dl) s = s->next;
  fm_status st = FM_OK;
  if (!s) {
    char wpath[PATH_MAX];
    size_t n = strlen(so_path);
    snprintf(wpath, sizeof wpath, "%.*s.weights", (int)(n - 3), so_path);
    void *blob = NULL;
    st = map_weights(wpath, d->weights_size, &blob);
    if (st == FM_OK && d->set_weights(blob, d->weights_size) != 0) {
      munmap(blob, d->weights_size);
      st = fm_rt_fail(FM_ERR_FORMAT, "weights file '%s' does not belong to this model", wpath);
    }
    if (st == FM_OK) {
      s = calloc(1, sizeof *s);
      if (!s) {
        munmap(blob, d->weights_size);
        st = fm_rt_fail(FM_ERR_NOMEM, "out of memory");
      } else {
        s->dl = m->dl, s->blob = blob, s->size = d->weights_size;
        s->next = shared_list, shared_list = s;
      }
    }
  }
  if (s) s->refs++, m->weights = s;
  pthread_mutex_unlock(&shared_mu);
  return st;
}

static void detach_weights(fm_model *m) {
  if (!m->weights) return;
  pthread_mutex_lock(&shared_mu);
  Shared *s = m->weights;
  if (--s->refs == 0) {
    Shared **pp = &shared_list;
    while (*pp != s) pp = &(*pp)->next;
    *pp = s->next;
    /* Unmapping is safe: this handle's dlclose follows, and any other handle on the
       same library would have found s; the model's pointer is reset on next load. */
    munmap(s->blob, s->size);
    free(s);
  }
  pthread_mutex_unlock(&shared_mu);
  m->weights = NULL;
}

fm_status fm_load(const char *path, fm_model **out) {
  if (out) *out = NULL;
  if (!path || !out) return fm_rt_fail(FM_ERR_ARG, "fm_load: NULL argument");
  struct stat st;
  if (stat(path, &st) != 0)
    return fm_rt_fail(FM_ERR_IO, "cannot open model '%s': %s", path, strerror(errno));
  char so[PATH_MAX];
  if (S_ISDIR(st.st_mode)) {
    fm_status s = find_so(path, so, sizeof so);
    if (s != FM_OK) return s;
  } else {
    if (!has_suffix(path, ".so"))
      return fm_rt_fail(FM_ERR_FORMAT, "'%s' is not a compiled model (expected a directory or a .so)", path);
    snprintf(so, sizeof so, "%s", path);
  }
  /* dlopen searches the library path for names without a slash */
  char so_abs[PATH_MAX + 2] = "./";
  memcpy(strchr(so, '/') ? so_abs : so_abs + 2, so, strlen(so) + 1);
  void *dl = dlopen(so_abs, RTLD_NOW | RTLD_LOCAL);
  if (!dl) {
    const char *e = dlerror();
    return fm_rt_fail(FM_ERR_FORMAT, "cannot load '%s': %s", so, e ? e : "dlopen failed");
  }
  const fm_model_desc *(*entry)(void) = (const fm_model_desc *(*)(void))dlsym(dl, "fewmul_model");
  if (!entry) {
    dlclose(dl);
    return fm_rt_fail(FM_ERR_FORMAT, "'%s' is not a fewmul model (no fewmul_model symbol)", so);
  }
  const fm_model_desc *d = entry();
  fm_status s = check_desc(d, so);
  if (s != FM_OK) {
    dlclose(dl);
    return s;
  }
  fm_model *m = calloc(1, sizeof *m);
  if (!m) {
    dlclose(dl);
    return fm_rt_fail(FM_ERR_NOMEM, "out of memory");
  }
  m->desc = d, m->dl = dl;
  const fm_device_desc *(*dev)(void) = (const fm_device_desc *(*)(void))dlsym(dl, "fewmul_device");
  if (dev && (!(m->device.dev = dev()) || m->device.dev->abi_version != 1)) {
    fm_free(m);
    return fm_rt_fail(FM_ERR_FORMAT, "'%s': unknown device ABI", so);
  }
  if (d->weights_size && (s = attach_weights(m, so)) != FM_OK) {
    fm_free(m);
    return s;
  }
  *out = m;
  return FM_OK;
}

fm_status fm_wrap(const fm_model_desc *desc, fm_model **out) {
  if (out) *out = NULL;
  if (!desc || !out) return fm_rt_fail(FM_ERR_ARG, "fm_wrap: NULL argument");
  fm_status s = check_desc(desc, desc->name ? desc->name : "model");
  if (s != FM_OK) return s;
  fm_model *m = calloc(1, sizeof *m);
  if (!m) return fm_rt_fail(FM_ERR_NOMEM, "out of memory");
  m->desc = desc;
  *out = m;
  return FM_OK;
}

void fm_free(fm_model *m) {
  if (!m) return;
  detach_weights(m);
  free(m->ws);
  if (m->dl) dlclose(m->dl);
  free(m);
}

/* The model's description, for the fewmul CLI (info, bench); not in the public API
   because fm_model_desc may grow while fm_load's API stays. */
const fm_model_desc *fm_rt_desc(const fm_model *m);
const fm_model_desc *fm_rt_desc(const fm_model *m) { return m ? m->desc : NULL; }

int fm_num_inputs(const fm_model *m) { return m ? m->desc->ninputs : 0; }
int fm_num_outputs(const fm_model *m) { return m ? m->desc->noutputs : 0; }

const fm_io_desc *fm_input(const fm_model *m, int i) {
  return m && i >= 0 && i < m->desc->ninputs ? &m->desc->inputs[i] : NULL;
}
const fm_io_desc *fm_output(const fm_model *m, int i) {
  return m && i >= 0 && i < m->desc->noutputs ? &m->desc->outputs[i] : NULL;
}

int fm_input_index(const fm_model *m, const char *name) {
  if (!m || !name) return -1;
  for (int i = 0; i < m->desc->ninputs; i++)
    if (m->desc->inputs[i].name && !strcmp(m->desc->inputs[i].name, name)) return i;
  return -1;
}

fm_status fm_set_threads(fm_model *m, int n) {
  if (!m || n < 0) return fm_rt_fail(FM_ERR_ARG, "fm_set_threads: %s", m ? "negative count" : "NULL model");
  if (m->desc->set_threads) m->desc->set_threads(n);
  return FM_OK;
}

fm_status fm_run(fm_model *m, int64_t batch, const void *const *inputs, void *const *outputs) {
  if (!m) return fm_rt_fail(FM_ERR_ARG, "fm_run: NULL model");
  const fm_model_desc *d = m->desc;
  if (batch <= 0) return fm_rt_fail(FM_ERR_ARG, "fm_run: batch must be positive, got %lld", (long long)batch);
  if ((d->ninputs && !inputs) || (d->noutputs && !outputs))
    return fm_rt_fail(FM_ERR_ARG, "fm_run: NULL %s array", !outputs ? "output" : "input");
  for (int i = 0; i < d->ninputs; i++)
    if (!inputs[i] && fm_io_numel(&d->inputs[i], batch))
      return fm_rt_fail(FM_ERR_ARG, "fm_run: input %d ('%s') is NULL", i, d->inputs[i].name);
  for (int i = 0; i < d->noutputs; i++)
    if (!outputs[i] && fm_io_numel(&d->outputs[i], batch))
      return fm_rt_fail(FM_ERR_ARG, "fm_run: output %d ('%s') is NULL", i, d->outputs[i].name);
  size_t need = d->workspace_size(batch);
  need = (need + 63) & ~(size_t)63;
  if (need < 64) need = 64;
  if (need > m->ws_size) {
    void *p = aligned_alloc(64, need);
    if (!p) return fm_rt_fail(FM_ERR_NOMEM, "fm_run: cannot allocate a %zu-byte workspace", need);
    free(m->ws);
    m->ws = p, m->ws_size = need;
  }
  int rc = d->run(batch, inputs, outputs, m->ws);
  if (rc != 0 && m->device.dev) return fm_rt_device_status(m, rc);
  if (rc != 0) return fm_rt_fail(FM_ERR_RUN, "model '%s' failed with status %d", d->name ? d->name : "?", rc);
  return FM_OK;
}
