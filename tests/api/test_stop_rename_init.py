"""Stop and Restart with a signal, Rename, and a create with --init, through the real
servicer and manager (fake shims and images: the `channel` fixture of test_daemon_api)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from pallet.daemon.containers.manager import ContainerManager
from pallet.daemon.containers.model import ConfigRequest, CreateRequest, HostConfig
from pallet.daemon.containers.store import ContainerRecords
from pallet.daemon.events.bus import EventBus
from pallet.daemon.snapshots.overlay import OverlaySnapshots
from pallet.daemon.store.db import Database
from pallet.v1.errors import FailedPrecondition

from pallet.v1 import containers_pb2 as cpb
from pallet.v1 import containers_pb2_grpc
from pallet.v1 import events_pb2 as epb
from pallet.v1 import events_pb2_grpc
from tests.api.test_daemon_api import FakeImages, FakeLauncher
from tests.api.test_daemon_api import channel  # noqa: F401 (the fixture)

Stub = containers_pb2_grpc.ContainersServiceStub


async def _running(c: Stub, name: str, **config: object) -> None:
    cfg = cpb.ContainerConfig(image="busybox", name=name, cmd=["sleep"], **config)  # type: ignore[arg-type]
    await c.Create(cpb.CreateContainerRequest(config=cfg))
    await c.Start(cpb.StartContainerRequest(container=name))


async def _status(c: Stub, name: str) -> int:
    return int((await c.Inspect(cpb.InspectContainerRequest(container=name))).container.state.status)


async def _events(ch: grpc.aio.Channel, since: int) -> list[epb.Event]:
    ev = events_pb2_grpc.EventsServiceStub(ch)
    until = {"seconds": int(time.time()) + 1}
    return [r.event async for r in ev.Subscribe(
        epb.SubscribeRequest(since={"seconds": since}, until=until))]


async def test_stop_with_a_signal_sends_it_instead_of_the_stop_signal(
    channel: grpc.aio.Channel,
) -> None:
    c = Stub(channel)
    await _running(c, "web", stop_signal="SIGUSR1")
    await c.Stop(cpb.StopContainerRequest(container="web", signal="INT"))
    assert (await c.Wait(cpb.WaitContainerRequest(container="web"))).exit_code == 130
    # Without one, the container's own stop signal (SIGUSR1: 138).
    await c.Start(cpb.StartContainerRequest(container="web"))
    await c.Stop(cpb.StopContainerRequest(container="web"))
    assert (await c.Wait(cpb.WaitContainerRequest(container="web"))).exit_code == 138


async def test_restart_with_a_signal(channel: grpc.aio.Channel) -> None:
    c = Stub(channel)
    since = int(time.time()) - 1
    await _running(c, "web")
    assert (await c.Restart(cpb.RestartContainerRequest(container="web", signal="9"))).pid
    assert await _status(c, "web") == cpb.CONTAINER_STATUS_RUNNING
    dies = [e for e in await _events(channel, since) if e.action == "die"]
    assert [e.attributes["exitCode"] for e in dies] == ["137"]


@pytest.mark.parametrize("bad", ["NOPE", "0", "65", "SIG"])
async def test_a_bad_signal_is_refused_and_nothing_is_stopped(
    channel: grpc.aio.Channel, bad: str
) -> None:
    c = Stub(channel)
    await _running(c, "web", restart_policy=cpb.RestartPolicy(name="always"))
    for call in (
        c.Stop(cpb.StopContainerRequest(container="web", signal=bad)),
        c.Restart(cpb.RestartContainerRequest(container="web", signal=bad)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"invalid signal {bad}" in (err.value.details() or "")
    assert await _status(c, "web") == cpb.CONTAINER_STATUS_RUNNING
    # A bad timeout likewise.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c.Stop(cpb.StopContainerRequest(container="web", timeout=-1))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await _status(c, "web") == cpb.CONTAINER_STATUS_RUNNING


async def _names(c: Stub) -> dict[str, str]:
    listed = await c.List(cpb.ListContainersRequest(all=True))
    return {x.name: x.id for x in listed.containers}


async def test_rename_running_and_stopped_with_its_event(channel: grpc.aio.Channel) -> None:
    c = Stub(channel)
    since = int(time.time()) - 1
    await _running(c, "web")
    made = await c.Create(cpb.CreateContainerRequest(config=cpb.ContainerConfig(image="busybox", name="job")))
    await c.Rename(cpb.RenameContainerRequest(container="web", name="front"))
    await c.Rename(cpb.RenameContainerRequest(container=made.id[:10], name="/batch"))
    names = await _names(c)
    assert set(names) == {"front", "batch"} and names["batch"] == made.id
    assert await _status(c, "front") == cpb.CONTAINER_STATUS_RUNNING
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c.Inspect(cpb.InspectContainerRequest(container="web"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    renames = [e for e in await _events(channel, since) if e.action == "rename"]
    assert [(e.attributes["name"], e.attributes["oldName"]) for e in renames] == [
        ("front", "/web"), ("batch", "/job")]
    assert renames[1].actor_id == made.id
    # The old name is free again; later events carry the new one.
    await c.Create(cpb.CreateContainerRequest(config=cpb.ContainerConfig(image="busybox", name="web")))
    await c.Kill(cpb.KillContainerRequest(container="front", signal="KILL"))
    await c.Wait(cpb.WaitContainerRequest(container="front"))
    dies = [e for e in await _events(channel, since) if e.action == "die"]
    assert [e.attributes["name"] for e in dies] == ["front"]


async def test_rename_refusals_change_nothing(channel: grpc.aio.Channel) -> None:
    c = Stub(channel)
    since = int(time.time()) - 1
    await _running(c, "web")
    db = await c.Create(cpb.CreateContainerRequest(config=cpb.ContainerConfig(image="busybox", name="db")))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c.Rename(cpb.RenameContainerRequest(container="web", name="db"))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert err.value.details() == (
        f'Error when allocating new name: Conflict. The container name "/db" is already in '
        f'use by container "{db.id}". You have to remove (or rename) that container to be '
        "able to reuse that name."
    )
    refused = {
        "": "Neither old nor new names may be empty",
        "/": "Neither old nor new names may be empty",
        "x": "invalid container name 'x'",
        "no spaces": "invalid container name 'no spaces'",
        "-dash": "invalid container name '-dash'",
        "web": "Renaming a container with the same name as its current name",
    }
    for name, words in refused.items():
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await c.Rename(cpb.RenameContainerRequest(container="web", name=name))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert words in (err.value.details() or ""), (name, err.value.details())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c.Rename(cpb.RenameContainerRequest(container="nosuch", name="other"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert set(await _names(c)) == {"web", "db"}
    assert not [e for e in await _events(channel, since) if e.action == "rename"]


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[ContainerManager]:
    db = Database(tmp_path / "pallet.db")
    await db.start()
    bus = EventBus(db)
    await bus.start()
    m = ContainerManager(ContainerRecords(db), FakeImages(), OverlaySnapshots(), FakeLauncher(),  # type: ignore[arg-type]
                         bus, tmp_path, init_path=str(tmp_path / "gone"))
    await m.start()
    yield m
    await m.aclose()
    await db.aclose()


async def test_a_create_with_init_and_no_init_binary_is_refused_and_makes_nothing(
    manager: ContainerManager, tmp_path: Path
) -> None:
    req = CreateRequest(ConfigRequest(image="busybox"), HostConfig(init=True), name="web")
    with pytest.raises(FailedPrecondition, match="is not an executable file on the daemon's host"):
        await manager.create(req)
    assert manager.containers() == []
    assert not (tmp_path / "containers").exists() or not any((tmp_path / "containers").iterdir())
    # Without --init the same create works.
    created = await manager.create(CreateRequest(ConfigRequest(image="busybox"), name="web"))
    assert created.container.name == "web" and not created.container.host_config.init
