/* test_dist.c - the pieces of data-parallel training that one process can check
 * (trainer/dist.h): synchronised batchnorm with one process equals the plain batchnorm
 * (whose backward test_trainer_grad.c checks by finite differences), and on a batch
 * split in two it equals batchnorm on the whole batch (forward, running statistics,
 * backward); keyed dropout gives a sample the same mask wherever it sits in a batch;
 * the loader's shards of a global batch are, in rank order, the batch one process gets
 * (and a batch too small for every rank is dropped); gradient buckets cover every
 * parameter once and start only after every layer that writes into them. The
 * multi-process runs are tests/e2e/mpi_*.sh. */
#include "check.h"
#include "data.h"
#include "dist.h"
#include "models.h"
#include "ops.h"
#include <stdlib.h>
#include <string.h>

static FmRng rng;
static float *rnd(size_t n) {
  float *p = malloc(sizeof(float) * (n + 1));
  for (size_t i = 0; i < n; i++) p[i] = 2 * fm_rng_uniform(&rng) - 1;
  return p;
}

/* A stand-in for the allreduce of two processes: record this half's sums, or add
 * the other half's recorded sums. */
typedef struct { double rec[64]; const double *other; } Half;
static void half_sum(void *ctx, double *buf, int n) {
  Half *h = ctx;
  for (int i = 0; i < n; i++) h->rec[i] = buf[i];
  if (h->other)
    for (int i = 0; i < n; i++) buf[i] += h->other[i];
}
static void identity(void *ctx, double *buf, int n) { (void)ctx, (void)buf, (void)n; }

