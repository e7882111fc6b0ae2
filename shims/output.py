"""Where the output of the shim's children goes, and where their clients' stdin goes.

Owns: reading the output pipes of the container's init and of exec processes without
ever waiting on a reader: the init's output goes to the log file and to every attached
client that asked for that stream, an exec's to the client streaming it; cutting off
stray writers a while after a process exited; telling attached clients EOF; and feeding
clients' stdin frames to the right process, pausing those clients while its pipe is
backed up. Must not: decide when a process is finished (`pallet.shim.task` hears of it
through `on_drained`) or block (a slow client is dropped by `pallet.shim.connections`).
"""

from __future__ import annotations

import mmap
import os
import selectors
import time
from collections.abc import Callable
from dataclasses import dataclass

from pallet.shim.api import messages, wire
from pallet.shim.api.messages import EofEvent
from pallet.shim.children import Process, StatusPipe, StdinPipe
from pallet.shim.connections import Conn, Connections
from pallet.shim.logfile import LogWriter
from pallet.shim.processes import log_exception
from pallet.shim.stdio import StdioPlan

# A busy container's output is read in slices this big (its pipes hold 1 MiB, see
# `pallet.shim.stdio`), so 100 MB is a few hundred log records and frames, not 25,000.
# Into one buffer per shim, an anonymous mapping that gets pages only as far as output
# ever filled it (an idle shim pays nothing), copied out at the size read: os.read of
# this size would malloc and shrink a big block on every read, and a heap grown by one
# stays grown.
_READ_CHUNK = 256 << 10


@dataclass(slots=True)
class _Route:
    # None: the container's own output (the log and the attached clients); else the
    # client streaming this exec, if it is still there.
    client: Callable[[], Conn | None] | None
    on_drained: Callable[[], None]


class Output:
    """The output and stdin plumbing of one shim."""

    def __init__(self, io: Connections) -> None:
        self.io = io
        self.log: LogWriter | None = None
        self.attached: list[Conn] = []  # clients attached to the container's init
        self._routes: dict[Process, _Route] = {}
        self._read_buf: mmap.mmap | None = None

    # -- output --------------------------------------------------------------------------

    def watch(
        self,
        process: Process,
        client: Callable[[], Conn | None] | None,
        on_drained: Callable[[], None],
    ) -> None:
        """Copy `process`'s output from now on; `on_drained()` once both pipes closed."""
        self._routes[process] = _Route(client, on_drained)
        for fd in process.outputs:
            self.io.watch(fd, selectors.EVENT_READ, self._reader(process, fd))

    def _reader(self, process: Process, fd: int) -> Callable[[int], None]:
        return lambda mask: self._on_output(process, fd)

    def forget(self, process: Process) -> None:
        """The process is gone and so are its clients: nothing routes to it any more."""
        self._routes.pop(process, None)

    def _on_output(self, process: Process, fd: int) -> None:
        if self._read_buf is None:
            self._read_buf = mmap.mmap(-1, _READ_CHUNK)
        try:
            size = os.readv(fd, [self._read_buf])
        except BlockingIOError:
            return
        except OSError:
            size = 0
        if not size:
            self.close_output(process, fd)
            return
        if process.console >= 0:
            # A terminal hands out at most 4 KiB a read (its line discipline's buffer):
            # what is there already goes into the same record and frame.
            size = _read_more(fd, self._read_buf, size)
        data = self._read_buf[:size]
        stream = process.outputs[fd]
        now = time.time_ns()
        frame = wire.encode_output(stream, now, data)
        route = self._routes[process]
        if route.client is None:
            if self.log is not None:
                try:
                    # A disk that refuses it: dropped, counted, warned about once per
                    # stretch and recorded as a gap later; the pipe is drained regardless.
                    self.log.write(stream, data, now)
                except OSError:
                    log_exception("log write failed")
            for conn in list(self.attached):
                if conn.stdout if stream == wire.STDOUT else conn.stderr:
                    self.io.send(conn, frame)
        else:
            client = route.client()
            if client is not None:
                self.io.send(client, frame)

    def close_output(self, process: Process, fd: int) -> None:
        self.io.unwatch(fd)
        os.close(fd)
        del process.outputs[fd]
        if process.outputs:
            return
        _close_console(process)
        route = self._routes[process]
        if route.client is None:
            eof = wire.encode_control(messages.encode(EofEvent()))
            for conn in list(self.attached):
                self.io.send(conn, eof)
        route.on_drained()

    def next_deadline(self) -> float | None:
        """When the output of an exited process is next due to be cut off."""
        deadlines = [p.drain_deadline for p in self._routes if p.exit and p.outputs]
        return min(deadlines) if deadlines else None

    def close_overdue(self, now: float) -> None:
        """Stray writers (a daemonised grandchild) may hold the pipes of an exited
        process for ever; its output ends at its drain deadline."""
        for process in list(self._routes):
            if process.exit and process.outputs and now >= process.drain_deadline:
                for fd in list(process.outputs):
                    self.close_output(process, fd)

    def close_process(self, process: Process) -> None:
        """Close its pipes now, telling nobody (it never got to run)."""
        for fd in list(process.outputs):
            if self.io.watching(fd):
                self.io.unwatch(fd)
            os.close(fd)
        process.outputs.clear()
        _close_console(process)
        if process.stdin is not None:
            process.stdin.abandon()
        self.forget(process)

    # -- stdin ---------------------------------------------------------------------------

    def process(self, pid: int, plan: StdioPlan, status: StatusPipe) -> Process:
        """The forked child `pid`, with the shim's ends of its pipes (`plan`, forked).

        Its stdin, if it has one, pauses the clients feeding it while it is backed up.
        """
        stdin = StdinPipe(plan.stdin_w, self.io) if plan.stdin_w >= 0 else None
        process = Process(pid, plan.outputs(), stdin, status)
        process.console = plan.console
        if stdin is not None:
            stdin.on_backlog(lambda full: self._pause_stdin_writers(process, full))
        return process

    def _pause_stdin_writers(self, process: Process, full: bool) -> None:
        route = self._routes.get(process)
        if route is None:
            return
        writers = self.attached if route.client is None else [route.client()]
        for conn in writers:
            if conn is not None and conn.stdin:
                self.io.set_paused(conn, full)

    def write_stdin(self, conn: Conn, process: Process | None, data: bytes) -> None:
        if conn.stdin and process is not None and process.stdin is not None:
            process.stdin.write(data)

    def close_stdin(self, conn: Conn, process: Process | None) -> None:
        if conn.stdin and process is not None and process.stdin is not None:
            process.stdin.close()


def _close_console(process: Process) -> None:
    """Its output ended: the terminal is of no more use (a resize says so)."""
    if process.console >= 0:
        os.close(process.console)
        process.console = -1


# A terminal's output is read on in one go up to this much (see `_on_output`).
_TERMINAL_GATHER = 64 << 10


def _read_more(fd: int, buf: mmap.mmap, size: int) -> int:
    """Read on into `buf` after `size` bytes while the terminal has more at once."""
    view = memoryview(buf)
    try:
        while size < _TERMINAL_GATHER:
            try:
                got = os.readv(fd, [view[size:]])
            except (BlockingIOError, OSError):
                break  # drained for now; an EIO (all writers gone) shows on the next read
            if not got:
                break
            size += got
    finally:
        view.release()
    return size
