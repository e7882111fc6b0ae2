"""A client behind on a process's output holds the process back; one that takes nothing
for STALL_S is dropped and the process goes on (`pallet.shim.output`).

Drives `Output` and `Connections` as the shim's loop does, with a real pipe as the
process's stdout and an attached client on a socketpair that reads only when told.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from pallet.shim.api import wire
from pallet.shim.children import Process
from pallet.shim.connections import Conn, Connections
from pallet.shim.output import BACKLOG_HIGH, BACKLOG_LOW, STALL_S, Output


class _NoStatus:
    fd = -1
    eof = True

    def read_available(self) -> list[dict[str, Any]]:
        return []

    def read_failure(self) -> str:
        return ""


@dataclass
class Rig:
    output: Output
    io: Connections
    read_end: int
    write_end: int
    conn: Conn
    client: socket.socket
    written: bytearray = field(default_factory=bytearray)
    received: bytearray = field(default_factory=bytearray)
    decoder: wire.FrameDecoder = field(default_factory=wire.FrameDecoder)

    def write_some(self) -> int:
        """What the pipe takes now, written (the process's output)."""
        chunk = os.urandom(64 << 10)
        try:
            n = os.write(self.write_end, chunk)
        except BlockingIOError:
            return 0
        self.written += chunk[:n]
        return n

    def turn(self) -> None:
        self.io.poll(0)

    def receive(self) -> None:
        """The client reads what its socket has."""
        while True:
            try:
                data = self.client.recv(1 << 20)
            except BlockingIOError:
                return
            for kind, payload in self.decoder.feed(data):
                if kind == wire.STDOUT:
                    self.received += wire.decode_output(payload)[1]

    @property
    def reading(self) -> bool:
        return self.io.watching(self.read_end)


@pytest.fixture
def rig() -> Iterator[Rig]:
    io = Connections(lambda conn, kind, payload: None, lambda conn: None)
    output = Output(io)
    io.on_progress = output.client_progressed
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 << 10)
    theirs.setblocking(False)
    conn = io.add(ours)
    conn.mode, conn.stdout = "attach", True
    output.attached.append(conn)
    process = Process(4242, {r: wire.STDOUT}, None, _NoStatus())
    output.watch(process, None, lambda: None)
    yield Rig(output, io, r, w, conn, theirs)
    output.close_process(process)
    os.close(w)
    for c in list(io.conns.values()):
        io.drop(c)
    io.sel.close()
    theirs.close()


def _until_held(rig: Rig) -> None:
    for _ in range(10_000):
        rig.write_some()
        rig.turn()
        if not rig.reading:
            return
    pytest.fail("the process was never held back for a client that does not read")


def test_a_client_behind_holds_the_process_back_and_loses_nothing(rig: Rig) -> None:
    _until_held(rig)
    assert rig.conn.fd in rig.io.conns, "held back for, not dropped"
    assert len(rig.conn.out) >= BACKLOG_HIGH
    while rig.write_some():
        pass  # the pipe fills: the process would block in write(2) now
    # The client catches up: the pipe is read again, and all of it arrives, in order.
    for _ in range(100_000):
        rig.receive()
        rig.turn()
        if len(rig.received) == len(rig.written):
            break
    assert bytes(rig.received) == bytes(rig.written)
    assert rig.reading and len(rig.conn.out) <= BACKLOG_LOW


def test_a_client_that_takes_nothing_is_dropped_after_the_stall_limit(rig: Rig) -> None:
    _until_held(rig)
    now = time.monotonic()
    deadline = rig.output.next_deadline()
    assert deadline is not None and now < deadline <= now + STALL_S + 1
    rig.output.drop_stalled(now + STALL_S / 2)
    assert rig.conn.fd in rig.io.conns and not rig.reading, "not yet"
    rig.output.drop_stalled(now + STALL_S + 1)
    assert rig.conn.fd not in rig.io.conns, "dropped"
    assert rig.reading, "the process goes on"
