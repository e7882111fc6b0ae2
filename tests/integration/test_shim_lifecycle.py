"""Shims outliving their daemon, exiting on their own, the launcher, and the speed targets."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pallet.v1.errors import AlreadyExists, FailedPrecondition, InvalidArgument, Unavailable
from pallet.shim.api.spec import TaskStatus
from pallet.shim.api.messages import SpawnRequest, SpawnResponse
from pallet.daemon.shims.channel import Channel
from pallet.daemon.shims.client import ShimLauncherImpl
from pallet.shim.api.logs import read_records
from shim_harness import (  # noqa: F401 - fixtures
    ShimWorld,
    cgroup_leftovers,
    collect,
    exec_spec,
    launcher,
    remove,
    run_to_end,
    shim_world,
)

pytestmark = pytest.mark.integration


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie its new parent has not reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] in ("Z", "X")
    except OSError:
        return True


def _shim_socket(world: ShimWorld, cid: str) -> Path:
    return world.run_root / "shims" / f"{cid}.sock"


async def _until(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {condition}")
        await asyncio.sleep(0.02)


async def test_containers_outlive_a_daemon_killed_with_sigkill(shim_world: ShimWorld) -> None:
    spec = shim_world.spec("sh", "-c", "echo before; sleep 1; echo after; exit 5")
    from pallet.shim.api.codec import dumps

    # A stand-in daemon in its own process: it starts the container, then dies by SIGKILL.
    script = textwrap.dedent(
        f"""
        import asyncio, json, sys
        from pathlib import Path
        from pallet.daemon.shims.client import ShimLauncherImpl
        from pallet.shim.api.codec import loads
        from pallet.shim.api.spec import ShimSpec
        async def main():
            launcher = ShimLauncherImpl(Path({str(shim_world.run_root)!r}))
            client = await launcher.spawn(loads(ShimSpec, sys.argv[1]))
            await client.start()
            print("shim_pid", client.shim_pid, flush=True)
            await asyncio.sleep(60)
        asyncio.run(main())
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script, dumps(spec)], stdout=subprocess.PIPE
    ) as daemon:
        try:
            assert daemon.stdout is not None
            line = b""
            while not line.startswith(b"shim_pid "):  # (skipping the daemon's own logging)
                line = daemon.stdout.readline()
                assert line, "the stand-in daemon died before starting the container"
            shim_pid = int(line.split()[1])
        finally:
            daemon.kill()
            daemon.wait()
    assert Path(f"/proc/{shim_pid}").exists()
    # The shim is nobody's child in the daemon's family: its parent is not the dead daemon.
    ppid = int(Path(f"/proc/{shim_pid}/stat").read_text().rpartition(")")[2].split()[1])
    assert ppid != daemon.pid
    again = await ShimLauncherImpl(shim_world.run_root).connect(spec.container_id, Path(spec.bundle_dir))
    assert again.shim_pid == shim_pid
    status = await again.wait()  # the exit happened while no daemon was there
    assert status.exit_code == 5
    assert [r.data for r in read_records(spec.log.path)] == [b"before\n", b"after\n"]
    await again.shutdown()
    await again.aclose()


async def test_an_exited_shim_nobody_talks_to_removes_itself(shim_world: ShimWorld) -> None:
    impl = shim_world.launcher(idle_exit=0.3)
    spec = shim_world.spec("sh", "-c", "exit 9")
    client = await impl.spawn(spec)
    shim_pid = client.shim_pid
    await client.start()
    await client.aclose()  # the daemon is gone and does not come back in time
    await _until(lambda: _gone(shim_pid))
    assert not _shim_socket(shim_world, spec.container_id).exists()
    assert not [p for p in cgroup_leftovers(shim_world.cgroup_parent) if p.name == spec.container_id]
    # What a restarted daemon reads instead of asking the shim:
    on_disk = impl.exit_status_on_disk(Path(spec.bundle_dir))
    assert on_disk is not None and on_disk.exit_code == 9
    # The shim is gone: wait says so; the caller, which knows when the run started, reads
    # the status from disk (exits.of_this_run).
    with pytest.raises(Unavailable):
        await client.wait()


async def test_exec_attach_and_start_on_a_stopped_container(
    shim_world: ShimWorld, launcher: ShimLauncherImpl
) -> None:
    client = await launcher.spawn(shim_world.spec("true"))
    await client.start()
    await client.wait()
    with pytest.raises(FailedPrecondition, match="is not running"):
        await client.exec(exec_spec(shim_world.specs[-1], "e", "true"))
    with pytest.raises(FailedPrecondition, match="can only be started once"):
        await client.start()
    stdio = await client.attach(stdin=False, stdout=True, stderr=True)
    assert await collect(stdio) == (b"", b"")  # ends at once: nothing more will come
    await stdio.aclose()
    await client.shutdown()
    await client.aclose()


