"""A build context's tar extracted into an empty directory, trusting nothing in it.

Owns: `extract_context`, which reads an uploaded context tar (headers parsed by tarfile
itself through `containers.cptar.TarReader`, files' content spliced from a pipe) and
creates each entry below the context directory. Must not: follow any symlink while it
extracts, write outside the directory, create device nodes, or know where the directory
lives (`contextdir` does) or what a Dockerfile is (the builder does).

The rules (stricter than cp's, since a context is data, not a container's tree):
* names are relative: an absolute name or a `..` that climbs out refuses the context;
* every directory on the way to an entry is opened with openat2(2) RESOLVE_BENEATH |
  RESOLVE_NO_SYMLINKS below the context's fd, so an entry below a symlink (one the
  context itself made: `x -> /etc`, then `x/passwd`) refuses the context instead of
  writing through it; symlinks themselves are kept as they are, whatever they point at
  (the builder resolves them inside the context when it copies);
* directories, regular files, symlinks, hardlinks (to an earlier file of the context)
  and FIFOs only: device nodes and anything else are refused;
* modes (setuid included) and mtimes are the tar's; owners are palletd's (docker's
  client sends 0:0 for every entry anyway), xattrs are not kept;
* a later entry of the same name replaces an earlier non-directory (tar's rule); a
  directory is never replaced.
Nothing is rolled back here: the caller removes the whole directory when this fails.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from dataclasses import dataclass
from typing import IO

from pallet.daemon.containers.cpextract import MAX_EXTENDED_HEADER, bounded_tarinfo
from pallet.daemon.containers.cptar import TarReader
from pallet.shim.api.inroot import RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, openat2
from pallet.v1.errors import InvalidArgument

_BENEATH = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_BoundedTarInfo = bounded_tarinfo("the build context")


@dataclass(slots=True)
class ContextStats:
    """What an extraction made."""

    entries: int = 0
    size: int = 0  # bytes of regular files' content


def _umask() -> int:
    """This process's umask, read without changing it (os.umask sets one: a race with
    every other thread that creates files meanwhile)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o777  # unknown: every file gets its fchmod


def entry_parts(name: str) -> tuple[str, ...]:
    """The components of a context entry's name; InvalidArgument for an absolute name or
    one that climbs out with `..` (`a/../b` is `b`)."""
    if name.startswith("/"):
        raise InvalidArgument(f"build context entry {name!r} is an absolute path: a context's names are relative")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise InvalidArgument(f"build context entry {name!r} climbs out of the context with '..'")
            parts.pop()
            continue
        parts.append(part)
    return tuple(parts)


