#!/bin/bash
# import_onnx.sh - `fewmul train --from model.onnx` without --model (trainer/onnx_import.c):
# PyTorch-exported models (tests/e2e/pytorch: resnet_tiny, lenet, mlp; tests/e2e/import: mix,
# made by tools/gen_import_fixtures.py) become trainable nets.
#  (a) --epochs 0 --predict: the imported net's outputs = ONNX Runtime's on the original file
#      (max abs diff <= 1e-5; PyTorch's outputs when ORT is not installed); the re-export runs
#      in ONNX Runtime (same outputs) and in fewmul;
#  (b) every --method converts the imported layers, trains 2 steps, exports; ONNX Runtime and
#      fewmul run the export and agree with the trainer's --predict;
#  (c) an op outside the trainable set, a data set of another image size or class count, a
#      model without initialisers, a missing file: one error line naming file and node, exit 1.
# Usage: bash import_onnx.sh <fewmul-binary> <source-dir> <scratch-dir>   (77 = skipped)
. "$(dirname "$0")/lib/common.sh"
need_node
enter_work
CMP=$SRC/tests/e2e/npy_compare.js
have_ort=1
node "$ORT" "$SRC/tests/e2e/pytorch/mlp.onnx" ort_probe "$SRC/tests/e2e/pytorch/mlp_input.npy" >probe.log 2>&1
[ $? -eq 77 ] && { have_ort=0; echo "note: ONNX Runtime not installed: comparing with PyTorch's outputs"; }

# name  file  data
MODELS="resnet_tiny:pytorch/resnet_tiny:synthetic:3x32x32:10
lenet:pytorch/lenet:synthetic:1x28x28:10
mlp:pytorch/mlp:synthetic:20x1x1:5
mix:import/mix:synthetic:3x16x16:5"
train() { "$FEWMUL" train --threads 2 --batch 16 --subset 64 --test-subset 16 "$@"; }

# compare GOT REF TOL LABEL
compare() {
  local out
  if out=$(node "$CMP" "$1" "$2" --atol "$3" --rtol 0 2>&1); then ok "$4: $out"; else bad "$4: $out"; fi
}
# runs ONNX.onnx in ORT (when installed) and in fewmul on IN, both against REF
run_both() {   # NAME ONNX IN REF TOL
  local name=$1 onnx=$2 in=$3 ref=$4 tol=$5
  if [ $have_ort = 1 ]; then
    if node "$ORT" "$onnx" "ort_$name" "$in" >ort.log 2>&1; then compare "ort_$name/output.npy" "$ref" "$tol" "$name in ONNX Runtime"
    else bad "$name: ONNX Runtime: $(head -c 300 ort.log)"; fi
  fi
  if ! "$FEWMUL" compile "$onnx" -o "c_$name" -q >cc.log 2>&1; then bad "$name: fewmul compile: $(head -c 300 cc.log)"
  elif ! "$FEWMUL" run "c_$name" --input "$in" -o "r_$name" -q >run.log 2>&1; then bad "$name: fewmul run: $(head -c 300 run.log)"
  else compare "r_$name/output.npy" "$ref" 1e-4 "$name in fewmul"; fi
}

# ---- (a) import as is ----
while IFS=: read -r name file data; do
  onnx=$SRC/tests/e2e/$file.onnx in=$SRC/tests/e2e/${file}_input.npy ref=$SRC/tests/e2e/${file}_output.npy
  if [ $have_ort = 1 ]; then
    node "$ORT" "$onnx" "ref_$name" "$in" >ort.log 2>&1 || bad "$name: ORT on the fixture: $(head -c 300 ort.log)"
    ref=ref_$name/output.npy
  fi
  if ! train --from "$onnx" --data "$data" --epochs 0 --predict "$in" --predict-out "p_$name.npy" -o "re_$name.onnx" \
       >"$name.txt" 2>"$name.err"; then
    bad "$name: import: $(head -c 400 "$name.err")"
    continue
  fi
  compare "p_$name.npy" "$ref" 1e-5 "$name imported, --epochs 0, vs $([ $have_ort = 1 ] && echo ONNX Runtime || echo PyTorch)"
  grep -q "^from .*: built [0-9]* layers" "$name.err" || bad "$name: no 'built' line: $(head -c 300 "$name.err")"
  run_both "re_$name" "re_$name.onnx" "$in" "$ref" 1e-5
done <<<"$MODELS"

