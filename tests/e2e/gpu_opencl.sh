#!/bin/bash
# gpu_opencl.sh - the OpenCL backend (--emit opencl) against the C backend, on whatever
# OpenCL platform is installed (PoCL in CI: OpenCL on the CPU). Every model is compiled
# twice (C, OpenCL), run on the same inputs, and every output compared: each element
# within ATOL + 1e-5 * |C| (ATOL 1e-5; the b-bit Winograd cases 5e-2 with the same argmax:
# a rounding flip in the quantised Winograd domain, see below).
# Models: the PyTorch fixtures (tests/e2e/pytorch, at batch 3 and 1), the trainer methods'
# exports (test_methods/test_sp/test_shift/test_winograd --e2e models: ternary,
# DeepShift, quantised, SPConv/SPGemm, Shift, WinogradConv) and fewmul train exports compiled
# with --specialize=all (TernaryConv, Pow2Conv, Pow2Gemm kernels). Also: --device errors,
# `fewmul info` shows the device, bench reports kernel_ms.
# Skips (77) when no OpenCL platform or device exists, or node is missing.
# Usage: bash gpu_opencl.sh <fewmul-binary> <source-dir> <scratch-dir>   (77 = skipped)
. "$(dirname "$0")/lib/common.sh"
need_no_llvm_conflict
need_node
command -v "${CC:-gcc}" >/dev/null || { echo "SKIP: no C compiler"; exit 77; }
enter_work
CMP=$SRC/tests/e2e/npy_compare.js
FIX=$SRC/tests/e2e/pytorch
RTOL=1e-5

# ---- probe: can this machine build and run an OpenCL model at all? ----
if ! "$FEWMUL" compile "$FIX/mlp.onnx" -o probe --emit opencl -q >probe.log 2>&1; then
  if grep -q "OpenCL headers" probe.log; then echo "SKIP: OpenCL headers or libOpenCL missing: $(head -c 300 probe.log)"; exit 77; fi
  echo "FAIL: compile --emit opencl: $(head -c 400 probe.log)"; exit 1
fi
"$FEWMUL" run probe --input "$FIX/mlp_input.npy" --device opencl:0 -q >probe.log 2>&1
if grep -q "no OpenCL platform\|no OpenCL device" probe.log; then echo "SKIP: $(head -c 300 probe.log)"; exit 77; fi

