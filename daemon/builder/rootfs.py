"""An image's filesystem as a build step sees it, read from its layer directories.

Owns: resolving a path inside an image's root as a chroot would (symlinks followed, an
absolute target starting again from the root, `..` never above it), the stat of what is
there, reading small files (`/etc/passwd`, `/etc/group`) and turning `--chown`'s
`user:group` into numbers with them. Must not: mount anything, or write (the layers are
shared by every image that has them).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from pallet.daemon.snapshots.changes import LowerView
from pallet.v1.errors import InvalidArgument

_MAX_LINKS = 40
_MAX_SMALL_FILE = 4 << 20


@dataclass(frozen=True, slots=True)
class Resolved:
    """Where a path leads: its real place in the root and what is there (None: nothing;
    `parts` then spells where it would be)."""

    parts: tuple[str, ...]
    st: os.stat_result | None
    # The stats of the directories on the way, for the ones that exist (by depth).
    parents: tuple[os.stat_result | None, ...] = ()

    @property
    def is_dir(self) -> bool:
        return self.st is not None and stat.S_ISDIR(self.st.st_mode)

    @property
    def path(self) -> str:
        return "/" + "/".join(self.parts)


def split(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


class ImageRoot:
    """The stacked layers of an image (top first); an empty list is `scratch`."""

    def __init__(self, layers: Sequence[str]) -> None:
        self._view = LowerView(layers)

    def lstat(self, parts: tuple[str, ...]) -> os.stat_result | None:
        return self._view.lstat(parts)

    def resolve(self, path: str, follow_last: bool = True) -> Resolved:
        todo = split(path)
        done: list[str] = []
        parents: list[os.stat_result | None] = []
        links = 0
        while todo:
            name = todo.pop(0)
            if name == "..":
                if done:
                    done.pop()
                    parents.pop()
                continue
            candidate = (*done, name)
            st = self._view.lstat(candidate)
            if st is None:
                rest = _clean([*done, name, *todo])
                return Resolved(rest, None, tuple(parents))
            if stat.S_ISLNK(st.st_mode) and (todo or follow_last):
                links += 1
                if links > _MAX_LINKS:
                    raise InvalidArgument(f"{path}: too many levels of symbolic links in the image")
                where = self._view.locate(candidate)
                target = os.readlink(where) if where is not None else ""
                if target.startswith("/"):
                    done, parents = [], []
                todo = split(target) + todo
                continue
            if todo and not stat.S_ISDIR(st.st_mode):
                raise InvalidArgument(f"{path}: /{'/'.join(candidate)} is not a directory in the image")
            done.append(name)
            parents.append(st)
        parts = tuple(done)
        st = self._view.lstat(parts) if parts else _root_stat(self._view)
        return Resolved(parts, st, tuple(parents[:-1]) if parts else ())

    def read_small(self, path: str) -> bytes | None:
        """A small regular file's bytes (None: not there, or not a regular file)."""
        found = self.resolve(path)
        if found.st is None or not stat.S_ISREG(found.st.st_mode) or found.st.st_size > _MAX_SMALL_FILE:
            return None
        where = self._view.locate(found.parts)
        if where is None:
            return None
        fd = os.open(where, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            with os.fdopen(fd, "rb", closefd=False) as f:
                return f.read(_MAX_SMALL_FILE)
        finally:
            os.close(fd)

    def ids(self, spec: str) -> tuple[int, int]:
        """`--chown`'s `user[:group]` (names or numbers) as uid, gid; a user alone gives
        its uid as the gid too (docker's rule)."""
        user, _, group = spec.partition(":")
        if not user:
            raise InvalidArgument(f"--chown={spec}: give a user (user, uid, user:group or uid:gid)")
        uid = self._lookup(user, "/etc/passwd", "user")
        gid = self._lookup(group, "/etc/group", "group") if group else uid
        return uid, gid

    def _lookup(self, name: str, file: str, what: str) -> int:
        if name.isdigit():
            return int(name)
        data = self.read_small(file)
        for line in (data or b"").decode(errors="replace").splitlines():
            fields = line.split(":")
            if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
                return int(fields[2])
        raise InvalidArgument(
            f"unable to convert uid/gid chown string to host mapping: no such {what}: {name} "
            f"(not in the image's {file})"
        )


def _clean(parts: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for name in parts:
        if name == "..":
            if out:
                out.pop()
        elif name not in ("", "."):
            out.append(name)
    return tuple(out)


def _root_stat(view: LowerView) -> os.stat_result | None:
    return view.lstat(())
