#!/bin/bash
# from_onnx.sh - `fewmul train --from dense.onnx` (trainer/from_onnx.c): train a dense
# mnist_cnn and resnet20 a few steps on synthetic data and export them, then
#  (a) --from X.onnx --epochs 0 reproduces the dense model: the same test accuracy and
#      loss, and a byte-identical re-export;
#  (b) ternary, deepshift-q, deepshift-ps, quant, winograd and sp start from it and train
#      (sp with r = c_out from W_B = W; with r = c_out / 2 from its random init)
#      (DeepShift-PS from W = DeepShift-Q from W before any step: the same test loss);
#  (c) a truncated file, another model's file, a non-dense file, a missing file: one
#      clear error line naming the file, exit 1.
# Usage: bash from_onnx.sh <fewmul-binary> <source-dir> <scratch-dir>   (77 = skipped)
. "$(dirname "$0")/lib/common.sh"
enter_work

DATA=synthetic:1x28x28
train() { "$FEWMUL" train --data "$DATA" --threads 2 --batch 32 --test-subset 128 "$@"; }
acc_line() { grep '^test accuracy' "$1" | sed 's/, [0-9]* steps in .*//'; }

# ---- the dense models ----
for m in mnist_cnn resnet20; do
  if ! train --model $m --steps 5 --quiet -o $m.onnx >$m.txt 2>$m.err; then
    echo "FAIL: dense $m: $(head -c 400 $m.err)"
    exit 1
  fi
done

# ---- (a) --from dense.onnx, no method, no step: the same model ----
for m in mnist_cnn resnet20; do
  if ! train --model $m --epochs 0 --from $m.onnx -o re_$m.onnx >re_$m.txt 2>re_$m.err; then
    bad "$m --from $m.onnx: $(head -c 400 re_$m.err)"
    continue
  fi
  want=$(acc_line $m.txt) got=$(acc_line re_$m.txt)
  if [ -n "$want" ] && [ "$want" = "$got" ]; then ok "$m --from $m.onnx --epochs 0: $got"
  else bad "$m --from: dense '$want', from the file '$got'"; fi
  if cmp -s $m.onnx re_$m.onnx; then ok "$m: the re-export is byte-identical"
  else bad "$m: the re-export differs from $m.onnx"; fi
  line=$(grep "^from $m.onnx: " re_$m.err | head -n 1)
  n=$(echo "$line" | sed -n 's/^from [^:]*: \([0-9]*\) tensors into \([0-9]*\) parameters.*/\1 \2/p')
  if [ -n "$n" ] && [ "${n% *}" = "${n#* }" ] && [ "${n% *}" -gt 0 ]; then ok "$m: $line"
  else bad "$m: no or wrong summary line: '$line'"; fi
done

# ---- (b) every method starts from the dense weights ----
method_run() {   # MODEL NAME LOG-PATTERN ARGS...
  local model=$1 name=$2 pat=$3
  shift 3
  if ! train --model "$model" --steps 1 --test-subset 32 --from "$model.onnx" "$@" >"$name.txt" 2>"$name.err"; then
    bad "$name: fewmul train --from $model.onnx $*: $(head -c 400 "$name.err")"
  elif ! grep -q "^from $model.onnx: .*$pat" "$name.err"; then
    bad "$name: no '$pat' line in the log: $(grep '^from' "$name.err" | head -c 400)"
  else
    ok "$name: $(grep "^from $model.onnx: .*$pat" "$name.err" | head -n 1)"
  fi
}
method_run mnist_cnn cnn_ternary "ternary layers take the dense W" --method ternary
method_run mnist_cnn cnn_shiftq "deepshift-q layers take the dense W" --method deepshift-q
method_run mnist_cnn cnn_shiftps "P = log2|W|" --method deepshift-ps
method_run mnist_cnn cnn_quant "quant layers take the dense W" --method quant --weight-bits 6
method_run mnist_cnn cnn_winograd "Winograd convs take the dense W" --method winograd --tile 2
method_run resnet20 r20_ternary_all "22 ternary layers take the dense W" --method ternary --method-all
method_run resnet20 r20_shiftps "P = log2|W|" --method deepshift-ps
method_run resnet20 r20_quant "quant layers take the dense W" --method quant --rounding deterministic
method_run resnet20 r20_sp "20 SP layers start from the dense W" --method sp
method_run resnet20 r20_sp_half "20 SP layers keep their random init" --method sp --sp-r 0.5

# DeepShift-PS (P = log2|W|, S = sign W) and DeepShift-Q (W) give the same weights before any step
train --model resnet20 --epochs 0 --method deepshift-q >e0_random.txt 2>/dev/null
for k in deepshift-q deepshift-ps; do
  train --model resnet20 --epochs 0 --from resnet20.onnx --method $k >e0_$k.txt 2>e0_$k.err ||
    bad "$k --epochs 0: $(head -c 400 e0_$k.err)"
done
q=$(acc_line e0_deepshift-q.txt) ps=$(acc_line e0_deepshift-ps.txt)
if [ -n "$q" ] && [ "$q" = "$ps" ]; then ok "deepshift-ps from W = deepshift-q from W: $q"
else bad "deepshift-q '$q' and deepshift-ps '$ps' differ at step 0"; fi
r=$(acc_line e0_random.txt)
if [ -n "$r" ] && [ "$r" != "$q" ]; then ok "deepshift-q without --from differs: $r"
else bad "deepshift-q with and without --from: '$q', '$r'"; fi

# ---- (c) bad files: one clear error naming the file, exit 1 ----
fails_naming() {   # WHAT PATTERN ARGS...
  local what=$1 pat=$2
  shift 2
  expect_fail "$what" --data "$DATA" --epochs 0 --test-subset 16 "$@"
  if ! grep -q -- "$pat" err.txt; then bad "$what: the error does not say '$pat': $(head -c 300 err.txt)"; fi
}
head -c 20000 resnet20.onnx >trunc.onnx
fails_naming "truncated" "trunc.onnx" --model resnet20 --from trunc.onnx
fails_naming "another model" "mnist_cnn.onnx.*conv2d_1.weight" --model resnet20 --from mnist_cnn.onnx
fails_naming "deeper model" "resnet20.onnx" --model resnet32 --from resnet20.onnx
fails_naming "other input" "Nx1x28x28" --model mnist_cnn --data synthetic:3x28x28 --from mnist_cnn.onnx
fails_naming "other classes" "linear_11.weight" --model mnist_cnn --data synthetic:1x28x28:5 --from mnist_cnn.onnx
fails_naming "missing file" "nothere.onnx" --model mnist_cnn --from nothere.onnx
printf 'not a model' >junk.bin
fails_naming "junk" "junk.bin" --model mnist_cnn --from junk.bin
if train --model mnist_cnn --steps 2 --method ternary --quiet -o tern.onnx >/dev/null 2>tern.err; then
  fails_naming "a ternary model" "not a dense model" --model mnist_cnn --from tern.onnx
else
  bad "ternary export: $(head -c 300 tern.err)"
fi

finish from_onnx
