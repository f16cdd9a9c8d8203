#!/bin/bash
# chain_compile.sh - compile time of a very large graph: an N-node chain of simple
# elementwise ops (Relu, Add, Neg, Mul, Sigmoid, Sub over x [batch, 64]), ONNX -> loadable
# model.so. Prints the seconds of `fewmul compile --no-so` (fewmul alone) and of the full
# compile (C compiler included), then runs it and compares with the reference outputs.
# Usage: bash bench/chain_compile.sh [BUILD_DIR] [N]      (defaults: build 10000)
set -eu
BUILD=$(realpath "${1:-build}")
N=${2:-10000}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fm_chain_XXXXXX")
trap 'rm -rf "$WORK"' EXIT
"$BUILD/tests/test_cli_models" --chain "$N" "$WORK"
t0=$(date +%s.%N)
"$BUILD/fewmul" compile "$WORK/long_chain.onnx" -o "$WORK/c" --no-so -q
t1=$(date +%s.%N)
"$BUILD/fewmul" compile "$WORK/long_chain.onnx" -o "$WORK/m" -q
t2=$(date +%s.%N)
printf 'chain of %d nodes: fewmul alone %.2f s, ONNX -> model.so %.2f s (%d lines of C)\n' "$N" \
  "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" "$(cat "$WORK"/m/*.c | wc -l)"
"$BUILD/fewmul" run "$WORK/m" --input "$WORK/lx.npy" -o "$WORK/r" -q
"$BUILD/tests/test_cli_models" --compare "$WORK/r/y.npy" "$WORK/ly_ref.npy" 1e-5 && echo "outputs match the reference (1e-5)"
