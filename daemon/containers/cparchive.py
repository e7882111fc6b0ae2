"""`cp` out of a container: one path's stat, and the path as a tar, read through dir fds.

Owns: `stat_path` (docker's container path stat: the last component not followed unless
-L or a trailing `/`, everything before it resolved inside the root) and `write_archive`
(the tar docker's archive GET gives: a directory under its own name, or its contents as
`./...` for `dir/.`, a file under its name; symlinks stored as symlinks, hardlinks as
hardlinks, owners numeric). Must not: follow a symlink while walking (a container may swap
a directory for a symlink to `/` while we read: every open below the start is O_NOFOLLOW
relative to the directory fd above it), write anything, or import more than the standard
library and the error tree (it runs in the cp helper process).
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from dataclasses import dataclass
from typing import BinaryIO

from pallet.shim.api.inroot import DIR_FLAGS, IN_ROOT, open_dir, openat2, split_last
from pallet.v1.errors import InvalidArgument, NotFound

COPY_BUFFER = 1 << 20
#: A file at least this big has its content spliced into the pipe, not read and written.
SPLICE_FROM = 64 << 10
_NOFOLLOW_DIR = DIR_FLAGS | os.O_NOFOLLOW
_NOFOLLOW_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
#: Entries that vanish or change kind while a live tree is read are left out.
_GONE = (errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.ENXIO)


@dataclass(frozen=True, slots=True)
class PathInfo:
    """What docker's X-Docker-Container-Path-Stat carries."""

    name: str
    size: int
    mode: int  # st_mode: type and permission bits
    mtime_ns: int
    link_target: str = ""

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


@dataclass(slots=True)
class Source:
    """Where a resolved cp source is: `fd` a directory (the source itself when `is_dir`,
    else the directory holding `name`)."""

    info: PathInfo
    fd: int
    name: str  # the entry in `fd` (non-directories), "" for a directory
    arcname: str  # its name in the tar

    def close(self) -> None:
        os.close(self.fd)


