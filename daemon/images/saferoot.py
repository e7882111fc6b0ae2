"""Resolving untrusted paths inside a directory without ever leaving it.

Owns: lexical cleaning of entry names and openat-style, one-component-at-a-time resolution
below a root directory fd with O_NOFOLLOW, following relative symlinks only while they stay
inside the root. Must not: create anything but missing directories, or know about tar.

Absolute symlinks are refused rather than re-rooted: a layer that writes through one is
either broken or hostile, and refusing is the answer that cannot be wrong.
"""

from __future__ import annotations

import os
import stat

from pallet.daemon.store.space import FULL_ERRNOS
from pallet.v1.errors import Internal, InvalidArgument

MAX_SYMLINK_HOPS = 40
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeEntry(InvalidArgument):
    """An entry that would escape its root or is not allowed there."""


def clean_name(name: str) -> tuple[str, ...] | None:
    """Split a name into components, lexically resolving `.` and `..`.

    A leading `/` is dropped, as tar does. Returns None when `..` climbs above the root.
    """
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(part)
    return tuple(parts)


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return None


class SafeRoot:
    """A directory that untrusted names are resolved in; `what` prefixes error messages."""

    def __init__(self, root_fd: int, what: str = "layer entry") -> None:
        self.fd = root_fd
        self._what = what

    def walk(self, parts: tuple[str, ...]) -> int:
        """Open a symlink-free directory path below the root, never following links."""
        fd = os.dup(self.fd)
        for part in parts:
            try:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            finally:
                os.close(fd)
            fd = child
        return fd

    def open_dir(
        self, parts: tuple[str, ...], entry: str, create: bool
    ) -> tuple[int, tuple[str, ...]]:
        """Open the directory `parts` names, following relative symlinks that stay inside;
        returns its fd and its symlink-free path. Missing directories are made (as tar
        does) when `create`, else the entry is refused."""
        pending = list(parts)
        resolved: list[str] = []
        fd = os.dup(self.fd)
        hops = 0
        try:
            while pending:
                part = pending.pop(0)
                if part in ("", "."):
                    continue
                if part == "..":
                    if not resolved:
                        raise UnsafeEntry(
                            f"{self._what} {entry!r} leaves the layer through a symlink"
                        )
                    resolved.pop()
                    os.close(fd)
                    fd = self.walk(tuple(resolved))
                    continue
                here = "/".join((*resolved, part))
                info = lstat_at(fd, part)
                if info is None:
                    if not create:
                        raise UnsafeEntry(
                            f"{self._what} {entry!r} refers to {here!r}, which is not earlier "
                            "in the layer"
                        )
                    os.mkdir(part, 0o755, dir_fd=fd)
                elif stat.S_ISLNK(info.st_mode):
                    hops += 1
                    if hops > MAX_SYMLINK_HOPS:
                        raise UnsafeEntry(f"{self._what} {entry!r} goes through too many symlinks")
                    target = os.readlink(part, dir_fd=fd)
                    if target.startswith("/"):
                        raise UnsafeEntry(
                            f"{self._what} {entry!r} is written through the absolute symlink "
                            f"{here!r} -> {target!r}"
                        )
                    pending[:0] = target.split("/")
                    continue
                elif not stat.S_ISDIR(info.st_mode):
                    raise UnsafeEntry(
                        f"{self._what} {entry!r} needs {here!r} to be a directory, but it is not"
                    )
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
                resolved.append(part)
        except OSError as exc:
            os.close(fd)
            if exc.errno in FULL_ERRNOS:
                raise  # a full disk: the image manager names it
            raise Internal(f"unpacking {self._what} {entry!r} failed: {exc}") from exc
        except BaseException:
            os.close(fd)
            raise
        return fd, tuple(resolved)
