/* cmd_compile.c - `fewmul compile`: load -> passes -> lower -> memory plan -> C -> .so.
 * The same load/lower steps serve cost, bench and run (for .onnx arguments). */
#include "driver.h"
#include "emit/codegen.h"
#include "emit/emit.h"
#include "jit/jit.h"
#include "passes/passes.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

static const char help[] =
  "usage: fewmul compile MODEL.onnx -o DIR [options]\n"
  "\n"
  "Writes DIR/<name>.c, DIR/<name>.h and DIR/<name>.so (built with $CC, default gcc).\n"
  "\n"
  "  -o, --output DIR         output directory (created if missing)\n"
  "  --name NAME              C prefix and file stem (default: model)\n"
  "  --weights=embed|file     weights as C arrays, or in DIR/<name>.weights\n"
  "                           (default: embed, file above 64 MB of weights)\n"
  "  --shape NAME=1x3x32x32   fix the shape of a graph input (repeatable; N = batch)\n"
  "  --dump-after=PASS        print the graph IR after PASS (or 'all', 'load')\n"
  "  --dump-kernel            print the kernel IR of every node\n"
  "  --no-fuse                skip BN folding and activation fusion\n"
  "  --no-so                  write the C files only (no C compiler run)\n"
  "%s"
  "  -q, --quiet              no summary line\n";

const char fm_driver_build_help[] =
  "  --target=T               the machine the code is for: native (default: this machine),\n"
  "                           x86-64-v3 (AVX2+FMA), x86-64-v4 (AVX-512), generic (x86-64);\n"
  "                           sets -march of the generated code's build and the tile sizes\n"
  "  --emit=c|llvm|opencl|cuda  the backend: C source built by $CC (default); LLVM IR built\n"
  "                           with the LLVM-C API (<name>.ll, <name>.o; the .so is linked\n"
  "                           by $CC); OpenCL C kernels (<name>.cl) with OpenCL host code\n"
  "                           (<name>.c, linked with -lOpenCL); or CUDA (<name>.cu, kernels\n"
  "                           and host code, built by $NVCC, else nvcc on PATH or in\n"
  "                           /usr/local/cuda/bin). Device backends always write\n"
  "                           the weights file (uploaded once)\n"
  "  --conv=auto|direct|gemm  Conv lowering: auto (im2col + GEMM where it pays), the direct\n"
  "                           loops, or im2col + GEMM wherever it applies\n"
  "  --gemm=auto|direct       float32 Gemm/MatMul: the CPU library's fm_sgemm, or direct loops\n"
  "  --specialize=auto|all|none  add/shift kernels for ternary and power-of-two weights:\n"
  "                           where they pay (default), wherever weights qualify, or never\n"
  "  --no-specialize          same as --specialize=none\n"
  "  --winograd=auto|off|2|4|6  3x3 stride-1 convs as Winograd F(m,3): tile per layer by\n"
  "                           the cost model (default auto), none, or forced\n";

static int choice(const char *cmd, const char *flag, const char *v, const char *const *names, int n) {
  for (int k = 0; k < n; k++)
    if (!strcmp(v, names[k])) return k;
  char all[128] = "";
  for (int k = 0; k < n; k++) snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", k ? ", " : "", names[k]);
  fm_usage(cmd, "unknown %s '%s' (one of: %s)", flag, v, all);
}

int fm_driver_build_flag(const char *cmd, int argc, char **argv, int *i, FmBuildFlags *f) {
  static const char *const conv[] = {"auto", "direct", "gemm"}, *const gemm[] = {"auto", "direct"};
  static const char *const spec[] = {"auto", "all", "none"};
  const char *v;
  FmTarget t;
  if ((v = fm_opt(cmd, argc, argv, i, "--target"))) {
    if (fm_target_get(v, &t)) fm_usage(cmd, "unknown --target '%s' (one of: %s)", v, fm_target_names());
    f->target = v;
  } else if ((v = fm_opt(cmd, argc, argv, i, "--emit"))) {
    if (!fm_backend_find(v)) fm_usage(cmd, "unknown --emit '%s' (this fewmul has: %s)", v, fm_backend_names());
    f->emit = v;
  } else if ((v = fm_opt(cmd, argc, argv, i, "--conv"))) {
    f->conv = choice(cmd, "--conv", v, conv, 3);
  } else if ((v = fm_opt(cmd, argc, argv, i, "--gemm"))) {
    f->gemm = choice(cmd, "--gemm", v, gemm, 2);
  } else if ((v = fm_opt(cmd, argc, argv, i, "--specialize"))) {
    f->specialize = choice(cmd, "--specialize", v, spec, 3);
  } else if (fm_flag(argv, *i, "--no-specialize")) {
    f->specialize = FM_SPECIALIZE_NONE;
  } else if ((v = fm_opt(cmd, argc, argv, i, "--winograd"))) {
    if (!strcmp(v, "auto")) f->winograd = FM_WINO_AUTO;
    else if (!strcmp(v, "off")) f->winograd = FM_WINO_OFF;
    else if (!strcmp(v, "2") || !strcmp(v, "4") || !strcmp(v, "6")) f->winograd = atoi(v);
    else fm_usage(cmd, "--winograd must be auto, off, 2, 4 or 6, got '%s'", v);
  } else {
    return 0;
  }
  return 1;
}

