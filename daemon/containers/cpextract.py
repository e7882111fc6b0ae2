"""`cp` into a container: a tar extracted below a directory of its root, or nothing at all.

Owns: `Extractor`, which checks the extraction point (an existing directory, writable),
then creates each entry through directory fds resolved inside the root (`inroot`), and
`rollback`, which removes what this copy created when it fails. Must not: write outside
the root, follow a symlink it did not resolve inside the root, create device nodes, or
import more than the standard library and the error tree (it runs in the cp helper).

The rules, docker's where docker has one:
* names are relative to the extraction point; a leading `/` is dropped, a `..` that
  climbs above it refuses the archive (docker's "breakout"), and so does a hardlink to
  outside it. A symlink met on the way (one already in the container, or one the archive
  made) is followed inside the container's root, as docker's chrooted untar follows it;
* owners are 0:0 (the container's root) unless `copy_uid_gid` (cp -a): then the tar's;
  modes (setuid included) and mtimes are the tar's; xattrs are not copied;
* device nodes are refused: a container gets /dev from the runtime, and a node made in its
  writable layer would outlive that (docker allows them as root; pallet does not);
* with `no_overwrite_dir_non_dir` a directory is never replaced by a non-directory nor
  the other way round; an existing directory named by a directory entry is kept, its
  metadata set from the entry (except the extraction point itself, `.`).

Nothing half-written: each file is written unnamed (O_TMPFILE, where the filesystem has
it: overlayfs since Linux 6.6, tmpfs, ext4, xfs) and linked once whole: straight at its
name when that is free (linkat never replaces a name), else under a temporary name renamed
onto it; symlinks, hardlinks and FIFOs are made under a temporary name and renamed, so a
name holds the old thing or the new one, and a helper killed mid-file leaves nothing
half-written (at most a whole file under a `.pallet-cp-` name, between its link and its
rename). When the copy fails (a full disk, a bad entry, an upload cut short) what it
created is removed, deepest first; a file it had already replaced keeps its new content
(undoing that would need a copy of the old one, which docker does not keep either).
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import tarfile
from dataclasses import dataclass, field
from typing import IO

from pallet.daemon.containers.cptar import TarReader
from pallet.shim.api.inroot import DIR_FLAGS, clean_parts, make_dirs, open_dir
from pallet.v1.errors import FailedPrecondition, InvalidArgument, NotFound, PalletError, ResourceExhausted

MAX_EXTENDED_HEADER = 1 << 20
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_EXTENDED = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
             tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)


def bounded_tarinfo(what: str) -> type[tarfile.TarInfo]:
    """A TarInfo class for `TarReader` that refuses a pax or GNU long-name header past
    MAX_EXTENDED_HEADER (tarfile reads one whole into memory); `what` names the tar in
    the error ("the archive", "the build context")."""

    class Bounded(tarfile.TarInfo):
        def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
            if self.type in _EXTENDED and self.size > MAX_EXTENDED_HEADER:
                raise InvalidArgument(
                    f"{what} has a {self.size}-byte extended tar header: refusing to read it"
                )
            result: tarfile.TarInfo = super()._proc_member(tarfile_)  # type: ignore[misc]
            return result

    return Bounded


_BoundedTarInfo = bounded_tarinfo("the archive")


@dataclass(frozen=True, slots=True)
class ExtractOptions:
    copy_uid_gid: bool = False
    no_overwrite_dir_non_dir: bool = True


@dataclass(slots=True)
class _Made:
    """Something this copy created: (the directory holding it, its name, its inode)."""

    parent: tuple[str, ...]
    name: str
    ino: int
    is_dir: bool


@dataclass(slots=True)
class Extracted:
    entries: int = 0
    size: int = 0
    made: list[_Made] = field(default_factory=list)


class Extractor:
    """Extracts tars below `dest` in the root `root_fd`; `container` names it in errors."""

    def __init__(self, root_fd: int, dest: str, container: str, options: ExtractOptions) -> None:
        self._root = root_fd
        self._container = container
        self._options = options
        self._dest = dest
        self.result = Extracted()
        self._token = secrets.token_hex(4)
        self._serial = 0
        self._dirs: list[tuple[tuple[str, ...], int, int]] = []  # deferred mode, mtime
        self._base: tuple[str, ...] = ()
        self._cached: tuple[tuple[str, ...], int] | None = None
        # The helper runs as root; unprivileged (unit tests) owners are the caller's.
        self._privileged = os.geteuid() == 0

    # ---- the extraction point --------------------------------------------------------

    def check_destination(self) -> None:
        """The extraction point must be a directory on a writable mount (docker's rule)."""
        try:
            fd = open_dir(self._root, self._dest)
        except FileNotFoundError:
            raise NotFound(f"Could not find the file {self._dest} in container {self._container}") from None
        except NotADirectoryError:
            raise InvalidArgument(
                f"extraction point is not a directory: {self._dest} in container {self._container}"
            ) from None
        try:
            if os.fstatvfs(fd).f_flag & os.ST_RDONLY:
                raise FailedPrecondition(
                    f"{self._dest} in container {self._container} is on a read-only mount "
                    "(a :ro volume or bind): copy somewhere writable"
                )
        finally:
            os.close(fd)
        # Entries are resolved from the root through the extraction point's path, so a
        # symlink inside the archive's tree is followed in the container's root.
        self._base = clean_parts(self._dest) or ()

    # ---- entries ---------------------------------------------------------------------

    def extract(self, stream: IO[bytes]) -> Extracted:
        """Extract the tar `stream` holds; a raw pipe (io.FileIO) is read through its
        descriptor (`cptar.TarReader`)."""
        archive = TarReader(stream, _BoundedTarInfo)
        try:
            for member in archive:
                self._member(archive, member)
            archive.drain()
        except tarfile.ReadError as exc:
            raise InvalidArgument(f"not a valid tar archive: {exc}") from None
        except (tarfile.TarError, EOFError) as exc:
            raise InvalidArgument(f"the tar archive is truncated or corrupt: {exc}") from None
        self._close_cached()
        self._apply_directory_metadata()
        return self.result

    def _member(self, archive: TarReader, member: tarfile.TarInfo) -> None:
        parts = clean_parts(member.name)
        if parts is None:
            raise InvalidArgument(
                f"archive entry {member.name!r} climbs out of the extraction point with '..'"
            )
        self.result.entries += 1
        try:
            if not parts:
                if not member.isdir():
                    raise InvalidArgument(
                        f"archive entry {member.name!r} names the extraction point but is not a directory"
                    )
                return  # the extraction point itself: docker leaves it as it is
            self._create(archive, member, parts)
        except PalletError:
            raise
        except (OverflowError, ValueError) as exc:
            raise InvalidArgument(f"archive entry {member.name!r} has invalid metadata: {exc}") from None
        except OSError as exc:
            raise self._os_error(member.name, exc) from exc

    def _os_error(self, entry: str, exc: OSError) -> PalletError:
        where = f"copying {entry!r} into container {self._container}"
        if exc.errno in FULL_ERRNOS:
            return ResourceExhausted(f"{where}: no space left on the device; nothing was copied")
        if exc.errno == errno.EROFS:
            return FailedPrecondition(f"{where}: a read-only mount (a :ro volume or bind)")
        if exc.errno in (errno.ENOTDIR, errno.ELOOP, errno.EEXIST):
            return InvalidArgument(f"{where}: {exc.strerror}")
        return FailedPrecondition(f"{where}: {exc.strerror or exc}")

    def _parent(self, parts: tuple[str, ...]) -> int:
        """A dir fd of the directory holding the entry `parts` (made when missing); it
        stays this object's (the cache's), valid until `_close_cached`."""
        if self._cached is not None and self._cached[0] == parts[:-1]:
            return self._cached[1]
        self._close_cached()
        made: list[tuple[str, ...]] = []
        full = (*self._base, *parts[:-1])
        fd = make_dirs(self._root, full, made)
        for path in made:  # rollback removes a directory only when it is empty again
            self.result.made.append(_Made(path[:-1], path[-1], 0, True))
        self._cached = (parts[:-1], fd)
        return fd

    def _close_cached(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None

    def _owner(self, member: tarfile.TarInfo) -> tuple[int, int]:
        if not self._privileged:
            return (-1, -1)  # chown's "leave it"
        return (member.uid, member.gid) if self._options.copy_uid_gid else (0, 0)

    def _create(self, archive: TarReader, member: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        if member.ischr() or member.isblk():
            raise InvalidArgument(
                f"archive entry {member.name!r} is a device node: cp does not create device "
                "nodes in a container (it gets /dev from the runtime)"
            )
        if member.issparse():  # its stored bytes are not its content: copied as is, they would be wrong
            raise InvalidArgument(f"archive entry {member.name!r} is a sparse file entry, which cp does not "
                                  "read: make the tar without --sparse")
        if not (member.isdir() or member.isreg() or member.issym() or member.islnk() or member.isfifo()):
            raise InvalidArgument(f"archive entry {member.name!r} has unsupported tar type {member.type!r}")
        parent = self._parent(parts)  # the cache's: not closed here
        base = parts[-1]
        existing = _lstat(parent, base)
        if existing is not None:
            self._check_replace(member, existing)
        if member.isdir():
            self._directory(member, parent, parts, existing)
            return
        if member.isreg():
            tmp = self._regular(archive, member, parent, parts, existing)
            if not tmp:
                return  # in place already
        elif member.issym():
            tmp = self._temp_name()
            os.symlink(member.linkname, tmp, dir_fd=parent)
            self._finish(parent, tmp, member)
        elif member.islnk():
            tmp = self._hardlink(member, parent)
        else:
            tmp = self._temp_name()
            os.mkfifo(tmp, 0o600, dir_fd=parent)
            self._finish(parent, tmp, member)
        self._place(parent, tmp, parts, existing)
        if not (member.isreg() or member.islnk()):
            self._close_cached()  # a symlink may now stand where a cached path went

    def _check_replace(self, member: tarfile.TarInfo, existing: os.stat_result) -> None:
        if not self._options.no_overwrite_dir_non_dir:
            return
        is_dir = stat.S_ISDIR(existing.st_mode)
        if is_dir and not member.isdir():
            raise InvalidArgument(
                f"cannot overwrite directory {member.name!r} with non-directory in container "
                f"{self._container}"
            )
        if not is_dir and member.isdir():
            raise InvalidArgument(
                f"cannot overwrite non-directory {member.name!r} with directory in container "
                f"{self._container}"
            )

    def _temp_name(self) -> str:
        self._serial += 1
        return f".pallet-cp-{self._token}-{self._serial}"

    def _directory(self, member: tarfile.TarInfo, parent: int, parts: tuple[str, ...],
                   existing: os.stat_result | None) -> None:
        base = parts[-1]
        if existing is not None and not stat.S_ISDIR(existing.st_mode):
            os.unlink(base, dir_fd=parent)
            existing = None
        if existing is None:
            os.mkdir(base, 0o700, dir_fd=parent)
            ino = os.stat(base, dir_fd=parent, follow_symlinks=False).st_ino
            self.result.made.append(_Made((*self._base, *parts[:-1]), base, ino, True))
        fd = os.open(base, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent)
        try:
            os.fchown(fd, *self._owner(member))
        finally:
            os.close(fd)
        self._dirs.append(((*self._base, *parts), stat.S_IMODE(member.mode), _mtime_ns(member)))
        self._close_cached()

    def _regular(self, archive: TarReader, member: tarfile.TarInfo, parent: int,
                 parts: tuple[str, ...], existing: os.stat_result | None) -> str:
        """Write the file; "" when it is in place under its name already (a new name:
        linked there once whole), else its temporary name, for `_place`."""
        tmp = self._temp_name()
        mode = stat.S_IMODE(member.mode)
        fd, named = _new_file(parent, tmp, mode & 0o777)
        placed = ""
        try:
            try:
                archive.copy_to(fd, member.size)
                st = os.fstat(fd)
                uid, gid = self._owner(member)
                chowned = (uid != -1 and uid != st.st_uid) or (gid != -1 and gid != st.st_gid)
                if chowned:
                    os.fchown(fd, uid, gid)
                # Owner before mode: chown clears setuid and setgid.
                if chowned or stat.S_IMODE(st.st_mode) != mode:
                    os.fchmod(fd, mode)
                os.utime(fd, ns=(_mtime_ns(member), _mtime_ns(member)))
                if not named:  # whole now: given its name
                    if existing is None:
                        placed = self._link_new(fd, parent, parts[-1])
                    if not placed:
                        os.link(f"/proc/self/fd/{fd}", tmp, dst_dir_fd=parent, follow_symlinks=True)
            finally:
                os.close(fd)
        except BaseException:
            if placed:
                _unlink_quietly(parent, placed)
            _unlink_quietly(parent, tmp)
            raise
        self.result.size += member.size
        if placed:
            self.result.made.append(_Made((*self._base, *parts[:-1]), placed, st.st_ino, False))
            return ""
        return tmp

    @staticmethod
    def _link_new(fd: int, parent: int, base: str) -> str:
        """Link the whole unnamed file at the name `base`, which was free: linkat never
        replaces a name, so nothing is lost if the container made one meanwhile (then
        "", and the temporary name and a rename, as for a name that exists)."""
        try:
            os.link(f"/proc/self/fd/{fd}", base, dst_dir_fd=parent, follow_symlinks=True)
        except FileExistsError:
            return ""
        return base

    def _hardlink(self, member: tarfile.TarInfo, parent: int) -> str:
        target = clean_parts(member.linkname)
        if not target:
            raise InvalidArgument(
                f"archive entry {member.name!r} is a hardlink to {member.linkname!r}, which is "
                "outside the extraction point"
            )
        full = (*self._base, *target)
        try:
            target_dir = open_dir(self._root, "/".join(full[:-1]))
        except FileNotFoundError:
            target_dir = -1
        try:
            st = _lstat(target_dir, full[-1]) if target_dir >= 0 else None
            if st is None:
                raise InvalidArgument(
                    f"archive entry {member.name!r} is a hardlink to {member.linkname!r}, "
                    "which is not earlier in the archive"
                )
            if stat.S_ISDIR(st.st_mode):
                raise InvalidArgument(f"archive entry {member.name!r} is a hardlink to a directory")
            tmp = self._temp_name()
            os.link(full[-1], tmp, src_dir_fd=target_dir, dst_dir_fd=parent, follow_symlinks=False)
        finally:
            if target_dir >= 0:
                os.close(target_dir)
        return tmp

    def _finish(self, parent: int, tmp: str, member: tarfile.TarInfo) -> None:
        try:
            os.chown(tmp, *self._owner(member), dir_fd=parent, follow_symlinks=False)
            if member.isfifo():
                # By fd: a running container could have swapped the name for a symlink,
                # and chmod by name follows one (from the host's root).
                fd = os.open(tmp, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=parent)
                try:
                    os.fchmod(fd, stat.S_IMODE(member.mode))
                finally:
                    os.close(fd)
            os.utime(tmp, ns=(_mtime_ns(member), _mtime_ns(member)), dir_fd=parent,
                     follow_symlinks=False)
        except BaseException:
            _unlink_quietly(parent, tmp)
            raise

    def _place(self, parent: int, tmp: str, parts: tuple[str, ...],
               existing: os.stat_result | None) -> None:
        base = parts[-1]
        try:
            if existing is not None and stat.S_ISDIR(existing.st_mode):
                _remove_tree(parent, base)  # allowed: no_overwrite_dir_non_dir is off
                existing = None
            os.rename(tmp, base, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            _unlink_quietly(parent, tmp)
            raise
        if existing is None:
            ino = os.stat(base, dir_fd=parent, follow_symlinks=False).st_ino
            self.result.made.append(_Made((*self._base, *parts[:-1]), base, ino, False))

    def _apply_directory_metadata(self) -> None:
        # Deepest first: a read-only parent is set only once its children are in.
        for path, mode, mtime in sorted(self._dirs, key=lambda d: len(d[0]), reverse=True):
            try:
                fd = open_dir(self._root, "/".join(path))
            except OSError:
                continue  # replaced later in the archive
            try:
                os.fchmod(fd, mode)
                os.utime(fd, ns=(mtime, mtime))
            finally:
                os.close(fd)

    # ---- undo --------------------------------------------------------------------------

    def rollback(self) -> None:
        """Remove what this copy created, last first (a name that now holds something
        else, or a directory the container filled meanwhile, is left)."""
        self._close_cached()
        for made in reversed(self.result.made):
            try:
                fd = open_dir(self._root, "/".join(made.parent))
            except OSError:
                continue
            try:
                st = _lstat(fd, made.name)
                if st is None or (made.ino and st.st_ino != made.ino):
                    continue
                if made.is_dir:
                    os.rmdir(made.name, dir_fd=fd)
                else:
                    os.unlink(made.name, dir_fd=fd)
            except OSError:
                pass
            finally:
                os.close(fd)
        self.result.made.clear()


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _new_file(parent: int, name: str, mode: int) -> tuple[int, bool]:
    """A file to write one entry into, and whether it has `name` yet: an unnamed O_TMPFILE
    where the filesystem has them, so a helper killed mid-file (kill -9) leaves no
    half-written file behind, only the kernel's freed inode; else `name` itself."""
    try:
        # Unnamed, so made with its mode at once (a named one stays 0600 until whole).
        return os.open(".", os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC, mode, dir_fd=parent), False
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise
    return os.open(name, _NEW_FILE, 0o600, dir_fd=parent), True


def _unlink_quietly(dir_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def _remove_tree(dir_fd: int, name: str) -> None:
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    fd = os.open(name, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dir_fd)
    try:
        for entry in os.listdir(fd):
            _remove_tree(fd, entry)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


def _mtime_ns(member: tarfile.TarInfo) -> int:
    return int(member.mtime * 1_000_000_000)
