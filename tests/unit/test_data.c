/* test_data.c - the data layer: IDX (plain and .gz), CIFAR-10/100 readers on small
 * files in the real formats, every bad-input error, shuffling, augmentation, the
 * loader (threaded == synchronous), synthetic data, and the real Fashion-MNIST
 * test set when /usr/share/datasets/fashion-mnist is installed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"
#include "data.h"

static char tmp[256];
static char err[1024];

/* ---- writing files ---- */

static void path_in(char *out, size_t len, const char *sub, const char *name) {
  snprintf(out, len, "%s/%s/%s", tmp, sub, name);
}

static void mkdir_sub(const char *sub) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", tmp, sub);
  mkdir(p, 0755);
}

static void write_file(const char *sub, const char *name, const void *data, size_t len) {
  char p[512];
  path_in(p, sizeof p, sub, name);
  FILE *f = fopen(p, "wb");
  if (!f) { perror(p); exit(1); }
  fwrite(data, 1, len, f);
  fclose(f);
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* IDX images (n,h,w) with pixel (i,y,x) = (i*31 + y*7 + x) & 255. */
static size_t idx_images(uint8_t *buf, uint32_t magic, int n, int h, int w) {
  put_be32(buf, magic);
  put_be32(buf + 4, (uint32_t)n); put_be32(buf + 8, (uint32_t)h); put_be32(buf + 12, (uint32_t)w);
  for (int i = 0; i < n; i++)
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) buf[16 + (i * h + y) * w + x] = (uint8_t)((i * 31 + y * 7 + x) & 255);
  return 16 + (size_t)n * h * w;
}

/* IDX labels with label i = i % 10 (or `bad` at index 2 when bad >= 0). */
static size_t idx_labels(uint8_t *buf, int n, int bad) {
  put_be32(buf, 0x801);
  put_be32(buf + 4, (uint32_t)n);
  for (int i = 0; i < n; i++) buf[8 + i] = (uint8_t)(i % 10);
  if (bad >= 0) buf[8 + 2] = (uint8_t)bad;
  return 8 + (size_t)n;
}

static uint32_t crc32_ref(const uint8_t *p, size_t n) {  /* bitwise, independent of the library's */
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
  }
  return ~c;
}

/* A gzip member made of stored DEFLATE blocks (at most 1000 bytes each), with a file name field. */
static size_t gzip_stored(uint8_t *out, const uint8_t *in, size_t n) {
  size_t o = 0;
  const uint8_t hdr[10] = {0x1f, 0x8b, 8, 8 /* FNAME */, 0, 0, 0, 0, 0, 3};
  memcpy(out, hdr, 10); o = 10;
  memcpy(out + o, "x.idx", 6); o += 6;
  size_t pos = 0;
  do {
    size_t len = n - pos < 1000 ? n - pos : 1000;
    out[o++] = pos + len == n;  /* BFINAL, BTYPE 00 */
    out[o++] = (uint8_t)len; out[o++] = (uint8_t)(len >> 8);
    out[o++] = (uint8_t)~len; out[o++] = (uint8_t)(~len >> 8);
    memcpy(out + o, in + pos, len); o += len; pos += len;
  } while (pos < n);
  uint32_t crc = crc32_ref(in, n);
  for (int i = 0; i < 4; i++) out[o++] = (uint8_t)(crc >> 8 * i);
  for (int i = 0; i < 4; i++) out[o++] = (uint8_t)(n >> 8 * i);
  return o;
}

/* One CIFAR record: label byte(s) then 3072 pixels, pixel j = (seed*13 + j) & 255. */
static size_t cifar_record(uint8_t *out, int nlab, const int *labels, int seed) {
  for (int j = 0; j < nlab; j++) out[j] = (uint8_t)labels[j];
  for (int j = 0; j < 3072; j++) out[nlab + j] = (uint8_t)((seed * 13 + j) & 255);
  return (size_t)nlab + 3072;
}

/* Expects the load to fail with a message that names `file`. */
#define CHECK_FAILS(call, file) do { \
    err[0] = 0; int rc_ = (call); CHECK(rc_ == -1); \
    CHECK(strstr(err, (file)) != NULL); \
    if (rc_ != -1 || !strstr(err, (file))) fprintf(stderr, "  message: %s\n", err); \
  } while (0)

