#!/bin/bash
# mpi_methods.sh - every training method runs data-parallel: resnet20 with each --method
# (ternary, deepshift-q, deepshift-ps, quant with stochastic rounding, winograd),
# sp_resnet20 through the three SP phases (--sp-recipe 1,1,1: phase switches and fresh
# optimisers on every rank) and shiftresnet20 train with `mpirun -np 2` for 2-3 short
# epochs and export. Every epoch the ranks compare a checksum of their weights through
# MPI (a mismatch ends the job), and with FEWMUL_DIST_EXPORT_ALL=1 rank 1 exports too:
# its ONNX file must be byte-identical to rank 0's.
#   bash mpi_methods.sh <fewmul> <source-dir> <scratch-dir>   (77: no mpirun / no MPI build)
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/mpi.sh"
enter_work

D="--data synthetic:3x8x8:4 --subset 32 --test-subset 16 --batch 16 --threads 1"
run() {   # name epochs args...
  local name=$1 epochs=$2; shift 2
  if ! FEWMUL_DIST_EXPORT_ALL=1 mpi2 train $D --epochs "$epochs" "$@" -o "$name.onnx" >"$name.out" 2>"$name.err"; then
    bad "$name: mpirun -np 2 fewmul train $*: $(grep -m2 'error' "$name.err")"
    return
  fi
  local n; n=$(grep -c "weights checksum .* the same on all 2 processes" "$name.err")
  [ "$n" = "$epochs" ] && ok "$name: the ranks' weights checksums agree after each of $epochs epochs" ||
    bad "$name: $n of $epochs epochs reported equal checksums"
  [ -s "$name.onnx" ] && cmp -s "$name.onnx" "$name.onnx.rank1" && ok "$name: rank 0 and rank 1 export the same bytes" ||
    bad "$name: the exports of rank 0 and rank 1 differ (or are missing)"
}
run ternary 2 --model resnet20 --method ternary
run deepshift_q 2 --model resnet20 --method deepshift-q
run deepshift_ps 2 --model resnet20 --method deepshift-ps
run quant 2 --model resnet20 --method quant --weight-bits 4 --rounding stochastic
run winograd 2 --model resnet20 --method winograd --tile 2 --bits 8
run sp_recipe 3 --model sp_resnet20 --sp-recipe 1,1,1
run shift 2 --model shiftresnet20 --sync-bn
finish mpi_methods
