"""The shim on a full disk, with real shims and containers (issue 9, the shim's side).

A container's output on a full log disk is dropped with one warning per stretch, and the
log keeps a counted gap that `pallet logs` shows in its place; the shims' diagnostics log
stays small, and a run root too full to take even that loses the diagnostics, never a
container; an exit the shim cannot write to exit.json is kept in memory, reported, and
written once the disk takes it (the shim does not go before); a run root that is full
from the start does not stop containers from starting.

Each palletd here has its own 20 MB tmpfs root (`diskfull_harness`), with `run_size` a
tmpfs run root too; the exit.json test drives a shim without palletd (`shim_harness`),
its bundle on a tmpfs of its own.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import gone
from diskfull_harness import (
    DiskfullPalletd,
    diskfull_factory,
    diskfull_palletd,
    fill_disk,
    free_disk,
    small_disk,
)
from pallet.shim.api.logs import read_records
from pallet.shim.api.spec import TaskStatus
from shim_harness import ShimWorld, remove, shim_world

__all__ = ["diskfull_factory", "diskfull_palletd", "shim_world"]  # fixtures

pytestmark = pytest.mark.integration

#: The line `pallet logs` shows for a gap (`pallet.shim.api.logframes.drop_note`).
GAP = re.compile(r"\[pallet: ([0-9.]+) (B|KiB|MiB|GiB) of output dropped: the log disk was full\]")
FLOOD_LINE = "flooding-the-full-disk"
FLOOD_BYTES = 4 << 20
#: Prints 'before', floods stdout with FLOOD_BYTES and 'flooded' after a line on stdin,
#: and 'after' after a second line.
FLOOD_SCRIPT = (
    "echo before; read x; "
    f"yes {FLOOD_LINE} | head -c {FLOOD_BYTES}; echo flooded; "
    "read y; echo after"
)


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


def logs(d: DiskfullPalletd, name: str) -> list[str]:
    """`pallet logs NAME`, stdout and stderr in the order written (one pipe)."""
    r = subprocess.run(d.cli_args("logs", name), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode == 0, r
    return r.stdout.decode(errors="replace").splitlines()


def logged(d: DiskfullPalletd, name: str, line: str) -> bool:
    """Whether `pallet logs NAME` shows `line` (False while the container is not there)."""
    r = d.cli("logs", name)
    return r.returncode == 0 and line in r.stdout.splitlines()


def diag_lines(run_root: Path, about: str) -> list[str]:
    """The lines of the launcher's and shims' log that mention `about`; fails on a
    traceback or on a log past its 1 MiB cap (`pallet.shim.diaglog`)."""
    path = run_root / "shim-launcher.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    assert "Traceback" not in text, text[-3000:]
    assert len(text) < 1 << 20
    return [line for line in text.splitlines() if about in line]


def flood_into_a_full_log_disk(d: DiskfullPalletd, name: str, also_full: Path | None = None) -> str:
    """Run FLOOD_SCRIPT attached with the root (and `also_full`) full during the flood;
    check the container and the attached client lived through it and got every byte;
    return the container's log path (as the diagnostics name it)."""
    run = Attached(d, "--name", name, "busybox", "sh", "-c", FLOOD_SCRIPT)
    d.wait_for(lambda: logged(d, name, "before"), 30, what="the first line logged")
    log_path = str(d.root / "containers" / d.inspect(name)["Id"] / "container.log")
    if also_full is not None:
        d.fill(on=also_full)
    try:
        with d.full():
            run.send("go")  # the flood meets a full disk
            d.wait_for(lambda: b"flooded" in run.out, 60, what="the flood written (attached)")
            assert d.inspect(name)["State"]["Running"], "the container runs on"
    finally:
        if also_full is not None:
            d.free(on=also_full)
    run.send("go")  # room again
    assert run.wait() == 0, "the container (and its shim) lived through the flood"
    # The attached client got everything: only the log lost output.
    assert run.out.count(f"{FLOOD_LINE}\n".encode()) == FLOOD_BYTES // len(FLOOD_LINE + "\n")
    assert run.out.endswith(b"flooded\nafter\n")
    return log_path


def assert_logs_show_the_gap(d: DiskfullPalletd, name: str) -> None:
    """before, what of the flood fitted, the gap (about all of the flood), after."""
    lines = logs(d, name)
    assert lines[0] == "before" and lines[-1] == "after", (lines[:3], lines[-3:])
    gap = GAP.fullmatch(lines[-2])
    assert gap, lines[-3:]
    kept = lines[1:-2]
    assert set(kept) <= {FLOOD_LINE}, "only the start of the flood before the gap"
    assert len(kept) * len(FLOOD_LINE + "\n") < 64 << 10, "the flood met a full disk"
    assert gap[2] == "MiB" and float(gap[1]) >= 3.9, lines[-2]
    assert [line for line in lines if line.startswith("[pallet")] == [lines[-2]]


