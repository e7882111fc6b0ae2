"""The framing spoken on a shim's unix socket and on the launcher's socket.

Owns: the frame layout and its encoder/decoder, and how an error travels (its code name
from `pallet.v1.errors` plus a message). Must not: do I/O; both the shim (a selectors
loop) and the daemon (asyncio) wrap it with their own reads and writes.

A frame is a 5-byte header, a big-endian u32 payload length and a u8 kind, then the
payload. Kind CONTROL carries one JSON object (a request, reply or event, typed in
`pallet.shim.api.messages`); STDOUT and STDERR (shim to client) carry a big-endian u64
capture time in ns then the raw bytes; STDIN (client to shim) carries raw bytes. Output
is never re-encoded.
"""

from __future__ import annotations

import json
import mmap
import struct
from typing import Any

from pallet.v1.errors import PalletError, from_code

HEADER = struct.Struct("!IB")
CONTROL = 0
STDOUT = 1
STDERR = 2
STDIN = 3
KINDS = (CONTROL, STDOUT, STDERR, STDIN)
MAX_PAYLOAD = 16 << 20  # a bigger frame means a confused peer, not a big message

Frame = tuple[int, bytes]


class FrameError(ValueError):
    """The peer sent something that is not a frame of this protocol."""


def encode_control(message: dict[str, Any]) -> bytes:
    payload = json.dumps(message, separators=(",", ":")).encode()
    return HEADER.pack(len(payload), CONTROL) + payload


_TIME = struct.Struct("!Q")
#: What comes before an output frame's data: the frame's header and the capture time.
OUTPUT_HEADER_SIZE = HEADER.size + _TIME.size


def encode_output(kind: int, time_ns: int, data: bytes | bytearray | memoryview) -> bytes:
    return HEADER.pack(_TIME.size + len(data), kind) + _TIME.pack(time_ns) + data


def pack_output_header(buf: mmap.mmap | bytearray, kind: int, time_ns: int, size: int) -> None:
    """Write an output frame's header into the first `OUTPUT_HEADER_SIZE` bytes of `buf`,
    for `size` bytes of data that follow it there (a frame built where it was read)."""
    HEADER.pack_into(buf, 0, _TIME.size + size, kind)
    _TIME.pack_into(buf, HEADER.size, time_ns)


def decode_output(payload: bytes) -> tuple[int, bytes]:
    """Split an output frame's payload into (capture time ns, data)."""
    if len(payload) < _TIME.size:
        raise FrameError("output frame shorter than its timestamp")
    return _TIME.unpack_from(payload)[0], payload[_TIME.size :]


def encode_stdin(data: bytes) -> bytes:
    return HEADER.pack(len(data), STDIN) + data


def decode_control(payload: bytes) -> dict[str, Any]:
    try:
        message = json.loads(payload)
    except ValueError as exc:
        raise FrameError(f"control frame is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise FrameError("control frame is not a JSON object")
    return message


def parse_header(header: bytes | memoryview) -> tuple[int, int]:
    """Return (payload length, kind), or raise FrameError for a malformed header."""
    length, kind = HEADER.unpack(header)
    if kind not in KINDS:
        raise FrameError(f"unknown frame kind {kind}")
    if length > MAX_PAYLOAD:
        raise FrameError(f"frame of {length} bytes exceeds the {MAX_PAYLOAD}-byte limit")
    return length, kind


class FrameDecoder:
    """Incremental decoder for a non-blocking reader: feed bytes, get whole frames."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        pos = 0
        view = memoryview(buf)
        try:
            while len(view) - pos >= HEADER.size:
                length, kind = parse_header(view[pos : pos + HEADER.size])
                start = pos + HEADER.size
                if len(view) < start + length:
                    break
                frames.append((kind, view[start : start + length].tobytes()))  # one copy
                pos = start + length
        finally:
            view.release()
        del buf[:pos]
        return frames


def error_reply(exc: PalletError) -> dict[str, Any]:
    return {"error": {"code": exc.code, "message": exc.message}}


def raise_if_error(message: dict[str, Any]) -> dict[str, Any]:
    """Return a reply unchanged, or raise the error-tree exception it carries."""
    error = message.get("error")
    if error is not None:
        raise from_code(str(error.get("code", "INTERNAL")), str(error.get("message", "")))
    return message
