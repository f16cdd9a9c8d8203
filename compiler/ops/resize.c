/* resize.c - Resize (opsets 10, 11, 13, 18) and the deprecated Upsample.
 *
 * Resizing is separable: every output coordinate along an axis reads a few input
 * coordinates ("taps": 1 nearest, 2 linear, 4 cubic) with weights, and an N-D output
 * element is the sum over all tap combinations of the product of the axis weights.
 * Shapes are known at compile time, so the taps and weights of each axis are
 * computed here, following the ONNX reference implementation, and stored as
 * constant tables; the kernel only gathers and blends. Axes that are not resized
 * (batch, channels) read the same index and merge into one parallel loop.
 */
#include "ops/ops.h"
#include <math.h>
#include <string.h>

/* An output size computed in double: refused unless it is a sane dim (the cast to
   int64 of a huge or NaN double is undefined). */
static int64_t out_dim(Node *n, double v, int axis) {
  if (!(v >= 0 && v <= (double)FM_MAX_TENSOR_BYTES))
    fm_fail("node '%s' (%s): output size %g on axis %d is out of range", n->name, n->op_type, v, axis);
  return (int64_t)v;
}

enum { M_NEAREST, M_LINEAR, M_CUBIC };
enum { C_HALF_PIXEL, C_ASYMMETRIC, C_ALIGN_CORNERS, C_PYTORCH_HALF_PIXEL, C_TF_HALF_NEAREST,
       C_TF_CROP, C_HALF_PIXEL_SYM };
enum { N_ROUND_FLOOR, N_ROUND_CEIL, N_FLOOR, N_CEIL, N_SIMPLE };

typedef struct Plan {
  int rank, mode, coord, nearest, exclude;
  double a, extrap;
  int64_t in[FM_MAXRANK], out[FM_MAXRANK];
  double scale[FM_MAXRANK];
  double roi0[FM_MAXRANK], roi1[FM_MAXRANK];
} Plan;

static int pick(Node *n, const char *attr, const char *def, const char *const *names, int count) {
  const char *s = fm_attr_s(n, attr, def);
  for (int i = 0; i < count; i++)
    if (!strcmp(s, names[i])) return i;
  fm_fail("node '%s' (%s): unsupported %s '%s'", n->name, n->op_type, attr, s);
}

static Tensor *opt_in(Node *n, int i) {
  Tensor *t = i < n->nin ? n->in[i] : NULL;
  if (t && t->rank >= 0 && fm_numel(t) == 0) return NULL; /* an empty tensor means "not given" */
  return t;
}

