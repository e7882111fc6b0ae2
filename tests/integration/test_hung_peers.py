"""Peers that are stopped (SIGSTOP) rather than dead: a container's shim, palletd itself.

A stopped process keeps its sockets: the kernel still queues connections to them, so
whoever talks to it must give up after a deadline and say that it did not answer, not
that it is gone (nor blame the kernel). `rm -f` of a container whose shim is stopped
still removes it, and `rm -f` always wins over a start of the same container.

Every wait here is bounded (subprocess timeouts), so a regression fails instead of
hanging; everything stopped is continued in `finally`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from conftest import container_cgroup_pids, gone, parent_of

pytestmark = pytest.mark.integration


def _stopped_shim(palletd: Any, image: str, name: str) -> tuple[str, int, int, set[int]]:
    """A running container (init plus a child) whose shim is SIGSTOPped: id, shim, init,
    the container's processes."""
    palletd.cli_ok("run", "-d", "--name", name, image, "sh", "-c",
                   "sleep 1000 & echo up; wait")
    palletd.wait_for(lambda: palletd.cli_ok("logs", name) == "up\n", 10, what="output")
    state = palletd.inspect(name)
    cid, init = state["Id"], state["State"]["Pid"]
    shim = parent_of(init)
    assert str(palletd.base) in Path(f"/proc/{shim}/cmdline").read_text(errors="replace")
    members = palletd.wait_for(lambda: len(p := container_cgroup_pids(palletd, cid)) >= 2 and p, 10,
                               what="the container's processes")
    os.kill(shim, signal.SIGSTOP)
    return cid, shim, init, members


