/* gradcheck.h - finite-difference checks of a trainer network's parameter gradients,
 * shared by the method tests (test_sp.c, test_winograd.c, test_shift.c).
 *
 *   GcResult r = gc_params(net, x, R, n, 12, NULL, "conv 3x3", 2e-2);
 *   CHECK(r.checked > 20 && r.worst < 2e-2);
 *
 * L = sum(y * R) over the output y of a train-mode forward of x (n samples). The
 * gradient fm_net_backward gives is compared with central differences (eps 1e-2) on up
 * to `per_param` entries of every parameter outside frozen groups; the error of an
 * entry is |fd - an| / max(1, |fd|, |an|). Entries above report_tol (0: never) are
 * printed with the label. count_if (may be NULL) counts the checked entries of the
 * parameters it accepts (e.g. the learned Winograd transforms).
 */
#ifndef FM_GRADCHECK_H
#define FM_GRADCHECK_H
#include "net.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct { int checked, counted; double worst; } GcResult;

static double gc_loss(FmNet *net, const float *x, const float *R, int n) {
  const float *y = fm_net_forward(net, x, n, 1);
  size_t sz = net->tensors[net->output].size * (size_t)n;
  double L = 0;
  for (size_t i = 0; i < sz; i++) L += (double)y[i] * R[i];
  return L;
}

static GcResult gc_params(FmNet *net, const float *x, const float *R, int n, int per_param,
                          int (*count_if)(const FmParam *), const char *label, double report_tol) {
  size_t ys = net->tensors[net->output].size * (size_t)n;
  fm_net_zero_grad(net);
  fm_net_forward(net, x, n, 1);
  fm_net_zero_act_grad(net);
  memcpy(net->tensors[net->output].grad, R, sizeof(float) * ys);
  fm_net_backward(net);
  GcResult r = {0, 0, 0};
  for (int pi = 0; pi < net->nparams; pi++) {
    FmParam *p = &net->params[pi];
    if (net->groups[p->group].frozen) continue;
    int counted = count_if && count_if(p);
    size_t stride = p->size > (size_t)per_param ? p->size / (size_t)per_param : 1;
    for (size_t i = 0; i < p->size; i += stride) {
      float keep = p->data[i];
      const float eps = 1e-2f;
      p->data[i] = keep + eps;
      double lp = gc_loss(net, x, R, n);
      p->data[i] = keep - eps;
      double lm = gc_loss(net, x, R, n);
      p->data[i] = keep;
      double fd = (lp - lm) / (2 * eps), an = p->grad[i];
      double rel = fabs(fd - an) / fmax(1.0, fmax(fabs(fd), fabs(an)));
      if (rel > r.worst) r.worst = rel;
      if (report_tol > 0 && rel > report_tol)
        fprintf(stderr, "%s: %s[%zu]: fd %g analytic %g\n", label, p->name, i, fd, an);
      r.checked++, r.counted += counted;
    }
  }
  return r;
}
#endif