def not_found(path: str, container: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {container}")


def _info(name: str, st: os.stat_result, link: str = "") -> PathInfo:
    return PathInfo(name, st.st_size, st.st_mode, st.st_mtime_ns, link)


def resolve_source(root_fd: int, path: str, container: str, follow: bool = False) -> Source:
    """Open the cp source `path` inside the root (see the module docstring's rules)."""
    parent, last = split_last(path)
    try:
        if last in (".", "/") or path.endswith("/"):
            # "dir/.", "/" and "dir/" assert a directory: a final symlink is followed.
            fd = open_dir(root_fd, path)
            st = os.fstat(fd)
            name = "." if last in (".", "/") else last
            return Source(_info(name, st), fd, "", name)
        parent_fd = open_dir(root_fd, parent)
        try:
            st = os.stat(last, dir_fd=parent_fd, follow_symlinks=False)
            link = os.readlink(last, dir_fd=parent_fd) if stat.S_ISLNK(st.st_mode) else ""
            if link and follow:
                # -L: what the link points at (in the root), under the link's name.
                target = openat2(root_fd, path.lstrip("/"), os.O_PATH, IN_ROOT)
                try:
                    st = os.fstat(target)
                    if stat.S_ISDIR(st.st_mode):
                        os.close(parent_fd)
                        parent_fd = -1
                        fd = openat2(root_fd, path.lstrip("/"), DIR_FLAGS, IN_ROOT)
                        return Source(_info(last, st), fd, "", last)
                finally:
                    os.close(target)
                # A file: archived from the directory holding the link's target.
                real_parent = _target_parent(root_fd, path)
                os.close(parent_fd)
                parent_fd = real_parent[0]
                return Source(_info(last, st), parent_fd, real_parent[1], last)
            if stat.S_ISDIR(st.st_mode):
                fd = os.open(last, _NOFOLLOW_DIR, dir_fd=parent_fd)
                os.close(parent_fd)
                parent_fd = -1
                return Source(_info(last, st), fd, "", last)
            return Source(_info(last, st, link), parent_fd, last, last)
        except BaseException:
            if parent_fd >= 0:
                os.close(parent_fd)
            raise
    except FileNotFoundError:
        raise not_found(path, container) from None
    except NotADirectoryError:
        raise InvalidArgument(
            f"{path} in container {container}: not a directory (a trailing / or /. names "
            "a directory)"
        ) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InvalidArgument(
                f"{path} in container {container}: too many levels of symbolic links"
            ) from None
        raise


def _target_parent(root_fd: int, path: str) -> tuple[int, str]:
    """The directory fd and name of the file a symlink chain at `path` ends at."""
    for _ in range(40):
        parent, last = split_last(path)
        fd = open_dir(root_fd, parent)
        try:
            st = os.stat(last, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISLNK(st.st_mode):
                return fd, last
            link = os.readlink(last, dir_fd=fd)
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        path = link if link.startswith("/") else f"{parent.rstrip('/')}/{link}"
    raise OSError(errno.ELOOP, "too many levels of symbolic links", path)


def stat_path(root_fd: int, path: str, container: str) -> PathInfo:
    source = resolve_source(root_fd, path, container)
    source.close()
    return source.info


class _TarOut:
    """The tar going to a pipe: headers and small files' content gathered into pieces of
    COPY_BUFFER, a larger file's content spliced from the file into the pipe (splice(2):
    no copy through Python)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buf = bytearray()
        self._splice = True

    def write(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) >= COPY_BUFFER:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            _write_all(self._fd, self._buf)
            self._buf.clear()

    def content(self, fd: int, size: int) -> None:
        """Exactly `size` bytes of the file `fd`: a live file that shrinks while it is
        read is padded with zeros, one that grows is cut at `size`."""
        left = size
        if size >= SPLICE_FROM and self._splice:
            self.flush()
            while left:
                try:
                    moved = os.splice(fd, self._fd, min(left, 1 << 30))
                except OSError as exc:
                    if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                        raise
                    self._splice = False  # not a pipe (a file, in tests): read below
                    break
                if not moved:
                    break
                left -= moved
        while left:
            data = os.read(fd, min(left, COPY_BUFFER))
            if not data:
                break
            self.write(data)
            left -= len(data)
        if left:
            self.write(bytes(left))  # shrunk meanwhile
        remainder = size % tarfile.BLOCKSIZE
        if remainder:
            self.write(tarfile.NUL * (tarfile.BLOCKSIZE - remainder))


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class ArchiveWriter:
    """Writes one source's tar to a file descriptor: tarfile's PAX headers
    (`TarInfo.tobuf`), the content and the end written here (tarfile's `addfile`
    copies each file through two buffers and keeps every member in a list)."""

    def __init__(self, out_fd: int) -> None:
        self._out = _TarOut(out_fd)
        self._links: dict[tuple[int, int], str] = {}
        self.size = 0

    def write(self, source: Source) -> None:
        if source.name:
            self._entry(source.fd, source.name, source.arcname)
        else:
            self._directory(source.fd, source.arcname, os.fstat(source.fd))
        # The end: two zero blocks (as Go's archive/tar, docker's, ends it).
        self._out.write(tarfile.NUL * (2 * tarfile.BLOCKSIZE))
        self._out.flush()

    def _add(self, info: tarfile.TarInfo) -> None:
        self._out.write(info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape"))

    def _header(self, arcname: str, st: os.stat_result) -> tarfile.TarInfo:
        info = tarfile.TarInfo(arcname)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        # Whole seconds, as docker's archives have them: a float costs every entry a pax
        # header of its own (written here, parsed again by the client).
        info.mtime = st.st_mtime_ns // 1_000_000_000
        return info

    def _entry(self, dir_fd: int, name: str, arcname: str) -> None:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                fd = os.open(name, _NOFOLLOW_DIR, dir_fd=dir_fd)
                try:
                    self._directory(fd, arcname, os.fstat(fd))
                finally:
                    os.close(fd)
            elif stat.S_ISREG(st.st_mode):
                self._regular(dir_fd, name, arcname, st)
            elif stat.S_ISLNK(st.st_mode):
                info = self._header(arcname, st)
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=dir_fd)
                self._add(info)
            elif stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                info = self._header(arcname, st)
                info.type = (tarfile.FIFOTYPE if stat.S_ISFIFO(st.st_mode)
                             else tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE)
                info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                self._add(info)
            # Sockets are left out, as docker leaves them.
        except OSError as exc:
            if exc.errno not in _GONE:
                raise

    def _regular(self, dir_fd: int, name: str, arcname: str, st: os.stat_result) -> None:
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self._links:
            info = self._header(arcname, st)
            info.type, info.linkname = tarfile.LNKTYPE, self._links[key]
            self._add(info)
            return
        fd = os.open(name, _NOFOLLOW_READ, dir_fd=dir_fd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return  # swapped for something else since the lstat
            info = self._header(arcname, st)
            info.size = st.st_size
            self._add(info)
            self._out.content(fd, st.st_size)
            self.size += st.st_size
        finally:
            os.close(fd)
        if st.st_nlink > 1:
            self._links[key] = arcname

    def _directory(self, fd: int, arcname: str, st: os.stat_result) -> None:
        info = self._header(arcname, st)
        info.type = tarfile.DIRTYPE
        self._add(info)
        for name in sorted(os.listdir(fd)):
            self._entry(fd, name, f"{arcname}/{name}")


def write_archive(source: Source, out: BinaryIO | int) -> int:
    """Write `source`'s tar to `out`; the bytes of file content written."""
    fd = out if isinstance(out, int) else out.fileno()
    writer = ArchiveWriter(fd)
    writer.write(source)
    return writer.size

