/* test_memplan.c - the workspace planner: random lifetimes never overlap in memory
 * for any batch, sizes are exact, freed space is reused, and graph I/O stays out. */
#include "check.h"
#include "emit/codegen.h"
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 88172645463325252ull;
static int64_t rnd(int64_t n) { /* xorshift64, [0, n) */
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (int64_t)(rng % (uint64_t)n);
}

static const int64_t batches[] = {0, 1, 2, 3, 7, 64, 1000};
#define NB (int)(sizeof batches / sizeof *batches)

/* Every property the plan promises, checked directly against the raw items. */
static int check_items(FmMemItem *it, int n, const FmLin *sizes, FmLin *ends, int ne) {
  int bad = 0;
  for (int i = 0; i < n; i++) {
    bad |= it[i].off.a % 64 != 0 || it[i].off.b % 64 != 0 || it[i].off.a < 0 || it[i].off.b < 0;
    bad |= it[i].size.a < sizes[i].a || it[i].size.b < sizes[i].b;
  }
  for (int k = 0; k < NB; k++) {
    int64_t N = batches[k], maxend = 0, ws = 0;
    for (int i = 0; i < n; i++) {
      int64_t lo = fm_lin_at(it[i].off, N), hi = lo + fm_lin_at(sizes[i], N);
      if (fm_lin_at(it[i].off, N) + fm_lin_at(it[i].size, N) > maxend)
        maxend = fm_lin_at(it[i].off, N) + fm_lin_at(it[i].size, N);
      for (int j = 0; j < i; j++) {
        if (it[i].first > it[j].last || it[j].first > it[i].last) continue;
        int64_t lo2 = fm_lin_at(it[j].off, N), hi2 = lo2 + fm_lin_at(sizes[j], N);
        if (lo < hi && lo2 < hi2 && lo < hi2 && lo2 < hi) bad = 1;
      }
    }
    for (int e = 0; e < ne; e++)
      if (fm_lin_at(ends[e], N) > ws) ws = fm_lin_at(ends[e], N);
    bad |= ws != maxend;
  }
  return !bad;
}

static void test_random(void) {
  int ok = 1;
  for (int trial = 0; trial < 400; trial++) {
    int n = 1 + (int)rnd(48);
    FmMemItem it[48];
    FmLin sizes[48], ends[49];
    for (int i = 0; i < n; i++) {
      int64_t f = rnd(30), l = f + rnd(trial % 3 ? 6 : 30);
      /* a mix of fixed, batch-proportional and mixed sizes, some not multiples of 64 */
      int kind = (int)rnd(3);
      FmLin s = {kind != 1 ? 1 + rnd(5000) : 0, kind != 0 ? 4 * (1 + rnd(300)) : 0};
      it[i] = (FmMemItem){.size = s, .first = (int)f, .last = (int)l};
      sizes[i] = s;
    }
    int ne = fm_memplan_items(it, n, ends);
    if (!check_items(it, n, sizes, ends, ne)) {
      ok = 0;
      fprintf(stderr, "random trial %d failed\n", trial);
      break;
    }
  }
  CHECK(ok);
}

/* A chain a->b->c->d of equal sizes needs two slots, not four. */
static void test_reuse(void) {
  FmMemItem it[6];
  FmLin ends[7];
  for (int i = 0; i < 6; i++) it[i] = (FmMemItem){.size = {1000, 256}, .first = i, .last = i + 1};
  int ne = fm_memplan_items(it, 6, ends);
  CHECK(ne == 1);
  CHECK(ends[0].a == 2 * 1024 && ends[0].b == 2 * 256);
  /* disjoint lifetimes all share offset 0 */
  for (int i = 0; i < 6; i++) it[i] = (FmMemItem){.size = {100 + i, 0}, .first = 2 * i, .last = 2 * i};
  ne = fm_memplan_items(it, 6, ends);
  CHECK(ne == 1 && ends[0].a == 128 && ends[0].b == 0);
  CHECK(fm_memplan_items(it, 0, ends) == 0);
}

static Tensor *tens(Graph *g, const char *name, int64_t d0, int64_t d1) {
  Tensor *t = fm_tensor_new(g, name);
  t->dtype = FM_F32, t->rank = 2, t->dims[0] = d0, t->dims[1] = d1;
  return t;
}

