"""`export`: a container's root filesystem as one tar stream.

Owns: presenting the container's layers and its writable layer as one read-only overlay
mount (the writable layer stacked as the top lower layer, so its whiteouts hide what the
container deleted), walking it into a tar on a worker thread through a pipe, and removing
the mount however the stream ends. Must not: change the container or its layers.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import tarfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from pallet.v1.errors import FailedPrecondition, Internal

_READ = 1 << 20


def _mount(target: Path, layers: Sequence[str]) -> None:
    # Read-only overlay of lower layers only: no upper or work dir is touched.
    options = "ro,lowerdir=" + ":".join(layers)
    result = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options, str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise Internal(f"cannot mount the container's filesystem for export: {result.stderr.strip()}")


def _unmount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)
    try:
        target.rmdir()
    except OSError:
        pass


def _write_tar(root: Path, fd: int) -> None:
    with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirs, files in os.walk(root):
            dirs.sort()
            base = Path(dirpath)
            for name in sorted(dirs) + sorted(files):
                path = base / name
                tar.add(str(path), arcname=str(path.relative_to(root)), recursive=False)


async def export_rootfs(writable: Path, lower_dirs: Sequence[str], scratch: Path) -> AsyncIterator[bytes]:
    """Tar bytes of the merged filesystem; `lower_dirs` top first, `writable` above them."""
    layers = [str(writable), *lower_dirs] if writable.is_dir() else list(lower_dirs)
    if not layers:
        raise FailedPrecondition("the container has no filesystem to export (its image and layer are gone)")
    target = scratch / f"export-{secrets.token_hex(6)}"
    await asyncio.to_thread(target.mkdir)
    try:
        if len(layers) == 1:
            root = Path(layers[0])  # overlayfs needs two layers; one is its own merge
        else:
            await asyncio.to_thread(_mount, target, layers)
            root = target
        read_fd, write_fd = os.pipe()
        writer = asyncio.create_task(asyncio.to_thread(_write_tar, root, write_fd))
        try:
            while data := await asyncio.to_thread(os.read, read_fd, _READ):
                yield data
            await writer
        finally:
            os.close(read_fd)  # an abandoned stream makes the writer fail with EPIPE
            await asyncio.gather(writer, return_exceptions=True)
    finally:
        await asyncio.to_thread(_unmount, target)
