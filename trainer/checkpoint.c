/* checkpoint.c - atomic checkpoint write, validated read (see checkpoint.h). */
#include "checkpoint.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

static const char MAGIC[8] = {'F', 'M', 'C', 'K', 'P', 'T', '\r', '\n'};

// fixed-width header; every field is naturally aligned, so there is no padding
typedef struct {
  char model[32];
  uint64_t nparam_floats, nbuf_floats;
  uint32_t nparams, nbufs;
  int32_t opt_kind;          // -1: no optimiser state
  uint32_t opt_nstate;
  uint64_t opt_n;
  uint32_t opt_nseg, reserved;
  int64_t epoch, step;
  uint64_t rng;
  // version 2
  int64_t epoch_batch;
  int32_t global_batch, nranks;
} Header;
_Static_assert(sizeof(Header) == 120, "checkpoint header has padding");
#define HEADER_V1 104   // version 1 ends after rng

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
  return h;
}
#define FNV_INIT 0xcbf29ce484222325ULL

static int fail(char *err, size_t errlen, const char *path, const char *fmt, ...) {
  int n = snprintf(err, errlen, "checkpoint '%s': ", path);
  if (n >= 0 && (size_t)n < errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - n, fmt, ap);
    va_end(ap);
  }
  return -1;
}

// writes n bytes and folds them into the checksum
static int put(int fd, const void *p, size_t n, uint64_t *h) {
  *h = fnv1a(*h, p, n);
  const char *c = p;
  while (n) {
    ssize_t w = write(fd, c, n);
    if (w < 0) { if (errno == EINTR) continue; return -1; }
    c += w, n -= (size_t)w;
  }
  return 0;
}

static size_t payload_bytes(const Header *h) {
  size_t b = sizeof(float) * (h->nparam_floats + h->nbuf_floats);
  if (h->opt_kind >= 0) b += sizeof(float) * h->opt_nstate * h->opt_n + sizeof(int64_t) * h->opt_nseg;
  return b;
}

/* Removes path's temporary files PATH.tmp.HOST.PID.XXXXXX of this host whose
 * writer PID no longer runs (killed during a save). */
static void remove_stale_tmp(const char *path) {
  char host[256] = "";
  if (gethostname(host, sizeof host - 1)) return;
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  size_t dlen = slash ? (size_t)(slash - path) + 1 : 0;
  char *dir = strndup(path, dlen ? dlen : 0);
  char *prefix = malloc(strlen(base) + strlen(host) + 8);
  if (!dir || !prefix) { free(dir), free(prefix); return; }
  sprintf(prefix, "%s.tmp.%s.", base, host);
  size_t plen = strlen(prefix);
  DIR *d = opendir(dlen ? dir : ".");
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (strncmp(e->d_name, prefix, plen)) continue;
    char *end;
    long pid = strtol(e->d_name + plen, &end, 10);
    if (pid <= 0 || *end != '.' || strlen(end + 1) != 6) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;   // alive (or not ours to judge)
    char *full = malloc(dlen + strlen(e->d_name) + 1);
    if (!full) break;
    memcpy(full, path, dlen);
    strcpy(full + dlen, e->d_name);
    unlink(full);
    free(full);
  }
  if (d) closedir(d);
  free(dir), free(prefix);
}

int fm_checkpoint_save(const char *path, const FmNet *net, const FmOptim *opt,
                       int64_t epoch, int64_t step, char *err, size_t errlen) {
  FmCheckpointPos pos = {.epoch = epoch, .step = step};
  return fm_checkpoint_save_at(path, net, opt, &pos, err, errlen);
}

