/* net.c - layer graph: construction, memory planning, forward/backward, eval.
 * The built-in layer kinds live in net_layers.c. */
#include "net.h"
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

static const char *kind_names[] = {
#define FM_X_NAME(id, name) name,
  FM_LAYER_KINDS(FM_X_NAME)
#undef FM_X_NAME
};
_Static_assert(sizeof kind_names / sizeof kind_names[0] == FM_LAYER_KIND_COUNT, "layer kind table");

const char *fm_layer_kind_name(FmLayerKind k) {
  return k >= 0 && k < FM_LAYER_KIND_COUNT ? kind_names[k] : "?";
}

// grows *arr (elements of size sz) so that it holds at least need elements
static int grow(void **arr, int *cap, int need, size_t sz) {
  if (need <= *cap) return 0;
  int nc = *cap ? *cap * 2 : 16;
  while (nc < need) nc *= 2;
  void *p = realloc(*arr, (size_t)nc * sz);
  if (!p) return -1;
  memset((char *)p + (size_t)*cap * sz, 0, (size_t)(nc - *cap) * sz);
  *arr = p, *cap = nc;
  return 0;
}

static void set_err(FmNet *net, const char *fmt, ...) {
  if (net->err[0]) return;   // keep the first error
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(net->err, sizeof net->err, fmt, ap);
  va_end(ap);
}

FmNetOpts fm_net_opts_default(void) {
  FmNetOpts o;
  memset(&o, 0, sizeof o);
  o.seed = 1;
  o.width = 1.0f;
  return o;
}

static int add_tensor(FmNet *net, int c, int h, int w, int flat) {
  if (grow((void **)&net->tensors, &net->tensors_cap, net->ntensors + 1, sizeof(FmTensor))) return -1;
  FmTensor *t = &net->tensors[net->ntensors];
  memset(t, 0, sizeof *t);
  t->c = c, t->h = h, t->w = w, t->flat = flat;
  t->size = (size_t)c * h * w;
  t->alias = -1;
  return net->ntensors++;
}

FmNet *fm_net_new(int c, int h, int w, const FmNetOpts *opts) {
  FmNetOpts dflt = fm_net_opts_default();
  if (!opts) opts = &dflt;
  FmNet *net = calloc(1, sizeof *net);
  if (!net) return NULL;
  fm_blas_single_thread();
  net->input = add_tensor(net, c, h, w, 0);
  net->output = -1;
  net->groups = calloc(8, sizeof(FmParamGroup));
  fm_net_add_group(net, "default", 1.0f, -1.0f, 0);
  fm_net_add_group(net, "frozen", 1.0f, -1.0f, 1);
  fm_rng_seed(&net->rng, opts->seed);
  net->seed = opts->seed;
  fm_net_set_threads(net, opts->threads);
  net->method = opts->method;
  if (c <= 0 || h <= 0 || w <= 0) set_err(net, "bad input shape %dx%dx%d", c, h, w);
  return net;
}

void fm_net_set_threads(FmNet *net, int threads) {
  net->threads = threads > 0 ? threads : omp_get_max_threads();
}

void fm_net_free(FmNet *net) {
  if (!net) return;
  for (int i = 0; i < net->nparams; i++) free(net->params[i].init_data);
  for (int i = 0; i < net->nbufs; i++) free(net->bufs[i].init_data);
  free(net->layers), free(net->tensors), free(net->params), free(net->bufs);
  free(net->groups), free(net->segs);
  free(net->param_data), free(net->grad_data), free(net->buf_data);
  free(net->arena), free(net->work), free(net->prof);
  free(net);
}

int fm_net_add_group(FmNet *net, const char *name, float lr_mult, float weight_decay, int frozen) {
  if (net->ngroups % 8 == 0 && net->ngroups) {
    FmParamGroup *g = realloc(net->groups, (net->ngroups + 8) * sizeof *g);
    if (!g) return -1;
    net->groups = g;
  }
  FmParamGroup *g = &net->groups[net->ngroups];
  memset(g, 0, sizeof *g);
  snprintf(g->name, sizeof g->name, "%s", name);
  g->lr_mult = lr_mult, g->weight_decay = weight_decay, g->frozen = frozen;
  return net->ngroups++;
}

void fm_net_set_param_group(FmNet *net, int param, int group) {
  net->params[param].group = group;
  if (net->segs) net->segs[param].group = group;
}

