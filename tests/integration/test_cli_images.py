"""Images through the CLI: images, image inspect, tag, rmi, import, load (docker and OCI)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import platform
import re
import secrets
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

MTIME = 1_700_000_000
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
IMAGE_ID = re.compile(r"^sha256:[0-9a-f]{64}$")

# --------------------------------------------------------------------------- tar builders

Entry = tuple[str, str, bytes | str]  # (name, "file"|"dir"|"symlink", content or target)


def layer_tar(entries: Iterable[Entry]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, content in entries:
            info = tarfile.TarInfo(name)
            info.mtime = MTIME
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind == "symlink":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, str(content), 0o777
                tar.addfile(info)
            else:
                data = content if isinstance(content, bytes) else content.encode()
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def archive(files: dict[str, bytes]) -> bytes:
    """A tar holding `files` (name -> bytes), in that order."""
    return layer_tar((name, "file", data) for name, data in files.items())


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def three_layers(busybox_tar: Path) -> list[bytes]:
    """busybox, then files, then whiteouts (a file, an opaque dir, a file from layer 1)."""
    return [
        busybox_tar.read_bytes(),
        layer_tar([
            ("data", "dir", b""),
            ("data/a", "file", "a\n"),
            ("data/b", "file", "b\n"),
            ("gone.txt", "file", "remove me\n"),
        ]),
        layer_tar([
            (".wh.gone.txt", "file", b""),
            ("data", "dir", b""),
            ("data/.wh..wh..opq", "file", b""),
            ("data/c", "file", "c\n"),
            ("etc", "dir", b""),
            ("etc/.wh.pallet-test-image", "file", b""),
            ("hello.txt", "file", "hello from layer 3\n"),
        ]),
    ]


def image_config(layers: list[bytes]) -> bytes:
    return json.dumps({
        "architecture": ARCH,
        "os": "linux",
        "created": "2026-01-02T03:04:05Z",
        "author": "pallet tests",
        "config": {
            "Cmd": ["cat", "/hello.txt"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Labels": {"built.by": "test"},
        },
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in layers]},
        "history": [{"created_by": f"layer {i}"} for i in range(len(layers))],
    }, sort_keys=True).encode()


def docker_archive(layers: list[bytes], repo_tags: list[str] | None) -> tuple[bytes, str]:
    """A `docker save` archive; returns it and the image id."""
    config = image_config(layers)
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    files = {config_name: config}
    layer_paths = []
    for layer in layers:
        path = hashlib.sha256(layer).hexdigest() + "/layer.tar"
        files[path.replace("layer.tar", "VERSION")] = b"1.0"
        files[path] = layer
        layer_paths.append(path)
    manifest = [{"Config": config_name, "RepoTags": repo_tags, "Layers": layer_paths}]
    files["manifest.json"] = json.dumps(manifest).encode()
    return archive(files), sha256(config)


def oci_archive(layers: list[bytes], reference: str) -> tuple[bytes, str]:
    """An OCI image-layout archive (first layer gzip-compressed); returns it and the image id."""
    config = image_config(layers)
    blobs = {sha256(config): config}
    layer_descriptors = []
    for i, layer in enumerate(layers):
        if i == 0:
            blob = gzip.compress(layer, mtime=0)
            media_type = "application/vnd.oci.image.layer.v1.tar+gzip"
        else:
            blob, media_type = layer, "application/vnd.oci.image.layer.v1.tar"
        blobs[sha256(blob)] = blob
        layer_descriptors.append({"mediaType": media_type, "digest": sha256(blob), "size": len(blob)})
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(config),
            "size": len(config),
        },
        "layers": layer_descriptors,
    }).encode()
    blobs[sha256(manifest)] = manifest
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(manifest),
            "size": len(manifest),
            "annotations": {
                "io.containerd.image.name": reference,
                "org.opencontainers.image.ref.name": reference,
            },
        }],
    }).encode()
    files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": index}
    files.update({"blobs/sha256/" + digest.split(":")[1]: data for digest, data in blobs.items()})
    return archive(files), sha256(config)


def image_ids(palletd: Any) -> set[str]:
    return {img.id for img in palletd.images()}


def check_loaded_filesystem(palletd: Any, reference: str) -> None:
    assert palletd.cli_ok("run", "--rm", reference) == "hello from layer 3\n"
    out = palletd.cli_ok(
        "run", "--rm", reference, "sh", "-c",
        "ls /data; test -e /gone.txt && echo gone-still-there;"
        " test -e /etc/pallet-test-image && echo marker-still-there; test -e /etc/passwd && echo ok",
    )
    assert out == "c\nok\n", "whiteouts and the opaque directory were not applied"


# --------------------------------------------------------------------------- listing


def test_images_table(palletd: Any, image: str) -> None:
    lines = palletd.cli_ok("images").splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    [row] = lines[1:]
    columns = re.split(r"\s{2,}", row.strip())
    assert columns[:3] == ["busybox", "latest", palletd.base_image_id[7:19]]
    assert re.fullmatch(r"[\d.]+\s?[kKMG]?B", columns[-1]), columns
    assert palletd.cli_ok("images", "-q") == palletd.base_image_id[7:19] + "\n"
    assert palletd.base_image_id[7:] in palletd.cli_ok("images", "-q", "--no-trunc")
    assert palletd.cli_ok("image", "ls", "-q") == palletd.base_image_id[7:19] + "\n"


def test_image_inspect(palletd: Any, image: str, busybox_tar: Path) -> None:
    [data] = json.loads(palletd.cli_ok("image", "inspect", "busybox"))
    assert data["Id"] == palletd.base_image_id
    assert data["RepoTags"] == ["busybox:latest"]
    assert isinstance(data["RepoDigests"], list)
    assert data["Os"] == "linux"
    assert data["Architecture"] == ARCH
    assert data["Size"] > len(Path("/bin/busybox").read_bytes()) * 0.9
    assert data["Config"]["Cmd"] == ["sh"]
    assert data["RootFS"]["Type"] == "layers"
    assert data["RootFS"]["Layers"] == [sha256(busybox_tar.read_bytes())]
    for key in ("Created", "Author", "Comment"):
        assert key in data
    for key in ("Env", "Entrypoint", "WorkingDir", "User", "Labels", "StopSignal",
                "ExposedPorts", "Volumes"):
        assert key in data["Config"], key
    by_id = json.loads(palletd.cli_ok("image", "inspect", palletd.base_image_id[7:19]))
    assert by_id[0]["Id"] == palletd.base_image_id
    assert palletd.cli_ok("image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", "busybox") == (
        f"linux/{ARCH}\n"
    )


# --------------------------------------------------------------------------- tag and rmi


def test_tag_and_untag(palletd: Any, image: str) -> None:
    assert palletd.cli_ok("tag", "busybox", "mine:1.0") == ""
    palletd.cli_ok("image", "tag", "busybox:latest", "registry.example:5000/team/app:v2")
    [data] = json.loads(palletd.cli_ok("image", "inspect", "mine:1.0"))
    assert data["Id"] == palletd.base_image_id
    assert set(data["RepoTags"]) == {
        "busybox:latest", "mine:1.0", "registry.example:5000/team/app:v2"
    }
    assert "mine" in palletd.cli_ok("images")
    # Untagging one reference leaves the image and its other references.
    assert palletd.cli_ok("rmi", "mine:1.0") == "Untagged: mine:1.0\n"
    assert palletd.cli_ok("image", "rm", "registry.example:5000/team/app:v2") == (
        "Untagged: registry.example:5000/team/app:v2\n"
    )
    assert image_ids(palletd) == {palletd.base_image_id}
    assert palletd.cli_ok("run", "--rm", "busybox", "true") == ""


def test_tag_moves_a_reference(palletd: Any, image: str, busybox_tar: Path) -> None:
    other = palletd.cli_ok("import", str(busybox_tar), "other:1").strip()
    palletd.cli_ok("tag", "other:1", "moving:x")
    palletd.cli_ok("tag", "busybox", "moving:x")
    [data] = json.loads(palletd.cli_ok("image", "inspect", "moving:x"))
    assert data["Id"] == palletd.base_image_id
    [data] = json.loads(palletd.cli_ok("image", "inspect", other))
    assert data["RepoTags"] == ["other:1"]


def test_rmi_deletes_an_image(palletd: Any, image: str, busybox_tar: Path) -> None:
    image_id = palletd.cli_ok("import", str(busybox_tar), "doomed:1").strip()
    out = palletd.cli_ok("rmi", "doomed:1")
    assert out == f"Untagged: doomed:1\nDeleted: {image_id}\n"
    assert image_ids(palletd) == {palletd.base_image_id}
    assert "doomed" not in palletd.cli_ok("images", "-a")


def test_rmi_is_refused_while_a_container_uses_the_image(
    palletd: Any, image: str, busybox_tar: Path
) -> None:
    image_id = palletd.cli_ok("import", str(busybox_tar), "used:1").strip()
    palletd.cli_ok("create", "--name", "user", "used:1", "true")
    result = palletd.cli("rmi", "used:1")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ")
    assert "used:1" in result.stderr or image_id[7:19] in result.stderr
    assert "user" in result.stderr or palletd.inspect("user")["Id"][:12] in result.stderr
    assert image_id in image_ids(palletd)
    [data] = json.loads(palletd.cli_ok("image", "inspect", "used:1"))
    assert data["RepoTags"] == ["used:1"]
    # With -f it goes.
    out = palletd.cli_ok("rmi", "-f", "used:1")
    assert "Untagged: used:1" in out.splitlines()
    assert palletd.cli("image", "inspect", "used:1").returncode == 1


def test_rmi_by_id_with_several_tags_needs_force(palletd: Any, image: str, busybox_tar: Path) -> None:
    image_id = palletd.cli_ok("import", str(busybox_tar), "multi:1").strip()
    palletd.cli_ok("tag", "multi:1", "multi:2")
    result = palletd.cli("rmi", image_id[7:19])
    assert result.returncode == 1
    assert image_id in image_ids(palletd)
    out = palletd.cli_ok("rmi", "-f", image_id[7:19]).splitlines()
    assert set(out) == {"Untagged: multi:1", "Untagged: multi:2", f"Deleted: {image_id}"}


# --------------------------------------------------------------------------- import


def test_import_from_a_file(palletd: Any, image: str, busybox_tar: Path) -> None:
    out = palletd.cli_ok("import", str(busybox_tar), "imported:file", "-m", "from a file")
    image_id = out.strip()
    assert IMAGE_ID.match(image_id), out
    [data] = json.loads(palletd.cli_ok("image", "inspect", "imported:file"))
    assert data["Id"] == image_id
    assert data["Comment"] == "from a file"
    assert data["RootFS"]["Layers"] == [sha256(busybox_tar.read_bytes())]
    assert palletd.cli_ok("run", "--rm", "imported:file", "cat", "/etc/pallet-test-image") == (
        "busybox\n"
    )


def test_import_from_stdin_gzipped(palletd: Any, image: str, busybox_tar: Path) -> None:
    data = gzip.compress(busybox_tar.read_bytes())
    result = palletd.cli("import", "-", "imported:stdin", input=data)
    assert result.returncode == 0, result.stderr
    assert IMAGE_ID.match(result.stdout.decode().strip())
    [info] = json.loads(palletd.cli_ok("image", "inspect", "imported:stdin"))
    # The diff id is the digest of the uncompressed tar.
    assert info["RootFS"]["Layers"] == [sha256(busybox_tar.read_bytes())]
    assert palletd.cli_ok("run", "--rm", "imported:stdin", "echo", "ok") == "ok\n"


def test_import_without_a_reference_is_untagged(palletd: Any, image: str, busybox_tar: Path) -> None:
    image_id = palletd.cli_ok("image", "import", str(busybox_tar)).strip()
    assert IMAGE_ID.match(image_id)
    rows = [r for r in palletd.cli_ok("images", "-a").splitlines()[1:] if image_id[7:19] in r]
    assert len(rows) == 1
    assert re.split(r"\s{2,}", rows[0].strip())[:2] == ["<none>", "<none>"]
    assert palletd.cli_ok("run", "--rm", image_id[7:19], "echo", "by id") == "by id\n"


def test_import_refuses_path_traversal(palletd: Any, image: str, tmp_path: Path) -> None:
    marker = f"plt-evil-{secrets.token_hex(4)}"
    evil_name = f"../../../../../../../../tmp/{marker}"
    hostile = tmp_path / "hostile.tar"
    hostile.write_bytes(layer_tar([("bin", "dir", b""), (evil_name, "file", "pwned\n")]))
    before = image_ids(palletd)
    result = palletd.cli("import", str(hostile), "hostile:1")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ")
    assert evil_name in result.stderr or f"tmp/{marker}" in result.stderr, result.stderr
    assert not Path("/tmp", marker).exists()
    assert image_ids(palletd) == before
    assert palletd.cli("image", "inspect", "hostile:1").returncode == 1
    assert list((palletd.root).rglob(marker)) == [], "half-made layer left on disk"


def test_import_never_writes_through_a_symlink(palletd: Any, image: str, tmp_path: Path) -> None:
    marker = f"plt-evil-{secrets.token_hex(4)}"
    hostile = tmp_path / "symlink.tar"
    hostile.write_bytes(layer_tar([
        ("escape", "symlink", "/tmp"),
        (f"escape/{marker}", "file", "pwned\n"),
    ]))
    before = image_ids(palletd)
    result = palletd.cli("import", str(hostile), "hostile:2")
    assert not Path("/tmp", marker).exists(), "the tar wrote outside the layer"
    if result.returncode != 0:
        assert "escape" in result.stderr
        assert image_ids(palletd) == before


def test_import_refuses_a_hard_link_out_of_the_layer(
    palletd: Any, image: str, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("original\n")
    link_name = "../" * 20 + str(victim).lstrip("/")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("pw")
        info.type, info.linkname, info.mtime = tarfile.LNKTYPE, link_name, MTIME
        tar.addfile(info)
        data = b"pwned\n"
        info = tarfile.TarInfo("pw")  # a later entry would write through the link
        info.size, info.mode, info.mtime = len(data), 0o644, MTIME
        tar.addfile(info, io.BytesIO(data))
    hostile = tmp_path / "hardlink.tar"
    hostile.write_bytes(out.getvalue())
    before = image_ids(palletd)
    result = palletd.cli("import", str(hostile), "hostile:3")
    assert victim.read_text() == "original\n"
    assert victim.stat().st_nlink == 1, "the layer hard-linked a host file"
    assert result.returncode == 1
    assert "pw" in result.stderr
    assert image_ids(palletd) == before


def test_import_of_garbage_fails_cleanly(palletd: Any, image: str, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar archive" * 100)
    before = image_ids(palletd)
    result = palletd.cli("import", str(junk), "junk:1")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ")
    assert image_ids(palletd) == before


def test_import_of_a_missing_file(palletd: Any, image: str) -> None:
    result = palletd.cli("import", "/nonexistent.tar", "x:1")
    assert result.returncode == 1
    assert "/nonexistent.tar" in result.stderr


# --------------------------------------------------------------------------- load


def test_load_docker_archive_with_whiteouts(
    palletd: Any, image: str, busybox_tar: Path, tmp_path: Path
) -> None:
    layers = three_layers(busybox_tar)
    data, image_id = docker_archive(layers, ["loaded:docker"])
    path = tmp_path / "docker.tar"
    path.write_bytes(data)
    assert palletd.cli_ok("load", "-i", str(path)) == "Loaded image: loaded:docker\n"
    [info] = json.loads(palletd.cli_ok("image", "inspect", "loaded:docker"))
    assert info["Id"] == image_id
    assert info["RootFS"]["Layers"] == [sha256(layer) for layer in layers]
    assert info["Config"]["Labels"] == {"built.by": "test"}
    assert info["Author"] == "pallet tests"
    check_loaded_filesystem(palletd, "loaded:docker")


def test_load_oci_layout_with_whiteouts(
    palletd: Any, image: str, busybox_tar: Path
) -> None:
    layers = three_layers(busybox_tar)
    data, image_id = oci_archive(layers, "loaded:oci")
    result = palletd.cli("image", "load", input=data)  # from stdin
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"Loaded image: loaded:oci\n"
    [info] = json.loads(palletd.cli_ok("image", "inspect", "loaded:oci"))
    assert info["Id"] == image_id
    assert info["RootFS"]["Layers"] == [sha256(layer) for layer in layers]
    check_loaded_filesystem(palletd, "loaded:oci")


def test_load_untagged_prints_the_id(palletd: Any, image: str, busybox_tar: Path) -> None:
    data, image_id = docker_archive(three_layers(busybox_tar)[:2], None)
    result = palletd.cli("load", "-q", input=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == f"Loaded image ID: {image_id}\n"
    assert image_id in image_ids(palletd)


def test_load_again_is_idempotent(palletd: Any, image: str, busybox_tar: Path) -> None:
    data, image_id = docker_archive(three_layers(busybox_tar), ["twice:1"])
    for _ in range(2):
        assert palletd.cli("load", input=data).stdout == b"Loaded image: twice:1\n"
    assert len([i for i in palletd.images() if i.id == image_id]) == 1


def test_load_refuses_a_layer_with_path_traversal(
    palletd: Any, image: str, busybox_tar: Path
) -> None:
    marker = f"plt-evil-{secrets.token_hex(4)}"
    evil = layer_tar([(f"../../../../../../../tmp/{marker}", "file", "pwned\n")])
    data, _ = docker_archive([busybox_tar.read_bytes(), evil], ["hostile:load"])
    before = image_ids(palletd)
    result = palletd.cli("load", input=data)
    assert result.returncode == 1
    assert marker in result.stderr.decode()
    assert not Path("/tmp", marker).exists()
    assert image_ids(palletd) == before


def test_load_refuses_a_layer_whose_digest_does_not_match(
    palletd: Any, image: str, busybox_tar: Path
) -> None:
    layers = three_layers(busybox_tar)
    data, _ = docker_archive(layers, ["tampered:1"])
    # Same archive, but the config promises a different diff id for the last layer.
    config = json.loads(image_config(layers))
    config["rootfs"]["diff_ids"][-1] = "sha256:" + "0" * 64
    config_bytes = json.dumps(config).encode()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    manifest = json.loads(files["manifest.json"])
    del files[manifest[0]["Config"]]
    manifest[0]["Config"] = hashlib.sha256(config_bytes).hexdigest() + ".json"
    files[manifest[0]["Config"]] = config_bytes
    files["manifest.json"] = json.dumps(manifest).encode()
    before = image_ids(palletd)
    result = palletd.cli("load", input=archive(files))
    assert result.returncode == 1
    assert result.stderr.startswith(b"Error: ")
    assert image_ids(palletd) == before


def test_images_filters(palletd: Any, image: str, busybox_tar: Path) -> None:
    labelled = palletd.cli_ok("import", str(busybox_tar), "filtered:1", "-c", "LABEL tier=db").strip()
    untagged = palletd.cli_ok("import", str(busybox_tar)).strip()
    by_reference = palletd.cli_ok("images", "-q", "--no-trunc", "-f", "reference=filtered")
    assert by_reference.split() in ([labelled], [labelled.removeprefix("sha256:")])
    by_label = palletd.cli_ok("images", "-q", "-f", "label=tier=db").split()
    assert by_label == [labelled[7:19]]
    dangling = palletd.cli_ok("images", "-a", "-q", "-f", "dangling=true").split()
    assert dangling == [untagged[7:19]]
    bad = palletd.cli("images", "-f", "colour=red")
    assert bad.returncode == 1 and "colour" in bad.stderr


def test_info_counts_images(palletd: Any, image: str, busybox_tar: Path) -> None:
    palletd.cli_ok("import", str(busybox_tar), "counted:1")
    palletd.cli_ok("tag", "busybox", "counted:2")  # a second name is not a second image
    images_line = [line for line in palletd.cli_ok("info").splitlines()
                   if line.strip().startswith("Images:")]
    assert [line.split(":", 1)[1].strip() for line in images_line] == ["2"]
