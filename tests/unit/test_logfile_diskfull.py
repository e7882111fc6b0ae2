"""The container log on a disk that fills up: what `pallet logs` shows, what the shim warns.

The disk is a fake: `os.writev`/`os.write` refuse (ENOSPC, after a short write, as a real
full filesystem does) once the log file would pass `Disk.capacity` bytes; raising the
capacity is "space freed".
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pallet.shim.api.logframes import FILE_HEADER_SIZE, MAX_RECORD_DATA, RECORD_OVERHEAD
from pallet.shim.api.logs import STDERR, STDOUT, Record, read_records, read_records_from
from pallet.shim.logfile import RESUME_ROOM, LogWriter

T0 = 1_700_000_000_000_000_000


class Disk:
    """Room for `capacity` bytes in the log file; writes past it are cut short, then refused."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, path: str, capacity: int) -> None:
        self.path = path
        self.capacity = capacity
        self.refused = 0
        real_writev, real_write = os.writev, os.write

        def room(fd: int) -> int | None:
            try:
                if os.path.samefile(f"/proc/self/fd/{fd}", self.path):
                    return self.capacity - os.fstat(fd).st_size
            except OSError:
                pass
            return None  # not the log: pytest's own output

        def writev(fd: int, parts: list[bytes | memoryview]) -> int:
            left = room(fd)
            if left is None:
                return real_writev(fd, parts)
            return write(fd, b"".join(bytes(p) for p in parts))

        def write(fd: int, data: bytes | memoryview) -> int:
            left = room(fd)
            if left is None or left >= len(data):
                return real_write(fd, data)
            if left <= 0:
                self.refused += 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_write(fd, bytes(data)[:left])

        real_fstatvfs = os.fstatvfs

        def fstatvfs(fd: int) -> object:
            left = room(fd)
            if left is None:
                return real_fstatvfs(fd)
            return _Statvfs(f_bfree=max(left, 0), f_frsize=1)

        monkeypatch.setattr(os, "writev", writev)
        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(os, "fstatvfs", fstatvfs)


@dataclass
class _Statvfs:
    f_bfree: int
    f_frsize: int


@pytest.fixture
def log(tmp_path: Path) -> str:
    return str(tmp_path / "ctr.log")


@pytest.fixture
def warnings() -> list[str]:
    return []


@pytest.fixture
def writer(log: str, warnings: list[str]) -> Iterator[LogWriter]:
    with LogWriter(log, warn=warnings.append) as w:
        yield w


def line(i: int) -> bytes:
    return b"line %04d\n" % i  # 10 bytes


def output(records: list[Record]) -> list[tuple[int, bytes]]:
    return [(r.stream, r.data) for r in records]


