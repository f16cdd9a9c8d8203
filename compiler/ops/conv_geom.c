/* conv_geom.c - sliding-window geometry (dense.h): the ONNX output-size and
 * padding rules of Conv, ConvTranspose and the pools, in one place; and the store
 * with fused activation the dense kernels share. */
#include "ops/dense.h"
#include <string.h>

static int64_t floordiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

int64_t fm_win_prod(const int64_t *v, int nsp) {
  int64_t p = 1;
  for (int j = 0; j < nsp; j++)
    if (!fm_mul_ok(p, v[j], &p)) fm_fail("window size overflows int64"); /* the shapes pass names the node */
  return p;
}

KExpr *fm_win_flat(KExpr **idx, const int64_t *dims, int nsp) {
  KExpr *e = k_i(0);
  for (int j = 0; j < nsp; j++) e = k_add(k_mul(e, k_i(dims[j])), idx[j]);
  return e;
}

/* A list attribute of exactly `want` positive (min 1) or non-negative (min 0) ints. */
static void read_list(Node *n, const char *name, int64_t *out, int want, int64_t min) {
  int64_t tmp[2 * FM_MAXRANK];
  int c = fm_attr_ints(n, name, tmp, 2 * FM_MAXRANK);
  if (c < 0) return;
  if (c != want)
    fm_fail("node '%s' (%s): attribute '%s' has %d values, expected %d (one per spatial dim%s)",
            n->name, n->op_type, name, c, want, want > 1 && !strcmp(name, "pads") ? ", begins then ends" : "");
  for (int j = 0; j < c; j++) {
    if (tmp[j] < min || tmp[j] > FM_MAX_TENSOR_BYTES) /* so sizes below cannot overflow */
      fm_fail("node '%s' (%s): attribute '%s' value %lld must be in [%lld, 2^40]", n->name, n->op_type,
              name, (long long)tmp[j], (long long)min);
    out[j] = tmp[j];
  }
}

/* (k - 1) * d + 1: the extent of a dilated window */
static int64_t dilated(Node *n, const FmWin *w, int j) {
  int64_t dk;
  if (!fm_mul_ok(w->k[j] - 1, w->d[j], &dk) || dk >= FM_MAX_TENSOR_BYTES)
    fm_fail("node '%s' (%s): kernel %lld with dilation %lld is too large", n->name, n->op_type,
            (long long)w->k[j], (long long)w->d[j]);
  return dk + 1;
}

typedef enum { PAD_NOTSET, PAD_SAME_UPPER, PAD_SAME_LOWER, PAD_VALID } AutoPad;

static AutoPad read_auto_pad(Node *n) {
  const char *s = fm_attr_s(n, "auto_pad", "NOTSET");
  if (!strcmp(s, "NOTSET") || !*s) return PAD_NOTSET;
  if (!strcmp(s, "SAME_UPPER")) return PAD_SAME_UPPER;
  if (!strcmp(s, "SAME_LOWER")) return PAD_SAME_LOWER;
  if (!strcmp(s, "VALID")) return PAD_VALID;
  fm_fail("node '%s' (%s): unknown auto_pad '%s' (NOTSET, SAME_UPPER, SAME_LOWER or VALID)", n->name,
          n->op_type, s);
}

static void read_common(Node *n, const Tensor *x, const int64_t *kernel, int nsp, FmWin *w) {
  memset(w, 0, sizeof *w);
  w->nsp = nsp;
  if (x->rank != nsp + 2)
    fm_fail("node '%s' (%s): input '%s' has rank %d, expected %d (N, C and %d spatial dims)", n->name,
            n->op_type, x->name, x->rank, nsp + 2, nsp);
  for (int j = 0; j < nsp; j++) {
    w->in[j] = x->dims[2 + j];
    if (w->in[j] < 0)
      fm_fail("node '%s' (%s): spatial dim %d of input '%s' must be a known size (only the batch "
              "dim may be symbolic)", n->name, n->op_type, j, x->name);
    if (kernel[j] < 1 || kernel[j] > FM_MAX_TENSOR_BYTES)
      fm_fail("node '%s' (%s): kernel size %lld in spatial dim %d must be in [1, 2^40]", n->name,
              n->op_type, (long long)kernel[j], j);
    w->k[j] = kernel[j], w->s[j] = 1, w->d[j] = 1;
  }
  read_list(n, "strides", w->s, nsp, 1);
  read_list(n, "dilations", w->d, nsp, 1);
  int64_t pads[2 * FM_MAXRANK] = {0};
  read_list(n, "pads", pads, 2 * nsp, 0);
  for (int j = 0; j < nsp; j++) w->pb[j] = pads[j], w->pe[j] = pads[nsp + j];
}

