#!/bin/bash
# deployed_models.sh - the models people deploy (issue 16): MobileNetV2, MobileNetV3-small
# (opsets 11 and 17), ShuffleNetV2, EfficientNet-B0 (first stages) and a conv + transformer
# recogniser (opsets 11 and 17), exported by Debian's python3-torchvision at reduced width
# (tools/gen_deployed_models.py --small, generated here: too large to check in). Each
# compiles with `fewmul compile`, runs at batch 3 and 1, and must match PyTorch and, where
# onnxruntime-node is installed, ONNX Runtime, within 1e-4 * (1 + |y|) per element.
# Skips (77) without /usr/bin/python3 + torch, or without node.
. "$(dirname "$0")/lib/common.sh"
need_node
CMP=$SRC/tests/e2e/npy_compare.js
TOL="--atol 1e-4 --rtol 1e-4"
if ! /usr/bin/python3 -c 'import torch, torchvision, onnx' 2>/dev/null; then
  echo "SKIP: Debian's python3-torch/python3-torchvision/python3-onnx are not installed (scripts/install-deps.sh)"
  exit 77
fi
enter_work
/usr/bin/python3 "$SRC/tools/gen_deployed_models.py" models --small >gen.log 2>&1 ||
  { echo "FAIL: generating the models: $(grep -v Warning gen.log | tail -3)"; exit 1; }

have_ort=1
[ -d "$SRC/tools/ort/node_modules/onnxruntime-node" ] ||
  { have_ort=0; echo "note: onnxruntime-node is not installed: comparing with PyTorch only"; }

# check LABEL GOT REF: one comparison
check() {
  local out
  if out=$(node "$CMP" "$2" "$3" $TOL 2>&1); then ok "$1: $out"; else bad "$1: $out"; fi
}

for onnx in models/*.onnx; do
  name=$(basename "$onnx" .onnx)
  in=models/${name}_input.npy ref=models/${name}_output.npy
  node "$CMP" --head 1 "$in" "${name}_in1.npy" && node "$CMP" --head 1 "$ref" "${name}_ref1.npy" ||
    { bad "$name: slicing the batch-1 input"; continue; }
  if ! "$FEWMUL" compile "$onnx" -o "m_$name" -q >"compile_$name.log" 2>&1; then
    bad "$name: fewmul compile: $(head -c 400 "compile_$name.log")"
    continue
  fi
  for b in 3 1; do
    x=$in r=$ref
    [ $b = 1 ] && { x=${name}_in1.npy; r=${name}_ref1.npy; }
    if ! "$FEWMUL" run "m_$name" --input "$x" -o "r${b}_$name" -q >"run_$name.log" 2>&1; then
      bad "$name batch $b: fewmul run: $(head -c 400 "run_$name.log")"
      continue
    fi
    check "$name batch $b: fewmul vs PyTorch" "r${b}_$name/output.npy" "$r"
    if [ $have_ort = 1 ]; then
      if node "$ORT" "$onnx" "o${b}_$name" "$x" >"ort_$name.log" 2>&1; then
        check "$name batch $b: fewmul vs ONNX Runtime" "r${b}_$name/output.npy" "o${b}_$name/output.npy"
      else
        bad "$name batch $b: ONNX Runtime failed: $(head -c 300 "ort_$name.log")"
      fi
    fi
  done
done
finish deployed_models
