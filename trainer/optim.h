/* optim.h - optimisers (PyTorch semantics) and learning-rate schedules.
 *
 * An optimiser updates one flat float array of parameters from a flat array of
 * gradients of the same length (fewmul carves all parameters from one
 * allocation). The array is cut into segments (one per parameter tensor); each
 * segment belongs to a parameter group with its own lr multiplier, weight
 * decay and frozen flag. State (momentum buffers, moments, ...) is kept per
 * element in flat arrays, plus a step count per segment (so a group that is
 * unfrozen later starts its bias corrections from step 1).
 *
 *   FmOptimConfig cfg;
 *   fm_optim_defaults(&cfg, FM_OPT_SGD);
 *   cfg.lr = 0.1f, cfg.momentum = 0.9f, cfg.weight_decay = 5e-4f;
 *   FmOptim *opt = fm_optim_new(&cfg, nparams, nseg);
 *   FmSched sched;
 *   fm_sched_parse(&sched, "multistep:100,150", 0.1f, epochs, err, sizeof err);
 *   for (epoch ...) {
 *     float lr = cfg.lr * fm_sched_factor(&sched, epoch);
 *     for (batch ...) { ...grads...; fm_optim_step(opt, params, grads, segs, nseg, groups, lr); }
 *   }
 *
 * (fm_net_step in net.h does the step call for a network.)
 */
#ifndef FM_TRAINER_OPTIM_H
#define FM_TRAINER_OPTIM_H
#include <stddef.h>
#include <stdint.h>

typedef enum {
  FM_OPT_SGD, FM_OPT_ADAM, FM_OPT_ADAMW, FM_OPT_RADAM, FM_OPT_ADADELTA, FM_OPT_RMSPROP,
  FM_OPT_COUNT
} FmOptimKind;

typedef struct {
  FmOptimKind kind;
  float lr;
  float weight_decay;   // L2 added to the gradient; AdamW: decoupled decay
  float momentum;       // SGD, RMSprop
  float dampening;      // SGD
  int nesterov;         // SGD
  float beta1, beta2;   // Adam, AdamW, RAdam
  float eps;            // Adam*, Adadelta, RMSprop
  float rho;            // Adadelta rho, RMSprop alpha
  int centered;         // RMSprop
} FmOptimConfig;

// A parameter group. weight_decay < 0 means "the optimiser's weight_decay".
typedef struct {
  char name[32];
  float lr_mult;
  float weight_decay;
  int frozen;           // frozen groups are not updated at all (no decay either)
} FmParamGroup;

// One parameter tensor: elements [off, off+n) of the flat arrays.
typedef struct { size_t off, n; int group; } FmOptimSeg;

typedef struct FmOptim {
  FmOptimConfig cfg;
  size_t n;             // parameters
  int nseg;
  int nstate;           // float state arrays of n elements each
  float *state;         // nstate * n floats
  int64_t *seg_step;    // steps taken per segment
} FmOptim;

// PyTorch defaults for the kind (lr: SGD 0.01, Adam* 1e-3, Adadelta 1.0, RMSprop 0.01).
void fm_optim_defaults(FmOptimConfig *c, FmOptimKind kind);
// "sgd", "adam", "adamw", "radam", "adadelta", "rmsprop"; -1 if unknown.
int fm_optim_kind_parse(const char *name);
const char *fm_optim_kind_name(FmOptimKind kind);
FmOptim *fm_optim_new(const FmOptimConfig *cfg, size_t n, int nseg);
void fm_optim_free(FmOptim *o);
// One update. lr is the current (scheduled) base learning rate; groups may be
// NULL (every segment then uses lr_mult 1, the config's weight decay).
void fm_optim_step(FmOptim *o, float *params, const float *grads, const FmOptimSeg *segs,
                   int nseg, const FmParamGroup *groups, float lr);

// ---------------------------------------------------------------------------
// Learning-rate schedules, stepped per epoch (as PyTorch's schedulers).
typedef enum { FM_SCHED_CONST, FM_SCHED_STEP, FM_SCHED_MULTISTEP, FM_SCHED_EXP, FM_SCHED_COSINE } FmSchedKind;
#define FM_SCHED_MAX_MILESTONES 16
typedef struct {
  FmSchedKind kind;
  float gamma;          // step, multistep, exp
  int step_size;        // step
  int milestones[FM_SCHED_MAX_MILESTONES], nmilestones;   // multistep (ascending)
  int t_max;            // cosine period in epochs (eta_min = 0)
} FmSched;
// spec: "const" | "step:S" | "multistep:M1,M2,..." | "exp" | "cosine" | "cosine:T".
// gamma is used by step/multistep/exp; cosine defaults T to epochs.
// Returns 0, or -1 with a message in err.
int fm_sched_parse(FmSched *s, const char *spec, float gamma, int epochs, char *err, size_t errlen);
// lr multiplier for the 0-based epoch
float fm_sched_factor(const FmSched *s, int epoch);

#endif