async def test_a_second_shim_for_the_same_container_is_refused(
    shim_world: ShimWorld, launcher: ShimLauncherImpl
) -> None:
    spec = shim_world.spec("sleep", "1000")
    client = await launcher.spawn(spec)
    with pytest.raises(AlreadyExists, match="already running"):
        await launcher.spawn(spec)
    assert (await client.state()).status is TaskStatus.CREATED
    await client.shutdown()
    await client.aclose()


async def test_cgroup_namespace_and_kill_of_every_process(
    shim_world: ShimWorld, launcher: ShimLauncherImpl
) -> None:
    spec = shim_world.spec("sh", "-c", "trap 'exit 3' TERM; sleep 1000 & wait")
    client = await launcher.spawn(spec)
    stdio = await client.attach(stdin=False, stdout=True, stderr=True)
    await client.start()
    session = await client.exec(exec_spec(spec, "e", "cat", "/proc/self/cgroup"))
    out, _ = await collect(session)
    await session.aclose()
    # Inside its cgroup namespace the container's own cgroup is the root.
    assert out and all(line.endswith(":/") for line in out.decode().splitlines())
    await client.kill(signal.SIGTERM, all_processes=True)
    assert (await client.wait()).exit_code == 3
    await stdio.aclose()
    await client.shutdown()
    await client.aclose()


async def test_one_launcher_serves_every_daemon_and_keeps_no_zombies(
    shim_world: ShimWorld, launcher: ShimLauncherImpl
) -> None:
    first = await launcher.launcher_pid()
    assert await shim_world.launcher().launcher_pid() == first
    cmdline = Path(f"/proc/{first}/cmdline").read_bytes().split(b"\0")
    assert str(shim_world.run_root).encode() in cmdline
    await run_to_end(launcher, shim_world.spec("true"))
    children = Path(f"/proc/{first}/task/{first}/children").read_text().split()
    assert children == []


def _pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise AssertionError("no Pss line")


async def test_speed_and_memory_figures(
    shim_world: ShimWorld, launcher: ShimLauncherImpl, capsys: pytest.CaptureFixture[str]
) -> None:
    await launcher.launcher_pid()  # warm: the launcher is started once per host, not per run
    rounds = []
    for _ in range(10):
        began = time.perf_counter()
        client = await launcher.spawn(shim_world.spec("true"))
        await client.start()
        await client.wait()
        await client.shutdown()
        await client.aclose()
        rounds.append(time.perf_counter() - began)
    median = sorted(rounds)[len(rounds) // 2]

    clients = []
    began = time.perf_counter()

    async def start_one() -> None:
        client = await launcher.spawn(shim_world.spec("sleep", "1000"))
        await client.start()
        clients.append(client)

    await asyncio.gather(*(start_one() for _ in range(20)))
    concurrent = time.perf_counter() - began
    await asyncio.sleep(0.2)
    pss = sorted(_pss_kb(c.shim_pid) for c in clients)
    for client in clients:
        await remove(client)
    with capsys.disabled():
        print(
            f"\nshim figures: create+start+wait+remove median {median * 1000:.1f} ms; "
            f"20 concurrent create+start {concurrent * 1000:.0f} ms; "
            f"PSS per running shim (20 running) median {pss[10]} kB, max {pss[-1]} kB"
        )
    # Times are figures only (the machines are shared and noisy); memory is not noise.
    assert pss[10] < 8 * 1024


async def test_a_killed_launcher_is_replaced_and_running_shims_stay(
    shim_world: ShimWorld, launcher: ShimLauncherImpl
) -> None:
    client = await launcher.spawn(shim_world.spec("sleep", "1000"))
    await client.start()
    old = await launcher.launcher_pid()
    os.kill(old, signal.SIGKILL)
    await _until(lambda: _gone(old))
    assert (await client.state()).status is TaskStatus.RUNNING  # shims do not depend on it
    # The next spawn finds the launcher gone (its socket file is stale) and starts one.
    out, _, status = await run_to_end(launcher, shim_world.spec("echo", "again"))
    assert (out, status.exit_code) == (b"again\n", 0)
    new = await launcher.launcher_pid()
    assert new != old
    await remove(client)


async def test_a_spawn_whose_spec_is_missing_or_malformed_is_refused(
    shim_world: ShimWorld, launcher: ShimLauncherImpl
) -> None:
    """The launcher reads the spec before it forks: a bad one is an error, and no shim."""
    await launcher.launcher_pid()
    bundle = shim_world.base / "containers" / "no-spec"
    bundle.mkdir(parents=True)
    before = set(os.listdir(shim_world.run_root / "shims"))
    for content, message in ((None, "no shim spec"), (b"{not json", "is not JSON")):
        if content is not None:
            (bundle / "config.json").write_bytes(content)
        channel = await Channel.open(launcher.launcher_socket, "shim launcher", 5.0)
        try:
            with pytest.raises(InvalidArgument, match=message):
                await channel.request(SpawnRequest(bundle=str(bundle)), SpawnResponse, 5.0)
        finally:
            await channel.close()
    assert set(os.listdir(shim_world.run_root / "shims")) == before
