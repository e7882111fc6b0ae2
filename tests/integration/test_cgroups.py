"""A container in its cgroup, on cgroup v1 (hybrid) and v2 hosts alike; `pallet-shim delete`.

These are the tests to run on a cgroup-v2-only kernel too (README, "cgroup v2"): the
bug they catch there is a container left in its caller's cgroup while an empty
/sys/fs/cgroup/<parent>/<id> was made beside it and never removed.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import BASE_CHANGES, _finish, gone, new_palletd, parent_of as shim_of

pytestmark = pytest.mark.integration

V2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
#: v1 controllers the coming limits use; each that is mounted must hold the container.
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer")


def host_cgroups(pid: int) -> dict[str, str]:
    """Controllers ("" for the v2 tree) -> the cgroup of `pid`, as the host sees it."""
    paths = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        paths[controllers] = path
    return paths


def test_a_container_runs_in_its_own_cgroup(palletd: Any, image: str) -> None:
    # Inside, its cgroup namespace is rooted at its cgroup: every hierarchy shows "/".
    inside = palletd.cli_ok("run", "--rm", image, "cat", "/proc/self/cgroup").splitlines()
    assert inside and all(line.endswith(":/") for line in inside), inside

    cid = palletd.cli_ok("run", "-d", image, "sleep", "300").strip()
    pid = palletd.inspect(cid)["State"]["Pid"]
    want = f"/{palletd.cgroup_parent}/{cid}"
    paths = host_cgroups(pid)
    if V2:
        assert paths == {"": want}, paths
        directory = Path("/sys/fs/cgroup") / palletd.cgroup_parent / cid
        # The controllers pallet's limits need were enabled on the way down.
        available = set(Path("/sys/fs/cgroup/cgroup.controllers").read_text().split())
        have = set((directory / "cgroup.controllers").read_text().split())
        assert {"cpu", "memory", "pids", "io", "cpuset"} & available <= have, have
        assert str(pid) in (directory / "cgroup.procs").read_text().split()
    else:
        mounted = [k for k in paths if k and not k.startswith("name=")]
        for controller in V1_CONTROLLERS:
            for key in [k for k in mounted if controller in k.split(",")]:
                assert paths[key] == want, (controller, paths)
        if "" in paths:  # a hybrid host: systemd's unified tree holds the container too
            assert paths[""] == want, paths
    # An exec joins its cgroup too (outside it, in the container's cgroup namespace, it
    # would see a path like /../../user.slice/...).
    in_exec = palletd.cli_ok("exec", cid, "cat", "/proc/self/cgroup").splitlines()
    assert in_exec and all(line.endswith(":/") for line in in_exec), in_exec
    found = palletd.container_cgroups(cid)
    assert found, "no cgroup directory for the container"
    palletd.cli_ok("rm", "-f", cid)
    palletd.wait_for(lambda: gone(pid), 10, what="container exit")
    assert palletd.container_cgroups(cid) == []
    assert palletd.container_cgroups() == [], "a cgroup was made and never removed"


@pytest.fixture
def own_palletd(busybox_tar: Path) -> Iterator[Any]:
    """A daemon of the test's own, started by the test (to give it a cgroup parent)."""
    daemon = new_palletd()
    try:
        yield daemon
    finally:
        # The harness looks for leftovers under the top of the parent (a path too long
        # to stat would break it).
        daemon.cgroup_parent = daemon.cgroup_parent.split("/")[0]
        _finish(daemon)


def _start(daemon: Any, busybox_tar: Path, cgroup_parent: str) -> None:
    daemon.cgroup_parent = cgroup_parent
    daemon.start()
    daemon.base_image_id = daemon.import_image(busybox_tar, "busybox:latest", BASE_CHANGES)


def test_a_container_that_cannot_get_its_cgroup_does_not_start(
    own_palletd: Any, busybox_tar: Path
) -> None:
    top = f"pallet-test-{secrets.token_hex(4)}"
    # A cgroup path longer than a path may be (PATH_MAX, 4096): its mkdir fails with
    # ENAMETOOLONG once the levels above it are made.
    _start(own_palletd, busybox_tar, "/".join([top] + ["x" * 200] * 21))
    result = own_palletd.cli("run", "--name", "nocg", "busybox", "echo", "ran")
    assert result.returncode != 0
    assert "ran" not in result.stdout
    assert "cgroup" in result.stderr and "File name too long" in result.stderr, result.stderr
    assert f"/{top}/xxx" in result.stderr  # the path it could not make
    state = own_palletd.inspect("nocg")["State"]
    assert state["Running"] is False and state["Pid"] == 0
    assert "File name too long" in state["Error"]
    # Nothing half-made: not even the parent it had to make on the way.
    mounts = [Path(p) for p in _cgroup_mount_points()]
    assert [m / top for m in mounts if (m / top).exists()] == []
    assert own_palletd.cli_ok("rm", "nocg") == "nocg\n"


