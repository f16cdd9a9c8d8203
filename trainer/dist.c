/* dist.c - data-parallel training: gradient buckets, step stamps, weight checks
 * (see dist.h). The transport is dist_mpi.c (MPI) or dist_none.c (one rank). */
#include "dist.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  size_t lo, hi;       // float range of net->grad_data
  int ready;           // startable once backward has finished layer `ready` (the lowest writer)
  int req, done;
  double t_start, t_done;
} Bucket;

struct FmDist {
  FmComm *comm;
  int rank, size;
  FmNet *net;
  FmBnSync bn_sync;
  Bucket *b;
  int nb, next;        // buckets; the next one to start
  int stats_req;
  // MPI_Wtime stamps of the current step: start, backward start, backward end
  double t0, t1, t2;
  long steps;
  double sum_fwd, sum_bwd, sum_exposed, sum_span, sum_hidden;
  double ar_full;      // a blocking allreduce of the whole gradient (seconds; 0 = not measured)
};

static void bn_allreduce(void *ctx, double *buf, int n) {
  FmDist *d = ctx;
  if (d->size > 1) fm_comm_sum_f64(d->comm, buf, n);
}

FmDist *fm_dist_init(char *err, size_t errlen) {
  FmDist *d = calloc(1, sizeof *d);
  if (!d) { snprintf(err, errlen, "out of memory"); return NULL; }
  d->comm = fm_comm_init(&d->rank, &d->size, err, errlen);
  if (!d->comm) { free(d); return NULL; }
  d->stats_req = -1;
  d->bn_sync = (FmBnSync){bn_allreduce, d};
  return d;
}

int fm_dist_rank(const FmDist *d) { return d->rank; }
int fm_dist_size(const FmDist *d) { return d->size; }
int fm_dist_nbuckets(const FmDist *d) { return d->nb; }
int fm_dist_bucket(const FmDist *d, int i, size_t *lo, size_t *hi) {
  *lo = d->b[i].lo, *hi = d->b[i].hi;
  return d->b[i].ready;
}

// progress the started buckets (MPI moves non-blocking collectives inside its calls)
static void progress(FmDist *d) {
  for (int i = 0; i < d->next; i++)
    if (!d->b[i].done && fm_comm_test(d->comm, d->b[i].req)) d->b[i].done = 1, d->b[i].t_done = fm_comm_time();
}

static void start(FmDist *d, int i) {
  Bucket *b = &d->b[i];
  b->t_start = fm_comm_time();
  b->req = fm_comm_isum_f32(d->comm, d->net->grad_data + b->lo, b->hi - b->lo);
  b->done = 0;
}

static void on_layer_done(FmNet *net, int layer, void *ctx) {
  FmDist *d = ctx;
  while (d->next < d->nb && d->b[d->next].ready >= layer) start(d, d->next++);
  progress(d);
}

typedef struct { int owner; size_t lo, hi; } ParamSpan;

static int by_owner_desc(const void *a, const void *b) {
  const ParamSpan *x = a, *y = b;
  if (x->owner != y->owner) return x->owner < y->owner ? 1 : -1;
  return x->lo < y->lo ? 1 : x->lo > y->lo ? -1 : 0;
}

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Buckets in backward order: parameters sorted by their lowest writing layer,
 * highest first, joined while they are adjacent in memory and the bucket is
 * under bucket_bytes. A bucket is ready when its lowest writer has run. */
int fm_dist_attach(FmDist *d, FmNet *net, int sync_bn, size_t bucket_bytes) {
  d->net = net;
  if (sync_bn) net->bn_sync = &d->bn_sync;
  if (!bucket_bytes) bucket_bytes = 256 << 10;
  size_t target = bucket_bytes / sizeof(float);
  ParamSpan *ps = malloc(sizeof *ps * (size_t)(net->nparams + 1));
  d->b = malloc(sizeof *d->b * (size_t)(net->nparams + 1));
  if (!ps || !d->b) { free(ps); return -1; }
  for (int p = 0; p < net->nparams; p++)
    ps[p] = (ParamSpan){INT_MAX, net->params[p].off, net->params[p].off + align16(net->params[p].size)};
  for (int i = 0; i < net->nlayers; i++)
    for (int k = 0; k < net->layers[i].nparam; k++) {
      int p = net->layers[i].param[k];
      if (p >= 0 && i < ps[p].owner) ps[p].owner = i;
    }
  for (int p = 0; p < net->nparams; p++)
    if (ps[p].owner == INT_MAX) ps[p].owner = 0;   // written by no layer: sum it last
  qsort(ps, (size_t)net->nparams, sizeof *ps, by_owner_desc);
  d->nb = 0;
  for (int p = 0; p < net->nparams; p++) {
    Bucket *cur = d->nb ? &d->b[d->nb - 1] : NULL;
    if (cur && cur->hi - cur->lo < target && (ps[p].hi == cur->lo || ps[p].lo == cur->hi)) {
      if (ps[p].hi == cur->lo) cur->lo = ps[p].lo;
      else cur->hi = ps[p].hi;
      cur->ready = ps[p].owner;
    } else {
      d->b[d->nb++] = (Bucket){ps[p].lo, ps[p].hi, ps[p].owner, -1, 1, 0, 0};
    }
  }
  free(ps);
  if (d->size > 1) {
    net->backward_hook = on_layer_done;
    net->backward_hook_ctx = d;
  }
  return 0;
}

