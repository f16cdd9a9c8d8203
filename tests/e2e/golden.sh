#!/bin/bash
# golden.sh - the graph IR after the weights pass and the kernel IR of every node
# (`fewmul compile --dump-after=weights --dump-kernel --target=x86-64-v3`) of a few small
# models, compared with the checked-in dumps in tests/golden/<model>.txt. A change in a
# pass or a lowering shows up as a diff here; when it is intended, regenerate with
#   bash tests/e2e/golden.sh build/fewmul . /tmp/golden --update
# and review the diff of tests/golden/ in the commit.
# Usage: bash golden.sh <fewmul-binary> <source-dir> <scratch-dir> [--update]
set -u
FEWMUL=$(realpath "$1")
SRC=$(realpath "$2")
WORK=$3
UPDATE=${4:-}
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
pass=0
fail=0
for m in lenet mlp convmix export_ops; do
  # --target fixes the GEMM tile the lowering blocks by, so the dump is the same on every host
  if ! "$FEWMUL" compile "$SRC/tests/e2e/pytorch/$m.onnx" -o "out_$m" --no-so -q --target=x86-64-v3 \
      --dump-after=weights --dump-kernel >"$m.txt" 2>&1; then
    echo "FAIL: $m: $(tail -c 300 "$m.txt")"
    fail=$((fail + 1))
    continue
  fi
  gold=$SRC/tests/golden/$m.txt
  if [ "$UPDATE" = --update ]; then
    cp "$m.txt" "$gold" && echo "updated $gold"
  elif [ ! -f "$gold" ]; then
    echo "FAIL: $m: no golden file $gold"
    fail=$((fail + 1))
  elif ! diff -u "$gold" "$m.txt" >"$m.diff"; then
    echo "FAIL: $m: dump differs from $gold:"
    head -40 "$m.diff"
    fail=$((fail + 1))
  else
    pass=$((pass + 1))
  fi
done
echo "golden: $pass passed, $fail failed"
[ $fail -eq 0 ]
