#!/bin/bash
# cost_json.sh - `fewmul cost --json` (issue 12): valid JSON of the documented shape, the
# total equal to the sum of the layers and to the text report's total, --batch 3 three
# times batch 1 (the PyTorch ResNet of tests/e2e/pytorch), dense convs reporting one
# multiplication per MAC, and --specialize=all keeping the dense column.
# Usage: bash cost_json.sh <fewmul-binary> <source-dir> <scratch-dir>   (77 = skipped)
set -u
FEWMUL=$(realpath "$1")
SRC=$(realpath "$2")
WORK=$3
PY=/usr/bin/python3
[ -x $PY ] || { echo "skip: no /usr/bin/python3 to parse the JSON"; exit 77; }
MODEL=$SRC/tests/e2e/pytorch/resnet_tiny.onnx
[ -f "$MODEL" ] || { echo "skip: $MODEL missing"; exit 77; }
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
fail=0
"$FEWMUL" cost "$MODEL" --json > b1.json || { echo "FAIL: cost --json"; exit 1; }
"$FEWMUL" cost "$MODEL" --json --batch 3 > b3.json || { echo "FAIL: cost --json --batch 3"; exit 1; }
"$FEWMUL" cost "$MODEL" > b1.txt || exit 1
"$FEWMUL" cost "$MODEL" --json --specialize=all > all.json || exit 1
$PY - b1.json b3.json b1.txt all.json <<'PYEOF' || fail=1
import json, sys
b1, b3 = (json.load(open(f)) for f in sys.argv[1:3])
txt = open(sys.argv[3]).read().split("\n")
allk = json.load(open(sys.argv[4]))
keys = ["name", "op", "kind", "mul", "add", "shift", "dense_mul"]
bad = 0
def check(c, what):
    global bad
    if not c:
        print("FAIL:", what); bad += 1
check(set(b1) == {"layers", "total"} and len(b1["layers"]) > 3, "top-level keys")
check(all(list(l) == keys for l in b1["layers"]), "layer keys")
check(list(b1["total"]) == ["mul", "add", "shift", "dense_mul"], "total keys")
for k in ["mul", "add", "shift", "dense_mul"]:
    check(sum(l[k] for l in b1["layers"]) == b1["total"][k], "total %s = sum of layers" % k)
    check(b3["total"][k] == 3 * b1["total"][k], "batch 3 scales %s" % k)
tot = [l for l in txt if l.startswith("total")][0].split()
check(float(tot[1]) == b1["total"]["dense_mul"] and float(tot[2]) == b1["total"]["mul"] and
      float(tot[3]) == b1["total"]["add"], "text total = json total")
kinds = {l["kind"] for l in b1["layers"]}
check("dense" in kinds and kinds <= {"dense", "ternary", "pow2", "sp", "shift", "other"}, "kinds %s" % kinds)
check(all(l["mul"] == l["dense_mul"] for l in b1["layers"] if l["op"] == "Conv"), "dense conv: mul = dense_mul")
check(allk["total"]["dense_mul"] == b1["total"]["dense_mul"], "specialize=all keeps dense_mul")
sys.exit(1 if bad else 0)
PYEOF
[ $fail = 0 ] && echo "cost_json: ok"
exit $fail
