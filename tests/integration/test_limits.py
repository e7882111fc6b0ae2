"""Resource limits on real cgroups (v1 hybrid here, v2 in .ci/test-cgroup-v2): what the
kernel enforces (OOM kill at -m, a fork stopped at --pids-limit, --cpus holding a busy
loop down), `update` changing limits live, limits kept over restarts, and every bad
value refused with INVALID_ARGUMENT and nothing made or changed.

The cgroup files are read from the host: what the kernel has, not what pallet says.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc
import pytest

pytestmark = pytest.mark.integration

V2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
MiB = 1 << 20


def cgroup_file(palletd: Any, cid: str, controller: str, name: str) -> str:
    """A cgroup interface file of the container, read on the host."""
    if V2:
        path = Path("/sys/fs/cgroup", palletd.cgroup_parent, cid, name)
    else:
        path = Path("/sys/fs/cgroup", controller, palletd.cgroup_parent, cid, name)
    return path.read_text().strip()


def memory_limit(palletd: Any, cid: str) -> int:
    if V2:
        text = cgroup_file(palletd, cid, "memory", "memory.max")
        return -1 if text == "max" else int(text)
    value = int(cgroup_file(palletd, cid, "memory", "memory.limit_in_bytes"))
    return -1 if value >= 1 << 62 else value


def pids_max(palletd: Any, cid: str) -> str:
    return cgroup_file(palletd, cid, "pids", "pids.max")


def cpu_quota(palletd: Any, cid: str) -> tuple[str, str]:
    """(quota, period) in microseconds as the kernel has them ("max"/"-1": none)."""
    if V2:
        quota, period = cgroup_file(palletd, cid, "cpu", "cpu.max").split()
        return quota, period
    return (cgroup_file(palletd, cid, "cpu", "cpu.cfs_quota_us"),
            cgroup_file(palletd, cid, "cpu", "cpu.cfs_period_us"))


def cpu_usage_s(palletd: Any, cid: str) -> float:
    """CPU time the container's processes used, in seconds."""
    if V2:
        for line in cgroup_file(palletd, cid, "cpu", "cpu.stat").splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
        raise AssertionError("no usage_usec in cpu.stat")
    return int(cgroup_file(palletd, cid, "cpuacct", "cpuacct.usage")) / 1e9


def events(palletd: Any, cid: str) -> list[str]:
    out = palletd.cli_ok("events", "--since-seq", "0", "--until", "0s", "--filter",
                         f"container={cid}", "--format", "{{.Action}}", timeout=30)
    return out.splitlines()


def test_a_process_past_its_memory_limit_is_oom_killed(palletd: Any, image: str) -> None:
    # dd's one 256 MiB buffer is touched as it reads: far past the 32 MiB (+ swap) limit.
    result = palletd.cli("run", "--name", "hog", "-m", "32m", image,
                         "dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1", timeout=120)
    assert result.returncode == 137, (result.returncode, result.stderr)
    doc = palletd.inspect("hog")
    assert doc["State"]["OOMKilled"] is True, doc["State"]
    assert doc["State"]["ExitCode"] == 137
    assert doc["HostConfig"]["Memory"] == 32 * MiB
    assert doc["HostConfig"]["MemorySwap"] == 64 * MiB  # docker's default: twice -m
    actions = events(palletd, doc["Id"])
    assert "oom" in actions and "die" in actions, actions
    assert actions.index("oom") < actions.index("die"), actions
    # A run that ends well after it is no OOM kill: the flag is the last run's.
    palletd.cli_ok("rm", "hog")
    palletd.cli_ok("run", "--name", "fits", "-m", "32m", image, "true", timeout=60)
    assert palletd.inspect("fits")["State"]["OOMKilled"] is False
    assert "oom" not in events(palletd, palletd.inspect("fits")["Id"])


# Forty background sleeps at most (never an unbounded fork bomb: the host is shared), in
# a shell of its own: a shell whose fork is refused gives up, the outer one goes on.
BOUNDED_FORKS = ("sh -c 'i=0; while [ $i -lt 40 ]; do sleep 120 & i=$((i+1)); done; wait'; "
                 "echo forked; exec sleep 120")


def test_pids_limit_stops_a_bounded_fork_loop_at_the_limit(palletd: Any, image: str) -> None:
    cid = palletd.cli_ok("run", "-d", "--pids-limit", "20", image, "sh", "-c", BOUNDED_FORKS).strip()
    assert pids_max(palletd, cid) == "20"
    palletd.wait_for(lambda: "forked" in palletd.cli_ok("logs", cid), 30, what="the fork loop to end")
    # The forks stopped at 20 processes: the kernel refused the rest (pids.events counts
    # the refusals), so far fewer than the forty sleeps run.
    procs = len((Path(palletd.container_cgroups(cid)[0]) / "cgroup.procs").read_text().split()) if V2 else None
    current = int(cgroup_file(palletd, cid, "pids", "pids.current"))
    assert 15 <= current <= 20, current
    refused = cgroup_file(palletd, cid, "pids", "pids.events").split()
    assert refused[0] == "max" and int(refused[1]) >= 1, refused
    assert procs is None or procs <= 20
    assert "can't fork" in palletd.cli("logs", cid).stderr
    assert palletd.inspect(cid)["HostConfig"]["PidsLimit"] == 20
    palletd.cli_ok("rm", "-f", cid)