int fm_net_add_layer(FmNet *net, const FmLayerOps *ops, const int *ins, int nin,
                     int c, int h, int w, int flat) {
  if (net->finished) { set_err(net, "layer added after fm_net_finish"); return -1; }
  for (int i = 0; i < nin; i++)
    if (ins[i] < 0 || ins[i] >= net->ntensors) return -1;   // an earlier error propagates
  if (nin > FM_MAX_IN) { set_err(net, "%s: too many inputs", ops->name); return -1; }
  if (c <= 0 || h <= 0 || w <= 0) {
    set_err(net, "%s_%d: output shape %dx%dx%d is empty (input %dx%dx%d too small)", ops->name,
            net->nlayers, c, h, w, net->tensors[ins[0]].c, net->tensors[ins[0]].h, net->tensors[ins[0]].w);
    return -1;
  }
  if (grow((void **)&net->layers, &net->layers_cap, net->nlayers + 1, sizeof(FmLayer))) return -1;
  int out = add_tensor(net, c, h, w, flat);
  if (out < 0) return -1;
  FmLayer *l = &net->layers[net->nlayers];
  memset(l, 0, sizeof *l);
  l->kind = ops->kind;
  l->ops = ops;
  snprintf(l->name, sizeof l->name, "%s_%d", ops->name, net->nlayers);
  l->nin = nin;
  for (int i = 0; i < nin; i++) {
    l->in[i] = ins[i];
    if (net->tensors[ins[i]].needs_grad) net->tensors[out].needs_grad = 1;
  }
  l->out = out;
  for (int k = 0; k < FM_MAX_PARAM; k++) l->param[k] = -1;
  for (int k = 0; k < FM_MAX_BUF; k++) l->buf[k] = -1;
  return net->nlayers++;
}

static int add_record(FmNet *net, FmParam **arr, int *count, int *cap, FmLayer *l,
                      const char *suffix, const int *shape, int ndim, FmInitKind init, float val) {
  if (grow((void **)arr, cap, *count + 1, sizeof(FmParam))) return -1;
  FmParam *p = &(*arr)[*count];
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s.%s", l->name, suffix);
  p->ndim = ndim;
  p->size = 1;
  for (int i = 0; i < ndim; i++) p->shape[i] = shape[i], p->size *= shape[i];
  p->init = init, p->init_val = val;
  return (*count)++;
}

int fm_net_add_param(FmNet *net, int li, const char *suffix, const int *shape, int ndim,
                     FmInitKind init, float init_val) {
  if (li < 0) return -1;
  FmLayer *l = &net->layers[li];
  if (l->nparam == FM_MAX_PARAM) { set_err(net, "%s: too many parameters", l->name); return -1; }
  int id = add_record(net, &net->params, &net->nparams, &net->params_cap, l, suffix, shape, ndim, init, init_val);
  if (id < 0) return -1;
  l->param[l->nparam++] = id;
  net->tensors[l->out].needs_grad = 1;
  return id;
}

int fm_net_add_buf(FmNet *net, int li, const char *suffix, const int *shape, int ndim,
                   FmInitKind init, float init_val) {
  if (li < 0) return -1;
  FmLayer *l = &net->layers[li];
  if (l->nbuf == FM_MAX_BUF) { set_err(net, "%s: too many buffers", l->name); return -1; }
  int id = add_record(net, &net->bufs, &net->nbufs, &net->bufs_cap, l, suffix, shape, ndim, init, init_val);
  if (id < 0) return -1;
  l->buf[l->nbuf++] = id;
  return id;
}

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

static void init_record(FmParam *p, FmRng *rng) {
  for (size_t i = 0; i < p->size; i++) {
    switch (p->init) {
    case FM_INIT_CONST: p->data[i] = p->init_val; break;
    case FM_INIT_UNIFORM: p->data[i] = (2 * fm_rng_uniform(rng) - 1) * p->init_val; break;
    case FM_INIT_NORMAL: p->data[i] = fm_rng_normal(rng) * p->init_val; break;
    case FM_INIT_DATA: p->data[i] = p->init_data[i]; break;
    }
  }
  free(p->init_data);
  p->init_data = NULL;
}

/* A layer kind that can assign (=) its input gradients does so for a tensor it alone
 * reads (not the net's output, not aliased by a flatten): that gradient then needs no
 * zeroing before the backward pass, a memory pass saved per such tensor and step. */
