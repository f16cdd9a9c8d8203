#!/bin/bash
# train_bench.sh - training throughput of `fewmul train` against PyTorch on the same
# architectures (mnist_cnn, resnet20), random data, SGD momentum 0.9, batch 64.
#
#   bash bench/train_bench.sh [--steps N] [--batch B] [--threads T] [--models "mnist_cnn resnet20"]
#                             [--repeat R] [--fewmul PATH]
#
# fewmul: `fewmul train --model M --data synthetic:CxHxW --steps N --batch B --threads T`; its
# samples/s is that of the training loop (forward, loss, backward, step, data loading), from
# the per-epoch "samples/s" lines on stderr: total samples / sum of the epochs' times, so the
# per-epoch test-set evaluation and the start-up (synthetic data, model build) are not counted.
# The wall column is the whole command, all of that included.
# PyTorch: bench/train_torch.py (torch.set_num_threads(T), 10 warm-up steps, then N timed
# steps on pre-made random batches), run with $PYTHON (default /usr/bin/python3, Debian's
# python3-torch; not the pyenv python on PATH). --repeat R alternates R runs of each and
# reports medians (this virtual machine's timings drift by +-25%). Not a test: prints a
# markdown table.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FEWMUL=$ROOT/build/fewmul
PYTHON=${PYTHON:-/usr/bin/python3}
STEPS=100 BATCH=64 THREADS=2 MODELS="mnist_cnn resnet20" REPEAT=1
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) STEPS=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --models) MODELS=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --fewmul) FEWMUL=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "train_bench: unknown argument '$1' (--help)" >&2; exit 2 ;;
  esac
done
[ -x "$FEWMUL" ] || { echo "train_bench: $FEWMUL is not built (cmake --build build --target fewmul)" >&2; exit 1; }

have_torch=1
if ! "$PYTHON" -c 'import torch' >/dev/null 2>&1; then
  have_torch=0
  echo "NOTE: $PYTHON has no torch (apt-get install python3-torch): the PyTorch column is n/a" >&2
fi

data_of() { case "$1" in mnist_cnn|mlp) echo synthetic:1x28x28 ;; *) echo synthetic:3x32x32 ;; esac; }
now() { date +%s.%N; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# one fewmul run: prints its loop samples/s (stdout), logs to stderr, the command's wall
# seconds to $WORK/wall
run_fewmul() {
  local m=$1 d t0
  d=$(data_of "$m")
  echo "== $m: fewmul train --model $m --data $d --steps $STEPS --batch $BATCH --threads $THREADS" >&2
  t0=$(now)
  if ! "$FEWMUL" train --model "$m" --data "$d" --steps "$STEPS" --batch "$BATCH" --threads "$THREADS" \
      >"$WORK/out.txt" 2>"$WORK/err.txt"; then
    echo "train_bench: fewmul train failed for $m: $(grep -m1 'error' "$WORK/err.txt" || tail -1 "$WORK/err.txt")" >&2
    return 1
  fi
  awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f\n", b - a }' >"$WORK/wall"
  sed 's/^/   /' "$WORK/err.txt" "$WORK/out.txt" >&2
  # Loop throughput from the epoch lines: an epoch of the data set is ceil(n / batch) steps
  # and n samples (drop_last is off); the last epoch stops after the remaining steps.
  local fm
  fm=$(awk -v steps="$STEPS" -v batch="$BATCH" '
    / train \/ / { for (i = 1; i <= NF; i++) if ($(i + 1) == "train") n = $i; spe = int((n + batch - 1) / batch) }
    / samples\/s / {
      for (i = 1; i <= NF; i++) if ($(i + 1) == "samples/s") sps = $i
      k = steps < spe ? steps : spe; steps -= k
      seen = k == spe ? n : k * batch
      if (sps > 0) { S += seen; T += seen / sps }
    }
    END { if (T > 0) printf "%.1f", S / T }' "$WORK/err.txt")
  if [ -z "$fm" ]; then
    # no epoch lines: the final line's time (includes the final test-set evaluation)
    fm=$(sed -n 's/.* \([0-9]*\) steps in \([0-9.]*\)s.*/\1 \2/p' "$WORK/out.txt" |
         awk -v b="$BATCH" '$2 > 0 { printf "%.1f", $1 * b / $2 }')
  fi
  echo "$fm"
}

run_torch() {
  local m=$1
  echo "== $m: $PYTHON bench/train_torch.py --model $m --steps $STEPS --warmup 10 --batch $BATCH --threads $THREADS" >&2
  if "$PYTHON" "$ROOT/bench/train_torch.py" --model "$m" --steps "$STEPS" --warmup 10 --batch "$BATCH" \
      --threads "$THREADS" >"$WORK/pt.txt" 2>"$WORK/pterr.txt"; then
    sed 's/^/   /' "$WORK/pterr.txt" "$WORK/pt.txt" >&2
    sed -n 's/^samples_per_s: //p' "$WORK/pt.txt"
  else
    echo "train_bench: train_torch.py failed for $m: $(tail -1 "$WORK/pterr.txt")" >&2
    return 1
  fi
}

# "median (min-max)" of the numbers given, or the one number
summary() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
  if (NR == 0) { print "failed"; exit }
  med = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
  if (NR == 1) printf "%.1f", med; else printf "%.1f (%.1f-%.1f)", med, v[1], v[NR] }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
  if (NR) printf "%.1f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

rows=()
for m in $MODELS; do
  fms=() pts=() walls=()
  for ((r = 1; r <= REPEAT; r++)); do   # fewmul and PyTorch alternate, so drift hits both
    [ "$REPEAT" -gt 1 ] && echo "== $m: round $r of $REPEAT" >&2
    if fm=$(run_fewmul "$m") && [ -n "$fm" ]; then fms+=("$fm") walls+=("$(cat "$WORK/wall")"); fi
    if [ "$have_torch" = 1 ] && pt=$(run_torch "$m") && [ -n "$pt" ]; then pts+=("$pt"); fi
  done
  fm_med=$(median "${fms[@]}") pt_med=$(median "${pts[@]}")
  pt_col=n/a ratio=n/a
  [ "$have_torch" = 1 ] && pt_col=$(summary "${pts[@]}")
  if [ -n "$fm_med" ] && [ -n "$pt_med" ]; then ratio=$(awk -v a="$fm_med" -v b="$pt_med" 'BEGIN { printf "%.2fx", a / b }'); fi
  rows+=("| $m | $(summary "${fms[@]}") | $pt_col | $ratio | $(median "${walls[@]}") |")
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo
echo "Training throughput, batch $BATCH, $THREADS threads, $STEPS steps, random data (samples/s, higher is better;"
echo "median (min-max) of $REPEAT alternating runs each; ratio of the medians)"
echo
echo "| model | fewmul samples/s | PyTorch samples/s | ratio (fewmul / PyTorch) | fewmul wall s |"
echo "|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
