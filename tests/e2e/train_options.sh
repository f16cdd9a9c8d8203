#!/bin/bash
# train_options.sh - `fewmul train` refuses what it cannot honour (issue 15, class 5),
# each case one error line and exit 1 where it used to crash or run on nonsense:
#  - a data folder whose test images have another shape than the training images
#    (heap overflow in evaluation before), or test labels outside the classes;
#  - integer options that do not fit their field (--epochs 4294967296 ran 0 steps, exit 0),
#    and --width 0 (ignored before);
#  - a checkpoint path of ~510 characters can be resumed (the .args file was written
#    with a 1024-byte path and read with a 512-byte one);
#  - a data set of more than 8 channels (its mean/std overflowed an 8-entry array).
# Usage: bash train_options.sh <fewmul-binary> <source-dir> <scratch-dir>
. "$(dirname "$0")/lib/common.sh"
enter_work

# IDX files: be32 magic, dims, then bytes
be32() { printf "\\x$(printf %02x $(($1 >> 24 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 & 255)))"; }
idx_images() {   # FILE N H W
  { be32 $((0x803)); be32 $2; be32 $3; be32 $4; head -c $(($2 * $3 * $4)) /dev/urandom; } >"$1"
}
idx_labels() {   # FILE N MAXLABEL
  { be32 $((0x801)); be32 $2; for ((i = 0; i < $2; i++)); do printf "\\x$(printf %02x $((i % ($3 + 1))))"; done; } >"$1"
}
mkdir -p shapes labels
idx_images shapes/train-images-idx3-ubyte 64 28 28; idx_labels shapes/train-labels-idx1-ubyte 64 9
idx_images shapes/t10k-images-idx3-ubyte 16 32 32; idx_labels shapes/t10k-labels-idx1-ubyte 16 9
expect_fail "test images of another shape" --model mlp --data mnist --data-dir shapes --steps 1
grep -q "training images are 1x28x28, the test images 1x32x32" err.txt && ok "train/test shapes compared: $(cat err.txt)" ||
  bad "train/test shapes: $(head -c 300 err.txt)"

common="--model mlp --data synthetic:1x8x8:4 --batch 16 --subset 32 --test-subset 16 --threads 1 --quiet"
for opt in "--epochs 4294967296" "--epochs 2147483648" "--batch 4294967297" "--subset -1" "--threads 99999999999" "--steps 1x" "--threads 5000"; do
  expect_fail "$opt" $common $opt
  grep -q "is not an integer in" err.txt && ok "$opt refused: $(cat err.txt)" || bad "$opt: $(head -c 300 err.txt)"
done
expect_fail "--width 0" $common --width 0
grep -q "width must be a positive" err.txt && ok "--width 0 refused" || bad "--width 0: $(head -c 300 err.txt)"

# a checkpoint path of about 510 characters: written, then resumed
long=$(printf 'd%.0s' {1..200})/$(printf 'e%.0s' {1..200})/$(printf 'f%.0s' {1..90})
mkdir -p "$long"
ck=$PWD/$long/ck.fm
echo "checkpoint path: ${#ck} characters"
if "$FEWMUL" train $common --epochs 1 --checkpoint "$ck" >/dev/null 2>long.err; then
  if "$FEWMUL" train --resume "$ck" --epochs 2 >resume.txt 2>resume.err && grep -q "^test accuracy" resume.txt; then
    ok "a ${#ck}-character checkpoint path resumes"
  else
    bad "resume of a ${#ck}-character path: $(head -c 300 resume.err)"
  fi
else
  bad "train with a ${#ck}-character checkpoint path: $(head -c 300 long.err)"
fi

# more channels than the input normalisation holds (8)
if "$FEWMUL" train --model mlp --data synthetic:16x4x4:3 --steps 2 --batch 16 --test-subset 16 --threads 1 --quiet \
     >many.txt 2>many.err && grep -q "^test accuracy" many.txt; then
  ok "16-channel data trains"
else
  bad "16-channel data: $(head -c 300 many.err)"
fi

# progress within an epoch (--progress 0: a line per step): steps, samples/s, loss, ETA
"$FEWMUL" train --model mlp --data synthetic:1x8x8:4 --subset 64 --test-subset 16 --batch 16 --epochs 1 --threads 1 \
  --progress 0 >prog.txt 2>prog.err || bad "--progress 0: $(head -c 300 prog.err)"
n=$(grep -c '^epoch 1/1  step [1-4]/4  loss [0-9.]*  [0-9]* samples/s  epoch ETA ' prog.err)
[ "$n" = 4 ] && ok "a progress line per step" || bad "progress lines: $n of 4: $(head -c 300 prog.err)"

# train --help lists every model of --list
"$FEWMUL" train --help >help.txt
for m in $("$FEWMUL" train --list | awk '{print $1}'); do
  grep -q "^  $m " help.txt || bad "train --help does not list model $m"
done
ok "train --help lists the $("$FEWMUL" train --list | wc -l) models of --list"

finish train_options