/* ---- IDX ---- */

static void test_idx(void) {
  static uint8_t img[16 + 7 * 5 * 4], lab[8 + 7], gz[4096];
  mkdir_sub("mnist");
  size_t ni = idx_images(img, 0x803, 7, 5, 4), nl = idx_labels(lab, 7, -1);
  write_file("mnist", "train-images-idx3-ubyte", img, ni);
  write_file("mnist", "train-labels-idx1-ubyte", lab, nl);
  write_file("mnist", "t10k-images-idx3-ubyte.gz", gz, gzip_stored(gz, img, ni));
  write_file("mnist", "t10k-labels-idx1-ubyte.gz", gz, gzip_stored(gz, lab, nl));

  char dir[512];
  snprintf(dir, sizeof dir, "%s/mnist", tmp);
  for (int train = 1; train >= 0; train--) {
    FmDataset ds;
    int rc = fm_data_load(&ds, "mnist", dir, train, err, sizeof err);
    CHECK(rc == 0);
    if (rc) { fprintf(stderr, "  %s\n", err); continue; }
    CHECK(ds.n == 7 && ds.c == 1 && ds.h == 5 && ds.w == 4 && ds.classes == 10);
    CHECK(!strcmp(ds.name, "mnist"));
    CHECK(memcmp(ds.pixels, img + 16, 7 * 5 * 4) == 0);
    int ok = 1;
    for (int i = 0; i < 7; i++) ok &= ds.labels[i] == i % 10;
    CHECK(ok);
    float f[20];
    fm_data_image_float(&ds, 3, f);
    CHECK_NEAR(img[16 + 3 * 20 + 6] / 255.0, f[6], 1e-7);
    fm_data_take(&ds, 2);
    CHECK(ds.n == 2);
    fm_data_free(&ds);
  }

  /* Huffman-coded gzip from the gzip tool: fixed codes (small) and dynamic codes (large) */
  if (system("command -v gzip >/dev/null 2>&1") == 0) {
    enum { N = 300, H = 28, W = 28 };
    static uint8_t big[16 + N * H * W];
    size_t nb = idx_images(big, 0x803, N, H, W);
    uint8_t lab2[8 + N];
    size_t nl2 = idx_labels(lab2, N, -1);
    mkdir_sub("gz");
    write_file("gz", "img", big, nb);
    write_file("gz", "lab", lab2, nl2);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s/gz && gzip -9 -c img > img.gz && gzip -1 -c lab > lab.gz", tmp);
    CHECK(system(cmd) == 0);
    char pi[512], pl[512];
    path_in(pi, sizeof pi, "gz", "img.gz");
    path_in(pl, sizeof pl, "gz", "lab.gz");
    FmDataset ds;
    int rc = fm_data_load_idx(&ds, pi, pl, 10, err, sizeof err);
    CHECK(rc == 0);
    if (rc) fprintf(stderr, "  %s\n", err);
    else {
      CHECK(ds.n == N && ds.h == H && ds.w == W);
      CHECK(memcmp(ds.pixels, big + 16, (size_t)N * H * W) == 0);
      CHECK(ds.labels[N - 1] == (N - 1) % 10);
      fm_data_free(&ds);
    }
  } else {
    printf("SKIP: gzip tool not found, Huffman-coded .gz not tested\n");
  }
}

