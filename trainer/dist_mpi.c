/* dist_mpi.c - the transport of dist.h over MPI (built when CMake finds MPI).
 * The job is joined only when mpirun (or another PMI launcher) started us, so a
 * plain `fewmul train` never initialises MPI. Errors in MPI are fatal: a rank that
 * dies ends the job with a non-zero status. */
#include "dist.h"
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

struct FmComm {
  int active;          // MPI_Init was called
  MPI_Request *req;
  int nreq;
};

int fm_dist_built_with_mpi(void) { return 1; }

static int launched_by_mpirun(void) {
  static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK", "MV2_COMM_WORLD_SIZE"};
  for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
    if (getenv(vars[i])) return 1;
  return 0;
}

FmComm *fm_comm_init(int *rank, int *size, char *err, size_t errlen) {
  FmComm *c = calloc(1, sizeof *c);
  if (!c) { snprintf(err, errlen, "out of memory"); return NULL; }
  *rank = 0, *size = 1;
  if (!launched_by_mpirun()) return c;
  int provided;
  if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    snprintf(err, errlen, "MPI_Init failed");
    free(c);
    return NULL;
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
  MPI_Comm_rank(MPI_COMM_WORLD, rank);
  MPI_Comm_size(MPI_COMM_WORLD, size);
  c->active = 1;
  return c;
}

void fm_comm_finalize(FmComm *c) {
  if (!c) return;
  if (c->active) MPI_Finalize();
  free(c->req);
  free(c);
}

double fm_comm_time(void) { return MPI_Wtime(); }

// a free request slot (MPI_REQUEST_NULL) or a new one
static int slot(FmComm *c) {
  for (int i = 0; i < c->nreq; i++)
    if (c->req[i] == MPI_REQUEST_NULL) return i;
  MPI_Request *r = realloc(c->req, sizeof *r * (size_t)(c->nreq + 8));
  if (!r) fm_comm_abort(c, 1);
  c->req = r;
  for (int i = c->nreq; i < c->nreq + 8; i++) r[i] = MPI_REQUEST_NULL;
  c->nreq += 8;
  return c->nreq - 8;
}

int fm_comm_isum_f32(FmComm *c, float *buf, size_t n) {
  if (!c->active) return -1;
  if (n > INT_MAX) fm_comm_abort(c, 1);   // buckets are far smaller
  int s = slot(c);
  MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &c->req[s]);
  return s;
}

int fm_comm_isum_f64(FmComm *c, double *buf, int n) {
  if (!c->active) return -1;
  int s = slot(c);
  MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &c->req[s]);
  return s;
}

int fm_comm_test(FmComm *c, int req) {
  if (req < 0) return 1;
  int done = 0;
  MPI_Test(&c->req[req], &done, MPI_STATUS_IGNORE);
  return done;
}

void fm_comm_wait(FmComm *c, int req) {
  if (req >= 0) MPI_Wait(&c->req[req], MPI_STATUS_IGNORE);
}

void fm_comm_sum_f64(FmComm *c, double *buf, int n) {
  if (c->active) MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

uint64_t fm_comm_max_u64(FmComm *c, uint64_t x) {
  unsigned long long v = x;
  if (c->active) MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
  return v;
}

void fm_comm_barrier(FmComm *c) {
  if (c->active) MPI_Barrier(MPI_COMM_WORLD);
}

_Noreturn void fm_comm_abort(FmComm *c, int code) {
  fflush(stdout), fflush(stderr);
  if (c && c->active) MPI_Abort(MPI_COMM_WORLD, code);
  exit(code);
}
