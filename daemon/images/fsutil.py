"""Small durable-filesystem helpers the content and layer stores share.

Owns: fsync of directories, syncfs of a whole filesystem, removing trees that may hold
read-only directories, and `DirectFile`, a new file written past the page cache. Must not:
know about blobs, layers or images.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import mmap
import os
import shutil
import stat
import threading
from pathlib import Path

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink inside `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def syncfs(path: Path) -> None:
    """Flush every dirty file of the filesystem holding `path` (one call, not one per file)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)


class DirectFile:
    """A new file (`path`, which must not exist) written with O_DIRECT: the bytes go from
    an aligned buffer of ours to the disk, not into page-cache pages first (a committed
    layer's blob: 100 MB that nothing reads until a push or save, written beside the 100 MB
    of the unpacked layer, which containers do read). Writing fresh page-cache pages was
    most of a commit's CPU here, and each dirty page was written back again by the fsync.
    A full buffer is written on a thread of its own while the caller fills the other one
    (a direct write waits for the disk). Where the filesystem refuses O_DIRECT (EINVAL:
    tmpfs before 6.6, some FUSE) it is an ordinary file. The last partial block is written
    buffered; `flush` and `fsync` as for any file, then `close`."""

    BLOCK = 4096  # O_DIRECT's alignment of offsets, sizes and memory (the largest sector)
    BUFFER = 4 << 20

    def __init__(self, path: Path) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            self._fd = os.open(path, flags | os.O_DIRECT, 0o666)
            self._direct = True
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self._fd = os.open(path, flags, 0o666)
            self._direct = False
        self._buffers = (mmap.mmap(-1, self.BUFFER), mmap.mmap(-1, self.BUFFER))  # page-aligned
        self._buffer = self._buffers[0]
        self._fill = 0
        self._writing: threading.Thread | None = None  # writing the other buffer
        self._error: BaseException | None = None  # what it failed with

    def fileno(self) -> int:
        return self._fd

    def write(self, data: bytes | memoryview) -> int:
        with memoryview(data) as view:
            size = len(view)
            while view:
                n = min(len(view), self.BUFFER - self._fill)
                self._buffer[self._fill : self._fill + n] = view[:n]
                self._fill += n
                view = view[n:]
                if self._fill == self.BUFFER:
                    self._hand_off()
        return size

    def _hand_off(self) -> None:
        """Write the full buffer on a thread while the other one fills (after the write
        before it: one at a time, in order)."""
        self._wait()
        full = self._buffer
        self._buffer = self._buffers[1] if full is self._buffers[0] else self._buffers[0]
        self._fill = 0

        def write_full() -> None:
            try:
                self._write_all(full, self.BUFFER)
            except BaseException as exc:  # noqa: BLE001 - raised by the next _wait
                self._error = exc

        self._writing = threading.Thread(target=write_full, name="direct-write", daemon=True)
        self._writing.start()

    def _wait(self) -> None:
        if self._writing is not None:
            self._writing.join()
            self._writing = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def flush(self) -> None:
        """Write out what is buffered: whole blocks direct, the rest buffered."""
        self._wait()
        whole = self._fill - self._fill % self.BLOCK
        if whole:
            self._write_all(self._buffer, whole)
        if self._fill > whole:
            self._buffered()
            self._write_all(self._buffer, self._fill, start=whole)
        self._fill = 0

    def _write_all(self, buffer: mmap.mmap, stop: int, start: int = 0) -> None:
        with memoryview(buffer) as whole, whole[start:stop] as view:
            while view:
                try:
                    written = os.write(self._fd, view)
                except OSError as exc:
                    if exc.errno != errno.EINVAL or not self._direct:
                        raise
                    self._buffered()  # opened with O_DIRECT, but writes are refused
                    continue
                if self._direct and written % self.BLOCK:
                    self._buffered()  # a short write left the offset unaligned
                view = view[written:]

    def _buffered(self) -> None:
        if self._direct:
            fcntl.fcntl(self._fd, fcntl.F_SETFL, fcntl.fcntl(self._fd, fcntl.F_GETFL) & ~os.O_DIRECT)
            self._direct = False

    def close(self) -> None:
        """Close without writing what is buffered (call `flush` first to keep it)."""
        if self._writing is not None:
            self._writing.join()  # its error, if any, is moot: the blob is not kept
            self._writing = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            for buffer in self._buffers:
                buffer.close()


def remove_tree(path: Path) -> None:
    """Remove `path` and everything under it; a missing path is fine.

    Unpacked layers keep their image's modes, so a directory may be read-only; without
    CAP_DAC_OVERRIDE (unit tests) that blocks deleting its entries, so first make every
    directory writable.
    """
    if not os.path.lexists(path):
        return
    if not os.path.isdir(path) or os.path.islink(path):
        os.unlink(path)
        return
    if os.geteuid() != 0:
        _make_dirs_writable(path)
    shutil.rmtree(path)


def _make_dirs_writable(top: Path) -> None:
    os.chmod(top, stat.S_IMODE(os.lstat(top).st_mode) | stat.S_IRWXU)
    for dirpath, dirnames, _files in os.walk(top):
        for name in dirnames:
            child = os.path.join(dirpath, name)
            if os.path.islink(child):  # os.walk lists links to directories here too
                continue
            # Before os.walk descends: an unreadable directory could not be listed.
            os.chmod(child, stat.S_IMODE(os.lstat(child).st_mode) | stat.S_IRWXU)
