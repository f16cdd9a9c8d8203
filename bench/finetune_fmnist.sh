#!/usr/bin/env bash
# Fine-tuning a dense CNN trained elsewhere into few-multiplication nets, on the real
# Fashion-MNIST (Debian's dataset-fashion-mnist): `fewmul train --from DENSE.onnx` without
# --model builds the net from the ONNX graph (trainer/onnx_import.c), --method converts its
# conv/linear layers (first conv and last linear dense), and each row fine-tunes E epochs.
#
#   bash bench/finetune_fmnist.sh [--epochs E] [--rows "dense ternary"] [--dense M.onnx]
#                                 [--out DIR] [--threads T] [--fewmul PATH] [--scratch TABLE.md]
#
# Rows: dense (the import evaluated as is, --epochs 0), ternary, deepshift-ps, quant4, sp.
# Each row: DIR/ROW.log, DIR/ROW.onnx, DIR/ROW.cost (`FM_WEIGHTS=all fewmul cost`: the
# multiplications per image with every ternary/power-of-two layer on its add/shift kernel),
# DIR/ROW.result; rows with a result are skipped (an interrupted run continues). Then
# DIR/table.md (markdown, with the "within 1.0 point of dense" verdicts) and DIR/plot.svg:
# test accuracy against multiplications per image (log scale), fine-tuned rows as filled
# circles, rows trained from scratch (the mnist_cnn rows of the methods table in --scratch,
# default docs/results.md) as hollow squares; rows below --ymin % (default 80) are listed, not
# drawn. The SVG is written by this script (awk).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
EPOCHS=1 ROWS="dense ternary deepshift-ps quant4 sp" DENSE=$here/models/fmnist_cnn.onnx OUT=out/finetune_fmnist
THREADS=2 FEWMUL=${FEWMUL:-$here/build/fewmul} SCRATCH=$here/docs/results.md YMIN=80
while [ $# -gt 0 ]; do
  case "$1" in
    --epochs) EPOCHS=$2; shift 2 ;;
    --rows) ROWS=$2; shift 2 ;;
    --dense) DENSE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --fewmul) FEWMUL=$2; shift 2 ;;
    --scratch) SCRATCH=$2; shift 2 ;;
    --ymin) YMIN=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "finetune_fmnist.sh: unknown option '$1' (--help)" >&2; exit 2 ;;
  esac
done
"$FEWMUL" train --help >/dev/null 2>&1 || { echo "finetune_fmnist.sh: no working fewmul at $FEWMUL (--fewmul)" >&2; exit 2; }
mkdir -p "$OUT"

flags() {   # the method and its fine-tuning preset (docs/results.md)
  case "$1" in
    dense) echo "--epochs 0" ;;
    ternary) echo "--method ternary --optim sgd --lr 0.01" ;;
    deepshift-ps) echo "--method deepshift-ps --weight-bits 5 --lr 0.001" ;;
    quant4) echo "--method quant --weight-bits 4 --rounding stochastic --optim sgd --lr 0.01" ;;
    sp) echo "--method sp --sp-r 1 --optim sgd --lr 0.01" ;;
    *) echo "finetune_fmnist.sh: no row '$1'" >&2; exit 2 ;;
  esac
}
getv() { sed -n "s/^$2=//p" "$1" 2>/dev/null; }

