/* conformance.c - runs the ONNX backend test cases through the whole compiler.
 *
 *   fm_conformance [-j JOBS] [--report docs/conformance.md] [--lists DIR]
 *                  [--filter SUBSTR[,SUBSTR...]] [--emit c|llvm|opencl|cuda | --jit]
 *                  [--winograd auto|off|2|4|6] [-v] DATA_DIR/node DATA_DIR/simple ...
 *
 * For each case (a folder with model.onnx and test_data_set_*): load, run the pass
 * pipeline, lower, generate C, build the shared object with cc, load it with the
 * runtime, run every data set and compare each output with the expected one
 * (|got - want| <= atol + rtol*|want|, rtol 1e-3, atol 1e-5; NaN matches NaN).
 * Each case runs in a child process, so a crash is a failure of that case only.
 * --emit llvm builds the .so with the LLVM backend; --jit compiles each case in the
 * child with the LLVM JIT (compiler/jit/jit.h) and runs it with no .so at all.
 * --emit builds the .so with another backend (lowered for its can_call); --filter
 * keeps the cases whose name contains one of the substrings.
 *
 * Outcomes: pass, unsupported (the compiler names an op or dtype it does not
 * support), fail (anything else). The suite passes when every case passes except
 * those listed in LISTS/expected_unsupported.txt (which must still be unsupported:
 * a listed case that now passes or fails differently is reported, so the list
 * cannot hide a regression) and LISTS/known_failures.txt (bugs, each with a reason).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "emit/codegen.h"
#include "emit/emit.h"
#include "jit/jit.h"
#include "fewmul.h"
#include "onnx/onnx.h"
#include "passes/passes.h"

enum { R_PASS = 0, R_UNSUPPORTED = 10, R_FAIL = 11 };

static const FmBackend *backend; /* --emit (NULL: C) */
static int use_jit;              /* --jit */
static fm_model *jit_model;      /* the child's JIT-compiled case */
/* --winograd: the Winograd pass's mode for every case (CI forces 4 on the conv cases) */
static int winograd_mode = FM_WINO_AUTO;

typedef struct {
  char folder[64], name[256], path[1024];
  int result;
  char msg[400];
  double secs;
} Case;

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int cmpcase(const void *a, const void *b) {
  const Case *x = a, *y = b;
  int c = strcmp(x->folder, y->folder);
  return c ? c : strcmp(x->name, y->name);
}

/* ---- the child: one case ---- */
static void child_msg(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void child_msg(int fd, const char *fmt, ...) {
  char buf[400];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > (int)sizeof buf - 1) n = sizeof buf - 1;
  for (int i = 0; i < n; i++)
    if (buf[i] == '\n') buf[i] = ' ';
  if (write(fd, buf, (size_t)n) < 0) _exit(R_FAIL);
}

static int unsupported_msg(const char *m) {
  return strstr(m, "unsupported") || strstr(m, "not supported");
}

static int compare(const Tensor *want, const void *got, int64_t n, char *why, size_t whylen) {
  const double rtol = 1e-3, atol = 1e-5;
  for (int64_t i = 0; i < n; i++) {
    double w, g;
    switch (want->dtype) {
    case FM_F32: w = ((const float *)want->data)[i], g = ((const float *)got)[i]; break;
    case FM_F64: w = ((const double *)want->data)[i], g = ((const double *)got)[i]; break;
    default: {
      size_t es = fm_dtype_size(want->dtype);
      if (memcmp((const char *)want->data + i * es, (const char *)got + i * es, es)) {
        snprintf(why, whylen, "element %lld differs (integer/bool output)", (long long)i);
        return 0;
      }
      continue;
    }
    }
    if (isnan(w) && isnan(g)) continue;
    if (isinf(w) && w == g) continue;
    if (!(fabs(g - w) <= atol + rtol * fabs(w))) {
      snprintf(why, whylen, "element %lld: got %.7g, want %.7g", (long long)i, g, w);
      return 0;
    }
  }
  return 1;
}

