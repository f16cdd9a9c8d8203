/* data_internal.h - helpers shared by the data_*.c files (not part of the public API). */
#ifndef FM_DATA_INTERNAL_H
#define FM_DATA_INTERNAL_H
#include <stddef.h>
#include <stdint.h>
#include "data.h"

// data.c

/* Formats one line into err (when err is not NULL) and returns -1. */
int fm_data_fail_(char *err, size_t errlen, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

/* Reads a whole file into a malloc'd buffer, gunzipping it when it starts with 1f 8b. */
int fm_data_read_file_(const char *path, uint8_t **data, size_t *len, char *err, size_t errlen);

/* Allocates ds for n images of c x h x w (pixels and labels uninitialised). */
int fm_data_alloc_(FmDataset *ds, const char *name, int n, int c, int h, int w, int classes,
                   char *err, size_t errlen);

// data_gzip.c

/* Decompresses one or more concatenated gzip members. On failure returns -1 and
 * points *why at a static reason ("truncated", "CRC mismatch", ...). */
int fm_gunzip_(const uint8_t *in, size_t inlen, uint8_t **out, size_t *outlen, const char **why);

/* The CRC-32 of IEEE 802.3 / gzip, continued from crc (0 to start). */
uint32_t fm_crc32_(uint32_t crc, const uint8_t *p, size_t n);

// data_augment.c: counter-based randomness, so results do not depend on call order.

static inline uint64_t fm_mix64_(uint64_t x) {   /* splitmix64 finaliser */
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
static inline uint64_t fm_rng_next_(uint64_t *s) { *s += 0x9e3779b97f4a7c15ull; return fm_mix64_(*s); }
/* Uniform in [0, n), n > 0. */
static inline uint32_t fm_rng_below_(uint64_t *s, uint32_t n) {
  return (uint32_t)(((fm_rng_next_(s) >> 32) * (uint64_t)n) >> 32);
}

#endif
