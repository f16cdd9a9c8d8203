/* method_shift.c - the ShiftNet shift layer (method_shift.h): forward/backward as plane
 * copies, the trainer layer, and the ai.fewmul Shift export with its standard-op body. */
#include "method_shift.h"
#include "onnx/onnx.h"
#include <stdint.h>
#include <stdio.h>
#include <string.h>

void fm_shift_offset(int C, int c, int k, int d, int *dy, int *dx) {
  int G = C / (k * k);
  *dy = *dx = 0;
  if (G == 0 || c >= G * k * k) return;   // remainder channels stay in place
  int i = c / G;
  *dy = (i / k - k / 2) * d, *dx = (i % k - k / 2) * d;
}

// the rows/columns of the output plane that read inside the input: [lo, hi)
static void span(int size, int off, int *lo, int *hi) {
  *lo = off < 0 ? -off : 0;
  *hi = off > 0 ? size - off : size;
  if (*hi < *lo) *hi = *lo;
}

// y (n, C, H, W): y[h, w] = x[h + dy, w + dx], zero fill
void fm_shift_forward(float *y, const float *x, int n, int C, int H, int W, int k, int d) {
  size_t hw = (size_t)H * W;
#pragma omp parallel for
  for (long p = 0; p < (long)n * C; p++) {
    int dy, dx, h0, h1, w0, w1;
    fm_shift_offset(C, (int)(p % C), k, d, &dy, &dx);
    span(H, dy, &h0, &h1), span(W, dx, &w0, &w1);
    const float *xp = x + (size_t)p * hw;
    float *yp = y + (size_t)p * hw;
    memset(yp, 0, sizeof(float) * hw);
    for (int h = h0; h < h1; h++)
      if (w1 > w0) memcpy(yp + (size_t)h * W + w0, xp + (size_t)(h + dy) * W + w0 + dx, sizeof(float) * (size_t)(w1 - w0));
  }
}

// dx[h + dy, w + dx] += dy[h, w]
void fm_shift_backward(float *dx, const float *dy, int n, int C, int H, int W, int k, int d) {
  size_t hw = (size_t)H * W;
#pragma omp parallel for
  for (long p = 0; p < (long)n * C; p++) {
    int oy, ox, h0, h1, w0, w1;
    fm_shift_offset(C, (int)(p % C), k, d, &oy, &ox);
    span(H, oy, &h0, &h1), span(W, ox, &w0, &w1);
    const float *gp = dy + (size_t)p * hw;
    float *xp = dx + (size_t)p * hw;
    for (int h = h0; h < h1; h++) {
      float *dst = xp + (size_t)(h + oy) * W + ox;
      const float *src = gp + (size_t)h * W;
      for (int w = w0; w < w1; w++) dst[w] += src[w];
    }
  }
}

// --- the trainer layer -------------------------------------------------------------

#define T(id) (&net->tensors[(id)])

static void shift_fwd(FmNet *net, FmLayer *l, int n, int train) {
  (void)train;
  const FmTensor *x = T(l->in[0]);
  fm_shift_forward(T(l->out)->data, x->data, n, x->c, x->h, x->w, l->a.conv.kh, l->a.conv.dh);
}
static void shift_bwd(FmNet *net, FmLayer *l, int n) {
  const FmTensor *x = T(l->in[0]);
  if (x->grad) fm_shift_backward(x->grad, T(l->out)->grad, n, x->c, x->h, x->w, l->a.conv.kh, l->a.conv.dh);
}
static const FmLayerOps shift_ops = {FM_LAYER_CUSTOM, "shift", shift_fwd, shift_bwd, NULL};

int fm_shift_layer(const FmLayer *l) { return l->ops == &shift_ops; }

int fm_net_shift(FmNet *net, int x, int k, int d) {
  if (x < 0) return -1;
  const FmTensor t = *T(x);
  if (t.flat || k < 1 || k % 2 == 0 || d < 1) {
    if (!net->err[0])
      snprintf(net->err, sizeof net->err, "shift: needs an (N, C, H, W) input, odd kernel_size >= 1 and dilation >= 1 (got %d, %d)", k, d);
    return -1;
  }
  int li = fm_net_add_layer(net, &shift_ops, &x, 1, t.c, t.h, t.w, 0);
  if (li < 0) return -1;
  net->layers[li].a.conv = fm_conv_attr(t.c, t.c, k, 1, 0, d, 1);
  return net->layers[li].out;
}

// --- export ------------------------------------------------------------------------

void fm_shift_export_node(Graph *g, const FmLayer *l, Tensor *x, Tensor *y) {
  Node *n = fm_node_new(g, fm_op_lookup("ai.fewmul", "Shift"), l->name, 1, 1);
  n->op_type = "Shift", n->domain = "ai.fewmul";
  n->in[0] = x, n->out[0] = y;
  y->producer = n;
  fm_set_attr_i(g, n, "kernel_size", l->a.conv.kh);
  fm_set_attr_i(g, n, "dilation", l->a.conv.dh);
}

