#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, property, local-executor,
# control-plane and real-node tests. Builds (or reuses) the Kubernetes
# control-plane binaries, the real node (kubelet, containerd, images),
# Kueue, promtool and the controller's image first; the cluster tests fail loudly when they cannot be had.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
# Each step's header says how long the suite has run, so that the phase
# times can be read from the output.
step() { printf '\n==> %s (at %ss)\n' "$*" "$(( $(date +%s) - started ))"; }

step "prerequisites"
bash scripts/prerequisites.sh

step "control plane binaries"
bash tests/cluster/build.sh
TESTLAYER_BIN_DIR="$(bash tests/cluster/build.sh --print-bin-dir)"
export TESTLAYER_BIN_DIR

step "real node: kubelet, containerd, runc, CNI plugins, images"
bash tests/node/build.sh
TESTLAYER_NODE_DIR="$(bash tests/node/build.sh --print-dir)"
export TESTLAYER_NODE_DIR

step "Kueue's manager, CRDs and webhooks (from its Go module)"
bash tests/kueue/build.sh
TESTLAYER_KUEUE_DIR="$(bash tests/kueue/build.sh --print-dir)"
export TESTLAYER_KUEUE_DIR

step "the cron reference: robfig/cron v3, as a CronJob uses it (from its Go module)"
bash tests/cron/build.sh
TESTLAYER_CRON_REFERENCE="$(bash tests/cron/build.sh --print-path)"
export TESTLAYER_CRON_REFERENCE

step "promtool, the ServiceMonitor and PrometheusRule CRDs (from their Go modules)"
bash tests/prometheus/build.sh
TESTLAYER_PROMTOOL="$(bash tests/prometheus/build.sh --print-path)"
TESTLAYER_PROMETHEUS_CRDS="$(bash tests/prometheus/build.sh --print-crds)"
export TESTLAYER_PROMTOOL TESTLAYER_PROMETHEUS_CRDS

step "Flux and Argo CD CRDs (from their Go modules)"
TESTLAYER_GITOPS_CRDS="$(bash scripts/gitops-crds.sh | tail -n 1)"
export TESTLAYER_GITOPS_CRDS

step "the controller's image: release build, OCI archive"
bash scripts/image.sh
TESTLAYER_IMAGE="$(bash scripts/image.sh --print-path)"
export TESTLAYER_IMAGE

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The local-only build of scripts/example.sh (no default features), in the
# target directory example.sh builds in.
cargo clippy --locked --no-default-features --bin testlayer \
  --target-dir "${CARGO_TARGET_DIR:-target}/local" -- -D warnings

step "cargo test: the test binaries, three at a time"
bash scripts/test-binaries.sh

step "cargo test --doc"
cargo test --workspace --locked --doc

# Last, on a machine no test loads any more: the quick tier of the operator
# benchmark, each figure against today's with a margin; a regression fails.
step "the operator benchmark, quick tier"
cargo bench --locked --bench operator -- --quick --check

step "done"
