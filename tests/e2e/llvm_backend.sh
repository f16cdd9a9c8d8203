#!/bin/bash
# llvm_backend.sh - the LLVM backend gives the C backend's outputs on real models.
# For every PyTorch fixture (tests/e2e/pytorch) and the shipped demo model
# (models/fmnist_cnn.onnx on its 1,000 test images): compile with the C backend and
# with --emit llvm (model.ll, model.o, model.so, same model.h), run both with
# `fewmul run`, and run the .onnx with `fewmul run --jit` under PATH=/nonexistent (no
# C compiler, linker or shell tools reachable). The C backend is built twice: with
# CC="gcc -ffp-contract=off" (the contraction setting of LLVM, which never fuses a*b+c
# on its own) and with gcc's default -ffp-contract=fast (fused where -mfma allows).
# Requires, per case (and prints what it found):
#   - LLVM vs C with the same contraction: bit-identical;
#   - LLVM vs C with gcc's default contraction: within 1e-4 * |C| + 1e-5 and the same
#     argmax (the fused roundings differ layer after layer; the maximum is printed);
#   - JIT vs --emit llvm: bit-identical (the same module, optimised the same way),
#   - --emit llvm --weights=file: the same outputs, and a corrupted weights file refused,
#   - an unknown --emit and a JIT of a missing file: one error line, nonzero exit.
# Usage: bash llvm_backend.sh <fewmul-binary> <source-dir> <scratch-dir>   (77 = skipped)
set -u
FEWMUL=$(realpath "$1")
SRC=$(realpath "$2")
WORK=$3
CMP=$SRC/tests/e2e/npy_compare.js
command -v node >/dev/null || { echo "skip: node is not installed (needed to compare .npy files)"; exit 77; }
command -v "${CC:-gcc}" >/dev/null || { echo "skip: no C compiler (${CC:-gcc})"; exit 77; }
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
if ! "$FEWMUL" compile "$SRC/tests/e2e/pytorch/mlp.onnx" -o probe --emit llvm -q >probe.log 2>&1; then
  if grep -q "built without LLVM" probe.log; then
    echo "skip: $(cat probe.log)"
    exit 77
  fi
  echo "FAIL: --emit llvm: $(head -c 300 probe.log)"
  exit 1
fi

pass=0
fail=0
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
TOL="--atol 1e-5 --rtol 1e-4 --argmax"
CCX="${CC:-gcc} -ffp-contract=off"