def test_cpus_holds_a_busy_loop_near_half_a_core(palletd: Any, image: str) -> None:
    cid = palletd.cli_ok("run", "-d", "--cpus", "0.5", image, "sh", "-c", "while :; do :; done").strip()
    assert cpu_quota(palletd, cid) == ("50000", "100000")
    assert palletd.inspect(cid)["HostConfig"]["NanoCpus"] == 500_000_000
    time.sleep(0.5)
    used0, t0 = cpu_usage_s(palletd, cid), time.monotonic()
    time.sleep(3)
    used, wall = cpu_usage_s(palletd, cid) - used0, time.monotonic() - t0
    # Half a core, give or take: clearly less than a whole one (an unlimited loop takes
    # a whole core), and not nothing (it runs).
    assert used < 0.8 * wall, (used, wall)
    assert used > 0.05 * wall, (used, wall)
    palletd.cli_ok("rm", "-f", cid)


def test_update_changes_the_limits_of_a_running_container(palletd: Any, image: str) -> None:
    cid = palletd.cli_ok("run", "-d", "--name", "upd", "-m", "64m", "--pids-limit", "30",
                         image, "sleep", "300").strip()
    assert memory_limit(palletd, cid) == 64 * MiB
    out = palletd.cli_ok("update", "-m", "128m", "--memory-swap", "256m", "--pids-limit", "50",
                         "--cpus", "1", "--cpu-shares", "512", "upd")
    assert out == "upd\n"
    assert memory_limit(palletd, cid) == 128 * MiB
    assert pids_max(palletd, cid) == "50"
    assert cpu_quota(palletd, cid) == ("100000", "100000")
    host = palletd.inspect("upd")["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["PidsLimit"], host["NanoCpus"], host["CpuShares"]) == (
        128 * MiB, 256 * MiB, 50, 1_000_000_000, 512)

    # One bad value: nothing changes, the good ones neither.
    bad = palletd.cli("update", "--pids-limit", "70", "--cpus", "999", "upd")
    assert bad.returncode != 0 and "CPUs" in bad.stderr, bad.stderr
    assert pids_max(palletd, cid) == "50"
    assert palletd.inspect("upd")["HostConfig"]["PidsLimit"] == 50

    if not V2:
        # A limit below what the container uses now is refused by v1's kernel (EBUSY):
        # what was written before it is put back. (v2 takes any memory.max and OOM-kills
        # to meet it, as with docker; the rollback itself is unit-tested with a fake.)
        palletd.cli_ok("exec", "upd", "sh", "-c", "head -c 40m /dev/zero > /dev/shm/fill")
        # The growing memsw goes first (the kernel wants memsw >= the limit), then the
        # limit is refused: memsw is put back.
        low = palletd.cli("update", "--pids-limit", "60", "-m", "8m", "--memory-swap", "512m", "upd")
        assert low.returncode != 0 and "uses more memory" in low.stderr, low
        assert memory_limit(palletd, cid) == 128 * MiB
        memsw = cgroup_file(palletd, cid, "memory", "memory.memsw.limit_in_bytes")
        assert int(memsw) == 256 * MiB, "a refused update left memsw changed"
        assert pids_max(palletd, cid) == "50", "a refused update left a limit changed"
        host = palletd.inspect("upd")["HostConfig"]
        assert (host["Memory"], host["MemorySwap"], host["PidsLimit"]) == (128 * MiB, 256 * MiB, 50)

    # Unlimited again.
    palletd.cli_ok("update", "--pids-limit", "-1", "upd")
    assert pids_max(palletd, cid) == "max"
    assert palletd.inspect("upd")["HostConfig"]["PidsLimit"] is None
    assert "update" in events(palletd, cid)
    palletd.cli_ok("rm", "-f", "upd")


