"""`stop --signal` / `restart --signal`, `rename` and `--init` against real containers."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration

# Exits with a code that says which signal its trap heard.
TRAPPER = (
    "trap 'echo got INT; exit 3' INT; trap 'echo got USR1; exit 5' USR1; "
    "trap 'echo got TERM; exit 4' TERM; echo ready; while :; do sleep 0.1; done"
)


def _wait_logged(palletd: Any, name: str, text: str, count: int = 1) -> None:
    palletd.wait_for(
        lambda: palletd.cli("logs", name).stdout.count(text) >= count, 15,
        what=f"{name} to log {text!r}",
    )


def test_stop_and_restart_with_a_signal_reach_the_containers_trap(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "trapper", image, "sh", "-c", TRAPPER)
    _wait_logged(palletd, "trapper", "ready")
    assert palletd.cli_ok("stop", "--signal", "INT", "-t", "20", "trapper") == "trapper\n"
    assert palletd.cli_ok("wait", "trapper") == "3\n"
    assert palletd.cli_ok("logs", "trapper") == "ready\ngot INT\n"

    palletd.cli_ok("start", "trapper")
    _wait_logged(palletd, "trapper", "ready", 2)
    pid = palletd.inspect("trapper")["State"]["Pid"]
    # A bad signal: refused, exit 1, and the container runs on untouched.
    bad = palletd.cli("stop", "-s", "NOPE", "trapper")
    assert bad.returncode == 1
    assert bad.stderr == "Error: invalid signal NOPE: use a name such as SIGTERM or a number\n"
    bad = palletd.cli("restart", "--signal", "0", "trapper")
    assert bad.returncode == 1 and "invalid signal 0" in bad.stderr
    state = palletd.inspect("trapper")["State"]
    assert state["Running"] and state["Pid"] == pid

    assert palletd.cli_ok("restart", "-s", "SIGUSR1", "-t", "20", "trapper") == "trapper\n"
    _wait_logged(palletd, "trapper", "ready", 3)
    assert "got USR1\n" in palletd.cli_ok("logs", "trapper")
    state = palletd.inspect("trapper")["State"]
    assert state["Running"] and state["Pid"] != pid
    # Without --signal: the container's stop signal, SIGTERM.
    palletd.cli_ok("stop", "-t", "20", "trapper")
    assert palletd.cli_ok("wait", "trapper") == "4\n"
