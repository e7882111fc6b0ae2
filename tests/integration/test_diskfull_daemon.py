"""palletd on a full state disk: the truth is reported and the way out works (issue 9).

Each test runs its own palletd whose --root is a 20 MB tmpfs (`diskfull_harness`), fills
it, and checks what a user sees: an exit is known (ps, inspect, wait, stop) even when it
cannot be written, and written with its `die` event once there is room; `stop`, `rm` and
`image prune` work on the full disk; what needs space fails with RESOURCE_EXHAUSTED naming
the path and changes nothing; palletd restarts and serves while the disk is still full.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from diskfull_harness import DiskfullPalletd, diskfull_factory, diskfull_palletd

__all__ = ["diskfull_factory", "diskfull_palletd"]  # fixtures

pytestmark = pytest.mark.integration

FULL = "is full (no space left on the device"


def events(d: DiskfullPalletd) -> list[dict[str, Any]]:
    out = d.cli_ok("events", "--since-seq", "0", "--until", "0s", "--format", "{{json .}}")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def actions(d: DiskfullPalletd, container_id: str) -> list[str]:
    """The actions journalled for `container_id`, in seq order."""
    return [e["Action"] for e in events(d) if e["Actor"]["ID"] == container_id]


def state(d: DiskfullPalletd, name: str) -> dict[str, Any]:
    return dict(d.inspect(name)["State"])


def exited(d: DiskfullPalletd, name: str) -> bool:
    return not state(d, name)["Running"]


def reserve_held(d: DiskfullPalletd) -> int:
    path = d.root / "reserve"
    return os.stat(path).st_blocks * 512 if path.exists() else 0


def spend_the_reserve(d: DiskfullPalletd, name: str) -> None:
    """Fill the disk, spend palletd's reserve on the exit of `name` (a running `sleep`),
    then fill what that gave back: full, with no reserve left.

    The exit needs the reserve because a young database's write-ahead log grows with every
    commit (it is checkpointed and rewound only at 1,000 pages).
    """
    d.fill()
    d.cli_ok("kill", name)
    d.wait_for(lambda: exited(d, name), 30, what=f"{name}'s exit recorded")
    assert state(d, name)["ExitCode"] == 137
    assert reserve_held(d) == 0, "the exit spent the reserve"
    d.fill()


def test_a_container_that_fills_the_disk_exits_and_is_removed(
    diskfull_palletd: DiskfullPalletd,
) -> None:
    d = diskfull_palletd
    assert reserve_held(d) >= 1 << 20, "palletd keeps a reserve on its state disk"
    r = d.cli("run", "--name", "filler", "busybox", "dd", "if=/dev/zero", "of=/big", "bs=1M",
              timeout=120)
    assert r.returncode == 1, r  # dd's own exit: No space left on device
    assert d.free_bytes() < 1 << 20, "the container filled the disk"
    s = state(d, "filler")
    assert (s["Status"], s["ExitCode"]) == ("exited", 1)
    cid = d.inspect("filler")["Id"]
    assert actions(d, cid)[-1] == "die"
    assert "filler" not in d.cli_ok("ps", "--format", "{{.Names}}").split()
    # The way out: rm works on the full disk and gives the space back.
    d.cli_ok("rm", "filler")
    assert d.free_bytes() > 10 << 20
    assert "destroy" in actions(d, cid)
    # Once there is room the reserve is made again (before an ordinary write).
    d.cli_ok("create", "--name", "after", "busybox", "true")
    assert reserve_held(d) >= 1 << 20


def test_an_exit_that_cannot_be_written_is_held_reported_and_written_later(
    diskfull_palletd: DiskfullPalletd,
) -> None:
    d = diskfull_palletd
    d.cli_ok("run", "-d", "--name", "first", "busybox", "sleep", "1000")
    d.cli_ok("run", "-d", "--name", "second", "busybox", "sleep", "1000")
    second = d.inspect("second")["Id"]
    spend_the_reserve(d, "first")
    # Nothing left for the second exit: held in memory, reported as it is.
    d.cli_ok("stop", "-t", "1", "second")
    s = state(d, "second")
    assert (s["Status"], s["ExitCode"]) == ("exited", 137)
    assert d.cli_ok("wait", "second").strip() == "137"
    assert "second" not in d.cli_ok("ps")
    assert "die" not in actions(d, second), "not written yet"
    assert "held in memory" in d.log_path.read_text()
    # What needs room fails, says why, and makes nothing.
    before = d.cli_ok("ps", "-aq", "--no-trunc")
    r = d.cli("create", "--name", "more", "busybox")
    assert r.returncode == 125 and FULL in r.stderr, r
    r = d.cli("tag", "busybox", "other:1")
    assert r.returncode == 1 and FULL in r.stderr and "pallet.db" in r.stderr, r
    assert d.cli_ok("ps", "-aq", "--no-trunc") == before
    assert "other" not in d.cli_ok("images")
    # Room again: the held exit is written, with its die event, in order.
    d.free()
    d.wait_for(lambda: "die" in actions(d, second), 30, what="the held exit written")
    journalled = actions(d, second)
    assert journalled[-1] == "die" and journalled.count("die") == 1, journalled
    d.restart()
    s = state(d, "second")
    assert (s["Status"], s["ExitCode"]) == ("exited", 137), "written to disk, not only held"


def test_a_held_oom_kill_keeps_its_oom_event_before_its_die(
    diskfull_palletd: DiskfullPalletd, tmp_path: Path
) -> None:
    d = diskfull_palletd
    go = tmp_path / "go"  # on another filesystem: touched while palletd's disk is full
    go.mkdir()
    d.cli_ok("run", "-d", "--name", "first", "busybox", "sleep", "1000")
    d.cli_ok("run", "-d", "--name", "hog", "-m", "32m", "-v", f"{go}:/go", "busybox", "sh", "-c",
             "until [ -e /go/now ]; do sleep 0.1; done; "
             "exec dd if=/dev/zero of=/dev/null bs=256M count=1")
    hog = d.inspect("hog")["Id"]
    spend_the_reserve(d, "first")
    (go / "now").touch()
    d.wait_for(lambda: exited(d, "hog"), 60, what="the OOM kill of hog")
    s = state(d, "hog")
    assert (s["OOMKilled"], s["ExitCode"]) == (True, 137), s
    assert not {"oom", "die"} & set(actions(d, hog)), "not written yet"
    # Room again: both of the held end's events, in their order.
    d.free()
    d.wait_for(lambda: "die" in actions(d, hog), 30, what="the held exit written")
    assert actions(d, hog)[-2:] == ["oom", "die"], actions(d, hog)
    # The address the disk kept leased is given back too (retried, not left to a reboot).
    d.wait_for(lambda: not [x for x in d.leases() if x[2] == hog], 30, what="hog's lease released")


def test_stop_rm_and_prune_work_on_a_full_disk(diskfull_palletd: DiskfullPalletd) -> None:
    d = diskfull_palletd
    d.cli_ok("run", "-d", "--name", "web", "busybox", "sleep", "1000")
    d.cli_ok("run", "--name", "data", "busybox", "dd", "if=/dev/zero", "of=/data",
             "bs=1M", "count=4")
    with d.full():
        d.cli_ok("stop", "-t", "1", "web")
        assert state(d, "web")["Status"] == "exited"
        d.cli_ok("rm", "web")
        freed_before = d.free_bytes()
        d.cli_ok("rm", "-f", "data")
        assert d.free_bytes() >= freed_before + (3 << 20), "the container's 4 MiB layer is gone"
        before_prune = d.free_bytes()
        d.cli_ok("image", "prune", "-a", "-f")
        assert d.cli_ok("images", "-q").strip() == ""
        assert d.free_bytes() >= before_prune + (1 << 20), "the image's blob and layer went"
    assert d.cli_ok("ps", "-aq") == ""


def test_rm_works_when_even_the_reserve_is_spent(diskfull_palletd: DiskfullPalletd) -> None:
    d = diskfull_palletd
    d.cli_ok("run", "-d", "--name", "aa", "busybox", "sleep", "1000")
    d.cli_ok("run", "--name", "bb", "busybox", "dd", "if=/dev/zero", "of=/data", "bs=1M",
             "count=2")
    with d.full():
        spend_the_reserve(d, "aa")
        assert d.free_bytes() < 64 << 10
        # No room for any record: rm first empties bb's own layer and log, then records.
        d.cli_ok("rm", "bb")
        assert "bb" not in d.cli_ok("ps", "-a", "--format", "{{.Names}}").split()
        d.cli_ok("rm", "aa")
    assert d.cli_ok("ps", "-aq") == ""


def test_palletd_restarts_and_serves_on_a_full_disk(diskfull_palletd: DiskfullPalletd) -> None:
    d = diskfull_palletd
    d.cli_ok("run", "-d", "--name", "runs", "busybox", "sleep", "1000")
    d.cli_ok("run", "-d", "--name", "ends", "busybox", "sleep", "1000")
    ends_pid = state(d, "ends")["Pid"]
    assert ends_pid > 0
    d.fill()
    os.kill(d.pid, signal.SIGKILL)
    d.proc.wait(10)
    os.kill(ends_pid, signal.SIGKILL)  # it ends while palletd is down
    d.wait_for(lambda: not Path(f"/proc/{ends_pid}").exists(), 30, what="ends' exit")
    d.fill()
    d.start()  # on the full disk
    assert state(d, "runs")["Running"], "re-adopted"
    s = state(d, "ends")
    assert s["Status"] == "exited" and s["ExitCode"] == 137, s
    d.cli_ok("rm", "-f", "runs", "ends")
    assert d.cli_ok("ps", "-aq") == ""
    d.free()


def test_import_and_load_on_a_full_disk_fail_clearly_and_leave_nothing(
    diskfull_palletd: DiskfullPalletd, busybox_tar: Path, tmp_path: Path
) -> None:
    d = diskfull_palletd
    saved = tmp_path / "busybox.tar"
    d.cli_ok("save", "-o", str(saved), "busybox")
    d.cli_ok("rmi", "busybox")
    with d.full():
        r = d.cli("import", str(busybox_tar), "again:1")
        assert r.returncode == 1 and FULL in r.stderr, r
        r = d.cli("load", "-i", str(saved))
        assert r.returncode == 1 and FULL in r.stderr, r
        assert d.cli_ok("images", "-q").strip() == ""
        tmp = d.root / "content" / "tmp"
        assert not tmp.exists() or not any(tmp.iterdir()), "no half-made blobs"
    d.cli_ok("load", "-i", str(saved))
    assert "busybox" in d.cli_ok("images")


def test_an_exec_end_that_cannot_be_written_is_answered_and_written_later(
    diskfull_palletd: DiskfullPalletd,
) -> None:
    d = diskfull_palletd
    d.cli_ok("run", "-d", "--name", "spender", "busybox", "sleep", "1000")
    d.cli_ok("run", "-d", "--name", "host", "busybox", "sleep", "1000")
    host = d.inspect("host")["Id"]
    ex = d.cli_popen("exec", "-i", "host", "sh", "-c", "read x; exit 3", stdin=subprocess.PIPE)
    d.wait_for(lambda: "exec_start: sh -c read x; exit 3" in actions(d, host), 30,
               what="the exec started")
    spend_the_reserve(d, "spender")
    assert ex.stdin is not None
    ex.stdin.write(b"go\n")
    ex.stdin.flush()
    assert ex.wait(30) == 3, "the client hears how it ended"
    assert "exec_die" not in actions(d, host), "not written yet"
    d.free()
    d.wait_for(lambda: "exec_die" in actions(d, host), 30, what="the exec's end written")
    die = [e for e in events(d) if e["Actor"]["ID"] == host and e["Action"] == "exec_die"]
    assert len(die) == 1 and die[0]["Actor"]["Attributes"]["exitCode"] == "3", die
