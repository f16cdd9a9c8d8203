#!/bin/bash
# kernel_sharing.sh - big graphs compile fast: kernels that print the same canonical C
# are emitted once and shared (a 60-node chain of 6 repeating elementwise ops has 6
# kernel functions), the run function is glue compiled at -O1 (FM_GLUE), and the
# outputs equal the reference computed by the helper. (bench/chain_compile.sh times a
# 10,000-node chain; this test only checks the structure and the results.)
# Usage: bash kernel_sharing.sh <fewmul-binary> <source-dir> <scratch-dir>   (77 = skipped)
set -u
FEWMUL=$(realpath "$1")
WORK=$3
HELPER=$(dirname "$FEWMUL")/tests/test_cli_models
[ -x "$HELPER" ] || { echo "skip: $HELPER is not built"; exit 77; }
command -v "${CC:-gcc}" >/dev/null || { echo "skip: no C compiler"; exit 77; }
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
pass=0
fail=0
check() { local what=$1; shift; if "$@"; then pass=$((pass + 1)); else echo "FAIL: $what"; fail=$((fail + 1)); fi; }

"$HELPER" --chain 60 data || exit 1
check "compile" "$FEWMUL" compile data/long_chain.onnx -o m -q
check "6 kernel functions for 60 nodes" test "$(grep -c '^static void k[0-9]*_' m/model.c)" -eq 6
check "the others name the function they run" test "$(grep -c '^/\* k[0-9]*_n[0-9]*: node .* runs k' m/model.c)" -eq 54
check "60 calls in run" test "$(sed -n '/model_run(int64_t N/,/^}/p' m/model.c | grep -c '^  k[0-9]*_n[0-9]*(N')" -eq 60
check "run is glue" grep -q '^FM_GLUE int model_run' m/model.c
check "run" "$FEWMUL" run m --input data/lx.npy -o r -q
if "$HELPER" --compare r/y.npy data/ly_ref.npy 1e-5 >cmp.txt 2>&1; then pass=$((pass + 1))
else echo "FAIL: outputs: $(head -c 300 cmp.txt)"; fail=$((fail + 1)); fi
echo "kernel_sharing: $pass passed, $fail failed"
[ $fail -eq 0 ]
