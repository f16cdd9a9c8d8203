/* model_c.c - a lowered program to <name>.c, <name>.h, <name>.weights and <name>.so.
 *
 * model.c = header comment, the C prelude, the weights (static arrays, or offsets in a
 * weights file), one C function per kernel (fm_emit_c_fn), then <name>_run calling
 * the kernels in order with pointers into the caller's inputs/outputs, the weights
 * and the planned workspace (passes/memplan.c). Everything is written into a private
 * temporary directory inside the output directory, the .so is built there, and only
 * then are the files renamed into place, so a failure leaves nothing behind.
 */
#include "emit/codegen.h"
#include "emit/emit.h"
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>

extern char **environ;

#ifndef FM_VERSION
#define FM_VERSION "0.1.0"
#endif


uint64_t fm_weights_checksum(const void *data, size_t n) {
  const unsigned char *p = data;
  uint64_t h = 1469598103934665603ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = (h ^ w) * 1099511628211ull;
  }
  for (; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

int fm_is_c_ident(const char *s) {
  if (!s || !*s || isdigit((unsigned char)*s)) return 0;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_') return 0;
  return 1;
}

/* ---- the model's buffers ---- */
typedef struct Gen {
  KProgram *p;
  Graph *g;
  const FmCodegenOpts *o;
  const char *name;
  FmMemPlan *mp;
  int file_weights;
  Tensor **consts; int nconsts; /* constants in the order they are emitted */
  int *const_of;                /* by tensor id: index in consts or -1 */
  uint64_t *blob_off;           /* file mode: section offsets */
  uint64_t blob_total, checksum;
  FILE *f;
} Gen;

static int index_in(Tensor **list, int n, const Tensor *t) {
  for (int i = 0; i < n; i++)
    if (list[i] == t) return i;
  return -1;
}

static void add_const(Gen *G, Tensor *t) {
  if (G->const_of[t->id] >= 0) return;
  if (!fm_dtype_size(t->dtype) || t->dtype == FM_STRING)
    fm_fail("tensor '%s': constants of type %s cannot be compiled", t->name, fm_dtype_name(t->dtype));
  if (fm_numel(t) < 0) fm_fail("tensor '%s': constant with unknown shape", t->name);
  G->const_of[t->id] = G->nconsts;
  G->consts[G->nconsts++] = t;
}

static const char *lin_text(Arena *a, FmLin l);

/* A C expression `void *` for tensor t inside <name>_run. */
static const char *tensor_ptr(Gen *G, Tensor *t) {
  Arena *a = &G->g->arena;
  int i = index_in(G->g->inputs, G->g->ninputs, t);
  if (i >= 0) return fm_sprintf(a, "(void *)in[%d]", i);
  if (t->data) {
    int k = G->const_of[t->id];
    assert(k >= 0);
    if (G->file_weights)
      return fm_sprintf(a, "(void *)(%s_blob + %llu)", G->name, (unsigned long long)G->blob_off[k]);
    return fm_sprintf(a, "(void *)%s_w%d", G->name, k);
  }
  i = index_in(G->g->outputs, G->g->noutputs, t);
  if (i >= 0) return fm_sprintf(a, "out[%d]", i);
  FmLin off = G->mp->tensor_off[t->id];
  assert(off.a >= 0);
  return fm_sprintf(a, "(void *)(w + %s)", lin_text(a, off));
}

/* "128", "64 * N", "128 + 64 * N" */
static const char *lin_text(Arena *a, FmLin l) {
  if (!l.b) return fm_sprintf(a, "%lld", (long long)l.a);
  if (!l.a) return fm_sprintf(a, "%lld * N", (long long)l.b);
  return fm_sprintf(a, "%lld + %lld * N", (long long)l.a, (long long)l.b);
}

static const char *lin_expr(Arena *a, FmLin l) {
  return fm_sprintf(a, l.b ? "(size_t)(%s)" : "(size_t)%s", lin_text(a, l));
}

/* Text safe inside a C comment. */
static const char *comment_safe(Arena *a, const char *s) {
  char *r = fm_strdup(a, s ? s : "");
  for (char *q = r; *q; q++)
    if ((q[0] == '*' && q[1] == '/') || (q[0] == '/' && q[1] == '*') || *q == '\n' || (unsigned char)*q < 32)
      *q = '_';
  return r;
}

static const char *shape_str(Gen *G, const Tensor *t) {
  Arena *a = &G->g->arena;
  if (t->rank == 0) return "[]";
  char buf[256];
  int k = 0;
  buf[k++] = '[';
  for (int i = 0; i < t->rank && k < 200; i++) {
    int64_t d = t->dims[i];
    if (i) k += snprintf(buf + k, sizeof buf - k, ", ");
    if (d == -1) k += snprintf(buf + k, sizeof buf - k, "N");
    else if (d < 0) k += snprintf(buf + k, sizeof buf - k, "%lld*N", (long long)-d);
    else k += snprintf(buf + k, sizeof buf - k, "%lld", (long long)d);
  }
  buf[k++] = ']', buf[k] = 0;
  return fm_strdup(a, buf);
}

/* ---- fast exact number formatting (fprintf("%a") is slow for 100M floats) ---- */
static char *put_u64(char *p, uint64_t v) {
  char tmp[24];
  int n = 0;
  do tmp[n++] = (char)('0' + v % 10), v /= 10; while (v);
  while (n) *p++ = tmp[--n];
  return p;
}

static char *put_i64(char *p, int64_t v) {
  if (v == INT64_MIN) return p + sprintf(p, "(-9223372036854775807LL-1)");
  if (v < 0) *p++ = '-', v = -v;
  return put_u64(p, (uint64_t)v);
}

/* "0x<lead>.<frac>p<exp>" with the ndig hex digits of frac, trailing zeros dropped:
   exact, and the usual %a spelling. */
static char *put_hexfloat(char *p, int lead, uint64_t frac, int ndig, int exp) {
  static const char hx[] = "0123456789abcdef";
  *p++ = '0', *p++ = 'x', *p++ = (char)('0' + lead);
  while (ndig > 0 && !(frac & 15)) frac >>= 4, ndig--;
  if (ndig) {
    *p++ = '.';
    for (int i = ndig - 1; i >= 0; i--) *p++ = hx[(frac >> (4 * i)) & 15];
  }
  *p++ = 'p';
  if (exp >= 0) *p++ = '+';
  return put_i64(p, exp);
}

static char *put_f32(char *p, float v) {
  uint32_t u;
  memcpy(&u, &v, 4);
  int neg = u >> 31, e = (u >> 23) & 255;
  uint32_t m = u & 0x7fffff;
  if (e == 255) return p + sprintf(p, m ? "NAN" : neg ? "-INFINITY" : "INFINITY");
  if (neg) *p++ = '-';
  if (!e && !m) return memcpy(p, "0.0f", 4), p + 4;
  p = put_hexfloat(p, e != 0, (uint64_t)m << 1, 6, e ? e - 127 : -126);
  *p++ = 'f';
  return p;
}

static char *put_f64(char *p, double v) {
  uint64_t u;
  memcpy(&u, &v, 8);
  int neg = (int)(u >> 63), e = (int)((u >> 52) & 2047);
  uint64_t m = u & ((1ull << 52) - 1);
  if (e == 2047) return p + sprintf(p, m ? "NAN" : neg ? "-INFINITY" : "INFINITY");
  if (neg) *p++ = '-';
  if (!e && !m) return memcpy(p, "0.0", 3), p + 3;
  return put_hexfloat(p, e != 0, m, 13, e ? e - 1023 : -1022);
}

static char *put_elem(char *p, FmDType t, const void *data, int64_t i) {
  switch (t) {
  case FM_F32: return put_f32(p, ((const float *)data)[i]);
  case FM_F64: return put_f64(p, ((const double *)data)[i]);
  case FM_I64: { int64_t v = ((const int64_t *)data)[i];
                 p = put_i64(p, v);
                 if (v != INT64_MIN) *p++ = 'L', *p++ = 'L';
                 return p; }
  case FM_U64: p = put_u64(p, ((const uint64_t *)data)[i]); *p++ = 'U', *p++ = 'L', *p++ = 'L'; return p;
  case FM_I32: { int32_t v = ((const int32_t *)data)[i];
                 return v == INT32_MIN ? p + sprintf(p, "(-2147483647-1)") : put_i64(p, v); }
  case FM_U32: p = put_u64(p, ((const uint32_t *)data)[i]); *p++ = 'u'; return p;
  case FM_I16: return put_i64(p, ((const int16_t *)data)[i]);
  case FM_U16: case FM_F16: return put_u64(p, ((const uint16_t *)data)[i]);
  case FM_I8: return put_i64(p, ((const int8_t *)data)[i]);
  case FM_U8: case FM_BOOL: return put_u64(p, ((const uint8_t *)data)[i]);
  default: assert(0 && "unsupported constant dtype"); return p;
  }
}

static void write_array(FILE *f, FmDType t, const void *data, int64_t n) {
  char buf[1 << 16];
  char *p = buf;
  for (int64_t i = 0; i < n; i++) {
    if (i % 12 == 0) *p++ = '\n', *p++ = ' ', *p++ = ' ';
    p = put_elem(p, t, data, i);
    *p++ = ',';
    if (p - buf > (int)sizeof buf - 128) fwrite(buf, 1, (size_t)(p - buf), f), p = buf;
  }
  fwrite(buf, 1, (size_t)(p - buf), f);
}

/* ---- files ---- */
static const char desc_text[] =
  "#ifndef FM_MODEL_DESC_DEFINED\n"
  "#define FM_MODEL_DESC_DEFINED\n"
  "#define FM_ABI_VERSION 1\n"
  "typedef struct fm_io_desc {\n"
  "  const char *name;\n"
  "  int dtype;          /* ONNX TensorProto.DataType: 1 float32, 7 int64, 9 bool, ... */\n"
  "  int rank;\n"
  "  int64_t dims[8];    /* a dim < 0 means (-dim) * batch */\n"
  "} fm_io_desc;\n"
  "\n"
  "typedef struct fm_model_desc {\n"
  "  int abi_version;                 /* FM_ABI_VERSION */\n"
  "  const char *name;\n"
  "  int ninputs, noutputs;\n"
  "  const fm_io_desc *inputs, *outputs;\n"
  "  size_t (*workspace_size)(int64_t batch);                  /* bytes, 64-byte aligned use */\n"
  "  /* Runs the model: inputs/outputs in graph order; returns 0 or a nonzero status. */\n"
  "  int (*run)(int64_t batch, const void *const *inputs, void *const *outputs, void *workspace);\n"
  "  size_t weights_size;             /* 0 when weights are embedded in the code */\n"
  "  int (*set_weights)(const void *blob, size_t size); /* when compiled with --weights=file */\n"
  "  void (*set_threads)(int n);      /* OpenMP thread count (no-op without OpenMP) */\n"
  "} fm_model_desc;\n"
  "#endif\n";

static void io_comment(Gen *G, FILE *f, const char *what, Tensor **ts, int n) {
  for (int i = 0; i < n; i++)
    fprintf(f, " *   %s %d: %s %s %s\n", what, i, comment_safe(&G->g->arena, ts[i]->name),
            fm_dtype_name(ts[i]->dtype), shape_str(G, ts[i]));
}

static void write_header(Gen *G, FILE *f) {
  const char *nm = G->name;
  char up[256];
  snprintf(up, sizeof up, "%s", nm);
  for (char *q = up; *q; q++) *q = (char)toupper((unsigned char)*q);
  fprintf(f, "/* %s.h - generated by fewmul %s from %s. Do not edit.\n *\n", nm, FM_VERSION,
          comment_safe(&G->g->arena, G->o->source ? G->o->source : "?"));
  io_comment(G, f, "input ", G->g->inputs, G->g->ninputs);
  io_comment(G, f, "output", G->g->outputs, G->g->noutputs);
  fprintf(f, " * N is the batch size given at run time; buffers are dense, row-major.\n *\n");
  fprintf(f, " * Usage: compile %s.c with your program (-O2, optionally -fopenmp):\n *\n", nm);
  fprintf(f, " *   #include \"%s.h\"\n", nm);
  fprintf(f, " *   int64_t N = 1;\n");
  fprintf(f, " *   size_t wsz = %s_workspace_size(N);       // %zu bytes at N = 1, %zu at N = 8\n",
          nm, fm_memplan_size(G->mp, 1), fm_memplan_size(G->mp, 8));
  fprintf(f, " *   void *ws = aligned_alloc(64, wsz);        // 64-byte aligned, reusable\n");
  if (G->file_weights) {
    fprintf(f, " *   // weights: read %s.weights (%llu bytes) into a 64-byte aligned buffer (or mmap it)\n",
            nm, (unsigned long long)G->blob_total);
    fprintf(f, " *   if (%s_set_weights(blob, %lluu) != 0) { ... }  // not this model's file\n", nm,
            (unsigned long long)G->blob_total);
  }
  for (int i = 0; i < G->g->ninputs; i++)
    fprintf(f, " *   %s *x%d = ...;  // %s\n", fm_dtype_ctype(G->g->inputs[i]->dtype), i, shape_str(G, G->g->inputs[i]));
  for (int i = 0; i < G->g->noutputs; i++)
    fprintf(f, " *   %s *y%d = ...;  // %s\n", fm_dtype_ctype(G->g->outputs[i]->dtype), i, shape_str(G, G->g->outputs[i]));
  fprintf(f, " *   const void *in[] = {");
  for (int i = 0; i < G->g->ninputs; i++) fprintf(f, "%sx%d", i ? ", " : "", i);
  fprintf(f, "};\n *   void *out[] = {");
  for (int i = 0; i < G->g->noutputs; i++) fprintf(f, "%sy%d", i ? ", " : "", i);
  fprintf(f, "};\n *   if (%s_run(N, in, out, ws) != 0) { ... }  // N <= 0, no workspace%s\n", nm,
          G->file_weights ? " or no weights" : "");
  fprintf(f, " *   free(ws);\n *\n");
  fprintf(f, " * Runs are thread-safe as long as each thread has its own workspace. Built with\n"
             " * -DFM_SHARED, the code also exports fewmul_model() for the fewmul runtime.\n */\n");
  fprintf(f, "#ifndef %s_H\n#define %s_H\n#include <stddef.h>\n#include <stdint.h>\n\n", up, up);
  fprintf(f, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n%s\n", desc_text);
  fprintf(f, "#define %s_NUM_INPUTS %d\n#define %s_NUM_OUTPUTS %d\n", up, G->g->ninputs, up, G->g->noutputs);
  fprintf(f, "#define %s_WEIGHTS_SIZE %lluu /* 0: weights are in the code */\n\n", up,
          (unsigned long long)(G->file_weights ? G->blob_total : 0));
  fprintf(f, "extern const fm_model_desc %s_desc;\n", nm);
  fprintf(f, "/* Bytes of workspace for batch N (a multiple of 64); 0 for an N so large that the\n"
             "   sizes would overflow (_run refuses such N too). */\n");
  fprintf(f, "size_t %s_workspace_size(int64_t N);\n", nm);
  fprintf(f, "/* Inputs/outputs in graph order; ws: 64-byte aligned, %s_workspace_size(N) bytes.\n"
             "   Returns 0, or nonzero for N <= 0 or too large, NULL or misaligned ws%s. */\n", nm,
          G->file_weights ? ", weights not set" : "");
  fprintf(f, "int %s_run(int64_t N, const void *const *in, void *const *out, void *ws);\n", nm);
  if (G->file_weights)
    fprintf(f, "/* Points the model at the contents of %s.weights (64-byte aligned, kept alive\n"
               "   by the caller); returns nonzero if the blob is not this model's. */\n"
               "int %s_set_weights(const void *blob, size_t size);\n", nm, nm);
  fprintf(f, "void %s_set_threads(int n);\n", nm);
  fprintf(f, "\n#ifdef __cplusplus\n}\n#endif\n#endif\n");
}

static void write_io_desc(Gen *G, FILE *f, const char *what, Tensor **ts, int n) {
  if (!n) return;
  fprintf(f, "static const fm_io_desc %s_%s[%d] = {\n", G->name, what, n);
  for (int i = 0; i < n; i++) {
    Tensor *t = ts[i];
    fprintf(f, "  {\"");
    for (const char *s = t->name; *s; s++) {
      unsigned char c = (unsigned char)*s;
      if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
      else if (c < 32 || c >= 127) fprintf(f, "\\%03o", c);
      else fputc(c, f);
    }
    fprintf(f, "\", %d, %d, {", (int)t->dtype, t->rank);
    for (int d = 0; d < t->rank; d++) fprintf(f, "%s%lld", d ? ", " : "", (long long)t->dims[d]);
    fprintf(f, "}},\n");
  }
  fprintf(f, "};\n");
}

static void write_source(Gen *G, FILE *f) {
  Graph *g = G->g;
  Arena *a = &g->arena;
  const char *nm = G->name;
  fprintf(f, "/* %s.c - generated by fewmul %s from %s. Do not edit.\n", nm, FM_VERSION,
          comment_safe(a, G->o->source ? G->o->source : "?"));
  fprintf(f, " * %d kernels, %d constant tensors (%s), workspace %zu bytes at N = 1.\n */\n",
          G->p->nfns, G->nconsts, G->file_weights ? "in the weights file" : "embedded",
          fm_memplan_size(G->mp, 1));
  fprintf(f, "#include \"%s.h\"\n#include <math.h>\n#include <string.h>\n", nm);
  fprintf(f, "#ifdef _OPENMP\n#include <omp.h>\n#endif\n\n");
  fprintf(f, "#pragma GCC diagnostic push\n#pragma GCC diagnostic ignored \"-Wunused-function\"\n");
  fprintf(f, "#pragma GCC diagnostic ignored \"-Wunused-parameter\"\n");
  fprintf(f, "/* ---- prelude ---- */\n%s\n", fm_prelude_text);

  fprintf(f, "/* ---- weights ---- */\n");
  if (G->file_weights) {
    fprintf(f, "static const unsigned char *%s_blob; /* set by %s_set_weights */\n", nm, nm);
    for (int k = 0; k < G->nconsts; k++)
      fprintf(f, "/* +%llu: %s %s %s */\n", (unsigned long long)G->blob_off[k],
              comment_safe(a, G->consts[k]->name), fm_dtype_name(G->consts[k]->dtype), shape_str(G, G->consts[k]));
  } else {
    for (int k = 0; k < G->nconsts; k++) {
      Tensor *t = G->consts[k];
      int64_t n = fm_numel(t);
      fprintf(f, "/* %s %s */\nstatic const %s %s_w%d[%lld] __attribute__((aligned(64))) = {", comment_safe(a, t->name),
              shape_str(G, t), fm_dtype_ctype(t->dtype), nm, k, (long long)(n ? n : 1));
      if (n) write_array(f, t->dtype, t->data, n);
      else fprintf(f, "0");
      fprintf(f, "\n};\n");
    }
  }

  fprintf(f, "\n/* ---- kernels ---- */\n");
  for (KFn *fn = G->p->fns; fn; fn = fn->next) {
    fflush(f);
    fm_emit_c_fn(f, fn);
    fprintf(f, "\n");
  }
  fprintf(f, "#pragma GCC diagnostic pop\n\n");

  write_io_desc(G, f, "inputs", g->inputs, g->ninputs);
  write_io_desc(G, f, "outputs", g->outputs, g->noutputs);

  fprintf(f, "\nsize_t %s_workspace_size(int64_t N) {\n  size_t s = 64;\n  if (N < 1) N = 1;\n", nm);
  if (G->mp->max_batch < INT64_MAX) /* N beyond: sizes would overflow */
    fprintf(f, "  if (N > %lldLL) return 0;\n", (long long)G->mp->max_batch);
  for (int i = 0; i < G->mp->nends; i++)
    fprintf(f, "  if (%s > s) s = %s;\n", lin_expr(a, G->mp->ends[i]), lin_expr(a, G->mp->ends[i]));
  fprintf(f, "  return s;\n}\n\n");

  if (G->file_weights) {
    fprintf(f, "int %s_set_weights(const void *blob, size_t size) {\n", nm);
    fprintf(f, "  const unsigned char *b = (const unsigned char *)blob;\n");
    fprintf(f, "  uint64_t sum;\n");
    fprintf(f, "  if (!b || size != %lluu || ((uintptr_t)b & 63) || memcmp(b, \"FMW1\", 4) != 0) return 1;\n",
            (unsigned long long)G->blob_total);
    fprintf(f, "  memcpy(&sum, b + 16, 8);\n");
    fprintf(f, "  if (sum != 0x%llxull) return 2; /* another model's weights */\n",
            (unsigned long long)G->checksum);
    fprintf(f, "  %s_blob = b;\n  return 0;\n}\n\n", nm);
  }
  fprintf(f, "void %s_set_threads(int n) {\n#ifdef _OPENMP\n  if (n > 0) omp_set_num_threads(n);\n"
             "#else\n  (void)n;\n#endif\n}\n\n", nm);

  fprintf(f, "int %s_run(int64_t N, const void *const *in, void *const *out, void *ws) {\n", nm);
  fprintf(f, "  unsigned char *w = (unsigned char *)ws;\n");
  const char *too_big = G->mp->max_batch < INT64_MAX ? fm_sprintf(a, " || N > %lldLL", (long long)G->mp->max_batch) : "";
  fprintf(f, "  if (N <= 0%s || !w || ((uintptr_t)w & 63)%s%s) return 1;\n", too_big,
          g->ninputs ? " || !in" : "", g->noutputs ? " || !out" : "");
  if (G->file_weights) fprintf(f, "  if (!%s_blob) return 2;\n", nm);
  fprintf(f, "  (void)w, (void)in, (void)out;\n");
  int step = 0;
  for (KFn *fn = G->p->fns; fn; fn = fn->next, step++) {
    fprintf(f, "  %s(N", fn->name);
    for (int k = 0; k < fn->nbufs; k++) {
      KBuf *b = fn->bufs[k];
      if (b->kind == KBUF_TENSOR) fprintf(f, ", %s", tensor_ptr(G, b->tensor));
      else if (b->kind == KBUF_SCRATCH) {
        FmLin off = G->mp->scratch_off[step][k];
        fprintf(f, ", (void *)(w + %s)", lin_text(a, off));
      }
    }
    fprintf(f, ");\n");
  }
  /* outputs no kernel writes: graph inputs, constants, repeats of another output */
  for (int i = 0; i < g->noutputs; i++) {
    Tensor *t = g->outputs[i];
    int first = index_in(g->outputs, g->noutputs, t);
    int is_in = index_in(g->inputs, g->ninputs, t) >= 0;
    if (first == i && !is_in && !t->data) continue;
    const char *src = first < i ? fm_sprintf(a, "out[%d]", first) : tensor_ptr(G, t);
    fprintf(f, "  memcpy(out[%d], %s, %s);\n", i, src, lin_expr(a, fm_tensor_lin_bytes(t)));
  }
  fprintf(f, "  return 0;\n}\n\n");

  fprintf(f, "const fm_model_desc %s_desc = {\n  FM_ABI_VERSION, \"%s\", %d, %d, %s, %s,\n", nm, nm,
          g->ninputs, g->noutputs, g->ninputs ? fm_sprintf(a, "%s_inputs", nm) : "0",
          g->noutputs ? fm_sprintf(a, "%s_outputs", nm) : "0");
  fprintf(f, "  %s_workspace_size, %s_run, %lluu, %s, %s_set_threads,\n};\n\n", nm, nm,
          (unsigned long long)(G->file_weights ? G->blob_total : 0),
          G->file_weights ? fm_sprintf(a, "%s_set_weights", nm) : "0", nm);
  fprintf(f, "#ifdef FM_SHARED\n__attribute__((visibility(\"default\"))) const fm_model_desc *fewmul_model(void);\n"
             "const fm_model_desc *fewmul_model(void) { return &%s_desc; }\n#endif\n", nm);
}

/* The weights file; fills G->blob_off / blob_total / checksum first (layout pass). */
static void layout_blob(Gen *G) {
  G->blob_off = fm_alloc(&G->g->arena, sizeof(uint64_t) * (size_t)(G->nconsts + 1));
  uint64_t off = sizeof(FmWeightsHeader);
  for (int k = 0; k < G->nconsts; k++) {
    G->blob_off[k] = off;
    off += (fm_nbytes(G->consts[k]) + 63) & ~(uint64_t)63;
  }
  G->blob_total = off;
  /* The checksum of the padded sections as written: every section is a multiple of
     8 bytes long, so hashing word by word per section equals hashing the file body. */
  uint64_t h = 1469598103934665603ull;
  for (int k = 0; k < G->nconsts; k++) {
    const unsigned char *d = G->consts[k]->data;
    size_t nb = fm_nbytes(G->consts[k]), padded = (nb + 63) & ~(size_t)63, i = 0;
    for (; i + 8 <= nb; i += 8) {
      uint64_t w;
      memcpy(&w, d + i, 8);
      h = (h ^ w) * 1099511628211ull;
    }
    for (; i < padded; i += 8) {
      uint64_t w = 0;
      if (i < nb) memcpy(&w, d + i, nb - i);
      h = (h ^ w) * 1099511628211ull;
    }
  }
  G->checksum = h;
}

static void write_blob(Gen *G, FILE *f) {
  FmWeightsHeader h = {{'F', 'M', 'W', '1'}, (uint32_t)G->nconsts, G->blob_total, G->checksum, {0}};
  fwrite(&h, sizeof h, 1, f);
  static const unsigned char zeros[64];
  for (int k = 0; k < G->nconsts; k++) {
    size_t nb = fm_nbytes(G->consts[k]);
    fwrite(G->consts[k]->data, 1, nb, f);
    fwrite(zeros, 1, ((nb + 63) & ~(size_t)63) - nb, f);
  }
}

static FILE *open_out(const char *path) {
  FILE *f = fopen(path, "wb");
  if (!f) fm_fail("cannot write '%s': %s", path, strerror(errno));
  fm_cleanup_add(path);
  return f;
}

static void close_out(FILE *f, const char *path) {
  if (ferror(f) | (fclose(f) != 0)) fm_fail("cannot write '%s': %s", path, strerror(errno));
}

/* First line of the compiler log that says "error" (or the first line). */
static const char *first_error(Arena *a, const char *log) {
  FILE *f = fopen(log, "r");
  if (!f) return "";
  char line[512], first[512] = "";
  const char *res = NULL;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    if (!first[0]) snprintf(first, sizeof first, "%s", line);
    if (strstr(line, "error")) { res = fm_strdup(a, line); break; }
  }
  fclose(f);
  return res ? res : fm_strdup(a, first);
}

static void build_so(Gen *G, const char *dir, const char *c_path, const char *so_path) {
  Arena *a = &G->g->arena;
  const char *cc = getenv("CC");
  if (!cc || !*cc) cc = "gcc";
  const char *log = fm_sprintf(a, "%s/cc.log", dir);
  fm_cleanup_add(log);
  /* CC may carry flags ("ccache gcc"): split it on blanks, as make does. No shell, so
     any path works. */
  const char *argv[64];
  int argc = 0;
  char *ccw = fm_strdup(a, cc);
  for (char *t = strtok(ccw, " \t"); t && argc < 40; t = strtok(NULL, " \t")) argv[argc++] = t;
  if (!argc) fm_fail("CC is empty");
  static const char *const flags[] = {"-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-DFM_SHARED", "-o"};
  for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) argv[argc++] = flags[i];
  argv[argc++] = so_path, argv[argc++] = c_path, argv[argc++] = "-lm", argv[argc] = NULL;
  fm_cleanup_add(so_path);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid;
  int err = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  int code = 127, st;
  if (err == 0 && waitpid(pid, &st, 0) == pid) code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  else if (err == 0) code = -1;
  if (code != 0) {
    if (code == 127) fm_fail("C compiler '%s' not found (set CC to a C compiler)", cc);
    const char *why = first_error(a, log);
    fm_fail("C compiler '%s' failed building %s.so (exit %d)%s%s", cc, G->name, code, *why ? ": " : "", why);
  }
  unlink(log);
  fm_cleanup_forget(log);
}

