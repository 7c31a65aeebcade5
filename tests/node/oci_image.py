#!/usr/bin/env python3
"""Packs root filesystem directories into an OCI image archive, one layer each.

The archive is an OCI image layout in a tar file, as `ctr images import`
takes it, with the image's full name in the index annotations so that the
import tags it. Only the standard library is used.

Usage:
  oci_image.py --rootfs DIR [--rootfs DIR ...] --name REF --out FILE.tar
               [--cmd ARG ...] [--entrypoint ARG ...] [--user UID[:GID]]
               [--env KEY=VALUE ...] [--workdir DIR] [--expose PORT/PROTO ...]
               [--label KEY=VALUE ...]
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

# Mount points the runtime fills in: kept as empty directories.
SKIPPED_CONTENTS = {"dev", "proc", "sys", "run", "tmp"}
# Caches a root filesystem built from packages carries and an image needs not.
SKIPPED_TREES = {
    "var/cache/apt",
    "var/lib/apt/lists",
    "var/log",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
}


def layer_bytes(rootfs):
    """The root filesystem as an uncompressed tar, entries in sorted order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for top, dirs, files in os.walk(rootfs):
            rel_top = os.path.relpath(top, rootfs)
            rel_top = "" if rel_top == "." else rel_top
            dirs.sort()
            kept = []
            for d in dirs:
                rel = os.path.join(rel_top, d)
                if rel in SKIPPED_TREES:
                    continue
                full = os.path.join(top, d)
                tar.add(full, arcname=rel, recursive=False, filter=normalize)
                if rel in SKIPPED_CONTENTS or os.path.islink(full):
                    continue
                kept.append(d)
            dirs[:] = kept
            for f in sorted(files):
                rel = os.path.join(rel_top, f)
                tar.add(os.path.join(top, f), arcname=rel, recursive=False, filter=normalize)
    return buf.getvalue()


def normalize(info):
    """Fixed times and no host user names, so that rebuilds are identical."""
    info.mtime = 0
    info.uname = ""
    info.gname = ""
    if info.isdev():
        return None
    return info


def blob(out, data, media_type):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo("blobs/sha256/" + digest.split(":", 1)[1])
    info.size = len(data)
    out.addfile(info, io.BytesIO(data))
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def add_json(out, name, value):
    data = json.dumps(value, sort_keys=True).encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    out.addfile(info, io.BytesIO(data))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rootfs", required=True, action="append", help="a layer; later ones on top")
    p.add_argument("--name", required=True, help="full reference, e.g. docker.io/library/busybox:1.35")
    p.add_argument("--out", required=True)
    p.add_argument("--cmd", nargs="*", default=None)
    p.add_argument("--entrypoint", nargs="*", default=None)
    p.add_argument("--user", default=None)
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--workdir", default=None)
    p.add_argument("--expose", action="append", default=[], help="e.g. 8080/tcp")
    p.add_argument("--label", action="append", default=[], help="KEY=VALUE")
    a = p.parse_args()

    for d in a.rootfs:
        if not os.path.isdir(d):
            sys.exit(f"error: --rootfs {d}: not a directory")
    if ":" not in a.name.rsplit("/", 1)[-1]:
        sys.exit(f"error: --name {a.name}: give a tag (an untagged name means :latest, pulled Always)")

    diff_ids = []
    layers = []
    for d in a.rootfs:
        raw = layer_bytes(d)
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        layers.append(gzip.compress(raw, compresslevel=1, mtime=0))

    env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] + a.env
    config = {"Env": env}
    if a.cmd is not None:
        config["Cmd"] = a.cmd
    if a.entrypoint is not None:
        config["Entrypoint"] = a.entrypoint
    if a.user:
        config["User"] = a.user
    if a.workdir:
        config["WorkingDir"] = a.workdir
    if a.expose:
        config["ExposedPorts"] = {port: {} for port in a.expose}
    if a.label:
        config["Labels"] = dict(label.split("=", 1) for label in a.label)
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }

    tmp = a.out + ".tmp"
    with tarfile.open(tmp, mode="w") as out:
        add_json(out, "oci-layout", {"imageLayoutVersion": "1.0.0"})
        layer_descs = [
            blob(out, layer, "application/vnd.oci.image.layer.v1.tar+gzip") for layer in layers
        ]
        config_desc = blob(
            out,
            json.dumps(image_config, sort_keys=True).encode(),
            "application/vnd.oci.image.config.v1+json",
        )
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_desc,
            "layers": layer_descs,
        }
        manifest_desc = blob(
            out,
            json.dumps(manifest, sort_keys=True).encode(),
            "application/vnd.oci.image.manifest.v1+json",
        )
        manifest_desc["platform"] = {"architecture": "amd64", "os": "linux"}
        manifest_desc["annotations"] = {
            "io.containerd.image.name": a.name,
            "org.opencontainers.image.ref.name": a.name.rsplit(":", 1)[1],
        }
        add_json(out, "index.json", {"schemaVersion": 2, "manifests": [manifest_desc]})
    os.replace(tmp, a.out)
    print(f"{a.name}: {sum(len(x) for x in layers) // 1024} KiB compressed -> {a.out}")


if __name__ == "__main__":
    main()
