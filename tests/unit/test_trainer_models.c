/* test_trainer_models.c - every registered model builds for 1x28x28 and
 * 3x32x32 inputs and any class count, has the published parameter count,
 * runs forward/backward, and the layer iteration API describes it. */
#include "check.h"
#include "models.h"
#include <stdlib.h>
#include <string.h>

static size_t nparams(const FmNet *net) {
  size_t n = 0;
  for (int i = 0; i < net->nparams; i++) n += net->params[i].size;
  return n;
}

static float *images(int n, int c, int h, int w) {
  FmRng r;
  fm_rng_seed(&r, 5);
  float *x = malloc(sizeof(float) * n * c * h * w);
  for (int i = 0; i < n * c * h * w; i++) x[i] = fm_rng_uniform(&r);
  return x;
}

static void test_all_models(void) {
  static const int shapes[2][3] = {{1, 28, 28}, {3, 32, 32}};
  for (const FmModelEntry *e = fm_models; e->name; e++)
    for (int s = 0; s < 2; s++) {
      int c = shapes[s][0], h = shapes[s][1], w = shapes[s][2], classes = s ? 10 : 7;
      FmNetOpts o = fm_net_opts_default();
      o.width = 0.25f, o.threads = 1;   // keeps resnet18 fast here
      char err[256] = "";
      FmNet *net = fm_model_build(e->name, c, h, w, classes, &o, err, sizeof err);
      if (!net) fprintf(stderr, "%s %dx%dx%d: %s\n", e->name, c, h, w, err);
      CHECK(net != NULL);
      if (!net) continue;
      CHECK(fm_net_num_classes(net) == classes);
      CHECK(net->layers[0].kind == FM_LAYER_NORMALIZE);
      // one forward/backward step on a batch of 2 gives finite numbers
      int n = 2, labels[2] = {0, 1};
      float *x = images(n, c, h, w);
      float *out = fm_net_forward(net, x, n, 1);
      CHECK(out != NULL);
      fm_net_zero_grad(net);
      float loss = fm_net_loss(net, labels, n, NULL);
      fm_net_backward(net);
      int finite = isfinite(loss);
      for (size_t i = 0; i < net->nparam_floats; i++) finite &= isfinite(net->grad_data[i]);
      CHECK(finite);
      free(x);
      fm_net_free(net);
    }
}

