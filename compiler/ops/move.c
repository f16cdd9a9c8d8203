/* move.c - data movement: Transpose, Concat, Split, Slice, Gather, GatherElements, Pad,
 * Expand, Tile, DepthToSpace, SpaceToDepth, Trilu, OneHot.
 *
 * Every op here is an index map: output element at idx[] reads one input element (or a
 * constant). Inference computes that map at compile time for small tensors with data
 * or symbolic values (fm_fold_elems), so shape arithmetic resolves before lowering.
 * Lowering loops over the output in row-major order, so stores are contiguous.
 */
#include "ops/ops.h"
#include <string.h>

static const char *const VN[FM_MAXRANK] = {"i0", "i1", "i2", "i3", "i4", "i5", "i6", "i7"};

static Tensor *shaped_in(Node *n, int i) {
  Tensor *t = fm_in(n, i);
  if (t->rank < 0 || !fm_shape_known(t) || t->dtype == FM_UNDEF)
    fm_fail("node '%s' (%s): the shape of input '%s' is unknown", n->name, n->op_type, t->name);
  return t;
}

static const char *sstr(Graph *g, const Tensor *t) { return fm_shape_str(&g->arena, t); }

/* One loop per dim (outermost parallel; innermost vector when vec and rank > 1). */
static void loops(KB *b, int r, const int64_t *dims, KVar **v, int vec) {
  for (int d = 0; d < r; d++)
    v[d] = kb_for(b, VN[d], k_i(0), kb_dim(b, dims[d]),
                  d == 0 ? KL_PARALLEL : d == r - 1 && vec ? KL_VECTOR : KL_SERIAL);
}

static void end_loops(KB *b, int r) {
  while (r-- > 0) kb_end(b);
}

static KExpr *flat(KB *b, int r, const int64_t *dims, KExpr **idx) {
  KExpr *e = k_i(0);
  for (int d = 0; d < r; d++) e = k_add(k_mul(e, kb_dim(b, dims[d])), idx[d]);
  return e;
}

static KExpr *prod(KB *b, const int64_t *dims, int lo, int hi) {
  KExpr *e = k_i(1);
  for (int d = lo; d < hi; d++) e = k_mul(e, kb_dim(b, dims[d]));
  return e;
}

static void vars_expr(int r, KVar **v, KExpr **e) {
  for (int d = 0; d < r; d++) e[d] = k_var(v[d]);
}

/* ---- compile-time index maps ---- */

/* Output numel if the map is worth computing (small, known and some input in[] of
   n has data or values), else -1. */
static int64_t fold_size(Node *n, const Tensor *out, int nin) {
  int64_t m = fm_numel(out);
  if (m < 0 || m > FM_FOLD_MAX) return -1;
  for (int i = 0; i < nin; i++)
    if (n->in[i] && (n->in[i]->data || n->in[i]->symval)) return m;
  return -1;
}

static void unflat(int64_t k, int r, const int64_t *dims, int64_t *idx) {
  for (int d = r - 1; d >= 0; d--) idx[d] = k % dims[d], k /= dims[d];
}

static int64_t flat_c(int r, const int64_t *dims, const int64_t *idx) {
  int64_t e = 0;
  for (int d = 0; d < r; d++) e = e * dims[d] + idx[d];
  return e;
}

static int64_t *idx_array(Graph *g, int64_t m) { return fm_alloc(&g->arena, sizeof(int64_t) * (size_t)(m ? m : 1)); }

/* A constant integer input as int64 (arena). */
static int64_t *const_ints(Graph *g, Node *n, int i, const char *what, int64_t *count) {
  const Tensor *t = fm_in(n, i);
  fm_const_data(n, i, what);
  int64_t m = fm_numel(t);
  if (m < 0) fm_fail("node '%s' (%s): %s has an unknown size", n->name, n->op_type, what);
  int64_t *v = idx_array(g, m);
  for (int64_t k = 0; k < m; k++) v[k] = fm_const_int(t, k);
  *count = m;
  return v;
}

/* ---- Transpose ---- */

static void read_perm(Node *n, int r, int64_t *perm) {
  int np = fm_attr_ints(n, "perm", perm, FM_MAXRANK);
  if (np < 0)
    for (int i = 0; i < r; i++) perm[i] = r - 1 - i;
  else if (np != r)
    fm_fail("node '%s' (Transpose): perm has %d entries for rank %d", n->name, np, r);
  int seen[FM_MAXRANK] = {0};
  for (int i = 0; i < r; i++) {
    if (perm[i] < 0) perm[i] += r;
    if (perm[i] < 0 || perm[i] >= r || seen[perm[i]]++)
      fm_fail("node '%s' (Transpose): perm is not a permutation of 0..%d", n->name, r - 1);
  }
}

void fm_infer_Transpose(Graph *g, Node *n) {
  Tensor *x = shaped_in(n, 0), *y = n->out[0];
  int r = x->rank;
  int64_t perm[FM_MAXRANK], dims[FM_MAXRANK];
  read_perm(n, r, perm);
  for (int i = 0; i < r; i++) dims[i] = x->dims[perm[i]];
  fm_set_shape(y, x->dtype, r, dims);
  int64_t m = fold_size(n, y, 1);
  if (m < 0) return;
  int64_t *map = idx_array(g, m), oi[FM_MAXRANK], ii[FM_MAXRANK];
  for (int64_t k = 0; k < m; k++) {
    unflat(k, r, dims, oi);
    for (int i = 0; i < r; i++) ii[perm[i]] = oi[i];
    map[k] = flat_c(r, x->dims, ii);
  }
  fm_fold_elems(g, n, 0, NULL, map);
}

