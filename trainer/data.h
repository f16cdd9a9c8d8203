/* data.h - the trainer's data layer: data sets, augmentation and the batch loader.
 *
 * A data set is N uint8 images of C x H x W (NCHW, row-major) with one int label
 * each in [0, classes). Readers cover IDX (MNIST, Fashion-MNIST; plain or .gz,
 * decompressed by a built-in inflate, no zlib needed), CIFAR-10 and CIFAR-100
 * binary, and a synthetic generator whose labels a linear model can learn.
 * Library functions never exit or print: they return 0 / -1 and, on failure,
 * write one line into err that names the offending file.
 *
 *   char err[512];
 *   FmDataset ds;
 *   if (fm_data_load(&ds, "fashion-mnist", NULL, 1, err, sizeof err) != 0) {
 *     fprintf(stderr, "fewmul: %s\n", err);          // e.g. ".../t10k-labels-idx1-ubyte.gz:
 *     exit(1);                                        //   truncated: expected 10008 bytes, got 9000"
 *   }
 *   FmLoaderConfig cfg = { .batch = 128, .shuffle = 1, .drop_last = 1,
 *                          .threaded = 1, .seed = 42, .aug = { .pad = 0, .flip = 1 } };
 *   FmLoader *ld = fm_loader_new(&ds, &cfg, err, sizeof err);
 *   for (int epoch = 0; epoch < 10; epoch++) {
 *     fm_loader_start_epoch(ld, epoch);              // permutation = f(seed, epoch) only
 *     FmBatch b;
 *     while (fm_loader_next(ld, &b))                 // b.x is (b.n,C,H,W) floats in [0,1]
 *       train_step(b.x, b.y, b.n);                   // b.y is (b.n) labels; valid until next call
 *   }
 *   fm_loader_free(ld);
 *   fm_data_free(&ds);
 *
 * Everything random (shuffle, crop offsets, flips, synthetic data) is a pure
 * function of (seed, epoch, sample index), so a batch does not depend on
 * whether the background thread prepared it.
 */
#ifndef FM_DATA_H
#define FM_DATA_H
#include <stddef.h>
#include <stdint.h>

#define FM_DATA_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"  /* Debian dataset-fashion-mnist */

typedef struct FmDataset {
  char name[32];       /* "fashion-mnist", "cifar10", ... */
  int n, c, h, w;      /* n images of c x h x w */
  int classes;         /* labels lie in [0, classes) */
  uint8_t *pixels;     /* (n,c,h,w), 0..255 */
  int32_t *labels;     /* (n) */
} FmDataset;

/* ---- data sets (data.c, data_idx.c, data_cifar.c) ---- */

/* Loads a named data set; train=1 for the training split, 0 for the test split.
 *   "fashion-mnist"   IDX files in dir (NULL: FM_DATA_FASHION_MNIST_DIR), 1x28x28, 10 classes
 *   "mnist"           IDX files in dir (required), 1x28x28, 10 classes
 *                     IDX names: {train,t10k}-{images-idx3,labels-idx1}-ubyte, each plain or .gz
 *   "cifar10"         dir/data_batch_{1..5}.bin or dir/test_batch.bin, 3x32x32, 10 classes
 *   "cifar100"        dir/train.bin or dir/test.bin, 3x32x32, 100 fine classes
 *   "cifar100-coarse" the same files with the 20 coarse labels
 *   "synthetic[:CxHxW[:K]]"  fm_data_synthetic, default 1x28x28 and K=10; 4096 train /
 *                     1024 test images; dir is ignored
 * Returns 0, or -1 with a one-line message in err (which names the file). */
int fm_data_load(FmDataset *ds, const char *name, const char *dir, int train,
                 char *err, size_t errlen);
/* The test split fits the training split: the same image shape and classes, every
 * test label in range. 0, or -1 with a message naming the data set. */
int fm_data_check_split(const FmDataset *train, const FmDataset *test, char *err, size_t errlen);

/* One IDX pair: uint8 images of rank 3 (n,h,w) and uint8 labels of rank 1 (n),
 * each plain or gzip (detected by the 1f 8b magic, not by the name). Labels must
 * be < classes. c is 1. */
int fm_data_load_idx(FmDataset *ds, const char *images_path, const char *labels_path,
                     int classes, char *err, size_t errlen);

/* CIFAR binary files, concatenated in the order given. CIFAR-10 records are
 * 1 label byte + 3072 pixel bytes; CIFAR-100 records are coarse byte, fine byte,
 * 3072 pixel bytes (fine labels unless coarse=1). */
int fm_data_load_cifar10(FmDataset *ds, const char *const *paths, int npaths,
                         char *err, size_t errlen);
