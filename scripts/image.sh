#!/usr/bin/env bash
# Builds the controller's container image without a container engine, as an
# OCI image archive that `ctr images import` (the real node) or any registry
# client (`skopeo copy oci-archive:...`, `crane push`) takes:
#
#   /usr/local/bin/testlayer   the release binary (`cargo build --release
#                              --locked --bin testlayer`, debug info
#                              stripped), the entrypoint, `controller` its
#                              command
#   the shared libraries it links, from this machine (Debian 12: the glibc
#   and libgcc_s of distroless/cc-debian12), at the paths ldd names
#   /etc/passwd, /etc/group    root and the non-root user 65532, the image's
#                              user
#   /etc/ssl/certs/ca-certificates.crt, /tmp
#
# No shell, no package manager. The Dockerfile builds the same image with
# an engine (same entrypoint, command, user, port and binary build);
# tests/image.rs holds the two to that.
#
# The image is named after the chart's default (`ghcr.io/testlayer/testlayer`
# at the chart's appVersion), so that `helm install` on the real node takes
# it as it is; TESTLAYER_IMAGE_NAME names it otherwise.
#
# Usage: scripts/image.sh               build (or reuse); the last line is
#                                       the archive's path
#        scripts/image.sh --print-path  print where the archive is
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

cache="${TESTLAYER_CACHE:-$HOME/.cache/testlayer}"
out_dir="$cache/image"
archive="$out_dir/testlayer.tar"
if [ "${1:-}" = "--print-path" ]; then
  echo "$archive"
  exit 0
fi

version="$(sed -n 's/^appVersion: "\(.*\)"$/\1/p' charts/testlayer/Chart.yaml)"
[ -n "$version" ] || { echo "error: no appVersion in charts/testlayer/Chart.yaml" >&2; exit 1; }
name="${TESTLAYER_IMAGE_NAME:-ghcr.io/testlayer/testlayer:$version}"
target="${CARGO_TARGET_DIR:-$repo/target}"

start=$(date +%s)
echo "image: cargo build --release --locked --bin testlayer"
cargo build --release --locked --bin testlayer
bin="$target/release/testlayer"

key="$( (sha256sum "$bin" scripts/image.sh tests/node/oci_image.py; echo "$name") | sha256sum | cut -c1-16)"
if [ -f "$archive" ] && [ -f "$out_dir/.key.$key" ]; then
  echo "image: reusing $archive ($name, $(( $(stat -c %s "$archive") / 1024 )) KiB)"
  echo "$archive"
  exit 0
fi

mkdir -p "$out_dir"
rootfs="$(mktemp -d "$out_dir/rootfs.XXXXXX")"
trap 'rm -rf "$rootfs"' EXIT
install -D -m 0755 "$bin" "$rootfs/usr/local/bin/testlayer"
strip --strip-debug "$rootfs/usr/local/bin/testlayer"

# Every library the binary links, at the path the loader finds it by.
libs="$(ldd "$bin")"
while read -r first arrow path _; do
  case "$first" in
    linux-vdso.so*) continue ;;
  esac
  [ "$arrow" = "=>" ] || path="$first"          # the loader: /lib64/ld-linux-x86-64.so.2
  case "$path" in
    /*) ;;
    *) echo "error: ldd names no path for $first: $libs" >&2; exit 1 ;;
  esac
  install -D -m 0755 "$(readlink -f "$path")" "$rootfs$path"
done <<< "$libs"

mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/tmp" "$rootfs/home/nonroot"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
  > "$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"
chown 65532:65532 "$rootfs/home/nonroot"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
else
  echo "error: /etc/ssl/certs/ca-certificates.crt is missing (Debian: apt-get install ca-certificates)" >&2
  exit 1
fi

python3 tests/node/oci_image.py --rootfs "$rootfs" --name "$name" \
  --entrypoint /usr/local/bin/testlayer --cmd controller --user 65532:65532 \
  --expose 8080/tcp \
  --label "org.opencontainers.image.title=testlayer" \
  --label "org.opencontainers.image.version=$version" \
  --out "$archive"
rm -f "$out_dir"/.key.* && touch "$out_dir/.key.$key"
echo "image: $name, $(( $(stat -c %s "$archive") / 1024 )) KiB, built in $(( $(date +%s) - start ))s"
echo "$archive"
