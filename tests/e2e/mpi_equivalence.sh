#!/bin/bash
# mpi_equivalence.sh - `mpirun -np 2 fewmul train` computes what one process computes with
# the same global batch: after 50 steps of mlp and mnist_cnn (both with dropout, whose
# masks are keyed to the sample, not the rank) the weights agree within 1e-5 of the
# largest weight (float summation order is all that differs; measured ~2e-7); resnet20
# with --sync-bn within 1e-4 after 5 steps (measured ~6e-8; over many steps its BN on 8
# samples per process amplifies rounding, as one process with 2 threads instead of 1
# does). Without --sync-bn the per-process statistics make resnet20 differ by more than
# that (measured ~4e-3), so the sync path is known to matter.
#   bash mpi_equivalence.sh <fewmul> <source-dir> <scratch-dir>   (77: no mpirun / no MPI build)
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/mpi.sh"
enter_work

same() {   # name tol steps args...
  local name=$1 tol=$2; shift 2
  "$FEWMUL" train "$@" --checkpoint "$name.1.fm" >/dev/null 2>"$name.1.err" || { bad "$name: one process: $(tail -1 "$name.1.err")"; return; }
  mpi2 train "$@" --checkpoint "$name.2.fm" >/dev/null 2>"$name.2.err" || { bad "$name: -np 2: $(tail -3 "$name.2.err")"; return; }
  local d; d=$("$CKDIFF" "$name.1.fm" "$name.2.fm" "$tol") && ok "$name: -np 2 = one process ($d, tol $tol)" ||
    bad "$name: -np 2 differs from one process: $d (tol $tol)"
}
same mlp 1e-5 --model mlp --data synthetic:1x8x8:4 --batch 32 --threads 1 --steps 50 --quiet
same mnist_cnn 1e-5 --model mnist_cnn --data synthetic:1x12x12:4 --batch 32 --threads 1 --steps 50 --quiet
# SP layers (ternary W_B, W_C; their inner batchnorm synchronised too), with dropout
same sp_mlp_sync_bn 1e-4 --model sp_mlp --data synthetic:1x8x8:4 --subset 512 --batch 16 --threads 1 --steps 10 --quiet --sync-bn
R="--model resnet20 --data synthetic:3x8x8:4 --subset 512 --test-subset 64 --batch 16 --lr 0.001 --threads 1 --steps 5 --quiet"
same resnet20_sync_bn 1e-4 $R --sync-bn
# per-process BN statistics (the default) are not one process's: the weights differ
"$FEWMUL" train $R --checkpoint nosync.1.fm >/dev/null 2>&1 && mpi2 train $R --checkpoint nosync.2.fm >/dev/null 2>&1 &&
  ! "$CKDIFF" nosync.1.fm nosync.2.fm 1e-4 >/dev/null && ok "resnet20 without --sync-bn differs (per-process statistics)" ||
  bad "resnet20 without --sync-bn: expected a difference above 1e-4"
finish mpi_equivalence
