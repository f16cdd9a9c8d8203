/* test_trainer_ckpt.c - checkpoints resume bit-exactly and fail loudly.
 *
 * Training K steps in one go must equal training k steps, saving, loading
 * into a freshly built net and optimiser, and training K-k more (single
 * thread, same seed, synthetic data; the net has BN running stats, dropout
 * (RNG state) and Adam state, all of which must survive the round trip).
 * Corrupt, truncated and mismatched files must fail with the file's name. */
#include "check.h"
#include "checkpoint.h"
#include "models.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N 8
#define K 10
#define KSPLIT 4

static float data[K][N * 1 * 10 * 10];
static int labels[K][N];

static FmNet *build(void) {
  FmNetOpts o = fm_net_opts_default();
  o.seed = 99, o.threads = 1;
  FmNet *net = fm_net_new(1, 10, 10, &o);
  snprintf(net->model, sizeof net->model, "ckpt_test");
  int x = fm_net_conv2d(net, 0, 4, 3, 1, 1, 0);
  x = fm_net_relu(net, fm_net_bn(net, x));
  x = fm_net_dropout2d(net, fm_net_maxpool(net, x, 2, 2, 0), 0.2f);
  x = fm_net_dropout(net, fm_net_flatten(net, x), 0.3f);
  x = fm_net_linear(net, x, 3, 1);
  if (fm_net_finish(net, x)) { fprintf(stderr, "%s\n", net->err); exit(1); }
  return net;
}

static FmOptim *optim(FmNet *net) {
  FmOptimConfig c;
  fm_optim_defaults(&c, FM_OPT_ADAM);
  c.lr = 0.01f, c.weight_decay = 1e-4f;
  return fm_net_optim_new(net, &c);
}

static float steps(FmNet *net, FmOptim *opt, int from, int to) {
  float loss = 0;
  for (int s = from; s < to; s++) {
    fm_net_zero_grad(net);
    fm_net_forward(net, data[s], N, 1);
    loss = fm_net_loss(net, labels[s], N, NULL);
    fm_net_backward(net);
    fm_net_step(net, opt, 0.01f);
  }
  return loss;
}

static int file_exists(const char *p) { return access(p, F_OK) == 0; }

int main(void) {
  FmRng r;
  fm_rng_seed(&r, 1);
  for (int s = 0; s < K; s++)
    for (int i = 0; i < N; i++) {
      labels[s][i] = (int)(fm_rng_next(&r) % 3);
      for (int p = 0; p < 100; p++) data[s][i * 100 + p] = fm_rng_uniform(&r) + (p % 3 == labels[s][i]);
    }
  char path[] = "test_trainer_ckpt.bin", err[512];
  unlink(path);

  // uninterrupted
  FmNet *a = build();
  FmOptim *oa = optim(a);
  float la = steps(a, oa, 0, K);

  // interrupted at KSPLIT
  FmNet *b = build();
  FmOptim *ob = optim(b);
  steps(b, ob, 0, KSPLIT);
  CHECK(fm_checkpoint_save(path, b, ob, 1, KSPLIT, err, sizeof err) == 0);
  FmNet *c = build();
  FmOptim *oc = optim(c);
  FmCheckpointInfo info;
  int rc = fm_checkpoint_load(path, c, oc, &info, err, sizeof err);
  if (rc) fprintf(stderr, "%s\n", err);
  CHECK(rc == 0);
  CHECK(info.epoch == 1 && info.step == KSPLIT && info.has_optim && strcmp(info.model, "ckpt_test") == 0);
  float lc = steps(c, oc, KSPLIT, K);
  CHECK(la == lc);
  CHECK(memcmp(a->param_data, c->param_data, sizeof(float) * a->nparam_floats) == 0);
  CHECK(memcmp(a->buf_data, c->buf_data, sizeof(float) * a->nbuf_floats) == 0);
  CHECK(memcmp(oa->state, oc->state, sizeof(float) * oa->nstate * oa->n) == 0);
  CHECK(a->rng.s == c->rng.s);

  // a save replaces the file atomically and leaves no temporary behind
  CHECK(fm_checkpoint_save(path, c, oc, 2, K, err, sizeof err) == 0);
  CHECK(fm_checkpoint_load(path, b, ob, &info, err, sizeof err) == 0 && info.step == K);
  // a failed save (directory missing) leaves nothing half-written
  CHECK(fm_checkpoint_save("no_such_dir/x.bin", c, oc, 0, 0, err, sizeof err) == -1);
  CHECK(strstr(err, "no_such_dir/x.bin") != NULL);

  // corrupt: flip one byte in the parameters
  FILE *f = fopen(path, "r+b");
  fseek(f, 200, SEEK_SET);
  int ch = fgetc(f);
  fseek(f, 200, SEEK_SET);
  fputc(ch ^ 0x40, f);
  fclose(f);
  float before = c->param_data[0];
  CHECK(fm_checkpoint_load(path, c, oc, NULL, err, sizeof err) == -1);
  CHECK(strstr(err, path) && strstr(err, "checksum"));
  CHECK(c->param_data[0] == before);   // nothing modified on error

  // truncated
  CHECK(fm_checkpoint_save(path, c, oc, 2, K, err, sizeof err) == 0);
  CHECK(truncate(path, 500) == 0);
  CHECK(fm_checkpoint_load(path, c, oc, NULL, err, sizeof err) == -1);
  CHECK(strstr(err, path) && strstr(err, "truncated"));
  CHECK(truncate(path, 4) == 0);
  CHECK(fm_checkpoint_load(path, c, oc, NULL, err, sizeof err) == -1 && strstr(err, "truncated"));

  // not a checkpoint
  f = fopen(path, "wb");
  fputs("this is not a checkpoint at all, just some text long enough...........................................................................................", f);
  fclose(f);
  CHECK(fm_checkpoint_load(path, c, oc, NULL, err, sizeof err) == -1 && strstr(err, "bad magic"));

  // a different architecture / optimiser
  CHECK(fm_checkpoint_save(path, c, oc, 2, K, err, sizeof err) == 0);
  char merr[256];
  FmNet *other = fm_model_build("mlp", 1, 10, 10, 3, NULL, merr, sizeof merr);
  CHECK(other && fm_checkpoint_load(path, other, NULL, NULL, err, sizeof err) == -1);
  CHECK(strstr(err, path) && strstr(err, "does not match"));
  FmOptimConfig sgd;
  fm_optim_defaults(&sgd, FM_OPT_SGD);
  FmOptim *os = fm_net_optim_new(c, &sgd);
  CHECK(fm_checkpoint_load(path, c, os, NULL, err, sizeof err) == -1 && strstr(err, "adam"));
  CHECK(fm_checkpoint_load("missing.bin", c, oc, NULL, err, sizeof err) == -1 && strstr(err, "missing.bin"));

  unlink(path);
  CHECK(!file_exists(path));
  fm_optim_free(oa), fm_optim_free(ob), fm_optim_free(oc), fm_optim_free(os);
  fm_net_free(a), fm_net_free(b), fm_net_free(c), fm_net_free(other);
  return check_done("test_trainer_ckpt");
}