def test_limits_are_kept_over_restart_stop_start_and_a_palletd_restart(palletd: Any, image: str) -> None:
    cid = palletd.cli_ok("run", "-d", "--name", "kept", "-m", "48m", "--pids-limit", "33",
                         "--cpus", "0.25", image, "sleep", "300").strip()

    def check() -> None:
        assert memory_limit(palletd, cid) == 48 * MiB
        assert pids_max(palletd, cid) == "33"
        assert cpu_quota(palletd, cid) == ("25000", "100000")

    check()
    palletd.cli_ok("restart", "-t", "0", "kept", timeout=60)
    check()
    palletd.cli_ok("stop", "-t", "0", "kept", timeout=60)
    palletd.cli_ok("update", "--pids-limit", "44", "kept")  # a stopped one: its record
    palletd.cli_ok("start", "kept", timeout=60)
    assert pids_max(palletd, cid) == "44"
    palletd.restart()
    host = palletd.inspect("kept")["HostConfig"]
    assert (host["Memory"], host["PidsLimit"], host["NanoCpus"]) == (48 * MiB, 44, 250_000_000)
    palletd.cli_ok("restart", "-t", "0", "kept", timeout=60)
    assert memory_limit(palletd, cid) == 48 * MiB and pids_max(palletd, cid) == "44"
    palletd.cli_ok("rm", "-f", "kept")


BAD = [
    (("-m", "4m"), "6 MiB"),
    (("-m", "64m", "--memory-swap", "32m"), "below the memory limit"),
    (("--memory-swap", "64m"), "needs a memory limit"),
    (("-m", "32m", "--memory-reservation", "64m"), "above the memory limit"),
    (("--kernel-memory", "64m"), "not supported"),
    (("--cpus", "999"), "CPUs available"),
    (("--cpus", "0.5", "--cpu-quota", "50000"), "conflicting options"),
    (("--cpu-period", "10"), "CFS period"),
    (("--cpu-quota", "10"), "CFS quota"),
    (("--cpu-shares", "1"), "--cpu-shares"),
    (("--cpuset-cpus", "0-999"), "not available"),
    (("--cpuset-cpus", "a-b"), "CPU or node numbers"),
    (("--cpuset-mems", "77"), "not available"),
    (("--pids-limit", "-5"), "--pids-limit"),
    (("--blkio-weight", "5"), "--blkio-weight"),
    (("--device-read-bps", "/dev/nope:1mb"), "/dev/nope"),
    (("--device-write-iops", "/dev/null:10"), "not a block device"),
]


@pytest.mark.parametrize(("flags", "message"), BAD, ids=[" ".join(f) for f, _ in BAD])
def test_a_bad_limit_is_refused_and_nothing_is_created(
    palletd: Any, image: str, flags: tuple[str, ...], message: str
) -> None:
    result = palletd.cli("create", "--name", "bad", *flags, image, "true")
    assert result.returncode == 125, (result.returncode, result.stderr)
    assert message in result.stderr, result.stderr
    assert palletd.cli_ok("ps", "-a", "-q") == ""


def test_bad_limits_are_invalid_argument_over_grpc(palletd: Any, image: str) -> None:
    import pallet.v1.containers_pb2 as pb

    stubs = palletd._stubs()
    config = pb.ContainerConfig(image=image, cmd=["true"], resources=pb.Resources(memory=1 << 20))
    with pytest.raises(grpc.RpcError) as err:
        stubs.containers.Create(pb.CreateContainerRequest(config=config), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "6 MiB" in (err.value.details() or "")
    cid = palletd.cli_ok("create", "--name", "fine", "-m", "16m", image, "true").strip()
    with pytest.raises(grpc.RpcError) as err:
        stubs.containers.Update(pb.UpdateContainerRequest(
            container=cid, resources=pb.Resources(pids_limit=10, cpu_shares=-3)), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert palletd.inspect("fine")["HostConfig"]["PidsLimit"] is None
    with pytest.raises(grpc.RpcError) as err:
        stubs.containers.Update(pb.UpdateContainerRequest(
            container="nosuch", resources=pb.Resources(pids_limit=10)), timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    palletd.cli_ok("rm", "fine")


def test_an_oom_kill_while_palletd_is_down_is_reported_when_it_is_back(palletd: Any, image: str) -> None:
    import signal

    # The container waits for /go (made while palletd is down), then overruns its limit.
    cid = palletd.cli_ok("run", "-d", "-m", "32m", image, "sh", "-c",
                         "while [ ! -e /go ]; do sleep 0.1; done; "
                         "exec dd if=/dev/zero of=/dev/null bs=256M count=1").strip()
    pid = palletd.inspect(cid)["State"]["Pid"]
    palletd.proc.send_signal(signal.SIGKILL)
    palletd.proc.wait(10)
    Path(f"/proc/{pid}/root/go").write_text("")
    palletd.wait_for(lambda: not Path(f"/proc/{pid}").exists(), 60, what="the OOM kill")
    palletd.start()
    palletd.wait_for(lambda: palletd.inspect(cid)["State"]["Status"] == "exited", 60,
                     what="the exit to be reconciled")
    state = palletd.inspect(cid)["State"]
    assert (state["OOMKilled"], state["ExitCode"]) == (True, 137), state
    actions = events(palletd, cid)
    assert actions.index("oom") < actions.index("die"), actions
    palletd.cli_ok("rm", cid)
