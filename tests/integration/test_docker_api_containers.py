"""Docker's container endpoints on `<run-root>/docker.sock`, driven by the real docker CLI,
docker-py and raw HTTP: create (Config, HostConfig, NetworkingConfig), list and its
filters, inspect, the lifecycle verbs, wait and its conditions, remove, rename, update,
top, changes, prune and logs; and their refusals (malformed and mistyped bodies,
unsupported fields, unknown containers), after which nothing is left half-made."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from docker_http import request

pytestmark = pytest.mark.integration


def _ids(palletd: Any) -> set[str]:
    return {c.id for c in palletd.containers(all=True)} if hasattr(palletd, "containers") else set()


def test_create_start_inspect_wait_rm_with_the_docker_cli(palletd: Any) -> None:
    cid = palletd.docker_ok("create", "--name", "web", "-e", "A=1", "-l", "k=v", "-w", "/tmp",
                            "busybox", "sh", "-c", "echo out; echo err >&2; exit 3").strip()
    assert len(cid) == 64
    doc = json.loads(palletd.docker_ok("inspect", "web"))[0]
    assert doc["Id"] == cid and doc["Name"] == "/web"
    assert doc["State"]["Status"] == "created"
    assert "A=1" in doc["Config"]["Env"] and doc["Config"]["Labels"]["k"] == "v"
    assert doc["Config"]["WorkingDir"] == "/tmp"
    assert doc["Config"]["Cmd"] == ["sh", "-c", "echo out; echo err >&2; exit 3"]
    assert palletd.docker_ok("start", "web").strip() == "web"
    assert palletd.docker_ok("wait", "web").strip() == "3"
    assert palletd.docker_ok("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "web").split() == ["exited", "3"]
    logs = palletd.docker("logs", "web")
    assert (logs.stdout, logs.stderr) == ("out\n", "err\n")
    assert palletd.docker_ok("rm", "web").strip() == "web"
    gone = palletd.docker("container", "inspect", "web")
    assert gone.returncode == 1 and "No such container: web" in gone.stderr


def test_run_detached_ps_logs_stop_with_the_docker_cli(palletd: Any) -> None:
    cid = palletd.docker_ok("run", "-d", "--name", "loop", "-p", "127.0.0.1:18080:80",
                            "busybox", "sh", "-c", "echo one; echo two; sleep 600").strip()
    ps = palletd.docker_ok("ps")
    lines = ps.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert cid[:12] in lines[1] and "busybox" in lines[1] and lines[1].rstrip().endswith("loop")
    assert "Up " in lines[1] and "127.0.0.1:18080->80/tcp" in lines[1]
    fmt = palletd.docker_ok("ps", "--format", "{{.Names}} {{.State}} {{.Ports}} {{.Command}}")
    assert fmt.strip() == '''loop running 127.0.0.1:18080->80/tcp "sh -c 'echo one; ec…"'''
    for _ in range(50):
        if palletd.docker_ok("logs", "loop") == "one\ntwo\n":
            break
        time.sleep(0.1)
    assert palletd.docker_ok("logs", "--tail", "1", "loop") == "two\n"
    stamped = palletd.docker_ok("logs", "-t", "loop").splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["one", "two"]
    assert stamped[0][:4].isdigit() and stamped[0].split(" ")[0].endswith("Z")
    started = time.monotonic()
    assert palletd.docker_ok("stop", "-t", "1", "loop").strip() == "loop"
    assert time.monotonic() - started < 8
    assert palletd.docker_ok("ps", "-q") == ""
    assert palletd.docker_ok("ps", "-aq", "--no-trunc").strip() == cid
    assert "Exited (137)" in palletd.docker_ok("ps", "-a", "--format", "{{.Status}}")
    palletd.docker_ok("rm", "loop")
