#!/usr/bin/env bash
# Fetches the CustomResourceDefinitions of Flux and Argo CD, so tests can
# install them into a bare kube-apiserver and exercise testlayer's GitOps
# support against the real upstream schemas:
#   Flux           kustomize-controller, source-controller, helm-controller
#                  (config/crd/bases/*.yaml of each controller's main module)
#   Argo CD        github.com/argoproj/argo-cd/v3 (manifests/crds/*-crd.yaml)
#   Argo Rollouts  github.com/argoproj/argo-rollouts (manifests/crds/*-crd.yaml)
# The sources come from the Go module proxy (`go mod download`, nothing is
# built), and the CRD files are copied into a cache directory named after the
# pinned versions. A complete directory is reused without network.
#
# Usage: scripts/gitops-crds.sh
#   Progress goes to stderr; the last stdout line is the absolute path of the
#   directory holding the CRD files (<name>_<upstream file name>.yaml).
# Env:   TESTLAYER_GITOPS_CRDS_DIR  output directory (default: see below)
#        TESTLAYER_CACHE            cache root (default ~/.cache/testlayer)
set -euo pipefail

# name  module@version  directory of the CRD files inside the module
PINS=(
  "kustomize-controller github.com/fluxcd/kustomize-controller@v1.10.1 config/crd/bases"
  "source-controller github.com/fluxcd/source-controller@v1.10.1 config/crd/bases"
  "helm-controller github.com/fluxcd/helm-controller@v1.6.4 config/crd/bases"
  "argo-cd github.com/argoproj/argo-cd/v3@v3.6.1 manifests/crds"
  "argo-rollouts github.com/argoproj/argo-rollouts@v1.10.2 manifests/crds"
)
KEY="$(for p in "${PINS[@]}"; do read -r name modver _ <<<"$p"; printf '%s' "$name-${modver#*@}_"; done)"
KEY="${KEY%_}" # e.g. kustomize-controller-v1.10.1_..._argo-rollouts-v1.10.2

cache="${TESTLAYER_CACHE:-$HOME/.cache/testlayer}"
out="${TESTLAYER_GITOPS_CRDS_DIR:-$cache/gitops-crds/$KEY}"

if [ -f "$out/.complete" ] && [ "$(cat "$out/.complete")" = "${PINS[*]}" ]; then
  echo "gitops-crds: reusing $out" >&2
  cd "$out" && pwd
  exit 0
fi

command -v go >/dev/null || { echo "error: the go toolchain is needed to download the CRDs" >&2; exit 1; }
export GOPATH="$cache/gomod"
export GOMODCACHE="$GOPATH/pkg/mod"
export GOFLAGS="-mod=mod -modcacherw" # -modcacherw: the cache can be rm -rf'd
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
mkdir -p "$out" "$GOMODCACHE"
out="$(cd "$out" && pwd)"
cd "$GOPATH" # `go mod download MODULE@VERSION` needs no go.mod
shopt -s nullglob

for pin in "${PINS[@]}"; do
  read -r name modver subdir <<<"$pin"
  mod="${modver%@*}" ver="${modver#*@}"
  start=$(date +%s%N)
  echo "gitops-crds: downloading $modver" >&2
  # A module whose go.mod asks for a newer Go than this toolchain is still
  # downloaded, verified and extracted; only the version check then fails.
  # So the exit status is judged by the Error field, not taken as is.
  json="$(go mod download -json "$modver" || true)"
  err="$(sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")"
  if [ -n "$err" ] && [[ "$err" != *"requires go "* ]]; then
    echo "error: go mod download $modver: $err" >&2
    exit 1
  fi
  dir="$GOMODCACHE/$mod@$ver" # the paths hold no upper case, so no escaping
  n=0
  for f in "$dir/$subdir"/*.yaml; do
    grep -q '^kind: CustomResourceDefinition' "$f" || continue # e.g. kustomization.yaml
    install -m 644 "$f" "$out/${name}_${f##*/}"
    n=$((n + 1))
  done
  [ "$n" -gt 0 ] || { echo "error: no CRD files in $dir/$subdir" >&2; exit 1; }
  echo "gitops-crds:   $n CRD file(s) in $(( ($(date +%s%N) - start) / 1000000 )) ms" >&2
done

echo "${PINS[*]}" >"$out/.complete" # written last: the directory is complete
echo "gitops-crds: wrote $out" >&2
echo "$out"
