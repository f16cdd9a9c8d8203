#!/usr/bin/env bash
# winograd_layers.sh - per-layer time of 3x3 stride-1 convs: fewmul im2col+GEMM (--winograd off)
# vs Winograd F(2,3) and F(4,3), with the multiplications `fewmul cost` counts for each.
#
#   bash bench/winograd_layers.sh [batch] [rounds] ["C,K,H ..."]
#
# Each layer is a PyTorch-exported Conv(C->K, 3x3, pad 1) + ReLU on HxH (needs Debian's
# python3-torch). The variants run alternately, `rounds` times each (1 thread); the table
# shows the median over rounds of each run's median. The cost model in passes/winograd.c
# is calibrated from this table (docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
fewmul=${FEWMUL:-build/fewmul}
batch=${1:-1}
rounds=${2:-5}
layers=${3:-"16,16,32 32,32,16 64,64,8 64,64,16 64,64,32 128,128,8 128,128,16 256,256,8"}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/conv.py" <<'PY'
import sys, torch, torch.nn as nn
C, K, H = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(C, K, 3, 1, 1), nn.ReLU()).eval()
torch.onnx.export(net, torch.randn(1, C, H, H), sys.argv[4], opset_version=13, input_names=["input"],
                  output_names=["output"], dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
PY
iters=$(( batch >= 16 ? 10 : 200 ))
med() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "batch $batch, 1 thread, $rounds alternating rounds; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| layer C->K HxW | im2col ms | F2 ms | F4 ms | F2 speedup | F4 speedup | im2col muls | F2 muls | F4 muls | auto picks |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for l in $layers; do
  IFS=, read -r C K H <<< "$l"
  /usr/bin/python3 "$work/conv.py" "$C" "$K" "$H" "$work/c.onnx" 2>/dev/null
  for m in off 2 4; do
    "$fewmul" compile "$work/c.onnx" -o "$work/$m" --winograd $m -q
    : > "$work/$m.t"
  done
  for r in $(seq "$rounds"); do
    for m in off 2 4; do
      "$fewmul" bench "$work/$m" --batch "$batch" --threads 1 --iters $iters --warmup 3 | awk '/^median_ms:/ {print $2}' >> "$work/$m.t"
    done
  done
  muls() { "$fewmul" cost "$work/c.onnx" --batch "$batch" --winograd "$1" | awk '/^batch:/ {print $6}'; }
  pick=$("$fewmul" cost "$work/c.onnx" --batch "$batch" | awk 'NR==2 {print $2}')
  t0=$(med < "$work/off.t"); t2=$(med < "$work/2.t"); t4=$(med < "$work/4.t")
  echo "| $C->$K ${H}x$H | $t0 | $t2 | $t4 | $(awk -v a="$t0" -v b="$t2" 'BEGIN{printf "%.2f", a/b}') |" \
       "$(awk -v a="$t0" -v b="$t4" 'BEGIN{printf "%.2f", a/b}') | $(muls off) | $(muls 2) | $(muls 4) | $pick |"
done
