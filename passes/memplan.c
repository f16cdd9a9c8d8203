/* memplan.c - one workspace for every intermediate tensor and scratch buffer.
 *
 * Lifetimes are [first kernel that touches the buffer, last kernel that touches it]
 * in program order. Sizes and offsets are linear in the batch N (a + b*N bytes), so
 * "A ends below B" is decided componentwise: A.off + A.size <= B.off in both a and b
 * holds for every N >= 0. Placement is greedy: biggest buffers first, each at the
 * lowest candidate offset (0, or the end of a conflicting buffer) that is disjoint
 * from every already placed buffer whose lifetime overlaps.
 *
 * Not done yet: in-place reuse (an output aliasing an input that dies at the same
 * kernel, e.g. elementwise ops); it needs the lowering to promise that the kernel
 * reads each input element before writing the same output element.
 */
#include "emit/codegen.h"
#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* Every component is checked: a plan whose sizes or offsets would not fit int64 is
   refused (each tensor is at most FM_MAX_TENSOR_BYTES, so only a model with a great
   many of them gets there). */
static _Noreturn void too_big(void) { fm_fail("memory plan: the workspace size overflows int64"); }

static int64_t up64(int64_t x) {
  if (x > INT64_MAX - 63) too_big();
  return (x + 63) & ~(int64_t)63;
}

static int lin_le(FmLin x, FmLin y) { return x.a <= y.a && x.b <= y.b; }
static FmLin lin_add(FmLin x, FmLin y) {
  FmLin r;
  if (!fm_add_ok(x.a, y.a, &r.a) || !fm_add_ok(x.b, y.b, &r.b)) too_big();
  return r;
}
static FmLin lin_max(FmLin x, FmLin y) {
  return (FmLin){x.a > y.a ? x.a : y.a, x.b > y.b ? x.b : y.b};
}
/* Order used to pick the lowest slot and to sort by size: the N-term first (it grows),
   then the constant. */
static int lin_cmp(FmLin x, FmLin y) {
  if (x.b != y.b) return x.b < y.b ? -1 : 1;
  if (x.a != y.a) return x.a < y.a ? -1 : 1;
  return 0;
}

static int by_size_desc(const void *p, const void *q) {
  const FmMemItem *x = *(FmMemItem *const *)p, *y = *(FmMemItem *const *)q;
  int c = lin_cmp(y->size, x->size);
  if (c) return c;
  if (x->first != y->first) return x->first < y->first ? -1 : 1;
  return x < y ? -1 : x > y;
}

static int live_overlap(const FmMemItem *x, const FmMemItem *y) {
  return x->first <= y->last && y->first <= x->last;
}

/* pos is valid for it if it is disjoint from every placed buffer alive with it */
static int fits(FmMemItem **conf, int nc, const FmMemItem *it, FmLin pos) {
  FmLin end = lin_add(pos, it->size);
  for (int j = 0; j < nc; j++) {
    const FmMemItem *o = conf[j];
    if (lin_le(end, o->off) || lin_le(lin_add(o->off, o->size), pos)) continue;
    return 0;
  }
  return 1;
}

