"""Damaged container log files: every undamaged record is still read, in order, once.

A record damaged in the middle of a file (a bit flip, a zeroed block after a host crash,
bytes overwritten, a length that claims a huge size) must cost that record only: readers
skip to the next valid record and report each gap once, with its file and offset.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pallet.shim.api import logframes
from pallet.shim.api.logframes import FILE_HEADER_SIZE, MAX_RECORD_DATA, RECORD_OVERHEAD
from pallet.shim.api.logs import (
    Gap,
    GapHandler,
    LogReader,
    Record,
    end_position,
    follow_records,
    read_records,
    read_records_from,
)
from pallet.shim.logfile import LogWriter

T0 = 1_700_000_000_000_000_000
COUNT = 12


@dataclass(frozen=True)
class Span:
    start: int
    end: int


def chunk(i: int) -> bytes:
    return b"record %02d " % i + b"." * (i * 13 % 50) + b"\n"


def write_records(path: str, count: int = COUNT, first: int = 0) -> list[Span]:
    """Append records first..first+count-1; return where each lies in the file."""
    spans = []
    with LogWriter(path) as w:
        off = os.path.getsize(path)
        for i in range(first, first + count):
            w.write(1 + i % 2, chunk(i), T0 + i)
            end = off + RECORD_OVERHEAD + len(chunk(i))
            spans.append(Span(off, end))
            off = end
    return spans


def poke(path: str, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def flip_bit(path: str, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x10]))


def read_u32(path: str, offset: int) -> int:
    with open(path, "rb") as f:
        f.seek(offset)
        value: int = struct.unpack("<I", f.read(4))[0]
        return value


# Each damage: what it does to the file, and which records it damages.
Damage = Callable[[str, list[Span]], set[int]]


def first_record_nonce_bit(path: str, s: list[Span]) -> set[int]:
    flip_bit(path, s[0].start + 4)
    return {0}


def middle_record_huge_length(path: str, s: list[Span]) -> set[int]:
    poke(path, s[5].start, struct.pack("<I", 0xFFFF_FFF0))
    return {5}


def middle_record_length_off_by_some(path: str, s: list[Span]) -> set[int]:
    length = read_u32(path, s[5].start)
    poke(path, s[5].start, struct.pack("<I", length + 40))  # points into record 6
    return {5}


def middle_record_length_a_little_short(path: str, s: list[Span]) -> set[int]:
    length = read_u32(path, s[6].start)
    poke(path, s[6].start, struct.pack("<I", length - 3))
    return {6}


def middle_record_stream_byte(path: str, s: list[Span]) -> set[int]:
    poke(path, s[4].start + 8, b"\x07")
    return {4}


def middle_record_trailer_zeroed(path: str, s: list[Span]) -> set[int]:
    poke(path, s[5].end - 8, bytes(8))
    return {5}


def zeroed_block_over_four_records(path: str, s: list[Span]) -> set[int]:
    poke(path, s[3].start + 10, bytes(s[6].start + 5 - (s[3].start + 10)))
    return {3, 4, 5, 6}


def overwritten_across_a_boundary(path: str, s: list[Span]) -> set[int]:
    poke(path, s[7].end - 4, b"garbage!")
    return {7, 8}


def two_separate_places(path: str, s: list[Span]) -> set[int]:
    flip_bit(path, s[2].start + 1)
    flip_bit(path, s[9].end - 2)
    return {2, 9}


def last_record_but_one(path: str, s: list[Span]) -> set[int]:
    flip_bit(path, s[-2].start + 5)
    return {COUNT - 2}


DAMAGES: list[Damage] = [
    first_record_nonce_bit,
    middle_record_huge_length,
    middle_record_length_off_by_some,
    middle_record_length_a_little_short,
    middle_record_stream_byte,
    middle_record_trailer_zeroed,
    zeroed_block_over_four_records,
    overwritten_across_a_boundary,
    two_separate_places,
    last_record_but_one,
]


def expected_gaps(path: str, spans: list[Span], damaged: set[int]) -> list[tuple[str, int, int]]:
    gaps, i = [], 0
    while i < len(spans):
        if i in damaged:
            j = i
            while j + 1 in damaged:
                j += 1
            gaps.append((path, spans[i].start, spans[j].end - spans[i].start))
            i = j
        i += 1
    return gaps


def as_tuples(gaps: list[Gap]) -> list[tuple[str, int, int]]:
    return sorted((g.file, g.offset, g.length) for g in gaps)


def data(records: list[Record]) -> list[bytes]:
    return [r.data for r in records]


@pytest.fixture
def log(tmp_path: Path) -> str:
    return str(tmp_path / "ctr.log")


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda d: d.__name__)
def test_every_undamaged_record_is_read_in_order_once(log: str, damage: Damage) -> None:
    spans = write_records(log)
    damaged = damage(log, spans)
    want = [chunk(i) for i in range(COUNT) if i not in damaged]
    want_gaps = expected_gaps(log, spans, damaged)

    gaps: list[Gap] = []
    assert data(list(read_records(log, on_gap=gaps.append))) == want
    assert as_tuples(gaps) == want_gaps

    gaps = []  # tail walks backwards from the end: the same records, the same gaps
    assert data(list(read_records(log, tail_lines=1000, on_gap=gaps.append))) == want
    assert as_tuples(gaps) == want_gaps

    gaps = []  # a follower taking one record per call crosses each gap once
    got: list[Record] = []
    records, pos = read_records_from(log, None, max_bytes=1, on_gap=gaps.append)
    while records:
        got += records
        records, pos = read_records_from(log, pos, max_bytes=1, on_gap=gaps.append)
    assert data(got) == want and pos == end_position(log)
    assert as_tuples(gaps) == want_gaps


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda d: d.__name__)
def test_the_writer_keeps_damage_in_the_middle_and_appends_after_it(log: str, damage: Damage) -> None:
    spans = write_records(log)
    damaged = damage(log, spans)
    size = os.path.getsize(log)
    with LogWriter(log) as w:
        assert w.repaired_bytes == 0  # the last record is whole: nothing to cut
        w.write(1, b"after\n", T0 + 100)
    assert os.path.getsize(log) == size + RECORD_OVERHEAD + 6
    assert data(list(read_records(log))) == [chunk(i) for i in range(COUNT) if i not in damaged] + [
        b"after\n"
    ]


def test_tail_takes_lines_from_both_sides_of_a_gap_and_none_from_it(log: str) -> None:
    spans = write_records(log)
    zeroed_block_over_four_records(log, spans)  # records 3..6
    got = list(read_records(log, tail_lines=COUNT - 4 - 1))
    assert data(got) == [chunk(i) for i in [1, 2] + list(range(7, COUNT))]


def test_a_damaged_last_record_before_a_torn_tail_is_cut_with_it(log: str) -> None:
    spans = write_records(log)
    whole = Path(log).read_bytes()
    with open(log, "ab") as f:  # a writer killed mid-record: a header and half its data
        f.write(whole[spans[0].start : spans[0].end - 10])
    flip_bit(log, spans[-1].start + 2)  # ... and the last whole record damaged too
    want = [chunk(i) for i in range(COUNT - 1)]
    gaps: list[Gap] = []
    # Nothing valid follows the damaged record: it is the end, as a torn record is.
    assert data(list(read_records(log, on_gap=gaps.append))) == want
    assert data(list(read_records(log, tail_lines=100, on_gap=gaps.append))) == want
    assert gaps == []
    assert end_position(log).offset == spans[-2].end
    size = os.path.getsize(log)
    with LogWriter(log) as w:
        assert w.repaired_bytes == size - spans[-2].end
        w.write(2, b"restarted\n", T0 + 100)
    assert data(list(read_records(log))) == want + [b"restarted\n"]


def test_a_zeroed_stretch_past_the_last_record_bigger_than_a_record_is_cut_on_reopen(log: str) -> None:
    # After a host crash the file may end in zeros where data never reached the disk.
    spans = write_records(log)
    with open(log, "ab") as f:
        f.write(bytes(MAX_RECORD_DATA * 3))
    want = [chunk(i) for i in range(COUNT)]
    assert data(list(read_records(log))) == want
    assert data(list(read_records(log, tail_lines=100))) == want
    assert end_position(log).offset == spans[-1].end
    with LogWriter(log) as w:
        assert w.repaired_bytes == MAX_RECORD_DATA * 3
        w.write(1, b"next\n", T0 + 100)
    assert data(list(read_records(log))) == want + [b"next\n"]


def test_a_zeroed_block_in_the_middle_of_a_big_log_costs_only_its_records(log: str) -> None:
    big = [os.urandom(200_000) for _ in range(30)]
    with LogWriter(log) as w:
        for i, b in enumerate(big):
            w.write(1, b, T0 + i)
    start = FILE_HEADER_SIZE + 10 * (RECORD_OVERHEAD + 200_000) + 1000
    poke(log, start, bytes(1_500_000))  # records 10..17
    gaps: list[Gap] = []
    assert data(list(read_records(log, on_gap=gaps.append))) == big[:10] + big[18:]
    assert data(list(read_records(log, tail_lines=10**9))) == big[:10] + big[18:]
    record_10 = FILE_HEADER_SIZE + 10 * (RECORD_OVERHEAD + 200_000)
    assert as_tuples(gaps) == [(log, record_10, 8 * (RECORD_OVERHEAD + 200_000))]


def test_damage_in_a_rotated_file_costs_only_its_records(tmp_path: Path) -> None:
    path = str(tmp_path / "ctr.log")
    limit = FILE_HEADER_SIZE + 5 * (RECORD_OVERHEAD + 12)
    with LogWriter(path, max_size=limit, max_files=3) as w:
        for i in range(15):
            w.write(1, b"line %06d\n" % i, T0 + i)
    flip_bit(path + ".1", FILE_HEADER_SIZE + 2 * (RECORD_OVERHEAD + 12) + 5)  # record 7
    gaps: list[Gap] = []
    want = [b"line %06d\n" % i for i in range(15) if i != 7]
    assert data(list(read_records(path, on_gap=gaps.append))) == want
    assert data(read_records_from(path, None, on_gap=gaps.append)[0]) == want
    assert data(list(read_records(path, tail_lines=14, on_gap=gaps.append))) == want
    offset = FILE_HEADER_SIZE + 2 * (RECORD_OVERHEAD + 12)
    assert [(g.file, g.offset, g.length) for g in gaps] == [(path + ".1", offset, RECORD_OVERHEAD + 12)] * 3


def test_a_rotation_after_the_end_was_taken_is_not_damage(tmp_path: Path) -> None:
    """`pallet logs` takes the log's end, then reads up to it; the shim may rotate in
    between, so the end then lies in a replaced file with valid records after it."""
    path = str(tmp_path / "ctr.log")
    limit = FILE_HEADER_SIZE + 5 * (RECORD_OVERHEAD + 12)
    with LogWriter(path, max_size=limit, max_files=3) as w:
        for i in range(7):
            w.write(1, b"line %06d\n" % i, T0 + i)
        pinned = end_position(path)
        for i in range(7, 12):
            w.write(1, b"line %06d\n" % i, T0 + i)
    gaps: list[Gap] = []
    want = [b"line %06d\n" % i for i in range(7)]
    assert data(list(read_records(path, end=pinned, on_gap=gaps.append))) == want
    assert data(list(read_records(path, end=pinned, tail_lines=3, on_gap=gaps.append))) == want[-3:]
    assert gaps == []


def test_a_follower_passes_damage_behind_it_and_ahead_of_it(log: str) -> None:
    spans = write_records(log, 4)
    flip_bit(log, spans[1].start + 4)  # in the history
    gaps: list[Gap] = []
    reader = LogReader(log, on_gap=gaps.append)
    assert data(list(reader.start())) == [chunk(0), chunk(2), chunk(3)]
    more = write_records(log, 4, first=4)
    poke(log, more[1].start, bytes(4))  # record 5, appended after the history was read
    assert data(reader.read_new()) == [chunk(4), chunk(6), chunk(7)]
    assert reader.read_new() == []
    assert as_tuples(gaps) == [(log, spans[1].start, spans[1].end - spans[1].start)] + [
        (log, more[1].start, more[1].end - more[1].start)
    ]


def test_a_record_completed_while_the_reader_looks_is_not_called_damage(
    log: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spans = write_records(log, 3)
    cut = spans[1].start + 30  # the writer is in the middle of record 1 ...
    calls = 0
    real_pread = os.pread

    def pread(fd: int, n: int, offset: int) -> bytes:
        # ... for the reader's first two reads of records; by its third it has written
        # records 1 and 2.
        nonlocal calls
        got = real_pread(fd, n, offset)
        if offset < FILE_HEADER_SIZE:
            return got
        calls += 1
        return got[: max(0, cut - offset)] if calls <= 2 else got

    class FakeOs:
        def __getattr__(self, name: str) -> Any:
            return pread if name == "pread" else getattr(os, name)

    monkeypatch.setattr(logframes, "os", FakeOs())
    gaps: list[Gap] = []
    records, _ = read_records_from(log, None, on_gap=gaps.append)
    assert data(records) == [chunk(0), chunk(1), chunk(2)] and gaps == []


async def test_logs_follow_survives_a_record_damaged_while_following(log: str) -> None:
    write_records(log, 2)
    done = False
    gaps: list[Gap] = []
    got: list[Record] = []
    # The follower reads only when asked for its next batch: what is written between two
    # batches is all there, damage included, before it looks.
    async for batch in follow_records(log, done=lambda: done, poll_interval=0.01, on_gap=gaps.append):
        got += batch
        if not done:
            spans = write_records(log, 3, first=2)
            poke(log, spans[1].start, b"\xff" * 6)  # record 3: its length and nonce
            write_records(log, 2, first=5)
            done = True
    assert data(got) == [chunk(i) for i in range(7) if i != 3]
    assert as_tuples(gaps) == [(log, spans[1].start, spans[1].end - spans[1].start)]


def test_damage_at_the_end_of_a_rotated_file_is_a_gap_not_a_torn_record(tmp_path: Path) -> None:
    # Only the newest file can have a record in flight; in an older one, the bytes after
    # its last valid record are damage, and said so.
    path = str(tmp_path / "ctr.log")
    record = RECORD_OVERHEAD + 12
    limit = FILE_HEADER_SIZE + 5 * record
    with LogWriter(path, max_size=limit, max_files=3) as w:
        for i in range(15):
            w.write(1, b"line %06d\n" % i, T0 + i)
    flip_bit(path + ".1", FILE_HEADER_SIZE + 4 * record + 4)  # record 9, the file's last
    want = [b"line %06d\n" % i for i in range(15) if i != 9]
    gap = (path + ".1", FILE_HEADER_SIZE + 4 * record, record)
    readers: list[Callable[[GapHandler], list[Record]]] = [
        lambda on_gap: list(read_records(path, on_gap=on_gap)),
        lambda on_gap: list(read_records(path, tail_lines=100, on_gap=on_gap)),
        lambda on_gap: read_records_from(path, None, on_gap=on_gap)[0],
    ]
    for read in readers:
        gaps: list[Gap] = []
        assert data(read(gaps.append)) == want
        assert as_tuples(gaps) == [gap]