static int mark_assigned_grads(FmNet *net) {
  int *readers = calloc((size_t)net->ntensors, sizeof(int));
  if (!readers) { set_err(net, "out of memory"); return -1; }
  for (int i = 0; i < net->nlayers; i++)
    for (int k = 0; k < net->layers[i].nin; k++) readers[net->layers[i].in[k]]++;
  for (int i = 0; i < net->ntensors; i++)
    if (net->tensors[i].alias >= 0) readers[i] = readers[net->tensors[i].alias] = 2;
  readers[net->output] = 2;
  for (int i = 0; i < net->nlayers; i++) {
    FmLayer *l = &net->layers[i];
    for (int k = 0; k < l->nin; k++) {
      int t = l->in[k];
      l->assign[k] = fm_layer_assigns_grad(l->ops) && readers[t] == 1 && t != net->input;
      if (l->assign[k]) net->tensors[t].grad_assigned = 1;
    }
  }
  free(readers);
  return 0;
}

int fm_net_finish(FmNet *net, int out) {
  if (net->err[0]) return -1;
  if (out < 0 || out >= net->ntensors) { set_err(net, "bad output tensor"); return -1; }
  net->output = out;
  if (net->method.kind && fm_method_prepare(net)) return -1;   // method layers' parameters
  size_t np = 0, nb = 0;
  for (int i = 0; i < net->nparams; i++) net->params[i].off = np, np += align16(net->params[i].size);
  for (int i = 0; i < net->nbufs; i++) net->bufs[i].off = nb, nb += align16(net->bufs[i].size);
  net->nparam_floats = np, net->nbuf_floats = nb;
  net->param_data = aligned_alloc(64, sizeof(float) * (np + 16));
  net->grad_data = aligned_alloc(64, sizeof(float) * (np + 16));
  net->buf_data = aligned_alloc(64, sizeof(float) * (nb + 16));
  net->segs = calloc(net->nparams + 1, sizeof(FmOptimSeg));
  if (!net->param_data || !net->grad_data || !net->buf_data || !net->segs) {
    set_err(net, "out of memory for %zu parameters", np);
    return -1;
  }
  memset(net->param_data, 0, sizeof(float) * np);
  memset(net->grad_data, 0, sizeof(float) * np);
  memset(net->buf_data, 0, sizeof(float) * nb);
  for (int i = 0; i < net->nparams; i++) {
    FmParam *p = &net->params[i];
    p->data = net->param_data + p->off;
    p->grad = net->grad_data + p->off;
    init_record(p, &net->rng);
    net->segs[i] = (FmOptimSeg){p->off, p->size, p->group};
  }
  for (int i = 0; i < net->nbufs; i++) {
    FmParam *p = &net->bufs[i];
    p->data = net->buf_data + p->off;
    init_record(p, &net->rng);
  }
  if (mark_assigned_grads(net)) return -1;
  const char *e = getenv("FEWMUL_PROFILE");   // a (forward | backward) seconds table
  if (e && *e && strcmp(e, "0")) net->prof = calloc(2 * (size_t)net->nlayers, sizeof(double));
  net->finished = 1;
  if (net->method.kind) fm_method_init(net);
  return 0;
}

// --- memory plan -------------------------------------------------------------

int fm_net_reserve(FmNet *net, int n) {
  if (n <= net->cap) return 0;
  size_t off = 0;
  for (int i = 1; i < net->ntensors; i++) {   // tensor 0 is the caller's input
    FmTensor *t = &net->tensors[i];
    if (t->alias >= 0) continue;
    t->off = off, off += align16(t->size * n);
    if (t->needs_grad) t->goff = off, off += align16(t->size * n);
  }
  for (int i = 0; i < net->nlayers; i++) {
    FmLayer *l = &net->layers[i];
    l->aux_off = off, off += align16(l->aux_per_sample * n + l->aux_fixed);
  }
  size_t probs_off = off;
  off += align16((size_t)net->tensors[net->output].size * n);
  size_t work = 0;
  for (int i = 0; i < net->nlayers; i++) {
    FmLayer *l = &net->layers[i];
    if (l->ops->workspace) {
      size_t w = l->ops->workspace(net, l, n);
      if (w > work) work = w;
    }
  }
  float *arena = aligned_alloc(64, sizeof(float) * (off + 16));
  float *ws = aligned_alloc(64, sizeof(float) * (align16(work) + 16));
  if (!arena || !ws) { free(arena), free(ws); return -1; }
  memset(arena, 0, sizeof(float) * off);
  free(net->arena), free(net->work);
  net->arena = arena, net->arena_floats = off;
  net->work = ws, net->work_floats = work;
  net->probs = arena + probs_off;
  for (int i = 1; i < net->ntensors; i++) {
    FmTensor *t = &net->tensors[i];
    if (t->alias >= 0) continue;
    t->data = arena + t->off;
    t->grad = t->needs_grad ? arena + t->goff : NULL;
  }
  for (int i = 0; i < net->nlayers; i++) net->layers[i].aux = arena + net->layers[i].aux_off;
  net->cap = n;
  return 0;
}