int fm_memplan_items(FmMemItem *items, int n, FmLin *ends) {
  if (n <= 0) return 0;
  /* Every end placed below is at most the sum of all sizes (each offset is 0 or an end
     placed before), so once that sum fits, nothing after can overflow; checked before
     anything is allocated, as fm_fail does not return. */
  FmLin total = {0, 0};
  for (int i = 0; i < n; i++) {
    assert(items[i].size.a >= 0 && items[i].size.b >= 0 && items[i].first <= items[i].last);
    items[i].size.a = up64(items[i].size.a);
    items[i].size.b = up64(items[i].size.b);
    total = lin_add(total, items[i].size);
  }
  FmMemItem **order = malloc(sizeof(FmMemItem *) * (size_t)n);
  FmMemItem **placed = malloc(sizeof(FmMemItem *) * (size_t)n);
  assert(order && placed);
  for (int i = 0; i < n; i++) order[i] = &items[i];
  qsort(order, (size_t)n, sizeof *order, by_size_desc);
  int np = 0;
  FmMemItem **conf = malloc(sizeof(FmMemItem *) * (size_t)n);
  assert(conf);
  for (int i = 0; i < n; i++) {
    FmMemItem *it = order[i];
    int nc = 0;
    for (int j = 0; j < np; j++)
      if (live_overlap(placed[j], it)) conf[nc++] = placed[j];
    /* Candidates: 0, each conflicting end, and the componentwise max of all
       conflicting ends (always valid, so a slot always exists). */
    FmLin best = {0, 0}, top = {0, 0};
    int have = fits(conf, nc, it, best);
    for (int j = 0; j < nc; j++) {
      FmLin pos = lin_add(conf[j]->off, conf[j]->size);
      top = lin_max(top, pos);
      if ((!have || lin_cmp(pos, best) < 0) && fits(conf, nc, it, pos)) best = pos, have = 1;
    }
    if (!have || (lin_cmp(top, best) < 0 && fits(conf, nc, it, top))) best = top;
    assert(fits(conf, nc, it, best));
    it->off = best;
    placed[np++] = it;
  }
  free(conf);
  /* The ends no other end dominates: max over them is the exact workspace size. */
  int ne = 0;
  for (int i = 0; i < n; i++) {
    FmLin e = lin_add(items[i].off, items[i].size);
    int dominated = 0;
    for (int j = 0; j < ne && !dominated; j++) dominated = lin_le(e, ends[j]);
    if (dominated) continue;
    int k = 0;
    for (int j = 0; j < ne; j++)
      if (!lin_le(ends[j], e)) ends[k++] = ends[j];
    ends[k++] = e;
    ne = k;
  }
  free(order);
  free(placed);
  return ne;
}

FmLin fm_tensor_lin_bytes(const Tensor *t) {
  if (!fm_shape_known(t))
    fm_fail("tensor '%s': shape unknown at memory planning (give it with --shape)", t->name);
  size_t es = fm_dtype_size(t->dtype);
  if (!es) fm_fail("tensor '%s': dtype %s is not supported", t->name, fm_dtype_name(t->dtype));
  int64_t k = 1, nsym = 0;
  for (int i = 0; i < t->rank; i++) {
    int64_t d = t->dims[i];
    if (d < 0) d = -d, nsym++;
    if (!fm_mul_ok(k, d, &k) || k > FM_MAX_TENSOR_BYTES)
      fm_fail("tensor '%s': size overflows", t->name);
  }
  if (nsym > 1) {
    Arena a = {0};
    char msg[256];
    snprintf(msg, sizeof msg, "tensor '%s': size %s grows as N^%lld; the workspace is planned "
             "linear in the batch N", t->name, fm_shape_str(&a, t), (long long)nsym);
    fm_arena_free(&a);
    fm_fail("%s", msg);
  }
  k *= (int64_t)es;
  return nsym ? (FmLin){0, k} : (FmLin){k, 0};
}

static int in_workspace(Graph *g, const Tensor *t) {
  if (t->data || t->is_input || t->is_output) return 0;
  for (int i = 0; i < g->ninputs; i++)
    if (g->inputs[i] == t) return 0;
  for (int i = 0; i < g->noutputs; i++)
    if (g->outputs[i] == t) return 0;
  return 1;
}

static int64_t max_batch(Graph *g, const FmMemPlan *mp);

