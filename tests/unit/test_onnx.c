/* test_onnx.c - the ONNX loader and writer: real backend-test models checked against
 * an independent protobuf reader (below), write -> load round trips, model-local
 * functions, external data, every storage form, and bad input of every kind. */
#include "check.h"
#include "onnx/onnx.h"
#include "onnx.pb-c.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#define DATA "/usr/share/libonnx-testdata/data"

/* ---- a tiny independent protobuf reader: enough of TensorProto to compare with ---- */
typedef struct { const uint8_t *p; size_t n; } Buf;

static int rd_varint(Buf b, size_t *i, uint64_t *v) {
  *v = 0;
  for (int s = 0; s < 64 && *i < b.n; s += 7) {
    uint8_t c = b.p[(*i)++];
    *v |= (uint64_t)(c & 0x7f) << s;
    if (!(c & 0x80)) return 1;
  }
  return 0;
}

/* Next field of b from *i: number, wire type, varint value or sub-buffer. */
static int rd_field(Buf b, size_t *i, int *num, int *wt, uint64_t *v, Buf *sub) {
  uint64_t key;
  if (*i >= b.n || !rd_varint(b, i, &key)) return 0;
  *num = (int)(key >> 3), *wt = (int)(key & 7);
  switch (*wt) {
  case 0: return rd_varint(b, i, v);
  case 1: *i += 8; return *i <= b.n;
  case 5: memcpy(v, b.p + *i, 4); *i += 4; return *i <= b.n;
  case 2: if (!rd_varint(b, i, v) || *v > b.n - *i) return 0;
    sub->p = b.p + *i, sub->n = (size_t)*v, *i += (size_t)*v;
    return 1;
  default: return 0;
  }
}

typedef struct { char name[128]; int dtype, rank; int64_t dims[8]; uint8_t *data; size_t nbytes; } RefTensor;

static void ref_tensor(Buf b, RefTensor *t) {
  memset(t, 0, sizeof *t);
  size_t i = 0, nf = 0;
  int num, wt;
  uint64_t v;
  Buf s;
  float *fl = NULL;
  while (rd_field(b, &i, &num, &wt, &v, &s)) {
    if (num == 1 && wt == 0) t->dims[t->rank++] = (int64_t)v;
    else if (num == 1 && wt == 2)
      for (size_t k = 0; k < s.n;) { uint64_t d; rd_varint(s, &k, &d); t->dims[t->rank++] = (int64_t)d; }
    else if (num == 2) t->dtype = (int)v;
    else if (num == 8) snprintf(t->name, sizeof t->name, "%.*s", (int)s.n, (const char *)s.p);
    else if (num == 9) t->data = malloc(s.n + 1), memcpy(t->data, s.p, s.n), t->nbytes = s.n;
    else if (num == 4 && wt == 2) fl = realloc(fl, nf * 4 + s.n), memcpy((char *)fl + nf * 4, s.p, s.n), nf += s.n / 4;
    else if (num == 4 && wt == 5) fl = realloc(fl, nf * 4 + 4), memcpy(fl + nf++, &v, 4);
  }
  if (!t->data && fl) t->data = (uint8_t *)fl, t->nbytes = nf * 4, fl = NULL;
  free(fl);
}

static uint8_t *read_all(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc(*n + 1);
  if (fread(b, 1, *n, f) != *n) *n = 0;
  fclose(f);
  return b;
}

/* Finds initialiser `name` in a model file: ModelProto.graph(7).initializer(5). */
static int ref_initialiser(const char *model, const char *name, RefTensor *out) {
  size_t n, i = 0;
  uint8_t *bytes = read_all(model, &n);
  Buf b = {bytes, n}, g, s;
  int num, wt, found = 0;
  uint64_t v;
  while (!found && rd_field(b, &i, &num, &wt, &v, &g)) {
    if (num != 7 || wt != 2) continue;
    size_t j = 0;
    while (!found && rd_field(g, &j, &num, &wt, &v, &s))
      if (num == 5 && wt == 2) {
        ref_tensor(s, out);
        found = !strcmp(out->name, name);
        if (!found) free(out->data);
      }
  }
  free(bytes);
  return found;
}

static int ref_file(const char *path, RefTensor *t) {
  size_t n;
  uint8_t *bytes = read_all(path, &n);
  if (!bytes) return 0;
  ref_tensor((Buf){bytes, n}, t);
  free(bytes);
  return 1;
}

/* ---- helpers ---- */
static Graph *try_load(const char *path, const FmLoadOpts *o, char *err) {
  Graph *volatile g = NULL;
  FmTry t;
  err[0] = 0;
  FM_TRY(&t) {
    g = fm_onnx_load(path, o);
    fm_try_pop(&t);
  } else {
    snprintf(err, 1024, "%s", fm_errmsg());
  }
  return g;
}

static Graph *try_load_mem(const void *b, size_t n, const FmLoadOpts *o, char *err) {
  Graph *volatile g = NULL;
  FmTry t;
  err[0] = 0;
  FM_TRY(&t) {
    g = fm_onnx_load_mem(b, n, "mem.onnx", o);
    fm_try_pop(&t);
  } else {
    snprintf(err, 1024, "%s", fm_errmsg());
  }
  return g;
}

static Node *find_op(Graph *g, OpKind op) {
  for (int i = 0; i < g->nnodes; i++)
    if (g->nodes[i]->op == op) return g->nodes[i];
  return NULL;
}

static int has(const char *s, const char *sub) {
  if (!strstr(s, sub)) fprintf(stderr, "  message: %s\n  expected to contain: %s\n", s, sub);
  return strstr(s, sub) != NULL;
}

