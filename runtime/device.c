/* device.c - the device notion of the runtime: models compiled with --emit opencl or
 * --emit cuda export fewmul_device() next to fewmul_model(); this file selects their
 * device, initialises it once, maps their status codes to fm_status and reports the
 * kernel time of profiled runs. Models for the CPU run on "cpu" only.
 */
#include "fewmul.h"
#include "device.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

fm_status fm_rt_fail(fm_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Status codes of the generated device host code (backend_opencl.c, backend_cuda.c). */
fm_status fm_rt_device_status(fm_model *m, int rc) {
  const fm_device_desc *dev = fm_rt_device(m)->dev;
  const char *msg = dev->error ? dev->error() : "";
  const char *what = fm_rt_desc(m)->name ? fm_rt_desc(m)->name : "?";
  switch (rc) {
  case 1: return fm_rt_fail(FM_ERR_ARG, "model '%s': invalid arguments", what);
  case 2: return fm_rt_fail(FM_ERR_FORMAT, "model '%s': %s", what, msg);
  case 3: return fm_rt_fail(FM_ERR_NO_DEVICE, "%s", msg);
  case 4: return fm_rt_fail(FM_ERR_DEVICE_BUILD, "%s", msg);
  case 5: return fm_rt_fail(FM_ERR_DEVICE_MEMORY, "%s", msg);
  case 6: return fm_rt_fail(FM_ERR_DEVICE, "%s", msg);
  default: return fm_rt_fail(FM_ERR_RUN, "model '%s' failed with status %d: %s", what, rc, msg);
  }
}

fm_status fm_set_device(fm_model *m, const char *device) {
  if (!m || !device) return fm_rt_fail(FM_ERR_ARG, "fm_set_device: NULL argument");
  FmRtDevice *d = fm_rt_device(m);
  const char *api = d->dev ? d->dev->api : "cpu", *name = fm_rt_desc(m)->name;
  size_t n = strcspn(device, ":");
  if (strlen(api) != n || strncmp(api, device, n) != 0)
    return fm_rt_fail(FM_ERR_DEVICE, "model '%s' was compiled for %s, not for device '%s'%s",
                      name ? name : "?", api, device,
                      strcmp(api, "cpu") ? "" : " (compile it with --emit opencl or --emit cuda)");
  if (!d->dev) {
    if (device[n]) return fm_rt_fail(FM_ERR_NO_DEVICE, "device '%s': the CPU takes no index", device);
    return FM_OK;
  }
  int index = 0;
  if (device[n]) {
    char *end;
    long v = strtol(device + n + 1, &end, 10);
    if (end == device + n + 1 || *end || v < 0 || v > 1024)
      return fm_rt_fail(FM_ERR_ARG, "device '%s': expected %s:INDEX", device, api);
    index = (int)v;
  }
  if (d->dev->select(index) != 0) return fm_rt_fail(FM_ERR_NO_DEVICE, "device '%s': bad index", device);
  d->index = index;
  int rc = d->dev->init();
  return rc ? fm_rt_device_status(m, rc) : FM_OK;
}

const char *fm_device(const fm_model *m) {
  if (!m) return "";
  FmRtDevice *d = fm_rt_device(m);
  if (!d->dev) return "cpu";
  const char *name = d->dev->device_name ? d->dev->device_name() : "";
  if (name && *name) snprintf(d->text, sizeof d->text, "%s:%d (%s)", d->dev->api, d->index, name);
  else snprintf(d->text, sizeof d->text, "%s:%d", d->dev->api, d->index);
  return d->text;
}

fm_status fm_set_profiling(fm_model *m, int on) {
  if (!m) return fm_rt_fail(FM_ERR_ARG, "fm_set_profiling: NULL model");
  FmRtDevice *d = fm_rt_device(m);
  if (!d->dev) return fm_rt_fail(FM_ERR_ARG, "fm_set_profiling: the model runs on the CPU");
  d->dev->set_profiling(on);
  return FM_OK;
}

fm_status fm_kernel_ms(const fm_model *m, double *ms) {
  if (!m || !ms) return fm_rt_fail(FM_ERR_ARG, "fm_kernel_ms: NULL argument");
  FmRtDevice *d = fm_rt_device(m);
  if (!d->dev) return fm_rt_fail(FM_ERR_ARG, "fm_kernel_ms: the model runs on the CPU");
  *ms = d->dev->kernel_ms();
  return FM_OK;
}
