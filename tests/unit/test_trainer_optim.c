/* test_trainer_optim.c - optimisers against PyTorch's update formulas,
 * minimising a quadratic, parameter groups, lr schedules.
 *
 * The reference values after 8 steps come from a direct transcription of the
 * torch.optim update rules (PyTorch 2.x docs, "Algorithm" sections) evaluated
 * in double precision, on parameters p = (1, -2) with gradients
 * g_t[i] = sin(t + i) (t = 1..8, independent of p). */
#include "check.h"
#include "optim.h"
#include <math.h>
#include <string.h>

typedef struct {
  const char *name;
  FmOptimKind kind;
  float lr, wd, momentum;
  int nesterov, centered;
  double p0, p1;   // expected after 8 steps
} RefCase;

static const RefCase refs[] = {
  {"sgd", FM_OPT_SGD, 0.1f, 0, 0, 0, 0, 0.8456909, -2.1113738},
  {"sgd momentum wd", FM_OPT_SGD, 0.1f, 0.01f, 0.9f, 0, 0, 0.4506959, -2.0956429},
  {"sgd nesterov", FM_OPT_SGD, 0.1f, 0.01f, 0.9f, 1, 0, 0.3478867, -2.1807727},
  {"adam", FM_OPT_ADAM, 0.1f, 0.01f, 0, 0, 0, 0.6774683, -2.1313870},
  {"adamw", FM_OPT_ADAMW, 0.1f, 0.1f, 0, 0, 0, 0.6229201, -1.9858780},
  {"radam", FM_OPT_RADAM, 0.1f, 0.01f, 0, 0, 0, 0.7488318, -2.0852917},   // rectified from step 6
  {"adadelta", FM_OPT_ADADELTA, 1.0f, 0.01f, 0, 0, 0, 0.9939460, -2.0038835},
  {"rmsprop", FM_OPT_RMSPROP, 0.01f, 0, 0, 0, 0, 0.8561970, -2.0819575},
  {"rmsprop centered momentum", FM_OPT_RMSPROP, 0.01f, 0.01f, 0.9f, 0, 1, 0.3130448, -2.2232485},
};

static FmOptim *make(FmOptimKind kind, float lr, float wd, float mom, int nest, int cent, size_t n, int nseg) {
  FmOptimConfig c;
  fm_optim_defaults(&c, kind);
  c.lr = lr, c.weight_decay = wd, c.momentum = mom, c.nesterov = nest, c.centered = cent;
  return fm_optim_new(&c, n, nseg);
}

static void test_reference(void) {
  for (size_t k = 0; k < sizeof refs / sizeof refs[0]; k++) {
    const RefCase *r = &refs[k];
    FmOptim *o = make(r->kind, r->lr, r->wd, r->momentum, r->nesterov, r->centered, 2, 1);
    float p[2] = {1, -2}, g[2];
    FmOptimSeg seg = {0, 2, 0};
    for (int t = 1; t <= 8; t++) {
      g[0] = sinf((float)t), g[1] = sinf((float)t + 1);
      fm_optim_step(o, p, g, &seg, 1, NULL, r->lr);
    }
    if (fabs(p[0] - r->p0) > 2e-5 || fabs(p[1] - r->p1) > 2e-5)
      fprintf(stderr, "%s: got (%.7f, %.7f) want (%.7f, %.7f)\n", r->name, p[0], p[1], r->p0, r->p1);
    CHECK_NEAR(r->p0, p[0], 2e-5);
    CHECK_NEAR(r->p1, p[1], 2e-5);
    fm_optim_free(o);
  }
}

