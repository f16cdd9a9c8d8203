/* test_kverify.c - the kernel IR verifier (kernel/kverify.c) accepts good kernels and
 * rejects each kind of bad one with a message naming what is wrong, and the operator
 * table (kernel/kops.def) is complete: every operator has a dump spelling and a name;
 * the CPU library's routines count their own operations (kernel/kroutines.c). */
#include "check.h"
#include "kernel/kernel.h"
#include "emit/emit.h"
#include <string.h>

static Graph *g;

static Tensor *mk(const char *name, FmDType t, int64_t d0, int64_t d1) {
  Tensor *x = fm_tensor_new(g, name);
  x->dtype = t, x->rank = 2, x->dims[0] = d0, x->dims[1] = d1;
  return x;
}

/* verify fn; expect ok (want == NULL) or an error containing want */
static void expect(KFn *fn, const char *want) {
  char err[256];
  int rc = fm_kverify(fn, err, sizeof err);
  if (!want) {
    CHECK(rc == 0);
    if (rc) fprintf(stderr, "  unexpected: %s\n", err);
  } else {
    CHECK(rc == -1 && strstr(err, want) && strstr(err, fn->name));
    if (rc != -1 || !strstr(err, want)) fprintf(stderr, "  %s: wanted '%s', got '%s'\n", fn->name, want, rc ? err : "ok");
  }
}