@pytest.mark.skipif(not V2, reason="the 'no internal processes' rule is cgroup v2's")
def test_v2_a_parent_with_processes_of_its_own_is_refused_clearly(
    own_palletd: Any, busybox_tar: Path
) -> None:
    top = f"pallet-test-{secrets.token_hex(4)}"
    parent = Path("/sys/fs/cgroup") / top
    parent.mkdir()
    squatter = subprocess.Popen(["sleep", "300"])
    try:
        (parent / "cgroup.procs").write_text(str(squatter.pid))
        _start(own_palletd, busybox_tar, top)
        result = own_palletd.cli("run", "--name", "inner", "busybox", "echo", "ran")
        assert result.returncode != 0 and "ran" not in result.stdout
        assert "no internal processes" in result.stderr, result.stderr
        assert str(parent / "cgroup.subtree_control") in result.stderr
        assert [p.name for p in parent.iterdir() if p.is_dir()] == []
    finally:
        squatter.kill()
        squatter.wait()
        own_palletd.cli("rm", "-f", "inner")
        parent.rmdir()


def _cgroup_mount_points() -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        if post.split()[0] in ("cgroup", "cgroup2"):
            points.append(pre.split()[4])
    return points


def _move_into(cgroup_dirs: list[Path], pid: int) -> None:
    for directory in cgroup_dirs:
        (directory / "cgroup.procs").write_text(str(pid))


def test_kill_9_of_a_shim_is_cleaned_up_by_pallet_shim_delete(palletd: Any, image: str) -> None:
    cid = palletd.cli_ok("run", "-d", "--name", "victim", image, "sleep", "300").strip()
    init = palletd.inspect(cid)["State"]["Pid"]
    shim = shim_of(init)
    # A process outside the container's pid namespace but in its cgroup does not die with
    # the namespace: only a cleanup that kills the cgroup's processes ends it.
    stray = subprocess.Popen(["sleep", "301"], start_new_session=True)
    try:
        _move_into(palletd.container_cgroups(cid), stray.pid)
        os.kill(shim, signal.SIGKILL)
        state = palletd.wait_for(
            lambda: (s := palletd.inspect(cid)["State"])["Status"] == "exited" and s, 30,
            what="the container to show as exited",
        )
        palletd.wait_for(lambda: stray.poll() is not None, 30,
                         what="pallet-shim delete to kill what was left in the cgroup")
        assert stray.returncode == -signal.SIGKILL
    finally:
        stray.kill()
        stray.wait()
    assert state["ExitCode"] == 255
    palletd.wait_for(lambda: palletd.container_cgroups(cid) == [], 30,
                     what="the dead shim's cgroups to be removed")
    assert not (palletd.run_root / "shims" / f"{cid}.sock").exists()
    assert palletd.cli_ok("rm", cid) == f"{cid}\n"


def _shim_delete(palletd: Any, cid: str) -> tuple[int, dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", "pallet.shim.main", "delete", "--run-root", str(palletd.run_root),
         "--id", cid, "--bundle", str(palletd.root / "containers" / cid)],
        capture_output=True, text=True, timeout=120,
    )
    return result.returncode, json.loads(result.stdout)


def test_pallet_shim_delete_refuses_a_live_shim_and_cleans_up_a_dead_one(fresh_palletd: Any) -> None:
    palletd = fresh_palletd
    cid = palletd.cli_ok("run", "-d", "--name", "alive", "busybox", "sleep", "300").strip()
    init = palletd.inspect(cid)["State"]["Pid"]
    code, reply = _shim_delete(palletd, cid)
    assert code == 1 and "still answers" in reply["error"]["message"], reply
    assert palletd.inspect(cid)["State"]["Running"] is True and not gone(init)
    assert palletd.container_cgroups(cid)

    # The shim dies while palletd is down: the command cleans up by itself (its cgroup
    # path read from the bundle), and a restarted palletd finds nothing left to do.
    palletd.proc.send_signal(signal.SIGKILL)
    palletd.proc.wait(10)
    os.kill(shim_of(init), signal.SIGKILL)
    palletd.wait_for(lambda: gone(init), 10, what="the container to die with its shim")
    code, reply = _shim_delete(palletd, cid)
    assert code == 0, reply
    assert reply["socket_removed"] is True and reply["cgroups_left"] == []
    assert reply["cgroups_removed"], reply
    assert palletd.container_cgroups(cid) == []
    code, again = _shim_delete(palletd, cid)
    assert code == 0 and again["cgroups_removed"] == [] and again["socket_removed"] is False
    palletd._close_channel()
    palletd.start()
    state = palletd.inspect(cid)["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 255
    assert palletd.cli_ok("rm", cid) == f"{cid}\n"