static void test_idx_errors(void) {
  static uint8_t img[16 + 7 * 5 * 4], lab[8 + 7], gz[4096];
  size_t ni = idx_images(img, 0x803, 7, 5, 4), nl = idx_labels(lab, 7, -1);
  char pi[512], pl[512], pd[512];
  path_in(pl, sizeof pl, "mnist", "train-labels-idx1-ubyte");
  FmDataset ds;

  /* missing directory, missing file, no directory for mnist, unknown name */
  CHECK_FAILS(fm_data_load(&ds, "mnist", "/nonexistent/fm-data-dir", 1, err, sizeof err),
              "/nonexistent/fm-data-dir");
  mkdir_sub("half");
  write_file("half", "train-images-idx3-ubyte", img, ni);
  snprintf(pd, sizeof pd, "%s/half", tmp);
  CHECK_FAILS(fm_data_load(&ds, "mnist", pd, 1, err, sizeof err), "train-labels-idx1-ubyte");
  CHECK_FAILS(fm_data_load(&ds, "mnist", NULL, 1, err, sizeof err), "mnist");
  CHECK_FAILS(fm_data_load(&ds, "imagenet", pd, 1, err, sizeof err), "imagenet");
  CHECK_FAILS(fm_data_load(&ds, "synthetic:3x32", NULL, 1, err, sizeof err), "synthetic:3x32");

  mkdir_sub("bad");
  /* wrong magic: a labels file where images belong */
  path_in(pi, sizeof pi, "bad", "magic-images");
  write_file("bad", "magic-images", lab, nl);
  CHECK_FAILS(fm_data_load_idx(&ds, pi, pl, 10, err, sizeof err), "magic-images");
  /* truncated images, plain and gzip */
  path_in(pi, sizeof pi, "bad", "short-images");
  write_file("bad", "short-images", img, ni - 3);
  CHECK_FAILS(fm_data_load_idx(&ds, pi, pl, 10, err, sizeof err), "short-images");
  CHECK(strstr(err, "truncated") != NULL);
  path_in(pi, sizeof pi, "bad", "short-header");
  write_file("bad", "short-header", img, 9);
  CHECK_FAILS(fm_data_load_idx(&ds, pi, pl, 10, err, sizeof err), "short-header");
  path_in(pi, sizeof pi, "bad", "short.gz");
  size_t ng = gzip_stored(gz, img, ni);
  write_file("bad", "short.gz", gz, ng - 20);
  CHECK_FAILS(fm_data_load_idx(&ds, pi, pl, 10, err, sizeof err), "short.gz");
  /* gzip with a wrong CRC */
  gz[ng - 6] ^= 0x55;
  path_in(pi, sizeof pi, "bad", "crc.gz");
  write_file("bad", "crc.gz", gz, ng);
  CHECK_FAILS(fm_data_load_idx(&ds, pi, pl, 10, err, sizeof err), "crc.gz");
  CHECK(strstr(err, "CRC") != NULL);
  /* trailing bytes */
  path_in(pi, sizeof pi, "bad", "long-images");
  static uint8_t longer[sizeof img + 5];
  memcpy(longer, img, ni);
  write_file("bad", "long-images", longer, ni + 5);
  CHECK_FAILS(fm_data_load_idx(&ds, pi, pl, 10, err, sizeof err), "long-images");
  /* count mismatch: 6 labels for 7 images names both files */
  uint8_t lab6[8 + 6];
  size_t nl6 = idx_labels(lab6, 6, -1);
  char pl6[512];
  path_in(pi, sizeof pi, "mnist", "train-images-idx3-ubyte");
  path_in(pl6, sizeof pl6, "bad", "six-labels");
  write_file("bad", "six-labels", lab6, nl6);
  CHECK_FAILS(fm_data_load_idx(&ds, pi, pl6, 10, err, sizeof err), "six-labels");
  CHECK(strstr(err, "train-images-idx3-ubyte") != NULL);
  /* label out of range */
  uint8_t labx[8 + 7];
  size_t nlx = idx_labels(labx, 7, 10);
  path_in(pl6, sizeof pl6, "bad", "label-ten");
  write_file("bad", "label-ten", labx, nlx);
  CHECK_FAILS(fm_data_load_idx(&ds, pi, pl6, 10, err, sizeof err), "label-ten");
  CHECK(strstr(err, "range") != NULL);
  /* a missing file passed directly */
  path_in(pl6, sizeof pl6, "bad", "no-such-labels");
  CHECK_FAILS(fm_data_load_idx(&ds, pi, pl6, 10, err, sizeof err), "no-such-labels");
  /* a small err buffer truncates, never overflows */
  char small[8];
  CHECK(fm_data_load_idx(&ds, pi, pl6, 10, small, sizeof small) == -1 && strlen(small) == 7);
  CHECK(ds.pixels == NULL && ds.n == 0);
}

/* ---- CIFAR ---- */

