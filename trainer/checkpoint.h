/* checkpoint.h - save and restore a training run.
 *
 * A checkpoint holds the parameters, the buffers (BN running stats, input
 * normalisation), the optimiser state (kind, per-element state, per-segment
 * step counts), the epoch and step counters and the net's RNG state, so a
 * run resumed from it continues exactly as if it had not stopped.
 *
 *   char err[512];
 *   if (fm_checkpoint_save("run/ckpt.bin", net, opt, epoch, step, err, sizeof err))
 *     { fprintf(stderr, "fewmul: %s\n", err); exit(1); }
 *   ...
 *   FmCheckpointInfo info;
 *   if (fm_checkpoint_load("run/ckpt.bin", net, opt, &info, err, sizeof err)) ...
 *
 * Saving writes a temporary file in the same directory, fsyncs it, renames it
 * over the target and fsyncs the directory: a crash at any moment leaves
 * either the old or the new checkpoint, never a torn one. The temporary file is
 * PATH.tmp.HOST.PID.XXXXXX; a save first removes this checkpoint's temporary files
 * that a dead process of this host left behind (a writer killed mid-write).
 *
 * File layout (little-endian):
 *   "FMCKPT\r\n" | u32 version | u32 header bytes | header fields |
 *   params f32[] | buffers f32[] | optimiser state f32[] | segment steps i64[] |
 *   u64 FNV-1a checksum of everything before it
 * Loading checks magic, version, sizes (against the file length and against
 * the net/optimiser) and the checksum, and names the file in every error.
 */
#ifndef FM_TRAINER_CHECKPOINT_H
#define FM_TRAINER_CHECKPOINT_H
#include <stddef.h>
#include <stdint.h>
#include "net.h"
#include "optim.h"

#define FM_CHECKPOINT_VERSION 2   // 2 adds the position inside the epoch; 1 is still read

typedef struct {
  char model[32];       // net->model when saved
  int64_t epoch, step;
  int64_t epoch_batch;  // global batches of `epoch` already trained (0: at its start)
  int32_t global_batch; // samples per global batch when saved (0: unknown, version 1)
  int32_t nranks;       // processes that trained it (0: unknown, version 1)
  int has_optim;
} FmCheckpointInfo;

// Where a run stands: a resumed run starts epoch `epoch` at its batch `epoch_batch`.
typedef struct {
  int64_t epoch, step, epoch_batch;
  int32_t global_batch, nranks;
} FmCheckpointPos;

// opt may be NULL (parameters only). Returns 0, or -1 with a message in err.
int fm_checkpoint_save(const char *path, const FmNet *net, const FmOptim *opt,
                       int64_t epoch, int64_t step, char *err, size_t errlen);
int fm_checkpoint_save_at(const char *path, const FmNet *net, const FmOptim *opt,
                          const FmCheckpointPos *pos, char *err, size_t errlen);
// Restores into an already built net of the same architecture (and opt, if
// not NULL, of the same kind). On error nothing is modified.
int fm_checkpoint_load(const char *path, FmNet *net, FmOptim *opt, FmCheckpointInfo *info,
                       char *err, size_t errlen);

#endif
