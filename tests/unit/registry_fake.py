"""A fake OCI registry for unit tests, served through httpx.MockTransport.

Owns: images put into it (manifests by tag and digest, blobs), the requests it saw, and
switchable misbehaviour (corrupt or truncated blobs, garbage manifests, timeouts, 401s).
Must not: touch the network.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from test_images_kit import FakeEvents, image_config, sha

from pallet.daemon.images.manager import ImageManager
from pallet.daemon.images.model import ImageUser
from pallet.daemon.images.registry.transport import Timeouts
from pallet.daemon.store.db import Database

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
HOST = "registry.test:5000"


@dataclass
class FakeRegistry:
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # "repo:ref" -> (bytes, type)
    blobs: dict[str, bytes] = field(default_factory=dict)
    seen: list[httpx.Request] = field(default_factory=list)
    #: digest -> replacement bytes served instead of the real ones
    corrupt: dict[str, bytes] = field(default_factory=dict)
    #: digest -> number of bytes to serve before the body ends (once)
    truncate: dict[str, int] = field(default_factory=dict)
    hook: Callable[[httpx.Request], httpx.Response | None] | None = None
    uploads: dict[str, bytearray] = field(default_factory=dict)

    def add_image(
        self, repo: str, tag: str, layers: Sequence[bytes], config: bytes | None = None,
        media_type: str = OCI_MANIFEST,
    ) -> tuple[str, bytes]:
        if config is None:
            config = image_config([sha(gzip.decompress(l)) if l[:2] == b"\x1f\x8b" else sha(l) for l in layers])
        for blob in (config, *layers):
            self.blobs[sha(blob)] = blob
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": media_type,
                "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": sha(l), "size": len(l)} for l in layers],
            }
        ).encode()
        self.put_manifest(repo, tag, manifest, media_type)
        return sha(manifest), manifest

    def put_manifest(self, repo: str, tag: str, data: bytes, media_type: str) -> str:
        digest = sha(data)
        self.manifests[f"{repo}:{tag}"] = (data, media_type)
        self.manifests[f"{repo}:{digest}"] = (data, media_type)
        return digest

    def blob_gets(self, digest: str) -> int:
        return sum(1 for r in self.seen if r.method == "GET" and r.url.path.endswith(f"/blobs/{digest}"))

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if self.hook is not None:
            answer = self.hook(request)
            if answer is not None:
                return answer
        path = request.url.path
        if path == "/v2/":
            return httpx.Response(200, json={})
        match = re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", path)
        if match:
            if request.method == "PUT":
                data = request.read()
                digest = self.put_manifest(match[1], match[2], data, request.headers["content-type"])
                return httpx.Response(201, headers={"Docker-Content-Digest": digest})
            found = self.manifests.get(f"{match[1]}:{match[2]}")
            if found is None:
                return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})
            return httpx.Response(200, content=found[0], headers={"Content-Type": found[1]})
        match = re.fullmatch(r"/v2/(.+)/blobs/(sha256:[0-9a-f]{64})", path)
        if match:
            digest = match[2]
            if digest not in self.blobs:
                return httpx.Response(404, json={"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown to registry"}]})
            data = self.corrupt.get(digest, self.blobs[digest])
            if request.method == "HEAD":
                return httpx.Response(200, headers={"Content-Length": str(len(data))})
            offset = 0
            rng = request.headers.get("range", "")
            if rng.startswith("bytes="):
                offset = int(rng[6:].rstrip("-"))
            if digest in self.truncate:
                cut = self.truncate.pop(digest)
                return httpx.Response(200, content=data[:cut])
            if offset:
                return httpx.Response(
                    206, content=data[offset:], headers={"Content-Range": f"bytes {offset}-{len(data) - 1}/{len(data)}"}
                )
            return httpx.Response(200, content=data)
        match = re.fullmatch(r"/v2/(.+)/blobs/uploads/(.*)", path)
        if match:
            if request.method == "POST":
                mount = request.url.params.get("mount")
                if mount and mount in self.blobs:
                    return httpx.Response(201)
                upload = f"u{len(self.uploads)}"
                self.uploads[upload] = bytearray()
                return httpx.Response(202, headers={"Location": f"/v2/{match[1]}/blobs/uploads/{upload}"})
            upload = match[2]
            self.uploads[upload] += request.read()
            if request.method == "PATCH":
                return httpx.Response(202, headers={"Location": f"/v2/{match[1]}/blobs/uploads/{upload}"})
            if request.method == "PUT":
                digest = request.url.params["digest"]
                data = bytes(self.uploads[upload])
                if sha(data) != digest:
                    return httpx.Response(400, json={"errors": [{"code": "DIGEST_INVALID", "message": "digest did not match"}]})
                self.blobs[digest] = data
                return httpx.Response(201)
            if request.method == "DELETE":
                return httpx.Response(204)
        return httpx.Response(404)


@dataclass
class PullEnv:
    manager: ImageManager
    registry: FakeRegistry
    events: FakeEvents
    root: Path
    steps: list[tuple[str, str, int, int]]

    def progress(self, *step: Any) -> None:
        self.steps.append(step)

    def stored(self) -> list[str]:
        out = []
        for sub in ("content/blobs/sha256", "content/tmp", "content/ingest", "layers", "layers/.tmp"):
            out += [f"{sub}/{p.name}" for p in (self.root / sub).iterdir() if p.name != ".tmp"]
        return sorted(out)


@asynccontextmanager
async def pull_env(tmp_path: Path, timeouts: Timeouts = Timeouts(connect=2, read=5)) -> AsyncIterator[PullEnv]:
    registry = FakeRegistry()
    db = Database(tmp_path / "pallet.db")
    await db.start()

    async def users(image_id: str) -> list[ImageUser]:
        return []

    events = FakeEvents(db)
    manager = ImageManager(
        db, events, tmp_path / "root", users,
        insecure_registries=[HOST], registry_timeouts=timeouts,
        http_transport=httpx.MockTransport(registry.handle),
    )
    await manager.start()
    try:
        yield PullEnv(manager, registry, events, tmp_path / "root", [])
    finally:
        await manager.aclose()
        await db.aclose()
