/* test_cli_models.c - tiny ONNX models, inputs and reference outputs for the CLI tests,
 * written with protobuf-c directly (independent of fewmul's own ONNX writer), and
 * references computed here in plain C.
 *
 *   test_cli_models                    self-test: writes to a temp dir, reads back
 *   test_cli_models --write DIR        files for tests/e2e/cli_basic.sh
 *   test_cli_models --chain N DIR      DIR/long_chain.onnx: an N-node chain of elementwise
 *                                      ops over x [batch, 64], with DIR/lx.npy (batch 2) and
 *                                      DIR/ly_ref.npy (bench/chain_compile.sh, kernel_sharing.sh)
 *   test_cli_models --compare A.npy B.npy TOL   exit 0 iff same shape and max|A-B| <= TOL
 */
#include "check.h"
#include "onnx.pb-c.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- protobuf-c builders (a test tool: nothing is freed) ---- */
static void *box(const void *p, size_t n) {
  void *r = malloc(n ? n : 1);
  if (n) memcpy(r, p, n); /* p may be NULL when n is 0 (UBSan) */
  return r;
}
#define BOX(v) box(&(v), sizeof(v))

static Onnx__ValueInfoProto *vi(const char *name, int elem, int rank, const int64_t *dims) {
  Onnx__TensorShapeProto__Dimension **d = malloc(sizeof *d * (size_t)(rank + 1));
  for (int i = 0; i < rank; i++) {
    Onnx__TensorShapeProto__Dimension x = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
    if (dims[i] < 0) x.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM, x.dim_param = "N";
    else x.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE, x.dim_value = dims[i];
    d[i] = BOX(x);
  }
  Onnx__TensorShapeProto sh = ONNX__TENSOR_SHAPE_PROTO__INIT;
  sh.n_dim = (size_t)rank, sh.dim = d;
  Onnx__TypeProto__Tensor tt = ONNX__TYPE_PROTO__TENSOR__INIT;
  tt.has_elem_type = 1, tt.elem_type = elem, tt.shape = BOX(sh);
  Onnx__TypeProto tp = ONNX__TYPE_PROTO__INIT;
  tp.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, tp.tensor_type = BOX(tt);
  Onnx__ValueInfoProto v = ONNX__VALUE_INFO_PROTO__INIT;
  v.name = (char *)name, v.type = BOX(tp);
  return BOX(v);
}

static Onnx__TensorProto *tensor_f32(const char *name, int rank, const int64_t *dims, const float *data) {
  Onnx__TensorProto t = ONNX__TENSOR_PROTO__INIT;
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= dims[i];
  t.name = (char *)name, t.has_data_type = 1, t.data_type = 1;
  t.n_dims = (size_t)rank, t.dims = box(dims, sizeof(int64_t) * (size_t)rank);
  t.n_float_data = (size_t)n, t.float_data = box(data, sizeof(float) * (size_t)n);
  return BOX(t);
}

static Onnx__NodeProto *node(const char *op, const char *name, const char *in0, const char *in1,
                             const char *in2, const char *out) {
  Onnx__NodeProto n = ONNX__NODE_PROTO__INIT;
  const char *ins[3] = {in0, in1, in2};
  n.n_input = in2 ? 3 : in1 ? 2 : 1;
  n.input = box(ins, sizeof ins);
  n.n_output = 1;
  n.output = box(&out, sizeof out);
  n.op_type = (char *)op, n.name = (char *)name;
  return BOX(n);
}

static void attr_i(Onnx__NodeProto *n, const char *name, int64_t v) {
  Onnx__AttributeProto a = ONNX__ATTRIBUTE_PROTO__INIT;
  a.name = (char *)name, a.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, a.has_i = 1, a.i = v;
  n->attribute = realloc(n->attribute, sizeof(void *) * (n->n_attribute + 1));
  n->attribute[n->n_attribute++] = BOX(a);
}

