#!/usr/bin/env bash
# Starts a cluster to try the operator by hand, prints the lines to export,
# and runs until Ctrl-C.
#
#   tests/cluster/up.sh [DIR]          the control plane only (etcd,
#                                      kube-apiserver, kube-controller-manager):
#                                      no node, so Pods stay Pending
#   tests/cluster/up.sh --node [DIR]   the whole single-node cluster: also
#                                      kube-scheduler, a real node (kubelet,
#                                      containerd, runc, CNI bridge) with the
#                                      example images loaded, the CRDs applied,
#                                      the ConfigMap of examples/k8s/run.yaml,
#                                      and the controller running on this
#                                      machine. Needs root (the node mounts,
#                                      makes cgroups and bridges). If the real
#                                      node cannot run here it says why and
#                                      falls back to the test kubelet.
#
# DIR keeps certificates, logs and etcd data (default: a new temporary
# directory). The first run builds everything (about 15 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/../.."

with_node=0
args=()
for a in "$@"; do
  case "$a" in
    --node) with_node=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) args+=("$a") ;;
  esac
done

bash tests/cluster/build.sh
TESTLAYER_BIN_DIR="$(bash tests/cluster/build.sh --print-bin-dir)"
export TESTLAYER_BIN_DIR
if [ "$with_node" = 0 ]; then
  exec cargo run -q -p testlayer-testkit --bin testlayer-control-plane -- "${args[@]}"
fi

bash tests/node/build.sh
TESTLAYER_NODE_DIR="$(bash tests/node/build.sh --print-dir)"
export TESTLAYER_NODE_DIR
echo "building the controller and the cluster starter"
cargo build -q -p testlayer-testkit --bin testlayer-control-plane
cargo build -q --bin testlayer
target="${CARGO_TARGET_DIR:-target}"
dir="${args[0]:-$(mktemp -d "${TMPDIR:-/tmp}/testlayer-up-XXXXXX")}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

"$target/debug/testlayer-control-plane" --node "$dir" > "$dir/up.log" 2>&1 &
cluster=$!
controller=""
stop() {
  trap - INT TERM EXIT
  echo
  echo "stopping"
  [ -n "$controller" ] && kill "$controller" 2>/dev/null && wait "$controller" 2>/dev/null
  kill -TERM "$cluster" 2>/dev/null && wait "$cluster" 2>/dev/null
  exit 0
}
trap stop INT TERM EXIT

echo "starting the cluster (log: $dir/up.log)"
until grep -q "^control plane ready" "$dir/up.log" 2>/dev/null; do
  if ! kill -0 "$cluster" 2>/dev/null; then
    cat "$dir/up.log" >&2
    trap - INT TERM EXIT
    exit 1
  fi
  sleep 1
done
grep -E "cannot run|falling back" "$dir/up.log" || true

export KUBECONFIG="$dir/admin.kubeconfig"
kubectl="$TESTLAYER_BIN_DIR/kubectl"
"$kubectl" apply --server-side -f crds/ >/dev/null
"$kubectl" wait --for=condition=Established crd --all --timeout=60s >/dev/null
"$kubectl" create configmap shop-layers --from-file=test_layers.yaml=examples/shop/testlayer.yaml \
  --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
"$target/debug/testlayer" controller --kubeconfig "$KUBECONFIG" --listen 127.0.0.1:0 --log info \
  > "$dir/controller.log" 2>&1 &
controller=$!

cat <<MSG

$(grep -E "^(control plane ready|real node)" "$dir/up.log")
CRDs applied, ConfigMap shop-layers created, controller running (log: $dir/controller.log).

  export KUBECONFIG=$KUBECONFIG
  export PATH=$TESTLAYER_BIN_DIR:\$PATH   # kubectl
  kubectl get nodes
  kubectl apply -f examples/k8s/run.yaml      # the shop's pytest layer, real Pods
  kubectl apply -f examples/k8s/inline.yaml   # busybox, a config inline
  kubectl get tlr,cr,pods -w

Ctrl-C stops everything and cleans up the node.
MSG
wait "$cluster"
