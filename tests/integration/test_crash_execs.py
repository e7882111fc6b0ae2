"""An exec's end is journalled exactly once, whatever dies while it runs: the client that
started it, palletd (before, while or after the exec runs), or the container around it."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import wait_for

pytestmark = pytest.mark.integration

WAIT_FOR_GO = "while [ ! -e /tmp/go ]; do usleep 20000; done; exit {code}"


def exec_events(palletd: Any, name: str) -> list[tuple[str, str, str, str]]:
    """(action, execID, exitCode, error) of every exec event of container `name`."""
    out = palletd.cli_ok(
        "events", "--since-seq", "0", "--until", "0s", "--filter", f"container={name}",
        "--format", "{{.Action}}|{{index .Actor.Attributes \"execID\"}}|"
        "{{index .Actor.Attributes \"exitCode\"}}|{{index .Actor.Attributes \"error\"}}",
        timeout=30,
    )  # fmt: skip
    rows = [tuple(line.split("|")) for line in out.splitlines()]
    return [(r[0].split(":")[0], r[1], r[2], r[3]) for r in rows if r[0].startswith("exec_")]  # type: ignore[misc]


def one_exec(events: list[tuple[str, str, str, str]]) -> tuple[list[str], str, str]:
    """The actions, exit code and error of the only exec in `events`."""
    ids = {e[1] for e in events}
    assert len(ids) == 1, events
    dies = [e for e in events if e[0] == "exec_die"]
    return [e[0] for e in events], dies[0][2] if dies else "", dies[0][3] if dies else ""


def exec_dir(palletd: Any, name: str) -> Path:
    """Where the container's shim records the exits of its execs."""
    return palletd.root / "containers" / palletd.inspect(name)["Id"] / "execs"


def start_exec(palletd: Any, name: str, script: str) -> subprocess.Popen[str]:
    proc = palletd.cli_popen("exec", name, "sh", "-c", f"echo started; {script}", text=True)
    assert palletd.read_line(proc) == "started\n"
    return proc  # type: ignore[no-any-return]


def kill_palletd(palletd: Any) -> None:
    palletd.proc.send_signal(signal.SIGKILL)
    palletd.proc.wait(10)
    palletd._close_channel()


def test_an_exec_is_announced_once_at_each_step(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "once", image, "sleep", "300")
    assert palletd.cli("exec", "once", "sh", "-c", "exit 6").returncode == 6
    actions, code, error = one_exec(exec_events(palletd, "once"))
    assert actions == ["exec_create", "exec_start", "exec_die"]
    assert (code, error) == ("6", "")


def test_an_exec_that_ends_while_palletd_is_down_is_reported_after_restart(
    fresh_palletd: Any,
) -> None:
    palletd = fresh_palletd
    palletd.cli_ok("run", "-d", "--name", "box", "busybox", "sleep", "300")
    client = start_exec(palletd, "box", "sleep 1; exit 7")
    kill_palletd(palletd)
    client.communicate(timeout=30)
    assert client.returncode != 0, "the exec client did not notice palletd died"
    time.sleep(2)  # the exec ends while palletd is down
    palletd.start()
    actions, code, _ = one_exec(exec_events(palletd, "box"))
    assert actions == ["exec_create", "exec_start", "exec_die"]
    assert code == "7"
    # Settled: nothing is left for a later restart to report again.
    assert list(exec_dir(palletd, "box").iterdir()) == []
    palletd.restart()
    assert one_exec(exec_events(palletd, "box"))[0] == actions


def test_an_exec_still_running_after_restart_is_followed_to_its_end(fresh_palletd: Any) -> None:
    palletd = fresh_palletd
    palletd.cli_ok("run", "-d", "--name", "box", "busybox", "sleep", "300")
    client = start_exec(palletd, "box", WAIT_FOR_GO.format(code=5))
    kill_palletd(palletd)
    client.communicate(timeout=30)
    palletd.start()
    assert one_exec(exec_events(palletd, "box"))[0] == ["exec_create", "exec_start"]
    palletd.cli_ok("exec", "box", "touch", "/tmp/go")
    wait_for(lambda: len([e for e in exec_events(palletd, "box") if e[0] == "exec_die"]) == 2,
             timeout=20, what="exec_die of the exec started before the restart")
    events = [e for e in exec_events(palletd, "box")]
    first = [e for e in events if e[1] == events[0][1]]
    assert [e[0] for e in first] == ["exec_create", "exec_start", "exec_die"]
    assert first[-1][2] == "5"