static void test_sync_bn(void) {
  enum { C = 3, S = 5, NA = 2, NB = 4, N = NA + NB };
  size_t sa = (size_t)NA * C * S, n = (size_t)N * C * S;
  float *x = rnd(n), *dy = rnd(n), *g = rnd(C), *be = rnd(C);
  for (size_t i = 0; i < n; i++) x[i] = 3 + 2 * x[i];
  FmBnSync one = {identity, NULL};
  FmBnAttr a = {C, 1e-5f, 0.1f, 0, &one};
  // the whole batch in one process
  float y[N * C * S], dx[N * C * S] = {0}, mean[C], inv[C], rm[C], rv[C], dg[C] = {0}, db[C] = {0};
  for (int c = 0; c < C; c++) rm[c] = 0.5f, rv[c] = 1;
  fm_batchnorm_forward(y, mean, inv, x, g, be, rm, rv, N, S, &a, 1, 1);
  fm_batchnorm_backward(dx, dg, db, dy, x, mean, inv, g, N, S, &a, 1, 1, 0);
  // the sync path with one process = the plain batchnorm (checked by finite differences
  // in test_trainer_grad.c)
  {
    FmBnAttr plain = a;
    plain.sync = NULL;
    float yp[N * C * S], dxp[N * C * S] = {0}, mp[C], ip[C], rmp[C], rvp[C], dgp[C] = {0}, dbp[C] = {0};
    for (int c = 0; c < C; c++) rmp[c] = 0.5f, rvp[c] = 1;
    fm_batchnorm_forward(yp, mp, ip, x, g, be, rmp, rvp, N, S, &plain, 1, 1);
    fm_batchnorm_backward(dxp, dgp, dbp, dy, x, mp, ip, g, N, S, &plain, 1, 1, 0);
    for (size_t i = 0; i < n; i++) {
      CHECK_NEAR(yp[i], y[i], 1e-5);
      CHECK_NEAR(dxp[i], dx[i], 1e-5);
    }
    for (int c = 0; c < C; c++) {
      CHECK_NEAR(mp[c], mean[c], 1e-6);
      CHECK_NEAR(rvp[c], rv[c], 1e-5);
      CHECK_NEAR(dgp[c], dg[c], 1e-5);
      CHECK_NEAR(dbp[c], db[c], 1e-5);
    }
  }
  // the two halves: record each half's sums, then add the other's
  Half ha = {{0}, NULL}, hb = {{0}, NULL};
  FmBnSync sa_ = {half_sum, &ha}, sb_ = {half_sum, &hb};
  FmBnAttr aa = a, ab = a;
  aa.sync = &sa_, ab.sync = &sb_;
  float y2[N * C * S], dx2[N * C * S] = {0}, scratch[N * C * S], m2[2][C], i2[2][C], rm2[2][C], rv2[2][C];
  float dg2[C] = {0}, db2[C] = {0}, junk[2][C] = {{0}};
  double ra[64], rb[64];
  for (int pass = 0; pass < 2; pass++) {   // pass 0 records each half's sums, pass 1 adds the other's
    ha.other = pass ? rb : NULL, hb.other = pass ? ra : NULL;
    for (int h = 0; h < 2; h++)
      for (int c = 0; c < C; c++) rm2[h][c] = 0.5f, rv2[h][c] = 1;
    fm_batchnorm_forward(pass ? y2 : scratch, m2[0], i2[0], x, g, be, rm2[0], rv2[0], NA, S, &aa, 1, 1);
    fm_batchnorm_forward(pass ? y2 + sa : scratch, m2[1], i2[1], x + sa, g, be, rm2[1], rv2[1], NB, S, &ab, 1, 1);
    if (!pass) memcpy(ra, ha.rec, sizeof ra), memcpy(rb, hb.rec, sizeof rb);
  }
  for (size_t i = 0; i < n; i++) CHECK_NEAR(y[i], y2[i], 1e-5);
  for (int c = 0; c < C; c++) {
    CHECK_NEAR(mean[c], m2[0][c], 1e-6);
    CHECK_NEAR(mean[c], m2[1][c], 1e-6);
    CHECK_NEAR(inv[c], i2[1][c], 1e-5);
    CHECK_NEAR(rm[c], rm2[0][c], 1e-6);
    CHECK_NEAR(rv[c], rv2[1][c], 1e-5);
  }
  // backward: record both halves' sums, then combine
  ha.other = hb.other = NULL;
  fm_batchnorm_backward(scratch, junk[0], junk[1], dy, x, m2[0], i2[0], g, NA, S, &aa, 1, 1, 1);
  fm_batchnorm_backward(scratch, junk[0], junk[1], dy + sa, x + sa, m2[1], i2[1], g, NB, S, &ab, 1, 1, 1);
  memcpy(ra, ha.rec, sizeof ra), memcpy(rb, hb.rec, sizeof rb);
  ha.other = rb, hb.other = ra;
  fm_batchnorm_backward(dx2, dg2, db2, dy, x, m2[0], i2[0], g, NA, S, &aa, 1, 1, 0);
  fm_batchnorm_backward(dx2 + sa, dg2, db2, dy + sa, x + sa, m2[1], i2[1], g, NB, S, &ab, 1, 1, 0);
  for (size_t i = 0; i < n; i++) CHECK_NEAR(dx[i], dx2[i], 1e-5);
  for (int c = 0; c < C; c++) {
    CHECK_NEAR(dg[c], dg2[c], 1e-5);
    CHECK_NEAR(db[c], db2[c], 1e-5);
  }
  free(x), free(dy), free(g), free(be);
}

static void test_keyed_dropout(void) {
  enum { D = 40 };
  float in[3 * D], out[3 * D], mask[3 * D], out1[D], mask1[D], mask2[D];
  for (int i = 0; i < 3 * D; i++) in[i] = 1;
  int ids[3] = {5, 9, 2}, one[1] = {2};
  fm_dropout_forward_keyed(out, mask, in, 3, D, 0.5f, 77, ids);
  fm_dropout_forward_keyed(out1, mask1, in, 1, D, 0.5f, 77, one);
  CHECK(!memcmp(mask + 2 * D, mask1, sizeof mask1));   // sample 2's mask, wherever it is
  fm_dropout_forward_keyed(out1, mask2, in, 1, D, 0.5f, 78, one);
  CHECK(memcmp(mask2, mask1, sizeof mask1) != 0);      // another step draws another mask
  int zeros = 0;
  int values_ok = 1;
  for (int i = 0; i < 3 * D; i++) zeros += mask[i] == 0, values_ok &= mask[i] == 0 || mask[i] == 2.0f;
  CHECK(values_ok);
  CHECK(zeros > 20 && zeros < 100);
}

