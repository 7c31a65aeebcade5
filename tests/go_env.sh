# Sourced by the build scripts that build Go programs from the module proxy
# (tests/cluster/build.sh, tests/kueue/build.sh): the Go environment they
# share, with module and build caches under $cache so warm builds take
# seconds, and `measure`, a prefix that prints a command's wall time and peak
# memory where GNU time is installed.
# Usage: go_env "WHAT IS BUILT"   (needs $cache set)

go_env() {
  command -v go >/dev/null || { echo "error: the go toolchain is required to build $1" >&2; exit 1; }
  export GOMODCACHE="$cache/go/mod"
  export GOCACHE="$cache/go/build"
  export GOFLAGS="-mod=mod"
  export CGO_ENABLED=0
  export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
  mkdir -p "$GOMODCACHE" "$GOCACHE"
  measure=()
  if [ -x /usr/bin/time ]; then measure=(/usr/bin/time -f "    (%es wall, peak RSS %M KiB)"); fi
}
