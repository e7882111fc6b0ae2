"""A built image ships like any other (issue 14): saved and loaded back, pushed to the
test registry and read there by skopeo, pulled back, and pulled by a build's FROM."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from registry_harness import Registry

pytestmark = pytest.mark.integration
# The registry listens on the host's loopback.
PALLETD_ON_HOST_LOOPBACK = True


def skopeo(*args: str) -> str:
    found = shutil.which("skopeo")
    if not found:
        pytest.skip("skopeo is missing: apt-get install skopeo")
    result = subprocess.run([found, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"skopeo {' '.join(args)}: {result.stderr}"
    return result.stdout


def test_built_image_saves_loads_pushes_and_pulls(palletd: Any, image: str, registry: Registry, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "msg").write_text("shipped\n")
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nCOPY msg /msg\nRUN cp /msg /msg2\nENV SHIP=yes\nCMD [\"cat\", \"/msg2\"]\n"
    )
    target = f"{registry.host}/built/app:1"
    palletd.cli_ok("build", "-q", "-t", "app:1", "-t", target, str(ctx), timeout=120)
    assert palletd.cli_ok("run", "--rm", "app:1") == "shipped\n"

    archive = tmp_path / "app.tar"
    palletd.cli_ok("save", "-o", str(archive), "app:1")
    palletd.cli_ok("rmi", "app:1")
    assert "Loaded image" in palletd.cli_ok("load", "-i", str(archive))
    assert palletd.cli_ok("run", "--rm", "app:1") == "shipped\n"

    env = {"PALLET_CONFIG": str(tmp_path)}
    palletd.cli_ok("push", target, env=env)
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{target}"))
    assert len(raw["layers"]) == 3  # busybox's, COPY's, RUN's
    config = json.loads(skopeo("inspect", "--config", "--tls-verify=false", f"docker://{target}"))
    assert config["config"]["Cmd"] == ["cat", "/msg2"] and "SHIP=yes" in config["config"]["Env"]
    assert [h.get("empty_layer", False) for h in config["history"]][-4:] == [False, False, True, True]

    # Gone here, pulled back by a build's FROM.
    palletd.cli_ok("rmi", "app:1", target)
    (ctx / "Dockerfile").write_text(f"FROM {target}\nRUN cat /msg\n")
    out = palletd.cli_ok("build", "--progress", "plain", "-t", "child", str(ctx), env=env, timeout=120)
    assert f"Pulling {target}" in out and "shipped\n" in out
    assert palletd.cli_ok("run", "--rm", "child") == "shipped\n"
    # --pull: pulled again though it is here now.
    out = palletd.cli_ok("build", "--progress", "plain", "--pull", "-t", "child", str(ctx), env=env, timeout=120)
    assert f"Pulling {target}" in out and out.count(" ---> Using cache") == 1
