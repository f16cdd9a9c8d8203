/* test_runtime.c - the runtime's error paths, and fm_wrap/fm_run on a hand-written
 * model description (loading a real compiled .so is covered by tests/e2e). */
#include "check.h"
#include "fewmul.h"
#include <limits.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

/* ---- sizes that do not fit: refused, never wrapped ---- */
static int big_runs;
/* 64 bytes a sample, then 2^40 (wraps in size_t for n >= 2^24) */
static size_t big_ws(int64_t n) { return n < (1 << 20) ? (size_t)n * 64 : (size_t)n << 40; }
static int big_run(int64_t n, const void *const *in, void *const *out, void *ws) { big_runs++; return 0; }
static const fm_io_desc big_in[] = {{"x", 1, 1, {3}}};
static const fm_io_desc big_out[] = {{"y", 1, 1, {3}}};
static const fm_model_desc big_desc = {FM_ABI_VERSION, "big", 1, 1, big_in, big_out, big_ws, big_run, 0, NULL, NULL};
/* 40 bytes a sample rounded up to 64: not convex, but no wrap either */
static size_t round_ws(int64_t n) { return ((size_t)n * 40 + 63) & ~(size_t)63; }
static const fm_model_desc round_desc = {FM_ABI_VERSION, "round", 1, 1, big_in, big_out, round_ws, big_run, 0, NULL, NULL};

static void test_sizes(void) {
  const fm_io_desc wide = {"w", 1, 2, {-1, (int64_t)1 << 40}}, fixed = {"f", 1, 2, {(int64_t)1 << 62, 4}};
  CHECK(fm_io_numel(&wide, 1) == (int64_t)1 << 40);
  CHECK(fm_io_numel(&wide, (int64_t)1 << 30) == -1);  /* 2^70 elements */
  CHECK(fm_io_numel(&fixed, 1) == -1);
  CHECK(fm_io_numel(&ins[0], INT64_MAX / 2) == -1);   /* -1 * batch * 3 */
  fm_model *m;
  CHECK(fm_wrap(&desc, &m) == FM_OK);
  float x[3] = {0}, y[3];
  int64_t z[4];
  const void *in[] = {x};
  void *out[] = {y, z};
  /* the input's byte count overflows: refused before the model runs */
  CHECK(fm_run(m, INT64_MAX / 4, in, out) == FM_ERR_ARG && has("batch"));
  fm_free(m);
  /* the model's workspace_size wraps at this batch: refused, not a 64-byte workspace */
  CHECK(fm_wrap(&big_desc, &m) == FM_OK);
  void *out1[] = {y};
  CHECK(fm_run(m, 2, in, out1) == FM_OK && big_runs == 1);
  big_runs = 0;
  CHECK(fm_run(m, (int64_t)1 << 30, in, out1) != FM_OK && big_runs == 0 && has("workspace"));
  fm_free(m);
  CHECK(fm_wrap(&round_desc, &m) == FM_OK);
  int ok = 1;
  for (int64_t n = 1; n <= 200; n++) ok &= fm_run(m, n, in, out1) == FM_OK;
  CHECK(ok && big_runs == 200);
  fm_free(m);
}

/* ---- one handle, many threads: serialised (fewmul.h) ---- */
static size_t slow_ws(int64_t n) { return (size_t)n * 3 * sizeof(float); }
static int slow_run(int64_t n, const void *const *in, void *const *out, void *ws) {
  const float *x = in[0];
  float *t = ws, *y = out[0];
  for (int64_t i = 0; i < n * 3; i++) t[i] = x[i] + x[i];
  usleep(200); /* another thread on the same workspace would overwrite t now */
  for (int64_t i = 0; i < n * 3; i++) y[i] = t[i];
  return 0;
}
static const fm_model_desc slow_desc = {FM_ABI_VERSION, "slow", 1, 1, ins, outs, slow_ws, slow_run, 0, NULL, NULL};
typedef struct { fm_model *m; int id, bad; } Worker;
static void *worker(void *arg) {
  Worker *w = arg;
  for (int r = 0; r < 40; r++) {
    int64_t n = 1 + (w->id + r) % 5;   /* different batches: the workspace grows under others */
    float x[15], y[15];
    for (int i = 0; i < 15; i++) x[i] = (float)(w->id * 1000 + r * 20 + i);
    const void *in[] = {x};
    void *out[] = {y};
    if (fm_run(w->m, n, in, out) != FM_OK) { w->bad++; continue; }
    for (int i = 0; i < n * 3; i++) w->bad += y[i] != 2 * x[i];
  }
  return NULL;
}
static void test_shared_handle(void) {
  fm_model *m;
  CHECK(fm_wrap(&slow_desc, &m) == FM_OK);
  Worker w[8];
  pthread_t th[8];
  for (int i = 0; i < 8; i++) {
    w[i] = (Worker){m, i, 0};
    CHECK(pthread_create(&th[i], NULL, worker, &w[i]) == 0);
  }
  int bad = 0;
  for (int i = 0; i < 8; i++) pthread_join(th[i], NULL), bad += w[i].bad;
  if (bad) fprintf(stderr, "shared handle: %d wrong values\n", bad);
  CHECK(bad == 0);
  fm_free(m);
}

