#!/usr/bin/env bash
# train_cli.sh - `fewmul train` / `fewmul eval` end to end: a run, resume equivalence,
# Ctrl-C writing a checkpoint, NaN loss, and bad input (one clear line, non-zero exit).
#   bash train_cli.sh <fewmul> <source-dir> <scratch-dir>
set -u
fewmul=$1; d=$3
rm -rf "$d"; mkdir -p "$d"
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
common="--model mlp --data synthetic:1x8x8:4 --batch 32 --threads 1 --seed 3 --quiet"

# 1. A run writes the model and a checkpoint and reports the test accuracy.
out=$("$fewmul" train $common --epochs 2 --checkpoint "$d/a.fm" -o "$d/a.onnx" 2>"$d/a.err")
[ $? = 0 ] && ok || bad "train exit status"
[ -s "$d/a.onnx" ] && [ -s "$d/a.fm" ] && ok || bad "train outputs missing"
acc=$(echo "$out" | sed -n 's/^test accuracy: \([0-9.]*\)%.*/\1/p')
awk -v a="${acc:-0}" 'BEGIN{exit !(a > 50)}' && ok || bad "accuracy $acc% not above chance"
echo "$out" | grep -q '^samples_per_s: ' && ok || bad "no samples_per_s line"

# 2. Resume: 1 epoch, stop, resume to 2 epochs == 2 epochs straight (same bytes).
"$fewmul" train $common --epochs 1 --checkpoint "$d/b.fm" -o "$d/b1.onnx" >/dev/null 2>&1 || bad "first half"
out2=$("$fewmul" train --resume "$d/b.fm" --epochs 2 -o "$d/b.onnx" 2>/dev/null)
[ $? = 0 ] && ok || bad "resume exit status"
cmp -s "$d/a.onnx" "$d/b.onnx" && ok || bad "resumed run differs from the uninterrupted one"

# 3. eval of the exported model through the compiler gives the trainer's accuracy.
ev=$("$fewmul" eval "$d/a.onnx" --data synthetic:1x8x8:4 2>&1)
[ $? = 0 ] && ok || bad "eval failed: $ev"
eacc=$(echo "$ev" | sed -n 's/^accuracy: \([0-9.]*\)%.*/\1/p')
[ "$eacc" = "$acc" ] && ok || bad "eval accuracy $eacc% != training's $acc%"

# 4. Ctrl-C writes a checkpoint that --resume continues from.
"$fewmul" train $common --epochs 100000 --checkpoint "$d/c.fm" >/dev/null 2>"$d/c.err" &
pid=$!
for i in $(seq 50); do [ -s "$d/c.fm" ] && break; sleep 0.2; done
sleep 0.5
kill -INT $pid; wait $pid; rc=$?
[ $rc = 130 ] && ok || bad "Ctrl-C exit status $rc (want 130)"
grep -q "checkpoint written" "$d/c.err" && ok || bad "Ctrl-C did not report a checkpoint: $(cat "$d/c.err")"
"$fewmul" train --resume "$d/c.fm" --epochs 1 >/dev/null 2>&1; [ $? = 0 ] && ok || bad "resume after Ctrl-C"

# 5. A loss that becomes NaN stops the run with a message and a non-zero exit.
msg=$("$fewmul" train $common --epochs 2 --lr 1e6 --checkpoint "$d/n.fm" 2>&1 >/dev/null); rc=$?
[ $rc = 1 ] && echo "$msg" | grep -q "loss became" && ok || bad "NaN loss: rc=$rc: $msg"

# 6. Bad input: one line naming the thing, non-zero exit, no output file.
check_err() { # expected-substring, args...
  local want=$1; shift
  local m; m=$("$fewmul" "$@" 2>&1 >/dev/null); local rc=$?
  if [ $rc != 0 ] && [ "$(echo "$m" | wc -l)" = 1 ] && echo "$m" | grep -q -- "$want"; then ok
  else bad "'$*': rc=$rc, message: $m"; fi
}
check_err "/nonexistent/dir" train --model mlp --data mnist --data-dir /nonexistent/dir -o "$d/x.onnx"
check_err "nosuch" train --model nosuch --data synthetic -o "$d/x.onnx"
check_err "/nonexistent.fm" train --resume /nonexistent.fm
check_err "--frobnicate" train --model mlp --data synthetic --frobnicate
check_err "multistep" train $common --schedule multistep:x
check_err "/nonexistent.onnx" eval /nonexistent.onnx --data synthetic
check_err "3x32x32" eval "$d/a.onnx" --data synthetic:3x32x32
[ ! -e "$d/x.onnx" ] && ok || bad "a failed run left $d/x.onnx behind"

echo "train_cli: $pass passed, $fail failed"
[ $fail = 0 ]
