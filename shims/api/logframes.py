"""One container log file's framing: the format, and walking its records in both directions.

Owns: the on-disk format (constants, `Record`), parsing a file's header, checking one
record, walking one file's records forward and backward, finding where its valid records
end, and resynchronising past damaged bytes (`Gap`). Must not: know about rotation,
positions across files or following (that is `pallet.shim.api.logs`), write (the shim's
`pallet.shim.logfile` does), or import anything but the standard library and
`pallet.v1.errors`. Part of the shim's API: the shim's writer and palletd's readers share it.

Format, all integers little-endian::

    file header (24 bytes)  magic b"PALLETLG", version u16 (1), header size u16 (24),
                            nonce u32 (random per file), seq i64 (generation)
    record                  header  (20 bytes): length u32, nonce u32, stream u8,
                                    3 zero bytes, time_ns i64
                            data    (length bytes, at most 1 MiB): the chunk as read
                            trailer (8 bytes): length u32, nonce u32

Stream 1 is the container's stdout, 2 its stderr. Stream 3 (`DROPPED`) is pallet's own
note that output is missing before it: the shim dropped it because the disk refused it
(full, over quota, failing); its data is `DROP_INFO` (bytes dropped from stdout and from
stderr, when the dropping began, the errno). Readers serve it as one line on stderr,
`[pallet: 1.2 MiB of output dropped: the log disk was full]` (`Record.dropped` > 0), so
the gap shows where it happened. A reader older than stream 3 skips such a record as
damage; logs without one read as before.

A record is valid when its stream is 1, 2 or 3, its length at most 1 MiB, and its header
and trailer, `length` bytes apart, agree on the length and on the file's nonce. The
nonce is random per file and never shown to the container, so neither container output
nor damage (a bit flip, a zeroed block, overwritten bytes) makes a valid record by
accident: damage can only make records invalid. Anything that is not a valid record at a
record boundary is therefore one of two things:

* the end of what was written: a torn last record (a writer killed mid-write) or one
  still being written. No valid record follows it; readers stop in front of it.
* damage: a valid record follows it. Readers skip to the first valid record after it
  (`next_valid_start`, `prev_valid_end`: a search for the nonce, then a full check of
  each candidate) and report the skipped bytes once as a `Gap` through `on_gap`. Every
  undamaged record is read, in order, once.

What the format cannot see: damage inside a record's data or time_ns when both of its
frames are intact (there is no checksum); such a record is served as it is.
"""

from __future__ import annotations

import errno as _errno
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pallet.v1.errors import InvalidArgument

STDOUT = 1
STDERR = 2
BOTH_STREAMS: frozenset[int] = frozenset({STDOUT, STDERR})
#: A record of pallet's own: output was dropped before this point (data: `DROP_INFO`).
DROPPED = 3
_RECORD_STREAMS: frozenset[int] = frozenset({STDOUT, STDERR, DROPPED})
#: A DROPPED record's data: stdout bytes, stderr bytes dropped, since_ns (when the first
#: was), errno (why), 4 zero bytes.
DROP_INFO = struct.Struct("<QQqI4x")

MAGIC = b"PALLETLG"
VERSION = 1
FILE_HEADER = struct.Struct("<8sHHIq")
RECORD_HEADER = struct.Struct("<IIB3xq")
RECORD_TRAILER = struct.Struct("<II")
FILE_HEADER_SIZE = FILE_HEADER.size  # 24
RECORD_OVERHEAD = RECORD_HEADER.size + RECORD_TRAILER.size  # 28
#: Largest data a record holds; the writer splits bigger writes. Bounds how far back from
#: the end a torn tail can reach, and every reader buffer.
MAX_RECORD_DATA = 1 << 20
_HEADER = RECORD_HEADER.size
_TRAILER = RECORD_TRAILER.size
_BLOCK = 1 << 20  # readers read this much per pread
_SCAN = 1 << 20  # a resynchronising search reads this much per pread