static void save_model(const char *path, Onnx__GraphProto *g) {
  Onnx__OperatorSetIdProto op = ONNX__OPERATOR_SET_ID_PROTO__INIT;
  op.domain = "", op.has_version = 1, op.version = 13;
  Onnx__OperatorSetIdProto *ops[1] = {&op};
  Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
  m.has_ir_version = 1, m.ir_version = 7, m.producer_name = "test_cli_models";
  m.n_opset_import = 1, m.opset_import = ops, m.graph = g;
  size_t n = onnx__model_proto__get_packed_size(&m);
  uint8_t *buf = malloc(n);
  onnx__model_proto__pack(&m, buf);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(buf, 1, n, f) != n || fclose(f) != 0) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(1);
  }
  free(buf);
}

/* ---- .npy, written and read here independently of the driver's io_npy.c ---- */
static void npy_write(const char *path, const char *descr, int rank, const int64_t *dims, const void *data,
                      size_t nbytes) {
  char shape[128] = "", hdr[256];
  for (int i = 0; i < rank; i++)
    snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%lld,", (long long)dims[i]);
  int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape);
  while ((10 + n + 1) % 16) hdr[n++] = ' ';
  hdr[n++] = '\n';
  FILE *f = fopen(path, "wb");
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)n, 0};
  fwrite(pre, 1, 10, f), fwrite(hdr, 1, (size_t)n, f), fwrite(data, 1, nbytes, f);
  fclose(f);
}

/* Reads float32 or int64 arrays as doubles; returns the count or -1. */
static long npy_read(const char *path, double **out, char *shape, size_t shlen) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  unsigned char pre[10];
  if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY\x01", 7)) return fclose(f), -1;
  int hl = pre[8] | pre[9] << 8;
  char hdr[4096] = "";
  if (hl >= (int)sizeof hdr || fread(hdr, 1, (size_t)hl, f) != (size_t)hl) return fclose(f), -1;
  const char *s = strstr(hdr, "'shape': (");
  if (!s) return fclose(f), -1;
  s += 10;
  /* the shape normalised to "d0,d1," so "(5, 3)" and "(5,3,)" compare equal */
  long n = 1;
  size_t k = 0;
  shape[0] = 0;
  for (const char *p = s; *p && *p != ')'; p++)
    if (*p >= '0' && *p <= '9') {
      long d = strtol(p, (char **)&p, 10);
      n *= d;
      k += (size_t)snprintf(shape + k, shlen - k, "%ld,", d);
      p--;
    }
  int f4 = strstr(hdr, "'<f4'") != NULL, i8 = strstr(hdr, "'<i8'") != NULL;
  if (!f4 && !i8) return fclose(f), -1;
  *out = malloc(sizeof(double) * (size_t)(n + 1));
  for (long i = 0; i < n; i++) {
    float x;
    int64_t y;
    if ((f4 ? fread(&x, 4, 1, f) : fread(&y, 8, 1, f)) != 1) return fclose(f), -1;
    (*out)[i] = f4 ? x : (double)y;
  }
  fclose(f);
  return n;
}

static int compare(const char *a, const char *b, double tol) {
  double *x = NULL, *y = NULL;
  char sa[128], sb[128];
  long n = npy_read(a, &x, sa, sizeof sa), m = npy_read(b, &y, sb, sizeof sb);
  if (n < 0 || m < 0) return fprintf(stderr, "compare: cannot read %s\n", n < 0 ? a : b), 1;
  if (n != m || strcmp(sa, sb)) return fprintf(stderr, "compare: shapes (%s) and (%s) differ\n", sa, sb), 1;
  double worst = 0;
  for (long i = 0; i < n; i++) {
    if (isnan(x[i]) || isnan(y[i])) {
      if (!(isnan(x[i]) && isnan(y[i]))) worst = INFINITY;
    } else if (fabs(x[i] - y[i]) > worst) worst = fabs(x[i] - y[i]);
  }
  printf("max_abs_diff: %g\n", worst);
  free(x), free(y);
  return worst <= tol ? 0 : 1;
}

