"""`diff`: what a container changed, read from its writable layer (the overlay's upper).

Owns: reading an upper directory against the image layers below it (`LowerView`, top
layer first, its own whiteouts and opaque directories honoured) into docker's A/C/D list,
and which upper entries are the runtime's mount points rather than the container's
changes (`is_runtime_stub`). Must not: mount anything or write anywhere: the upper of a
running container is read as it is, never stacked under a second overlay.

How overlayfs records changes in the upper directory: a file written or created is there
whole (copied up); a deleted lower entry is a 0:0 character device of its name (a
whiteout); a directory deleted and made again is marked `trusted.overlay.opaque=y`, which
hides everything below it. The rules, docker's (`pkg/archive/changes.go`):
- an upper entry with nothing below it is Added (A), one over a lower entry Changed (C);
- a directory over a lower directory with the same mode, owner and mtime is not a
  change by itself (overlayfs copied it up for a child; docker compares the size too,
  which on tmpfs or btrfs counts entries);
- the parent of an added or deleted entry is Changed (its list of entries changed);
- a whiteout is Deleted (D).
One rule is pallet's: an opaque directory over a lower directory is C, and the lower
entries it hides that were not made again are D (docker prints the directory as D and
its new content as A, which reads as if it were gone).
The list is sorted by path, component by component (a directory before its content).
"""

from __future__ import annotations

import enum
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

OPAQUE_XATTR = "trusted.overlay.opaque"

#: Mount points the runtime makes in a container's root when its image lacks them (the
#: files of docker's init layer): empty, and never the container's own changes.
RUNTIME_STUBS = frozenset({
    ("etc", "hosts"), ("etc", "hostname"), ("etc", "resolv.conf"), ("etc", "mtab"),
    ("dev",), ("proc",), ("sys",), ("dev", "pts"), ("dev", "shm"), ("dev", "mqueue"),
    ("dev", "console"), (".dockerenv",),
})


class ChangeKind(enum.Enum):
    MODIFIED = "C"
    ADDED = "A"
    DELETED = "D"


@dataclass(frozen=True, slots=True)
class Change:
    """One line of `diff`: a path inside the container and what happened to it."""

    path: str  # absolute, "/etc/passwd"
    kind: ChangeKind


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


class LowerView:
    """The merged view of read-only layers (top first), looked up without mounting them."""

    def __init__(self, layers: Sequence[str]) -> None:
        self._layers = [Path(layer) for layer in layers]

    def lstat(self, parts: tuple[str, ...]) -> os.stat_result | None:
        """The entry at `parts` as the stacked layers show it; None when there is none."""
        for layer in self._layers:
            found, stop = _look(layer, parts)
            if found is not None:
                return found
            if stop:
                return None
        return None

    def locate(self, parts: tuple[str, ...]) -> Path | None:
        """The path, in the layer that shows it, of the entry at `parts` (to read a file
        or a symlink's target without mounting); None when there is none."""
        for layer in self._layers:
            found, stop = _look(layer, parts)
            if found is not None:
                return layer.joinpath(*parts)
            if stop:
                return None
        return None

    def names(self, parts: tuple[str, ...]) -> set[str]:
        """The entries of the directory at `parts` as the stacked layers show it."""
        seen: set[str] = set()
        hidden: set[str] = set()
        for layer in self._layers:
            found, stop = _look(layer, parts)
            if found is not None:
                if not stat.S_ISDIR(found.st_mode):
                    break
                directory = layer.joinpath(*parts)
                with os.scandir(directory) as entries:
                    for entry in entries:
                        if entry.name in hidden or entry.name in seen:
                            continue
                        if is_whiteout(entry.stat(follow_symlinks=False)):
                            hidden.add(entry.name)
                        else:
                            seen.add(entry.name)
                if is_opaque(directory):
                    break
            elif stop:
                break
        return seen


def _look(layer: Path, parts: tuple[str, ...]) -> tuple[os.stat_result | None, bool]:
    """(the entry at `parts` in one layer, whether layers below cannot show it): a
    whiteout or a non-directory on the way hides the path below, an opaque directory on
    the way hides what it does not have itself."""
    current = layer
    for depth, name in enumerate(parts):
        current = current / name
        try:
            st = os.lstat(current)
        except (FileNotFoundError, NotADirectoryError):
            opaque_above = depth > 0 and is_opaque(current.parent)
            return None, opaque_above
        if is_whiteout(st):
            return None, True
        if depth == len(parts) - 1:
            return st, True
        if not stat.S_ISDIR(st.st_mode):
            return None, True
    return os.lstat(layer), True