/* Loads the case's model. Inputs with unknown dims get the shapes of the first data
   set's inputs. bake: 0 none, 1 integer inputs, 2 every input becomes a constant with
   the first data set's value (backend tests feed shape parameters, axes and the like as
   inputs; fewmul needs those at compile time). */
static Graph *load_case(const Case *c, const char *model, int bake) {
  Arena a = {0};
  Graph *g = fm_onnx_load(model, NULL);
  int need = 0;
  for (int i = 0; i < g->ninputs; i++)
    for (int d = 0; d < g->inputs[i]->rank; d++) need |= g->inputs[i]->dims[d] < 0;
  if (need) {
    FmShapeOverride *sh = fm_alloc(&a, sizeof *sh * (size_t)(g->ninputs + 1));
    for (int i = 0; i < g->ninputs; i++) {
      char p[1200];
      snprintf(p, sizeof p, "%s/test_data_set_0/input_%d.pb", c->path, i);
      Tensor *x = fm_onnx_read_tensor(g, p);
      sh[i].name = g->inputs[i]->name;
      sh[i].rank = x->rank;
      memcpy(sh[i].dims, x->dims, sizeof x->dims);
    }
    FmLoadOpts lo = {.shapes = sh, .nshapes = g->ninputs};
    Graph *g2 = fm_onnx_load(model, &lo);
    fm_graph_free(g);
    g = g2;
  }
  fm_arena_free(&a);
  if (bake) {
    int k = 0;
    for (int i = 0; i < g->ninputs; i++) {
      Tensor *t = g->inputs[i];
      if (bake == 1 && (t->dtype == FM_F32 || t->dtype == FM_F64 || t->dtype == FM_F16)) {
        g->inputs[k++] = t;
        continue;
      }
      char p[1200];
      snprintf(p, sizeof p, "%s/test_data_set_0/input_%d.pb", c->path, i);
      Tensor *x = fm_onnx_read_tensor(g, p);
      t->data = x->data;
      t->is_input = 0;
    }
    g->ninputs = k;
  }
  return g;
}

static int compile_case(const Case *c, const char *model, const char *out, int bake, Graph **gp, char *msg, size_t msglen) {
  Graph *volatile g = NULL;
  FmTry t;
  FM_TRY(&t) {
    g = load_case(c, model, bake);
    FmPassOpts po = {.winograd = winograd_mode};
    if (po.winograd == FM_WINO_AUTO && backend && backend->can_call && !backend->can_call("fm_wino_gemm")) po.winograd = FM_WINO_OFF;
    fm_run_passes(g, &po);
    FmLowerOpts lo = *fm_lower_opts_default();
    if (backend) lo.can_call = backend->can_call;
    KProgram *p = fm_lower_graph_opts(g, &lo);
    FmCodegenOpts co = {.outdir = out, .name = "model", .source = model, .quiet = 1, .backend = backend};
    if (use_jit) jit_model = fm_jit_model(p, "model");
    else fm_codegen(p, &co);
    fm_try_pop(&t);
  } else {
    snprintf(msg, msglen, "%s", fm_errmsg());
    return -1;
  }
  *gp = g;
  return 0;
}