# both NAME ONNX ATOL "RUN-ARGS" [COMPILE-ARGS...]: C and OpenCL builds, outputs compared
both() {
  local name=$1 onnx=$2 atol=$3 runargs=$4 out f
  shift 4
  if ! "$FEWMUL" compile "$onnx" -o "c_$name" -q "$@" >cc.log 2>&1; then bad "$name: compile (C): $(head -c 300 cc.log)"; return; fi
  if ! "$FEWMUL" compile "$onnx" -o "g_$name" --emit opencl -q "$@" >cc.log 2>&1; then
    bad "$name: compile --emit opencl: $(head -c 300 cc.log)"; return
  fi
  # shellcheck disable=SC2086
  "$FEWMUL" run "c_$name" $runargs -o "rc_$name" -q >run.log 2>&1 || { bad "$name: run (C): $(head -c 300 run.log)"; return; }
  # shellcheck disable=SC2086
  "$FEWMUL" run "g_$name" $runargs --device opencl:0 -o "rg_$name" -q >run.log 2>&1 ||
    { bad "$name: run (OpenCL): $(head -c 300 run.log)"; return; }
  for f in "rc_$name"/*.npy; do
    # shellcheck disable=SC2086
    if out=$(node "$CMP" "rg_$name/$(basename "$f")" "$f" --atol $atol --rtol $RTOL 2>&1); then
      ok "$name $(basename "$f" .npy): OpenCL vs C: $out"
    else
      bad "$name $(basename "$f" .npy): OpenCL vs C: $out"
    fi
  done
}

# ---- the PyTorch fixtures ----
while read -r name batch; do
  case "$name" in ''|'#'*) continue ;; esac
  both "$name" "$FIX/$name.onnx" 1e-5 "--input $FIX/${name}_input.npy"
  if [ "$batch" = N ]; then
    node "$CMP" --head 1 "$FIX/${name}_input.npy" "${name}_in1.npy" &&
      both "${name}_b1" "$FIX/$name.onnx" 1e-5 "--input ${name}_in1.npy"
  fi
done <"$FIX/models.txt"
both resnet_tiny_nofuse "$FIX/resnet_tiny.onnx" 1e-5 "--input $FIX/resnet_tiny_input.npy" --no-fuse

# ---- the trainer methods' exports ----
for helper in test_methods test_sp test_shift test_winograd; do
  [ -x "$BIN/$helper" ] || { echo "note: $BIN/$helper is not built: its models are not checked"; continue; }
  mkdir -p "h_$helper" && (cd "h_$helper" && "$BIN/$helper" --e2e models >cases.txt 2>log.txt) ||
    { bad "$helper --e2e: $(head -c 300 "h_$helper/log.txt")"; continue; }
  while read -r c; do
    # b-bit Winograd domains: a value on a rounding boundary rounds either way when the sums
    # round differently (the C build contracts a*b+c into FMAs, OpenCL does not), and one
    # flip moves the outputs by a quantisation step (as in winograd_export.sh): 5e-2, same
    # argmax. resnet18_static_f2_8bit differs by 4.2e-2 from the default C build and is
    # bit-identical to CC="gcc -ffp-contract=off" with --conv=direct --gemm=direct.
    atol=1e-5
    case $c in *bit) atol="5e-2 --argmax" ;; esac
    both "${helper#test_}_$c" "h_$helper/models/$c.onnx" "$atol" "--input h_$helper/models/${c}_in.npy"
  done <"h_$helper/cases.txt"
done
DATA=synthetic:1x12x12:4
if [ -x "$MHELPER" ] && "$MHELPER" --data "$DATA" . >/dev/null 2>&1; then
  train() { # NAME ARGS...: fewmul train a few steps, compile with the add/shift kernels forced
    local name=$1
    shift
    if "$FEWMUL" train --model mnist_cnn --data "$DATA" --steps 4 --batch 16 --threads 2 --quiet -o "$name.onnx" "$@" \
        >"$name.txt" 2>"$name.err"; then
      both "$name" "$name.onnx" 1e-5 "--input x.npy" --specialize=all
    else
      bad "$name: fewmul train $*: $(head -c 300 "$name.err")"
    fi
  }
  train ternary --method ternary --method-all
  train shiftq --method deepshift-q --weight-bits 4 --method-all
  train shiftps --method deepshift-ps --weight-bits 5 --lr 0.1
  train sp --method sp --sp-r 0.5 --sp-patch 2 --method-all
  train winograd --method winograd --tile 4 --method-all
else
  echo "note: $MHELPER is not built: fewmul train exports are not checked"
fi

# ---- the device in the CLI ----
if "$FEWMUL" info g_mlp >info.txt 2>&1 && grep -q "^device: opencl:0 (" info.txt; then ok "info: $(grep '^device' info.txt)"
else bad "info does not show the device: $(head -c 300 info.txt)"; fi
"$FEWMUL" run g_mlp --input "$FIX/mlp_input.npy" --device opencl:99 >err.txt 2>&1
if [ $? -eq 1 ] && [ "$(wc -l <err.txt)" -eq 1 ] && grep -q "^fewmul: error: no OpenCL device opencl:99" err.txt; then ok "--device opencl:99: $(cat err.txt)"
else bad "--device opencl:99: $(head -c 300 err.txt)"; fi
"$FEWMUL" run c_mlp --input "$FIX/mlp_input.npy" --device opencl:0 >err.txt 2>&1
if [ $? -eq 1 ] && grep -q "^fewmul: error: .*compiled for cpu" err.txt; then ok "C model on opencl:0: $(cat err.txt)"
else bad "C model on --device opencl:0: $(head -c 300 err.txt)"; fi
if "$FEWMUL" bench g_mlp --device opencl:0 --batch 3 --iters 5 --warmup 1 >bench.txt 2>&1 &&
   grep -q "^kernel_ms: [0-9.]*" bench.txt && [ "$(tail -n 4 bench.txt | head -n 1 | cut -d: -f1)" = median_ms ]; then
  ok "bench --device: $(grep -E '^(kernel|median)_ms' bench.txt | tr '\n' ' ')"
else bad "bench --device: $(tail -c 300 bench.txt)"; fi

# a program that fails to build: one line naming model.cl, with the build log
mkdir -p broken && cp g_mlp/model.h g_mlp/model.weights broken/ &&
  sed 's/fm_g = (int64_t)get_global_id(0)/fm_g = undeclared_id/' g_mlp/model.c >broken/model.c &&
  "${CC:-gcc}" -O1 -shared -fPIC -DFM_SHARED -o broken/model.so broken/model.c -lOpenCL -lpthread 2>cc.log
"$FEWMUL" run broken --input "$FIX/mlp_input.npy" >err.txt 2>&1
if [ $? -eq 1 ] && [ "$(wc -l <err.txt)" -ge 1 ] && grep -q "^fewmul: error: OpenCL build of model.cl failed" err.txt &&
   grep -q "undeclared_id" err.txt; then ok "failing OpenCL build: $(head -c 120 err.txt)..."
else bad "failing OpenCL build: $(head -c 300 err.txt)"; fi

finish gpu_opencl