static void test_cifar(void) {
  static uint8_t buf[5 * 3074];
  char dir[512];
  mkdir_sub("c10");
  snprintf(dir, sizeof dir, "%s/c10", tmp);
  for (int f = 1; f <= 5; f++) {
    size_t o = 0;
    for (int r = 0; r < 2; r++) {
      int l = (f * 2 + r) % 10;
      o += cifar_record(buf + o, 1, &l, f * 2 + r);
    }
    char name[64];
    snprintf(name, sizeof name, "data_batch_%d.bin", f);
    write_file("c10", name, buf, o);
  }
  size_t o = 0;
  for (int r = 0; r < 3; r++) o += cifar_record(buf + o, 1, &r, 100 + r);
  write_file("c10", "test_batch.bin", buf, o);

  FmDataset ds;
  int rc = fm_data_load(&ds, "cifar10", dir, 1, err, sizeof err);
  CHECK(rc == 0);
  if (!rc) {
    CHECK(ds.n == 10 && ds.c == 3 && ds.h == 32 && ds.w == 32 && ds.classes == 10);
    int ok = 1;
    for (int i = 0; i < 10; i++) {  /* file f record r is sample (f-1)*2 + r, seed f*2 + r = i + 2 */
      ok &= ds.labels[i] == (i + 2) % 10;
      for (int j = 0; j < 3072; j += 97) ok &= ds.pixels[i * 3072 + j] == (((i + 2) * 13 + j) & 255);
    }
    CHECK(ok);
    /* channel 1 (green), row 2, column 5 is byte 1024 + 2*32 + 5 of the record */
    CHECK(ds.pixels[(size_t)4 * 3072 + 1024 + 69] == ((6 * 13 + 1024 + 69) & 255));
    fm_data_free(&ds);
  } else fprintf(stderr, "  %s\n", err);
  rc = fm_data_load(&ds, "cifar10", dir, 0, err, sizeof err);
  CHECK(rc == 0 && ds.n == 3 && ds.labels[2] == 2 && ds.pixels[3072] == (101 * 13 & 255));
  fm_data_free(&ds);

  mkdir_sub("c100");
  snprintf(dir, sizeof dir, "%s/c100", tmp);
  o = 0;
  for (int r = 0; r < 4; r++) {
    int l[2] = {r * 5, r * 25 + 1};
    o += cifar_record(buf + o, 2, l, r);
  }
  write_file("c100", "train.bin", buf, o);
  write_file("c100", "test.bin", buf, 3074);
  rc = fm_data_load(&ds, "cifar100", dir, 1, err, sizeof err);
  CHECK(rc == 0 && ds.n == 4 && ds.classes == 100 && ds.labels[3] == 76 && ds.pixels[3 * 3072 + 1] == 40);
  fm_data_free(&ds);
  rc = fm_data_load(&ds, "cifar100-coarse", dir, 1, err, sizeof err);
  CHECK(rc == 0 && ds.n == 4 && ds.classes == 20 && ds.labels[3] == 15);
  CHECK(!strcmp(ds.name, "cifar100-coarse"));
  fm_data_free(&ds);
  rc = fm_data_load(&ds, "cifar100", dir, 0, err, sizeof err);
  CHECK(rc == 0 && ds.n == 1);
  fm_data_free(&ds);

  /* errors: missing batch, truncated, labels out of range */
  char p[512];
  path_in(p, sizeof p, "c10", "data_batch_3.bin");
  unlink(p);
  snprintf(dir, sizeof dir, "%s/c10", tmp);
  CHECK_FAILS(fm_data_load(&ds, "cifar10", dir, 1, err, sizeof err), "data_batch_3.bin");
  write_file("c10", "test_batch.bin", buf, 3073 * 2 - 1);
  CHECK_FAILS(fm_data_load(&ds, "cifar10", dir, 0, err, sizeof err), "test_batch.bin");
  int ten = 10;
  cifar_record(buf, 1, &ten, 0);
  write_file("c10", "test_batch.bin", buf, 3073);
  CHECK_FAILS(fm_data_load(&ds, "cifar10", dir, 0, err, sizeof err), "test_batch.bin");
  snprintf(dir, sizeof dir, "%s/c100", tmp);
  int fine100[2] = {3, 100}, coarse20[2] = {20, 3};
  cifar_record(buf, 2, fine100, 0);
  write_file("c100", "test.bin", buf, 3074);
  CHECK_FAILS(fm_data_load(&ds, "cifar100", dir, 0, err, sizeof err), "test.bin");
  CHECK(strstr(err, "fine") != NULL);
  cifar_record(buf, 2, coarse20, 0);
  write_file("c100", "test.bin", buf, 3074);
  CHECK_FAILS(fm_data_load(&ds, "cifar100", dir, 0, err, sizeof err), "test.bin");
  CHECK(strstr(err, "coarse") != NULL);
  path_in(p, sizeof p, "c100", "train.bin");
  unlink(p);
  CHECK_FAILS(fm_data_load(&ds, "cifar100", dir, 1, err, sizeof err), "train.bin");
}

