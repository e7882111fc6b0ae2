"""The harness itself: its teardown finds and removes what a broken daemon leaves behind.

A leak check that never fires proves nothing, so these tests make real leaks on purpose.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def test_teardown_reports_and_kills_containers_a_dead_daemon_left(
    palletd_factory: Callable[[], Any],
) -> None:
    daemon = palletd_factory()
    daemon.cli_ok("run", "-d", "--name", "orphaned", "busybox", "sleep", "300")
    pid = daemon.inspect("orphaned")["State"]["Pid"]
    cgroups = daemon.container_cgroups()
    assert cgroups
    daemon.proc.send_signal(signal.SIGKILL)  # nobody left to rm -f it
    daemon.proc.wait(10)

    problems = daemon.teardown()

    assert any("container processes left running" in p and str(pid) in p for p in problems), problems
    assert any("shims left running" in p for p in problems), problems
    # Killed; its reaper (the host's init, once the shim is gone) may take a moment.
    daemon.wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10, what="the zombie to go")
    assert not any(c.exists() for c in cgroups)
    assert not daemon.base.exists()


def test_teardown_of_a_clean_daemon_reports_nothing(palletd_factory: Callable[[], Any]) -> None:
    daemon = palletd_factory()
    daemon.cli_ok("run", "--rm", "busybox", "true")
    daemon.cli_ok("run", "-d", "busybox", "sleep", "300")  # teardown removes it with rm -f
    assert daemon.teardown() == []
    assert not daemon.base.exists()
