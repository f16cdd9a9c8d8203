/* test_trainer_train.c - models learn a small synthetic separable problem.
 *
 * Class k of 4 is a bright 8x8 square in quadrant k of a noisy 28x28 image.
 * mnist_cnn (with dropout) trains with SGD+momentum; the mean loss of the
 * last steps must be well below the first steps' and held-out accuracy high.
 * resnet20 (BN, residual adds) must also reduce its loss on the same data. */
#include "check.h"
#include "models.h"
#include <stdlib.h>
#include <string.h>

#define HW 28
#define CLASSES 4

static void make_data(float *x, int *y, int n, uint64_t seed) {
  FmRng r;
  fm_rng_seed(&r, seed);
  for (int i = 0; i < n; i++) {
    int k = (int)(fm_rng_next(&r) % CLASSES);
    y[i] = k;
    float *img = x + (size_t)i * HW * HW;
    for (int p = 0; p < HW * HW; p++) img[p] = 0.3f * fm_rng_uniform(&r);
    int oy = (k / 2) * 14 + 3 + (int)(fm_rng_next(&r) % 3), ox = (k % 2) * 14 + 3 + (int)(fm_rng_next(&r) % 3);
    for (int a = 0; a < 8; a++)
      for (int b = 0; b < 8; b++) img[(oy + a) * HW + ox + b] = 0.7f + 0.3f * fm_rng_uniform(&r);
  }
}

static void train(const char *model, int steps, int batch, float lr, float min_drop, float min_acc) {
  int ntrain = steps * batch, ntest = 128;
  float *x = malloc(sizeof(float) * (size_t)ntrain * HW * HW), *xt = malloc(sizeof(float) * ntest * HW * HW);
  int *y = malloc(sizeof(int) * ntrain), *yt = malloc(sizeof(int) * ntest);
  make_data(x, y, ntrain, 1);
  make_data(xt, yt, ntest, 2);
  FmNetOpts o = fm_net_opts_default();
  o.seed = 11, o.threads = 1;   // fast and robust on a busy 2-core machine
  char err[256];
  FmNet *net = fm_model_build(model, 1, HW, HW, CLASSES, &o, err, sizeof err);
  CHECK(net != NULL);
  if (!net) return;
  FmOptimConfig cfg;
  fm_optim_defaults(&cfg, FM_OPT_SGD);
  cfg.lr = lr, cfg.momentum = 0.9f;
  FmOptim *opt = fm_net_optim_new(net, &cfg);
  float first = 0, last = 0;
  int k = steps / 4;
  for (int s = 0; s < steps; s++) {
    fm_net_zero_grad(net);
    fm_net_forward(net, x + (size_t)s * batch * HW * HW, batch, 1);
    float loss = fm_net_loss(net, y + s * batch, batch, NULL);
    fm_net_backward(net);
    fm_net_step(net, opt, cfg.lr);
    if (s < k) first += loss / k;
    if (s >= steps - k) last += loss / k;
  }
  float tl, acc;
  fm_net_eval(net, xt, yt, ntest, 50, &tl, &acc);
  printf("%s: loss %.3f -> %.3f, held-out loss %.3f accuracy %.3f\n", model, first, last, tl, acc);
  CHECK(last < min_drop * first);
  CHECK(acc >= min_acc);
  fm_optim_free(opt);
  fm_net_free(net);
  free(x), free(xt), free(y), free(yt);
}

int main(void) {
  train("mnist_cnn", 24, 16, 0.02f, 0.5f, 0.9f);
  train("resnet20", 10, 12, 0.05f, 0.7f, 0.0f);   // BN running stats are still warming up: no accuracy bar
  return check_done("test_trainer_train");
}
