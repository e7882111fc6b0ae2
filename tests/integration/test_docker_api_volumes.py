"""Docker's volume endpoints on `<run-root>/docker.sock`: `docker volume create, ls,
inspect, rm, prune` and docker-py's `client.volumes`, on real volume directories; and
the refusals (unknown volumes, a volume in use, bad bodies) with dockerd's statuses."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from docker_http import request

pytestmark = pytest.mark.integration


def _filters(**filters: list[str]) -> str:
    return "filters=" + urllib.parse.quote(json.dumps(filters))


def _volumes(palletd: Any) -> list[str]:
    """The volumes' names, sorted (pallet's own view)."""
    return sorted(palletd.cli_ok("volume", "ls", "-q").split())


def test_create_inspect_ls_and_rm_through_the_docker_cli(palletd: Any) -> None:
    assert palletd.docker_ok("volume", "create", "--label", "app=db", "--label", "tier=back",
                             "dbdata").strip() == "dbdata"
    doc = json.loads(palletd.docker_ok("volume", "inspect", "dbdata"))[0]
    assert set(doc) == {"CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"}
    assert (doc["Name"], doc["Driver"], doc["Scope"]) == ("dbdata", "local", "local")
    assert doc["Labels"] == {"app": "db", "tier": "back"} and doc["Options"] == {}
    assert doc["CreatedAt"].endswith("Z")
    mount = Path(doc["Mountpoint"])
    assert mount.is_dir() and mount.parent.parent == palletd.root / "volumes"
    # Data written by a container lands in the Mountpoint.
    palletd.cli_ok("run", "--rm", "-v", "dbdata:/data", "busybox:latest", "sh", "-c",
                   "echo kept > /data/f")
    assert (mount / "f").read_text() == "kept\n"

    anon = palletd.docker_ok("volume", "create").strip()
    assert len(anon) == 64 and anon in _volumes(palletd)
    opts = palletd.docker_ok("volume", "create", "-d", "local", "-o", "type=tmpfs",
                             "-o", "device=tmpfs", "-o", "o=size=1m", "scratch").strip()
    assert json.loads(palletd.docker_ok("volume", "inspect", opts))[0]["Options"] == {
        "device": "tmpfs", "o": "size=1m", "type": "tmpfs"}

    table = palletd.docker_ok("volume", "ls")
    assert table.splitlines()[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert "local     dbdata" in table
    ls = lambda *f: sorted(palletd.docker_ok("volume", "ls", "-q", *f).split())  # noqa: E731
    assert ls("--filter", "label=app=db") == ["dbdata"]
    assert ls("--filter", "label=app") == ["dbdata"]
    assert ls("--filter", "name=scra") == ["scratch"]
    assert ls("--filter", "driver=local") == sorted([anon, "dbdata", "scratch"])
    assert ls("--filter", "dangling=true") == sorted([anon, "dbdata", "scratch"])
    palletd.cli_ok("run", "-d", "--name", "holder", "-v", "dbdata:/data", "busybox:latest",
                   "sleep", "300")
    assert ls("--filter", "dangling=false") == ["dbdata"]
    assert palletd.docker_ok("volume", "ls", "--format", "{{.Name}}:{{.Label \"tier\"}}",
                             "--filter", "name=dbdata").strip() == "dbdata:back"

    # In use: dockerd's 409, force or not; the data kept.
    busy = palletd.docker("volume", "rm", "dbdata")
    assert busy.returncode == 1 and "in use" in busy.stderr and "holder" in busy.stderr
    forced = request(palletd.docker_socket, "DELETE", "/volumes/dbdata?force=1")
    assert forced.status == 409 and "holder" in forced.message
    assert (mount / "f").read_text() == "kept\n"
    palletd.cli_ok("rm", "-f", "holder")

    assert palletd.docker_ok("volume", "rm", "dbdata", anon).split() == ["dbdata", anon]
    assert not mount.exists()
    gone = palletd.docker("volume", "inspect", "dbdata")
    assert gone.returncode == 1 and "Error response from daemon: get dbdata: no such volume" in gone.stderr
    # rm -f of a volume that is not there is no error (dockerd's).
    assert palletd.docker("volume", "rm", "-f", "dbdata").returncode == 0
    palletd.docker_ok("volume", "rm", "scratch")
    assert _volumes(palletd) == []


def test_prune_removes_anonymous_volumes_or_all_unused_ones(palletd: Any) -> None:
    anon = palletd.docker_ok("volume", "create").strip()
    palletd.docker_ok("volume", "create", "--label", "keep=no", "named1")
    palletd.docker_ok("volume", "create", "--label", "keep=yes", "named2")
    palletd.docker_ok("volume", "create", "used")
    palletd.cli_ok("run", "-d", "--name", "holder", "-v", "used:/u", "busybox:latest", "sleep", "300")
    # An anonymous volume of the API's own kind: what -v /path and VOLUME make.
    palletd.cli_ok("run", "--rm", "-v", "named1:/d", "busybox:latest", "sh", "-c",
                   "head -c 100000 /dev/zero > /d/zeros")

    # Without --all: the anonymous ones only (a volume created without a name is not
    # anonymous to docker: it has no com.docker.volume.anonymous label).
    out = palletd.docker_ok("volume", "prune", "-f")
    assert "Total reclaimed space:" in out
    assert anon in _volumes(palletd)
    out = palletd.docker_ok("volume", "prune", "-f", "--all", "--filter", "label=keep=no")
    assert out.splitlines()[:2] == ["Deleted Volumes:", "named1"]
    assert "Total reclaimed space: 100kB" in out
    assert _volumes(palletd) == sorted([anon, "named2", "used"])
    reply = request(palletd.docker_socket, "POST", "/volumes/prune?" + _filters(all=["true"]))
    assert reply.status == 200
    assert sorted(reply.json()["VolumesDeleted"]) == sorted([anon, "named2"])
    assert reply.json()["SpaceReclaimed"] == 0
    assert _volumes(palletd) == ["used"]
    # Before API 1.42 prune took every unused volume, named or not (no `all` filter).
    palletd.cli_ok("rm", "-f", "holder")
    old = request(palletd.docker_socket, "POST", "/v1.41/volumes/prune")
    assert old.json() == {"VolumesDeleted": ["used"], "SpaceReclaimed": 0}
    bad = request(palletd.docker_socket, "POST", "/volumes/prune?" + _filters(all=["maybe"]))
    assert bad.status == 400 and "all=maybe" in bad.message


def test_docker_py_volumes(palletd: Any) -> None:
    import docker

    client = palletd.docker_client()
    try:
        vol = client.volumes.create("pyvol", driver="local", labels={"by": "py"},
                                    driver_opts={"type": "tmpfs", "device": "tmpfs"})
        assert vol.name == "pyvol" and vol.attrs["Labels"] == {"by": "py"}
        assert client.volumes.get("pyvol").attrs["Options"] == {"device": "tmpfs", "type": "tmpfs"}
        assert [v.name for v in client.volumes.list(filters={"label": "by=py"})] == ["pyvol"]
        # The same create again returns the volume (dockerd's), a different one is refused.
        assert client.volumes.create("pyvol", labels={"by": "py"},
                                     driver_opts={"type": "tmpfs", "device": "tmpfs"}).name == "pyvol"
        with pytest.raises(docker.errors.APIError) as differs:
            client.volumes.create("pyvol", labels={"by": "someone else"})
        assert differs.value.status_code == 409
        with pytest.raises(docker.errors.NotFound) as missing:
            client.volumes.get("novol")
        assert missing.value.explanation == "get novol: no such volume"
        vol.remove()
        assert client.volumes.list() == []
        unnamed = client.volumes.create()
        assert len(unnamed.name) == 64
        assert client.volumes.prune(filters={"all": True}) == {
            "VolumesDeleted": [unnamed.name], "SpaceReclaimed": 0}
    finally:
        client.close()


def test_bad_input_is_refused_and_nothing_is_made(palletd: Any) -> None:
    sock = palletd.docker_socket

    def create(body: Any) -> Any:
        return request(sock, "POST", "/volumes/create", body)

    for body, word in (
        ({"Name": 5}, "Name"),
        ({"Name": "bad name!"}, "bad name!"),
        ({"Name": "v", "Driver": "nfs-plugin"}, "nfs-plugin"),
        ({"Name": "v", "Labels": ["a"]}, "Labels"),
        ({"Name": "v", "Labels": {"a": 1}}, "Labels"),
        ({"Name": "v", "DriverOpts": {"type": "nosuchfs", "device": "x"}}, "nosuchfs"),
        ({"Name": "v", "DriverOpts": {"colour": "red"}}, "colour"),
        ({"Name": "v", "ClusterVolumeSpec": {"Group": "g"}}, "swarm"),
    ):
        reply = create(body)
        assert reply.status == 400 and word in reply.message, (body, reply.status, reply.message)
    not_json = request(sock, "POST", "/volumes/create", b"[1, 2]",
                       headers={"Content-Type": "application/json"})
    assert not_json.status == 400 and "JSON object" in not_json.message
    assert _volumes(palletd) == []
    volumes_dir = palletd.root / "volumes"
    assert not volumes_dir.exists() or list(volumes_dir.iterdir()) == []
    # An empty body makes a volume with a generated name (201), as dockerd does.
    made = request(sock, "POST", "/volumes/create", b"")
    assert made.status == 201 and len(made.json()["Name"]) == 64
    for method, path in (("GET", "/volumes/novol"), ("DELETE", "/volumes/novol")):
        reply = request(sock, method, path)
        assert (reply.status, reply.message) == (404, "get novol: no such volume"), path
    assert request(sock, "DELETE", "/volumes/novol?force=true").status == 204
    assert request(sock, "DELETE", "/volumes/x?force=perhaps").status == 400
    filters = request(sock, "GET", "/volumes?" + _filters(colour=["red"]))
    assert filters.status == 400 and "colour" in filters.message
    listed = request(sock, "GET", "/volumes")
    assert listed.json()["Warnings"] == [] and len(listed.json()["Volumes"]) == 1