static char tmpdir[256];

/* ---- real models ---- */
static void test_conv2d(void) {
  const char *m = DATA "/pytorch-converted/test_Conv2d/model.onnx";
  char err[1024];
  Graph *g = try_load(m, NULL, err);
  CHECK(g);
  if (!g) return;
  CHECK(g->nnodes == 1 && g->nodes[0]->op == OP_Conv);
  CHECK(g->ninputs == 1 && g->noutputs == 1);
  RefTensor in;
  CHECK(ref_file(DATA "/pytorch-converted/test_Conv2d/test_data_set_0/input_0.pb", &in));
  CHECK(g->inputs[0]->rank == in.rank && (int)g->inputs[0]->dtype == in.dtype);
  for (int i = 0; i < in.rank; i++) CHECK(g->inputs[0]->dims[i] == in.dims[i]);
  free(in.data);
  Node *c = g->nodes[0];
  CHECK(c->nin == 3 && c->in[1]->data && c->in[2]->data && !c->in[0]->data);
  for (int k = 1; k < 3; k++) {
    RefTensor w;
    CHECK(ref_initialiser(m, c->in[k]->name, &w));
    CHECK(w.rank == c->in[k]->rank && w.nbytes == fm_nbytes(c->in[k]));
    for (int i = 0; i < w.rank; i++) CHECK(w.dims[i] == c->in[k]->dims[i]);
    CHECK(w.data && !memcmp(w.data, c->in[k]->data, w.nbytes));
    free(w.data);
  }
  int64_t ks[4];
  CHECK(fm_attr_ints(c, "kernel_shape", ks, 4) == 2 && ks[0] == c->in[1]->dims[2] && ks[1] == c->in[1]->dims[3]);
  fm_graph_free(g);
}

static void test_batchnorm(void) {
  const char *m = DATA "/pytorch-converted/test_BatchNorm2d_eval/model.onnx";
  char err[1024];
  Graph *g = try_load(m, NULL, err);
  CHECK(g);
  if (!g) return;
  Node *bn = find_op(g, OP_BatchNormalization);
  CHECK(bn && bn->nin == 5);
  for (int k = 1; bn && k < 5; k++) {
    RefTensor w;
    CHECK(bn->in[k]->data && ref_initialiser(m, bn->in[k]->name, &w));
    CHECK(w.nbytes == fm_nbytes(bn->in[k]) && w.data && !memcmp(w.data, bn->in[k]->data, w.nbytes));
    free(w.data);
  }
  CHECK_NEAR(1e-5, fm_attr_f(bn, "epsilon", 0), 1e-9);
  fm_graph_free(g);
}

/* Constant nodes are folded at load: the output is the expected output. */
static void test_constant_node(void) {
  char err[1024];
  Graph *g = try_load(DATA "/node/test_constant/model.onnx", NULL, err);
  CHECK(g);
  if (!g) return;
  CHECK(g->nnodes == 0 && g->noutputs == 1 && g->outputs[0]->data);
  RefTensor want;
  CHECK(ref_file(DATA "/node/test_constant/test_data_set_0/output_0.pb", &want));
  CHECK(want.nbytes == fm_nbytes(g->outputs[0]) && !memcmp(want.data, g->outputs[0]->data, want.nbytes));
  free(want.data);
  fm_graph_free(g);
}

/* Every backend-test model loads or fails with a message, write+reload keeps it. */
static void test_all_models(void) {
  const char *dirs[] = {DATA "/node", DATA "/pytorch-converted", DATA "/pytorch-operator", DATA "/simple"};
  int loaded = 0, refused = 0, same = 0;
  for (int d = 0; d < 4; d++) {
    DIR *dir = opendir(dirs[d]);
    if (!dir) continue;
    struct dirent *e;
    while ((e = readdir(dir))) {
      if (e->d_name[0] == '.') continue;
      char p[1024], err[1024];
      snprintf(p, sizeof p, "%s/%s/model.onnx", dirs[d], e->d_name);
      Graph *g = try_load(p, NULL, err);
      if (!g) {
        refused++;
        if (!*err) CHECK(!"empty error message");
        continue;
      }
      loaded++;
      size_t n;
      void *b = fm_onnx_write_mem(g, NULL, &n);
      Graph *g2 = try_load_mem(b, n, NULL, err);
      int ok = g2 && g2->nnodes == g->nnodes && g2->ninputs == g->ninputs && g2->noutputs == g->noutputs;
      for (int i = 0; ok && i < g->nnodes; i++) ok = g->nodes[i]->op == g2->nodes[i]->op;
      if (!ok) fprintf(stderr, "round trip differs: %s %s\n", p, err);
      same += ok;
      free(b);
      fm_graph_free(g2);
      fm_graph_free(g);
    }
    closedir(dir);
  }
  printf("backend-test models: %d loaded, %d refused, %d round-tripped\n", loaded, refused, same);
  CHECK(loaded > 900 && same == loaded);
}

