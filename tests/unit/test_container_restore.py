"""Restoring containers at boot against a fake launcher: only a gone shim means an exit."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from pallet.daemon.containers.exits import Outcome, Why
from pallet.daemon.containers.model import Config, Container, ContainerState, Status
from pallet.daemon.containers.restore import Restorer
from pallet.daemon.shims.api import ShimClient
from pallet.shim.api.spec import ExitStatus, ShimState
from pallet.v1.errors import DeadlineExceeded, Internal, PalletError, Unavailable


def running(tmp_path: Path, started_at_ns: int = 100) -> Container:
    return Container(
        id="c" * 64,
        name="web",
        image_id="sha256:" + "ab" * 32,
        config=Config(image="busybox", cmd=("sleep", "300")),
        state=ContainerState(status=Status.RUNNING, pid=42, shim_pid=41,
                             started_at_ns=started_at_ns),
        created_ns=1,
        state_dir=str(tmp_path / ("c" * 64)),
    )


class FakeSupervisor:
    def __init__(self, c: Container) -> None:
        self.c = c
        self.settled: list[ExitStatus] = []
        self.cleaned: list[str] = []
        self.retries: list[str] = []
        self._lock = asyncio.Lock()

    @property
    def closing(self) -> bool:
        return False

    def lookup(self, container_id: str) -> Container | None:
        return self.c

    def lock(self, container_id: str) -> asyncio.Lock:
        return self._lock

    def supervises(self, container_id: str) -> bool:
        return False

    def supervise(self, c: Container, shim: ShimClient) -> None:
        raise AssertionError("nothing to adopt")

    async def adopt_start(self, c: Container, shim: ShimClient, state: ShimState) -> None:
        raise AssertionError("nothing to adopt")

    async def reconcile_paused(self, c: Container, paused: bool) -> Container:
        raise AssertionError("nothing to adopt")

    async def settle_exit(
        self, c: Container, status: ExitStatus, why: Why, shim: ShimClient | None = None
    ) -> Outcome:
        self.settled.append(status)
        return Outcome.NOTHING

    async def release_shim(self, shim: ShimClient) -> None: ...

    async def finish_remove(self, c: Container) -> None: ...

    async def clean_after_shim(self, c: Container) -> None:
        self.cleaned.append(c.id)

    async def resume_execs(self, container_id: str) -> None: ...

    def background(self, key: str, work: Coroutine[Any, Any, None]) -> None:
        self.retries.append(key)
        work.close()


class FakeLauncher:
    """A shim that fails `connect` with `error`; `on_disk` is its bundle's exit.json."""

    def __init__(self, error: PalletError, on_disk: ExitStatus | None = None) -> None:
        self.error = error
        self.on_disk = on_disk

    async def connect(self, container_id: str, bundle_dir: Path) -> ShimClient:
        raise self.error

    def exit_status_on_disk(self, bundle_dir: Path) -> ExitStatus | None:
        return self.on_disk


async def restore(c: Container, launcher: FakeLauncher, tmp_path: Path) -> FakeSupervisor:
    sup = FakeSupervisor(c)
    (tmp_path / "containers").mkdir()
    restorer = Restorer(sup, launcher, None, tmp_path / "containers", None,  # type: ignore[arg-type]
                        clock=lambda: 500)
    await restorer.restore([c])
    return sup


@pytest.mark.parametrize("error", [
    Internal("shim of container web sent a malformed message: unknown TaskStatus 'paused'"),
    DeadlineExceeded("shim of container web did not answer within 5s"),
])
async def test_a_live_shim_that_gives_no_usable_answer_is_left_alone(
    tmp_path: Path, error: PalletError
) -> None:
    sup = await restore(running(tmp_path), FakeLauncher(error), tmp_path)
    assert sup.settled == [] and sup.cleaned == []
    assert sup.retries == ["readopt-" + "c" * 64]


async def test_a_gone_shim_is_an_exit(tmp_path: Path) -> None:
    sup = await restore(running(tmp_path), FakeLauncher(Unavailable("not reachable")), tmp_path)
    [status] = sup.settled
    assert status.exit_code == 255 and "died while palletd was down" in status.error
    assert sup.cleaned == ["c" * 64] and sup.retries == []