void fm_lower_Transpose(KB *b, Node *n) {
  Tensor *x = n->in[0];
  int r = x->rank;
  int64_t perm[FM_MAXRANK];
  read_perm(n, r, perm);
  /* Merge input dims that stay adjacent (NCHW -> NHWC moves C past one H*W block). */
  int64_t md[FM_MAXRANK]; /* merged input dims */
  int grp[FM_MAXRANK], ng = 0;  /* input axis -> merged group */
  int nsym = 0;
  for (int i = 0; i < r; i++) {
    int a = (int)perm[i];
    int mergeable = i > 0 && perm[i - 1] == a - 1 && !(fm_dim_sym(x->dims[a]) && nsym);
    if (mergeable) {
      int64_t d = md[ng - 1], e = x->dims[a];
      int64_t prodabs = (d < 0 ? -d : d) * (e < 0 ? -e : e);
      md[ng - 1] = (d < 0 || e < 0) ? -prodabs : prodabs;
    } else {
      md[ng] = x->dims[a];
      nsym = 0;
      ng++;
    }
    nsym |= fm_dim_sym(x->dims[a]);
    grp[a] = ng - 1;
  }
  /* groups are numbered in output order; their input order is that of their first axis */
  int64_t first[FM_MAXRANK];
  for (int a = r - 1; a >= 0; a--) first[grp[a]] = a;
  int order[FM_MAXRANK]; /* groups sorted by input position */
  for (int i = 0; i < ng; i++) order[i] = i;
  for (int i = 1; i < ng; i++)
    for (int j = i; j > 0 && first[order[j - 1]] > first[order[j]]; j--) {
      int t = order[j]; order[j] = order[j - 1]; order[j - 1] = t;
    }
  KExpr *istride[FM_MAXRANK];
  KExpr *s = k_i(1);
  for (int i = ng - 1; i >= 0; i--) istride[order[i]] = s, s = k_mul(s, kb_dim(b, md[order[i]]));
  KBuf *xb = kb_in(b, 0), *yb = kb_out(b, 0);
  KVar *v[FM_MAXRANK];
  KExpr *ve[FM_MAXRANK];
  int contiguous = ng > 0 && order[ng - 1] == ng - 1;
  loops(b, ng, md, v, contiguous);
  vars_expr(ng, v, ve);
  KExpr *src = k_i(0);
  for (int i = 0; i < ng; i++) src = k_add(src, k_mul(ve[i], istride[i]));
  kb_store(b, yb, flat(b, ng, md, ve), k_load(xb, src));
  end_loops(b, ng);
}

/* ---- Concat ---- */

void fm_infer_Concat(Graph *g, Node *n) {
  Tensor *x0 = shaped_in(n, 0), *y = n->out[0];
  int r = x0->rank;
  int axis = (int)fm_norm_axis(n, fm_attr_i(n, "axis", 0), r);
  if (!fm_attr(n, "axis") && n->opset >= 4) fm_fail("node '%s' (Concat): attribute 'axis' is required", n->name);
  int64_t dims[FM_MAXRANK];
  memcpy(dims, x0->dims, sizeof dims);
  int64_t known = 0, symk = 0;
  for (int i = 0; i < n->nin; i++) {
    Tensor *t = shaped_in(n, i);
    if (t->rank != r || t->dtype != x0->dtype)
      fm_fail("node '%s' (Concat): input '%s' is %s %s, input '%s' is %s %s", n->name, x0->name,
              fm_dtype_name(x0->dtype), sstr(g, x0), t->name, fm_dtype_name(t->dtype), sstr(g, t));
    for (int d = 0; d < r; d++)
      if (d != axis && t->dims[d] != x0->dims[d])
        fm_fail("node '%s' (Concat): inputs %s and %s differ outside axis %d", n->name, sstr(g, x0),
                sstr(g, t), axis);
    if (t->dims[axis] < 0) symk += -t->dims[axis];
    else known += t->dims[axis];
  }
  if (symk && known)
    fm_fail("node '%s' (Concat): the axis-%d sizes add a multiple of N and a constant", n->name, axis);
  dims[axis] = symk ? -symk : known;
  fm_set_shape(y, x0->dtype, r, dims);
  int64_t m = fold_size(n, y, n->nin);
  if (m < 0) return;
  int *src = fm_alloc(&g->arena, sizeof(int) * (size_t)(m ? m : 1));
  int64_t *map = idx_array(g, m), oi[FM_MAXRANK];
  for (int64_t k = 0; k < m; k++) {
    unflat(k, r, dims, oi);
    int i = 0;
    while (oi[axis] >= n->in[i]->dims[axis]) oi[axis] -= n->in[i]->dims[axis], i++;
    src[k] = i;
    map[k] = flat_c(r, n->in[i]->dims, oi);
  }
  fm_fold_elems(g, n, 0, src, map);
}

/* y[o, off + j] = x[o, j] for o < outer, j < inner: the memcpy of Concat and Split. */
static void copy_rows(KB *b, KBuf *dst, KExpr *dst_row, KExpr *dst_off, KBuf *srcb, KExpr *src_row,
                      KExpr *outer, KExpr *inner) {
  int one = outer->k == KE_CONST && outer->i == 1;
  KVar *o = one ? NULL : kb_for(b, "o", k_i(0), outer, KL_PARALLEL);
  KExpr *oe = one ? k_i(0) : k_var(o);
  KVar *j = kb_for(b, "j", k_i(0), inner, one ? KL_PARALLEL : KL_VECTOR);
  kb_store(b, dst, k_add(k_add(k_mul(oe, dst_row), dst_off), k_var(j)),
           k_load(srcb, k_add(k_mul(oe, src_row), k_var(j))));
  kb_end(b);
  if (!one) kb_end(b);
}

void fm_lower_Concat(KB *b, Node *n) {
  Tensor *y = n->out[0];
  int axis = (int)fm_norm_axis(n, fm_attr_i(n, "axis", 0), y->rank);
  KExpr *outer = prod(b, y->dims, 0, axis), *rest = prod(b, y->dims, axis + 1, y->rank);
  KExpr *yrow = k_mul(kb_dim(b, y->dims[axis]), rest), *off = k_i(0);
  for (int i = 0; i < n->nin; i++) {
    KExpr *row = k_mul(kb_dim(b, n->in[i]->dims[axis]), rest);
    copy_rows(b, kb_out(b, 0), yrow, off, kb_in(b, i), row, outer, row);
    off = k_add(off, row);
  }
}

/* ---- Split ---- */

