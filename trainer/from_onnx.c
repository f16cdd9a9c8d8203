/* from_onnx.c - a dense ONNX model's weights into a net of any method (from_onnx.h).
 *
 *   load (compiler/onnx) -> file_units: the file's weighted layers, in node order
 *                        -> net_units: the net's weighted layers, in layer order
 *                        -> check every pair (nothing copied until all fit)
 *                        -> copy, then fm_method_init: each method from the dense W
 *
 * Errors inside go through fm_fail (the loader's own path too) and come out of
 * fm_from_onnx as one line in err. */
#include "from_onnx.h"
#include "from_onnx_internal.h"
#include "method_sp.h"
#include "method_winograd.h"
#include "onnx/onnx.h"
#include <string.h>

/* the first bytes of a fewmul checkpoint (checkpoint.c) */
static const char CKPT_MAGIC[8] = {'F', 'M', 'C', 'K', 'P', 'T', '\r', '\n'};

static int onnx_name(const char *path) {
  size_t len = strlen(path);
  return len >= 5 && !strcmp(path + len - 5, ".onnx");
}

int fm_from_is_checkpoint(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return !onnx_name(path);
  char b[8];
  size_t n = fread(b, 1, sizeof b, f);
  fclose(f);
  return n == sizeof b && !memcmp(b, CKPT_MAGIC, sizeof b);
}

static const char *const unit_name[] = {"input normalisation", "conv", "conv_transpose", "linear",
                                        "batchnorm", "channel scale"};
static const int unit_slots[] = {2, 2, 2, 2, 4, 1};

/* One weighted layer of the net: where each slot goes, and what shape W must have. */
typedef struct {
  UnitKind kind;
  FmLayer *l;
  FmParam *dst[4];      /* NULL: not copied */
  int wshape[4], wrank; /* conv/gemm: the dense weight shape the layer corresponds to */
  int has_bias;
  int random;           /* SP layer: keeps its random init */
  int sp_dense;         /* SP layer: W_B = W, then fm_sp_from_dense */
} NetUnit;

static const char *shape_str(Graph *g, const int64_t *d, int rank) {
  char buf[128] = "";
  int k = 0;
  for (int i = 0; i < rank && k < 100; i++) k += fm_dim_sym(d[i]) ? snprintf(buf + k, sizeof buf - (size_t)k, "%sN", i ? "x" : "")
                            : snprintf(buf + k, sizeof buf - (size_t)k, "%s%lld", i ? "x" : "", (long long)d[i]);
  return fm_strdup(&g->arena, rank ? buf : "scalar");
}

/* A float constant input of n, or NULL. */
static const Tensor *const_in(const Node *n, int i) {
  return i < n->nin && n->in[i] && n->in[i]->data ? n->in[i] : NULL;
}

/* The weight input i of node n: a stored float tensor, or a clear failure. */
static const Tensor *weight_in(const char *who, const Node *n, int i, int optional) {
  if (i >= n->nin || !n->in[i]) {
    if (optional) return NULL;
    fm_fail("%s: node '%s' (%s) has no input %d", who, n->name, n->op_type, i);
  }
  const Tensor *t = n->in[i];
  if (!t->data)
    fm_fail("%s: node '%s' (%s): its weight '%s' is computed in the graph, not stored; --from takes "
            "a dense model as fewmul train -o writes it", who, n->name, n->op_type, t->name);
  if (t->dtype != FM_F32)
    fm_fail("%s: tensor '%s' of node '%s' is %s, a dense weight is float32", who, t->name, n->name,
            fm_dtype_name(t->dtype));
  return t;
}