static int run_case(const Case *c, const char *workdir, int fd) {
  char model[1100], out[1400], msg[400];
  snprintf(model, sizeof model, "%s/model.onnx", c->path);
  snprintf(out, sizeof out, "%s/%s_%s", workdir, c->folder, c->name);
  Graph *g = NULL;
  int bake = 0;
  while (compile_case(c, model, out, bake, &g, msg, sizeof msg)) {
    if (bake < 2 && (strstr(msg, "must be a constant") || strstr(msg, "known at compile time"))) {
      bake++;
      continue;
    }
    child_msg(fd, "%s", msg);
    return unsupported_msg(msg) ? R_UNSUPPORTED : R_FAIL;
  }
  /* Graph input names in model order, to find each runtime input's .pb file. */
  Graph *orig = fm_onnx_load(model, NULL);
  FmTry t;
  fm_model *m;
  if (use_jit) m = jit_model;
  else if (fm_load(out, &m) != FM_OK) {
    child_msg(fd, "runtime load: %s", fm_last_error());
    return R_FAIL;
  }
  int ok = 1, nsets = 0;
  for (int s = 0; ok; s++) {
    char set[1100];
    snprintf(set, sizeof set, "%s/test_data_set_%d", c->path, s);
    if (!is_dir(set) || (bake && s > 0)) break; /* baked inputs: data set 0 only */
    nsets++;
    int nin = fm_num_inputs(m), nout = fm_num_outputs(m);
    const void *ins[64];
    void *outs[64];
    Tensor *want[64];
    volatile int64_t batch = 1;
    FM_TRY(&t) {
      for (int i = 0; i < nin && i < 64; i++) {
        char p[1200];
        int k = 0;
        while (k < orig->ninputs && strcmp(orig->inputs[k]->name, fm_input(m, i)->name)) k++;
        snprintf(p, sizeof p, "%s/input_%d.pb", set, k);
        Tensor *x = fm_onnx_read_tensor(g, p);
        const fm_io_desc *d = fm_input(m, i);
        if (d->rank > 0 && d->dims[0] < 0) batch = x->dims[0] / -d->dims[0];
        ins[i] = x->data;
      }
      for (int i = 0; i < nout && i < 64; i++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/output_%d.pb", set, i);
        want[i] = fm_onnx_read_tensor(g, p);
      }
      fm_try_pop(&t);
    } else {
      child_msg(fd, "reading test data: %s", fm_errmsg());
      return R_FAIL;
    }
    for (int i = 0; i < nout; i++) {
      const fm_io_desc *d = fm_output(m, i);
      int64_t n = fm_io_numel(d, batch);
      if (n != fm_numel(want[i]) || (int)want[i]->dtype != d->dtype) {
        child_msg(fd, "output %d ('%s'): %lld elements of dtype %d, want %lld of dtype %d", i, d->name,
                  (long long)n, d->dtype, (long long)fm_numel(want[i]), want[i]->dtype);
        return R_FAIL;
      }
      outs[i] = calloc((size_t)(n ? n : 1), fm_dtype_bytes(d->dtype) ? fm_dtype_bytes(d->dtype) : 1);
    }
    if (fm_run(m, batch, ins, outs) != FM_OK) {
      child_msg(fd, "run: %s", fm_last_error());
      return R_FAIL;
    }
    for (int i = 0; i < nout && ok; i++) {
      char why[200];
      if (!compare(want[i], outs[i], fm_numel(want[i]), why, sizeof why)) {
        child_msg(fd, "data set %d, output %d ('%s'): %s", s, i, fm_output(m, i)->name, why);
        ok = 0;
      }
    }
  }
  if (!nsets) {
    child_msg(fd, "no test_data_set_*");
    return R_FAIL;
  }
  return ok ? R_PASS : R_FAIL;
}

/* ---- lists ---- */
typedef struct { char **names; char **notes; int n; } List;

static void list_read(List *l, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return;
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    if (!line[0] || line[0] == '#') continue;
    char *sp = strpbrk(line, " \t");
    char *note = "";
    if (sp) {
      *sp = 0;
      note = sp + 1;
      while (*note == ' ' || *note == '\t') note++;
    }
    l->names = realloc(l->names, sizeof(char *) * (size_t)(l->n + 1));
    l->notes = realloc(l->notes, sizeof(char *) * (size_t)(l->n + 1));
    l->names[l->n] = strdup(line);
    l->notes[l->n] = strdup(note);
    l->n++;
  }
  fclose(f);
}

