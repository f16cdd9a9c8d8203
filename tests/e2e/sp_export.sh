#!/bin/bash
# sp_export.sh - StrassenNets SP layers end to end: train SP models a few steps on synthetic
# data (test_sp --e2e: ternary, full-precision and frozen phases, 1x1 and 2x2 output patches
# with crops, sp_resnet20, sp_mlp), export ONNX (ai.fewmul SPConv / SPGemm with their
# function bodies, or standard ops in phase 1), and compare ONNX Runtime AND `fewmul compile`
# + `fewmul run` against the trainer's eval forward: max abs diff < 1e-4, identical argmax.
# Then the CLI: --method sp, the recipe in one run, the three phases through checkpoints
# (--sp-phase, --from), bad flags; and `--task matmul2x2 --r 7`: the learned Strassen model
# in ONNX Runtime and compiled, against exact products, with `fewmul cost` (exactly 7
# multiplications per sample: its MatMuls with {-1,0,1} constants compile to adds only), and
# `--task matmul3x3 --r 27` and `--r 23 --seed 104` (Laderman's count, the ALS solver)
# compiled and costed the same way. SPConv / SPGemm
# compile natively (compiler/ops/fewmul_sp.c): `fewmul cost` of an all-SP mnist_cnn must show r
# multiplications per output patch, far below the dense net's.
# Usage: bash sp_export.sh <fewmul-binary> <source-dir> <scratch-dir>   (77 = skipped)
. "$(dirname "$0")/lib/common.sh"
HELPER=$BIN/test_sp
need_helper "$HELPER"
need_node
enter_work

e2e_models "$HELPER"

# ---- helper-trained models: ORT and the compiler against the trainer's eval forward ----
while read -r c; do
  grep -q 'ai.fewmul' "models/$c.onnx" || [ "$c" = cnn_phase1 ] || bad "$c: no ai.fewmul op in the model"
  ort_case "$HELPER" "$c" 1e-4 "$c ORT"
  compiled_case "$HELPER" "$c" 1e-4
done <cases.txt

# ---- the CLI: ORT's test accuracy = the trainer's ----
accuracy_data synthetic:1x12x12:4
T="--data $DATA --batch 32 --threads 2"
if "$FEWMUL" train --model mnist_cnn $T --steps 12 --method sp --sp-r 0.5 --sp-patch 2 --method-all --quiet \
    -o cli.onnx >cli.txt 2>cli.err; then same_acc sp_cnn cli.onnx cli.txt
else bad "cli --method sp: $(head -c 400 cli.err)"; fi

# the recipe in one command: three phases, a fresh optimiser at each
if "$FEWMUL" train --model sp_mlp $T --subset 256 --sp-recipe 1,1,1 -o recipe.onnx >recipe.txt 2>recipe.err &&
   grep -q 'sp phase 2 from epoch 2, lr 0.01' recipe.err && grep -q 'sp phase 3 from epoch 3, lr 0.001' recipe.err; then
  ok "cli --sp-recipe 1,1,1: phases 1 -> 2 -> 3"
  same_acc recipe recipe.onnx recipe.txt
else bad "cli --sp-recipe: $(head -c 600 recipe.err)"; fi

# the same phases through checkpoints
P="--model mnist_cnn $T --subset 256 --epochs 1 --method sp --sp-patch 2 --quiet"
if "$FEWMUL" train $P --sp-phase 1 --lr 0.05 --checkpoint p1.fm >p1.txt 2>p1.err &&
   "$FEWMUL" train $P --sp-phase 2 --lr 0.01 --from p1.fm --checkpoint p2.fm >p2.txt 2>p2.err &&
   "$FEWMUL" train $P --sp-phase 3 --lr 0.001 --from p2.fm -o p3.onnx >p3.txt 2>p3.err; then
  ok "cli --sp-phase 1, 2 --from, 3 --from"
  same_acc phases p3.onnx p3.txt
else bad "cli phases: $(cat p1.err p2.err p3.err | head -c 600)"; fi
# phase 1 exports standard ops with float weights
if "$FEWMUL" train $P --sp-phase 1 -o p1.onnx >p1e.txt 2>&1; then same_acc phase1 p1.onnx p1e.txt
else bad "cli phase 1 export: $(head -c 300 p1e.txt)"; fi

