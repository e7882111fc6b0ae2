"""The tar stream of a `cp` into a container, read for the cp helper without tarfile's
stream mode.

Owns: `TarReader`, which yields the archive's entries as `tarfile.TarInfo` (headers parsed
by tarfile itself, `TarInfo.fromtarfile`: checksums, pax and GNU long names, base-256
numbers, tarfile's own bounds) and copies an entry's content straight into a file
descriptor: what is buffered already with one write, the rest read from the upload's pipe
into one small buffer and written from it, 32 KiB at a time. Must not: create or name
anything (`cpextract` does), or import more than the standard library.

Why 32 KiB, and not splice(2) from the pipe into the file: the copy into the file's
page-cache pages is this process's whole cost, and it is fast only from a source in the
CPU's cache. A buffer this small stays there between the read and the write; splice (the
pipe's pages, megabytes palletd wrote from another CPU) and 1 MiB buffers copied from
memory: 1 GB into a running container cost the helper 2.6-3.0 s of CPU with splice or
1 MiB, 1.5 s with 64 KiB, 0.6-1.1 s with 32 KiB on this 2-CPU machine (16 KiB no better,
8 KiB worse: the syscalls). Go's io.Copy, docker's untar, copies 32 KiB at a time too.

Why not `tarfile.open(mode="r|")`: its stream mode reads through a record buffer that it
copies whole on every read (a 512-byte header cost a copy of the buffer), then hands a
file's content on through two more buffers; a gigabyte went through Python four times.
The end of the archive is tarfile's: a zero block, or a header that does not parse after
the first one; a first header that does not parse is not a tar at all. As with Go's
archive/tar, a stream that ends right after an entry's content (no padding, no end blocks)
ends the archive too; one that ends inside a header or a content is cut short.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from typing import IO

BLOCK = tarfile.BLOCKSIZE
#: What one read of the stream asks for (the helper's pipe holds 1 MiB).
READ_SIZE = 1 << 20
#: A file's content goes through a buffer of this size (see the module docstring).
COPY_SIZE = 32 << 10
#: tarfile's header errors (HeaderError's subclasses, not in its stubs): a zero block
#: (the end), a header that does not parse, one whose extended header's next does not.
_EOF_HEADER: type[Exception] = getattr(tarfile, "EOFHeaderError")
_BAD_HEADER: tuple[type[Exception], ...] = tuple(
    getattr(tarfile, n) for n in ("InvalidHeaderError", "EmptyHeaderError", "TruncatedHeaderError")
)
_BAD_NEXT_HEADER: type[Exception] = getattr(tarfile, "SubsequentHeaderError")


class TarReader:
    """The entries of the tar in `stream` (a file object; a raw pipe or file, io.FileIO,
    is read through its descriptor). Iterate it; for each regular file, `copy_to` writes
    its content (else it is skipped when the next entry is read)."""

    # What TarInfo.fromtarfile reads of the TarFile it is given.
    encoding = tarfile.ENCODING
    errors = "surrogateescape"

    def __init__(self, stream: IO[bytes], tarinfo: type[tarfile.TarInfo] = tarfile.TarInfo) -> None:
        self._stream = stream
        try:
            self._fd = stream.fileno() if isinstance(stream, io.FileIO) else -1
        except (OSError, io.UnsupportedOperation):
            self._fd = -1
        self._copy_buffer = memoryview(bytearray(COPY_SIZE))
        self._tarinfo = tarinfo
        self._buf = bytearray()
        self._pos = 0  # what of _buf is consumed
        self._consumed = 0  # the stream position of _buf[_pos]
        self.fileobj = self  # fromtarfile reads headers through `fileobj`
        self.offset = 0  # tarfile's: where the next header starts (fromtarfile sets it)
        self.pax_headers: dict[str, str] = {}  # global pax headers (fromtarfile keeps them)
        self._content = 0  # the current entry's content not yet copied
        self._data_end = 0  # the stream position where the current entry's content ends
        self._ended = False  # the stream ended in the padding after the last content

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
            if self._ended:
                return
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
            self._data_end = member.offset_data + self._content
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
        buffer = self._copy_buffer
        while size:
            piece = buffer[:min(size, COPY_SIZE)]
            got = os.readv(self._fd, [piece]) if self._fd >= 0 else self._read_into(piece)
            if not got:
                raise tarfile.ReadError("unexpected end of data")
            view = buffer[:got]
            while view:
                view = view[os.write(fd, view):]
            size -= got
            self._consumed += got

    def _read_into(self, piece: memoryview) -> int:
        data = self._stream.read(len(piece))
        piece[: len(data)] = data
        return len(data)

    def _skip_to(self, offset: int) -> None:
        """Read on to the stream position `offset` (an entry's content and padding)."""
        while self._consumed < offset:
            left = offset - self._consumed
            have = len(self._buf) - self._pos
            if not have:
                self._fill(min(left, READ_SIZE))
                have = len(self._buf) - self._pos
                if not have:
                    if self._consumed >= self._data_end:
                        # The last entry is whole and only its padding and the end
                        # blocks are missing: the end, as Go's archive/tar reads it
                        # (the docker CLI sends such a context for `build -f -`: its
                        # tar's pipe is closed before the writer's last blocks).
                        self._ended = True
                        return
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
