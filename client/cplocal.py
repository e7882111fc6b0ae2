"""The host's side of `pallet cp`: tars of local paths, and tars extracted into a local
directory without ever leaving it.

Owns: `tar_chunks` (a local file or tree as tar chunks, written on a thread, streamed)
and `extract_into` (a container's tar extracted below a destination directory the user
named). Must not: follow a symlink that came from the container: every entry's directory
is opened with openat2(2) RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS below the destination's fd,
and every name is created with no-follow calls, so a container's `x -> /etc` is written
as a symlink and nothing is ever written through it; `..` and absolute names that climb
out are refused, device nodes are refused (the host is not the container). Must not
import anything of the daemon.

Owners are the user running cp (docker's rule) unless `keep_owners` (cp -a, and only
where the user may chown); modes and mtimes are the tar's. Each file is written under a
temporary name and renamed into place when whole; when the copy fails (a full disk, a
refused entry, the daemon gone) what it created is removed again; a file is written unnamed
(O_TMPFILE) and linked in once whole, so even a kill -9 leaves no half-written file.
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import stat
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pallet.v1.errors import InvalidArgument, PalletError, ResourceExhausted

CHUNK = 1 << 20
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _beneath(dir_fd: int, path: str) -> int:
    """A directory below `dir_fd`, reached through no symlink at all (openat2 437)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    how = _OpenHow(_DIR, 0, _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS)
    for _ in range(64):
        fd = libc.syscall(ctypes.c_long(437), ctypes.c_int(dir_fd), ctypes.c_char_p(os.fsencode(path or ".")),
                          ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err not in (errno.EAGAIN, errno.EINTR):
            raise OSError(err, os.strerror(err), path)
    raise OSError(errno.EAGAIN, "the path kept changing", path)


def clean_parts(name: str) -> tuple[str, ...] | None:
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


# ---- local -> tar ---------------------------------------------------------------------------


def tar_chunks(path: str, arcname: str) -> Iterator[bytes]:
    """`path` (a symlink itself, not what it points at) as tar chunks, its top entry
    named `arcname` ("." for a directory's contents)."""
    read_fd, write_fd = os.pipe()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with os.fdopen(write_fd, "wb", buffering=CHUNK) as out, \
                    tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=CHUNK) as tar:
                tar.add(path, arcname=arcname, recursive=True)
        except BrokenPipeError:
            pass  # the reader stopped (the daemon refused the copy)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader
            errors.append(exc)

    writer = threading.Thread(target=write, name="cp-tar", daemon=True)
    writer.start()
    try:
        while data := os.read(read_fd, CHUNK):
            yield data
    finally:
        os.close(read_fd)
        writer.join()
    if errors:
        exc = errors[0]
        if isinstance(exc, OSError):
            raise InvalidArgument(f"cannot read {exc.filename or path}: {exc.strerror or exc}") from None
        raise exc


# ---- tar -> local ---------------------------------------------------------------------------


