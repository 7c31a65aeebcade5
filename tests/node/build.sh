#!/usr/bin/env bash
# Builds what a real single-node cluster needs beyond the control plane:
#   - kubelet and kube-scheduler (by tests/cluster/build.sh, same Kubernetes
#     version and wrapper module as the control plane),
#   - containerd, its runc shim and ctr, from the Go module proxy,
#   - runc and the CNI plugins (bridge, host-local, loopback) from Debian,
#   - the container images the tests and examples name, as OCI archives built
#     from Debian packages and local files (no registry is reachable):
#       localhost/testlayer/pause:1          the pod sandbox (tests/node/pause.c)
#       docker.io/library/busybox:1.35       Debian's busybox-static
#       localhost/testlayer/shop-tests:1     Debian's python3 + pytest, with
#                                            examples/shop at /shop
#
# Everything lives under $TESTLAYER_CACHE (default ~/.cache/testlayer); a
# second run takes seconds. The shop image is repacked when examples/shop
# changes.
#
# Usage: build.sh              build (or reuse), print timings
#        build.sh --print-dir  print the directory holding bin/ and images/
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

CONTAINERD_VERSION="${TESTLAYER_CONTAINERD_VERSION:-v2.2.9}"
DEBIAN_SUITE="${TESTLAYER_DEBIAN_SUITE:-bookworm}"
DEBIAN_MIRROR="${TESTLAYER_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

cache="${TESTLAYER_CACHE:-$HOME/.cache/testlayer}"
node_dir="$cache/node/containerd-$CONTAINERD_VERSION-$DEBIAN_SUITE"
bin_dir="$node_dir/bin"
images_dir="$node_dir/images"

if [ "${1:-}" = "--print-dir" ]; then
  echo "$node_dir"
  exit 0
fi

timer() { date +%s; }
total_start=$(timer)
mkdir -p "$bin_dir" "$images_dir"

# ---- Debian packages: runc, CNI plugins, debootstrap, ip, nft ----------------
need=()
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v ip >/dev/null || need+=(iproute2)
command -v gcc >/dev/null || need+=(gcc)
command -v nft >/dev/null || need+=(nftables)
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || need+=(libc6-dev)
if [ "${#need[@]}" -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "error: the real node needs ${need[*]} (Debian packages); install them as root" >&2; exit 1; }
  echo "node: installing ${need[*]}"
  apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; }
fi

# ---- kubelet and kube-scheduler --------------------------------------------
TESTLAYER_BUILD_NODE=1 bash "$repo/tests/cluster/build.sh"

# ---- containerd --------------------------------------------------------------
if ! [ -x "$bin_dir/containerd" ] || ! [ -f "$bin_dir/.containerd.$CONTAINERD_VERSION" ]; then
  command -v go >/dev/null || { echo "error: the go toolchain is required to build containerd" >&2; exit 1; }
  step_start=$(timer)
  echo "node: building containerd $CONTAINERD_VERSION"
  # containerd's go.mod has no replace lines, so `go install` works; btrfs
  # needs cgo headers and is not used here.
  GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build" CGO_ENABLED=0 GOTOOLCHAIN="${GOTOOLCHAIN:-local}" \
    GOFLAGS= GOBIN="$node_dir/go-bin" go install -trimpath -tags no_btrfs \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION"
  for b in containerd containerd-shim-runc-v2 ctr; do mv "$node_dir/go-bin/$b" "$bin_dir/$b"; done
  touch "$bin_dir/.containerd.$CONTAINERD_VERSION"
  echo "    built containerd in $(( $(timer) - step_start ))s"
fi

pack() { python3 "$here/oci_image.py" "$@"; }
scratch="$node_dir/scratch"

# ---- pause -------------------------------------------------------------------
pause_key="$(sha256sum "$here/pause.c" "$here/oci_image.py" | sha256sum | cut -c1-16)"
if ! [ -f "$images_dir/pause.tar" ] || ! [ -f "$images_dir/.pause.$pause_key" ]; then
  rm -rf "$scratch" && mkdir -p "$scratch/pause"
  gcc -Os -static -o "$scratch/pause/pause" "$here/pause.c"
  strip "$scratch/pause/pause"
  pack --rootfs "$scratch/pause" --name localhost/testlayer/pause:1 --entrypoint /pause --out "$images_dir/pause.tar"
  rm -f "$images_dir"/.pause.* && touch "$images_dir/.pause.$pause_key"
