#!/usr/bin/env bash
# Builds the pinned Kubernetes control plane (kube-apiserver,
# kube-controller-manager, kubectl), etcd and helm from the Go module proxy.
#
# `go install` refuses k8s.io/kubernetes and go.etcd.io/etcd/server/v3 because
# their go.mod files hold `replace` lines. So a small wrapper module is
# generated into the build directory: it requires the pinned k8s.io/kubernetes
# and replaces every k8s.io staging module that version's go.mod lists (read
# from the served go.mod, not hard-coded) with its published v0.Y.Z.
#
# Binaries and Go caches live under $TESTLAYER_CACHE (default
# ~/.cache/testlayer), so a second run takes seconds.
#
# Usage: build.sh              build (or reuse) the binaries, print timings
#        build.sh --print-bin-dir   print the directory holding the binaries
set -euo pipefail

K8S_VERSION="${TESTLAYER_K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${TESTLAYER_ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${TESTLAYER_HELM_VERSION:-v3.22.0}"

cache="${TESTLAYER_CACHE:-$HOME/.cache/testlayer}"
bin_dir="$cache/control-plane/k8s-$K8S_VERSION-etcd-$ETCD_VERSION/bin"
work_dir="$cache/control-plane/k8s-$K8S_VERSION-etcd-$ETCD_VERSION/work"
# With TESTLAYER_BUILD_NODE=1 (tests/node/build.sh) also the node's kubelet
# and the scheduler, from the same wrapper module.
k8s_binaries=(kube-apiserver kube-controller-manager kubectl)
if [ "${TESTLAYER_BUILD_NODE:-}" = 1 ]; then k8s_binaries+=(kube-scheduler kubelet); fi

if [ "${1:-}" = "--print-bin-dir" ]; then
  echo "$bin_dir"
  exit 0
fi

have() { [ -x "$bin_dir/$1" ] && [ -f "$bin_dir/.$1.$2" ]; }
have_k8s() {
  for b in "${k8s_binaries[@]}"; do have "$b" "$K8S_VERSION" || return 1; done
}
have_all() { have_k8s && have etcd "$ETCD_VERSION" && have helm "$HELM_VERSION"; }

# Binaries of an earlier layout of this cache count as built.
if [ -f "$bin_dir/.complete" ]; then
  for b in kube-apiserver kube-controller-manager kubectl; do [ -x "$bin_dir/$b" ] && touch "$bin_dir/.$b.$K8S_VERSION"; done
  [ -x "$bin_dir/etcd" ] && touch "$bin_dir/.etcd.$ETCD_VERSION"
  rm -f "$bin_dir/.complete"
fi

if have_all; then
  echo "control plane: reusing $bin_dir (kubernetes $K8S_VERSION: ${k8s_binaries[*]}; etcd $ETCD_VERSION, helm $HELM_VERSION)"
  exit 0
fi

# shellcheck source=tests/go_env.sh
source "$(dirname "${BASH_SOURCE[0]}")/../go_env.sh"
go_env "the control plane"
mkdir -p "$bin_dir" "$work_dir"

timer() { date +%s; }
total_start=$(timer)

# ---- Kubernetes -----------------------------------------------------------
if ! have_k8s; then
k8s_mod_dir="$work_dir/kubernetes"
mkdir -p "$k8s_mod_dir"
cd "$k8s_mod_dir"
echo "control plane: resolving k8s.io/kubernetes@$K8S_VERSION"
served_mod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
[ -f "$served_mod" ] || { echo "error: could not download the go.mod of k8s.io/kubernetes@$K8S_VERSION" >&2; exit 1; }
staging_version="v0.${K8S_VERSION#v1.}"
# Every `k8s.io/x => ./staging/src/k8s.io/x` line names a staging module.
mapfile -t staging < <(sed -n 's#^[[:space:]]*\(k8s.io/[A-Za-z0-9._/-]*\) => ./staging/.*#\1#p' "$served_mod" | sort -u)
[ "${#staging[@]}" -gt 10 ] || { echo "error: found only ${#staging[@]} staging modules in $served_mod" >&2; exit 1; }
go_line="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$served_mod")"
{
  echo "module testlayer.dev/control-plane-build"
  echo
  echo "go ${go_line:-1.24.0}"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  echo "replace ("
  for m in "${staging[@]}"; do echo "	$m => $m $staging_version"; done
  echo ")"
} > go.mod
cat > tools.go <<'GO'
//go:build tools

// Package tools pins the commands this module builds.
package tools
GO
echo "control plane: wrapper module with ${#staging[@]} staging replacements ($staging_version)"

git_major="${K8S_VERSION#v}"; git_major="${git_major%%.*}"
git_minor="${K8S_VERSION#v*.}"; git_minor="${git_minor%%.*}"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$git_major -X $pkg.gitMinor=$git_minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

step_start=$(timer)
go mod download k8s.io/kubernetes
echo "control plane: modules resolved in $(( $(timer) - step_start ))s"
for cmd in "${k8s_binaries[@]}"; do
  have "$cmd" "$K8S_VERSION" && continue
  step_start=$(timer)
  echo "control plane: building $cmd $K8S_VERSION"
  "${measure[@]}" go build -trimpath -ldflags "$ldflags" -o "$bin_dir/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
  mv "$bin_dir/$cmd.tmp" "$bin_dir/$cmd"
  touch "$bin_dir/.$cmd.$K8S_VERSION"
  echo "    built $cmd in $(( $(timer) - step_start ))s"
done
fi

# ---- etcd -----------------------------------------------------------------
if ! have etcd "$ETCD_VERSION"; then
etcd_mod_dir="$work_dir/etcd"
mkdir -p "$etcd_mod_dir"
cd "$etcd_mod_dir"
cat > go.mod <<MOD
module testlayer.dev/etcd-build

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
step_start=$(timer)
echo "control plane: building etcd $ETCD_VERSION"
"${measure[@]}" go build -trimpath -ldflags "-s -w" -o "$bin_dir/etcd.tmp" go.etcd.io/etcd/server/v3
mv "$bin_dir/etcd.tmp" "$bin_dir/etcd"
touch "$bin_dir/.etcd.$ETCD_VERSION"
echo "    built etcd in $(( $(timer) - step_start ))s"
fi

# ---- helm (its go.mod has no replace lines: go install works) --------------
if ! have helm "$HELM_VERSION"; then
step_start=$(timer)
echo "control plane: building helm $HELM_VERSION"
GOFLAGS= GOBIN="$work_dir/helm-bin" "${measure[@]}" go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
mv "$work_dir/helm-bin/helm" "$bin_dir/helm"
touch "$bin_dir/.helm.$HELM_VERSION"
echo "    built helm in $(( $(timer) - step_start ))s"
fi

"$bin_dir/kube-apiserver" --version
# The first line only, read whole first: a pipe into head under pipefail lets
# etcd die of SIGPIPE when head exits before etcd has written the rest.
etcd_version="$("$bin_dir/etcd" --version)"
echo "${etcd_version%%$'\n'*}"
"$bin_dir/helm" version --short
echo "control plane: built in $(( $(timer) - total_start ))s into $bin_dir"