def test_output_the_full_disk_refuses_shows_as_one_counted_gap_once_space_is_freed(
    log: str, writer: LogWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = Disk(monkeypatch, log, capacity=FILE_HEADER_SIZE + 3 * (RECORD_OVERHEAD + 10) + 5)
    results = [writer.write(STDOUT, line(i), T0 + i) for i in range(100)]
    assert results == [True] * 3 + [False] * 97  # the container goes on; its output is dropped
    writer.write(STDERR, b"E" * 1000, T0 + 100)
    assert disk.refused > 0
    disk.capacity = 1 << 20  # space freed
    assert writer.write(STDOUT, b"after\n", T0 + 200)
    got = list(read_records(log))
    assert output(got) == [
        (STDOUT, line(0)),
        (STDOUT, line(1)),
        (STDOUT, line(2)),
        (STDERR, b"[pallet: 1.9 KiB of output dropped: the log disk was full]\n"),
        (STDOUT, b"after\n"),
    ]
    assert got[3].dropped == 97 * 10 + 1000  # exactly what was refused
    assert [r.dropped for r in got if r is not got[3]] == [0, 0, 0, 0]


def test_a_full_disk_is_warned_about_once_per_stretch_not_once_per_write(
    log: str, writer: LogWriter, warnings: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = Disk(monkeypatch, log, capacity=FILE_HEADER_SIZE)
    for i in range(10_000):
        writer.write(STDOUT, line(i), T0 + i)
    assert len(warnings) == 1
    assert "cannot write the log" in warnings[0] and "the log disk was full" in warnings[0]
    disk.capacity = 1 << 20
    writer.write(STDOUT, b"x\n", T0 + 20_000)
    assert len(warnings) == 2 and "again" in warnings[1] and "100000 bytes" in warnings[1]
    disk.capacity = os.path.getsize(log)  # full again: a second stretch, a second warning
    for i in range(100):
        writer.write(STDOUT, line(i), T0 + 30_000 + i)
    assert len(warnings) == 3


def test_a_gap_still_open_when_the_output_stops_is_recorded_when_the_disk_has_room(
    log: str, writer: LogWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = Disk(monkeypatch, log, capacity=FILE_HEADER_SIZE)
    writer.write(STDOUT, b"lost\n", T0)
    assert writer.dropping
    assert not writer.flush_drops(T0 + 1)  # still full: the shim's timer tries again later
    disk.capacity = 1 << 20
    assert writer.flush_drops(T0 + 2)
    assert not writer.dropping
    assert output(list(read_records(log))) == [
        (STDERR, b"[pallet: 5 B of output dropped: the log disk was full]\n")
    ]


def test_closing_records_an_open_gap_if_the_disk_has_room(
    log: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = Disk(monkeypatch, log, capacity=FILE_HEADER_SIZE)
    w = LogWriter(log)
    w.write(STDOUT, b"x" * 3000, T0)
    disk.capacity = 1 << 20
    w.close()
    assert [r.dropped for r in read_records(log)] == [3000]


def test_part_of_a_big_chunk_kept_counts_only_the_rest_as_dropped(
    log: str, writer: LogWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A chunk bigger than one record is split; the disk fills after the first record.
    disk = Disk(monkeypatch, log, capacity=FILE_HEADER_SIZE + RECORD_OVERHEAD + MAX_RECORD_DATA)
    big = b"a" * MAX_RECORD_DATA + b"b" * 1000
    assert not writer.write(STDOUT, big, T0)
    disk.capacity = 1 << 30
    writer.flush_drops(T0 + 1)
    got = list(read_records(log))
    assert [len(r.data) for r in got[:1]] == [MAX_RECORD_DATA]
    assert got[1].dropped == 1000


def test_the_gap_line_is_served_on_stderr_by_every_reader(
    log: str, writer: LogWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer.write(STDOUT, b"before\n", T0)
    disk = Disk(monkeypatch, log, capacity=os.path.getsize(log))
    writer.write(STDOUT, b"x" * (3 << 20), T0 + 1)
    disk.capacity = 1 << 30
    writer.write(STDOUT, b"after\n", T0 + 2)
    note = b"[pallet: 3.0 MiB of output dropped: the log disk was full]\n"
    # --tail reads backwards from the end.
    assert output(list(read_records(log, tail_lines=2))) == [(STDERR, note), (STDOUT, b"after\n")]
    # --stdout only: the note is stderr's.
    assert output(list(read_records(log, streams=frozenset({STDOUT})))) == [
        (STDOUT, b"before\n"),
        (STDOUT, b"after\n"),
    ]
    assert output(list(read_records(log, streams=frozenset({STDERR})))) == [(STDERR, note)]
    # The note is timed when the disk took output again; --since before it shows it.
    assert output(list(read_records(log, since_ns=T0 + 1))) == [(STDERR, note), (STDOUT, b"after\n")]
    records, _ = read_records_from(log)
    assert output(records) == [(STDOUT, b"before\n"), (STDERR, note), (STDOUT, b"after\n")]


def test_a_disk_that_never_frees_leaves_the_log_readable(
    log: str, writer: LogWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer.write(STDOUT, b"kept\n", T0)
    size = os.path.getsize(log)
    Disk(monkeypatch, log, capacity=size + 30)  # room for part of a record only
    for i in range(50):
        assert not writer.write(STDOUT, line(i), T0 + 1 + i)
        writer.flush_drops(T0 + 100 + i)
    writer.close()
    assert os.path.getsize(log) == size  # no torn record left behind
    assert output(list(read_records(log))) == [(STDOUT, b"kept\n")]


def test_a_few_bytes_freed_do_not_end_the_stretch_but_the_end_of_the_output_records_it(
    log: str, writer: LogWriter, warnings: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = Disk(monkeypatch, log, capacity=FILE_HEADER_SIZE)
    for i in range(10):
        writer.write(STDOUT, line(i), T0 + i)
    # Another file on the disk shrinks a little: not enough to take output again, so no
    # gap record per chunk (each would be a stretch of its own, and a warning).
    disk.capacity += 200
    for i in range(10, 20):
        assert not writer.write(STDOUT, line(i), T0 + i)
        assert not writer.flush_drops(T0 + i)
    assert list(read_records(log)) == [] and len(warnings) == 1
    # The container exited: nothing competes for the room left, the gap goes in it.
    assert writer.flush_drops(T0 + 100, final=True)
    assert [r.dropped for r in read_records(log)] == [200]
    disk.capacity += RESUME_ROOM + 100
    assert writer.write(STDOUT, b"more\n", T0 + 200)
