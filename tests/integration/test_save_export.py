"""save / load / export / history / image prune / system df through the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def _skopeo() -> str:
    found = shutil.which("skopeo")
    if not found:
        pytest.skip("skopeo is missing: apt-get install skopeo")
    return found


def test_save_is_a_docker_archive_and_an_oci_layout_and_loads_back(
    palletd: Any, image: str, tmp_path: Path
) -> None:
    palletd.cli_ok("tag", image, "saved/one:v1")
    archive = tmp_path / "images.tar"
    assert palletd.cli_ok("save", "-o", str(archive), "saved/one:v1") == ""
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    assert {"oci-layout", "index.json", "manifest.json"} <= names
    assert manifest[0]["RepoTags"] == ["saved/one:v1"]
    assert all(layer in names for layer in manifest[0]["Layers"])
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == "docker.io/saved/one:v1"

    image_id = palletd.inspect("saved/one:v1")["Id"]
    palletd.cli_ok("rmi", "saved/one:v1")
    out = palletd.cli_ok("load", "-i", str(archive))
    assert out == "Loaded image: saved/one:v1\n"
    assert palletd.inspect("saved/one:v1")["Id"] == image_id
    assert palletd.cli_ok("run", "--rm", "saved/one:v1", "echo", "loaded") == "loaded\n"

    oci = tmp_path / "oci.tar"
    palletd.cli_ok("save", "--format", "oci", "-o", str(oci), "saved/one:v1")
    with tarfile.open(oci) as tar:
        assert "manifest.json" not in tar.getnames()
    palletd.cli_ok("rmi", "saved/one:v1")
    assert palletd.cli_ok("load", "-i", str(oci)) == "Loaded image: saved/one:v1\n"


def test_save_to_stdout_and_errors(palletd: Any, image: str, tmp_path: Path) -> None:
    result = palletd.cli("save", image, text=False)
    assert result.returncode == 0
    archive = tmp_path / "stdout.tar"
    archive.write_bytes(result.stdout)
    with tarfile.open(archive) as tar:
        assert "manifest.json" in tar.getnames()
    missing = palletd.cli("save", "-o", str(tmp_path / "x.tar"), "no/such:image")
    assert missing.returncode == 1 and "No such image: no/such:image" in missing.stderr
    assert not (tmp_path / "x.tar").exists()
    assert not list(tmp_path.glob("*.pallet-tmp"))


def test_skopeo_reads_saved_archives(palletd: Any, image: str, tmp_path: Path) -> None:
    skopeo = _skopeo()
    archive = tmp_path / "images.tar"
    palletd.cli_ok("save", "-o", str(archive), image)
    for source in (f"docker-archive:{archive}", f"oci-archive:{archive}:latest"):
        out = subprocess.run(
            [skopeo, "inspect", "--raw", source], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
    copied = subprocess.run(
        [skopeo, "copy", "-q", f"docker-archive:{archive}", f"oci-archive:{tmp_path / 'copy.tar'}:back:1"],
        capture_output=True, text=True, timeout=120,
    )
    assert copied.returncode == 0, copied.stderr
    palletd.cli_ok("load", "-i", str(tmp_path / "copy.tar"))


def test_export_is_the_containers_merged_filesystem(palletd: Any, image: str, tmp_path: Path) -> None:
    palletd.cli_ok("run", "--name", "exp", image, "sh", "-c", "echo new > /tmp/made; rm /etc/group")
    out = tmp_path / "rootfs.tar"
    assert palletd.cli_ok("export", "-o", str(out), "exp") == ""
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        assert tar.extractfile("tmp/made").read() == b"new\n"  # type: ignore[union-attr]
    assert "bin/busybox" in names and "etc/passwd" in names
    assert "etc/group" not in names  # deleted in the container: its whiteout hides it
    assert not any(name.startswith(("/", "..")) for name in names)
    assert palletd.mounts() == []  # the export mount is gone
    missing = palletd.cli("export", "-o", str(tmp_path / "none.tar"), "nope")
    assert missing.returncode == 1 and "No such container: nope" in missing.stderr


def test_history_prune_and_df(palletd: Any, image: str, tmp_path: Path) -> None:
    history = palletd.cli_ok("history", image).splitlines()
    assert history[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert "pallet import" in history[1]
    assert palletd.cli_ok("image", "history", "-q", image).strip() == palletd.inspect(image)["Id"][7:19]

    # A dangling image: load an archive of an image, then take its name away.
    palletd.cli_ok("tag", image, "prune/me:1")
    df = palletd.cli_ok("system", "df")
    assert df.splitlines()[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert df.splitlines()[1].split()[:3] == ["Images", "1", "0"]

    palletd.cli_ok("create", "--name", "user", image, "true")
    kept = palletd.cli_ok("image", "prune", "-a", "-f")
    assert kept.strip() == "Total reclaimed space: 0B"
    assert palletd.cli_ok("system", "df").splitlines()[1].split()[:3] == ["Images", "1", "1"]
    palletd.cli_ok("rm", "user")
    pruned = palletd.cli_ok("image", "prune", "-a", "-f")
    assert "deleted: " + palletd.base_image_id in pruned
    assert "untagged: prune/me:1" in pruned
    assert "Total reclaimed space: 0B" not in pruned
    assert palletd.cli_ok("images", "-q") == ""
    blobs = palletd.root / "content" / "blobs" / "sha256"
    assert list(blobs.iterdir()) == []
    assert [p for p in (palletd.root / "layers").iterdir() if not p.name.startswith(".")] == []
    refused = palletd.cli("image", "prune")
    assert refused.returncode == 1 and "confirm with -f" in refused.stderr


def test_save_several_images_loads_them_all(palletd: Any, image: str, tmp_path: Path) -> None:
    palletd.cli_ok("tag", image, "multi/a:1")
    palletd.cli_ok("tag", image, "multi/b:2")
    archive = tmp_path / "two.tar"
    palletd.cli_ok("save", "-o", str(archive), "multi/a:1", "multi/b:2")
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert [entry["RepoTags"] for entry in manifest] == [["multi/a:1"], ["multi/b:2"]]
    palletd.cli_ok("rmi", "multi/a:1", "multi/b:2")
    out = palletd.cli_ok("load", "-i", str(archive))
    assert out.splitlines() == ["Loaded image: multi/a:1", "Loaded image: multi/b:2"]
