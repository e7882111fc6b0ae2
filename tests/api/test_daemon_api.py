"""palletd's gRPC API in process: real servicers, store, event bus and container manager,
with a fake image store and fake shims (no root, no kernel work)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from pallet.daemon.api.containers import ContainersServicer
from pallet.daemon.api.events import EventsServicer
from pallet.daemon.api.images import ImagesServicer
from pallet.daemon.api.server import ApiServer
from pallet.daemon.api.system import SystemServicer
from pallet.daemon.config import Config
from pallet.daemon.containers.logs import ContainerLogs
from pallet.daemon.containers.manager import ContainerManager
from pallet.daemon.containers.store import ContainerRecords
from pallet.v1.errors import FailedPrecondition, NotFound, Unavailable
from pallet.daemon.events.bus import EventBus
from pallet.daemon.images.model import Image, ImageConfig, LoadResult, RemoveResult
from pallet.daemon.shims.api import ExecSession, Stdio
from pallet.shim.api.delete import DeleteResult
from pallet.shim.api.spec import ExecSpec, ExitStatus, Output, ShimSpec, ShimState, TaskStatus
from pallet.shim.logfile import LogWriter
from pallet.daemon.snapshots.overlay import OverlaySnapshots
from pallet.daemon.store.db import Database
from pallet.daemon.system import SystemInfo
from pallet.v1 import containers_pb2 as cpb
from pallet.v1 import containers_pb2_grpc
from pallet.v1 import events_pb2 as epb
from pallet.v1 import events_pb2_grpc
from pallet.v1 import system_pb2 as spb
from pallet.v1 import system_pb2_grpc

IMAGE = Image(
    id="sha256:" + "ab" * 32,
    repo_tags=("busybox:latest",),
    repo_digests=(),
    created_ns=1,
    size=1000,
    config=ImageConfig(cmd=("sh",), env=("PATH=/bin",)),
    layers=("sha256:" + "cd" * 32,),
)


class FakeImages:
    def __init__(self) -> None:
        self.images = {IMAGE.id: IMAGE}

    async def get(self, name: str) -> Image:
        for img in self.images.values():
            if name in (img.id, "busybox", "busybox:latest") or img.id[7:].startswith(name):
                return img
        raise NotFound(f"No such image: {name}")

    async def list(self, all: bool = False, filters: Sequence[str] = ()) -> list[Image]:
        return list(self.images.values())

    def layer_dirs(self, image: Image) -> list[str]:
        return ["/nonexistent/layer"]

    async def import_rootfs(self, chunks: AsyncIterator[bytes], reference: str, message: str = "", changes: Sequence[str] = ()) -> Image:
        raise AssertionError("not exercised by these tests")

    async def load(self, chunks: AsyncIterator[bytes]) -> LoadResult:
        raise AssertionError("not exercised by these tests")

    async def tag(self, source: str, target: str) -> None:
        raise AssertionError("not exercised by these tests")

    async def remove(self, name: str, force: bool = False, prune: bool = True) -> RemoveResult:
        self.images.clear()
        return RemoveResult((), (IMAGE.id,))


class FakeStdio:
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def output(self) -> AsyncIterator[Output]:  # type: ignore[override]
        for data in self._chunks:
            yield Output(1, data, time.time_ns())

    async def write_stdin(self, data: bytes) -> None:
        pass

    async def close_stdin(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class FakeExec(FakeStdio):
    pid = 99

    def __init__(self, args: tuple[str, ...]) -> None:
        super().__init__([" ".join(args).encode()])

    async def wait(self) -> ExitStatus:
        return ExitStatus(3, time.time_ns())


class FakeShim:
    def __init__(self, spec: ShimSpec) -> None:
        self.spec = spec
        self.container_id = spec.container_id
        self.shim_pid = 4000
        self.exit = asyncio.get_running_loop().create_future()
        self.ignore_term = "ignore-term" in spec.process.args
        self.execs: dict[str, FakeExec] = {}

    async def start(self) -> int:
        if self.spec.process.args[0] == "nosuch":
            raise FailedPrecondition('exec: "nosuch": executable file not found in $PATH')
        if self.spec.process.args[0] == "true":
            self.exit.set_result(ExitStatus(0, time.time_ns()))
        return 4242

    async def state(self) -> ShimState:
        return ShimState(TaskStatus.RUNNING, 4242, self.shim_pid)

    async def kill(self, sig: int, all_processes: bool = False) -> None:
        if sig == signal.SIGTERM and self.ignore_term:
            return
        if not self.exit.done():
            self.exit.set_result(ExitStatus(128 + sig, time.time_ns()))

    async def wait(self) -> ExitStatus:
        return await asyncio.shield(self.exit)

    async def attach(self, stdin: bool, stdout: bool, stderr: bool) -> Stdio:
        return FakeStdio([b"hello\n"])

    async def exec(self, spec: ExecSpec) -> ExecSession:
        self.execs[spec.exec_id] = FakeExec(spec.process.args)
        return self.execs[spec.exec_id]

    async def wait_exec(self, exec_id: str) -> ExitStatus:
        return await self.execs[exec_id].wait()

    async def shutdown(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class FakeLauncher:
    def __init__(self) -> None:
        self.last_spec: ShimSpec | None = None

    async def spawn(self, spec: ShimSpec, seccomp: bytes = b"") -> FakeShim:
        self.last_spec = spec
        return FakeShim(spec)

    async def connect(self, container_id: str, bundle_dir: Path) -> FakeShim:
        raise Unavailable("no shim")

    def exit_status_on_disk(self, bundle_dir: Path) -> ExitStatus | None:
        return ExitStatus(127, time.time_ns(), "exec failed") if "nosuch" in str(self.last_spec and self.last_spec.process.args) else None

    def exec_exit_on_disk(self, bundle_dir: Path, exec_id: str) -> ExitStatus | None:
        return None

    def discard_exec_exit(self, bundle_dir: Path, exec_id: str) -> None:
        pass

    async def delete(self, container_id: str, bundle_dir: Path, cgroup_path: str) -> DeleteResult:
        return DeleteResult()

    async def aclose(self) -> None:
        pass


@pytest.fixture
async def channel(tmp_path: Path) -> AsyncIterator[grpc.aio.Channel]:
    db = Database(tmp_path / "pallet.db")
    await db.start()
    bus = EventBus(db)
    await bus.start()
    records = ContainerRecords(db)
    images = FakeImages()
    manager = ContainerManager(records, images, OverlaySnapshots(), FakeLauncher(), bus, tmp_path)
    await manager.start()
    sock = tmp_path / "api.sock"
    server = ApiServer(
        Config(root=tmp_path, run_root=tmp_path, hosts=(f"unix://{sock}",), shutdown_grace_s=0.1),
        [
            ContainersServicer(manager, ContainerLogs(manager)),
            ImagesServicer(images),
            EventsServicer(bus),
            SystemServicer(SystemInfo(manager, images, bus, tmp_path, tmp_path)),
        ],
    )
    await server.start()
    async with grpc.aio.insecure_channel(f"unix:{sock}") as ch:
        yield ch
    await server.aclose()
    await manager.aclose()
    await db.aclose()


async def test_create_start_wait_and_events_carry_seqs(channel: grpc.aio.Channel) -> None:
    c = containers_pb2_grpc.ContainersServiceStub(channel)
    created = await c.Create(cpb.CreateContainerRequest(config=cpb.ContainerConfig(image="busybox", name="web", cmd=["true"])))
    assert created.name == "web" and len(created.id) == 64
    assert (await c.Start(cpb.StartContainerRequest(container="web"))).pid == 4242
    assert (await c.Wait(cpb.WaitContainerRequest(container=created.id[:8]))).exit_code == 0
    info = (await c.Inspect(cpb.InspectContainerRequest(container="web"))).container
    assert info.state.status == cpb.CONTAINER_STATUS_EXITED
    assert info.path == "true" and info.config.env[-1] == "HOSTNAME=" + created.id[:12]
    ev = events_pb2_grpc.EventsServiceStub(channel)
    now = int(time.time())
    got = [r.event async for r in ev.Subscribe(epb.SubscribeRequest(since_seq=0, since={"seconds": 1}, until={"seconds": now + 1}))]
    assert [e.action for e in got] == ["create", "start", "die"]
    assert [e.seq for e in got] == [1, 2, 3]
    assert got[2].attributes["exitCode"] == "0"
    # `--since 0` is Unix time 0 (docker replays everything), not "no --since".
    zero = [r.event.seq async for r in ev.Subscribe(epb.SubscribeRequest(since={"seconds": 0}, until={"seconds": now + 1}))]
    assert zero == [1, 2, 3]


async def test_errors_map_to_status_codes(channel: grpc.aio.Channel) -> None:
    c = containers_pb2_grpc.ContainersServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c.Start(cpb.StartContainerRequest(container="nosuch"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == "No such container: nosuch"
    cfg = cpb.ContainerConfig(image="busybox", name="web", cmd=["sleep"])
    await c.Create(cpb.CreateContainerRequest(config=cfg))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c.Create(cpb.CreateContainerRequest(config=cfg))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    await c.Start(cpb.StartContainerRequest(container="web"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c.Remove(cpb.RemoveContainerRequest(container="web"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "is running: stop it first" in (err.value.details() or "")
    await c.Remove(cpb.RemoveContainerRequest(container="web", force=True))
    listed = await c.List(cpb.ListContainersRequest(all=True))
    assert list(listed.containers) == []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c.Create(cpb.CreateContainerRequest(config=cpb.ContainerConfig(image="nope")))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_failed_exec_keeps_container_created_with_127(channel: grpc.aio.Channel) -> None:
    c = containers_pb2_grpc.ContainersServiceStub(channel)
    await c.Create(cpb.CreateContainerRequest(config=cpb.ContainerConfig(image="busybox", name="bad", cmd=["nosuch"])))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c.Start(cpb.StartContainerRequest(container="bad"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "executable file not found" in (err.value.details() or "")
    info = (await c.Inspect(cpb.InspectContainerRequest(container="bad"))).container
    assert info.state.status == cpb.CONTAINER_STATUS_CREATED
    assert info.state.exit_code == 127


async def test_stop_escalates_to_sigkill_after_timeout(channel: grpc.aio.Channel) -> None:
    c = containers_pb2_grpc.ContainersServiceStub(channel)
    # Its own stop timeout is 300 s: a Stop that ignored timeout=0 would still be waiting.
    cfg = cpb.ContainerConfig(image="busybox", name="stubborn", cmd=["sh", "ignore-term"], stop_timeout=300)
    await c.Create(cpb.CreateContainerRequest(config=cfg))
    await c.Start(cpb.StartContainerRequest(container="stubborn"))
    try:
        await asyncio.wait_for(c.Stop(cpb.StopContainerRequest(container="stubborn", timeout=0)), 20)
    except TimeoutError:
        pytest.fail("Stop(timeout=0) waited for the container's own stop timeout")
    assert (await c.Wait(cpb.WaitContainerRequest(container="stubborn"))).exit_code == 137


async def test_stop_waits_for_the_given_timeout(channel: grpc.aio.Channel) -> None:
    c = containers_pb2_grpc.ContainersServiceStub(channel)
    # Its own stop timeout is 0: a Stop that ignored timeout=60 would SIGKILL at once.
    cfg = cpb.ContainerConfig(image="busybox", name="patient", cmd=["sh", "ignore-term"], stop_timeout=0)
    await c.Create(cpb.CreateContainerRequest(config=cfg))
    await c.Start(cpb.StartContainerRequest(container="patient"))
    stop = asyncio.ensure_future(c.Stop(cpb.StopContainerRequest(container="patient", timeout=60)))
    try:
        await asyncio.sleep(1)
        assert not stop.done(), "Stop(timeout=60) returned while the container ignores SIGTERM"
        info = (await c.Inspect(cpb.InspectContainerRequest(container="patient"))).container
        assert info.state.status == cpb.CONTAINER_STATUS_RUNNING
    finally:
        await c.Kill(cpb.KillContainerRequest(container="patient", signal="KILL"))
        await asyncio.wait_for(stop, 20)
    assert (await c.Wait(cpb.WaitContainerRequest(container="patient"))).exit_code == 137


async def _logs(c: containers_pb2_grpc.ContainersServiceStub, **fields: object) -> bytes:
    """The data of a Logs call; fails instead of hanging if the stream never ends."""

    async def read() -> bytes:
        request = {"container": "talker", "stdout": True, "stderr": True, "tail": -1} | fields
        call = c.Logs(cpb.LogsRequest(**request))  # type: ignore[arg-type]
        return b"".join([chunk.data async for r in call for chunk in r.chunks])

    try:
        return await asyncio.wait_for(read(), 20)
    except TimeoutError:
        pytest.fail(f"Logs({fields}) never ended")


async def test_logs_over_a_log_file_the_shims_writer_wrote(channel: grpc.aio.Channel) -> None:
    c = containers_pb2_grpc.ContainersServiceStub(channel)
    await c.Create(cpb.CreateContainerRequest(config=cpb.ContainerConfig(image="busybox", name="talker", cmd=["sleep"])))
    await c.Start(cpb.StartContainerRequest(container="talker"))
    path = (await c.Inspect(cpb.InspectContainerRequest(container="talker"))).container.log_path
    now = time.time_ns()
    s = 1_000_000_000
    writer = LogWriter(path)
    writer.write(1, b"old\n", now - 30 * s)
    writer.write(2, b"err\n", now - 20 * s)
    writer.write(1, b"mid\n", now - 10 * s)
    writer.write(1, b"new\n", now)

    assert await _logs(c) == b"old\nerr\nmid\nnew\n"
    assert await _logs(c, tail=2) == b"mid\nnew\n"
    assert await _logs(c, since={"seconds": (now - 15 * s) // s}) == b"mid\nnew\n"
    assert await _logs(c, until={"seconds": (now - 15 * s) // s}) == b"old\nerr\n"
    # The container still runs: docker's `logs -f --until <past>` returns all the same.
    until_past = {"seconds": (now - 5 * s) // s}
    assert await _logs(c, follow=True, until=until_past) == b"old\nerr\nmid\n"
    assert await _logs(c, follow=True, until=until_past, stderr=False) == b"old\nmid\n"
    assert await _logs(c, follow=True, until=until_past, tail=1) == b"mid\n"

    # Following: the tail, then what the shim writes next, until the container stops.
    call = c.Logs(cpb.LogsRequest(container="talker", stdout=True, follow=True, tail=1))
    first = await asyncio.wait_for(call.read(), 20)
    assert [chunk.data for chunk in first.chunks] == [b"new\n"]
    writer.write(2, b"skipped\n", time.time_ns())
    writer.write(1, b"more\n", time.time_ns())
    second = await asyncio.wait_for(call.read(), 20)
    assert [chunk.data for chunk in second.chunks] == [b"more\n"]
    writer.close()
    await c.Kill(cpb.KillContainerRequest(container="talker", signal="KILL"))
    rest = await asyncio.wait_for(call.read(), 20)
    assert rest is grpc.aio.EOF


async def test_attach_before_start_then_exec(channel: grpc.aio.Channel) -> None:
    c = containers_pb2_grpc.ContainersServiceStub(channel)
    await c.Create(cpb.CreateContainerRequest(config=cpb.ContainerConfig(image="busybox", name="att", cmd=["sleep"])))
    call = c.Attach()
    await call.write(cpb.AttachRequest(open=cpb.AttachOpen(container="att", stdout=True)))
    first = await call.read()
    assert first.WhichOneof("payload") == "ready"
    await c.Start(cpb.StartContainerRequest(container="att"))
    out = await call.read()
    assert out.output.data == b"hello\n"
    ex = c.Exec()
    await ex.write(cpb.ExecRequest(open=cpb.ExecOpen(container="att", cmd=["echo", "x"])))
    kinds = []
    async for msg in ex:
        kinds.append(msg.WhichOneof("payload"))
        if msg.WhichOneof("payload") == "exit":
            assert msg.exit.exit_code == 3
    assert kinds == ["started", "output", "exit"]
    await c.Kill(cpb.KillContainerRequest(container="att", signal="HUP"))
    last = await call.read()
    assert last.exit.exit_code == 129


async def test_health_reflection_and_version(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    resp = await health.Check(health_pb2.HealthCheckRequest(service="pallet.v1.ContainersService"))
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = refl.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in (await call.read()).list_services_response.service}
    await call.done_writing()
    assert {"pallet.v1.ContainersService", "pallet.v1.ImagesService", "pallet.v1.EventsService", "pallet.v1.SystemService"} <= names
    system = system_pb2_grpc.SystemServiceStub(channel)
    assert (await system.Version(spb.VersionRequest())).api_version == "v1"
    info = await system.Info(spb.InfoRequest())
    assert info.storage_driver == "overlay"


async def test_rm_container_is_gone_when_wait_returns_and_when_its_start_failed(
    channel: grpc.aio.Channel,
) -> None:
    c = containers_pb2_grpc.ContainersServiceStub(channel)
    since = {"seconds": int(time.time()) - 1}
    ok = await c.Create(cpb.CreateContainerRequest(
        config=cpb.ContainerConfig(image="busybox", name="brief", cmd=["true"], auto_remove=True)))
    await c.Start(cpb.StartContainerRequest(container="brief"))
    try:
        assert (await c.Wait(cpb.WaitContainerRequest(container=ok.id))).exit_code == 0
    except grpc.aio.AioRpcError as e:  # gone before the Wait came
        assert e.code() == grpc.StatusCode.NOT_FOUND
    # Wait returns once the container is gone, never while it shows Exited.
    assert list((await c.List(cpb.ListContainersRequest(all=True))).containers) == []
    # A start that fails removes an --rm container before the error is returned.
    bad = await c.Create(cpb.CreateContainerRequest(
        config=cpb.ContainerConfig(image="busybox", name="bad", cmd=["nosuch"], auto_remove=True)))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c.Start(cpb.StartContainerRequest(container="bad"))
    assert "executable file not found" in (err.value.details() or "")
    assert list((await c.List(cpb.ListContainersRequest(all=True))).containers) == []
    ev = events_pb2_grpc.EventsServiceStub(channel)
    until = {"seconds": int(time.time()) + 1}
    got = [r.event async for r in ev.Subscribe(epb.SubscribeRequest(since=since, until=until))]
    assert [(e.actor_id, e.action) for e in got] == [
        (ok.id, "create"), (ok.id, "start"), (ok.id, "die"), (ok.id, "destroy"),
        (bad.id, "create"), (bad.id, "destroy"),
    ]


class EchoService:
    """A service the daemon does not have yet (networks, say): one list entry serves it."""

    SERVICE = "pallet.v1.NetworksService"

    def add_to_server(self, server: Any) -> None:
        async def echo(request: bytes, context: Any) -> bytes:
            return request

        handler = grpc.unary_unary_rpc_method_handler(echo)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(self.SERVICE, {"Echo": handler}),)
        )


async def test_the_server_serves_its_list_with_health_and_reflection(tmp_path: Path) -> None:
    sock = tmp_path / "api.sock"
    config = Config(root=tmp_path, run_root=tmp_path, hosts=(f"unix://{sock}",), shutdown_grace_s=0.1)
    server = ApiServer(config, [EchoService()])
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"unix:{sock}") as ch:
            echo = ch.unary_unary("/pallet.v1.NetworksService/Echo")
            assert await echo(b"ping") == b"ping"
            health = health_pb2_grpc.HealthStub(ch)
            resp = await health.Check(health_pb2.HealthCheckRequest(service="pallet.v1.NetworksService"))
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await health.Check(health_pb2.HealthCheckRequest(service="pallet.v1.ContainersService"))
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
            call = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo()
            await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
            names = {s.name for s in (await call.read()).list_services_response.service}
            await call.done_writing()
            assert names == {"pallet.v1.NetworksService", "grpc.health.v1.Health",
                             "grpc.reflection.v1alpha.ServerReflection"}
    finally:
        await server.aclose()
