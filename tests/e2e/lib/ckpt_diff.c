/* ckpt_diff.c - compares the parameters of two fewmul checkpoints (trainer/checkpoint.h).
 *   ckpt_diff a.fm b.fm TOL   -> prints "max_abs_diff D max_abs_weight W rel R", exit 0 when R <= TOL
 * R = D / W: the largest difference of any weight relative to the largest weight. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *params(const char *path, uint64_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) { fprintf(stderr, "ckpt_diff: cannot open %s\n", path); exit(2); }
  char magic[8];
  uint32_t version, hsize;
  char model[32];
  if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "FMCKPT\r\n", 8) || fread(&version, 4, 1, f) != 1 ||
      fread(&hsize, 4, 1, f) != 1 || fread(model, 1, 32, f) != 32 || fread(n, 8, 1, f) != 1) {
    fprintf(stderr, "ckpt_diff: %s is not a checkpoint\n", path);
    exit(2);
  }
  float *p = malloc(sizeof *p * (*n ? *n : 1));
  if (!p || fseek(f, 16 + (long)hsize, SEEK_SET) || fread(p, sizeof *p, *n, f) != *n) {
    fprintf(stderr, "ckpt_diff: %s: truncated\n", path);
    exit(2);
  }
  fclose(f);
  return p;
}

int main(int argc, char **argv) {
  if (argc != 4) { fprintf(stderr, "usage: ckpt_diff a.fm b.fm TOL\n"); return 2; }
  uint64_t na, nb;
  float *a = params(argv[1], &na), *b = params(argv[2], &nb);
  if (na != nb) { printf("different parameter counts %llu and %llu\n", (unsigned long long)na, (unsigned long long)nb); return 1; }
  double d = 0, w = 0;
  for (uint64_t i = 0; i < na; i++) {
    double e = fabs((double)a[i] - b[i]);
    if (!(e <= d)) d = e;   // NaN counts as a difference
    if (fabs(a[i]) > w) w = fabs(a[i]);
  }
  double r = w > 0 ? d / w : d;
  printf("max_abs_diff %.3g max_abs_weight %.3g rel %.3g\n", d, w, r);
  free(a), free(b);
  return r <= atof(argv[3]) ? 0 : 1;
}