int main(void) {
  g = fm_graph_new();
  Tensor *x = mk("x", FM_F32, -1, 8), *y = mk("y", FM_F32, -1, 8), *xi = mk("xi", FM_I32, 4, 2);
  KB b;
  KFn *fn;

  /* good: y[n, i] = max(x[n, i], 0) over N x 8 */
  fn = kb_begin(&b, g, NULL, "good");
  KBuf *bx = kb_tensor(&b, x), *by = kb_tensor(&b, y);
  KVar *i = kb_for(&b, "i", k_i(0), k_mul(k_batch(), k_i(8)), KL_PARALLEL);
  kb_store(&b, by, k_var(i), k_max(k_load(bx, k_var(i)), k_f32(0)));
  kb_end(&b);
  expect(fn, NULL);

  /* mixed operand dtypes: float32 + int32 without a cast */
  fn = kb_begin(&b, g, NULL, "mixed");
  bx = kb_tensor(&b, x), by = kb_tensor(&b, y);
  KBuf *bi = kb_tensor(&b, xi);
  i = kb_for(&b, "i", k_i(0), k_i(8), KL_SERIAL);
  kb_store(&b, by, k_var(i), k_add(k_load(bx, k_var(i)), k_load(bi, k_var(i))));
  kb_end(&b);
  expect(fn, "insert k_cast");

  /* static bounds: y has 8*N elements, the loop runs to 9 unconditionally */
  fn = kb_begin(&b, g, NULL, "oob");
  bx = kb_tensor(&b, x), by = kb_tensor(&b, y);
  i = kb_for(&b, "i", k_i(0), k_i(9), KL_SERIAL);
  kb_store(&b, by, k_var(i), k_f32(1));
  kb_end(&b);
  expect(fn, "outside its 8 elements");

  /* negative index through a load */
  fn = kb_begin(&b, g, NULL, "neg");
  bx = kb_tensor(&b, x), by = kb_tensor(&b, y);
  i = kb_for(&b, "i", k_i(0), k_i(8), KL_SERIAL);
  kb_store(&b, by, k_var(i), k_load(bx, k_sub(k_var(i), k_i(1))));
  kb_end(&b);
  expect(fn, "x[-1..6]");

  /* ... but the same load under an if on the index is fine (not statically known) */
  fn = kb_begin(&b, g, NULL, "guarded");
  bx = kb_tensor(&b, x), by = kb_tensor(&b, y);
  i = kb_for(&b, "i", k_i(0), k_i(8), KL_SERIAL);
  kb_if(&b, k_ge(k_var(i), k_i(1)));
  kb_store(&b, by, k_var(i), k_load(bx, k_sub(k_var(i), k_i(1))));
  kb_end(&b);
  kb_end(&b);
  expect(fn, NULL);

  /* a store into a constant table */
  fn = kb_begin(&b, g, NULL, "constw");
  float tab[4] = {1, 2, 3, 4};
  KBuf *bt = kb_const(&b, "tab", FM_F32, 4, tab);
  kb_store(&b, bt, k_i(0), k_f32(1));
  expect(fn, "constant buffer");

  /* a parallel loop that assigns a scalar declared outside it (a race) */
  fn = kb_begin(&b, g, NULL, "race");
  bx = kb_tensor(&b, x), by = kb_tensor(&b, y);
  KVar *acc = kb_let(&b, "acc", FM_F32, k_f32(0));
  i = kb_for(&b, "i", k_i(0), k_i(8), KL_PARALLEL);
  kb_acc(&b, acc, KB_ADD, k_load(bx, k_var(i)));
  kb_end(&b);
  kb_store(&b, by, k_i(0), k_var(acc));
  expect(fn, "parallel loop 'i' assigns 'acc'");

  /* the same reduction in a serial loop is fine */
  fn = kb_begin(&b, g, NULL, "serialsum");
  bx = kb_tensor(&b, x), by = kb_tensor(&b, y);
  acc = kb_let(&b, "acc", FM_F32, k_f32(0));
  i = kb_for(&b, "i", k_i(0), k_i(8), KL_VECTOR);
  kb_acc(&b, acc, KB_ADD, k_load(bx, k_var(i)));
  kb_end(&b);
  kb_store(&b, by, k_i(0), k_var(acc));
  expect(fn, NULL);

  /* a loop variable read after its loop */
  fn = kb_begin(&b, g, NULL, "scope");
  bx = kb_tensor(&b, x), by = kb_tensor(&b, y);
  i = kb_for(&b, "i", k_i(0), k_i(8), KL_SERIAL);
  kb_end(&b);
  kb_store(&b, by, k_var(i), k_f32(0));
  expect(fn, "outside the block");

  /* a float index */
  fn = kb_begin(&b, g, NULL, "findex");
  bx = kb_tensor(&b, x), by = kb_tensor(&b, y);
  kb_store(&b, by, k_i(0), k_load(bx, k_f32(1)));
  expect(fn, "index into 'x' is float32");

  /* a call with an argument of the wrong kind (fm_sgemm's A is a pointer) */
  fn = kb_begin(&b, g, NULL, "callkind");
  bx = kb_tensor(&b, x), by = kb_tensor(&b, y);
  kb_call(&b, "fm_sgemm", k_i(1), k_i(1), 14, k_i(0), k_i(1), k_i(0), k_i(1), k_i(1), k_i(0), k_i(1), k_i(0),
          k_addr(bx, k_i(0)), k_i(1), k_i(0), k_addr(by, k_i(0)), k_i(1), k_i(0));
  expect(fn, "argument 5 is not of kind 'c'");
  fn = kb_begin(&b, g, NULL, "callname");
  kb_call(&b, "fm_no_such_routine", NULL, NULL, 0);
  expect(fn, "unknown routine");

  /* a comparison typed as float (a hand-built tree) */
  fn = kb_begin(&b, g, NULL, "cmptype");
  bx = kb_tensor(&b, x), by = kb_tensor(&b, y);
  KExpr *c = k_lt(k_load(bx, k_i(0)), k_f32(0));
  c->t = FM_F32;
  kb_store(&b, by, k_i(0), c);
  expect(fn, "typed float32, not bool");

  /* the operator table: every entry filled (a half-added operator has NULL names) */
  int holes = 0;
  for (int k = 0; k < KU_COUNT; k++) holes += !fm_kun[k].dump || !fm_kun[k].name;
  for (int k = 0; k < KB_COUNT; k++) holes += !fm_kbin[k].dump || !fm_kbin[k].name || !fm_kbin[k].c_prec;
  CHECK(holes == 0);
  CHECK(!strcmp(fm_kbin[KB_LDEXP].c_float, "ldexpf") && fm_kbin[KB_LDEXP].cost == KC_SHIFT);
  CHECK(!strcmp(fm_kun[KU_ROUND].c_double, "nearbyint"));

  /* the CPU library's routine table: each routine's own operation count */
  const FmRoutine *r = fm_routine_find("fm_sgemm");
  double mu = -1, ad = -1;
  FmArg a[16] = {{.i = 2}, {.i = 5}, {.i = 1}, {.i = 8}, {.i = 10}};
  CHECK(r && r->count(a, &mu, &ad) && mu == 3 * 7 * 10 && ad == mu);
  int32_t msk[2 * 2] = {0x00010003, 0x0, 0x00000f0f, 0x00010001}; /* row 0: 2 nonzeros, row 1: 8 + 1 */
  FmArg t[16] = {{.i = 0}, {.i = 4}, {.i = 0}, {.i = 2}, {.i = 20}, {.p = NULL}, {.i = 20}, {.p = msk}, {.i = 2},
                 {.p = NULL}, {.i = 1}, {.p = NULL}, {.i = 1}, {.i = 0}, {.p = NULL}, {.i = 2}};
  r = fm_routine_find("fm_ternary_gemm");
  CHECK(r && r->count(t, &mu, &ad) && mu == 4 * 2 && ad == 4 * (2 + 9) + 4 * 2);
  t[7].p = NULL; /* masks unknown: no count, the cost model takes the lowering's estimate */
  CHECK(!r->count(t, &mu, &ad));
  r = fm_routine_find("fm_sgemm_pb");
  FmArg pb[12] = {{.i = 0}, {.i = 6}, {.i = 10}, {.i = 4}, [10] = {.i = 1}};
  CHECK(r && r->count(pb, &mu, &ad) && mu == 6 * 10 * 4 && ad == mu + 60);

  fm_graph_free(g);
  return check_done("test_kverify");
}
