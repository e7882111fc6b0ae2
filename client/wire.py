"""gRPC over one HTTP/2 connection: the CLI's transport to palletd.

Owns: the HTTP/2 connection to palletd's socket (RFC 9113: the preface, SETTINGS, PING,
GOAWAY, RST_STREAM, flow control both ways), gRPC's framing on it (length-prefixed
messages, the request headers, `grpc-status`/`grpc-message` in the trailers), and calls
that run at once on that one connection: a reader thread hands each frame to its call,
and a caller sends on its own thread (stdin while output is read). Failures come out as
one `RpcError`: a status from palletd, or why there was no answer (no connection could
be made, the connection was accepted but never answered, or it broke mid-call). HPACK,
the header compression, is the hpack library's.
Must not: know pallet's services or messages (it moves bytes; `client.api` serializes),
or map failures to pallet's errors (`client.errors` does).

Why not grpcio in the CLI: importing it costs 50-75 ms of CPU on every command here (it
brings asyncio with it), more than the rest of a `pallet run --rm` in the CLI; this
module and hpack import in a few ms. palletd serves with grpcio, and every other client
(any language, any gRPC library) talks to it as before: this is plain gRPC on the wire.
Only what a client needs is here: no server side, no server push (turned off in our
SETTINGS), no compression (we offer none, so palletd sends none). TLS, for palletd's
tcp:// listener, is a `Dialer`'s (`client.tls`): this module moves HTTP/2 over whatever
socket-like object the dialer connects, and never imports ssl.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

import hpack

# Frame types and flags (RFC 9113 section 6).
_DATA, _HEADERS, _PRIORITY, _RST_STREAM, _SETTINGS, _PUSH_PROMISE, _PING, _GOAWAY = range(8)
_WINDOW_UPDATE, _CONTINUATION = 8, 9
_END_STREAM = _ACK = 0x1
_END_HEADERS, _PADDED, _PRIORITY_FLAG = 0x4, 0x8, 0x20
_HEADER_TABLE_SIZE, _ENABLE_PUSH, _INITIAL_WINDOW_SIZE, _MAX_FRAME_SIZE = 1, 2, 4, 5
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

#: What we let palletd send on one call before we read it (the flow-control window):
#: large enough that a stream of logs or a tar never waits on us, small enough that a
#: reader slower than palletd (a pipe to `less`) holds palletd back instead of our memory.
STREAM_WINDOW = 8 * 1024 * 1024
#: The connection's window: the calls' windows bound what is in flight, so this one is
#: only topped up as frames arrive.
_CONNECTION_WINDOW = 1 << 30
#: The largest frame we accept (the protocol's default is 16 KiB): fewer frames per MB.
_MAX_FRAME = 1 << 20
_RECV_SIZE = 1 << 20
_SEND_BUFFER = 4 << 20
_MAX_HEADERS = 4 << 20
_IOV_MAX = 1024  # buffers per sendmsg (Linux's UIO_MAXIOV)
_DEFAULT_WINDOW = 65535

# HTTP/2 error codes of a RST_STREAM, as gRPC maps them to status codes.
_RST_CODES = {0x7: "UNAVAILABLE", 0x8: "CANCELLED", 0xB: "RESOURCE_EXHAUSTED", 0xC: "PERMISSION_DENIED"}


#: A message to send: its bytes, or a tuple of pieces that are its bytes one after another.
Message = bytes | tuple[bytes | memoryview, ...]


class RpcError(Exception):
    """A call that failed.

    `code` is a gRPC status name ("NOT_FOUND", "UNAVAILABLE", ...) and `details` the
    message. `failure` says when no status came from palletd: "connect" (no connection
    could be made: `details` has the reason), "silent" (the socket accepted the
    connection but no HTTP/2 answer came within the connect timeout), "lost" (the
    connection ended mid-call, or palletd is going away), "protocol" (palletd, or this
    client, broke HTTP/2 or gRPC: `details` says how), "tls" (the TLS handshake failed, or
palletd refused our certificate: `details` says which side refused what); "" for a
status palletd sent.
    """

    def __init__(self, code: str, details: str, failure: str = "") -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details
        self.failure = failure


class TransportError(OSError):
    """The secure transport under HTTP/2 failed (palletd refused our TLS certificate, ...):
    its message says why in words; raised by a `Dialer`'s socket."""


