/* dist_none.c - the transport of dist.h in a build without MPI: one rank, and
 * every collective is the identity. */
#include "dist.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct FmComm { int unused; };

int fm_dist_built_with_mpi(void) { return 0; }

FmComm *fm_comm_init(int *rank, int *size, char *err, size_t errlen) {
  FmComm *c = calloc(1, sizeof *c);
  if (!c) snprintf(err, errlen, "out of memory");
  *rank = 0, *size = 1;
  return c;
}
void fm_comm_finalize(FmComm *c) { free(c); }
double fm_comm_time(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
int fm_comm_isum_f32(FmComm *c, float *buf, size_t n) { return -1; }
int fm_comm_isum_f64(FmComm *c, double *buf, int n) { return -1; }
int fm_comm_test(FmComm *c, int req) { return 1; }
void fm_comm_wait(FmComm *c, int req) {}
void fm_comm_sum_f64(FmComm *c, double *buf, int n) {}
uint64_t fm_comm_max_u64(FmComm *c, uint64_t x) { return x; }
void fm_comm_barrier(FmComm *c) {}
_Noreturn void fm_comm_abort(FmComm *c, int code) {
  fflush(stdout), fflush(stderr);
  exit(code);
}
