"""Where the output of the shim's children goes, and where their clients' stdin goes.

Owns: reading the output pipes of the container's init and of exec processes without
ever waiting on a reader: the init's output goes to the log file and to every attached
client that asked for that stream, an exec's to the client streaming it; cutting off
stray writers a while after a process exited; telling attached clients EOF; and feeding
clients' stdin frames to the right process, pausing those clients while its pipe is
backed up. Must not: decide when a process is finished (`pallet.shim.task` hears of it
through `on_drained`) or block.

A client behind on a process's output holds the process back rather than lose what it
was to be sent: once a client it streams to has `BACKLOG_HIGH` unsent, the process's
pipes are no longer read (its writes block, as a docker container's do behind a slow
attach), and are read again once every such client is down to `BACKLOG_LOW`. A client
that takes nothing for `STALL_S` (hung, stopped) is dropped then, and the process goes
on: a client never holds a container for longer. Before this, a client 8 MiB behind was
dropped at once, and `pallet exec c cat big` gave its caller a few MiB of the file.
"""

from __future__ import annotations

import mmap
import os
import selectors
import time
from collections.abc import Callable
from dataclasses import dataclass

from pallet.shim import diaglog
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

#: Unsent bytes for one client at which its process's pipes stop being read, and the
#: level every such client must be down to for them to be read again.
BACKLOG_HIGH = 2 << 20
BACKLOG_LOW = 512 << 10
#: How long a client that takes nothing may hold a process back before it is dropped.
STALL_S = 10.0


class _Gather:
    """A terminal's output on its way out (see the module's docstring).

    Read into a buffer of its own, after room for the frame's header, and written to
    the log and sent from there: one frame, built where the data was read, no copy.
    """

    __slots__ = ("buf", "fill", "first_ns", "due", "sent_at", "burst")

    def __init__(self) -> None:
        # Mapped at the first output: pages only as far as the output ever filled it.
        self.buf: mmap.mmap | None = None
        self.fill = 0  # bytes held, after the header's room
        self.first_ns = 0  # when the first of them was read (the record's time)
        self.due = 0.0  # when they go at the latest (monotonic)
        self.sent_at = 0.0  # when output last went (monotonic)
        self.burst = 0  # bytes sent since the terminal was last quiet for `_HOLD`


