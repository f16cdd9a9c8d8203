#!/bin/bash
# gpu_conformance.sh - the ONNX backend test cases of the ops the CNN/MLP family uses,
# compiled with --emit opencl and run on the installed OpenCL platform (PoCL in CI):
# fm_conformance --emit opencl --filter FAMILIES, held to the C backend's lists plus
# tests/conformance/opencl_known_failures.txt (cases that fail on OpenCL only, with the
# reason). The whole suite is not run: every case builds its own OpenCL program, which
# PoCL compiles in seconds. Skips (77) without libonnx-testdata or an OpenCL platform.
# Usage: bash gpu_conformance.sh <fewmul-binary> <source-dir> <scratch-dir>   (77 = skipped)
. "$(dirname "$0")/lib/common.sh"
need_no_llvm_conflict
CONF=$BIN/fm_conformance
DATA=/usr/share/libonnx-testdata/data
need_helper "$CONF"
[ -d "$DATA/node" ] || { echo "SKIP: libonnx-testdata is not installed"; exit 77; }
enter_work
"$FEWMUL" compile "$SRC/tests/e2e/pytorch/mlp.onnx" -o probe --emit opencl -q >probe.log 2>&1 &&
  "$FEWMUL" run probe --input "$SRC/tests/e2e/pytorch/mlp_input.npy" -q >>probe.log 2>&1
if grep -q "no OpenCL platform\|no OpenCL device\|OpenCL headers" probe.log; then echo "SKIP: $(head -c 300 probe.log)"; exit 77; fi

FAMILIES=test_conv_,test_convtranspose,test_gemm,test_matmul_,test_maxpool,test_averagepool
FAMILIES=$FAMILIES,test_globalaveragepool,test_globalmaxpool,test_batchnorm,test_relu,test_leakyrelu
FAMILIES=$FAMILIES,test_sigmoid,test_tanh,test_add,test_sub,test_mul,test_div,test_clip,test_reshape
FAMILIES=$FAMILIES,test_flatten,test_transpose,test_concat,test_resize,test_softmax,test_logsoftmax
FAMILIES=$FAMILIES,test_pad,test_hardswish,test_hardsigmoid,test_squeeze,test_unsqueeze,test_identity
mkdir -p lists
cp "$SRC/tests/conformance/expected_unsupported.txt" lists/
cat "$SRC/tests/conformance/known_failures.txt" "$SRC/tests/conformance/opencl_known_failures.txt" >lists/known_failures.txt
"$CONF" -j 2 --emit opencl --filter "$FAMILIES" --lists lists --report report.md "$DATA/node" >conf.txt 2>conf.err
rc=$?
tail -n 20 conf.txt
[ $rc -eq 0 ] || { echo "FAIL: fm_conformance --emit opencl (exit $rc)"; grep -m 20 "FAIL" conf.err; exit 1; }
echo "gpu_conformance: passed"