/* ---- statistics, shuffling, augmentation ---- */

static void test_stats(void) {
  FmDataset ds;
  uint8_t px[2 * 2 * 1 * 2] = {0, 255, 51, 51, /* image 1 */ 255, 0, 102, 102};
  int32_t lab[2] = {1, 1};
  ds = (FmDataset){.n = 2, .c = 2, .h = 1, .w = 2, .classes = 3, .pixels = px, .labels = lab};
  float mean[2], std[2];
  fm_data_mean_std(&ds, mean, std);
  CHECK_NEAR(0.5, mean[0], 1e-6);
  CHECK_NEAR(0.5, std[0], 1e-6);
  CHECK_NEAR(0.3, mean[1], 1e-6);
  CHECK_NEAR(0.1, std[1], 1e-6);
  int counts[3];
  fm_data_class_counts(&ds, counts);
  CHECK(counts[0] == 0 && counts[1] == 2 && counts[2] == 0);
}

static int is_perm(const int *p, int n) {
  char seen[1000] = {0};
  for (int i = 0; i < n; i++) {
    if (p[i] < 0 || p[i] >= n || seen[p[i]]) return 0;
    seen[p[i]] = 1;
  }
  return 1;
}

static void test_shuffle(void) {
  enum { N = 1000 };
  static int a[N], b[N], c[N], d[N];
  fm_data_permutation(a, N, 42, 3);
  fm_data_permutation(b, N, 42, 3);
  fm_data_permutation(c, N, 42, 4);
  fm_data_permutation(d, N, 43, 3);
  CHECK(is_perm(a, N) && is_perm(c, N) && is_perm(d, N));
  CHECK(memcmp(a, b, sizeof a) == 0);
  CHECK(memcmp(a, c, sizeof a) != 0);
  CHECK(memcmp(a, d, sizeof a) != 0);
  int fixed = 0;
  for (int i = 0; i < N; i++) fixed += a[i] == i;
  CHECK(fixed < 10);  /* a shuffle, not the identity (expected ~1) */
  /* pinned values: the permutation must not change across builds or platforms */
  fm_data_permutation(a, 5, 1, 0);
  CHECK(a[0] == 3 && a[1] == 2 && a[2] == 1 && a[3] == 0 && a[4] == 4);
}