// aliases share their root's pointers (roots precede them)
static void resolve_aliases(FmNet *net) {
  for (int i = 0; i < net->ntensors; i++) {
    FmTensor *t = &net->tensors[i];
    if (t->alias < 0) continue;
    t->data = net->tensors[t->alias].data;
    t->grad = net->tensors[t->alias].grad;
  }
}

// --- running -----------------------------------------------------------------

float *fm_net_forward(FmNet *net, const float *x, int n, int train) {
  if (!net->finished || fm_net_reserve(net, n)) return NULL;
  net->n = n;
  omp_set_num_threads(net->threads);   // ops without an explicit count use this
  net->tensors[net->input].data = (float *)x;   // read only
  net->tensors[net->input].grad = NULL;
  resolve_aliases(net);
  double *prof = train ? net->prof : NULL;
  if (prof) net->prof_steps++;
  for (int i = 0; i < net->nlayers; i++) {
    FmLayer *l = &net->layers[i];
    l->train = train;
    double t0 = prof ? omp_get_wtime() : 0;
    l->ops->forward(net, l, n, train);
    if (prof) prof[i] += omp_get_wtime() - t0;
  }
  return net->tensors[net->output].data;
}

// activation gradients are accumulated (+=) by the layers that read the tensor; zeroed
// in 64 KB pieces shared by the threads (one thread alone is bandwidth-starved here)
void fm_net_zero_act_grad(FmNet *net) {
  enum { PIECE = 16384 };
  for (int i = 0; i < net->ntensors; i++) {
    FmTensor *t = &net->tensors[i];
    if (t->alias >= 0 || !t->grad || t->grad_assigned) continue;
    float *g = t->grad;
    size_t n = t->size * net->n;
    long pieces = (long)((n + PIECE - 1) / PIECE);
#pragma omp parallel for schedule(static) num_threads(net->threads) if (pieces > 4)
    for (long k = 0; k < pieces; k++) {
      size_t o = (size_t)k * PIECE;
      memset(g + o, 0, sizeof(float) * (n - o < PIECE ? n - o : PIECE));
    }
  }
}

static int count_correct(const float *logits, const int *labels, int n, int K) {
  int correct = 0;
  for (int i = 0; i < n; i++) {
    const float *r = logits + (size_t)i * K;
    int best = 0;
    for (int k = 1; k < K; k++) if (r[k] > r[best]) best = k;
    correct += best == labels[i];
  }
  return correct;
}

float fm_net_loss(FmNet *net, const int *labels, int n, int *correct) {
  FmTensor *o = &net->tensors[net->output];
  int K = (int)o->size;
  float loss = fm_crossentropy_forward(net->probs, o->data, labels, n, K);
  if (correct) *correct = count_correct(o->data, labels, n, K);
  fm_net_zero_act_grad(net);
  if (o->grad && net->loss_batch > 0) {   // this process's share of a split batch
    float r = 1.0f / (float)net->loss_batch;
    for (int i = 0; i < n; i++)
      for (int k = 0; k < K; k++)
        o->grad[(size_t)i * K + k] += r * (net->probs[(size_t)i * K + k] - (k == labels[i]));
  } else if (o->grad) {
    fm_crossentropy_backward(o->grad, net->probs, labels, n, K, 1.0f);
  }
  return loss;
}

