"""Exec instances (create, start once, inspect after the end, forgetting) with a fake
container manager and clock; Docker's frame headers and detach keys of hijacked streams."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pallet.daemon.api.docker.calls import ApiError
from pallet.daemon.api.docker.hijack import DetachEscape, detach_keys, frame
from pallet.daemon.containers import execinstances
from pallet.daemon.containers.execinstances import ExecConfig, ExecInstances
from pallet.daemon.containers.model import Config, Container, ContainerState, Status
from pallet.shim.api.spec import ExitStatus
from pallet.v1.errors import FailedPrecondition, InvalidArgument, NotFound


class _Process:
    def __init__(self, exec_id: str) -> None:
        self.exec_id = exec_id
        self.pid = 4242
        self.ended: ExitStatus | None = None

    def status(self) -> ExitStatus | None:
        return self.ended


class _Manager:
    """The two lookups and the exec that ExecInstances acts through."""

    def __init__(self) -> None:
        self.container = Container(
            id="c" * 64, name="web", image_id="sha256:" + "b" * 64, config=Config(image="x"),
            state=ContainerState(status=Status.RUNNING), created_ns=1, state_dir="/x",
        )
        self.runs: list[tuple[Any, ...]] = []

    def resolve(self, ref: str) -> Container:
        if ref not in ("web", self.container.id):
            raise NotFound(f"No such container: {ref}")
        return self.container

    def exists(self, container_id: str) -> bool:
        return container_id == self.container.id

    async def exec(self, ref: str, *args: Any, exec_id: str = "") -> _Process:
        self.runs.append((ref, *args, exec_id))
        return _Process(exec_id)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _instances() -> tuple[ExecInstances, _Manager, _Clock]:
    manager, clock = _Manager(), _Clock()
    return ExecInstances(manager, monotonic=clock), manager, clock  # type: ignore[arg-type]


def test_an_exec_starts_once_under_its_id_and_shows_its_exit_after_the_end() -> None:
    execs, manager, clock = _instances()
    exec_id = execs.create("web", ExecConfig(args=("sh", "-c", "exit 3"), stdin=True))
    view = execs.inspect(exec_id)
    assert (view.running, view.exit, view.pid) == (False, None, 0)
    config, process = asyncio.run(execs.start(exec_id, (30, 90)))
    assert config.console_size == (30, 90) and manager.runs[0][-1] == exec_id
    assert execs.inspect(exec_id).running is True
    with pytest.raises(FailedPrecondition, match="is already running"):
        asyncio.run(execs.start(exec_id))
    process.ended = ExitStatus(3, 0, "")  # type: ignore[attr-defined]
    view = execs.inspect(exec_id)
    assert (view.running, view.exit.exit_code if view.exit else None) == (False, 3)
    with pytest.raises(FailedPrecondition, match="has already run"):
        asyncio.run(execs.start(exec_id))
    clock.now += execinstances.ENDED_TTL_S - 1
    assert execs.inspect(exec_id).exit is not None  # still there
    clock.now += 2
    with pytest.raises(NotFound, match=f"No such exec instance: {exec_id}"):
        execs.inspect(exec_id)


def test_one_never_started_is_forgotten_and_a_running_one_is_not() -> None:
    execs, manager, clock = _instances()
    idle = execs.create("web", ExecConfig(args=("true",)))
    busy = execs.create("web", ExecConfig(args=("sleep", "1d")))
    asyncio.run(execs.start(busy))
    clock.now += execinstances.CREATED_TTL_S + 1
    with pytest.raises(NotFound):
        execs.inspect(idle)
    with pytest.raises(NotFound):
        asyncio.run(execs.start(idle))
    clock.now += 10 * execinstances.ENDED_TTL_S
    assert execs.inspect(busy).running is True


def test_a_removed_container_takes_its_execs_and_bad_configs_are_refused() -> None:
    execs, manager, _ = _instances()
    exec_id = execs.create("web", ExecConfig(args=("true",)))
    with pytest.raises(InvalidArgument, match="no command"):
        execs.create("web", ExecConfig(args=()))
    with pytest.raises(InvalidArgument, match="KEY=value"):
        execs.create("web", ExecConfig(args=("true",), env=("NOEQUALS",)))
    with pytest.raises(InvalidArgument, match="privileged"):
        execs.create("web", ExecConfig(args=("true",), privileged=True))
    manager.container = manager.container.with_state(status=Status.EXITED)
    with pytest.raises(FailedPrecondition, match="is not running"):
        execs.create("web", ExecConfig(args=("true",)))
    manager.container = manager.container.with_state(status=Status.PAUSED)
    with pytest.raises(FailedPrecondition, match="is paused"):
        execs.create("web", ExecConfig(args=("true",)))
    manager.container = manager.container.__class__(**{
        **{f: getattr(manager.container, f) for f in manager.container.__dataclass_fields__},
        "id": "d" * 64})
    with pytest.raises(NotFound):
        execs.inspect(exec_id)


def test_frames_and_detach_keys() -> None:
    assert frame(2, b"err") == b"\x02\x00\x00\x00\x00\x00\x00\x03err"
    assert detach_keys("") == b"\x10\x11"
    assert detach_keys("ctrl-a,x,ctrl-@") == b"\x01x\x00"
    with pytest.raises(ApiError, match="Invalid detach keys"):
        detach_keys("ctrl-")
    escape = DetachEscape(b"\x10\x11")
    assert escape.feed(b"plain") == (b"plain", False)
    assert escape.feed(b"a\x10") == (b"a", False)  # maybe the start of the sequence
    assert escape.feed(b"b") == (b"\x10b", False)  # it was not: passed late
    assert escape.feed(b"x\x10") == (b"x", False)
    assert escape.feed(b"\x11rest") == (b"", True)
