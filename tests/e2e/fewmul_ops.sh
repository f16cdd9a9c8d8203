#!/bin/bash
# fewmul_ops.sh - the ai.fewmul weight ops end to end: train ternary and DeepShift models a
# few steps, export, check that the loader keeps TernaryConv/Pow2Conv/... native, compile
# them with the add/shift kernels (--specialize=all) and with the dense ones
# (--specialize=none), run both: same logits, and the trainer's test accuracy; ONNX Runtime
# too when installed. `fewmul cost` must show far fewer multiplications than dense MACs.
# Usage: bash fewmul_ops.sh <fewmul-binary> <source-dir> <scratch-dir>   (77 = skipped)
. "$(dirname "$0")/lib/common.sh"
HELPER=$MHELPER
need_helper "$HELPER"
command -v "${CC:-gcc}" >/dev/null || { echo "SKIP: no C compiler"; exit 77; }
enter_work

DATA=synthetic:1x12x12:4
"$HELPER" --data "$DATA" . || { echo "FAIL: helper --data"; exit 1; }
have_ort=0
if command -v node >/dev/null && [ -f "$ORT" ]; then have_ort=1; fi

model() { # NAME OP ARGS...: train, export, compile two ways, run, compare, cost
  local name=$1 op=$2
  shift 2
  if ! "$FEWMUL" train --model mnist_cnn --data "$DATA" --steps 8 --batch 32 --threads 2 --quiet \
      -o "$name.onnx" "$@" >"$name.txt" 2>"$name.err"; then
    bad "$name: fewmul train $*: $(head -c 400 "$name.err")"
    return
  fi
  # the loader keeps the op native (no inlined function body)
  "$FEWMUL" compile "$name.onnx" -o "$name.load" --dump-after=load -q >"$name.dump" 2>&1
  if grep -q "$op" "$name.dump" && ! grep -q "Pow2\b\|Pow(" "$name.dump"; then ok "$name: $op loaded native"
  else bad "$name: $op not native after load: $(grep -m3 -i "conv\|gemm" "$name.dump")"; fi
  # after the passes: specialised kernels (forced) and dense ones
  if ! "$FEWMUL" compile "$name.onnx" -o "$name.fm" --specialize=all --dump-after=weights -q >"$name.w" 2>&1; then
    bad "$name: compile (add/shift kernels): $(tail -c 400 "$name.w")"
    return
  fi
  if grep -q "$op" "$name.w"; then ok "$name: $op after the weights pass"; else bad "$name: no $op after the weights pass"; fi
  if ! "$FEWMUL" compile "$name.onnx" -o "$name.dense" --specialize=none -q >"$name.d" 2>&1; then
    bad "$name: compile (dense): $(tail -c 400 "$name.d")"
    return
  fi
  "$FEWMUL" run "$name.fm" --input x.npy -o "$name.r1" -q || { bad "$name: run (add/shift)"; return; }
  "$FEWMUL" run "$name.dense" --input x.npy -o "$name.r2" -q || { bad "$name: run (dense)"; return; }
  local out
  if out=$("$HELPER" --compare "$name.r2/output.npy" "$name.r1/output.npy" 1e-3); then ok "$name: add/shift = dense ($out)"
  else bad "$name: add/shift vs dense: $out"; fi
  local want got
  want=$(sed -n 's/^test accuracy: \([0-9.]*\)%.*/\1/p' "$name.txt")
  got=$("$HELPER" --accuracy "$name.r1/output.npy" "$DATA")
  if [ -n "$want" ] && [ "$want" = "$got" ]; then ok "$name: test accuracy $want% in the trainer and the compiled model"
  else bad "$name: trainer test accuracy '$want'%, compiled '$got'%"; fi
  if [ $have_ort = 1 ]; then
    node "$ORT" "$name.onnx" "$name.ort" x.npy >ort.log 2>&1
    local rc=$?
    if [ $rc -eq 77 ]; then echo "skip $name: onnxruntime-node is not installed"
    elif [ $rc -ne 0 ]; then bad "$name: ONNX Runtime failed: $(head -c 300 ort.log)"
    elif out=$("$HELPER" --compare "$name.ort/output.npy" "$name.r1/output.npy" 1e-3); then ok "$name: = ONNX Runtime ($out)"
    else bad "$name: vs ONNX Runtime: $out"; fi
  else
    echo "skip $name: ONNX Runtime comparison (node or tools/ort missing)"
  fi
  # cost: the specialised layers multiply once per output (ternary) or never (pow2)
  "$FEWMUL" cost "$name.onnx" --specialize=all >"$name.cost" 2>&1 || { bad "$name: cost: $(tail -c 300 "$name.cost")"; return; }
  local line
  line=$(grep "^batch:" "$name.cost")
  local muls macs
  muls=$(echo "$line" | sed -n 's/.*multiplications: \([0-9]*\).*/\1/p')
  macs=$(echo "$line" | sed -n 's/.* of \([0-9]*\) dense MACs.*/\1/p')
  if [ -n "$muls" ] && [ -n "$macs" ] && [ "$muls" -lt $((macs / 20)) ]; then ok "$name: cost: $muls multiplications for $macs dense MACs"
  else bad "$name: cost: '$line'"; fi
  if awk -v op="$op" '$2 == op { n++; if (op ~ /^Pow2/ && $5 != 0) bad = 1 } END { exit !(n > 0 && !bad) }' "$name.cost"; then ok "$name: per-layer $op rows"
  else bad "$name: per-layer cost rows of $op: $(grep -m2 "$op" "$name.cost")"; fi
}

model ternary TernaryConv --method ternary --method-all
model shiftq Pow2Conv --method deepshift-q --weight-bits 4 --method-all
model shiftps Pow2Gemm --method deepshift-ps --weight-bits 5 --lr 0.1

finish fewmul_ops