class _Context:
    """The directory being filled: directory fds by path (a context's entries come
    directory by directory, so one is kept open), deferred directory metadata."""

    def __init__(self, root_fd: int) -> None:
        self.root = root_fd
        self.stats = ContextStats()
        self._cached: tuple[tuple[str, ...], int] | None = None
        self._dirs: list[tuple[tuple[str, ...], int, int]] = []
        self._umask = _umask()

    def close(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None

    def _open(self, parts: tuple[str, ...], entry: str) -> int:
        try:
            # No O_NOFOLLOW: RESOLVE_NO_SYMLINKS refuses a last symlink with ELOOP too.
            return openat2(self.root, "/".join(parts) or ".", os.O_RDONLY | os.O_DIRECTORY, _BENEATH)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EXDEV):
                raise InvalidArgument(
                    f"build context entry {entry!r} is below a symlink ({'/'.join(parts)!r} "
                    "goes through one): a context's entries are never written through symlinks"
                ) from None
            if exc.errno == errno.ENOTDIR:
                raise InvalidArgument(
                    f"build context entry {entry!r} is below {'/'.join(parts)!r}, which is not a directory"
                ) from None
            raise

    def parent(self, parts: tuple[str, ...], entry: str) -> int:
        """The directory holding `parts` (made, with its parents, when missing)."""
        where = parts[:-1]
        if self._cached is not None and self._cached[0] == where:
            return self._cached[1]
        self.close()
        try:
            fd = self._open(where, entry)
        except FileNotFoundError:
            fd = os.dup(self.root)
            try:
                for i, part in enumerate(where):
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass  # there already: the open below says whether it is a directory
                    child = self._open(where[: i + 1], entry)
                    os.close(fd)
                    fd = child
            except BaseException:
                os.close(fd)
                raise
        self._cached = (where, fd)
        return fd

    def add(self, archive: TarReader, member: tarfile.TarInfo) -> None:
        parts = entry_parts(member.name)
        self.stats.entries += 1
        if not parts:
            if not member.isdir():
                raise InvalidArgument(f"build context entry {member.name!r} names the context's root but is not a directory")
            return
        if member.ischr() or member.isblk():
            raise InvalidArgument(f"build context entry {member.name!r} is a device node: a context may not hold one")
        if member.issparse():  # its stored bytes are not its content: copied as is, they would be wrong
            raise InvalidArgument(f"build context entry {member.name!r} is a sparse file entry, which pallet "
                                  "does not read: make the tar without --sparse")
        if not (member.isdir() or member.isreg() or member.issym() or member.islnk() or member.isfifo()):
            raise InvalidArgument(f"build context entry {member.name!r} has unsupported tar type {member.type!r}")
        parent = self.parent(parts, member.name)
        base = parts[-1]
        mtime = int(member.mtime * 1_000_000_000)
        if member.isdir():
            try:
                os.mkdir(base, 0o700, dir_fd=parent)
            except FileExistsError:
                if not stat.S_ISDIR(os.stat(base, dir_fd=parent, follow_symlinks=False).st_mode):
                    raise InvalidArgument(
                        f"build context entry {member.name!r} is a directory where the context has a file"
                    ) from None
            self._dirs.append((parts, stat.S_IMODE(member.mode), mtime))
            return
        # Made at once, without a look first (a context's names are new but for a tar
        # that repeats one): a name there already is replaced, unless it is a directory.
        try:
            self._create(archive, member, parent, base, mtime)
        except FileExistsError:
            if stat.S_ISDIR(os.stat(base, dir_fd=parent, follow_symlinks=False).st_mode):
                raise InvalidArgument(f"build context entry {member.name!r} would replace a directory") from None
            os.unlink(base, dir_fd=parent)
            self._create(archive, member, parent, base, mtime)

    def _create(self, archive: TarReader, member: tarfile.TarInfo, parent: int, base: str, mtime: int) -> None:
        mode = stat.S_IMODE(member.mode)
        if member.isreg():
            fd = os.open(base, _NEW_FILE, mode & 0o777, dir_fd=parent)
            try:
                archive.copy_to(fd, member.size)
                if mode & (~0o777 | self._umask):  # setuid, setgid, sticky, or what the umask took
                    os.fchmod(fd, mode)
                os.utime(fd, ns=(mtime, mtime))
            finally:
                os.close(fd)
            self.stats.size += member.size
        elif member.issym():
            os.symlink(member.linkname, base, dir_fd=parent)
            os.utime(base, ns=(mtime, mtime), dir_fd=parent, follow_symlinks=False)
        elif member.islnk():
            self._hardlink(member, parent, base)
        else:
            os.mkfifo(base, 0o600, dir_fd=parent)
            fd = os.open(base, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            try:
                os.fchmod(fd, mode)
            finally:
                os.close(fd)

    def _hardlink(self, member: tarfile.TarInfo, parent: int, base: str) -> None:
        try:
            target = entry_parts(member.linkname)
        except InvalidArgument:
            target = ()
        if not target:
            raise InvalidArgument(
                f"build context entry {member.name!r} is a hardlink to {member.linkname!r}, outside the context"
            )
        try:
            target_dir = self._open(target[:-1], member.name)
        except FileNotFoundError:
            target_dir = -1
        try:
            st = None
            if target_dir >= 0:
                try:
                    st = os.stat(target[-1], dir_fd=target_dir, follow_symlinks=False)
                except FileNotFoundError:
                    pass
            if st is None or stat.S_ISDIR(st.st_mode):
                raise InvalidArgument(
                    f"build context entry {member.name!r} is a hardlink to {member.linkname!r}, "
                    "which is not a file earlier in the context"
                )
            os.link(target[-1], base, src_dir_fd=target_dir, dst_dir_fd=parent, follow_symlinks=False)
        finally:
            if target_dir >= 0:
                os.close(target_dir)

    def finish(self) -> None:
        """Directories' modes and mtimes, deepest first (a read-only one last)."""
        self.close()
        for parts, mode, mtime in sorted(self._dirs, key=lambda d: len(d[0]), reverse=True):
            fd = self._open(parts, "/".join(parts))
            try:
                os.fchmod(fd, mode)
                os.utime(fd, ns=(mtime, mtime))
            finally:
                os.close(fd)


def extract_context(stream: IO[bytes], directory: str) -> ContextStats:
    """Extract the context tar `stream` (a raw pipe: files' content is spliced) into the
    existing empty `directory`. InvalidArgument for a context that breaks the rules or
    is not a tar; OSError (a full disk, say) as it comes."""
    root = os.open(directory, _DIR)
    context = _Context(root)
    try:
        archive = TarReader(stream, _BoundedTarInfo)
        try:
            for member in archive:
                try:
                    context.add(archive, member)
                except (OverflowError, ValueError) as exc:
                    raise InvalidArgument(f"build context entry {member.name!r} has invalid metadata: {exc}") from None
            archive.drain()
        except tarfile.ReadError as exc:
            raise InvalidArgument(f"the build context is not a valid tar archive: {exc}") from None
        except (tarfile.TarError, EOFError) as exc:
            raise InvalidArgument(f"the build context's tar is truncated or corrupt: {exc}") from None
        context.finish()
        return context.stats
    finally:
        context.close()
        os.close(root)
