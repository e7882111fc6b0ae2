"""The shim on a full disk, with real shims and containers (issue 9, the shim's side).

A container's output on a full log disk is dropped with one warning per stretch, and the
log keeps a counted gap that `pallet logs` shows in its place; the shims' diagnostics log
stays small; an exit the shim cannot write to exit.json is kept in memory and reported to a
palletd that comes back; a full run root does not stop containers from running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from diskfull_harness import DiskfullPalletd, diskfull_factory, diskfull_palletd

__all__ = ["diskfull_factory", "diskfull_palletd"]  # fixtures

pytestmark = pytest.mark.integration

DROPPED = "of output dropped: the log disk was full]"
FLOOD_BYTES = 4 << 20


class Attached:
    """`pallet run -i` in the background: lines to its stdin, its output read in a thread."""

    def __init__(self, d: DiskfullPalletd, *args: str) -> None:
        self.proc = d.cli_popen("run", "-i", *args, stdin=subprocess.PIPE)
        self.out = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while chunk := self.proc.stdout.read1(1 << 16):  # type: ignore[attr-defined]
            self.out += chunk

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def wait(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code


def logs(d: DiskfullPalletd, name: str, made: bool = True) -> list[str]:
    """`pallet logs NAME`, stdout and stderr in the order written (one pipe); with `made`
    false, no lines while the container is not made yet."""
    r = subprocess.run(d.cli_args("logs", name), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=60)
    if not made and r.returncode != 0 and b"No such container" in r.stdout:
        return []
    assert r.returncode == 0, r
    return r.stdout.decode(errors="replace").splitlines()


def launcher_log(d: DiskfullPalletd) -> Path:
    return d.run_root / "shim-launcher.log"


def test_output_on_a_full_log_disk_is_dropped_and_the_gap_shown(
    diskfull_palletd: DiskfullPalletd,
) -> None:
    d = diskfull_palletd
    script = (
        "echo before; read x; "
        f"yes flooding-the-full-disk | head -c {FLOOD_BYTES}; echo flooded; "
        "read y; echo after"
    )
    run = Attached(d, "--name", "flood", "busybox", "sh", "-c", script)
    d.wait_for(lambda: "before" in logs(d, "flood", made=False), 30, what="the first line logged")
    with d.full():
        run.send("go")  # the flood meets a full disk
        d.wait_for(lambda: b"flooded" in run.out, 60, what="the flood written (attached)")
        assert d.inspect("flood")["State"]["Running"], "the container runs on"
    run.send("go")  # room again
    assert run.wait() == 0
    lines = logs(d, "flood")
    assert lines[0] == "before" and lines[-1] == "after", (lines[:3], lines[-3:])
    gaps = [i for i, line in enumerate(lines) if line.startswith("[pallet: ") and DROPPED in line]
    assert len(gaps) == 1, [line for line in lines if line.startswith("[pallet")]
    flood_kept = sum(1 for line in lines if line == "flooding-the-full-disk")
    assert flood_kept * len("flooding-the-full-disk\n") < FLOOD_BYTES // 2, "most was dropped"
    # The attached client got everything: only the log lost output.
    assert run.out.count(b"flooding-the-full-disk\n") >= FLOOD_BYTES // 24
    # The shim said so once per stretch, not once per write.
    text = launcher_log(d).read_text(errors="replace") if launcher_log(d).exists() else ""
    assert len(text) < 64 << 10 and "Traceback" not in text, text[-2000:]
    drops = [line for line in text.splitlines() if "full" in line.lower()]
    assert len(drops) <= 5, drops
    assert d.inspect("flood")["State"]["ExitCode"] == 0


def test_an_exit_the_shim_cannot_write_reaches_a_palletd_that_comes_back(
    diskfull_palletd: DiskfullPalletd,
) -> None:
    d = diskfull_palletd
    # The shell is the container's init: a signal it traps is delivered from the host.
    d.cli_ok("run", "-d", "--name", "ender", "busybox", "sh", "-c",
             "trap 'exit 5' USR1; while true; do sleep 1; done")
    pid = d.inspect("ender")["State"]["Pid"]
    assert pid > 0
    exit_json = d.root / "containers" / d.inspect("ender")["Id"] / "exit.json"
    os.kill(d.pid, signal.SIGKILL)
    assert d.proc is not None
    d.proc.wait(10)
    d.fill()
    os.kill(pid, signal.SIGUSR1)  # it exits while palletd is down and the disk is full
    d.wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30, what="ender's exit")
    assert not exit_json.exists(), "no room for it"
    d.start()  # still full
    s = d.inspect("ender")["State"]
    # 5 only the shim knows (it kept the exit in memory); a shim gone would say 255.
    assert (s["Status"], s["ExitCode"]) == ("exited", 5), s


def test_containers_start_and_stop_on_a_run_root_full_from_the_start(
    diskfull_factory: Callable[..., DiskfullPalletd],
) -> None:
    # No shim launcher has run yet: it starts on the full run root, without room for its
    # pid file (it once exited, palletd saying "exited before it was ready").
    d = diskfull_factory(run_size="4m")
    assert not (d.run_root / "shim-launcher.sock").exists()
    with d.full(on=d.run_disk):
        assert d.free_bytes(d.run_disk) < 4096
        d.cli_ok("run", "-d", "--name", "keeper", "busybox", "sleep", "1000")
        assert d.cli_ok("run", "--rm", "--name", "during", "busybox", "echo", "hello") == "hello\n"
        assert d.cli_ok("exec", "keeper", "echo", "hi") == "hi\n"
        d.cli_ok("stop", "-t", "1", "keeper")
        assert d.inspect("keeper")["State"]["Status"] == "exited"
        d.cli_ok("rm", "keeper")
        assert d.cli_ok("ps", "-aq") == ""
    assert not list((d.run_root / "shims").iterdir()), "every shim went, with its socket"
