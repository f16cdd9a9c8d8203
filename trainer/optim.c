/* optim.c - SGD, Adam, AdamW, RAdam, Adadelta, RMSprop and lr schedules.
 * The update formulas follow torch.optim (PyTorch 2.x, single-tensor path):
 * scalars (bias corrections) in double, elementwise math in float. */
#include "optim.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *kind_names[FM_OPT_COUNT] = {"sgd", "adam", "adamw", "radam", "adadelta", "rmsprop"};
static const int kind_nstate[FM_OPT_COUNT] = {1, 2, 2, 2, 2, 3};

void fm_optim_defaults(FmOptimConfig *c, FmOptimKind kind) {
  memset(c, 0, sizeof *c);
  c->kind = kind;
  c->beta1 = 0.9f, c->beta2 = 0.999f, c->eps = 1e-8f;
  switch (kind) {
  case FM_OPT_SGD: c->lr = 0.01f; break;
  case FM_OPT_ADAM: case FM_OPT_RADAM: c->lr = 1e-3f; break;
  case FM_OPT_ADAMW: c->lr = 1e-3f, c->weight_decay = 1e-2f; break;
  case FM_OPT_ADADELTA: c->lr = 1.0f, c->rho = 0.9f, c->eps = 1e-6f; break;
  case FM_OPT_RMSPROP: c->lr = 0.01f, c->rho = 0.99f; break;
  default: break;
  }
}

int fm_optim_kind_parse(const char *name) {
  for (int k = 0; k < FM_OPT_COUNT; k++)
    if (strcmp(name, kind_names[k]) == 0) return k;
  return -1;
}

const char *fm_optim_kind_name(FmOptimKind kind) {
  return kind >= 0 && kind < FM_OPT_COUNT ? kind_names[kind] : "?";
}

FmOptim *fm_optim_new(const FmOptimConfig *cfg, size_t n, int nseg) {
  FmOptim *o = calloc(1, sizeof *o);
  if (!o) return NULL;
  o->cfg = *cfg;
  o->n = n;
  o->nseg = nseg;
  o->nstate = kind_nstate[cfg->kind];
  o->state = calloc(o->nstate * n + 1, sizeof(float));
  o->seg_step = calloc(nseg + 1, sizeof(int64_t));
  if (!o->state || !o->seg_step) { fm_optim_free(o); return NULL; }
  return o;
}

void fm_optim_free(FmOptim *o) {
  if (!o) return;
  free(o->state);
  free(o->seg_step);
  free(o);
}

// One segment update. p, g, s0..s2 point at the segment's n elements; t is
// the step number (1-based) for bias corrections.
static void update(const FmOptimConfig *c, float *p, const float *g, float *s0, float *s1,
                   float *s2, size_t n, float lr, float wd, int64_t t) {
  switch (c->kind) {
  case FM_OPT_SGD: {
    float mu = c->momentum, damp = 1 - c->dampening;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
      float d = g[i] + wd * p[i];
      if (mu != 0) {
        s0[i] = t == 1 ? d : mu * s0[i] + damp * d;   // PyTorch: buf = grad on the first step
        d = c->nesterov ? d + mu * s0[i] : s0[i];
      }
      p[i] -= lr * d;
    }
    break;
  }
  case FM_OPT_ADAM: case FM_OPT_ADAMW: case FM_OPT_RADAM: {
    float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
    double bc1 = 1 - pow(b1, (double)t), bc2 = 1 - pow(b2, (double)t);
    int decoupled = c->kind == FM_OPT_ADAMW;
    float l2 = decoupled ? 0 : wd, shrink = decoupled ? 1 - lr * wd : 1;
    // RAdam rectification
    double rho_inf = 2 / (1 - b2) - 1, rho_t = rho_inf - 2 * t * pow(b2, (double)t) / bc2;
    int rect_on = c->kind != FM_OPT_RADAM || rho_t > 5;
    double rect = c->kind == FM_OPT_RADAM && rect_on
        ? sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) : 1;
    float step = (float)(lr / bc1), bc2s = (float)sqrt(bc2), r = (float)rect;
    int radam = c->kind == FM_OPT_RADAM;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
      p[i] *= shrink;
      float d = g[i] + l2 * p[i];
      s0[i] += (1 - b1) * (d - s0[i]);                 // lerp, as torch
      s1[i] = b2 * s1[i] + (1 - b2) * d * d;
      if (!radam) p[i] -= step * s0[i] / (sqrtf(s1[i]) / bc2s + eps);
      else if (rect_on) p[i] -= step * s0[i] * r * bc2s / (sqrtf(s1[i]) + eps);
      else p[i] -= step * s0[i];
    }
    break;
  }
  case FM_OPT_ADADELTA: {
    float rho = c->rho, eps = c->eps;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
      float d = g[i] + wd * p[i];
      s0[i] = rho * s0[i] + (1 - rho) * d * d;
      float delta = sqrtf(s1[i] + eps) / sqrtf(s0[i] + eps) * d;
      s1[i] = rho * s1[i] + (1 - rho) * delta * delta;
      p[i] -= lr * delta;
    }
    break;
  }
  case FM_OPT_RMSPROP: {
    float al = c->rho, eps = c->eps, mu = c->momentum;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
      float d = g[i] + wd * p[i];
      s0[i] = al * s0[i] + (1 - al) * d * d;
      float avg;
      if (c->centered) {
        s2[i] += (1 - al) * (d - s2[i]);
        avg = sqrtf(s0[i] - s2[i] * s2[i]) + eps;
      } else avg = sqrtf(s0[i]) + eps;
      if (mu > 0) { s1[i] = mu * s1[i] + d / avg; p[i] -= lr * s1[i]; }
      else p[i] -= lr * d / avg;
    }
    break;
  }
  default: break;
  }
}