/* Sizes of the outputs along axis. */
static void split_sizes(Graph *g, Node *n, const Tensor *x, int axis, int64_t *sz) {
  int64_t d = x->dims[axis], cnt;
  int no = n->nout;
  int64_t *s = NULL;
  if (n->opset >= 13 && n->nin > 1 && n->in[1]) {
    s = const_ints(g, n, 1, "split", &cnt);
  } else if (n->opset < 13 && fm_attr(n, "split")) {
    Attr *a = fm_attr(n, "split");
    s = a->ints, cnt = a->n;
  }
  if (s) {
    if (cnt != no) fm_fail("node '%s' (Split): %lld split sizes for %d outputs", n->name, (long long)cnt, no);
    int64_t tot = 0;
    for (int i = 0; i < no; i++) {
      if (s[i] < 0) fm_fail("node '%s' (Split): negative split size", n->name);
      sz[i] = s[i], tot += s[i];
    }
    if (tot != d)
      fm_fail("node '%s' (Split): split sizes add up to %lld, axis %d of %s has %s", n->name, (long long)tot,
              axis, sstr(g, x), d < 0 ? "a multiple of N" : "a different size");
    return;
  }
  int64_t parts = n->opset >= 18 && fm_attr(n, "num_outputs") ? fm_attr_i(n, "num_outputs", no) : no;
  if (parts != no) fm_fail("node '%s' (Split): num_outputs %lld but %d outputs", n->name, (long long)parts, no);
  if (d < 0) { /* k*N in equal parts */
    if ((-d) % no) fm_fail("node '%s' (Split): cannot split %s evenly along axis %d", n->name, sstr(g, x), axis);
    for (int i = 0; i < no; i++) sz[i] = d / no;
    return;
  }
  int64_t each = (d + no - 1) / no;
  if (n->opset < 18 && d % no)
    fm_fail("node '%s' (Split): axis %d of %s does not split into %d equal parts", n->name, axis, sstr(g, x), no);
  for (int i = 0; i < no; i++) {
    int64_t left = d - each * i;
    sz[i] = left < 0 ? 0 : left < each ? left : each;
  }
}

void fm_infer_Split(Graph *g, Node *n) {
  Tensor *x = shaped_in(n, 0);
  int axis = (int)fm_norm_axis(n, fm_attr_i(n, "axis", 0), x->rank);
  int64_t *sz = idx_array(g, n->nout), off = 0;
  split_sizes(g, n, x, axis, sz);
  for (int i = 0; i < n->nout; i++) {
    Tensor *y = n->out[i];
    int64_t dims[FM_MAXRANK], oi[FM_MAXRANK];
    memcpy(dims, x->dims, sizeof dims);
    dims[axis] = sz[i];
    if (y) {
      fm_set_shape(y, x->dtype, x->rank, dims);
      int64_t m = fold_size(n, y, 1);
      if (m >= 0) {
        int64_t *map = idx_array(g, m);
        for (int64_t k = 0; k < m; k++) {
          unflat(k, x->rank, dims, oi);
          oi[axis] += off;
          map[k] = flat_c(x->rank, x->dims, oi);
        }
        fm_fold_elems(g, n, i, NULL, map);
      }
    }
    off += sz[i];
  }
}

void fm_lower_Split(KB *b, Node *n) {
  Tensor *x = n->in[0];
  int axis = (int)fm_norm_axis(n, fm_attr_i(n, "axis", 0), x->rank);
  int64_t *sz = idx_array(b->g, n->nout);
  split_sizes(b->g, n, x, axis, sz);
  KExpr *outer = prod(b, x->dims, 0, axis), *rest = prod(b, x->dims, axis + 1, x->rank);
  KExpr *xrow = k_mul(kb_dim(b, x->dims[axis]), rest), *off = k_i(0);
  for (int i = 0; i < n->nout; i++) {
    Tensor *y = n->out[i];
    KExpr *row = k_mul(kb_dim(b, sz[i]), rest);
    if (y && !y->data) { /* y[o, j] = x[o, off + j] */
      int one = outer->k == KE_CONST && outer->i == 1;
      KVar *o = one ? NULL : kb_for(b, "o", k_i(0), outer, KL_PARALLEL);
      KExpr *oe = one ? k_i(0) : k_var(o);
      KVar *j = kb_for(b, "j", k_i(0), row, one ? KL_PARALLEL : KL_VECTOR);
      kb_store(b, kb_out(b, i), k_add(k_mul(oe, row), k_var(j)),
               k_load(kb_in(b, 0), k_add(k_add(k_mul(oe, xrow), off), k_var(j))));
      kb_end(b);
      if (!one) kb_end(b);
    }
    off = k_add(off, row);
  }
}

/* ---- Slice ---- */

typedef struct { int64_t start[FM_MAXRANK], step[FM_MAXRANK], dims[FM_MAXRANK]; } SliceGeom;

