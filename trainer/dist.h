/* dist.h - data-parallel training over MPI (docs/DISTRIBUTED.md).
 *
 *   mpirun -np 4 fewmul train --model resnet20 --data cifar10 ... --batch 128
 *
 * Every process (rank) builds the same net from the same seed, reads its share of
 * each global batch (data.h: FmLoaderConfig.rank/nranks) and computes gradients
 * on it; fm_net_loss divides by the global batch (net->loss_batch), so the sum of
 * the ranks' gradients is the gradient one process computes on the whole batch.
 * The sum is taken on the one gradient allocation (net->grad_data), in buckets:
 * contiguous float ranges of about bucket_bytes, formed in backward order, each
 * started with a non-blocking allreduce as soon as the last layer that writes into
 * it has finished its backward (net->backward_hook), so communication overlaps
 * the rest of the backward pass.
 *
 *   FmDist *d = fm_dist_init(err, sizeof err);   // joins the job under mpirun, else 1 rank
 *   fm_dist_attach(d, net, sync_bn, 256 << 10);  // plans buckets, hooks backward (and BN)
 *   for each step:
 *     fm_dist_step_start(d);
 *     forward, loss
 *     double st[4] = {loss * n, correct, !isfinite(loss), interrupted};
 *     fm_dist_backward_start(d, st, 4);           // starts summing st over ranks
 *     fm_net_backward(net);                       // buckets start as layers finish
 *     fm_dist_step_end(d);                        // gradients and st are sums over ranks
 *     fm_net_step(net, opt, lr);                  // the same update on every rank
 *
 * Built without MPI (dist_none.c) or started without mpirun, there is one rank
 * and every call is a no-op; the trainer runs as it always has. Rank 0 alone
 * prints, writes checkpoints and exports. Collectives must be called by every
 * rank in the same order; errors in MPI are fatal (the job ends, non-zero).
 */
#ifndef FM_TRAINER_DIST_H
#define FM_TRAINER_DIST_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "net.h"

typedef struct FmDist FmDist;

// 1 when this build has MPI (CMake found it).
int fm_dist_built_with_mpi(void);
// Joins the MPI job when the environment says mpirun started us, else one rank.
// NULL on failure, with the reason in err.
FmDist *fm_dist_init(char *err, size_t errlen);
int fm_dist_rank(const FmDist *d);
int fm_dist_size(const FmDist *d);
// Plans the gradient buckets of net (bucket_bytes 0: 256 KiB) and installs the
// backward hook; sync_bn makes batchnorm take its statistics over all ranks.
// Returns 0, -1 on allocation failure. Call once, after fm_net_finish.
int fm_dist_attach(FmDist *d, FmNet *net, int sync_bn, size_t bucket_bytes);
int fm_dist_nbuckets(const FmDist *d);
// Bucket i: floats [*lo, *hi) of net->grad_data; returns the layer after whose
// backward it starts.
int fm_dist_bucket(const FmDist *d, int i, size_t *lo, size_t *hi);

// One training step (see the example above).
void fm_dist_step_start(FmDist *d);
void fm_dist_backward_start(FmDist *d, double *stats, int nstats);
void fm_dist_step_end(FmDist *d);

// Blocking in-place sum over ranks.
void fm_dist_sum(FmDist *d, double *buf, int n);
// 1 when every rank passed the same x.
int fm_dist_same(FmDist *d, uint64_t x);
// The FNV-1a checksum of the parameters and buffers of net.
uint64_t fm_dist_weights_checksum(const FmNet *net);
// Replaces every buffer (BN running statistics) by its mean over ranks (exact
// when they are equal), so every rank holds what rank 0 saves.
void fm_dist_average_bufs(FmDist *d, FmNet *net);
void fm_dist_barrier(FmDist *d);
// Ends the whole job with exit status code (MPI_Abort); one rank: exit(code).
_Noreturn void fm_dist_abort(FmDist *d, int code);
// Leaves the job (MPI_Finalize) and frees d; the attached net keeps pointers to d's
// hook and BN sync, so it must not train after this (freeing it is fine).
void fm_dist_finalize(FmDist *d);

// --dist-stats: times a blocking allreduce of the whole gradient (reps times),
// then prints per step forward, backward, allreduce span, its exposed part and
// the overlap with backward (MPI_Wtime stamps), the gradient bytes and buckets.
void fm_dist_measure_allreduce(FmDist *d, int reps);
void fm_dist_stats_print(const FmDist *d, FILE *f);

// ---- the transport (dist_mpi.c with MPI, dist_none.c without) ----
typedef struct FmComm FmComm;
FmComm *fm_comm_init(int *rank, int *size, char *err, size_t errlen);
void fm_comm_finalize(FmComm *c);
double fm_comm_time(void);
// in-place non-blocking sum; returns a request id (>= 0) for test/wait
int fm_comm_isum_f32(FmComm *c, float *buf, size_t n);
int fm_comm_isum_f64(FmComm *c, double *buf, int n);
int fm_comm_test(FmComm *c, int req);   // 1 when done
void fm_comm_wait(FmComm *c, int req);
void fm_comm_sum_f64(FmComm *c, double *buf, int n);
uint64_t fm_comm_max_u64(FmComm *c, uint64_t x);
void fm_comm_barrier(FmComm *c);
_Noreturn void fm_comm_abort(FmComm *c, int code);

#endif
