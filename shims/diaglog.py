"""The diagnostics log of the launcher and its shims (`<run_root>/shim-launcher.log`), bounded.

Owns: every line the launcher and the shims it forks write about themselves (their fd 2
is that file, see `pallet.shim.launcher`): rate-limiting repeats (per message and in all),
capping the file's size (the full file moves to `.1`, once, then starts over), and never
raising: a full or failing disk loses diagnostics, never a container. Must not: write
anything of a container's (its output is its log's, `pallet.shim.logfile`), or import
anything but the standard library.

The run root is RAM on most hosts (/run), and one file serves every shim of a daemon, so
nothing a container does may make it grow without bound: a failing write repeated for
each chunk of output once wrote 74,484 tracebacks (1.7 MB/s) here.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

#: Past this size the file moves to `<name>.1` (replacing an older one) and starts over.
MAX_BYTES = 1 << 20
#: Each message (by its key) may be written BURST times per WINDOW_S; the rest are counted
#: and the count written with the next one let through.
BURST = 5
WINDOW_S = 60.0
#: All messages of one process together, per WINDOW_S.
TOTAL_PER_WINDOW = 100
_KEYS_KEPT = 256


@dataclass(slots=True)
class _Budget:
    window_start: float
    used: int = 0
    suppressed: int = 0


class DiagLog:
    """Bounded lines to `fd`, a file at `path` ("" when it is not ours to cap: a pipe, a tty)."""

    def __init__(
        self,
        fd: int = 2,
        path: str = "",
        *,
        max_bytes: int = MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fd = fd
        self.path = path
        self.max_bytes = max_bytes
        self._clock = clock
        self._keys: dict[str, _Budget] = {}
        self._total = _Budget(clock())

    def warn(self, message: str, *, key: str = "", exc_info: bool = False) -> None:
        """Write `message` (with the exception being handled when `exc_info`) unless its
        key (default: the message) or this process has written too much lately."""
        now = self._clock()
        budget = self._budget(key or message, now)
        if now - self._total.window_start >= WINDOW_S:
            self._total = _Budget(now, suppressed=self._total.suppressed)
        if budget.used >= BURST or self._total.used >= TOTAL_PER_WINDOW:
            budget.suppressed += 1
            self._total.suppressed += 1
            return
        budget.used += 1
        self._total.used += 1
        text = f"pallet-shim[{os.getpid()}]: {message}"
        if budget.suppressed:
            text += f" (and {budget.suppressed} more like it not logged)"
            budget.suppressed = 0
        text += "\n"
        if exc_info:
            text += traceback.format_exc()
        self._write(text.encode(errors="replace"))

    def _budget(self, key: str, now: float) -> _Budget:
        budget = self._keys.get(key)
        if budget is None:
            if len(self._keys) >= _KEYS_KEPT:
                del self._keys[next(iter(self._keys))]
            budget = self._keys[key] = _Budget(now)
        elif now - budget.window_start >= WINDOW_S:
            budget.window_start, budget.used = now, 0
        return budget

    def _write(self, data: bytes) -> None:
        try:
            if self.path and os.fstat(self.fd).st_size + len(data) > self.max_bytes:
                self._start_over()
            os.write(self.fd, data[: self.max_bytes])
        except OSError:
            pass  # no room for diagnostics: they are lost, nothing else is

    def _start_over(self) -> None:
        """Move the full file's lines to `<path>.1`, then empty it (the fd appends, and
        every shim shares it, so it is truncated rather than replaced)."""
        mine = os.fstat(self.fd)
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
            try:
                rotate_file(self.path)
            except OSError:
                pass  # no room for a copy (a full disk): bounded matters more than kept
        os.ftruncate(self.fd, 0)


def rotate_file(path: str) -> None:
    """Copy `path` to `path.1` (replacing it); the caller empties `path`."""
    older = path + ".1"
    src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst = os.open(older, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            while os.sendfile(dst, src, None, 1 << 20):
                pass
        except OSError:
            os.close(dst)
            os.unlink(older)
            raise
        os.close(dst)
    finally:
        os.close(src)


def open_bounded(path: str, max_bytes: int = MAX_BYTES) -> int:
    """Open the log at `path` for appending, moving a too big one aside first."""
    try:
        if os.path.getsize(path) > max_bytes:
            try:
                rotate_file(path)
            except OSError:
                pass
            os.truncate(path, 0)
    except OSError:
        pass
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)


#: The process's diagnostics (fd 2). The launcher names its file (`configure`) before it
#: forks any shim, so every shim caps the same file.
_log = DiagLog()


def configure(path: str) -> None:
    global _log
    _log = DiagLog(2, path)


def warn(message: str, *, key: str = "") -> None:
    _log.warn(message, key=key)


def log_exception(context: str, *, key: str = "") -> None:
    """The exception being handled, with `context`, written (within the bounds) once."""
    _log.warn(context, key=key, exc_info=True)