static int64_t clampi(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Per-axis start and step, and the output dims. */
static void slice_geom(Graph *g, Node *n, const Tensor *x, SliceGeom *sg) {
  int r = x->rank;
  int64_t st[FM_MAXRANK], en[FM_MAXRANK], ax[FM_MAXRANK], sp[FM_MAXRANK];
  int na;
  const int64_t *env = NULL; /* ends as values when they have a symval */
  if (n->opset < 10) {
    na = fm_attr_ints(n, "starts", st, FM_MAXRANK);
    int ne = fm_attr_ints(n, "ends", en, FM_MAXRANK);
    if (na < 0 || ne != na) fm_fail("node '%s' (Slice): starts and ends must have the same length", n->name);
    int nx = fm_attr_ints(n, "axes", ax, FM_MAXRANK);
    if (nx < 0) for (int i = 0; i < na; i++) ax[i] = i;
    else if (nx != na) fm_fail("node '%s' (Slice): axes and starts differ in length", n->name);
    for (int i = 0; i < na; i++) sp[i] = 1;
  } else {
    Tensor *ts = shaped_in(n, 1), *te = shaped_in(n, 2);
    if (ts->rank != 1 || te->rank != 1 || ts->dims[0] != te->dims[0] || ts->dims[0] > FM_MAXRANK)
      fm_fail("node '%s' (Slice): starts and ends must be 1-D of the same length", n->name);
    na = (int)ts->dims[0];
    if (!ts->data) fm_fail("node '%s' (Slice): starts '%s' must be known at compile time", n->name, ts->name);
    if (!te->data && !(env = fm_values(g, te)))
      fm_fail("node '%s' (Slice): ends '%s' must be known at compile time", n->name, te->name);
    for (int i = 0; i < na; i++) {
      st[i] = fm_const_int(ts, i);
      en[i] = te->data ? fm_const_int(te, i) : 0;
      ax[i] = i, sp[i] = 1;
    }
    for (int k = 3; k <= 4; k++) {
      if (n->nin <= k || !n->in[k]) continue;
      Tensor *t = n->in[k];
      fm_const_data(n, k, k == 3 ? "axes" : "steps");
      if (fm_numel(t) != na) fm_fail("node '%s' (Slice): %s has the wrong length", n->name, k == 3 ? "axes" : "steps");
      for (int i = 0; i < na; i++) (k == 3 ? ax : sp)[i] = fm_const_int(t, i);
    }
  }
  for (int d = 0; d < r; d++) sg->start[d] = 0, sg->step[d] = 1, sg->dims[d] = x->dims[d];
  int seen[FM_MAXRANK] = {0};
  for (int i = 0; i < na; i++) {
    int a = (int)fm_norm_axis(n, ax[i], r);
    if (seen[a]++) fm_fail("node '%s' (Slice): axis %d repeated", n->name, a);
    int64_t d = x->dims[a], s = st[i], e = en[i], p = sp[i];
    if (p == 0) fm_fail("node '%s' (Slice): step is 0", n->name);
    if (env) {
      int64_t v = env[i];
      if (v == FM_DIM_UNKNOWN) fm_fail("node '%s' (Slice): end %d is unknown", n->name, i);
      if (fm_sym_is_lit(v)) e = fm_sym_lit_value(v);
      else if (fm_dim_sym(v)) {
        if (v != d || d >= 0)
          fm_fail("node '%s' (Slice): end %d is a multiple of N that is not the size of axis %d", n->name, i, a);
        e = INT64_MAX;
      } else e = v;
    }
    if (d < 0) { /* k*N: only the whole axis */
      if (p == 1 && s == 0 && e >= INT32_MAX) continue;
      fm_fail("node '%s' (Slice): axis %d of %s involves the batch size N; only the whole axis can be taken",
              n->name, a, sstr(g, x));
    }
    if (s < 0) s += d;
    if (e < 0) e += d;
    if (p > 0) s = clampi(s, 0, d), e = clampi(e, 0, d);
    else s = clampi(s, 0, d - 1), e = clampi(e, -1, d - 1);
    /* ceil((e - s) / p) without overflow for any step (|p| may be near 2^63) */
    uint64_t span = p > 0 ? (e > s ? (uint64_t)(e - s) : 0) : (s > e ? (uint64_t)(s - e) : 0);
    uint64_t ap = p > 0 ? (uint64_t)p : (uint64_t)0 - (uint64_t)p;
    int64_t len = span ? (int64_t)((span - 1) / ap + 1) : 0;
    sg->start[a] = s, sg->step[a] = p, sg->dims[a] = len > 0 && d > 0 ? len : 0;
  }
}

void fm_infer_Slice(Graph *g, Node *n) {
  Tensor *x = shaped_in(n, 0), *y = n->out[0];
  SliceGeom sg;
  slice_geom(g, n, x, &sg);
  int r = x->rank;
  fm_set_shape(y, x->dtype, r, sg.dims);
  int64_t m = fold_size(n, y, 1);
  if (m < 0) return;
  int64_t *map = idx_array(g, m), oi[FM_MAXRANK];
  for (int64_t k = 0; k < m; k++) {
    unflat(k, r, sg.dims, oi);
    for (int d = 0; d < r; d++) oi[d] = sg.start[d] + oi[d] * sg.step[d];
    map[k] = flat_c(r, x->dims, oi);
  }
  fm_fold_elems(g, n, 0, NULL, map);
}

void fm_lower_Slice(KB *b, Node *n) {
  Tensor *x = n->in[0], *y = n->out[0];
  SliceGeom sg;
  slice_geom(b->g, n, x, &sg);
  int r = x->rank;
  KVar *v[FM_MAXRANK];
  KExpr *src[FM_MAXRANK], *ve[FM_MAXRANK];
  loops(b, r, y->dims, v, r > 0 && sg.step[r - 1] == 1);
  vars_expr(r, v, ve);
  for (int d = 0; d < r; d++) src[d] = k_add(k_i(sg.start[d]), k_mul(ve[d], k_i(sg.step[d])));
  kb_store(b, kb_out(b, 0), flat(b, r, y->dims, ve), k_load(kb_in(b, 0), flat(b, r, x->dims, src)));
  end_loops(b, r);
}

/* ---- Gather ---- */

static int is_index_type(FmDType t) { return t == FM_I64 || t == FM_I32; }

void fm_infer_Gather(Graph *g, Node *n) {
  Tensor *x = shaped_in(n, 0), *ind = shaped_in(n, 1), *y = n->out[0];
  if (!is_index_type(ind->dtype))
    fm_fail("node '%s' (Gather): indices must be int32 or int64 (got %s)", n->name, fm_dtype_name(ind->dtype));
  if (x->rank < 1) fm_fail("node '%s' (Gather): data must have rank >= 1", n->name);
  int axis = (int)fm_norm_axis(n, fm_attr_i(n, "axis", 0), x->rank);
  int r = x->rank + ind->rank - 1;
  if (r > FM_MAXRANK) fm_fail("node '%s' (Gather): output rank %d exceeds %d", n->name, r, FM_MAXRANK);
  int64_t dims[FM_MAXRANK];
  int k = 0;
  for (int d = 0; d < axis; d++) dims[k++] = x->dims[d];
  for (int d = 0; d < ind->rank; d++) dims[k++] = ind->dims[d];
  for (int d = axis + 1; d < x->rank; d++) dims[k++] = x->dims[d];
  fm_set_shape(y, x->dtype, r, dims);
  int64_t m = fold_size(n, y, 1);
  if (m < 0 || !ind->data || fm_has_sym(x)) return;
  int64_t *map = idx_array(g, m), oi[FM_MAXRANK], ii[FM_MAXRANK];
  int64_t ad = x->dims[axis];
  for (int64_t e = 0; e < m; e++) {
    unflat(e, r, dims, oi);
    int64_t q = fm_const_int(ind, flat_c(ind->rank, ind->dims, oi + axis));
    if (q < -ad || q >= ad)
      fm_fail("node '%s' (Gather): index %lld out of range for axis %d of size %lld", n->name, (long long)q,
              axis, (long long)ad);
    for (int d = 0; d < axis; d++) ii[d] = oi[d];
    ii[axis] = q < 0 ? q + ad : q;
    for (int d = axis + 1; d < x->rank; d++) ii[d] = oi[d + ind->rank - 1];
    map[e] = flat_c(x->rank, x->dims, ii);
  }
  fm_fold_elems(g, n, 0, NULL, map);
}

/* A loaded index as int64, negative ones counted from the end, clamped into [0, d)
   so that a bad index cannot read outside the buffer. */
static KExpr *fix_index(KB *b, KExpr *q, int64_t d) {
  q = k_cast(FM_I64, q);
  KExpr *dim = kb_dim(b, d);
  q = k_select(k_lt(q, k_i(0)), k_add(q, dim), q);
  return k_min(k_max(q, k_i(0)), k_sub(dim, k_i(1)));
}

void fm_lower_Gather(KB *b, Node *n) {
  Tensor *x = n->in[0], *ind = n->in[1], *y = n->out[0];
  int axis = (int)fm_norm_axis(n, fm_attr_i(n, "axis", 0), x->rank);
  int r = y->rank;
  KVar *v[FM_MAXRANK];
  KExpr *ve[FM_MAXRANK], *src[FM_MAXRANK];
  loops(b, r, y->dims, v, 1);
  vars_expr(r, v, ve);
  KExpr *q = fix_index(b, k_load(kb_in(b, 1), flat(b, ind->rank, ind->dims, ve + axis)), x->dims[axis]);
  for (int d = 0; d < axis; d++) src[d] = ve[d];
  src[axis] = q;
  for (int d = axis + 1; d < x->rank; d++) src[d] = ve[d + ind->rank - 1];
  kb_store(b, kb_out(b, 0), flat(b, r, y->dims, ve), k_load(kb_in(b, 0), flat(b, x->rank, x->dims, src)));
  end_loops(b, r);
}

/* ---- GatherElements ---- */

void fm_infer_GatherElements(Graph *g, Node *n) {
  Tensor *x = shaped_in(n, 0), *ind = shaped_in(n, 1), *y = n->out[0];
  if (!is_index_type(ind->dtype))
    fm_fail("node '%s' (GatherElements): indices must be int32 or int64", n->name);
  if (ind->rank != x->rank)
    fm_fail("node '%s' (GatherElements): data %s and indices %s differ in rank", n->name, sstr(g, x), sstr(g, ind));
  fm_norm_axis(n, fm_attr_i(n, "axis", 0), x->rank);
  fm_set_shape(y, x->dtype, ind->rank, ind->dims);
}

void fm_lower_GatherElements(KB *b, Node *n) {
  Tensor *x = n->in[0], *y = n->out[0];
  int axis = (int)fm_norm_axis(n, fm_attr_i(n, "axis", 0), x->rank), r = y->rank;
  KVar *v[FM_MAXRANK];
  KExpr *ve[FM_MAXRANK], *src[FM_MAXRANK];
  loops(b, r, y->dims, v, 1);
  vars_expr(r, v, ve);
  KExpr *oidx = flat(b, r, y->dims, ve);
  for (int d = 0; d < r; d++) src[d] = ve[d];
  src[axis] = fix_index(b, k_load(kb_in(b, 1), oidx), x->dims[axis]);
  kb_store(b, kb_out(b, 0), oidx, k_load(kb_in(b, 0), flat(b, r, x->dims, src)));
  end_loops(b, r);
}

/* ---- Pad ---- */

typedef enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP } PadMode;