void fm_optim_step(FmOptim *o, float *params, const float *grads, const FmOptimSeg *segs,
                   int nseg, const FmParamGroup *groups, float lr) {
  const FmOptimConfig *c = &o->cfg;
  for (int s = 0; s < nseg && s < o->nseg; s++) {
    const FmOptimSeg *sg = &segs[s];
    const FmParamGroup *gr = groups ? &groups[sg->group] : NULL;
    if (gr && gr->frozen) continue;
    float glr = lr * (gr ? gr->lr_mult : 1.0f);
    float wd = gr && gr->weight_decay >= 0 ? gr->weight_decay : c->weight_decay;
    int64_t t = ++o->seg_step[s];
    float *st = o->state + sg->off;
    float *s0 = st, *s1 = o->nstate > 1 ? st + o->n : NULL, *s2 = o->nstate > 2 ? st + 2 * o->n : NULL;
    update(c, params + sg->off, grads + sg->off, s0, s1, s2, sg->n, glr, wd, t);
  }
}

// ---------------------------------------------------------------------------
// schedules

int fm_sched_parse(FmSched *s, const char *spec, float gamma, int epochs, char *err, size_t errlen) {
  memset(s, 0, sizeof *s);
  s->gamma = gamma;
  const char *colon = strchr(spec, ':');
  size_t klen = colon ? (size_t)(colon - spec) : strlen(spec);
  const char *arg = colon ? colon + 1 : NULL;
#define IS(name) (klen == strlen(name) && strncmp(spec, name, klen) == 0)
  if (IS("const") || IS("none")) s->kind = FM_SCHED_CONST;
  else if (IS("step")) {
    s->kind = FM_SCHED_STEP;
    if (!arg || (s->step_size = atoi(arg)) <= 0) goto bad;
  } else if (IS("multistep")) {
    s->kind = FM_SCHED_MULTISTEP;
    if (!arg || !*arg) goto bad;
    for (const char *q = arg; *q;) {
      char *end;
      long m = strtol(q, &end, 10);
      if (end == q || m <= 0 || s->nmilestones == FM_SCHED_MAX_MILESTONES) goto bad;
      if (s->nmilestones && m <= s->milestones[s->nmilestones - 1]) goto bad;
      s->milestones[s->nmilestones++] = (int)m;
      q = *end == ',' ? end + 1 : end;
      if (*end && *end != ',') goto bad;
    }
  } else if (IS("exp") || IS("exponential")) s->kind = FM_SCHED_EXP;
  else if (IS("cosine")) {
    s->kind = FM_SCHED_COSINE;
    s->t_max = arg ? atoi(arg) : epochs;
    if (s->t_max <= 0) goto bad;
  } else goto bad;
#undef IS
  return 0;
bad:
  snprintf(err, errlen, "bad lr schedule '%s' (expected const, step:S, multistep:M1,M2,.., exp, cosine[:T])", spec);
  return -1;
}

float fm_sched_factor(const FmSched *s, int epoch) {
  switch (s->kind) {
  case FM_SCHED_STEP: return powf(s->gamma, (float)(epoch / s->step_size));
  case FM_SCHED_MULTISTEP: {
    int k = 0;
    while (k < s->nmilestones && epoch >= s->milestones[k]) k++;
    return powf(s->gamma, (float)k);
  }
  case FM_SCHED_EXP: return powf(s->gamma, (float)epoch);
  case FM_SCHED_COSINE: return 0.5f * (1 + cosf(3.14159265358979f * epoch / s->t_max));
  default: return 1.0f;
  }
}