expect_fail "sp flag without sp" --model mlp --data "$DATA" --steps 1 --method ternary --sp-r 2
expect_fail "bad phase" --model mlp --data "$DATA" --steps 1 --method sp --sp-phase 4
expect_fail "bad recipe" --model mlp --data "$DATA" --steps 1 --method sp --sp-recipe 1,2
expect_fail "recipe and phase" --model mlp --data "$DATA" --steps 1 --method sp --sp-recipe 1,1,1 --sp-phase 2
expect_fail "sp model, other method" --model sp_mlp --data "$DATA" --steps 1 --method ternary
expect_fail "missing --from" --model mlp --data "$DATA" --steps 1 --method sp --from nope.fm
expect_fail "unknown task" --task sort --r 7

# ---- fewmul cost: SPConv / SPGemm compile natively, r multiplications per output patch ----
# mnist_cnn with every layer SP (r = c_out, 2x2 patches) against the same net dense: each
# SPConv must cost M x ceil(OH/2) x ceil(OW/2) multiplications (r = M per 2x2 patch), each
# SPGemm M (r = M), and the whole model under 1% of the dense model's.
CT="--model mnist_cnn --data synthetic:1x12x12:4 --steps 1 --quiet"
if "$FEWMUL" train $CT --method sp --sp-patch 2 --method-all -o spcost.onnx >/dev/null 2>spc.err &&
   "$FEWMUL" train $CT -o dense.onnx >/dev/null 2>dn.err &&
   "$FEWMUL" cost spcost.onnx >spcost.txt 2>&1 && "$FEWMUL" cost dense.onnx >dcost.txt 2>&1; then
  spm=$(sed -n 's/^batch: .* multiplications: \([0-9]*\).*/\1/p' spcost.txt)
  dnm=$(sed -n 's/^batch: .* multiplications: \([0-9]*\).*/\1/p' dcost.txt)
  rows=$(awk '$2 == "SPConv" { split($3, d, "x"); n++; if ($5 != d[2] * int((d[3] + 1) / 2) * int((d[4] + 1) / 2)) w++ }
              $2 == "SPGemm" { split($3, d, "x"); n++; if ($5 != d[2]) w++ }
              END { print n + 0, w + 0 }' spcost.txt)
  if [ "$rows" = "4 0" ] && [ -n "$spm" ] && [ -n "$dnm" ] && [ "$spm" -lt $((dnm / 100)) ]; then
    ok "fewmul cost: 2 SPConv + 2 SPGemm native, r multiplications per output patch; $spm multiplications vs $dnm dense"
  else bad "fewmul cost of an SP model (SP nodes, wrong counts: $rows; $spm vs $dnm): $(head -c 1500 spcost.txt)"; fi
else bad "fewmul cost of an SP model: $(cat spc.err dn.err spcost.txt dcost.txt 2>/dev/null | head -c 600)"; fi

# ---- Strassen: the learned 2x2 product with 7 multiplications ----
if "$FEWMUL" train --task matmul2x2 --r 7 -o strassen.onnx >mm.txt 2>mm.err && grep -q 'exact' mm.txt; then
  ok "matmul2x2 r=7: $(grep '^attempts' mm.txt)"
  "$HELPER" --matmul 2 . || bad "helper --matmul"
  if ! node "$ORT" strassen.onnx ort_mm A=A.npy B=B.npy >ort.log 2>&1; then bad "strassen ORT: $(head -c 300 ort.log)"
  elif out=$("$HELPER" --compare C.npy ort_mm/C.npy 1e-4); then ok "strassen ORT: $out"
  else bad "strassen ORT: $out"; fi
  if "$FEWMUL" compile strassen.onnx -o cm_mm -q >cc.log 2>&1 &&
     "$FEWMUL" run cm_mm --input A=A.npy --input B=B.npy -o run_mm -q >run.log 2>&1 &&
     out=$("$HELPER" --compare C.npy run_mm/C.npy 1e-4); then ok "strassen compiled: $out"
  else bad "strassen compiled: $(cat cc.log run.log | head -c 300) ${out:-}"; fi
  # the three MatMuls with {-1,0,1} constants compile to TernaryGemm with Alpha 1: adds only,
  # so the model costs exactly its 7 products per sample (and no shifts)
  for nb in 1 5; do
    if "$FEWMUL" cost strassen.onnx --batch $nb >cost$nb.txt 2>&1 &&
       grep -Eq "^products +Mul .* $((7 * nb)) " cost$nb.txt &&
       [ "$(awk '$2 == "TernaryGemm" && $5 == 0 { n++ } END { print n + 0 }' cost$nb.txt)" = 3 ] &&
       grep -Eq "^batch: $nb .* multiplications: $((7 * nb)) .* shifts: 0\$" cost$nb.txt; then
      ok "fewmul cost --batch $nb: $((7 * nb)) multiplications (the products), 3 TernaryGemm with 0"
    else bad "fewmul cost --batch $nb: $(head -c 1200 cost$nb.txt)"; fi
  done
  # the generated C: the ternary kernel is called without Alpha (hasalpha = 0)
  if [ "$(grep -c 'fm_ternary_gemm(0, N, ' cm_mm/model.c)" = 3 ] &&
     ! grep -E 'fm_ternary_gemm\(0, N, ([^,]*,){8} *1,' cm_mm/model.c >/dev/null; then
    ok "strassen model.c: 3 fm_ternary_gemm calls, none with Alpha"
  else bad "strassen model.c: $(grep 'fm_ternary_gemm(0, N' cm_mm/model.c | head -c 600)"; fi
else bad "matmul2x2 r=7: $(cat mm.txt mm.err | tail -5)"; fi
# a 3x3 product model with r multiplications ($1, its ONNX $2): compiled and run against
# exact products (1e-4), and `fewmul cost` shows r multiplications, 3 add-only TernaryGemm
check_3x3() {
  local r=$1 m=$2 out=""
  [ -d mm3 ] || { mkdir -p mm3 && "$HELPER" --matmul 3 mm3; } || bad "helper --matmul 3"
  if "$FEWMUL" compile "$m" -o "cm_r$r" -q >"cc_r$r.log" 2>&1 &&
     "$FEWMUL" run "cm_r$r" --input A=mm3/A.npy --input B=mm3/B.npy -o "run_r$r" -q >"run_r$r.log" 2>&1 &&
     out=$("$HELPER" --compare mm3/C.npy "run_r$r/C.npy" 1e-4); then ok "matmul3x3 r=$r compiled: $out"
  else bad "matmul3x3 r=$r compiled: $(cat "cc_r$r.log" "run_r$r.log" | head -c 300) $out"; fi
  if "$FEWMUL" cost "$m" >"cost_r$r.txt" 2>&1 && grep -Eq "^batch: 1 .* multiplications: $r " "cost_r$r.txt" &&
     [ "$(awk '$2 == "TernaryGemm" && $5 == 0 { n++ } END { print n + 0 }' "cost_r$r.txt")" = 3 ]; then
    ok "fewmul cost of matmul3x3 r=$r: $r multiplications"
  else bad "fewmul cost of matmul3x3 r=$r: $(head -c 1200 "cost_r$r.txt")"; fi
}
# 3x3 with r = 27 (found in a few attempts)
if "$FEWMUL" train --task matmul3x3 --r 27 --quiet -o m3.onnx >mm3.txt 2>&1 && grep -q 'exact' mm3.txt; then
  check_3x3 27 m3.onnx
else bad "matmul3x3 r=27: $(tail -5 mm3.txt)"; fi
# 3x3 with r = 23 (Laderman's count): the ALS solver from seed 104, which succeeds in its first
# attempt (about 10 s); exact on the tensor and on random pairs
if "$FEWMUL" train --task matmul3x3 --r 23 --seed 104 --attempts 1 --quiet -o m23.onnx >mm23.txt 2>&1 &&
   grep -Eq '^attempts: 1, .* -> exact$' mm23.txt; then
  ok "matmul3x3 r=23 (als): $(grep '^attempts' mm23.txt)"
  check_3x3 23 m23.onnx
else bad "matmul3x3 r=23: $(tail -5 mm23.txt)"; fi
if "$FEWMUL" train --task matmul2x2 --r 8 --quiet >mm8.txt 2>&1; then ok "matmul2x2 r=8 (naive count): $(grep '^attempts' mm8.txt)"
else bad "matmul2x2 r=8: $(tail -3 mm8.txt)"; fi

finish sp_export
