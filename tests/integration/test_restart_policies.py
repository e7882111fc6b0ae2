"""Restart policies against real containers: --restart on run/create, the back-off, a
user's stop, rm -f and start during a back-off, palletd killed or rebooted meanwhile."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    _kill,
    _lazy_unmount,
    _wait_gone,
    cgroup_dirs,
    cgroup_pids,
    mounts_under,
    pid_alive,
    pids_mentioning,
)

pytestmark = pytest.mark.integration

# Exits at once with 3, every run.
FAILING = ("sh", "-c", "exit 3")
# Runs for good once /ctl/go exists (a bind of the test's directory); fails until then.
UNTIL_GO = ("sh", "-c", "[ -f /ctl/go ] && exec sleep 300; exit 1")


def events(palletd: Any, name: str, since: float) -> list[dict[str, Any]]:
    out = palletd.cli_ok("events", "--since", f"{since:.3f}", "--until", "0s", "--filter",
                         f"container={name}", "--format", "json", timeout=30)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def actions(palletd: Any, name: str, since: float) -> list[str]:
    return [e["Action"] for e in events(palletd, name, since)]


def state(palletd: Any, name: str) -> tuple[str, int]:
    data = palletd.inspect(name)
    return data["State"]["Status"], data["RestartCount"]


def crash(palletd: Any, name: str) -> None:
    """The container's init dies of SIGKILL, sent from the host: no user's stop."""
    pid = palletd.inspect(name)["State"]["Pid"]
    assert pid > 0, f"{name} is not running"
    os.kill(pid, signal.SIGKILL)


def restarting_with(palletd: Any, name: str, count: int) -> bool:
    status, restarts = state(palletd, name)
    return status == "restarting" and restarts >= count


def test_on_failure_restarts_up_to_its_maximum_then_stays_exited(palletd: Any, image: str) -> None:
    since = time.time() - 1
    palletd.cli_ok("run", "-d", "--name", "flaky", "--restart", "on-failure:2", image, *FAILING)
    palletd.wait_for(lambda: state(palletd, "flaky") == ("exited", 2), 60, what="2 restarts")
    data = palletd.inspect("flaky")
    assert data["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert data["State"]["ExitCode"] == 3
    time.sleep(1.5)  # the third failure is the last: nothing more comes
    assert state(palletd, "flaky") == ("exited", 2)
    # Docker's order: the end of each run, then the restart; the last end has none.
    assert actions(palletd, "flaky", since) == [
        "create", "start", "die", "restart", "start", "die", "restart", "start", "die",
    ]
    # A user's start starts over: the count too (2 more restarts: 6 starts in all).
    palletd.cli_ok("start", "flaky")
    palletd.wait_for(lambda: actions(palletd, "flaky", since).count("start") == 6, 60,
                     what="2 more restarts")
    palletd.wait_for(lambda: state(palletd, "flaky") == ("exited", 2), 30, what="exited")


def test_always_restarts_a_clean_exit_with_a_growing_back_off(palletd: Any, image: str) -> None:
    since = time.time() - 1
    palletd.cli_ok("run", "-d", "--name", "looper", "--restart", "always", image, "true")
    palletd.wait_for(lambda: restarting_with(palletd, "looper", 5), 60, what="5 restarts")
    assert palletd.inspect("looper")["HostConfig"]["RestartPolicy"]["Name"] == "always"
    ps = palletd.cli_ok("ps", "--filter", "name=looper", "--format", "{{.Status}}")
    assert ps.startswith("Restarting (0)"), ps  # shown by ps without -a, as docker's
    # The waits between an end and the next start grow: 100 ms, 200, 400, 800, 1.6 s...
    docs = events(palletd, "looper", since)
    dies = [d["timeNano"] for d in docs if d["Action"] == "die"]
    starts = [d["timeNano"] for d in docs if d["Action"] == "start"]
    gaps = [(s - d) / 1e9 for d, s in zip(dies, starts[1:])]
    assert len(gaps) >= 4, docs
    assert gaps[3] > gaps[0] and gaps[3] >= 0.6, gaps  # 800 ms planned (wide bounds)
    # Never a start before its back-off: 100 ms, 200 ms, ... (a little slack for clocks).
    for i, gap in enumerate(gaps):
        assert gap >= 0.1 * 2**i * 0.9, gaps
    # A stop during the back-off ends it at once, and for good.
    palletd.cli_ok("stop", "looper", timeout=10)
    assert state(palletd, "looper")[0] == "exited"
    before = actions(palletd, "looper", since).count("start")
    time.sleep(2.5)
    assert state(palletd, "looper")[0] == "exited"
    assert actions(palletd, "looper", since).count("start") == before
    # A `stop` ended the back-off (or, in its last moments, when the start was under way,
    # the stop came right after it: then the run's `die` is the last).
    assert actions(palletd, "looper", since)[-1] in ("stop", "die")


def test_a_users_stop_or_kill_ends_restarting_until_the_next_start(palletd: Any, image: str) -> None:
    since = time.time() - 1
    palletd.cli_ok("run", "-d", "--name", "svc", "--restart", "always", image, "sleep", "300")
    palletd.cli_ok("stop", "-t", "1", "svc")
    time.sleep(1.5)
    assert state(palletd, "svc")[0] == "exited"
    palletd.cli_ok("start", "svc")
    assert state(palletd, "svc")[0] == "running"
    palletd.cli_ok("kill", "svc")
    palletd.wait_for(lambda: state(palletd, "svc")[0] == "exited", 20, what="the kill")
    time.sleep(1.5)
    assert state(palletd, "svc") == ("exited", 0)
    assert actions(palletd, "svc", since).count("start") == 2
    # Without a user, an exit is restarted: the kill inside the container is no user's.
    palletd.cli_ok("start", "svc")
    crash(palletd, "svc")
    palletd.wait_for(lambda: state(palletd, "svc")[1] >= 1, 20, what="a restart")
    palletd.wait_for(lambda: state(palletd, "svc")[0] == "running", 20, what="running again")


def test_start_rm_and_kill_during_a_back_off(palletd: Any, image: str, tmp_path: Path) -> None:
    since = time.time() - 1
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    palletd.cli_ok("run", "-d", "--name", "waiter", "--restart", "always", "-v",
                   f"{ctl}:/ctl", image, *UNTIL_GO)
    palletd.wait_for(lambda: restarting_with(palletd, "waiter", 6), 90, what="6 restarts")
    seen = state(palletd, "waiter")[1]
    # In a back-off (3.2 s now): rm without -f is refused; start starts it now.
    result = palletd.cli("rm", "waiter")
    assert result.returncode == 1, result.stderr
    assert "restarting" in result.stderr or "running" in result.stderr, result.stderr
    (ctl / "go").write_text("")
    palletd.cli_ok("start", "waiter")
    # A user's start: counted anew (unless the policy's start, in the back-off's last
    # moments, came first: then this start found it running).
    assert state(palletd, "waiter") in (("running", 0), ("running", seen))
    (ctl / "go").unlink()
    # A kill during a back-off ends it too.
    crash(palletd, "waiter")
    palletd.wait_for(lambda: restarting_with(palletd, "waiter", 1), 30, what="a back-off")
    # The kill ends it (or, when it came as the restart's start was under way, the run it
    # signals, which may have ended already: an error, but no restart follows either).
    palletd.cli("kill", "waiter")
    palletd.wait_for(lambda: state(palletd, "waiter")[0] == "exited", 20, what="the kill")
    starts = actions(palletd, "waiter", since).count("start")
    time.sleep(1.5)
    assert state(palletd, "waiter")[0] == "exited"
    assert actions(palletd, "waiter", since).count("start") == starts
    # rm -f during a back-off removes it.
    palletd.cli_ok("start", "waiter")  # fails at once again (no /ctl/go)
    palletd.wait_for(lambda: restarting_with(palletd, "waiter", 1), 30, what="a back-off")
    palletd.cli_ok("rm", "-f", "waiter")
    assert palletd.cli_ok("ps", "-aq") == ""


@pytest.mark.parametrize(("flags", "words"), [
    (("--rm", "--restart", "always"), "Conflicting options: --restart and --rm"),
    (("--restart", "sometimes"), "unknown policy 'sometimes'"),
    (("--restart", "on-failure:-1"), "maximum retry count cannot be negative"),
    (("--restart", "always:3"), "can only be used with 'on-failure'"),
    (("--restart", "on-failure:x"), "maximum retry count must be an integer"),
])
def test_bad_restart_options_create_nothing(
    palletd: Any, image: str, flags: tuple[str, ...], words: str
) -> None:
    for verb in ("run", "create"):
        result = palletd.cli(verb, *flags, image, "true")
        assert result.returncode == 125, result
        assert words in result.stderr, result.stderr
    assert palletd.cli_ok("ps", "-aq") == ""


def test_the_api_says_invalid_argument(palletd: Any, image: str) -> None:
    import grpc

    from pallet.v1 import containers_pb2 as cpb

    request = cpb.CreateContainerRequest(config=cpb.ContainerConfig(
        image=image, cmd=["true"], restart_policy=cpb.RestartPolicy(name="on-failure",
                                                                    maximum_retry_count=-2)))
    with pytest.raises(grpc.RpcError) as failed:
        palletd._stubs().containers.Create(request, timeout=30)
    assert failed.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert palletd.cli_ok("ps", "-aq") == ""


# ---- palletd restarts --------------------------------------------------------------------


def reboot(palletd: Any) -> None:
    """What a host reboot does to a stopped palletd's world: every shim and container
    process gone, the run root empty, the mounts and cgroups gone. The state stays."""
    palletd.stop()
    procs = cgroup_pids(palletd.cgroup_parent) | set(pids_mentioning(str(palletd.base)))
    for pid in procs:
        _kill(pid, signal.SIGKILL)
    assert not _wait_gone(procs, 20)
    for mount in sorted(mounts_under(palletd.base), key=len, reverse=True):
        _lazy_unmount(mount)
    for directory in cgroup_dirs(palletd.cgroup_parent):
        try:
            directory.rmdir()
        except OSError:
            pass
    shutil.rmtree(palletd.run_root)
    palletd.start()


@pytest.mark.parametrize("how", ["reboot", "sigterm"])
def test_always_and_unless_stopped_when_palletd_starts(fresh_palletd: Any, how: str) -> None:
    palletd = fresh_palletd
    for name, policy in (("al", "always"), ("un", "unless-stopped"), ("al-stopped", "always"),
                         ("un-stopped", "unless-stopped"), ("none", "no")):
        palletd.cli_ok("run", "-d", "--name", name, "--restart", policy, "busybox", "sleep", "300")
    palletd.cli_ok("stop", "-t", "0", "al-stopped", "un-stopped")
    if how == "reboot":
        pids = {n: palletd.inspect(n)["State"]["Pid"] for n in ("al", "un", "none")}
        reboot(palletd)
        assert not any(pid_alive(pid) for pid in pids.values())  # (a zombie may linger)
    else:
        palletd.restart()
    want = {"al": "running", "un": "running", "al-stopped": "running", "un-stopped": "exited",
            "none": "exited" if how == "reboot" else "running"}
    palletd.wait_for(lambda: {n: state(palletd, n)[0] for n in want} == want, 60,
                     what=f"{want}")
    # Started for real: they answer.
    assert palletd.cli_ok("exec", "un", "echo", "up") == "up\n"
    assert palletd.cli_ok("exec", "al-stopped", "echo", "up") == "up\n"


def test_palletd_killed_during_a_back_off_resumes_it(fresh_palletd: Any) -> None:
    palletd = fresh_palletd
    since = time.time() - 1
    palletd.cli_ok("run", "-d", "--name", "crashy", "--restart", "always", "busybox", *FAILING)
    # The 7th restart waits 6.4 s.
    palletd.wait_for(lambda: restarting_with(palletd, "crashy", 7), 90, what="7 restarts")
    count = state(palletd, "crashy")[1]
    palletd.proc.send_signal(signal.SIGKILL)
    palletd.proc.wait(10)
    palletd.start()
    # As it was (or one restart on, when this palletd took longer to start than what was
    # left of the 6.4 s: a loaded machine).
    status, now = state(palletd, "crashy")
    assert (status, now) == ("restarting", count) or now == count + 1, (status, now)
    palletd.wait_for(lambda: state(palletd, "crashy")[1] > count, 60, what="the next restart")
    docs = events(palletd, "crashy", since)
    last_die = [d["timeNano"] for d in docs if d["Action"] == "die"][count - 1]
    next_start = [d["timeNano"] for d in docs if d["Action"] == "start"][count]
    # Planned 6.4 s after that end: resumed, not started at once (nor in a tight loop).
    assert (next_start - last_die) / 1e9 >= 4.0, docs
    starts = [d for d in docs if d["Action"] == "start"]
    assert len(starts) == count + 1 or len(starts) == count + 2, docs


def test_an_exit_missed_while_palletd_was_down_is_restarted(fresh_palletd: Any) -> None:
    palletd = fresh_palletd
    palletd.cli_ok("run", "-d", "--name", "late", "--restart", "on-failure:1", "busybox",
                   "sh", "-c", "sleep 1; exit 5")
    pid = palletd.inspect("late")["State"]["Pid"]
    palletd.stop()
    palletd.wait_for(lambda: not Path(f"/proc/{pid}").exists(), 20, what="the exit")
    palletd.start()
    palletd.wait_for(lambda: state(palletd, "late") == ("exited", 1), 60,
                     what="one restart, then exited")
    assert palletd.inspect("late")["State"]["ExitCode"] == 5
    assert os.path.exists(palletd.inspect("late")["LogPath"])


def test_update_changes_the_restart_policy(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "upd", image, "sleep", "300")
    assert palletd.cli_ok("update", "--restart", "on-failure:1", "upd") == "upd\n"
    policy = palletd.inspect("upd")["HostConfig"]["RestartPolicy"]
    assert policy == {"Name": "on-failure", "MaximumRetryCount": 1}
    crash(palletd, "upd")  # 137: a failure, restarted once
    palletd.wait_for(lambda: state(palletd, "upd") == ("running", 1), 30, what="a restart")
    result = palletd.cli("update", "--restart", "always:2", "upd")
    assert result.returncode == 1 and "only be used with 'on-failure'" in result.stderr
    assert palletd.inspect("upd")["HostConfig"]["RestartPolicy"] == policy  # unchanged
    palletd.cli_ok("update", "--restart", "no", "upd")
    crash(palletd, "upd")
    palletd.wait_for(lambda: state(palletd, "upd")[0] == "exited", 30, what="the exit")
    time.sleep(1)
    assert state(palletd, "upd") == ("exited", 1)
    palletd.cli_ok("run", "-d", "--rm", "--name", "gone", image, "sleep", "300")
    result = palletd.cli("update", "--restart", "always", "gone")
    assert result.returncode == 1 and "Conflicting options" in result.stderr, result.stderr