fi

# ---- busybox -----------------------------------------------------------------
if ! [ -f "$images_dir/busybox.tar" ] || ! [ -f "$images_dir/.busybox.$pause_key" ]; then
  rm -rf "$scratch" && mkdir -p "$scratch/deb" "$scratch/busybox/bin" "$scratch/busybox/etc" "$scratch/busybox/tmp"
  (cd "$scratch/deb" && apt-get download busybox-static >/dev/null 2>&1) \
    || { apt-get update -qq && (cd "$scratch/deb" && apt-get download busybox-static >/dev/null); }
  dpkg -x "$scratch"/deb/busybox-static_*.deb "$scratch/deb/x"
  cp "$scratch/deb/x/bin/busybox" "$scratch/busybox/bin/busybox"
  for applet in $("$scratch/busybox/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$scratch/busybox/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
    > "$scratch/busybox/etc/passwd"
  printf 'root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n' > "$scratch/busybox/etc/group"
  chmod 1777 "$scratch/busybox/tmp"
  pack --rootfs "$scratch/busybox" --name docker.io/library/busybox:1.35 --cmd sh --out "$images_dir/busybox.tar"
  rm -f "$images_dir"/.busybox.* && touch "$images_dir/.busybox.$pause_key"
fi

# ---- python + pytest root filesystem (debootstrap, cached) --------------------
pyroot="$node_dir/python-rootfs"
if ! [ -f "$node_dir/.python-rootfs.complete" ]; then
  step_start=$(timer)
  echo "node: debootstrap $DEBIAN_SUITE with python3 and pytest"
  rm -rf "$pyroot"
  debootstrap --variant=minbase --include=python3-minimal,python3-pytest \
    "$DEBIAN_SUITE" "$pyroot" "$DEBIAN_MIRROR" > "$node_dir/debootstrap.log" 2>&1 \
    || { tail -20 "$node_dir/debootstrap.log" >&2; exit 1; }
  touch "$node_dir/.python-rootfs.complete"
  echo "    root filesystem in $(( $(timer) - step_start ))s"
fi

# ---- the shop's test image ---------------------------------------------------
shop_key="$( (cd "$repo/examples/shop" && find shop tests -name '*.py' -type f | LC_ALL=C sort | xargs sha256sum; sha256sum "$here/oci_image.py") | sha256sum | cut -c1-16)"
if ! [ -f "$images_dir/shop-tests.tar" ] || ! [ -f "$images_dir/.shop-tests.$shop_key" ]; then
  step_start=$(timer)
  rm -rf "$scratch" && mkdir -p "$scratch/shop/shop"
  # The example at /shop, owned by the restricted user (uid 1000) so that
  # pytest can write its JUnit file there.
  (cd "$repo/examples/shop" && find shop tests -name '*.py' -type f -exec cp --parents {} "$scratch/shop/shop/" \;)
  chown -R 1000:1000 "$scratch/shop/shop"
  # Two layers: the root filesystem, and /shop on top.
  pack --rootfs "$pyroot" --rootfs "$scratch/shop" --name localhost/testlayer/shop-tests:1 --workdir /shop \
    --env PYTHONDONTWRITEBYTECODE=1 --cmd python3 --out "$images_dir/shop-tests.tar"
  rm -f "$images_dir"/.shop-tests.* && touch "$images_dir/.shop-tests.$shop_key"
  echo "    shop image in $(( $(timer) - step_start ))s"
fi
rm -rf "$scratch"

"$bin_dir/containerd" --version
runc_version="$(runc --version)"   # whole: a pipe into head may die of SIGPIPE
echo "${runc_version%%$'\n'*}"
echo "node: ready in $(( $(timer) - total_start ))s at $node_dir"