class Transport(Protocol):
    """What a connection reads and writes through: a socket, or `client.tls.TLSSocket`."""

    def sendall(self, data: bytes) -> None: ...
    def sendmsg(self, buffers: list[bytes | memoryview], /) -> int: ...
    def recv_into(self, buffer: bytearray, /) -> int: ...
    def shutdown(self, how: int, /) -> None: ...
    def close(self) -> None: ...


class Dialer(Protocol):
    """Makes connections that are not to a unix socket (palletd's tcp:// listener, with
    mutual TLS): `connect` returns a transport ready for HTTP/2 within `timeout` or
    raises RpcError; `scheme` and `authority` go in every call's headers."""

    scheme: str
    authority: str

    def connect(self, timeout: float) -> Transport: ...


class _Call:
    """One HTTP/2 stream: a gRPC call's state, shared by its caller and the reader."""

    def __init__(self, conn: Connection, stream_id: int, send_window: int) -> None:
        self.conn = conn
        self.id = stream_id
        self.send_window = send_window
        self.messages: deque[bytes] = deque()
        self.buffer = bytearray()  # DATA not yet a whole message
        self.headers: dict[str, str] | None = None
        self.error: RpcError | None = None  # set once the call is over and failed
        self.done = False  # palletd ended it (trailers or RST_STREAM), or it broke
        self.sent_end = False  # our END_STREAM or RST_STREAM was sent
        self.queued = 0  # bytes of whole messages the caller has not taken yet
        self.credit = 0  # bytes received and not yet given back to palletd (WINDOW_UPDATE)
        self.watchers: list[Callable[[], None]] = []

    # -- the reader's side (called with conn.cv held) ------------------------------------
    def feed(self, data: bytes | memoryview) -> None:
        """Whole messages out of DATA; a message's bytes are copied once, out of the frame
        (or, for one split across frames, out of the buffer that joins them)."""
        buf = self.buffer
        if buf:
            buf += data
        src = memoryview(buf if buf else data)
        start = 0
        try:
            while len(src) - start >= 5:
                if src[start]:
                    self.fail(RpcError("INTERNAL", "palletd sent a compressed message, which was not asked for"))
                    return
                size = int.from_bytes(src[start + 1 : start + 5], "big")
                if size > self.conn.max_message:
                    self.fail(RpcError(
                        "RESOURCE_EXHAUSTED",
                        f"palletd sent a message of {size} bytes, over the {self.conn.max_message} allowed",
                    ))
                    return
                end = start + 5 + size
                if end > len(src):
                    break
                message = src[start + 5 : end].tobytes()
                self.messages.append(message)
                self.queued += len(message)
                start = end
            rest = b"" if buf else src[start:].tobytes()
        finally:
            src.release()
        if buf:
            del buf[:start]
        elif rest:
            self.buffer = bytearray(rest)

    def finish(self, trailers: dict[str, str]) -> None:
        if self.done:
            return
        status = trailers.get("grpc-status")
        if status is None:
            self.error = RpcError("UNKNOWN", "palletd ended the call without a gRPC status")
        elif status != "0":
            self.error = RpcError(_status_name(status), _unquote(trailers.get("grpc-message", "")))
        elif self.buffer:
            self.error = RpcError("INTERNAL", "palletd ended the call in the middle of a message")
        self._over()

    def fail(self, error: RpcError) -> None:
        if self.done:
            return
        self.error = error
        self._over()
        self.conn._forget(self)

    def _over(self) -> None:
        self.done = True
        watchers, self.watchers = self.watchers, []
        for watch in watchers:
            self.conn._later.append(watch)


