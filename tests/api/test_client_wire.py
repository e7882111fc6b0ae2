"""The CLI's gRPC transport (client.wire) against a real grpcio server.

Raw-bytes methods on a grpcio server bound to a unix socket, so every HTTP/2 and gRPC
behaviour the CLI meets from palletd is met here: trailers-only and late errors,
percent-encoded messages, flow control both ways (messages larger than our window, a
slow reader holding the server back, uploads larger than the server's window), many
calls at once on one connection, cancellation, and the three ways of not being answered.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from pallet.client import wire
from pallet.client.api import PalletClient
from pallet.client.errors import from_rpc_error
from pallet.v1 import containers_pb2 as cpb
from pallet.v1.errors import Unavailable
from tls_certs import CA, Issued

SERVICE = "test.Wire"
MiB = 1024 * 1024


class _Server:
    """The methods, on a unix socket (`path`) and, with `tls` (our certificate, key and
    the clients' CA, PEM), on 127.0.0.1:`port` with mutual TLS as palletd serves tcp://."""

    def __init__(self, path: Path, tls: tuple[bytes, bytes, bytes] | None = None) -> None:
        self.path = path
        self.port = 0
        self.sent = 0  # bytes the Flood method has handed to grpc
        self.cancelled = threading.Event()
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8),
            options=[("grpc.max_receive_message_length", 64 * MiB), ("grpc.max_send_message_length", 64 * MiB)],
        )
        handlers = {
            "Echo": grpc.unary_unary_rpc_method_handler(self.echo),
            "Fail": grpc.unary_unary_rpc_method_handler(self.fail),
            "Many": grpc.unary_stream_rpc_method_handler(self.many),
            "Flood": grpc.unary_stream_rpc_method_handler(self.flood),
            "FailLate": grpc.unary_stream_rpc_method_handler(self.fail_late),
            "Digest": grpc.stream_unary_rpc_method_handler(self.digest),
            "Chat": grpc.stream_stream_rpc_method_handler(self.chat),
            "Slow": grpc.unary_unary_rpc_method_handler(self.slow),
        }
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        self.server.add_insecure_port(f"unix:{path}")
        if tls is not None:
            cert, key, ca = tls
            creds = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)
            self.port = self.server.add_secure_port("127.0.0.1:0", creds)
        self.server.start()

    def echo(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        return request

    def fail(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.NOT_FOUND, request.decode())

    def many(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        count, size = (int(x) for x in request.split(b","))
        for i in range(count):
            yield bytes([i % 256]) * size

    def flood(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        context.add_callback(self.cancelled.set)
        chunk = b"x" * MiB
        for _ in range(int(request)):
            if not context.is_active():
                return
            self.sent += len(chunk)
            yield chunk

    def fail_late(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        yield b"one"
        yield b"two"
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "late: 100% ü\nsecond line")

    def digest(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        h = hashlib.sha256()
        size = 0
        for r in requests:
            if r == b"stop":
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "stopped early")
            h.update(r)
            size += len(r)
        return f"{size} {h.hexdigest()}".encode()

    def chat(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for r in requests:
            if r == b"bye":
                yield b"done"
                return
            yield r.upper()

    def slow(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        time.sleep(float(request))
        return b"late"

    def stop(self) -> None:
        self.server.stop(0).wait()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[CA, Issued, Issued]:
    """A CA, the server's certificate for 127.0.0.1 and a client's."""
    ca = CA(tmp_path_factory.mktemp("certs"))
    return ca, ca.issue("server", "server", server=True, ips=("127.0.0.1",)), ca.issue("client", "client")


@pytest.fixture
def server(tmp_path: Path, certs: tuple[CA, Issued, Issued]) -> Iterator[_Server]:
    ca, issued, _ = certs
    s = _Server(tmp_path / "wire.sock", (issued.cert.read_bytes(), issued.key.read_bytes(), ca.cert.read_bytes()))
    yield s
    s.stop()


def tls_dialer(server: _Server, certs: tuple[CA, Issued, Issued]) -> wire.Dialer:
    from pallet.client import tls
    from pallet.client.remote import TLSFiles

    ca, _, client = certs
    return tls.Dialer(("127.0.0.1", server.port), tls.client_context(TLSFiles(str(ca.cert), str(client.cert), str(client.key))))


@pytest.fixture(params=["unix", "tcp+mtls"])
def channel(server: _Server, certs: tuple[CA, Issued, Issued], request: pytest.FixtureRequest) -> Iterator[wire.Channel]:
    """Every test of a channel runs on the unix socket and on TCP with mutual TLS
    (client.tls's socket under the same HTTP/2: its reader and writers at once)."""
    dialer = tls_dialer(server, certs) if request.param == "tcp+mtls" else None
    ch = wire.Channel(str(server.path), connect_timeout=5, dialer=dialer)
    yield ch
    ch.close()


def m(name: str) -> str:
    return f"/{SERVICE}/{name}"


def test_unary_and_statuses(channel: wire.Channel) -> None:
    assert channel.unary(m("Echo"), b"hello") == b"hello"
    assert channel.unary(m("Echo"), b"") == b""
    with pytest.raises(wire.RpcError) as err:
        channel.unary(m("Fail"), "no such container: ü 100% %zz".encode())
    assert (err.value.code, err.value.details, err.value.failure) == (
        "NOT_FOUND", "no such container: ü 100% %zz", "")
    with pytest.raises(wire.RpcError) as err:
        channel.unary(m("Nope"), b"")
    assert err.value.code == "UNIMPLEMENTED"
    # One connection carries all of it, after failures too.
    assert channel.unary(m("Echo"), b"again") == b"again"


def test_server_stream_with_messages_larger_than_our_window(channel: wire.Channel) -> None:
    big = wire.STREAM_WINDOW + 3 * MiB  # cannot arrive unless it is credited as it comes
    got = list(channel.server_stream(m("Many"), f"3,{big}".encode()))
    assert [len(x) for x in got] == [big] * 3
    assert [x[0] for x in got] == [0, 1, 2]
    small = list(channel.server_stream(m("Many"), b"5000,10"))
    assert len(small) == 5000 and small[4999] == bytes([4999 % 256]) * 10


def test_error_after_messages_keeps_the_messages_then_raises(channel: wire.Channel) -> None:
    stream = channel.server_stream(m("FailLate"), b"")
    got = []
    with pytest.raises(wire.RpcError) as err:
        for message in stream:
            got.append(message)
    assert got == [b"one", b"two"]
    assert err.value.code == "FAILED_PRECONDITION"
    assert err.value.details == "late: 100% ü\nsecond line"


def test_a_slow_reader_holds_the_server_back(server: _Server, channel: wire.Channel) -> None:
    stream = channel.server_stream(m("Flood"), b"500")  # 500 MiB if nothing held it back
    it = iter(stream)
    assert len(next(it)) == MiB
    time.sleep(1.0)
    # What can be in flight: our window, half a window queued before credit stops, and
    # grpc's own buffers; nowhere near the 500 MiB.
    assert server.sent < 64 * MiB, server.sent
    # Reading again gives the credit back: all of it arrives.
    assert sum(len(x) for x in it) == 499 * MiB


def test_uploads_larger_than_the_servers_window(channel: wire.Channel) -> None:
    chunks = [os.urandom(256 * 1024) for _ in range(8)] * 10  # 20 MiB
    expect = hashlib.sha256(b"".join(chunks)).hexdigest()
    assert channel.client_stream(m("Digest"), iter(chunks)).decode() == f"{20 * MiB} {expect}"
    with pytest.raises(wire.RpcError) as err:
        channel.client_stream(m("Digest"), iter([b"a", b"stop"] + [b"z" * MiB] * 200))
    assert (err.value.code, err.value.details) == ("INVALID_ARGUMENT", "stopped early")


def test_duplex_calls_and_many_calls_at_once(channel: wire.Channel) -> None:
    chat = channel.start(m("Chat"))
    flood = channel.server_stream(m("Many"), b"200,65536")
    assert chat.send(b"abc")
    assert chat.receive() == b"ABC"
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda i=i: results.append(channel.unary(m("Echo"), b"%d" % i)))
               for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == sorted(b"%d" % i for i in range(20))
    assert sum(len(x) for x in flood) == 200 * 65536
    assert chat.send(b"bye")
    assert chat.receive() == b"done"
    assert chat.receive() is None
    assert chat.send(b"after the end") is False  # dropped, not an error


def test_future_and_done_callback(channel: wire.Channel) -> None:
    done = threading.Event()
    future = channel.unary_future(m("Slow"), b"0.2")
    future.add_done_callback(lambda f: done.set())
    assert done.wait(10)
    assert future.result() == b"late" and future.exception() is None and not future.cancelled()
    failed = channel.unary_future(m("Fail"), b"gone")
    assert failed.exception() is not None and failed.exception().code == "NOT_FOUND"
    with pytest.raises(wire.RpcError):
        failed.result()


def test_cancel_ends_a_call_and_the_connection_goes_on(server: _Server, channel: wire.Channel) -> None:
    stream = channel.server_stream(m("Flood"), b"1000")
    next(iter(stream))
    stream.cancel()
    assert server.cancelled.wait(10)
    with pytest.raises(wire.RpcError) as err:
        stream.receive()
    assert err.value.code == "CANCELLED"
    assert channel.unary(m("Echo"), b"still here") == b"still here"


def test_a_message_over_the_limit_is_refused(server: _Server) -> None:
    ch = wire.Channel(str(server.path), connect_timeout=5, max_message=MiB)
    try:
        with pytest.raises(wire.RpcError) as err:
            list(ch.server_stream(m("Many"), f"1,{2 * MiB}".encode()))
        assert err.value.code == "RESOURCE_EXHAUSTED"
        assert ch.unary(m("Echo"), b"ok") == b"ok"
    finally:
        ch.close()


def test_no_socket_and_refused_are_connect_failures(tmp_path: Path) -> None:
    with pytest.raises(wire.RpcError) as err:
        wire.Channel(str(tmp_path / "missing.sock"), connect_timeout=2).unary(m("Echo"), b"")
    assert err.value.failure == "connect" and "No such file" in err.value.details
    dead = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(dead))
    s.close()  # the file stays, nobody listens
    with pytest.raises(wire.RpcError) as err:
        wire.Channel(str(dead), connect_timeout=2).unary(m("Echo"), b"")
    assert err.value.failure == "connect" and "refused" in err.value.details


def test_a_listener_that_never_answers_is_silent(tmp_path: Path) -> None:
    path = tmp_path / "silent.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.listen(8)  # the kernel accepts; nobody speaks HTTP/2
    try:
        started = time.monotonic()
        with pytest.raises(wire.RpcError) as err:
            wire.Channel(str(path), connect_timeout=0.5).unary(m("Echo"), b"")
        assert err.value.failure == "silent"
        assert time.monotonic() - started < 5  # the 0.5 s given, not a default
    finally:
        s.close()


def test_a_server_that_goes_away_mid_call_is_lost(server: _Server, channel: wire.Channel) -> None:
    stream = channel.server_stream(m("Flood"), b"100000")
    next(iter(stream))
    server.stop()
    with pytest.raises(wire.RpcError) as err:
        for _ in stream:
            pass
    assert err.value.code in ("UNAVAILABLE", "CANCELLED")
    # What the user reads: palletd is gone, in pallet's words (not grpc's).
    shown = from_rpc_error(err.value, "unix:///x.sock")
    assert isinstance(shown, Unavailable) and "is it running?" in shown.message, shown.message
    with pytest.raises(wire.RpcError) as err:
        channel.unary(m("Echo"), b"")
    assert err.value.failure in ("connect", "lost")


def test_the_cli_transport_does_not_import_grpc() -> None:
    code = (
        "import sys, pallet.client.api, pallet.client.wire, pallet.client.errors; "
        "sys.exit(1 if any(n == 'grpc' or n.startswith('grpc.') for n in sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_command_on_the_unix_socket_does_not_import_ssl(server: _Server) -> None:
    # ssl (and client.tls) cost start time: only a tcp:// host imports them.
    code = (
        "import sys; from pallet.client.api import PalletClient; from pallet.client.cli import parse_args; "
        f"parse_args(['-H', 'unix://{server.path}', 'ps']); "
        f"c = PalletClient('unix://{server.path}'); c._channel.unary('/test.Wire/Echo', b'x'); "
        "sys.exit(1 if 'ssl' in sys.modules or 'pallet.client.tls' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_tls_failures_are_said_as_which_side_refused_what(server: _Server, certs: tuple[CA, Issued, Issued], tmp_path: Path) -> None:
    from pallet.client import tls
    from pallet.client.remote import TLSFiles

    ca, _, client = certs
    other = CA(tmp_path / "other", "other CA")
    stranger = other.issue("stranger", "stranger")
    expired = ca.issue("expired", "expired", expired=True)
    for who in (stranger, expired):
        dialer = tls.Dialer(("127.0.0.1", server.port), tls.client_context(TLSFiles(str(ca.cert), str(who.cert), str(who.key))))
        with pytest.raises(wire.RpcError) as err:
            wire.Channel("", connect_timeout=5, dialer=dialer).unary(m("Echo"), b"")
        assert err.value.failure == "tls" and "refused our client certificate" in err.value.details
        assert "refused our client certificate" in str(from_rpc_error(err.value, "tcp://x:1"))
    # The server's certificate from a CA we do not trust.
    dialer = tls.Dialer(("127.0.0.1", server.port), tls.client_context(TLSFiles(str(other.cert), str(client.cert), str(client.key))))
    with pytest.raises(wire.RpcError) as err:
        wire.Channel("", connect_timeout=5, dialer=dialer).unary(m("Echo"), b"")
    assert err.value.failure == "tls" and "palletd's certificate was not accepted" in err.value.details
    # Nothing listening: a connect failure, as on a unix socket.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dialer = tls.Dialer(("127.0.0.1", port), tls.client_context(TLSFiles(str(ca.cert), str(client.cert), str(client.key))))
    with pytest.raises(wire.RpcError) as err:
        wire.Channel("", connect_timeout=5, dialer=dialer).unary(m("Echo"), b"")
    assert err.value.failure == "connect"


def test_big_uploads_while_the_server_retunes_its_window(channel: wire.Channel) -> None:
    # grpc core grows its window mid-upload (BDP probing: a SETTINGS with a larger initial
    # window) and holds us to it only once our ack reached it: DATA sized by the new
    # window and sent before the ack was reset with PROTOCOL_ERROR.
    piece = os.urandom(4 * MiB)
    for _ in range(3):
        reply = channel.client_stream(m("Digest"), iter([piece] * 64))
        assert reply.decode().split()[0] == str(256 * MiB)


def _read_frame(conn: socket.socket) -> tuple[int, int, int, bytes]:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            more = conn.recv(n - len(data))
            assert more, "the client closed the connection"
            data += more
        return data
    head = exactly(9)
    length = int.from_bytes(head[:3], "big")
    return head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF, exactly(length)


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream.to_bytes(4, "big") + payload


def test_a_window_a_settings_changes_is_used_only_after_its_ack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A scripted HTTP/2 peer holding the client to what grpc core enforces: the window of
    # a SETTINGS counts only from our ack on. It opens with a 1000-byte window, then,
    # while the client waits for window, raises it: no DATA may come before the ack.
    import hpack

    path = tmp_path / "peer.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(1)
    order: list[str] = []
    failures: list[BaseException] = []

    def peer() -> None:
        try:
            conn, _ = listener.accept()
            with conn:
                assert conn.recv(24, socket.MSG_WAITALL).startswith(b"PRI * HTTP/2.0")
                window = (4).to_bytes(2, "big") + (1000).to_bytes(4, "big")
                conn.sendall(_frame(4, 0, 0, window) + _frame(8, 0, 0, (1 << 24).to_bytes(4, "big")))
                received = 0
                while received < 1000:  # the client's SETTINGS, its ack of ours, HEADERS, DATA
                    kind, flags, stream, payload = _read_frame(conn)
                    if kind == 0:
                        received += len(payload)
                assert received == 1000
                bigger = (4).to_bytes(2, "big") + (1 << 20).to_bytes(4, "big")
                conn.sendall(_frame(4, 0, 0, bigger))
                total = 1000
                while total < 5 + 100_000:
                    kind, flags, stream, payload = _read_frame(conn)
                    if kind == 4 and flags & 1:
                        order.append("ack")
                    elif kind == 0:
                        order.append("data")
                        total += len(payload)
                encoder = hpack.Encoder()
                conn.sendall(
                    _frame(1, 4, 1, encoder.encode([(":status", "200"), ("content-type", "application/grpc")]))
                    + _frame(0, 0, 1, (2).to_bytes(5, "big") + b"ok")
                    + _frame(1, 5, 1, encoder.encode([("grpc-status", "0")]))
                )
                conn.recv(1 << 16)
        except BaseException as exc:  # reported by the test below
            failures.append(exc)

    # A pause right after the new window is applied: a sender that may use it before
    # the ack is written then always does (the bug this guards against).
    applied = wire.Connection._on_settings

    def slow(self: wire.Connection, payload: bytes) -> None:
        applied(self, payload)
        time.sleep(0.2)

    monkeypatch.setattr(wire.Connection, "_on_settings", slow)
    thread = threading.Thread(target=peer, daemon=True)
    thread.start()
    ch = wire.Channel(str(path), connect_timeout=5)
    try:
        assert ch.unary(m("Echo"), b"x" * 100_000) == b"ok"
    finally:
        ch.close()
        listener.close()
    thread.join(10)
    assert not failures, failures
    assert order and order[0] == "ack", order


def test_one_connection_carries_every_call(channel: wire.Channel) -> None:
    channel.unary(m("Echo"), b"a")
    first = channel._conn
    with pytest.raises(wire.RpcError):
        channel.unary(m("Fail"), b"gone")
    list(channel.server_stream(m("Many"), b"3,10"))
    assert channel.unary(m("Echo"), b"b") == b"b" and channel._conn is first


def test_a_callback_that_raises_does_not_stop_the_connection(channel: wire.Channel) -> None:
    future = channel.unary_future(m("Slow"), b"0.1")
    future.add_done_callback(lambda f: 1 / 0)
    assert future.result() == b"late"
    assert channel.unary(m("Echo"), b"still") == b"still"


def test_streaming_verbs_with_no_daemon_say_so(tmp_path: Path) -> None:
    client = PalletClient(f"unix://{tmp_path}/missing.sock", connect_timeout=2)
    for attempt in (lambda: list(client.events()), lambda: list(client.logs(cpb.LogsRequest(container="x"))),
                    lambda: client.start_async("x")):
        with pytest.raises(Unavailable, match="cannot connect to palletd"):
            attempt()


def test_a_message_given_in_pieces_arrives_as_their_bytes_one_after_another(channel: wire.Channel) -> None:
    # An upload's chunk goes out after its field's header unjoined (client.api), across
    # frame and window boundaries.
    pieces = [(b"\x12", os.urandom(3 * MiB + 5)), (b"", b"a", memoryview(b"bcd")), (os.urandom(70000),)]
    expect = hashlib.sha256(b"".join(b"".join(p) for p in pieces)).hexdigest()
    size = sum(len(x) for p in pieces for x in p)
    assert channel.client_stream(m("Digest"), iter(pieces)).decode() == f"{size} {expect}"
    echo = channel.start(m("Chat"))
    assert echo.send((b"he", b"llo")) and echo.send(b"bye", end=True)
    assert list(echo) == [b"HELLO", b"done"]


def test_an_upload_chunk_encoded_by_hand_is_protobufs_own_encoding() -> None:
    from pallet.client.api import _upload_chunk
    from pallet.v1 import images_pb2 as ipb

    for request_type in (cpb.PutArchiveRequest, ipb.ImportRequest, ipb.LoadRequest):
        for size in (0, 1, 127, 128, 16383, 16384, 4 * MiB + 17):
            chunk = os.urandom(size)
            assert b"".join(_upload_chunk(request_type, chunk)) == request_type(chunk=chunk).SerializeToString()