@dataclass(frozen=True, slots=True)
class Record:
    """One chunk of a container's output: `data` as read from `stream` at `time_ns`."""

    stream: int  # 1 stdout, 2 stderr
    time_ns: int  # wall clock when the shim read it, ns since the epoch
    data: bytes
    #: > 0: not the container's output but pallet's note (on stderr) that this many
    #: bytes of it were dropped just before this point (see `DROPPED`).
    dropped: int = 0


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024:
            return f"{value:.1f} {unit}"
    return f"{value / 1024:.1f} TiB"


_DROP_REASONS = {
    _errno.ENOSPC: "the log disk was full",
    _errno.EDQUOT: "the log disk quota was exceeded",
    _errno.EFBIG: "the log file reached the largest size allowed",
    _errno.EIO: "the log disk failed to write (I/O error)",
}


def drop_reason(errno: int) -> str:
    """Why output was dropped, for a person: 'the log disk was full'."""
    return _DROP_REASONS.get(errno) or f"the log could not be written ({os.strerror(errno)})"


def drop_note(stdout: int, stderr: int, errno: int) -> bytes:
    """The line readers show for a DROPPED record."""
    return f"[pallet: {_size(stdout + stderr)} of output dropped: {drop_reason(errno)}]\n".encode()


def drop_record(time_ns: int, data: bytes) -> Record:
    """A DROPPED record's data as the stderr line readers serve."""
    if len(data) >= DROP_INFO.size:
        stdout, stderr, _since, errno = DROP_INFO.unpack_from(data)
    else:  # not written by this pallet: still say output is missing
        stdout, stderr, errno = 0, 0, 0
    total = max(stdout + stderr, 1)
    note = drop_note(stdout, stderr, errno) if errno else b"[pallet: output dropped]\n"
    return Record(STDERR, time_ns, note, dropped=total)


@dataclass(frozen=True, slots=True)
class Gap:
    """Damaged bytes a reader skipped: `length` bytes at `offset` in `file` (generation `seq`)."""

    file: str
    seq: int
    offset: int
    length: int


#: Told of each gap a reader skips, once per gap and read.
GapHandler = Callable[[Gap], None]


@dataclass(slots=True)
class LogFile:
    """One open log file: its fd, and what its header says."""

    fd: int
    seq: int
    nonce: int
    data_start: int
    name: str = ""


def parse_file_header(head: bytes, name: str) -> tuple[int, int, int] | None:
    """(data_start, nonce, seq) of a file header; None for an empty or half-written one."""
    if len(head) < FILE_HEADER_SIZE:
        if MAGIC.startswith(head[: len(MAGIC)]):
            return None
        raise InvalidArgument(f"{name} is not a pallet log file (bad magic); move it away")
    magic, version, header_size, nonce, seq = FILE_HEADER.unpack(head)
    if magic != MAGIC:
        raise InvalidArgument(f"{name} is not a pallet log file (bad magic); move it away")
    if version != VERSION or header_size < FILE_HEADER_SIZE:
        raise InvalidArgument(
            f"{name} is a pallet log file of format version {version}; "
            f"this pallet reads version {VERSION} only"
        )
    return header_size, nonce, seq


