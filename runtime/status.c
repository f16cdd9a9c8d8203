/* status.c - status codes and the per-thread error message of the runtime. */
#include "fewmul.h"
#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[1024];

const char *fm_last_error(void) { return last_error; }

/* Records a message for fm_last_error() and returns s, so callers can
   `return fm_rt_fail(FM_ERR_IO, "cannot open '%s'", path);`. */
fm_status fm_rt_fail(fm_status s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  return s;
}

const char *fm_status_str(fm_status s) {
  switch (s) {
  case FM_OK: return "ok";
  case FM_ERR_IO: return "i/o error";
  case FM_ERR_FORMAT: return "bad model format";
  case FM_ERR_ARG: return "invalid argument";
  case FM_ERR_NOMEM: return "out of memory";
  case FM_ERR_RUN: return "model run failed";
  case FM_ERR_NO_DEVICE: return "no such device";
  case FM_ERR_DEVICE_BUILD: return "device program build failed";
  case FM_ERR_DEVICE_MEMORY: return "out of device memory";
  case FM_ERR_DEVICE: return "device error";
  }
  return "unknown status";
}
