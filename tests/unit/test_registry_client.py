"""Registry endpoint rules, auth challenges, the credentials file, and push."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
import pytest
from registry_fake import HOST, FakeRegistry, pull_env
from test_images_kit import build_tar, chunks, reg, sha

from pallet.client import credentials as creds
from pallet.v1.errors import InvalidArgument
from pallet.daemon.images.reference import parse_tagged
from pallet.daemon.images.registry import transport
from pallet.daemon.images.model import Credentials
from pallet.daemon.images.registry.auth import parse_challenges
from pallet.daemon.images.registry.endpoint import resolve

ROOTFS = build_tar(reg("bin/sh", b"#!", mode=0o755), reg("data", b"x" * 5000))


@pytest.mark.parametrize(
    ("reference", "url", "insecure"),
    [
        ("busybox", "https://registry-1.docker.io/v2/library/busybox/", ()),
        ("index.docker.io/me/app", "https://registry-1.docker.io/v2/me/app/", ()),
        ("localhost:5000/a", "http://localhost:5000/v2/a/", ()),
        ("127.0.0.1:5000/a/b", "http://127.0.0.1:5000/v2/a/b/", ()),
        ("[::1]:5000/a", "http://[::1]:5000/v2/a/", ()),
        ("10.1.2.3:5000/a", "https://10.1.2.3:5000/v2/a/", ()),
        ("10.1.2.3:5000/a", "http://10.1.2.3:5000/v2/a/", ("10.1.2.3:5000",)),
        ("reg.example.com/a", "http://reg.example.com/v2/a/", ("reg.example.com",)),
    ],
)
def test_endpoints_are_https_unless_loopback_or_listed(reference: str, url: str, insecure: tuple[str, ...]) -> None:
    assert resolve(parse_tagged(reference), insecure).url("") == url


def test_login_endpoints() -> None:
    from pallet.daemon.images.registry.endpoint import endpoint_for_domain

    hub = endpoint_for_domain(creds.DOCKER_HUB_KEY)
    assert (hub.domain, hub.base_url) == ("docker.io", "https://registry-1.docker.io/v2/")
    assert endpoint_for_domain("").base_url == hub.base_url
    assert endpoint_for_domain("127.0.0.1:5000").base_url == "http://127.0.0.1:5000/v2/"
    assert endpoint_for_domain("https://reg.example.com/").base_url == "https://reg.example.com/v2/"


def test_challenges_are_parsed_like_registries_send_them() -> None:
    (bearer,) = parse_challenges(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:a/b:pull,push"'
    )
    assert bearer.scheme == "bearer"
    assert bearer.params == {
        "realm": "https://auth.example.com/token",
        "service": "registry.example.com",
        "scope": "repository:a/b:pull,push",
    }
    basic, other = parse_challenges('Basic realm="x y", Bearer realm="https://t"')
    assert (basic.scheme, basic.params, other.scheme) == ("basic", {"realm": "x y"}, "bearer")
    assert parse_challenges("") == []
    assert "s3cret" not in repr(Credentials("u", "s3cret"))


def test_credentials_file_is_docker_config_json_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "config.json"
    creds.store("127.0.0.1:5000", creds.StoredAuth("alice", "pw:with:colons"), path)
    creds.store("docker.io", creds.StoredAuth("bob", "pw2"), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert set(doc["auths"]) == {"127.0.0.1:5000", creds.DOCKER_HUB_KEY}
    assert creds.lookup("127.0.0.1:5000", path) == creds.StoredAuth("alice", "pw:with:colons")
    assert creds.lookup(creds.registry_of("busybox"), path).username == "bob"
    assert creds.registry_of("127.0.0.1:5000/x/y:1") == "127.0.0.1:5000"
    assert creds.remove("127.0.0.1:5000", path) and not creds.remove("127.0.0.1:5000", path)
    assert creds.lookup("127.0.0.1:5000", path) == creds.StoredAuth()
    path.write_text("{not json")
    with pytest.raises(InvalidArgument, match="cannot read credentials"):
        creds.lookup("x", path)


async def test_push_uploads_only_missing_blobs_then_the_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "CHUNK_UPLOAD", 4096)  # the layer goes up in PATCH chunks
    async with pull_env(tmp_path) as env:
        image = await env.manager.import_rootfs(chunks(ROOTFS), f"{HOST}/up/app:1")
        digest, size = await env.manager.push(f"{HOST}/up/app:1", Credentials(), env.progress)
        assert digest == image.manifest_digest
        assert env.registry.manifests[f"up/app:1"][0] == env.manager.content.read_verified(digest)
        assert sha(ROOTFS) in env.registry.blobs and image.id in env.registry.blobs
        patches = [r for r in env.registry.seen if r.method == "PATCH"]
        assert len(patches) == -(-len(ROOTFS) // 4096)
        # HEAD before anything else, for every blob; the manifest last.
        methods = [r.method for r in env.registry.seen]
        assert methods[0] == "HEAD" and methods[-1] == "PUT"
        assert "/manifests/1" in str(env.registry.seen[-1].url)

        env.registry.seen.clear()
        await env.manager.push(f"{HOST}/up/app:1", Credentials(), env.progress)
        assert [r.method for r in env.registry.seen] == ["HEAD", "HEAD", "PUT"]

        # Another repository of the same registry: blobs are mounted, not uploaded.
        await env.manager.tag(f"{HOST}/up/app:1", f"{HOST}/other/app:1")
        env.registry.seen.clear()
        env.registry.hook = lambda r: httpx.Response(404) if r.method == "HEAD" else None
        await env.manager.push(f"{HOST}/other/app:1", Credentials(), env.progress)
        mounts = [r for r in env.registry.seen if r.method == "POST"]
        assert mounts and all(r.url.params.get("from") == "up/app" for r in mounts)
        assert not [r for r in env.registry.seen if r.method == "PATCH"]
        assert any(step[1] == "Mounted from up/app" for step in env.steps)
        with pytest.raises(InvalidArgument, match="push a tag, not a digest"):
            await env.manager.push(f"{HOST}/up/app@{digest}", Credentials(), env.progress)


def test_fake_registry_refuses_bad_uploads() -> None:
    fake = FakeRegistry()
    client = httpx.Client(transport=httpx.MockTransport(fake.handle), base_url="http://r")
    location = client.post("/v2/x/blobs/uploads/").headers["location"]
    assert client.put(location, params={"digest": sha(b"a")}, content=b"b").status_code == 400
