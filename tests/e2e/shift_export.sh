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
. "$(dirname "$0")/lib/common.sh"
HELPER=$BIN/test_shift
need_helper "$HELPER"
need_node
enter_work

e2e_models "$HELPER"

while read -r c; do
  grep -q 'ai.fewmul' "models/$c.onnx" || bad "$c: no ai.fewmul op in the model"
  ort_case "$HELPER" "$c" 1e-4 "$c ORT"
  compiled_case "$HELPER" "$c" 1e-4
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

expect_fail "--expansion on another model" --model resnet20 --data "$DATA" --steps 1 --expansion 3
expect_fail "--expansion 10" --model shiftresnet20 --data "$DATA" --steps 1 --expansion 10

finish shift_export
