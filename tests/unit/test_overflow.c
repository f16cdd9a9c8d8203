/* test_overflow.c - hostile sizes (issue 15, classes 1 and 2, compiler side): shapes
 * whose element counts or window geometry overflow int64, inputs that claim more data
 * than they hold, and memory plans whose sizes wrap. Each must be refused with one
 * fm_fail naming the node or file, never compiled with a wrapped size.
 *
 * The hostile models are built here as graph IR, written as ONNX and loaded back, then
 * run through the whole compile pipeline short of the C compiler (load, passes,
 * lowering, memory plan). `test_overflow --write-corpus DIR` writes them (and the
 * hostile .npy/.pb inputs) as the fuzzers' seed corpus, tests/fuzz/corpus/.
 */
#include "check.h"
#include "fewmul.h"
#include "emit/codegen.h"
#include "io/io.h"
#include "onnx/onnx.h"
#include "passes/passes.h"
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BIG (INT64_C(1) << 62)

static const char *corpus_dir; /* --write-corpus */
static char tmpdir[256];

static Tensor *input(Graph *g, const char *name, FmDType dt, int rank, const int64_t *dims) {
  Tensor *t = fm_tensor_new(g, name);
  t->dtype = dt, t->rank = rank, t->is_input = 1;
  for (int i = 0; i < rank; i++) t->dims[i] = dims[i];
  if (!g->inputs) g->inputs = fm_alloc(&g->arena, sizeof(Tensor *) * 8);
  g->inputs[g->ninputs++] = t;
  return t;
}

static Tensor *ints(Graph *g, const char *name, int n, const int64_t *v) {
  int64_t d = n;
  return fm_tensor_const(g, name, FM_I64, 1, &d, v);
}

static Node *node(Graph *g, OpKind op, const char *name, int nin, Tensor **in, const char *out) {
  Node *n = fm_node_new(g, op, name, nin, 1);
  for (int i = 0; i < nin; i++) n->in[i] = in[i];
  Tensor *y = fm_tensor_new(g, out);
  n->out[0] = y, y->producer = n;
  return n;
}

static void output(Graph *g, Tensor *t) {
  if (!g->outputs) g->outputs = fm_alloc(&g->arena, sizeof(Tensor *) * 8);
  t->is_output = 1;
  g->outputs[g->noutputs++] = t;
}

static void put_file(const char *name, const void *p, size_t n) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", corpus_dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(1);
  }
}

/* Loads the bytes of a model and compiles it as far as the memory plan. Returns the
   plan's max_batch (>= 1), or 0 with the error in err. */
static int64_t compile_mem(const void *buf, size_t n, char *err, size_t errn) {
  FmLoadOpts lo = {.no_external_data = 1};
  Graph *volatile g = NULL;
  volatile int64_t maxn = 0;
  FmTry t;
  err[0] = 0;
  FM_TRY(&t) {
    g = fm_onnx_load_mem(buf, n, "hostile.onnx", &lo);
    fm_run_passes(g, NULL);
    KProgram *p = fm_lower_graph(g);
    FmMemPlan *mp = fm_memplan(p);
    maxn = mp->max_batch;
    fm_try_pop(&t);
  } else {
    snprintf(err, errn, "%s", fm_errmsg());
  }
  fm_graph_free(g);
  return maxn;
}

/* Writes g as ONNX (and into the corpus), frees it, compiles the bytes. */
static int64_t compile_graph(Graph *g, const char *name, char *err, size_t errn) {
  size_t n;
  void *buf = fm_onnx_write_mem(g, NULL, &n);
  fm_graph_free(g);
  if (corpus_dir) {
    char f[256];
    snprintf(f, sizeof f, "%s.onnx", name);
    put_file(f, buf, n);
  }
  int64_t r = compile_mem(buf, n, err, errn);
  free(buf);
  return r;
}

