"""`export`: a container's root filesystem as one tar stream.

Owns: walking the container's filesystem into a tar on a worker thread through a pipe:
a stopped container's through `view.read_only_view` (taken off however the stream ends),
a running one's through its init's own root (`/proc/<pid>/root`, the overlay the shim
mounted in its mount namespace: never a second overlay over a live upper directory,
which the kernel leaves undefined). Must not: change the container or its layers, or
follow a container's symlink onto the host.

Reading a running container's root: directories are opened relative to their parent's
descriptor without following symlinks (`os.fwalk`), files with O_NOFOLLOW, so a symlink
the container swaps in meanwhile is tarred as a symlink, never followed. What is mounted
over the root (volumes, binds, /proc, /sys, /dev, tmpfs) is on another device: the mount
point is exported (an empty directory, or an empty file for a file mount, as in the
container's layer) and its content is not, as docker exports no volume content.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import tarfile
from collections.abc import AsyncIterator, Callable, Sequence
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


def _info(name: str, st: os.stat_result, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = st.st_mtime
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, link
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    else:
        info.type = tarfile.REGTYPE
        info.size = st.st_size
    return info


def _mount_points(mountinfo: str) -> set[str]:
    """The mount points a process sees below its root ("etc/hosts", "proc"), from its
    /proc/<pid>/mountinfo (paths relative to its root, octal escapes undone)."""
    points = set()
    for line in mountinfo.splitlines():
        fields = line.split(" - ", 1)[0].split()
        if len(fields) < 5:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        if point != "/":
            points.add(point.lstrip("/"))
    return points


def _write_live_tar(pid: int, fd: int) -> None:
    """Tar of the filesystem a process sees as its root, without what is mounted on it."""
    with open(f"/proc/{pid}/mountinfo") as f:
        mounts = _mount_points(f.read())
    root = f"/proc/{pid}/root/."  # through the magic link: fwalk refuses a top that is a symlink
    # Directories of an overlay all report its device; what differs is mounted over it.
    root_dev = os.stat(root).st_dev
    links: dict[tuple[int, int], str] = {}
    with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirs, files, dir_fd in os.fwalk(root, follow_symlinks=False):
            rel = os.path.relpath(dirpath, root)
            prefix = "" if rel == "." else rel + "/"
            keep = []
            for name in sorted(dirs) + sorted(files):
                try:
                    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # gone meanwhile
                arcname = prefix + name
                if stat.S_ISSOCK(st.st_mode):
                    continue
                if arcname in mounts or (stat.S_ISDIR(st.st_mode) and st.st_dev != root_dev):
                    # A mount point: exported as what it is in the layer, empty.
                    info = _info(arcname, st)
                    if info.isreg():
                        info.size = 0
                    tar.addfile(info)
                    continue
                if stat.S_ISDIR(st.st_mode):
                    keep.append(name)
                    tar.addfile(_info(arcname, st))
                    continue
                link = os.readlink(name, dir_fd=dir_fd) if stat.S_ISLNK(st.st_mode) else ""
                info = _info(arcname, st, link)
                if info.isreg() and st.st_nlink > 1:
                    first = links.setdefault((st.st_dev, st.st_ino), arcname)
                    if first != arcname:
                        info.type, info.linkname, info.size = tarfile.LNKTYPE, first, 0
                        tar.addfile(info)
                        continue
                if info.isreg():
                    _add_file(tar, info, name, dir_fd)
                else:
                    tar.addfile(info)
            dirs[:] = [d for d in dirs if d in keep]


def _add_file(tar: tarfile.TarFile, info: tarfile.TarInfo, name: str, dir_fd: int) -> None:
    try:
        file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    with os.fdopen(file_fd, "rb") as file:
        # The size as it is now: a file the container grows or truncates meanwhile is
        # tarred with the bytes it had when it was opened (tarfile needs a fixed size).
        info.size = os.fstat(file_fd).st_size
        tar.addfile(info, _Exactly(file, info.size))


class _Exactly:
    """A file read as exactly `size` bytes (zeros past a truncation)."""

    def __init__(self, file: object, size: int) -> None:
        self._file = file
        self._left = size

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n < 0 else min(n, self._left)
        data: bytes = self._file.read(n)  # type: ignore[attr-defined]
        if len(data) < n:
            data += b"\0" * (n - len(data))
        self._left -= len(data)
        return data


async def _stream(write: Callable[[int], None]) -> AsyncIterator[bytes]:
    """The bytes `write` (given a pipe's write end, on a worker thread) produces."""
    read_fd, write_fd = os.pipe()
    writer = asyncio.create_task(asyncio.to_thread(write, write_fd))
    try:
        while data := await asyncio.to_thread(os.read, read_fd, _READ):
            yield data
        await writer
    finally:
        os.close(read_fd)  # an abandoned stream makes the writer fail with EPIPE
        await asyncio.gather(writer, return_exceptions=True)


async def export_live(pid: int) -> AsyncIterator[bytes]:
    """Tar bytes of a running container's filesystem, read through its init's root."""
    async for data in _stream(lambda fd: _write_live_tar(pid, fd)):
        yield data


async def export_rootfs(writable: Path, lower_dirs: Sequence[str], scratch: Path) -> AsyncIterator[bytes]:
    """Tar bytes of the merged filesystem; `lower_dirs` top first, `writable` above them."""
    view = read_only_view(writable, lower_dirs, scratch)
    root = await asyncio.to_thread(view.__enter__)
    try:
        async for data in _stream(lambda fd: _write_tar(root, fd)):
            yield data
    finally:
        await asyncio.to_thread(view.__exit__, None, None, None)