static Tensor *bop(Graph *b, OpKind op, const char *out, int nin, Tensor *a0, Tensor *a1, Tensor *a2, Tensor *a3) {
  Node *n = fm_node_new(b, op, NULL, nin, 1);
  Tensor *ins[4] = {a0, a1, a2, a3};
  for (int i = 0; i < nin; i++) n->in[i] = ins[i];
  n->out[0] = fm_tensor_new(b, out);
  n->out[0]->producer = n;
  return n->out[0];
}

static Tensor *ivec(Graph *b, const char *name, int len, const int64_t *v) {
  int64_t n = len;
  return fm_tensor_const(b, name, FM_I64, 1, &n, v);
}

void fm_shift_function(FmFunction *f, const Graph *model, Graph *b) {
  static const char *ins[] = {"X"}, *outs[] = {"Y"}, *attrs[] = {"kernel_size", "dilation"};
  int k = -1, d = -1;
  for (int i = 0; i < model->nnodes; i++) {
    const Node *n = model->nodes[i];
    if (strcmp(n->domain, "ai.fewmul") || strcmp(n->op_type, "Shift")) continue;
    int nk = (int)fm_attr_i(n, "kernel_size", 3), nd = (int)fm_attr_i(n, "dilation", 1);
    if (k >= 0 && (nk != k || nd != d))
      fm_fail("export: Shift nodes with different kernel_size/dilation (%d/%d, %d/%d): one function body per model", k, d, nk, nd);
    k = nk, d = nd;
  }
  if (k < 0) k = 3, d = 1;
  if (k > 15) fm_fail("export: Shift kernel_size %d: at most 15", k);
  b->opset = 13;
  Arena *ar = &b->arena;
  const int64_t big = INT64_MAX, kk = (int64_t)k * k;
  Tensor *x = fm_tensor_new(b, ins[0]);
  Tensor *shape = bop(b, OP_Shape, "Shape", 1, x, NULL, NULL, NULL);
  Tensor *c = bop(b, OP_Slice, "C", 3, shape, ivec(b, "One", 1, (int64_t[]){1}), ivec(b, "Two", 1, (int64_t[]){2}), NULL);
  Tensor *grp = bop(b, OP_Div, "G", 2, c, ivec(b, "KK", 1, &kk), NULL, NULL);
  Tensor *ax1 = ivec(b, "Axis1", 1, (int64_t[]){1}), *ax23 = ivec(b, "Axes23", 2, (int64_t[]){2, 3});
  Tensor *parts[15 * 15 + 1];
  Tensor *lo = ivec(b, "Zero", 1, (int64_t[]){0});
  for (int i = 0; i <= kk; i++) {
    int64_t ii = i + 1;
    Tensor *hi = i < kk ? bop(b, OP_Mul, fm_sprintf(ar, "End%d", i), 2, grp, ivec(b, fm_sprintf(ar, "I%d", i + 1), 1, &ii), NULL, NULL)
                        : ivec(b, "Big", 1, &big);
    Tensor *xi = bop(b, OP_Slice, fm_sprintf(ar, "X%d", i), 4, x, lo, hi, ax1);
    int dy = i < kk ? (i / k - k / 2) * d : 0, dx = i < kk ? (i % k - k / 2) * d : 0;
    if (dy || dx) {
      int64_t st[2] = {dy > 0 ? dy : 0, dx > 0 ? dx : 0}, en[2] = {dy < 0 ? dy : big, dx < 0 ? dx : big};
      int64_t pads[8] = {0, 0, dy < 0 ? -dy : 0, dx < 0 ? -dx : 0, 0, 0, dy > 0 ? dy : 0, dx > 0 ? dx : 0};
      Tensor *cr = bop(b, OP_Slice, fm_sprintf(ar, "Crop%d", i), 4, xi, ivec(b, fm_sprintf(ar, "CropStart%d", i), 2, st),
                       ivec(b, fm_sprintf(ar, "CropEnd%d", i), 2, en), ax23);
      xi = bop(b, OP_Pad, fm_sprintf(ar, "Y%d", i), 2, cr, ivec(b, fm_sprintf(ar, "Pads%d", i), 8, pads), NULL, NULL);
    }
    parts[i] = xi;
    lo = hi;
  }
  Node *cat = fm_node_new(b, OP_Concat, NULL, (int)kk + 1, 1);   /* after its inputs: topological order */
  for (int i = 0; i <= kk; i++) cat->in[i] = parts[i];
  cat->out[0] = fm_tensor_new(b, outs[0]);
  cat->out[0]->producer = cat;
  fm_set_attr_i(b, cat, "axis", 1);
  *f = (FmFunction){"ai.fewmul", "Shift", ins, 1, outs, 1, attrs, 2, b};
}
