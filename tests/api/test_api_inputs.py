"""The gRPC edge's check of every request (`pallet.daemon.api.inputs`), and that every RPC
gets it.

The corpus is made from the generated descriptors: every RPC of every pallet.v1 service,
every string field its request can carry (nested, repeated, map values and keys), so a new
service or field is covered with no change here. It is checked directly, then sent through
a real gRPC server whose servicers have nothing behind them: a request that got past the
edge would reach them and fail as INTERNAL. `tests/integration/test_hostile_api.py` sends
a hand-written table to a real palletd and checks that nothing changed.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

import pallet.v1
from pallet.daemon.api.builds import BuildsServicer
from pallet.daemon.api.containers import ContainersServicer
from pallet.daemon.api.events import EventsServicer
from pallet.daemon.api.images import ImagesServicer
from pallet.daemon.api.networks import NetworksServicer
from pallet.daemon.api.inputs import MAX_STRING_BYTES, Undecodable, UploadChunk, check_request, tolerant
from pallet.daemon.api.server import ApiServer
from pallet.daemon.api.system import SystemServicer
from pallet.daemon.api.volumes import VolumesServicer
from pallet.daemon.config import Config
from pallet.v1 import containers_pb2 as cpb
from pallet.v1 import events_pb2 as epb
from pallet.v1 import images_pb2 as ipb
from pallet.v1.errors import InvalidArgument


def pallet_methods() -> list[MethodDescriptor]:
    """Every RPC of every service in the pallet.v1 protos."""
    methods = []
    for info in pkgutil.iter_modules(pallet.v1.__path__):
        if info.name.endswith("_pb2"):
            module = importlib.import_module(f"pallet.v1.{info.name}")
            for service in module.DESCRIPTOR.services_by_name.values():
                methods.extend(service.methods)
    return methods


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


@dataclass(frozen=True)
class Leaf:
    """One string a request can carry: how to set it, and the path the error must name."""

    chain: tuple[FieldDescriptor, ...]
    in_key: bool = False  # the map key itself, not the value

    @property
    def path(self) -> str:
        parts = []
        for field in self.chain:
            if _is_map(field):
                parts.append(f'{field.name}["k"]')
            elif field.is_repeated:
                parts.append(f"{field.name}[0]")
            else:
                parts.append(field.name)
        return ".".join(parts)

    def expected(self, value: str) -> str:
        if self.in_key:
            shown = self.path.rsplit('["k"]', 1)[0]
            key = value if len(value) <= 40 else value[:40] + "..."  # a long key is cut short
            return f"the key of {shown}[{_json(key)}]"
        return self.path

    def build(self, request_type: Descriptor, value: str) -> Message:
        message = GetMessageClass(request_type)()
        self._set(message, 0, value)
        return message

    def _set(self, message: Any, depth: int, value: str) -> None:
        field = self.chain[depth]
        last = depth == len(self.chain) - 1
        container = getattr(message, field.name)
        if _is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            if last and self.in_key and value_field.type == FieldDescriptor.TYPE_MESSAGE:
                container[value].SetInParent()  # a message value: the entry made empty
            elif last and self.in_key:
                container[value] = "" if value_field.type == FieldDescriptor.TYPE_STRING else value_field.default_value
            elif last:
                container["k"] = value
            else:
                self._set(container["k"], depth + 1, value)
        elif field.is_repeated:
            if last:
                container.append(value)
            else:
                self._set(container.add(), depth + 1, value)
        elif last:
            setattr(message, field.name, value)
        else:
            self._set(container, depth + 1, value)


def _json(text: str) -> str:
    import json

    return json.dumps(text)


def leaves(message: Descriptor, chain: tuple[FieldDescriptor, ...] = (), seen: frozenset[str] = frozenset()) -> Iterator[Leaf]:
    """Every string field reachable in `message` (a recursive type is followed once)."""
    if message.full_name in seen:
        return
    seen = seen | {message.full_name}
    for field in message.fields:
        here = chain + (field,)
        if _is_map(field):
            key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            if key.type == FieldDescriptor.TYPE_STRING:
                yield Leaf(here, in_key=True)
            if value.type == FieldDescriptor.TYPE_STRING:
                yield Leaf(here)
            elif value.type == FieldDescriptor.TYPE_MESSAGE:
                yield from leaves(value.message_type, here, seen)
        elif field.type == FieldDescriptor.TYPE_STRING:
            yield Leaf(here)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            yield from leaves(field.message_type, here, seen)


def corpus() -> list[tuple[str, MethodDescriptor, Leaf]]:
    return [
        (f"{m.containing_service.name}.{m.name}:{leaf.path}{'(key)' if leaf.in_key else ''}", m, leaf)
        for m in pallet_methods()
        for leaf in leaves(m.input_type)
    ]


CORPUS = corpus()


def test_the_corpus_covers_the_fields_the_issue_names() -> None:
    ids = {case_id for case_id, _, _ in CORPUS}
    for expected in (
        "ContainersService.Create:config.env[0]",
        "ContainersService.Create:config.cmd[0]",
        "ContainersService.Create:config.entrypoint[0]",
        "ContainersService.Create:config.hostname",
        "ContainersService.Create:config.working_dir",
        "ContainersService.Create:config.user",
        'ContainersService.Create:config.labels["k"]',
        'ContainersService.Create:config.labels["k"](key)',
        "ContainersService.Exec:open.cmd[0]",
        "ContainersService.Exec:open.working_dir",
        "ImagesService.Import:header.changes[0]",
        "ImagesService.Pull:auth.password",
        "EventsService.Subscribe:filters[0]",
    ):
        assert expected in ids
    assert len(CORPUS) > 40


@pytest.mark.parametrize(("case_id", "method", "leaf"), CORPUS, ids=[c[0] for c in CORPUS])
def test_a_nul_byte_in_any_string_is_refused_naming_the_field(
    case_id: str, method: MethodDescriptor, leaf: Leaf
) -> None:
    value = "ab\0cd"
    with pytest.raises(InvalidArgument) as refused:
        check_request(leaf.build(method.input_type, value))
    assert refused.value.message.startswith(f"{leaf.expected(value)} contains a NUL byte"), refused.value.message


@pytest.mark.parametrize(("case_id", "method", "leaf"), CORPUS, ids=[c[0] for c in CORPUS])
def test_an_oversized_string_is_refused_naming_the_field(
    case_id: str, method: MethodDescriptor, leaf: Leaf
) -> None:
    value = "x" * (MAX_STRING_BYTES + 1)
    with pytest.raises(InvalidArgument) as refused:
        check_request(leaf.build(method.input_type, value))
    message = refused.value.message
    assert message.startswith(f"{leaf.expected(value)} is {MAX_STRING_BYTES + 1} bytes long"), message[:200]


@pytest.mark.parametrize(("case_id", "method", "leaf"), CORPUS, ids=[c[0] for c in CORPUS])
def test_ordinary_strings_pass(case_id: str, method: MethodDescriptor, leaf: Leaf) -> None:
    check_request(leaf.build(method.input_type, "x" * MAX_STRING_BYTES))
    check_request(leaf.build(method.input_type, "PATH=/usr/bin:/bin \t\n µ ☃ 🐳"))


def test_the_size_is_counted_in_utf8_bytes() -> None:
    fits = "é" * (MAX_STRING_BYTES // 2)
    check_request(cpb.StartContainerRequest(container=fits))
    with pytest.raises(InvalidArgument, match=f"container is {len(fits.encode()) + 2} bytes long"):
        check_request(cpb.StartContainerRequest(container=fits + "é"))


def test_the_path_names_the_index_and_the_key() -> None:
    config = cpb.ContainerConfig(image="busybox", env=["A=1", "B=2", "C=\0"])
    with pytest.raises(InvalidArgument, match=r"^config\.env\[2\] contains a NUL byte \(\\0\) at character 2"):
        check_request(cpb.CreateContainerRequest(config=config))
    config = cpb.ContainerConfig(image="busybox", labels={"ok": "", "a\0b": "v"})
    with pytest.raises(InvalidArgument, match=r'^the key of config\.labels\["a\\u0000b"\] contains a NUL'):
        check_request(cpb.CreateContainerRequest(config=config))


@pytest.mark.parametrize(
    ("request_", "path"),
    [
        (cpb.LogsRequest(container="web", since={"seconds": 2**62}), "since"),
        (cpb.LogsRequest(container="web", until={"seconds": -62135596800}), "until"),  # year 1
        (epb.SubscribeRequest(until={"seconds": 253402300799}), "until"),  # year 9999
        (cpb.LogsRequest(container="web", since={"seconds": 1, "nanos": -1}), "since"),
        (epb.SubscribeRequest(since={"seconds": 253402300800}), "since"),
        (epb.SubscribeRequest(until={"nanos": 10**9}), "until"),
    ],
)
def test_times_outside_a_timestamps_range_are_refused(request_: Message, path: str) -> None:
    with pytest.raises(InvalidArgument, match=f"^{path} is not a valid time"):
        check_request(request_)


def test_the_ends_of_the_timestamp_range_pass() -> None:
    # -2**63 and 2**63 - 1 nanoseconds since 1970.
    low = {"seconds": -9223372037, "nanos": 145224192}
    high = {"seconds": 9223372036, "nanos": 854775807}
    check_request(epb.SubscribeRequest(since=low, until=high))
    with pytest.raises(InvalidArgument, match="^since is not a valid time"):
        check_request(epb.SubscribeRequest(since={"seconds": -9223372037, "nanos": 145224191}))
    with pytest.raises(InvalidArgument, match="^until is not a valid time"):
        check_request(epb.SubscribeRequest(until={"seconds": 9223372036, "nanos": 854775808}))


@pytest.mark.parametrize(
    ("make", "path"),
    [
        (lambda v: epb.SubscribeRequest(since_seq=v), "since_seq"),
        (lambda v: ipb.ImportRequest(end=ipb.UploadEnd(size=v)), "end.size"),
    ],
)
def test_unsigned_numbers_above_int64_are_refused(make: Callable[[int], Message], path: str) -> None:
    check_request(make(2**63 - 1))
    for value in (2**63, 2**64 - 1):
        with pytest.raises(InvalidArgument, match=f"^{path} is {value}: the largest number"):
            check_request(make(value))


# ---- through a real server: every RPC gets the check, before its handler runs


class Nothing:
    """Stands for every manager: any use of it fails the call as INTERNAL."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the request reached the handler, which used .{name}")


