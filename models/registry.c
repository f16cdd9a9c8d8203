/* registry.c - the table of models buildable by name, and fm_model_build. */
#include "models.h"
#include <stdio.h>
#include <string.h>

const FmModelEntry fm_models[] = {
  {"mnist_cnn", fm_model_mnist_cnn, "2 conv + 2 fc (Keras mnist_cnn)"},
  {"mlp", fm_model_mlp, "784-512-512-10 MLP, relu, dropout 0.2"},
  {"resnet20", fm_model_resnet20, "CIFAR ResNet-20 (16/32/64 channels)"},
  {"resnet32", fm_model_resnet32, "CIFAR ResNet-32"},
  {"resnet56", fm_model_resnet56, "CIFAR ResNet-56"},
  {"resnet110", fm_model_resnet110, "CIFAR ResNet-110"},
  {"resnet18", fm_model_resnet18, "CIFAR ResNet-18, width multiplier, max-pool downsampling"},
  {"sp_resnet20", fm_model_sp_resnet20, "ResNet-20 of StrassenNets SP convs (r = c_out, --sp-r/--sp-patch), dense fc"},
  {"sp_mlp", fm_model_sp_mlp, "the mlp with SP linears (r = --sp-r x 512), dense last layer"},
  {"shiftresnet20", fm_model_shiftresnet20, "ResNet-20 of conv1x1-shift-conv1x1 blocks (ShiftNet, --expansion E)"},
  {"shiftresnet56", fm_model_shiftresnet56, "ResNet-56 of conv1x1-shift-conv1x1 blocks (ShiftNet, --expansion E)"},
  {NULL, NULL, NULL},
};

const FmModelEntry *fm_model_find(const char *name) {
  for (const FmModelEntry *e = fm_models; e->name; e++)
    if (strcmp(e->name, name) == 0) return e;
  return NULL;
}

FmNet *fm_model_build(const char *name, int c, int h, int w, int classes, const FmNetOpts *opts,
                      char *err, size_t errlen) {
  FmNetOpts dflt = fm_net_opts_default();
  if (!opts) opts = &dflt;
  const FmModelEntry *e = fm_model_find(name);
  if (!e) {
    int n = snprintf(err, errlen, "unknown model '%s' (known:", name);
    for (const FmModelEntry *k = fm_models; k->name && n > 0 && (size_t)n < errlen; k++)
      n += snprintf(err + n, errlen - n, " %s", k->name);
    if (n > 0 && (size_t)n < errlen) snprintf(err + n, errlen - n, ")");
    return NULL;
  }
  if (classes < 2) { snprintf(err, errlen, "model %s: need at least 2 classes, got %d", name, classes); return NULL; }
  if (opts->nmean && opts->nmean != c) {
    snprintf(err, errlen, "model %s: normalisation has %d channels, input has %d", name, opts->nmean, c);
    return NULL;
  }
  FmNet *net = fm_net_new(c, h, w, opts);
  if (!net) { snprintf(err, errlen, "out of memory"); return NULL; }
  snprintf(net->model, sizeof net->model, "%s", name);
  int x = fm_net_normalize(net, net->input, opts->nmean ? opts->mean : NULL, opts->nmean ? opts->std : NULL);
  int out = e->build(net, x, classes, opts);
  if (fm_net_finish(net, out)) {
    snprintf(err, errlen, "model %s for input %dx%dx%d: %s", name, c, h, w,
             net->err[0] ? net->err : "build failed");
    fm_net_free(net);
    return NULL;
  }
  return net;
}