/* The file's weighted layers, in node order; any other stored float is a failure. */
static FileUnit *file_units(Graph *g, const char *who, int *count) {
  FileUnit *u = fm_alloc(&g->arena, sizeof(FileUnit) * (size_t)(g->nnodes + 1));
  int n = 0;
  const Node *pending_sub = NULL;   /* Sub(x, mean) waiting for its Div(., std) */
  for (int i = 0; i < g->nnodes; i++) {
    const Node *nd = g->nodes[i];
    if ((!strcmp(nd->domain, "ai.fewmul") && strcmp(nd->op_type, "Shift")) || nd->op == OP_DequantizeLinear)
      fm_fail("%s: node '%s' is %s%s: not a dense model (--from takes the ONNX export of a model trained "
              "without --method)", who, nd->name, *nd->domain ? "ai.fewmul " : "", nd->op_type);
    FileUnit f = {.node = nd};
    switch (nd->op) {
    case OP_Conv: case OP_ConvTranspose:
      f.kind = nd->op == OP_Conv ? U_CONV : U_CONVT;
      f.t[0] = weight_in(who, nd, 1, 0), f.t[1] = weight_in(who, nd, 2, 1);
      break;
    case OP_Gemm:
      if (fm_attr_i(nd, "transA", 0) || fm_attr_f(nd, "alpha", 1) != 1 || fm_attr_f(nd, "beta", 1) != 1)
        fm_fail("%s: Gemm '%s' has transA, alpha or beta set: not a linear layer", who, nd->name);
      f.kind = U_GEMM;
      f.t[0] = weight_in(who, nd, 1, 0), f.t[1] = weight_in(who, nd, 2, 1);
      f.transposed = !fm_attr_i(nd, "transB", 0);
      if (f.t[0]->rank != 2) fm_fail("%s: Gemm '%s': weight '%s' is not 2-D", who, nd->name, f.t[0]->name);
      break;
    case OP_BatchNormalization:
      f.kind = U_BN;
      for (int k = 0; k < 4; k++) f.t[k] = weight_in(who, nd, k + 1, 0);
      break;
    case OP_Sub:
      if (!const_in(nd, 1)) goto plain;
      if (pending_sub) goto plain;
      pending_sub = nd;
      continue;
    case OP_Div:
      if (!const_in(nd, 1) || !pending_sub || nd->in[0] != pending_sub->out[0]) goto plain;
      f.kind = U_NORM, f.node = pending_sub;
      f.t[0] = weight_in(who, pending_sub, 1, 0), f.t[1] = weight_in(who, nd, 1, 0);
      pending_sub = NULL;
      break;
    case OP_Mul:
      if (!const_in(nd, 1) || const_in(nd, 0)) goto plain;
      f.kind = U_SCALE;
      f.t[0] = weight_in(who, nd, 1, 0);
      break;
    default:
    plain:
      for (int k = 0; k < nd->nin; k++) {
        const Tensor *t = const_in(nd, k);
        if (t && (t->dtype == FM_F32 || t->dtype == FM_F16 || t->dtype == FM_F64))
          fm_fail("%s: node '%s' (%s) holds weight '%s', which no dense layer of the trainer takes "
                  "(not a dense fewmul model?)", who, nd->name, nd->op_type, t->name);
      }
      continue;
    }
    u[n++] = f;
  }
  if (pending_sub)
    fm_fail("%s: Sub '%s' by a constant is not followed by the Div of an input normalisation", who,
            pending_sub->name);
  *count = n;
  return u;
}

static FmParam *param_of(FmNet *net, const FmLayer *l, int k) {
  return k < l->nparam && l->param[k] >= 0 ? &net->params[l->param[k]] : NULL;
}
static FmParam *buf_of(FmNet *net, const FmLayer *l, int k) {
  return k < l->nbuf && l->buf[k] >= 0 ? &net->bufs[l->buf[k]] : NULL;
}

static void conv_unit(NetUnit *u, FmNet *net, FmLayer *l, UnitKind kind, int copy) {
  const FmConvAttr *a = &l->a.conv;
  u->kind = kind, u->l = l, u->wrank = 4;
  if (kind == U_CONVT) u->wshape[0] = a->cin, u->wshape[1] = a->cout / a->groups;
  else u->wshape[0] = a->cout, u->wshape[1] = a->cin / a->groups;
  u->wshape[2] = a->kh, u->wshape[3] = a->kw;
  if (copy) {
    u->dst[0] = param_of(net, l, 0), u->dst[1] = param_of(net, l, 1);
    memcpy(u->wshape, u->dst[0]->shape, sizeof u->wshape);
  }
}

