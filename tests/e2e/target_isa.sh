#!/bin/bash
# target_isa.sh - `fewmul compile --target`: the generated code is built for the named
# target (-march=... of its C compiler run, seen through a logging CC), not for the
# machine that built fewmul, and gives the native build's outputs (float tolerance:
# FMA contraction and vector widths differ). Also the flags' errors and --help.
# Usage: bash target_isa.sh <fewmul-binary> <source-dir> <scratch-dir>   (77 = skipped)
set -u
FEWMUL=$(realpath "$1")
SRC=$(realpath "$2")
WORK=$3
HELPER=$(dirname "$FEWMUL")/tests/test_cli_models
[ -x "$HELPER" ] || { echo "skip: $HELPER is not built"; exit 77; }
REALCC=${CC:-gcc}
command -v "$REALCC" >/dev/null || { echo "skip: no C compiler"; exit 77; }
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1

pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }

printf '#!/bin/bash\necho "$*" >>"%s/cc.args"\nexec %s "$@"\n' "$PWD" "$REALCC" >cc_log.sh
export CC="bash $PWD/cc_log.sh"
MODEL=$SRC/models/fmnist_cnn.onnx
X=$SRC/models/fmnist_test1000.npy

# --help lists the flags
"$FEWMUL" compile --help >help.txt
for f in --target= --emit= --conv= --gemm= --specialize= --no-specialize x86-64-v3; do
  check "help lists $f" grep -q -- "$f" help.txt
done

# bad values: one line, non-zero exit, nothing written
for args in "--target=pentium" "--emit=llvm-x" "--conv=fft" "--gemm=blas" "--specialize=some"; do
  "$FEWMUL" compile "$MODEL" -o bad $args >out.txt 2>err.txt
  rc=$?
  if [ $rc -eq 0 ] || [ "$(wc -l <err.txt)" -ne 1 ] || ! grep -q "^fewmul: error: .*unknown" err.txt; then
    bad "$args: rc $rc, stderr: $(head -c 300 err.txt)"
  else ok; fi
  check "$args: no output" test ! -e bad
done

# build per target; the C compiler sees that target's -march
has() { grep -qw "$1" /proc/cpuinfo 2>/dev/null; }
targets="native generic"
has avx2 && has fma && targets="$targets x86-64-v3"
has avx512f && targets="$targets x86-64-v4"
for t in $targets; do
  rm -f cc.args
  if ! "$FEWMUL" compile "$MODEL" -o "m_$t" --target=$t -q >log.txt 2>&1; then
    bad "compile --target=$t: $(head -c 300 log.txt)"
    continue
  fi
  march=$t
  [ "$t" = generic ] && march=x86-64
  check "--target=$t builds with -march=$march" grep -q -- "-march=$march " cc.args
  check "--target=$t: no other -march" test "$(grep -o -- '-march=[^ ]*' cc.args | sort -u | wc -l)" -eq 1
  if ! "$FEWMUL" run "m_$t" --input "$X" -o "r_$t" -q >log.txt 2>&1; then
    bad "run --target=$t: $(head -c 300 log.txt)"
    continue
  fi
  if [ "$t" != native ]; then
    out=$(ls r_native/*.npy | head -1)
    if "$HELPER" --compare "$out" "r_$t/$(basename "$out")" 1e-4 >cmp.txt 2>&1; then ok
    else bad "--target=$t differs from native: $(head -c 300 cmp.txt)"; fi
  fi
done
echo "targets run: $targets"

echo "target_isa: $pass passed, $fail failed"
[ $fail -eq 0 ]
