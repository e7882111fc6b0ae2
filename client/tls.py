"""Mutual TLS under the CLI's HTTP/2 connection to palletd's tcp:// listener.

Owns: the client's `ssl.SSLContext` (palletd's CA, our certificate and key, TLS 1.2 or
later, ALPN "h2", palletd's name or IP checked against its certificate), the TCP
connection and TLS handshake within the connect timeout, and `TLSSocket`, the socket
`client.wire` reads and writes through. Failures are said in words a user can act on
("palletd refused our certificate …", "palletd's certificate is not signed by …").
Must not: know HTTP/2 or gRPC (`client.wire` does); be imported for a unix socket (ssl
costs the CLI's start time; `client.api` imports this module only for tcp://).

Why an `ssl.SSLObject` over memory BIOs and not `ssl.SSLSocket`: `client.wire` reads on
its reader thread while callers write on theirs (stdin while output streams), and one
OpenSSL connection must not be used by two threads at once. Here a lock guards the TLS
state for the short time a record is sealed or opened; the socket I/O is done outside
it. Records go out in the order they were sealed (the sending lock is taken before the
TLS lock is let go), whichever thread made them: TLS numbers its records.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from typing import cast

from pallet.client.remote import TLSFiles
from pallet.client.wire import RpcError, TransportError
from pallet.v1.errors import InvalidArgument

_RECV_SIZE = 256 * 1024
#: Plaintext sealed per turn of the TLS lock: the reader is never held back longer than
#: it takes to encrypt this much.
_SEAL_SIZE = 256 * 1024


def client_context(files: TLSFiles) -> ssl.SSLContext:
    """A context that proves us with `files.cert`/`files.key` and trusts only `files.ca`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, host name checked
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_verify_locations(cafile=files.ca)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgument(f"cannot use {files.ca} as the CA certificate (--tlscacert): {_why(exc)}") from None
    try:
        context.load_cert_chain(files.cert, files.key)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgument(
            f"cannot use {files.cert} with the key {files.key} as the client certificate "
            f"(--tlscert, --tlskey): {_why(exc)}"
        ) from None
    context.set_alpn_protocols(["h2"])
    return context


def _why(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc).lower().replace("_", " ")
    return exc.strerror or str(exc)


