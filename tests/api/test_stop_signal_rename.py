"""Stop and Restart with a signal, and Rename, through the real servicer and manager
(fake shims and images: the `channel` fixture of test_daemon_api)."""

from __future__ import annotations

import time

import grpc
import pytest

from pallet.v1 import containers_pb2 as cpb
from pallet.v1 import containers_pb2_grpc
from pallet.v1 import events_pb2 as epb
from pallet.v1 import events_pb2_grpc
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
