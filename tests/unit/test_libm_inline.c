/* test_libm_inline.c - KB_MIN / KB_MAX / KB_LDEXP on floats: libm's semantics, inline.
 *
 * The kernel IR's float min/max print as the CPU library's fm_fminf/fm_fmaxf
 * (compiler/cpu/cpu_addonly.c), not as libm calls, which gcc does not inline without
 * -ffinite-math-only (a Relu/Clip element was a call, and the loop did not vectorise).
 * Checked: the interpreter and the printed, compiled C give glibc's fminf/fmaxf bit for
 * bit on NaNs, signed zeros, infinities and ordinary values (both orders); the printed
 * C calls no libm fminf/fmaxf; and the compiled Relu loop has no call in it. fm_ldexpf
 * (the pow2 kernels' exponent add) equals ldexpf bit for bit on random floats of every
 * class and shifts inside and outside the normal range, in the library, the
 * interpreter and the compiled printed C.
 */
#include "check.h"
#include "kernel/kernel.h"
#include "emit/emit.h"
#include "cpu/fm_cpu.h"
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NV 8
static const float vals[NV] = {NAN, -0.0f, 0.0f, 1.5f, -2.25f, INFINITY, -INFINITY, 3e-40f};

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }
/* libm's, called at run time: gcc's constant folding of fmaxf(-0.0f, 0.0f) gives +0,
   where glibc gives its first operand */
static float (*volatile lmaxf)(float, float) = fmaxf, (*volatile lminf)(float, float) = fminf;
static double (*volatile lmax)(double, double) = fmax, (*volatile lmin)(double, double) = fmin;

/* out[4*(i*NV+j) + {0,1,2,3}] = max(x_i, y_j), min(x_i, y_j) in float, then in double */
static KFn *build(Graph *g, KB *b, Tensor *x, Tensor *y, Tensor *o) {
  KFn *fn = kb_begin(b, g, NULL, "minmax");
  KBuf *X = kb_tensor(b, x), *Y = kb_tensor(b, y), *O = kb_tensor(b, o);
  KVar *i = kb_for(b, "i", k_i(0), k_i(NV * NV), KL_VECTOR);
  KExpr *a = k_load(X, k_var(i)), *c = k_load(Y, k_var(i));
  KExpr *o4 = k_mul(k_var(i), k_i(4));
  kb_store(b, O, o4, k_max(a, c));
  kb_store(b, O, k_add(o4, k_i(1)), k_min(a, c));
  kb_store(b, O, k_add(o4, k_i(2)), k_cast(FM_F32, k_max(k_cast(FM_F64, a), k_cast(FM_F64, c))));
  kb_store(b, O, k_add(o4, k_i(3)), k_cast(FM_F32, k_min(k_cast(FM_F64, a), k_cast(FM_F64, c))));
  kb_end(b);
  return fn;
}

/* ldexp: xl[i] (floats of every class) by nl[i] (shifts in and out of the normal range) */
#define NL 4096
static float xl[NL], yl[NL], zl[NL];
static int32_t nl[NL];
static void ldexp_data(void) {
  uint32_t r = 2463534242u;
  for (int i = 0; i < NL; i++) {
    r ^= r << 13, r ^= r >> 17, r ^= r << 5;
    uint32_t u = r;
    memcpy(&xl[i], &u, 4);
    if (i % 7 == 0) xl[i] = vals[i % NV];
    r ^= r << 13, r ^= r >> 17, r ^= r << 5;
    nl[i] = i % 3 ? (int32_t)(r % 61) - 30 : (int32_t)(r % 701) - 350;
  }
}
static KFn *build_ldexp(Graph *g, KB *b, Tensor *x, Tensor *n, Tensor *y) {
  KFn *fn = kb_begin(b, g, NULL, "ldx");
  KBuf *X = kb_tensor(b, x), *S = kb_tensor(b, n), *Y = kb_tensor(b, y);
  KVar *i = kb_for(b, "i", k_i(0), k_i(NL), KL_VECTOR);
  kb_store(b, Y, k_var(i), k_bin(KB_LDEXP, k_load(X, k_var(i)), k_load(S, k_var(i))));
  kb_end(b);
  return fn;
}
static int check_ldexp(const float *y) {
  int bad = 0;
  for (int i = 0; i < NL; i++) {
    float e = ldexpf(xl[i], nl[i]);
    bad += !same_bits(y[i], e) && !(isnan(y[i]) && isnan(e));
  }
  return bad;
}

static int check_out(const float *out) {
  int bad = 0;
  for (int i = 0; i < NV; i++)
    for (int j = 0; j < NV; j++) {
      const float *r = out + 4 * (i * NV + j);
      float x = vals[i], y = vals[j];
      float e[4] = {lmaxf(x, y), lminf(x, y), (float)lmax(x, y), (float)lmin(x, y)};
      for (int k = 0; k < 4; k++)
        if (!same_bits(r[k], e[k]) && !(isnan(r[k]) && isnan(e[k]))) {
          fprintf(stderr, "op %d of (%g, %g): %g, libm %g\n", k, x, y, r[k], e[k]);
          bad++;
        }
    }
  return bad;
}