void fm_net_backward(FmNet *net) {
  omp_set_num_threads(net->threads);
  double *prof = net->prof;
  for (int i = net->nlayers - 1; i >= 0; i--) {
    FmLayer *l = &net->layers[i];
    double t0 = prof ? omp_get_wtime() : 0;
    if (net->tensors[l->out].grad) l->ops->backward(net, l, net->n);
    if (prof) prof[net->nlayers + i] += omp_get_wtime() - t0;
    if (net->backward_hook) net->backward_hook(net, i, net->backward_hook_ctx);
  }
}

void fm_net_profile_print(const FmNet *net, FILE *f) {
  if (!net->prof || !net->prof_steps) return;
  double s = 1e3 / (double)net->prof_steps, tf = 0, tb = 0;
  fprintf(f, "profile: %ld training steps, ms per step\n%-4s %-24s %-14s %9s %9s\n", net->prof_steps,
          "#", "layer", "kind", "forward", "backward");
  for (int i = 0; i < net->nlayers; i++) {
    const FmLayer *l = &net->layers[i];
    double a = net->prof[i] * s, b = net->prof[net->nlayers + i] * s;
    tf += a, tb += b;
    fprintf(f, "%-4d %-24s %-14s %9.3f %9.3f\n", i, l->name, l->ops->name, a, b);
  }
  fprintf(f, "%-4s %-24s %-14s %9.3f %9.3f\n", "", "total", "", tf, tb);
}

void fm_net_zero_grad(FmNet *net) { memset(net->grad_data, 0, sizeof(float) * net->nparam_floats); }

void fm_net_step(FmNet *net, FmOptim *opt, float lr) {
  fm_optim_step(opt, net->param_data, net->grad_data, net->segs, net->nparams, net->groups, lr);
  if (net->method.kind) fm_method_post_step(net);
}

FmOptim *fm_net_optim_new(FmNet *net, const FmOptimConfig *cfg) {
  return fm_optim_new(cfg, net->nparam_floats, net->nparams);
}

uint64_t fm_net_step_key(const FmNet *net, int layer) {
  FmRng r = {net->seed ^ 0x6a09e667f3bcc909ULL};
  r.s = fm_rng_next(&r) ^ (uint64_t)net->step;
  r.s = fm_rng_next(&r) ^ (uint64_t)(uint32_t)layer;
  return fm_rng_next(&r);
}

void fm_net_eval(FmNet *net, const float *x, const int *labels, int count, int batch,
                 float *loss, float *accuracy) {
  const FmTensor *in = &net->tensors[net->input];
  int K = (int)net->tensors[net->output].size;
  double total = 0;
  long correct = 0;
  for (int i = 0; i < count; i += batch) {
    int n = count - i < batch ? count - i : batch;
    const float *out = fm_net_forward(net, x + (size_t)i * in->size, n, 0);
    if (!out) break;
    total += (double)fm_crossentropy_forward(net->probs, out, labels + i, n, K) * n;
    correct += count_correct(out, labels + i, n, K);
  }
  if (loss) *loss = count ? (float)(total / count) : 0;
  if (accuracy) *accuracy = count ? (float)correct / count : 0;
}

// --- iteration helpers ---------------------------------------------------------

const FmParam *fm_layer_param(const FmNet *net, const FmLayer *l, int k) {
  return k >= 0 && k < FM_MAX_PARAM && l->param[k] >= 0 ? &net->params[l->param[k]] : NULL;
}

const FmParam *fm_layer_buf(const FmNet *net, const FmLayer *l, int k) {
  return k >= 0 && k < FM_MAX_BUF && l->buf[k] >= 0 ? &net->bufs[l->buf[k]] : NULL;
}

int fm_net_num_classes(const FmNet *net) { return (int)net->tensors[net->output].size; }

void fm_net_print(const FmNet *net, FILE *f) {
  size_t total = 0;
  fprintf(f, "%-22s %-18s %s\n", "layer", "output", "params");
  for (int i = 0; i < net->nlayers; i++) {
    const FmLayer *l = &net->layers[i];
    const FmTensor *t = &net->tensors[l->out];
    size_t np = 0;
    for (int k = 0; k < l->nparam; k++) np += net->params[l->param[k]].size;
    total += np;
    char shape[48];
    if (t->flat) snprintf(shape, sizeof shape, "%d", t->c);
    else snprintf(shape, sizeof shape, "%dx%dx%d", t->c, t->h, t->w);
    fprintf(f, "%-22s %-18s %zu\n", l->name, shape, np);
  }
  fprintf(f, "total parameters: %zu\n", total);
}
