#!/bin/bash
# shift_export.sh - ShiftNet end to end: train shift models a few steps on synthetic data
# (test_shift --e2e: shiftresnet20 --expansion 1 on 3x32x32, and small nets around one shift
# with k = 3 and no remainder channels, k = 5, dilation 2 with a remainder), export ONNX
# (ai.fewmul Shift with its function body in standard ops), and compare ONNX Runtime AND
# `fewmul compile` + `fewmul run` against the trainer's eval forward: max abs diff < 1e-4,
# identical argmax. Then `fewmul cost`: every Shift node 0 multiplications, 0 additions;
# and the CLI: `fewmul train --model shiftresnet20 --expansion 3` prints the reference's
# 95642 parameters; --expansion is refused for other models and outside 1..9.
# Usage: bash shift_export.sh <fewmul-binary> <source-dir> <scratch-dir>   (77 = skipped)
set -u
FEWMUL=$(realpath "$1")
SRC=$(realpath "$2")
WORK=$3
BIN=$(dirname "$FEWMUL")/tests
HELPER=$BIN/test_shift
ORT="$SRC/tools/ort/ort_run.js"
[ -x "$HELPER" ] || { echo "SKIP: $HELPER is not built"; exit 77; }
command -v node >/dev/null || { echo "SKIP: node is not installed (ONNX Runtime runs under node)"; exit 77; }
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1

pass=0
fail=0
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
ok() { echo "ok   $*"; pass=$((pass + 1)); }

"$HELPER" --e2e models >cases.txt 2>log.txt || bad "helper --e2e: $(head -c 400 log.txt)"
first=$(head -n 1 cases.txt)
[ -n "$first" ] || { echo "FAIL: no cases written"; exit 1; }
node "$ORT" "models/$first.onnx" "ort_$first" "models/${first}_in.npy" >ort.log 2>&1
if [ $? -eq 77 ]; then echo "SKIP: onnxruntime-node is not installed ($(head -c 200 ort.log))"; exit 77; fi

while read -r c; do
  grep -q 'ai.fewmul' "models/$c.onnx" || bad "$c: no ai.fewmul op in the model"
  if ! node "$ORT" "models/$c.onnx" "ort_$c" "models/${c}_in.npy" >ort.log 2>&1; then
    bad "$c: ONNX Runtime failed: $(head -c 400 ort.log)"
  elif out=$("$HELPER" --compare "models/${c}_ref.npy" "ort_$c/output.npy" 1e-4); then
    ok "$c ORT: $out"
  else
    bad "$c ORT: $out"
  fi
  if ! "$FEWMUL" compile "models/$c.onnx" -o "cm_$c" -q >cc.log 2>&1; then
    bad "$c: fewmul compile failed: $(head -c 400 cc.log)"
  elif ! "$FEWMUL" run "cm_$c" --input "models/${c}_in.npy" -o "run_$c" -q >run.log 2>&1; then
    bad "$c: fewmul run failed: $(head -c 400 run.log)"
  elif out=$("$HELPER" --compare "models/${c}_ref.npy" "run_$c/output.npy" 1e-4); then
    ok "$c compiled: $out"
  else
    bad "$c compiled: $out"
  fi
  # every Shift node: native (not inlined), 0 multiplications, 0 additions
  if "$FEWMUL" cost "models/$c.onnx" >cost.txt 2>&1; then
    nshift=$(awk '$2 == "Shift"' cost.txt | wc -l)
    nzero=$(awk '$2 == "Shift" && $5 == 0 && $6 == 0' cost.txt | wc -l)
    if [ "$nshift" -gt 0 ] && [ "$nshift" -eq "$nzero" ]; then ok "$c cost: $nshift Shift nodes, 0 multiplications, 0 additions"
    else bad "$c cost: $nshift Shift nodes, $nzero with 0 muls/adds: $(grep Shift cost.txt | head -3)"; fi
  else bad "$c: fewmul cost failed: $(head -c 400 cost.txt)"; fi
done <cases.txt

# ---- the CLI ----
DATA=synthetic:3x8x8:10
if "$FEWMUL" train --model shiftresnet20 --expansion 3 --data "$DATA" --subset 64 --test-subset 32 --batch 16 \
     --steps 2 --threads 2 -o cli.onnx >cli.txt 2>cli.err && grep -q ' 95642 parameters' cli.err; then
  ok "cli shiftresnet20 --expansion 3: 95642 parameters (the reference's count)"
else bad "cli --expansion 3: $(head -c 400 cli.err)"; fi

expect_fail() {
  local what=$1
  shift
  "$FEWMUL" train "$@" >out.txt 2>err.txt
  local rc=$?
  if [ $rc -ne 1 ] || [ "$(wc -l <err.txt)" -ne 1 ] || ! grep -q '^fewmul: error: ' err.txt; then
    bad "$what: exit $rc, $(head -c 300 err.txt)"
  else
    pass=$((pass + 1))
  fi
}
expect_fail "--expansion on another model" --model resnet20 --data "$DATA" --steps 1 --expansion 3
expect_fail "--expansion 10" --model shiftresnet20 --data "$DATA" --steps 1 --expansion 10

echo "shift_export: $pass passed, $fail failed"
[ $fail -eq 0 ]