for r in $ROWS; do
  res=$OUT/$r.result log=$OUT/$r.log onnx=$OUT/$r.onnx
  [ -f "$res" ] && { echo "[$r] done before: $(getv "$res" acc)%" >&2; continue; }
  f=$(flags "$r") || exit 2
  ep="--epochs $EPOCHS"
  [ "$r" = dense ] && ep=""
  cmd="$FEWMUL train --from $DENSE --data fashion-mnist $ep $f --batch 64 --threads $THREADS --seed 1 -o $onnx"
  echo "[$r] $cmd" >&2
  start=$(date +%s)
  echo "# $cmd" >"$log"
  $cmd >>"$log" 2>&1 || { echo "[$r] FAILED (see $log)" >&2; continue; }
  secs=$(($(date +%s) - start))
  FM_WEIGHTS=all "$FEWMUL" cost "$onnx" >"$OUT/$r.cost" 2>&1
  acc=$(sed -n 's/^test accuracy: \([0-9.]*\)%.*/\1/p' "$log")
  muls=$(sed -n 's/.* multiplications: \([0-9]*\) .*/\1/p' "$OUT/$r.cost" | head -n 1)
  sps=$(sed -n 's/^samples_per_s: //p' "$log")
  [ -n "$acc" ] && [ -n "$muls" ] || { echo "[$r] no accuracy or cost ($log, $OUT/$r.cost)" >&2; continue; }
  printf 'acc=%s\nmuls=%s\nsecs=%s\nsps=%s\nflags=%s\nepochs=%s\n' "$acc" "$muls" "$secs" "$sps" "$f" \
    "$([ "$r" = dense ] && echo 0 || echo "$EPOCHS")" >"$res"
  echo "[$r] $acc% , $muls multiplications/image, ${secs}s" >&2
done

# ---- table ----
dacc=$(getv "$OUT/dense.result" acc) dmul=$(getv "$OUT/dense.result" muls)
{
  echo "Fine-tuned from \`$(basename "$DENSE")\` on Fashion-MNIST (60,000 training, 10,000 test images); \`fewmul train --from $(basename "$DENSE") --data fashion-mnist --batch 64 --threads $THREADS --seed 1\` plus:"
  echo
  echo "| row | flags | epochs | test acc % | vs dense (points) | mults/image | vs dense | samples/s | s |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for r in dense ternary deepshift-ps quant4 sp; do
    res=$OUT/$r.result
    [ -f "$res" ] || continue
    a=$(getv "$res" acc) m=$(getv "$res" muls)
    dd=$(awk -v a="$a" -v d="${dacc:-0}" 'BEGIN{printf "%+.2f", a - d}')
    rm_=$(awk -v m="$m" -v d="${dmul:-1}" 'BEGIN{printf "%.3fx", m / d}')
    echo "| $r | \`$(getv "$res" flags)\` | $(getv "$res" epochs) | $a | $dd | $m | $rm_ | $(getv "$res" sps) | $(getv "$res" secs) |"
  done
  echo
  for r in ternary deepshift-ps quant4 sp; do
    [ -f "$OUT/$r.result" ] || continue
    a=$(getv "$OUT/$r.result" acc)
    awk -v a="$a" -v d="${dacc:-0}" -v r="$r" 'BEGIN{printf "%s: %s within 1.0 point of dense: %.2f%% vs %.2f%%\n", (d - a <= 1.0 ? "PASS" : "FAIL"), r, a, d}'
  done
} >"$OUT/table.md"
cat "$OUT/table.md"

# ---- plot: accuracy vs multiplications (log x) ----
{
  for r in dense ternary deepshift-ps quant4 sp; do
    [ -f "$OUT/$r.result" ] && echo "ft $(getv "$OUT/$r.result" muls) $(getv "$OUT/$r.result" acc) $r"
  done
  # the methods table of --scratch: mnist_cnn rows (| row | method | model | flags | acc | mults | ...)
  if [ -f "$SCRATCH" ]; then
    awk -F'|' '$4 ~ /^ *mnist_cnn *$/ && $6 ~ /[0-9]/ && $7 ~ /^ *[0-9]+ *$/ {
      acc = $6; gsub(/[^0-9.]/, "", acc); m = $7; gsub(/ /, "", m); name = $3; gsub(/^ +| +$/, "", name); gsub(/ /, "_", name)
      kind = ($5 ~ /--from/) ? "ft" : "sc"; row = $2; gsub(/ /, "", row); print kind, m, acc, "row" row "_" name }' "$SCRATCH"
  fi
} >"$OUT/points.txt"
awk -v floor="$YMIN" 'BEGIN { W = 720; H = 440; L = 70; R = 20; T = 30; B = 60; xmin = 1e99; xmax = 0; ymin = 1e99; ymax = 0; dropped = "" }
$3 < floor { dropped = dropped (dropped == "" ? "" : ", ") $4 " " $3 "%"; next }
{ NR_ = ++n; k[NR_] = $1; x[NR_] = log($2) / log(10); y[NR_] = $3; lab[NR_] = $4
  if (x[NR_] < xmin) xmin = x[NR_]; if (x[NR_] > xmax) xmax = x[NR_]; if (y[NR_] < ymin) ymin = y[NR_]; if (y[NR_] > ymax) ymax = y[NR_] }