int fm_checkpoint_save_at(const char *path, const FmNet *net, const FmOptim *opt,
                          const FmCheckpointPos *pos, char *err, size_t errlen) {
  int64_t epoch = pos->epoch, step = pos->step;
  Header h;
  memset(&h, 0, sizeof h);
  memcpy(h.model, net->model, sizeof h.model);
  h.nparam_floats = net->nparam_floats, h.nbuf_floats = net->nbuf_floats;
  h.nparams = (uint32_t)net->nparams, h.nbufs = (uint32_t)net->nbufs;
  h.opt_kind = opt ? (int32_t)opt->cfg.kind : -1;
  h.opt_nstate = opt ? (uint32_t)opt->nstate : 0;
  h.opt_n = opt ? opt->n : 0;
  h.opt_nseg = opt ? (uint32_t)opt->nseg : 0;
  h.epoch = epoch, h.step = step, h.rng = net->rng.s;
  h.epoch_batch = pos->epoch_batch, h.global_batch = pos->global_batch, h.nranks = pos->nranks;
  uint32_t version = FM_CHECKPOINT_VERSION, hsize = sizeof h;

  // temporary file next to the target, so rename() stays within one filesystem
  remove_stale_tmp(path);
  char host[256] = "";
  if (gethostname(host, sizeof host - 1)) strcpy(host, "localhost");
  size_t plen = strlen(path), tlen = plen + strlen(host) + 40;
  char *tmp = malloc(tlen), *dir = malloc(plen + 2);
  if (!tmp || !dir) { free(tmp), free(dir); return fail(err, errlen, path, "out of memory"); }
  snprintf(tmp, tlen, "%s.tmp.%s.%ld.XXXXXX", path, host, (long)getpid());
  const char *slash = strrchr(path, '/');
  if (slash) { memcpy(dir, path, slash - path + 1); dir[slash - path + 1] = 0; }
  else strcpy(dir, ".");
  int fd = mkstemp(tmp);
  if (fd < 0) {
    int e = errno;
    free(tmp), free(dir);
    return fail(err, errlen, path, "cannot create temporary file: %s", strerror(e));
  }
  uint64_t sum = FNV_INIT;
  int bad = put(fd, MAGIC, sizeof MAGIC, &sum) || put(fd, &version, 4, &sum) || put(fd, &hsize, 4, &sum) ||
            put(fd, &h, sizeof h, &sum) ||
            put(fd, net->param_data, sizeof(float) * net->nparam_floats, &sum) ||
            put(fd, net->buf_data, sizeof(float) * net->nbuf_floats, &sum);
  if (!bad && opt)
    bad = put(fd, opt->state, sizeof(float) * opt->nstate * opt->n, &sum) ||
          put(fd, opt->seg_step, sizeof(int64_t) * opt->nseg, &sum);
  uint64_t final = sum;
  if (!bad) bad = put(fd, &final, sizeof final, &sum);
  int e = errno;
  if (!bad && fsync(fd)) bad = 1, e = errno;
  if (close(fd) && !bad) bad = 1, e = errno;
  if (!bad && rename(tmp, path)) bad = 1, e = errno;
  if (bad) {
    unlink(tmp);
    free(tmp), free(dir);
    return fail(err, errlen, path, "write failed: %s", strerror(e));
  }
  // make the rename itself durable
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) { fsync(dfd); close(dfd); }
  free(tmp), free(dir);
  return 0;
}

