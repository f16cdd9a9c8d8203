#!/bin/bash
# dist_bench.sh - data-parallel training throughput and a scaling projection
# (docs/DISTRIBUTED.md).
#
#   bash bench/dist_bench.sh [--steps N] [--batch B] [--fewmul PATH] [--resnet18-steps N]
#
# 1. resnet20 on synthetic 3x32x32 data, global batch B (64): samples/s of
#      mpirun -np 2 fewmul train --threads 1      (2 processes x 1 thread)
#      fewmul train --threads 2                   (1 process x 2 threads)
#      fewmul train --threads 1                   (1 process x 1 thread)
#      fewmul train --threads 1 --batch B/2       (1 process x 1 thread at the per-rank batch)
#    The efficiency at 2 ranks is per-rank samples/s of the first over samples/s of the
#    last (same thread count per rank, same per-rank batch) and of the third.
# 2. The -np 2 run with --dist-stats: per step forward, backward, allreduce span (first
#    bucket started .. last bucket done, MPI_Wtime), its exposed part (waited after
#    backward) and the overlap; a blocking allreduce of the whole gradient.
# 3. Projection for resnet20 and resnet18 (32x32 inputs, per-rank batch B/2) at 2, 8, 32
#    ranks on 25 and 100 Gb/s links: a ring allreduce sends and receives 2(N-1)/N of the
#    gradient bytes G per rank, in 2(N-1) messages of latency ALPHA (5 us):
#      T_comm = 2(N-1)/N * G * 8 / link + 2(N-1) * ALPHA
#    with T_c the measured one-thread compute time of a step at the per-rank batch:
#      no overlap:           eff = T_c / (T_c + T_comm)
#      overlap in backward:  eff = T_c / (T_c + max(0, T_comm - T_bwd))   (T_bwd ~ 2/3 T_c)
# Steps counted: the training loop's samples/s (stderr "samples/s" lines are per epoch;
# stdout samples_per_s is all steps over the loop time, start-up and evaluation excluded).
# Not a test: prints a table. On a shared machine the numbers carry its load (say so).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FEWMUL=$ROOT/build/fewmul
STEPS=20 BATCH=64 R18_STEPS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) STEPS=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --fewmul) FEWMUL=$2; shift 2 ;;
    --resnet18-steps) R18_STEPS=$2; shift 2 ;;
    *) echo "dist_bench: unknown option $1"; exit 2 ;;
  esac
done
command -v mpirun >/dev/null || { echo "dist_bench: mpirun is not installed"; exit 1; }
"$FEWMUL" train --help | grep -q MPI-enabled || { echo "dist_bench: $FEWMUL is built without MPI"; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
HALF=$((BATCH / 2))
D="--data synthetic:3x32x32:10 --test-subset 64 --epochs 100"
sps() { sed -n 's/^samples_per_s: //p' "$1"; }

echo "dist_bench: resnet20, global batch $BATCH, $STEPS steps; load: $(cut -d' ' -f1-3 /proc/loadavg)"
mpirun --oversubscribe -np 2 "$FEWMUL" train --model resnet20 $D --batch "$BATCH" --steps "$STEPS" --threads 1 \
  --dist-stats >"$T/np2.out" 2>"$T/np2.err" || { echo "np 2 failed: $(tail -3 "$T/np2.err")"; exit 1; }
"$FEWMUL" train --model resnet20 $D --batch "$BATCH" --steps "$STEPS" --threads 2 >"$T/t2.out" 2>"$T/t2.err"
"$FEWMUL" train --model resnet20 $D --batch "$BATCH" --steps "$STEPS" --threads 1 >"$T/t1.out" 2>"$T/t1.err"
"$FEWMUL" train --model resnet20 $D --batch "$HALF" --steps "$STEPS" --threads 1 >"$T/h1.out" 2>"$T/h1.err"
np2=$(sps "$T/np2.out") t2=$(sps "$T/t2.out") t1=$(sps "$T/t1.out") h1=$(sps "$T/h1.out")
echo
echo "| run | samples/s | per process |"
echo "|---|---:|---:|"
echo "| mpirun -np 2, --threads 1, batch $BATCH | $np2 | $(awk -v a="$np2" 'BEGIN{printf "%.1f", a/2}') |"
echo "| 1 process, --threads 2, batch $BATCH | $t2 | $t2 |"
echo "| 1 process, --threads 1, batch $BATCH | $t1 | $t1 |"
echo "| 1 process, --threads 1, batch $HALF | $h1 | $h1 |"
awk -v a="$np2" -v b="$h1" -v c="$t1" 'BEGIN{printf "\nefficiency at 2 ranks (per-rank samples/s): %.0f%% of one process at batch '"$HALF"', %.0f%% of one process at batch '"$BATCH"'\n", 50*a/b, 50*a/c}'
echo
grep '^dist:' "$T/np2.err"

# projection
G20=$(sed -n 's/^dist: .* \([0-9]*\) gradient bytes per step$/\1/p' "$T/np2.err")
TC20=$(awk -v s="$h1" -v b="$HALF" 'BEGIN{printf "%.6f", b/s}')
"$FEWMUL" train --model resnet18 $D --batch "$HALF" --steps "$R18_STEPS" --threads 1 >"$T/r18.out" 2>"$T/r18.err" ||
  { echo "resnet18 failed: $(tail -2 "$T/r18.err")"; exit 1; }
P18=$(sed -n 's/.* \([0-9]*\) parameters,.*/\1/p' "$T/r18.err")
G18=$((P18 * 4))
TC18=$(awk -v s="$(sps "$T/r18.out")" -v b="$HALF" 'BEGIN{printf "%.6f", b/s}')
echo
echo "projection (per-rank batch $HALF, one thread per rank; ring allreduce, 5 us per message):"
echo
echo "| model | gradient MB | step compute ms | link | ranks | allreduce ms | efficiency, no overlap | overlapped with backward |"
echo "|---|---:|---:|---|---:|---:|---:|---:|"
for m in "resnet20 $G20 $TC20" "resnet18 $G18 $TC18"; do
  set -- $m
  for link in 25 100; do
    for n in 2 8 32; do
      awk -v name="$1" -v G="$2" -v tc="$3" -v L="$link" -v N="$n" 'BEGIN{
        comm = 2*(N-1)/N * G * 8 / (L*1e9) + 2*(N-1)*5e-6
        tb = tc * 2 / 3; ex = comm - tb; if (ex < 0) ex = 0
        printf "| %s | %.2f | %.1f | %d Gb/s | %d | %.2f | %.1f%% | %.1f%% |\n", name, G/1e6, tc*1e3, L, N, comm*1e3, 100*tc/(tc+comm), 100*tc/(tc+ex)
      }'
    done
  done
done