static void test_param_counts(void) {
  char err[256];
  FmNet *net = fm_model_build("mnist_cnn", 1, 28, 28, 10, NULL, err, sizeof err);
  CHECK(net && nparams(net) == 1199882);   // Keras mnist_cnn summary
  // layer iteration: kinds in order, parameter slots and shapes
  static const FmLayerKind kinds[] = {
    FM_LAYER_NORMALIZE, FM_LAYER_CONV2D, FM_LAYER_RELU, FM_LAYER_CONV2D, FM_LAYER_RELU,
    FM_LAYER_MAXPOOL, FM_LAYER_DROPOUT, FM_LAYER_FLATTEN, FM_LAYER_LINEAR, FM_LAYER_RELU,
    FM_LAYER_DROPOUT, FM_LAYER_LINEAR};
  CHECK(net->nlayers == (int)(sizeof kinds / sizeof kinds[0]));
  for (int i = 0; i < net->nlayers && i < (int)(sizeof kinds / sizeof kinds[0]); i++) CHECK(net->layers[i].kind == kinds[i]);
  const FmLayer *conv2 = &net->layers[3];
  const FmParam *w = fm_layer_param(net, conv2, 0), *b = fm_layer_param(net, conv2, 1);
  CHECK(w && w->ndim == 4 && w->shape[0] == 64 && w->shape[1] == 32 && w->shape[2] == 3 && w->shape[3] == 3);
  CHECK(b && b->size == 64);
  CHECK(strcmp(fm_layer_kind_name(conv2->kind), "conv2d") == 0);
  CHECK(net->tensors[conv2->out].c == 64 && net->tensors[conv2->out].h == 24);
  CHECK(net->tensors[net->layers[7].out].flat && net->tensors[net->layers[7].out].c == 9216);
  CHECK(fm_layer_buf(net, &net->layers[0], 0) != NULL && fm_layer_param(net, &net->layers[0], 0) == NULL);
  fm_net_free(net);

  net = fm_model_build("mlp", 1, 28, 28, 10, NULL, err, sizeof err);
  CHECK(net && nparams(net) == 669706);    // Keras mnist_mlp summary
  fm_net_free(net);

  // CIFAR ResNet-20: 269,722 with identity shortcuts + 2 projections (1x1 conv + BN)
  net = fm_model_build("resnet20", 3, 32, 32, 10, NULL, err, sizeof err);
  CHECK(net && nparams(net) == 269722 + (16 * 32 + 64) + (32 * 64 + 128));
  const FmLayer *last = &net->layers[net->nlayers - 1];
  CHECK(last->kind == FM_LAYER_LINEAR && net->layers[net->nlayers - 2].kind == FM_LAYER_GLOBAL_AVGPOOL);
  int bn = 0, conv = 0, add = 0;
  for (int i = 0; i < net->nlayers; i++) {
    bn += net->layers[i].kind == FM_LAYER_BATCHNORM;
    conv += net->layers[i].kind == FM_LAYER_CONV2D;
    add += net->layers[i].kind == FM_LAYER_ADD;
    if (net->layers[i].kind == FM_LAYER_BATCHNORM) {
      const FmParam *rv = fm_layer_buf(net, &net->layers[i], 1);
      CHECK(rv && strstr(rv->name, "running_var") && rv->data[0] == 1.0f);
    }
  }
  CHECK(conv == 21 && bn == 21 && add == 9);
  fm_net_free(net);

  net = fm_model_build("resnet56", 3, 32, 32, 100, NULL, err, sizeof err);
  CHECK(net && fm_net_num_classes(net) == 100);
  fm_net_free(net);

  // resnet18 width 1: no stride-2 3x3 conv; stages end at 4x4
  net = fm_model_build("resnet18", 3, 32, 32, 10, NULL, err, sizeof err);
  CHECK(net != NULL);
  int pools = 0, strided = 0;
  for (int i = 0; net && i < net->nlayers; i++) {
    const FmLayer *l = &net->layers[i];
    pools += l->kind == FM_LAYER_MAXPOOL;
    strided += l->kind == FM_LAYER_CONV2D && l->a.conv.sh != 1;
  }
  CHECK(pools == 3 && strided == 0);
  CHECK(net && net->tensors[net->layers[1].out].c == 32);
  fm_net_free(net);
  FmNetOpts o = fm_net_opts_default();
  o.width = 0.5f;
  net = fm_model_build("resnet18", 3, 32, 32, 10, &o, err, sizeof err);
  CHECK(net && net->tensors[net->layers[1].out].c == 16);
  CHECK(net && net->tensors[net->layers[net->nlayers - 2].out].c == 256);
  fm_net_free(net);
}

static void test_errors(void) {
  char err[256] = "";
  CHECK(fm_model_build("nope", 1, 28, 28, 10, NULL, err, sizeof err) == NULL);
  CHECK(strstr(err, "unknown model 'nope'") && strstr(err, "resnet20"));
  CHECK(fm_model_build("mnist_cnn", 1, 4, 4, 10, NULL, err, sizeof err) == NULL);
  CHECK(strstr(err, "mnist_cnn") && strstr(err, "too small"));
  FmNetOpts o = fm_net_opts_default();
  o.nmean = 3;
  CHECK(fm_model_build("mlp", 1, 28, 28, 10, &o, err, sizeof err) == NULL);
  CHECK(strstr(err, "channels") != NULL);
}

// the normalisation layer is part of the model: out = (x - mean) / std
static void test_normalize(void) {
  FmNetOpts o = fm_net_opts_default();
  o.nmean = 3;
  float mean[3] = {0.5f, 0.4f, 0.3f}, std[3] = {0.2f, 0.25f, 0.5f};
  memcpy(o.mean, mean, sizeof mean), memcpy(o.std, std, sizeof std);
  char err[256];
  FmNet *net = fm_model_build("resnet20", 3, 32, 32, 10, &o, err, sizeof err);
  CHECK(net != NULL);
  float *x = images(1, 3, 32, 32);
  fm_net_forward(net, x, 1, 0);
  const float *y = net->tensors[net->layers[0].out].data;
  CHECK_NEAR((x[0] - 0.5f) / 0.2f, y[0], 1e-5);
  CHECK_NEAR((x[2048 + 5] - 0.3f) / 0.5f, y[2048 + 5], 1e-5);
  const FmParam *m = fm_layer_buf(net, &net->layers[0], 0);
  CHECK(m && m->size == 3 && m->data[1] == 0.4f);
  free(x);
  fm_net_free(net);
}

int main(void) {
  test_all_models();
  test_param_counts();
  test_errors();
  test_normalize();
  return check_done("test_trainer_models");
}
