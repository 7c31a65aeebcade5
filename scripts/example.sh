#!/usr/bin/env bash
# Runs the example project's `full` layer on this machine (the embedded local
# executor), installing what it needs first. Extra arguments go to
# `testlayer run`, e.g. `bash scripts/example.sh --output json`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prerequisites.sh
exec cargo run --release --quiet -- run -c examples/shop/testlayer.yaml -l full --workdir examples/shop "$@"