# ---- (b) each method on the imported layers ----
method() {   # NAME MODEL ARGS...
  local name=$1 model=$2
  shift 2
  local file data
  IFS=: read -r _ file data < <(grep "^$model:" <<<"$MODELS")
  local onnx=$SRC/tests/e2e/$file.onnx in=$SRC/tests/e2e/${file}_input.npy
  if ! train --from "$onnx" --data "$data" --steps 2 --predict "$in" --predict-out "p_$name.npy" -o "$name.onnx" "$@" \
       >"$name.txt" 2>"$name.err"; then
    bad "$name: fewmul train --from $file.onnx $*: $(head -c 400 "$name.err")"
    return
  fi
  grep -q "^method: " "$name.err" || bad "$name: no method line"
  run_both "$name" "$name.onnx" "$in" "p_$name.npy" 1e-4
}
method rt_ternary resnet_tiny --method ternary
method rt_shiftq resnet_tiny --method deepshift-q
method rt_shiftps resnet_tiny --method deepshift-ps
method rt_quant resnet_tiny --method quant --weight-bits 4 --rounding deterministic
method rt_sp resnet_tiny --method sp
method rt_wino resnet_tiny --method winograd --tile 2 --transforms flex
method mix_ternary_all mix --method ternary --method-all
method mix_quant mix --method quant --weight-bits 4
method mlp_shiftps mlp --method deepshift-ps --method-all
method lenet_sp lenet --method sp
# SP from the dense W (r = c_out, 1x1 patches): W_B = W, W_C = I, a and BN calibrated; in
# phase 1 (full precision) the SP net is the dense net itself, on any input
for m in resnet_tiny lenet; do
  IFS=: read -r _ file data < <(grep "^$m:" <<<"$MODELS")
  if train --from "$SRC/tests/e2e/$file.onnx" --data "$data" --epochs 0 --method sp --sp-phase 1 --method-all \
       --predict "$SRC/tests/e2e/${file}_input.npy" --predict-out "sp1_$m.npy" >"sp1_$m.txt" 2>"sp1_$m.err"; then
    grep -q "SP layers start from the dense W" "sp1_$m.err" || bad "sp1_$m: no 'start from the dense W' line"
    compare "sp1_$m.npy" "p_$m.npy" 1e-4 "$m: SP phase 1 from the dense W = the dense net"
  else
    bad "sp1_$m: $(head -c 300 "sp1_$m.err")"
  fi
done
if grep -q "P = log2|W|" rt_shiftps.err; then ok "deepshift-ps starts from the imported W"; else bad "rt_shiftps: no P = log2|W| line"; fi
if grep -q "transforms start from Cook-Toom" rt_wino.err; then ok "winograd adapt: flex transforms from Cook-Toom"; else bad "rt_wino: no Cook-Toom line"; fi

# ---- (c) one clear error line ----
fails_naming() {   # WHAT PATTERN ARGS...
  local what=$1 pat=$2
  shift 2
  expect_fail "$what" --epochs 0 --test-subset 16 "$@"
  if grep -q -- "$pat" err.txt; then ok "$what: $(cat err.txt)"; else bad "$what: the error does not say '$pat': $(head -c 300 err.txt)"; fi
}
P=$SRC/tests/e2e/pytorch
fails_naming "op outside the trainable set" "node '/hs/HardSwish' is HardSwish" --from "$P/convmix.onnx" --data synthetic:3x16x16:7
fails_naming "other image size" "input 'input' is Nx3x32x32, the data set's images are 1x28x28" --from "$P/resnet_tiny.onnx" --data synthetic:1x28x28:10
fails_naming "other class count" "10 classes, the data set has 4" --from "$P/resnet_tiny.onnx" --data synthetic:3x32x32:4
fails_naming "mlp of another width" "is 3x20" --from "$P/mlp.onnx" --data synthetic:1x28x28:5
fails_naming "no initialisers" "has no weights" --from "$SRC/tests/e2e/import/noweights.onnx" --data synthetic:3x8x8:3
fails_naming "missing file" "nothere.onnx" --from nothere.onnx --data synthetic:3x8x8:3
head -c 3000 "$P/resnet_tiny.onnx" >trunc.onnx
fails_naming "truncated file" "trunc.onnx" --from trunc.onnx --data synthetic:3x32x32:10
fails_naming "bad --predict" "expected float32" --from "$P/mlp.onnx" --data synthetic:20x1x1:5 --predict "$P/lenet_input.npy" --quiet

finish import_onnx
