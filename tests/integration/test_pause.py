"""`pause` / `unpause`: a real freeze of the container's cgroup (v1's freezer, v2's
cgroup.freeze), the Paused state in inspect, ps and info, its events, what a paused
container allows (stop, kill, rm -f) and refuses (exec, start, a second pause), and a
pause that outlives a palletd killed with SIGKILL."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

pytestmark = pytest.mark.integration

# Writes an increasing number to /n, twenty times a second, by rename: a freeze that lands
# between a truncate and its write would leave /n empty for as long as it lasts.
COUNTER = "i=0; while :; do i=$((i+1)); echo $i > /n.new; mv -f /n.new /n; sleep 0.05; done"
# Ends with 3 on SIGTERM: tells a stop signal that was delivered from a SIGKILL.
TRAPS_TERM = "trap 'exit 3' TERM; while :; do sleep 0.1; done"


def frozen(palletd: Any, cid: str) -> bool:
    """What the kernel says of the container's cgroup, read on the host."""
    v2 = Path("/sys/fs/cgroup", palletd.cgroup_parent, cid, "cgroup.events")
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return "frozen 1" in v2.read_text().split("\n")
    state = Path("/sys/fs/cgroup/freezer", palletd.cgroup_parent, cid, "freezer.state")
    return state.read_text().strip() == "FROZEN"


def counter(pid: int) -> int:
    """The counter the container writes, read through its root from the host."""
    for _ in range(50):
        text = Path(f"/proc/{pid}/root/n").read_text().strip()
        if text:  # not caught between its truncate and its write
            return int(text)
        time.sleep(0.02)
    raise AssertionError("the counter file stays empty")


def events(palletd: Any, cid: str) -> list[str]:
    out = palletd.cli_ok("events", "--since-seq", "0", "--until", "0s", "--filter",
                         f"container={cid}", "--format", "{{.Action}}", timeout=30)
    return out.splitlines()


def run_counter(palletd: Any, name: str) -> tuple[str, int]:
    cid = palletd.cli_ok("run", "-d", "--name", name, "busybox", "sh", "-c", COUNTER).strip()
    pid = palletd.inspect(name)["State"]["Pid"]
    palletd.wait_for(lambda: Path(f"/proc/{pid}/root/n").exists() and counter(pid) >= 3, 20,
                     what="the counter to count")
    return cid, pid


def test_pause_freezes_the_container_and_unpause_resumes_it(palletd: Any) -> None:
    cid, pid = run_counter(palletd, "counting")
    assert not frozen(palletd, cid)
    assert palletd.cli_ok("pause", "counting") == "counting\n"
    assert frozen(palletd, cid)
    state = palletd.inspect("counting")["State"]
    assert (state["Status"], state["Running"], state["Paused"]) == ("paused", True, True)
    ps = palletd.cli_ok("ps", "--format", "{{.Names}} {{.State}} {{.Status}}")
    assert ps.startswith("counting paused Up ") and ps.rstrip().endswith("(Paused)"), ps
    assert "counting" in palletd.cli_ok("ps", "--filter", "status=paused", "--format", "{{.Names}}")
    info = palletd.cli_ok("info", "--format", "{{.ContainersPaused}} {{.ContainersRunning}}")
    assert info.split() == ["1", "0"]
    # Frozen: the counter does not move (a frozen process cannot run at all).
    held = counter(pid)
    time.sleep(0.5)
    assert counter(pid) == held
    # Logs and inspect still work on a paused container.
    palletd.cli_ok("logs", "counting")

    assert palletd.cli_ok("unpause", "counting") == "counting\n"
    assert not frozen(palletd, cid)
    palletd.wait_for(lambda: counter(pid) > held + 2, 20, what="the counter to count again")
    state = palletd.inspect("counting")["State"]
    assert (state["Status"], state["Running"], state["Paused"]) == ("running", True, False)
    assert palletd.cli_ok("exec", "counting", "echo", "alive") == "alive\n"
    assert events(palletd, cid)[:4] == ["create", "start", "pause", "unpause"]
    palletd.cli_ok("rm", "-f", "counting")


