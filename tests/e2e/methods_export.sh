#!/bin/bash
# methods_export.sh - training methods end to end: train a few steps under each method
# (ternary, DeepShift-Q/-PS, quantised weights), export ONNX (ai.fewmul ops with their
# function bodies, or QDQ), run the model in ONNX Runtime and compare with the trainer's
# own eval forward: max abs diff < 1e-4 and the same argmax. Then the same through the
# CLI: `fewmul train --method ...` on synthetic data, its test accuracy against ORT's.
# Usage: bash methods_export.sh <fewmul-binary> <source-dir> <scratch-dir>   (77 = skipped)
set -u
FEWMUL=$(realpath "$1")
SRC=$(realpath "$2")
WORK=$3
HELPER=$(dirname "$FEWMUL")/tests/test_methods
ORT="$SRC/tools/ort/ort_run.js"
[ -x "$HELPER" ] || { echo "SKIP: $HELPER is not built"; exit 77; }
command -v node >/dev/null || { echo "SKIP: node is not installed (ONNX Runtime runs under node)"; exit 77; }
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1

pass=0
fail=0
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

# ORT once, to learn whether it is installed at all (exit 77 from ort_run.js)
"$HELPER" --e2e models >cases.txt 2>log.txt || { bad "helper --e2e: $(cat log.txt)"; }
first=$(head -n 1 cases.txt)
[ -n "$first" ] || { echo "FAIL: no cases written"; exit 1; }
node "$ORT" "models/$first.onnx" "ort_$first" "models/${first}_in.npy" >ort.log 2>&1
rc=$?
if [ $rc -eq 77 ]; then echo "SKIP: onnxruntime-node is not installed ($(head -c 200 ort.log))"; exit 77; fi

# ---- helper-trained models: ORT against the trainer's eval forward ----
while read -r c; do
  if ! node "$ORT" "models/$c.onnx" "ort_$c" "models/${c}_in.npy" >ort.log 2>&1; then
    bad "$c: ONNX Runtime failed: $(head -c 400 ort.log)"
    continue
  fi
  if out=$("$HELPER" --compare "models/${c}_ref.npy" "ort_$c/output.npy" 1e-4); then
    pass=$((pass + 1))
    echo "ok   $c: $out"
  else
    bad "$c: $out"
  fi
done <cases.txt

# ---- the CLI: fewmul train --method ... -o m.onnx; ORT's test accuracy = the trainer's ----
DATA=synthetic:1x12x12:4
"$HELPER" --data "$DATA" . || { echo "FAIL: helper --data"; exit 1; }
run_cli() {
  local name=$1
  shift
  if ! "$FEWMUL" train --model mnist_cnn --data "$DATA" --steps 12 --batch 32 --threads 2 --quiet \
      -o "$name.onnx" "$@" >"$name.txt" 2>"$name.err"; then
    bad "cli $name: fewmul train $*: $(head -c 400 "$name.err")"
    return
  fi
  local want got
  want=$(sed -n 's/^test accuracy: \([0-9.]*\)%.*/\1/p' "$name.txt")
  if ! node "$ORT" "$name.onnx" "ort_$name" x.npy >ort.log 2>&1; then
    bad "cli $name: ONNX Runtime failed: $(head -c 400 ort.log)"
    return
  fi
  got=$("$HELPER" --accuracy "ort_$name/output.npy" "$DATA")
  if [ -n "$want" ] && [ "$want" = "$got" ]; then
    pass=$((pass + 1))
    echo "ok   cli $name: test accuracy $want% in the trainer and in ONNX Runtime"
  else
    bad "cli $name: trainer test accuracy '$want'%, ONNX Runtime '$got'%"
  fi
}
run_cli ternary --method ternary
run_cli ternary_all --method ternary --method-all
run_cli shiftq --method deepshift-q --weight-bits 4
run_cli shiftps --method deepshift-ps --weight-bits 5 --lr 0.1
run_cli quant4 --method quant --weight-bits 4 --rounding stochastic
run_cli quant_det --method quant --weight-bits 6 --rounding deterministic --quant-range 0.05 --method-all
run_cli quant_zl --method quant --weight-bits 2 --zeroless --quant-mode fake

# ---- bad method flags: one clear error line, exit 1 ----
expect_fail() {
  local what=$1
  shift
  "$FEWMUL" train --model mlp --data "$DATA" --steps 1 "$@" >out.txt 2>err.txt
  local rc=$?
  if [ $rc -ne 1 ] || [ "$(wc -l <err.txt)" -ne 1 ] || ! grep -q '^fewmul: error: ' err.txt; then
    bad "$what: exit $rc, $(head -c 300 err.txt)"
  else
    pass=$((pass + 1))
  fi
}
expect_fail "unknown method" --method binary
expect_fail "zeroless without quant" --method ternary --zeroless
expect_fail "bits for ternary" --method ternary --weight-bits 4
expect_fail "too many bits" --method deepshift-ps --weight-bits 9
expect_fail "zeroless 8 bits" --method quant --zeroless --weight-bits 8
expect_fail "bad rounding" --method quant --rounding nearest
expect_fail "bad range" --method quant --quant-range -1
expect_fail "method-all alone" --method-all

echo "methods_export: $pass passed, $fail failed"
[ $fail -eq 0 ]
