"""The container manager with a shim that lives but does not answer (hung, not stopped).

No root: fake shims and images, a real store and event bus. A hung shim lets every
request's deadline pass; `stop` must fail saying so (not wait for a SIGKILL that was
never delivered and then blame the kernel), and `rm -f` must have palletd kill the shim
itself, record the end as 137 and remove the container. Bounded waits throughout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from pallet.daemon.containers.manager import ContainerManager
from pallet.daemon.containers.model import ConfigRequest, CreateRequest
from pallet.daemon.containers.store import ContainerRecords
from pallet.daemon.events.bus import EventBus
from pallet.daemon.images.model import Image, ImageConfig
from pallet.daemon.snapshots.overlay import OverlaySnapshots
from pallet.daemon.store.db import Database
from pallet.shim.api.delete import DeleteResult
from pallet.shim.api.spec import ExitStatus, ShimSpec, ShimState, TaskStatus
from pallet.v1.errors import DeadlineExceeded, NotFound, Unavailable

IMAGE = Image(
    id="sha256:" + "ab" * 32,
    repo_tags=("busybox:latest",),
    repo_digests=(),
    created_ns=1,
    size=1000,
    config=ImageConfig(cmd=("sh",), env=("PATH=/bin",)),
    layers=("sha256:" + "cd" * 32,),
)
#: Every call of the tests: far longer than any of them should take.
BOUND_S = 20.0


class FakeImages:
    async def get(self, name: str) -> Image:
        if name in (IMAGE.id, "busybox"):
            return IMAGE
        raise NotFound(f"No such image: {name}")

    def layer_dirs(self, image: Image) -> list[str]:
        return ["/nonexistent/layer"]


class HungShim:
    """Runs its container, then stops answering once `hang()` is called."""

    def __init__(self, spec: ShimSpec) -> None:
        self.container_id = spec.container_id
        self.shim_pid = 4000
        self.hung = False
        self.end: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()

    async def start(self) -> int:
        return 4242

    async def state(self) -> ShimState:
        return ShimState(TaskStatus.RUNNING, 4242, self.shim_pid)

    async def kill(self, signal: int, all_processes: bool = False) -> None:
        if self.hung:
            raise DeadlineExceeded(
                f"the shim (pid {self.shim_pid}) of container {self.container_id[:12]} does "
                "not answer (stopped or hung): no reply to 'kill' within 5s"
            )
        if not self.end.done():
            self.end.set_result(ExitStatus(128 + signal, time.time_ns()))

    async def wait(self) -> ExitStatus:
        return await asyncio.shield(self.end)

    def die(self) -> None:
        """Killed: its connections close (the monitor's wait ends with Unavailable)."""
        if not self.end.done():
            self.end.set_exception(Unavailable("the shim closed the connection"))

    async def shutdown(self) -> None:
        if self.end.done() and self.end.exception() is not None:
            raise Unavailable("the shim is gone")

    async def aclose(self) -> None:
        pass


class FakeLauncher:
    def __init__(self) -> None:
        self.shims: list[HungShim] = []
        self.killed: list[tuple[str, int, int]] = []

    async def spawn(self, spec: ShimSpec, seccomp: bytes = b"") -> HungShim:
        self.shims.append(HungShim(spec))
        return self.shims[-1]

    async def connect(self, container_id: str, bundle_dir: Path) -> HungShim:
        raise Unavailable("no shim")

    def exit_status_on_disk(self, bundle_dir: Path) -> ExitStatus | None:
        return None

    def exec_exit_on_disk(self, bundle_dir: Path, exec_id: str) -> ExitStatus | None:
        return None

    def discard_exec_exit(self, bundle_dir: Path, exec_id: str) -> None:
        pass

    async def has_leftovers(self, container_id: str, bundle_dir: Path) -> bool:
        return False

    async def delete(self, container_id: str, bundle_dir: Path, cgroup_path: str) -> DeleteResult:
        return DeleteResult()

    async def kill_unresponsive(self, container_id: str, shim_pid: int, init_pid: int) -> list[int]:
        self.killed.append((container_id, shim_pid, init_pid))
        for shim in self.shims:
            if shim.container_id == container_id and shim.shim_pid == shim_pid:
                shim.die()
        return [init_pid, shim_pid]

    async def aclose(self) -> None:
        pass


class RecordingBus(EventBus):
    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.seen: list[tuple[str, dict[str, str]]] = []

    async def publish(self, type: str, action: str, actor_id: str,  # type: ignore[override]
                      attributes: Any = None, **kwargs: Any) -> Any:
        self.seen.append((action, dict(attributes or {})))
        return await super().publish(type, action, actor_id, attributes, **kwargs)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[ContainerManager, FakeLauncher, RecordingBus]]:
    db = Database(tmp_path / "pallet.db")
    await db.start()
    bus = RecordingBus(db)
    await bus.start()
    launcher = FakeLauncher()
    manager = ContainerManager(ContainerRecords(db), FakeImages(), OverlaySnapshots(),  # type: ignore[arg-type]
                               launcher, bus, tmp_path)
    await manager.start()
    yield manager, launcher, bus
    await manager.aclose()
    await db.aclose()