static void test_augment(void) {
  /* one 3x3 channel 1..9 and a second channel 10..90 */
  float in[18], out[18];
  for (int i = 0; i < 9; i++) { in[i] = (float)(i + 1); in[9 + i] = (float)(10 * (i + 1)); }
  fm_augment_crop(in, out, 2, 3, 3, 1, 1, 1);   /* centre: identity */
  CHECK(memcmp(in, out, sizeof in) == 0);
  fm_augment_crop(in, out, 2, 3, 3, 1, 0, 0);   /* content moves down-right */
  const float want00[9] = {0, 0, 0, 0, 1, 2, 0, 4, 5};
  CHECK(memcmp(out, want00, sizeof want00) == 0);
  CHECK(out[9 + 4] == 10 && out[9 + 8] == 50 && out[9 + 0] == 0);
  fm_augment_crop(in, out, 2, 3, 3, 1, 2, 0);   /* up and right */
  const float want20[9] = {0, 4, 5, 0, 7, 8, 0, 0, 0};
  CHECK(memcmp(out, want20, sizeof want20) == 0);
  fm_augment_crop(in, out, 1, 3, 3, 2, 4, 4);   /* pad 2, far corner: only in(2,2) survives at (0,0) */
  const float want44[9] = {9, 0, 0, 0, 0, 0, 0, 0, 0};
  CHECK(memcmp(out, want44, sizeof want44) == 0);
  memcpy(out, in, sizeof in);
  fm_augment_flip(out, 2, 3, 3);
  const float flip[9] = {3, 2, 1, 6, 5, 4, 9, 8, 7};
  CHECK(memcmp(out, flip, sizeof flip) == 0 && out[9] == 30 && out[17] == 70);
  float even[4] = {1, 2, 3, 4};
  fm_augment_flip(even, 1, 1, 4);
  CHECK(even[0] == 4 && even[1] == 3 && even[2] == 2 && even[3] == 1);

  /* apply: the result is one of the 9 crops, maybe flipped; deterministic per (seed, epoch, index) */
  FmAugment aug = {.pad = 1, .flip = 1};
  float t[18], first[18];
  int nflip = 0, ncentre = 0, all_known = 1;
  for (int idx = 0; idx < 200; idx++) {
    memcpy(out, in, sizeof in);
    fm_augment_apply(&aug, out, t, 2, 3, 3, 7, 0, idx);
    if (idx == 0) memcpy(first, out, sizeof out);
    int found = 0;
    for (int dy = 0; dy < 3 && !found; dy++)
      for (int dx = 0; dx < 3 && !found; dx++)
        for (int f = 0; f < 2 && !found; f++) {
          float c[18];
          fm_augment_crop(in, c, 2, 3, 3, 1, dy, dx);
          if (f) fm_augment_flip(c, 2, 3, 3);
          if (!memcmp(c, out, sizeof c)) {
            found = 1;
            nflip += f;
            ncentre += dy == 1 && dx == 1;
          }
        }
    all_known &= found;
  }
  CHECK(all_known);
  CHECK(nflip > 70 && nflip < 130);      /* about half */
  CHECK(ncentre > 5 && ncentre < 45);    /* about 1/9 */
  memcpy(out, in, sizeof in);
  fm_augment_apply(&aug, out, t, 2, 3, 3, 7, 0, 0);
  CHECK(memcmp(out, first, sizeof out) == 0);
}

/* ---- synthetic data and the loader ---- */

static void test_synthetic(void) {
  FmDataset tr, te;
  CHECK(fm_data_synthetic(&tr, 2000, 1, 6, 6, 4, 1, err, sizeof err) == 0);
  CHECK(fm_data_synthetic(&te, 500, 1, 6, 6, 4, 2, err, sizeof err) == 0);
  int counts[4];
  fm_data_class_counts(&tr, counts);
  CHECK(counts[0] > 200 && counts[1] > 200 && counts[2] > 200 && counts[3] > 200);
  CHECK(memcmp(tr.pixels, te.pixels, 36) != 0);
  /* learnable: a multiclass perceptron trained on one seed generalises to the other */
  float wgt[4][37] = {{0}};
  for (int epoch = 0; epoch < 10; epoch++)
    for (int i = 0; i < tr.n; i++) {
      float x[37];
      fm_data_image_float(&tr, i, x);
      x[36] = 1;
      int best = 0;
      float bv = -1e30f;
      for (int k = 0; k < 4; k++) {
        float v = 0;
        for (int j = 0; j < 37; j++) v += wgt[k][j] * x[j];
        if (v > bv) { bv = v; best = k; }
      }
      if (best != tr.labels[i])
        for (int j = 0; j < 37; j++) { wgt[tr.labels[i]][j] += x[j]; wgt[best][j] -= x[j]; }
    }
  int right = 0;
  for (int i = 0; i < te.n; i++) {
    float x[37];
    fm_data_image_float(&te, i, x);
    x[36] = 1;
    int best = 0;
    float bv = -1e30f;
    for (int k = 0; k < 4; k++) {
      float v = 0;
      for (int j = 0; j < 37; j++) v += wgt[k][j] * x[j];
      if (v > bv) { bv = v; best = k; }
    }
    right += best == te.labels[i];
  }
  printf("synthetic 1x6x6, 4 classes: perceptron test accuracy %.3f (chance 0.25)\n", right / 500.0);
  CHECK(right > 400);
  fm_data_free(&tr);
  fm_data_free(&te);

  CHECK(fm_data_load(&tr, "synthetic:3x8x8:5", NULL, 0, err, sizeof err) == 0);
  CHECK(tr.n == 1024 && tr.c == 3 && tr.h == 8 && tr.w == 8 && tr.classes == 5);
  CHECK(fm_data_load(&te, "synthetic:3x8x8:5", NULL, 0, err, sizeof err) == 0);
  CHECK(memcmp(tr.pixels, te.pixels, (size_t)tr.n * 192) == 0 &&
        memcmp(tr.labels, te.labels, (size_t)tr.n * 4) == 0);
  fm_data_free(&tr);
  fm_data_free(&te);
  CHECK(fm_data_synthetic(&tr, 10, 1, 2, 2, 1, 1, err, sizeof err) == -1);
}