static void gemm_unit(NetUnit *u, FmNet *net, FmLayer *l, int copy) {
  u->kind = U_GEMM, u->l = l, u->wrank = 2;
  if (copy) {
    u->dst[0] = param_of(net, l, 0), u->dst[1] = param_of(net, l, 1);
    u->wshape[0] = u->dst[0]->shape[0], u->wshape[1] = u->dst[0]->shape[1];
  } else {   /* SP linear: a.conv holds cin = in, cout = out */
    u->wshape[0] = l->a.conv.cout, u->wshape[1] = l->a.conv.cin;
  }
}

/* The net's weighted layers, in layer order; a layer with weights of no dense kind fails. */
static NetUnit *net_units(Graph *g, FmNet *net, const char *who, int *count) {
  NetUnit *u = fm_alloc(&g->arena, sizeof(NetUnit) * (size_t)(net->nlayers + 1));
  int n = 0;
  for (int i = 0; i < net->nlayers; i++) {
    FmLayer *l = &net->layers[i];
    NetUnit *v = &u[n];
    memset(v, 0, sizeof *v);
    switch (l->kind) {
    case FM_LAYER_NORMALIZE:
      v->kind = U_NORM, v->l = l, v->dst[0] = buf_of(net, l, 0), v->dst[1] = buf_of(net, l, 1);
      break;
    case FM_LAYER_CONV2D: conv_unit(v, net, l, U_CONV, 1); break;
    case FM_LAYER_CONV_TRANSPOSE2D: conv_unit(v, net, l, U_CONVT, 1); break;
    case FM_LAYER_LINEAR: gemm_unit(v, net, l, 1); break;
    case FM_LAYER_BATCHNORM:
      v->kind = U_BN, v->l = l;
      v->dst[0] = param_of(net, l, 0), v->dst[1] = param_of(net, l, 1);
      v->dst[2] = buf_of(net, l, 0), v->dst[3] = buf_of(net, l, 1);
      break;
    case FM_LAYER_CHANNEL_SCALE: v->kind = U_SCALE, v->l = l, v->dst[0] = param_of(net, l, 0); break;
    case FM_LAYER_CUSTOM:
      if (fm_sp_layer(l)) {   /* the place of a dense conv / linear */
        if (fm_sp_layer_is_conv(l)) conv_unit(v, net, l, U_CONV, 0);
        else gemm_unit(v, net, l, 0);
        v->has_bias = l->has_bias;
        if (fm_sp_dense_fits(net, l)) {   /* r = c_out, 1x1 patches: W_B = W (method_sp.h) */
          v->dst[0] = param_of(net, l, 0), v->dst[1] = param_of(net, l, 1), v->sp_dense = 1;
          v->random = 0;
        } else {
          v->random = 1;   /* none of its tensors */
        }
        break;
      }
      if (fm_wino_layer(l)) { conv_unit(v, net, l, U_CONV, 1); break; }   /* W, bias; transforms stay */
      if (fm_method_layer(l)) {   /* param 0: latent W (PS: P, filled with W first), 1: bias */
        if (fm_method_layer_is_conv(l)) conv_unit(v, net, l, U_CONV, 1);
        else gemm_unit(v, net, l, 1);
        break;
      }
      for (int k = 0; k < l->nparam; k++)
        if (l->param[k] >= 0)
          fm_fail("%s: the net's layer '%s' (%s) has weights with no dense counterpart", who, l->name,
                  l->ops && l->ops->name ? l->ops->name : "custom");
      continue;
    default:
      continue;   /* relu, pools, flatten, add, dropout: no weights */
    }
    if (!v->random && !v->sp_dense) v->has_bias = v->dst[1] != NULL && (v->kind == U_CONV || v->kind == U_CONVT || v->kind == U_GEMM);
    n++;
  }
  *count = n;
  return u;
}

