"""Pulling from a (fake) registry: the happy paths, and a hostile corpus of registries and
layers that must each fail with a clear error and leave nothing behind."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from registry_fake import HOST, OCI_INDEX, pull_env
from test_images_kit import build_tar, image_config, reg, sha
from test_tarsafe import HOSTILE

from pallet.v1.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from pallet.daemon.images.oci import host_architecture
from pallet.daemon.images.model import Credentials
from pallet.daemon.images.registry.transport import Timeouts

ANON = Credentials()
LAYER1 = build_tar(reg("bin/sh", b"#!shell", mode=0o755))
LAYER2 = build_tar(reg("etc/os-release", b"ID=test\n"))


async def test_pull_stores_verified_layers_and_names_the_image(tmp_path: Path) -> None:
    async with pull_env(tmp_path) as env:
        digest, _ = env.registry.add_image("ns/app", "1", [LAYER1, gzip.compress(LAYER2)])
        image, resolved = await env.manager.pull(f"{HOST}/ns/app:1", "", ANON, env.progress)
        assert resolved == digest
        assert image.repo_tags == (f"{HOST}/ns/app:1",)
        assert image.repo_digests == (f"{HOST}/ns/app@{digest}",)
        assert image.layers == (sha(LAYER1), sha(LAYER2))
        assert image.manifest_digest == digest
        statuses = [step[1] for step in env.steps]
        assert statuses.count("Pull complete") == 2
        assert ("pull", f"{HOST}/ns/app:1") in env.events.actions()
        assert not list((env.root / "content/ingest").iterdir())

        # Everything present: the second pull downloads no blob.
        env.steps.clear()
        gets = len([r for r in env.registry.seen if "/blobs/" in r.url.path])
        await env.manager.pull(f"{HOST}/ns/app:1", "", ANON, env.progress)
        assert len([r for r in env.registry.seen if "/blobs/" in r.url.path]) == gets
        assert [s[1] for s in env.steps].count("Already exists") == 2


async def test_index_resolves_to_the_wanted_platform(tmp_path: Path) -> None:
    async with pull_env(tmp_path) as env:
        mine, mine_bytes = env.registry.add_image("multi", "mine", [LAYER1])
        arm_config = image_config([sha(LAYER2)], architecture="arm64")
        arm, arm_bytes = env.registry.add_image("multi", "arm", [LAYER2], config=arm_config)
        index = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm, "size": len(arm_bytes),
                 "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mine, "size": len(mine_bytes),
                 "platform": {"os": "linux", "architecture": host_architecture()}},
            ],
        }).encode()
        index_digest = env.registry.put_manifest("multi", "latest", index, OCI_INDEX)
        image, resolved = await env.manager.pull(f"{HOST}/multi", "", ANON, env.progress)
        assert resolved == index_digest and image.layers == (sha(LAYER1),)
        other, _ = await env.manager.pull(f"{HOST}/multi", "linux/arm64/v8", ANON, env.progress)
        assert other.layers == (sha(LAYER2,),)
        with pytest.raises(NotFound, match=r"no image for linux/ppc64le \(it has linux/.*arm64/v8"):
            await env.manager.pull(f"{HOST}/multi", "linux/ppc64le", ANON, env.progress)
        with pytest.raises(InvalidArgument, match="invalid platform"):
            await env.manager.pull(f"{HOST}/multi", "linux", ANON, env.progress)


async def _refused(env: Any, ref: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        await env.manager.pull(ref, "", ANON, env.progress)
    assert message in str(info.value), str(info.value)
    # Verified partial downloads may stay in ingest/ (hidden; a retry resumes them).
    assert [name for name in env.stored() if not name.startswith("content/ingest/")] == []
    assert await env.manager.list() == []
    assert [a for a, _ in env.events.actions() if a == "pull"] == []


async def test_blob_with_the_wrong_digest_stores_nothing(tmp_path: Path) -> None:
    async with pull_env(tmp_path) as env:
        env.registry.add_image("bad", "1", [LAYER1, LAYER2])
        env.registry.corrupt[sha(LAYER2)] = LAYER2[:-1] + b"X"
        await _refused(env, f"{HOST}/bad:1", InvalidArgument, f"blob {sha(LAYER2)} from {HOST} does not match its digest")


async def test_manifest_pointing_at_a_missing_blob(tmp_path: Path) -> None:
    async with pull_env(tmp_path) as env:
        env.registry.add_image("gone", "1", [LAYER1, LAYER2])
        del env.registry.blobs[sha(LAYER2)]
        await _refused(env, f"{HOST}/gone:1", NotFound, f"blob {sha(LAYER2)} not found in {HOST}/gone")


async def test_garbage_manifests(tmp_path: Path) -> None:
    async with pull_env(tmp_path) as env:
        env.registry.put_manifest("junk", "1", b"\x00\xffnot json", "application/vnd.oci.image.manifest.v1+json")
        await _refused(env, f"{HOST}/junk:1", InvalidArgument, "not valid JSON")
        env.registry.put_manifest("junk", "2", b'{"schemaVersion": 2, "config": 5}', "application/vnd.oci.image.manifest.v1+json")
        await _refused(env, f"{HOST}/junk:2", InvalidArgument, "config must be a descriptor")
        env.registry.put_manifest("junk", "3", b"{" + b" " * (5 << 20) + b"}", "application/vnd.oci.image.manifest.v1+json")
        await _refused(env, f"{HOST}/junk:3", InvalidArgument, "larger than")
        env.registry.put_manifest("junk", "4", b'{"schemaVersion": 1, "fsLayers": []}', "application/json")
        await _refused(env, f"{HOST}/junk:4", InvalidArgument, "schema 1")


async def test_manifest_that_is_not_what_its_digest_names(tmp_path: Path) -> None:
    async with pull_env(tmp_path) as env:
        digest, _ = env.registry.add_image("swap", "1", [LAYER1])
        _, other = env.registry.add_image("swap", "2", [LAYER2])
        env.registry.manifests[f"swap:{digest}"] = (other, "application/vnd.oci.image.manifest.v1+json")
        await _refused(env, f"{HOST}/swap@{digest}", InvalidArgument, f"does not match its digest {digest}")


async def test_layer_that_is_not_the_diff_id_its_config_names(tmp_path: Path) -> None:
    async with pull_env(tmp_path) as env:
        env.registry.add_image("lie", "1", [LAYER1], config=image_config([sha(LAYER2)]))
        await _refused(env, f"{HOST}/lie:1", InvalidArgument, f"but its image config says {sha(LAYER2)}")


@pytest.mark.parametrize("case", sorted(HOSTILE))
async def test_hostile_layers_from_a_registry(tmp_path: Path, case: str) -> None:
    members, message = HOSTILE[case]
    async with pull_env(tmp_path) as env:
        env.registry.add_image("evil", "1", [LAYER1, build_tar(*members)])
        await _refused(env, f"{HOST}/evil:1", InvalidArgument, message)
    assert not (tmp_path / "etc").exists() and not (tmp_path / "x").exists()
    assert not (tmp_path / "outside").exists()


async def test_truncated_and_corrupt_compressed_layers(tmp_path: Path) -> None:
    async with pull_env(tmp_path) as env:
        env.registry.add_image("trunc", "1", [gzip.compress(LAYER1)[:-20]], config=image_config([sha(LAYER1)]))
        await _refused(env, f"{HOST}/trunc:1", InvalidArgument, "stream is corrupt")
        env.registry.add_image("hdr", "1", [_huge_header_tar()])
        await _refused(env, f"{HOST}/hdr:1", InvalidArgument, "extended tar header (more than 1048576)")
        huge_name = build_tar(reg("x" * 200 + "/" + "y" * 200, b"ok"))  # long names via pax headers
        env.registry.add_image("long", "1", [huge_name])
        image, _ = await env.manager.pull(f"{HOST}/long:1", "", ANON, env.progress)
        assert image.layers == (sha(huge_name),)


def _huge_header_tar() -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("f")
        info.pax_headers = {"comment": "a" * (2 << 20)}
        tar.addfile(info, io.BytesIO(b""))
    return buffer.getvalue()


async def test_interrupted_download_resumes_where_it_stopped(tmp_path: Path) -> None:
    big = build_tar(reg("data", bytes(range(256)) * 8192))
    async with pull_env(tmp_path) as env:
        env.registry.add_image("resume", "1", [big])
        env.registry.truncate[sha(big)] = len(big) // 2
        with pytest.raises(Unavailable, match="pull again to resume"):
            await env.manager.pull(f"{HOST}/resume:1", "", ANON, env.progress)
        assert (env.root / "content/ingest" / sha(big)[7:]).stat().st_size == len(big) // 2
        assert await env.manager.list() == []
        await env.manager.pull(f"{HOST}/resume:1", "", ANON, env.progress)
        ranged = [r.headers.get("range") for r in env.registry.seen if r.url.path.endswith(sha(big))]
        assert ranged[-1] == f"bytes={len(big) // 2}-"
        assert ("", "Resuming") != () and any(s[1] == "Resuming" for s in env.steps)
        assert not list((env.root / "content/ingest").iterdir())


async def test_concurrent_pulls_download_each_blob_once(tmp_path: Path) -> None:
    async with pull_env(tmp_path) as env:
        env.registry.add_image("twice", "1", [LAYER1, LAYER2])
        env.registry.add_image("twice", "2", [LAYER2, LAYER1])
        await asyncio.gather(
            env.manager.pull(f"{HOST}/twice:1", "", ANON, env.progress),
            env.manager.pull(f"{HOST}/twice:2", "", ANON, env.progress),
            env.manager.pull(f"{HOST}/twice:1", "", ANON, env.progress),
        )
        assert env.registry.blob_gets(sha(LAYER1)) == 1
        assert env.registry.blob_gets(sha(LAYER2)) == 1
        assert len(await env.manager.list()) == 2


async def test_registry_that_times_out_or_refuses(tmp_path: Path) -> None:
    async with pull_env(tmp_path) as env:
        env.registry.add_image("slow", "1", [LAYER1])

        def timeout(request: httpx.Request) -> httpx.Response | None:
            if "/blobs/" in request.url.path:
                raise httpx.ReadTimeout("timed out", request=request)
            return None

        env.registry.hook = timeout
        await _refused(env, f"{HOST}/slow:1", Unavailable, "stopped answering (timed out)")
        env.registry.hook = lambda r: httpx.Response(503, text="<html>down</html>")
        await _refused(env, f"{HOST}/slow:1", Unavailable, "HTTP 503")
        env.registry.hook = lambda r: httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="x"'})
        await _refused(env, f"{HOST}/slow:1", FailedPrecondition, f"unauthorized: {HOST}/slow")


def test_a_real_slow_server_hits_the_read_timeout(tmp_path: Path) -> None:
    """Through a real socket: the answer never comes, the pull gives up with a clear error."""

    release = threading.Event()

    class Slow(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            release.wait(10)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]

    async def pull() -> None:
        from pallet.daemon.images.manager import ImageManager
        from pallet.daemon.store.db import Database
        from test_images_kit import FakeEvents

        db = Database(tmp_path / "db")
        await db.start()

        async def users(image_id: str) -> list[Any]:
            return []

        manager = ImageManager(db, FakeEvents(db), tmp_path / "root", users, registry_timeouts=Timeouts(connect=1, read=0.5))
        await manager.start()
        try:
            started = time.monotonic()
            with pytest.raises(Unavailable, match="timed out"):
                await manager.pull(f"127.0.0.1:{port}/x:1", "", ANON, lambda *a: None)
            assert time.monotonic() - started < 8
        finally:
            await manager.aclose()
            await db.aclose()

    try:
        asyncio.run(pull())
    finally:
        release.set()
        server.shutdown()
        server.server_close()


async def test_prune_drops_stale_partial_downloads_only(tmp_path: Path) -> None:
    import os

    async with pull_env(tmp_path) as env:
        ingest = env.root / "content/ingest"
        stale, fresh = ingest / ("1" * 64), ingest / ("2" * 64)
        stale.write_bytes(b"x" * 100)
        fresh.write_bytes(b"y" * 10)
        os.utime(stale, (time.time() - 3600, time.time() - 3600))
        result = await env.manager.prune()
        assert not stale.exists() and fresh.exists()
        assert result.space_reclaimed == 100
