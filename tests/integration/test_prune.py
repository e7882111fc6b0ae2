"""container prune and system prune through the CLI: what goes, what stays, in docker's
order and words, with the space reclaimed."""

from __future__ import annotations

import time
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def _names(palletd: Any) -> set[str]:
    return set(palletd.cli_ok("ps", "-a", "--format", "{{.Names}}").split())


def test_container_prune_removes_stopped_ones_only(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "--name", "exited", image, "sh", "-c", "head -c 2000 /dev/zero > /f")
    palletd.cli_ok("create", "--name", "created", image, "true")
    palletd.cli_ok("run", "-d", "--name", "running", image, "sleep", "1000")
    exited_id = palletd.inspect("exited")["Id"]
    refused = palletd.cli("container", "prune")
    assert refused.returncode == 1 and "confirm with -f" in refused.stderr
    assert _names(palletd) == {"exited", "created", "running"}

    out = palletd.cli_ok("container", "prune", "-f")
    lines = out.splitlines()
    assert lines[0] == "Deleted Containers:"
    assert exited_id in lines and len(lines) == 5  # two ids, a blank line, the total
    assert lines[-1] == "Total reclaimed space: 2kB"
    assert _names(palletd) == {"running"}
    assert palletd.cli_ok("container", "prune", "-f") == "Total reclaimed space: 0B\n"
    events = palletd.cli_ok("events", "--since-seq", "0", "--until", "0s", "--filter",
                            "type=container", "--format", "{{.Action}}").split()
    assert events.count("prune") == 2


def test_container_prune_filters(palletd: Any, image: str) -> None:
    palletd.cli_ok("create", "--name", "old", "--label", "keep=no", image, "true")
    boundary = time.time()  # "old" was made before it, the others after
    palletd.cli_ok("create", "--name", "new", image, "true")
    palletd.cli_ok("create", "--name", "kept", "--label", "keep=yes", image, "true")
    palletd.cli_ok("container", "prune", "-f", "--filter", f"until={boundary:.6f}")
    assert _names(palletd) == {"new", "kept"}
    palletd.cli_ok("container", "prune", "-f", "--filter", "label!=keep=yes")
    assert _names(palletd) == {"kept"}
    palletd.cli_ok("container", "prune", "-f", "--filter", "label=keep")
    assert _names(palletd) == set()
    bad = palletd.cli("container", "prune", "-f", "--filter", "status=exited")
    assert bad.returncode == 1 and "unknown filter 'status'" in bad.stderr
    bad_until = palletd.cli("container", "prune", "-f", "--filter", "until=yesterday")
    assert bad_until.returncode == 1 and "until=yesterday" in bad_until.stderr


def test_system_prune_in_dockers_order(palletd: Any, image: str) -> None:
    palletd.cli_ok("network", "create", "unused-net")
    palletd.cli_ok("network", "create", "used-net")
    palletd.cli_ok("run", "-d", "--name", "runs", "--network", "used-net", "-v", "/anon-kept",
                   image, "sleep", "1000")
    palletd.cli_ok("run", "--name", "stopped", "-v", "/anon-gone", image, "true")
    stopped_id = palletd.inspect("stopped")["Id"]
    palletd.cli_ok("volume", "create", "named-vol")
    # A dangling image: a commit without a name.
    dangling = palletd.cli_ok("commit", "stopped").strip()
    palletd.cli_ok("tag", image, "unused/tag:1")

    out = palletd.cli_ok("system", "prune", "-f", "--volumes")
    sections = [line for line in out.splitlines() if line.endswith(":")]
    assert sections == ["Deleted Containers:", "Deleted Networks:", "Deleted Volumes:", "Deleted Images:"]
    assert stopped_id in out and "unused-net" in out.splitlines() and "used-net" not in out.splitlines()
    assert f"deleted: {dangling}" in out
    assert out.splitlines()[-1].startswith("Total reclaimed space: ")
    assert _names(palletd) == {"runs"}
    volumes = set(palletd.cli_ok("volume", "ls", "-q").split())
    assert "named-vol" in volumes  # named volumes stay; the unused anonymous one went
    assert len(volumes) == 2  # named-vol and the running container's anonymous one
    assert "unused/tag:1" in palletd.cli_ok("images", "--format", "{{.Repository}}:{{.Tag}}")

    # -a: every image no container uses goes (busybox stays: "runs" uses it).
    palletd.cli_ok("commit", "runs", "unused/commit:1")
    out = palletd.cli_ok("system", "prune", "-a", "-f")
    assert "untagged: unused/commit:1" in out
    images = palletd.cli_ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert "busybox:latest" in images and "unused/commit:1" not in images

    refused = palletd.cli("system", "prune", "-f", "--volumes", "--filter", "until=1h")
    assert refused.returncode == 1 and '"until" filter is not supported with "--volumes"' in refused.stderr
    palletd.cli_ok("rm", "-f", "runs")


def test_system_prune_asks_first(palletd: Any, image: str) -> None:
    refused = palletd.cli("system", "prune")
    assert refused.returncode == 1 and "confirm with -f" in refused.stderr