static PadMode pad_geom(Graph *g, Node *n, const Tensor *x, int64_t *pb, int64_t *pe) {
  int r = x->rank;
  const char *mode = fm_attr_s(n, "mode", "constant");
  PadMode pm = !strcmp(mode, "constant") ? PAD_CONSTANT : !strcmp(mode, "reflect") ? PAD_REFLECT
             : !strcmp(mode, "edge") ? PAD_EDGE : !strcmp(mode, "wrap") ? PAD_WRAP : (PadMode)-1;
  if ((int)pm < 0) fm_fail("node '%s' (Pad): unknown mode '%s'", n->name, mode);
  int64_t pads[2 * FM_MAXRANK], axes[FM_MAXRANK], np;
  if (n->opset < 11) {
    np = fm_attr_ints(n, "pads", pads, 2 * FM_MAXRANK);
    if (np < 0) fm_fail("node '%s' (Pad): attribute 'pads' is required", n->name);
  } else {
    int64_t *p = const_ints(g, n, 1, "pads", &np);
    if (np > 2 * FM_MAXRANK) fm_fail("node '%s' (Pad): too many pads", n->name);
    memcpy(pads, p, sizeof(int64_t) * (size_t)np);
  }
  int na = r;
  for (int i = 0; i < r; i++) axes[i] = i;
  if (n->opset >= 18 && n->nin > 3 && n->in[3]) {
    int64_t cnt, *a = const_ints(g, n, 3, "axes", &cnt);
    if (cnt > FM_MAXRANK) fm_fail("node '%s' (Pad): too many axes", n->name);
    na = (int)cnt;
    for (int i = 0; i < na; i++) axes[i] = fm_norm_axis(n, a[i], r);
  }
  if (np != 2 * na)
    fm_fail("node '%s' (Pad): %lld pads for %d axes of input %s", n->name, (long long)np, na, sstr(g, x));
  for (int d = 0; d < r; d++) pb[d] = pe[d] = 0;
  for (int i = 0; i < 2 * na; i++)
    if (pads[i] < -FM_MAX_TENSOR_BYTES || pads[i] > FM_MAX_TENSOR_BYTES)
      fm_fail("node '%s' (Pad): pad %lld is out of range", n->name, (long long)pads[i]);
  for (int i = 0; i < na; i++) pb[axes[i]] = pads[i], pe[axes[i]] = pads[na + i];
  for (int d = 0; d < r; d++) {
    if ((pb[d] || pe[d]) && x->dims[d] < 0)
      fm_fail("node '%s' (Pad): cannot pad axis %d of %s, which involves the batch size N", n->name, d, sstr(g, x));
    if (pm != PAD_CONSTANT && (pb[d] > 0 || pe[d] > 0) && x->dims[d] == 0)
      fm_fail("node '%s' (Pad): mode %s needs a non-empty axis %d", n->name, mode, d);
    if (pm == PAD_REFLECT && (pb[d] >= x->dims[d] || pe[d] >= x->dims[d]) && (pb[d] > 0 || pe[d] > 0))
      fm_fail("node '%s' (Pad): reflect pads on axis %d must be smaller than its size %lld", n->name, d,
              (long long)x->dims[d]);
  }
  return pm;
}

