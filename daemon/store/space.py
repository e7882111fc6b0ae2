"""Room on the state disk: telling a full disk apart, and a reserve for the way out of one.

Owns: `SpaceReserve`, a file `<root>/reserve` of a few MiB allocated while there is room,
given back when a write that must not fail finds the disk full, and allocated again once
there is room; `essential()`, the scope in which a write may spend it; `is_disk_full`, which
tells a full disk from other I/O errors; and `disk_full`, the ResourceExhausted it is
reported as. Must not: know what is written (the database retries a write, the operations
say which of theirs are essential).

Why a reserve: on a full disk SQLite cannot commit even a DELETE (its write-ahead log must
grow), so `rm` and `prune`, the commands that give space back, would fail with everything
else, and so would recording that a container exited. What is essential: recording what
happened (an exit, a failed start, what palletd finds at boot) and the operations that free
space (remove, prune). Creating things is not: once the reserve is spent, a create gets
RESOURCE_EXHAUSTED while an `rm` still works.

`essential()` is a scope (a context variable) rather than a flag passed down through the
managers, the event bus and the database: the operation decides, the database spends. Tasks
started inside the scope inherit it (the container manager starts its own background tasks
in a fresh context, so a scope does not follow them for life).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import structlog

from pallet.v1.errors import ResourceExhausted

log = structlog.get_logger(__name__)

MIB = 1024 * 1024
# The reserve is 1/64 of the filesystem, between these: 1 MiB on a 20 MB tmpfs is a few
# hundred pages of write-ahead log, far more than removing a container or an image takes.
RESERVE_MIN = 1 * MIB
RESERVE_MAX = 16 * MIB

# The errno values that mean the filesystem (or the user's quota on it) is full.
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = 13
_SQLITE_IOERR = 10

_essential: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "pallet_essential_write", default=False
)


@contextlib.contextmanager
def essential() -> Iterator[None]:
    """Writes in this scope may spend the reserve when the disk is full."""
    token = _essential.set(True)
    try:
        yield
    finally:
        _essential.reset(token)


def is_essential() -> bool:
    return _essential.get()


def free_bytes(path: Path) -> int | None:
    """Bytes an unprivileged writer may still use on `path`'s filesystem (None: unknown)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def is_disk_full(error: BaseException, path: Path) -> bool:
    """Whether `error` (from a write under `path`) means its filesystem is full.

    SQLite says SQLITE_FULL when its files cannot grow; an I/O error it reports while the
    filesystem has no room left (its shared-memory file could not be extended, say) is
    taken for the same.
    """
    if isinstance(error, OSError):
        return error.errno in FULL_ERRNOS
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        if code is None:
            return "disk is full" in str(error)
        if code & 0xFF == _SQLITE_FULL:
            return True
        if code & 0xFF == _SQLITE_IOERR:
            free = free_bytes(path)
            return free is not None and free < 64 * 1024
    return False


def _human(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


#: What a user can do about a full disk; every full-disk error ends with it.
FREE_SPACE = "free space (pallet rm of containers, pallet image prune, or outside pallet) and try again"


def disk_full(path: Path, what: str) -> ResourceExhausted:
    """The error for `what` (\"cannot write the state database\") failing on a full `path`."""
    free = free_bytes(path)
    left = "" if free is None else f", {_human(free)} free"
    return ResourceExhausted(
        f"{what}: the disk of {path} is full (no space left on the device{left}): {FREE_SPACE}"
    )


class room:  # noqa: N801 - used as a function: `with space.room(path, what):`
    """ENOSPC or EDQUOT in the body raised as `disk_full(path, what)`; a plain and an
    async context manager both, so it sits in an `async with` beside others."""

    def __init__(self, path: Path, what: str) -> None:
        self._path = path
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        if isinstance(error, OSError) and error.errno in FULL_ERRNOS:
            raise disk_full(self._path, self._what) from error

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        self.__exit__(kind, error, tb)


class SpaceReserve:
    """A file holding space that only essential writes get back (see the module)."""

    def __init__(self, path: Path, size: int | None = None) -> None:
        self._path = path
        self._size = size
        self._held = 0

    @property
    def held(self) -> int:
        """Bytes the reserve holds now (0: spent, or never allocated)."""
        return self._held

    @property
    def size(self) -> int:
        return self._size or 0

    def start(self) -> None:
        """Allocate the reserve (or find it allocated); never fails on a full disk."""
        if self._size is None:
            try:
                st = os.statvfs(self._path.parent)
                total = st.f_blocks * st.f_frsize
            except OSError:
                total = 0
            self._size = min(RESERVE_MAX, max(RESERVE_MIN, total // 64))
        try:
            allocated = os.stat(self._path).st_blocks * 512
        except FileNotFoundError:
            allocated = 0
        if allocated >= self._size:
            self._held = allocated
            return
        if not self._allocate():
            log.warning(
                "no room for the state disk's reserve: rm and prune may fail while the disk "
                "is full",
                path=str(self._path),
                wanted=self._size,
            )

    def release(self) -> int:
        """Give the reserve's space back to the filesystem; return how many bytes."""
        if not self._held:
            return 0
        given, self._held = self._held, 0
        try:
            os.truncate(self._path, 0)
        except OSError as e:
            log.warning("cannot release the state disk's reserve", path=str(self._path),
                        reason=str(e))
            self._held = given
            return 0
        log.warning("state disk full: its reserve was released so an essential write can "
                    "go through", path=str(self._path), released=given)
        return given

    def replenish(self) -> bool:
        """Allocate a spent reserve again when the filesystem has room for it twice over
        (a statvfs, so it is cheap to ask before every write); True when it is held."""
        if self._held:
            return True
        free = free_bytes(self._path.parent)
        if free is None or free < 2 * self.size:
            return False
        if self._allocate():
            log.info("state disk's reserve allocated again", path=str(self._path))
            return True
        return False

    def _allocate(self) -> bool:
        assert self._size is not None
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            if e.errno not in FULL_ERRNOS:
                log.warning("cannot make the state disk's reserve", path=str(self._path),
                            reason=str(e))
            return False
        try:
            os.posix_fallocate(fd, 0, self._size)
        except OSError as e:
            # Whatever part was allocated goes back: a half reserve would only hide space.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            if e.errno not in FULL_ERRNOS:
                log.warning("cannot allocate the state disk's reserve", path=str(self._path),
                            reason=str(e))
            return False
        finally:
            os.close(fd)
        self._held = self._size
        return True
