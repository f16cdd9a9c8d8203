#!/usr/bin/env bash
# The multiplication-minimal methods results table on the real Fashion-MNIST
# (Debian's dataset-fashion-mnist, /usr/share/datasets/fashion-mnist/).
#
#   bash bench/methods_fmnist.sh [--epochs E] [--rows "1 2 5"] [--out DIR] [--steps N]
#                                [--fewmul PATH]
#
# Every row trains for the same epoch budget E (default 2) with its method's documented
# optimiser / learning-rate preset (docs/METHODS.md, docs/results.md), exports the ONNX model,
# and is measured with `fewmul cost` (multiplications per image, batch 1) and the .onnx size.
# Rows whose result file DIR/rowN.result exists are skipped, so an interrupted run continues
# where it stopped (a result made with another --epochs/--steps is refused: use another --out).
# Progress goes to stderr; the markdown table and the PASS/FAIL lines of the issue's targets go
# to stdout and DIR/table.md. Logs: DIR/rowN.log; models: DIR/rowN.onnx.
#
# Rows: 1-18 the issue's table (row_def below); 19 the dense twin trained with the Winograd rows'
# recipe (SGD lr 0.01), their "normal conv"; 20-21 the zero-less 2-bit grid (rows 11-12, the
# plain 2-bit grid, do not train); 22-24 TWN, DeepShift-Q/PS fine-tuned from row 1's model
# (--from). Targets compare rows 3/1, 6/1, 24/1, 14/19, 16/15 and 10/9.
#
# --steps N passes --steps N to every run (a smoke check: seconds per row, accuracies
# meaningless). This is a bench script, not a test; it is not part of ctest.
set -u

here=$(cd "$(dirname "$0")/.." && pwd)
EPOCHS=2
ROWS=""
OUT=out/methods_fmnist
STEPS=0
FEWMUL=${FEWMUL:-}

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --epochs) EPOCHS=${2:?--epochs needs a value}; shift 2 ;;
    --rows) ROWS=${2:?--rows needs a value}; shift 2 ;;
    --out) OUT=${2:?--out needs a value}; shift 2 ;;
    --steps) STEPS=${2:?--steps needs a value}; shift 2 ;;
    --fewmul) FEWMUL=${2:?--fewmul needs a value}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "methods_fmnist.sh: unknown option '$1' (--help)" >&2; exit 2 ;;
  esac
done
case "$EPOCHS" in ''|*[!0-9]*|0) echo "methods_fmnist.sh: --epochs must be a positive integer" >&2; exit 2 ;; esac
case "$STEPS" in ''|*[!0-9]*) echo "methods_fmnist.sh: --steps must be a non-negative integer" >&2; exit 2 ;; esac

if [ -z "$FEWMUL" ]; then
  for c in "$here/build/fewmul" /tmp/build-table/fewmul; do
    if [ -x "$c" ]; then FEWMUL=$c; break; fi
  done
fi
if [ -z "$FEWMUL" ] || ! "$FEWMUL" train --help >/dev/null 2>&1; then
  echo "methods_fmnist.sh: no working fewmul binary (build it: cmake -S . -B build && cmake --build build --target fewmul; or pass --fewmul PATH)" >&2
  exit 2
fi
ALL_ROWS="1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24"
[ -n "$ROWS" ] || ROWS=$ALL_ROWS
for r in $ROWS; do
  case " $ALL_ROWS " in *" $r "*) ;; *) echo "methods_fmnist.sh: no row '$r' (rows 1..24)" >&2; exit 2 ;; esac
done
mkdir -p "$OUT" || exit 2

# --- the epoch-dependent parts of the presets -----------------------------------------------
# SP three-phase recipe (reference 250,40,10 of 300 epochs) scaled to E whole epochs: phase 2
# gets max(1, round(E*40/300)) epochs, phase 3 round(E*10/300), phase 1 the rest
# (E = 2: 1,1,0, the run of METHODS.md's short-run table). The recipe needs whole epochs per
# phase; with E = 1 there is no room for phase 1, so the row trains phase 2 (ternary W_B, W_C)
# from scratch instead, SGD lr 0.05 (METHODS.md: "phase 2 from scratch").
sp_flags() {   # sp_flags R
  local e=$EPOCHS e2 e3 e1
  if [ "$e" -lt 2 ]; then
    echo "--method sp --sp-r $1 --sp-patch 1 --sp-phase 2 --lr 0.05"
    return
  fi
  e2=$(( (e * 40 + 150) / 300 )); [ "$e2" -ge 1 ] || e2=1
  e3=$(( (e * 10 + 150) / 300 ))
  e1=$(( e - e2 - e3 ))
  echo "--method sp --sp-r $1 --sp-patch 1 --sp-recipe $e1,$e2,$e3 --lr 0.05"
}
# resnet20 / shiftresnet20: the CIFAR recipe (SGD 0.9, lr 0.1, wd 1e-4, x0.1 at 50% and 75%
# of the epochs: multistep:100,150 of 200) scaled to E.
resnet_flags() {
  local m1=$(( EPOCHS / 2 )) m2=$(( EPOCHS * 3 / 4 ))
  [ "$m1" -ge 1 ] || m1=1
  [ "$m2" -gt "$m1" ] || m2=$(( m1 + 1 ))
  echo "--optim sgd --lr 0.1 --momentum 0.9 --wd 1e-4 --schedule multistep:$m1,$m2"
}

