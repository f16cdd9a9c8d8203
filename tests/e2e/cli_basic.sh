#!/bin/bash
# cli_basic.sh - fewmul compile/run/info/cost/bench end to end on tiny models, and every
# bad-input path of the CLI: one "fewmul: error:" line, non-zero exit, no partial outputs.
# Usage: bash cli_basic.sh <fewmul-binary> <source-dir> <scratch-dir>   (77 = skipped)
set -u
FEWMUL=$(realpath "$1")
SRC=$2
WORK=$3
HELPER=$(dirname "$FEWMUL")/tests/test_cli_models
[ -x "$HELPER" ] || { echo "skip: $HELPER is not built"; exit 77; }
command -v "${CC:-gcc}" >/dev/null || { echo "skip: no C compiler"; exit 77; }
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
"$HELPER" --write data || exit 1

pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }
same() {
  if "$HELPER" --compare "$1" "$2" "$3" >/dev/null 2>&1; then ok
  else bad "compare $1 $2 (tol $3): $("$HELPER" --compare "$1" "$2" "$3" 2>&1)"; fi
}

# expect_fail WHAT CODE CMD...: fails with exit CODE and exactly one "fewmul: error:" line.
expect_fail() {
  local what=$1 code=$2
  shift 2
  "$@" >out.txt 2>err.txt
  local rc=$?
  if [ "$rc" -ne "$code" ]; then bad "$what: exit $rc, expected $code ($(head -c 300 err.txt))"; return; fi
  if [ "$(wc -l <err.txt)" -ne 1 ] || ! grep -q '^fewmul: error: ' err.txt; then
    bad "$what: expected one error line, got: $(head -c 400 err.txt)"
    return
  fi
  ok
}
# absent PATH...: nothing was left behind
absent() { for p in "$@"; do [ -e "$p" ] && bad "partial output left: $p" && return; done; ok; }

# ---- compile -> run -> compare with the reference computed by the helper ----
if ! "$FEWMUL" compile data/gemm_relu.onnx -o m1 >log.txt 2>&1; then
  echo "FAIL: compile gemm_relu: $(cat log.txt)"
  exit 1
fi
check "m1 files" test -f m1/model.c -a -f m1/model.h -a -f m1/model.so -a ! -e m1/model.weights
check "no temp dirs left" test -z "$(ls -A m1 | grep -v '^model\.\(c\|h\|so\)$')"
check "run m1" "$FEWMUL" run m1 --input data/x.npy -o r1 -q
same r1/y.npy data/y_ref.npy 1e-5
# batch 2 from a TensorProto, named input
check "run m1 .pb" "$FEWMUL" run m1 --input x=data/x2.pb -o r2 -q
same r2/y.npy data/y2_ref.npy 1e-5
"$FEWMUL" run m1 --input data/x.npy >sum.txt 2>&1
check "run summary" grep -q '^y: float32 \[5x3\]' sum.txt
check "run argmax" grep -q 'argmax:' sum.txt

# --weights=file gives the same outputs as embedded weights
check "compile file weights" "$FEWMUL" compile data/gemm_relu.onnx -o m2 --weights=file --name net -q
check "m2 files" test -f m2/net.weights -a -f m2/net.so
check "weights magic" test "$(head -c 4 m2/net.weights)" = FMW1
check "run m2" "$FEWMUL" run m2 --input data/x.npy -o r3 -q
same r3/y.npy r1/y.npy 0
# a corrupted weights file is refused
cp -r m2 m2bad && printf 'XXXX' | dd of=m2bad/net.weights bs=1 seek=100 conv=notrunc 2>/dev/null
expect_fail "corrupt weights" 1 "$FEWMUL" run m2bad --input data/x.npy

# several outputs: one feeds a later node, one is a graph input; inputs by name, out of order
check "compile two_out" "$FEWMUL" compile data/two_out.onnx -o m3 --name two -q
check "run two_out" "$FEWMUL" run m3 --input b=data/b.npy --input a=data/a.npy -o r4 -q
same r4/p.npy data/p_ref.npy 1e-6
same r4/s.npy data/s_ref.npy 1e-6
same r4/a.npy data/a.npy 0

# intermediates in the planned workspace, at two batch sizes
check "compile chain" "$FEWMUL" compile data/chain.onnx -o m4 -q
check "run chain" "$FEWMUL" run m4 --input data/cx.npy -o r5 -q
same r5/y.npy data/cy_ref.npy 1e-5
check "chain uses the workspace" grep -q 'w + ' m4/model.c

# the generated C compiles warning-free with gcc and clang, and links into a program
for cc in gcc clang; do
  command -v $cc >/dev/null || continue
  for d in m1/model m2/net m3/two m4/model; do
    check "$cc -Werror $d.c" $cc -std=c11 -O2 -Wall -Wextra -Werror -c $d.c -o /dev/null
    check "$cc -fopenmp -Werror $d.c" $cc -std=c11 -O2 -fopenmp -Wall -Wextra -Werror -c $d.c -o /dev/null
  done
