"""Round trips with skopeo: it pushes, pallet pulls; pallet pushes, it pulls."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from registry_harness import Registry

pytestmark = pytest.mark.integration
# The registries these tests start listen on the host's loopback.
PALLETD_ON_HOST_LOOPBACK = True


def _skopeo(*args: str) -> str:
    skopeo = shutil.which("skopeo")
    if not skopeo:
        pytest.skip("skopeo is missing: apt-get install skopeo")
    result = subprocess.run([skopeo, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"skopeo {' '.join(args)}: {result.stderr}"
    return result.stdout


def test_skopeo_pushes_pallet_pulls(palletd: Any, image: str, registry: Registry, tmp_path: Path) -> None:
    archive = tmp_path / "bb.tar"
    palletd.cli_ok("save", "-o", str(archive), image)
    for fmt, compress in (("oci", "gzip"), ("v2s2", "gzip")):
        target = f"{registry.host}/skopeo/{fmt}:1"
        _skopeo("copy", "-q", "--dest-tls-verify=false", "--format", fmt,
                f"--dest-compress-format={compress}", f"docker-archive:{archive}", f"docker://{target}")
        out = palletd.cli_ok("pull", target, env={"PALLET_CONFIG": str(tmp_path)})
        assert "Pull complete" in out or "Already exists" in out
        assert palletd.cli_ok("run", "--rm", target, "cat", "/etc/pallet-test-image") == "busybox\n"


def test_pallet_pushes_skopeo_pulls(palletd: Any, image: str, registry: Registry, tmp_path: Path) -> None:
    target = f"{registry.host}/pallet/out:2"
    palletd.cli_ok("tag", image, target)
    palletd.cli_ok("push", target, env={"PALLET_CONFIG": str(tmp_path)})
    raw = json.loads(_skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{target}"))
    assert raw["schemaVersion"] == 2 and len(raw["layers"]) == 1
    _skopeo("copy", "-q", "--src-tls-verify=false", f"docker://{target}", f"oci-archive:{tmp_path / 'out.tar'}:x")
    palletd.cli_ok("rmi", target)
    assert "Loaded image" in palletd.cli_ok("load", "-i", str(tmp_path / "out.tar"))
