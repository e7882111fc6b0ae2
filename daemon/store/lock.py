"""The exclusive claim of one palletd on its state and runtime directories.

Owns: creating the directories (with an error that names the path when that fails) and
holding an flock on `<dir>/palletd.lock` for the daemon's lifetime, so a second daemon on
the same directories is refused instead of corrupting them. Must not: read or write state.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from pallet.daemon.store.space import FULL_ERRNOS
from pallet.v1.errors import FailedPrecondition


class DirectoryLock:
    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._fd = -1

    def start(self) -> None:
        try:
            self._dir.mkdir(parents=True, exist_ok=True, mode=0o711)
            fd = os.open(self._dir / "palletd.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise FailedPrecondition(
                f"cannot use {self._dir} as a palletd directory: {e.strerror or e}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FailedPrecondition(
                f"another palletd is already using {self._dir}: stop it first, or give this "
                "one its own --root and --run-root"
            ) from None
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as e:
            # The pid is for people; the lock is the flock. A full disk must not stop
            # palletd from starting.
            if e.errno not in FULL_ERRNOS:
                raise

    def aclose(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
