"""A hostile registry on loopback, through the real daemon and CLI: every bad answer is one
clear error, and the daemon keeps nothing from it."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytestmark = pytest.mark.integration
# The registries these tests start listen on the host's loopback.
PALLETD_ON_HOST_LOOPBACK = True

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _tar(name: str, data: bytes, link: str = "", kind: bytes = tarfile.REGTYPE) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, link
        info.devmajor, info.devminor = (1, 1) if kind == tarfile.CHRTYPE else (0, 0)
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return buffer.getvalue()


class Hostile:
    """repo -> (manifest bytes, blobs served); blobs may lie about their digest."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, str]] = {}

    def image(self, repo: str, layers: list[bytes], served: dict[str, bytes] | None = None,
              diff_ids: list[str] | None = None) -> None:
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": diff_ids or [_sha(l) for l in layers]}}).encode()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _sha(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _sha(l), "size": len(l)} for l in layers],
        }).encode()
        self.routes[f"/v2/{repo}/manifests/1"] = (200, manifest, MANIFEST)
        for blob in (config, *layers):
            body = (served or {}).get(_sha(blob), blob)
            self.routes[f"/v2/{repo}/blobs/{_sha(blob)}"] = (200, body, "application/octet-stream")


@pytest.fixture
def hostile() -> Iterator[tuple[Hostile, str]]:
    state = Hostile()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            status, body, kind = state.routes.get(self.path, (404, b'{"errors":[{"code":"NOT_FOUND","message":"nothing here"}]}', "application/json"))
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _refused(palletd: Any, ref: str, message: str) -> None:
    blobs = palletd.root / "content" / "blobs" / "sha256"
    layers = palletd.root / "layers"
    before = (sorted(p.name for p in blobs.iterdir()), sorted(p.name for p in layers.iterdir()))
    result = palletd.cli("pull", ref)
    assert result.returncode == 1, result.stdout
    assert result.stderr.count("Error:") == 1 and message in result.stderr, result.stderr
    assert (sorted(p.name for p in blobs.iterdir()), sorted(p.name for p in layers.iterdir())) == before
    assert ref not in palletd.cli_ok("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert [p.name for p in (layers / ".tmp").iterdir()] == []


def test_hostile_registry_answers(palletd: Any, image: str, hostile: tuple[Hostile, str]) -> None:
    state, host = hostile
    good = _tar("ok", b"fine")
    evil = _tar("../../escaped", b"pwned")
    state.image("lying", [good], served={_sha(good): _tar("ok", b"FINE")})
    _refused(palletd, f"{host}/lying:1", "does not match its digest")
    state.image("missing", [good])
    del state.routes[f"/v2/missing/blobs/{_sha(good)}"]
    _refused(palletd, f"{host}/missing:1", f"blob {_sha(good)} not found")
    state.routes["/v2/garbage/manifests/1"] = (200, b"<html>surprise</html>", "text/html")
    _refused(palletd, f"{host}/garbage:1", "not valid JSON")
    state.image("escape", [good, evil])
    _refused(palletd, f"{host}/escape:1", "climbs out")
    state.image("device", [_tar("dev/mem", b"", kind=tarfile.CHRTYPE)])
    _refused(palletd, f"{host}/device:1", "is a character device")
    state.image("wrongdiff", [good], diff_ids=[_sha(evil)])
    _refused(palletd, f"{host}/wrongdiff:1", "but its image config says")
    state.routes["/v2/server/manifests/1"] = (500, b"oops", "text/plain")
    _refused(palletd, f"{host}/server:1", "HTTP 500")
    assert not (palletd.root.parent / "escaped").exists()
