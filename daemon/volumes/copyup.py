"""Filling a new volume with an image's content, and measuring a volume.

Owns: Docker's copy-up (what the image has at a volume's mount point, copied into the
empty volume with owners, modes, times, hard links, special files and extended
attributes kept), done aside and renamed in so a volume is never half-filled, and the
size of a directory tree. Must not: follow a symlink of the image's, or write anywhere
but the volume's own directory.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from pallet.daemon.images.fsutil import remove_tree

_UNFINISHED = ".fill-"


def fill(source: Path, data: Path, copied: Callable[[], None] = lambda: None) -> bool:
    """Copy the tree at `source` into the empty directory `data`: True when it did, False
    when there was nothing to do (`data` not empty, `source` not a directory). `copied`
    is called between the copy and the rename (a crash point)."""
    try:
        with os.scandir(data) as entries:
            if any(entries):
                return False
        if not stat.S_ISDIR(os.lstat(source).st_mode):
            return False
    except FileNotFoundError:
        return False
    aside = data.parent / f"{_UNFINISHED}{secrets.token_hex(4)}"
    try:
        copy_tree(source, aside)
        copied()
        # Renaming over an empty directory is atomic: the volume is empty or filled.
        os.rename(aside, data)
    except BaseException:
        remove_tree(aside)
        raise
    return True


def remove_unfinished(volume_dir: Path) -> None:
    """What a fill cut short by a crash left beside a volume's data."""
    with os.scandir(volume_dir) as entries:
        unfinished = [Path(e.path) for e in entries if e.name.startswith(_UNFINISHED)]
    for path in unfinished:
        remove_tree(path)


def copy_tree(source: Path, target: Path) -> None:
    """`source` copied to the new path `target`, as a faithful copy (hard links kept)."""
    links: dict[tuple[int, int], str] = {}
    _copy_entry(str(source), str(target), os.lstat(source), links)


def _copy_entry(src: str, dst: str, st: os.stat_result, links: dict[tuple[int, int], str]) -> None:
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        os.mkdir(dst, 0o700)
        with os.scandir(src) as entries:
            for entry in entries:
                _copy_entry(entry.path, os.path.join(dst, entry.name),
                            entry.stat(follow_symlinks=False), links)
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(src), dst)
    else:
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            os.link(links[key], dst, follow_symlinks=False)
            return  # the first copy carries owner, mode and times
        if stat.S_ISREG(mode):
            shutil.copyfile(src, dst, follow_symlinks=False)
        elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            os.mknod(dst, stat.S_IFMT(mode) | 0o600, st.st_rdev)
        else:
            return  # a socket: nothing a copy can carry
        if st.st_nlink > 1:
            links[key] = dst
    _copy_xattrs(src, dst)
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(mode):
        os.chmod(dst, stat.S_IMODE(mode))  # after chown, which clears setuid bits
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_xattrs(src: str, dst: str) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EPERM):
            return
        raise
    for name in names:
        if name.startswith("trusted.overlay."):
            continue  # overlayfs's own bookkeeping, meaningless outside its layer
        try:
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False),
                        follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                raise


# A directory opened by name relative to its parent's fd, never through a symlink: a
# running container may swap a directory for a symlink to the host's / at any moment.
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def tree_size(path: Path) -> int:
    """Bytes the files under `path` hold (each hard-linked file once); 0 when missing.
    Walked through directory fds, each child opened relative to its parent with
    O_NOFOLLOW, so a symlink swapped in meanwhile is counted as a link, never entered."""
    try:
        top = os.open(path, _DIR_FLAGS)
    except OSError:
        return 0  # missing, or not a directory (a symlink included)
    seen: set[tuple[int, int]] = set()
    total = 0
    try:
        stack = [(top, os.scandir(top))]
    except BaseException:
        os.close(top)
        raise
    try:
        while stack:
            fd, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                _close(fd, entries)
                continue
            try:
                st = entry.stat(follow_symlinks=False)  # fstatat on the parent's fd
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                try:
                    child = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
                except (FileNotFoundError, NotADirectoryError, PermissionError):
                    continue
                except OSError as exc:
                    if exc.errno == errno.ELOOP:
                        continue  # swapped for a symlink since: not ours to walk
                    raise
                try:
                    stack.append((child, os.scandir(child)))
                except BaseException:
                    os.close(child)
                    raise
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += st.st_size
    finally:
        for fd, entries in reversed(stack):
            _close(fd, entries)
    return total


def _close(fd: int, entries: Iterator[os.DirEntry[str]]) -> None:
    entries.close()  # type: ignore[attr-defined]  # a ScandirIterator
    os.close(fd)