def test_a_killed_client_does_not_lose_the_exec_die(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "box", image, "sleep", "300")
    client = start_exec(palletd, "box", WAIT_FOR_GO.format(code=3))
    client.send_signal(signal.SIGKILL)
    client.wait(10)
    # The exec keeps running without its client, and its end is still journalled.
    assert one_exec(exec_events(palletd, "box"))[0] == ["exec_create", "exec_start"]
    palletd.cli_ok("exec", "box", "touch", "/tmp/go")
    wait_for(lambda: len([e for e in exec_events(palletd, "box") if e[0] == "exec_die"]) == 2,
             timeout=20, what="exec_die of the exec whose client was killed")
    first_id = exec_events(palletd, "box")[0][1]
    dies = [e for e in exec_events(palletd, "box") if e[0] == "exec_die" and e[1] == first_id]
    assert [d[2] for d in dies] == ["3"]


def test_an_exec_killed_with_its_container_while_palletd_is_down(fresh_palletd: Any) -> None:
    palletd = fresh_palletd
    palletd.cli_ok("run", "-d", "--name", "box", "busybox", "sleep", "300")
    pid = palletd.inspect("box")["State"]["Pid"]
    client = start_exec(palletd, "box", "sleep 300")
    kill_palletd(palletd)
    client.communicate(timeout=30)
    # The container's init dies while palletd is down; its exec is killed with it.
    subprocess.run(["kill", "-KILL", str(pid)], check=True)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=10, what="container exit")
    time.sleep(0.5)
    palletd.start()
    assert palletd.inspect("box")["State"]["ExitCode"] == 137
    actions, code, _ = one_exec(exec_events(palletd, "box"))
    assert actions == ["exec_create", "exec_start", "exec_die"]
    assert code == "137"
    palletd.cli_ok("rm", "box")


@pytest.mark.parametrize("point", ["exec:recorded", "exec:started"])
def test_palletd_killed_while_starting_an_exec(fresh_palletd: Any, point: str) -> None:
    palletd = fresh_palletd
    palletd.cli_ok("run", "-d", "--name", "box", "busybox", "sleep", "300")
    result = palletd.crash_during(point, "exec", "box", "sh", "-c", "exit 4")
    assert result.returncode != 0 and "palletd" in result.stderr
    wait_for(lambda: one_exec(exec_events(palletd, "box"))[0][-1] == "exec_die",
             timeout=20, what="the exec's end")
    actions, code, error = one_exec(exec_events(palletd, "box"))
    if point == "exec:recorded":
        # Recorded, never handed to the shim: it never ran, and says so.
        assert actions == ["exec_create", "exec_die"]
        assert code == "126" and "never started" in error
    else:
        # The shim ran it; palletd died before journalling exec_start: both come late, in
        # order, with the real exit code.
        assert actions == ["exec_create", "exec_start", "exec_die"]
        assert code == "4" and error == ""
    assert palletd.inspect("box")["State"]["Running"] is True


def test_removing_a_container_settles_its_execs(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "box", image, "sleep", "300")
    client = start_exec(palletd, "box", "sleep 300")
    palletd.cli_ok("rm", "-f", "box")
    client.communicate(timeout=30)
    events = palletd.cli_ok("events", "--since-seq", "0", "--until", "0s",
                            "--format", "{{.Action}} {{index .Actor.Attributes \"exitCode\"}}")
    assert "exec_die 137" in events.splitlines(), events


def test_a_remove_cut_short_with_an_exec_running_reports_its_real_end(
    fresh_palletd: Any,
) -> None:
    palletd = fresh_palletd
    palletd.cli_ok("run", "-d", "--name", "box", "busybox", "sleep", "300")
    with palletd.crash_armed("remove:removing"):  # started again after: it finishes the
        client = start_exec(palletd, "box", "sleep 300")  # remove, settling the exec
        result = palletd.cli("rm", "-f", "box", timeout=60)
    assert result.returncode != 0
    client.communicate(timeout=30)
    assert palletd.cli("inspect", "box").returncode != 0
    out = palletd.cli_ok("events", "--since-seq", "0", "--until", "0s",
                         "--format", "{{.Action}} {{index .Actor.Attributes \"exitCode\"}}")
    dies = [line for line in out.splitlines() if line.startswith("exec_die")]
    assert dies == ["exec_die 137"], out
