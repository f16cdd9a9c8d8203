#!/bin/bash
# hostile_run.sh - `fewmul run` on inputs that lie about their size, outputs whose names
# sanitise to one file name, a truncated model.so, and integer Div/Mod by zero: one clear
# error line (or the documented result), never a signal, never a lost output.
# Usage: bash hostile_run.sh <fewmul-binary> <source-dir> <scratch-dir>   (77 = skipped)
. "$(dirname "$0")/lib/common.sh"
HELPER=$BIN/test_hostile_models
need_helper "$HELPER"
command -v "${CC:-gcc}" >/dev/null || { echo "SKIP: no C compiler"; exit 77; }
enter_work
"$HELPER" --write data >log.txt 2>&1 || { echo "FAIL: $HELPER --write: $(head -c 300 log.txt)"; exit 1; }

# expect_error WHAT PATTERN CMD...: exit 1, exactly one "fewmul: error:" line matching
# PATTERN (grep -E), no signal
expect_error() {
  local what=$1 pat=$2
  shift 2
  "$@" >out.txt 2>err.txt
  local rc=$?
  if [ $rc -ne 1 ] || [ "$(wc -l <err.txt)" -ne 1 ] || ! grep -Eq "^fewmul: error: .*($pat)" err.txt; then
    bad "$what: exit $rc, $(head -c 300 err.txt)"
  else
    ok "$what: $(cat err.txt)"
  fi
}

