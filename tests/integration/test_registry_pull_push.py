"""pull, push, login/logout against a real registry (Debian's docker-registry on loopback)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from registry_harness import PASSWORD, USER, Registry, start_registry

pytestmark = pytest.mark.integration
# The registries these tests start listen on the host's loopback.
PALLETD_ON_HOST_LOOPBACK = True

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture
def cfg(tmp_path: Path) -> dict[str, str]:
    """CLI environment with a credentials file of the test's own."""
    return {"PALLET_CONFIG": str(tmp_path / "pallet-config")}


def _request(url: str, method: str = "GET", data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    return urllib.request.urlopen(req, timeout=30)


def _manifest(registry: Registry, repo: str, ref: str) -> tuple[bytes, str]:
    accept = "application/vnd.oci.image.manifest.v1+json, " + DOCKER_MANIFEST + ", " + OCI_INDEX
    with _request(f"http://{registry.host}/v2/{repo}/manifests/{ref}", headers={"Accept": accept}) as resp:
        return resp.read(), resp.headers["Content-Type"]


def _put_manifest(registry: Registry, repo: str, ref: str, data: bytes, media_type: str) -> str:
    with _request(
        f"http://{registry.host}/v2/{repo}/manifests/{ref}", "PUT", data, {"Content-Type": media_type}
    ) as resp:
        assert resp.status == 201
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _push(palletd: Any, image: str, ref: str, env: dict[str, str] | None = None) -> str:
    palletd.cli_ok("tag", image, ref)
    out = palletd.cli_ok("push", ref, env=env)
    digest = out.strip().splitlines()[-1].split("digest: ")[1].split()[0]
    assert digest.startswith("sha256:")
    return digest


def test_push_rmi_pull_run_round_trip(palletd: Any, image: str, registry: Registry, cfg: dict[str, str]) -> None:
    ref = f"{registry.host}/pallet/busybox:1"
    palletd.cli_ok("tag", image, ref)
    out = palletd.cli_ok("push", ref, env=cfg)
    assert f"The push refers to repository [{registry.host}/pallet/busybox]" in out
    assert "Pushed" in out
    digest = out.strip().splitlines()[-1].split("digest: ")[1].split()[0]
    assert registry.catalog_tags("pallet/busybox") == ["1"]

    again = palletd.cli_ok("push", ref, env=cfg)
    assert "Pushed" not in again and "Layer already exists" in again

    palletd.cli_ok("rmi", ref)
    palletd.cli_ok("rmi", image)
    assert palletd.cli_ok("images", "-q").strip() == ""

    pulled = palletd.cli_ok("pull", ref, env=cfg)
    assert "Pull complete" in pulled
    assert f"Digest: {digest}" in pulled
    assert f"Status: Downloaded newer image for {ref}" in pulled
    assert pulled.strip().splitlines()[-1] == ref
    info = palletd.inspect(ref)
    assert f"{registry.host}/pallet/busybox@{digest}" in info["RepoDigests"]
    assert palletd.cli_ok("run", "--rm", ref, "cat", "/etc/pallet-test-image") == "busybox\n"

    # Everything is there: nothing is downloaded a second time.
    second = palletd.cli_ok("pull", ref, env=cfg)
    assert "Already exists" in second and "Pull complete" not in second
    assert f"Status: Image is up to date for {ref}" in second
    assert not any((palletd.root / "content" / "ingest").iterdir())

    # By digest too.
    palletd.cli_ok("rmi", ref)
    by_digest = f"{registry.host}/pallet/busybox@{digest}"
    palletd.cli_ok("pull", by_digest, env=cfg)
    assert palletd.inspect(by_digest)["RepoTags"] == []


def test_push_mounts_blobs_from_another_repository(
    palletd: Any, image: str, registry: Registry, cfg: dict[str, str]
) -> None:
    _push(palletd, image, f"{registry.host}/mount/source:1", cfg)
    palletd.cli_ok("tag", image, f"{registry.host}/mount/target:1")
    out = palletd.cli_ok("push", f"{registry.host}/mount/target:1", env=cfg)
    assert "Mounted from mount/source" in out
    assert "Pushed" not in out
    assert registry.catalog_tags("mount/target") == ["1"]


def test_pull_picks_platform_from_index_and_accepts_docker_manifests(
    palletd: Any, image: str, registry: Registry, cfg: dict[str, str]
) -> None:
    _push(palletd, image, f"{registry.host}/multi/bb:base", cfg)
    oci_bytes, _ = _manifest(registry, "multi/bb", "base")
    doc = json.loads(oci_bytes)
    # The same image as a Docker schema 2 manifest.
    doc["mediaType"] = DOCKER_MANIFEST
    doc["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json"
    for layer in doc["layers"]:
        layer["mediaType"] = "application/vnd.docker.image.rootfs.diff.tar"
    docker_bytes = json.dumps(doc).encode()
    docker_digest = _put_manifest(registry, "multi/bb", "docker", docker_bytes, DOCKER_MANIFEST)
    arch = palletd.cli_ok("version", "-f", "{{.Server.Arch}}").strip()
    other = "s390x" if arch != "s390x" else "amd64"
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": DOCKER_MANIFEST, "digest": docker_digest, "size": len(docker_bytes),
             "platform": {"os": "linux", "architecture": other}},
            {"mediaType": DOCKER_MANIFEST, "digest": docker_digest, "size": len(docker_bytes),
             "platform": {"os": "linux", "architecture": arch}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": docker_digest,
             "size": len(docker_bytes), "platform": {"os": "unknown", "architecture": "unknown"},
             "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
        ],
    }
    index_bytes = json.dumps(index).encode()
    index_digest = _put_manifest(registry, "multi/bb", "multi", index_bytes, OCI_INDEX)
    palletd.cli_ok("rmi", "-f", image)

    ref = f"{registry.host}/multi/bb:multi"
    out = palletd.cli_ok("pull", ref, env=cfg)
    assert f"Digest: {index_digest}" in out
    assert f"{registry.host}/multi/bb@{index_digest}" in palletd.inspect(ref)["RepoDigests"]
    assert palletd.cli_ok("run", "--rm", ref, "echo", "ok") == "ok\n"

    wrong = palletd.cli("pull", "--platform", "linux/mips64le", ref, env=cfg)
    assert wrong.returncode == 1
    assert "no image for linux/mips64le" in wrong.stderr and f"linux/{other}" in wrong.stderr
    assert wrong.stderr.count("Error:") == 1

    palletd.cli_ok("pull", "--platform", f"linux/{arch}", f"{registry.host}/multi/bb:docker", env=cfg)


