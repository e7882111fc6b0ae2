"""`export`: a container's root filesystem as one tar stream.

Owns: walking the container's filesystem (`view.read_only_view`) into a tar on a worker
thread through a pipe, and taking the view off however the stream ends. Must not: change
the container or its layers.
"""

from __future__ import annotations

import asyncio
import os
import tarfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from pallet.daemon.snapshots.view import read_only_view

_READ = 1 << 20


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
    view = read_only_view(writable, lower_dirs, scratch)
    root = await asyncio.to_thread(view.__enter__)
    try:
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
        await asyncio.to_thread(view.__exit__, None, None, None)
