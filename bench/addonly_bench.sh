#!/usr/bin/env bash
# addonly_bench.sh - the add-only kernels against dense code and ONNX Runtime (issue 12):
# ResNet-20 (CIFAR, 3x32x32) and the small MNIST CNN with dense, ternary and power-of-two
# float weights in plain Conv (bench/quantize_weights.py), compiled by default (the
# weight analysis picks the kernels) and with --specialize=none (dense), each run
# alternated with ONNX Runtime on the same model, ROUNDS rounds, medians of the rounds.
#
#   bash bench/addonly_bench.sh [rounds=3] [batch=1] [threads=1]
#
# Needs /usr/bin/python3 with python3-onnx (the quantiser) and onnxruntime-node
# (tools/ort/node_modules) for the ORT column. Untrained weights: speed does not depend
# on their values, only on which are zero.
set -euo pipefail
cd "$(dirname "$0")/.."
fewmul=${FEWMUL:-build/fewmul}
rounds=${1:-3}; batch=${2:-1}; threads=${3:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -x "$fewmul" ] || { echo "addonly_bench: build fewmul first" >&2; exit 1; }
/usr/bin/python3 -c 'import onnx' 2>/dev/null || { echo "addonly_bench: needs python3-onnx" >&2; exit 1; }
"$fewmul" train --model resnet20 --data synthetic:3x32x32 --steps 1 --batch 8 --quiet -o "$work/resnet20.onnx" >/dev/null
"$fewmul" train --model mnist_cnn --data synthetic:1x28x28 --steps 1 --batch 8 --quiet -o "$work/mnist_cnn.onnx" >/dev/null
models="resnet20 resnet20_ternary resnet20_pow2 mnist_cnn mnist_cnn_ternary"
for q in ternary pow2; do
  for m in resnet20 mnist_cnn; do
    /usr/bin/python3 bench/quantize_weights.py "$work/$m.onnx" "$work/${m}_$q.onnx" $q
  done
done
have_ort=1
node bench/ort_bench.js "$work/mnist_cnn.onnx" --iters 1 --warmup 0 >/dev/null 2>&1 || have_ort=0
[ $have_ort = 1 ] || echo "addonly_bench: onnxruntime-node not installed: no ORT column" >&2
for m in $models; do
  "$fewmul" compile "$work/$m.onnx" -o "$work/$m" >/dev/null
  "$fewmul" compile "$work/$m.onnx" --specialize=none -o "$work/${m}_dense" >/dev/null
done
val() { grep "^$1:" | tail -1 | awk '{print $2}'; }
med() { sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
echo "batch $batch, $threads thread(s), $rounds rounds, load $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
echo
echo "| model | kernels (fewmul cost) | fewmul ms | dense ms | ORT ms | fewmul / ORT | dense / ORT |"
echo "|---|---|---|---|---|---|---|"
for m in $models; do
  : > "$work/f" ; : > "$work/d" ; : > "$work/o"
  for r in $(seq "$rounds"); do
    "$fewmul" bench "$work/$m" --batch "$batch" --threads "$threads" --iters 50 --warmup 5 | val median_ms >> "$work/f"
    "$fewmul" bench "$work/${m}_dense" --batch "$batch" --threads "$threads" --iters 50 --warmup 5 | val median_ms >> "$work/d"
    if [ $have_ort = 1 ]; then
      node bench/ort_bench.js "$work/$m.onnx" --batch "$batch" --threads "$threads" --iters 50 --warmup 5 | val median_ms >> "$work/o"
    fi
  done
  f=$(med < "$work/f"); d=$(med < "$work/d"); o="-"; rf="-"; rd="-"
  if [ $have_ort = 1 ]; then
    o=$(med < "$work/o")
    rf=$(awk -v a="$f" -v b="$o" 'BEGIN{printf "%.2f", a/b}'); rd=$(awk -v a="$d" -v b="$o" 'BEGIN{printf "%.2f", a/b}')
  fi
  kinds=$("$fewmul" cost "$work/$m.onnx" | awk 'NR>1 && $2 ~ /Conv|Gemm/ {print $2}' | sort | uniq -c | awk '{printf "%s%s x%s", (NR>1?", ":""), $2, $1}')
  echo "| $m | $kinds | $f | $d | $o | $rf | $rd |"
done