static const char *file_desc(Graph *g, const FileUnit *f) {
  return fm_sprintf(&g->arena, "%s '%s'", f->kind == U_NORM ? "Sub/Div" : f->node->op_type, f->node->name);
}

static const char *fold_hint(const NetUnit *u, const FileUnit *f) {
  int bn_missing = u->kind == U_BN && f->kind != U_BN;
  int bias_extra = u->kind == U_CONV && f->t[1] && !u->has_bias;
  return bn_missing || bias_extra ? " (batchnorm folded into the conv weights? --from needs the BatchNormalization "
                                    "nodes, as fewmul train -o writes them)" : "";
}

/* Does file unit f fit net unit u? Fails naming the file's tensor and the net's layer. */
static void check_pair(Graph *g, const char *who, const NetUnit *u, const FileUnit *f, int idx) {
  const FmLayer *l = u->l;
  if (u->kind != f->kind)
    fm_fail("%s does not fit the net: weighted layer %d of the file is %s, the net's is %s '%s'%s", who, idx + 1,
            file_desc(g, f), unit_name[u->kind], l->name, fold_hint(u, f));
  if (u->kind == U_CONV || u->kind == U_CONVT || u->kind == U_GEMM) {
    const Tensor *w = f->t[0];
    int64_t want[4] = {0, 0, 0, 0};
    for (int k = 0; k < u->wrank; k++) want[k] = u->wshape[k];
    if (f->transposed) { int64_t s = want[0]; want[0] = want[1], want[1] = s; }
    int same = w->rank == u->wrank;
    for (int k = 0; same && k < u->wrank; k++) same = w->dims[k] == want[k];
    if (!same)
      fm_fail("%s: weight '%s' is %s, the net's %s '%s' needs %s", who, w->name,
              shape_str(g, w->dims, w->rank), unit_name[u->kind], l->name, shape_str(g, want, u->wrank));
    if (f->t[1] && !u->has_bias)
      fm_fail("%s: bias '%s' has no counterpart: the net's %s '%s' has no bias%s", who, f->t[1]->name,
              unit_name[u->kind], l->name, fold_hint(u, f));
    if (!f->t[1] && u->has_bias)
      fm_fail("%s: %s has no bias, the net's %s '%s' has one", who, file_desc(g, f), unit_name[u->kind],
              l->name);
    if (u->kind != U_GEMM && !f->built) {   /* the conv attributes */
      const FmConvAttr *a = &l->a.conv;
      int64_t s[2] = {1, 1}, d[2] = {1, 1}, p[4] = {0, 0, 0, 0};
      fm_attr_ints(f->node, "strides", s, 2);
      fm_attr_ints(f->node, "dilations", d, 2);
      int np = fm_attr_ints(f->node, "pads", p, 4);
      const char *ap = fm_attr_s(f->node, "auto_pad", "NOTSET");
      int pads_ok = np < 0 && strcmp(ap, "NOTSET") ? 1   /* SAME_*: the shape check above stands for it */
                    : p[0] == a->ph && p[2] == a->ph && p[1] == a->pw && p[3] == a->pw;
      if (s[0] != a->sh || s[1] != a->sw || d[0] != a->dh || d[1] != a->dw || !pads_ok ||
          fm_attr_i(f->node, "group", 1) != a->groups)
        fm_fail("%s: %s has strides %lldx%lld, pads %lld,%lld, dilations %lldx%lld, group %lld; the net's "
                "%s '%s' has %dx%d, %d,%d, %dx%d, %d", who, file_desc(g, f), (long long)s[0], (long long)s[1],
                (long long)p[0], (long long)p[1], (long long)d[0], (long long)d[1],
                (long long)fm_attr_i(f->node, "group", 1), unit_name[u->kind], l->name, a->sh, a->sw, a->ph, a->pw,
                a->dh, a->dw, a->groups);
    }
  }
  for (int k = 0; k < unit_slots[u->kind]; k++) {   /* every copied tensor: the element count */
    const FmParam *p = u->dst[k];
    const Tensor *t = f->t[k];
    if (!p || !t) continue;
    if (fm_numel(t) != (int64_t)p->size)
      fm_fail("%s: tensor '%s' is %s, the net's '%s' has %zu elements", who, t->name,
              shape_str(g, t->dims, t->rank), p->name, p->size);
  }
  if (u->kind == U_BN && l->kind == FM_LAYER_BATCHNORM) {
    float eps = fm_attr_f(f->node, "epsilon", 1e-5f);
    if (eps != l->a.bn.eps)
      fm_fail("%s: BatchNormalization '%s' has epsilon %g, the net's '%s' %g", who, f->node->name,
              (double)eps, l->name, (double)l->a.bn.eps);
  }
}