/* ---- the models and their references ---- */
#define B 5
static void write_chain(const char *dir);
static void write_all(const char *dir) {
  char p[1024];
  /* gemm_relu: y = Relu(x W^T + b), x [N,4], W [3,4] */
  float W[12], bias[3] = {0.5f, -0.25f, 0.125f}, x[B * 4], y[B * 3];
  for (int i = 0; i < 12; i++) W[i] = (float)(i % 5) * 0.375f - 0.7f;
  for (int i = 0; i < B * 4; i++) x[i] = (float)((i * 7) % 11) * 0.25f - 1.2f;
  for (int n = 0; n < B; n++)
    for (int j = 0; j < 3; j++) {
      double s = bias[j];
      for (int k = 0; k < 4; k++) s += (double)x[n * 4 + k] * W[j * 4 + k];
      y[n * 3 + j] = (float)(s > 0 ? s : 0);
    }
  int64_t dx[2] = {-1, 4}, dy[2] = {-1, 3}, dw[2] = {3, 4}, db[1] = {3}, xb[2] = {B, 4}, yb[2] = {B, 3};
  Onnx__NodeProto *gemm = node("Gemm", "fc", "x", "W", "b", "h");
  attr_i(gemm, "transB", 1);
  Onnx__NodeProto *nodes1[2] = {gemm, node("Relu", "relu", "h", NULL, NULL, "y")};
  Onnx__ValueInfoProto *in1[1] = {vi("x", 1, 2, dx)}, *out1[1] = {vi("y", 1, 2, dy)};
  Onnx__TensorProto *init1[2] = {tensor_f32("W", 2, dw, W), tensor_f32("b", 1, db, bias)};
  Onnx__GraphProto g1 = ONNX__GRAPH_PROTO__INIT;
  g1.name = "gemm_relu", g1.n_node = 2, g1.node = nodes1, g1.n_input = 1, g1.input = in1;
  g1.n_output = 1, g1.output = out1, g1.n_initializer = 2, g1.initializer = init1;
  snprintf(p, sizeof p, "%s/gemm_relu.onnx", dir), save_model(p, &g1);
  snprintf(p, sizeof p, "%s/x.npy", dir), npy_write(p, "<f4", 2, xb, x, sizeof x);
  snprintf(p, sizeof p, "%s/y_ref.npy", dir), npy_write(p, "<f4", 2, yb, y, sizeof y);
  /* the first 2 rows as a TensorProto with typed float_data */
  int64_t x2d[2] = {2, 4};
  Onnx__TensorProto *tp = tensor_f32("x", 2, x2d, x);
  size_t n = onnx__tensor_proto__get_packed_size(tp);
  uint8_t *buf = malloc(n);
  onnx__tensor_proto__pack(tp, buf);
  snprintf(p, sizeof p, "%s/x2.pb", dir);
  FILE *f = fopen(p, "wb");
  fwrite(buf, 1, n, f), fclose(f), free(buf);
  int64_t y2d[2] = {2, 3};
  snprintf(p, sizeof p, "%s/y2_ref.npy", dir), npy_write(p, "<f4", 2, y2d, y, sizeof(float) * 6);
  /* bad inputs: int64 instead of float; 5 columns instead of 4 */
  int64_t xi[B * 4] = {0};
  float x5[B * 5] = {0};
  int64_t d5[2] = {B, 5};
  snprintf(p, sizeof p, "%s/x_int.npy", dir), npy_write(p, "<i8", 2, xb, xi, sizeof xi);
  snprintf(p, sizeof p, "%s/x_wide.npy", dir), npy_write(p, "<f4", 2, d5, x5, sizeof x5);
  snprintf(p, sizeof p, "%s/garbage.onnx", dir);
  f = fopen(p, "wb"), fputs("this is not a protobuf \xff\xff\xff\xff", f), fclose(f);

  /* two_out: s = a + b; p = s * c; outputs p, s (also used by Mul) and a (an input) */
  float a[6], bb[6], c[3] = {2.0f, -1.0f, 0.5f}, s[6], pr[6];
  for (int i = 0; i < 6; i++) a[i] = (float)i - 2.5f, bb[i] = (float)(i * i) * 0.125f;
  for (int i = 0; i < 6; i++) s[i] = a[i] + bb[i], pr[i] = s[i] * c[i % 3];
  int64_t d23[2] = {2, 3}, d3[1] = {3};
  Onnx__NodeProto *nodes2[2] = {node("Add", "add", "a", "b", NULL, "s"), node("Mul", "mul", "s", "c", NULL, "p")};
  Onnx__ValueInfoProto *in2[2] = {vi("a", 1, 2, d23), vi("b", 1, 2, d23)};
  Onnx__ValueInfoProto *out2[3] = {vi("p", 1, 2, d23), vi("s", 1, 2, d23), vi("a", 1, 2, d23)};
  Onnx__TensorProto *init2[1] = {tensor_f32("c", 1, d3, c)};
  Onnx__GraphProto g2 = ONNX__GRAPH_PROTO__INIT;
  g2.name = "two_out", g2.n_node = 2, g2.node = nodes2, g2.n_input = 2, g2.input = in2;
  g2.n_output = 3, g2.output = out2, g2.n_initializer = 1, g2.initializer = init2;
  snprintf(p, sizeof p, "%s/two_out.onnx", dir), save_model(p, &g2);
  snprintf(p, sizeof p, "%s/a.npy", dir), npy_write(p, "<f4", 2, d23, a, sizeof a);
  snprintf(p, sizeof p, "%s/b.npy", dir), npy_write(p, "<f4", 2, d23, bb, sizeof bb);
  snprintf(p, sizeof p, "%s/s_ref.npy", dir), npy_write(p, "<f4", 2, d23, s, sizeof s);
  snprintf(p, sizeof p, "%s/p_ref.npy", dir), npy_write(p, "<f4", 2, d23, pr, sizeof pr);
  write_chain(dir);
}

