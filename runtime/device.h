/* device.h - internal: the device state of a loaded model (runtime.c holds it,
 * device.c uses it). */
#ifndef FM_RT_DEVICE_H
#define FM_RT_DEVICE_H
#include "fewmul.h"
typedef struct FmRtDevice {
  const fm_device_desc *dev; /* from fewmul_device(); NULL for CPU models */
  int index;
  char text[320];
} FmRtDevice;
FmRtDevice *fm_rt_device(const fm_model *m);              /* runtime.c */
fm_status fm_rt_device_status(fm_model *m, int rc);       /* device.c */
const fm_model_desc *fm_rt_desc(const fm_model *m);       /* runtime.c */
#endif