static void copy_pair(const NetUnit *u, const FileUnit *f) {
  for (int k = 0; k < unit_slots[u->kind]; k++) {
    FmParam *p = u->dst[k];
    const Tensor *t = f->t[k];
    if (!p || !t) continue;
    const float *s = t->data;
    if (k == 0 && f->transposed) {   /* (in, out) -> (out, in) */
      int M = p->shape[0], K = p->shape[1];
      for (int m = 0; m < M; m++)
        for (int j = 0; j < K; j++) p->data[(size_t)m * (size_t)K + (size_t)j] = s[(size_t)j * (size_t)M + (size_t)m];
    } else {
      memcpy(p->data, s, sizeof(float) * p->size);
    }
    float scale = u->kind != U_GEMM || k > 1 ? 0 : k == 0 ? f->alpha : f->beta;   /* Gemm alpha, beta */
    if (scale != 0 && scale != 1)
      for (size_t i = 0; i < p->size; i++) p->data[i] *= scale;
  }
}

/* A comma list of the layers of units u[0..n) with random set (at most ~10 names). */
static const char *random_list(Graph *g, const NetUnit *u, int n) {
  char buf[400] = "";
  int k = 0, shown = 0, total = 0;
  for (int i = 0; i < n; i++) {
    if (!u[i].random) continue;
    total++;
    if (shown < 10) k += snprintf(buf + k, sizeof buf - (size_t)k, "%s%s", shown ? ", " : "", u[i].l->name), shown++;
  }
  if (total > shown) snprintf(buf + k, sizeof buf - (size_t)k, ", ... (%d more)", total - shown);
  return fm_strdup(&g->arena, buf);
}

static void load_into(Graph *g, FmNet *net, const char *path, const char *who, FILE *log) {
  const FmTensor *in = &net->tensors[net->input];
  const Tensor *gi = g->ninputs == 1 ? g->inputs[0] : NULL;
  if (!gi || gi->rank != 4 || gi->dims[1] != in->c || gi->dims[2] != in->h || gi->dims[3] != in->w) {
    int64_t d[4] = {-1, in->c, in->h, in->w};
    fm_fail("%s: the model's input %s, the net takes %s (--data)", who,
            gi ? fm_sprintf(&g->arena, "'%s' is %s", gi->name, shape_str(g, gi->dims, gi->rank))
               : fm_sprintf(&g->arena, "count is %d", g->ninputs),
            shape_str(g, d, 4));
  }
  int nf;
  FileUnit *f = file_units(g, who, &nf);
  fm_from_apply_units(g, net, path, who, log, f, nf);
}

