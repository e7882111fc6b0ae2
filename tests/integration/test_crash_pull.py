"""A pull cut short by kill -9 of palletd (after its blobs and layers are staged, or after
its records are committed): the old state or the new one, never half of each."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from registry_harness import Registry
from test_crash_image_ops import image_events, one_file_tar, store_entries

pytestmark = pytest.mark.integration
# The registries these tests start listen on the host's loopback.
PALLETD_ON_HOST_LOOPBACK = True


@pytest.mark.parametrize("point, pulled", [("pull:staged", False), ("pull:recorded", True)])
def test_pull_killed_leaves_old_or_new_state(
    fresh_palletd: Any, registry: Registry, tmp_path: Path, point: str, pulled: bool
) -> None:
    palletd = fresh_palletd
    ref = f"{registry.host}/crash/{point.replace(':', '-')}:1"
    palletd.cli_ok("import", str(one_file_tar(tmp_path / "rootfs.tar", os.urandom(8192))), ref)
    palletd.cli_ok("push", ref)
    palletd.cli_ok("rmi", ref)
    before = store_entries(palletd.root)
    events_before = image_events(palletd)

    assert palletd.crash_during(point, "pull", ref).returncode != 0
    after = store_entries(palletd.root)
    assert after["temp"] == []
    assert not any((palletd.root / "content" / "ingest").iterdir()), "a download was left"
    new_events = image_events(palletd)[len(events_before):]
    assert image_events(palletd)[: len(events_before)] == events_before
    if pulled:
        assert palletd.cli("image", "inspect", ref).returncode == 0
        assert new_events and all(e.startswith("pull ") for e in new_events), new_events
        assert f"pull {ref}" in new_events
    else:
        assert palletd.cli("image", "inspect", ref).returncode != 0
        assert new_events == []
        assert after == before, "a pull cut short before its records left blobs or layers"
    # Either way the same pull works now, and the image is whole.
    palletd.cli_ok("pull", ref)
    assert palletd.cli_ok("image", "inspect", "-f", "{{len .RootFS.Layers}}", ref) == "1\n"
    palletd.cli_ok("save", ref, "-o", str(tmp_path / "saved.tar"))


def test_stale_partial_downloads_are_removed_at_start(fresh_palletd: Any) -> None:
    """A download cut short (palletd killed mid-pull) is kept a while for the pull to resume,
    then removed: at the next start, or after the next pull."""
    palletd = fresh_palletd
    ingest = palletd.root / "content" / "ingest"
    stale, recent = ingest / ("a" * 64), ingest / ("b" * 64)
    for path in (stale, recent):
        path.write_bytes(os.urandom(1024))
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    palletd.proc.send_signal(signal.SIGKILL)
    palletd.proc.wait(10)
    palletd._close_channel()
    palletd.start()
    assert sorted(p.name for p in ingest.iterdir()) == [recent.name]
