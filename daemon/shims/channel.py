"""One asyncio connection to a shim or to the shim launcher, speaking `pallet.shim.api.wire`.

Owns: opening the unix socket (long paths included), reading and writing frames and the
messages of `pallet.shim.api.messages` they carry, and turning timeouts, dead peers and
malformed replies into `DeadlineExceeded` / `Unavailable` / `Internal` that name the
container. Unavailable means the peer is gone (refused, closed, reset) and nothing else:
callers read it as "the shim is dead". A malformed message comes from a live peer (a newer
or confused shim) and is Internal. Must not: know what the requests mean (that is
`pallet.daemon.shims.client`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, TypeVar

from pallet.v1.errors import DeadlineExceeded, Internal, InvalidArgument, Unavailable
from pallet.shim.api import messages, sockpath, wire
from pallet.shim.api.messages import Request

T = TypeVar("T")


#: How much a read takes off the socket at once. Output arrives as many small frames (a
#: container writing 4 KiB at a time); reading big slices lets `read_frames` hand several
#: over per wakeup instead of one frame per two awaits.
READ_SIZE = 1 << 20
#: The stream buffer: while palletd is busy sending one gRPC message, the shim can go on
#: writing this much into it (the shim itself never waits for us).
_STREAM_LIMIT = 4 << 20


class Channel:
    """A framed connection. Not safe for concurrent requests: callers serialise them."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> None:
        self._reader = reader
        self._writer = writer
        self._decoder = wire.FrameDecoder()
        self._frames: deque[wire.Frame] = deque()  # decoded, not yet returned
        self.peer = peer  # e.g. "shim of container web", for messages

    @classmethod
    async def open(cls, path: str, peer: str, timeout: float) -> Channel:
        try:
            with sockpath.usable(path) as usable:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_unix_connection(usable, limit=_STREAM_LIMIT), timeout
                )
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"{peer} did not accept a connection within {timeout:g}s") from None
        except OSError as exc:
            raise Unavailable(f"{peer} is not reachable at {path}: {exc.strerror or exc}") from None
        return cls(reader, writer, peer)

    async def send(self, data: bytes, timeout: float | None) -> None:
        try:
            self._writer.write(data)
            await asyncio.wait_for(self._writer.drain(), timeout)
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"{self.peer} did not take data within {timeout:g}s") from None
        except OSError as exc:
            raise Unavailable(f"{self.peer} closed the connection: {exc}") from None

    async def send_control(self, message: dict[str, Any], timeout: float | None) -> None:
        await self.send(wire.encode_control(message), timeout)

    async def send_request(self, request: Request, timeout: float | None) -> None:
        await self.send_control(messages.encode(request), timeout)

    async def read_frame(self, timeout: float | None) -> wire.Frame:
        """Next frame; Unavailable at EOF, DeadlineExceeded when `timeout` runs out."""
        try:
            return await asyncio.wait_for(self._read_frame(), timeout)
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"{self.peer} did not answer within {timeout:g}s") from None

    async def read_frames(self, timeout: float | None) -> list[wire.Frame]:
        """The next frame and every further whole frame already received (at least one)."""
        first = await self.read_frame(timeout)
        frames = [first]
        while self._frames:
            frames.append(self._frames.popleft())
        return frames

    async def _read_frame(self) -> wire.Frame:
        while not self._frames:
            try:
                data = await self._reader.read(READ_SIZE)
            except OSError as exc:
                raise Unavailable(f"{self.peer} connection failed: {exc}") from None
            if not data:
                raise Unavailable(f"{self.peer} closed the connection")
            try:
                self._frames.extend(self._decoder.feed(data))
            except wire.FrameError as exc:
                raise Internal(f"{self.peer} sent a malformed frame: {exc}") from None
        return self._frames.popleft()

    async def read_control(self, timeout: float | None) -> dict[str, Any]:
        """Next control message (skipping nothing: a data frame here is a protocol error)."""
        kind, payload = await self.read_frame(timeout)
        if kind != wire.CONTROL:
            raise Internal(f"{self.peer} sent output where a reply was expected")
        try:
            return wire.decode_control(payload)
        except wire.FrameError as exc:
            raise Internal(f"{self.peer} sent a malformed reply: {exc}") from None

    async def read_reply(self, expect: type[T], timeout: float | None) -> T:
        """The next control message as an `expect`, raising the error a reply carries."""
        return self.decode(wire.raise_if_error(await self.read_control(timeout)), expect)

    def decode(self, raw: dict[str, Any], expect: type[T]) -> T:
        """`messages.decode`; a message that is not what the protocol says is Internal (the
        peer lives but is confused, or newer), never a KeyError, the peer's
        InvalidArgument, or Unavailable (which would have it taken for dead)."""
        try:
            return messages.decode(raw, expect)
        except InvalidArgument as exc:
            raise Internal(f"{self.peer} sent a malformed message: {exc.message}") from None

    async def request(self, request: Request, expect: type[T], timeout: float) -> T:
        """Send one request and return its reply, raising the error a reply carries."""
        await self.send_request(request, timeout)
        return await self.read_reply(expect, timeout)

    async def close(self) -> None:
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)
        except (OSError, asyncio.TimeoutError):
            pass
