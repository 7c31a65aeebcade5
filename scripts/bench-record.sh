#!/usr/bin/env bash
# Runs the operator benchmark in full (every part, three repetitions), keeps
# its output in docs/benchmarks/operator-last-run.txt and copies its table of
# targets into the README, so that the README's figures are the last full
# run's and never typed. Arguments go to the benchmark (e.g. a b f).
# Needs the control plane binaries: bash tests/cluster/build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

out=docs/benchmarks/operator-last-run.txt
mkdir -p "$(dirname "$out")"
TESTLAYER_BIN_DIR="${TESTLAYER_BIN_DIR:-$(bash tests/cluster/build.sh --print-bin-dir)}"
export TESTLAYER_BIN_DIR

# The output goes to a file of its own first: a run that fails leaves the
# last good record as it was.
if ! cargo bench --locked --bench operator -- "$@" > "$out.new"; then
  echo "the benchmark failed; its output is in $out.new" >&2
  exit 1
fi
mv "$out.new" "$out"

python3 - "$out" README.md <<'PY'
import sys

start = "<!-- operator benchmark targets: start -->"
end = "<!-- operator benchmark targets: end -->"
record, readme = sys.argv[1], sys.argv[2]

def block(lines, what):
    try:
        i, j = lines.index(start), lines.index(end)
    except ValueError:
        sys.exit(f"{what} has no table of targets between its markers")
    return i, j

run = open(record).read().splitlines()
i, j = block(run, record)
doc = open(readme).read().splitlines()
k, l = block(doc, readme)
doc[k : l + 1] = run[i : j + 1]
open(readme, "w").write("\n".join(doc) + "\n")
print(f"{readme}: the table of targets of {record}")
PY
