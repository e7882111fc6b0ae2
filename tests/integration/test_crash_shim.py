"""A container's shim killed -9 or hung: the container dies with it, the daemon does not hang.

The shim is the parent of the container's init (found through /proc as the init's parent);
killing it must not leave container processes running unsupervised, and the container
must show as exited with a reason, with nothing left mounted, and be removable.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from conftest import container_cgroup_pids, gone, parent_of

pytestmark = pytest.mark.integration


def test_kill_9_of_a_shim_kills_its_container_and_is_reported(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "orphan", image, "sh", "-c",
                   "sleep 1000 & sleep 1001 & echo up; wait")
    palletd.wait_for(lambda: palletd.cli_ok("logs", "orphan") == "up\n", 10, what="output")
    cid = palletd.inspect("orphan")["Id"]
    init = palletd.inspect("orphan")["State"]["Pid"]
    shim = parent_of(init)
    assert str(palletd.base) in Path(f"/proc/{shim}/cmdline").read_text(errors="replace")
    # An exec'd process too: it must not survive its supervisor either.
    palletd.cli_ok("exec", "-d", "orphan", "sleep", "1002")
    palletd.wait_for(lambda: len(palletd.container_cgroups(cid)) > 0 and
                     len(container_cgroup_pids(palletd, cid)) >= 4, 10, what="the exec")
    members = container_cgroup_pids(palletd, cid)

    os.kill(shim, signal.SIGKILL)

    palletd.wait_for(lambda: all(gone(p) for p in members), 10,
                     what="the container's processes to die with their shim")
    state = palletd.wait_for(
        lambda: (s := palletd.inspect("orphan")["State"])["Status"] == "exited" and s, 15,
        what="the container to show as exited",
    )
    assert state["ExitCode"] == 255
    assert "shim" in state["Error"] and "died" in state["Error"], state["Error"]
    assert palletd.container_cgroups(cid) == [], "the dead shim's cgroups were left"
    assert palletd.mounts() == []
    assert not (palletd.run_root / "shims" / f"{cid}.sock").exists()
    # ps tells the truth, and the container can be started again and removed.
    assert "Exited (255)" in palletd.cli_ok("ps", "-a", "--filter", "name=orphan")
    palletd.cli_ok("start", "orphan")
    assert palletd.inspect("orphan")["State"]["Running"] is True
    assert palletd.cli_ok("rm", "-f", "orphan") == "orphan\n"


def test_shim_killed_while_the_daemon_is_down(fresh_palletd: Any) -> None:
    palletd = fresh_palletd
    palletd.cli_ok("run", "-d", "--name", "lonely", "busybox", "sleep", "300")
    cid = palletd.inspect("lonely")["Id"]
    init = palletd.inspect("lonely")["State"]["Pid"]
    shim = parent_of(init)
    palletd.proc.send_signal(signal.SIGKILL)
    palletd.proc.wait(10)
    os.kill(shim, signal.SIGKILL)
    palletd.wait_for(lambda: gone(init), 10, what="the container to die with its shim")
    palletd._close_channel()
    palletd.start()
    state = palletd.inspect("lonely")["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 255
    assert "died while palletd was down" in state["Error"]
    assert palletd.container_cgroups(cid) == []
    assert not (palletd.run_root / "shims" / f"{cid}.sock").exists()
    assert palletd.cli_ok("wait", "lonely") == "255\n"
    assert palletd.cli_ok("rm", "lonely") == "lonely\n"


def test_a_hung_shim_does_not_hang_the_daemon(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "frozen", image, "sleep", "300")
    palletd.cli_ok("run", "-d", "--name", "lively", image, "sleep", "300")
    shim = parent_of(palletd.inspect("frozen")["State"]["Pid"])
    os.kill(shim, signal.SIGSTOP)
    try:
        # Calls that need the hung shim fail with a deadline instead of hanging...
        result = palletd.cli("exec", "frozen", "true", timeout=60)
        assert result.returncode != 0
        assert "does not answer" in result.stderr, result.stderr
        result = palletd.cli("kill", "-s", "HUP", "frozen", timeout=60)
        assert result.returncode != 0
        # ...and everything else goes on meanwhile.
        assert sorted(palletd.cli_ok("ps", "--format", "{{.Names}}").split()) == [
            "frozen", "lively"]
        assert palletd.cli_ok("exec", "lively", "echo", "fine") == "fine\n"
        assert palletd.inspect("frozen")["State"]["Running"] is True
    finally:
        os.kill(shim, signal.SIGCONT)
    palletd.cli_ok("rm", "-f", "frozen")
    assert palletd.cli_ok("exec", "lively", "echo", "still") == "still\n"


def test_a_shim_hung_while_palletd_restarts_is_adopted_once_it_answers(
    fresh_palletd: Any,
) -> None:
    palletd = fresh_palletd
    palletd.cli_ok("run", "-d", "--name", "sleepy", "busybox", "sleep", "300")
    init = palletd.inspect("sleepy")["State"]["Pid"]
    shim = parent_of(init)
    palletd.proc.send_signal(signal.SIGKILL)
    palletd.proc.wait(10)
    os.kill(shim, signal.SIGSTOP)
    try:
        palletd._close_channel()
        palletd.start()  # a shim that does not answer must not keep palletd from serving
        # Slow is not dead: the container is neither killed nor marked exited.
        state = palletd.inspect("sleepy")["State"]
        assert state["Status"] == "running" and state["Pid"] == init
        assert not gone(init)
    finally:
        os.kill(shim, signal.SIGCONT)
    palletd.wait_for(
        lambda: palletd.cli("exec", "sleepy", "echo", "back").stdout == "back\n", 30,
        interval=0.5, what="the shim to be adopted once it answers",
    )
    palletd.cli_ok("stop", "-t", "0", "sleepy")
    assert palletd.cli_ok("wait", "sleepy") == "137\n"


# First run: exits 0 at once. Second run (its /ran is in the writable layer): sleeps.
_SECOND_RUN_SLEEPS = "test -e /ran && exec sleep 300; touch /ran"


def _second_run(palletd: Any, image: str, name: str) -> tuple[str, int]:
    palletd.cli_ok("run", "-d", "--name", name, image, "sh", "-c", _SECOND_RUN_SLEEPS)
    palletd.wait_for(lambda: palletd.inspect(name)["State"]["Status"] == "exited", 10,
                     what="the first run to exit")
    assert palletd.inspect(name)["State"]["ExitCode"] == 0
    palletd.cli_ok("start", name)
    state = palletd.inspect(name)["State"]
    assert state["Running"] is True
    return palletd.inspect(name)["Id"], state["Pid"]


def test_a_shim_killed_in_a_second_run_is_not_reported_with_the_first_runs_exit(
    palletd: Any, image: str
) -> None:
    # exit.json of the first run is still in the bundle unless something removes it: the
    # monitor took it for this run's (Exited (0), finished before it started) and skipped
    # the cleanup after the dead shim.
    cid, init = _second_run(palletd, image, "again")
    shim = parent_of(init)
    os.kill(shim, signal.SIGKILL)
    state = palletd.wait_for(
        lambda: (s := palletd.inspect("again")["State"])["Status"] == "exited" and s, 15,
        what="the container to show as exited",
    )
    assert state["ExitCode"] == 255, state
    assert "died" in state["Error"], state["Error"]
    assert state["FinishedAt"] >= state["StartedAt"]
    palletd.wait_for(lambda: gone(init), 10, what="the container to die with its shim")
    assert palletd.container_cgroups(cid) == [], "the dead shim's cgroups were left"
    assert not (palletd.run_root / "shims" / f"{cid}.sock").exists()
    assert palletd.cli_ok("rm", "again") == "again\n"


def test_a_shim_killed_in_a_second_run_while_the_daemon_is_down(fresh_palletd: Any) -> None:
    palletd = fresh_palletd
    cid, init = _second_run(palletd, "busybox", "again")
    shim = parent_of(init)
    palletd.proc.send_signal(signal.SIGKILL)
    palletd.proc.wait(10)
    os.kill(shim, signal.SIGKILL)
    palletd.wait_for(lambda: gone(init), 10, what="the container to die with its shim")
    palletd._close_channel()
    palletd.start()
    state = palletd.inspect("again")["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 255, state
    assert "died while palletd was down" in state["Error"]
    assert state["FinishedAt"] >= state["StartedAt"]
    assert palletd.container_cgroups(cid) == []
    assert palletd.cli_ok("rm", "again") == "again\n"


def test_rm_removes_the_cgroup_a_failed_cleanup_left(palletd: Any, image: str) -> None:
    # The cleanup after a dead shim may fail (busy cgroup, a hung delete): the container
    # is recorded as exited either way, and its rm is the next chance to clean up. Here
    # the container's cgroup is made again by hand after a clean exit, as such a failure
    # leaves it, in the hierarchies its shim used.
    palletd.cli_ok("run", "-d", "--name", "residue", image, "sleep", "300")
    cid = palletd.inspect("residue")["Id"]
    used = palletd.container_cgroups(cid)
    assert used, "the container has cgroups while it runs"
    palletd.cli_ok("stop", "-t", "0", "residue")
    assert palletd.container_cgroups(cid) == []
    try:
        for directory in used:
            directory.mkdir()
        assert palletd.cli_ok("rm", "residue") == "residue\n"
        assert palletd.container_cgroups(cid) == [], "rm left the container's cgroup"
    finally:
        for directory in used:
            if directory.is_dir():
                directory.rmdir()