/* Every batch of `epochs` epochs, concatenated. */
static size_t run_loader(const FmDataset *ds, FmLoaderConfig cfg, int epochs, float *xs,
                         int32_t *ys, int *ns) {
  FmLoader *ld = fm_loader_new(ds, &cfg, err, sizeof err);
  if (!ld) { fprintf(stderr, "  %s\n", err); return 0; }
  size_t nx = 0, ny = 0;
  int nb = 0;
  for (int e = 0; e < epochs; e++) {
    fm_loader_start_epoch(ld, e);
    FmBatch b;
    while (fm_loader_next(ld, &b)) {
      size_t chw = (size_t)ds->c * ds->h * ds->w;
      memcpy(xs + nx, b.x, (size_t)b.n * chw * sizeof *xs);
      memcpy(ys + ny, b.y, (size_t)b.n * sizeof *ys);
      nx += (size_t)b.n * chw;
      ny += (size_t)b.n;
      ns[nb++] = b.n;
    }
    CHECK(!fm_loader_next(ld, &b));  /* stays at the end */
  }
  fm_loader_free(ld);
  ns[nb] = -1;
  return ny;
}

static void test_loader(void) {
  FmDataset ds;
  CHECK(fm_data_synthetic(&ds, 103, 3, 8, 8, 10, 5, err, sizeof err) == 0);
  enum { EPOCHS = 3, CHW = 192 };
  static float xa[EPOCHS * 103 * CHW], xb[EPOCHS * 103 * CHW];
  static int32_t ya[EPOCHS * 103], yb[EPOCHS * 103];
  int na[64], nbt[64];
  FmLoaderConfig cfg = {.batch = 16, .shuffle = 1, .drop_last = 0, .threaded = 0, .seed = 9,
                        .aug = {.pad = 2, .flip = 1}};

  /* threaded == synchronous, with shuffling and augmentation */
  size_t a = run_loader(&ds, cfg, EPOCHS, xa, ya, na);
  cfg.threaded = 1;
  size_t b = run_loader(&ds, cfg, EPOCHS, xb, yb, nbt);
  CHECK(a == EPOCHS * 103 && b == a);
  CHECK(memcmp(xa, xb, sizeof xa) == 0 && memcmp(ya, yb, sizeof ya) == 0);
  CHECK(memcmp(na, nbt, 22 * sizeof *na) == 0);
  CHECK(na[0] == 16 && na[6] == 7 && na[7] == 16 && na[21] == -1);
  /* epochs differ, and the same epoch repeats */
  CHECK(memcmp(ya, ya + 103, 103 * sizeof *ya) != 0);
  run_loader(&ds, cfg, 1, xb, yb, nbt);
  CHECK(memcmp(xa, xb, 103 * CHW * sizeof *xa) == 0);

  /* drop_last, no augmentation: each batch is exactly the images at b.index */
  cfg = (FmLoaderConfig){.batch = 16, .shuffle = 1, .drop_last = 1, .threaded = 1, .seed = 9};
  FmLoader *ld = fm_loader_new(&ds, &cfg, err, sizeof err);
  CHECK(ld && fm_loader_num_batches(ld) == 6);
  int seen[103] = {0}, total = 0, exact = 1;
  float img[CHW];
  for (int e = 0; e < 2; e++) {
    fm_loader_start_epoch(ld, e);
    FmBatch bt;
    int nbatch = 0;
    while (fm_loader_next(ld, &bt)) {
      nbatch++;
      CHECK(bt.n == 16);
      for (int i = 0; i < bt.n; i++) {
        fm_data_image_float(&ds, bt.index[i], img);
        exact &= !memcmp(img, bt.x + i * CHW, sizeof img) && bt.y[i] == ds.labels[bt.index[i]];
        if (e == 0) { seen[bt.index[i]]++; total++; }
      }
    }
    CHECK(nbatch == 6);
  }
  CHECK(exact);
  int dup = 0;
  for (int i = 0; i < 103; i++) dup |= seen[i] > 1;
  CHECK(total == 96 && !dup);
  /* restarting mid-epoch is fine */
  fm_loader_start_epoch(ld, 0);
  FmBatch bt;
  CHECK(fm_loader_next(ld, &bt));
  fm_loader_start_epoch(ld, 1);
  fm_loader_free(ld);

  /* no shuffle: dataset order; batch larger than the data set */
  cfg = (FmLoaderConfig){.batch = 500, .shuffle = 0, .threaded = 1};
  ld = fm_loader_new(&ds, &cfg, err, sizeof err);
  fm_loader_start_epoch(ld, 0);
  CHECK(fm_loader_next(ld, &bt) && bt.n == 103 && bt.index[50] == 50 && !fm_loader_next(ld, &bt));
  fm_loader_free(ld);
  cfg.drop_last = 1;
  ld = fm_loader_new(&ds, &cfg, err, sizeof err);
  fm_loader_start_epoch(ld, 0);
  CHECK(fm_loader_num_batches(ld) == 0 && !fm_loader_next(ld, &bt));
  fm_loader_free(ld);

  /* take the first K */
  fm_data_take(&ds, 10);
  cfg = (FmLoaderConfig){.batch = 4, .shuffle = 1, .seed = 1};
  ld = fm_loader_new(&ds, &cfg, err, sizeof err);
  CHECK(fm_loader_num_batches(ld) == 3);
  fm_loader_free(ld);

  cfg.batch = 0;
  CHECK(fm_loader_new(&ds, &cfg, err, sizeof err) == NULL && strstr(err, "batch") != NULL);
  fm_data_free(&ds);
}