static int list_has(const List *l, const char *key) {
  for (int i = 0; i < l->n; i++)
    if (!strcmp(l->names[i], key)) return 1;
  return 0;
}

/* name contains one of the comma-separated substrings of filter */
static int matches(const char *name, const char *filter) {
  for (const char *p = filter; *p;) {
    size_t n = strcspn(p, ",");
    char sub[128];
    snprintf(sub, sizeof sub, "%.*s", (int)(n < 127 ? n : 127), p);
    if (n && strstr(name, sub)) return 1;
    p += n + (p[n] == ',');
  }
  return 0;
}

/* ---- main ---- */
int main(int argc, char **argv) {
  int jobs = 2, verbose = 0;
  const char *report = NULL, *lists = NULL, *filter = NULL, *update = NULL;
  Case *cases = NULL;
  int ncases = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-j") && i + 1 < argc) jobs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--report") && i + 1 < argc) report = argv[++i];
    else if (!strcmp(argv[i], "--lists") && i + 1 < argc) lists = argv[++i];
    else if (!strcmp(argv[i], "--filter") && i + 1 < argc) filter = argv[++i];
    else if (!strcmp(argv[i], "--winograd") && i + 1 < argc) {
      const char *v = argv[++i];
      winograd_mode = !strcmp(v, "off") ? FM_WINO_OFF : !strcmp(v, "auto") ? FM_WINO_AUTO : atoi(v);
      if (winograd_mode != FM_WINO_OFF && winograd_mode != FM_WINO_AUTO && winograd_mode != 2 &&
          winograd_mode != 4 && winograd_mode != 6) {
        fprintf(stderr, "fm_conformance: --winograd must be auto, off, 2, 4 or 6\n");
        return 2;
      }
    }
    else if (!strcmp(argv[i], "--write-lists") && i + 1 < argc) update = argv[++i];
    else if (!strcmp(argv[i], "-v")) verbose = 1;
    else if (!strcmp(argv[i], "--jit")) use_jit = 1;
    else if (!strcmp(argv[i], "--emit") && i + 1 < argc) {
      if (!(backend = fm_backend_find(argv[++i]))) {
        fprintf(stderr, "fm_conformance: unknown --emit '%s' (one of: %s)\n", argv[i], fm_backend_names());
        return 2;
      }
    } else if (argv[i][0] == '-') {
      fprintf(stderr, "fm_conformance: unknown option '%s'\n", argv[i]);
      return 2;
    } else {
      DIR *d = opendir(argv[i]);
      if (!d) {
        fprintf(stderr, "fm_conformance: cannot open '%s': %s\n", argv[i], strerror(errno));
        return 2;
      }
      const char *folder = strrchr(argv[i], '/') ? strrchr(argv[i], '/') + 1 : argv[i];
      for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        if (filter && !matches(e->d_name, filter)) continue;
        Case c = {0};
        snprintf(c.folder, sizeof c.folder, "%s", folder);
        snprintf(c.name, sizeof c.name, "%s", e->d_name);
        snprintf(c.path, sizeof c.path, "%s/%s", argv[i], e->d_name);
        char m[1100];
        snprintf(m, sizeof m, "%s/model.onnx", c.path);
        if (!is_file(m)) continue;
        cases = realloc(cases, sizeof(Case) * (size_t)(ncases + 1));
        cases[ncases++] = c;
      }
      closedir(d);
    }
  }
  if (!ncases) {
    fprintf(stderr, "fm_conformance: no test cases found\n");
    return 2;
  }
  qsort(cases, (size_t)ncases, sizeof(Case), cmpcase);

  char workdir[] = "/tmp/fm_conformance_XXXXXX";
  if (!mkdtemp(workdir)) {
    perror("mkdtemp");
    return 2;
  }
  setenv("FEWMUL_CC_QUIET", "1", 1);

  /* A pool of `jobs` children, each running one case and reporting through a pipe. */
  typedef struct { pid_t pid; int fd, idx; struct timespec t0; } Slot;
  Slot *slots = calloc((size_t)jobs, sizeof(Slot));
  int next = 0, running = 0, done = 0;
  while (done < ncases) {
    while (running < jobs && next < ncases) {
      int pfd[2];
      if (pipe(pfd)) { perror("pipe"); return 2; }
      int k = 0;
      while (slots[k].pid) k++;
      pid_t pid = fork();
      if (pid == 0) {
        close(pfd[0]);
        alarm(120);
        _exit(run_case(&cases[next], workdir, pfd[1]));
      }
      close(pfd[1]);
      slots[k].pid = pid, slots[k].fd = pfd[0], slots[k].idx = next;
      clock_gettime(CLOCK_MONOTONIC, &slots[k].t0);
      next++, running++;
    }
    int st;
    pid_t pid = wait(&st);
    if (pid < 0) break;
    for (int k = 0; k < jobs; k++) {
      if (slots[k].pid != pid) continue;
      Case *c = &cases[slots[k].idx];
      ssize_t n = read(slots[k].fd, c->msg, sizeof c->msg - 1);
      c->msg[n > 0 ? n : 0] = 0;
      close(slots[k].fd);
      struct timespec t1;
      clock_gettime(CLOCK_MONOTONIC, &t1);
      c->secs = (double)(t1.tv_sec - slots[k].t0.tv_sec) + (double)(t1.tv_nsec - slots[k].t0.tv_nsec) * 1e-9;
      if (WIFEXITED(st)) c->result = WEXITSTATUS(st) == R_PASS ? R_PASS
                                     : WEXITSTATUS(st) == R_UNSUPPORTED ? R_UNSUPPORTED : R_FAIL;
      else {
        c->result = R_FAIL;
        snprintf(c->msg, sizeof c->msg, "crashed (signal %d%s)", WTERMSIG(st),
                 WTERMSIG(st) == SIGALRM ? ": timeout" : "");
      }
      if (verbose || c->result == R_FAIL)
        fprintf(stderr, "%-12s %s/%s %s\n", c->result == R_PASS ? "pass" : c->result == R_UNSUPPORTED ? "unsupported" : "FAIL",
                c->folder, c->name, c->msg);
      slots[k].pid = 0;
      running--, done++;
      if (done % 100 == 0) fprintf(stderr, "fm_conformance: %d/%d cases\n", done, ncases);
    }
  }
  char rm[600];
  snprintf(rm, sizeof rm, "rm -rf %s", workdir);
  if (system(rm)) {}

  /* Tally per folder, check against the lists. */
  List unsup = {0}, known = {0};
  if (lists) {
    char p[700];
    snprintf(p, sizeof p, "%s/expected_unsupported.txt", lists);
    list_read(&unsup, p);
    snprintf(p, sizeof p, "%s/known_failures.txt", lists);
    list_read(&known, p);
  }
  int bad = 0;
  for (int i = 0; i < ncases; i++) {
    Case *c = &cases[i];
    char key[400];
    snprintf(key, sizeof key, "%s/%s", c->folder, c->name);
    int lu = list_has(&unsup, key), lk = list_has(&known, key);
    if (c->result == R_PASS && (lu || lk)) {
      printf("now passing (remove it from the %s list): %s\n", lu ? "expected-unsupported" : "known-failures", key);
      bad++;
    } else if (c->result == R_UNSUPPORTED && !lu) {
      printf("UNSUPPORTED (not in expected_unsupported.txt): %s: %s\n", key, c->msg);
      bad++;
    } else if (c->result == R_FAIL && !lk) {
      printf("FAIL: %s: %s\n", key, c->msg);
      bad++;
    }
  }
  if (update) { /* regenerate the unsupported list from this run (a human reviews the diff) */
    FILE *f = fopen(update, "w");
    if (f) {
      fprintf(f, "# ONNX backend cases fewmul does not support yet, with the reason the compiler gives.\n"
                 "# Generated by fm_conformance --write-lists; the conformance test fails if a listed case\n"
                 "# starts passing (remove it) or an unlisted one becomes unsupported.\n");
      for (int i = 0; i < ncases; i++)
        if (cases[i].result == R_UNSUPPORTED) fprintf(f, "%s/%s %s\n", cases[i].folder, cases[i].name, cases[i].msg);
      fclose(f);
    }
  }
  if (report) {
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp", report);
    FILE *f = fopen(tmp, "w");
    if (!f) { fprintf(stderr, "fm_conformance: cannot write '%s'\n", report); return 2; }
    fprintf(f, "# ONNX backend conformance\n\n"
               "Every case of Debian's `libonnx-testdata` in the folders below is compiled to C, built,\n"
               "run on each `test_data_set_*` and compared with the expected outputs (rtol 1e-3,\n"
               "atol 1e-5). Regenerate with `build/tests/fm_conformance --report docs/conformance.md\n"
               "--lists tests/conformance /usr/share/libonnx-testdata/data/{node,pytorch-converted,pytorch-operator,simple}`\n"
               "(the `conformance/onnx_backend` test runs exactly this).\n\n"
               "Many node cases feed shape-steering values (Reshape targets, Slice starts, axes,\n"
               "pads, Resize scales) as graph inputs. fewmul resolves shapes at compile time, so\n"
               "when the compiler asks for such a value the runner compiles the case again with\n"
               "its integer inputs (then, if needed, all inputs) made constants from\n"
               "`test_data_set_0`, and runs that data set.\n\n"
               "For comparison, onnx2c (the nearest C-emitting peer) registers fewer than 400\n"
               "backend node cases in its own test suite (`test/CMakeLists.txt`).\n\n"
               "| folder | attempted | passed | failed | unsupported |\n|---|---|---|---|---|\n");
    int tp = 0, tf = 0, tu = 0;
    for (int i = 0; i < ncases;) {
      int j = i, p = 0, fl = 0, u = 0;
      for (; j < ncases && !strcmp(cases[j].folder, cases[i].folder); j++)
        p += cases[j].result == R_PASS, fl += cases[j].result == R_FAIL, u += cases[j].result == R_UNSUPPORTED;
      fprintf(f, "| %s | %d | %d | %d | %d |\n", cases[i].folder, j - i, p, fl, u);
      tp += p, tf += fl, tu += u;
      i = j;
    }
    fprintf(f, "| **all** | %d | %d | %d | %d |\n\n", ncases, tp, tf, tu);
    fprintf(f, "## Failing cases\n\n");
    int any = 0;
    for (int i = 0; i < ncases; i++)
      if (cases[i].result == R_FAIL) fprintf(f, "- `%s/%s`: %s\n", cases[i].folder, cases[i].name, cases[i].msg), any = 1;
    if (!any) fprintf(f, "None.\n");
    fprintf(f, "\n## Unsupported cases\n\n");
    any = 0;
    for (int i = 0; i < ncases; i++)
      if (cases[i].result == R_UNSUPPORTED) fprintf(f, "- `%s/%s`: %s\n", cases[i].folder, cases[i].name, cases[i].msg), any = 1;
    if (!any) fprintf(f, "None.\n");
    fclose(f);
    rename(tmp, report);
  }
  int np = 0, nf = 0, nu = 0;
  for (int i = 0; i < ncases; i++)
    np += cases[i].result == R_PASS, nf += cases[i].result == R_FAIL, nu += cases[i].result == R_UNSUPPORTED;
  printf("conformance: %d cases: %d pass, %d fail, %d unsupported; %d unexpected\n", ncases, np, nf, nu, bad);
  return bad ? 1 : 0;
}
