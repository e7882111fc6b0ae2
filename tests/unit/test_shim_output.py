"""A terminal's output in the shim: what is typed goes at once, a flow goes in batches.

Drives `pallet.shim.output.Output` as the shim's loop does (poll, then the timers) on a
real pseudo-terminal, with a real log file and an attached client on a socketpair, and
checks what the client and the log get: when, in how many frames and records, and
that it is all there, in order, before the end of the output. No clock is waited on:
held output is let go by calling the timer with its own deadline.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import tty
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pallet.shim.api import messages, wire
from pallet.shim.api.logs import read_records
from pallet.shim.api.messages import EofEvent
from pallet.shim.children import Process
from pallet.shim.connections import Connections
from pallet.shim.logfile import LogWriter
from pallet.shim.output import Output


class _NoStatus:
    fd = -1
    eof = True

    def read_available(self) -> list[dict[str, Any]]:
        return []

    def read_failure(self) -> str:
        return ""


@dataclass
class Rig:
    """One terminal process's output plumbing: its slave to write, a client to read."""

    output: Output
    io: Connections
    process: Process
    slave: int
    client: socket.socket
    log_path: str
    drained: list[bool] = field(default_factory=list)
    decoder: wire.FrameDecoder = field(default_factory=wire.FrameDecoder)

    def read_once(self) -> None:
        """One turn of the shim's loop once the terminal has output (its timers not run)."""
        self.io.poll(10)

    def frames(self) -> list[wire.Frame]:
        """What the attached client has been sent so far."""
        got: list[wire.Frame] = []
        while True:
            try:
                data = self.client.recv(1 << 20)
            except BlockingIOError:
                return got
            if not data:
                return got
            got.extend(self.decoder.feed(data))

    def logged(self) -> list[bytes]:
        return [r.data for r in read_records(self.log_path)]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    io = Connections(lambda conn, kind, payload: None, lambda conn: None)
    output = Output(io)
    log_path = str(tmp_path / "container.log")
    output.log = LogWriter(log_path)
    master, slave = os.openpty()
    tty.setraw(slave)  # bytes as written: no \n -> \r\n on the way
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    conn = io.add(ours)
    conn.mode, conn.stdout = "attach", True
    output.attached.append(conn)
    out_fd = os.dup(master)
    os.set_blocking(out_fd, False)
    process = Process(4242, {out_fd: wire.STDOUT}, None, _NoStatus())
    process.console = master
    rig = Rig(output, io, process, slave, theirs, log_path)
    output.watch(process, None, lambda: rig.drained.append(True))
    yield rig
    if rig.slave >= 0:
        os.close(rig.slave)
    output.close_process(process)
    output.log.close()
    for conn in list(io.conns.values()):
        io.drop(conn)
    io.sel.close()
    theirs.close()


def _write_flow(slave: int, size: int) -> bytes:
    """Write up to `size` bytes at once without waiting (what the terminal takes: it
    holds some 16 KiB unread); the bytes written, more than a quiet terminal sends at
    once (4 KiB)."""
    flow = (bytes(range(256)) * (size // 256 + 1))[:size]
    os.set_blocking(slave, False)
    try:
        written = os.write(slave, flow)
    finally:
        os.set_blocking(slave, True)
    assert written > 4096
    return flow[:written]


def _data(frames: list[wire.Frame]) -> list[bytes]:
    return [wire.decode_output(payload)[1] for kind, payload in frames if kind == wire.STDOUT]


def test_a_keystroke_echo_goes_at_once(rig: Rig) -> None:
    os.write(rig.slave, b"x")
    rig.read_once()
    assert _data(rig.frames()) == [b"x"]
    assert rig.logged() == [b"x"]
    assert rig.output.next_deadline() is None  # nothing held


def test_a_flow_is_held_until_its_deadline_then_goes_as_one_frame_and_record(rig: Rig) -> None:
    flow = _write_flow(rig.slave, 12 << 10)
    rig.read_once()
    due = rig.output.next_deadline()
    assert due is not None
    assert rig.frames() == [] and rig.logged() == []  # held
    rig.output.release_held(due - 0.001)
    assert rig.frames() == []  # not yet due
    rig.output.release_held(due)
    assert _data(rig.frames()) == [flow]
    assert rig.logged() == [flow]
    assert rig.output.next_deadline() is None


def test_held_output_goes_before_the_end_of_the_output(rig: Rig) -> None:
    flow = _write_flow(rig.slave, 12 << 10)
    rig.read_once()
    assert rig.output.next_deadline() is not None
    os.close(rig.slave)  # every writer gone: the next read is the end (EIO)
    rig.slave = -1
    for _ in range(100):
        if rig.drained:
            break
        rig.io.poll(0.1)
    assert rig.drained == [True]
    frames = rig.frames()
    assert _data(frames) == [flow]
    assert frames[-1][0] == wire.CONTROL
    assert isinstance(messages.decode(wire.decode_control(frames[-1][1]), messages.Event), EofEvent)
    assert rig.logged() == [flow]


def test_a_long_output_arrives_complete_and_in_order_in_fewer_frames_than_reads(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = 0
    real_readv = os.readv

    def readv(fd: int, buffers: Any) -> int:
        nonlocal reads
        got = real_readv(fd, buffers)
        reads += got > 0
        return got

    monkeypatch.setattr(os, "readv", readv)
    # 4 MB of numbered lines from another process, as a container's program writes them.
    script = "import sys\nfor i in range(400000): sys.stdout.write(f'{i:09d}\\n')\nsys.stdout.flush()"
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=rig.slave)
    os.close(rig.slave)
    rig.slave = -1
    frames: list[wire.Frame] = []
    deadline = time.monotonic() + 60
    while not rig.drained and time.monotonic() < deadline:
        rig.io.poll(0.05)
        rig.output.release_held(time.monotonic())
        frames += rig.frames()  # keep the client's socket drained, as palletd does
    assert writer.wait(10) == 0
    frames += rig.frames()
    expected = b"".join(f"{i:09d}\n".encode() for i in range(400000))
    sent = _data(frames)
    assert b"".join(sent) == expected
    logged = rig.logged()
    assert b"".join(logged) == expected
    # A terminal hands out at most 4 KiB a read (over 1,000 reads for 4 MB); a flow goes
    # in batches of many reads (one frame and record a read or two before batching).
    assert reads >= 1000
    assert len(sent) == len(logged) < reads / 4