int fm_data_load_cifar100(FmDataset *ds, const char *const *paths, int npaths, int coarse,
                          char *err, size_t errlen);

/* n random images of c x h x w with labels y = argmax_k <P_k, x - 127.5>, where the
 * projection P depends only on (c, h, w, classes): train and test sets made with
 * different seeds share one labelling rule, which a linear model learns exactly. */
int fm_data_synthetic(FmDataset *ds, int n, int c, int h, int w, int classes, uint64_t seed,
                      char *err, size_t errlen);

void fm_data_free(FmDataset *ds);

/* Keeps the first k samples (k >= ds->n leaves it unchanged). */
void fm_data_take(FmDataset *ds, int k);

/* Image i as floats in [0,1]: out is (c,h,w). */
void fm_data_image_float(const FmDataset *ds, int i, float *out);

/* Per-channel mean and (population) standard deviation of the [0,1] pixels;
 * mean and std each hold ds->c floats. */
void fm_data_mean_std(const FmDataset *ds, float *mean, float *std);

/* counts[k] = number of samples with label k; counts holds ds->classes ints. */
void fm_data_class_counts(const FmDataset *ds, int *counts);

/* ---- shuffling and augmentation (data_augment.c) ---- */

/* perm = a permutation of 0..n-1 that depends only on (n, seed, epoch). */
void fm_data_permutation(int *perm, int n, uint64_t seed, int epoch);

typedef struct FmAugment {
  int pad;   /* > 0: random crop of the image zero-padded by pad on each side */
  int flip;  /* 1: horizontal flip with probability 1/2 */
} FmAugment;

/* out(c,y,x) = in(c, y+dy-pad, x+dx-pad), or 0 outside the image; dy,dx in [0,2*pad].
 * in and out are (c,h,w) and must not overlap. */
void fm_augment_crop(const float *in, float *out, int c, int h, int w, int pad, int dy, int dx);

/* Mirrors each row of img (c,h,w) in place. */
void fm_augment_flip(float *img, int c, int h, int w);

/* Applies aug to img (c,h,w) in place with the randomness of sample `index` in
 * `epoch`; tmp holds c*h*w floats. */
void fm_augment_apply(const FmAugment *aug, float *img, float *tmp, int c, int h, int w,
                      uint64_t seed, int epoch, int index);

/* ---- batch loader (data_loader.c) ---- */

typedef struct FmLoaderConfig {
  int batch;        /* samples per batch, > 0 */
  int shuffle;      /* 1: a fresh permutation every epoch; 0: dataset order */
  int drop_last;    /* 1: drop the final batch when it is short */
  int threaded;     /* 1: prepare the next batch on a background pthread */
  uint64_t seed;
  FmAugment aug;
  /* Data-parallel training (trainer/dist.h): process `rank` of `nranks` (0 = 1) gets its
   * contiguous share [n*rank/nranks, n*(rank+1)/nranks) of each global batch of n samples
   * of the epoch's one global order. With nranks > 1 a final batch of fewer than nranks
   * samples is dropped (some process would have none). */
  int rank, nranks;
} FmLoaderConfig;

typedef struct FmBatch {
  int n;            /* samples in this batch (< batch only for the last one) */
  float *x;         /* (n,C,H,W), in [0,1] before augmentation */
  int32_t *y;       /* (n) */
  const int *index; /* (n) dataset indices of the samples */
  int global_n;     /* samples of the global batch this one is a share of (= n for one process) */
} FmBatch;

typedef struct FmLoader FmLoader;

/* The loader reads ds, which must outlive it and stay unchanged. NULL on
 * failure, with the reason in err. */
FmLoader *fm_loader_new(const FmDataset *ds, const FmLoaderConfig *cfg, char *err, size_t errlen);

/* Begins epoch `epoch`: computes its permutation and starts preparing batch 0. */
void fm_loader_start_epoch(FmLoader *ld, int epoch);

/* Begins epoch `epoch` at its batch `first` (0 <= first <= batches per epoch): the
 * batches before it are skipped, as when resuming a run saved mid-epoch. */
void fm_loader_start_epoch_at(FmLoader *ld, int epoch, int first);

/* Fills *b with the next batch of the epoch and returns 1, or returns 0 at the
 * end of the epoch. The batch memory belongs to the loader and stays valid until
 * the next call of fm_loader_next, fm_loader_start_epoch or fm_loader_free. */
int fm_loader_next(FmLoader *ld, FmBatch *b);

/* Batches per epoch under the configuration. */
int fm_loader_num_batches(const FmLoader *ld);

void fm_loader_free(FmLoader *ld);

#endif
