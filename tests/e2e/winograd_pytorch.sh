#!/bin/bash
# winograd_pytorch.sh - the PyTorch-exported fixtures (tests/e2e/pytorch) compiled with every
# eligible 3x3 conv forced to Winograd F(2,3), F(4,3) and F(6,3) (`--winograd 2|4|6`) match
# PyTorch's outputs like the im2col build does: F2/F4 every element within
# 1e-4 * (1 + |expected|) (npy_compare: --atol 1e-4 --rtol 1e-4), F6 within 1e-3 * (1 + |expected|),
# all with the same argmax; `fewmul cost` names the tile of each rewritten layer.
# Usage: bash winograd_pytorch.sh <fewmul-binary> <source-dir> <scratch-dir>   (77 = skipped)
set -u
FEWMUL=$(realpath "$1")
SRC=$(realpath "$2")
WORK=$3
FIX=$SRC/tests/e2e/pytorch
CMP=$SRC/tests/e2e/npy_compare.js
command -v node >/dev/null || { echo "skip: node is not installed (needed to compare .npy files)"; exit 77; }
command -v "${CC:-gcc}" >/dev/null || { echo "skip: no C compiler (${CC:-gcc})"; exit 77; }
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
pass=0 fail=0
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
for name in resnet_tiny lenet convmix export_ops; do
  onnx=$FIX/$name.onnx in=$FIX/${name}_input.npy ref=$FIX/${name}_output.npy
  for m in 2 4 6; do
    tol="--atol 1e-4 --rtol 1e-4 --argmax"
    [ $m = 6 ] && tol="--atol 1e-3 --rtol 1e-3 --argmax"
    if ! "$FEWMUL" compile "$onnx" -o "m_${name}_$m" --winograd $m -q >"c_${name}_$m.log" 2>&1; then
      bad "$name F$m: compile: $(head -c 300 "c_${name}_$m.log")"; continue
    fi
    if ! "$FEWMUL" run "m_${name}_$m" --input "$in" -o "r_${name}_$m" -q >"r_${name}_$m.log" 2>&1; then
      bad "$name F$m: run: $(head -c 300 "r_${name}_$m.log")"; continue
    fi
    if out=$(node "$CMP" "r_${name}_$m/output.npy" "$ref" $tol 2>&1); then
      echo "$name F$m: fewmul vs PyTorch: $out"; pass=$((pass + 1))
    else
      bad "$name F$m: fewmul vs PyTorch: $out"
    fi
  done
done
# the cost report names the tile (resnet_tiny has 3x3 stride-1 convs with a residual Add)
"$FEWMUL" cost "$FIX/resnet_tiny.onnx" --winograd 4 >cost.txt 2>&1 || bad "cost: $(head -c 300 cost.txt)"
grep -q 'Winograd\[F4+add\]' cost.txt && grep -q 'Winograd\[F4\]' cost.txt && pass=$((pass + 1)) ||
  bad "cost --winograd 4 does not show Winograd[F4] and Winograd[F4+add]: $(head -c 600 cost.txt)"
"$FEWMUL" cost "$FIX/resnet_tiny.onnx" --winograd off | grep -q Winograd && bad "cost --winograd off still shows Winograd" ||
  pass=$((pass + 1))
"$FEWMUL" compile "$FIX/resnet_tiny.onnx" -o bad --winograd 3 >bad.log 2>&1
rc=$?
[ $rc = 2 ] && grep -q "winograd must be auto, off, 2, 4 or 6" bad.log && pass=$((pass + 1)) ||
  bad "--winograd 3: exit $rc, $(head -c 300 bad.log)"
echo "winograd_pytorch: $pass passed, $fail failed"
[ "$fail" = 0 ]
