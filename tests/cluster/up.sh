#!/usr/bin/env bash
# Starts the test control plane (etcd, kube-apiserver, kube-controller-manager)
# for poking at by hand, prints the kubeconfig to export, and runs until Ctrl-C.
# Usage: tests/cluster/up.sh [DIR]   (DIR keeps certificates, logs and etcd data)
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tests/cluster/build.sh
TESTLAYER_BIN_DIR="$(bash tests/cluster/build.sh --print-bin-dir)"
export TESTLAYER_BIN_DIR
exec cargo run -q -p testlayer-testkit --bin testlayer-control-plane -- "$@"
