"""Small durable-filesystem helpers the content and layer stores share.

Owns: fsync of directories, syncfs of a whole filesystem, and removing trees that may hold
read-only directories. Must not: know about blobs, layers or images.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import stat
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