def describe(exc: ssl.SSLError) -> str:
    """A TLS failure in words: which side refused what."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"palletd's certificate was not accepted: {exc.verify_message} (--tlscacert must be "
            "the CA that signed it, and it must name the host given to -H)"
        )
    reason = str(exc.reason or "")
    if "ALERT" in reason:
        alert = reason.partition("ALERT_")[2].lower().replace("_", " ") or reason.lower()
        return (
            f"palletd refused the TLS handshake ({alert}): it accepts only a client certificate "
            "that its --tlscacert signed and that has not expired (--tlscert, --tlskey)"
        )
    if isinstance(exc, ssl.SSLEOFError):
        return "palletd closed the connection during the TLS handshake"
    return f"TLS with palletd failed: {reason.lower().replace('_', ' ') or exc}"


class Dialer:
    """Connects to `address` over TCP and mutual TLS (for `wire.Channel`)."""

    scheme = "https"

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext) -> None:
        self.address = address
        self.context = context
        host, port = address
        self.authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def connect(self, timeout: float) -> TLSSocket:
        """A connected socket with the TLS handshake done, within `timeout` seconds;
        raises `wire.RpcError` ("connect", "silent" or "tls" failures)."""
        deadline = time.monotonic() + timeout
        try:
            sock = socket.create_connection(self.address, timeout=timeout)
        except TimeoutError:
            raise RpcError("UNAVAILABLE", "the connection was not accepted in time", "silent") from None
        except OSError as exc:
            raise RpcError("UNAVAILABLE", exc.strerror or os.strerror(exc.errno or errno.EIO), "connect") from None
        try:
            # gRPC's small frames (a call's headers, a PING's ack) must not wait for Nagle.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            obj = self.context.wrap_bio(incoming, outgoing, server_hostname=self.address[0])
            self._handshake(sock, obj, incoming, outgoing, deadline)
            if obj.selected_alpn_protocol() != "h2":
                raise RpcError(
                    "UNAVAILABLE",
                    f"{self.authority} does not speak gRPC over TLS (no HTTP/2 in ALPN): is it palletd's -H?",
                    "protocol",
                )
            sock.settimeout(None)
            return TLSSocket(sock, obj, incoming, outgoing)
        except BaseException:
            sock.close()
            raise

    @staticmethod
    def _handshake(
        sock: socket.socket, obj: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO,
        deadline: float,
    ) -> None:
        while True:
            try:
                obj.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            except ssl.SSLError as exc:
                _send_quietly(sock, outgoing.read())  # our alert, so palletd logs why
                raise RpcError("UNAVAILABLE", describe(exc), "tls") from None
            try:
                if outgoing.pending:
                    sock.sendall(outgoing.read())
                if done:
                    return
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                data = sock.recv(_RECV_SIZE)
            except TimeoutError:
                raise RpcError("UNAVAILABLE", "no TLS handshake within the connect timeout", "silent") from None
            except OSError as exc:
                raise RpcError(
                    "UNAVAILABLE", f"the connection broke during the TLS handshake: {exc.strerror or exc}", "tls"
                ) from None
            if not data:
                raise RpcError("UNAVAILABLE", "palletd closed the connection during the TLS handshake", "tls")
            incoming.write(data)


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        if data:
            sock.sendall(data)
    except OSError:
        pass


#: A connection palletd closed after the handshake, before its first HTTP/2 frame (a gRPC
#: server sends its SETTINGS at once). Under TLS 1.3 the client's side of the handshake
#: ends before palletd has checked our certificate, and grpc core closes the connection
#: without an alert when the check fails: this is how a refused certificate looks.
_REFUSED = (
    "palletd ended the connection after the TLS handshake without a word: it refused our "
    "client certificate (it accepts only one that its --tlscacert signed and that has not "
    "expired: check --tlscert and --tlskey)"
)


class TLSSocket:
    """TLS over a connected socket, with the calls `client.wire.Connection` makes:
    `recv_into` (one reader thread) and `sendall`/`sendmsg` (writers, one at a time)
    may run at once. TLS failures after the handshake (an alert from palletd: it
    refused our certificate under TLS 1.3, where it says so only after the handshake)
    are raised as `wire.TransportError` with the reason in words."""

    def __init__(self, sock: socket.socket, obj: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO) -> None:
        self._sock = sock
        self._obj = obj
        self._in = incoming
        self._out = outgoing
        self._lock = threading.Lock()  # the SSLObject and its BIOs
        self._send_lock = threading.Lock()  # sealed records to the socket, in order
        self._eof = False
        self._answered = False  # palletd sent a byte of HTTP/2 (its SETTINGS come first)

    def _flush_and_release(self) -> None:
        """With `_lock` held: send what TLS made, in the order it was made; lets `_lock` go."""
        data = self._out.read() if self._out.pending else b""
        if not data:
            self._lock.release()
            return
        self._send_lock.acquire()
        self._lock.release()
        try:
            self._sock.sendall(data)
        finally:
            self._send_lock.release()

    def sendall(self, data: bytes | memoryview) -> None:
        self.sendmsg([data])

    def sendmsg(self, buffers: Sequence[bytes | memoryview]) -> int:
        """Seal and send all of `buffers` (small pieces joined, so a frame header is not a
        record of its own); returns their length."""
        total = 0
        batch: list[bytes | memoryview] = []
        size = 0
        for piece in buffers:
            batch.append(piece)
            size += len(piece)
            if size >= _SEAL_SIZE:
                self._seal(batch)
                total += size
                batch, size = [], 0
        if batch:
            self._seal(batch)
            total += size
        return total

    def _seal(self, pieces: list[bytes | memoryview]) -> None:
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        self._lock.acquire()
        try:
            self._obj.write(data)
        except ssl.SSLError as exc:
            self._lock.release()
            raise TransportError(describe(exc)) from None
        except BaseException:
            self._lock.release()
            raise
        self._flush_and_release()

    def recv_into(self, buffer: bytearray) -> int:
        """Plaintext into `buffer`: what is already received, else after the next read
        from the socket; 0 at the end of the connection."""
        view = memoryview(buffer)
        try:
            while True:
                got = 0
                self._lock.acquire()
                try:
                    while got < len(view):
                        # With a buffer, read() returns a count (typeshed says bytes).
                        n = cast(int, self._obj.read(len(view) - got, view[got:]))
                        if not n:
                            break
                        got += n
                except ssl.SSLWantReadError:
                    pass
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    self._eof = True  # close_notify, or the TCP connection ended
                except ssl.SSLError as exc:
                    self._lock.release()
                    raise TransportError(describe(exc)) from None
                except BaseException:
                    self._lock.release()
                    raise
                # Reading may have made records to send (a TLS 1.3 key update's answer; at
                # the end, OpenSSL's alert about it, which a closed socket may refuse).
                try:
                    self._flush_and_release()
                except OSError:
                    if not self._eof:
                        raise
                if got:
                    self._answered = True
                    return got
                if self._eof:
                    if not self._answered:
                        raise TransportError(_REFUSED)
                    return 0
                data = self._sock.recv(_RECV_SIZE)
                with self._lock:
                    if data:
                        self._in.write(data)
                    else:
                        self._in.write_eof()
        finally:
            view.release()

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)

    def close(self) -> None:
        self._sock.close()
