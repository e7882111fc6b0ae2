"""What the shim knows about each child it supervises, and the child's stdin pipe.

Owns: `Process` (pid, output pipes, status pipe, exit, the exec's client) and
`StdinPipe`, the buffered, non-blocking write end of a child's stdin, which tells its
owner when it is backed up so client reads can pause. Must not: read output or answer
clients (that is `pallet.shim.server`).
"""

from __future__ import annotations

import fcntl
import os
import selectors
from collections.abc import Callable

from pallet.shim.api.spec import ExitStatus
from pallet.shim.api import wire
from pallet.shim.connections import Conn, Connections
from pallet.shim.processes import StatusReader

STDIN_BUFFER_LIMIT = 1 << 20  # past this, the clients feeding it are paused
# Output pipes hold this much (the default is 64 KiB): a writer keeps going while the
# shim is busy, and each read takes more at once. 1 MiB is /proc/sys/fs/pipe-max-size's
# default, the most a process without CAP_SYS_RESOURCE may ask for.
OUTPUT_PIPE_SIZE = 1 << 20


class StdinPipe:
    """The write end of a child's stdin; never blocks the shim."""

    __slots__ = ("fd", "_buf", "_closing", "_io", "_on_backlog")

    def __init__(self, fd: int, io: Connections) -> None:
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

    def __init__(self, pid: int, stdout: int, stderr: int, stdin: StdinPipe | None) -> None:
        self.pid = pid
        self.outputs: dict[int, int] = {stdout: wire.STDOUT, stderr: wire.STDERR}
        self.stdin = stdin
        self.status: StatusReader | None = None
        self.exec_error = ""
        self.exit: ExitStatus | None = None
        self.drain_deadline = 0.0
        self.conn: Conn | None = None  # exec processes: the client streaming it
        self.exec_id = ""  # exec processes: the daemon's id for it
        self.waiters: list[Conn] = []  # exec processes: `exec_wait` clients
        for fd in self.outputs:
            os.set_blocking(fd, False)
            _enlarge_pipe(fd)


def _enlarge_pipe(fd: int) -> None:
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, OUTPUT_PIPE_SIZE)
    except OSError:
        pass  # a lower pipe-max-size or the user's pipe quota: the default size works too
