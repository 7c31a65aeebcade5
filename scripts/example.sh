#!/usr/bin/env bash
# Runs the example project's `full` layer on this machine (the embedded local
# executor). It needs Rust and Python 3 with pytest (installed here if it is
# missing), nothing else: it builds `testlayer` without the cluster verbs
# (`--no-default-features`: no Kubernetes client to compile), in a target
# directory of its own so that it neither waits for nor replaces the full
# build: `target/local/release/testlayer` (under $CARGO_TARGET_DIR when set).
#
# Extra arguments go to `testlayer run`; arguments that start with a config
# (`-c FILE ...`) run that config instead of the `full` layer, e.g.
# `bash scripts/example.sh -c examples/shop/testlayer-broken.yaml -l broken`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -m pytest --version >/dev/null 2>&1; then
  python3 -m pip install --quiet pytest
fi
target="${CARGO_TARGET_DIR:-target}/local"
cargo build --release --quiet --locked --no-default-features --bin testlayer --target-dir "$target"
bin="$target/release/testlayer"
case "${1:-}" in
  -c | --config) exec "$bin" run --workdir examples/shop "$@" ;;
  *) exec "$bin" run -c examples/shop/testlayer.yaml -l full --workdir examples/shop "$@" ;;
esac
