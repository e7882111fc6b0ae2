"""`GET /system/df` on `<run-root>/docker.sock`: `docker system df` and `-v`, docker-py's
`client.df()`, and the `type` argument, with the numbers pallet's own `system df` shows."""

from __future__ import annotations

import json
from typing import Any

import pytest

from docker_http import request

pytestmark = pytest.mark.integration


def _rows(text: str) -> dict[str, list[str]]:
    """`system df`'s table by its TYPE column ("Local Volumes" and "Build Cache" are two
    words): the other columns, split."""
    rows = {}
    for line in text.splitlines()[1:]:
        cells = [c for c in line.split("  ") if c.strip()]
        rows[cells[0].strip()] = [c.strip() for c in cells[1:]]
    return rows


@pytest.fixture
def things(palletd: Any) -> dict[str, str]:
    """An exited container with 2 MB in its layer, a running one using a volume of 100 kB,
    and an unused volume of 50 kB."""
    palletd.cli_ok("volume", "create", "used")
    palletd.cli_ok("volume", "create", "spare")
    palletd.cli_ok("run", "--name", "writer", "-v", "spare:/s", "busybox:latest", "sh", "-c",
                   "head -c 2000000 /dev/zero > /big && head -c 50000 /dev/zero > /s/f")
    palletd.cli_ok("rm", "writer")
    exited = palletd.cli_ok("run", "--name", "exited", "busybox:latest", "sh", "-c",
                            "head -c 2000000 /dev/zero > /big").strip()
    running = palletd.cli_ok("run", "-d", "--name", "running", "-v", "used:/u", "busybox:latest",
                             "sh", "-c", "head -c 100000 /dev/zero > /u/f && exec sleep 300").strip()
    palletd.cli_ok("exec", "running", "test", "-f", "/u/f")
    return {"exited": exited, "running": running}


def test_docker_system_df_shows_the_numbers_pallet_does(palletd: Any, things: dict[str, str]) -> None:
    docker = _rows(palletd.docker_ok("system", "df"))
    own = _rows(palletd.cli_ok("system", "df"))
    assert list(docker) == ["Images", "Containers", "Local Volumes", "Build Cache"]
    # TOTAL, ACTIVE, SIZE, RECLAIMABLE (with its share) as pallet counts them.
    assert docker["Images"] == own["Images"]
    assert docker["Images"][:2] == ["1", "1"]
    assert docker["Containers"] == own["Containers"] == ["2", "1", "2MB", "2MB (100%)"]
    assert docker["Local Volumes"] == own["Local Volumes"] == ["2", "1", "150kB", "50kB (33%)"]
    assert docker["Build Cache"] == ["0", "0", "0B", "0B"]


def _section(text: str, title: str) -> list[str]:
    """The table under `title` in `system df -v`: its header, then its rows."""
    lines = text.splitlines()
    start = lines.index(title) + 2  # the title, a blank line, then the table
    table = []
    for line in lines[start:]:
        if not line.strip():
            break
        table.append(line)
    return table


def test_docker_system_df_verbose_lists_every_object(palletd: Any, things: dict[str, str]) -> None:
    out = palletd.docker_ok("system", "df", "-v")
    images = _section(out, "Images space usage:")
    assert "SHARED SIZE" in images[0] and "UNIQUE SIZE" in images[0]
    [busybox] = images[1:]
    cells = busybox.split()
    # SHARED SIZE 0B, UNIQUE SIZE the whole image, 2 containers made from it.
    assert cells[:2] == ["busybox", "latest"] and cells[-3] == "0B" and cells[-1] == "2"
    containers = _section(out, "Containers space usage:")
    rows = {line.split()[-1]: line for line in containers[1:]}
    assert set(rows) == {"exited", "running"}
    assert "  2MB  " in rows["exited"] and "Exited (0)" in rows["exited"]
    assert rows["running"].split()[0] == things["running"][:12]
    volumes = _section(out, "Local Volumes space usage:")
    assert {line.split()[0]: line.split()[1:] for line in volumes[1:]} == {
        "used": ["1", "100kB"], "spare": ["0", "50kB"]}
    assert "Build cache usage: 0B" in out


def test_docker_py_df_and_the_type_argument(palletd: Any, things: dict[str, str]) -> None:
    client = palletd.docker_client()
    try:
        df = client.df()
    finally:
        client.close()
    assert set(df) == {"LayersSize", "Images", "Containers", "Volumes", "BuildCache"}
    [image] = df["Images"]
    assert image["Containers"] == 2 and image["SharedSize"] == 0 and image["Size"] > 0
    assert image["RepoTags"] == ["busybox:latest"]
    assert df["LayersSize"] >= image["Size"]
    sizes = {c["Names"][0]: (c["SizeRw"], c["SizeRootFs"]) for c in df["Containers"]}
    rw, root = sizes["/exited"]
    assert 2_000_000 <= rw < 2_100_000 and root > rw
    assert sizes["/running"][0] < 50_000
    usage = {v["Name"]: v["UsageData"] for v in df["Volumes"]}
    assert usage == {"used": {"Size": 100_000, "RefCount": 1}, "spare": {"Size": 50_000, "RefCount": 0}}
    assert df["BuildCache"] == []

    only = request(palletd.docker_socket, "GET", "/system/df?type=volume&type=build-cache").json()
    assert only["Images"] is None and only["Containers"] is None and only["LayersSize"] == 0
    assert sorted(v["Name"] for v in only["Volumes"]) == ["spare", "used"]
    assert only["BuildCache"] == []
    # Before API 1.42 there is no `type`: every kind, whatever it says.
    old = request(palletd.docker_socket, "GET", "/v1.41/system/df?type=volume").json()
    assert old["Images"] is not None and old["Containers"] is not None
    bad = request(palletd.docker_socket, "GET", "/system/df?type=bogus")
    assert bad.status == 400 and "bogus" in bad.message
    assert json.loads(bad.body)["message"].startswith("invalid type")
