"""Containers outlive palletd: SIGTERM the daemon, keep going, start it again on the same root."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

COUNTER = "i=0; while :; do echo line $i; i=$((i+1)); sleep 0.1; done"


def line_numbers(out: str) -> list[int]:
    return [int(m.group(1)) for m in re.finditer(r"^line (\d+)$", out, re.M)]


def test_containers_keep_running_and_logging_across_a_daemon_restart(fresh_palletd: Any) -> None:
    palletd = fresh_palletd
    cid = palletd.cli_ok("run", "-d", "--name", "survivor", "busybox", "sh", "-c", COUNTER).strip()
    before = palletd.inspect("survivor")
    pid = before["State"]["Pid"]
    log_path = Path(before["LogPath"])
    palletd.wait_for(lambda: len(line_numbers(palletd.cli_ok("logs", "survivor"))) >= 3, 10)

    assert palletd.stop() == 0, "palletd should exit 0 on SIGTERM:\n" + palletd.log_tail()
    assert Path(f"/proc/{pid}").exists(), "the container died with the daemon"
    size = log_path.stat().st_size
    time.sleep(1.5)
    assert log_path.stat().st_size > size, "the log stopped growing while palletd was down"
    assert Path(f"/proc/{pid}").exists()
    result = palletd.cli("ps")
    assert result.returncode == 1
    assert "cannot connect to palletd" in result.stderr

    palletd.start()
    after = palletd.inspect("survivor")
    assert after["State"]["Running"] is True
    assert after["State"]["Pid"] == pid
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]
    [row] = palletd.cli_ok("ps").splitlines()[1:]
    assert row.startswith(cid[:12]) and " Up " in row
    numbers = line_numbers(palletd.cli_ok("logs", "survivor"))
    assert numbers == list(range(len(numbers))), "lines lost while palletd was down"
    assert len(numbers) >= 15
    # The re-adopted container is fully usable.
    assert palletd.cli_ok("exec", "survivor", "echo", "still here") == "still here\n"
    follower = palletd.cli_popen("logs", "-f", "--tail", "0", "survivor", text=True)
    assert follower.stdout is not None
    assert re.fullmatch(r"line \d+\n", palletd.read_line(follower))
    assert palletd.cli_ok("stop", "-t", "1", "survivor") == "survivor\n"
    follower.communicate(timeout=20)
    assert follower.returncode == 0
    assert palletd.cli_ok("wait", "survivor") == "137\n"
    assert not Path(f"/proc/{pid}").exists()


def test_exits_while_the_daemon_is_down_are_recorded(fresh_palletd: Any) -> None:
    palletd = fresh_palletd
    since = f"{time.time() - 1:.3f}"
    palletd.cli_ok("run", "-d", "--name", "quitter", "busybox", "sh", "-c", "sleep 1; exit 9")
    palletd.cli_ok("run", "-d", "--name", "stayer", "busybox", "sleep", "300")
    quitter_pid = palletd.inspect("quitter")["State"]["Pid"]
    palletd.stop()
    palletd.wait_for(lambda: not Path(f"/proc/{quitter_pid}").exists(), 10, what="the exit")
    palletd.start()
    state = palletd.inspect("quitter")["State"]
    assert state["Status"] == "exited"
    assert state["ExitCode"] == 9
    assert palletd.cli_ok("wait", "quitter") == "9\n"
    assert palletd.inspect("stayer")["State"]["Running"] is True
    # The exit is published once, after its start, with the code.
    events = palletd.cli_ok("events", "--since", since, "--until", "0s",
                            "--filter", "container=quitter").splitlines()
    actions = [line.split()[2] for line in events]
    assert actions == ["create", "start", "die"], events
    assert "exitCode=9" in events[-1]
    names = palletd.cli_ok("ps", "-a", "--format", "{{.Names}}").split()
    assert sorted(names) == ["quitter", "stayer"]
    # And the restarted daemon can start it again.
    palletd.cli_ok("start", "quitter")
    assert palletd.cli_ok("wait", "quitter") == "9\n"


def test_state_survives_a_restart(fresh_palletd: Any) -> None:
    palletd = fresh_palletd
    palletd.cli_ok("create", "--name", "kept", "-l", "a=b", "busybox", "echo", "kept")
    palletd.cli_ok("tag", "busybox", "kept:image")
    seq_before = _last_seq(palletd)
    palletd.restart()
    assert palletd.inspect("kept")["Config"]["Labels"] == {"a": "b"}
    [img] = json.loads(palletd.cli_ok("image", "inspect", "kept:image"))
    assert img["Id"] == palletd.base_image_id
    palletd.cli_ok("start", "kept")
    assert palletd.cli_ok("wait", "kept") == "0\n"
    assert palletd.cli_ok("logs", "kept") == "kept\n"
    # Event sequence numbers continue where they were.
    assert _last_seq(palletd) > seq_before


def _last_seq(palletd: Any) -> int:
    out = palletd.cli_ok("events", "--since-seq", "1", "--until", "0s", timeout=30)
    seqs = [int(m.group(1)) for m in re.finditer(r"^\[(\d+)\] ", out, re.M)]
    assert seqs, out
    return max(seqs)


def test_sigkilled_daemon_loses_nothing(fresh_palletd: Any) -> None:
    palletd = fresh_palletd
    palletd.cli_ok("run", "-d", "--name", "killed", "busybox", "sh", "-c", COUNTER)
    pid = palletd.inspect("killed")["State"]["Pid"]
    palletd.proc.send_signal(signal.SIGKILL)
    palletd.proc.wait(10)
    time.sleep(0.5)
    assert Path(f"/proc/{pid}").exists()
    palletd.start()
    assert palletd.inspect("killed")["State"]["Pid"] == pid
    numbers = line_numbers(palletd.cli_ok("logs", "killed"))
    assert numbers == list(range(len(numbers)))


@pytest.mark.parametrize("down", ["stopped", "killed"])
def test_an_rm_container_that_exits_while_the_daemon_is_down_is_removed(
    fresh_palletd: Any, down: str
) -> None:
    """`run -d --rm`: an exit palletd did not see is followed by the removal all the same,
    with its die and destroy events, once palletd is back."""
    palletd = fresh_palletd
    since = f"{time.time() - 1:.3f}"
    cid = palletd.cli_ok("run", "-d", "--rm", "--name", "brief", "busybox",
                         "sh", "-c", "sleep 1; exit 0").strip()
    pid = palletd.inspect("brief")["State"]["Pid"]
    if down == "stopped":
        palletd.stop()
    else:
        palletd.proc.send_signal(signal.SIGKILL)
        palletd.proc.wait(10)
    palletd.wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10, what="the exit")
    palletd.start()
    assert palletd.cli_ok("ps", "-a", "-q", "--no-trunc").split() == []
    result = palletd.cli("inspect", "brief")
    assert result.returncode != 0 and "No such" in result.stderr, result
    events = palletd.cli_ok("events", "--since", since, "--until", "0s",
                            "--filter", f"container={cid}").splitlines()
    actions = [line.split()[2] for line in events]
    assert actions == ["create", "start", "die", "destroy"], events
    assert not (palletd.root / "containers" / cid).exists()
    assert palletd.lingering_shims() == {}
