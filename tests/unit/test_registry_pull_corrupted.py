"""A pull that finds a blob already stored but corrupted on disk downloads it again over
the damaged copy, instead of failing on it (or unpacking it)."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

from registry_fake import HOST, pull_env
from test_images_kit import build_tar, reg, sha

from pallet.daemon.images.model import Credentials

ANON = Credentials()
LAYER = build_tar(reg("bin/sh", b"#!shell", mode=0o755))


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def whole(root: Path, digest: str) -> bool:
    path = root / "content/blobs/sha256" / digest.removeprefix("sha256:")
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() == digest


async def test_a_corrupted_config_is_downloaded_again_by_the_next_pull(tmp_path: Path) -> None:
    async with pull_env(tmp_path) as env:
        env.registry.add_image("ns/app", "1", [LAYER])
        image, _ = await env.manager.pull(f"{HOST}/ns/app:1", "", ANON, env.progress)
        flip_byte(env.root / "content/blobs/sha256" / image.id.removeprefix("sha256:"))
        assert not whole(env.root, image.id)
        gets = [r.url.path for r in env.registry.seen if "/blobs/" in r.url.path]
        again, _ = await env.manager.pull(f"{HOST}/ns/app:1", "", ANON, env.progress)
        assert again.id == image.id and whole(env.root, image.id)
        new_gets = [r.url.path for r in env.registry.seen if "/blobs/" in r.url.path][len(gets) :]
        assert new_gets == [f"/v2/ns/app/blobs/{image.id}"]  # the config only
        assert [h.id for h in await env.manager.history(f"{HOST}/ns/app:1")]


async def test_a_corrupted_layer_blob_to_unpack_again_is_downloaded_again(tmp_path: Path) -> None:
    async with pull_env(tmp_path) as env:
        blob = gzip.compress(LAYER)
        env.registry.add_image("ns/app", "1", [blob])
        await env.manager.pull(f"{HOST}/ns/app:1", "", ANON, env.progress)
        flip_byte(env.root / "content/blobs/sha256" / sha(blob).removeprefix("sha256:"))
        # The unpacked layer lost too (a disk that damages one may lose the other): the
        # next pull must unpack from the blob, and must not unpack the damaged one.
        assert env.manager.layers.remove_unless_leased(sha(LAYER))
        image, _ = await env.manager.pull(f"{HOST}/ns/app:1", "", ANON, env.progress)
        assert image.layers == (sha(LAYER),) and whole(env.root, sha(blob))
        assert (Path(env.manager.layer_dirs(image)[0]) / "bin/sh").read_bytes() == b"#!shell"
