/* runtime.c - loading compiled models (dlopen) and running them on caller buffers.
 *
 * A model directory written by `fewmul compile` holds <name>.so and, when compiled
 * with --weights=file, <name>.weights. The weights file is mapped read-only and
 * handed to the model once; since dlopen returns the same handle (and the same
 * static weights pointer) for a .so loaded twice, mappings are shared per library
 * and reference-counted, so freeing one handle never pulls weights from another.
 *
 * Hostile inputs get statuses, never signals: the .so is checked before dlopen
 * (elfcheck.c: a truncated file would raise SIGBUS), every size is computed with
 * overflow checks, thread counts are clamped before they reach OpenMP, and runs on
 * one handle from several threads are serialised by the handle's mutex.
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
#ifdef _OPENMP
#include <omp.h>
#endif

fm_status fm_rt_fail(fm_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
fm_status fm_rt_check_elf(const char *path); /* elfcheck.c */

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
  pthread_mutex_t mu; /* serialises fm_run and fm_set_threads on this handle */
  int threads;        /* 0: OpenMP's default; applied in fm_run on the calling thread */
  void *ws;           /* workspace, 64-byte aligned */
  size_t ws_size;
  FmRtDevice device;  /* device models (device.c) */
};
FmRtDevice *fm_rt_device(const fm_model *m) { return (FmRtDevice *)&m->device; }

static fm_model *model_new(const fm_model_desc *d, void *dl) {
  fm_model *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  if (pthread_mutex_init(&m->mu, NULL) != 0) {
    free(m);
    return NULL;
  }
  m->desc = d, m->dl = dl;
  return m;
}

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
  if (!d || d->rank < 0 || d->rank > 8) return d ? -1 : 0;
  int64_t n = 1;
  for (int i = 0; i < d->rank; i++) {
    int64_t k = d->dims[i];
    if (k < 0 && (k == INT64_MIN || batch < 0 || __builtin_mul_overflow(-k, batch, &k))) return -1;
    if (__builtin_mul_overflow(n, k, &n)) return -1;
  }
  return n;
}

/* Bytes of an input or output at batch; 0 and a message when they do not fit. */
static int io_bytes(const fm_io_desc *d, int64_t batch, size_t *out) {
  int64_t n = fm_io_numel(d, batch);
  size_t b;
  if (n < 0 || (uint64_t)n > PTRDIFF_MAX || __builtin_mul_overflow((size_t)n, fm_dtype_bytes(d->dtype), &b) ||
      b > PTRDIFF_MAX) {
    fm_rt_fail(FM_ERR_ARG, "fm_run: batch %lld is too large: '%s' would not fit in memory", (long long)batch,
               d->name ? d->name : "?");
    return 0;
  }
  *out = b;
  return 1;
}

/* The workspace for batch, 64-byte rounded. A compiled model's workspace_size is a
   maximum of lines a + b*N (convex), so for N >= 3 it is at least the secant through
   N = 1 and 2 extended: a smaller value means the model's size_t arithmetic wrapped.
   (64 bytes of slack on the base and the slope keep this true for sizes rounded up to
   64 bytes.) */
static int ws_bytes(const fm_model_desc *d, int64_t batch, size_t *out) {
  size_t w = d->workspace_size(batch), lo = 0;
  if (batch >= 3) {
    size_t w1 = d->workspace_size(1), w2 = d->workspace_size(2), grow;
    size_t slope = w2 > w1 && w2 - w1 > 64 ? w2 - w1 - 64 : 0, base = w2 > 64 ? w2 - 64 : 0;
    if (__builtin_mul_overflow(slope, (size_t)(batch - 2), &grow) || __builtin_add_overflow(base, grow, &lo))
      lo = SIZE_MAX;
  }
  if (w < lo || w > PTRDIFF_MAX - 64) {
    fm_rt_fail(FM_ERR_NOMEM, "fm_run: the workspace for batch %lld does not fit in memory", (long long)batch);
    return 0;
  }
  w = (w + 63) & ~(size_t)63;
  *out = w < 64 ? 64 : w;
  return 1;
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
  fm_status s = fm_rt_check_elf(so);
  if (s != FM_OK) return s;
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
  s = check_desc(d, so);
  if (s != FM_OK) {
    dlclose(dl);
    return s;
  }
  fm_model *m = model_new(d, dl);
  if (!m) {
    dlclose(dl);
    return fm_rt_fail(FM_ERR_NOMEM, "out of memory");
  }
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
  fm_model *m = model_new(desc, NULL);
  if (!m) return fm_rt_fail(FM_ERR_NOMEM, "out of memory");
  *out = m;
  return FM_OK;
}