static void lower_opts(const FmBuildFlags *bf, FmLowerOpts *lo) {
  memset(lo, 0, sizeof *lo);
  if (fm_target_get(bf->target, &lo->target)) fm_fail("unknown target '%s'", bf->target);
  lo->conv = (FmLowerChoice)bf->conv;
  lo->gemm = (FmLowerChoice)bf->gemm;
  lo->can_call = fm_backend_find(bf->emit ? bf->emit : "c")->can_call;
}

Graph *fm_driver_load(const char *path, const FmShapeOverride *shapes, int nshapes) {
  struct stat st;
  if (stat(path, &st) != 0) fm_fail("cannot open model '%s': %s", path, strerror(errno));
  if (S_ISDIR(st.st_mode)) fm_fail("'%s' is a directory, expected an .onnx file", path);
  FmLoadOpts lo = {.shapes = shapes, .nshapes = nshapes};
  return fm_onnx_load(path, &lo);
}

KProgram *fm_driver_lower(Graph *g, const char *dump_after, int dump_kernel, int no_fuse, const FmBuildFlags *bf) {
  FmBuildFlags def = {0};
  if (!bf) bf = &def;
  FmPassOpts po = {.dump_after = dump_after, .no_fuse = no_fuse, .specialize = bf->specialize,
                   .winograd = bf->winograd};
  /* Winograd's batched GEMM is a CPU library routine: a backend without it (the GPU
     printers, today) keeps the convs as they are unless a tile is forced */
  const FmBackend *be = fm_backend_find(bf->emit ? bf->emit : "c");
  if (po.winograd == FM_WINO_AUTO && be && be->can_call && !be->can_call("fm_wino_gemm")) po.winograd = FM_WINO_OFF;
  fm_run_passes(g, &po);
  FmLowerOpts lo;
  lower_opts(bf, &lo);
  KProgram *p = fm_lower_graph_opts(g, &lo);
  if (dump_kernel)
    for (KFn *fn = p->fns; fn; fn = fn->next) fm_kdump(fn, stderr);
  return p;
}

void fm_driver_compile(const FmCompileArgs *c) {
  Graph *g = fm_driver_load(c->model, c->shapes, c->nshapes);
  KProgram *p = fm_driver_lower(g, c->dump_after, c->dump_kernel, c->no_fuse, &c->build);
  FmTarget t;
  if (fm_target_get(c->build.target, &t)) fm_fail("unknown target '%s'", c->build.target);
  FmCodegenOpts o = {.outdir = c->outdir, .name = c->name, .source = c->model, .weights = c->weights,
                     .no_so = c->no_so, .quiet = c->quiet, .march = t.march,
                     .backend = fm_backend_find(c->build.emit ? c->build.emit : "c")};
  fm_codegen(p, &o);
  if (c->no_so) { /* a model.so of an earlier compile would not be this model */
    char so[4200];
    snprintf(so, sizeof so, "%s/%s.so", c->outdir, c->name ? c->name : "model");
    if (unlink(so) == 0 && !c->quiet) printf("fewmul: removed the stale %s (--no-so)\n", so);
  }
  if (!c->quiet)
    printf("fewmul: compiled %s -> %s/%s (%d kernels)\n", c->model, c->outdir,
           c->name ? c->name : "model", p->nfns);
  fm_graph_free(g);
}

