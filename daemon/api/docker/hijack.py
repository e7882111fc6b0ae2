"""Docker's hijacked connections: after the HTTP request of an attach or an exec start,
the connection carries the process's raw bytes both ways.

Owns: taking a connection over from aiohttp once a handler decides to (`hijack`), the
raw connection (reads, where the client's half-close is the end of its input; writes,
with flow control), Docker's 8-byte frame headers of a multiplexed stream, and the
detach-key escape of a terminal's input. Must not: know any endpoint or servicer.

dockerd answers `101 UPGRADED` (the client asked with `Connection: Upgrade`,
`Upgrade: tcp`) or, to older clients that did not ask, `200 OK`, and either way the
response has no length and no chunking: raw bytes until either side closes.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from typing import Any

from aiohttp import web

from pallet.daemon.api.docker.calls import bad_request

#: Content types of a hijacked stream: a terminal's one stream, or stdout and stderr in
#: frames.
RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"
#: Docker's default detach keys (ctrl-p, ctrl-q).
DEFAULT_DETACH_KEYS = b"\x10\x11"
# Bytes from the client held unread before the connection stops reading from it.
_READ_LIMIT = 1024 * 1024


def frame(stream: int, data: bytes) -> bytes:
    """One frame of a multiplexed stream: stream (0 stdin, 1 stdout, 2 stderr), three
    zero bytes, the payload's length (big-endian uint32), the payload."""
    return struct.pack(">BxxxI", stream, len(data)) + data


def wants_upgrade(request: web.Request) -> bool:
    connection = request.headers.get("Connection", "").lower()
    return "upgrade" in connection and request.headers.get("Upgrade", "").lower() == "tcp"


class Hijacked(web.StreamResponse):
    """What a hijacking handler returns: its status line and headers went out on the raw
    connection, so aiohttp must write nothing more (no headers, no end of body)."""

    async def prepare(self, request: Any) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


class RawConnection(asyncio.Protocol):
    """The connection once hijacked: the transport's protocol from then on."""

    def __init__(self, transport: asyncio.Transport, http: Any, buffered: bytes) -> None:
        self._transport = transport
        self._http = http  # aiohttp's protocol: told when the connection goes
        self._chunks: deque[bytes] = deque([buffered] if buffered else [])
        self._held = len(buffered)
        self._eof = False
        self._closed = False
        self._read_paused = False
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._lost = asyncio.Event()

    # -- asyncio.Protocol ---------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._held += len(data)
        self._readable.set()
        if self._held > _READ_LIMIT and not self._read_paused:
            self._read_paused = True
            self._transport.pause_reading()

    def eof_received(self) -> bool:
        # The client's half-close: the end of its input, not of the connection (the
        # output goes on). True keeps the transport open for writing.
        self._eof = True
        self._readable.set()
        return True

    def connection_lost(self, exc: BaseException | None) -> None:
        self._closed = self._eof = True
        self._readable.set()
        self._writable.set()
        self._lost.set()
        self._http.connection_lost(exc)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # -- for the handler ----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    async def read(self) -> bytes:
        """The client's next bytes; b"" at the end of its input (half-close or gone)."""
        while not self._chunks:
            if self._eof:
                return b""
            self._readable.clear()
            await self._readable.wait()
        data = self._chunks.popleft()
        self._held -= len(data)
        if self._read_paused and self._held <= _READ_LIMIT // 2 and not self._closed:
            self._read_paused = False
            self._transport.resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        """Send `data`, waiting while the client is behind; ConnectionResetError once it
        went away."""
        if self._closed:
            raise ConnectionResetError("the client closed the connection")
        self._transport.write(data)
        await self._writable.wait()
        if self._closed:
            raise ConnectionResetError("the client closed the connection")

    async def wait_closed(self) -> None:
        await self._lost.wait()

    def close(self) -> None:
        """End the connection (what was written is sent first)."""
        self._http.force_close()  # not kept alive for another request
        self._transport.close()


class _Tail:
    """Takes what aiohttp read past the request (a payload parser's interface)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.data += data
        return False, b""

    def feed_eof(self) -> None:
        pass


def hijack(request: web.Request, content_type: str, headers: dict[str, str]) -> RawConnection:
    """Take the request's connection over from aiohttp: send dockerd's status line and
    headers, and from then on the connection is `RawConnection`'s (the handler then
    returns `Hijacked()`).

    The one place that reaches into aiohttp, with what its own WebSocketResponse uses:
    `request.protocol.set_parser` hands over the bytes aiohttp read past the request, and
    the transport gets a protocol of its own (`set_protocol`): aiohttp's would close the
    connection at the client's half-close, which is only the end of the client's input
    here (the end of stdin), and would parse what follows as HTTP.
    """
    transport = request.transport
    http = request.protocol
    if transport is None or transport.is_closing():
        raise ConnectionResetError("the client closed the connection")
    http.keep_alive(False)
    tail = _Tail()
    http.set_parser(tail)  # type: ignore[arg-type]
    raw = RawConnection(transport, http, bytes(tail.data))
    transport.set_protocol(raw)
    if not transport.is_reading():
        transport.resume_reading()
    if wants_upgrade(request):
        head = (f"HTTP/1.1 101 UPGRADED\r\nContent-Type: {content_type}\r\n"
                "Connection: Upgrade\r\nUpgrade: tcp\r\n")
    else:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    transport.write(head.encode("latin-1"))
    return raw


# -- detach keys ------------------------------------------------------------------------

_CTRL = {chr(c): c - 0x60 for c in range(ord("a"), ord("z") + 1)}
_CTRL.update({"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31})


def detach_keys(text: str) -> bytes:
    """Docker's detach key sequence ("ctrl-p,ctrl-q", "a,ctrl-@"); empty: the default."""
    if not text:
        return DEFAULT_DETACH_KEYS
    out = bytearray()
    for key in text.split(","):
        if len(key) == 1:
            out.append(ord(key))
        elif key.lower().startswith("ctrl-") and len(key) == 6 and key[5].lower() in _CTRL:
            out.append(_CTRL[key[5].lower()])
        else:
            raise bad_request(
                f"Invalid detach keys ({text}) provided: use a comma-separated list of "
                "characters and ctrl-<a-z, @, [, \\, ], ^, _>"
            )
    return bytes(out)


class DetachEscape:
    """Watches a terminal's input for the detach sequence (docker's escape proxy): the
    bytes before it pass, the sequence itself does not; a part of it that turns out not
    to be it passes late."""

    def __init__(self, keys: bytes) -> None:
        self._keys = keys
        self._matched = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """The bytes to pass on, and whether the client asked to detach."""
        keys = self._keys
        if not self._matched and keys[0] not in data:
            return data, False
        out = bytearray()
        for byte in data:
            if byte == keys[self._matched]:
                self._matched += 1
                if self._matched == len(keys):
                    self._matched = 0
                    return bytes(out), True
                continue
            if self._matched:
                out += keys[: self._matched]
                self._matched = 0
                if byte == keys[0]:
                    self._matched = 1
                    continue
            out.append(byte)
        return bytes(out), False