void fm_from_apply_units(Graph *g, FmNet *net, const char *path, const char *who, FILE *log,
                         const FileUnit *f, int nf) {
  int nn;
  NetUnit *u = net_units(g, net, who, &nn);
  int n = nf < nn ? nf : nn;
  for (int i = 0; i < n; i++) check_pair(g, who, &u[i], &f[i], i);
  if (nf > nn)
    fm_fail("%s: %s (weight '%s') has no counterpart: the net %s has %d weighted layers, the file %d",
            who, file_desc(g, &f[nn]), f[nn].t[0]->name, net->model, nn, nf);
  if (nn > nf)
    fm_fail("%s: the net's %s '%s' has no counterpart: the file has %d weighted layers, the net %s %d",
            who, unit_name[u[nf].kind], u[nf].l->name, nf, net->model, nn);
  /* everything fits: copy */
  int tensors = 0, targets = 0, layers = 0, bns = 0, norm = 0, scales = 0, random = 0, wino = 0, method = 0, spd = 0;
  for (int i = 0; i < n; i++) {
    if (u[i].random) { random++; continue; }
    copy_pair(&u[i], &f[i]);
    if (u[i].sp_dense) fm_sp_from_dense(net, u[i].l), spd++;
    for (int k = 0; k < unit_slots[u[i].kind]; k++) tensors += f[i].t[k] != NULL, targets += u[i].dst[k] != NULL;
    layers += u[i].kind == U_CONV || u[i].kind == U_CONVT || u[i].kind == U_GEMM;
    bns += u[i].kind == U_BN, norm += u[i].kind == U_NORM, scales += u[i].kind == U_SCALE;
    wino += fm_wino_layer(u[i].l), method += fm_method_layer(u[i].l);
  }
  /* each weight method from the dense W: PS turns W into P = log2|W|, S = sign(W); quant sets its range */
  fm_method_init(net);   /* the method table: nothing for dense, SP, Winograd */
  if (!log) return;
  fprintf(log, "from %s: %d tensors into %d parameters and buffers (%d conv/linear layers, %d batchnorms%s%s)\n",
          path, tensors, targets, layers, bns, scales ? fm_sprintf(&g->arena, ", %d channel scales", scales) : "",
          norm ? ", the input normalisation" : "");
  switch (net->method.kind) {
  case FM_METHOD_TERNARY: case FM_METHOD_DEEPSHIFT_Q:
    fprintf(log, "from %s: %d %s layers take the dense W as their latent weight\n", path, method,
            fm_method_name(net->method.kind));
    break;
  case FM_METHOD_DEEPSHIFT_PS:
    fprintf(log, "from %s: %d deepshift-ps layers start at P = log2|W| (clamped to [%d, 0]) and S = sign(W)\n", path,
            method, fm_deepshift_pmin(net->method.weight_bits));
    break;
  case FM_METHOD_QUANT:
    fprintf(log, "from %s: %d quant layers take the dense W%s\n", path, method,
            net->method.range > 0 ? "" : " (grid range max|W| per layer)");
    break;
  case FM_METHOD_WINOGRAD:
    fprintf(log, "from %s: %d Winograd convs take the dense W; their transforms start from Cook-Toom\n", path, wino);
    break;
  default: break;
  }
  if (spd)
    fprintf(log, "from %s: %d SP layers start from the dense W (W_B = W, W_C = I; a and their BN from the statistics of "
            "the first training batch)\n", path, spd);
  if (random)
    fprintf(log, "from %s: %d SP layers keep their random init (W_B, W_C, a and their BN have no dense counterpart; "
            "the file's weights for them are unused): %s\n", path, random, random_list(g, u, n));
}

int fm_from_onnx(FmNet *net, const char *path, FILE *log, char *err, size_t errlen) {
  Graph *volatile g = NULL;
  volatile int rc = 0;
  FmTry t;
  FM_TRY(&t) {
    g = fm_onnx_load(path, NULL);
    /* every message names the file, and the two models when they differ */
    const char *who = g->name && *g->name && strcmp(g->name, net->model)
                          ? fm_sprintf(&g->arena, "--from '%s' (a %s model, the net is %s)", path, g->name, net->model)
                          : fm_sprintf(&g->arena, "--from '%s'", path);
    load_into(g, net, path, who, log);
    fm_try_pop(&t);
  } else {
    if (!g && !onnx_name(path))   /* neither a checkpoint nor a loadable model */
      snprintf(err, errlen, "--from '%s' is not a fewmul checkpoint (no FMCKPT magic), nor an ONNX model: %s", path,
               fm_errmsg());
    else if (!g)
      snprintf(err, errlen, "--from: %s", fm_errmsg());
    else
      snprintf(err, errlen, "%s", fm_errmsg());
    rc = -1;
  }
  fm_graph_free(g);
  return rc;
}