class Connection:
    """One HTTP/2 connection to palletd; `open` a call on it, from any thread."""

    def __init__(self, path: str, connect_timeout: float, max_message: int, dialer: Dialer | None = None) -> None:
        self.path = path
        self.max_message = max_message
        self._dialer = dialer
        self._scheme, self._authority = (dialer.scheme, dialer.authority) if dialer else ("http", "localhost")
        self.cv = threading.Condition()
        self._wlock = threading.Lock()  # one writer at a time, frames in order
        self._encoder = hpack.Encoder()
        self._decoder = hpack.Decoder()
        # Trailers carry grpc-message, which may be long: hpack's default list limit is 64 KiB.
        self._decoder.max_header_list_size = _MAX_HEADERS
        self._calls: dict[int, _Call] = {}
        self._next_id = 1
        self._send_window = _DEFAULT_WINDOW  # the connection's, for what we send
        self._peer_window = _DEFAULT_WINDOW  # palletd's initial window for a new call
        self._peer_frame = 16384
        self._received = 0  # connection-level bytes not yet given back
        self._later: list[Callable[[], None]] = []  # done-callbacks to run unlocked
        self.broken: RpcError | None = None  # set once the connection is unusable
        self.goaway = False  # palletd will take no new calls on it
        self._settled = threading.Event()
        self._sock = self._connect(connect_timeout)
        self._reader = threading.Thread(target=self._read_loop, name="pallet-h2", daemon=True)
        self._reader.start()
        if not self._settled.wait(connect_timeout):
            self.close()
            raise RpcError("UNAVAILABLE", "no HTTP/2 SETTINGS within the connect timeout", "silent")
        if self.broken is not None:
            self.close()
            raise self.broken

    def _connect(self, timeout: float) -> Transport:
        sock: Transport
        if self._dialer is not None:
            sock = self._dialer.connect(timeout)
        else:
            sock = self._connect_unix(timeout)
        settings = _settings({_ENABLE_PUSH: 0, _INITIAL_WINDOW_SIZE: STREAM_WINDOW, _MAX_FRAME_SIZE: _MAX_FRAME})
        try:
            sock.sendall(
                _PREFACE + settings
                + _frame(_WINDOW_UPDATE, 0, 0, (_CONNECTION_WINDOW - _DEFAULT_WINDOW).to_bytes(4, "big"))
            )
        except OSError as exc:
            sock.close()
            raise RpcError("UNAVAILABLE", os.strerror(exc.errno or errno.EIO), "connect") from None
        return sock

    def _connect_unix(self, timeout: float) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(OSError):
            # A unix socket holds what its sender's buffer allows (208 KiB by default): a
            # 4 MiB message of a cp went in 20 turns of ours and palletd's. Capped by
            # net.core.wmem_max, which only makes it slower.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)
        sock.settimeout(timeout)
        try:
            sock.connect(self.path)
        except TimeoutError:
            sock.close()
            raise RpcError("UNAVAILABLE", "the connection was not accepted in time", "silent") from None
        except OSError as exc:
            sock.close()
            raise RpcError("UNAVAILABLE", os.strerror(exc.errno or errno.EIO), "connect") from None
        sock.settimeout(None)
        return sock

    @property
    def usable(self) -> bool:
        return self.broken is None and not self.goaway

    def close(self) -> None:
        with self.cv:
            if self.broken is None:
                self.broken = RpcError("UNAVAILABLE", "the connection was closed", "lost")
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    # -- calls ---------------------------------------------------------------------------
    def open(self, path: str) -> _Call:
        """Start a call of method `path` ("/pallet.v1.ContainersService/Create")."""
        headers = [
            (":method", "POST"), (":scheme", self._scheme), (":path", path), (":authority", self._authority),
            ("te", "trailers"), ("content-type", "application/grpc"), ("user-agent", "pallet-cli"),
        ]
        with self._wlock:
            with self.cv:
                if self.broken is not None:
                    raise self.broken
                if self.goaway:
                    raise _GoneAway()
                call = _Call(self, self._next_id, self._peer_window)
                self._next_id += 2
                self._calls[call.id] = call
            with self._unbroken():
                block = self._encoder.encode(headers)
                self._write(_frame(_HEADERS, _END_HEADERS, call.id, block))
        return call

    @contextlib.contextmanager
    def _unbroken(self) -> Iterator[None]:
        """Around a write (with _wlock held): an exception in the middle of one (Ctrl-C's
        KeyboardInterrupt) may have left a frame cut short or the header codec ahead of
        palletd's, so the connection is given up rather than used again."""
        try:
            yield
        except BaseException:
            self._break(RpcError("UNAVAILABLE", "the connection was interrupted mid-write", "lost"), run=False)
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            raise

    def send(self, call: _Call, message: Message, end: bool = False) -> bool:
        """Send one message (and END_STREAM after it if `end`); waits for palletd's
        window. False when the call is already over (palletd answered or it broke).
        The message's bytes are not copied: frame headers and slices of it go out in one
        sendmsg (a cp or an import sends gigabytes this way); a message given as a tuple
        of pieces is their concatenation (an upload's chunk after its field's header,
        never joined)."""
        parts = [memoryview(p) for p in message] if isinstance(message, tuple) else [memoryview(message)]
        size = sum(len(p) for p in parts)
        parts.insert(0, memoryview(size.to_bytes(5, "big")))
        total = 5 + size
        sent = 0
        while sent < total:
            with self.cv:
                while not call.done and (call.send_window <= 0 or self._send_window <= 0):
                    if self.broken is not None:
                        return False
                    self.cv.wait()
            # The window is taken and the frames written under the writer's lock, which a
            # SETTINGS is applied and acked under too: see _on_frame.
            with self._wlock, self._unbroken():
                with self.cv:
                    if call.done or call.sent_end or self.broken is not None:
                        return False
                    n = min(total - sent, call.send_window, self._send_window)
                    if n <= 0:
                        continue  # the window shrank meanwhile: wait again
                    call.send_window -= n
                    self._send_window -= n
                    if end and sent + n == total:
                        call.sent_end = True  # with the frame that ends it, under the lock
                        self._retire(call)
                pieces: list[bytes | memoryview] = []
                for start in range(sent, sent + n, self._peer_frame):
                    stop = min(start + self._peer_frame, sent + n)
                    last = end and stop == total
                    pieces.append(_header(stop - start, _DATA, _END_STREAM if last else 0, call.id))
                    pieces += _slices(parts, start, stop)
                if not self._write_pieces(pieces):
                    return False
            sent += n
        return True

    def end(self, call: _Call) -> None:
        """Half-close our side: no more messages."""
        with self._wlock, self._unbroken():
            with self.cv:
                if call.done or call.sent_end:
                    return
                call.sent_end = True
                self._retire(call)
            self._write(_frame(_DATA, _END_STREAM, call.id, b""))

    def cancel(self, call: _Call) -> None:
        """End the call now (RST_STREAM CANCEL) unless both sides have ended it."""
        with self._wlock, self._unbroken():
            with self.cv:
                if call.done and call.sent_end:
                    return
                call.sent_end = True
                call.fail(RpcError("CANCELLED", "the call was cancelled"))
                self._forget(call)
                self.cv.notify_all()
                later, self._later = self._later, []
            self._write(_frame(_RST_STREAM, 0, call.id, (0x8).to_bytes(4, "big")))
        _run(later)

    def _reset(self, stream: int) -> None:
        with self._wlock:
            self._write(_frame(_RST_STREAM, 0, stream, (0x8).to_bytes(4, "big")))

    def receive(self, call: _Call) -> bytes | None:
        """The call's next message; None once it ended with OK; raises RpcError."""
        with self.cv:
            while not call.messages and not call.done:
                self.cv.wait()
            if call.messages:
                message = call.messages.popleft()
                call.queued -= len(message)
                credit = self._credit_due(call)
            elif call.error is not None:
                raise call.error
            else:
                return None
        if credit:
            self._give(credit, call)
        return message

    def _credit_due(self, call: _Call) -> int:
        """Bytes to give back to palletd for this call now (with cv held): what arrived,
        once a quarter window of it is owed and the caller keeps up (less than half a
        window of whole messages waiting). A slow reader so holds palletd back; a message
        larger than the window is credited as it arrives, so it never stalls."""
        if call.done or call.credit < STREAM_WINDOW // 4 or call.queued >= STREAM_WINDOW // 2:
            return 0
        credit, call.credit = call.credit, 0
        return credit

    def _give(self, credit: int, call: _Call | None = None) -> None:
        """WINDOW_UPDATE for `call` (None: the connection); none once the call is over
        (checked under the writer's lock: never after our own RST_STREAM)."""
        with self._wlock, self._unbroken():
            if call is not None:
                with self.cv:
                    if call.done or self._calls.get(call.id) is not call:
                        return
            self._write(_frame(_WINDOW_UPDATE, 0, call.id if call else 0, credit.to_bytes(4, "big")))

    def watch(self, call: _Call, callback: Callable[[], None]) -> None:
        """Run `callback` (on the reader's thread) once the call is over."""
        with self.cv:
            if not call.done:
                call.watchers.append(callback)
                return
        _run([callback])

    def _retire(self, call: _Call) -> None:
        if call.done and call.sent_end:
            self._forget(call)

    def _forget(self, call: _Call) -> None:
        self._calls.pop(call.id, None)

    def _write(self, data: bytes) -> bool:
        """Send (with _wlock held); False, and the connection broken, when the socket
        failed. The reader, woken by the shutdown, runs the calls' done-callbacks."""
        return self._write_pieces([data])

    def _write_pieces(self, pieces: list[bytes | memoryview]) -> bool:
        try:
            while pieces:
                n = self._sock.sendmsg(pieces[:_IOV_MAX])
                while pieces and n >= len(pieces[0]):
                    n -= len(pieces[0])
                    pieces.pop(0)
                if n:
                    pieces[0] = memoryview(pieces[0])[n:]
            return True
        except OSError as exc:
            if isinstance(exc, TransportError):
                error = RpcError("UNAVAILABLE", str(exc), "tls")
            else:
                error = RpcError("UNAVAILABLE", f"the connection broke: {os.strerror(exc.errno or errno.EIO)}", "lost")
            self._break(error, run=False)
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return False

    # -- the reader ----------------------------------------------------------------------
    def _read_loop(self) -> None:
        # Received into one buffer (a fresh 1 MiB bytes a recv would be allocated and
        # shrunk every time) and parsed where it arrived: DATA is handed on as a view,
        # which `_Call.feed` copies each message out of once; only a frame cut off by the
        # end of a read is kept over, in `partial`.
        scratch = bytearray(_RECV_SIZE)
        partial = bytearray()
        block = bytearray()  # a header block being continued
        block_id = 0
        block_flags = 0
        try:
            while True:
                n = self._sock.recv_into(scratch)
                if not n:
                    raise ConnectionResetError(errno.ECONNRESET, "palletd closed the connection")
                if partial:
                    partial += memoryview(scratch)[:n]
                    view = memoryview(partial)
                else:
                    view = memoryview(scratch)[:n]
                pos = 0
                try:
                    while len(view) - pos >= 9:
                        length = int.from_bytes(view[pos : pos + 3], "big")
                        end = pos + 9 + length
                        if end > len(view):
                            break
                        kind, flags = view[pos + 3], view[pos + 4]
                        stream = int.from_bytes(view[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
                        start = pos + 9
                        pos = end
                        if block_id:
                            if kind != _CONTINUATION or stream != block_id:
                                raise _ProtocolError("a header block was interrupted")
                            block += view[start:end]
                            if flags & _END_HEADERS:
                                self._on_headers(block_id, block_flags, bytes(block))
                                block_id = 0
                            continue
                        if kind == _HEADERS:
                            payload = _unpad(view[start:end].tobytes(), flags)
                            if flags & _PRIORITY_FLAG:
                                payload = payload[5:]
                            if flags & _END_HEADERS:
                                self._on_headers(stream, flags, payload)
                            else:
                                block, block_id, block_flags = bytearray(payload), stream, flags
                        elif kind == _DATA:
                            data = view[start:end]
                            try:
                                self._on_data(flags, stream, data, length)
                            finally:
                                data.release()
                        else:
                            self._on_frame(kind, flags, stream, view[start:end].tobytes(), length)
                        self._run_later()
                    rest = b"" if partial else view[pos:].tobytes()
                finally:
                    view.release()
                if partial:
                    del partial[:pos]
                elif rest:
                    partial = bytearray(rest)
        except TransportError as exc:
            self._break(RpcError("UNAVAILABLE", str(exc), "tls"))
        except OSError as exc:
            self._break(RpcError("UNAVAILABLE", f"the connection broke: {exc.strerror or exc}", "lost"))
        except hpack.HPACKError as exc:
            self._break(RpcError("INTERNAL", f"palletd sent headers that cannot be decoded: {exc}", "protocol"))
        except Exception as exc:  # _ProtocolError, or a bug here: never a silent dead reader
            self._break(RpcError("INTERNAL", f"HTTP/2 protocol error: {exc}", "protocol"))

    def _on_data(self, flags: int, stream: int, payload: memoryview, length: int) -> None:
        """A DATA frame, seen where it was received (`_Call.feed` copies what it keeps)."""
        self._received += length
        credit = 0
        reset = False
        with self.cv:
            call = self._calls.get(stream)
            if call is not None and not call.done:
                call.credit += length
                call.feed(_unpad(payload, flags))
                if call.done:  # a message it cannot take: palletd is told to stop
                    reset = not call.sent_end or not flags & _END_STREAM
                    call.sent_end = True
                elif flags & _END_STREAM:
                    call.finish(call.headers or {})
                    self._retire(call)
                else:
                    credit = self._credit_due(call)
                self.cv.notify_all()
        if reset:
            self._reset(stream)
        if credit and call is not None:
            self._give(credit, call)
        if self._received >= _CONNECTION_WINDOW // 2:
            self._give(self._received)
            self._received = 0

    def _on_frame(self, kind: int, flags: int, stream: int, payload: bytes, length: int) -> None:
        if kind == _SETTINGS:
            if flags & _ACK:
                return
            # Applied and acked under the writer's lock, with nothing sent between: palletd
            # (grpc core) holds us to its new window only once our ack has reached it, so
            # DATA sized by the new window must not go out before the ack, nor DATA sized
            # by the old one after it (send() takes the window under the same lock).
            with self._wlock:
                self._on_settings(payload)
                self._write(_frame(_SETTINGS, _ACK, 0, b""))
            self._settled.set()
        elif kind == _PING:
            if not flags & _ACK:
                with self._wlock:
                    self._write(_frame(_PING, _ACK, 0, payload))
        elif kind == _WINDOW_UPDATE:
            increment = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            with self.cv:
                if stream == 0:
                    self._send_window += increment
                elif (call := self._calls.get(stream)) is not None:
                    call.send_window += increment
                self.cv.notify_all()
        elif kind == _RST_STREAM:
            code = int.from_bytes(payload[:4], "big")
            with self.cv:
                call = self._calls.get(stream)
                if call is not None:
                    call.sent_end = True  # nothing more may be sent on a reset stream
                    if code == 0 and call.done:
                        pass  # NO_ERROR after the trailers: palletd needs no more input
                    else:
                        call.fail(RpcError(_RST_CODES.get(code, "INTERNAL"), f"palletd reset the call (HTTP/2 error {code})"))
                    self._forget(call)
                    self.cv.notify_all()
        elif kind == _GOAWAY:
            last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            code = int.from_bytes(payload[4:8], "big")
            why = payload[8:].decode("utf-8", "replace")
            if code:  # not a graceful shutdown: palletd found us at fault
                error = RpcError("INTERNAL", f"palletd closed the connection: HTTP/2 error {code} {why}".rstrip(), "protocol")
            else:
                error = RpcError("UNAVAILABLE", "palletd is shutting down (GOAWAY)", "lost")
            with self.cv:
                self.goaway = True
                for call in [c for i, c in self._calls.items() if i > last]:
                    call.fail(error)
                self.cv.notify_all()
        elif kind == _PUSH_PROMISE:
            raise _ProtocolError("server push was turned off")
        # PRIORITY and unknown frame types are ignored, as the protocol says.

    def _on_settings(self, payload: bytes) -> None:
        """Apply palletd's SETTINGS (called with _wlock held)."""
        with self.cv:
            for i in range(0, len(payload) - 5, 6):
                key = int.from_bytes(payload[i : i + 2], "big")
                value = int.from_bytes(payload[i + 2 : i + 6], "big")
                if key == _INITIAL_WINDOW_SIZE:
                    delta = value - self._peer_window
                    self._peer_window = value
                    for call in self._calls.values():
                        call.send_window += delta
                elif key == _MAX_FRAME_SIZE:
                    self._peer_frame = value
                elif key == _HEADER_TABLE_SIZE:
                    self._encoder.header_table_size = value
            self.cv.notify_all()

    def _on_headers(self, stream: int, flags: int, block: bytes) -> None:
        # Decoded even for a call we forgot: the decoder's table must see every block.
        headers = {_text(name): _text(value) for name, value in self._decoder.decode(block)}
        with self.cv:
            call = self._calls.get(stream)
            if call is None or call.done:
                return
            if call.headers is None:
                status = headers.get(":status", "")
                if status != "200":
                    call.fail(RpcError(_http_status_code(status), f"palletd answered HTTP {status or '(no status)'}"))
                    self.cv.notify_all()
                    return
                call.headers = headers
                if flags & _END_STREAM:  # trailers only: a call that failed at once
                    call.finish(headers)
            elif flags & _END_STREAM:
                call.finish(headers)
            else:
                raise _ProtocolError("a second header block without END_STREAM")
            self._retire(call)
            self.cv.notify_all()

    def _break(self, error: RpcError, run: bool = True) -> None:
        with self.cv:
            if self.broken is None:
                self.broken = error
            for call in list(self._calls.values()):
                call.fail(self.broken)
            self._calls.clear()
            self.cv.notify_all()
        self._settled.set()
        if run:
            self._run_later()

    def _run_later(self) -> None:
        if not self._later:
            return
        with self.cv:
            later, self._later = self._later, []
        _run(later)


class _ProtocolError(Exception):
    pass


class _GoneAway(Exception):
    """open() on a connection palletd said GOAWAY on: use a new one."""


def _run(callbacks: list[Callable[[], None]]) -> None:
    """Done-callbacks, each on its own: one that raises must not stop the others, nor the
    reader thread that runs most of them (they must not block either: they run on it)."""
    for callback in callbacks:
        try:
            callback()
        except Exception:  # noqa: BLE001 - a caller's bug, not the connection's
            pass


class Channel:
    """Calls to palletd at one unix socket (or where `dialer` connects), over one
    connection made on first use (and made again when palletd closed or is closing the
    last one)."""

    def __init__(
        self, path: str, connect_timeout: float, max_message: int = 64 * 1024 * 1024,
        dialer: Dialer | None = None,
    ) -> None:
        self.path = path
        self.dialer = dialer
        self.connect_timeout = connect_timeout
        self.max_message = max_message
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> Connection:
        with self._lock:
            if self._conn is None or not self._conn.usable:
                self._conn = Connection(self.path, self.connect_timeout, self.max_message, self.dialer)
            return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def unary(self, method: str, request: bytes) -> bytes:
        call = self.start(method)
        call.send(request, end=True)
        return call.single()

    def unary_future(self, method: str, request: bytes) -> Future:
        call = self.start(method)
        call.send(request, end=True)
        return Future(call)

    def server_stream(self, method: str, request: bytes) -> Stream:
        call = self.start(method)
        call.send(request, end=True)
        return call

    def client_stream(self, method: str, requests: Iterable[Message]) -> bytes:
        call = self.start(method)
        try:
            for request in requests:
                if not call.send(request):
                    break  # palletd answered (or failed) before the end of the upload
            else:
                call.end()
            return call.single()
        finally:
            call.cancel()

    def start(self, method: str) -> Stream:
        """Open a call of any kind: send on it, end it, iterate its responses. A call that
        meets a GOAWAY before it is sent goes out on a new connection."""
        conn = self._connection()
        try:
            return Stream(conn, conn.open(method))
        except _GoneAway:
            conn = self._connection()
            return Stream(conn, conn.open(method))


class Stream:
    """One call: `send` requests, `end` them, iterate the responses (bytes), `cancel`."""

    def __init__(self, conn: Connection, call: _Call) -> None:
        self._conn = conn
        self._call = call

    def send(self, message: Message, end: bool = False) -> bool:
        return self._conn.send(self._call, message, end)

    def end(self) -> None:
        self._conn.end(self._call)

    def cancel(self) -> None:
        self._conn.cancel(self._call)

    def receive(self) -> bytes | None:
        return self._conn.receive(self._call)

    def single(self) -> bytes:
        """The one response of a unary or client-streaming call."""
        message = self.receive()
        if message is None:
            raise RpcError("INTERNAL", "palletd ended the call without a response")
        if self.receive() is not None:
            raise RpcError("INTERNAL", "palletd sent more than one response")
        return message

    def __iter__(self) -> Iterator[bytes]:
        while (message := self.receive()) is not None:
            yield message

    @property
    def done(self) -> bool:
        return self._call.done

    def on_done(self, callback: Callable[[], None]) -> None:
        self._conn.watch(self._call, callback)


class Future:
    """A unary call in flight, shaped like grpc's future where the CLI uses it."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._outcome: tuple[bytes | None, RpcError | None] | None = None

    def _settle(self) -> tuple[bytes | None, RpcError | None]:
        with self._lock:
            if self._outcome is None:
                try:
                    self._outcome = (self._stream.single(), None)
                except RpcError as exc:
                    self._outcome = (None, exc)
            return self._outcome

    def result(self) -> bytes:
        value, error = self._settle()
        if error is not None:
            raise error
        assert value is not None
        return value

    def exception(self) -> RpcError | None:
        return self._settle()[1]

    def cancelled(self) -> bool:
        error = self._settle()[1]
        return error is not None and error.code == "CANCELLED"

    def add_done_callback(self, fn: Callable[[Future], Any]) -> None:
        self._stream.on_done(lambda: fn(self))


def _slices(parts: list[memoryview], start: int, stop: int) -> list[memoryview]:
    """The bytes `start` to `stop` of the concatenation of `parts`, as views of them."""
    out = []
    offset = 0
    for part in parts:
        end = offset + len(part)
        if end > start and offset < stop:
            out.append(part[max(start - offset, 0) : min(stop, end) - offset])
        offset = end
        if offset >= stop:
            break
    return out


def _header(length: int, kind: int, flags: int, stream: int) -> bytes:
    return length.to_bytes(3, "big") + bytes((kind, flags)) + stream.to_bytes(4, "big")


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return _header(len(payload), kind, flags, stream) + payload


def _settings(values: dict[int, int]) -> bytes:
    body = b"".join(key.to_bytes(2, "big") + value.to_bytes(4, "big") for key, value in values.items())
    return _frame(_SETTINGS, 0, 0, body)


def _text(value: str | bytes) -> str:
    # hpack decodes to str (its `raw=False`); its annotations also allow bytes.
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


_Payload = TypeVar("_Payload", bytes, memoryview)


def _unpad(payload: _Payload, flags: int) -> _Payload:
    if not flags & _PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise _ProtocolError("bad padding")
    return payload[1 : len(payload) - payload[0]]


_STATUS_NAMES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
)


def _status_name(value: str) -> str:
    try:
        return _STATUS_NAMES[int(value)]
    except (ValueError, IndexError):
        return "UNKNOWN"


def _http_status_code(status: str) -> str:
    # gRPC's mapping of HTTP statuses (doc/http-grpc-status-mapping.md).
    return {"400": "INTERNAL", "401": "UNAUTHENTICATED", "403": "PERMISSION_DENIED", "404": "UNIMPLEMENTED",
            "429": "UNAVAILABLE", "502": "UNAVAILABLE", "503": "UNAVAILABLE", "504": "UNAVAILABLE"}.get(status, "UNKNOWN")


def _unquote(text: str) -> str:
    """grpc-message is percent-encoded UTF-8."""
    if "%" not in text:
        return text
    out = bytearray()
    raw = text.encode("utf-8", "surrogateescape")
    i = 0
    while i < len(raw):
        if raw[i] == 0x25 and i + 2 < len(raw) + 0 and _is_hex(raw[i + 1 : i + 3]):
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", "replace")


def _is_hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(c in b"0123456789abcdefABCDEF" for c in pair)
