"""Reading a container's log files: history, --tail, --since/--until, streams, follow.

Owns: a log and its rotated siblings as a whole on the reading side: positions across
generations, the history (all of it or the last N lines), what was appended after a
position, and the one follow loop palletd serves `pallet logs -f` from. Must not: write
the log (the shim's `pallet.shim.logfile` does), know about containers, gRPC or protobuf,
or import anything but the standard library, `pallet.v1.errors` and the format
(`pallet.shim.api.logframes`). Part of the shim's API: palletd imports it.

Each record's trailer repeats its length so a reader can walk backwards from the end:
--tail on a huge file reads only its end. Readers stop in front of a torn or unfinished
last record. Damaged bytes in the middle of a file (a bit flip, a zeroed block after a
host crash) are skipped: readers resume at the next valid record and tell their `on_gap`
handler once per gap, so every undamaged record is still read, in order, once.

Rotated generations (path.N ... path.1, path) are found by the `seq` in their headers, so
a reader's `LogPosition(seq, offset)` survives renames.

Three levels, all built on positions:

* `read_records_from(path, position) -> (records, new_position)`: what was appended after
  `position` (None: from the oldest record), bounded by `max_bytes` per call. Cheap when
  nothing is new (one open, one pread). Call it again after a short poll.
* `LogReader(path, streams=, since_ns=, until_ns=)`: `start(tail_lines)` returns the
  history up to the log's current end and `read_new(max_bytes)` what came after it, with
  no gap and no repeat between them. Blocking: run both in `asyncio.to_thread`.
* `follow_records(path, ...)`: an async iterator of record batches doing all of that off
  the event loop: history first, then new records until `done()` returns True (e.g. the
  container stopped) or `until_ns` has passed, and everything is drained; `follow=False`
  stops at the history.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, replace

from pallet.v1.errors import InvalidArgument
from pallet.shim.api.logframes import BOTH_STREAMS as BOTH_STREAMS
from pallet.shim.api.logframes import STDERR as STDERR
from pallet.shim.api.logframes import STDOUT as STDOUT
from pallet.shim.api.logframes import Gap as Gap
from pallet.shim.api.logframes import GapHandler as GapHandler
from pallet.shim.api.logframes import Record as Record
from pallet.shim.api.logframes import LogFile, backward, forward, open_log_file, valid_end

_DEFAULT_BATCH_BYTES = 1 << 20


@dataclass(frozen=True, slots=True, order=True)
class LogPosition:
    """A point between two records: `offset` bytes into the file whose header has `seq`.

    Ordered: a later position compares greater. `START` is before every record.
    """

    seq: int
    offset: int


START = LogPosition(-1, 0)


# --- one file on the reading side --------------------------------------------------------


class _LogFiles:
    """The open generations of one log, oldest first; a context manager closing them.

    Opens path first, then path.1, path.2 ... (stopping after two missing names: a
    rotation in progress leaves at most one hole), so a concurrent rotation can only
    hide generations newer than the ones found, never the ones between.
    """

    def __init__(self, path: str, min_seq: int = -1) -> None:
        found: dict[int, LogFile] = {}
        try:
            index, misses = 0, 0
            while misses < 2:
                name = f"{path}.{index}" if index else path
                index += 1
                f = open_log_file(name)
                if f is None:
                    misses += 1 if index > 1 else 0
                    continue
                misses = 0
                if f.seq in found or f.seq < min_seq:
                    os.close(f.fd)
                else:
                    found[f.seq] = f
                if f.seq <= min_seq:
                    break  # everything older is before the position
        except BaseException:
            for f in found.values():
                os.close(f.fd)
            raise
        self.files = [found[seq] for seq in sorted(found)]

    def __enter__(self) -> _LogFiles:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for f in self.files:
            os.close(f.fd)
        self.files = []


# --- reading -------------------------------------------------------------------------------


def _check_filters(streams: frozenset[int], since_ns: int, until_ns: int) -> None:
    if not streams or not streams <= BOTH_STREAMS:
        raise InvalidArgument(
            f"log streams must be a non-empty subset of {{1 (stdout), 2 (stderr)}}, got {sorted(streams)}"
        )
    if since_ns < 0 or until_ns < 0:
        raise InvalidArgument("log since and until must not be before 1970")


def end_position(path: str) -> LogPosition:
    """The position after the newest complete record; START when there is no log yet."""
    with _LogFiles(path) as files:
        if not files.files:
            return START
        newest = files.files[-1]
        return LogPosition(newest.seq, valid_end(newest))


def read_records(
    path: str,
    *,
    since_ns: int = 0,
    until_ns: int = 0,
    streams: frozenset[int] = BOTH_STREAMS,
    tail_lines: int = -1,
    end: LogPosition | None = None,
    on_gap: GapHandler | None = None,
) -> Generator[Record, None, None]:
    """The log's records, oldest first, across rotated files (path.N ... path.1, path).

    `since_ns` keeps records read at or after it, `until_ns` (0: no bound) those before
    it, `streams` those of the given streams. `tail_lines` >= 0 keeps only the records
    holding the last N lines of what is selected; the first may be cut to its line start
    (an unterminated last line counts as a line). It scans from the end, so it is fast on
    a huge log. `end` stops at a position (from `end_position`). No log file: nothing.
    Damaged bytes between records are skipped, and `on_gap` told of each gap once.
    """
    _check_filters(streams, since_ns, until_ns)
    if tail_lines >= 0:
        return _yield_from(_tail(path, tail_lines, end, streams, since_ns, until_ns, on_gap))
    return _read_all(path, end, streams, since_ns, until_ns, on_gap)


def _yield_from(records: list[Record]) -> Generator[Record, None, None]:
    yield from records


def _read_all(
    path: str,
    end: LogPosition | None,
    streams: frozenset[int],
    since_ns: int,
    until_ns: int,
    on_gap: GapHandler | None,
) -> Generator[Record, None, None]:
    with _LogFiles(path) as files:
        for f in files.files:
            if end is not None and f.seq > end.seq:
                break
            stop = end.offset if end is not None and f.seq == end.seq else None
            last = f.data_start
            for last, record in forward(f, f.data_start, stop, streams, since_ns, until_ns, on_gap):
                if record is not None:
                    yield record
            if f is not files.files[-1] and stop is None:
                # (With an end inside it, what follows the end is not read, let alone damage:
                # the file may have been rotated after the end was taken.)
                _sealed_tail(f, last, on_gap)


def _tail(
    path: str,
    lines: int,
    end: LogPosition | None,
    streams: frozenset[int],
    since_ns: int,
    until_ns: int,
    on_gap: GapHandler | None,
) -> list[Record]:
    if lines == 0:
        return []
    with _LogFiles(path) as files:
        newest_first = _chain_backward(files.files, end, streams, since_ns, until_ns, on_gap)
        picked = _last_lines(newest_first, lines)
    picked.reverse()
    return picked


def _chain_backward(
    files: list[LogFile],
    end: LogPosition | None,
    streams: frozenset[int],
    since_ns: int,
    until_ns: int,
    on_gap: GapHandler | None,
) -> Iterator[Record]:
    for f in reversed(files):
        if end is not None and f.seq > end.seq:
            continue
        ends_inside = end is not None and f.seq == end.seq
        stop = end.offset if end is not None and ends_inside else valid_end(f)
        if f is not files[-1] and not ends_inside:
            _sealed_tail(f, stop, on_gap)
        yield from backward(f, stop, streams, since_ns, until_ns, on_gap)


def _sealed_tail(f: LogFile, end: int, on_gap: GapHandler | None) -> None:
    """Tell `on_gap` of bytes after the last valid record of a file a newer generation
    has replaced: nothing is in flight there, so they are damage, not a record to come."""
    if on_gap is not None:
        size = os.fstat(f.fd).st_size
        if end < size:
            on_gap(Gap(f.name, f.seq, end, size - end))


def _last_lines(newest_first: Iterable[Record], lines: int) -> list[Record]:
    """The records holding the last `lines` lines, newest first, the oldest cut.

    Lines are per stream: a line's bytes may be spread over several records of its
    stream, with the other stream's records in between.
    """
    picked: list[Record] = []
    need = lines
    seen_streams: set[int] = set()
    open_stream = 0  # stream whose line start is still to be found, once `need` is met
    for record in newest_first:
        data = record.data
        if open_stream:
            if record.stream != open_stream:
                continue
            cut = data.rfind(b"\n") + 1
            if cut:
                if cut < len(data):
                    picked.append(replace(record, data=data[cut:]))
                break
            picked.append(record)
            continue
        terminators = data.count(b"\n")
        unterminated = record.stream not in seen_streams and not data.endswith(b"\n")
        seen_streams.add(record.stream)
        if unterminated:
            terminators += 1  # the stream's last line, still being written
        if terminators < need:
            need -= terminators
            picked.append(record)
            continue
        # This record ends the earliest wanted line; find where that line starts: after
        # the newline before it, here or in an earlier record of the same stream.
        newlines_to_skip = need - 1 if unterminated else need
        cut_at = len(data)
        for _ in range(newlines_to_skip + 1):
            cut_at = data.rfind(b"\n", 0, cut_at)
            if cut_at < 0:
                break
        if cut_at < 0:
            picked.append(record)
            open_stream = record.stream
            continue
        picked.append(replace(record, data=data[cut_at + 1 :]))
        break
    return picked


def read_records_from(
    path: str,
    position: LogPosition | None = None,
    *,
    since_ns: int = 0,
    until_ns: int = 0,
    streams: frozenset[int] = BOTH_STREAMS,
    end: LogPosition | None = None,
    max_bytes: int = _DEFAULT_BATCH_BYTES,
    on_gap: GapHandler | None = None,
) -> tuple[list[Record], LogPosition]:
    """The selected records appended after `position` (None: the oldest), and where the
    next call should continue.

    Stops after about `max_bytes` of data, at `end` when given, and in front of a record
    still being written. Survives rotation: generations are found by their seq, not by
    name. If the generation at `position` was rotated away, continues with the next one
    (that output is lost, as with docker's json-file). Skips damaged bytes as soon as a
    valid record follows them, telling `on_gap` once. Blocking: from asyncio, call it
    through `asyncio.to_thread`, or use `follow_records`.
    """
    _check_filters(streams, since_ns, until_ns)
    pos = position if position is not None else START
    records: list[Record] = []
    size = 0
    for attempt in range(3):
        with _LogFiles(path, min_seq=pos.seq) as files:
            if pos.seq >= 0 and attempt < 2 and files.files and files.files[0].seq != pos.seq:
                continue  # a rotation may be moving it between names right now: look again
            for f in files.files:
                if end is not None and f.seq > end.seq:
                    break
                start = max(pos.offset, f.data_start) if f.seq == pos.seq else f.data_start
                stop = end.offset if end is not None and f.seq == end.seq else None
                pos = LogPosition(f.seq, start)
                for offset, record in forward(f, start, stop, streams, since_ns, until_ns, on_gap):
                    pos = LogPosition(f.seq, offset)
                    if record is not None:
                        records.append(record)
                        size += len(record.data)
                        if size >= max_bytes:
                            return records, pos
                if f is not files.files[-1] and stop is None:
                    _sealed_tail(f, pos.offset, on_gap)
        break
    return records, pos


class LogReader:
    """One reader's way through a log: its history, then what is appended after it.

    `start(tail_lines)` pins the log's current end and returns the history up to it (all,
    or the last N lines); `read_new()` then returns what came after, batch by batch, with
    no gap or repeat between the two. `on_gap` hears of damaged bytes skipped, once per
    gap. Blocking, like every reader here: call it from a thread (`asyncio.to_thread`)
    in the daemon.
    """

    def __init__(
        self,
        path: str,
        *,
        streams: frozenset[int] = BOTH_STREAMS,
        since_ns: int = 0,
        until_ns: int = 0,
        position: LogPosition | None = None,
        on_gap: GapHandler | None = None,
    ) -> None:
        _check_filters(streams, since_ns, until_ns)
        self.path = path
        self.on_gap = on_gap
        self.position = position if position is not None else START
        self._streams = streams
        self._since_ns = since_ns
        self._until_ns = until_ns

    def start(self, tail_lines: int = -1) -> Generator[Record, None, None]:
        """The history (the last `tail_lines` lines when >= 0); new records follow it."""
        self.position = end_position(self.path)
        return read_records(
            self.path,
            since_ns=self._since_ns,
            until_ns=self._until_ns,
            streams=self._streams,
            tail_lines=tail_lines,
            end=self.position,
            on_gap=self.on_gap,
        )

    def read_new(
        self, max_bytes: int = _DEFAULT_BATCH_BYTES, *, end: LogPosition | None = None
    ) -> list[Record]:
        """Records appended since the last call (about `max_bytes` at most); [] if none."""
        records, self.position = read_records_from(
            self.path,
            self.position,
            since_ns=self._since_ns,
            until_ns=self._until_ns,
            streams=self._streams,
            end=end,
            max_bytes=max_bytes,
            on_gap=self.on_gap,
        )
        return records


async def follow_records(
    path: str,
    *,
    start: LogPosition | None = None,
    since_ns: int = 0,
    until_ns: int = 0,
    streams: frozenset[int] = BOTH_STREAMS,
    tail_lines: int = -1,
    follow: bool = True,
    done: Callable[[], bool] | None = None,
    poll_interval: float = 0.1,
    max_batch_bytes: int = _DEFAULT_BATCH_BYTES,
    on_gap: GapHandler | None = None,
) -> AsyncGenerator[list[Record], None]:
    """Yield non-empty batches of records, oldest first; all file work runs off the loop.

    With start=None: the history (everything, or the last `tail_lines` lines when >= 0),
    then what follows it. With a `start` position: what follows that (tail ignored).
    With `follow`, keeps polling every `poll_interval` s until `done()` is true (say, the
    container is not running) or `until_ns` has passed, and returns once the log is
    drained. Without `follow`, returns at the end the log had when called.
    """
    reader = LogReader(
        path, streams=streams, since_ns=since_ns, until_ns=until_ns, position=start, on_gap=on_gap
    )
    if start is None:
        history = await asyncio.to_thread(reader.start, tail_lines)
        try:
            while batch := await asyncio.to_thread(_take, history, max_batch_bytes):
                yield batch
        finally:
            history.close()  # its files, when the caller stops early
        if not follow:
            return
    stop_at = None if follow else await asyncio.to_thread(end_position, path)
    while True:
        # Decided before reading, so that the read after the container stopped still runs.
        finished = (
            not follow
            or (done is not None and done())
            or (until_ns > 0 and time.time_ns() >= until_ns)
        )
        batch = await asyncio.to_thread(reader.read_new, max_batch_bytes, end=stop_at)
        if batch:
            yield batch
            continue
        if finished:
            return
        await asyncio.sleep(poll_interval)


def _take(records: Iterator[Record], max_bytes: int) -> list[Record]:
    batch: list[Record] = []
    size = 0
    for record in records:
        batch.append(record)
        size += len(record.data)
        if size >= max_bytes:
            break
    return batch