/* ---- a real .so (built with $CC, OpenMP): truncated copies, huge thread counts ---- */
static const char tiny_src[] =
  "#include \"fewmul.h\"\n#include <omp.h>\n#include <string.h>\n"
  "static const fm_io_desc ins[] = {{\"x\", 1, 1, {-1}}};\n"
  "static const fm_io_desc outs[] = {{\"y\", 1, 1, {-1}}};\n"
  "static char pad[16384] = {1};\n"
  "static size_t ws(long n) { (void)n; return 64; }\n"
  "static int run(long n, const void *const *in, void *const *out, void *w) {\n"
  "  const float *x = in[0]; float *y = out[0]; (void)w;\n"
  "#pragma omp parallel for\n"
  "  for (long i = 0; i < n; i++) y[i] = 2 * x[i] + (float)pad[i % 2];\n"
  "  return 0;\n}\n"
  "static void set_threads(int n) { if (n > 0) omp_set_num_threads(n); }\n"
  "static const fm_model_desc d = {FM_ABI_VERSION, \"tiny\", 1, 1, ins, outs, (size_t (*)(int64_t))ws,\n"
  "  (int (*)(int64_t, const void *const *, void *const *, void *))run, 0, 0, set_threads};\n"
  "const fm_model_desc *fewmul_model(void) { return &d; }\n";

static int build_tiny(const char *dir, char *so, size_t n) {
  char src[512], cmd[2048];
  snprintf(src, sizeof src, "%s/tiny.c", dir);
  snprintf(so, n, "%s/tiny.so", dir);
  FILE *f = fopen(src, "w");
  if (!f) return -1;
  fputs(tiny_src, f), fclose(f);
  const char *cc = getenv("CC");
  snprintf(cmd, sizeof cmd, "%s -O1 -fopenmp -shared -fPIC -I%s/runtime/include -o %s %s", cc && *cc ? cc : "gcc",
           FM_SOURCE_DIR, so, src);
  return system(cmd) == 0 ? 0 : -1;
}

/* fm_load of path in a child: its status, or 100 + the signal that killed it */
static int load_in_child(const char *path) {
  pid_t pid = fork();
  if (pid == 0) {
    fm_model *m;
    fm_status s = fm_load(path, &m);
    if (s == FM_OK) fm_free(m);
    _exit((int)s);
  }
  int st;
  if (pid < 0 || waitpid(pid, &st, 0) != pid) return -1;
  return WIFSIGNALED(st) ? 100 + WTERMSIG(st) : WEXITSTATUS(st);
}

static void test_real_so(void) {
  char dir[] = "/tmp/fm_test_runtime_so_XXXXXX", so[512], cut[600];
  CHECK(mkdtemp(dir) != NULL);
  if (build_tiny(dir, so, sizeof so) != 0) {
    printf("note: no C compiler with OpenMP; the .so checks are skipped\n");
    return;
  }
  CHECK(load_in_child(so) == FM_OK);
  struct stat st;
  CHECK(stat(so, &st) == 0);
  FILE *f = fopen(so, "rb");
  char *bytes = malloc((size_t)st.st_size);
  CHECK(f && fread(bytes, 1, (size_t)st.st_size, f) == (size_t)st.st_size);
  fclose(f);
  /* truncated anywhere: a status, never SIGBUS */
  long sizes[] = {0, 16, 63, 64, 200, 1000, 4096, st.st_size / 2, st.st_size - 4097, st.st_size - 1};
  snprintf(cut, sizeof cut, "%s/cut.so", dir);
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    f = fopen(cut, "wb");
    fwrite(bytes, 1, (size_t)sizes[k], f), fclose(f);
    int r = load_in_child(cut);
    if (r != FM_ERR_FORMAT) fprintf(stderr, "truncated to %ld bytes: fm_load gave %d (100+ = signal)\n", sizes[k], r);
    CHECK(r == FM_ERR_FORMAT);
  }
  free(bytes);
  /* a huge thread count is clamped (and reported), not handed to libgomp */
  pid_t pid = fork();
  if (pid == 0) {
    fm_model *m;
    if (fm_load(so, &m) != FM_OK) _exit(2);
    if (fm_set_threads(m, INT_MAX) != FM_OK) _exit(3);
    int t = fm_get_threads(m);
    if (t < 1 || t > FM_MAX_THREADS || t > 4 * sysconf(_SC_NPROCESSORS_ONLN)) _exit(4);
    float x[64], y[64];
    for (int i = 0; i < 64; i++) x[i] = (float)i;
    const void *in[] = {x};
    void *out[] = {y};
    if (fm_run(m, 64, in, out) != FM_OK) _exit(5);
    for (int i = 0; i < 64; i++)
      if (y[i] != 2 * x[i] + (i % 2 == 0)) _exit(6);
    if (fm_set_threads(m, 0) != FM_OK || fm_get_threads(m) != 0) _exit(7);
    /* OpenMP's own default too large (OMP_NUM_THREADS=100000000, or the host's call) */
    omp_set_num_threads(INT_MAX);
    if (fm_run(m, 64, in, out) != FM_OK) _exit(8);
    fm_free(m);
    _exit(0);
  }
  int wst = 0;
  CHECK(pid > 0 && waitpid(pid, &wst, 0) == pid);
  if (!WIFEXITED(wst) || WEXITSTATUS(wst))
    fprintf(stderr, "huge thread count: %s %d\n", WIFSIGNALED(wst) ? "signal" : "exit", WIFSIGNALED(wst) ? WTERMSIG(wst) : WEXITSTATUS(wst));
  CHECK(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
}

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
  test_sizes();
  test_shared_handle();
  test_real_so();
  return check_done("test_runtime");
}
