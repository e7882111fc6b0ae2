"""A blob corrupted on disk (a flipped byte in `<root>/content/blobs/sha256/<hex>`).

Whatever serves a blob (save, push, history) checks it against its digest: a corrupted
one is reported, naming the blob and what to do, with a non-zero exit; nothing is
served, nothing is changed (no partial archive, nothing pushed), and the image can still
be removed, and loaded again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from registry_harness import Registry

pytestmark = pytest.mark.integration
# The registries these tests start listen on the host's loopback.
PALLETD_ON_HOST_LOOPBACK = True

IMAGE = "busybox:latest"
ADVICE = "remove the image that uses it (busybox:latest) and load or pull it again"


def blob_dir(palletd: Any) -> Path:
    return Path(palletd.root) / "content" / "blobs" / "sha256"


def image_blobs(palletd: Any, image: str) -> dict[str, str]:
    """The digests of an image's config, manifest and (only) layer, read off the disk."""
    config = palletd.inspect(image)["Id"]
    for path in blob_dir(palletd).iterdir():
        try:
            doc = json.loads(path.read_bytes())
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("config", {}).get("digest") == config:
            (layer,) = doc["layers"]
            return {"config": config, "manifest": "sha256:" + path.name, "layer": layer["digest"]}
    raise AssertionError(f"no manifest of {image} in the content store")


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    assert "sha256:" + hashlib.sha256(data).hexdigest() != "sha256:" + path.name


def files_under(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("which", ["layer", "config", "manifest"])
def test_a_corrupted_blob_is_reported_not_served_and_the_image_can_go(
    fresh_palletd: Any, registry: Registry, tmp_path: Path, which: str
) -> None:
    palletd = fresh_palletd
    good = tmp_path / "good.tar"
    palletd.cli_ok("save", "-o", str(good), IMAGE)
    blobs = image_blobs(palletd, IMAGE)
    digest = blobs[which]
    flip_byte(blob_dir(palletd) / digest.removeprefix("sha256:"))
    images_before = palletd.cli_ok("images", "-q", "--no-trunc"), palletd.inspect(IMAGE)
    store_before = files_under(blob_dir(palletd))

    # save -o: a clear error naming the blob, non-zero exit, and no archive file at all.
    out = tmp_path / "out.tar"
    saved = palletd.cli("save", "-o", str(out), IMAGE)
    assert saved.returncode != 0
    assert f"Error: blob {digest} is corrupted on disk" in saved.stderr and ADVICE in saved.stderr
    assert files_under(tmp_path) == ["good.tar"]
    # ... and to stdout: nothing written.
    to_stdout = palletd.cli("save", IMAGE, text=False)
    assert to_stdout.returncode != 0 and to_stdout.stdout == b""
    assert f"blob {digest} is corrupted".encode() in to_stdout.stderr

    # push: the same error, and the registry gets no manifest (so no tag).
    ref = f"{registry.host}/corrupt/{which}:1"
    palletd.cli_ok("tag", IMAGE, ref)
    pushed = palletd.cli("push", ref)
    assert pushed.returncode != 0
    assert f"Error: blob {digest} is corrupted on disk" in pushed.stderr
    assert f"remove the image that uses it (busybox:latest, {ref}) and load or pull it again" in pushed.stderr
    assert registry.catalog_tags(f"corrupt/{which}") == []
    palletd.cli_ok("rmi", ref)

    # history reads the config: refused when that is what is damaged, shown otherwise.
    history = palletd.cli("image", "history", IMAGE)
    if which == "config":
        assert history.returncode != 0 and f"blob {digest} is corrupted" in history.stderr
    else:
        assert history.returncode == 0, history.stderr

    # Nothing was changed: the same images, the same blobs (the damaged one left for rmi).
    assert (palletd.cli_ok("images", "-q", "--no-trunc"), palletd.inspect(IMAGE)) == images_before
    assert files_under(blob_dir(palletd)) == store_before

    # The advice works: rmi removes the image and its blobs, a load brings it back whole.
    palletd.cli_ok("rmi", IMAGE)
    assert palletd.cli_ok("images", "-q") == ""
    assert digest.removeprefix("sha256:") not in files_under(blob_dir(palletd))
    palletd.cli_ok("load", "-i", str(good))
    again = tmp_path / "again.tar"
    palletd.cli_ok("save", "-o", str(again), IMAGE)
    assert again.read_bytes() == good.read_bytes()
    assert palletd.cli_ok("run", "--rm", IMAGE, "echo", "whole again") == "whole again\n"


def test_a_blob_two_images_share_names_both_and_a_load_writes_it_whole(
    fresh_palletd: Any, busybox_tar: Path, tmp_path: Path
) -> None:
    palletd = fresh_palletd
    good = tmp_path / "good.tar"
    palletd.cli_ok("save", "-o", str(good), IMAGE)
    palletd.cli_ok("import", str(busybox_tar), "twin:1", "-c", "ENV TWIN=1")
    layer = image_blobs(palletd, IMAGE)["layer"]
    assert image_blobs(palletd, "twin:1")["layer"] == layer  # the same rootfs, one blob
    flip_byte(blob_dir(palletd) / layer.removeprefix("sha256:"))

    saved = palletd.cli("save", "-o", str(tmp_path / "out.tar"), "twin:1")
    assert saved.returncode != 0
    assert f"blob {layer} is corrupted on disk" in saved.stderr
    assert "remove the images that use it (twin:1; busybox:latest) and load or pull them again" in saved.stderr

    # Removing one image keeps the blob (the other uses it); loading writes it whole.
    palletd.cli_ok("rmi", IMAGE)
    assert palletd.cli("save", "-o", str(tmp_path / "out.tar"), "twin:1").returncode != 0
    palletd.cli_ok("load", "-i", str(good))
    palletd.cli_ok("save", "-o", str(tmp_path / "out.tar"), IMAGE, "twin:1")
    assert palletd.cli_ok("run", "--rm", "twin:1", "sh", "-c", "echo $TWIN") == "1\n"
