#!/usr/bin/env bash
# Starts a cluster to try the operator by hand, prints the lines to export,
# and runs until Ctrl-C.
#
#   tests/cluster/up.sh [DIR]          the control plane only (etcd,
#                                      kube-apiserver, kube-controller-manager):
#                                      no node, so Pods stay Pending
#   tests/cluster/up.sh --node [DIR]   the whole single-node cluster: also
#                                      kube-scheduler and the workload
#                                      controllers, a real node (kubelet,
#                                      containerd, runc, CNI bridge) with the
#                                      example images and the controller's
#                                      image (scripts/image.sh) loaded, the
#                                      chart installed with helm (the
#                                      controller runs as its Pod), and the
#                                      ConfigMap of examples/k8s/run.yaml.
#                                      Needs root (the node mounts, makes
#                                      cgroups, bridges and an nftables
#                                      rule). If the real node cannot run
#                                      here it says why and stops.
#   tests/cluster/up.sh --played-nodes [DIR]
#                                      the control plane, the test kubelet
#                                      playing two Nodes (no command runs:
#                                      Pods are played from their commands)
#                                      and the controller on this machine
#
# DIR keeps certificates, logs and etcd data (default: a new temporary
# directory). The first run builds everything (about 20 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/../.."

mode=plane
args=()
for a in "$@"; do
  case "$a" in
    --node) mode=node ;;
    --played-nodes) mode=played ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    -*) echo "error: unknown option $a (see --help)" >&2; exit 2 ;;
    *) args+=("$a") ;;
  esac
done
if [ "$mode" = played ]; then
  echo "NO COMMAND RUNS: --played-nodes starts the test kubelet, which plays Pods from their commands instead of running them"
fi

bash tests/cluster/build.sh
TESTLAYER_BIN_DIR="$(bash tests/cluster/build.sh --print-bin-dir)"
export TESTLAYER_BIN_DIR
if [ "$mode" = plane ]; then
  exec cargo run -q -p testlayer-testkit --bin testlayer-control-plane -- "${args[@]}"
fi

starter=(--played-nodes)
if [ "$mode" = node ]; then
  bash tests/node/build.sh
  TESTLAYER_NODE_DIR="$(bash tests/node/build.sh --print-dir)"
  export TESTLAYER_NODE_DIR
  bash scripts/image.sh
  starter=(--node --image "$(bash scripts/image.sh --print-path)")
fi
echo "building the cluster starter"
cargo build -q -p testlayer-testkit --bin testlayer-control-plane
target="${CARGO_TARGET_DIR:-target}"
if [ "$mode" = played ]; then
  cargo build -q --bin testlayer
fi
dir="${args[0]:-$(mktemp -d "${TMPDIR:-/tmp}/testlayer-up-XXXXXX")}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

"$target/debug/testlayer-control-plane" "${starter[@]}" "$dir" > "$dir/up.log" 2>&1 &
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

export KUBECONFIG="$dir/admin.kubeconfig"
kubectl="$TESTLAYER_BIN_DIR/kubectl"
helm="$TESTLAYER_BIN_DIR/helm"
if [ "$mode" = node ]; then
  # The chart as a user installs it: its CRDs, RBAC, and the controller's
  # Deployment running the image built from this checkout (the chart's
  # default name, imported into the node).
  "$helm" install testlayer charts/testlayer --namespace testlayer-system --create-namespace \
    --wait --timeout 180s > "$dir/helm.log" 2>&1 || {
      cat "$dir/helm.log" >&2
      "$kubectl" -n testlayer-system describe pods >&2 || true
      exit 1
    }
  running="the controller runs as Pod $("$kubectl" -n testlayer-system get pods -o name) (logs: kubectl -n testlayer-system logs deploy/testlayer)"
else
  "$kubectl" apply --server-side -f crds/ >/dev/null
  "$kubectl" wait --for=condition=Established crd --all --timeout=60s >/dev/null
  "$target/debug/testlayer" controller --kubeconfig "$KUBECONFIG" --listen 127.0.0.1:0 --log info \
    > "$dir/controller.log" 2>&1 &
  controller=$!
  running="the controller runs on this machine (log: $dir/controller.log)"
fi
"$kubectl" create configmap shop-layers --from-file=test_layers.yaml=examples/shop/testlayer.yaml \
  --dry-run=client -o yaml > "$dir/shop-layers.yaml"
"$kubectl" apply -f "$dir/shop-layers.yaml" >/dev/null

cat <<MSG

$(grep -E "^(NO COMMAND RUNS|control plane ready|real node)" "$dir/up.log")
ConfigMap shop-layers created; $running.

  export KUBECONFIG=$KUBECONFIG
  export PATH=$TESTLAYER_BIN_DIR:\$PATH   # kubectl, helm
  kubectl get nodes
  kubectl apply -f examples/k8s/run.yaml      # the shop's pytest layer, real Pods
  kubectl apply -f examples/k8s/inline.yaml   # busybox, a config inline
  kubectl get tlr,tlcr,pods                   # the runs, their categories and Pods
  kubectl get tlr -w                          # watch the runs (kubectl watches one kind at a time)

Ctrl-C stops everything and cleans up the node.
MSG
wait "$cluster"