void fm_codegen(KProgram *p, const FmCodegenOpts *o) {
  Graph *g = p->g;
  Arena *a = &g->arena;
  Gen G = {.p = p, .g = g, .o = o, .name = o->name ? o->name : "model"};
  if (!fm_is_c_ident(G.name)) fm_fail("model name '%s' is not a C identifier", G.name);
  for (int i = 0; i < g->ninputs + g->noutputs; i++) {
    Tensor *t = i < g->ninputs ? g->inputs[i] : g->outputs[i - g->ninputs];
    fm_tensor_lin_bytes(t); /* known, at most linear in N */
    if (!fm_dtype_size(t->dtype) || t->dtype == FM_STRING)
      fm_fail("%s '%s': type %s is not supported", i < g->ninputs ? "input" : "output", t->name,
              fm_dtype_name(t->dtype));
  }
  G.mp = fm_memplan(p);

  G.consts = fm_alloc(a, sizeof(Tensor *) * (size_t)(g->ntensors + 1));
  G.const_of = fm_alloc(a, sizeof(int) * (size_t)(g->ntensors + 1));
  for (int i = 0; i < g->ntensors; i++) G.const_of[i] = -1;
  uint64_t wbytes = 0;
  for (KFn *fn = p->fns; fn; fn = fn->next)
    for (int k = 0; k < fn->nbufs; k++)
      if (fn->bufs[k]->kind == KBUF_TENSOR && fn->bufs[k]->tensor->data) add_const(&G, fn->bufs[k]->tensor);
  for (int i = 0; i < g->noutputs; i++)
    if (g->outputs[i]->data) add_const(&G, g->outputs[i]);
  for (int k = 0; k < G.nconsts; k++) wbytes += fm_nbytes(G.consts[k]);
  G.file_weights = o->weights == FM_WEIGHTS_FILE;
  if (o->weights == FM_WEIGHTS_AUTO && wbytes > FM_EMBED_LIMIT) {
    G.file_weights = 1;
    if (!o->quiet)
      fprintf(stderr, "fewmul: note: %.1f MB of weights: writing %s.weights instead of embedding them "
                      "(--weights=embed to force)\n", (double)wbytes / (1 << 20), G.name);
  }
  if (G.file_weights) layout_blob(&G);

  const char *outdir = o->outdir ? o->outdir : ".";
  struct stat st;
  if (stat(outdir, &st) != 0) {
    /* mkdir -p; each directory made is removed again if compilation fails */
    char *p = fm_strdup(a, outdir);
    for (char *q = p + 1;; q++) {
      if (*q != '/' && *q) continue;
      char c = *q;
      *q = 0;
      if (stat(p, &st) != 0) {
        if (mkdir(p, 0777) != 0) fm_fail("cannot create output directory '%s': %s", p, strerror(errno));
        fm_cleanup_add(p);
      }
      if (!(*q = c)) break;
    }
  } else if (!S_ISDIR(st.st_mode)) {
    fm_fail("output '%s' exists and is not a directory", outdir);
  }
  char *tmpdir = fm_sprintf(a, "%s/.fewmul-tmp-XXXXXX", outdir);
  if (!mkdtemp(tmpdir)) fm_fail("cannot create a temporary directory in '%s': %s", outdir, strerror(errno));
  fm_cleanup_add(tmpdir);

  const char *exts[4] = {".h", ".c", ".weights", ".so"};
  const char *tmp[4], *fin[4];
  for (int i = 0; i < 4; i++) {
    tmp[i] = fm_sprintf(a, "%s/%s%s", tmpdir, G.name, exts[i]);
    fin[i] = fm_sprintf(a, "%s/%s%s", outdir, G.name, exts[i]);
  }
  FILE *f = open_out(tmp[0]);
  write_header(&G, f);
  close_out(f, tmp[0]);
  f = open_out(tmp[1]);
  write_source(&G, f);
  close_out(f, tmp[1]);
  if (G.file_weights) {
    f = open_out(tmp[2]);
    write_blob(&G, f);
    close_out(f, tmp[2]);
  }
  if (!o->no_so) build_so(&G, tmpdir, tmp[1], tmp[3]);

  /* Everything exists: move it into place. A stale weights file of an earlier
     compile would not match this model, so it goes. */
  if (!G.file_weights) unlink(fin[2]);
  for (int i = 0; i < 4; i++) {
    if ((i == 2 && !G.file_weights) || (i == 3 && o->no_so)) continue;
    if (rename(tmp[i], fin[i]) != 0) fm_fail("cannot create '%s': %s", fin[i], strerror(errno));
    fm_cleanup_forget(tmp[i]);
  }
  rmdir(tmpdir);
  fm_cleanup_forget(tmpdir);
  fm_cleanup_forget(outdir);
}
