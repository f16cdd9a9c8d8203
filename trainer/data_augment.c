/* data_augment.c - per-epoch shuffling and image augmentation.
 *
 * Randomness is counter-based: each permutation and each sample's augmentation
 * draws from a generator seeded by a hash of (seed, epoch[, index]), so results
 * do not depend on which thread computes them or in what order. */
#include <string.h>
#include "data_internal.h"

void fm_data_permutation(int *perm, int n, uint64_t seed, int epoch) {
  uint64_t s = fm_mix64_(seed ^ fm_mix64_(0x5af1e0ull ^ (uint64_t)(uint32_t)epoch));
  for (int i = 0; i < n; i++) perm[i] = i;
  for (int i = n - 1; i > 0; i--) {  /* Fisher-Yates */
    int j = (int)fm_rng_below_(&s, (uint32_t)i + 1);
    int t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

// in, out are (c,h,w)
void fm_augment_crop(const float *in, float *out, int c, int h, int w, int pad, int dy, int dx) {
  for (int ch = 0; ch < c; ch++) {
    const float *src = in + (size_t)ch * h * w;
    float *dst = out + (size_t)ch * h * w;
    for (int y = 0; y < h; y++) {
      int sy = y + dy - pad;
      float *row = dst + (size_t)y * w;
      if (sy < 0 || sy >= h) {
        memset(row, 0, (size_t)w * sizeof *row);
        continue;
      }
      for (int x = 0; x < w; x++) {
        int sx = x + dx - pad;
        row[x] = sx >= 0 && sx < w ? src[(size_t)sy * w + sx] : 0.0f;
      }
    }
  }
}

// img is (c,h,w)
void fm_augment_flip(float *img, int c, int h, int w) {
  for (size_t r = 0; r < (size_t)c * h; r++) {
    float *row = img + r * w;
    for (int a = 0, b = w - 1; a < b; a++, b--) {
      float t = row[a];
      row[a] = row[b];
      row[b] = t;
    }
  }
}

void fm_augment_apply(const FmAugment *aug, float *img, float *tmp, int c, int h, int w,
                      uint64_t seed, int epoch, int index) {
  uint64_t s = fm_mix64_(seed ^ fm_mix64_(0xa09ull ^ (uint64_t)(uint32_t)epoch << 32 ^
                                          (uint64_t)(uint32_t)index));
  if (aug->pad > 0) {
    int dy = (int)fm_rng_below_(&s, 2u * aug->pad + 1);
    int dx = (int)fm_rng_below_(&s, 2u * aug->pad + 1);
    fm_augment_crop(img, tmp, c, h, w, aug->pad, dy, dx);
    memcpy(img, tmp, (size_t)c * h * w * sizeof *img);
  }
  if (aug->flip && (fm_rng_next_(&s) >> 63)) fm_augment_flip(img, c, h, w);
}
