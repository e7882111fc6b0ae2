"""The Build RPC in process: the real servicer, build directories and context extraction
under a temporary root, with a fake Dockerfile builder that records what it was given."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import tarfile
import threading
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import grpc
import pytest

from pallet.client import wire
from pallet.daemon.api.builds import BuildsServicer
from pallet.daemon.api.server import ApiServer
from pallet.daemon.builder.contextdir import BuildDirs
from pallet.daemon.builder.model import BuildOptions, BuildProgress, BuildResult, StepState
from pallet.daemon.builder.sessions import BuildSessions, Report
from pallet.daemon.config import Config
from pallet.v1 import builds_pb2 as pb
from pallet.v1 import images_pb2 as ipb
from pallet.v1.errors import FailedPrecondition, InvalidArgument

BUILD = "/pallet.v1.BuildsService/Build"
IMAGE_ID = "sha256:" + "ab" * 32


class FakeBuilder:
    """Reads what the build would read, reports `steps`, then returns or raises `error`."""

    def __init__(self) -> None:
        self.calls: list[tuple[BuildOptions, dict[str, str]]] = []
        self.steps: list[BuildProgress] = []
        self.error: Exception | None = None
        self.hold: asyncio.Event | None = None
        self.held = asyncio.Event()
        self.cancelled = False
        self.from_thread = False
        self.reported = 0

    async def build(self, context_dir: Path, options: BuildOptions, report: Report) -> BuildResult:
        seen: dict[str, str] = {}
        for dirpath, dirnames, filenames in os.walk(context_dir):
            for name in dirnames + filenames:
                path = Path(dirpath, name)
                rel = str(path.relative_to(context_dir))
                if path.is_symlink():
                    seen[rel] = "-> " + os.readlink(path)
                elif path.is_dir():
                    seen[rel] = "dir"
                else:
                    data = path.read_bytes()
                    seen[rel] = data.decode() if len(data) < 4096 else hashlib.sha256(data).hexdigest()
        self.calls.append((options, seen))
        if self.from_thread:
            thread = threading.Thread(target=lambda: [report(s) for s in self.steps])
            thread.start()
            await asyncio.to_thread(thread.join)
        else:
            for step in self.steps:
                behind = report(step)
                self.reported += 1
                if behind is not None:
                    await behind  # as the runner does with a RUN's output
                await asyncio.sleep(0)
        if self.hold is not None:
            self.held.set()
            try:
                await self.hold.wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        if self.error is not None:
            raise self.error
        return BuildResult(IMAGE_ID, tuple(options.tags), steps=2, cached_steps=1)


@pytest.fixture
def builder() -> FakeBuilder:
    return FakeBuilder()


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "api.sock"


@pytest.fixture
async def channel(sock: Path, tmp_path: Path, builder: FakeBuilder) -> AsyncIterator[grpc.aio.Channel]:
    sessions = BuildSessions(BuildDirs(tmp_path / "root"), builder)
    await sessions.start()
    server = ApiServer(
        Config(root=tmp_path, run_root=tmp_path, hosts=(f"unix://{sock}",), shutdown_grace_s=0.1),
        [BuildsServicer(sessions)],
    )
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"unix:{sock}") as ch:
            yield ch
    finally:
        await server.aclose()
        await sessions.aclose()


def builds_left(tmp_path: Path, settle: bool = True) -> list[str]:
    """The build directories there, once those being removed (in the background, after
    their build) are gone (`settle`), or now."""
    top = tmp_path / "root" / "builds"
    for _ in range(500 if settle else 1):
        names = sorted(p.name for p in top.iterdir())
        if not any(n.startswith(".removing-") for n in names):
            break
        time.sleep(0.01)
    return names


def tar_of(entries: Iterable[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def entry(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = mode
    info.mtime = 1_700_000_000
    return info, data


CONTEXT = tar_of([
    entry("Dockerfile", b"FROM scratch\n"),
    entry("src", kind=tarfile.DIRTYPE, mode=0o755),
    entry("src/app.py", b"print(1)\n"),
    entry("link", kind=tarfile.SYMTYPE, link="/etc/passwd"),
])


def requests(options: pb.BuildOptions, data: bytes = CONTEXT, end: bool = True, chunk: int = 300,
             size: int | None = None) -> list[bytes]:
    messages = [pb.BuildRequest(options=options)]
    messages += [pb.BuildRequest(chunk=data[i:i + chunk]) for i in range(0, len(data), chunk)]
    if end:
        messages.append(pb.BuildRequest(end=ipb.UploadEnd(size=len(data) if size is None else size)))
    return [m.SerializeToString() for m in messages]


async def build(channel: grpc.aio.Channel, messages: Iterable[bytes] | AsyncIterator[bytes]) -> list[pb.BuildResponse]:
    call = channel.stream_stream(BUILD, response_deserializer=pb.BuildResponse.FromString)
    return [r async for r in call(messages)]  # type: ignore[arg-type]


def _wire_call(sock: Path, messages: list[bytes], end_stream: bool) -> wire.RpcError:
    channel = wire.Channel(str(sock), 10.0)
    try:
        call = channel.start(BUILD)
        for m in messages:
            if not call.send(m):
                break  # palletd answered before the upload's end
        if end_stream:
            call.end()
        with pytest.raises(wire.RpcError) as err:
            for _ in call:
                pass
        return err.value
    finally:
        channel.close()


async def refused(sock: Path, messages: list[bytes], end_stream: bool = True) -> wire.RpcError:
    """The error a call ends with, sent with the CLI's own transport: palletd may refuse
    before the last message is sent, which grpc's aio client reports as its own INTERNAL
    ("Internal error from Core") instead of palletd's status. Without `end_stream` the
    request side stays open: the answer must come without it."""
    return await asyncio.wait_for(asyncio.to_thread(_wire_call, sock, messages, end_stream), 20)


STEPS = [
    BuildProgress(StepState.STARTED, 1, 2, "0", "Step 1/2 : FROM busybox"),
    BuildProgress(StepState.DONE, 1, 2, "0", image_id="sha256:" + "11" * 32),
    BuildProgress(StepState.STARTED, 2, 2, "0", "Step 2/2 : RUN echo hi"),
    BuildProgress(StepState.OUTPUT, 2, 2, "0", data=b"hi\n", stream=1),
    BuildProgress(StepState.OUTPUT, 2, 2, "0", data=b"warn\n", stream=2),
    BuildProgress(StepState.CACHED, 2, 2, "0"),
    BuildProgress(StepState.DONE, 2, 2, "0", image_id=IMAGE_ID),
]


def shown(responses: list[pb.BuildResponse]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for r in responses:
        if r.WhichOneof("payload") == "progress":
            p = r.progress
            out.append((pb.BuildStepState.Name(p.state), p.step, p.total, p.text, p.data, p.stream, p.image_id))
        else:
            out.append(("result", r.result.image_id, tuple(r.result.tags), r.result.steps, r.result.cached_steps))
    return out


EXPECTED = [
    ("BUILD_STEP_STATE_STARTED", 1, 2, "Step 1/2 : FROM busybox", b"", 1, ""),
    ("BUILD_STEP_STATE_DONE", 1, 2, "", b"", 1, "sha256:" + "11" * 32),
    ("BUILD_STEP_STATE_STARTED", 2, 2, "Step 2/2 : RUN echo hi", b"", 1, ""),
    ("BUILD_STEP_STATE_OUTPUT", 2, 2, "", b"hi\n", 1, ""),
    ("BUILD_STEP_STATE_OUTPUT", 2, 2, "", b"warn\n", 2, ""),
    ("BUILD_STEP_STATE_CACHED", 2, 2, "", b"", 1, ""),
    ("BUILD_STEP_STATE_DONE", 2, 2, "", b"", 1, IMAGE_ID),
]


async def test_a_build_gets_the_context_on_disk_and_streams_its_progress_in_order(
    channel: grpc.aio.Channel, builder: FakeBuilder, tmp_path: Path
) -> None:
    builder.steps = STEPS
    options = pb.BuildOptions(
        dockerfile="./Dockerfile", tags=["app", "reg:5000/x/app:v1"], labels={"a": "b"}, target="t",
        no_cache=True, pull=True, network="none", platform="linux/amd64",
        build_args=[pb.BuildArg(name="A", value="1"), pb.BuildArg(name="UNSET"), pb.BuildArg(name="E", value=""),
                    pb.BuildArg(name="A", value="2")],
    )
    responses = await build(channel, requests(options))
    assert shown(responses) == EXPECTED + [("result", IMAGE_ID, ("app", "reg:5000/x/app:v1"), 2, 1)]
    (got, seen), = builder.calls
    assert got == BuildOptions(
        dockerfile="Dockerfile", tags=("app", "reg:5000/x/app:v1"), build_args={"A": "2", "UNSET": None, "E": ""},
        labels={"a": "b"}, target="t", no_cache=True, pull=True, network="none", platform="linux/amd64",
    )
    # The symlink is kept as it is (pointing out of the context), never followed.
    assert seen == {"Dockerfile": "FROM scratch\n", "src": "dir", "src/app.py": "print(1)\n", "link": "-> /etc/passwd"}
    assert builds_left(tmp_path) == []


async def test_progress_reported_from_a_thread_streams_too(channel: grpc.aio.Channel, builder: FakeBuilder) -> None:
    builder.steps = STEPS
    builder.from_thread = True
    responses = await build(channel, requests(pb.BuildOptions()))
    assert shown(responses)[:-1] == EXPECTED


async def test_progress_reaches_the_client_while_the_build_still_runs(
    channel: grpc.aio.Channel, builder: FakeBuilder
) -> None:
    builder.steps = STEPS[:1]
    builder.hold = asyncio.Event()
    call = channel.stream_stream(BUILD, response_deserializer=pb.BuildResponse.FromString)(iter(requests(pb.BuildOptions())))
    first = await call.read()
    assert first.progress.text == "Step 1/2 : FROM busybox"
    assert not builder.hold.is_set()
    builder.hold.set()
    last = first
    while (r := await call.read()) is not grpc.aio.EOF:
        last = r
    assert last.result.image_id == IMAGE_ID


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (pb.BuildOptions(tags=["Upper:1"]), "invalid reference format"),
        (pb.BuildOptions(tags=["ok", "bad tag"]), "invalid reference format"),
        (pb.BuildOptions(tags=["app@sha256:" + "a" * 64]), "not with a digest"),
        (pb.BuildOptions(dockerfile="."), "names no file in the build context"),
        (pb.BuildOptions(dockerfile="sub/.."), "names no file in the build context"),
        (pb.BuildOptions(dockerfile="../Dockerfile"), "leaves the build context"),
        (pb.BuildOptions(dockerfile="a/../../Dockerfile"), "leaves the build context"),
        (pb.BuildOptions(dockerfile="/etc/passwd"), "is absolute"),
        (pb.BuildOptions(build_args=[pb.BuildArg(name="", value="x")]), "invalid build-arg name"),
        (pb.BuildOptions(labels={"": "x"}), "label's name is empty"),
        (pb.BuildOptions(platform="amd64"), "invalid platform"),
    ],
)
async def test_bad_options_are_refused_before_any_of_the_context_is_read(
    channel: grpc.aio.Channel, sock: Path, builder: FakeBuilder, tmp_path: Path, options: pb.BuildOptions, message: str
) -> None:
    # The context never comes: the answer must not wait for it.
    err = await refused(sock, [pb.BuildRequest(options=options).SerializeToString()], end_stream=False)
    assert err.code == "INVALID_ARGUMENT"
    assert message in err.details
    assert builder.calls == [] and builds_left(tmp_path) == []


async def test_the_first_message_must_be_the_options(channel: grpc.aio.Channel, sock: Path, builder: FakeBuilder) -> None:
    for messages in ([pb.BuildRequest(chunk=b"x").SerializeToString()], []):
        err = await refused(sock, messages)
        assert err.code == "INVALID_ARGUMENT"
        assert "first Build message must carry the options" in err.details
    assert builder.calls == []


async def test_a_client_cut_off_before_end_builds_nothing_and_leaves_no_build_dir(
    channel: grpc.aio.Channel, sock: Path, builder: FakeBuilder, tmp_path: Path
) -> None:
    err = await refused(sock, requests(pb.BuildOptions(), end=False))
    assert err.code == "INVALID_ARGUMENT"
    assert "upload cut short" in err.details
    assert builder.calls == [] and builds_left(tmp_path) == []


async def test_a_client_that_goes_away_mid_upload_builds_nothing_and_leaves_no_build_dir(
    channel: grpc.aio.Channel, builder: FakeBuilder, tmp_path: Path
) -> None:
    sent = asyncio.Event()
    messages = requests(pb.BuildOptions(), end=False)

    async def part_then_wait() -> AsyncIterator[bytes]:
        for m in messages[:3]:
            yield m
        sent.set()
        await asyncio.Event().wait()

    call = channel.stream_stream(BUILD)(part_then_wait())
    await sent.wait()
    for _ in range(100):  # the build directory exists while the upload runs
        if builds_left(tmp_path):
            break
        await asyncio.sleep(0.02)
    assert len(builds_left(tmp_path)) == 1
    call.cancel()
    for _ in range(250):
        if not builds_left(tmp_path):
            break
        await asyncio.sleep(0.02)
    assert builds_left(tmp_path) == [] and builder.calls == []


async def test_a_damaged_upload_builds_nothing(channel: grpc.aio.Channel, sock: Path, builder: FakeBuilder, tmp_path: Path) -> None:
    err = await refused(sock, requests(pb.BuildOptions(), size=len(CONTEXT) + 1))
    assert err.code == "INVALID_ARGUMENT"
    assert "upload damaged" in err.details
    assert builder.calls == [] and builds_left(tmp_path) == []


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([entry("/etc/x", b"1")], "is an absolute path"),
        ([entry("a/../../x", b"1")], "climbs out of the context"),
        ([entry("dev", kind=tarfile.CHRTYPE)], "is a device node"),
        ([entry("l", kind=tarfile.SYMTYPE, link="/etc"), entry("l/passwd", b"x")], "below a symlink"),
        ([entry("l", kind=tarfile.SYMTYPE, link="."), entry("l/x", b"x")], "below a symlink"),
        ([entry("h", kind=tarfile.LNKTYPE, link="../../etc/passwd")], "outside the context"),
        ([entry("h", kind=tarfile.LNKTYPE, link="missing")], "not a file earlier in the context"),
    ],
)
async def test_a_hostile_context_is_refused_and_nothing_is_built(
    channel: grpc.aio.Channel, sock: Path, builder: FakeBuilder, tmp_path: Path,
    entries: list[tuple[tarfile.TarInfo, bytes]], message: str,
) -> None:
    err = await refused(sock, requests(pb.BuildOptions(), data=tar_of([entry("Dockerfile", b"FROM x\n"), *entries])))
    assert err.code == "INVALID_ARGUMENT"
    assert message in err.details, err.details
    assert builder.calls == [] and builds_left(tmp_path) == []


async def test_not_a_tar_is_refused(channel: grpc.aio.Channel, sock: Path, builder: FakeBuilder, tmp_path: Path) -> None:
    err = await refused(sock, requests(pb.BuildOptions(), data=b"FROM busybox\n" * 100))
    assert err.code == "INVALID_ARGUMENT"
    assert "not a valid tar archive" in err.details
    assert builder.calls == [] and builds_left(tmp_path) == []


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidArgument("Dockerfile:2: unknown instruction: FORM"), grpc.StatusCode.INVALID_ARGUMENT),
        (FailedPrecondition("Dockerfile:3: RUN false: exit code 1"), grpc.StatusCode.FAILED_PRECONDITION),
        (RuntimeError("boom"), grpc.StatusCode.INTERNAL),
    ],
)
async def test_a_failed_build_ends_the_call_with_its_error_after_its_progress(
    channel: grpc.aio.Channel, builder: FakeBuilder, tmp_path: Path, error: Exception, code: grpc.StatusCode
) -> None:
    builder.steps = STEPS[:3]
    builder.error = error
    call = channel.stream_stream(BUILD, response_deserializer=pb.BuildResponse.FromString)(iter(requests(pb.BuildOptions())))
    got: list[pb.BuildResponse] = []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for r in call:  # type: ignore[attr-defined]
            got.append(r)
    assert shown(got) == EXPECTED[:3]
    assert err.value.code() == code
    assert str(error) in (err.value.details() or "")
    assert builds_left(tmp_path) == []


async def test_a_client_that_goes_away_mid_build_cancels_it_and_leaves_no_build_dir(
    channel: grpc.aio.Channel, builder: FakeBuilder, tmp_path: Path
) -> None:
    builder.hold = asyncio.Event()
    call = channel.stream_stream(BUILD)(iter(requests(pb.BuildOptions())))
    await asyncio.wait_for(builder.held.wait(), 10)
    assert len(builds_left(tmp_path)) == 1
    call.cancel()
    for _ in range(250):
        if builder.cancelled and not builds_left(tmp_path):
            break
        await asyncio.sleep(0.02)
    assert builder.cancelled and builds_left(tmp_path) == []


async def test_leftovers_of_builds_a_kill_left_are_removed_at_start(tmp_path: Path) -> None:
    for name in ("ab" * 16, ".removing-" + "cd" * 16):  # cut short, and set aside to remove
        left = tmp_path / "builds" / name / "context" / "deep"
        left.mkdir(parents=True)
        (left / "f").write_text("x")
        os.chmod(left, 0o555)
    dirs = BuildDirs(tmp_path)
    await dirs.start()
    assert list((tmp_path / "builds").iterdir()) == []


async def test_a_finished_builds_directory_is_set_aside_at_once_and_removed_before_close(tmp_path: Path) -> None:
    dirs = BuildDirs(tmp_path)
    await dirs.start()
    async with dirs.new() as path:
        for i in range(200):
            (path / "context" / f"f{i}").write_text("x")
    assert not path.exists()  # renamed before the block's end returned
    await dirs.aclose()
    assert list((tmp_path / "builds").iterdir()) == []


async def test_a_large_context_goes_through_the_pipe_whole(
    channel: grpc.aio.Channel, builder: FakeBuilder, tmp_path: Path
) -> None:
    big = os.urandom(3 << 20)
    data = tar_of([entry("Dockerfile", b"FROM x\n"), entry("big.bin", big)])
    await build(channel, requests(pb.BuildOptions(), data=data, chunk=1 << 20))
    (_, seen), = builder.calls
    assert seen["big.bin"] == hashlib.sha256(big).hexdigest()


async def test_a_client_far_behind_on_run_output_holds_the_build_back(
    channel: grpc.aio.Channel, builder: FakeBuilder
) -> None:
    chunk = 256 * 1024
    builder.steps = [BuildProgress(StepState.OUTPUT, 1, 1, "0", data=bytes([i]) * chunk, stream=1)
                     for i in range(64)]
    call = channel.stream_stream(BUILD, response_deserializer=pb.BuildResponse.FromString)(
        iter(requests(pb.BuildOptions(tags=["x"]))))
    got = [await call.read()]
    await asyncio.sleep(0.5)
    # Not all 16 MiB queued in palletd: the build waits with 2 MiB in the servicer's
    # queue not taken (and what grpc's buffers and windows hold, a few MiB more).
    held = builder.reported
    assert held < 48, held
    await asyncio.sleep(0.5)
    assert builder.reported == held  # and stays held
    while (r := await call.read()) != grpc.aio.EOF:
        got.append(r)
    data = [r.progress.data for r in got if r.WhichOneof("payload") == "progress"]
    assert data == [step.data for step in builder.steps]  # every byte, in order
    assert got[-1].result.image_id == IMAGE_ID and builder.reported == 64
