/* models.h - the model registry: every model the trainer can build by name.
 *
 *   FmNetOpts o = fm_net_opts_default();
 *   o.nmean = 1, o.mean[0] = 0.2860f, o.std[0] = 0.3530f;    // Fashion-MNIST
 *   char err[256];
 *   FmNet *net = fm_model_build("resnet20", 1, 28, 28, 10, &o, err, sizeof err);
 *   if (!net) { fprintf(stderr, "fewmul: %s\n", err); exit(1); }
 *
 * fm_model_build creates the net for inputs (C,H,W), adds the fixed input
 * normalisation layer (mean/std from opts; identity when opts->nmean == 0) so
 * the model takes pixels in [0,1], calls the model function, and finishes the
 * net. A model function adds its layers after tensor x and returns the logits
 * tensor (classes wide).
 *
 * Adding a model: write models/<name>.c with one function
 *   int fm_model_<name>(FmNet *net, int x, int classes, const FmNetOpts *opts);
 * declare it below and add one line to fm_models[] in models/registry.c.
 */
#ifndef FM_MODELS_H
#define FM_MODELS_H
#include <stddef.h>
#include "net.h"

typedef int (*FmModelFn)(FmNet *net, int x, int classes, const FmNetOpts *opts);
typedef struct {
  const char *name;
  FmModelFn build;
  const char *help;
} FmModelEntry;

extern const FmModelEntry fm_models[];   // ends with {NULL, NULL, NULL}

const FmModelEntry *fm_model_find(const char *name);
// Returns NULL with a message in err for an unknown name or a bad shape.
FmNet *fm_model_build(const char *name, int c, int h, int w, int classes, const FmNetOpts *opts,
                      char *err, size_t errlen);

// models/mnist_cnn.c
int fm_model_mnist_cnn(FmNet *net, int x, int classes, const FmNetOpts *opts);
// models/mlp.c
int fm_model_mlp(FmNet *net, int x, int classes, const FmNetOpts *opts);
// models/resnet_cifar.c (He et al. 2016, 6n+2 layers)
int fm_model_resnet20(FmNet *net, int x, int classes, const FmNetOpts *opts);
int fm_model_resnet32(FmNet *net, int x, int classes, const FmNetOpts *opts);
int fm_model_resnet56(FmNet *net, int x, int classes, const FmNetOpts *opts);
int fm_model_resnet110(FmNet *net, int x, int classes, const FmNetOpts *opts);
int fm_model_resnet_cifar(FmNet *net, int x, int classes, int depth, int width);
// models/sp_resnet.c (StrassenNets SP layers, trainer/method_sp.h)
int fm_model_sp_resnet20(FmNet *net, int x, int classes, const FmNetOpts *opts);
int fm_model_sp_mlp(FmNet *net, int x, int classes, const FmNetOpts *opts);
// models/shiftresnet.c (ShiftNet conv1x1-shift-conv1x1 blocks, trainer/method_shift.h)
int fm_model_shiftresnet20(FmNet *net, int x, int classes, const FmNetOpts *opts);
int fm_model_shiftresnet56(FmNet *net, int x, int classes, const FmNetOpts *opts);
// models/resnet18.c
int fm_model_resnet18(FmNet *net, int x, int classes, const FmNetOpts *opts);
// shared blocks (models/resnet_cifar.c): conv3x3 -> BN (-> relu)
int fm_model_conv_bn(FmNet *net, int x, int cout, int k, int stride, int pad, int relu);

#endif