int fm_checkpoint_load(const char *path, FmNet *net, FmOptim *opt, FmCheckpointInfo *info,
                       char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) return fail(err, errlen, path, "cannot open: %s", strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st)) { fclose(f); return fail(err, errlen, path, "cannot stat: %s", strerror(errno)); }
  size_t size = (size_t)st.st_size, fixed = sizeof MAGIC + 8 + HEADER_V1;
  if (size < sizeof MAGIC) { fclose(f); return fail(err, errlen, path, "truncated (%zu bytes)", size); }
  char *buf = malloc(size ? size : 1);
  if (!buf) { fclose(f); return fail(err, errlen, path, "out of memory (%zu bytes)", size); }
  size_t got = fread(buf, 1, size, f);
  fclose(f);
  int rc = -1;
  if (got != size) { fail(err, errlen, path, "read error"); goto done; }
  if (memcmp(buf, MAGIC, sizeof MAGIC)) { fail(err, errlen, path, "not a fewmul checkpoint (bad magic)"); goto done; }
  if (size < fixed) { fail(err, errlen, path, "truncated (%zu bytes, header needs %zu)", size, fixed); goto done; }
  uint32_t version, hsize;
  memcpy(&version, buf + 8, 4);
  memcpy(&hsize, buf + 12, 4);
  if (!(version == FM_CHECKPOINT_VERSION && hsize == sizeof(Header)) && !(version == 1 && hsize == HEADER_V1)) {
    fail(err, errlen, path, "unsupported version %u (header %u bytes); this build reads versions 1 and %d",
         version, hsize, FM_CHECKPOINT_VERSION);
    goto done;
  }
  fixed = sizeof MAGIC + 8 + hsize;
  if (size < fixed) { fail(err, errlen, path, "truncated (%zu bytes, header needs %zu)", size, fixed); goto done; }
  Header h;
  memset(&h, 0, sizeof h);
  memcpy(&h, buf + 16, hsize);
  size_t pay = payload_bytes(&h), want = fixed + pay + 8;
  if (h.nparam_floats > size || h.nbuf_floats > size || h.opt_n > size || size != want) {
    fail(err, errlen, path, "%s (%zu bytes, header says %zu)", size < want ? "truncated" : "has wrong size", size, want);
    goto done;
  }
  uint64_t sum, stored;
  sum = fnv1a(FNV_INIT, buf, size - 8);
  memcpy(&stored, buf + size - 8, 8);
  if (sum != stored) { fail(err, errlen, path, "checksum mismatch: file is corrupt"); goto done; }
  // compatibility with the net and optimiser
  if (h.nparam_floats != net->nparam_floats || h.nparams != (uint32_t)net->nparams ||
      h.nbuf_floats != net->nbuf_floats || h.nbufs != (uint32_t)net->nbufs) {
    fail(err, errlen, path, "model '%.32s' with %u parameter tensors (%llu floats) does not match "
         "the net '%s' with %d (%zu floats)", h.model, h.nparams, (unsigned long long)h.nparam_floats,
         net->model, net->nparams, net->nparam_floats);
    goto done;
  }
  if (opt) {
    if (h.opt_kind < 0) { fail(err, errlen, path, "has no optimiser state"); goto done; }
    if (h.opt_kind != (int32_t)opt->cfg.kind || h.opt_nstate != (uint32_t)opt->nstate ||
        h.opt_n != opt->n || h.opt_nseg != (uint32_t)opt->nseg) {
      fail(err, errlen, path, "optimiser state is for %s, run uses %s",
           fm_optim_kind_name((FmOptimKind)h.opt_kind), fm_optim_kind_name(opt->cfg.kind));
      goto done;
    }
  }
  // all checks passed: copy
  const char *p = buf + fixed;
  memcpy(net->param_data, p, sizeof(float) * h.nparam_floats), p += sizeof(float) * h.nparam_floats;
  memcpy(net->buf_data, p, sizeof(float) * h.nbuf_floats), p += sizeof(float) * h.nbuf_floats;
  if (opt) {
    memcpy(opt->state, p, sizeof(float) * opt->nstate * opt->n), p += sizeof(float) * opt->nstate * opt->n;
    memcpy(opt->seg_step, p, sizeof(int64_t) * opt->nseg);
  }
  net->rng.s = h.rng;
  if (info) {
    memcpy(info->model, h.model, sizeof info->model);
    info->model[sizeof info->model - 1] = 0;
    info->epoch = h.epoch, info->step = h.step;
    info->epoch_batch = h.epoch_batch, info->global_batch = h.global_batch, info->nranks = h.nranks;
    info->has_optim = h.opt_kind >= 0;
  }
  rc = 0;
done:
  free(buf);
  return rc;
}
