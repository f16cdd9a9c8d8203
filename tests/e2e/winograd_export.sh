#!/bin/bash
# winograd_export.sh - Winograd-aware convs end to end: train Winograd models a few steps on
# synthetic data (test_winograd --e2e: static and flex transforms, F2/F4/F6, float and 8/4-bit
# Winograd domains, mnist_cnn with pad-0 convs and crops, resnet18), export ONNX (ai.fewmul
# WinogradConv with its function body in standard ops), and compare ONNX Runtime AND
# `fewmul compile` + `fewmul run` against the trainer's eval forward: max abs diff < 1e-4 and
# identical argmax (quantised cases: < 2e-2, see docs/METHODS.md: a value whose x/s lies on a
# rounding boundary can round either way when the float sums run in another order).
# Then the CLI: --method winograd on mnist_cnn and resnet18, and bad flags.
# Usage: bash winograd_export.sh <fewmul-binary> <source-dir> <scratch-dir>   (77 = skipped)
set -u
FEWMUL=$(realpath "$1")
SRC=$(realpath "$2")
WORK=$3
BIN=$(dirname "$FEWMUL")/tests
HELPER=$BIN/test_winograd
MHELPER=$BIN/test_methods
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
  tol=1e-4
  case $c in *bit) tol=2e-2 ;; esac
  grep -q 'WinogradConv' "models/$c.onnx" || bad "$c: no WinogradConv in the model"
  if ! node "$ORT" "models/$c.onnx" "ort_$c" "models/${c}_in.npy" >ort.log 2>&1; then
    bad "$c: ONNX Runtime failed: $(head -c 400 ort.log)"
  elif out=$("$HELPER" --compare "models/${c}_ref.npy" "ort_$c/output.npy" $tol); then
    ok "$c ORT: $out"
  else
    bad "$c ORT: $out"
  fi
  if ! "$FEWMUL" compile "models/$c.onnx" -o "cm_$c" -q >cc.log 2>&1; then
    bad "$c: fewmul compile failed: $(head -c 400 cc.log)"
  elif ! "$FEWMUL" run "cm_$c" --input "models/${c}_in.npy" -o "run_$c" -q >run.log 2>&1; then
    bad "$c: fewmul run failed: $(head -c 400 run.log)"
  elif out=$("$HELPER" --compare "models/${c}_ref.npy" "run_$c/output.npy" $tol); then
    ok "$c compiled: $out"
  else
    bad "$c compiled: $out"
  fi
done <cases.txt

# ---- the CLI: ORT's test accuracy = the trainer's ----
DATA=synthetic:1x12x12:4
have_data=0
if [ -x "$MHELPER" ] && "$MHELPER" --data "$DATA" . >/dev/null 2>&1; then have_data=1; fi
same_acc() {   # name onnx trainer-output
  local name=$1 model=$2 txt=$3 want got
  [ $have_data -eq 1 ] || { echo "note: $MHELPER is not built; $name: accuracy check skipped"; return; }
  want=$(sed -n 's/^test accuracy: \([0-9.]*\)%.*/\1/p' "$txt")
  if ! node "$ORT" "$model" "ort_$name" x.npy >ort.log 2>&1; then
    bad "cli $name: ONNX Runtime failed: $(head -c 400 ort.log)"
    return
  fi
  got=$("$MHELPER" --accuracy "ort_$name/output.npy" "$DATA")
  if [ -n "$want" ] && [ "$want" = "$got" ]; then ok "cli $name: test accuracy $want% in the trainer and in ONNX Runtime"
  else bad "cli $name: trainer test accuracy '$want'%, ONNX Runtime '$got'%"; fi
}
T="--data $DATA --batch 32 --threads 2 --steps 8 --quiet"
if "$FEWMUL" train --model mnist_cnn $T --method winograd --tile 4 --transforms flex -o flex.onnx >flex.txt 2>flex.err &&
   grep -q 'WinogradConv' flex.onnx; then same_acc flex flex.onnx flex.txt
else bad "cli --method winograd --transforms flex: $(head -c 400 flex.err)"; fi
if "$FEWMUL" train --model mnist_cnn $T --method winograd --tile 6 --method-all -o static.onnx >static.txt 2>static.err
then same_acc static static.onnx static.txt
else bad "cli --method winograd --tile 6: $(head -c 400 static.err)"; fi
if "$FEWMUL" train --model resnet18 --data synthetic:3x8x8:4 --batch 16 --threads 2 --steps 2 --width 0.125 --quiet \
    --method winograd --tile 2 --transforms flex --bits 8 -o r18.onnx >r18.txt 2>r18.err &&
   grep -q 'WinogradConv' r18.onnx; then ok "cli resnet18 --method winograd --tile 2 --transforms flex --bits 8"
else bad "cli resnet18 winograd: $(head -c 400 r18.err)"; fi

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
expect_fail "bad tile" --model mlp --data "$DATA" --steps 1 --method winograd --tile 3
expect_fail "bad transforms" --model mlp --data "$DATA" --steps 1 --method winograd --transforms learned
expect_fail "bad bits" --model mlp --data "$DATA" --steps 1 --method winograd --bits 1
expect_fail "winograd flag without winograd" --model mlp --data "$DATA" --steps 1 --method ternary --tile 4
expect_fail "quantiser flag with winograd" --model mlp --data "$DATA" --steps 1 --method winograd --weight-bits 4

echo "winograd_export: $pass passed, $fail failed"
[ $fail -eq 0 ]
