#!/usr/bin/env bash
# llvm_compare.sh - the C backend vs the LLVM backend (--emit llvm) vs the LLVM JIT
# (--jit), side by side: compile time (.onnx -> loadable code) and run time.
#
#   bash bench/llvm_compare.sh [batches] [threads] [rounds]     (default "1 64" 2 3)
#
# Models: ResNet-20 and a ternary ResNet-20 for CIFAR (3x32x32, exported untrained by
# `fewmul train --steps 1`: speed does not depend on the weights) and the shipped
# Fashion-MNIST CNN (models/fmnist_cnn.onnx).
#   compile: wall and CPU (user+sys) seconds of `fewmul compile` (C: gcc builds the
#            .so; LLVM: LLVM builds model.o, gcc links the .so with the library glue)
#            and of `fewmul run --jit` on one sample: .onnx -> first result, the whole
#            process (load, passes, lowering, LLVM, one run, writing the output).
#   run:     median ms of `fewmul bench` (C .so, LLVM .so, JIT), taken alternately,
#            `rounds` times each; the table shows the median of those medians.
# Prints a markdown table for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
fewmul=$(realpath "${FEWMUL:-build/fewmul}")
batches=${1:-"1 64"}
threads=${2:-2}
rounds=${3:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -x "$fewmul" ] || { echo "llvm_compare: build fewmul first" >&2; exit 1; }

"$fewmul" train --model resnet20 --data synthetic:3x32x32 --steps 1 --batch 8 --quiet -o "$work/resnet20.onnx" >/dev/null
"$fewmul" train --model resnet20 --method ternary --data synthetic:3x32x32 --steps 1 --batch 8 --quiet \
  -o "$work/ternary_resnet20.onnx" >/dev/null
cp models/fmnist_cnn.onnx "$work/fmnist_cnn.onnx"
# one-sample inputs for the first-result timing (float32 .npy, values in [-1, 1))
python3 - "$work" <<'EOF'
import struct, sys, random
def npy(path, shape):
    random.seed(1)
    n = 1
    for d in shape: n *= d
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
    hdr = hdr.ljust(118) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode())
        f.write(struct.pack("<%df" % n, *[random.uniform(-1, 1) for _ in range(n)]))
npy(sys.argv[1] + "/resnet20.npy", (1, 3, 32, 32))
npy(sys.argv[1] + "/ternary_resnet20.npy", (1, 3, 32, 32))
npy(sys.argv[1] + "/fmnist_cnn.npy", (1, 1, 28, 28))
EOF

timed() { # prints "wall cpu" seconds of the command
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -f "%U %S" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" '{printf "%.2f %.2f\n", b - a, $1 + $2}' "$work/time"
}
val() { grep "^$1:" | tail -1 | awk '{print $2}'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| model | compile C s (cpu) | compile LLVM s (cpu) | JIT .onnx->first result s (cpu) | batch | C ms | LLVM ms | JIT ms | LLVM / C |"
echo "|---|---|---|---|---|---|---|---|---|"
for m in resnet20 ternary_resnet20 fmnist_cnn; do
  onnx=$work/$m.onnx
  read -r cw cc < <(timed "$fewmul" compile "$onnx" -o "$work/c_$m" -q)
  read -r lw lc < <(timed "$fewmul" compile "$onnx" -o "$work/l_$m" --emit llvm -q)
  read -r jw jc < <(timed env PATH=/nonexistent "$fewmul" run --jit "$onnx" --input "$work/$m.npy" -o "$work/r_$m" -q)
  first=1
  for b in $batches; do
    iters=20; [ "$b" -ge 32 ] && iters=5
    c=""; l=""; j=""
    for r in $(seq "$rounds"); do
      c="$c $("$fewmul" bench "$work/c_$m" --batch "$b" --threads "$threads" --iters $iters --warmup 3 | val median_ms)"
      l="$l $("$fewmul" bench "$work/l_$m" --batch "$b" --threads "$threads" --iters $iters --warmup 3 | val median_ms)"
      j="$j $("$fewmul" bench --jit "$onnx" --batch "$b" --threads "$threads" --iters $iters --warmup 3 | val median_ms)"
    done
    c=$(echo "$c" | median); l=$(echo "$l" | median); j=$(echo "$j" | median)
    ratio=$(awk -v a="$l" -v b="$c" 'BEGIN {printf "%.2f", a / b}')
    if [ $first = 1 ]; then
      echo "| $m | $cw ($cc) | $lw ($lc) | $jw ($jc) | $b | $c | $l | $j | $ratio |"
      first=0
    else
      echo "| | | | | $b | $c | $l | $j | $ratio |"
    fi
  done
done
echo
echo "threads: $threads; run times: median of $rounds alternating rounds of fewmul bench medians."
