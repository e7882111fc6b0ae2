"""commit cut short by kill -9 of palletd: no image missing its layer, no half image
listed, nothing left on disk that no image names; a container frozen for the commit runs
on (its shim thaws it when palletd's connection goes)."""

from __future__ import annotations

from typing import Any

import pytest

from diskfull_harness import DiskfullPalletd, diskfull_factory, diskfull_palletd
from test_crash_image_ops import store_entries

__all__ = ["diskfull_factory", "diskfull_palletd"]  # fixtures

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("point, committed", [
    ("commit:staged", False),  # layer unpacked, blob written and verified, no record yet
    ("commit:recorded", True),  # the record and its events in, the freeze not yet let go
])
def test_commit_killed_leaves_no_half_image(fresh_palletd: Any, point: str, committed: bool) -> None:
    palletd = fresh_palletd
    palletd.cli_ok("run", "-d", "--name", "busy", "busybox:latest", "sh", "-c",
                   "head -c 300000 /dev/urandom > /data.bin; echo ready > /ready; exec sleep 1000")
    palletd.wait_for(lambda: "A /ready" in palletd.cli_ok("diff", "busy"), 20, what="the write")
    before = store_entries(palletd.root)
    result = palletd.crash_during(point, "commit", "busy", "crashed/img:1")
    assert result.returncode != 0
    after = store_entries(palletd.root)
    assert after["temp"] == []
    listed = palletd.cli_ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    if committed:
        assert "crashed/img:1" in listed
        assert len(after["layers"]) == len(before["layers"]) + 1
        # Whole: it runs, with the container's file.
        out = palletd.cli_ok("run", "--rm", "crashed/img:1", "sh", "-c", "wc -c < /data.bin; cat /ready")
        assert out.split() == ["300000", "ready"]
    else:
        assert "crashed/img:1" not in listed
        assert after == before, "a commit cut short before its record left blobs or layers"
    # Frozen when palletd died: thawed by its shim, still running, adopted again.
    assert palletd.inspect("busy")["State"]["Running"] is True
    assert palletd.cli_ok("exec", "busy", "echo", "alive") == "alive\n"
    # And the commit works now.
    palletd.cli_ok("commit", "busy", "crashed/img:2")
    assert palletd.cli_ok("run", "--rm", "crashed/img:2", "cat", "/ready") == "ready\n"


def test_commit_on_a_full_disk_is_a_clear_error_and_leaves_nothing(
    diskfull_palletd: DiskfullPalletd,
) -> None:
    """The container's changes need more room than the state disk has left."""
    d = diskfull_palletd
    d.cli_ok("run", "--name", "big", "busybox:latest", "sh", "-c",
             "head -c 3000000 /dev/urandom > /big.bin")
    before = store_entries(d.root)
    with d.full(leave=1_000_000):
        result = d.cli("commit", "big", "full/img:1")
        assert result.returncode == 1
        assert "cannot commit the container" in result.stderr and "is full" in result.stderr
        assert store_entries(d.root) == before  # nothing half-written left behind
    assert "full/img" not in d.cli_ok("images")
    # With room again, the same commit works.
    d.cli_ok("commit", "big", "full/img:1")
