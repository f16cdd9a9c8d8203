# common.sh - the shared part of the e2e scripts, sourced (not a test itself: CMake registers
# only tests/e2e/*.sh). Every script runs as
#   bash SCRIPT.sh <fewmul-binary> <source-dir> <scratch-dir>
# and exits 0 (all passed), 1 (a failure) or 77 (skipped).
#
#   . "$(dirname "$0")/lib/common.sh"     # FEWMUL SRC WORK BIN ORT MHELPER; pass=0 fail=0
#   need_helper "$BIN/test_x"             # SKIP (77) unless built
#   need_node                             # SKIP (77) unless node is installed
#   enter_work                            # a fresh $WORK, cd there
#   ok "..." / bad "..."                  # count a pass / a failure
#   finish NAME                           # "NAME: N passed, N failed"; status 1 on failures
set -u
FEWMUL=$(realpath "$1")
SRC=$(realpath "$2")
WORK=$3
BIN=$(dirname "$FEWMUL")/tests
MHELPER=$BIN/test_methods
ORT="$SRC/tools/ort/ort_run.js"
pass=0
fail=0

ok() { echo "ok   $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

need_helper() { [ -x "$1" ] || { echo "SKIP: $1 is not built"; exit 77; }; }
need_node() {
  command -v node >/dev/null || { echo "SKIP: node is not installed (ONNX Runtime runs under node)"; exit 77; }
}
enter_work() { rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1; }

finish() {
  echo "$1: $pass passed, $fail failed"
  [ $fail -eq 0 ]
}

# e2e_models HELPER: HELPER --e2e models (its cases listed in cases.txt), then ONNX Runtime
# once on the first case, to learn whether it is installed at all (77 from ort_run.js: SKIP)
e2e_models() {
  "$1" --e2e models >cases.txt 2>log.txt || bad "helper --e2e: $(head -c 400 log.txt)"
  local first
  first=$(head -n 1 cases.txt)
  [ -n "$first" ] || { echo "FAIL: no cases written"; exit 1; }
  node "$ORT" "models/$first.onnx" "ort_$first" "models/${first}_in.npy" >ort.log 2>&1
  if [ $? -eq 77 ]; then echo "SKIP: onnxruntime-node is not installed ($(head -c 200 ort.log))"; exit 77; fi
}

# ort_case HELPER CASE TOL LABEL: ONNX Runtime on models/CASE.onnx against the trainer's
# eval forward (models/CASE_ref.npy)
ort_case() {
  local helper=$1 c=$2 tol=$3 label=$4 out
  if ! node "$ORT" "models/$c.onnx" "ort_$c" "models/${c}_in.npy" >ort.log 2>&1; then
    bad "$c: ONNX Runtime failed: $(head -c 400 ort.log)"
  elif out=$("$helper" --compare "models/${c}_ref.npy" "ort_$c/output.npy" "$tol"); then
    ok "$label: $out"
  else
    bad "$label: $out"
  fi
}

# compiled_case HELPER CASE TOL: `fewmul compile` + `fewmul run` of models/CASE.onnx against
# the trainer's eval forward
compiled_case() {
  local helper=$1 c=$2 tol=$3 out
  if ! "$FEWMUL" compile "models/$c.onnx" -o "cm_$c" -q >cc.log 2>&1; then
    bad "$c: fewmul compile failed: $(head -c 400 cc.log)"
  elif ! "$FEWMUL" run "cm_$c" --input "models/${c}_in.npy" -o "run_$c" -q >run.log 2>&1; then
    bad "$c: fewmul run failed: $(head -c 400 run.log)"
  elif out=$("$helper" --compare "models/${c}_ref.npy" "run_$c/output.npy" "$tol"); then
    ok "$c compiled: $out"
  else
    bad "$c compiled: $out"
  fi
}

# expect_fail WHAT ARGS...: `fewmul train ARGS` must fail with one clear error line, exit 1
expect_fail() {
  local what=$1
  shift
  "$FEWMUL" train "$@" >out.txt 2>err.txt
  local rc=$?
  if [ $rc -ne 1 ] || [ "$(wc -l <err.txt)" -ne 1 ] || ! grep -q '^fewmul: error: ' err.txt; then
    bad "$what: exit $rc, $(head -c 300 err.txt)"
  else
    pass=$((pass + 1))
  fi
}

# accuracy_data SPEC: the test split of SPEC as ./x.npy (test_methods --data) for same_acc
have_data=0
accuracy_data() {
  DATA=$1
  if [ -x "$MHELPER" ] && "$MHELPER" --data "$DATA" . >/dev/null 2>&1; then have_data=1; fi
}

# same_acc NAME ONNX TRAINER-OUTPUT: ONNX Runtime's test accuracy on x.npy = the trainer's
same_acc() {
  local name=$1 model=$2 txt=$3 want got
  [ $have_data -eq 1 ] || { echo "note: $MHELPER is not built; $name: accuracy check skipped"; return; }
  want=$(sed -n 's/^test accuracy: \([0-9.]*\)%.*/\1/p' "$txt")
  if ! node "$ORT" "$model" "ort_$name" x.npy >ort.log 2>&1; then
    bad "cli $name: ONNX Runtime failed: $(head -c 400 ort.log)"
    return
  fi
  got=$("$MHELPER" --accuracy "ort_$name/output.npy" "$DATA")
  if [ -n "$want" ] && [ "$want" = "$got" ]; then ok "cli $name: test accuracy $want% in the trainer and in ONNX Runtime"
  else bad "cli $name: trainer test accuracy '$want'%, ONNX Runtime '$got'%"; fi
}

# need_no_llvm_conflict: SKIP (77) when this fewmul links LLVM 14 and OpenCL is PoCL, which
# loads LLVM 15 into the same process: their C++ symbols clash and PoCL's program build
# crashes. scripts/test.sh runs the OpenCL tests with a -DFM_LLVM=OFF build (build-gpu).
need_no_llvm_conflict() {
  if ldd "$FEWMUL" 2>/dev/null | grep -q 'libLLVM-14'; then
    echo "SKIP: this fewmul links LLVM 14 and PoCL loads LLVM 15 in the same process (known conflict);"
    echo "      the OpenCL tests run on the -DFM_LLVM=OFF build (scripts/test.sh, build-gpu)"
    exit 77
  fi
}