int main(void) {
  Graph *g = fm_graph_new();
  Tensor *t[3];
  const char *names[3] = {"x", "y", "o"};
  for (int k = 0; k < 3; k++) {
    t[k] = fm_tensor_new(g, names[k]);
    t[k]->dtype = FM_F32, t[k]->rank = 1, t[k]->dims[0] = k == 2 ? 4 * NV * NV : NV * NV;
  }
  float xs[NV * NV], ys[NV * NV], o1[4 * NV * NV], o2[4 * NV * NV];
  for (int i = 0; i < NV; i++)
    for (int j = 0; j < NV; j++) xs[i * NV + j] = vals[i], ys[i * NV + j] = vals[j];
  /* the library's own functions (libfm_cpu.a) */
  int bad = 0;
  for (int i = 0; i < NV; i++)
    for (int j = 0; j < NV; j++) {
      float x = vals[i], y = vals[j];
      bad += !same_bits(fm_fmaxf(x, y), lmaxf(x, y)) && !(isnan(x) && isnan(y));
      bad += !same_bits(fm_fminf(x, y), lminf(x, y)) && !(isnan(x) && isnan(y));
    }
  CHECK(bad == 0);
  ldexp_data();
  for (int i = 0; i < NL; i++) yl[i] = fm_ldexpf(xl[i], nl[i]);
  CHECK(check_ldexp(yl) == 0);

  KB b;
  Tensor *lt[3];
  const char *lnames[3] = {"lx", "ln", "ly"};
  for (int k = 0; k < 3; k++) {
    lt[k] = fm_tensor_new(g, lnames[k]);
    lt[k]->dtype = k == 1 ? FM_I32 : FM_F32, lt[k]->rank = 1, lt[k]->dims[0] = NL;
  }
  KFn *lfn = build_ldexp(g, &b, lt[0], lt[1], lt[2]);
  void *lp[3] = {xl, nl, yl};
  memset(yl, 0, sizeof yl);
  char err[256];
  CHECK(fm_kinterp(lfn, 1, lp, err, sizeof err) == 0);
  CHECK(check_ldexp(yl) == 0);
  KFn *fn = build(g, &b, t[0], t[1], t[2]);
  void *p[3] = {xs, ys, o1};
  CHECK(fm_kinterp(fn, 1, p, err, sizeof err) == 0);
  CHECK(check_out(o1) == 0);

  if (system("command -v cc >/dev/null 2>&1") != 0) {
    printf("test_libm_inline: cc not found: skipping the printed-C comparison\n");
    fm_graph_free(g);
    return check_done("test_libm_inline");
  }
  char dir[] = "/tmp/fm_test_libm_XXXXXX", path[256], cmd[1024];
  CHECK(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/k.c", dir);
  FILE *f = fopen(path, "w");
  fputs(fm_cpu_text, f);
  long lib_end = ftell(f);
  fm_emit_c_fn(f, fn, 0);
  fm_emit_c_fn(f, lfn, 0);
  /* a Relu loop as the lowering writes it (Relu is max(x, 0)) */
  fputs("void relu(int64_t n, const float *restrict x, float *restrict y);\n"
        "void relu(int64_t n, const float *restrict x, float *restrict y) {\n"
        "  for (int64_t i = 0; i < n; i++) y[i] = fm_fmaxf(x[i], 0.0f);\n}\n", f);
  fprintf(f, "void run_minmax(void **p);\nvoid run_minmax(void **p) { minmax(1, p[0], p[1], p[2]); }\n");
  fprintf(f, "void run_ldx(void **p);\nvoid run_ldx(void **p) { ldx(1, p[0], p[1], p[2]); }\n");
  fclose(f);
  /* the printed kernel names no libm min/max */
  f = fopen(path, "r");
  fseek(f, lib_end, SEEK_SET);
  char line[4096];
  int libm = 0;
  while (fgets(line, sizeof line, f)) {
    for (const char *s = line; (s = strstr(s, "fm")) != NULL; s++)
      libm += (!strncmp(s, "fmaxf(", 6) || !strncmp(s, "fminf(", 6)) && (s == line || s[-1] != '_');
    for (const char *s = line; (s = strstr(s, "ldexpf(")) != NULL; s++) libm += s == line || s[-1] != '_';
  }
  fclose(f);
  CHECK(libm == 0);
#ifdef __AVX2__
  const char *arch = "-march=native";
#else
  const char *arch = "";
#endif
  snprintf(cmd, sizeof cmd, "cc -std=c11 -O3 %s -Wall -Wextra -Werror -shared -fPIC -o %s/k.so %s 2>&1", arch,
           dir, path);
  int rc = system(cmd);
  CHECK(rc == 0);
  if (rc == 0) {
    /* no call in the compiled Relu: the compare and select is inline (and vectorises) */
    snprintf(cmd, sizeof cmd,
             "command -v objdump >/dev/null || exit 0; objdump -d %s/k.so | "
             "awk '/<relu>:/{on=1;next} /^$/{on=0} on' | grep -q call && exit 1; exit 0",
             dir);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/k.so", dir);
    void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    CHECK(so != NULL);
    if (so) {
      void (*run)(void **);
      *(void **)&run = dlsym(so, "run_minmax");
      CHECK(run != NULL);
      if (run) {
        void *q[3] = {xs, ys, o2};
        run(q);
        CHECK(memcmp(o1, o2, sizeof o1) == 0);
        CHECK(check_out(o2) == 0);
      }
      *(void **)&run = dlsym(so, "run_ldx");
      CHECK(run != NULL);
      if (run) {
        memset(zl, 0, sizeof zl);
        void *q[3] = {xl, nl, zl};
        run(q);
        CHECK(check_ldexp(zl) == 0);
      }
      dlclose(so);
    }
  }
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK(system(cmd) == 0);
  fm_graph_free(g);
  return check_done("test_libm_inline");
}