FmMemPlan *fm_memplan(KProgram *p) {
  Graph *g = p->g;
  Arena *a = &g->arena;
  FmMemPlan *mp = fm_alloc(a, sizeof *mp);
  mp->ntensors = g->ntensors;
  mp->tensor_off = fm_alloc(a, sizeof(FmLin) * (size_t)(g->ntensors + 1));
  /* from the arena: the loop below may fail (fm_fail) on a tensor too large */
  int *item_of = fm_alloc(a, sizeof(int) * (size_t)(g->ntensors + 1));
  for (int i = 0; i < g->ntensors; i++) mp->tensor_off[i] = (FmLin){-1, -1}, item_of[i] = -1;

  int cap = 16, n = 0, nfns = 0;
  for (KFn *f = p->fns; f; f = f->next) nfns++, cap += f->nbufs;
  FmMemItem *items = fm_alloc(a, sizeof(FmMemItem) * (size_t)cap);
  mp->nfns = nfns;
  mp->scratch_off = fm_alloc(a, sizeof(FmLin *) * (size_t)(nfns + 1));
  int **scratch_item = fm_alloc(a, sizeof(int *) * (size_t)(nfns + 1));

  int step = 0;
  for (KFn *f = p->fns; f; f = f->next, step++) {
    mp->scratch_off[step] = fm_alloc(a, sizeof(FmLin) * (size_t)(f->nbufs + 1));
    scratch_item[step] = fm_alloc(a, sizeof(int) * (size_t)(f->nbufs + 1));
    for (int k = 0; k < f->nbufs; k++) {
      KBuf *b = f->bufs[k];
      scratch_item[step][k] = -1;
      mp->scratch_off[step][k] = (FmLin){-1, -1};
      if (b->kind == KBUF_SCRATCH) {
        int64_t es = (int64_t)fm_dtype_size(b->t);
        assert(es > 0 && b->nelem != FM_DIM_UNKNOWN);
        int64_t bytes;
        if (!fm_mul_ok(b->nelem >= 0 ? b->nelem : -b->nelem, es, &bytes) || bytes > FM_MAX_TENSOR_BYTES)
          fm_fail("kernel '%s': a scratch buffer of %lld elements is too large", f->name,
                  (long long)b->nelem);
        FmLin sz = b->nelem >= 0 ? (FmLin){bytes, 0} : (FmLin){0, bytes};
        items[n] = (FmMemItem){.size = sz, .first = step, .last = step};
        scratch_item[step][k] = n++;
      } else if (b->kind == KBUF_TENSOR && in_workspace(g, b->tensor)) {
        int id = b->tensor->id;
        assert(id >= 0 && id < g->ntensors && g->tensors[id] == b->tensor);
        if (item_of[id] < 0) {
          items[n] = (FmMemItem){.size = fm_tensor_lin_bytes(b->tensor), .first = step};
          item_of[id] = n++;
        }
        items[item_of[id]].last = step;
      }
    }
  }
  mp->nitems = n;
  mp->ends = fm_alloc(a, sizeof(FmLin) * (size_t)(n + 1));
  mp->nends = fm_memplan_items(items, n, mp->ends);
  for (int i = 0; i < n; i++) mp->naive = lin_add(mp->naive, items[i].size);
  for (int i = 0; i < g->ntensors; i++)
    if (item_of[i] >= 0) mp->tensor_off[i] = items[item_of[i]].off;
  step = 0;
  for (KFn *f = p->fns; f; f = f->next, step++) {
    for (int k = 0; k < f->nbufs; k++)
      if (scratch_item[step][k] >= 0) mp->scratch_off[step][k] = items[scratch_item[step][k]].off;
  }
  mp->max_batch = max_batch(g, mp);
  return mp;
}

/* The largest N for which every workspace end, input and output a + b*N fits
   FM_MAX_PLAN_BYTES; the generated code refuses a larger batch. */
static int64_t lin_max_n(FmLin l, int64_t cur) {
  if (l.a > FM_MAX_PLAN_BYTES) too_big();
  if (l.b <= 0) return cur;
  int64_t m = (FM_MAX_PLAN_BYTES - l.a) / l.b;
  if (m < 1) too_big();
  return m < cur ? m : cur;
}

static int64_t max_batch(Graph *g, const FmMemPlan *mp) {
  int64_t m = INT64_MAX;
  for (int i = 0; i < mp->nends; i++) m = lin_max_n(mp->ends[i], m);
  for (int i = 0; i < g->ninputs; i++) m = lin_max_n(fm_tensor_lin_bytes(g->inputs[i]), m);
  for (int i = 0; i < g->noutputs; i++) m = lin_max_n(fm_tensor_lin_bytes(g->outputs[i]), m);
  return m;
}

size_t fm_memplan_size(const FmMemPlan *mp, int64_t batch) {
  int64_t s = 64;
  if (batch > mp->max_batch) return 0;
  for (int i = 0; i < mp->nends; i++)
    if (fm_lin_at(mp->ends[i], batch) > s) s = fm_lin_at(mp->ends[i], batch);
  return (size_t)s;
}
