#!/bin/bash
# methods_export.sh - training methods end to end: train a few steps under each method
# (ternary, DeepShift-Q/-PS, quantised weights), export ONNX (ai.fewmul ops with their
# function bodies, or QDQ), run the model in ONNX Runtime and compare with the trainer's
# own eval forward: max abs diff < 1e-4 and the same argmax. Then the same through the
# CLI: `fewmul train --method ...` on synthetic data, its test accuracy against ORT's.
# Usage: bash methods_export.sh <fewmul-binary> <source-dir> <scratch-dir>   (77 = skipped)
. "$(dirname "$0")/lib/common.sh"
HELPER=$BIN/test_methods
need_helper "$HELPER"
need_node
enter_work

e2e_models "$HELPER"

# ---- helper-trained models: ORT against the trainer's eval forward ----
while read -r c; do
  ort_case "$HELPER" "$c" 1e-4 "$c"
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
    ok "cli $name: test accuracy $want% in the trainer and in ONNX Runtime"
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
run_cli shiftps_fx --method deepshift-ps --act-fixed 3.3 --lr 0.1
run_cli shiftq_fx --method deepshift-q --act-fixed 16.16 --method-all
run_cli quant_zl --method quant --weight-bits 2 --zeroless --quant-mode fake

# ---- bad method flags: one clear error line, exit 1 ----
train_fails() {   # WHAT ARGS...: fewmul train --model mlp --data $DATA --steps 1 ARGS
  local what=$1
  shift
  expect_fail "$what" --model mlp --data "$DATA" --steps 1 "$@"
}
train_fails "unknown method" --method binary
train_fails "zeroless without quant" --method ternary --zeroless
train_fails "bits for ternary" --method ternary --weight-bits 4
train_fails "too many bits" --method deepshift-ps --weight-bits 9
train_fails "zeroless 8 bits" --method quant --zeroless --weight-bits 8
train_fails "bad rounding" --method quant --rounding nearest
train_fails "bad range" --method quant --quant-range -1
train_fails "method-all alone" --method-all
train_fails "act-fixed for quant" --method quant --act-fixed 16.16
train_fails "act-fixed not I.F" --method deepshift-q --act-fixed 16
train_fails "act-fixed too wide" --method deepshift-ps --act-fixed 24.16
train_fails "shift-lr for deepshift-q" --method deepshift-q --shift-lr 0.1
train_fails "shift-lr not positive" --method deepshift-ps --shift-lr 0

# ---- the DeepShift-PS preset (docs/METHODS.md): RAdam, lr 1e-3, P and S at 0.1; --lr alone sets both ----
ps_lrs() {   # NAME WANT ARGS...: the "P and S at lr X, the other parameters at lr Y" line
  local name=$1 want=$2
  shift 2
  "$FEWMUL" train --model mnist_cnn --data "$DATA" --steps 1 --batch 32 --threads 2 --method deepshift-ps "$@" \
    >"$name.txt" 2>"$name.err"
  local line
  line=$(grep '^deepshift-ps: P and S at lr' "$name.err")
  if [ "$line" = "deepshift-ps: P and S at lr $want (scheduled alike)" ]; then ok "$name: $line"
  else bad "$name: '$line', want 'P and S at lr $want'"; fi
}
ps_lrs ps_preset "0.1, the other parameters at lr 0.001"
grep -q '^train .* radam lr 0.001,' ps_preset.err || bad "ps_preset: not RAdam lr 0.001: $(head -n 1 ps_preset.err)"
ps_lrs ps_lr "0.05, the other parameters at lr 0.05" --lr 0.05
ps_lrs ps_shift_lr "0.2, the other parameters at lr 0.003" --lr 0.003 --shift-lr 0.2

finish methods_export