// first steps by hand
static void test_first_steps(void) {
  FmOptimSeg seg = {0, 1, 0};
  // SGD momentum: buf = g on step 1, then buf = 0.9 buf + g
  FmOptim *o = make(FM_OPT_SGD, 0.1f, 0, 0.9f, 0, 0, 1, 1);
  float p = 1, g = 2;
  fm_optim_step(o, &p, &g, &seg, 1, NULL, 0.1f);
  CHECK_NEAR(0.8, p, 1e-6);                 // 1 - 0.1*2
  fm_optim_step(o, &p, &g, &seg, 1, NULL, 0.1f);
  CHECK_NEAR(0.8 - 0.1 * 3.8, p, 1e-6);     // buf = 0.9*2 + 2
  fm_optim_free(o);
  // Adam: the first step moves by lr * g/|g| (up to eps)
  o = make(FM_OPT_ADAM, 0.05f, 0, 0, 0, 0, 1, 1);
  p = 1, g = -3;
  fm_optim_step(o, &p, &g, &seg, 1, NULL, 0.05f);
  CHECK_NEAR(1.05, p, 1e-6);
  fm_optim_free(o);
  // AdamW: decay applies to p before the Adam step: p*(1 - lr*wd) - lr*sign(g)
  o = make(FM_OPT_ADAMW, 0.1f, 0.5f, 0, 0, 0, 1, 1);
  p = 2, g = 1;
  fm_optim_step(o, &p, &g, &seg, 1, NULL, 0.1f);
  CHECK_NEAR(2 * 0.95 - 0.1, p, 1e-6);
  fm_optim_free(o);
  // RAdam: step 1 is un-rectified SGD with momentum-corrected m = g
  o = make(FM_OPT_RADAM, 0.1f, 0, 0, 0, 0, 1, 1);
  p = 1, g = 0.5f;
  fm_optim_step(o, &p, &g, &seg, 1, NULL, 0.1f);
  CHECK_NEAR(0.95, p, 1e-6);
  fm_optim_free(o);
  // RMSprop: v = 0.01 g^2, p -= lr * g / (sqrt(v) + eps) = lr * 10 * sign(g)
  o = make(FM_OPT_RMSPROP, 0.01f, 0, 0, 0, 0, 1, 1);
  p = 0, g = 4;
  fm_optim_step(o, &p, &g, &seg, 1, NULL, 0.01f);
  CHECK_NEAR(-0.1, p, 1e-5);
  fm_optim_free(o);
  // Adadelta: delta = sqrt(eps)/sqrt(0.1 g^2 + eps) * g
  o = make(FM_OPT_ADADELTA, 1.0f, 0, 0, 0, 0, 1, 1);
  p = 0, g = 1;
  fm_optim_step(o, &p, &g, &seg, 1, NULL, 1.0f);
  CHECK_NEAR(-sqrt(1e-6) / sqrt(0.1 + 1e-6), p, 1e-8);
  fm_optim_free(o);
}

// every optimiser drives f(p) = 0.5 sum a_i (p_i - c_i)^2 towards 0
static double quad(const float *p, float *g) {
  static const float a[4] = {1, 4, 0.5f, 2}, c[4] = {3, -1, 2, 0.5f};
  double f = 0;
  for (int i = 0; i < 4; i++) {
    float d = p[i] - c[i];
    f += 0.5 * a[i] * d * d;
    if (g) g[i] = a[i] * d;
  }
  return f;
}

static void test_quadratic(void) {
  struct { FmOptimKind k; float lr, mom; int steps; } cases[] = {
    {FM_OPT_SGD, 0.1f, 0.9f, 300}, {FM_OPT_ADAM, 0.05f, 0, 1000}, {FM_OPT_ADAMW, 0.05f, 0, 1000},
    {FM_OPT_RADAM, 0.05f, 0, 1000}, {FM_OPT_ADADELTA, 1.0f, 0, 3000}, {FM_OPT_RMSPROP, 0.01f, 0, 1000},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    FmOptim *o = make(cases[k].k, cases[k].lr, 0, cases[k].mom, 0, 0, 4, 1);
    float p[4] = {0, 0, 0, 0}, g[4];
    FmOptimSeg seg = {0, 4, 0};
    double f0 = quad(p, NULL);
    for (int t = 0; t < cases[k].steps; t++) {
      quad(p, g);
      fm_optim_step(o, p, g, &seg, 1, NULL, cases[k].lr);
    }
    double f1 = quad(p, NULL);
    if (!(f1 < 1e-3 * f0)) fprintf(stderr, "%s: quadratic %g -> %g\n", fm_optim_kind_name(cases[k].k), f0, f1);
    CHECK(f1 < 1e-3 * f0);
    fm_optim_free(o);
  }
}

