/* test_ckpt_pos.c - checkpoint version 2 records where a run stands inside an epoch
 * (fm_checkpoint_save_at: epoch, global step, batches of the epoch done, global batch,
 * process count) and reads it back; a version-1 file (no position) still loads, at the
 * start of its epoch. */
#include "check.h"
#include "checkpoint.h"
#include "models.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t fnv1a(const unsigned char *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

static unsigned char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc(*n);
  if (fread(b, 1, *n, f) != *n) { free(b); b = NULL; }
  fclose(f);
  return b;
}

int main(void) {
  char err[512];
  FmNetOpts o = fm_net_opts_default();
  o.threads = 1;
  FmNet *net = fm_model_build("mlp", 1, 4, 4, 3, &o, err, sizeof err);
  CHECK(net != NULL);
  const char *path = "test_ckpt_pos.fm", *v1 = "test_ckpt_pos_v1.fm";
  FmCheckpointPos pos = {.epoch = 3, .step = 1234, .epoch_batch = 17, .global_batch = 64, .nranks = 4};
  CHECK(fm_checkpoint_save_at(path, net, NULL, &pos, err, sizeof err) == 0);
  FmCheckpointInfo info;
  CHECK(fm_checkpoint_load(path, net, NULL, &info, err, sizeof err) == 0);
  CHECK(info.epoch == 3 && info.step == 1234 && info.epoch_batch == 17);
  CHECK(info.global_batch == 64 && info.nranks == 4);

  // the same file as version 1 wrote it: header of 104 bytes, no position
  size_t n;
  unsigned char *b = slurp(path, &n);
  CHECK(b != NULL);
  uint32_t version = 1, hsize = 104, hsize2;
  memcpy(&hsize2, b + 12, 4);
  CHECK(hsize2 == 120);
  size_t m = n - 16;   // 16 header bytes fewer
  unsigned char *c = malloc(m);
  memcpy(c, b, 8);
  memcpy(c + 8, &version, 4);
  memcpy(c + 12, &hsize, 4);
  memcpy(c + 16, b + 16, 104);
  memcpy(c + 120, b + 136, n - 136 - 8);
  uint64_t sum = fnv1a(c, m - 8);
  memcpy(c + m - 8, &sum, 8);
  FILE *f = fopen(v1, "wb");
  CHECK(f && fwrite(c, 1, m, f) == m);
  fclose(f);
  memset(&info, 0xff, sizeof info);
  CHECK(fm_checkpoint_load(v1, net, NULL, &info, err, sizeof err) == 0);
  CHECK(info.epoch == 3 && info.step == 1234 && info.epoch_batch == 0 && info.nranks == 0);
  // an unknown version is refused with the file's name
  version = 7;
  memcpy(c + 8, &version, 4);
  f = fopen(v1, "wb");
  CHECK(f && fwrite(c, 1, m, f) == m);
  fclose(f);
  CHECK(fm_checkpoint_load(v1, net, NULL, &info, err, sizeof err) == -1 && strstr(err, v1) && strstr(err, "version 7"));
  unlink(path), unlink(v1);
  free(b), free(c);
  fm_net_free(net);
  return check_done("test_ckpt_pos");
}
