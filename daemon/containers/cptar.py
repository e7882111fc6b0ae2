"""The tar stream of a `cp` into a container, read for the cp helper without tarfile's
stream mode.

Owns: `TarReader`, which yields the archive's entries as `tarfile.TarInfo` (headers parsed
by tarfile itself, `TarInfo.fromtarfile`: checksums, pax and GNU long names, base-256
numbers, tarfile's own bounds) and copies an entry's content straight into a file
descriptor: what is buffered already with one write, the rest spliced from the upload's
pipe into the file (splice(2): no copy through Python at all). Must not: create or name
anything (`cpextract` does), or import more than the standard library.

Why not `tarfile.open(mode="r|")`: its stream mode reads through a record buffer that it
copies whole on every read (a 512-byte header cost a copy of the buffer), then hands a
file's content on through two more buffers; a gigabyte went through Python four times.
The end of the archive is tarfile's: a zero block, or a header that does not parse after
the first one; a first header that does not parse is not a tar at all.
"""

from __future__ import annotations

import errno
import io
import os
import tarfile
from collections.abc import Iterator
from typing import IO

BLOCK = tarfile.BLOCKSIZE
#: What one read of the stream asks for (the helper's pipe holds 1 MiB).
READ_SIZE = 1 << 20
#: tarfile's header errors (HeaderError's subclasses, not in its stubs): a zero block
#: (the end), a header that does not parse, one whose extended header's next does not.
_EOF_HEADER: type[Exception] = getattr(tarfile, "EOFHeaderError")
_BAD_HEADER: tuple[type[Exception], ...] = tuple(
    getattr(tarfile, n) for n in ("InvalidHeaderError", "EmptyHeaderError", "TruncatedHeaderError")
)
_BAD_NEXT_HEADER: type[Exception] = getattr(tarfile, "SubsequentHeaderError")
_NO_SPLICE = (errno.EINVAL, errno.ENOSYS, errno.EBADF, errno.ESPIPE, errno.EOPNOTSUPP)


class TarReader:
    """The entries of the tar in `stream` (a file object; a pipe or file with a
    descriptor gets its content spliced). Iterate it; for each regular file, `copy_to`
    writes its content (else it is skipped when the next entry is read)."""

    # What TarInfo.fromtarfile reads of the TarFile it is given.
    encoding = tarfile.ENCODING
    errors = "surrogateescape"

    def __init__(self, stream: IO[bytes], tarinfo: type[tarfile.TarInfo] = tarfile.TarInfo) -> None:
        self._stream = stream
        try:
            self._fd = stream.fileno() if isinstance(stream, io.FileIO) else -1
        except (OSError, io.UnsupportedOperation):
            self._fd = -1
        self._splice = self._fd >= 0
        self._tarinfo = tarinfo
        self._buf = bytearray()
        self._pos = 0  # what of _buf is consumed
        self._consumed = 0  # the stream position of _buf[_pos]
        self.fileobj = self  # fromtarfile reads headers through `fileobj`
        self.offset = 0  # tarfile's: where the next header starts (fromtarfile sets it)
        self.pax_headers: dict[str, str] = {}  # global pax headers (fromtarfile keeps them)
        self._content = 0  # the current entry's content not yet copied

    # ---- the file object fromtarfile reads --------------------------------------------

    def tell(self) -> int:
        return self._consumed

    def read(self, n: int) -> bytes:
        """`n` bytes, fewer only at the end of the stream."""
        if len(self._buf) - self._pos < n:
            self._fill(n)
        end = min(self._pos + n, len(self._buf))
        data = bytes(memoryview(self._buf)[self._pos:end])
        self._consumed += end - self._pos
        self._pos = end
        return data

    def _fill(self, want: int) -> None:
        """Read until `want` bytes are buffered past _pos, or the stream ends."""
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0
        while len(self._buf) < want:
            data = self._read_stream(max(READ_SIZE, want - len(self._buf)))
            if not data:
                return
            self._buf += data

    def _read_stream(self, n: int) -> bytes:
        if self._fd >= 0:
            return os.read(self._fd, n)
        return self._stream.read(n)

    # ---- entries --------------------------------------------------------------------

    def __iter__(self) -> Iterator[tarfile.TarInfo]:
        first = True
        while True:
            self._skip_to(self.offset)
            try:
                member = self._tarinfo.fromtarfile(self)  # type: ignore[arg-type]
            except _EOF_HEADER:
                return
            except _BAD_HEADER as exc:
                if first:
                    raise tarfile.ReadError(str(exc) or "empty file") from None
                return  # tarfile's rule: what follows is not the archive's
            except _BAD_NEXT_HEADER as exc:
                raise tarfile.ReadError(str(exc)) from None
            first = False
            self._content = member.size if member.isreg() else 0
            yield member

    def copy_to(self, fd: int, size: int) -> None:
        """Write the current entry's next `size` bytes of content to `fd`."""
        if size > self._content:
            raise tarfile.ReadError("a read past the entry's content")
        self._content -= size
        have = min(size, len(self._buf) - self._pos)
        if have:
            view = memoryview(self._buf)[self._pos:self._pos + have]
            while view:
                view = view[os.write(fd, view):]
            self._pos += have
            self._consumed += have
            size -= have
        while size and self._splice:
            try:
                moved = os.splice(self._fd, fd, min(size, 1 << 30))
            except OSError as exc:
                if exc.errno not in _NO_SPLICE:
                    raise
                self._splice = False
                break  # not a pipe, or a filesystem without splice: copy below
            if not moved:
                raise tarfile.ReadError("unexpected end of data")
            size -= moved
            self._consumed += moved
        while size:
            data = self._read_stream(min(size, READ_SIZE))
            if not data:
                raise tarfile.ReadError("unexpected end of data")
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            size -= len(data)
            self._consumed += len(data)

    def _skip_to(self, offset: int) -> None:
        """Read on to the stream position `offset` (an entry's content and padding)."""
        while self._consumed < offset:
            left = offset - self._consumed
            have = len(self._buf) - self._pos
            if not have:
                self._fill(min(left, READ_SIZE))
                have = len(self._buf) - self._pos
                if not have:
                    raise tarfile.ReadError("unexpected end of data")
            step = min(left, have)
            self._pos += step
            self._consumed += step
        self._content = 0

    def drain(self) -> None:
        """Read the stream to its end (the tar's padding, or what follows its end)."""
        self._pos = len(self._buf)
        while self._read_stream(READ_SIZE):
            pass