/* ---- round trip of a hand-built graph ---- */
static Graph *build_graph(void) {
  Graph *g = fm_graph_new();
  g->opset = 13;
  g->batch_name = "batch";
  g->name = "rt";
  Tensor *x = fm_tensor_new(g, "x");
  x->dtype = FM_F32, x->rank = 4, x->is_input = 1;
  int64_t xd[4] = {-1, 3, 8, 8};
  memcpy(x->dims, xd, sizeof xd);
  g->inputs = fm_alloc(&g->arena, sizeof(Tensor *));
  g->inputs[g->ninputs++] = x;
  int64_t wd[4] = {4, 3, 3, 3};
  float w[108];
  for (int i = 0; i < 108; i++) w[i] = (float)i * 0.37f - 11.0f;
  w[5] = -0.0f;
  Tensor *wt = fm_tensor_const(g, "w", FM_F32, 4, wd, w);
  int8_t q[4] = {-1, 0, 1, -128};
  int64_t qd[1] = {4};
  Tensor *qt = fm_tensor_const(g, "q", FM_I8, 1, qd, q);
  Node *c = fm_node_new(g, OP_Conv, "conv", 2, 1);
  c->in[0] = x, c->in[1] = wt;
  Tensor *y = fm_tensor_new(g, "y");
  y->dtype = FM_F32, y->rank = 4;
  int64_t yd[4] = {-1, 4, 8, 8};
  memcpy(y->dims, yd, sizeof yd);
  c->out[0] = y, y->producer = c;
  c->nattrs = 8;
  c->attrs = fm_alloc(&g->arena, sizeof(Attr) * 8);
  static int64_t pads[4] = {1, 1, 1, 1};
  static float fl[3] = {0.5f, -1.25f, 3e-8f};
  static const char *ss[2] = {"a", "bc"};
  c->attrs[0] = (Attr){.name = "pads", .type = FA_INTS, .ints = pads, .n = 4};
  c->attrs[1] = (Attr){.name = "group", .type = FA_INT, .i = 1};
  c->attrs[2] = (Attr){.name = "f", .type = FA_FLOAT, .f = 0.1f};
  c->attrs[3] = (Attr){.name = "s", .type = FA_STRING, .s = "hello"};
  c->attrs[4] = (Attr){.name = "fs", .type = FA_FLOATS, .floats = fl, .n = 3};
  c->attrs[5] = (Attr){.name = "ss", .type = FA_STRINGS, .strings = ss, .n = 2};
  c->attrs[6] = (Attr){.name = "t", .type = FA_TENSOR, .t = qt};
  c->attrs[7] = (Attr){.name = "empty", .type = FA_INTS, .ints = pads, .n = 0};
  Node *m = fm_node_new(g, fm_op_lookup("ai.fewmul", "TernaryGemm"), "tg", 2, 1); /* an ai.fewmul op */
  m->op_type = "TernaryGemm", m->domain = "ai.fewmul";
  m->in[0] = y, m->in[1] = qt;
  Tensor *z = fm_tensor_new(g, "z");
  z->dtype = FM_F32, z->rank = 2, z->dims[0] = -2, z->dims[1] = 7;
  m->out[0] = z, z->producer = m;
  Node *u = fm_node_new(g, OP_UNKNOWN, "custom", 1, 1);
  u->op_type = "Frobnicate", u->domain = "com.example", u->opset = 3;
  u->in[0] = z;
  Tensor *o = fm_tensor_new(g, "out");
  o->is_output = 1;
  u->out[0] = o, o->producer = u;
  g->outputs = fm_alloc(&g->arena, sizeof(Tensor *));
  g->outputs[g->noutputs++] = o;
  return g;
}

static int same_attr(const Attr *a, const Attr *b) {
  if (strcmp(a->name, b->name) || a->type != b->type || a->n != b->n) return 0;
  switch (a->type) {
  case FA_FLOAT: return !memcmp(&a->f, &b->f, 4);
  case FA_INT: return a->i == b->i;
  case FA_STRING: return !strcmp(a->s, b->s);
  case FA_FLOATS: return !memcmp(a->floats, b->floats, 4 * (size_t)a->n);
  case FA_INTS: return !a->n || !memcmp(a->ints, b->ints, 8 * (size_t)a->n);
  case FA_STRINGS:
    for (int i = 0; i < a->n; i++)
      if (strcmp(a->strings[i], b->strings[i])) return 0;
    return 1;
  case FA_TENSOR:
    return a->t->dtype == b->t->dtype && a->t->rank == b->t->rank && !memcmp(a->t->data, b->t->data, fm_nbytes(a->t));
  default: return 0;
  }
}