class DrainingImages(Nothing):
    """An image store whose import reads the whole upload, then fails as INTERNAL."""

    async def import_rootfs(self, chunks: AsyncIterator[bytes], *args: Any) -> None:
        async for _ in chunks:
            pass
        raise AssertionError("the whole upload was taken")


@pytest.fixture
async def channel(tmp_path: Path) -> AsyncIterator[grpc.aio.Channel]:
    sock = tmp_path / "api.sock"
    nothing: Any = Nothing()
    server = ApiServer(
        Config(root=tmp_path, run_root=tmp_path, hosts=(f"unix://{sock}",), shutdown_grace_s=0.1),
        [
            ContainersServicer(nothing, nothing),
            ImagesServicer(DrainingImages()),  # type: ignore[arg-type]
            EventsServicer(nothing),
            SystemServicer(nothing),
            NetworksServicer(nothing, nothing),
            VolumesServicer(nothing),
            BuildsServicer(nothing),
        ],
    )
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"unix:{sock}") as ch:
            yield ch
    finally:
        await server.aclose()


async def call(channel: grpc.aio.Channel, method: MethodDescriptor, request: Message) -> None:
    """One raw call of `method` with `request` (the only message of a client stream)."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    data = request.SerializeToString()
    if method.client_streaming and method.server_streaming:
        async for _ in channel.stream_stream(path)(iter([data])):
            pass
    elif method.client_streaming:
        await channel.stream_unary(path)(iter([data]))
    elif method.server_streaming:
        async for _ in channel.unary_stream(path)(data):
            pass
    else:
        await channel.unary_unary(path)(data)


async def test_every_rpc_refuses_a_nul_in_every_field_before_its_handler_runs(
    channel: grpc.aio.Channel,
) -> None:
    for case_id, method, leaf in CORPUS:
        value = "ab\0cd"
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(channel, method, leaf.build(method.input_type, value))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (case_id, refused.value.details())
        assert (refused.value.details() or "").startswith(f"{leaf.expected(value)} contains a NUL"), case_id


async def test_every_rpc_with_a_time_refuses_one_out_of_range(channel: grpc.aio.Channel) -> None:
    timed = [
        (m, f) for m in pallet_methods() for f in m.input_type.fields
        if f.message_type is not None and f.message_type.full_name == "google.protobuf.Timestamp"
    ]
    assert {m.name for m, _ in timed} >= {"Logs", "Subscribe"}
    for method, field in timed:
        request = GetMessageClass(method.input_type)()
        getattr(request, field.name).seconds = 2**62
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(channel, method, request)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (refused.value.details() or "").startswith(f"{field.name} is not a valid time")


async def test_a_later_message_of_a_client_stream_is_checked_too(channel: grpc.aio.Channel) -> None:
    """Import's header passes (the import starts), its end's size is absurd: refused as
    it arrives."""
    method = ipb.DESCRIPTOR.services_by_name["ImagesService"].methods_by_name["Import"]
    stub = channel.stream_unary(f"/{method.containing_service.full_name}/{method.name}")
    messages = [
        ipb.ImportRequest(header=ipb.ImportHeader(reference="ok:1")),
        ipb.ImportRequest(end=ipb.UploadEnd(size=2**64 - 1)),
    ]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub(iter([m.SerializeToString() for m in messages]))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == (
        f"end.size is {2**64 - 1}: the largest number pallet accepts there is {2**63 - 1}"
    )


async def test_a_request_that_is_not_valid_utf8_is_invalid_argument(channel: grpc.aio.Channel) -> None:
    """grpc alone answers UNKNOWN ("Unexpected DecodeError") before any handler runs."""
    bad = b"\x0a\x02\xff\xfe"  # field 1 (a string) holding two bytes that are not UTF-8
    for path in (
        "/pallet.v1.ContainersService/Inspect",
        "/pallet.v1.ImagesService/Inspect",
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await channel.unary_unary(path)(bad)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
        assert (refused.value.details() or "").startswith("the request is not a valid pallet.v1.Inspect")
    for call in (
        channel.unary_stream("/pallet.v1.EventsService/Subscribe")(b"\x22\x02\xff\xfe"),
        channel.stream_stream("/pallet.v1.ContainersService/Exec")(iter([b"\x0a\x04\x0a\x02\xff\xfe"])),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in call:
                pass
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
        assert "every string must be UTF-8" in (refused.value.details() or "")


def test_an_uploads_chunk_passes_unread_and_its_header_is_still_checked() -> None:
    # A chunk is bytes, which cannot be hostile: the check does not copy it to look.
    check_request(cpb.PutArchiveRequest(chunk=b"\0" * 1024))
    check_request(ipb.ImportRequest(chunk=b"\0" * 1024))
    with pytest.raises(InvalidArgument, match=r"header\.path"):
        check_request(cpb.PutArchiveRequest(header=cpb.PutArchiveHeader(container="c", path="/a\0b")))
    with pytest.raises(InvalidArgument, match=r"header\.reference"):
        check_request(ipb.ImportRequest(header=ipb.ImportHeader(reference="x\0")))


def test_an_uploads_lone_chunk_is_handed_on_unparsed_and_anything_else_is_parsed() -> None:
    decode = tolerant(cpb.PutArchiveRequest.FromString, "pallet.v1.PutArchiveRequest",
                      cpb.PutArchiveRequest.DESCRIPTOR)
    for size in (0, 1, 127, 128, 16384, 4 * 1024 * 1024 + 3):
        chunk = os.urandom(size)
        got = decode(cpb.PutArchiveRequest(chunk=chunk).SerializeToString())
        assert isinstance(got, UploadChunk) and got.field == "chunk" and bytes(got.data) == chunk
        check_request(got)
    header = cpb.PutArchiveRequest(header=cpb.PutArchiveHeader(container="c", path="/a\0b"))
    parsed = decode(header.SerializeToString())
    assert isinstance(parsed, cpb.PutArchiveRequest)
    with pytest.raises(InvalidArgument, match=r"header\.path"):
        check_request(parsed)
    # Two chunk fields in one message (protobuf keeps the last), or a length that does
    # not end the message: protobuf's parse, as before.
    twice = cpb.PutArchiveRequest(chunk=b"a").SerializeToString() + cpb.PutArchiveRequest(chunk=b"bc").SerializeToString()
    assert decode(twice).chunk == b"bc"
    assert isinstance(decode(b"\x12\x05ab"), Undecodable)
    # stdin of attach and exec are messages their handlers read: never UploadChunk.
    for request_type in (cpb.AttachRequest, cpb.ExecRequest):
        stdin = tolerant(request_type.FromString, "x", request_type.DESCRIPTOR)
        assert isinstance(stdin(request_type(stdin=b"ls\n").SerializeToString()), request_type)
    load = tolerant(ipb.LoadRequest.FromString, "x", ipb.LoadRequest.DESCRIPTOR)
    assert bytes(load(ipb.LoadRequest(chunk=b"tar").SerializeToString()).data) == b"tar"
