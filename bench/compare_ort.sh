#!/usr/bin/env bash
# compare_ort.sh - fewmul vs ONNX Runtime latency and peak memory on one model,
# side by side in the same run (batch 1 and 64, 1 and 2 threads by default).
#
#   bash bench/compare_ort.sh [model.onnx] [batches] [threads]
#
# Without a model it exports a ResNet-20 for CIFAR (3x32x32, untrained weights:
# speed does not depend on them) with `fewmul train --steps 1`.
# Prints a markdown table; the numbers go to docs/benchmarks.md with this command.
set -euo pipefail
cd "$(dirname "$0")/.."
fewmul=${FEWMUL:-build/fewmul}
model=${1:-}
batches=${2:-"1 64"}
threads=${3:-"1 2"}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -x "$fewmul" ] || { echo "compare_ort: build fewmul first (cmake --build build)" >&2; exit 1; }
if [ -z "$model" ]; then
  model=$work/resnet20.onnx
  "$fewmul" train --model resnet20 --data synthetic:3x32x32 --steps 1 --batch 8 --quiet -o "$model" >/dev/null
fi
"$fewmul" compile "$model" -o "$work/out" >/dev/null
have_ort=1
node bench/ort_bench.js "$model" --iters 1 --warmup 0 >/dev/null 2>&1 || have_ort=0
[ $have_ort = 1 ] || echo "compare_ort: onnxruntime-node not installed (bash scripts/install-deps.sh): fewmul only" >&2
val() { grep "^$1:" | tail -1 | awk '{print $2}'; }
echo "model: $(basename "$model"), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo
echo "| batch | threads | fewmul median ms | ORT median ms | fewmul / ORT | fewmul peak RSS MB | ORT peak RSS MB |"
echo "|---|---|---|---|---|---|---|"
for b in $batches; do
  for t in $threads; do
    iters=50; [ "$b" -ge 32 ] && iters=20
    f=$("$fewmul" bench "$work/out" --batch "$b" --threads "$t" --iters $iters --warmup 5)
    fm=$(echo "$f" | val median_ms); fr=$(echo "$f" | val peak_rss_mb)
    om="-"; orr="-"; ratio="-"
    if [ $have_ort = 1 ]; then
      o=$(node bench/ort_bench.js "$model" --batch "$b" --threads "$t" --iters $iters --warmup 5)
      om=$(echo "$o" | val median_ms); orr=$(echo "$o" | val peak_rss_mb)
      ratio=$(awk -v a="$fm" -v b="$om" 'BEGIN{printf "%.2f", a/b}')
    fi
    echo "| $b | $t | $fm | $om | $ratio | $fr | $orr |"
  done
done