static void test_roundtrip(void) {
  Graph *g = build_graph();
  char path[512], err[1024];
  snprintf(path, sizeof path, "%s/rt.onnx", tmpdir);
  fm_onnx_write(g, path, NULL);
  Graph *h = try_load(path, NULL, err);
  CHECK(h);
  if (!h) { fprintf(stderr, "%s\n", err); fm_graph_free(g); return; }
  CHECK(!strcmp(h->batch_name, "batch") && h->opset == 13 && !strcmp(h->name, "rt"));
  CHECK(h->ninputs == 1 && h->inputs[0]->dims[0] == -1 && h->inputs[0]->dims[3] == 8);
  CHECK(h->nnodes == 3);
  for (int i = 0; i < g->nnodes && i < h->nnodes; i++) {
    Node *a = g->nodes[i], *b = h->nodes[i];
    CHECK(a->op == b->op && !strcmp(a->name, b->name) && a->nattrs == b->nattrs && a->nin == b->nin);
    for (int j = 0; j < a->nattrs && j < b->nattrs; j++) CHECK(same_attr(&a->attrs[j], &b->attrs[j]));
    for (int j = 0; j < a->nin && j < b->nin; j++) {
      CHECK(!strcmp(a->in[j]->name, b->in[j]->name) && !a->in[j]->data == !b->in[j]->data);
      if (a->in[j]->data && b->in[j]->data)
        CHECK(fm_nbytes(a->in[j]) == fm_nbytes(b->in[j]) && !memcmp(a->in[j]->data, b->in[j]->data, fm_nbytes(a->in[j])));
    }
  }
  Node *tg = h->nodes[1];
  CHECK(!strcmp(tg->op_type, "TernaryGemm") && !strcmp(tg->domain, "ai.fewmul") && tg->opset == 1);
  CHECK(h->nodes[2]->op == OP_UNKNOWN && !strcmp(h->nodes[2]->op_type, "Frobnicate") &&
        !strcmp(h->nodes[2]->domain, "com.example") && h->nodes[2]->opset == 3);
  Tensor *z = fm_tensor_find(h, "z"), *y = fm_tensor_find(h, "y");
  CHECK(z && z->rank == 2 && z->dims[0] == -2 && z->dims[1] == 7); /* value_info "2*batch" */
  CHECK(y && y->rank == 4 && y->dims[0] == -1 && y->dims[1] == 4);
  /* no temp file left behind */
  DIR *d = opendir(tmpdir);
  struct dirent *e;
  int stray = 0;
  while (d && (e = readdir(d))) stray += strstr(e->d_name, ".tmp") != NULL;
  if (d) closedir(d);
  CHECK(stray == 0);
  /* writing into a missing directory fails clearly, leaving nothing */
  char bad[600];
  snprintf(bad, sizeof bad, "%s/nodir/x.onnx", tmpdir);
  FmTry t;
  int failed = 0;
  FM_TRY(&t) {
    fm_onnx_write(g, bad, NULL);
    fm_try_pop(&t);
  } else {
    failed = has(fm_errmsg(), "cannot write") && has(fm_errmsg(), "nodir/x.onnx");
  }
  CHECK(failed);
  /* the fused activation is written as its own node */
  g->nodes[0]->fused_act = OP_Relu;
  size_t n;
  void *b = fm_onnx_write_mem(g, NULL, &n);
  Graph *k = try_load_mem(b, n, NULL, err);
  CHECK(k && k->nnodes == 4 && k->nodes[1]->op == OP_Relu && k->nodes[1]->out[0] == fm_tensor_find(k, "y"));
  free(b);
  fm_graph_free(k);
  fm_graph_free(h);
  fm_graph_free(g);
}

/* Nodes listed out of order are sorted; a cycle is an error. */
static void test_order(void) {
  Graph *g = build_graph();
  Node *t = g->nodes[0];
  g->nodes[0] = g->nodes[2], g->nodes[2] = t;
  size_t n;
  char err[1024];
  void *b = fm_onnx_write_mem(g, NULL, &n);
  Graph *h = try_load_mem(b, n, NULL, err);
  CHECK(h && h->nnodes == 3 && !strcmp(h->nodes[0]->name, "conv") && !strcmp(h->nodes[1]->name, "tg") &&
        !strcmp(h->nodes[2]->name, "custom"));
  free(b);
  fm_graph_free(h);
  t->in[0] = g->outputs[0]; /* conv reads the output of custom */
  b = fm_onnx_write_mem(g, NULL, &n);
  h = try_load_mem(b, n, NULL, err);
  CHECK(!h && has(err, "cycle"));
  free(b);
  fm_graph_free(g);
}

/* ---- model-local functions ---- */
/* body: t = Add(a, b); u = Mul(t, c); y = LeakyRelu(u) with alpha = the caller's "alpha" */
static Graph *fn_body(void) {
  Graph *b = fm_graph_new();
  Tensor *a = fm_tensor_new(b, "a"), *bb = fm_tensor_new(b, "b");
  float cv[1] = {2.5f};
  Tensor *c = fm_tensor_const(b, "c", FM_F32, 0, NULL, cv);
  Tensor *t = fm_tensor_new(b, "t"), *u = fm_tensor_new(b, "u"), *y = fm_tensor_new(b, "y");
  Node *n1 = fm_node_new(b, OP_Add, NULL, 2, 1);
  n1->in[0] = a, n1->in[1] = bb, n1->out[0] = t;
  Node *n2 = fm_node_new(b, OP_Mul, NULL, 2, 1);
  n2->in[0] = t, n2->in[1] = c, n2->out[0] = u;
  Node *n3 = fm_node_new(b, OP_LeakyRelu, NULL, 1, 1);
  n3->in[0] = u, n3->out[0] = y;
  n3->attrs = fm_alloc(&b->arena, sizeof(Attr)), n3->nattrs = 1;
  n3->attrs[0] = (Attr){.name = "alpha", .type = FA_FLOAT, .ref = "alpha"};
  return b;
}

static Graph *fn_caller(const char *domain, const char *op, OpKind kind) {
  Graph *g = fm_graph_new();
  Tensor *x = fm_tensor_new(g, "x");
  x->dtype = FM_F32, x->rank = 2, x->dims[0] = -1, x->dims[1] = 4, x->is_input = 1;
  g->inputs = fm_alloc(&g->arena, sizeof(Tensor *));
  g->inputs[g->ninputs++] = x;
  float wv[4] = {1, 2, 3, 4};
  int64_t wd[1] = {4};
  Tensor *w = fm_tensor_const(g, "w", FM_F32, 1, wd, wv);
  Node *n = fm_node_new(g, kind, "call", 2, 1);
  n->op_type = op, n->domain = domain;
  n->in[0] = x, n->in[1] = w;
  Tensor *y = fm_tensor_new(g, "y");
  y->is_output = 1;
  n->out[0] = y, y->producer = n;
  n->attrs = fm_alloc(&g->arena, sizeof(Attr)), n->nattrs = 1;
  n->attrs[0] = (Attr){.name = "alpha", .type = FA_FLOAT, .f = 0.2f};
  g->outputs = fm_alloc(&g->arena, sizeof(Tensor *));
  g->outputs[g->noutputs++] = y;
  return g;
}

