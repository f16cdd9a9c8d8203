#!/bin/bash
# hostile_signals.sh - "no partial output" under interruption: SIGINT/SIGTERM during
# `fewmul compile`, `run MODEL.onnx`, `bench MODEL.onnx` and `eval` (while the C compiler
# runs: a slow CC wrapper) leave no OUT/.fewmul-tmp-*, no temporary dir under $TMPDIR and
# no compiler process; a failed eval leaves no temporary dir; `compile --no-so` removes a
# stale model.so.
# Usage: bash hostile_signals.sh <fewmul-binary> <source-dir> <scratch-dir>   (77 = skipped)
. "$(dirname "$0")/lib/common.sh"
HELPER=$BIN/test_hostile_models
need_helper "$HELPER"
REALCC=$(command -v "${CC:-gcc}") || { echo "SKIP: no C compiler"; exit 77; }
enter_work
"$HELPER" --write data >log.txt 2>&1 || { echo "FAIL: $HELPER --write: $(head -c 300 log.txt)"; exit 1; }
WORK=$(pwd)

# A C compiler that records its pid and its child's, then waits (a long compile).
cat >slowcc <<EOF
#!/bin/bash
echo \$\$ >>"$WORK/cc.pids"
sleep 120 &
echo \$! >>"$WORK/cc.pids"
wait
exec "$REALCC" "\$@"
EOF
chmod +x slowcc
mkdir -p tmp
set -m # background jobs keep SIGINT (without job control, bash starts them with SIGINT ignored)

leftover_cc() { # the recorded compiler processes still running (killed here); a zombie
  local p st alive=""  # (killed, not yet reaped by init) is not running
  for p in $(cat cc.pids 2>/dev/null); do
    st=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f1) # R, S, D, T, Z, ...
    if [ -n "$st" ] && [ "${st#Z}" = "$st" ]; then alive="$alive $p($st)"; kill -9 "$p" 2>/dev/null; fi
  done
  echo "$alive"
}

# interrupt SIG WHAT CMD...: runs CMD with CC=slowcc, sends SIG once the compiler runs,
# then checks it died by SIG and no compiler process is left
interrupt() {
  local sig=$1 what=$2 pid rc i
  shift 2
  rm -f cc.pids
  CC="$WORK/slowcc" TMPDIR="$WORK/tmp" "$@" >out.txt 2>err.txt &
  pid=$!
  for i in $(seq 300); do [ "$(cat cc.pids 2>/dev/null | wc -l)" = 2 ] && break; sleep 0.1; done
  [ "$(cat cc.pids 2>/dev/null | wc -l)" = 2 ] || bad "$what: the compiler did not start"
  kill -"$sig" $pid
  wait $pid
  rc=$?
  local want=$((128 + $(kill -l "$sig")))
  [ $rc -eq $want ] && ok "$what: died by SIG$sig ($rc)" || bad "$what: exit $rc, expected $want ($(head -c 200 err.txt))"
  local alive
  alive=$(leftover_cc)
  [ -z "$alive" ] && ok "$what: no compiler left running" || bad "$what: compiler processes left:$alive"
}

for sig in INT TERM; do
  # a fresh output directory: nothing of it may remain
  rm -rf out
  interrupt $sig "compile (new dir)" "$FEWMUL" compile data/names.onnx -o out -q
  [ ! -e out ] && ok "compile (new dir): no partial output" || bad "compile (new dir) left: $(ls -A out)"
  # an existing output directory: the old model stays, no .fewmul-tmp-*
  rm -rf old && "$FEWMUL" compile data/names.onnx -o old -q --no-so && cp old/model.c old.c
  interrupt $sig "compile (existing dir)" "$FEWMUL" compile data/chain.onnx -o old -q
  left=$(ls -A old | tr '\n' ' ')
  [ "$left" = "model.c model.h " ] && cmp -s old/model.c old.c && ok "compile (existing dir): the old model intact" ||
    bad "compile (existing dir) left: $left"
  # a model compiled into a temporary directory first
  printf '\x93NUMPY\x01\x00\x76\x00%-117s\n' "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3), }" >x.npy
  head -c 12 /dev/zero >>x.npy
  interrupt $sig "run MODEL.onnx" "$FEWMUL" run data/names.onnx --input x.npy --input x.npy -o res
  interrupt $sig "bench MODEL.onnx" "$FEWMUL" bench data/names.onnx --iters 1
  interrupt $sig "eval MODEL.onnx" "$FEWMUL" eval data/names.onnx --data synthetic:1x4x4:3
  [ -z "$(ls -A tmp)" ] && ok "SIG$sig: nothing left in \$TMPDIR" || bad "SIG$sig: left in \$TMPDIR: $(ls -A tmp)"
  [ ! -e res ] && ok "SIG$sig: no run output" || bad "SIG$sig: run left res/"
  rm -rf tmp/* tmp/.f* res
done

# a failed eval (the model does not fit the data) leaves no temporary directory
TMPDIR="$WORK/tmp" "$FEWMUL" eval data/names.onnx --data synthetic:1x4x4:3 >out.txt 2>err.txt
rc=$?
[ $rc -eq 1 ] && grep -q '^fewmul: error: ' err.txt && ok "failed eval: $(cat err.txt)" || bad "failed eval: exit $rc $(cat err.txt)"
[ -z "$(ls -A tmp)" ] && ok "failed eval: nothing left in \$TMPDIR" || bad "failed eval left in \$TMPDIR: $(ls -A tmp)"

# compile --no-so over an earlier compile: no stale model.so beside the new C
rm -rf m && "$FEWMUL" compile data/names.onnx -o m -q && [ -f m/model.so ] || bad "compile names"
"$FEWMUL" compile data/names.onnx -o m -q --no-so
[ ! -e m/model.so ] && ok "--no-so: no stale model.so" || bad "--no-so kept a stale model.so"
finish hostile_signals