class _ChunkReader:
    """A file object over an iterator of byte chunks, for tarfile's stream mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buf += chunk
        if n < 0:
            data, self._buf = self._buf, b""
        else:
            data, self._buf = self._buf[:n], self._buf[n:]
        return data


@dataclass(slots=True)
class _Local:
    dest_fd: int
    keep_owners: bool
    rename: Callable[[str], str]
    token: str = field(default_factory=lambda: secrets.token_hex(4))
    serial: int = 0
    made: list[tuple[tuple[str, ...], str, bool]] = field(default_factory=list)
    dirs: list[tuple[tuple[str, ...], int, int]] = field(default_factory=list)
    size: int = 0

    def parent(self, parts: tuple[str, ...]) -> int:
        fd = os.dup(self.dest_fd)
        try:
            for i, part in enumerate(parts):
                try:
                    child = _beneath(fd, part)
                except FileNotFoundError:
                    os.mkdir(part, 0o755, dir_fd=fd)
                    self.made.append((parts[:i], part, True))
                    child = _beneath(fd, part)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def temp(self) -> str:
        self.serial += 1
        return f".pallet-cp-{self.token}-{self.serial}"

    def owner(self, fd_or_name: int | str, member: tarfile.TarInfo, dir_fd: int | None = None) -> None:
        if not self.keep_owners:
            return
        try:
            if isinstance(fd_or_name, int):
                os.fchown(fd_or_name, member.uid, member.gid)
            else:
                os.chown(fd_or_name, member.uid, member.gid, dir_fd=dir_fd, follow_symlinks=False)
        except PermissionError:
            pass  # not root: the files are the user's, as without -a

    def member(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = clean_parts(self.rename(member.name))
        if parts is None:
            raise InvalidArgument(f"archive entry {member.name!r} climbs out of the destination with '..'")
        if not parts:
            return  # the destination itself: left as it is
        if member.ischr() or member.isblk():
            raise InvalidArgument(f"archive entry {member.name!r} is a device node: cp does not make device nodes on the host")
        parent = self.parent(parts[:-1])
        try:
            self._create(archive, member, parent, parts)
        finally:
            os.close(parent)

    def _create(self, archive: tarfile.TarFile, member: tarfile.TarInfo, parent: int,
                parts: tuple[str, ...]) -> None:
        base = parts[-1]
        try:
            existing: os.stat_result | None = os.stat(base, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        is_dir = existing is not None and stat.S_ISDIR(existing.st_mode)
        if existing is not None and is_dir != member.isdir():
            kind = "directory" if is_dir else "non-directory"
            raise InvalidArgument(f"cannot overwrite {kind} {'/'.join(parts)!r} with "
                                  f"{'a directory' if member.isdir() else 'a non-directory'}")
        mtime = int(member.mtime * 1e9)
        if member.isdir():
            if existing is None:
                os.mkdir(base, 0o700, dir_fd=parent)
                self.made.append((parts[:-1], base, True))
            self.owner(base, member, parent)
            self.dirs.append((parts, stat.S_IMODE(member.mode), mtime))
            return
        tmp = self.temp()
        try:
            if member.isreg():
                fd, named = _new_file(parent, tmp)
                try:
                    source = archive.extractfile(member)
                    while source is not None and (chunk := source.read(CHUNK)):
                        view = memoryview(chunk)
                        while view:
                            view = view[os.write(fd, view):]
                    self.owner(fd, member)
                    os.fchmod(fd, stat.S_IMODE(member.mode))
                    os.utime(fd, ns=(mtime, mtime))
                    if not named:  # whole now: given its temporary name
                        os.link(f"/proc/self/fd/{fd}", tmp, dst_dir_fd=parent, follow_symlinks=True)
                finally:
                    os.close(fd)
                self.size += member.size
            elif member.issym():
                os.symlink(member.linkname, tmp, dir_fd=parent)
                self.owner(tmp, member, parent)
                os.utime(tmp, ns=(mtime, mtime), dir_fd=parent, follow_symlinks=False)
            elif member.islnk():
                target = clean_parts(self.rename(member.linkname))
                if not target:
                    raise InvalidArgument(f"archive entry {member.name!r} is a hardlink out of the destination")
                target_dir = self.parent(target[:-1])
                try:
                    os.link(target[-1], tmp, src_dir_fd=target_dir, dst_dir_fd=parent, follow_symlinks=False)
                finally:
                    os.close(target_dir)
            elif member.isfifo():
                os.mkfifo(tmp, stat.S_IMODE(member.mode), dir_fd=parent)
                self.owner(tmp, member, parent)
            else:
                raise InvalidArgument(f"archive entry {member.name!r} has unsupported tar type {member.type!r}")
            os.rename(tmp, base, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=parent)
            except OSError:
                pass
            raise
        if existing is None:
            self.made.append((parts[:-1], base, False))

    def finish(self) -> None:
        for parts, mode, mtime in sorted(self.dirs, key=lambda d: len(d[0]), reverse=True):
            try:
                fd = _beneath(self.dest_fd, "/".join(parts))
            except OSError:
                continue
            try:
                os.fchmod(fd, mode)
                os.utime(fd, ns=(mtime, mtime))
            finally:
                os.close(fd)

    def rollback(self) -> None:
        for parent_parts, name, is_dir in reversed(self.made):
            try:
                fd = _beneath(self.dest_fd, "/".join(parent_parts))
            except OSError:
                continue
            try:
                (os.rmdir if is_dir else os.unlink)(name, dir_fd=fd)
            except OSError:
                pass
            finally:
                os.close(fd)


def _new_file(parent: int, name: str) -> tuple[int, bool]:
    """An unnamed file (O_TMPFILE) where the filesystem has them, so a cp killed mid-file
    leaves nothing half-written; else `name` itself. Whether it is named yet."""
    try:
        return os.open(".", os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC, 0o600, dir_fd=parent), False
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise
    return os.open(name, _NEW_FILE, 0o600, dir_fd=parent), True


def rebaser(old: str, new: str) -> Callable[[str], str]:
    """Entry names with the first component `old` renamed to `new` (docker's
    RebaseArchiveEntries); the identity when they are the same."""
    old, new = old.strip("/"), new.strip("/")
    if old == new:
        return lambda name: name

    def rename(name: str) -> str:
        stripped = name.lstrip("/")
        if old == ".":
            rest = stripped[1:] if stripped.startswith(".") and stripped[1:2] in ("", "/") else "/" + stripped
            return new + rest
        if stripped == old or stripped.startswith(old + "/"):
            return new + stripped[len(old):]
        return name

    return rename


def extract_into(chunks: Iterator[bytes], dest_dir: str, rename: Callable[[str], str],
                 keep_owners: bool) -> int:
    """Extract the tar `chunks` below the existing directory `dest_dir`; bytes written."""
    dest_fd = os.open(dest_dir, _DIR)
    local = _Local(dest_fd, keep_owners, rename)
    try:
        try:
            with tarfile.open(fileobj=_ChunkReader(chunks), mode="r|") as archive:  # type: ignore[call-overload]
                for member in archive:
                    local.member(archive, member)
            local.finish()
        except BaseException as exc:
            local.rollback()
            if isinstance(exc, OSError):
                raise _local_error(exc, dest_dir) from None
            if isinstance(exc, tarfile.TarError):
                raise InvalidArgument(f"the archive from the daemon is damaged: {exc}") from None
            raise
    finally:
        os.close(dest_fd)
    return local.size


def _local_error(exc: OSError, dest: str) -> PalletError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ResourceExhausted(f"copying to {dest}: no space left on the device; nothing was copied")
    if exc.errno in (errno.ELOOP, errno.EXDEV):
        return InvalidArgument(
            f"copying to {dest}: refusing to write through the symlink {exc.filename!r}"
        )
    return InvalidArgument(f"copying to {dest}: {exc.filename or ''}: {exc.strerror or exc}")
