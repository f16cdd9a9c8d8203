#!/usr/bin/env bash
# Regenerates the op list of docs/OPS.md from compiler/ir/ops.def (the one op table).
set -euo pipefail
cd "$(dirname "$0")/.."
{
  sed '/<!-- ops:begin -->/q' docs/OPS.md
  echo
  echo "| family (compiler/ops/) | ops |"
  echo "|---|---|"
  grep -o 'OP([A-Za-z0-9]*, "[^"]*", [a-z_]*)' compiler/ir/ops.def | grep -v UNKNOWN |
    sed -E 's/OP\(([A-Za-z0-9]+), "([^"]*)", ([a-z_]+)\)/\3 \1/' |
    awk '{ ops[$1] = ops[$1] (ops[$1] ? ", " : "") $2; if (!($1 in seen)) { order[++n] = $1; seen[$1] = 1 } }
         END { for (i = 1; i <= n; i++) printf "| %s | %s |\n", order[i], ops[order[i]] }'
  echo
  sed -n '/<!-- ops:end -->/,$p' docs/OPS.md
} > docs/OPS.md.tmp
mv docs/OPS.md.tmp docs/OPS.md
