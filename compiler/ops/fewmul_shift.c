/* fewmul_shift.c - ai.fewmul Shift (ShiftNet, Wu et al. 2017): pure addressing.
 *
 *   Shift(X [N, C, H, W]; kernel_size k = 3, dilation d = 1) -> Y, same shape:
 *   channels in k*k contiguous groups of G = floor(C / k^2); group i moves by
 *   (dy, dx) = ((i / k - k/2) d, (i % k - k/2) d): Y[n,c,h,w] = X[n,c,h+dy,w+dx], 0 outside;
 *   the C - k^2 G remainder channels (the last) are copied unmoved (the reference's rule;
 *   trainer/method_shift.h).
 *
 * Lowering: for each group (offsets are compile-time constants) the output plane is split
 * into the band of rows and columns that read inside X, copied with a constant offset, and
 * the borders, stored as zeros; no conditionals, no arithmetic on values (0 multiplications,
 * 0 additions in `fewmul cost`).
 */
#include "ops/ops.h"

static void shift_attrs(Node *n, int *k, int *d) {
  int64_t kk = fm_attr_i(n, "kernel_size", 3), dd = fm_attr_i(n, "dilation", 1);
  if (kk < 1 || kk % 2 == 0 || kk > 15)
    fm_fail("node '%s' (Shift): kernel_size %lld must be odd, 1..15", n->name, (long long)kk);
  if (dd < 1 || dd > 1024) fm_fail("node '%s' (Shift): dilation %lld must be 1..1024", n->name, (long long)dd);
  *k = (int)kk, *d = (int)dd;
}

void fm_infer_Shift(Graph *g, Node *n) {
  (void)g;
  Tensor *x = fm_in(n, 0);
  int k, d;
  shift_attrs(n, &k, &d);
  if (x->rank != 4 || !fm_shape_known(x))
    fm_fail("node '%s' (Shift): input '%s' must be 4-D (N, C, H, W) with a known shape", n->name, x->name);
  if (x->dtype != FM_F32)
    fm_fail("node '%s' (Shift): input '%s' has dtype %s, expected float32", n->name, x->name, fm_dtype_name(x->dtype));
  for (int i = 1; i < 4; i++)
    if (x->dims[i] < 0) fm_fail("node '%s' (Shift): only the batch dim may be symbolic", n->name);
  fm_same_shape(n->out[0], x);
}

/* y[n, c, h, w] over rows [h0, h1) x columns [w0, w1): x at offset (dy, dx), or 0 (zero) */
static void block(KB *b, const Tensor *t, KVar *vn, KVar *vc, int64_t h0, int64_t h1, int64_t w0, int64_t w1,
                  int dy, int dx, int zero) {
  if (h1 <= h0 || w1 <= w0) return;
  KBuf *xb = kb_in(b, 0), *yb = kb_out(b, 0);
  KVar *vh = kb_for(b, "h", k_i(h0), k_i(h1), KL_SERIAL);
  KVar *vw = kb_for(b, "w", k_i(w0), k_i(w1), KL_VECTOR);
  KExpr *oi[4] = {k_var(vn), k_var(vc), k_var(vh), k_var(vw)};
  if (zero) {
    kb_store(b, yb, kb_index(b, t, oi), k_f32(0));
  } else {
    KExpr *ii[4] = {k_var(vn), k_var(vc), k_add(k_var(vh), k_i(dy)), k_add(k_var(vw), k_i(dx))};
    kb_store(b, yb, kb_index(b, t, oi), k_load(xb, kb_index(b, t, ii)));
  }
  kb_end(b);
  kb_end(b);
}

/* channels [c0, c1) moved by (dy, dx) */
static void group(KB *b, const Tensor *t, int64_t c0, int64_t c1, int dy, int dx) {
  if (c1 <= c0) return;
  int64_t H = t->dims[2], W = t->dims[3];
  int64_t h0 = dy < 0 ? -dy : 0, h1 = dy > 0 ? H - dy : H, w0 = dx < 0 ? -dx : 0, w1 = dx > 0 ? W - dx : W;
  if (h0 > H) h0 = H;
  if (h1 < h0) h1 = h0;
  if (w0 > W) w0 = W;
  if (w1 < w0) w1 = w0;
  kb_comment(b, "channels %lld..%lld moved by (%d, %d)", (long long)c0, (long long)c1 - 1, dy, dx);
  KVar *vn = kb_for(b, "n", k_i(0), kb_dim(b, t->dims[0]), KL_PARALLEL);
  KVar *vc = kb_for(b, "c", k_i(c0), k_i(c1), KL_SERIAL);
  block(b, t, vn, vc, 0, h0, 0, W, 0, 0, 1);        /* rows above the band */
  block(b, t, vn, vc, h0, h1, 0, w0, 0, 0, 1);      /* band: left border */
  block(b, t, vn, vc, h0, h1, w0, w1, dy, dx, 0);   /* band: the copy */
  block(b, t, vn, vc, h0, h1, w1, W, 0, 0, 1);      /* band: right border */
  block(b, t, vn, vc, h1, H, 0, W, 0, 0, 1);        /* rows below */
  kb_end(b);
  kb_end(b);
}

void fm_lower_Shift(KB *b, Node *n) {
  const Tensor *x = n->in[0];
  int k, d;
  shift_attrs(n, &k, &d);
  int64_t C = x->dims[1], G = C / ((int64_t)k * k);
  for (int i = 0; i < k * k && G > 0; i++)
    group(b, x, i * G, (i + 1) * G, (i / k - k / 2) * d, (i % k - k / 2) * d);
  group(b, x, G * k * k, C, 0, 0);   /* remainder: unmoved */
}