void fm_dist_step_start(FmDist *d) { d->t0 = fm_comm_time(); }

void fm_dist_backward_start(FmDist *d, double *stats, int nstats) {
  d->t1 = fm_comm_time();
  d->next = 0;
  d->stats_req = nstats > 0 ? fm_comm_isum_f64(d->comm, stats, nstats) : -1;
}

void fm_dist_step_end(FmDist *d) {
  d->t2 = fm_comm_time();
  if (d->size > 1)
    while (d->next < d->nb) start(d, d->next++);   // (buckets no layer writes)
  double first = d->t2, last = d->t2;
  for (int i = 0; i < d->next; i++) {
    Bucket *b = &d->b[i];
    if (!b->done) fm_comm_wait(d->comm, b->req), b->done = 1, b->t_done = fm_comm_time();
    if (b->t_start < first) first = b->t_start;
    if (b->t_done > last) last = b->t_done;
  }
  fm_comm_wait(d->comm, d->stats_req);
  d->stats_req = -1;
  double t3 = fm_comm_time();
  d->steps++;
  d->sum_fwd += d->t1 - d->t0;
  d->sum_bwd += d->t2 - d->t1;
  if (d->next) {
    double span = last - first, exposed = t3 - d->t2;
    d->sum_span += span;
    d->sum_exposed += exposed;
    d->sum_hidden += span > exposed ? span - exposed : 0;
  }
}

void fm_dist_sum(FmDist *d, double *buf, int n) {
  if (d->size > 1) fm_comm_sum_f64(d->comm, buf, n);
}

int fm_dist_same(FmDist *d, uint64_t x) {
  if (d->size == 1) return 1;
  uint64_t hi = fm_comm_max_u64(d->comm, x), nlo = fm_comm_max_u64(d->comm, ~x);
  return hi == ~nlo;
}

uint64_t fm_dist_weights_checksum(const FmNet *net) {
  uint64_t h = 0xcbf29ce484222325ULL;
  const unsigned char *p = (const unsigned char *)net->param_data;
  for (size_t i = 0; i < sizeof(float) * net->nparam_floats; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
  p = (const unsigned char *)net->buf_data;
  for (size_t i = 0; i < sizeof(float) * net->nbuf_floats; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

void fm_dist_average_bufs(FmDist *d, FmNet *net) {
  if (d->size == 1 || !net->nbuf_floats) return;
  size_t n = net->nbuf_floats;
  double *acc = malloc(sizeof *acc * n);
  if (!acc) fm_dist_abort(d, 1);
  for (size_t i = 0; i < n; i++) acc[i] = net->buf_data[i];
  for (size_t o = 0; o < n; o += INT_MAX / 2) {
    size_t k = n - o < INT_MAX / 2 ? n - o : INT_MAX / 2;
    fm_comm_sum_f64(d->comm, acc + o, (int)k);
  }
  // a sum of equal floats in double is exact, and so is its division by size
  for (size_t i = 0; i < n; i++) net->buf_data[i] = (float)(acc[i] / d->size);
  free(acc);
}

void fm_dist_barrier(FmDist *d) { fm_comm_barrier(d->comm); }

_Noreturn void fm_dist_abort(FmDist *d, int code) { fm_comm_abort(d ? d->comm : NULL, code); }

void fm_dist_finalize(FmDist *d) {
  if (!d) return;   // (the net may be gone already: not touched)
  fm_comm_finalize(d->comm);
  free(d->b);
  free(d);
}

void fm_dist_measure_allreduce(FmDist *d, int reps) {
  if (d->size == 1 || !d->net || reps <= 0) return;
  size_t n = d->net->nparam_floats;
  float *g = calloc(n ? n : 1, sizeof *g);
  if (!g) return;
  fm_comm_barrier(d->comm);
  fm_comm_wait(d->comm, fm_comm_isum_f32(d->comm, g, n));   // warm-up
  fm_comm_barrier(d->comm);
  double t = fm_comm_time();
  for (int r = 0; r < reps; r++) fm_comm_wait(d->comm, fm_comm_isum_f32(d->comm, g, n));
  d->ar_full = (fm_comm_time() - t) / reps;
  free(g);
}

void fm_dist_stats_print(const FmDist *d, FILE *f) {
  if (!d->steps || !d->net) return;
  double s = 1e3 / (double)d->steps;
  double bytes = sizeof(float) * (double)d->net->nparam_floats;
  fprintf(f, "dist: %d ranks, %ld steps, %d gradient buckets, %.0f gradient bytes per step\n", d->size,
          d->steps, d->nb, bytes);
  fprintf(f, "dist: per step ms: forward+loss %.3f  backward %.3f  allreduce span %.3f  exposed %.3f  "
          "overlap %.0f%%\n", d->sum_fwd * s, d->sum_bwd * s, d->sum_span * s, d->sum_exposed * s,
          d->sum_span > 0 ? 100.0 * d->sum_hidden / d->sum_span : 0.0);
  if (d->ar_full > 0)
    fprintf(f, "dist: blocking allreduce of the whole gradient: %.3f ms (%.2f GB/s algorithm bandwidth)\n",
            d->ar_full * 1e3, bytes / d->ar_full * 1e-9);
}
