"""The benchmark image: a busybox root filesystem tar, and the same image as an OCI archive.

Owns: building both from the host's /bin/busybox (Debian's busybox-static) with the
standard library only, so every engine runs the very same bytes. Must not: talk to an
engine (importing the image is each engine's business, see `engines`).
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import subprocess
import tarfile
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
MTIME = 1_700_000_000  # fixed, so the tar (and the layer digest) is the same on every run
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"
DIRECTORIES = ("bin", "dev", "etc", "proc", "root", "sys", "tmp", "usr", "usr/bin", "var")


class ImageError(Exception):
    """The host cannot make the benchmark image."""


def write_rootfs_tar(dest: Path) -> Path:
    """bin/busybox, one symlink per applet, etc/passwd and etc/group, as a plain tar."""
    if not BUSYBOX.is_file():
        raise ImageError("/bin/busybox is missing: apt-get install busybox-static")
    listed = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True, timeout=10
    )
    applets = sorted({a for a in listed.stdout.split() if a and a != "busybox"})
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for directory in DIRECTORIES:
            info = _info(directory, 0o1777 if directory == "tmp" else 0o755)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        _add_file(tar, "bin/busybox", BUSYBOX.read_bytes(), 0o755)
        for applet in applets:
            info = _info(f"bin/{applet}", 0o777)
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        _add_file(tar, "etc/passwd", PASSWD.encode(), 0o644)
        _add_file(tar, "etc/group", GROUP.encode(), 0o644)
    return dest


def write_oci_archive(rootfs_tar: Path, dest: Path, name: str) -> Path:
    """An OCI image layout tar holding `rootfs_tar` as its one layer, named `name`.

    For engines that import images, not root filesystems (containerd's `ctr`).
    """
    layer = rootfs_tar.read_bytes()
    layer_digest = _digest(layer)
    config = _json(
        {
            "architecture": _oci_arch(),
            "os": "linux",
            "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }
    )
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        }
    )
    index = _json(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": _digest(manifest),
                    "size": len(manifest),
                    "annotations": {
                        "io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rpartition(":")[2],
                    },
                }
            ],
        }
    )
    with tarfile.open(dest, "w") as tar:
        _add_file(tar, "oci-layout", _json({"imageLayoutVersion": "1.0.0"}), 0o644)
        _add_file(tar, "index.json", index, 0o644)
        for blob in (layer, config, manifest):
            _add_file(tar, "blobs/sha256/" + _digest(blob).removeprefix("sha256:"), blob, 0o644)
    return dest


def _info(path: str, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.mode, info.mtime = mode, MTIME
    return info


def _add_file(tar: tarfile.TarFile, path: str, data: bytes, mode: int) -> None:
    info = _info(path, mode)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _oci_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)