done
cat >app.c <<'EOF'
#include "model.h"
#include <stdio.h>
#include <stdlib.h>
int main(void) {
  int64_t N = 2;
  void *ws = aligned_alloc(64, model_workspace_size(N));
  float x[8] = {0}, y[6];
  const void *in[] = {x};
  void *out[] = {y};
  if (model_run(N, in, out, ws) != 0) return 1;
  if (model_run(0, in, out, ws) == 0 || model_run(N, in, out, NULL) == 0) return 2;
  for (int i = 0; i < 6; i++) printf("%g ", y[i]);
  printf("\n");
  free(ws);
  return 0;
}
EOF
if gcc -std=c11 -O2 -Wall -Wextra -Werror -Im1 app.c m1/model.c -o app -lm 2>cc.txt; then
  check "linked app" test "$(./app)" = "0.5 0 0.125 0.5 0 0.125 "
else
  bad "linking app.c with model.c: $(head -5 cc.txt)"
fi

# ---- info, cost, bench ----
"$FEWMUL" info data/gemm_relu.onnx >info.txt 2>&1
check "info inputs" grep -q 'x .*float32 .*\[Nx4\]' info.txt
check "info nodes" grep -q 'Gemm' info.txt
check "info params" grep -q 'parameters: 15 ' info.txt
"$FEWMUL" info m2 >info2.txt 2>&1
check "info compiled" grep -q 'weights: .* bytes in a weights file' info2.txt
"$FEWMUL" cost data/gemm_relu.onnx --batch 5 >cost.txt 2>&1
check "cost rows" grep -q '^fc .*Gemm' cost.txt
check "cost total" grep -q '^total ' cost.txt
check "cost dense MACs" grep -q '^fc .* 60 ' cost.txt
"$FEWMUL" bench m1 --iters 5 --warmup 1 --threads 1 >bench.txt 2>&1
check "bench last lines" test "$(tail -4 bench.txt | cut -d: -f1 | tr '\n' ' ')" = "median_ms min_ms max_ms peak_rss_mb "
mkdir tmp
TMPDIR=$PWD/tmp "$FEWMUL" bench data/two_out.onnx --iters 2 --warmup 0 >bench2.txt 2>&1
check "bench onnx" grep -q '^median_ms: ' bench2.txt
check "bench removes its temporary build" test -z "$(ls -A tmp)"

# ---- help ----
for c in compile run info cost bench; do
  check "$c --help" "$FEWMUL" $c --help >/dev/null
done
check "--help" "$FEWMUL" --help >/dev/null

# ---- every bad input: one line, non-zero, nothing left behind ----
expect_fail "missing model" 1 "$FEWMUL" compile data/nope.onnx -o bad1
absent bad1
expect_fail "garbage model" 1 "$FEWMUL" compile data/garbage.onnx -o bad2
absent bad2
expect_fail "bad --shape" 1 "$FEWMUL" compile data/gemm_relu.onnx -o bad3 --shape x=2xq
absent bad3
expect_fail "--shape of no input" 1 "$FEWMUL" compile data/gemm_relu.onnx -o bad4 --shape nosuch=2x4
absent bad4
expect_fail "unknown flag" 2 "$FEWMUL" compile data/gemm_relu.onnx -o bad5 --frobnicate
absent bad5
expect_fail "missing -o" 2 "$FEWMUL" compile data/gemm_relu.onnx
expect_fail "bad --weights" 2 "$FEWMUL" compile data/gemm_relu.onnx -o bad6 --weights=cloud
absent bad6
expect_fail "bad --name" 2 "$FEWMUL" compile data/gemm_relu.onnx -o bad7 --name 9lives
absent bad7
CC=false expect_fail "C compiler fails" 1 "$FEWMUL" compile data/gemm_relu.onnx -o bad8
absent bad8
mkdir keep
CC=false expect_fail "C compiler fails (existing dir)" 1 "$FEWMUL" compile data/gemm_relu.onnx -o keep
check "existing dir left empty" test -z "$(ls -A keep)"
expect_fail "dtype mismatch" 1 "$FEWMUL" run m1 --input data/x_int.npy -o bad9
check "dtype error names input" grep -q "'x'.*int64.*float32" err.txt
absent bad9
expect_fail "shape mismatch" 1 "$FEWMUL" run m1 --input data/x_wide.npy -o bad10
check "shape error names shapes" grep -q "'x'.*5x5.*Nx4" err.txt
absent bad10
expect_fail "missing input file" 1 "$FEWMUL" run m1 --input data/nope.npy
expect_fail "missing input" 1 "$FEWMUL" run m3 --input data/a.npy
expect_fail "unknown input name" 1 "$FEWMUL" run m1 --input zz=data/x.npy
expect_fail "too many inputs" 1 "$FEWMUL" run m1 --input data/x.npy --input data/x.npy
expect_fail "missing model dir" 1 "$FEWMUL" run nodir --input data/x.npy
expect_fail "not a model dir" 1 "$FEWMUL" run data --input data/x.npy
expect_fail "run unknown flag" 2 "$FEWMUL" run m1 --input data/x.npy --fast
expect_fail "bad --batch" 2 "$FEWMUL" run m1 --input data/x.npy --batch 0
expect_fail "info missing" 1 "$FEWMUL" info data/nope.onnx
expect_fail "cost unknown flag" 2 "$FEWMUL" cost data/gemm_relu.onnx --verbose
expect_fail "bench missing" 1 "$FEWMUL" bench nodir
expect_fail "bad --iters" 2 "$FEWMUL" bench m1 --iters -1
expect_fail "unknown command" 2 "$FEWMUL" frobnicate

echo "cli_basic: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
