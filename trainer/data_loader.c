/* data_loader.c - batches of float NCHW + int labels, double-buffered.
 *
 * Two batch slots. In threaded mode a worker fills batch k+1 into one slot while
 * the caller trains on batch k in the other:
 *
 *   next():  wait until the worker is idle (batch k is ready in slot cur)
 *            hand the worker batch k+1 -> slot 1-cur   (the caller is done with it)
 *            return slot cur
 *
 * The batch contents are a function of (dataset, config, epoch, k) only, so the
 * synchronous path (fill, then return) yields the same bytes. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "data_internal.h"

struct FmLoader {
  const FmDataset *ds;
  FmLoaderConfig cfg;
  size_t chw;
  int *perm;         /* (n) this epoch's order */
  int epoch;
  int nbatches;
  int next_batch;    /* the batch the next fm_loader_next returns */
  int cur;           /* the slot that holds (or is receiving) next_batch */
  float *x[2], *tmp[2];
  int32_t *y[2];
  int *index[2];
  int count[2];      /* samples in each slot */
  int global_n[2];   /* samples of the global batch each slot holds a share of */

  int threaded;      /* the worker thread is running */
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int job;           /* batch the worker must fill, -1 when idle */
  int job_slot;
  int quit;
};

/* Fills slot with batch k of the current epoch. */
static void fill(FmLoader *ld, int k, int slot) {
  const FmDataset *ds = ld->ds;
  int b = ld->cfg.batch, start = k * b;
  int gn = ds->n - start < b ? ds->n - start : b;
  int R = ld->cfg.nranks > 1 ? ld->cfg.nranks : 1, r = ld->cfg.rank;
  int lo = (int)((long long)gn * r / R), n = (int)((long long)gn * (r + 1) / R) - lo;
  start += lo;
  ld->global_n[slot] = gn;
  for (int i = 0; i < n; i++) {
    int idx = ld->perm[start + i];
    float *x = ld->x[slot] + (size_t)i * ld->chw;
    fm_data_image_float(ds, idx, x);
    if (ld->cfg.aug.pad > 0 || ld->cfg.aug.flip)
      fm_augment_apply(&ld->cfg.aug, x, ld->tmp[slot], ds->c, ds->h, ds->w, ld->cfg.seed,
                       ld->epoch, idx);
    ld->y[slot][i] = ds->labels[idx];
    ld->index[slot][i] = idx;
  }
  ld->count[slot] = n;
}

static void *worker(void *arg) {
  FmLoader *ld = arg;
  pthread_mutex_lock(&ld->mu);
  for (;;) {
    while (ld->job < 0 && !ld->quit) pthread_cond_wait(&ld->cv, &ld->mu);
    if (ld->quit) break;
    int k = ld->job, slot = ld->job_slot;
    pthread_mutex_unlock(&ld->mu);
    fill(ld, k, slot);
    pthread_mutex_lock(&ld->mu);
    ld->job = -1;
    pthread_cond_broadcast(&ld->cv);
  }
  pthread_mutex_unlock(&ld->mu);
  return NULL;
}

static void wait_idle(FmLoader *ld) {
  pthread_mutex_lock(&ld->mu);
  while (ld->job >= 0) pthread_cond_wait(&ld->cv, &ld->mu);
  pthread_mutex_unlock(&ld->mu);
}

/* Starts preparing batch k in slot (threaded), or fills it now. */
static void submit(FmLoader *ld, int k, int slot) {
  if (!ld->threaded) {
    fill(ld, k, slot);
    return;
  }
  pthread_mutex_lock(&ld->mu);
  ld->job = k;
  ld->job_slot = slot;
  pthread_cond_broadcast(&ld->cv);
  pthread_mutex_unlock(&ld->mu);
}