# --- the rows --------------------------------------------------------------------------------
# row N: NAME (method column), MODEL, FLAGS (the row's own flags), TWIN (its dense twin's row,
# for the "vs dense" column). Common to every run:
#   --data fashion-mnist --epochs E --batch 64 --threads 2 --seed 1 [--steps N] -o DIR/rowN.onnx
row_def() {
  MODEL=mnist_cnn; TWIN=1
  case "$1" in
    1)  NAME="dense baseline";              FLAGS="--optim adam --lr 0.001 --schedule cosine" ;;
    2)  NAME="TWN ternary";                 FLAGS="--method ternary --optim sgd --lr 0.05" ;;
    3)  NAME="SP r=c_out, p=1";             FLAGS=$(sp_flags 1.0) ;;
    4)  NAME="SP r=c_out/2, p=1";           FLAGS=$(sp_flags 0.5) ;;
    5)  NAME="DeepShift-Q";                 FLAGS="--method deepshift-q --optim sgd --lr 0.05" ;;
    # DeepShift-PS: its preset (RAdam; P and S at lr 0.1, the other parameters at 1e-3) with
    # the dense twin's cosine schedule (METHODS.md, "The preset").
    6)  NAME="DeepShift-PS 5 bits";         FLAGS="--method deepshift-ps --weight-bits 5 --schedule cosine" ;;
    7)  NAME="quant 8 bits deterministic";  FLAGS="--method quant --weight-bits 8 --rounding deterministic --optim sgd --lr 0.05" ;;
    8)  NAME="quant 8 bits stochastic";     FLAGS="--method quant --weight-bits 8 --rounding stochastic --optim sgd --lr 0.05" ;;
    9)  NAME="quant 4 bits deterministic";  FLAGS="--method quant --weight-bits 4 --rounding deterministic --optim sgd --lr 0.05" ;;
    10) NAME="quant 4 bits stochastic";     FLAGS="--method quant --weight-bits 4 --rounding stochastic --optim sgd --lr 0.05" ;;
    11) NAME="quant 2 bits deterministic";  FLAGS="--method quant --weight-bits 2 --rounding deterministic --optim sgd --lr 0.05" ;;
    12) NAME="quant 2 bits stochastic";     FLAGS="--method quant --weight-bits 2 --rounding stochastic --optim sgd --lr 0.05" ;;
    # Winograd-aware: mnist_cnn's second conv (3x3, stride 1, pad 0) is the Winograd layer;
    # SGD lr 0.01 (METHODS.md: flex transforms diverge at 0.05). Twin: row 19, same recipe.
    13) NAME="Winograd F4 static 8 bits";   FLAGS="--method winograd --tile 4 --transforms static --bits 8 --optim sgd --lr 0.01"; TWIN=19 ;;
    14) NAME="Winograd F4 flex 8 bits";     FLAGS="--method winograd --tile 4 --transforms flex --bits 8 --optim sgd --lr 0.01"; TWIN=19 ;;
    15) NAME="Winograd F4 static 4 bits";   FLAGS="--method winograd --tile 4 --transforms static --bits 4 --optim sgd --lr 0.01"; TWIN=19 ;;
    16) NAME="Winograd F4 flex 4 bits";     FLAGS="--method winograd --tile 4 --transforms flex --bits 4 --optim sgd --lr 0.01"; TWIN=19 ;;
    17) NAME="dense ResNet-20";             MODEL=resnet20;      FLAGS=$(resnet_flags); TWIN=17 ;;
    18) NAME="ShiftResNet-20 3c";           MODEL=shiftresnet20; FLAGS="--expansion 3 $(resnet_flags)"; TWIN=17 ;;
    19) NAME="dense, Winograd rows' recipe"; FLAGS="--optim sgd --lr 0.01"; TWIN=19 ;;
    # The plain 2-bit grid {-s, -s/2, 0, s/2} (rows 11, 12) rounds almost every weight to 0
    # at init and stays at chance (loss 2.30); the zero-less 2-bit grid {-s, -s/2, s/2, s} is the
    # 2-bit run METHODS.md documents (78.80% in its short-run table).
    20) NAME="quant 2 bits zero-less deterministic"; FLAGS="--method quant --weight-bits 2 --zeroless --rounding deterministic --optim sgd --lr 0.05" ;;
    21) NAME="quant 2 bits zero-less stochastic";    FLAGS="--method quant --weight-bits 2 --zeroless --rounding stochastic --optim sgd --lr 0.05" ;;
    # The methods' own recipes start from a trained dense model: rows 22-24 start from row 1's
    # export (--from, trainer/from_onnx.c) and fine-tune for the same E epochs (so they have
    # seen 2E epochs in all), at the fine-tuning learning rates of the references
    # (TWN/StrassenNets: SGD 0.01; DeepShift: lr 0.001 from pretrained weights).
    22) NAME="TWN ternary from dense";      FLAGS="--method ternary --optim sgd --lr 0.01 --from $OUT/row1.onnx" ;;
    23) NAME="DeepShift-Q from dense";      FLAGS="--method deepshift-q --optim sgd --lr 0.01 --from $OUT/row1.onnx" ;;
    24) NAME="DeepShift-PS 5 bits from dense"; FLAGS="--method deepshift-ps --weight-bits 5 --lr 0.001 --from $OUT/row1.onnx" ;;   # RAdam; --lr alone: P and S at 0.001 too
  esac
}
COMMON="--data fashion-mnist --epochs $EPOCHS --batch 64 --threads 2 --seed 1"
[ "$STEPS" -gt 0 ] && COMMON="$COMMON --steps $STEPS"
SETTINGS="epochs=$EPOCHS steps=$STEPS"

