"""An image import cut short by kill -9 of palletd: no half image, no temp files left."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def temp_files(root: Path) -> list[Path]:
    """Files under the image store's temp directories (`tmp`, `.tmp`) anywhere in root."""
    found: list[Path] = []
    for directory in root.rglob("*"):
        if "containers" in directory.relative_to(root).parts:
            continue  # a container's own /tmp is not the image store's
        if directory.is_dir() and directory.name in ("tmp", ".tmp"):
            found += [p for p in directory.rglob("*")]
    return found


def test_import_killed_mid_way_leaves_no_image_and_no_temp_files(
    fresh_palletd: Any, busybox_tar: Path
) -> None:
    palletd = fresh_palletd
    images_before = palletd.cli_ok("images", "-q")
    data = busybox_tar.read_bytes()
    importer = palletd.cli_popen("import", "-", "halfway:1", stdin=subprocess.PIPE)
    assert importer.stdin is not None
    # Half the tar, then wait until the daemon is spooling it to its temp area.
    importer.stdin.write(data[: len(data) // 2])
    importer.stdin.flush()
    palletd.wait_for(lambda: any(p.is_file() and p.stat().st_size > 0
                                 for p in temp_files(palletd.root)),
                     20, what="the upload to reach palletd's temp area")
    palletd.proc.send_signal(signal.SIGKILL)
    palletd.proc.wait(10)
    try:
        importer.stdin.write(data[len(data) // 2:])
        importer.stdin.close()
    except BrokenPipeError:
        pass
    importer.wait(30)
    assert importer.returncode != 0
    assert b"palletd" in importer.stderr.read()  # type: ignore[union-attr]

    palletd._close_channel()
    palletd.start()
    assert temp_files(palletd.root) == [], "a restarted palletd left the cut-short upload"
    assert palletd.cli_ok("images", "-q") == images_before
    assert palletd.cli("image", "inspect", "halfway:1").returncode != 0
    # The same import, whole this time, works.
    palletd.cli_ok("import", str(busybox_tar), "halfway:1", timeout=120)
    time.sleep(0.1)
    assert "halfway" in palletd.cli_ok("images")
    palletd.cli_ok("run", "--rm", "halfway:1", "true")
