/* backend_c.c - the C backend, module level: <name>.c from a lowered program.
 *
 * fm_codegen (codegen.c) drives it through the FmBackend hooks (emit.h):
 *   begin_module  header comment, includes, the CPU kernel library's text
 *                 (fm_cpu_text, compiler/cpu/), "weights" section start
 *   emit_const    one constant tensor: a static aligned array, or (weights file) a
 *                 comment with its offset in the blob
 *   emit_fn       one kernel (emit_c.c, fm_emit_c_fn)
 *   emit_entry    io descriptors, <name>_workspace_size (the memory plan's ends),
 *                 <name>_set_weights, <name>_set_threads, <name>_run calling the
 *                 kernels in order with pointers into inputs, outputs, weights and
 *                 the planned workspace, and the fm_model_desc
 *   build         $CC (default gcc) -O3 -march=<target> -fopenmp -shared -> <name>.so
 */
#include "emit/codegen.h"
#include "emit/emit.h"
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#ifndef FM_VERSION
#define FM_VERSION "0.1.0"
#endif

/* Kernels that print the same canonical text (fm_emit_c_fn(.., 1)) are one function:
   a chain of 10,000 Relu/Add nodes compiles a handful of kernels, not 10,000. */
typedef struct Shared { uint64_t hash; const char *text, *name; } Shared;
typedef struct CState {
  int kernels_begun;
  Shared *tab; size_t cap, used;  /* open addressing on the canonical text */
  const char **callee;            /* by kernel index: the function run() calls */
  int nfns;
} CState;

static uint64_t text_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

/* The name of an earlier kernel with this canonical text, or NULL after recording it
   under name. */
static const char *share(FmModule *G, CState *cs, const char *text, const char *name) {
  Arena *a = &G->g->arena;
  if (2 * (cs->used + 1) > cs->cap) {
    size_t cap = cs->cap ? 2 * cs->cap : 256;
    Shared *t = fm_alloc(a, sizeof(Shared) * cap);
    memset(t, 0, sizeof(Shared) * cap);
    for (size_t i = 0; i < cs->cap; i++)
      if (cs->tab[i].text) {
        size_t j = cs->tab[i].hash & (cap - 1);
        while (t[j].text) j = (j + 1) & (cap - 1);
        t[j] = cs->tab[i];
      }
    cs->tab = t, cs->cap = cap;
  }
  uint64_t h = text_hash(text);
  size_t j = h & (cs->cap - 1);
  for (; cs->tab[j].text; j = (j + 1) & (cs->cap - 1))
    if (cs->tab[j].hash == h && !strcmp(cs->tab[j].text, text)) return cs->tab[j].name;
  cs->tab[j] = (Shared){h, fm_strdup(a, text), name};
  cs->used++;
  return NULL;
}

static int index_in(Tensor **list, int n, const Tensor *t) {
  for (int i = 0; i < n; i++)
    if (list[i] == t) return i;
  return -1;
}

/* A C expression `void *` for tensor t inside <name>_run. */
static const char *tensor_ptr(FmModule *G, Tensor *t) {
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
  return fm_sprintf(a, "(void *)(w + %s)", fm_lin_text(a, off));
}