def test_what_a_paused_container_refuses(palletd: Any) -> None:
    cid, _ = run_counter(palletd, "held")
    palletd.cli_ok("pause", "held")

    again = palletd.cli("pause", "held")
    assert again.returncode == 1
    assert again.stderr == "Error: Container held is already paused\n"
    ex = palletd.cli("exec", "held", "true")
    assert ex.returncode == 1
    assert "Container held is paused, unpause the container before exec" in ex.stderr
    start = palletd.cli("start", "held")
    assert start.returncode == 1 and "cannot start a paused container, try unpause" in start.stderr
    rm = palletd.cli("rm", "held")
    assert rm.returncode == 1 and "container held is paused" in rm.stderr
    # The codes as a gRPC client sees them.
    import pallet.v1.containers_pb2 as pb
    with pytest.raises(grpc.RpcError) as raised:
        palletd._stubs().containers.Pause(pb.PauseContainerRequest(container="held"))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert frozen(palletd, cid), "a refused request thawed it"

    palletd.cli_ok("unpause", "held")
    running = palletd.cli("unpause", "held")
    assert running.returncode == 1
    assert running.stderr == "Error: Container held is not paused\n"
    with pytest.raises(grpc.RpcError) as raised:
        palletd._stubs().containers.Unpause(pb.UnpauseContainerRequest(container="held"))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    palletd.cli_ok("stop", "-t", "0", "held")
    stopped = palletd.cli("pause", "held")
    assert stopped.returncode == 1
    assert stopped.stderr == "Error: Container held is not running\n"
    created = palletd.cli_ok("create", "--name", "fresh", "busybox", "true").strip()
    assert palletd.cli("pause", created).stderr == "Error: Container fresh is not running\n"
    # Several names: each gets its answer, the status is 1 when one failed.
    both = palletd.cli("pause", "nosuch", "fresh")
    assert both.returncode == 1
    assert "No such container: nosuch" in both.stderr
    palletd.cli_ok("rm", "held", "fresh")


def test_a_paused_container_can_be_stopped_killed_and_removed(palletd: Any) -> None:
    # stop: the stop signal is delivered (the trap's exit 3, not a SIGKILL's 137).
    cid = palletd.cli_ok("run", "-d", "--name", "trapper", "busybox", "sh", "-c", TRAPS_TERM).strip()
    palletd.cli_ok("pause", "trapper")
    assert frozen(palletd, cid)
    palletd.cli_ok("stop", "-t", "20", "trapper")
    state = palletd.inspect("trapper")["State"]
    assert (state["Status"], state["ExitCode"], state["Paused"]) == ("exited", 3, False)
    # Thawed after the signal (recorded as docker records it: unpause), then its end.
    assert events(palletd, cid)[2:] == ["pause", "unpause", "die"]

    # kill: SIGKILL ends it, frozen or not.
    palletd.cli_ok("run", "-d", "--name", "victim", "busybox", "sleep", "1000")
    palletd.cli_ok("pause", "victim")
    palletd.cli_ok("kill", "victim")
    palletd.wait_for(lambda: palletd.inspect("victim")["State"]["Status"] == "exited", 20,
                     what="the killed container to exit")
    assert palletd.inspect("victim")["State"]["ExitCode"] == 137

    # rm -f: gone, its cgroup too.
    gone = palletd.cli_ok("run", "-d", "--name", "doomed", "busybox", "sleep", "1000").strip()
    pid = palletd.inspect("doomed")["State"]["Pid"]
    palletd.cli_ok("pause", "doomed")
    assert palletd.cli_ok("rm", "-f", "doomed") == "doomed\n"
    assert palletd.cli("inspect", "doomed").returncode == 1
    palletd.wait_for(lambda: not Path(f"/proc/{pid}").exists() or
                     "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2], 20,
                     what="the paused container's process to go")
    assert palletd.container_cgroups(gone) == []
    palletd.cli_ok("rm", "trapper", "victim")


def test_a_pause_outlives_a_palletd_killed_with_sigkill(fresh_palletd: Any) -> None:
    palletd = fresh_palletd
    cid, pid = run_counter(palletd, "sleeper")
    palletd.cli_ok("pause", "sleeper")
    held = counter(pid)
    palletd.proc.send_signal(signal.SIGKILL)
    palletd.proc.wait(10)
    assert frozen(palletd, cid), "the pause went with palletd"
    palletd.start()
    state = palletd.inspect("sleeper")["State"]
    assert (state["Status"], state["Paused"], state["Pid"]) == ("paused", True, pid)
    assert frozen(palletd, cid)
    assert counter(pid) == held
    assert palletd.cli_ok("info", "--format", "{{.ContainersPaused}}").strip() == "1"
    # Re-adopted: unpause, and stop, work through its shim.
    palletd.cli_ok("unpause", "sleeper")
    assert not frozen(palletd, cid)
    palletd.wait_for(lambda: counter(pid) > held, 20, what="the counter to count again")
    assert events(palletd, cid).count("pause") == 1
    palletd.cli_ok("pause", "sleeper")
    palletd.stop()  # a clean stop leaves it paused too
    palletd.start()
    assert palletd.inspect("sleeper")["State"]["Status"] == "paused"
    palletd.cli_ok("rm", "-f", "sleeper")
