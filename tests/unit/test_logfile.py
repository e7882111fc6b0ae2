"""The container log file: what `pallet logs` would show after the shim wrote it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pallet.v1.errors import FailedPrecondition, InvalidArgument
from pallet.shim.api.logframes import FILE_HEADER_SIZE, MAX_RECORD_DATA, RECORD_OVERHEAD
from pallet.shim.api.logs import (
    START,
    LogPosition,
    LogReader,
    Record,
    end_position,
    follow_records,
    read_records,
    read_records_from,
)
from pallet.shim.logfile import LogWriter

T0 = 1_700_000_000_000_000_000


def text(records: list[Record] | object) -> bytes:
    assert isinstance(records, list)
    return b"".join(r.data for r in records)


@pytest.fixture
def log(tmp_path: Path) -> str:
    return str(tmp_path / "ctr.log")


def write_all(path: str, chunks: list[tuple[int, bytes]], **kwargs: int) -> None:
    with LogWriter(path, **kwargs) as w:
        for i, (stream, data) in enumerate(chunks):
            w.write(stream, data, T0 + i)


# --- round trip and validation ------------------------------------------------------------


def test_round_trip_keeps_stream_time_and_bytes(log: str) -> None:
    chunks = [(1, b"hello\n"), (2, b"oops\n"), (1, bytes(range(256)) * 100), (1, b"no newline")]
    write_all(log, chunks)
    got = list(read_records(log))
    assert got == [Record(s, T0 + i, d) for i, (s, d) in enumerate(chunks)]


def test_empty_writes_are_not_recorded(log: str) -> None:
    write_all(log, [(1, b""), (1, b"x")])
    assert [r.data for r in read_records(log)] == [b"x"]


def test_chunks_over_the_record_limit_are_split_without_loss(log: str) -> None:
    big = os.urandom(MAX_RECORD_DATA * 2 + 5)
    write_all(log, [(2, big)])
    got = list(read_records(log))
    assert len(got) == 3 and all(r.stream == 2 and r.time_ns == T0 for r in got)
    assert text(got) == big


def test_bad_stream_and_write_after_close_are_refused(log: str) -> None:
    w = LogWriter(log)
    with pytest.raises(InvalidArgument, match="stream must be 1"):
        w.write(3, b"x", T0)
    w.close()
    w.close()
    with pytest.raises(FailedPrecondition, match="closed"):
        w.write(1, b"x", T0)
    assert list(read_records(log)) == []


def test_bad_writer_options_are_refused_and_create_nothing(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="max files"):
        LogWriter(str(tmp_path / "a.log"), max_size=10, max_files=0)
    with pytest.raises(InvalidArgument, match="max size"):
        LogWriter(str(tmp_path / "a.log"), max_size=-1)
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_log_is_refused_and_left_alone(log: str) -> None:
    Path(log).write_bytes(b'{"log":"docker json"}\n')
    with pytest.raises(InvalidArgument, match="not a pallet log file"):
        LogWriter(log)
    with pytest.raises(InvalidArgument, match="not a pallet log file"):
        list(read_records(log))
    assert Path(log).read_bytes() == b'{"log":"docker json"}\n'


def test_bad_filters_are_refused(log: str) -> None:
    write_all(log, [(1, b"x\n")])
    with pytest.raises(InvalidArgument, match="streams"):
        read_records(log, streams=frozenset({3}))
    with pytest.raises(InvalidArgument, match="streams"):
        read_records_from(log, None, streams=frozenset())


def test_no_log_file_reads_as_empty(log: str) -> None:
    assert list(read_records(log)) == []
    assert list(read_records(log, tail_lines=5)) == []
    assert end_position(log) == START
    assert read_records_from(log, None) == ([], START)


def test_reopening_appends(log: str) -> None:
    write_all(log, [(1, b"first\n")])
    with LogWriter(log) as w:
        assert w.repaired_bytes == 0
        w.write(2, b"second\n", T0 + 10)
    assert text(list(read_records(log))) == b"first\nsecond\n"


# --- torn tails -----------------------------------------------------------------------------


def torn_tail_cases() -> list[bytes]:
    # What a writer killed mid-record leaves: part of a header, a header and some data,
    # all but the trailer; and zeros where a crashed filesystem extended the file.
    return [b"\x05\x00", b"\x00" * 40]


def make_torn(path: str, cut: int) -> bytes:
    """Write 3 records, then a 4th cut after `cut` bytes, as a writer killed mid-write."""
    write_all(path, [(1, b"one\n"), (2, b"two\n"), (1, b"three\n")])
    whole = Path(path).read_bytes()
    write_all(path, [(1, b"four: lost\n")])
    full = Path(path).read_bytes()
    Path(path).write_bytes(full[: len(whole) + cut])
    return whole


@pytest.mark.parametrize("cut", [1, 19, 20, 25, 30, RECORD_OVERHEAD + 10])
def test_readers_stop_before_a_torn_last_record(log: str, cut: int) -> None:
    whole = make_torn(log, cut)
    assert text(list(read_records(log))) == b"one\ntwo\nthree\n"
    assert text(list(read_records(log, tail_lines=1))) == b"three\n"
    assert end_position(log).offset == len(whole)


@pytest.mark.parametrize("cut", [1, 20, 30])
def test_a_restarted_writer_truncates_the_torn_record_and_continues(log: str, cut: int) -> None:
    make_torn(log, cut)
    with LogWriter(log) as w:
        assert w.repaired_bytes == cut
        w.write(2, b"after restart\n", T0 + 100)
    got = list(read_records(log))
    assert text(got) == b"one\ntwo\nthree\nafter restart\n"
    assert got[-1] == Record(2, T0 + 100, b"after restart\n")


@pytest.mark.parametrize("garbage", torn_tail_cases())
def test_garbage_after_the_last_record_is_cut_on_reopen(log: str, garbage: bytes) -> None:
    write_all(log, [(1, b"kept\n")])
    with open(log, "ab") as f:
        f.write(garbage)
    assert text(list(read_records(log))) == b"kept\n"
    with LogWriter(log) as w:
        assert w.repaired_bytes == len(garbage)
        w.write(1, b"more\n", T0 + 5)
    assert text(list(read_records(log))) == b"kept\nmore\n"


def test_a_record_being_written_shows_up_only_when_complete(log: str) -> None:
    write_all(log, [(1, b"a\n")])
    pos = end_position(log)
    write_all(log, [(1, b"b\n")])
    full = Path(log).read_bytes()
    Path(log).write_bytes(full[: pos.offset + 10])  # the writer is mid-record
    records, pos2 = read_records_from(log, pos)
    assert records == [] and pos2 == pos
    Path(log).write_bytes(full)  # ... and has finished it
    records, pos3 = read_records_from(log, pos2)
    assert text(records) == b"b\n" and pos3.offset == len(full)


WRITER_SCRIPT = """
import sys, time
from pallet.shim.logfile import LogWriter
w = LogWriter(sys.argv[1])
print("ready", flush=True)
i = 0
while True:
    w.write(1 + i % 2, (b"%08d " % i) * 2000 + b"\\n", time.time_ns())
    i += 1