/* ---- the real Fashion-MNIST ---- */

static void test_fashion_mnist(void) {
  struct stat st;
  if (stat(FM_DATA_FASHION_MNIST_DIR, &st) != 0) {
    printf("SKIP: %s absent (Debian package dataset-fashion-mnist); real data not tested\n",
           FM_DATA_FASHION_MNIST_DIR);
    return;
  }
  FmDataset ds;
  int rc = fm_data_load(&ds, "fashion-mnist", NULL, 0, err, sizeof err);
  CHECK(rc == 0);
  if (rc) { fprintf(stderr, "  %s\n", err); return; }
  CHECK(ds.n == 10000 && ds.c == 1 && ds.h == 28 && ds.w == 28 && ds.classes == 10);
  int counts[10], even = 1;
  fm_data_class_counts(&ds, counts);
  for (int k = 0; k < 10; k++) even &= counts[k] == 1000;
  CHECK(even);
  float mean, std;
  fm_data_mean_std(&ds, &mean, &std);
  printf("fashion-mnist test: %d images %dx%d, 10 x 1000 labels, mean %.4f std %.4f\n",
         ds.n, ds.h, ds.w, mean, std);
  CHECK_NEAR(0.286, mean, 0.01);
  CHECK_NEAR(0.353, std, 0.01);
  fm_data_free(&ds);
}

int main(void) {
  snprintf(tmp, sizeof tmp, "/tmp/fm_test_data_XXXXXX");
  if (!mkdtemp(tmp)) { perror("mkdtemp"); return 1; }
  test_idx();
  test_idx_errors();
  test_cifar();
  test_stats();
  test_shuffle();
  test_augment();
  test_synthetic();
  test_loader();
  test_fashion_mnist();
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
  return check_done("test_data");
}