check() { # name onnx input [extra run args]
  local name=$1 onnx=$2 in=$3
  shift 3
  if ! "$FEWMUL" compile "$onnx" -o "c_$name" -q >"c_$name.log" 2>&1; then bad "$name: C compile: $(head -c 300 "c_$name.log")"; return; fi
  if ! CC="$CCX" "$FEWMUL" compile "$onnx" -o "cx_$name" -q >"cx_$name.log" 2>&1; then
    bad "$name: C compile with $CCX: $(head -c 300 "cx_$name.log")"; return
  fi
  if ! "$FEWMUL" compile "$onnx" -o "l_$name" --emit llvm -q >"l_$name.log" 2>&1; then
    bad "$name: LLVM compile: $(head -c 300 "l_$name.log")"; return
  fi
  for f in model.ll model.o model.so model.h; do
    [ -s "l_$name/$f" ] || { bad "$name: --emit llvm did not write $f"; return; }
  done
  cmp -s "c_$name/model.h" "l_$name/model.h" || bad "$name: model.h differs between C and LLVM"
  "$FEWMUL" run "c_$name" --input "$in" -o "rc_$name" -q "$@" >"rc_$name.log" 2>&1 || { bad "$name: C run: $(head -c 300 "rc_$name.log")"; return; }
  "$FEWMUL" run "cx_$name" --input "$in" -o "rx_$name" -q "$@" >"rx_$name.log" 2>&1 || { bad "$name: C run: $(head -c 300 "rx_$name.log")"; return; }
  "$FEWMUL" run "l_$name" --input "$in" -o "rl_$name" -q "$@" >"rl_$name.log" 2>&1 || { bad "$name: LLVM run: $(head -c 300 "rl_$name.log")"; return; }
  env PATH=/nonexistent "$FEWMUL" run --jit "$onnx" --input "$in" -o "rj_$name" -q "$@" >"rj_$name.log" 2>&1 ||
    { bad "$name: JIT run with no PATH: $(head -c 300 "rj_$name.log")"; return; }
  for out in "rc_$name"/*.npy; do
    o=$(basename "$out")
    if cmp -s "rx_$name/$o" "rl_$name/$o"; then pass=$((pass + 1)); else bad "$name/$o: LLVM differs from C with -ffp-contract=off"; fi
    if cmp -s "$out" "rl_$name/$o"; then
      echo "$name/$o: LLVM vs C (contract off): bit-identical; vs C (gcc default): bit-identical"
      pass=$((pass + 1))
    elif r=$(node "$CMP" "rl_$name/$o" "$out" $TOL 2>&1); then
      echo "$name/$o: LLVM vs C (contract off): bit-identical; vs C (gcc default): $r"
      pass=$((pass + 1))
    else
      bad "$name/$o: LLVM vs C: $r"
    fi
    if cmp -s "rj_$name/$o" "rl_$name/$o"; then pass=$((pass + 1)); else bad "$name/$o: JIT differs from --emit llvm"; fi
  done
}

while read -r name batch; do
  case "$name" in ''|'#'*) continue ;; esac
  check "$name" "$SRC/tests/e2e/pytorch/$name.onnx" "$SRC/tests/e2e/pytorch/${name}_input.npy"
done <"$SRC/tests/e2e/pytorch/models.txt"
check fmnist_cnn "$SRC/models/fmnist_cnn.onnx" "$SRC/models/fmnist_test1000.npy"

# --weights=file: the LLVM entry's set_weights, through the runtime; a corrupted file is refused
S=$SRC/tests/e2e/pytorch
if "$FEWMUL" compile "$S/lenet.onnx" -o wf --emit llvm --weights=file -q >wf.log 2>&1 && [ -s wf/model.weights ] &&
   "$FEWMUL" run wf --input "$S/lenet_input.npy" -o rwf -q >rwf.log 2>&1 && cmp -s rwf/output.npy rl_lenet/output.npy; then
  pass=$((pass + 1))
else
  bad "--emit llvm --weights=file: $(head -c 300 wf.log rwf.log)"
fi
printf 'X' | dd of=wf/model.weights bs=1 seek=100 conv=notrunc 2>/dev/null
if "$FEWMUL" run wf --input "$S/lenet_input.npy" -q >rwf2.log 2>&1; then bad "a corrupted weights file was accepted"
elif grep -q "corrupt" rwf2.log; then pass=$((pass + 1)); else bad "corrupted weights file: $(cat rwf2.log)"; fi

# errors: one line, nonzero exit
"$FEWMUL" compile "$SRC/tests/e2e/pytorch/mlp.onnx" -o bad --emit fortran >e1.log 2>&1
rc=$?
if [ "$rc" != 0 ] && [ "$(wc -l <e1.log)" = 1 ] && grep -q "emit" e1.log; then pass=$((pass + 1)); else bad "unknown --emit: rc $rc: $(cat e1.log)"; fi
env PATH=/nonexistent "$FEWMUL" run --jit "$WORK/missing.onnx" --input x.npy >e2.log 2>&1
rc=$?
if [ "$rc" != 0 ] && [ "$(wc -l <e2.log)" = 1 ] && grep -q "missing.onnx" e2.log; then pass=$((pass + 1)); else bad "JIT of a missing model: rc $rc: $(cat e2.log)"; fi

echo "llvm_backend: $pass passed, $fail failed"
[ "$fail" = 0 ]