"""


def test_kill_9_mid_write_loses_nothing_before_it_and_garbles_nothing_after(log: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, log], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        time.sleep(0.3)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    before = list(read_records(log))
    assert len(before) > 10
    with LogWriter(log) as w:
        w.write(1, b"restarted\n", time.time_ns())
    after = list(read_records(log))
    assert after[:-1] == before and after[-1].data == b"restarted\n"
    for i, record in enumerate(before):
        assert record.stream == 1 + i % 2
        assert record.data == (b"%08d " % i) * 2000 + b"\n"


FULL_DISK_WRITER = """
import resource, signal, sys
from pallet.shim.logfile import LogWriter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit, write() fails with EFBIG
w = LogWriter(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
for i in range(100):
    if not w.write(1, b"%02d" % i + b"." * 97 + b"\\n", i):
        print(i, flush=True)
        break
"""


def test_a_write_the_disk_refuses_leaves_no_torn_record(log: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK_WRITER, log], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    failed_at = int(done.stdout)
    assert 0 < failed_at < 10  # refused (EFBIG) once the file would pass 1000 bytes
    assert os.path.getsize(log) == FILE_HEADER_SIZE + failed_at * (RECORD_OVERHEAD + 100)
    assert [r.data[:2] for r in read_records(log)] == [b"%02d" % i for i in range(failed_at)]
    with LogWriter(log) as w:
        assert w.repaired_bytes == 0


# --- rotation ---------------------------------------------------------------------------------


def chunk(i: int) -> bytes:
    return b"line %04d\n" % i  # 10 bytes, 38 with the record framing


def test_rotation_keeps_max_files_files_and_the_newest_records(tmp_path: Path) -> None:
    path = str(tmp_path / "ctr.log")
    limit = FILE_HEADER_SIZE + 10 * (RECORD_OVERHEAD + 10)  # 10 records per file
    with LogWriter(path, max_size=limit, max_files=3) as w:
        for i in range(100):
            w.write(1, chunk(i), T0 + i)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["ctr.log", "ctr.log.1", "ctr.log.2"]
    assert all(os.path.getsize(tmp_path / n) <= limit for n in names)
    assert text(list(read_records(path))) == b"".join(chunk(i) for i in range(70, 100))
    assert text(list(read_records(path, tail_lines=15))) == b"".join(chunk(i) for i in range(85, 100))


def test_rotation_with_one_file_keeps_only_the_current_one(tmp_path: Path) -> None:
    path = str(tmp_path / "ctr.log")
    limit = FILE_HEADER_SIZE + 10 * (RECORD_OVERHEAD + 10)
    with LogWriter(path, max_size=limit, max_files=1) as w:
        for i in range(25):
            w.write(1, chunk(i), T0 + i)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctr.log"]
    assert text(list(read_records(path))) == b"".join(chunk(i) for i in range(20, 25))


def test_a_record_bigger_than_max_size_gets_a_file_of_its_own(tmp_path: Path) -> None:
    path = str(tmp_path / "ctr.log")
    with LogWriter(path, max_size=100, max_files=5) as w:
        w.write(1, b"small\n", T0)
        w.write(1, b"x" * 500, T0 + 1)
        w.write(1, b"tail\n", T0 + 2)
    assert text(list(read_records(path))) == b"small\n" + b"x" * 500 + b"tail\n"
    assert len(list(tmp_path.iterdir())) == 3


def test_fewer_max_files_after_a_restart_drops_the_extra_old_files(tmp_path: Path) -> None:
    path = str(tmp_path / "ctr.log")
    limit = FILE_HEADER_SIZE + 2 * (RECORD_OVERHEAD + 10)
    with LogWriter(path, max_size=limit, max_files=5) as w:
        for i in range(10):
            w.write(1, chunk(i), T0 + i)
    assert len(list(tmp_path.iterdir())) == 5
    with LogWriter(path, max_size=limit, max_files=2) as w:
        for i in range(10, 12):
            w.write(1, chunk(i), T0 + i)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctr.log", "ctr.log.1"]
    assert text(list(read_records(path))) == b"".join(chunk(i) for i in range(8, 12))


def test_a_rotation_interrupted_after_the_link_is_finished_on_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "ctr.log")
    write_all(path, [(1, b"old\n")])
    os.link(path, path + ".1")  # killed between linking path.1 and renaming the new file
    assert text(list(read_records(path))) == b"old\n"  # the twin is read once
    with LogWriter(path, max_size=1000, max_files=2) as w:
        w.write(1, b"new\n", T0 + 1)
    assert not os.path.samefile(path, path + ".1")
    assert text(list(read_records(path))) == b"old\nnew\n"


def test_a_rotation_interrupted_before_the_new_file_is_finished_on_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "ctr.log")
    write_all(path, [(1, b"old\n")])
    os.rename(path, path + ".1")  # no path at all
    with LogWriter(path, max_size=1000, max_files=2) as w:
        w.write(1, b"new\n", T0 + 1)
    assert text(list(read_records(path))) == b"old\nnew\n"


def test_a_follower_sees_every_record_once_across_rotations(tmp_path: Path) -> None:
    path = str(tmp_path / "ctr.log")
    limit = FILE_HEADER_SIZE + 3 * (RECORD_OVERHEAD + 10)
    got: list[Record] = []
    pos: LogPosition | None = None
    with LogWriter(path, max_size=limit, max_files=3) as w:
        for i in range(60):
            w.write(1, chunk(i), T0 + i)
            if i % 4 == 0:  # polls less often than records arrive, more often than files go
                records, pos = read_records_from(path, pos, max_bytes=25)
                got += records
                while records:
                    records, pos = read_records_from(path, pos, max_bytes=25)
                    got += records
    records, pos = read_records_from(path, pos)
    got += records
    assert text(got) == b"".join(chunk(i) for i in range(60))
    assert read_records_from(path, pos) == ([], pos)


def test_a_follower_whose_file_was_rotated_away_continues_with_the_next(tmp_path: Path) -> None:
    path = str(tmp_path / "ctr.log")
    limit = FILE_HEADER_SIZE + 2 * (RECORD_OVERHEAD + 10)
    with LogWriter(path, max_size=limit, max_files=2) as w:
        w.write(1, chunk(0), T0)
        pos = end_position(path)
        for i in range(1, 9):
            w.write(1, chunk(i), T0 + i)
    records, _ = read_records_from(path, pos)
    assert text(records) == b"".join(chunk(i) for i in range(6, 9))  # what is left


def test_a_hole_left_by_a_rotation_in_progress_hides_no_older_file(tmp_path: Path) -> None:
    path = str(tmp_path / "ctr.log")
    limit = FILE_HEADER_SIZE + 2 * (RECORD_OVERHEAD + 10)
    with LogWriter(path, max_size=limit, max_files=4) as w:
        for i in range(8):
            w.write(1, chunk(i), T0 + i)
    os.rename(path + ".2", path + ".3")  # caught between two renames of the shift
    assert text(list(read_records(path))) == b"".join(chunk(i) for i in range(2, 8))


ROTATING_WRITER = """
import sys
from pallet.shim.logfile import LogWriter
w = LogWriter(sys.argv[1], max_size=2000, max_files=100000)
for i in range(int(sys.argv[2])):
    w.write(1, b"%06d\\n" % i, i)
w.close()
"""


def test_a_follower_racing_a_rotating_writer_sees_every_record_once_in_order(
    tmp_path: Path,
) -> None:
    path, count = str(tmp_path / "ctr.log"), 5_000
    writer = subprocess.Popen([sys.executable, "-c", ROTATING_WRITER, path, str(count)])
    got: list[bytes] = []
    pos: LogPosition | None = None
    try:
        deadline = time.monotonic() + 60
        while len(got) < count and time.monotonic() < deadline:
            records, pos = read_records_from(path, pos, max_bytes=3000)
            got += [r.data for r in records]
    finally:
        writer.wait(60)
    assert writer.returncode == 0
    assert got == [b"%06d\n" % i for i in range(count)]
    assert len(list(tmp_path.iterdir())) > 50  # it did rotate, a lot


# --- tail ------------------------------------------------------------------------------------


def tail_text(path: str, n: int, **kwargs: object) -> bytes:
    return text(list(read_records(path, tail_lines=n, **kwargs)))  # type: ignore[arg-type]


def test_tail_cuts_the_first_record_to_the_line_start(log: str) -> None:
    write_all(log, [(1, b"a\nb\nc\n"), (1, b"d\ne\n")])
    assert tail_text(log, 1) == b"e\n"
    assert tail_text(log, 2) == b"d\ne\n"
    assert tail_text(log, 3) == b"c\nd\ne\n"
    assert tail_text(log, 5) == b"a\nb\nc\nd\ne\n"
    assert tail_text(log, 50) == b"a\nb\nc\nd\ne\n"
    assert tail_text(log, 0) == b""
    got = list(read_records(log, tail_lines=3))
    assert got == [Record(1, T0, b"c\n"), Record(1, T0 + 1, b"d\ne\n")]


def test_tail_takes_a_line_spread_over_several_records_whole(log: str) -> None:
    write_all(log, [(1, b"x\nlong "), (1, b"line "), (1, b"ends\n")])
    assert tail_text(log, 1) == b"long line ends\n"
    assert tail_text(log, 2) == b"x\nlong line ends\n"


def test_tail_counts_an_unterminated_last_line(log: str) -> None:
    write_all(log, [(1, b"a\nb\npart")])
    assert tail_text(log, 1) == b"part"
    assert tail_text(log, 2) == b"b\npart"


def test_tail_with_interleaved_streams(log: str) -> None:
    write_all(log, [(1, b"out1\nout2 "), (2, b"err1\n"), (1, b"cont\n"), (2, b"err2\n")])
    assert tail_text(log, 1) == b"err2\n"
    # out2's line started before err1 but ended after it; its start comes with it.
    assert tail_text(log, 2) == b"out2 cont\nerr2\n"
    assert tail_text(log, 1, streams=frozenset({1})) == b"out2 cont\n"
    assert tail_text(log, 2, streams=frozenset({2})) == b"err1\nerr2\n"


def test_tail_on_a_big_log_reads_only_its_end(log: str) -> None:
    line = b"y" * 99 + b"\n"
    with LogWriter(log) as w:
        for i in range(2000):  # 200 MB would be the honest test; the work is the same shape
            w.write(1, line * 600, T0 + i)
        w.write(1, b"last\n", T0 + 2000)
    started = time.perf_counter()
    assert tail_text(log, 2) == line + b"last\n"
    assert time.perf_counter() - started < 0.5


# --- since / until / streams -------------------------------------------------------------------


def test_since_until_and_streams_select_records(log: str) -> None:
    write_all(log, [(1, b"0\n"), (2, b"1\n"), (1, b"2\n"), (2, b"3\n"), (1, b"4\n")])
    assert text(list(read_records(log, since_ns=T0 + 2))) == b"2\n3\n4\n"
    assert text(list(read_records(log, until_ns=T0 + 2))) == b"0\n1\n"
    assert text(list(read_records(log, since_ns=T0 + 1, until_ns=T0 + 4))) == b"1\n2\n3\n"
    assert text(list(read_records(log, streams=frozenset({2})))) == b"1\n3\n"
    assert text(list(read_records(log, streams=frozenset({1}), since_ns=T0 + 1))) == b"2\n4\n"
    assert tail_text(log, 1, until_ns=T0 + 3) == b"2\n"
    assert tail_text(log, 2, since_ns=T0 + 4) == b"4\n"


# --- LogReader and follow ----------------------------------------------------------------------


def test_log_reader_history_then_new_records_without_gap_or_repeat(log: str) -> None:
    write_all(log, [(1, b"a\nb\n"), (1, b"c\n")])
    reader = LogReader(log)
    history = reader.start(tail_lines=2)
    write_all(log, [(2, b"d\n")])  # arrives after start: not history, but new
    assert text(list(history)) == b"b\nc\n"
    assert text(reader.read_new()) == b"d\n"
    assert reader.read_new() == []


async def test_follow_streams_new_output_until_done(log: str) -> None:
    write_all(log, [(1, b"before\n")])
    stop, go = threading.Event(), threading.Event()

    def produce() -> None:
        go.wait(10)  # after the history was read, so that tail 1 is "before"
        with LogWriter(log) as w:
            for i in range(20):
                w.write(1 + i % 2, b"%d\n" % i, time.time_ns())
                time.sleep(0.005)
        stop.set()

    thread = threading.Thread(target=produce)
    thread.start()
    try:
        got: list[Record] = []
        async for batch in follow_records(log, tail_lines=1, done=stop.is_set, poll_interval=0.01):
            assert batch
            got += batch
            go.set()
    finally:
        go.set()
        thread.join()
    assert text(got) == b"before\n" + b"".join(b"%d\n" % i for i in range(20))


async def test_follow_selects_streams_and_stops_at_until(log: str) -> None:
    now = time.time_ns()
    with LogWriter(log) as w:
        w.write(1, b"out\n", now)
        w.write(2, b"err\n", now + 1)
    got: list[Record] = []
    async for batch in follow_records(
        log, streams=frozenset({2}), until_ns=time.time_ns() + 50_000_000, poll_interval=0.01
    ):
        got += batch
    assert got == [Record(2, now + 1, b"err\n")]


async def test_no_follow_stops_at_the_end_the_log_had(log: str) -> None:
    write_all(log, [(1, b"x" * 1000)] * 10)
    got = [batch async for batch in follow_records(log, follow=False, max_batch_bytes=2500)]
    assert [len(b) for b in got] == [3, 3, 3, 1]
    pos = end_position(log)
    write_all(log, [(1, b"later\n")])
    rest = [b async for b in follow_records(log, start=pos, follow=False)]
    assert text([r for b in rest for r in b]) == b"later\n"


# --- speed (printed, never asserted) ------------------------------------------------------------


def test_100_mb_write_and_read_back_timing(log: str, capsys: pytest.CaptureFixture[str]) -> None:
    chunk64k = os.urandom(1 << 16)
    total = 100_000_000
    count = total // len(chunk64k) + 1
    started = time.perf_counter()
    with LogWriter(log) as w:
        for i in range(count):
            w.write(1, chunk64k, T0 + i)
    wrote = time.perf_counter() - started
    started = time.perf_counter()
    size = sum(len(r.data) for r in read_records(log))
    read = time.perf_counter() - started
    started = time.perf_counter()
    last = list(read_records(log, tail_lines=100))
    tail = time.perf_counter() - started
    assert size == count * len(chunk64k) and last
    with capsys.disabled():
        mb = size / 1e6
        print(
            f"\n[logfile] {mb:.0f} MB in 64 KiB chunks: write {wrote:.3f} s ({mb / wrote:.0f} MB/s), "
            f"read back {read:.3f} s ({mb / read:.0f} MB/s), tail 100 lines {tail * 1000:.1f} ms"
        )
