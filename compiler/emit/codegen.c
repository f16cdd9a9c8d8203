/* codegen.c - a lowered program to <name>.h, the backend's module, <name>.weights
 * and <name>.so.
 *
 * Backend-independent: plans the workspace (passes/memplan.c), collects the constant
 * tensors the kernels read, lays out the weights file, writes <name>.h (the model ABI:
 * fm_model_desc, shared by every backend that builds a shared object), then drives
 * the backend's hooks (emit.h) to write and build the module. Everything is written
 * into a private temporary directory inside the output directory, the .so is built
 * there, and only then are the files renamed into place, so a failure leaves nothing
 * behind.
 */
#include "emit/codegen.h"
#include "emit/emit.h"
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* The fm_io_desc table of ts as C: "static const fm_io_desc <name>_<what>[n] = {...};" */
void fm_write_io_desc(FmModule *G, FILE *f, const char *what, Tensor **ts, int n) {
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

int fm_is_c_ident(const char *s) {
  if (!s || !*s || isdigit((unsigned char)*s)) return 0;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_') return 0;
  return 1;
}

static void add_const(FmModule *G, Tensor *t) {
  if (G->const_of[t->id] >= 0) return;
  if (!fm_dtype_size(t->dtype) || t->dtype == FM_STRING)
    fm_fail("tensor '%s': constants of type %s cannot be compiled", t->name, fm_dtype_name(t->dtype));
  if (fm_numel(t) < 0) fm_fail("tensor '%s': constant with unknown shape", t->name);
  G->const_of[t->id] = G->nconsts;
  G->consts[G->nconsts++] = t;
}

const char *fm_lin_text(Arena *a, FmLin l) {
  if (!l.b) return fm_sprintf(a, "%lld", (long long)l.a);
  if (!l.a) return fm_sprintf(a, "%lld * N", (long long)l.b);
  return fm_sprintf(a, "%lld + %lld * N", (long long)l.a, (long long)l.b);
}

const char *fm_comment_safe(Arena *a, const char *s) {
  char *r = fm_strdup(a, s ? s : "");
  for (char *q = r; *q; q++)
    if ((q[0] == '*' && q[1] == '/') || (q[0] == '/' && q[1] == '*') || *q == '\n' || (unsigned char)*q < 32)
      *q = '_';
  return r;
}

const char *fm_model_shape_str(Arena *a, const Tensor *t) {
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

static void io_comment(FmModule *G, FILE *f, const char *what, Tensor **ts, int n) {
  for (int i = 0; i < n; i++)
    fprintf(f, " *   %s %d: %s %s %s\n", what, i, fm_comment_safe(&G->g->arena, ts[i]->name),
            fm_dtype_name(ts[i]->dtype), fm_model_shape_str(&G->g->arena, ts[i]));
}

static void write_header(FmModule *G, FILE *f) {
  const char *nm = G->name;
  char up[256];
  snprintf(up, sizeof up, "%s", nm);
  for (char *q = up; *q; q++) *q = (char)toupper((unsigned char)*q);
  fprintf(f, "/* %s.h - generated by fewmul %s from %s. Do not edit.\n *\n", nm, FM_VERSION,
          fm_comment_safe(&G->g->arena, G->o->source ? G->o->source : "?"));
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
    fprintf(f, " *   %s *x%d = ...;  // %s\n", fm_dtype_ctype(G->g->inputs[i]->dtype), i, fm_model_shape_str(&G->g->arena, G->g->inputs[i]));
  for (int i = 0; i < G->g->noutputs; i++)
    fprintf(f, " *   %s *y%d = ...;  // %s\n", fm_dtype_ctype(G->g->outputs[i]->dtype), i, fm_model_shape_str(&G->g->arena, G->g->outputs[i]));
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

/* The weights file; fills G->blob_off / blob_total / checksum first (layout pass). */
static void layout_blob(FmModule *G) {
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

static void write_blob(FmModule *G, FILE *f) {
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

void fm_codegen(KProgram *p, const FmCodegenOpts *o) {
  Graph *g = p->g;
  Arena *a = &g->arena;
  const FmBackend *be = o->backend ? o->backend : &fm_backend_c;
  FmModule G = {.p = p, .g = g, .o = o, .name = o->name ? o->name : "model"};
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
  G.file_weights = o->weights == FM_WEIGHTS_FILE || be->caps.weights_file;
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
  fm_cleanup_add_tree(tmpdir);

  const char *exts[4] = {".h", be->file_ext, ".weights", ".so"};
  const char *tmp[4], *fin[4];
  for (int i = 0; i < 4; i++) {
    tmp[i] = fm_sprintf(a, "%s/%s%s", tmpdir, G.name, exts[i]);
    fin[i] = fm_sprintf(a, "%s/%s%s", outdir, G.name, exts[i]);
  }
  FILE *f = open_out(tmp[0]);
  write_header(&G, f);
  close_out(f, tmp[0]);
  G.f = open_out(tmp[1]);
  be->begin_module(&G);
  for (int k = 0; k < G.nconsts; k++) be->emit_const(&G, k);
  for (KFn *fn = p->fns; fn; fn = fn->next) be->emit_fn(&G, fn);
  be->emit_entry(&G);
  if (be->finish) be->finish(&G);
  close_out(G.f, tmp[1]);
  G.f = NULL;
  if (G.file_weights) {
    f = open_out(tmp[2]);
    write_blob(&G, f);
    close_out(f, tmp[2]);
  }
  if (!o->no_so) be->build(&G, tmpdir, tmp[1], tmp[3]);

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