void fm_infer_Pad(Graph *g, Node *n) {
  Tensor *x = shaped_in(n, 0), *y = n->out[0];
  int64_t pb[FM_MAXRANK], pe[FM_MAXRANK], dims[FM_MAXRANK];
  pad_geom(g, n, x, pb, pe);
  for (int d = 0; d < x->rank; d++) {
    dims[d] = x->dims[d] < 0 ? x->dims[d] : x->dims[d] + pb[d] + pe[d]; /* each <= 2^40 */
    if (x->dims[d] >= 0 && dims[d] < 0) fm_fail("node '%s' (Pad): negative output size on axis %d", n->name, d);
  }
  if (n->opset >= 11 && n->nin > 2 && n->in[2] && n->in[2]->dtype != x->dtype)
    fm_fail("node '%s' (Pad): constant_value must have the type of the data", n->name);
  fm_set_shape(y, x->dtype, x->rank, dims);
}

void fm_lower_Pad(KB *b, Node *n) {
  Tensor *x = n->in[0], *y = n->out[0];
  int64_t pb[FM_MAXRANK], pe[FM_MAXRANK];
  PadMode pm = pad_geom(b->g, n, x, pb, pe);
  int r = x->rank;
  KExpr *cval;
  if (n->opset < 11) cval = k_const(x->dtype, fm_attr_f(n, "value", 0));
  else if (n->nin > 2 && n->in[2]) cval = k_load(kb_in(b, 2), k_i(0));
  else cval = k_const(x->dtype, 0);
  KVar *v[FM_MAXRANK];
  KExpr *ve[FM_MAXRANK], *src[FM_MAXRANK], *inb = NULL;
  loops(b, r, y->dims, v, 1);
  vars_expr(r, v, ve);
  for (int d = 0; d < r; d++) {
    KExpr *s = k_sub(ve[d], k_i(pb[d])), *dim = kb_dim(b, x->dims[d]);
    if (pb[d] == 0 && pe[d] <= 0) { src[d] = s; continue; }
    switch (pm) {
    case PAD_CONSTANT: {
      KExpr *c = pb[d] > 0 ? k_ge(s, k_i(0)) : NULL;
      if (pe[d] > 0) c = c ? k_and(c, k_lt(s, dim)) : k_lt(s, dim);
      if (c) inb = inb ? k_and(inb, c) : c;
      src[d] = s;
      break;
    }
    case PAD_REFLECT: {
      KExpr *a = k_select(k_lt(s, k_i(0)), k_sub(k_i(0), s), s);
      src[d] = k_select(k_ge(a, dim), k_sub(k_i(2 * (x->dims[d] - 1)), a), a);
      break;
    }
    case PAD_EDGE: src[d] = k_min(k_max(s, k_i(0)), k_i(x->dims[d] - 1)); break;
    case PAD_WRAP: src[d] = k_mod(k_add(k_mod(s, dim), dim), dim); break;
    }
  }
  KExpr *oidx = flat(b, r, y->dims, ve);
  KExpr *val = k_load(kb_in(b, 0), flat(b, r, x->dims, src));
  if (inb) {
    kb_if(b, inb);
    kb_store(b, kb_out(b, 0), oidx, val);
    kb_else(b);
    kb_store(b, kb_out(b, 0), oidx, cval);
    kb_end(b);
  } else {
    kb_store(b, kb_out(b, 0), oidx, val);
  }
  end_loops(b, r);
}

/* ---- Expand / Tile ---- */

void fm_infer_Expand(Graph *g, Node *n) {
  Tensor *x = shaped_in(n, 0), *s = shaped_in(n, 1), *y = n->out[0];
  if (s->rank != 1 || s->dims[0] < 0 || s->dims[0] > FM_MAXRANK)
    fm_fail("node '%s' (Expand): shape '%s' must be 1-D with at most %d elements", n->name, s->name, FM_MAXRANK);
  const int64_t *v = fm_values(g, s);
  if (!v) fm_fail("node '%s' (Expand): shape '%s' is not known at compile time", n->name, s->name);
  int ns = (int)s->dims[0], r = ns > x->rank ? ns : x->rank;
  int64_t dims[FM_MAXRANK];
  for (int d = 0; d < r; d++) {
    int xi = d - (r - x->rank), si = d - (r - ns);
    int64_t a = xi >= 0 ? x->dims[xi] : 1, c = si >= 0 ? v[si] : 1;
    if (c == FM_DIM_UNKNOWN || fm_sym_is_lit(c))
      fm_fail("node '%s' (Expand): element %d of shape '%s' is %s", n->name, si, s->name,
              c == FM_DIM_UNKNOWN ? "unknown" : "negative");
    if (a == c || c == 1) dims[d] = a;
    else if (a == 1) dims[d] = c;
    else fm_fail("node '%s' (Expand): input %s cannot be broadcast to the target shape (axis %d)", n->name,
                 sstr(g, x), d);
  }
  fm_set_shape(y, x->dtype, r, dims);
  int64_t m = fold_size(n, y, 1);
  if (m < 0 || fm_has_sym(x)) return;
  int64_t *map = idx_array(g, m), oi[FM_MAXRANK], ii[FM_MAXRANK];
  for (int64_t k = 0; k < m; k++) {
    unflat(k, r, dims, oi);
    for (int d = 0; d < x->rank; d++) ii[d] = x->dims[d] == 1 ? 0 : oi[d + r - x->rank];
    map[k] = flat_c(x->rank, x->dims, ii);
  }
  fm_fold_elems(g, n, 0, NULL, map);
}

void fm_lower_Expand(KB *b, Node *n) {
  Tensor *x = n->in[0], *y = n->out[0];
  KVar *v[FM_MAXRANK];
  KExpr *ve[FM_MAXRANK];
  loops(b, y->rank, y->dims, v, 1);
  vars_expr(y->rank, v, ve);
  kb_store(b, kb_out(b, 0), flat(b, y->rank, y->dims, ve), k_load(kb_in(b, 0), kb_bcast_index(b, x, y, ve)));
  end_loops(b, y->rank);
}

