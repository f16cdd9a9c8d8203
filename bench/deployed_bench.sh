#!/usr/bin/env bash
# deployed_bench.sh - fewmul vs ONNX Runtime on the models people deploy (issue 16):
# full-size MobileNetV2, MobileNetV3-small, ShuffleNetV2 x0.5, EfficientNet-B0 and a
# conv + transformer recogniser (tools/gen_deployed_models.py, random weights), each
# compiled once (compile time recorded), then fewmul and ORT run alternately, R rounds,
# and the medians of the rounds' median_ms reported.
#
#   bash bench/deployed_bench.sh [rounds] [batches] [threads] [models...]
#   (defaults: 3 rounds, batches "1 8", threads "1 2", every model)
#
# Prints a markdown table for docs/benchmarks.md. Needs Debian's python3-torch and
# python3-torchvision, and onnxruntime-node (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
fewmul=$(realpath "${FEWMUL:-build/fewmul}")
rounds=${1:-3}
batches=${2:-"1 8"}
threads=${3:-"1 2"}
shift $(( $# < 3 ? $# : 3 ))
[ -x "$fewmul" ] || { echo "deployed_bench: build fewmul first (cmake --build build)" >&2; exit 1; }
node bench/ort_bench.js /dev/null >/dev/null 2>&1 || [ $? != 77 ] ||
  { echo "deployed_bench: onnxruntime-node is not installed (bash scripts/install-deps.sh)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 tools/gen_deployed_models.py "$work" "$@" 2>&1 | grep -v -i warn >&2

val() { grep "^$1:" | tail -1 | awk '{print $2}'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END{print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1 /proc/loadavg); $rounds rounds, medians"
echo
echo "| model | compile s | batch | threads | fewmul ms | ORT ms | fewmul / ORT |"
echo "|---|---|---|---|---|---|---|"
for onnx in "$work"/*.onnx; do
  name=$(basename "$onnx" .onnx)
  t0=$(date +%s.%N)
  "$fewmul" compile "$onnx" -o "$work/m_$name" -q
  ct=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  for b in $batches; do
    for t in $threads; do
      iters=30; [ "$b" -ge 8 ] && iters=10
      fs="" os=""
      for _ in $(seq "$rounds"); do
        fs="$fs $("$fewmul" bench "$work/m_$name" --batch "$b" --threads "$t" --iters $iters --warmup 3 | val median_ms)"
        os="$os $(node bench/ort_bench.js "$onnx" --batch "$b" --threads "$t" --iters $iters --warmup 3 | val median_ms)"
      done
      fm=$(echo "$fs" | median) om=$(echo "$os" | median)
      echo "| $name | $ct | $b | $t | $fm | $om | $(awk -v a="$fm" -v b="$om" 'BEGIN{printf "%.2f", a/b}') |"
    done
  done
done
