#!/usr/bin/env bash
# Builds the cron reference (tests/cron/reference: robfig/cron v3, as a
# Kubernetes CronJob uses it) that tests/cron_reference.rs compares our cron
# parser and next-tick walk with. The binary and the Go caches live under
# $TESTLAYER_CACHE (default ~/.cache/testlayer), in a directory named after
# a digest of the reference's sources, so a second run reuses it at once and
# a change to the sources builds anew.
#
# Usage: build.sh               build (or reuse), print timings
#        build.sh --print-path  print the path of the binary
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/reference"
cache="${TESTLAYER_CACHE:-$HOME/.cache/testlayer}"
key="$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-16)"
out="$cache/cron-reference/$key"
bin="$out/cron-reference"

if [ "${1:-}" = "--print-path" ]; then
  echo "$bin"
  exit 0
fi

if [ -x "$bin" ]; then
  echo "cron reference: reusing $bin"
  exit 0
fi

# shellcheck source=tests/go_env.sh
source "$here/../go_env.sh"
go_env "the cron reference"
mkdir -p "$out"

start=$(date +%s)
echo "cron reference: building $src (github.com/robfig/cron/v3 v3.0.1)"
cd "$src"
# go.mod and go.sum are complete: read-only, so the build never edits them.
GOFLAGS="-mod=readonly -buildvcs=false" "${measure[@]}" go build -trimpath -o "$bin.tmp" .
mv "$bin.tmp" "$bin" # renamed last: a binary at $bin is complete
echo "cron reference: built $bin in $(( $(date +%s) - start ))s"