void fm_infer_Tile(Graph *g, Node *n) {
  Tensor *x = shaped_in(n, 0), *y = n->out[0];
  int64_t cnt, *rep = const_ints(g, n, 1, "repeats", &cnt), dims[FM_MAXRANK];
  if (cnt != x->rank) fm_fail("node '%s' (Tile): %lld repeats for rank %d", n->name, (long long)cnt, x->rank);
  for (int d = 0; d < x->rank; d++) {
    if (rep[d] < 0) fm_fail("node '%s' (Tile): negative repeat", n->name);
    if (!fm_mul_ok(x->dims[d], rep[d], &dims[d])) /* k*N * r stays a multiple of N */
      fm_fail("node '%s' (Tile): axis %d of size %lld repeated %lld times overflows", n->name, d,
              (long long)x->dims[d], (long long)rep[d]);
  }
  fm_set_shape(y, x->dtype, x->rank, dims);
  int64_t m = fold_size(n, y, 1);
  if (m < 0 || fm_has_sym(x)) return;
  int64_t *map = idx_array(g, m), oi[FM_MAXRANK];
  for (int64_t k = 0; k < m; k++) {
    unflat(k, x->rank, dims, oi);
    for (int d = 0; d < x->rank; d++) oi[d] %= x->dims[d];
    map[k] = flat_c(x->rank, x->dims, oi);
  }
  fm_fold_elems(g, n, 0, NULL, map);
}

void fm_lower_Tile(KB *b, Node *n) {
  Tensor *x = n->in[0], *y = n->out[0];
  int r = x->rank;
  KVar *v[FM_MAXRANK];
  KExpr *ve[FM_MAXRANK], *src[FM_MAXRANK];
  loops(b, r, y->dims, v, 1);
  vars_expr(r, v, ve);
  for (int d = 0; d < r; d++) src[d] = x->dims[d] == y->dims[d] ? ve[d] : k_mod(ve[d], kb_dim(b, x->dims[d]));
  kb_store(b, kb_out(b, 0), flat(b, r, y->dims, ve), k_load(kb_in(b, 0), flat(b, r, x->dims, src)));
  end_loops(b, r);
}

/* ---- DepthToSpace / SpaceToDepth ---- */

static int64_t block_size(Graph *g, Node *n, const Tensor *x) {
  int64_t bs = fm_attr_i(n, "blocksize", 0);
  if (bs <= 0 || bs > (1 << 20))
    fm_fail("node '%s' (%s): blocksize must be in [1, 2^20]", n->name, n->op_type);
  if (x->rank != 4) fm_fail("node '%s' (%s): input must be 4-D (got %s)", n->name, n->op_type, sstr(g, x));
  for (int d = 1; d < 4; d++)
    if (x->dims[d] < 0)
      fm_fail("node '%s' (%s): only the batch dim may involve N (input %s)", n->name, n->op_type, sstr(g, x));
  return bs;
}

void fm_infer_DepthToSpace(Graph *g, Node *n) {
  Tensor *x = shaped_in(n, 0);
  int64_t bs = block_size(g, n, x);
  const char *mode = fm_attr_s(n, "mode", "DCR");
  if (strcmp(mode, "DCR") && strcmp(mode, "CRD")) fm_fail("node '%s' (DepthToSpace): unknown mode '%s'", n->name, mode);
  if (x->dims[1] % (bs * bs))
    fm_fail("node '%s' (DepthToSpace): channels %lld not divisible by blocksize^2", n->name, (long long)x->dims[1]);
  int64_t dims[4] = {x->dims[0], x->dims[1] / (bs * bs), 0, 0};
  if (!fm_mul_ok(x->dims[2], bs, &dims[2]) || !fm_mul_ok(x->dims[3], bs, &dims[3]))
    fm_fail("node '%s' (DepthToSpace): output size overflows", n->name);
  fm_set_shape(n->out[0], x->dtype, 4, dims);
}

/* y[n, c, h*bs + i, w*bs + j] = x[n, ch(c, i, j), h, w]: six loops, affine indices. */
void fm_lower_DepthToSpace(KB *b, Node *n) {
  Tensor *x = n->in[0], *y = n->out[0];
  int64_t bs = fm_attr_i(n, "blocksize", 0), C = y->dims[1], H = x->dims[2], W = x->dims[3];
  int crd = !strcmp(fm_attr_s(n, "mode", "DCR"), "CRD");
  KVar *vn = kb_for(b, "n", k_i(0), kb_dim(b, x->dims[0]), KL_PARALLEL);
  KVar *vc = kb_for(b, "c", k_i(0), k_i(C), KL_SERIAL);
  KVar *vh = kb_for(b, "h", k_i(0), k_i(H), KL_SERIAL);
  KVar *vi = kb_for(b, "i", k_i(0), k_i(bs), KL_SERIAL);
  KVar *vw = kb_for(b, "w", k_i(0), k_i(W), KL_SERIAL);
  KVar *vj = kb_for(b, "j", k_i(0), k_i(bs), KL_SERIAL);
  KExpr *c = k_var(vc), *i = k_var(vi), *j = k_var(vj);
  KExpr *ch = crd ? k_add(k_mul(c, k_i(bs * bs)), k_add(k_mul(i, k_i(bs)), k_var(vj)))
                  : k_add(k_mul(k_add(k_mul(i, k_i(bs)), j), k_i(C)), c);
  KExpr *src = k_add(k_mul(k_add(k_mul(k_add(k_mul(k_var(vn), k_i(x->dims[1])), ch), k_i(H)), k_var(vh)), k_i(W)),
                     k_var(vw));
  KExpr *oh = k_add(k_mul(k_var(vh), k_i(bs)), i), *ow = k_add(k_mul(k_var(vw), k_i(bs)), j);
  KExpr *dst = k_add(k_mul(k_add(k_mul(k_add(k_mul(k_var(vn), k_i(C)), c), k_i(H * bs)), oh), k_i(W * bs)), ow);
  kb_store(b, kb_out(b, 0), dst, k_load(kb_in(b, 0), src));
  end_loops(b, 6);
}

void fm_infer_SpaceToDepth(Graph *g, Node *n) {
  Tensor *x = shaped_in(n, 0);
  int64_t bs = block_size(g, n, x);
  if (x->dims[2] % bs || x->dims[3] % bs)
    fm_fail("node '%s' (SpaceToDepth): spatial size %s not divisible by blocksize %lld", n->name, sstr(g, x),
            (long long)bs);
  int64_t dims[4] = {x->dims[0], 0, x->dims[2] / bs, x->dims[3] / bs};
  if (!fm_mul_ok(x->dims[1], bs * bs, &dims[1]))
    fm_fail("node '%s' (SpaceToDepth): output channels overflow", n->name);
  fm_set_shape(n->out[0], x->dtype, 4, dims);
}