@dataclass(slots=True)
class _Route:
    # None: the container's own output (the log and the attached clients); else the
    # client streaming this exec, if it is still there.
    client: Callable[[], Conn | None] | None
    on_drained: Callable[[], None]
    gather: _Gather | None = None  # a terminal's
    # Each output fd's reader, for watching it again after a hold.
    readers: dict[int, Callable[[int], None]] | None = None
    held_since: float = 0.0  # its pipes are not read, for a client behind (monotonic); 0: read
    progress_at: float = 0.0  # when a client it waits for last took something (monotonic)


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
        route = self._routes[process] = _Route(client, on_drained)
        if process.console >= 0:
            gather = route.gather = _Gather()
            route.readers = {fd: self._terminal_reader(process, fd, gather) for fd in process.outputs}
        else:
            route.readers = {fd: self._reader(process, fd) for fd in process.outputs}
        for fd, reader in route.readers.items():
            self.io.watch(fd, selectors.EVENT_READ, reader)

    def _reader(self, process: Process, fd: int) -> Callable[[int], None]:
        return lambda mask: self._on_output(process, fd)

    def _terminal_reader(self, process: Process, fd: int, gather: _Gather) -> Callable[[int], None]:
        return lambda mask: self._on_terminal_output(process, fd, gather)

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
        data = self._read_buf[:size]
        stream = process.outputs[fd]
        now = time.time_ns()
        self._emit(process, stream, data, wire.encode_output(stream, now, data), now)

    def _on_terminal_output(self, process: Process, fd: int, gather: _Gather) -> None:
        """Read what the terminal has; send it at once, or hold it while output flows."""
        if gather.buf is None:
            gather.buf = mmap.mmap(-1, _HEAD + _TERMINAL_BATCH)
        got = _read_terminal(fd, gather.buf, _HEAD + gather.fill)
        if got is None:
            self.close_output(process, fd)
            return
        if not got:
            return
        now = time.monotonic()
        if gather.fill:
            gather.fill += got
            if gather.fill >= _TERMINAL_BATCH:
                self._send_gathered(process, gather, now)
            return
        gather.fill, gather.first_ns = got, time.time_ns()
        if now - gather.sent_at >= _HOLD:
            gather.burst = 0  # it was quiet: this may be an echo, a prompt, a redraw
        if gather.burst + got <= _BURST or got >= _TERMINAL_BATCH:
            self._send_gathered(process, gather, now)
        else:
            gather.due = now + _HOLD

    def _send_gathered(self, process: Process, gather: _Gather, now: float) -> None:
        size, gather.fill = gather.fill, 0
        if not size or gather.buf is None:
            return
        wire.pack_output_header(gather.buf, wire.STDOUT, gather.first_ns, size)
        frame = memoryview(gather.buf)[: _HEAD + size]
        # A terminal has one stream: docker's logs show its output as stdout.
        self._emit(process, wire.STDOUT, frame[_HEAD:], frame, gather.first_ns)
        gather.sent_at = now
        gather.burst += size

    def release_held(self, now: float) -> None:
        """Terminal output held until `now` goes (the shim's timer)."""
        for process, route in list(self._routes.items()):
            gather = route.gather
            if gather is not None and gather.fill and now >= gather.due:
                self._send_gathered(process, gather, now)

    def _emit(
        self, process: Process, stream: int, data: bytes | memoryview,
        frame: bytes | memoryview, time_ns: int,
    ) -> None:
        """Output read at `time_ns` to the log and the attached clients, or to the exec's
        client; `frame` is `data` framed."""
        route = self._routes[process]
        if route.client is None:
            if self.log is not None:
                try:
                    # A disk that refuses it: dropped, counted, warned about once per
                    # stretch and recorded as a gap later; the pipe is drained regardless.
                    self.log.write(stream, data, time_ns)
                except OSError:
                    log_exception("log write failed")
            for conn in list(self.attached):
                if conn.stdout if stream == wire.STDOUT else conn.stderr:
                    self.io.send(conn, frame)
        else:
            client = route.client()
            if client is not None:
                self.io.send(client, frame)
        if not route.held_since and any(len(c.out) >= BACKLOG_HIGH for c in self._receivers(route)):
            self._hold(process, route)

    # -- holding a process back for a client behind -------------------------------------

    def _receivers(self, route: _Route) -> list[Conn]:
        """The clients still connected that this route's output goes to."""
        if route.client is None:
            return [c for c in self.attached if self.io.conns.get(c.fd) is c]
        client = route.client()
        return [client] if client is not None and self.io.conns.get(client.fd) is client else []

    def _hold(self, process: Process, route: _Route) -> None:
        for fd in process.outputs:
            if self.io.watching(fd):
                self.io.unwatch(fd)
        route.held_since = route.progress_at = time.monotonic()

    def client_progressed(self, conn: Conn) -> None:
        """`conn` took some of what it was owed (or went away): the processes held back
        for it are read again once every client they wait for is down to BACKLOG_LOW."""
        now = time.monotonic()
        for process, route in list(self._routes.items()):
            if not route.held_since:
                continue
            receivers = self._receivers(route)
            if conn in receivers:
                route.progress_at = now
            if all(len(c.out) <= BACKLOG_LOW for c in receivers):
                self._release(process, route)

    def _release(self, process: Process, route: _Route) -> None:
        route.held_since = 0.0
        for fd in process.outputs:
            if route.readers is not None and fd in route.readers and not self.io.watching(fd):
                self.io.watch(fd, selectors.EVENT_READ, route.readers[fd])

    def drop_stalled(self, now: float) -> None:
        """Clients that took nothing for STALL_S while a process waited on them: dropped
        (the process goes on)."""
        for process, route in list(self._routes.items()):
            if route.held_since and now >= route.progress_at + STALL_S:
                for conn in self._receivers(route):
                    if len(conn.out) > BACKLOG_LOW:
                        diaglog.warn(f"a client took none of its output for {STALL_S:g}s: "
                                     "dropped, so that the process goes on", key="stalled-client")
                        self.io.drop(conn)
                if route.held_since and all(len(c.out) <= BACKLOG_LOW for c in self._receivers(route)):
                    self._release(process, route)

    def close_output(self, process: Process, fd: int) -> None:
        route = self._routes.get(process)
        if route is not None and route.gather is not None:
            self._send_gathered(process, route.gather, time.monotonic())  # then EOF
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
        """When held terminal output is next due, or the output of an exited process is
        next due to be cut off."""
        deadlines = [p.drain_deadline for p, r in self._routes.items()
                     if p.exit and p.outputs and not r.held_since]
        deadlines += [
            r.gather.due for r in self._routes.values() if r.gather is not None and r.gather.fill
        ]
        deadlines += [r.progress_at + STALL_S for r in self._routes.values() if r.held_since]
        return min(deadlines) if deadlines else None

    def close_overdue(self, now: float) -> None:
        """Stray writers (a daemonised grandchild) may hold the pipes of an exited
        process for ever; its output ends at its drain deadline."""
        for process, route in list(self._routes.items()):
            if route.held_since:
                continue  # not read while a client is behind: the stall limit bounds it
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


# A terminal's output goes in batches of up to this much while it flows (see the module's
# docstring), after room for the frame's header; held at most `_HOLD` seconds. A terminal
# quiet that long sends what comes next at once, until more than `_BURST` bytes went.
_TERMINAL_BATCH = 128 << 10
_HEAD = wire.OUTPUT_HEADER_SIZE
_HOLD = 0.002
_BURST = 4 << 10


def _read_terminal(fd: int, buf: mmap.mmap, start: int) -> int | None:
    """Read what the terminal has into `buf` from `start` on, as far as `buf` goes.

    A terminal hands out at most 4 KiB a read: this reads on while it has more at once.
    The bytes read; 0 when it had none after all; None at its end (EOF, or EIO once
    every writer closed the terminal).
    """
    view = memoryview(buf)
    try:
        try:
            got = os.readv(fd, [view[start:]])
        except BlockingIOError:
            return 0
        except OSError:
            return None
        if not got:
            return None
        end = start + got
        while end < len(view):
            try:
                more = os.readv(fd, [view[end:]])
            except OSError:  # BlockingIOError: drained for now; an EIO shows on the next read
                break
            if not more:
                break
            end += more
        return end - start
    finally:
        view.release()
