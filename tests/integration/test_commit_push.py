"""A committed image pushed to a real registry (Debian's docker-registry on loopback),
removed, pulled back and run: its layer and config went whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from registry_harness import Registry

pytestmark = pytest.mark.integration
# The registries these tests start listen on the host's loopback.
PALLETD_ON_HOST_LOOPBACK = True


def test_commit_push_rmi_pull_run(palletd: Any, image: str, registry: Registry, tmp_path: Path) -> None:
    cfg = {"PALLET_CONFIG": str(tmp_path / "pallet-config")}
    palletd.cli_ok("run", "--name", "src", image, "sh", "-c", "echo pushed > /made; rm /etc/group")
    ref = f"{registry.host}/committed/img:1"
    image_id = palletd.cli_ok("commit", "-c", 'CMD ["cat", "/made"]', "src", ref).strip()
    out = palletd.cli_ok("push", ref, env=cfg)
    assert "digest: sha256:" in out
    assert registry.catalog_tags("committed/img") == ["1"]
    palletd.cli_ok("rm", "src")
    palletd.cli_ok("rmi", ref)
    palletd.cli_ok("pull", ref, env=cfg)
    assert palletd.inspect(ref)["Id"] == image_id
    assert palletd.cli_ok("run", "--rm", ref) == "pushed\n"
    assert palletd.cli("run", "--rm", ref, "test", "-e", "/etc/group").returncode == 1