static int has(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

/* The model must be refused with a message naming `who`. */
static void expect_refused(Graph *g, const char *name, const char *who) {
  char err[2048];
  int64_t r = compile_graph(g, name, err, sizeof err);
  if (r || !has(err, who)) fprintf(stderr, "%s: compiled=%d, error: '%s' (want '%s')\n", name, r != 0, err, who);
  CHECK(r == 0 && has(err, who));
}

/* ConstantOfShape [2^62+1, 4] (wraps to 4 elements) feeding a Gather: the constant
   was emitted with the wrapped size and the Gather read outside it. */
static void test_constant_of_shape(void) {
  Graph *g = fm_graph_new();
  int64_t sv[2] = {BIG + 1, 4}, iv[1] = {3}, xd[1] = {1};
  Tensor *x = input(g, "x", FM_F32, 1, xd);
  Tensor *in[2] = {ints(g, "shape", 2, sv)};
  Node *c = node(g, OP_ConstantOfShape, "cos", 1, in, "c");
  in[0] = c->out[0], in[1] = ints(g, "idx", 1, iv);
  Node *ga = node(g, OP_Gather, "gather", 2, in, "gth");
  in[0] = ga->out[0], in[1] = x;
  output(g, node(g, OP_Add, "add", 2, in, "y")->out[0]);
  expect_refused(g, "constant_of_shape_wraps", "node 'cos'");
}

static void test_expand(void) {
  Graph *g = fm_graph_new();
  int64_t xd[2] = {1, 1}, sv[3] = {BIG, 4, 4};
  Tensor *in[2] = {input(g, "x", FM_F32, 2, xd), ints(g, "shape", 3, sv)};
  output(g, node(g, OP_Expand, "expand", 2, in, "y")->out[0]);
  expect_refused(g, "expand_wraps", "node 'expand'");
}

static void test_tile(void) {
  Graph *g = fm_graph_new();
  int64_t xd[2] = {2, 3}, rv[2] = {BIG, 1};
  Tensor *in[2] = {input(g, "x", FM_F32, 2, xd), ints(g, "repeats", 2, rv)};
  output(g, node(g, OP_Tile, "tile", 2, in, "y")->out[0]);
  expect_refused(g, "tile_wraps", "node 'tile'");
}

/* Reshape to [2^40, 2^40, -1]: the target's element count overflows before the -1 is
   inferred (signed overflow in the old dims_size). */
static void test_reshape(void) {
  Graph *g = fm_graph_new();
  int64_t xd[2] = {2, 3}, sv[3] = {INT64_C(1) << 40, INT64_C(1) << 40, -1};
  Tensor *in[2] = {input(g, "x", FM_F32, 2, xd), ints(g, "shape", 3, sv)};
  output(g, node(g, OP_Reshape, "reshape", 2, in, "y")->out[0]);
  expect_refused(g, "reshape_overflows", "node 'reshape'");
}

/* Range over nearly all of int64: limit - start overflows. */
static void test_range(void) {
  Graph *g = fm_graph_new();
  int64_t s = -INT64_MAX, l = INT64_MAX, d = 1, xd[1] = {1};
  Tensor *x = input(g, "x", FM_I64, 1, xd);
  Tensor *in[3] = {fm_tensor_const(g, "start", FM_I64, 0, NULL, &s), fm_tensor_const(g, "limit", FM_I64, 0, NULL, &l),
                   fm_tensor_const(g, "delta", FM_I64, 0, NULL, &d)};
  Node *r = node(g, OP_Range, "range", 3, in, "r");
  in[0] = r->out[0], in[1] = x;
  output(g, node(g, OP_Add, "add", 2, in, "y")->out[0]);
  expect_refused(g, "range_overflows", "node 'range'");
}

/* Pads of 2^61 on both sides: a 2^62-element output. */
static void test_pad(void) {
  Graph *g = fm_graph_new();
  int64_t xd[1] = {4}, pv[2] = {INT64_C(1) << 61, INT64_C(1) << 61};
  Tensor *in[2] = {input(g, "x", FM_F32, 1, xd), ints(g, "pads", 2, pv)};
  output(g, node(g, OP_Pad, "pad", 2, in, "y")->out[0]);
  expect_refused(g, "pad_huge", "node 'pad'");
}

/* Dilation 2^62 on a 3x3 kernel: (k - 1) * d overflows. */
static void test_conv_dilation(void) {
  Graph *g = fm_graph_new();
  int64_t xd[4] = {1, 1, 8, 8}, wd[4] = {1, 1, 3, 3}, dil[2] = {BIG, BIG};
  float w[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  Tensor *in[2] = {input(g, "x", FM_F32, 4, xd), fm_tensor_const(g, "w", FM_F32, 4, wd, w)};
  Node *c = node(g, OP_Conv, "conv", 2, in, "y");
  fm_set_attr_ints(g, c, "dilations", 2, dil);
  output(g, c->out[0]);
  expect_refused(g, "conv_dilation_overflows", "node 'conv'");
}

/* A graph input claiming 2^62 x 4 floats. */
static void test_input(void) {
  Graph *g = fm_graph_new();
  int64_t xd[2] = {BIG, 4};
  Tensor *in[1] = {input(g, "xin", FM_F32, 2, xd)};
  output(g, node(g, OP_Relu, "relu", 1, in, "y")->out[0]);
  expect_refused(g, "input_huge", "'xin'");
}

/* Slice with step INT64_MAX: ceil((end - start) / step) overflowed in the old formula
   (a 0-element result); the right answer is one element. */
static void test_slice_step(void) {
  Graph *g = fm_graph_new();
  int64_t xd[1] = {4}, st[1] = {0}, en[1] = {INT64_MAX}, ax[1] = {0}, sp[1] = {INT64_MAX};
  Tensor *in[5] = {input(g, "x", FM_F32, 1, xd), ints(g, "starts", 1, st), ints(g, "ends", 1, en),
                   ints(g, "axes", 1, ax), ints(g, "steps", 1, sp)};
  Node *s = node(g, OP_Slice, "slice", 5, in, "y");
  output(g, s->out[0]);
  FmTry t;
  int64_t d = -1;
  FM_TRY(&t) {
    fm_run_passes(g, NULL);
    d = g->outputs[0]->dims[0];
    fm_try_pop(&t);
  } else {
    fprintf(stderr, "slice: %s\n", fm_errmsg());
  }
  CHECK(d == 1);
  fm_graph_free(g);
}

/* A symbolic batch: N x 2^38 floats is 2^40 bytes per unit of N; the plan must say how
   large N may be, and the workspace size beyond it is 0 (refused), not a wrapped value. */
static void test_max_batch(void) {
  Graph *g = fm_graph_new();
  int64_t xd[2] = {-1, INT64_C(1) << 38};
  Tensor *in[1] = {input(g, "x", FM_F32, 2, xd)};
  Node *r = node(g, OP_Relu, "relu1", 1, in, "h");
  in[0] = r->out[0];
  output(g, node(g, OP_Relu, "relu2", 1, in, "y")->out[0]);
  FmTry t;
  volatile int64_t maxn = 0;
  volatile size_t at_max = 0, past = 1;
  FM_TRY(&t) {
    fm_run_passes(g, NULL);
    FmMemPlan *mp = fm_memplan(fm_lower_graph(g));
    maxn = mp->max_batch;
    at_max = fm_memplan_size(mp, maxn);
    past = fm_memplan_size(mp, maxn + 1);
    fm_try_pop(&t);
  } else {
    fprintf(stderr, "max_batch: %s\n", fm_errmsg());
  }
  CHECK(maxn >= 1 && maxn < (INT64_C(1) << 22));
  CHECK(at_max > 0 && (int64_t)at_max <= FM_MAX_PLAN_BYTES && past == 0);
  fm_graph_free(g);
}

/* The same model compiled to a .so: its workspace_size(N) must say 0 (not a wrapped
   size: 2^40 * 2^24 bytes is 0 mod 2^64, and it said 64) and run(N) must refuse N
   past max_batch instead of writing outside the workspace. */
static void test_generated_max_batch(void) {
  Graph *g = fm_graph_new();
  int64_t xd[2] = {-1, INT64_C(1) << 38};
  Tensor *in[1] = {input(g, "x", FM_F32, 2, xd)};
  Node *r = node(g, OP_Relu, "relu1", 1, in, "h");
  in[0] = r->out[0];
  output(g, node(g, OP_Relu, "relu2", 1, in, "y")->out[0]);
  char dir[300], so[400];
  snprintf(dir, sizeof dir, "%s/gen", tmpdir);
  snprintf(so, sizeof so, "%s/model.so", dir);
  FmTry t;
  int built = 0;
  FM_TRY(&t) {
    fm_run_passes(g, NULL);
    FmCodegenOpts o = {.outdir = dir, .name = "model", .quiet = 1};
    fm_codegen(fm_lower_graph(g), &o);
    built = 1;
    fm_try_pop(&t);
  } else {
    fprintf(stderr, "generated_max_batch: %s\n", fm_errmsg());
  }
  fm_graph_free(g);
  CHECK(built);
  if (!built) return;
  void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
  const fm_model_desc *(*get)(void) = h ? (const fm_model_desc *(*)(void))dlsym(h, "fewmul_model") : NULL;
  const fm_model_desc *d = get ? get() : NULL;
  CHECK(d != NULL);
  if (d) {
    static _Alignas(64) unsigned char ws[64];
    float one[1] = {0};
    const void *ins[1] = {one};
    void *outs[1] = {one};
    int64_t huge = INT64_C(1) << 24;
    CHECK(d->workspace_size(1) == (INT64_C(1) << 40));
    CHECK(d->workspace_size(huge) == 0);
    CHECK(d->workspace_size(INT64_MAX) == 0);
    CHECK(d->run(huge, ins, outs, ws) != 0);
    CHECK(d->run(INT64_MAX, ins, outs, ws) != 0);
  }
  if (h) dlclose(h);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
}

/* Items whose offsets sum past int64: the planner refuses instead of wrapping. */
static void test_plan_overflow(void) {
  FmMemItem it[3];
  FmLin ends[4];
  for (int i = 0; i < 3; i++) it[i] = (FmMemItem){.size = {INT64_MAX / 2, 0}, .first = 0, .last = 0};
  FmTry t;
  volatile int failed = 0;
  FM_TRY(&t) {
    fm_memplan_items(it, 3, ends);
    fm_try_pop(&t);
  } else {
    failed = has(fm_errmsg(), "overflows");
  }
  CHECK(failed);
}

/* ---- class 2: readers ---- */

static int read_fails(const char *name, const void *p, size_t n, const char *want) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "wb");
  fwrite(p, 1, n, f);
  fclose(f);
  if (corpus_dir) put_file(name, p, n);
  FmArray a;
  FmTry t;
  int failed = 0;
  FM_TRY(&t) {
    fm_array_read(path, &a);
    fm_try_pop(&t);
    fm_array_free(&a);
  } else {
    failed = has(fm_errmsg(), path) && has(fm_errmsg(), want);
    if (!failed) fprintf(stderr, "%s: %s\n", name, fm_errmsg());
  }
  if (!failed) fprintf(stderr, "%s: read without a complaint naming the file\n", name);
  remove(path);
  return failed;
}