static void check_inlined(Graph *h) {
  CHECK(h->nnodes == 3);
  if (h->nnodes != 3) return;
  Node *add = h->nodes[0], *mul = h->nodes[1], *lr = h->nodes[2];
  CHECK(add->op == OP_Add && mul->op == OP_Mul && lr->op == OP_LeakyRelu);
  CHECK(add->in[0] == h->inputs[0] && add->in[1]->data && ((float *)add->in[1]->data)[3] == 4.0f);
  CHECK(mul->in[0] == add->out[0] && mul->in[1]->data && *(float *)mul->in[1]->data == 2.5f);
  CHECK(!strncmp(add->out[0]->name, "call/", 5) && !strncmp(add->name, "call/", 5));
  CHECK(lr->out[0] == h->outputs[0] && lr->out[0]->producer == lr);
  CHECK_NEAR(0.2, fm_attr_f(lr, "alpha", -1), 1e-7);
}

static void test_functions(void) {
  static const char *ins[] = {"a", "b"}, *outs[] = {"y"}, *attrs[] = {"alpha"};
  Graph *body = fn_body();
  char err[1024];
  /* a function in a custom domain is inlined */
  Graph *g = fn_caller("my.dom", "AddMulLeaky", OP_UNKNOWN);
  FmFunction f = {"my.dom", "AddMulLeaky", ins, 2, outs, 1, attrs, 1, body};
  FmWriteOpts wo = {.functions = &f, .nfunctions = 1};
  size_t n;
  void *b = fm_onnx_write_mem(g, &wo, &n);
  Graph *h = try_load_mem(b, n, NULL, err);
  CHECK(h);
  if (h) check_inlined(h);
  else fprintf(stderr, "%s\n", err);
  fm_graph_free(h);
  free(b);
  fm_graph_free(g);

  /* an ai.fewmul op the compiler knows (ops.def) stays native unless inlining is asked for */
  OpKind shift = fm_op_lookup("ai.fewmul", "Shift");
  g = fn_caller("ai.fewmul", "Shift", shift);
  FmFunction fs = {"ai.fewmul", "Shift", ins, 2, outs, 1, attrs, 1, body};
  wo.functions = &fs;
  b = fm_onnx_write_mem(g, &wo, &n);
  h = try_load_mem(b, n, NULL, err);
  if (shift != OP_UNKNOWN) CHECK(h && h->nnodes == 1 && h->nodes[0]->op == shift && h->nodes[0]->nin == 2);
  else if (h) check_inlined(h); /* not (yet) native: its function body is the op */
  CHECK(h);
  fm_graph_free(h);
  FmLoadOpts lo = {.inline_fewmul = 1};
  h = try_load_mem(b, n, &lo, err);
  CHECK(h);
  if (h) check_inlined(h);
  fm_graph_free(h);
  free(b);
  fm_graph_free(g);

  /* a caller without "alpha" takes the function's default (FunctionProto.attribute_proto,
     newer than our onnx.proto, so written here as the unknown field protobuf-c keeps) */
  g = fn_caller("my.dom", "AddMulLeaky", OP_UNKNOWN);
  g->nodes[0]->nattrs = 0;
  wo.functions = &f;
  b = fm_onnx_write_mem(g, &wo, &n);
  Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, n, b);
  free(b);
  Onnx__AttributeProto def = ONNX__ATTRIBUTE_PROTO__INIT;
  def.name = "alpha", def.has_type = 1, def.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
  def.has_f = 1, def.f = 0.5f;
  uint8_t field[64];
  size_t dl = onnx__attribute_proto__pack(&def, field + 1);
  field[0] = (uint8_t)dl; /* protobuf-c keeps the length prefix in the field's bytes */
  ProtobufCMessageUnknownField uf = {.tag = 11, .wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED,
                                     .len = dl + 1, .data = field};
  ProtobufCMessage *fb = &mp->functions[0]->base;
  unsigned save_n = fb->n_unknown_fields;
  ProtobufCMessageUnknownField *save = fb->unknown_fields;
  fb->n_unknown_fields = 1, fb->unknown_fields = &uf;
  n = onnx__model_proto__get_packed_size(mp);
  b = malloc(n);
  onnx__model_proto__pack(mp, b);
  fb->n_unknown_fields = save_n, fb->unknown_fields = save;
  onnx__model_proto__free_unpacked(mp, NULL);
  h = try_load_mem(b, n, NULL, err);
  Node *lr = h ? find_op(h, OP_LeakyRelu) : NULL;
  CHECK(lr && fm_attr(lr, "alpha") && fm_attr_f(lr, "alpha", -1) == 0.5f);
  fm_graph_free(h);
  free(b);
  fm_graph_free(g);

  /* F_k calls F_{k-1} twice: 40 levels would be 2^40 nodes; refused, quickly */
  enum { LV = 40 };
  FmFunction chain[LV];
  Graph *bodies[LV];
  static const char *cin[] = {"a"};
  for (int k = 0; k < LV; k++) {
    Graph *cb = bodies[k] = fm_graph_new();
    Tensor *a = fm_tensor_new(cb, "a"), *m = fm_tensor_new(cb, "m"), *y = fm_tensor_new(cb, "y");
    Node *n1 = fm_node_new(cb, k ? OP_UNKNOWN : OP_Relu, NULL, 1, 1), *n2 = fm_node_new(cb, OP_UNKNOWN, NULL, 1, 1);
    n1->in[0] = a, n1->out[0] = m, n2->in[0] = m, n2->out[0] = y;
    n1->op_type = n2->op_type = k ? fm_sprintf(&cb->arena, "F%d", k - 1) : "Neg";
    n1->domain = n2->domain = k ? "d" : "";
    if (!k) n2->op = OP_Neg;
    chain[k] = (FmFunction){"d", fm_sprintf(&cb->arena, "F%d", k), cin, 1, outs, 1, NULL, 0, cb};
  }
  g = fn_caller("d", "F39", OP_UNKNOWN);
  g->nodes[0]->nin = 1;
  wo.functions = chain, wo.nfunctions = LV;
  b = fm_onnx_write_mem(g, &wo, &n);
  h = try_load_mem(b, n, NULL, err);
  CHECK(!h && (strstr(err, "nodes") || strstr(err, "grows past")));
  free(b);
  fm_graph_free(g);
  for (int k = 0; k < LV; k++) fm_graph_free(bodies[k]);
  wo.nfunctions = 1;

  /* a function that calls itself */
  g = fn_caller("my.dom", "Rec", OP_UNKNOWN);
  Graph *rb = fn_caller("my.dom", "Rec", OP_UNKNOWN);
  static const char *rins[] = {"x", "w2"};
  FmFunction fr = {"my.dom", "Rec", rins, 2, outs, 1, attrs, 1, rb};
  wo.functions = &fr;
  b = fm_onnx_write_mem(g, &wo, &n);
  h = try_load_mem(b, n, NULL, err);
  CHECK(!h && has(err, "calls itself"));
  free(b);
  fm_graph_free(rb);
  fm_graph_free(g);
  fm_graph_free(body);
}

