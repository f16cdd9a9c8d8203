#!/bin/bash
# gpu_check.sh - the whole GPU check in one command (a few minutes on a GPU machine):
# for each model (the PyTorch fixtures of tests/e2e/pytorch and, when the trainer's test
# helpers are built, a ternary, a DeepShift and an SP export), compile it with the C
# backend and with the device backend, run both on the fixture's input and print per
# model: max abs / rel error of the device vs C, then `fewmul bench --device` at batch 1
# and 64 (models with a symbolic batch): median_ms (complete runs, copies included) and
# kernel_ms (profiling events).
#   bash bench/gpu_check.sh [--emit cuda|opencl] [--device D] [--fewmul PATH] [--iters K]
# Default: cuda when nvcc and an NVIDIA GPU are present, else opencl (PoCL on the CPU is
# a functional check, not a speed claim). Needs python3 (no numpy) for the comparison.
set -u
cd "$(dirname "$0")/.." || exit 2
SRC=$(pwd)
FEWMUL=$SRC/build/fewmul EMIT="" DEVICE="" ITERS=20
while [ $# -gt 0 ]; do
  case "$1" in
    --emit) EMIT=$2; shift 2 ;;
    --device) DEVICE=$2; shift 2 ;;
    --fewmul) FEWMUL=$(realpath "$2"); shift 2 ;;
    --iters) ITERS=$2; shift 2 ;;
    *) echo "usage: bash bench/gpu_check.sh [--emit cuda|opencl] [--device D] [--fewmul PATH] [--iters K]"; exit 2 ;;
  esac
done
[ -x "$FEWMUL" ] || { echo "gpu_check: $FEWMUL is not built (cmake --build build)"; exit 2; }
if [ -z "$EMIT" ]; then
  if { command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; } && nvidia-smi -L >/dev/null 2>&1; then EMIT=cuda
  else EMIT=opencl; fi
fi
[ -n "$DEVICE" ] || DEVICE=$EMIT:0
BIN=$(dirname "$FEWMUL")/tests
W=$(mktemp -d /tmp/gpu_check.XXXXXX)
trap 'rm -rf "$W"' EXIT
FIX=$SRC/tests/e2e/pytorch

cmp_npy() { # GOT REF: "max_abs max_rel"
  python3 - "$1" "$2" <<'PY'
import ast, struct, sys
def load(p):
    b = open(p, 'rb').read()
    hl = struct.unpack('<H', b[8:10])[0] if b[6] == 1 else struct.unpack('<I', b[8:12])[0]
    off = 10 if b[6] == 1 else 12
    h = ast.literal_eval(b[off:off + hl].decode('latin1'))
    n = 1
    for d in h['shape']: n *= d
    fmt = {'<f4': 'f', '<f8': 'd', '<i8': 'q', '<i4': 'i'}[h['descr']]
    return struct.unpack('<%d%s' % (n, fmt), b[off + hl:off + hl + n * struct.calcsize(fmt)])
g, r = load(sys.argv[1]), load(sys.argv[2])
a = max((abs(x - y) for x, y in zip(g, r)), default=0.0)
rel = max((abs(x - y) / max(abs(y), 1e-30) for x, y in zip(g, r)), default=0.0)
print('%.3g %.3g' % (a, rel))
PY
}

bench() { # DIR BATCH: "median_ms kernel_ms"
  "$FEWMUL" bench "$1" --device "$DEVICE" --batch "$2" --iters "$ITERS" --warmup 3 >"$W/b.txt" 2>&1 ||
    { echo "- -"; return; }
  echo "$(sed -n 's/^median_ms: //p' "$W/b.txt") $(sed -n 's/^kernel_ms: \([0-9.]*\).*/\1/p' "$W/b.txt")"
}

models=()
while read -r name batch; do
  case "$name" in ''|'#'*) continue ;; esac
  models+=("$name:$FIX/$name.onnx:$FIX/${name}_input.npy:$batch")
done <"$FIX/models.txt"
if [ -x "$BIN/test_methods" ] && (cd "$W" && "$BIN/test_methods" --data synthetic:1x12x12:4 . >/dev/null 2>&1); then
  for m in "ternary --method ternary --method-all" "deepshift --method deepshift-q --weight-bits 4 --method-all" \
           "sp --method sp --sp-r 0.5 --sp-patch 2 --method-all"; do
    set -- $m
    n=$1; shift
    "$FEWMUL" train --model mnist_cnn --data synthetic:1x12x12:4 --steps 2 --batch 16 --quiet -o "$W/$n.onnx" "$@" \
      >/dev/null 2>&1 && models+=("train_$n:$W/$n.onnx:$W/x.npy:N")
  done
fi

echo "gpu_check: --emit $EMIT on $DEVICE ($("$FEWMUL" --version 2>/dev/null | head -n 1))"
printf "%-22s %-10s %-10s %-12s %-12s %-12s %-12s\n" model max_abs max_rel median_ms@1 kernel_ms@1 median_ms@64 kernel_ms@64
status=0
for entry in "${models[@]}"; do
  IFS=: read -r name onnx input batch <<<"$entry"
  if ! "$FEWMUL" compile "$onnx" -o "$W/c_$name" -q >"$W/log" 2>&1 ||
     ! "$FEWMUL" compile "$onnx" -o "$W/g_$name" --emit "$EMIT" -q >"$W/log" 2>&1; then
    echo "$name: compile failed: $(head -c 300 "$W/log")"; status=1; continue
  fi
  if ! "$FEWMUL" run "$W/c_$name" --input "$input" -o "$W/rc_$name" -q >"$W/log" 2>&1 ||
     ! "$FEWMUL" run "$W/g_$name" --input "$input" --device "$DEVICE" -o "$W/rg_$name" -q >"$W/log" 2>&1; then
    echo "$name: run failed: $(head -c 300 "$W/log")"; status=1; continue
  fi
  out=$(ls "$W/rc_$name" | head -n 1)
  err=$(cmp_npy "$W/rg_$name/$out" "$W/rc_$name/$out")
  b1=$(bench "$W/g_$name" 1)
  b64="- -"
  [ "$batch" = N ] && b64=$(bench "$W/g_$name" 64)
  # shellcheck disable=SC2086
  printf "%-22s %-10s %-10s %-12s %-12s %-12s %-12s\n" "$name" $err $b1 $b64
done
exit $status
