#!/usr/bin/env bash
# winograd_bench.sh - whole models: fewmul with Winograd (--winograd auto), fewmul without
# (--winograd off) and ONNX Runtime, alternated in one run; median over rounds of each
# run's median latency.
#
#   bash bench/winograd_bench.sh [rounds] ["model.onnx ..."] ["batch,threads ..."]
#
# Default models: bench/winograd_models.py's PyTorch ResNet-20 and ResNet-18-style (widths
# 32-256) exports (needs Debian's python3-torch); default settings "1,1 64,2".
set -euo pipefail
cd "$(dirname "$0")/.."
fewmul=${FEWMUL:-build/fewmul}
rounds=${1:-5}
models=${2:-}
settings=${3:-"1,1 64,2"}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -z "$models" ]; then
  /usr/bin/python3 bench/winograd_models.py "$work" 2>/dev/null
  models="$work/resnet20.onnx $work/resnet18w.onnx"
fi
have_ort=1
node bench/ort_bench.js $models --iters 1 --warmup 0 >/dev/null 2>&1 || have_ort=0
med() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $rounds alternating rounds;" \
     "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| model | batch | threads | fewmul Winograd ms | fewmul im2col ms | ORT ms | Winograd / ORT | im2col / ORT | Winograd muls / im2col muls |"
echo "|---|---|---|---|---|---|---|---|---|"
for model in $models; do
  name=$(basename "$model" .onnx)
  for m in auto off; do "$fewmul" compile "$model" -o "$work/$name.$m" --winograd $m -q; done
  for s in $settings; do
    IFS=, read -r b t <<< "$s"
    iters=100; [ "$b" -ge 16 ] && iters=10
    : > "$work/auto.t"; : > "$work/off.t"; : > "$work/ort.t"
    for r in $(seq "$rounds"); do
      for m in auto off; do
        "$fewmul" bench "$work/$name.$m" --batch "$b" --threads "$t" --iters $iters --warmup 3 | awk '/^median_ms:/ {print $2}' >> "$work/$m.t"
      done
      [ $have_ort = 1 ] && node bench/ort_bench.js "$model" --batch "$b" --threads "$t" --iters $iters --warmup 3 |
        awk '/^median_ms:/ {print $2}' >> "$work/ort.t"
    done
    wa=$(med < "$work/auto.t"); wo=$(med < "$work/off.t"); o=$([ $have_ort = 1 ] && med < "$work/ort.t" || echo -)
    mu() { "$fewmul" cost "$model" --batch "$b" --winograd "$1" | awk '/^batch:/ {print $6}'; }
    ratio() { [ "$2" = - ] && echo - || awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
    echo "| $name | $b | $t | $wa | $wo | $o | $(ratio "$wa" "$o") | $(ratio "$wo" "$o") | $(ratio "$(mu auto)" "$(mu off)") |"
  done
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
