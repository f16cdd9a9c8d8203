/* main.c - `fewmul <command> ...`: dispatch and the argument helpers every command uses.
 * Each command gets argv without "fewmul <command>" and returns the exit code. */
#include "driver.h"
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage_text[] =
  "usage: fewmul <command> [options]\n"
  "\n"
  "commands:\n"
  "  compile MODEL.onnx -o DIR   compile to DIR/<name>.c, .h, .so (and .weights)\n"
  "  run DIR --input FILE...     run a compiled model on .npy / .pb inputs\n"
  "  info MODEL.onnx|DIR         inputs, outputs, opsets, node and parameter counts\n"
  "  cost MODEL.onnx             per-layer multiplications, additions and bytes\n"
  "  bench DIR|MODEL.onnx        latency and peak memory on random inputs\n"
  "  train ...                   train a few-multiplication network\n"
  "  eval MODEL.onnx ...         test accuracy of a model\n"
  "\n"
  "`fewmul <command> --help` describes a command's options.\n";

_Noreturn void fm_usage(const char *cmd, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "fewmul: error: %s (see 'fewmul %s%s--help')\n", msg, cmd ? cmd : "",
          cmd ? " " : "");
  fm_cleanup_run();
  exit(2);
}

const char *fm_opt(const char *cmd, int argc, char **argv, int *i, const char *name) {
  const char *a = argv[*i];
  size_t n = strlen(name);
  if (strncmp(a, name, n) != 0) return NULL;
  if (a[n] == '=') return a + n + 1;
  if (a[n] != 0) return NULL;
  if (*i + 1 >= argc) fm_usage(cmd, "option %s needs a value", name);
  return argv[++*i];
}

int fm_flag(char **argv, int i, const char *name) { return !strcmp(argv[i], name); }

int64_t fm_parse_int(const char *cmd, const char *flag, const char *v, int64_t lo, int64_t hi) {
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (errno || end == v || *end || x < lo || x > hi)
    fm_usage(cmd, "%s expects an integer in [%lld, %lld], got '%s'", flag, (long long)lo,
             (long long)hi, v);
  return x;
}

int fm_wants_help(int argc, char **argv) {
  for (int i = 0; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
  return 0;
}

int fm_has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

void fm_make_dir(const char *path) {
  struct stat st;
  if (stat(path, &st) == 0) {
    if (!S_ISDIR(st.st_mode)) fm_fail("'%s' exists and is not a directory", path);
    return;
  }
  if (mkdir(path, 0777) != 0) fm_fail("cannot create directory '%s': %s", path, strerror(errno));
  fm_cleanup_add(path);
}

void fm_remove_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char p[4096];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    struct stat st;
    if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) fm_remove_tree(p);
    else unlink(p);
  }
  closedir(d);
  rmdir(dir);
}

size_t fm_driver_io_bytes(const fm_io_desc *d, int64_t batch) {
  int64_t n = fm_io_numel(d, batch);
  size_t b;
  if (n < 0 || __builtin_mul_overflow((size_t)n, fm_dtype_bytes(d->dtype), &b) || b > PTRDIFF_MAX - 128)
    fm_fail("'%s' does not fit in memory at batch %lld", d->name, (long long)batch);
  return b;
}

void fm_driver_threads(fm_model *m, int64_t n) {
  if (fm_set_threads(m, n > INT32_MAX ? INT32_MAX : (int)n) != FM_OK) fm_fail("%s", fm_last_error());
  if (fm_get_threads(m) != n)
    fprintf(stderr, "fewmul: note: --threads %lld clamped to %d (4 per CPU, at most %d)\n", (long long)n,
            fm_get_threads(m), FM_MAX_THREADS);
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    fputs(usage_text, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("fewmul 0.1.0\n");
    return 0;
  }
  fm_cleanup_signals(); /* Ctrl-C, SIGTERM: remove partial outputs, stop the C compiler */
  const char *cmd = argv[1];
  int n = argc - 2;
  char **av = argv + 2;
  if (!strcmp(cmd, "compile")) return fm_cmd_compile(n, av);
  if (!strcmp(cmd, "run")) return fm_cmd_run(n, av);
  if (!strcmp(cmd, "info")) return fm_cmd_info(n, av);
  if (!strcmp(cmd, "cost")) return fm_cmd_cost(n, av);
  if (!strcmp(cmd, "bench")) return fm_cmd_bench(n, av);
  if (!strcmp(cmd, "train")) return fm_cmd_train(n, av);
  if (!strcmp(cmd, "eval")) return fm_cmd_eval(n, av);
  fm_usage(NULL, "unknown command '%s'", cmd);
}
