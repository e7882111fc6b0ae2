"""Image load, tag and rmi cut short by kill -9 of palletd: the old state or the new one,
never half of each; no temp files, no layer or blob that no image names; and the events
of a change are journalled exactly when the change itself is."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def image_events(palletd: Any) -> list[str]:
    """Every image event in the journal, as `action name`."""
    out = palletd.cli_ok("events", "--since-seq", "0", "--until", "0s", "--filter", "type=image",
                         "--format", "{{.Action}} {{.Actor.Attributes.name}}", timeout=30)
    return out.splitlines()


def store_entries(root: Path) -> dict[str, list[str]]:
    """What the image store holds on disk: unpacked layers, blobs, and temp leftovers."""
    blobs = root / "content" / "blobs" / "sha256"
    temps = [
        str(p) for d in root.rglob("*")
        if d.is_dir() and d.name in ("tmp", ".tmp") and "containers" not in d.parts
        for p in d.iterdir()
    ]
    return {
        "layers": sorted(p.name for p in (root / "layers").iterdir() if not p.name.startswith(".")),
        "blobs": sorted(p.name for p in blobs.iterdir()) if blobs.exists() else [],
        "temp": temps,
    }


def one_file_tar(path: Path, content: bytes) -> Path:
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("crash-test.txt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return path


@pytest.fixture
def archive(fresh_palletd: Any, tmp_path: Path) -> Path:
    """A saved image with a layer of its own, no longer in the store."""
    tar = one_file_tar(tmp_path / "rootfs.tar", os.urandom(4096))
    fresh_palletd.cli_ok("import", str(tar), "crashy:1")
    saved = tmp_path / "crashy-save.tar"
    fresh_palletd.cli_ok("save", "crashy:1", "-o", str(saved))
    fresh_palletd.cli_ok("rmi", "crashy:1")
    return saved


@pytest.mark.parametrize("point, loaded", [("load:staged", False), ("load:recorded", True)])
def test_load_killed_leaves_old_or_new_state(
    fresh_palletd: Any, archive: Path, point: str, loaded: bool
) -> None:
    palletd = fresh_palletd
    before = store_entries(palletd.root)
    events_before = image_events(palletd)
    assert palletd.crash_during(point, "load", "-i", str(archive)).returncode != 0
    after = store_entries(palletd.root)
    assert after["temp"] == []
    assert image_events(palletd) == events_before + (["load crashy:1"] if loaded else [])
    inspected = palletd.cli("image", "inspect", "crashy:1")
    if loaded:
        assert inspected.returncode == 0
        assert len(after["layers"]) == len(before["layers"]) + 1
    else:
        assert inspected.returncode != 0
        assert after == before, "a load cut short before its records left blobs or layers"
    # Either way the same load works now, and the image is whole.
    assert "Loaded image: crashy:1" in palletd.cli_ok("load", "-i", str(archive))
    assert palletd.cli_ok("image", "inspect", "-f", "{{len .RootFS.Layers}}", "crashy:1") == "1\n"


def test_tag_killed_after_its_record_keeps_the_tag(fresh_palletd: Any, image: str) -> None:
    palletd = fresh_palletd
    events_before = image_events(palletd)
    assert palletd.crash_during("tag:recorded", "tag", image, "renamed:7").returncode != 0
    assert image_events(palletd) == events_before + ["tag renamed:7"]
    assert palletd.cli_ok("image", "inspect", "-f", "{{.Id}}", "renamed:7") == (
        palletd.cli_ok("image", "inspect", "-f", "{{.Id}}", image)
    )
    palletd.cli_ok("run", "--rm", "renamed:7", "true")


def test_rmi_killed_between_records_and_files_collects_the_files(
    fresh_palletd: Any, tmp_path: Path
) -> None:
    palletd = fresh_palletd
    before = store_entries(palletd.root)
    tar = one_file_tar(tmp_path / "rootfs.tar", os.urandom(4096))
    palletd.cli_ok("import", str(tar), "doomed:1")
    assert store_entries(palletd.root) != before
    events_before = image_events(palletd)
    assert palletd.crash_during("rmi:recorded", "rmi", "doomed:1").returncode != 0
    assert image_events(palletd) == events_before + ["untag doomed:1", "delete doomed:1"]
    assert palletd.cli("image", "inspect", "doomed:1").returncode != 0
    assert store_entries(palletd.root) == before, "layers or blobs of the removed image remain"