async def _running_hung(manager: ContainerManager, launcher: FakeLauncher, name: str) -> str:
    c = await manager.create(CreateRequest(ConfigRequest(image="busybox", cmd=("sleep", "1")),
                                           name=name))
    await asyncio.wait_for(manager.start_container(name), BOUND_S)
    launcher.shims[-1].hung = True
    return c.container.id


async def test_stop_of_a_container_whose_shim_hangs_says_it_does_not_answer(
    world: tuple[ContainerManager, FakeLauncher, RecordingBus],
) -> None:
    manager, launcher, _ = world
    await _running_hung(manager, launcher, "web")
    with pytest.raises(DeadlineExceeded) as caught:
        await asyncio.wait_for(manager.stop("web", timeout=1), BOUND_S)
    message = caught.value.message
    assert message.startswith("cannot stop container web: the shim (pid 4000)"), message
    assert "does not answer" in message and "rm -f web" in message, message
    assert "stuck in the kernel" not in message
    assert manager.get("web").state.status.value == "running"
    with pytest.raises(DeadlineExceeded, match="^cannot signal container web: the shim"):
        await asyncio.wait_for(manager.kill("web", "HUP"), BOUND_S)
    assert launcher.killed == []  # neither stop nor kill kills the shim itself


async def test_rm_f_of_a_container_whose_shim_hangs_kills_the_shim_and_removes_it(
    world: tuple[ContainerManager, FakeLauncher, RecordingBus],
) -> None:
    manager, launcher, bus = world
    cid = await _running_hung(manager, launcher, "web")
    await asyncio.wait_for(manager.remove("web", force=True), BOUND_S)
    assert launcher.killed == [(cid, 4000, 4242)]
    with pytest.raises(NotFound):
        manager.get("web")
    actions = [action for action, _ in bus.seen]
    assert actions[-2:] == ["die", "destroy"], actions
    assert bus.seen[-2][1]["exitCode"] == "137"


async def test_rm_f_wins_over_a_start_under_way(
    world: tuple[ContainerManager, FakeLauncher, RecordingBus],
) -> None:
    manager, launcher, bus = world
    await manager.create(CreateRequest(ConfigRequest(image="busybox", cmd=("sleep", "1")),
                                       name="web"))
    start = asyncio.ensure_future(manager.start_container("web"))
    await asyncio.sleep(0)  # the start holds the container's lock now
    await asyncio.wait_for(manager.remove("web", force=True), BOUND_S)
    assert await asyncio.wait_for(start, BOUND_S) == 4242  # it ran, then rm -f killed it
    with pytest.raises(NotFound):
        manager.get("web")
    assert [action for action, _ in bus.seen][-3:] == ["start", "die", "destroy"]
    # A start after the removal began is refused; after it, the container is gone.
    with pytest.raises(NotFound):
        await manager.start_container("web")