# npy FILE DESCR SHAPE [DATA-BYTES]: a .npy v1 header (128 bytes) and that many bytes of data
npy() {
  local h="{'descr': '$2', 'fortran_order': False, 'shape': $3, }"
  {
    printf '\x93NUMPY\x01\x00\x76\x00%s' "$h"
    printf '%*s' $((117 - ${#h})) ''
    printf '\n'
    if [ "${4:-0}" -gt 0 ]; then head -c "$4" /dev/zero; fi
  } >"$1"
}

"$FEWMUL" compile data/names.onnx -o m -q >log.txt 2>&1 || { echo "FAIL: compile names.onnx: $(cat log.txt)"; exit 1; }

# ---- inputs whose shape product overflows or does not match (class 2) ----
npy huge.npy '<f4' '(4611686018427387904, 3)'
expect_error "npy claiming 2^62 x 3, no data" "huge.npy" "$FEWMUL" run m --input huge.npy --input huge.npy -o res_huge
[ -e res_huge ] && bad "partial output res_huge left"
npy wrap.npy '<f4' '(4611686018427387904, 4611686018427387904)'
expect_error "npy whose element count wraps" "wrap.npy" "$FEWMUL" run m --input wrap.npy --input wrap.npy
npy short.npy '<f4' '(2, 3)' 12
expect_error "npy with half its data" "short.npy" "$FEWMUL" run m --input short.npy --input short.npy
npy wide.npy '<f4' '(2, 4)' 32
expect_error "npy of another shape" "wide.npy" "$FEWMUL" run m --input wide.npy --input wide.npy
# a TensorProto: dims [2^62, 3], float, no data
printf '\x08\x80\x80\x80\x80\x80\x80\x80\x80\x40\x08\x03\x10\x01' >huge.pb
expect_error "pb claiming 2^62 x 3, no data" "huge.pb" "$FEWMUL" run m --input huge.pb --input huge.pb

# ---- outputs whose names sanitise alike: y/1, y_1, y:1 (class 6) ----
# x/1 = [[-1, 2, -3]], x_1 = [[10, 20, 30]] ; outputs y/1 = Relu(x/1), y_1 = x/1 + x_1, y:1 = |x_1 - x/1|
floats() { for v in "$@"; do printf "$(printf '\\x%02x' $(perl -e 'print join " ", unpack "C4", pack "f<", $ARGV[0]' -- "$v"))"; done; }
if command -v perl >/dev/null; then
  npy x1.npy '<f4' '(1, 3)' && floats -1 2 -3 >>x1.npy
  npy x2.npy '<f4' '(1, 3)' && floats 10 20 30 >>x2.npy
  if "$FEWMUL" run m --input x1.npy --input x2.npy -o res >run.txt 2>&1; then
    files=$(cd res && ls | tr '\n' ' ')
    if [ "$files" = "y_1.npy y_1_2.npy y_1_3.npy " ]; then ok "three outputs, three files: $files"
    else bad "outputs y/1, y_1, y:1 wrote: $files"; fi
    val() { tail -c 12 "res/$1" | od -v -An -tf4 | tr -s ' ' | sed 's/^ //;s/ $//'; }
    [ "$(val y_1.npy)" = "0 2 0" ] && ok "y/1 = Relu(x/1) in y_1.npy" || bad "y_1.npy holds $(val y_1.npy)"
    [ "$(val y_1_2.npy)" = "9 22 27" ] && ok "y_1 = x/1 + x_1 in y_1_2.npy" || bad "y_1_2.npy holds $(val y_1_2.npy)"
    [ "$(val y_1_3.npy)" = "11 18 33" ] && ok "y:1 = |x_1 - x/1| in y_1_3.npy" || bad "y_1_3.npy holds $(val y_1_3.npy)"
    "$FEWMUL" run m --input x1.npy --input x2.npy -o res2 --format pb -q >/dev/null 2>&1
    [ "$(cd res2 && ls | tr '\n' ' ')" = "y_1.pb y_1_2.pb y_1_3.pb " ] && ok "the same names with --format pb" ||
      bad "--format pb wrote: $(ls res2)"
    # a thread count above 4 per CPU is clamped, with a note, and the run still works
    if "$FEWMUL" run m --input x1.npy --input x2.npy --threads 4096 -o res3 -q >out.txt 2>err.txt &&
       grep -q '^fewmul: note: --threads 4096 clamped to' err.txt && cmp -s res/y_1_2.npy res3/y_1_2.npy; then
      ok "--threads 4096: $(cat err.txt)"
    else
      bad "--threads 4096: $(head -c 300 err.txt)"
    fi
    # labels that claim 2^62 int64 values: refused, and the outputs written before go too
    npy labels.npy '<i8' '(4611686018427387904,)'
    expect_error "--labels claiming 2^62 values" "labels.npy" "$FEWMUL" run m --input x1.npy --input x2.npy -o resl --labels labels.npy
    [ -e resl ] && bad "--labels failure left resl/: $(ls resl)"
    expect_error "--batch that does not match the inputs" "batch" "$FEWMUL" run m --input x1.npy --input x2.npy --batch 2147483647
  else
    bad "run names: $(head -c 300 run.txt)"
  fi
else
  echo "note: perl is not installed; the output-name checks are skipped"
fi

# ---- a truncated model.so: a clean error, not SIGBUS (class 4) ----
mkdir -p cut && cp m/model.h cut/ && head -c $(($(stat -c %s m/model.so) / 2)) m/model.so >cut/model.so
expect_error "truncated model.so" "model.so.*truncated" "$FEWMUL" run cut --input x1.npy --input x2.npy
head -c $(($(stat -c %s m/model.so) - 1)) m/model.so >cut/model.so
expect_error "model.so one byte short" "model.so.*truncated" "$FEWMUL" run cut --input x1.npy --input x2.npy

# ---- integer Div/Mod by zero and INT_MIN / -1 (class 3): exit 0, documented values ----
# (docs/OPS.md: x / 0 = 0, x % 0 = 0, INT_MIN / -1 = INT_MIN, INT_MIN % -1 = 0)
if command -v perl >/dev/null; then
  pack() { perl -e '$f = shift; print pack "$f*", @ARGV' -- "$@"; }
  A="7 -7 7 -7 -2147483648 -2147483648 5 0" A64="7 -7 7 -7 -9223372036854775808 -9223372036854775808 5 0"
  B="2 2 -2 -2 -1 0 0 0"
  npy a32.npy '<i4' '(8,)' && pack 'l<' $A >>a32.npy
  npy b32.npy '<i4' '(8,)' && pack 'l<' $B >>b32.npy
  npy a64.npy '<i8' '(8,)' && pack 'q<' $A64 >>a64.npy
  npy b64.npy '<i8' '(8,)' && pack 'q<' $B >>b64.npy
  "$FEWMUL" run data/intdiv.onnx --input a32.npy --input b32.npy --input a64.npy --input b64.npy -o rdiv -q >run.txt 2>&1
  rc=$?
  if [ $rc -ne 0 ]; then
    bad "intdiv: exit $rc (136 = SIGFPE): $(head -c 300 run.txt)"
  else
    ints() { tail -c "$2" "rdiv/$1.npy" | od -v -An -t"$3" | tr -s ' \n' ' ' | sed 's/^ //;s/ $//'; }
    for w in 32 64; do
      if [ $w = 32 ]; then n=32 t=d4 min=-2147483648; else n=64 t=d8 min=-9223372036854775808; fi
      want_div="3 -3 -3 3 $min 0 0 0" want_fmod="1 -1 1 -1 0 0 0 0" want_pmod="1 1 -1 -1 0 0 0 0"
      for o in div fmod pmod; do
        eval "want=\$want_$o"
        got=$(ints "$o$w" $((n)) $t)
        [ "$got" = "$want" ] && ok "int$w $o: $got" || bad "int$w $o: want '$want', got '$got'"
      done
    done
  fi
fi
finish hostile_run