END {
  if (n == 0) exit
  xmin = int(xmin * 2 - 0.5) / 2; xmax = int(xmax * 2 + 1) / 2; ymin = int(ymin - 1); ymax = int(ymax + 1)
  if (ymax - ymin < 2) ymax = ymin + 2
  printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"11\">\n", W, H
  printf "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H
  printf "<text x=\"%d\" y=\"18\" font-size=\"13\">Fashion-MNIST: test accuracy vs multiplications per image (mnist_cnn)</text>\n", L
  for (v = xmin; v <= xmax + 1e-9; v += 0.5) { px = L + (v - xmin) / (xmax - xmin) * (W - L - R)
    printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>", px, T, px, H - B
    printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", px, H - B + 15, (v == int(v) ? sprintf("1e%d", v) : "") }
  step = (ymax - ymin > 20) ? 10 : (ymax - ymin > 8 ? 2 : 1)
  for (v = ymin; v <= ymax; v += step) { py = T + (ymax - v) / (ymax - ymin) * (H - T - B)
    printf "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>", L, py, W - R, py
    printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%d</text>\n", L - 5, py + 4, v }
  printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">multiplications per image (log scale)</text>\n", (L + W - R) / 2, H - 20
  printf "<text x=\"15\" y=\"%d\" transform=\"rotate(-90 15 %d)\" text-anchor=\"middle\">test accuracy %%</text>\n", (T + H - B) / 2, (T + H - B) / 2
  if (dropped != "") printf "<text x=\"%d\" y=\"%d\" font-size=\"9\" fill=\"#444\">below %s%% (not drawn): %s</text>\n", L, H - 5, floor, dropped
  for (i = 1; i <= n; i++) { px = L + (x[i] - xmin) / (xmax - xmin) * (W - L - R); py = T + (ymax - y[i]) / (ymax - ymin) * (H - T - B)
    if (k[i] == "ft") printf "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"#c0392b\"/>", px, py
    else printf "<rect x=\"%.1f\" y=\"%.1f\" width=\"9\" height=\"9\" fill=\"none\" stroke=\"#2c3e80\" stroke-width=\"1.5\"/>", px - 4.5, py - 4.5
    printf "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" fill=\"#444\">%s</text>\n", px + 7, py - 5, lab[i] }
  printf "<circle cx=\"%d\" cy=\"%d\" r=\"5\" fill=\"#c0392b\"/><text x=\"%d\" y=\"%d\">fine-tuned from a dense model</text>\n", W - 230, H - B - 40, W - 220, H - B - 36
  printf "<rect x=\"%d\" y=\"%d\" width=\"9\" height=\"9\" fill=\"none\" stroke=\"#2c3e80\" stroke-width=\"1.5\"/><text x=\"%d\" y=\"%d\">trained from scratch</text>\n", W - 234, H - B - 26, W - 220, H - B - 18
  print "</svg>" }' "$OUT/points.txt" >"$OUT/plot.svg"
echo "wrote $OUT/table.md, $OUT/plot.svg" >&2