static const char *lin_expr(Arena *a, FmLin l) {
  return fm_sprintf(a, l.b ? "(size_t)(%s)" : "(size_t)%s", fm_lin_text(a, l));
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

static void c_begin(FmModule *G) {
  FILE *f = G->f;
  Graph *g = G->g;
  Arena *a = &g->arena;
  const char *nm = G->name;
  CState *cs = fm_alloc(a, sizeof(CState));
  memset(cs, 0, sizeof *cs);
  cs->callee = fm_alloc(a, sizeof(char *) * (size_t)(G->p->nfns + 1));
  G->priv = cs;
  fprintf(f, "/* %s.c - generated by fewmul %s from %s. Do not edit.\n", nm, FM_VERSION,
          fm_comment_safe(a, G->o->source ? G->o->source : "?"));
  fprintf(f, " * %d kernels, %d constant tensors (%s), workspace %zu bytes at N = 1.\n */\n",
          G->p->nfns, G->nconsts, G->file_weights ? "in the weights file" : "embedded",
          fm_memplan_size(G->mp, 1));
  fprintf(f, "#include \"%s.h\"\n#include <math.h>\n#include <string.h>\n", nm);
  fprintf(f, "#ifdef _OPENMP\n#include <omp.h>\n#endif\n\n");
  fprintf(f, "#pragma GCC diagnostic push\n#pragma GCC diagnostic ignored \"-Wunused-function\"\n");
  fprintf(f, "#pragma GCC diagnostic ignored \"-Wunused-parameter\"\n");
  fprintf(f, "/* ---- prelude ---- */\n%s\n", fm_cpu_text);

  fprintf(f, "/* ---- weights ---- */\n");
  if (G->file_weights) fprintf(f, "static const unsigned char *%s_blob; /* set by %s_set_weights */\n", nm, nm);
}

static void c_const(FmModule *G, int k) {
  FILE *f = G->f;
  Arena *a = &G->g->arena;
  Tensor *t = G->consts[k];
  if (G->file_weights) {
    fprintf(f, "/* +%llu: %s %s %s */\n", (unsigned long long)G->blob_off[k], fm_comment_safe(a, t->name),
            fm_dtype_name(t->dtype), fm_model_shape_str(a, t));
    return;
  }
  int64_t n = fm_numel(t);
  fprintf(f, "/* %s %s */\nstatic const %s %s_w%d[%lld] __attribute__((aligned(64))) = {", fm_comment_safe(a, t->name),
          fm_model_shape_str(a, t), fm_dtype_ctype(t->dtype), G->name, k, (long long)(n ? n : 1));
  if (n) write_array(f, t->dtype, t->data, n);
  else fprintf(f, "0");
  fprintf(f, "\n};\n");
}

static void kernels_begin(FmModule *G) {
  CState *cs = G->priv;
  if (!cs->kernels_begun) fprintf(G->f, "\n/* ---- kernels ---- */\n");
  cs->kernels_begun = 1;
}

static void c_fn(FmModule *G, KFn *fn) {
  CState *cs = G->priv;
  kernels_begin(G);
  char *text;
  size_t len;
  FILE *mem = open_memstream(&text, &len);
  if (!mem) fm_fail("out of memory printing kernel %s", fn->name);
  fm_emit_c_fn(mem, fn, 1);
  fclose(mem);
  const char *same = share(G, cs, text, fn->name);
  free(text);
  cs->callee[cs->nfns++] = same ? same : fn->name;
  if (same) {
    if (fn->node)
      fprintf(G->f, "/* %s: node '%s' (%s) runs %s */\n\n", fn->name, fm_comment_safe(&G->g->arena, fn->node->name),
              fn->node->op_type, same);
    return;
  }
  fflush(G->f);
  fm_emit_c_fn(G->f, fn, 0);
  fprintf(G->f, "\n");
}

static void c_entry(FmModule *G) {
  FILE *f = G->f;
  Graph *g = G->g;
  Arena *a = &g->arena;
  const char *nm = G->name;
  kernels_begin(G);
  fprintf(f, "#pragma GCC diagnostic pop\n\n");

  fm_write_io_desc(G, f, "inputs", g->inputs, g->ninputs);
  fm_write_io_desc(G, f, "outputs", g->outputs, g->noutputs);

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

  fprintf(f, "FM_GLUE int %s_run(int64_t N, const void *const *in, void *const *out, void *ws) {\n", nm);
  fprintf(f, "  unsigned char *w = (unsigned char *)ws;\n");
  const char *too_big = G->mp->max_batch < INT64_MAX ? fm_sprintf(a, " || N > %lldLL", (long long)G->mp->max_batch) : "";
  fprintf(f, "  if (N <= 0%s || !w || ((uintptr_t)w & 63)%s%s) return 1;\n", too_big,
          g->ninputs ? " || !in" : "", g->noutputs ? " || !out" : "");
  if (G->file_weights) fprintf(f, "  if (!%s_blob) return 2;\n", nm);
  fprintf(f, "  (void)w, (void)in, (void)out;\n");
  int step = 0;
  CState *cs = G->priv;
  for (KFn *fn = G->p->fns; fn; fn = fn->next, step++) {
    fprintf(f, "  %s(N", cs->callee[step]);
    for (int k = 0; k < fn->nbufs; k++) {
      KBuf *b = fn->bufs[k];
      if (b->kind == KBUF_TENSOR) fprintf(f, ", %s", tensor_ptr(G, b->tensor));
      else if (b->kind == KBUF_SCRATCH) {
        FmLin off = G->mp->scratch_off[step][k];
        fprintf(f, ", (void *)(w + %s)", fm_lin_text(a, off));
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

static void c_build(FmModule *G, const char *dir, const char *c_path, const char *so_path) {
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
  /* the target's ISA (--target), never fewmul's own build flags */
  const char *march = fm_sprintf(a, "-march=%s", G->o->march ? G->o->march : "native");
  const char *const flags[] = {"-O3", march, "-fopenmp", "-shared", "-fPIC", "-DFM_SHARED", "-o"};
  for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) argv[argc++] = flags[i];
  argv[argc++] = so_path, argv[argc++] = c_path, argv[argc++] = "-lm", argv[argc] = NULL;
  fm_cleanup_add(so_path);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  /* its own process group, so an interrupted compile stops it with its children (and,
     in the background, it must not read the terminal: stdin is /dev/null) */
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawnattr_t sa;
  posix_spawnattr_init(&sa);
  posix_spawnattr_setpgroup(&sa, 0);
  posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETPGROUP);
  pid_t pid;
  int err = posix_spawnp(&pid, argv[0], &fa, &sa, (char *const *)argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&sa);
  if (err == 0) fm_cleanup_child(pid);
  int code = 127, st;
  if (err == 0 && waitpid(pid, &st, 0) == pid) code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  else if (err == 0) code = -1;
  fm_cleanup_child(0);
  if (code != 0) {
    if (code == 127) fm_fail("C compiler '%s' not found (set CC to a C compiler)", cc);
    const char *why = first_error(a, log);
    fm_fail("C compiler '%s' failed building %s.so (exit %d)%s%s", cc, G->name, code, *why ? ": " : "", why);
  }
  unlink(log);
  fm_cleanup_forget(log);
}


static int c_can_call(const char *routine) { return fm_routine_find(routine) != NULL; }

const FmBackend fm_backend_c = {
  .name = "c",
  .file_ext = ".c",
  .caps = {.cpu_routines = 1, .host_threads = 1, .shared_object = 1},
  .can_call = c_can_call,
  .begin_module = c_begin,
  .emit_const = c_const,
  .emit_fn = c_fn,
  .emit_entry = c_entry,
  .finish = NULL,
  .build = c_build,
};