# --- run ---------------------------------------------------------------------------------------
getv() { sed -n "s/^$2=//p" "$1" 2>/dev/null | head -n1; }   # getv FILE KEY
failed=""
for r in $ROWS; do
  row_def "$r"
  res="$OUT/row$r.result" log="$OUT/row$r.log" onnx="$OUT/row$r.onnx"
  if [ -f "$res" ]; then
    if [ "$(getv "$res" settings)" != "$SETTINGS" ]; then
      echo "methods_fmnist.sh: $res was made with '$(getv "$res" settings)', this run is '$SETTINGS': use another --out or remove it" >&2
      exit 2
    fi
    echo "[row $r] $NAME: done already ($res), skipped" >&2
    continue
  fi
  # shellcheck disable=SC2086
  set -- train --model "$MODEL" $FLAGS $COMMON -o "$onnx"
  echo "[row $r] $NAME: $FEWMUL $*" >&2
  t0=$(date +%s)
  { echo "# $FEWMUL $*"; "$FEWMUL" "$@"; } >"$log" 2>&1
  rc=$?
  t1=$(date +%s)
  if [ $rc -ne 0 ] || [ ! -s "$onnx" ]; then
    echo "[row $r] FAILED (exit $rc): $(grep -m1 'fewmul: error' "$log" || tail -n1 "$log")" >&2
    failed="$failed $r"
    continue
  fi
  acc=$(sed -n 's/^test accuracy: \([0-9.]*\)%.*/\1/p' "$log" | tail -n1)
  sps=$(sed -n 's/^samples_per_s: //p' "$log" | tail -n1)
  params=$(sed -n 's/.* \([0-9][0-9]*\) parameters,.*/\1/p' "$log" | head -n1)
  # Two counts: the compiled code as fewmul compiles it by default (a ternary / power-of-two
  # layer too dense for the add kernels to beat sgemm stays a dense Conv[pow2] etc., see
  # passes/weights.c), and --specialize=all, every qualifying layer on its add/shift kernel:
  # the multiplications the method needs (the "mults/image" column).
  echo "# $FEWMUL cost $onnx" >>"$log"
  "$FEWMUL" cost "$onnx" >"$OUT/row$r.cost" 2>&1
  crc=$?
  echo "# $FEWMUL cost $onnx --specialize=all" >>"$OUT/row$r.cost"
  "$FEWMUL" cost "$onnx" --specialize=all >>"$OUT/row$r.cost" 2>&1 || crc=1
  cat "$OUT/row$r.cost" >>"$log"
  cost_c=$(grep '^batch: ' "$OUT/row$r.cost" | sed -n 1p)
  cost=$(grep '^batch: ' "$OUT/row$r.cost" | sed -n 2p)
  muls=$(echo "$cost" | sed -n 's/.* multiplications: \([0-9]*\) .*/\1/p')
  muls_c=$(echo "$cost_c" | sed -n 's/.* multiplications: \([0-9]*\) .*/\1/p')
  dmacs=$(echo "$cost" | sed -n 's/.* of \([0-9]*\) dense MACs.*/\1/p')
  if [ $crc -ne 0 ] || [ -z "$muls" ] || [ -z "$muls_c" ] || [ -z "$acc" ]; then
    echo "[row $r] FAILED: $(grep -m1 'fewmul: error' "$log" || echo 'no test accuracy or cost line in the log') ($log)" >&2
    failed="$failed $r"
    continue
  fi
  bytes=$(wc -c <"$onnx" | tr -d ' ')
  cat >"$res.tmp" <<EOF
