"""Writing a container's log file: the shim appends every chunk of the container's output.

Owns: `LogWriter` (used by the shim for every chunk it reads from the container's
stdout/stderr pipes): appending records, repairing a torn last record, rotating. Must
not: read the log for `pallet logs` (that is `pallet.shim.api.logs`, which palletd
imports), know about containers, gRPC or protobuf, or import anything but the standard
library, `pallet.v1.errors` and the format (`pallet.shim.api.logframes`).

A record is one chunk as the shim read it from a pipe (up to 256 KiB), or a terminal's
batch (up to 128 KiB, see `pallet.shim.output`), so 100 MB of output is some 400 to 800
headers to parse, not millions of lines, and the writer does no per-line work:
one `writev` per chunk and no fsync (the page cache outlives a crash of the shim or of
palletd, which is the failure that matters here; an fsync per chunk would cap a chatty
container at the disk's flush rate).

A writer killed mid-write leaves a torn last record; readers stop in front of it, and the
next `LogWriter` on the path truncates it before appending, so nothing written later is
lost or garbled.

Rotation (max_size > 0) works like docker's json-file: path -> path.1 -> path.2 ...,
keeping max_files files in all. Each file's header carries `seq`, a generation number
that only grows, so a reader's position survives renames. During a rotation `path` never
disappears: the old file is hard-linked to path.1 before the new one is renamed over path
(readers drop the duplicate by seq).

A disk that refuses a write (full, over quota, failing: `DISK_ERRNOS`) never stops the
container or floods a log: the writer drops the output, counts it, warns once when the
dropping starts, and once a write works again (the next chunk, or `flush_drops` on the
shim's retry timer, or `close`) first appends a DROPPED record saying how much was lost,
so `pallet logs` shows the gap where it happened.

Only one `LogWriter` may have a path open at a time (the container's one shim).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from pallet.v1.errors import FailedPrecondition, InvalidArgument
from pallet.shim.api.logframes import (
    DROP_INFO,
    DROPPED,
    FILE_HEADER,
    FILE_HEADER_SIZE,
    MAGIC,
    MAX_RECORD_DATA,
    RECORD_HEADER,
    RECORD_OVERHEAD,
    RECORD_TRAILER,
    STDERR,
    STDOUT,
    VERSION,
    LogFile,
    drop_reason,
    open_log_file,
    parse_file_header,
    valid_end,
)

#: Errors that mean "the disk will not take this now": output is dropped and counted, the
#: container goes on. Anything else is a bug and raises.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})
#: A full disk takes output again only once it has this much free (beyond the chunk):
#: otherwise every few bytes freed would end a stretch and start the next.
RESUME_ROOM = 256 << 10


@dataclass(slots=True)
class _Drops:
    """One stretch of output the disk refused."""

    errno: int
    since_ns: int
    stdout: int = 0
    stderr: int = 0

    def add(self, stream: int, n: int) -> None:
        if stream == STDOUT:
            self.stdout += n
        else:
            self.stderr += n



class LogWriter:
    """Appends records to a container's log file, rotating it when it grows too big.

    Opening an existing file appends to it, after truncating a torn last record left by
    a writer that was killed mid-write (`repaired_bytes` says how many bytes went).
    """

    def __init__(
        self,
        path: str,
        max_size: int = 0,
        max_files: int = 1,
        *,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        if max_size < 0:
            raise InvalidArgument(f"log max size must be 0 (no limit) or positive, got {max_size}")
        if max_files < 1:
            raise InvalidArgument(f"log max files must be at least 1, got {max_files}")
        self.path = path
        self.repaired_bytes = 0
        self._max_size = max_size
        self._max_files = max_files
        self._fd = -1
        self._nonce = 0
        self._seq = 0
        self._size = 0  # bytes of complete records plus the file header
        self._warn = warn
        self._drops: _Drops | None = None  # the stretch being dropped, if any
        self._open()

    @property
    def dropping(self) -> bool:
        """Whether output was dropped that no DROPPED record accounts for yet."""
        return self._drops is not None

    def write(self, stream: int, data: bytes | bytearray | memoryview, time_ns: int) -> bool:
        """Append `data` read from `stream` (1 stdout, 2 stderr) at `time_ns`.

        False when the disk refused it (`DISK_ERRNOS`): the data is dropped and counted
        (warned about once per stretch) and the file is left as it was, never with a torn
        record. Other OSErrors raise.
        """
        if stream != STDOUT and stream != STDERR:
            raise InvalidArgument(f"log stream must be 1 (stdout) or 2 (stderr), got {stream}")
        if self._fd < 0:
            raise FailedPrecondition(f"log writer for {self.path} is closed")
        if not data:
            return True
        if self._drops is not None and not self._resume(len(data), time_ns):
            self._drops.add(stream, len(data))
            return False
        view = memoryview(data)
        done = 0
        try:
            while done < len(view):
                piece = view[done : done + MAX_RECORD_DATA]
                self._append(stream, piece, time_ns)
                done += len(piece)
        except OSError as exc:
            if exc.errno not in DISK_ERRNOS:
                raise
            self._start_dropping(exc.errno, time_ns)
            assert self._drops is not None
            self._drops.add(stream, len(view) - done)
            return False
        return True

    def flush_drops(self, time_ns: int, *, final: bool = False) -> bool:
        """Record the stretch of dropped output, if any, as a DROPPED record now.

        True when nothing dropped is left unrecorded. The shim calls it on a timer while
        dropping, so a gap is recorded once the disk has room even if no output follows;
        only once a full disk has `RESUME_ROOM` free again, so that a few bytes freed do
        not make a gap record of every chunk. `final` (the output ended: nothing more
        will compete for the room) writes it into whatever room is left.
        """
        drops = self._drops
        if drops is None:
            return True
        if self._fd < 0 or (not final and not self._room_for(RESUME_ROOM)):
            return False
        info = DROP_INFO.pack(drops.stdout, drops.stderr, drops.since_ns, drops.errno)
        try:
            self._append(DROPPED, info, time_ns)
        except OSError as exc:
            if exc.errno not in DISK_ERRNOS:
                raise
            return False
        self._drops = None
        if self._warn is not None:
            self._warn(
                f"writing the log {self.path} again; {drops.stdout + drops.stderr} bytes "
                "of output were dropped (recorded in the log)"
            )
        return True

    def _resume(self, size: int, time_ns: int) -> bool:
        """Whether to try writing `size` bytes while dropping: the gap is recorded first."""
        return self._room_for(size + RESUME_ROOM) and self.flush_drops(time_ns, final=True)

    def _room_for(self, size: int) -> bool:
        """Whether a full disk has `size` bytes free (other refusals: try, it is cheap)."""
        if self._drops is None or self._drops.errno != errno.ENOSPC:
            return True
        try:
            st = os.fstatvfs(self._fd)
        except OSError:
            return True
        return st.f_bfree * st.f_frsize >= size  # (root may use the reserved blocks)

    def _start_dropping(self, errno_: int, time_ns: int) -> None:
        self._drops = _Drops(errno_, time_ns)
        if self._warn is not None:
            self._warn(
                f"cannot write the log {self.path}: {drop_reason(errno_)} "
                f"({os.strerror(errno_)}); dropping the container's output until it can be "
                "written again"
            )

    def close(self) -> None:
        """Close the file, recording dropped output first if the disk lets us. Idempotent."""
        if self._fd >= 0:
            try:
                self.flush_drops(time.time_ns(), final=True)
            except OSError:
                pass  # closing must not fail: what was dropped stays unrecorded
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _append(self, stream: int, data: bytes | memoryview, time_ns: int) -> None:
        length = len(data)
        total = length + RECORD_OVERHEAD
        if self._max_size and self._size > FILE_HEADER_SIZE and self._size + total > self._max_size:
            self._rotate()
        parts = (
            RECORD_HEADER.pack(length, self._nonce, stream, time_ns),
            data,
            RECORD_TRAILER.pack(length, self._nonce),
        )
        try:
            written = os.writev(self._fd, parts)
            if written != total:
                # A short write (signal, nearly full disk): finish it, the fd appends.
                rest = memoryview(b"".join(parts))[written:]
                while rest:
                    n = os.write(self._fd, rest)
                    if n <= 0:
                        raise OSError(f"log file {self.path}: short write")
                    rest = rest[n:]
        except OSError:
            # Leave no torn record behind: readers would stop in front of it.
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
            raise
        self._size += total

    def _open(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        except FileNotFoundError:
            # First start (path.1 exists only if someone removed path; continue after it).
            prev = open_log_file(self.path + ".1")
            if prev is not None:
                os.close(prev.fd)
            self._install_new_file(prev.seq if prev is not None else -1, shift=False)
            return
        try:
            header = parse_file_header(os.pread(fd, FILE_HEADER_SIZE, 0), self.path)
            if header is None or _same_file(self.path, self.path + ".1"):
                # Never got a header (nothing was logged), or killed mid-rotation right
                # after the link (path.1 already keeps this content): only the next
                # generation is missing.
                os.close(fd)
                fd = -1
                self._install_new_file(header[2] if header else -1, shift=False)
                return
            data_start, nonce, seq = header
            size = os.fstat(fd).st_size
            end = valid_end(LogFile(fd, seq, nonce, data_start, self.path))
            if end < size:
                os.ftruncate(fd, end)
                self.repaired_bytes = size - end
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        self._fd, self._nonce, self._seq, self._size = fd, nonce, seq, end

    def _rotate(self) -> None:
        self._install_new_file(self._seq, shift=True)

    def _install_new_file(self, prev_seq: int, *, shift: bool) -> None:
        """Create the next generation at a temporary name, then rename it over path.

        With `shift`, the current file first moves to path.1 (older ones one up, the
        oldest dropped) so that max_files files remain; it is hard-linked, not renamed,
        so path exists throughout and a reader never finds the log missing.
        """
        seq = _next_seq(prev_seq)
        tmp = self.path + ".rotating"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o640)
        try:
            nonce = _write_file_header(fd, seq)
            if shift:
                self._shift_rotated()
            os.rename(tmp, self.path)
        except BaseException:
            os.close(fd)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._nonce, self._seq, self._size = fd, nonce, seq, FILE_HEADER_SIZE

    def _shift_rotated(self) -> None:
        """path.N -> path.N+1 ... path -> path.1 (a link), dropping what max_files does not keep."""
        keep = self._max_files - 1  # rotated files kept besides path
        last = _last_rotated_index(self.path)
        for i in range(max(keep, 1), last + 1):
            _unlink_if_present(f"{self.path}.{i}")
        for i in range(min(last, keep - 1), 0, -1):
            try:
                os.rename(f"{self.path}.{i}", f"{self.path}.{i + 1}")
            except FileNotFoundError:
                pass
        if keep > 0:
            os.link(self.path, self.path + ".1")


def _last_rotated_index(path: str) -> int:
    """The highest N with a path.N, looking past one missing N (see `_LogFiles`)."""
    last, i, misses = 0, 1, 0
    while misses < 2:
        if os.path.lexists(f"{path}.{i}"):
            last, misses = i, 0
        else:
            misses += 1
        i += 1
    return last


def _unlink_if_present(name: str) -> None:
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass


def _next_seq(prev_seq: int) -> int:
    # Time-based so that a writer that lost track of the previous generation (all files
    # deleted) still moves forward; strictly above the previous one otherwise.
    return max(time.time_ns(), prev_seq + 1)


def _write_file_header(fd: int, seq: int) -> int:
    nonce = int.from_bytes(os.urandom(4), "little")
    os.write(fd, FILE_HEADER.pack(MAGIC, VERSION, FILE_HEADER_SIZE, nonce, seq))
    return nonce


def _same_file(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except FileNotFoundError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


