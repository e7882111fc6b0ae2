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

import contextlib
import ctypes
import errno
import os
import queue
import secrets
import stat
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pallet.v1.errors import InvalidArgument, PalletError, ResourceExhausted

#: tarfile's header errors (HeaderError's subclasses, not in its stubs): a zero block
#: (the end), a header that does not parse, one whose extended header's next does not.
_EOF_HEADER: type[Exception] = getattr(tarfile, "EOFHeaderError")
_BAD_HEADER: tuple[type[Exception], ...] = tuple(
    getattr(tarfile, n) for n in ("InvalidHeaderError", "EmptyHeaderError", "TruncatedHeaderError")
)
_BAD_NEXT_HEADER: type[Exception] = getattr(tarfile, "SubsequentHeaderError")
#: The size of a tar piece: one gRPC message (the channel allows 64 MiB), one read.
CHUNK = 4 << 20
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_BENEATH_HOW = _OpenHow(_DIR, 0, _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS)


def _beneath(dir_fd: int, path: str) -> int:
    """A directory below `dir_fd`, reached through no symlink at all (openat2 437)."""
    how = _BENEATH_HOW
    for _ in range(64):
        fd = _libc.syscall(ctypes.c_long(437), ctypes.c_int(dir_fd), ctypes.c_char_p(os.fsencode(path or ".")),
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


class ChunkSink:
    """The file object a tar is written to on its own thread (cp's, a build context's):
    writes gathered into pieces of CHUNK (multi-MiB gRPC messages, not one per 64 KiB pipe
    read) handed over a small queue, so at most a few pieces are in memory; a file's
    content read in CHUNK pieces goes on as it is, uncopied."""

    def __init__(self) -> None:
        self.pieces: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self.stopped = threading.Event()
        self._buf = bytearray()
        self._pos = 0

    def tell(self) -> int:
        return self._pos

    def write(self, data: bytes) -> int:
        size = len(data)
        self._pos += size
        if size >= CHUNK and not self._buf:
            self._put(bytes(data))
            return size
        self._buf += data
        if len(self._buf) >= CHUNK:
            self.flush()
        return size

    def flush(self) -> None:
        if self._buf:
            self._put(bytes(self._buf))
            self._buf.clear()

    def _put(self, piece: bytes | None) -> None:
        while True:
            if self.stopped.is_set():
                raise BrokenPipeError(errno.EPIPE, "the reader stopped")
            try:
                self.pieces.put(piece, timeout=0.2)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        self._put(None)


def _whole_seconds(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """mtimes in whole seconds, as docker's archives have them: a float mtime costs every
    entry a pax header of its own (written here, parsed again in the container)."""
    info.mtime = int(info.mtime)
    return info


def tar_chunks(path: str, arcname: str) -> Iterator[bytes]:
    """`path` (a symlink itself, not what it points at) as tar chunks, its top entry
    named `arcname` ("." for a directory's contents)."""
    sink = ChunkSink()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            # Not "w|": tarfile's stream mode re-buffers every write in 10 KiB records.
            with tarfile.TarFile(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT,  # type: ignore[arg-type]
                                 copybufsize=CHUNK) as tar:
                tar.add(path, arcname=arcname, recursive=True, filter=_whole_seconds)
            sink.flush()
        except BrokenPipeError:
            pass  # the reader stopped (the daemon refused the copy)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader
            errors.append(exc)
        finally:
            if not sink.stopped.is_set():
                with contextlib.suppress(BrokenPipeError):
                    sink.close()

    writer = threading.Thread(target=write, name="cp-tar", daemon=True)
    writer.start()
    try:
        while (piece := sink.pieces.get()) is not None:
            yield piece
    finally:
        sink.stopped.set()
        writer.join()
    if errors:
        exc = errors[0]
        if isinstance(exc, OSError):
            raise InvalidArgument(f"cannot read {exc.filename or path}: {exc.strerror or exc}") from None
        raise exc


# ---- tar -> local ---------------------------------------------------------------------------


class _TarChunks:
    """The entries of a tar arriving as chunks (tarfile.TarInfo, headers parsed by
    tarfile's own `TarInfo.fromtarfile`), a file's content written from the chunks as
    they are. tarfile's stream mode copied each byte through three buffers, and its
    record buffer whole on every header read."""

    # What TarInfo.fromtarfile reads of the TarFile it is given.
    encoding = tarfile.ENCODING
    errors = "surrogateescape"

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._chunk = memoryview(b"")
        self._pos = 0  # what of _chunk is consumed
        self._consumed = 0  # the stream position of _chunk[_pos]
        self.fileobj = self  # fromtarfile reads headers through `fileobj`
        self.offset = 0  # tarfile's: where the next header starts (fromtarfile sets it)
        self.pax_headers: dict[str, str] = {}

    def tell(self) -> int:
        return self._consumed

    def _next_chunk(self) -> bool:
        chunk = next(self._chunks, None)
        if chunk is None:
            return False
        self._chunk, self._pos = memoryview(chunk), 0
        return True

    def _take(self, n: int) -> memoryview:
        """Up to `n` bytes of the current chunk (a next one when it is used up); empty
        at the end."""
        while self._pos >= len(self._chunk):
            if not self._next_chunk():
                return memoryview(b"")
        piece = self._chunk[self._pos:self._pos + n]
        self._pos += len(piece)
        self._consumed += len(piece)
        return piece

    def read(self, n: int) -> bytes:
        """`n` bytes, fewer only at the end of the stream."""
        first = self._take(n)
        if len(first) == n or not first:
            return bytes(first)
        parts = [bytes(first)]
        got = len(first)
        while got < n and (piece := self._take(n - got)):
            parts.append(bytes(piece))
            got += len(piece)
        return b"".join(parts)

    def __iter__(self) -> Iterator[tarfile.TarInfo]:
        first = True
        while True:
            self._skip_to(self.offset)
            try:
                member = tarfile.TarInfo.fromtarfile(self)  # type: ignore[arg-type]
            except _EOF_HEADER:
                return
            except _BAD_HEADER as exc:
                if first:
                    raise tarfile.ReadError(str(exc) or "empty file") from None
                return  # tarfile's rule: what follows is not the archive's
            except _BAD_NEXT_HEADER as exc:
                raise tarfile.ReadError(str(exc)) from None
            first = False
            yield member

    def copy_to(self, fd: int, size: int) -> None:
        """Write the current entry's `size` bytes of content to `fd`."""
        while size:
            piece = self._take(min(size, CHUNK))
            if not piece:
                raise tarfile.ReadError("unexpected end of data")
            size -= len(piece)
            while piece:
                piece = piece[os.write(fd, piece):]

    def _skip_to(self, offset: int) -> None:
        while self._consumed < offset:
            if not self._take(offset - self._consumed):
                raise tarfile.ReadError("unexpected end of data")


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
    #: The directory the last regular file went into (a tree's files come dir by dir).
    cached: tuple[tuple[str, ...], int] | None = None

    def close_cached(self) -> None:
        if self.cached is not None:
            os.close(self.cached[1])
            self.cached = None

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

    def member(self, archive: _TarChunks, member: tarfile.TarInfo) -> None:
        parts = clean_parts(self.rename(member.name))
        if parts is None:
            raise InvalidArgument(f"archive entry {member.name!r} climbs out of the destination with '..'")
        if not parts:
            return  # the destination itself: left as it is
        if member.ischr() or member.isblk():
            raise InvalidArgument(f"archive entry {member.name!r} is a device node: cp does not make device nodes on the host")
        if self.cached is None or self.cached[0] != parts[:-1]:
            self.close_cached()
            self.cached = (parts[:-1], self.parent(parts[:-1]))
        self._create(archive, member, self.cached[1], parts)
        if not member.isreg():
            self.close_cached()  # what it made may stand where a cached path went

    def _create(self, archive: _TarChunks, member: tarfile.TarInfo, parent: int,
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
                mode = stat.S_IMODE(member.mode)
                fd, named = _new_file(parent, tmp, mode & 0o777)
                placed = False
                try:
                    archive.copy_to(fd, member.size)
                    self.owner(fd, member)
                    # After the owner (chown clears setuid); made with its mode already
                    # unless the umask or a setuid/setgid/sticky bit says otherwise.
                    if self.keep_owners or stat.S_IMODE(os.fstat(fd).st_mode) != mode:
                        os.fchmod(fd, mode)
                    os.utime(fd, ns=(mtime, mtime))
                    if not named:  # whole now: given its name (a free one: linkat
                        # never replaces), else its temporary name, renamed below
                        placed = existing is None and _link_new(fd, parent, base)
                        if not placed:
                            os.link(f"/proc/self/fd/{fd}", tmp, dst_dir_fd=parent, follow_symlinks=True)
                finally:
                    os.close(fd)
                self.size += member.size
                if placed:
                    self.made.append((parts[:-1], base, False))
                    return
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


def _new_file(parent: int, name: str, mode: int) -> tuple[int, bool]:
    """An unnamed file (O_TMPFILE, made with `mode`) where the filesystem has them, so a
    cp killed mid-file leaves nothing half-written; else `name` itself (0600 until it is
    whole). Whether it is named yet."""
    try:
        return os.open(".", os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC, mode, dir_fd=parent), False
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise
    return os.open(name, _NEW_FILE, 0o600, dir_fd=parent), True


def _link_new(fd: int, parent: int, name: str) -> bool:
    """Link the whole unnamed file at `name`; False when a name is there by now."""
    try:
        os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=parent, follow_symlinks=True)
    except FileExistsError:
        return False
    return True


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
            archive = _TarChunks(chunks)
            for member in archive:
                local.member(archive, member)
            local.close_cached()
            local.finish()
        except BaseException as exc:
            local.close_cached()
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