/* ---- storage forms and external data (models built with protobuf-c directly) ---- */
typedef struct {
  Onnx__ModelProto m; Onnx__GraphProto g; Onnx__OperatorSetIdProto op, *ops[1];
  Onnx__TensorProto *inits[4]; Onnx__ValueInfoProto out, *outs[1];
} Mini;

/* A model whose single output is the initialiser `t`. */
static void *mini(Onnx__TensorProto *t, size_t *n) {
  Mini k;
  k.m = (Onnx__ModelProto)ONNX__MODEL_PROTO__INIT;
  k.g = (Onnx__GraphProto)ONNX__GRAPH_PROTO__INIT;
  k.op = (Onnx__OperatorSetIdProto)ONNX__OPERATOR_SET_ID_PROTO__INIT;
  k.op.domain = "", k.op.has_version = 1, k.op.version = 13;
  k.ops[0] = &k.op;
  k.m.has_ir_version = 1, k.m.ir_version = 8, k.m.n_opset_import = 1, k.m.opset_import = k.ops;
  k.m.graph = &k.g;
  k.inits[0] = t, k.g.n_initializer = 1, k.g.initializer = k.inits;
  k.out = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
  k.out.name = t->name, k.outs[0] = &k.out, k.g.n_output = 1, k.g.output = k.outs;
  *n = onnx__model_proto__get_packed_size(&k.m);
  void *b = malloc(*n);
  onnx__model_proto__pack(&k.m, b);
  return b;
}

static Tensor *load_mini(Onnx__TensorProto *t, Graph **gout, char *err, const char *path) {
  size_t n;
  void *b = mini(t, &n);
  Graph *g;
  if (path) {
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
    g = try_load(path, NULL, err);
  } else {
    g = try_load_mem(b, n, NULL, err);
  }
  free(b);
  *gout = g;
  return g && g->noutputs ? g->outputs[0] : NULL;
}

