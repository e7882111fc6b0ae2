"""What the shim knows about each child it supervises, and the child's stdin pipe.

Owns: `Process` (pid, output pipes, status pipe, how it ended) and `StdinPipe`, the
buffered, non-blocking write end of a child's stdin, which tells its owner when it is
backed up so client reads can pause. Must not: read output or know the clients (who
streams an exec is `pallet.shim.execs`'s business); depends on nothing else in the shim's
package (what it needs of the selector and the status pipe are the protocols below).
"""

from __future__ import annotations

import os
import selectors
from collections.abc import Callable
from typing import Any, Protocol

from pallet.shim.api.spec import ExitStatus

STDIN_BUFFER_LIMIT = 1 << 20  # past this, the clients feeding it are paused


class Watcher(Protocol):
    """The part of the shim's selector (`pallet.shim.connections`) a stdin pipe uses."""

    def watch(self, fd: int, events: int, handler: Callable[[int], None]) -> None: ...

    def unwatch(self, fd: int) -> None: ...

    def watching(self, fd: int) -> bool: ...


class StatusPipe(Protocol):
    """The shim's end of a child's status pipe (`pallet.shim.processes.StatusReader`)."""

    fd: int
    eof: bool

    def read_available(self) -> list[dict[str, Any]]: ...

    def read_failure(self) -> str: ...


class StdinPipe:
    """The write end of a child's stdin; never blocks the shim."""

    __slots__ = ("fd", "_buf", "_closing", "_io", "_on_backlog")

    def __init__(self, fd: int, io: Watcher) -> None:
        self.fd = fd
        self._buf = bytearray()
        self._closing = False
        self._io = io
        self._on_backlog: Callable[[bool], None] = lambda full: None
        os.set_blocking(fd, False)

    @property
    def accepting(self) -> bool:
        return self.fd >= 0 and not self._closing

    def on_backlog(self, callback: Callable[[bool], None]) -> None:
        """`callback(True)` when the buffer passes the limit, `callback(False)` below it."""
        self._on_backlog = callback

    def write(self, data: bytes) -> None:
        if self.accepting:
            self._buf += data
            self._flush()

    def close(self) -> None:
        """Close once everything buffered is written (EOF for the child)."""
        if self.fd >= 0:
            self._closing = True
            self._flush()

    def abandon(self) -> None:
        """Close now, dropping what is buffered."""
        if self.fd >= 0:
            if self._io.watching(self.fd):
                self._io.unwatch(self.fd)
            os.close(self.fd)
            self.fd = -1
        self._buf.clear()

    def _flush(self) -> None:
        if self.fd < 0:
            return
        while self._buf:
            try:
                written = os.write(self.fd, self._buf)
            except BlockingIOError:
                break
            except OSError:
                self._buf.clear()  # the child closed its stdin or died: nothing to deliver
                self._closing = True
                break
            del self._buf[:written]
        watching = self._io.watching(self.fd)
        if self._buf and not watching:
            self._io.watch(self.fd, selectors.EVENT_WRITE, lambda mask: self._flush())
        elif not self._buf:
            if watching:
                self._io.unwatch(self.fd)
            if self._closing:
                os.close(self.fd)
                self.fd = -1
        self._on_backlog(len(self._buf) > STDIN_BUFFER_LIMIT)


class Process:
    """An init or exec process the shim watches: its pid, pipes and how it ended."""

    def __init__(
        self, pid: int, outputs: dict[int, int], stdin: StdinPipe | None, status: StatusPipe
    ) -> None:
        self.pid = pid
        self.outputs = outputs  # the shim's read ends (non-blocking) -> wire.STDOUT/STDERR
        self.stdin = stdin
        self.status: StatusPipe | None = status  # None once it reached EOF and was closed
        self.exec_error = ""
        self.exit: ExitStatus | None = None
        self.drain_deadline = 0.0  # after its exit: stray writers' output is cut off then
        # Its terminal's master (`pallet.shim.tty`), for resizes; -1 without one, and once
        # its output ended.
        self.console = -1