void fm_free(fm_model *m) {
  if (!m) return;
  detach_weights(m);
  free(m->ws);
  if (m->dl) dlclose(m->dl);
  pthread_mutex_destroy(&m->mu);
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

/* At most 4 threads per online CPU and FM_MAX_THREADS: beyond that libgomp fails to
   create threads and exits the process. */
int fm_max_threads(void) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus < 1) cpus = 1;
  return cpus > FM_MAX_THREADS / 4 ? FM_MAX_THREADS : (int)(4 * cpus);
}

fm_status fm_set_threads(fm_model *m, int n) {
  if (!m || n < 0) return fm_rt_fail(FM_ERR_ARG, "fm_set_threads: %s", m ? "negative count" : "NULL model");
  int max = fm_max_threads();
  if (n > max) fm_rt_fail(FM_OK, "fm_set_threads: %d threads clamped to %d (4 per CPU, at most %d)", n, max, FM_MAX_THREADS);
  pthread_mutex_lock(&m->mu);
  m->threads = n > max ? max : n;
  pthread_mutex_unlock(&m->mu);
  return FM_OK;
}

int fm_get_threads(const fm_model *m) { return m ? m->threads : 0; }

fm_status fm_run(fm_model *m, int64_t batch, const void *const *inputs, void *const *outputs) {
  if (!m) return fm_rt_fail(FM_ERR_ARG, "fm_run: NULL model");
  const fm_model_desc *d = m->desc;
  if (batch <= 0) return fm_rt_fail(FM_ERR_ARG, "fm_run: batch must be positive, got %lld", (long long)batch);
  if ((d->ninputs && !inputs) || (d->noutputs && !outputs))
    return fm_rt_fail(FM_ERR_ARG, "fm_run: NULL %s array", !outputs ? "output" : "input");
  for (int i = 0; i < d->ninputs + d->noutputs; i++) {
    int isin = i < d->ninputs, k = isin ? i : i - d->ninputs;
    const fm_io_desc *io = isin ? &d->inputs[k] : &d->outputs[k];
    size_t bytes;
    if (!io_bytes(io, batch, &bytes)) return FM_ERR_ARG;
    if (bytes && !(isin ? inputs[k] : outputs[k]))
      return fm_rt_fail(FM_ERR_ARG, "fm_run: %s %d ('%s') is NULL", isin ? "input" : "output", k, io->name);
  }
  size_t need;
  if (!ws_bytes(d, batch, &need)) return FM_ERR_NOMEM;
  pthread_mutex_lock(&m->mu);
  if (need > m->ws_size) {
    void *p = aligned_alloc(64, need);
    if (!p) {
      pthread_mutex_unlock(&m->mu);
      return fm_rt_fail(FM_ERR_NOMEM, "fm_run: cannot allocate a %zu-byte workspace", need);
    }
    free(m->ws);
    m->ws = p, m->ws_size = need;
  }
  int threads = m->threads;
#ifdef _OPENMP
  /* OpenMP's default on this thread (OMP_NUM_THREADS, the host's omp_set_num_threads)
     is clamped too: the model's libgomp is this process's */
  if (!threads && omp_get_max_threads() > fm_max_threads()) threads = fm_max_threads();
#endif
  if (threads > 0 && d->set_threads) d->set_threads(threads);
  int rc = d->run(batch, inputs, outputs, m->ws);
  pthread_mutex_unlock(&m->mu);
  if (rc != 0 && m->device.dev) return fm_rt_device_status(m, rc);
  if (rc != 0) return fm_rt_fail(FM_ERR_RUN, "model '%s' failed with status %d", d->name ? d->name : "?", rc);
  return FM_OK;
}