static Node *node(Graph *g, Tensor *in, Tensor *w, Tensor *out) {
  Node *n = fm_node_new(g, OP_Relu, NULL, w ? 2 : 1, 1);
  n->in[0] = in;
  if (w) n->in[1] = w;
  n->out[0] = out;
  out->producer = n;
  return n;
}

/* x -> t1 -> t2 -> t3 -> y: t1 and t3 may share memory, x/y/w are not planned,
   scratch lives only during its kernel. */
static void test_program(void) {
  Graph *g = fm_graph_new();
  Tensor *x = tens(g, "x", -1, 100), *t1 = tens(g, "t1", -1, 100), *t2 = tens(g, "t2", -1, 50);
  Tensor *t3 = tens(g, "t3", -1, 100), *y = tens(g, "y", -1, 10);
  int64_t wd[2] = {10, 10};
  float wdata[100] = {0};
  Tensor *w = fm_tensor_const(g, "w", FM_F32, 2, wd, wdata);
  g->inputs = fm_alloc(&g->arena, sizeof(Tensor *)), g->inputs[0] = x, g->ninputs = 1;
  g->outputs = fm_alloc(&g->arena, sizeof(Tensor *)), g->outputs[0] = y, g->noutputs = 1;
  x->is_input = 1, y->is_output = 1;
  Node *n[4] = {node(g, x, NULL, t1), node(g, t1, NULL, t2), node(g, t2, w, t3), node(g, t3, NULL, y)};
  KProgram *p = fm_alloc(&g->arena, sizeof *p);
  p->g = g, p->last = &p->fns;
  KBuf *scr = NULL;
  for (int i = 0; i < 4; i++) {
    KB b;
    char name[16];
    snprintf(name, sizeof name, "k%d", i);
    KFn *f = kb_begin(&b, g, n[i], name);
    if (i == 1) scr = kb_scratch(&b, "s", FM_F32, 7);
    *p->last = f, p->last = &f->next, p->nfns++;
  }
  FmMemPlan *mp = fm_memplan(p);
  CHECK(mp->tensor_off[x->id].a < 0 && mp->tensor_off[y->id].a < 0 && mp->tensor_off[w->id].a < 0);
  FmLin o1 = mp->tensor_off[t1->id], o2 = mp->tensor_off[t2->id], o3 = mp->tensor_off[t3->id];
  CHECK(o1.a >= 0 && o2.a >= 0 && o3.a >= 0);
  CHECK(o1.a == o3.a && o1.b == o3.b);                  /* t1 is dead when t3 is made */
  CHECK(!(o1.a == o2.a && o1.b == o2.b));               /* t1 and t2 are alive together */
  FmLin so = mp->scratch_off[1][scr->id];
  CHECK(so.a >= 0 && so.a % 64 == 0);
  for (int64_t N = 1; N <= 9; N += 4) {
    /* t1 (400N bytes), t2 (200N) and the scratch (28 -> 64) at kernel 1 */
    size_t ws = fm_memplan_size(mp, N);
    CHECK(ws >= (size_t)(400 * N + 256 * N + 64));
    CHECK(ws <= (size_t)(448 * N + 256 * N + 64));
    int64_t s_lo = fm_lin_at(so, N), s_hi = s_lo + 28;
    int64_t a_lo = fm_lin_at(o1, N), a_hi = a_lo + 400 * N, b_lo = fm_lin_at(o2, N), b_hi = b_lo + 200 * N;
    CHECK(s_hi <= a_lo || a_hi <= s_lo);
    CHECK(s_hi <= b_lo || b_hi <= s_lo);
  }
  CHECK(mp->naive.b > 0);

  /* N^2 sizes are refused with a message naming the tensor */
  Tensor *sq = tens(g, "square", -1, -1);
  FmTry t;
  int failed = 0;
  FM_TRY(&t) {
    fm_tensor_lin_bytes(sq);
    fm_try_pop(&t);
  } else {
    failed = strstr(fm_errmsg(), "'square'") != NULL;
  }
  CHECK(failed);
  fm_graph_free(g);
}

int main(void) {
  test_random();
  test_reuse();
  test_program();
  return check_done("test_memplan");
}