static void test_shards(void) {
  char err[256];
  FmDataset ds;
  CHECK(fm_data_synthetic(&ds, 25, 1, 2, 2, 3, 1, err, sizeof err) == 0);
  FmLoaderConfig one = {.batch = 10, .shuffle = 1, .seed = 4};
  FmLoader *l1 = fm_loader_new(&ds, &one, err, sizeof err);
  FmLoader *lr[3];
  for (int r = 0; r < 3; r++) {
    FmLoaderConfig c = one;
    c.rank = r, c.nranks = 3, c.threaded = r == 1;
    lr[r] = fm_loader_new(&ds, &c, err, sizeof err);
    fm_loader_start_epoch_at(lr[r], 2, 1);   // resumed at batch 1 of epoch 2
  }
  fm_loader_start_epoch(l1, 2);
  FmBatch b, s;
  CHECK(fm_loader_next(l1, &b));   // batch 0, which the shards skip
  int batches = 0;
  while (fm_loader_next(l1, &b)) {
    int got = 0;
    for (int r = 0; r < 3; r++) {
      CHECK(fm_loader_next(lr[r], &s));
      CHECK(s.global_n == b.n);
      CHECK(s.n == b.n * (r + 1) / 3 - b.n * r / 3);
      int same = 1;
      for (int i = 0; i < s.n; i++) same &= s.index[i] == b.index[got + i] && s.y[i] == b.y[got + i];
      CHECK(same);
      got += s.n;
    }
    CHECK(got == b.n);
    batches++;
  }
  CHECK(batches == 2);
  for (int r = 0; r < 3; r++) {
    CHECK(!fm_loader_next(lr[r], &s));
    fm_loader_free(lr[r]);
  }
  fm_loader_free(l1);
  // 21 samples, batch 10, 3 ranks: the last batch of 1 cannot feed 3 ranks and is dropped
  fm_data_take(&ds, 21);
  FmLoaderConfig c3 = {.batch = 10, .rank = 2, .nranks = 3};
  FmLoader *l3 = fm_loader_new(&ds, &c3, err, sizeof err);
  CHECK(l3 && fm_loader_num_batches(l3) == 2);
  fm_loader_free(l3);
  c3.batch = 2;
  CHECK(fm_loader_new(&ds, &c3, err, sizeof err) == NULL && strstr(err, "smaller than the 3"));
  fm_data_free(&ds);
}

static void test_buckets(void) {
  char err[256];
  FmNetOpts o = fm_net_opts_default();
  o.threads = 1;
  FmNet *net = fm_model_build("resnet20", 3, 8, 8, 4, &o, err, sizeof err);
  CHECK(net != NULL);
  FmDist *d = fm_dist_init(err, sizeof err);   // not under mpirun: one rank
  CHECK(d && fm_dist_size(d) == 1 && fm_dist_rank(d) == 0);
  CHECK(fm_dist_attach(d, net, 0, 16 << 10) == 0);
  int nb = fm_dist_nbuckets(d);
  CHECK(nb > 4);
  // the lowest layer writing each float
  int *owner = malloc(sizeof(int) * net->nparam_floats);
  for (size_t i = 0; i < net->nparam_floats; i++) owner[i] = -1;
  for (int li = net->nlayers - 1; li >= 0; li--)
    for (int k = 0; k < net->layers[li].nparam; k++) {
      if (net->layers[li].param[k] < 0) continue;   // (a conv without bias)
      const FmParam *p = &net->params[net->layers[li].param[k]];
      for (size_t i = 0; i < p->size; i++) owner[p->off + i] = li;
    }
  unsigned char *seen = calloc(net->nparam_floats, 1);
  int prev_ready = net->nlayers, order_ok = 1, cover_ok = 1;
  for (int b = 0; b < nb; b++) {
    size_t lo, hi;
    int ready = fm_dist_bucket(d, b, &lo, &hi);
    order_ok &= ready <= prev_ready;   // started in backward order
    prev_ready = ready;
    for (size_t i = lo; i < hi && i < net->nparam_floats; i++) {
      cover_ok &= !seen[i];
      seen[i] = 1;
      if (owner[i] >= 0) cover_ok &= ready <= owner[i];   // after every writer of it
    }
  }
  for (int p = 0; p < net->nparams; p++)
    for (size_t i = 0; i < net->params[p].size; i++) cover_ok &= seen[net->params[p].off + i];
  CHECK(order_ok);
  CHECK(cover_ok);
  free(owner), free(seen);
  fm_dist_finalize(d);
  fm_net_free(net);
}

int main(void) {
  fm_rng_seed(&rng, 11);
  test_sync_bn();
  test_keyed_dropout();
  test_shards();
  test_buckets();
  return check_done("test_dist");
}