static void test_storage(void) {
  char err[1024];
  int64_t dims[2] = {2, 3};
  float fv[6] = {1.5f, -2, 3e10f, 0, -0.0f, 7};
  Onnx__TensorProto t = ONNX__TENSOR_PROTO__INIT;
  t.name = "c", t.n_dims = 2, t.dims = dims, t.has_data_type = 1, t.data_type = FM_F32;
  t.n_float_data = 6, t.float_data = fv;
  Graph *g1, *g2;
  Tensor *a = load_mini(&t, &g1, err, NULL);
  t.n_float_data = 0, t.has_raw_data = 1, t.raw_data.len = sizeof fv, t.raw_data.data = (uint8_t *)fv;
  Tensor *b = load_mini(&t, &g2, err, NULL);
  CHECK(a && b && a->rank == 2 && !memcmp(a->data, fv, sizeof fv) && !memcmp(b->data, fv, sizeof fv));
  fm_graph_free(g1), fm_graph_free(g2);

  /* int8, float16, bool, uint16 live in int32_data */
  int32_t iv[6] = {-1, 0, 1, -128, 127, 5};
  int8_t i8[6] = {-1, 0, 1, -128, 127, 5};
  t.has_raw_data = 0, t.n_int32_data = 6, t.int32_data = iv, t.data_type = FM_I8;
  a = load_mini(&t, &g1, err, NULL);
  CHECK(a && a->dtype == FM_I8 && !memcmp(a->data, i8, 6));
  fm_graph_free(g1);
  int32_t hv[6] = {0x3c00, 0xc000, 0x7bff, 0, 0x8000, 1};
  uint16_t h16[6] = {0x3c00, 0xc000, 0x7bff, 0, 0x8000, 1};
  t.int32_data = hv, t.data_type = FM_F16;
  a = load_mini(&t, &g1, err, NULL);
  t.n_int32_data = 0, t.has_raw_data = 1, t.raw_data.len = 12, t.raw_data.data = (uint8_t *)h16;
  b = load_mini(&t, &g2, err, NULL);
  CHECK(a && b && !memcmp(a->data, h16, 12) && !memcmp(b->data, h16, 12));
  fm_graph_free(g1), fm_graph_free(g2);
  int64_t lv[6] = {1, -2, INT64_MAX, INT64_MIN, 0, 9};
  t.has_raw_data = 0, t.data_type = FM_I64, t.n_int64_data = 6, t.int64_data = lv;
  a = load_mini(&t, &g1, err, NULL);
  CHECK(a && !memcmp(a->data, lv, sizeof lv));
  fm_graph_free(g1);
  double dv[6] = {1e300, -2, 0.1, 0, 5, 6};
  t.n_int64_data = 0, t.data_type = FM_F64, t.n_double_data = 6, t.double_data = dv;
  a = load_mini(&t, &g1, err, NULL);
  CHECK(a && !memcmp(a->data, dv, sizeof dv));
  fm_graph_free(g1);

  /* size mismatches name the tensor */
  t.n_double_data = 5;
  a = load_mini(&t, &g1, err, NULL);
  CHECK(!g1 && has(err, "initialiser 'c'") && has(err, "5 values"));
  t.n_double_data = 0, t.has_raw_data = 1, t.raw_data.len = 47, t.raw_data.data = (uint8_t *)dv;
  a = load_mini(&t, &g1, err, NULL);
  CHECK(!g1 && has(err, "initialiser 'c'") && has(err, "47 bytes"));
  int64_t neg[2] = {2, -3};
  t.dims = neg;
  a = load_mini(&t, &g1, err, NULL);
  CHECK(!g1 && has(err, "initialiser 'c'") && has(err, "negative"));
  t.dims = dims, t.has_raw_data = 0, t.data_type = FM_STRING;
  a = load_mini(&t, &g1, err, NULL);
  CHECK(!g1 && has(err, "initialiser 'c'") && has(err, "string"));

  /* external data: 16 bytes of junk then the six floats */
  char bin[600], model[600];
  snprintf(bin, sizeof bin, "%s/w.bin", tmpdir);
  snprintf(model, sizeof model, "%s/ext.onnx", tmpdir);
  FILE *f = fopen(bin, "wb");
  fwrite("0123456789abcdef", 1, 16, f);
  fwrite(fv, 1, sizeof fv, f);
  fclose(f);
  Onnx__StringStringEntryProto kv[3], *kvp[3] = {&kv[0], &kv[1], &kv[2]};
  for (int i = 0; i < 3; i++) kv[i] = (Onnx__StringStringEntryProto)ONNX__STRING_STRING_ENTRY_PROTO__INIT;
  kv[0].key = "location", kv[0].value = "w.bin";
  kv[1].key = "offset", kv[1].value = "16";
  kv[2].key = "length", kv[2].value = "24";
  Onnx__TensorProto e = ONNX__TENSOR_PROTO__INIT;
  e.name = "c", e.n_dims = 2, e.dims = dims, e.has_data_type = 1, e.data_type = FM_F32;
  e.has_data_location = 1, e.data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
  e.n_external_data = 3, e.external_data = kvp;
  a = load_mini(&e, &g1, err, model);
  CHECK(a && !memcmp(a->data, fv, sizeof fv));
  fm_graph_free(g1);
  kv[2].value = "20";
  a = load_mini(&e, &g1, err, model);
  CHECK(!g1 && has(err, "initialiser 'c'") && has(err, "length"));
  kv[2].value = "24", kv[1].value = "17";
  a = load_mini(&e, &g1, err, model);
  CHECK(!g1 && has(err, "too few"));
  kv[1].value = "16", kv[0].value = "../w.bin";
  a = load_mini(&e, &g1, err, model);
  CHECK(!g1 && has(err, "leaves the model's directory"));
  kv[0].value = "/etc/passwd";
  a = load_mini(&e, &g1, err, model);
  CHECK(!g1 && has(err, "relative"));
  kv[0].value = "missing.bin";
  a = load_mini(&e, &g1, err, model);
  CHECK(!g1 && has(err, "missing.bin") && has(err, "No such file"));
  kv[0].value = "w.bin";
  a = load_mini(&e, &g1, err, NULL); /* from memory with external data refused */
  fm_graph_free(g1);
  FmLoadOpts no = {.no_external_data = 1};
  size_t n;
  void *mb = mini(&e, &n);
  g1 = try_load_mem(mb, n, &no, err);
  CHECK(!g1 && has(err, "external data is not allowed"));
  free(mb);
  (void)b;
}