def is_runtime_stub(parts: tuple[str, ...], st: os.stat_result, below: os.stat_result | None) -> bool:
    """An empty file or directory the runtime made to mount over (its image had none)."""
    if below is not None or parts not in RUNTIME_STUBS:
        return False
    if stat.S_ISREG(st.st_mode):
        return st.st_size == 0
    return stat.S_ISDIR(st.st_mode) and st.st_nlink <= 2


def upper_entries(directory: Path) -> list[tuple[str, os.stat_result]]:
    """The entries of one upper directory, sorted by name as bytes (docker's order)."""
    with os.scandir(directory) as entries:
        found = [(e.name, e.stat(follow_symlinks=False)) for e in entries]
    return sorted(found, key=lambda item: os.fsencode(item[0]))


def _same_directory(a: os.stat_result, b: os.stat_result, mtime_too: bool) -> bool:
    if (a.st_mode, a.st_uid, a.st_gid) != (b.st_mode, b.st_uid, b.st_gid):
        return False
    # Not the size, which docker compares too: a directory's size says how many entries it
    # has on tmpfs and btrfs, and is a block count elsewhere; either way not a change.
    return not mtime_too or a.st_mtime_ns == b.st_mtime_ns


def changes(upper: Path, lowers: Sequence[str]) -> list[Change]:
    """The changes an upper directory holds over `lowers` (top first), sorted."""
    found: dict[tuple[str, ...], ChangeKind] = {}
    _walk(upper, (), LowerView(lowers), False, found)
    return [Change("/" + "/".join(parts), kind) for parts, kind in sorted(found.items())]


def _walk(
    upper: Path,
    parts: tuple[str, ...],
    lower: LowerView,
    hidden: bool,
    found: dict[tuple[str, ...], ChangeKind],
) -> tuple[bool, bool]:
    """Record the changes inside the upper directory at `parts`; return whether its own
    list of entries changed (an entry added or deleted) and whether it holds a runtime
    stub (which changed its mtime). `hidden`: an opaque directory at or above it hides
    what the layers have here."""
    entries_changed = False
    has_stub = False
    names: set[str] = set()
    for name, st in upper_entries(upper.joinpath(*parts)):
        path = (*parts, name)
        names.add(name)
        below = lower.lstat(path)
        if is_runtime_stub(path, st, below):
            has_stub = True
            continue
        if is_whiteout(st):
            if below is not None:
                found[path] = ChangeKind.DELETED
                entries_changed = True
            continue
        if below is None:
            found[path] = ChangeKind.ADDED
            entries_changed = True
        elif not stat.S_ISDIR(st.st_mode) or not stat.S_ISDIR(below.st_mode):
            found[path] = ChangeKind.MODIFIED
        if stat.S_ISDIR(st.st_mode):
            opaque = below is not None and stat.S_ISDIR(below.st_mode) and is_opaque(upper.joinpath(*path))
            inside_changed, inside_stub = _walk(upper, path, lower, hidden or opaque, found)
            if below is not None and stat.S_ISDIR(below.st_mode) and (
                opaque or inside_changed
                or not _same_directory(st, below, mtime_too=not inside_stub)
            ):
                found[path] = ChangeKind.MODIFIED
    if hidden and parts:
        below_dir = lower.lstat(parts)
        if below_dir is not None and stat.S_ISDIR(below_dir.st_mode):
            for name in lower.names(parts) - names:
                found[(*parts, name)] = ChangeKind.DELETED
                entries_changed = True
    return entries_changed, has_stub


def walk_upper(upper: Path, lowers: Sequence[str]) -> Iterator[tuple[tuple[str, ...], os.stat_result]]:
    """Every entry of an upper directory that belongs in a layer (the runtime's stubs
    left out), depth first, each directory before its content, sorted by name."""
    lower = LowerView(lowers)

    def walk(parts: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], os.stat_result]]:
        for name, st in upper_entries(upper.joinpath(*parts)):
            path = (*parts, name)
            if path in RUNTIME_STUBS and is_runtime_stub(path, st, lower.lstat(path)):
                continue
            yield path, st
            if stat.S_ISDIR(st.st_mode):
                yield from walk(path)

    yield from walk(())