FmLoader *fm_loader_new(const FmDataset *ds, const FmLoaderConfig *cfg, char *err, size_t errlen) {
  if (cfg->batch <= 0) {
    fm_data_fail_(err, errlen, "%s: batch size %d must be positive", ds->name, cfg->batch);
    return NULL;
  }
  if (ds->n <= 0) {
    fm_data_fail_(err, errlen, "%s: the data set is empty", ds->name);
    return NULL;
  }
  if (cfg->aug.pad < 0 || cfg->aug.pad > ds->h || cfg->aug.pad > ds->w) {
    fm_data_fail_(err, errlen, "%s: crop padding %d out of range for %dx%d images", ds->name,
                  cfg->aug.pad, ds->h, ds->w);
    return NULL;
  }
  if (cfg->nranks > 1 && cfg->batch < cfg->nranks) {
    fm_data_fail_(err, errlen, "%s: batch %d is smaller than the %d processes", ds->name, cfg->batch, cfg->nranks);
    return NULL;
  }
  FmLoader *ld = calloc(1, sizeof *ld);
  if (!ld) goto oom;
  ld->ds = ds;
  ld->cfg = *cfg;
  ld->chw = (size_t)ds->c * ds->h * ds->w;
  int b = cfg->batch < ds->n ? cfg->batch : ds->n;
  ld->nbatches = cfg->drop_last ? ds->n / cfg->batch : (ds->n + cfg->batch - 1) / cfg->batch;
  if (cfg->nranks > 1 && ds->n % cfg->batch && ds->n % cfg->batch < cfg->nranks && !cfg->drop_last)
    ld->nbatches--;   /* a last batch that cannot give every process a sample */
  ld->next_batch = ld->nbatches;  /* nothing to return before fm_loader_start_epoch */
  ld->job = -1;
  ld->perm = malloc((size_t)ds->n * sizeof *ld->perm);
  if (!ld->perm) goto oom;
  for (int s = 0; s < 2; s++) {
    ld->x[s] = malloc((size_t)b * ld->chw * sizeof *ld->x[s]);
    ld->tmp[s] = malloc(ld->chw * sizeof *ld->tmp[s]);
    ld->y[s] = malloc((size_t)b * sizeof *ld->y[s]);
    ld->index[s] = malloc((size_t)b * sizeof *ld->index[s]);
    if (!ld->x[s] || !ld->tmp[s] || !ld->y[s] || !ld->index[s]) goto oom;
  }
  if (cfg->threaded) {
    pthread_mutex_init(&ld->mu, NULL);
    pthread_cond_init(&ld->cv, NULL);
    /* without a thread the loader still works, synchronously */
    ld->threaded = pthread_create(&ld->thread, NULL, worker, ld) == 0;
    if (!ld->threaded) {
      pthread_cond_destroy(&ld->cv);
      pthread_mutex_destroy(&ld->mu);
    }
  }
  return ld;
oom:
  fm_loader_free(ld);
  fm_data_fail_(err, errlen, "%s: out of memory for a batch of %d", ds->name, cfg->batch);
  return NULL;
}

void fm_loader_start_epoch(FmLoader *ld, int epoch) { fm_loader_start_epoch_at(ld, epoch, 0); }

void fm_loader_start_epoch_at(FmLoader *ld, int epoch, int first) {
  if (ld->threaded) wait_idle(ld);
  ld->epoch = epoch;
  if (ld->cfg.shuffle) fm_data_permutation(ld->perm, ld->ds->n, ld->cfg.seed, epoch);
  else
    for (int i = 0; i < ld->ds->n; i++) ld->perm[i] = i;
  ld->next_batch = first < 0 ? 0 : first > ld->nbatches ? ld->nbatches : first;
  ld->cur = 0;
  if (ld->threaded && ld->next_batch < ld->nbatches) submit(ld, ld->next_batch, 0);
}

int fm_loader_next(FmLoader *ld, FmBatch *b) {
  if (ld->next_batch >= ld->nbatches) return 0;
  int k = ld->next_batch++, s = ld->cur;
  if (ld->threaded) {
    wait_idle(ld);  /* batch k is in slot s */
    if (k + 1 < ld->nbatches) submit(ld, k + 1, 1 - s);
    ld->cur = 1 - s;
  } else {
    fill(ld, k, s);
  }
  b->n = ld->count[s];
  b->x = ld->x[s];
  b->y = ld->y[s];
  b->index = ld->index[s];
  b->global_n = ld->global_n[s];
  return 1;
}

int fm_loader_num_batches(const FmLoader *ld) { return ld->nbatches; }

void fm_loader_free(FmLoader *ld) {
  if (!ld) return;
  if (ld->threaded) {
    pthread_mutex_lock(&ld->mu);
    ld->quit = 1;
    pthread_cond_broadcast(&ld->cv);
    pthread_mutex_unlock(&ld->mu);
    pthread_join(ld->thread, NULL);
    pthread_cond_destroy(&ld->cv);
    pthread_mutex_destroy(&ld->mu);
  }
  for (int s = 0; s < 2; s++) {
    free(ld->x[s]);
    free(ld->tmp[s]);
    free(ld->y[s]);
    free(ld->index[s]);
  }
  free(ld->perm);
  free(ld);
}