/* ---- bad input ---- */
static void test_bad_input(void) {
  char err[1024];
  Graph *g = try_load("no/such/x.onnx", NULL, err);
  CHECK(!g && !strcmp(err, "cannot open 'no/such/x.onnx': No such file or directory"));
  unsigned seed = 12345;
  int clean = 0;
  for (int k = 0; k < 200; k++) {
    uint8_t junk[512];
    size_t n = (size_t)(k * 7 % 512) + 1;
    for (size_t i = 0; i < n; i++) seed = seed * 1103515245u + 12345u, junk[i] = (uint8_t)(seed >> 16);
    g = try_load_mem(junk, n, NULL, err);
    clean += g != NULL || *err != 0;
    fm_graph_free(g);
  }
  CHECK(clean == 200);
  g = try_load_mem("\xff\xff\xff", 3, NULL, err);
  CHECK(!g && !strcmp(err, "'mem.onnx' is not a valid ONNX model (protobuf parse failed)"));

  /* truncation at every 97th byte: fails cleanly or loads */
  const char *models[] = {DATA "/pytorch-operator/test_operator_conv/model.onnx",
                          DATA "/node/test_layer_normalization_3d_axis_negative_3_epsilon_expanded/model.onnx"};
  size_t n;
  for (int mi = 0; mi < 2; mi++) {
    uint8_t *bytes = read_all(models[mi], &n);
    if (!bytes) continue;
    int cuts = 0, outcomes = 0;
    for (size_t cut = 0; cut < n; cut += 97, cuts++) {
      g = try_load_mem(bytes, cut, NULL, err);
      outcomes += g != NULL || *err != 0;
      fm_graph_free(g);
    }
    CHECK(cuts > 50 && outcomes == cuts);
    free(bytes);
  }

  /* a dangling input name */
  Graph *b = build_graph();
  Tensor *ghost = fm_tensor_new(b, "foo");
  b->nodes[2]->in[0] = ghost;
  void *mb = fm_onnx_write_mem(b, NULL, &n);
  g = try_load_mem(mb, n, NULL, err);
  CHECK(!g && !strcmp(err, "node 'custom' (Frobnicate): input 'foo' is not produced by any node, input or initialiser"));
  free(mb);
  /* the same tensor produced twice */
  b->nodes[2]->in[0] = b->nodes[1]->out[0];
  b->nodes[2]->out[0] = b->nodes[0]->out[0];
  mb = fm_onnx_write_mem(b, NULL, &n);
  g = try_load_mem(mb, n, NULL, err);
  CHECK(!g && has(err, "output 'y' is already defined"));
  free(mb);
  fm_graph_free(b);
}

/* ---- symbolic dims and --shape ---- */
static void *with_input_dim(int axis, const char *param, size_t *n) {
  Graph *g = build_graph();
  size_t m;
  void *b = fm_onnx_write_mem(g, NULL, &m);
  fm_graph_free(g);
  Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, m, b);
  free(b);
  Onnx__TensorShapeProto__Dimension *d = mp->graph->input[0]->type->tensor_type->shape->dim[axis];
  if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM) free(d->dim_param);
  d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
  d->dim_param = strdup(param);
  *n = onnx__model_proto__get_packed_size(mp);
  b = malloc(*n);
  onnx__model_proto__pack(mp, b);
  onnx__model_proto__free_unpacked(mp, NULL);
  return b;
}

static void test_shapes(void) {
  char err[1024];
  size_t n;
  void *b = with_input_dim(2, "height", &n);
  Graph *g = try_load_mem(b, n, NULL, err);
  CHECK(!g && !strcmp(err, "input 'x' has unknown dimension 'height' at axis 2: give it with --shape x=1x3x<height>x8"));
  Arena a = {0};
  FmShapeOverride sh;
  fm_shape_override_parse(&a, "x=2x3x16x8", &sh);
  CHECK(!strcmp(sh.name, "x") && sh.rank == 4 && sh.dims[0] == 2 && sh.dims[2] == 16);
  FmLoadOpts lo = {.shapes = &sh, .nshapes = 1};
  g = try_load_mem(b, n, &lo, err);
  CHECK(g && g->inputs[0]->dims[0] == 2 && g->inputs[0]->dims[2] == 16);
  fm_graph_free(g);
  fm_shape_override_parse(&a, "x=2x3x16", &sh);
  g = try_load_mem(b, n, &lo, err);
  CHECK(!g && has(err, "--shape x") && has(err, "3 dimensions"));
  fm_shape_override_parse(&a, "x=2x5x16x8", &sh);
  g = try_load_mem(b, n, &lo, err);
  CHECK(!g && has(err, "axis 1 is 5, but the model says 3"));
  fm_shape_override_parse(&a, "nosuch=1x2", &sh);
  g = try_load_mem(b, n, &lo, err);
  CHECK(!g && !strcmp(err, "--shape names 'nosuch', which is not an input of the model (inputs: x)"));
  FmTry t;
  int failed = 0;
  FM_TRY(&t) {
    fm_shape_override_parse(&a, "x=1xfoo", &sh);
    fm_try_pop(&t);
  } else {
    failed = has(fm_errmsg(), "--shape");
  }
  CHECK(failed);
  free(b);
  /* the batch dim: its dim_param becomes the batch name */
  b = with_input_dim(0, "bsz", &n);
  g = try_load_mem(b, n, NULL, err);
  CHECK(g && g->inputs[0]->dims[0] == -1 && !strcmp(g->batch_name, "bsz"));
  fm_graph_free(g);
  fm_shape_override_parse(&a, "x=4x3x8x8", &sh);
  g = try_load_mem(b, n, &lo, err);
  CHECK(g && g->inputs[0]->dims[0] == 4);
  fm_graph_free(g);
  free(b);
  fm_arena_free(&a);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/test_onnx_XXXXXX");
  if (!mkdtemp(tmpdir)) return 1;
  struct stat st;
  if (stat(DATA, &st) == 0) {
    test_conv2d();
    test_batchnorm();
    test_constant_node();
    test_all_models();
  } else {
    printf("test_onnx: SKIPPING the backend-test model checks: %s is absent (apt install libonnx-testdata)\n", DATA);
  }
  test_roundtrip();
  test_order();
  test_functions();
  test_storage();
  test_bad_input();
  test_shapes();
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  return check_done("test_onnx");
}