def open_log_file(name: str) -> LogFile | None:
    """Open one log file for reading; None when it is missing or has no header yet."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        header = parse_file_header(os.pread(fd, FILE_HEADER_SIZE, 0), name)
    except BaseException:
        os.close(fd)
        raise
    if header is None:
        os.close(fd)
        return None
    return LogFile(fd, header[2], header[1], header[0], name)


# --- one record ------------------------------------------------------------------------------


def record_ending_at(f: LogFile, end: int) -> bool:
    """Whether a complete, valid record ends exactly at `end`."""
    if end - f.data_start < RECORD_OVERHEAD:
        return False
    trailer = os.pread(f.fd, _TRAILER, end - _TRAILER)
    if len(trailer) < _TRAILER:
        return False
    length, nonce = RECORD_TRAILER.unpack(trailer)
    start = end - RECORD_OVERHEAD - length
    if nonce != f.nonce or length > MAX_RECORD_DATA or start < f.data_start:
        return False
    header = os.pread(f.fd, _HEADER, start)
    if len(header) < _HEADER:
        return False
    length2, nonce2, stream, _ = RECORD_HEADER.unpack(header)
    return length2 == length and nonce2 == f.nonce and stream in _RECORD_STREAMS


def _record_starting_at(f: LogFile, start: int) -> int:
    """The end of the complete, valid record starting at `start`; 0 if there is none."""
    header = os.pread(f.fd, _HEADER, start)
    if len(header) < _HEADER:
        return 0
    length: int
    length, nonce, stream, _ = RECORD_HEADER.unpack(header)
    if nonce != f.nonce or length > MAX_RECORD_DATA or stream not in _RECORD_STREAMS:
        return 0
    end: int = start + RECORD_OVERHEAD + length
    trailer = os.pread(f.fd, _TRAILER, end - _TRAILER)
    if len(trailer) < _TRAILER or RECORD_TRAILER.unpack(trailer) != (length, nonce):
        return 0
    return end


# --- resynchronising ---------------------------------------------------------------------------


def next_valid_start(f: LogFile, after: int, stop: int | None) -> int:
    """The start of the first valid record beginning after `after` and ending by `stop`
    (None: the end of the file); -1 when there is none.

    Searches for the nonce where a header holds it (4 bytes in), then checks each
    candidate whole. A trailer's nonce is a candidate too, and fails the check.
    """
    key = struct.pack("<I", f.nonce)
    start = after + 1  # candidates start here or later
    while stop is None or start + RECORD_OVERHEAD <= stop:
        window = os.pread(f.fd, _SCAN, start + 4)  # window[i] is the file's byte start + 4 + i
        i = window.find(key)
        while i >= 0:
            candidate = start + i
            if stop is not None and candidate + RECORD_OVERHEAD > stop:
                return -1
            end = _record_starting_at(f, candidate)
            if end and (stop is None or end <= stop):
                return candidate
            i = window.find(key, i + 1)
        if len(window) < _SCAN:
            return -1
        start += len(window) - (len(key) - 1)  # a key across the window's edge is seen next
    return -1


def prev_valid_end(f: LogFile, before: int) -> int:
    """The end of the last valid record ending before `before`; -1 when there is none."""
    key = struct.pack("<I", f.nonce)
    high = before - 1  # candidate ends (a trailer's nonce ends its record) are at most this
    while high - f.data_start >= RECORD_OVERHEAD:
        low = max(f.data_start, high - _SCAN)
        window = os.pread(f.fd, high - low, low)  # window[i] is the file's byte low + i
        if len(window) < high - low:
            return -1  # the file shrank under us (a writer truncating its torn tail)
        i = window.rfind(key)
        while i >= 0:
            end = low + i + len(key)
            if record_ending_at(f, end):
                return end
            i = window.rfind(key, 0, i + len(key) - 1)
        if low == f.data_start:
            break
        high = low + len(key) - 1  # a key across the window's edge is seen next
    return -1


def valid_end(f: LogFile) -> int:
    """Offset just after the last complete record (a torn or in-flight one excluded)."""
    size = os.fstat(f.fd).st_size
    if size <= f.data_start:
        return f.data_start
    if record_ending_at(f, size):
        return size
    # A torn record is shorter than the largest record, so the last good trailer usually
    # lies in the last MAX_RECORD_DATA + overhead bytes; the search goes further back when
    # the end is damaged too (a zeroed block past the last record after a host crash).
    end = prev_valid_end(f, size)
    return end if end >= 0 else f.data_start


# --- walking ------------------------------------------------------------------------------------


def forward(
    f: LogFile,
    start: int,
    stop: int | None,
    streams: frozenset[int],
    since_ns: int,
    until_ns: int,
    on_gap: GapHandler | None = None,
) -> Iterator[tuple[int, Record | None]]:
    """Yield (offset after the record, the record or None when filtered out).

    Stops at `stop`, or in front of the first incomplete or invalid record that no valid
    record follows; skips one that a valid record follows (damage), telling `on_gap`.
    """
    off = start
    buf = b""
    base = start  # buf holds the file's bytes [base, base + len(buf))
    nonce = f.nonce
    while True:
        # The loop below is the whole cost of reading an undamaged file: it leaves by
        # `break` only in front of something that is not a valid record.
        while stop is None or off < stop:
            rel = off - base
            if rel + _HEADER > len(buf):
                buf, base, rel = os.pread(f.fd, _BLOCK, off), off, 0
                if len(buf) < _HEADER:
                    return  # no room for a record after off: the end
            length, nonce1, stream, time_ns = RECORD_HEADER.unpack_from(buf, rel)
            if nonce1 != nonce or length > MAX_RECORD_DATA or (
                stream != STDOUT and stream != STDERR and stream != DROPPED
            ):
                break
            end = off + RECORD_OVERHEAD + length
            if rel + RECORD_OVERHEAD + length > len(buf):
                buf, base, rel = os.pread(f.fd, max(_BLOCK, end - off), off), off, 0
                if len(buf) < end - off:
                    break
            length2, nonce2 = RECORD_TRAILER.unpack_from(buf, rel + _HEADER + length)
            if length2 != length or nonce2 != nonce or (stop is not None and end > stop):
                break  # (a record across `stop` is followed by none ending before it)
            record = None
            if time_ns >= since_ns and (not until_ns or time_ns < until_ns):
                if stream in streams:
                    record = Record(stream, time_ns, buf[rel + _HEADER : rel + _HEADER + length])
                elif stream == DROPPED and STDERR in streams:
                    record = drop_record(time_ns, buf[rel + _HEADER : rel + _HEADER + length])
            yield end, record
            off = end
        else:
            return
        # No valid record at off: the end of what was written, or damage if one follows.
        resume = next_valid_start(f, off, stop)
        if resume < 0:
            return
        # What looked torn may have been in flight and is complete now that the writer
        # has gone on to the next record: read it again before calling it damage.
        buf, base = b"", off
        if _record_starting_at(f, off):
            continue
        if on_gap is not None:
            on_gap(Gap(f.name, f.seq, off, resume - off))
        off = base = resume


def backward(
    f: LogFile,
    end: int,
    streams: frozenset[int],
    since_ns: int,
    until_ns: int,
    on_gap: GapHandler | None = None,
) -> Iterator[Record]:
    """Yield the selected records ending at or before `end` (a record boundary), newest
    first, skipping damaged bytes between them and telling `on_gap`."""
    off = end
    buf = b""
    base = end  # buf holds the file's bytes [base, base + len(buf)), ending at or after off
    nonce = f.nonce
    while off - f.data_start >= RECORD_OVERHEAD:
        if off - base < _TRAILER:
            low = max(f.data_start, off - _BLOCK)
            buf, base = os.pread(f.fd, off - low, low), low
            if len(buf) < off - low:
                return  # the file shrank under us (a writer truncating its torn tail)
        length, nonce2 = RECORD_TRAILER.unpack_from(buf, off - base - _TRAILER)
        start = off - RECORD_OVERHEAD - length
        if nonce2 == nonce and length <= MAX_RECORD_DATA and start >= f.data_start:
            if start < base:
                low = max(f.data_start, min(start, off - _BLOCK))
                buf, base = os.pread(f.fd, off - low, low), low
                if len(buf) < off - low:
                    return
            rel = start - base
            length1, nonce1, stream, time_ns = RECORD_HEADER.unpack_from(buf, rel)
            if length1 == length and nonce1 == nonce and stream in _RECORD_STREAMS:
                if time_ns >= since_ns and (not until_ns or time_ns < until_ns):
                    if stream in streams:
                        yield Record(stream, time_ns, buf[rel + _HEADER : rel + _HEADER + length])
                    elif stream == DROPPED and STDERR in streams:
                        yield drop_record(time_ns, buf[rel + _HEADER : rel + _HEADER + length])
                off = start
                continue
        # Damage (everything before a record boundary was written whole): skip to the end
        # of the valid record before it, if any.
        resume = prev_valid_end(f, off)
        if on_gap is not None:
            gap_start = max(resume, f.data_start)
            on_gap(Gap(f.name, f.seq, gap_start, off - gap_start))
        if resume < 0:
            return
        off = resume
    if off > f.data_start and on_gap is not None:  # too few bytes for a record: damage too
        on_gap(Gap(f.name, f.seq, f.data_start, off - f.data_start))