def test_pull_errors_are_clear_and_leave_nothing(
    palletd: Any, image: str, registry: Registry, cfg: dict[str, str]
) -> None:
    before = sorted(p.name for p in (palletd.root / "content" / "blobs" / "sha256").iterdir())
    missing = palletd.cli("pull", f"{registry.host}/nope/nothing:1", env=cfg)
    assert missing.returncode == 1
    assert "not found" in missing.stderr and "nope/nothing" in missing.stderr
    bad = palletd.cli("pull", "name@sha256:123", env=cfg)
    assert bad.returncode == 1 and "invalid reference format" in bad.stderr
    closed = palletd.cli("pull", f"127.0.0.1:{_closed_port()}/x/y:1", env=cfg)
    assert closed.returncode == 1 and "cannot reach registry" in closed.stderr
    after = sorted(p.name for p in (palletd.root / "content" / "blobs" / "sha256").iterdir())
    assert after == before
    push_unknown = palletd.cli("push", f"{registry.host}/never/tagged:1", env=cfg)
    assert push_unknown.returncode == 1 and "No such image" in push_unknown.stderr


def _closed_port() -> int:
    from registry_harness import free_port

    return free_port()


@pytest.mark.parametrize("auth", ["basic", "token"])
def test_login_push_pull_logout(palletd: Any, image: str, cfg: dict[str, str], auth: str) -> None:
    reg = start_registry(auth)
    try:
        ref = f"{reg.host}/private/bb:1"
        palletd.cli_ok("tag", image, ref)
        denied = palletd.cli("push", ref, env=cfg)
        assert denied.returncode == 1
        assert "unauthorized" in denied.stderr and f"pallet login {reg.host}" in denied.stderr

        wrong = palletd.cli("login", "-u", USER, "--password-stdin", reg.host, input="wrong\n", env=cfg)
        assert wrong.returncode == 1 and "unauthorized" in wrong.stderr
        config = Path(cfg["PALLET_CONFIG"]) / "config.json"
        assert not config.exists()

        ok = palletd.cli("login", "-u", USER, "--password-stdin", reg.host, input=PASSWORD + "\n", env=cfg)
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.strip() == "Login Succeeded"
        assert PASSWORD not in ok.stdout + ok.stderr
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        assert reg.host in json.loads(config.read_text())["auths"]

        digest = _push(palletd, image, ref, cfg)
        palletd.cli_ok("rmi", ref)
        palletd.cli_ok("pull", ref, env=cfg)
        assert f"{reg.host}/private/bb@{digest}" in palletd.inspect(ref)["RepoDigests"]
        if reg.token_server is not None:
            scopes = [s for r in reg.token_server.requests if r["user"] == USER for s in r["scope"]]
            assert "repository:private/bb:pull,push" in scopes
            assert "repository:private/bb:pull" in scopes
        assert PASSWORD not in palletd.log_path.read_text(errors="replace")

        assert palletd.cli_ok("logout", reg.host, env=cfg).strip() == f"Removing login credentials for {reg.host}"
        assert reg.host not in json.loads(config.read_text())["auths"]
        palletd.cli_ok("rmi", ref)
        again = palletd.cli("pull", ref, env=cfg)
        assert again.returncode == 1 and "unauthorized" in again.stderr
    finally:
        reg.stop()


def test_concurrent_pulls_of_one_image_download_each_blob_once(
    palletd: Any, image: str, registry: Registry, cfg: dict[str, str]
) -> None:
    ref = f"{registry.host}/conc/bb:1"
    _push(palletd, image, ref, cfg)
    palletd.cli_ok("rmi", ref)
    palletd.cli_ok("rmi", "-f", image)
    procs = [palletd.cli_popen("pull", ref, env=cfg, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    text = "".join(out for out, _ in outputs)
    # Each blob is downloaded by one of the pulls; the others wait for it or find it there.
    assert text.count("Download complete") == 1
    assert palletd.cli_ok("run", "--rm", ref, "echo", "ok") == "ok\n"
    assert os.listdir(palletd.root / "content" / "ingest") == []