// per-group lr multiplier, weight decay and frozen flag
static void test_groups(void) {
  FmParamGroup groups[3] = {{"default", 1, -1, 0}, {"half", 0.5f, 0, 0}, {"frozen", 1, -1, 1}};
  FmOptimSeg segs[3] = {{0, 1, 0}, {1, 1, 1}, {2, 1, 2}};
  FmOptim *o = make(FM_OPT_SGD, 0.1f, 0.1f, 0, 0, 0, 3, 3);
  float p[3] = {1, 1, 1}, g[3] = {1, 1, 1};
  fm_optim_step(o, p, g, segs, 3, groups, 0.1f);
  CHECK_NEAR(1 - 0.1 * (1 + 0.1), p[0], 1e-6);   // default: optimiser weight decay 0.1
  CHECK_NEAR(1 - 0.05 * 1, p[1], 1e-6);          // lr x0.5, weight decay 0
  CHECK(p[2] == 1);                              // frozen
  CHECK(o->seg_step[2] == 0 && o->seg_step[0] == 1);
  fm_optim_free(o);
}

static void test_schedules(void) {
  FmSched s;
  char err[200];
  CHECK(fm_sched_parse(&s, "multistep:100,150", 0.1f, 200, err, sizeof err) == 0);
  CHECK_NEAR(1, fm_sched_factor(&s, 99), 1e-7);
  CHECK_NEAR(0.1, fm_sched_factor(&s, 100), 1e-7);
  CHECK_NEAR(0.01, fm_sched_factor(&s, 150), 1e-8);
  CHECK(fm_sched_parse(&s, "step:30", 0.5f, 100, err, sizeof err) == 0);
  CHECK_NEAR(1, fm_sched_factor(&s, 29), 1e-7);
  CHECK_NEAR(0.25, fm_sched_factor(&s, 60), 1e-7);
  CHECK(fm_sched_parse(&s, "exp", 0.9f, 10, err, sizeof err) == 0);
  CHECK_NEAR(0.81, fm_sched_factor(&s, 2), 1e-6);
  CHECK(fm_sched_parse(&s, "cosine", 0, 10, err, sizeof err) == 0);
  CHECK_NEAR(1, fm_sched_factor(&s, 0), 1e-7);
  CHECK_NEAR(0.5, fm_sched_factor(&s, 5), 1e-6);
  CHECK_NEAR(0, fm_sched_factor(&s, 10), 1e-6);
  CHECK(fm_sched_parse(&s, "const", 0, 10, err, sizeof err) == 0 && fm_sched_factor(&s, 7) == 1);
  CHECK(fm_sched_parse(&s, "multistep:150,100", 0.1f, 10, err, sizeof err) == -1);
  CHECK(strstr(err, "multistep:150,100") != NULL);
  CHECK(fm_sched_parse(&s, "warmup", 0.1f, 10, err, sizeof err) == -1);
  CHECK(fm_sched_parse(&s, "step:x", 0.1f, 10, err, sizeof err) == -1);
  CHECK(fm_optim_kind_parse("adamw") == FM_OPT_ADAMW && fm_optim_kind_parse("lion") == -1);
}

int main(void) {
  test_reference();
  test_first_steps();
  test_quadratic();
  test_groups();
  test_schedules();
  return check_done("test_trainer_optim");
}
