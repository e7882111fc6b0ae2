"""The shim's selector and its client connections, with per-client output buffers.

Owns: the `selectors` loop every fd of the shim is watched by, accepting clients, reading
whole frames off them, buffering what we send so a slow or vanished client never blocks
the shim (past a limit it is dropped instead; `on_progress` hears each send that took
some of a client's backlog, so output held back for it can flow again), pausing a
client's reads, and closing.
Must not: interpret frames; `pallet.shim.server` gets them through `on_frame`, and hears
of a closed client through `on_drop`. Knows nothing of the processes a client is about.
"""

from __future__ import annotations

import selectors
import socket
from collections.abc import Callable

from pallet.v1.errors import InvalidArgument
from pallet.shim.api import wire
from pallet.shim.processes import log_exception

READ_CHUNK = 65536
CLIENT_BUFFER_LIMIT = 8 << 20  # a client this far behind is dropped, never waited for

Handler = Callable[[int], None]


class Conn:
    """One client connection: a control channel, a wait, an attach or an exec stream."""

    __slots__ = (
        "sock", "fd", "decoder", "out", "mode", "stdout", "stderr", "stdin", "exec_pid",
        "close_after_flush", "paused", "handler",
    )

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.decoder = wire.FrameDecoder()
        self.out = bytearray()
        self.mode = "control"
        self.stdout = self.stderr = self.stdin = False
        self.exec_pid = 0  # an exec connection: the pid of the exec it streams, until it ends
        self.close_after_flush = False
        self.paused = False  # not reading: the stdin it feeds is backed up
        self.handler: Handler = lambda mask: None


class Connections:
    """All the shim's watched fds; its clients by fd."""

    def __init__(
        self,
        on_frame: Callable[[Conn, int, bytes], None],
        on_drop: Callable[[Conn], None],
    ) -> None:
        self.sel = selectors.DefaultSelector()
        self.conns: dict[int, Conn] = {}
        self._on_frame = on_frame
        self._on_drop = on_drop
        self.on_progress: Callable[[Conn], None] = lambda conn: None

    # -- any fd ------------------------------------------------------------------------

    def watch(self, fd: int | socket.socket, events: int, handler: Handler) -> None:
        self.sel.register(fd, events, handler)

    def unwatch(self, fd: int | socket.socket) -> None:
        self.sel.unregister(fd)

    def watching(self, fd: int) -> bool:
        return fd in self.sel.get_map()

    def poll(self, timeout: float | None) -> None:
        """Wait for one round of events and run their handlers."""
        for key, mask in self.sel.select(timeout):
            handler: Handler = key.data
            try:
                handler(mask)
            except Exception:  # noqa: BLE001 - a bug in one handler must not orphan the container
                log_exception(f"handler for fd {key.fd} failed")

    # -- clients -------------------------------------------------------------------------

    def add(self, sock: socket.socket) -> Conn:
        sock.setblocking(False)
        conn = Conn(sock)
        conn.handler = lambda mask: self._on_conn(conn, mask)
        self.conns[conn.fd] = conn
        self.sel.register(conn.fd, selectors.EVENT_READ, conn.handler)
        return conn

    def _on_conn(self, conn: Conn, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self.flush(conn)
        if not mask & selectors.EVENT_READ or conn.fd not in self.conns:
            return
        try:
            data = conn.sock.recv(READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.drop(conn)
            return
        try:
            frames = conn.decoder.feed(data)
        except wire.FrameError as exc:
            self.send(conn, wire.encode_control(wire.error_reply(InvalidArgument(str(exc)))))
            conn.close_after_flush = True
            self.flush(conn)
            return
        for kind, payload in frames:
            if conn.fd not in self.conns:
                return
            self._on_frame(conn, kind, payload)

    def send(self, conn: Conn, data: bytes | memoryview) -> None:
        if conn.fd not in self.conns:
            return
        if not conn.out:
            # The usual case, a client keeping up: straight to its socket, no copy into
            # the buffer and no selector change.
            try:
                sent = conn.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.drop(conn)
                return
            if sent == len(data):
                if conn.close_after_flush:
                    self.drop(conn)
                return
            data = data[sent:]
        if len(conn.out) + len(data) > CLIENT_BUFFER_LIMIT:
            self.drop(conn)  # too slow: its output would otherwise pile up in the shim
            return
        conn.out += data
        self.flush(conn)

    def flush(self, conn: Conn) -> None:
        before = len(conn.out)
        while conn.out:
            try:
                sent = conn.sock.send(conn.out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.drop(conn)
                return
            del conn.out[:sent]
        if not conn.out and conn.close_after_flush:
            self.drop(conn)
            return
        self.update_events(conn)
        if len(conn.out) < before:
            self.on_progress(conn)

    def set_paused(self, conn: Conn, paused: bool) -> None:
        if conn.paused != paused:
            conn.paused = paused
            self.update_events(conn)

    def update_events(self, conn: Conn) -> None:
        if conn.fd not in self.conns:
            return
        events = (0 if conn.paused else selectors.EVENT_READ) | (
            selectors.EVENT_WRITE if conn.out else 0
        )
        key = self.sel.get_map().get(conn.fd)
        if key is None:
            if events:
                self.sel.register(conn.fd, events, conn.handler)
        elif not events:
            self.sel.unregister(conn.fd)
        elif key.events != events:
            self.sel.modify(conn.fd, events, conn.handler)

    def drop(self, conn: Conn) -> None:
        if self.conns.pop(conn.fd, None) is None:
            return
        if conn.fd in self.sel.get_map():
            self.sel.unregister(conn.fd)
        conn.sock.close()
        self._on_drop(conn)

    def flush_all_blocking(self, timeout: float = 1.0) -> None:
        """Before the shim exits: give every client what it is owed, then close."""
        for conn in list(self.conns.values()):
            try:
                conn.sock.settimeout(timeout)
                conn.sock.sendall(conn.out)
            except OSError:
                pass
            conn.sock.close()
        self.conns.clear()