void fm_win_forward(Node *n, const Tensor *x, const int64_t *kernel, int nsp, int ceil_mode, FmWin *w) {
  read_common(n, x, kernel, nsp, w);
  AutoPad ap = read_auto_pad(n);
  for (int j = 0; j < nsp; j++) {
    int64_t in = w->in[j], s = w->s[j], dk = dilated(n, w, j);
    switch (ap) {
    case PAD_NOTSET: {
      int64_t span = in + w->pb[j] + w->pe[j] - dk;
      if (span < 0) break;
      w->out[j] = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
      /* a ceil-mode window must start inside the input or its begin padding */
      if (ceil_mode && (w->out[j] - 1) * s >= in + w->pb[j]) w->out[j]--;
      break;
    }
    case PAD_VALID:
      w->pb[j] = w->pe[j] = 0;
      w->out[j] = in >= dk ? (in - dk) / s + 1 : 0;
      break;
    default: {
      w->out[j] = (in + s - 1) / s;
      int64_t total = (w->out[j] - 1) * s + dk - in;
      if (total < 0) total = 0;
      w->pb[j] = ap == PAD_SAME_UPPER ? total / 2 : total - total / 2;
      w->pe[j] = total - w->pb[j];
    }
    }
    if (w->out[j] < 1)
      fm_fail("node '%s' (%s): window of %lld (kernel %lld, dilation %lld) does not fit spatial dim %d "
              "of '%s' (size %lld, pads %lld+%lld)", n->name, n->op_type, (long long)dk,
              (long long)w->k[j], (long long)w->d[j], j, x->name, (long long)in, (long long)w->pb[j],
              (long long)w->pe[j]);
  }
}

void fm_win_transpose(Node *n, const Tensor *x, const int64_t *kernel, int nsp, FmWin *w) {
  read_common(n, x, kernel, nsp, w);
  read_list(n, "output_padding", w->op, nsp, 0);
  AutoPad ap = read_auto_pad(n);
  int64_t oshape[2 * FM_MAXRANK];
  int nos = fm_attr_ints(n, "output_shape", oshape, 2 * FM_MAXRANK);
  if (nos >= 0 && nos != nsp && nos != nsp + 2)
    fm_fail("node '%s' (%s): output_shape has %d values, expected %d", n->name, n->op_type, nos, nsp);
  for (int j = 0; j < nsp; j++) {
    int64_t in = w->in[j], s = w->s[j], dk = dilated(n, w, j), full;
    if (!fm_mul_ok(s, in - 1, &full) || !fm_add_ok(full, w->op[j] + dk, &full))
      fm_fail("node '%s' (%s): output size in spatial dim %d overflows", n->name,
              n->op_type, j); /* full: output size without padding */
    if (nos >= 0 || ap == PAD_SAME_UPPER || ap == PAD_SAME_LOWER) {
      /* pads follow from the requested size; odd totals put the extra pad at the end
         for SAME_UPPER and at the beginning otherwise (ONNX spec) */
      w->out[j] = nos >= 0 ? oshape[nos - nsp + j] : in * s; /* in * s <= full */
      if (w->out[j] < 1 || w->out[j] > FM_MAX_TENSOR_BYTES)
        fm_fail("node '%s' (%s): output_shape %lld in spatial dim %d is out of range", n->name, n->op_type,
                (long long)w->out[j], j);
      int64_t total = full - w->out[j];
      if (ap == PAD_SAME_UPPER) w->pb[j] = floordiv(total, 2), w->pe[j] = total - w->pb[j];
      else w->pe[j] = floordiv(total, 2), w->pb[j] = total - w->pe[j];
    } else {
      if (ap == PAD_VALID) w->pb[j] = w->pe[j] = 0;
      w->out[j] = full - w->pb[j] - w->pe[j];
    }
    if (w->out[j] < 1)
      fm_fail("node '%s' (%s): output size %lld in spatial dim %d is not positive", n->name, n->op_type,
              (long long)w->out[j], j);
  }
}

void fm_dense_store(KB *b, Node *n, KBuf *buf, KExpr *idx, KExpr *v) {
  if (!n->fused_act) {
    kb_store(b, buf, idx, v);
    return;
  }
  KVar *t = kb_let(b, "v", v->t, v);   // the activations read v more than once: computed once
  if (n->fused_act != OP_Relu) {
    kb_store(b, buf, idx, fm_apply_act(n, k_var(t)));
    return;
  }
  kb_store(b, buf, idx, k_select(k_bin(KB_GT, k_var(t), k_const(v->t, 0)), k_var(t), k_const(v->t, 0)));
}
