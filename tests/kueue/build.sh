#!/usr/bin/env bash
# Builds Kueue's manager (sigs.k8s.io/kueue/cmd/kueue) from the Go module
# proxy, and copies the parts of its module the tests install next to it:
# the CustomResourceDefinitions (config/components/crd/bases) and the webhook
# configurations (config/components/webhook/manifests.yaml).
#
# Kueue's go.mod has no `replace` lines, so `go install MODULE@VERSION`
# builds it as released. Binaries and Go caches live under $TESTLAYER_CACHE
# (default ~/.cache/testlayer), so a second run takes a moment.
#
# Usage: build.sh               build (or reuse), print timings
#        build.sh --print-dir   print the directory holding bin/kueue and config/
set -euo pipefail

KUEUE_VERSION="${TESTLAYER_KUEUE_VERSION:-v0.17.0}"
cache="${TESTLAYER_CACHE:-$HOME/.cache/testlayer}"
out="$cache/kueue/$KUEUE_VERSION"

if [ "${1:-}" = "--print-dir" ]; then
  echo "$out"
  exit 0
fi

if [ -x "$out/bin/kueue" ] && [ -f "$out/.complete" ]; then
  echo "kueue: reusing $out (sigs.k8s.io/kueue $KUEUE_VERSION)"
  exit 0
fi

# shellcheck source=tests/go_env.sh
source "$(dirname "${BASH_SOURCE[0]}")/../go_env.sh"
go_env "Kueue"
mkdir -p "$out/bin" "$out/config/crd"
rm -f "$out/.complete"

start=$(date +%s)

cd "$out" # `go install MODULE@VERSION` needs no go.mod
echo "kueue: building sigs.k8s.io/kueue/cmd/kueue@$KUEUE_VERSION"
GOBIN="$out/bin" "${measure[@]}" go install \
  "sigs.k8s.io/kueue/cmd/kueue@$KUEUE_VERSION"

src="$GOMODCACHE/sigs.k8s.io/kueue@$KUEUE_VERSION"
[ -d "$src/config/components/crd/bases" ] || { echo "error: no CRDs in $src" >&2; exit 1; }
install -m 644 "$src"/config/components/crd/bases/*.yaml "$out/config/crd/"
install -m 644 "$src/config/components/webhook/manifests.yaml" "$out/config/webhooks.yaml"

echo "$KUEUE_VERSION" >"$out/.complete" # written last: the directory is complete
echo "kueue: built $out in $(( $(date +%s) - start ))s"
