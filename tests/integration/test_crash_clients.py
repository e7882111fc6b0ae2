"""Clients blocked in `wait`, `logs -f` and `events` when palletd dies: a clear error, then
reconnecting continues where they were."""

from __future__ import annotations

import re
import signal
from typing import Any

import pytest

pytestmark = pytest.mark.integration

COUNTER = "i=0; while :; do echo line $i; i=$((i+1)); sleep 0.05; done"


def test_blocked_clients_get_a_clear_error_and_can_resume(fresh_palletd: Any) -> None:
    palletd = fresh_palletd
    palletd.cli_ok("run", "-d", "--name", "busy", "busybox", "sh", "-c", COUNTER)
    waiter = palletd.cli_popen("wait", "busy", text=True)
    follower = palletd.cli_popen("logs", "-f", "busy", text=True)
    watcher = palletd.cli_popen("events", "--since-seq", "0", "--filter", "container=busy",
                                text=True)
    assert palletd.read_line(follower) == "line 0\n"
    seen = [palletd.read_line(watcher), palletd.read_line(watcher)]
    assert [line.split()[3] for line in seen] == ["create", "start"]

    palletd.proc.send_signal(signal.SIGKILL)
    palletd.proc.wait(10)
    for proc in (waiter, follower, watcher):
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 1, (proc.args, proc.returncode, err)
        assert err == f"Error: daemon unavailable: cannot connect to palletd at {palletd.host}: is it running?\n"
        assert "Traceback" not in err

    palletd._close_channel()
    palletd.start()
    # Reconnect: events resume after the last seq seen, logs continue, wait still waits.
    last_seq = int(seen[-1][1:].split("]")[0])
    resumed = palletd.cli_popen("events", "--since-seq", str(last_seq),
                                "--filter", "container=busy", text=True)
    waiter = palletd.cli_popen("wait", "busy", text=True)
    follower = palletd.cli_popen("logs", "-f", "--tail", "1", "busy", text=True)
    assert re.fullmatch(r"line \d+\n", palletd.read_line(follower))
    palletd.cli_ok("stop", "-t", "1", "busy")
    # PID 1 ignores SIGTERM without a handler: the stop ends in SIGKILL.
    assert waiter.communicate(timeout=30)[0] == "137\n"
    assert waiter.returncode == 0
    follower.communicate(timeout=30)
    assert follower.returncode == 0
    line = palletd.read_line(resumed)
    assert line.startswith(f"[{last_seq + 1}] ") and line.split()[3] in ("kill", "die"), line