def _cont(*pids: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def _die_events(palletd: Any, name: str) -> str:
    until = datetime.fromtimestamp(time.time() + 1, timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")
    return str(palletd.cli_ok("events", "--since", "0", "--until", until,
                              "--filter", f"container={name}", "--filter", "event=die",
                              timeout=30))


def test_stop_of_a_container_whose_shim_is_stopped_says_the_shim_does_not_answer(
    palletd: Any, image: str
) -> None:
    cid, shim, init, members = _stopped_shim(palletd, image, "frozen")
    try:
        result = palletd.cli("stop", "-t", "1", "frozen", timeout=30)
        assert result.returncode != 0, result
        assert f"shim (pid {shim})" in result.stderr, result.stderr
        assert "does not answer" in result.stderr, result.stderr
        assert "stuck in the kernel" not in result.stderr, result.stderr
        result = palletd.cli("kill", "frozen", timeout=30)
        assert result.returncode != 0, result
        assert "cannot signal container frozen: the shim" in result.stderr, result.stderr
        # A failed stop changes nothing: the container still runs under its (stopped) shim.
        assert palletd.inspect("frozen")["State"]["Running"] is True
        assert not gone(init)
    finally:
        _cont(shim)
    palletd.cli_ok("stop", "-t", "1", "frozen", timeout=30)
    assert palletd.cli_ok("rm", "frozen") == "frozen\n"


def test_rm_f_removes_a_container_whose_shim_is_stopped(palletd: Any, image: str) -> None:
    cid, shim, init, members = _stopped_shim(palletd, image, "icy")
    # The container's own processes stopped as well: SIGKILL ends stopped processes too.
    os.kill(init, signal.SIGSTOP)
    try:
        result = palletd.cli("rm", "-f", "icy", timeout=30)
        assert result.returncode == 0, result
        assert result.stdout == "icy\n"
        palletd.wait_for(lambda: all(gone(p) for p in {shim, *members}), 10,
                         what="the shim and the container's processes to be killed")
        assert "icy" not in palletd.cli_ok("ps", "-a", "--format", "{{.Names}}").split()
        # Its end was recorded before it went: killed (137).
        assert "exitCode=137" in _die_events(palletd, "icy")
        assert palletd.container_cgroups(cid) == []
        assert not (palletd.run_root / "shims" / f"{cid}.sock").exists()
        assert palletd.mounts() == []
    finally:
        _cont(shim, *members)


def test_rm_f_removes_a_container_whose_shim_was_stopped_while_palletd_was_down(
    fresh_palletd: Any,
) -> None:
    palletd = fresh_palletd
    palletd.cli_ok("run", "-d", "--name", "sleepy", "busybox", "sleep", "300")
    cid, init = palletd.inspect("sleepy")["Id"], palletd.inspect("sleepy")["State"]["Pid"]
    shim = parent_of(init)
    palletd.proc.send_signal(signal.SIGKILL)
    palletd.proc.wait(10)
    os.kill(shim, signal.SIGSTOP)
    try:
        palletd._close_channel()
        palletd.start()  # the shim is not re-adopted: it does not answer
        assert palletd.inspect("sleepy")["State"]["Running"] is True
        result = palletd.cli("rm", "-f", "sleepy", timeout=30)
        assert result.returncode == 0, result
        palletd.wait_for(lambda: gone(shim) and gone(init), 10,
                         what="the shim and the container to be killed")
        assert "sleepy" not in palletd.cli_ok("ps", "-a", "--format", "{{.Names}}").split()
        assert "exitCode=137" in _die_events(palletd, "sleepy")
        assert palletd.container_cgroups(cid) == []
        assert not (palletd.run_root / "shims" / f"{cid}.sock").exists()
    finally:
        _cont(shim, init)


def test_a_stopped_palletd_is_said_to_not_answer(fresh_palletd: Any, tmp_path: Path) -> None:
    palletd = fresh_palletd
    quick = {"PALLET_CONNECT_TIMEOUT": "2"}
    palletd.proc.send_signal(signal.SIGSTOP)
    try:
        result = palletd.cli("ps", timeout=30, env=quick)
    finally:
        palletd.proc.send_signal(signal.SIGCONT)
    assert result.returncode != 0, result
    assert f"palletd at {palletd.host} accepted the connection but did not answer within 2s" in (
        result.stderr), result.stderr
    assert "stopped (SIGSTOP) or overloaded" in result.stderr, result.stderr
    assert "is it running?" not in result.stderr, result.stderr
    # Continued, it answers again; a daemon that is not there is still said to be so.
    palletd.cli_ok("ps", env=quick)
    missing = f"unix://{tmp_path}/pallet.sock"
    result = palletd.cli("--host", missing, "ps", timeout=30, env=quick)
    assert result.returncode != 0
    assert f"cannot connect to palletd at {missing}: is it running?" in result.stderr, (
        result.stderr)


def test_rm_f_always_wins_over_a_concurrent_start(palletd: Any, image: str) -> None:
    failures: list[str] = []
    for i in range(40):
        name = f"race{i}"
        palletd.cli_ok("create", "--name", name, image, "sleep", "300")
        started: list[subprocess.CompletedProcess[str]] = []
        starter = threading.Thread(
            target=lambda: started.append(palletd.cli("start", name, timeout=60)))
        starter.start()
        removed = palletd.cli("rm", "-f", name, timeout=60)
        starter.join(90)
        assert not starter.is_alive(), "start did not return"
        if removed.returncode != 0:
            failures.append(f"{name}: {removed.stderr.strip()}")
            palletd.cli("rm", "-f", name, timeout=60)
            continue
        names = palletd.cli_ok("ps", "-a", "--format", "{{.Names}}").split()
        if name in names:
            failures.append(f"{name}: still listed after rm -f ({started[0].stderr.strip()})")
        # The start either ran first (and its container was killed) or lost, saying why.
        start = started[0]
        if start.returncode != 0 and not any(
            why in start.stderr for why in ("is being removed", "No such container")
        ):
            failures.append(f"{name}: start failed with {start.stderr.strip()!r}")
    assert failures == [], f"{len(failures)} of 40 rm -f lost to a start:\n" + "\n".join(failures)
