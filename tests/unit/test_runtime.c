/* test_runtime.c - the runtime's error paths, and fm_wrap/fm_run on a hand-written
 * model description (loading a real compiled .so is covered by tests/e2e). */
#include "check.h"
#include "fewmul.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A model y[N,3] = 2 * x[N,3] that uses its workspace as the intermediate. */
static size_t seen_ws;
static size_t ws_size(int64_t n) { return (size_t)(n * 3 * sizeof(float)); }
static int run(int64_t n, const void *const *in, void *const *out, void *ws) {
  if (n <= 0 || !ws || ((uintptr_t)ws & 63)) return 1;
  const float *x = in[0];
  float *t = ws, *y = out[0];
  seen_ws = (size_t)n * 3 * sizeof(float);
  for (int64_t i = 0; i < n * 3; i++) t[i] = x[i] + x[i];
  for (int64_t i = 0; i < n * 3; i++) y[i] = t[i];
  return 0;
}
static const fm_io_desc ins[] = {{"x", 1, 2, {-1, 3}}};
static const fm_io_desc outs[] = {{"y", 1, 2, {-1, 3}}, {"z", 7, 1, {4}}};
static const fm_model_desc desc = {FM_ABI_VERSION, "twice", 1, 2, ins, outs, ws_size, run, 0, NULL, NULL};

static int has(const char *s) { return strstr(fm_last_error(), s) != NULL; }

int main(void) {
  fm_model *m = (fm_model *)1;
  char dir[] = "/tmp/fm_test_runtime_XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char path[256];

  /* missing path, empty dir, not a .so, a fake .so, NULL arguments */
  snprintf(path, sizeof path, "%s/nope", dir);
  CHECK(fm_load(path, &m) == FM_ERR_IO && m == NULL && has("nope"));
  CHECK(fm_load(dir, &m) == FM_ERR_IO && has("no compiled model"));
  snprintf(path, sizeof path, "%s/model.txt", dir);
  FILE *f = fopen(path, "w");
  fputs("hello\n", f), fclose(f);
  CHECK(fm_load(path, &m) == FM_ERR_FORMAT && has("model.txt"));
  snprintf(path, sizeof path, "%s/model.so", dir);
  f = fopen(path, "w");
  fputs("not an ELF file\n", f), fclose(f);
  CHECK(fm_load(path, &m) == FM_ERR_FORMAT && has("model.so"));
  CHECK(fm_load(dir, &m) == FM_ERR_FORMAT); /* the directory's one .so is bad */
  CHECK(fm_load(NULL, &m) == FM_ERR_ARG);
  CHECK(fm_load(dir, NULL) == FM_ERR_ARG);
  unlink(path);
  snprintf(path, sizeof path, "%s/model.txt", dir);
  unlink(path);
  rmdir(dir);

  /* ABI and description checks */
  fm_model_desc bad = desc;
  bad.abi_version = 99;
  CHECK(fm_wrap(&bad, &m) == FM_ERR_FORMAT && has("ABI"));
  bad = desc, bad.run = NULL;
  CHECK(fm_wrap(&bad, &m) == FM_ERR_FORMAT);
  bad = desc, bad.weights_size = 128;
  CHECK(fm_wrap(&bad, &m) == FM_ERR_FORMAT);
  CHECK(fm_wrap(NULL, &m) == FM_ERR_ARG);

  /* a working model */
  CHECK(fm_wrap(&desc, &m) == FM_OK && m);
  CHECK(fm_num_inputs(m) == 1 && fm_num_outputs(m) == 2);
  CHECK(fm_input(m, 0) == &ins[0] && fm_input(m, 1) == NULL && fm_output(m, -1) == NULL);
  CHECK(fm_input_index(m, "x") == 0 && fm_input_index(m, "y") == -1);
  CHECK(fm_io_numel(fm_input(m, 0), 5) == 15 && fm_io_numel(fm_output(m, 1), 5) == 4);
  CHECK(fm_dtype_bytes(1) == 4 && fm_dtype_bytes(7) == 8 && fm_dtype_bytes(9) == 1 && fm_dtype_bytes(8) == 0);
  float x[12], y[12];
  int64_t z[4];
  for (int i = 0; i < 12; i++) x[i] = (float)i - 3.5f;
  const void *in[] = {x};
  void *out[] = {y, z};
  CHECK(fm_run(m, 0, in, out) == FM_ERR_ARG && has("batch"));
  CHECK(fm_run(m, -3, in, out) == FM_ERR_ARG);
  CHECK(fm_run(m, 4, NULL, out) == FM_ERR_ARG);
  CHECK(fm_run(m, 4, in, NULL) == FM_ERR_ARG);
  const void *in_null[] = {NULL};
  CHECK(fm_run(m, 4, in_null, out) == FM_ERR_ARG && has("'x'"));
  CHECK(fm_run(NULL, 4, in, out) == FM_ERR_ARG);
  CHECK(fm_set_threads(NULL, 1) == FM_ERR_ARG);
  CHECK(fm_set_threads(m, 2) == FM_OK);
  int ok = 1;
  for (int64_t n = 1; n <= 4; n++) {  /* growing workspace */
    memset(y, 0, sizeof y);
    ok &= fm_run(m, n, in, out) == FM_OK && seen_ws == (size_t)n * 12;
    for (int i = 0; i < n * 3; i++) ok &= y[i] == 2 * x[i];
  }
  CHECK(ok);
  fm_free(m);
  fm_free(NULL);
  CHECK(strcmp(fm_status_str(FM_ERR_RUN), "model run failed") == 0);
  return check_done("test_runtime");
}
