"""Paths of a container resolved inside its root by the kernel: openat2(2) RESOLVE_IN_ROOT.

Owns: the `openat2` call (syscall 437 through ctypes: Python 3.11 has no wrapper), opening
a container path below a root directory fd as the container would see it (`..` stops at
the root, absolute symlinks and symlink chains are re-rooted, magic links such as
/proc/self/root are refused), the lexical split of cp paths (`clean_parts`,
`split_last`), making missing parent directories one component at a time, and a mount
point opened (made if missing) inside a root (`open_mount_point`). Used by the daemon's
cp helper and by the shim (mount targets). Must not: follow a symlink anywhere but inside
the root, use a path string outside a dir fd for anything it writes, or import more than
the standard library and the error tree (the cp helper process imports it and must
start fast; the shim stays small).

Why the kernel and not a userspace walk (as `shim.api.paths.secure_join` or
`images.saferoot` do): a running container can swap a directory for a symlink to `/`
between our lstat and our open (CVE-2018-15664, docker cp's). openat2 resolves the
whole path in one call with the root pinned, and fails with EAGAIN (retried here) when a
rename or mount raced the walk, so the answer is always a directory that was inside the
root. Everything after that is done relative to the fd it returns, never by name.
"""

from __future__ import annotations

import ctypes
import errno
import os

SYS_OPENAT2 = 437  # x86_64, arm64 and every other architecture (the unified syscall table)
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
#: How container paths are resolved: as chroot(2) would, without its escapes.
IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
#: openat2 answers EAGAIN when a rename or mount raced the lookup: try again this often.
RACE_RETRIES = 128

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc: ctypes.CDLL | None = None


def _syscall() -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    return _libc.syscall


def openat2(dir_fd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2); OSError with the errno on failure (EAGAIN races retried)."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    raw = os.fsencode(path or ".")
    call = _syscall()
    for _ in range(RACE_RETRIES):
        fd = call(
            ctypes.c_long(SYS_OPENAT2), ctypes.c_int(dir_fd), ctypes.c_char_p(raw),
            ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err in (errno.EAGAIN, errno.EINTR):
            continue
        raise OSError(err, os.strerror(err), path)
    raise OSError(errno.EAGAIN, "the path kept changing while it was resolved", path)


def clean_parts(path: str) -> tuple[str, ...] | None:
    """`path`'s components with `.` and `..` taken lexically; None when `..` climbs above
    the start. A leading `/` means the same as none (cp paths are relative to `/`)."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(part)
    return tuple(parts)


def split_last(path: str) -> tuple[str, str]:
    """(parent, last component) of a container path, docker's SplitPathDirEntry: the
    last component is "." for "dir/." and "/" for the root itself."""
    stripped = path.rstrip("/")
    if path.endswith("/.") or path == ".":
        return (path[:-1].rstrip("/") or "/"), "."
    if not stripped:
        return "/", "/"
    parent, _, last = stripped.rpartition("/")
    return (parent or "/"), last


def open_dir(root_fd: int, path: str) -> int:
    """The directory `path` names inside the root (every symlink followed, in the root)."""
    return openat2(root_fd, path.lstrip("/") or ".", DIR_FLAGS, IN_ROOT)


def open_path(root_fd: int, path: str) -> int:
    """An O_PATH fd of whatever `path` names in the root, a final symlink followed."""
    return openat2(root_fd, path.lstrip("/") or ".", os.O_PATH, IN_ROOT)


def make_dirs(root_fd: int, parts: tuple[str, ...], made: list[tuple[str, ...]],
              mode: int = 0o755) -> int:
    """Open the directory `parts` below the root fd, making each missing one (appended
    to `made`, as tar makes the parents an archive skips). Each component is resolved
    from the one before it in the root, so a symlink met on the way stays inside."""
    if not parts:
        return os.dup(root_fd)
    try:
        return open_dir(root_fd, "/".join(parts))
    except FileNotFoundError:
        pass
    # Some component is missing: walk down, making it (and those below) as we go.
    fd = os.dup(root_fd)
    try:
        for i in range(len(parts)):
            here = "/".join(parts[: i + 1])
            try:
                child = open_dir(root_fd, here)
            except FileNotFoundError:
                try:
                    os.mkdir(parts[i], mode, dir_fd=fd)
                    made.append(parts[: i + 1])
                except FileExistsError:
                    pass  # made meanwhile (or a dangling symlink: the open says which)
                child = open_dir(root_fd, here)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_mount_point(root_fd: int, path: str, is_dir: bool) -> int:
    """An O_PATH fd of the mount point `path` inside the root, made when missing (its
    parents as directories, itself a directory, or an empty file for a file's bind).

    Mount onto `/proc/self/fd/<fd>`, never onto the path string: another container that
    shares a volume mounted higher up could swap a directory for a symlink between a
    walk and the mount (runc's CVE-2021-30465). The fd is what was inside the root."""
    parts = clean_parts(path)
    if not parts:
        raise OSError(errno.EINVAL, "a mount point cannot be the root itself", path)
    rel = "/".join(parts)
    try:
        return open_path(root_fd, rel)
    except FileNotFoundError:
        pass
    made: list[tuple[str, ...]] = []
    parent = make_dirs(root_fd, parts[:-1], made)
    try:
        if is_dir:
            try:
                os.mkdir(parts[-1], 0o755, dir_fd=parent)
            except FileExistsError:
                pass  # made meanwhile, or a dangling symlink: the open below says which
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                os.close(os.open(parts[-1], flags, 0o644, dir_fd=parent))
            except FileExistsError:
                pass
    finally:
        os.close(parent)
    return open_path(root_fd, rel)


def fd_path(fd: int) -> str:
    """The magic link that names what `fd` is, for calls that take a path (mount(2))."""
    return f"/proc/self/fd/{fd}"
