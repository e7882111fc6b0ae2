"""Freezing a container through its shim (what `commit --pause` does), on the host's real
cgroup hierarchy: v1's freezer controller, or cgroup v2's `cgroup.freeze`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pallet.daemon.shims.client import ShimLauncherImpl
from pallet.v1.errors import FailedPrecondition
from shim_harness import ShimWorld, cgroup_roots, launcher, remove, shim_world  # noqa: F401

pytestmark = pytest.mark.integration


def _frozen(cgroup: str) -> bool:
    """What the kernel says of the container's cgroup: v2's `cgroup.events`, or the
    state file of v1's freezer hierarchy."""
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return "frozen 1" in Path("/sys/fs/cgroup", cgroup, "cgroup.events").read_text()
    for root in cgroup_roots():
        state = root / cgroup / "freezer.state"
        if state.exists():
            return state.read_text().strip() == "FROZEN"
    raise AssertionError(f"no freezer for {cgroup}")


async def _until(check: object, what: str) -> None:
    for _ in range(200):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.025)
    raise AssertionError(what)


async def test_freeze_thaw_and_a_dropped_freeze_thaws(
    shim_world: ShimWorld, launcher: ShimLauncherImpl
) -> None:
    spec = shim_world.spec("sleep", "1000")
    client = await launcher.spawn(spec)
    cgroup = spec.linux.cgroups_path
    try:
        with pytest.raises(FailedPrecondition, match="running"):
            await client.freeze()  # created, not running yet
        await client.start()
        freeze = await client.freeze()
        assert _frozen(cgroup)
        await freeze.thaw()
        assert not _frozen(cgroup)

        # The freeze is the connection's: one that goes away (palletd killed mid-commit)
        # thaws the container.
        freeze = await client.freeze()
        assert _frozen(cgroup)
        await freeze._channel.close()  # type: ignore[attr-defined]
        await _until(lambda: not _frozen(cgroup), "a dropped freeze left the container frozen")
        # Still serving, still running.
        assert (await client.state()).pid > 0
    finally:
        await remove(client)