/* y[n, (i*bs + j)*C + c, h, w] = x[n, c, h*bs + i, w*bs + j] */
void fm_lower_SpaceToDepth(KB *b, Node *n) {
  Tensor *x = n->in[0], *y = n->out[0];
  int64_t bs = fm_attr_i(n, "blocksize", 0), C = x->dims[1], H = y->dims[2], W = y->dims[3];
  KVar *vn = kb_for(b, "n", k_i(0), kb_dim(b, x->dims[0]), KL_PARALLEL);
  KVar *vi = kb_for(b, "i", k_i(0), k_i(bs), KL_SERIAL);
  KVar *vj = kb_for(b, "j", k_i(0), k_i(bs), KL_SERIAL);
  KVar *vc = kb_for(b, "c", k_i(0), k_i(C), KL_SERIAL);
  KVar *vh = kb_for(b, "h", k_i(0), k_i(H), KL_SERIAL);
  KVar *vw = kb_for(b, "w", k_i(0), k_i(W), KL_SERIAL);
  KExpr *ch = k_add(k_mul(k_add(k_mul(k_var(vi), k_i(bs)), k_var(vj)), k_i(C)), k_var(vc));
  KExpr *dst = k_add(k_mul(k_add(k_mul(k_add(k_mul(k_var(vn), k_i(y->dims[1])), ch), k_i(H)), k_var(vh)), k_i(W)),
                     k_var(vw));
  KExpr *ih = k_add(k_mul(k_var(vh), k_i(bs)), k_var(vi)), *iw = k_add(k_mul(k_var(vw), k_i(bs)), k_var(vj));
  KExpr *src = k_add(k_mul(k_add(k_mul(k_add(k_mul(k_var(vn), k_i(C)), k_var(vc)), k_i(H * bs)), ih), k_i(W * bs)),
                     iw);
  kb_store(b, kb_out(b, 0), dst, k_load(kb_in(b, 0), src));
  end_loops(b, 6);
}

/* ---- Trilu ---- */

void fm_infer_Trilu(Graph *g, Node *n) {
  Tensor *x = shaped_in(n, 0);
  if (x->rank < 2) fm_fail("node '%s' (Trilu): input must have rank >= 2 (got %s)", n->name, sstr(g, x));
  if (n->nin > 1 && n->in[1] && fm_numel(n->in[1]) != 1)
    fm_fail("node '%s' (Trilu): k must be a scalar", n->name);
  fm_set_shape(n->out[0], x->dtype, x->rank, x->dims);
}

void fm_lower_Trilu(KB *b, Node *n) {
  Tensor *x = n->in[0];
  int r = x->rank, upper = (int)fm_attr_i(n, "upper", 1);
  KExpr *k = k_i(0);
  if (n->nin > 1 && n->in[1])
    k = n->in[1]->data ? k_i(fm_const_int(n->in[1], 0)) : k_cast(FM_I64, k_load(kb_in(b, 1), k_i(0)));
  KVar *v[FM_MAXRANK];
  KExpr *ve[FM_MAXRANK];
  loops(b, r, x->dims, v, 1);
  vars_expr(r, v, ve);
  KExpr *diag = k_sub(ve[r - 1], ve[r - 2]); /* column - row */
  KExpr *keep = upper ? k_ge(diag, k) : k_bin(KB_LE, diag, k);
  KExpr *idx = flat(b, r, x->dims, ve);
  kb_store(b, kb_out(b, 0), idx, k_select(keep, k_load(kb_in(b, 0), idx), k_const(x->dtype, 0)));
  end_loops(b, r);
}

/* ---- OneHot ---- */

void fm_infer_OneHot(Graph *g, Node *n) {
  Tensor *ind = shaped_in(n, 0), *dep = shaped_in(n, 1), *val = shaped_in(n, 2), *y = n->out[0];
  if (fm_numel(dep) != 1) fm_fail("node '%s' (OneHot): depth must be a scalar", n->name);
  fm_const_data(n, 1, "depth");
  if (fm_numel(val) != 2) fm_fail("node '%s' (OneHot): values must have 2 elements", n->name);
  double dv = fm_const_f(dep, 0);
  if (!(dv >= 1 && dv <= (double)FM_MAX_TENSOR_BYTES))
    fm_fail("node '%s' (OneHot): depth must be positive (and at most 2^40)", n->name);
  int64_t depth = (int64_t)dv;
  int r = ind->rank + 1;
  if (r > FM_MAXRANK) fm_fail("node '%s' (OneHot): output rank %d exceeds %d", n->name, r, FM_MAXRANK);
  int axis = (int)fm_norm_axis(n, fm_attr_i(n, "axis", -1), r);
  int64_t dims[FM_MAXRANK];
  for (int d = 0, j = 0; d < r; d++) dims[d] = d == axis ? depth : ind->dims[j++];
  fm_set_shape(y, val->dtype, r, dims);
}

void fm_lower_OneHot(KB *b, Node *n) {
  Tensor *ind = n->in[0], *y = n->out[0];
  int r = y->rank, axis = (int)fm_norm_axis(n, fm_attr_i(n, "axis", -1), r);
  int64_t depth = y->dims[axis];
  KVar *v[FM_MAXRANK];
  KExpr *ve[FM_MAXRANK], *ie[FM_MAXRANK];
  loops(b, r, y->dims, v, 1);
  vars_expr(r, v, ve);
  for (int d = 0, j = 0; d < r; d++)
    if (d != axis) ie[j++] = ve[d];
  KExpr *q = k_load(kb_in(b, 0), flat(b, ind->rank, ind->dims, ie));
  q = k_cast(FM_I64, q); /* float indices truncate, as a cast to int64 does */
  q = k_select(k_lt(q, k_i(0)), k_add(q, k_i(depth)), q);
  KBuf *vals = kb_in(b, 2);
  kb_store(b, kb_out(b, 0), flat(b, r, y->dims, ve),
           k_select(k_bin(KB_EQ, q, ve[axis]), k_load(vals, k_i(1)), k_load(vals, k_i(0))));
  end_loops(b, r);
}