/* chain: intermediates that live across several kernels, batch-sized (workspace plan):
   t1 = x*x; t2 = t1 + x; t3 = t2 - t1; t4 = t3 * t2; y = t4 + t1 */
static void write_chain(const char *dir) {
  char p[1024];
  float x[B * 4], y[B * 4];
  for (int i = 0; i < B * 4; i++) {
    x[i] = (float)((i * 5) % 9) * 0.5f - 2.0f;
    float t1 = x[i] * x[i], t2 = t1 + x[i], t3 = t2 - t1, t4 = t3 * t2;
    y[i] = t4 + t1;
  }
  int64_t dx[2] = {-1, 4}, xb[2] = {B, 4};
  Onnx__NodeProto *nodes[5] = {node("Mul", "sq", "x", "x", NULL, "t1"), node("Add", "a1", "t1", "x", NULL, "t2"),
                               node("Sub", "s1", "t2", "t1", NULL, "t3"), node("Mul", "m2", "t3", "t2", NULL, "t4"),
                               node("Add", "a2", "t4", "t1", NULL, "y")};
  Onnx__ValueInfoProto *in[1] = {vi("x", 1, 2, dx)}, *out[1] = {vi("y", 1, 2, dx)};
  Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
  g.name = "chain", g.n_node = 5, g.node = nodes, g.n_input = 1, g.input = in, g.n_output = 1, g.output = out;
  snprintf(p, sizeof p, "%s/chain.onnx", dir), save_model(p, &g);
  snprintf(p, sizeof p, "%s/cx.npy", dir), npy_write(p, "<f4", 2, xb, x, sizeof x);
  snprintf(p, sizeof p, "%s/cy_ref.npy", dir), npy_write(p, "<f4", 2, xb, y, sizeof y);
}

/* y = x, then N nodes cycling Relu, Add 0.5, Neg, Mul 0.75, Sigmoid, Sub 0.25 over
   x [batch, 64] (constants as scalar initialisers): a graph as long as you like */