/* Everything the output shape and the taps depend on. */
static void plan(Node *n, Plan *p) {
  Tensor *x = fm_in(n, 0);
  if (x->dtype == FM_UNDEF || x->rank < 0)
    fm_fail("node '%s' (%s): type or shape of input '%s' is unknown", n->name, n->op_type, x->name);
  memset(p, 0, sizeof *p);
  int r = p->rank = x->rank;
  for (int d = 0; d < r; d++) p->in[d] = x->dims[d], p->roi0[d] = 0, p->roi1[d] = 1;
  static const char *const modes[] = {"nearest", "linear", "cubic", "bilinear"};
  p->mode = pick(n, "mode", "nearest", modes, 4);
  if (p->mode == 3) p->mode = M_LINEAR;
  int legacy = n->op == OP_Upsample || n->opset < 11;
  Tensor *scales = NULL, *sizes = NULL, *roi = NULL;
  double sv[FM_MAXRANK];
  int have_scales = 0;
  if (legacy) {
    if (p->mode == M_CUBIC) fm_fail("node '%s' (%s): cubic needs opset 11", n->name, n->op_type);
    p->coord = C_ASYMMETRIC, p->nearest = N_SIMPLE;
    if (n->op == OP_Upsample && n->opset < 9) {
      Attr *a = fm_attr(n, "scales");
      if (!a || a->type != FA_FLOATS || a->n != r)
        fm_fail("node '%s' (Upsample): attribute 'scales' must list %d floats", n->name, r);
      for (int d = 0; d < r; d++) sv[d] = a->floats[d];
      have_scales = 1;
    } else {
      scales = fm_in(n, 1);
    }
  } else {
    static const char *const coords[] = {"half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel",
                                         "tf_half_pixel_for_nearest", "tf_crop_and_resize", "half_pixel_symmetric"};
    static const char *const nmodes[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    p->coord = pick(n, "coordinate_transformation_mode", "half_pixel", coords, 7);
    p->nearest = pick(n, "nearest_mode", "round_prefer_floor", nmodes, 4);
    p->a = fm_attr_f(n, "cubic_coeff_a", -0.75f);
    p->exclude = fm_attr_i(n, "exclude_outside", 0) != 0;
    p->extrap = fm_attr_f(n, "extrapolation_value", 0.0f);
    if (fm_attr_i(n, "antialias", 0)) fm_fail("node '%s' (Resize): antialias is not supported", n->name);
    roi = opt_in(n, 1), scales = opt_in(n, 2), sizes = opt_in(n, 3);
    if (scales && sizes) fm_fail("node '%s' (Resize): only one of scales and sizes may be given", n->name);
    if (!scales && !sizes) fm_fail("node '%s' (Resize): one of scales and sizes is required", n->name);
  }
  /* opset 18: scales/sizes/roi may cover a subset of axes */
  int64_t axes[FM_MAXRANK];
  int na = fm_attr_ints(n, "axes", axes, FM_MAXRANK);
  if (na < 0) {
    na = r;
    for (int d = 0; d < r; d++) axes[d] = d;
  }
  for (int k = 0; k < na; k++) axes[k] = fm_norm_axis(n, axes[k], r);
  if (scales) {
    fm_const_data(n, n->op == OP_Upsample || n->opset < 11 ? 1 : 2, "scales");
    if (fm_numel(scales) != na)
      fm_fail("node '%s' (%s): scales '%s' has %lld values for %d axes", n->name, n->op_type,
              scales->name, (long long)fm_numel(scales), na);
    for (int d = 0; d < r; d++) sv[d] = 1;
    for (int k = 0; k < na; k++) sv[axes[k]] = fm_const_f(scales, k);
    have_scales = 1;
  }
  if (have_scales) {
    for (int d = 0; d < r; d++) {
      if (!(sv[d] > 0)) fm_fail("node '%s' (%s): scale %g on axis %d must be positive", n->name, n->op_type, sv[d], d);
      p->scale[d] = sv[d];
      if (fm_dim_sym(p->in[d])) {
        if (sv[d] != 1) fm_fail("node '%s' (%s): cannot scale the batch axis %d", n->name, n->op_type, d);
        p->out[d] = p->in[d];
      } else {
        p->out[d] = out_dim(n, floor((double)p->in[d] * sv[d]), d);
      }
    }
  } else {
    if (!sizes->data && !sizes->symval)
      fm_fail("node '%s' (Resize): sizes '%s' must be a constant known at compile time", n->name, sizes->name);
    if (fm_numel(sizes) != na)
      fm_fail("node '%s' (Resize): sizes '%s' has %lld values for %d axes", n->name, sizes->name,
              (long long)fm_numel(sizes), na);
    for (int d = 0; d < r; d++) p->out[d] = p->in[d];
    for (int k = 0; k < na; k++) p->out[axes[k]] = sizes->symval ? sizes->symval[k] : fm_const_int(sizes, k);
    static const char *const pol[] = {"stretch", "not_larger", "not_smaller"};
    int policy = pick(n, "keep_aspect_ratio_policy", "stretch", pol, 3);
    if (policy) {
      double s = policy == 1 ? INFINITY : 0;
      for (int k = 0; k < na; k++) {
        double q = (double)p->out[axes[k]] / (double)p->in[axes[k]];
        s = policy == 1 ? fmin(s, q) : fmax(s, q);
      }
      for (int k = 0; k < na; k++) p->out[axes[k]] = out_dim(n, floor(s * (double)p->in[axes[k]] + 0.5), axes[k]);
      for (int d = 0; d < r; d++) p->scale[d] = 1;
      for (int k = 0; k < na; k++) p->scale[axes[k]] = s;
    } else {
      for (int d = 0; d < r; d++) {
        if (fm_dim_sym(p->in[d]) || fm_dim_sym(p->out[d])) {
          if (p->in[d] != p->out[d]) fm_fail("node '%s' (Resize): cannot resize the batch axis %d", n->name, d);
          p->scale[d] = 1;
        } else {
          p->scale[d] = p->in[d] ? (double)p->out[d] / (double)p->in[d] : 1;
        }
      }
    }
  }
  for (int d = 0; d < r; d++)
    if (p->out[d] < 0 && !fm_dim_sym(p->out[d]))
      fm_fail("node '%s' (%s): negative output size on axis %d", n->name, n->op_type, d);
  if (p->coord == C_TF_CROP) {
    if (!roi) fm_fail("node '%s' (Resize): tf_crop_and_resize needs roi", n->name);
    fm_const_data(n, 1, "roi");
    if (fm_numel(roi) != 2 * na)
      fm_fail("node '%s' (Resize): roi '%s' must have %d values", n->name, roi->name, 2 * na);
    for (int k = 0; k < na; k++) p->roi0[axes[k]] = fm_const_f(roi, k), p->roi1[axes[k]] = fm_const_f(roi, na + k);
  }
}

static void infer(Node *n) {
  Plan p;
  plan(n, &p);
  Tensor *x = n->in[0];
  if (x->dtype == FM_STRING || x->dtype == FM_BOOL)
    fm_fail("node '%s' (%s): unsupported input type %s", n->name, n->op_type, fm_dtype_name(x->dtype));
  fm_set_shape(n->out[0], x->dtype, p.rank, p.out);
}

void fm_infer_Resize(Graph *g, Node *n) { infer(n); }
void fm_infer_Upsample(Graph *g, Node *n) { infer(n); }

/* ---- taps of one axis ---- */

typedef struct Taps {
  int t;            /* taps per output coordinate */
  int identity;     /* out[i] reads in[i] with weight 1 */
  int64_t *idx;     /* [out * t] */
  double *w;        /* [out * t] */
  unsigned char *valid; /* [out]; NULL when every coordinate is inside */
} Taps;

/* Input coordinate of output coordinate x (ONNX reference: output_width = scale * in). */
static double coord(const Plan *p, int d, double x) {
  double s = p->scale[d], in = (double)p->in[d], ow = s * in;
  switch (p->coord) {
  case C_ALIGN_CORNERS: return ow == 1 ? 0 : x * (in - 1) / (ow - 1);
  case C_ASYMMETRIC: return x / s;
  case C_PYTORCH_HALF_PIXEL: return ow == 1 ? -0.5 : (x + 0.5) / s - 0.5;
  case C_TF_HALF_NEAREST: return (x + 0.5) / s;
  case C_TF_CROP: {
    double r0 = p->roi0[d], r1 = p->roi1[d];
    double xo = ow == 1 ? (r1 - r0) * (in - 1) / 2 : x * (r1 - r0) * (in - 1) / (ow - 1);
    return xo + r0 * (in - 1);
  }
  case C_HALF_PIXEL_SYM: {
    double adj = (double)p->out[d] / ow, center = in / 2, off = center * (1 - adj);
    return off + (x + 0.5) / s - 0.5;
  }
  default: return (x + 0.5) / s - 0.5;
  }
}

static int64_t clampi(int64_t v, int64_t hi) { return v < 0 ? 0 : v > hi ? hi : v; }

static void cubic_coeffs(double r, double A, double *c) {
  double r1 = r + 1, q = 1 - r, q1 = q + 1;
  c[0] = ((A * r1 - 5 * A) * r1 + 8 * A) * r1 - 4 * A;
  c[1] = ((A + 2) * r - (A + 3)) * r * r + 1;
  c[2] = ((A + 2) * q - (A + 3)) * q * q + 1;
  c[3] = ((A * q1 - 5 * A) * q1 + 8 * A) * q1 - 4 * A;
}

static void axis_taps(Arena *a, const Plan *p, int d, Taps *tp) {
  memset(tp, 0, sizeof *tp);
  int64_t in = p->in[d], out = p->out[d];
  if (fm_dim_sym(in) || (in == out && p->scale[d] == 1 && p->coord != C_TF_CROP &&
                         !(p->mode == M_NEAREST && p->coord == C_TF_HALF_NEAREST))) {
    tp->t = 1, tp->identity = 1;
    return;
  }
  int t = tp->t = p->mode == M_NEAREST ? 1 : p->mode == M_LINEAR ? 2 : 4;
  tp->idx = fm_alloc(a, sizeof(int64_t) * (size_t)(out * t + 1));
  tp->w = fm_alloc(a, sizeof(double) * (size_t)(out * t + 1));
  int identity = 1;
  for (int64_t o = 0; o < out; o++) {
    double xo = coord(p, d, (double)o);
    if (p->coord == C_TF_CROP && (xo < 0 || xo > (double)(in - 1))) {
      if (!tp->valid) {
        tp->valid = fm_alloc(a, (size_t)out);
        memset(tp->valid, 1, (size_t)out);
      }
      tp->valid[o] = 0;
      identity = 0;
      for (int k = 0; k < t; k++) tp->idx[o * t + k] = 0, tp->w[o * t + k] = 0;
      continue;
    }
    if (!(xo > -1e15 && xo < 1e15)) xo = xo > 0 ? 1e15 : -1e15; /* NaN too: an int64 exists */
    double fl = floor(xo);
    int isint = xo == fl;
    /* base: the left neighbour, which for an integer coordinate is one below it */
    int64_t base = isint ? (int64_t)fl - 1 : (int64_t)fl;
    double ratio = isint ? 1 : xo - fl;
    int64_t *ix = tp->idx + o * t;
    double *w = tp->w + o * t;
    if (p->mode == M_NEAREST) {
      int up;
      switch (p->nearest) {
      case N_ROUND_FLOOR: up = ratio > 0.5; break;
      case N_ROUND_CEIL: up = ratio >= 0.5; break;
      case N_FLOOR: up = 0; break;
      case N_CEIL: up = 1; break;
      default: up = p->scale[d] < 1; break; /* legacy: ceil when downsampling, else floor */
      }
      if (isint) up = 1;
      ix[0] = clampi(base + up, in - 1), w[0] = 1;
    } else if (p->mode == M_LINEAR) {
      ix[0] = base, ix[1] = base + 1, w[0] = 1 - ratio, w[1] = ratio;
    } else {
      cubic_coeffs(ratio, p->a, w);
      for (int k = 0; k < 4; k++) ix[k] = base - 1 + k;
      if (p->exclude) {
        double s = 0;
        for (int k = 0; k < 4; k++) {
          if (ix[k] < 0 || ix[k] >= in) w[k] = 0;
          s += w[k];
        }
        for (int k = 0; k < 4; k++) w[k] /= s;
      }
    }
    for (int k = 0; k < t; k++) ix[k] = clampi(ix[k], in - 1);
    /* identity: the only nonzero weight is 1 on index o */
    for (int k = 0; k < t; k++)
      if (w[k] != 0 && (w[k] != 1 || ix[k] != o)) identity = 0;
  }
  if (in != out) identity = 0;
  if (identity) tp->t = 1, tp->identity = 1;
}

/* ---- lowering ---- */

static void lower(KB *b, Node *n) {
  Plan p;
  plan(n, &p);
  Tensor *xt = n->in[0], *yt = n->out[0];
  FmDType t = xt->dtype;
  FmDType ct = t == FM_F64 ? FM_F64 : FM_F32; /* blend precision */
  int r = p.rank;
  Taps taps[FM_MAXRANK];
  for (int d = 0; d < r; d++) axis_taps(b->a, &p, d, &taps[d]);
  /* leading identity axes: one merged loop */
  int lead = 0;
  while (lead < r && taps[lead].identity) lead++;
  if (lead == r) { /* a copy */
    KBuf *x = kb_in(b, 0), *y = kb_out(b, 0);
    KVar *i = kb_for(b, "i", k_i(0), kb_numel(b, yt), KL_PARALLEL);
    kb_store(b, y, k_var(i), k_load(x, k_var(i)));
    kb_end(b);
    return;
  }
  KBuf *x = kb_in(b, 0), *y = kb_out(b, 0);
  KBuf *ib[FM_MAXRANK] = {0}, *wb[FM_MAXRANK] = {0}, *vb[FM_MAXRANK] = {0};
  for (int d = lead; d < r; d++) {
    Taps *tp = &taps[d];
    if (tp->identity) continue;
    int64_t cnt = p.out[d] * tp->t;
    ib[d] = kb_const(b, fm_sprintf(b->a, "rs_idx%d", d), FM_I64, cnt, tp->idx);
    if (p.mode != M_NEAREST) {
      void *wd = fm_alloc(b->a, fm_dtype_size(ct) * (size_t)(cnt + 1));
      for (int64_t k = 0; k < cnt; k++) {
        if (ct == FM_F64) ((double *)wd)[k] = tp->w[k];
        else ((float *)wd)[k] = (float)tp->w[k];
      }
      wb[d] = kb_const(b, fm_sprintf(b->a, "rs_w%d", d), ct, cnt, wd);
    }
    if (tp->valid) vb[d] = kb_const(b, fm_sprintf(b->a, "rs_ok%d", d), FM_BOOL, p.out[d], tp->valid);
  }
  KExpr *outer = k_i(1);
  for (int d = 0; d < lead; d++) outer = k_mul(outer, kb_dim(b, p.out[d]));
  KVar *lv = kb_for(b, "o", k_i(0), outer, KL_PARALLEL);
  /* per resized axis: output coordinate loop, then its taps as locals */
  KExpr *ov[FM_MAXRANK], *tapi[FM_MAXRANK][4], *tapw[FM_MAXRANK][4], *ok = NULL;
  static const char *names[] = {"y0", "y1", "y2", "y3", "y4", "y5", "y6", "y7"};
  for (int d = lead; d < r; d++) {
    Taps *tp = &taps[d];
    KVar *v = kb_for(b, names[d], k_i(0), kb_dim(b, p.out[d]), KL_SERIAL);
    ov[d] = k_var(v);
    if (tp->identity) {
      tapi[d][0] = ov[d], tapw[d][0] = NULL;
      continue;
    }
    for (int k = 0; k < tp->t; k++) {
      KExpr *pos = k_add(k_mul(ov[d], k_i(tp->t)), k_i(k));
      tapi[d][k] = k_var(kb_let(b, fm_sprintf(b->a, "i%d_%d", d, k), FM_I64, k_load(ib[d], pos)));
      tapw[d][k] = wb[d] ? k_var(kb_let(b, fm_sprintf(b->a, "w%d_%d", d, k), ct, k_load(wb[d], pos))) : NULL;
    }
    if (vb[d]) {
      KExpr *c = k_bin(KB_NE, k_load(vb[d], ov[d]), k_const(FM_BOOL, 0));
      ok = ok ? k_and(ok, c) : c;
    }
  }
  /* sum over all tap combinations */
  int nt = r - lead, cnt[FM_MAXRANK], combos = 1;
  for (int d = lead; d < r; d++) cnt[d] = taps[d].t, combos *= cnt[d];
  KExpr *sum = NULL;
  for (int c = 0; c < combos; c++) {
    int rem = c, sel[FM_MAXRANK];
    for (int d = r - 1; d >= lead; d--) sel[d] = rem % cnt[d], rem /= cnt[d];
    KExpr *idx = k_var(lv);
    KExpr *w = NULL;
    for (int d = lead; d < r; d++) {
      idx = k_add(k_mul(idx, kb_dim(b, p.in[d])), tapi[d][sel[d]]);
      if (tapw[d][sel[d]]) w = w ? k_mul(w, tapw[d][sel[d]]) : tapw[d][sel[d]];
    }
    KExpr *v = k_load(x, idx);
    if (p.mode == M_NEAREST) {
      sum = v;
      break;
    }
    v = k_cast(ct, v);
    KExpr *term = w ? k_mul(w, v) : v;
    sum = sum ? k_add(sum, term) : term;
  }
  (void)nt;
  if (p.mode != M_NEAREST && ct != t)
    sum = k_cast(t, t == FM_F16 ? sum : k_un(KU_ROUND, sum)); /* integers round to nearest */
  if (ok) sum = k_select(ok, sum, k_const(t, p.extrap));
  KExpr *oidx = k_var(lv);
  for (int d = lead; d < r; d++) oidx = k_add(k_mul(oidx, kb_dim(b, p.out[d])), ov[d]);
  kb_store(b, y, oidx, sum);
  for (int d = lead; d < r; d++) kb_end(b);
  kb_end(b);
}

void fm_lower_Resize(KB *b, Node *n) { lower(b, n); }
void fm_lower_Upsample(KB *b, Node *n) { lower(b, n); }
