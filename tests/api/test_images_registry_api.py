"""Pull, Push, Login, Save, History and Prune through the real ImagesServicer, with a fake
image store: progress streams before the result, errors map to status codes mid-stream,
credentials arrive as domain values."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest

from pallet.daemon.api.images import ImagesServicer
from pallet.v1.errors import FailedPrecondition, InvalidArgument
from pallet.daemon.images.model import Credentials, HistoryEntry, Image, ImageConfig, PruneResult
from pallet.v1 import images_pb2 as pb
from pallet.v1 import images_pb2_grpc

IMAGE = Image(
    id="sha256:" + "ab" * 32, repo_tags=("reg:5000/a:1",), repo_digests=(), created_ns=1, size=10,
    config=ImageConfig(), layers=("sha256:" + "cd" * 32,),
)


class FakeStore:
    def __init__(self) -> None:
        self.credentials: list[Credentials] = []

    async def pull(self, reference: str, platform: str, credentials: Credentials, progress: Any) -> tuple[Image, str]:
        self.credentials.append(credentials)
        progress("abc", "Downloading", 5, 10)
        progress("abc", "Pull complete", 10, 10)
        if reference == "bad":
            raise InvalidArgument("blob sha256:x does not match its digest")
        return IMAGE, "sha256:" + "ef" * 32

    async def push(self, reference: str, credentials: Credentials, progress: Any) -> tuple[str, int]:
        progress("abc", "Pushing", 1, 2)
        raise FailedPrecondition("unauthorized: reg:5000/a: log in with `pallet login reg:5000`")

    async def login(self, registry: str, credentials: Credentials) -> None:
        self.credentials.append(credentials)

    async def save(self, names: Sequence[str], oci_only: bool = False) -> AsyncIterator[bytes]:
        yield b"part1"
        yield b"part2" if not oci_only else b"oci"

    async def history(self, name: str) -> list[HistoryEntry]:
        return [HistoryEntry(IMAGE.id, 2_000_000_000, "pallet import", 10, "", False)]

    async def prune(self, all: bool = False, filters: Sequence[str] = ()) -> PruneResult:
        return PruneResult(("a:1",), (IMAGE.id,), 1234 if all else 0)


@pytest.fixture
async def stub(tmp_path: Path) -> AsyncIterator[tuple[Any, FakeStore]]:
    store = FakeStore()
    server = grpc.aio.server()
    images_pb2_grpc.add_ImagesServiceServicer_to_server(ImagesServicer(store), server)  # type: ignore[arg-type]
    sock = tmp_path / "api.sock"
    server.add_insecure_port(f"unix:{sock}")
    await server.start()
    async with grpc.aio.insecure_channel(f"unix:{sock}") as channel:
        yield images_pb2_grpc.ImagesServiceStub(channel), store
    await server.stop(None)


async def test_pull_streams_progress_then_the_image(stub: tuple[Any, FakeStore]) -> None:
    client, store = stub
    auth = pb.RegistryAuth(username="alice", password="pw")
    responses = [r async for r in client.Pull(pb.PullRequest(reference="reg:5000/a:1", auth=auth))]
    kinds = [r.WhichOneof("payload") for r in responses]
    assert kinds == ["progress", "progress", "image"]
    assert responses[0].progress.status == "Downloading" and responses[0].progress.total == 10
    assert responses[-1].image.id == IMAGE.id and responses[-1].digest == "sha256:" + "ef" * 32
    assert store.credentials == [Credentials("alice", "pw")]
    # The daemon names what it pulled canonically, so clients need no reference parser.
    assert responses[-1].reference == "reg:5000/a:1"
    final = [r async for r in client.Pull(pb.PullRequest(reference="busybox"))][-1]
    assert final.reference == "docker.io/library/busybox:latest"


async def test_stream_errors_keep_their_status_code(stub: tuple[Any, FakeStore]) -> None:
    client, _ = stub
    with pytest.raises(grpc.aio.AioRpcError) as info:
        [r async for r in client.Pull(pb.PullRequest(reference="bad"))]
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not match its digest" in (info.value.details() or "")
    seen = []
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for r in client.Push(pb.PushRequest(reference="reg:5000/a:1")):
            seen.append(r)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert [r.progress.status for r in seen] == ["Pushing"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        [r async for r in client.Pull(pb.PullRequest(reference=""))]
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await client.Login(pb.LoginRequest(registry="r", auth=pb.RegistryAuth(username="a\nb")))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_login_save_history_prune(stub: tuple[Any, FakeStore]) -> None:
    client, store = stub
    assert (await client.Login(pb.LoginRequest(registry="r", auth=pb.RegistryAuth(username="u", password="p")))).status == "Login Succeeded"
    chunks = [r.chunk async for r in client.Save(pb.SaveRequest(images=["a"]))]
    assert chunks == [b"part1", b"part2"]
    chunks = [r.chunk async for r in client.Save(pb.SaveRequest(images=["a"], format=pb.SAVE_FORMAT_OCI))]
    assert chunks == [b"part1", b"oci"]
    history = await client.History(pb.HistoryRequest(image="a"))
    assert [(e.id, e.created.seconds, e.created_by, e.size) for e in history.entries] == [(IMAGE.id, 2, "pallet import", 10)]
    pruned = await client.Prune(pb.PruneImagesRequest(all=True))
    assert (list(pruned.untagged), list(pruned.deleted), pruned.space_reclaimed) == (["a:1"], [IMAGE.id], 1234)