def test_output_on_a_full_log_disk_is_dropped_and_the_gap_shown(
    diskfull_palletd: DiskfullPalletd,
) -> None:
    d = diskfull_palletd
    log_path = flood_into_a_full_log_disk(d, "flood")
    assert_logs_show_the_gap(d, "flood")
    # The shim said so once per stretch (dropping, writing again), not once per write:
    # the flood was 16 chunks or more, each refused.
    said = diag_lines(d.run_root, log_path)
    assert 1 <= len(said) <= 4, said
    assert d.inspect("flood")["State"]["ExitCode"] == 0


def test_a_flood_into_a_full_log_disk_with_the_run_root_full_too(
    diskfull_factory: Callable[..., DiskfullPalletd],
) -> None:
    # The shim's warnings have nowhere to go either: they are lost, the container is not
    # (a warning that could not be written used to raise in the shim and kill it).
    d = diskfull_factory(run_size="4m")
    log_path = flood_into_a_full_log_disk(d, "flood2", also_full=d.run_disk)
    assert_logs_show_the_gap(d, "flood2")
    assert len(diag_lines(d.run_root, log_path)) <= 4


def test_an_exit_the_shim_cannot_write_reaches_a_palletd_that_comes_back(
    diskfull_palletd: DiskfullPalletd,
) -> None:
    d = diskfull_palletd
    # The shell is the container's init: a signal it traps is delivered from the host.
    d.cli_ok("run", "-d", "--name", "ender", "busybox", "sh", "-c",
             "trap 'exit 5' USR1; echo trapped; while true; do sleep 1; done")
    # A pid namespace's init gets from outside only the signals it has a handler for.
    d.wait_for(lambda: logged(d, "ender", "trapped"), 30, what="the trap set")
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


async def _until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)
    return value


async def test_an_exit_the_disk_refuses_is_kept_reported_and_written_once_it_has_room(
    shim_world: ShimWorld,
) -> None:
    cid = secrets.token_hex(8)
    bundle = shim_world.bundle_dir(cid)
    bundle.parent.mkdir(exist_ok=True)
    # Short, so that staying alive for many of them means something.
    impl = shim_world.launcher(idle_exit=0.3)
    with small_disk(bundle, "1m"):
        spec = shim_world.spec(
            "sh", "-c", "trap 'exit 7' USR1; echo trapped; while true; do sleep 0.1; done",
            container_id=cid,
        )
        client = await impl.spawn(spec)
        shim_pid = client.shim_pid
        sock = shim_world.run_root / "shims" / f"{cid}.sock"
        try:
            await client.start()
            # A pid namespace's init gets from outside only the signals it has a handler for.
            await _until(lambda: [r.data for r in read_records(spec.log.path)] == [b"trapped\n"],
                         10, "the trap set")
            fill_disk(bundle)
            await client.kill(signal.SIGUSR1)  # it exits; exit.json finds no room
            status = await asyncio.wait_for(client.wait(), 30)
            assert (status.exit_code, status.error) == (7, ""), status
            state = await client.state()
            assert (state.status, state.exit) == (TaskStatus.STOPPED, status)
            assert impl.exit_status_on_disk(bundle) is None
            assert not [n for n in os.listdir(bundle) if n.startswith("exit.json")], "no temp file"
            await client.aclose()
            # Nobody talks to it for many idle periods: it is the only one who knows the
            # exit, so it stays and tells it to whoever asks.
            await asyncio.sleep(2.0)
            assert not gone(shim_pid) and sock.exists(), "the shim went before its exit was on disk"
            client = await impl.connect(cid, bundle)
            assert await asyncio.wait_for(client.wait(), 30) == status
            await client.aclose()
            free_disk(bundle)
            on_disk = await _until(lambda: impl.exit_status_on_disk(bundle), 10, "exit.json")
            assert on_disk == status
            # On disk now: an idle shim may go, and does.
            await _until(lambda: gone(shim_pid), 10, "the idle shim's exit")
            assert not sock.exists()
        finally:
            free_disk(bundle)
            if not gone(shim_pid):  # a failed test's: the container killed, the shim ended
                await remove(await impl.connect(cid, bundle))
    # One line when the write was first refused and one when it went through, not one
    # per retry (one a second).
    said = diag_lines(shim_world.run_root, cid)
    assert len(said) == 2, said
    assert "cannot be written" in said[0] and "written at last" in said[1], said