static size_t npy(char *buf, const char *shape, size_t ndata) {
  char hdr[128];
  int n = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", shape);
  while ((10 + n + 1) % 64) hdr[n++] = ' ';
  hdr[n++] = '\n';
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  buf[8] = (char)(n & 255), buf[9] = (char)(n >> 8);
  memcpy(buf + 10, hdr, (size_t)n);
  memset(buf + 10 + n, 0, ndata);
  return 10 + (size_t)n + ndata;
}

static void test_npy(void) {
  char buf[512];
  /* 2^62 * 784 * 4 bytes wraps to 0: read as an empty array before */
  size_t n = npy(buf, "4611686018427387904, 1, 28, 28", 0);
  CHECK(read_fails("npy_wraps.npy", buf, n, "too large"));
  n = npy(buf, "1000, 1000", 16); /* claims 4 MB, holds 16 bytes */
  CHECK(read_fails("npy_short.npy", buf, n, "needs 4000000 bytes"));
  n = npy(buf, "9223372036854775807, 2", 0);
  CHECK(read_fails("npy_max.npy", buf, n, "too large"));
  /* a header ending inside 'descr' (fuzz_arrays): the dtype code was read past the end */
  memcpy(buf, "\x93NUMPY\x01\x00\x0a\x00{'descr': '", 20);
  CHECK(read_fails("npy_descr_cut.npy", buf, 20, "malformed"));
  n = npy(buf, "2, 2", 16); /* a good one still reads */
  char path[300];
  snprintf(path, sizeof path, "%s/ok.npy", tmpdir);
  FILE *f = fopen(path, "wb");
  fwrite(buf, 1, n, f);
  fclose(f);
  FmArray a;
  FmTry t;
  int ok = 0;
  FM_TRY(&t) {
    fm_array_read(path, &a);
    ok = a.nbytes == 16 && a.rank == 2;
    fm_array_free(&a);
    fm_try_pop(&t);
  } else {
    fprintf(stderr, "ok.npy: %s\n", fm_errmsg());
  }
  CHECK(ok);
  remove(path);
}