settings=$SETTINGS
name=$NAME
model=$MODEL
flags=$FLAGS
acc=$acc
muls=$muls
muls_compiled=$muls_c
dense_macs=$dmacs
bytes=$bytes
params=$params
samples_per_s=$sps
seconds=$((t1 - t0))
EOF
  mv "$res.tmp" "$res"
  echo "[row $r] test accuracy $acc%, $muls multiplications/image, $bytes bytes, $sps samples/s, $((t1 - t0)) s" >&2
done

# --- table and targets --------------------------------------------------------------------------
{
  echo "Fashion-MNIST, $EPOCHS epoch(s) per row$([ "$STEPS" -gt 0 ] && echo ", --steps $STEPS (smoke run: accuracies meaningless)"); common flags: \`$COMMON\`; \`$FEWMUL\`."
  echo
  echo "| row | method | model | flags | test acc % | mults/image | vs dense | mults/image compiled (default) | .onnx bytes | params | samples/s | s |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  for r in $ROWS; do
    row_def "$r"
    res="$OUT/row$r.result"
    if [ ! -f "$res" ]; then
      echo "| $r | $NAME | $MODEL | \`$FLAGS\` | FAILED | | | | | | | |"
      continue
    fi
    muls=$(getv "$res" muls)
    tm=$(getv "$OUT/row$TWIN.result" muls)
    if [ -n "$tm" ] && [ "$tm" -gt 0 ]; then
      vs=$(awk -v a="$muls" -v b="$tm" 'BEGIN { printf "%.3fx (row %s)", a / b, "'"$TWIN"'" }')
    else
      vs="n/a (row $TWIN not run)"
    fi
    echo "| $r | $(getv "$res" name) | $(getv "$res" model) | \`$(getv "$res" flags)\` | $(getv "$res" acc) | $muls | $vs | $(getv "$res" muls_compiled) | $(getv "$res" bytes) | $(getv "$res" params) | $(getv "$res" samples_per_s) | $(getv "$res" seconds) |"
  done
  echo
  echo "mults/image: the \`multiplications:\` total of \`fewmul cost --specialize=all\` (batch 1): every layer whose"
  echo "weights are ternary or powers of two on its add/shift kernel, i.e. the multiplications the method needs;"
  echo "vs dense: that over the dense twin's (row in brackets). \"compiled (default)\": plain \`fewmul cost\`, where"
  echo "such a layer stays on sgemm when it is too dense for the add kernels to be faster (passes/weights.c)."
  echo "Winograd rows are counted through WinogradConv's function body (the transforms as Conv/MatMul with"
  echo "constant matrices, the Winograd-domain products as one MatMul; no native lowering yet), not the F4"
  echo "ideal of 36/144 of the conv's multiplications. Params: the trainer's count (latent training"
  echo "parameters, e.g. DeepShift-PS's P and S, SP's W_B, W_C, a and BN)."
  echo
  # target NAME ROW_A ROW_B TEST: TEST is an awk condition on a (row A's accuracy), b (row B's)
  target() {
    local a b
    a=$(getv "$OUT/row$2.result" acc) b=$(getv "$OUT/row$3.result" acc)
    if [ -z "$a" ] || [ -z "$b" ]; then
      echo "SKIP: $1 (needs rows $2 and $3)"
    elif awk -v a="$a" -v b="$b" "BEGIN { exit !($4) }"; then
      echo "PASS: $1: row $2 $a% vs row $3 $b%"
    else
      echo "FAIL: $1: row $2 $a% vs row $3 $b%"
    fi
  }
  target "SP r=c_out within 1.0 point of the dense twin" 3 1 "a >= b - 1.0"
  target "DeepShift-PS within 0.5 point of dense" 6 1 "a >= b - 0.5"
  target "DeepShift-PS from the dense model within 0.5 point of it" 24 1 "a >= b - 0.5"
  target "Winograd flex 8 bits within 1 point of normal conv (same recipe)" 14 19 "a >= b - 1.0"
  target "Winograd flex 4 bits clearly above static 4 bits (by more than 1 point)" 16 15 "a > b + 1.0"
  target "quant 4 bits: stochastic rounding beats deterministic" 10 9 "a > b"
} | tee "$OUT/table.md"

if [ -n "$failed" ]; then
  echo "methods_fmnist.sh: rows failed:$failed (logs in $OUT)" >&2
  exit 1
fi
exit 0
