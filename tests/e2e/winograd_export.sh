#!/bin/bash
# winograd_export.sh - Winograd-aware convs end to end: train Winograd models a few steps on
# synthetic data (test_winograd --e2e: static and flex transforms, F2/F4/F6, float and 8/4-bit
# Winograd domains, mnist_cnn with pad-0 convs and crops, resnet18), export ONNX (ai.fewmul
# WinogradConv with its function body in standard ops), and compare ONNX Runtime AND
# `fewmul compile` + `fewmul run` against the trainer's eval forward: max abs diff < 1e-4 and
# identical argmax. Quantised cases: ONNX Runtime < 2e-2; fewmul < 5e-2 * max(1, max|output|):
# see docs/METHODS.md, a value whose x/s lies on a rounding boundary can round either way when
# the float sums run in another order (fewmul's GEMMs use FMA, the trainer and ORT do not), and
# one such flip moves the outputs by a quantisation step; the argmax must still agree.
# Then the CLI: --method winograd on mnist_cnn and resnet18, and bad flags.
# Usage: bash winograd_export.sh <fewmul-binary> <source-dir> <scratch-dir>   (77 = skipped)
. "$(dirname "$0")/lib/common.sh"
HELPER=$BIN/test_winograd
need_helper "$HELPER"
need_node
enter_work

e2e_models "$HELPER"

while read -r c; do
  tol=1e-4 ctol=1e-4
  case $c in *bit) tol=2e-2 ctol=-5e-2 ;; esac
  grep -q 'WinogradConv' "models/$c.onnx" || bad "$c: no WinogradConv in the model"
  ort_case "$HELPER" "$c" "$tol" "$c ORT"
  compiled_case "$HELPER" "$c" "$ctol"
done <cases.txt

# ---- the CLI: ORT's test accuracy = the trainer's ----
accuracy_data synthetic:1x12x12:4
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

expect_fail "bad tile" --model mlp --data "$DATA" --steps 1 --method winograd --tile 3
expect_fail "bad transforms" --model mlp --data "$DATA" --steps 1 --method winograd --transforms learned
expect_fail "bad bits" --model mlp --data "$DATA" --steps 1 --method winograd --bits 1
expect_fail "winograd flag without winograd" --model mlp --data "$DATA" --steps 1 --method ternary --tile 4
expect_fail "quantiser flag with winograd" --model mlp --data "$DATA" --steps 1 --method winograd --weight-bits 4

finish winograd_export