/* A TensorProto by hand: dims (field 1, packed), data_type (2), raw_data (9). */
static size_t pb(uint8_t *b, const int64_t *dims, int rank, const void *raw, size_t nraw) {
  size_t k = 0;
  for (int i = 0; i < rank; i++) {
    b[k++] = 0x08; /* field 1, varint */
    uint64_t v = (uint64_t)dims[i];
    do b[k++] = (uint8_t)((v & 127) | (v > 127 ? 128 : 0)), v >>= 7; while (v);
  }
  b[k++] = 0x10, b[k++] = 1; /* float32 */
  b[k++] = 0x4a, b[k++] = (uint8_t)nraw; /* raw_data, nraw < 128 */
  if (nraw) memcpy(b + k, raw, nraw);
  return k + nraw;
}

static void test_pb(void) {
  uint8_t b[256];
  float four[4] = {1, 2, 3, 4};
  int64_t d1[4] = {BIG, 1, 28, 28};
  size_t n = pb(b, d1, 4, NULL, 0);
  CHECK(read_fails("pb_wraps.pb", b, n, "too large"));
  int64_t d2[2] = {1000, 1000};
  n = pb(b, d2, 2, four, 16);
  CHECK(read_fails("pb_short.pb", b, n, "needs 1000000"));
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--write-corpus")) {
    corpus_dir = argv[2];
    mkdir(corpus_dir, 0755);
  }
  snprintf(tmpdir, sizeof tmpdir, "/tmp/fm_test_overflow_XXXXXX");
  if (!mkdtemp(tmpdir)) return 1;
  test_constant_of_shape();
  test_expand();
  test_tile();
  test_reshape();
  test_range();
  test_pad();
  test_conv_dilation();
  test_input();
  test_slice_step();
  test_max_batch();
  test_generated_max_batch();
  test_plan_overflow();
  test_npy();
  test_pb();
  rmdir(tmpdir);
  return check_done("test_overflow");
}