static int write_long_chain(int n, const char *dir) {
  char path[1024];
  mkdir(dir, 0777);
  static const char *const ops[] = {"Relu", "Add", "Neg", "Mul", "Sigmoid", "Sub"};
  static const float consts[] = {0, 0.5f, 0, 0.75f, 0, 0.25f};
  Onnx__NodeProto **nodes = calloc((size_t)n, sizeof *nodes);
  Onnx__TensorProto *init[3];
  char **names = calloc((size_t)n + 1, sizeof *names);
  if (!nodes || !names) return 1;
  names[0] = "x";
  for (int i = 0; i < n; i++) {
    names[i + 1] = malloc(24);
    snprintf(names[i + 1], 24, i + 1 == n ? "y" : "t%d", i + 1);
    int k = i % 6;
    char *nm = malloc(24);
    snprintf(nm, 24, "n%d", i);
    const char *c = k == 1 ? "c_add" : k == 3 ? "c_mul" : k == 5 ? "c_sub" : NULL;
    nodes[i] = node(ops[k], nm, names[i], c, NULL, names[i + 1]);
  }
  init[0] = tensor_f32("c_add", 0, NULL, &consts[1]);
  init[1] = tensor_f32("c_mul", 0, NULL, &consts[3]);
  init[2] = tensor_f32("c_sub", 0, NULL, &consts[5]);
  int64_t dx[2] = {-1, 64};
  Onnx__ValueInfoProto *in[1] = {vi("x", 1, 2, dx)}, *out[1] = {vi("y", 1, 2, dx)};
  Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
  g.name = "long_chain", g.n_node = (size_t)n, g.node = nodes, g.n_input = 1, g.input = in;
  g.n_output = 1, g.output = out, g.n_initializer = 3, g.initializer = init;
  snprintf(path, sizeof path, "%s/long_chain.onnx", dir), save_model(path, &g);
  float x[128], y[128];
  for (int i = 0; i < 128; i++) {
    double v = x[i] = (float)(i % 13) * 0.25f - 1.5f;
    for (int k = 0; k < n; k++) {
      switch (k % 6) {
      case 0: v = v > 0 ? v : 0; break;
      case 1: v = v + 0.5; break;
      case 2: v = -v; break;
      case 3: v = v * 0.75; break;
      case 4: v = 1 / (1 + exp(-v)); break;
      default: v = v - 0.25; break;
      }
    }
    y[i] = (float)v;
  }
  int64_t d[2] = {2, 64};
  snprintf(path, sizeof path, "%s/lx.npy", dir), npy_write(path, "<f4", 2, d, x, sizeof x);
  snprintf(path, sizeof path, "%s/ly_ref.npy", dir), npy_write(path, "<f4", 2, d, y, sizeof y);
  return 0;
}

static int self_test(void) {
  char dir[] = "/tmp/fm_cli_models_XXXXXX", p[1024];
  CHECK(mkdtemp(dir) != NULL);
  write_all(dir);
  /* the models parse back with the structure written */
  static const struct { const char *file; size_t nodes, inputs, outputs; } want[] = {
    {"gemm_relu.onnx", 2, 1, 1}, {"two_out.onnx", 2, 2, 3}, {"chain.onnx", 5, 1, 1}};
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, want[i].file);
    FILE *f = fopen(p, "rb");
    uint8_t buf[8192];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, n, buf);
    CHECK(m && m->graph && m->graph->n_node == want[i].nodes && m->graph->n_input == want[i].inputs &&
          m->graph->n_output == want[i].outputs);
    if (m) onnx__model_proto__free_unpacked(m, NULL);
  }
  /* the comparator accepts equal files and rejects different values and shapes */
  char y[1024], x[1024], s[1024], pr[1024];
  snprintf(y, sizeof y, "%s/y_ref.npy", dir), snprintf(x, sizeof x, "%s/x.npy", dir);
  snprintf(s, sizeof s, "%s/s_ref.npy", dir), snprintf(pr, sizeof pr, "%s/p_ref.npy", dir);
  CHECK(compare(y, y, 0) == 0);
  CHECK(compare(s, pr, 1e-3) == 1);
  CHECK(compare(x, y, 1e9) == 1);
  static const char *files[] = {"gemm_relu.onnx", "x.npy", "y_ref.npy", "x2.pb", "y2_ref.npy", "x_int.npy",
                                "x_wide.npy", "garbage.onnx", "two_out.onnx", "a.npy", "b.npy",
                                "s_ref.npy", "p_ref.npy", "chain.onnx", "cx.npy", "cy_ref.npy"};
  for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, files[i]);
    CHECK(unlink(p) == 0);
  }
  CHECK(rmdir(dir) == 0);
  return check_done("test_cli_models");
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--write")) {
    mkdir(argv[2], 0777);
    write_all(argv[2]);
    return 0;
  }
  if (argc == 5 && !strcmp(argv[1], "--compare")) return compare(argv[2], argv[3], atof(argv[4]));
  if (argc == 4 && !strcmp(argv[1], "--chain") && atoi(argv[2]) > 0) return write_long_chain(atoi(argv[2]), argv[3]);
  if (argc > 1) {
    fprintf(stderr, "usage: test_cli_models [--write DIR | --compare A.npy B.npy TOL | --chain N DIR]\n");
    return 2;
  }
  return self_test();
}
