"""Docker's API on `<run-root>/docker.sock`: ping, version negotiation, info, events and
the swarm endpoints, through the real docker CLI, docker-py and raw HTTP; and its refusals
(unknown versions and paths, malformed filters and bodies)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from docker_http import request

pytestmark = pytest.mark.integration


def test_the_socket_is_served_with_mode_0660(palletd: Any) -> None:
    st = palletd.docker_socket.stat()
    assert oct(st.st_mode & 0o777) == "0o660"


def test_ping_get_and_head_carry_dockers_headers(palletd: Any) -> None:
    for method in ("GET", "HEAD"):
        reply = request(palletd.docker_socket, method, "/_ping")
        assert reply.status == 200
        assert reply.body == (b"OK" if method == "GET" else b"")
        assert reply.headers["api-version"] == "1.47"
        assert reply.headers["ostype"] == "linux"
        assert reply.headers["docker-experimental"] == "false"
        assert reply.headers["builder-version"] == "1"
        assert reply.headers["swarm"] == "inactive"
        assert "no-cache" in reply.headers["cache-control"]
    assert request(palletd.docker_socket, "GET", "/v1.24/_ping").status == 200


def test_the_docker_cli_negotiates_down_to_the_served_version(palletd: Any) -> None:
    out = palletd.docker_ok("version")
    assert "API version:       1.47 (downgraded from" in out
    assert "API version:      1.47 (minimum version 1.24)" in out
    fmt = palletd.docker_ok("version", "--format", "{{.Server.Version}} {{.Server.Os}}")
    assert fmt.split()[1] == "linux"
    assert fmt.split()[0] == json.loads(palletd.cli_ok("version", "--format", "{{json .Server}}"))["Version"]


def test_versions_outside_the_range_and_unknown_paths_are_refused(palletd: Any) -> None:
    sock = palletd.docker_socket
    new = request(sock, "GET", "/v1.99/version")
    assert (new.status, new.message) == (
        400, "client version 1.99 is too new. Maximum supported API version is 1.47")
    assert new.headers["content-type"] == "application/json"
    old = request(sock, "GET", "/v1.12/version")
    assert old.status == 400 and "too old. Minimum supported API version is 1.24" in old.message
    for path in ("/nothing", "/v1.47/nothing", "/containers/x/nothing"):
        missing = request(sock, "GET", path)
        assert (missing.status, missing.message) == (404, "page not found"), path
    # A known path with a method it does not take is not found either, as with dockerd.
    assert request(sock, "DELETE", "/version").status == 404


def test_info_matches_the_daemon(palletd: Any) -> None:
    info = json.loads(palletd.docker_ok("info", "--format", "{{json .}}"))
    own = json.loads(palletd.cli_ok("info", "--format", "{{json .}}"))
    assert info["Images"] == own["Images"] >= 1
    assert info["Containers"] == own["Containers"]
    assert info["DockerRootDir"] == str(palletd.root)
    assert info["OSType"] == "linux" and info["Swarm"]["LocalNodeState"] == "inactive"
    assert info["NCPU"] == own["NCPU"] and info["MemTotal"] == own["MemTotal"]


def test_swarm_endpoints_answer_as_a_daemon_outside_a_swarm(palletd: Any) -> None:
    result = palletd.docker("service", "ls")
    assert result.returncode != 0
    assert "This node is not part of a swarm" in result.stderr
    assert "{" not in result.stderr  # the message, not its JSON
    reply = request(palletd.docker_socket, "GET", "/v1.47/nodes")
    assert reply.status == 503 and "not part of a swarm" in reply.message


def test_events_history_and_filters_through_the_docker_cli(palletd: Any) -> None:
    since = time.time() - 1
    palletd.cli_ok("create", "--name", "evented", "--label", "team=a", "busybox", "true")
    palletd.cli_ok("rm", "evented")
    until = time.time() + 1
    lines = palletd.docker_ok(
        "events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
        "--filter", "type=container", "--filter", "label=team=a", "--format", "{{json .}}",
    ).splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["Action"] for e in events] == ["create", "destroy"]
    first = events[0]
    assert first["Type"] == "container" and first["Actor"]["Attributes"]["name"] == "evented"
    assert first["status"] == "create" and first["id"] == first["Actor"]["ID"]
    assert first["timeNano"] // 1_000_000_000 == first["time"]
    bad = palletd.docker("events", "--filter", "bogus=1", "--until", "0s")
    assert bad.returncode != 0 and "unknown event filter 'bogus'" in bad.stderr


def test_events_stream_live_to_docker_py(palletd: Any) -> None:
    client = palletd.docker_client()
    try:
        assert client.ping() is True
        assert client.version()["ApiVersion"] == "1.47"
        stream = client.events(decode=True, filters={"type": "container", "event": "create"})
        palletd.cli_ok("create", "--name", "live-one", "busybox", "true")
        event = next(iter(stream))
        stream.close()
        assert event["Action"] == "create"
        assert event["Actor"]["Attributes"]["name"] == "live-one"
    finally:
        client.close()
        palletd.cli_ok("rm", "-f", "live-one")


def test_malformed_filters_and_times_are_a_clear_400(palletd: Any) -> None:
    sock = palletd.docker_socket
    reply = request(sock, "GET", "/events?filters=%7Bnot-json&until=1")
    assert reply.status == 400 and "invalid filters" in reply.message
    reply = request(sock, "GET", "/events?filters=%7B%22type%22%3A7%7D&until=1")
    assert reply.status == 400 and "'type' must map to a list of strings" in reply.message
    reply = request(sock, "GET", "/events?since=yesterday&until=1")
    assert reply.status == 400 and "invalid value for since" in reply.message


def test_auth_refuses_a_bad_body(palletd: Any) -> None:
    sock = palletd.docker_socket
    assert request(sock, "POST", "/auth", body="{").status == 400
    reply = request(sock, "POST", "/auth", body=b"[]", headers={"Content-Type": "application/json"})
    assert reply.status == 400 and "expected a JSON object" in reply.message
    reply = request(sock, "POST", "/auth", body={"username": 5})
    assert reply.status == 400 and "invalid username" in reply.message
