#!/bin/bash
# pytorch_models.sh - PyTorch-exported CNNs and MLPs (tests/e2e/pytorch, made by
# tools/gen_pytorch_fixtures.py) compile with `fewmul compile`, and `fewmul run` matches
# PyTorch's outputs: every element within 1e-4 + 1e-3 * |expected|, and the same argmax.
# Models with a symbolic batch run at batch 3 and at batch 1 (so a batch size baked into
# the export by the tracer would show); resnet_tiny also with --no-fuse (unfolded BN).
# When ONNX Runtime is installed (tools/ort), also checks that ORT agrees with PyTorch on
# the fixtures themselves. Needs node (tests/e2e/npy_compare.js), not Python or torch.
# Usage: bash pytorch_models.sh <fewmul-binary> <source-dir> <scratch-dir>   (77 = skipped)
set -u
FEWMUL=$(realpath "$1")
SRC=$(realpath "$2")
WORK=$3
FIX=$SRC/tests/e2e/pytorch
CMP=$SRC/tests/e2e/npy_compare.js
ORT_RUN=$SRC/tools/ort/ort_run.js
TOL="--atol 1e-4 --rtol 1e-3 --argmax"

command -v node >/dev/null || { echo "skip: node is not installed (needed to compare .npy files)"; exit 77; }
command -v "${CC:-gcc}" >/dev/null || { echo "skip: no C compiler (${CC:-gcc})"; exit 77; }
[ -f "$FIX/models.txt" ] || { echo "FAIL: $FIX/models.txt is missing"; exit 1; }
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1

have_ort=0
if [ -d "$SRC/tools/ort/node_modules/onnxruntime-node" ]; then
  have_ort=1
else
  echo "ORT not installed, skipping the ORT check (bash scripts/install-deps.sh installs it)"
fi

pass=0
fail=0
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
# first line of a log, for one-line failure reports
first() { if grep -q . "$1"; then grep -m1 . "$1" | head -c 400; else echo "(exit $rc, no output)"; fi; }

while read -r name batch; do
  case "$name" in ''|'#'*) continue ;; esac
  onnx=$FIX/$name.onnx in=$FIX/${name}_input.npy ref=$FIX/${name}_output.npy
  for f in "$onnx" "$in" "$ref"; do [ -f "$f" ] || { bad "$name: $f is missing"; continue 2; }; done

  # fixture sanity: ONNX Runtime agrees with PyTorch
  if [ "$have_ort" = 1 ]; then
    node "$ORT_RUN" "$onnx" "ort_$name" "$in" >"ort_$name.log" 2>&1
    rc=$?
    if [ "$rc" = 77 ]; then
      echo "ORT not installed, skipping the ORT check"
      have_ort=0
    elif [ "$rc" != 0 ]; then
      bad "$name: ORT failed to run the fixture: $(first "ort_$name.log")"
    elif out=$(node "$CMP" "ort_$name/output.npy" "$ref" $TOL 2>&1); then
      echo "$name: ORT vs PyTorch: $out"
      pass=$((pass + 1))
    else
      bad "$name: ORT vs PyTorch: $out"
    fi
  fi

  "$FEWMUL" compile "$onnx" -o "m_$name" -q >"compile_$name.log" 2>&1
  rc=$?
  if [ "$rc" != 0 ]; then
    bad "$name: fewmul compile: $(first "compile_$name.log")"
    continue
  fi
  "$FEWMUL" run "m_$name" --input "$in" -o "r_$name" -q >"run_$name.log" 2>&1
  rc=$?
  if [ "$rc" != 0 ]; then
    bad "$name: fewmul run (batch 3): $(first "run_$name.log")"
  elif out=$(node "$CMP" "r_$name/output.npy" "$ref" $TOL 2>&1); then
    echo "$name: fewmul vs PyTorch (batch 3): $out"
    pass=$((pass + 1))
  else
    bad "$name: fewmul vs PyTorch (batch 3): $out"
  fi

  # a smaller batch than the one the exporter traced
  [ "$batch" = N ] || continue
  node "$CMP" --head 1 "$in" "${name}_in1.npy" && node "$CMP" --head 1 "$ref" "${name}_ref1.npy" || {
    bad "$name: slicing the batch-1 input"; continue; }
  "$FEWMUL" run "m_$name" --input "${name}_in1.npy" -o "r1_$name" -q >"run1_$name.log" 2>&1
  rc=$?
  if [ "$rc" != 0 ]; then
    bad "$name: fewmul run (batch 1): $(first "run1_$name.log")"
  elif out=$(node "$CMP" "r1_$name/output.npy" "${name}_ref1.npy" $TOL 2>&1); then
    echo "$name: fewmul vs PyTorch (batch 1): $out"
    pass=$((pass + 1))
  else
    bad "$name: fewmul vs PyTorch (batch 1): $out"
  fi
done <"$FIX/models.txt"

# BatchNormalization kept unfolded (--no-fuse): the BN kernels themselves against PyTorch
name=resnet_tiny
if [ -f "$FIX/$name.onnx" ]; then
  "$FEWMUL" compile "$FIX/$name.onnx" -o "nf_$name" --no-fuse -q >"compile_nf_$name.log" 2>&1
  rc=$?
  if [ "$rc" != 0 ]; then
    bad "$name --no-fuse: fewmul compile: $(first "compile_nf_$name.log")"
  else
    "$FEWMUL" run "nf_$name" --input "$FIX/${name}_input.npy" -o "rnf_$name" -q >"run_nf_$name.log" 2>&1
    rc=$?
    if [ "$rc" != 0 ]; then
      bad "$name --no-fuse: fewmul run: $(first "run_nf_$name.log")"
    elif out=$(node "$CMP" "rnf_$name/output.npy" "$FIX/${name}_output.npy" $TOL 2>&1); then
      echo "$name --no-fuse: fewmul vs PyTorch (batch 3): $out"
      pass=$((pass + 1))
    else
      bad "$name --no-fuse: fewmul vs PyTorch (batch 3): $out"
    fi
  fi
fi

echo "pytorch_models: $pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
