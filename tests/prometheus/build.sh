#!/usr/bin/env bash
# What tests/monitoring.rs needs of Prometheus, from the Go module proxy:
#
# - promtool (github.com/prometheus/prometheus/cmd/promtool), built: `promtool
#   check rules` and `promtool test rules` on the chart's PrometheusRule, and
#   the PromQL of its Grafana dashboard parsed as recording rules;
# - the CustomResourceDefinitions of the ServiceMonitor and the
#   PrometheusRule (example/prometheus-operator-crd/ of the
#   prometheus-operator module), downloaded, nothing built, so the chart's
#   objects are validated against the real schemas. The proxy serves
#   v0.85.0 of that module (it refuses v0.90.0 and later).
#
# `go install MODULE@VERSION` builds promtool as released. The binary, the
# CRDs and the Go caches live under $TESTLAYER_CACHE (default
# ~/.cache/testlayer), in directories named after the versions, so a
# second run reuses them at once.
#
# Usage: build.sh               build and download (or reuse), print timings
#        build.sh --print-path  print the path of promtool
#        build.sh --print-crds  print the directory holding the two CRDs
set -euo pipefail

PROMETHEUS_VERSION="${TESTLAYER_PROMETHEUS_VERSION:-v0.316.0}"
OPERATOR_VERSION="${TESTLAYER_PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
CRD_FILES=(monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_prometheusrules.yaml)
cache="${TESTLAYER_CACHE:-$HOME/.cache/testlayer}"
out="$cache/promtool/$PROMETHEUS_VERSION"
bin="$out/promtool"
crds="$cache/prometheus-operator-crds/$OPERATOR_VERSION"

case "${1:-}" in
  --print-path) echo "$bin"; exit 0 ;;
  --print-crds) echo "$crds"; exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--print-path | --print-crds]" >&2; exit 2 ;;
esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ -x "$bin" ]; then
  echo "promtool: reusing $bin (github.com/prometheus/prometheus $PROMETHEUS_VERSION)"
else
  # shellcheck source=tests/go_env.sh
  source "$here/../go_env.sh"
  go_env "promtool"
  mkdir -p "$out"
  rm -rf "$out/tmp"
  start=$(date +%s)
  echo "promtool: building github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
  (cd "$out" && GOBIN="$out/tmp" "${measure[@]}" go install -trimpath \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION") # needs no go.mod
  "$out/tmp/promtool" --version >/dev/null
  mv "$out/tmp/promtool" "$bin" # renamed last: a binary at $bin is complete
  rmdir "$out/tmp"
  echo "promtool: built $bin in $(( $(date +%s) - start ))s"
fi

if [ -f "$crds/.complete" ]; then
  echo "prometheus-operator CRDs: reusing $crds"
  exit 0
fi
# shellcheck source=tests/go_env.sh
source "$here/../go_env.sh"
go_env "the prometheus-operator CRDs"
mkdir -p "$crds"
rm -f "$crds/.complete"
modver="github.com/prometheus-operator/prometheus-operator@$OPERATOR_VERSION"
echo "prometheus-operator CRDs: downloading $modver"
# As in scripts/gitops-crds.sh: a module whose go.mod asks for a newer Go
# is still downloaded and extracted; only an other error is one.
json="$(cd "$crds" && go mod download -json "$modver" || true)"
err="$(sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")"
if [ -n "$err" ] && [[ "$err" != *"requires go "* ]]; then
  echo "error: go mod download $modver: $err" >&2
  exit 1
fi
src="$GOMODCACHE/github.com/prometheus-operator/prometheus-operator@$OPERATOR_VERSION/example/prometheus-operator-crd"
for f in "${CRD_FILES[@]}"; do
  [ -f "$src/$f" ] || { echo "error: no $f in $src" >&2; exit 1; }
  install -m 644 "$src/$f" "$crds/$f"
done
echo "$modver" >"$crds/.complete" # written last: the directory is complete
echo "prometheus-operator CRDs: wrote $crds"