const char *fm_driver_compile_tmp(const char *onnx, const FmShapeOverride *shapes, int nshapes) {
  const char *base = getenv("TMPDIR");
  static char dir[4096];
  snprintf(dir, sizeof dir, "%s/fewmul-XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(dir)) fm_fail("cannot create a temporary directory: %s", strerror(errno));
  fm_cleanup_add_tree(dir);
  FmCompileArgs c = {.model = onnx, .outdir = dir, .name = "model", .quiet = 1};
  if (nshapes) memcpy(c.shapes, shapes, sizeof(FmShapeOverride) * (size_t)nshapes); /* eval: NULL, 0 */
  c.nshapes = nshapes;
  fm_driver_compile(&c);
  /* fm_codegen forgot its output directory (complete): it is still temporary, so any
     later failure or signal removes it with everything in it (fm_driver_tmp_done) */
  fm_cleanup_add_tree(dir);
  return dir;
}

void fm_driver_tmp_done(const char *dir) {
  fm_remove_tree(dir);
  fm_cleanup_forget(dir);
}

static double ms_of(clockid_t c) {
  struct timespec t;
  clock_gettime(c, &t);
  return 1e3 * (double)t.tv_sec + 1e-6 * (double)t.tv_nsec;
}

fm_model *fm_driver_jit(const char *onnx, const FmShapeOverride *shapes, int nshapes, int quiet) {
  if (!fm_has_suffix(onnx, ".onnx")) fm_fail("--jit compiles an .onnx model, got '%s'", onnx);
  if (!fm_llvm_available()) fm_jit_model(NULL, NULL); /* fails: built without LLVM */
  double w0 = ms_of(CLOCK_MONOTONIC), c0 = ms_of(CLOCK_PROCESS_CPUTIME_ID);
  Graph *g = fm_driver_load(onnx, shapes, nshapes);
  FmBuildFlags bf = {.emit = "llvm"};
  KProgram *p = fm_driver_lower(g, NULL, 0, 0, &bf);
  double w1 = ms_of(CLOCK_MONOTONIC), c1 = ms_of(CLOCK_PROCESS_CPUTIME_ID);
  fm_model *m = fm_jit_model(p, "model");
  double w2 = ms_of(CLOCK_MONOTONIC), c2 = ms_of(CLOCK_PROCESS_CPUTIME_ID);
  if (!quiet)
    printf("jit-compiled %s in %.0f ms (load, passes, lowering %.0f ms; LLVM %.0f ms; CPU time %.0f + %.0f ms)\n",
           onnx, w2 - w0, w1 - w0, w2 - w1, c1 - c0, c2 - c1);
  return m; /* the graph stays: the JIT's code and constants live until exit */
}

void fm_driver_add_shape(const char *cmd, Arena *a, FmShapeOverride *shapes, int *n, const char *v) {
  if (*n >= 16) fm_usage(cmd, "at most 16 --shape options");
  fm_shape_override_parse(a, v, &shapes[(*n)++]);
}

int fm_cmd_compile(int argc, char **argv) {
  const char *cmd = "compile";
  if (fm_wants_help(argc, argv)) return printf(help, fm_driver_build_help), 0;
  Arena a = {0};
  FmCompileArgs c = {0};
  for (int i = 0; i < argc; i++) {
    const char *v;
    if ((v = fm_opt(cmd, argc, argv, &i, "-o")) || (v = fm_opt(cmd, argc, argv, &i, "--output"))) c.outdir = v;
    else if ((v = fm_opt(cmd, argc, argv, &i, "--name"))) c.name = v;
    else if ((v = fm_opt(cmd, argc, argv, &i, "--weights"))) {
      if (!strcmp(v, "embed")) c.weights = FM_WEIGHTS_EMBED;
      else if (!strcmp(v, "file")) c.weights = FM_WEIGHTS_FILE;
      else fm_usage(cmd, "--weights must be 'embed' or 'file', got '%s'", v);
    } else if ((v = fm_opt(cmd, argc, argv, &i, "--shape"))) fm_driver_add_shape(cmd, &a, c.shapes, &c.nshapes, v);
    else if ((v = fm_opt(cmd, argc, argv, &i, "--dump-after"))) c.dump_after = v;
    else if (fm_flag(argv, i, "--dump-kernel")) c.dump_kernel = 1;
    else if (fm_flag(argv, i, "--no-fuse")) c.no_fuse = 1;
    else if (fm_flag(argv, i, "--no-so")) c.no_so = 1;
    else if (fm_driver_build_flag(cmd, argc, argv, &i, &c.build)) continue;
    else if (fm_flag(argv, i, "-q") || fm_flag(argv, i, "--quiet")) c.quiet = 1;
    else if (argv[i][0] == '-' && argv[i][1]) fm_usage(cmd, "unknown option '%s'", argv[i]);
    else if (!c.model) c.model = argv[i];
    else fm_usage(cmd, "unexpected argument '%s'", argv[i]);
  }
  if (!c.model) fm_usage(cmd, "missing MODEL.onnx");
  if (!c.outdir) fm_usage(cmd, "missing -o DIR");
  if (c.name && !fm_is_c_ident(c.name)) fm_usage(cmd, "--name '%s' is not a C identifier", c.name);
  fm_driver_compile(&c);
  fm_arena_free(&a);
  return 0;
}
