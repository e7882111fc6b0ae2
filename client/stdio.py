"""The CLI's own stdio during attach, exec and logs.

Owns: writing output chunks raw to our stdout/stderr (flushed per chunk, so interactive
output shows at once) and pumping our stdin to a session on a daemon thread in 64 KiB
reads, ending with close_stdin at EOF. Must not: talk gRPC itself (it is handed a session
with send_stdin/close_stdin) or format anything except `logs -t` prefixes it is given.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO, Protocol

STDIN_READ_SIZE = 64 * 1024
_STDERR = 2  # pallet.v1.Stream.STREAM_STDERR


class StdinSink(Protocol):
    def send_stdin(self, data: bytes) -> None: ...

    def close_stdin(self) -> None: ...


def _binary(stream: Any) -> BinaryIO:
    buffer = getattr(stream, "buffer", None)
    return buffer if buffer is not None else stream  # type: ignore[no-any-return]


def write_chunks(
    chunks: Iterable[Any],
    transform: Callable[[int, int, bytes], bytes] | None = None,
) -> None:
    """Write LogChunks to sys.stdout/sys.stderr as raw bytes (stderr chunks to stderr)."""
    # Text printed before (there is none in these verbs, but be safe) must come first.
    sys.stdout.flush()
    out = _binary(sys.stdout)
    err = _binary(sys.stderr)
    for chunk in chunks:
        data = chunk.data
        if transform is not None:
            data = transform(chunk.stream, chunk.time_unix_nano, data)
        target = err if chunk.stream == _STDERR else out
        target.write(data)
        target.flush()


def _stdin_reader() -> Callable[[], bytes]:
    """A function returning the next up-to-64-KiB read of our stdin (b"" at EOF)."""
    stdin = sys.stdin
    try:
        fd = stdin.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        binary = _binary(stdin)
        read1 = getattr(binary, "read1", None)
        if read1 is not None:
            return lambda: bytes(read1(STDIN_READ_SIZE))
        return lambda: bytes(binary.read(STDIN_READ_SIZE))
    return lambda: os.read(fd, STDIN_READ_SIZE)


class DetachFilter(Protocol):
    """What the pump passes stdin through (`client.terminal.DetachScanner`)."""

    detached: bool

    def feed(self, data: bytes) -> bytes: ...


class StdinPump:
    """Copies our stdin to a session until EOF, then closes the session's stdin.

    A daemon thread, because a read of a terminal cannot be interrupted portably; when the
    container exits first, the process exits without waiting for it. With a `detach`
    filter, the detach keys end the copy without closing the session's stdin, and
    `on_detach` is called.
    """

    def __init__(
        self,
        sink: StdinSink,
        detach: DetachFilter | None = None,
        on_detach: Callable[[], None] = lambda: None,
    ) -> None:
        self._sink = sink
        self._detach = detach
        self._on_detach = on_detach
        self._read = _stdin_reader()
        self._thread = threading.Thread(target=self._run, name="pallet-stdin", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        detach = self._detach
        try:
            while True:
                data = self._read()
                if not data:
                    break
                if detach is not None:
                    data = detach.feed(data)
                if data:
                    self._sink.send_stdin(data)
                if detach is not None and detach.detached:
                    return
        except (OSError, ValueError):
            pass  # stdin closed under us: treat as end of input
        finally:
            if detach is not None and detach.detached:
                self._on_detach()  # the container keeps its stdin: it is only us who go
            else:
                self._sink.close_stdin()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
