"""Recognising and killing a shim that does not answer (`pallet.daemon.shims.hung`).

A stand-in shim: a child process listening on a unix socket, stopped with SIGSTOP. A pid
is taken for the shim only while it holds that socket; anything else is left alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pallet.daemon.shims import hung

# Bound as the shim binds (a path too long for sun_path goes through /proc/self/fd).
_LISTEN = (
    "import socket, sys, time\n"
    "from pallet.shim.api import sockpath\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "with sockpath.usable(sys.argv[1]) as usable: s.bind(usable)\n"
    "s.listen(1)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    path = str(tmp_path / ("c" * 64 + ".sock"))
    assert len(path) > 107, "the /proc/self/fd form of a long path is what is tested"
    proc = subprocess.Popen([sys.executable, "-c", _LISTEN, path], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    yield proc, path
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
    proc.wait(10)
    proc.stdout.close()


def test_a_stopped_listener_is_recognised_and_killed(
    listener: tuple[subprocess.Popen[str], str],
) -> None:
    proc, path = listener
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 10  # the stop takes effect soon, not at once
        while hung.process_state(proc.pid) != "T" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert hung.process_state(proc.pid) == "T"
        assert "stopped (SIGSTOP)" in hung.describe_state(proc.pid)
        assert hung.is_shim_of(proc.pid, path)
        assert hung.kill_shim(path, proc.pid, init_pid=0) == [proc.pid]
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        proc.poll()


def test_a_pid_that_does_not_hold_the_socket_is_left_alone(
    listener: tuple[subprocess.Popen[str], str], tmp_path: Path
) -> None:
    proc, path = listener
    other = subprocess.Popen(["sleep", "60"])
    try:
        # Another process (a reused pid, say) is not the shim, nor is the listener the shim
        # of another container's socket.
        assert not hung.is_shim_of(other.pid, path)
        assert hung.kill_shim(path, other.pid, init_pid=0) == []
        assert not hung.is_shim_of(proc.pid, str(tmp_path / ("d" * 64 + ".sock")))
        assert other.poll() is None and proc.poll() is None
    finally:
        other.kill()
        other.wait(10)


def test_the_init_is_killed_only_as_the_shims_child(
    listener: tuple[subprocess.Popen[str], str],
) -> None:
    proc, path = listener
    stranger = subprocess.Popen(["sleep", "60"])  # this test's child, not the listener's
    try:
        assert hung.kill_shim(path, proc.pid, init_pid=stranger.pid) == [proc.pid]
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait(10)
