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


def test_lifecycle_verbs_with_the_docker_cli(palletd: Any) -> None:
    palletd.docker_ok("run", "-d", "--name", "life", "busybox", "sleep", "600")
    assert palletd.docker_ok("pause", "life").strip() == "life"
    assert palletd.docker_ok("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "life").split() == ["paused", "true"]
    assert "(Paused)" in palletd.docker_ok("ps", "--format", "{{.Status}}")
    assert palletd.docker_ok("unpause", "life").strip() == "life"
    top = palletd.docker_ok("top", "life").splitlines()
    assert top[0].split()[:3] == ["UID", "PID", "PPID"] and "sleep 600" in top[1]
    top_o = palletd.docker_ok("top", "life", "-o", "pid,comm").splitlines()
    assert top_o[0].split() == ["PID", "COMMAND"] and top_o[1].split()[1] == "sleep"
    palletd.docker_ok("rename", "life", "lived")
    assert palletd.docker_ok("ps", "--format", "{{.Names}}").strip() == "lived"
    assert palletd.docker_ok("update", "--memory", "64m", "--memory-swap", "128m",
                             "--cpus", "0.5", "--pids-limit", "50", "--restart", "on-failure:2",
                             "lived").strip() == "lived"
    limits = json.loads(palletd.docker_ok("inspect", "-f", "{{json .HostConfig}}", "lived"))
    assert (limits["Memory"], limits["NanoCpus"], limits["PidsLimit"]) == (64 << 20, 500_000_000, 50)
    assert limits["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    pid = palletd.docker_ok("inspect", "-f", "{{.State.Pid}}", "lived").strip()
    assert palletd.docker_ok("restart", "-t", "0", "lived").strip() == "lived"
    assert palletd.docker_ok("inspect", "-f", "{{.State.Pid}}", "lived").strip() != pid
    # The init here is sleep, which (a PID 1 without handlers) ignores SIGTERM, as under dockerd.
    assert palletd.docker_ok("kill", "-s", "TERM", "lived").strip() == "lived"
    assert palletd.docker_ok("inspect", "-f", "{{.State.Running}}", "lived").strip() == "true"
    assert palletd.docker_ok("kill", "-s", "SIGKILL", "lived").strip() == "lived"
    assert palletd.docker_ok("wait", "lived").strip() == "137"
    again = palletd.docker("kill", "lived")
    assert again.returncode == 1 and "is not running" in again.stderr
    assert palletd.docker_ok("start", "lived").strip() == "lived"
    assert palletd.docker_ok("start", "lived").strip() == "lived"  # 304: already running
    running = palletd.docker("rm", "lived")
    assert running.returncode == 1 and "running" in running.stderr
    assert palletd.docker_ok("rm", "-f", "lived").strip() == "lived"
    assert palletd.docker_ok("ps", "-aq") == ""


def test_diff_and_container_prune(palletd: Any) -> None:
    palletd.docker_ok("run", "-d", "--name", "changer", "-l", "keep=no", "busybox", "sh", "-c",
                      "mkdir /made && echo x > /made/f && rm /bin/vi")
    assert palletd.docker_ok("wait", "changer").strip() == "0"
    diff = palletd.docker_ok("diff", "changer").splitlines()
    assert "A /made" in diff and "A /made/f" in diff and "D /bin/vi" in diff and "C /bin" in diff
    palletd.docker_ok("create", "--name", "kept", "-l", "keep=yes", "busybox", "true")
    palletd.docker_ok("run", "-d", "--name", "up", "busybox", "sleep", "600")
    out = palletd.docker_ok("container", "prune", "-f", "--filter", "label=keep=no")
    assert out.startswith("Deleted Containers:\n") and "Total reclaimed space:" in out
    names = palletd.docker_ok("ps", "-a", "--format", "{{.Names}}").split()
    assert sorted(names) == ["kept", "up"]
    palletd.docker_ok("container", "prune", "-f")
    assert palletd.docker_ok("ps", "-a", "--format", "{{.Names}}").split() == ["up"]
    palletd.docker_ok("rm", "-f", "up")


def test_ps_filters_and_formats(palletd: Any) -> None:
    palletd.docker_ok("network", "create", "psnet")
    palletd.docker_ok("volume", "create", "psvol")
    try:
        first = palletd.docker_ok("create", "--name", "first", "-l", "tier=db", "busybox", "true").strip()
        palletd.docker_ok("run", "-d", "--name", "second", "-l", "tier=web", "--network", "psnet",
                          "-v", "psvol:/data", "-p", "18081:80", "--expose", "9000", "busybox",
                          "sleep", "600")
        palletd.docker_ok("run", "-d", "--name", "third", "busybox", "sh", "-c", "exit 4")
        assert palletd.docker_ok("wait", "third").strip() == "4"

        def names(*args: str) -> list[str]:
            return sorted(palletd.docker_ok("ps", "-a", "--format", "{{.Names}}", *args).split())

        assert names() == ["first", "second", "third"]
        assert sorted(palletd.docker_ok("ps", "--format", "{{.Names}}").split()) == ["second"]
        assert names("--filter", "label=tier=db") == ["first"]
        assert names("--filter", "label=tier") == ["first", "second"]
        assert names("--filter", "status=exited") == ["third"]
        assert names("--filter", "status=created") == ["first"]
        assert names("--filter", "exited=4") == ["third"]
        assert names("--filter", "name=sec") == ["second"]
        assert names("--filter", f"id={first[:10]}") == ["first"]
        assert names("--filter", "ancestor=busybox") == ["first", "second", "third"]
        assert names("--filter", "network=psnet") == ["second"]
        assert names("--filter", "volume=psvol") == ["second"]
        assert names("--filter", "volume=/data") == ["second"]
        assert names("--filter", "publish=18081") == ["second"]
        assert names("--filter", "expose=9000/tcp") == ["second"]
        assert names("--filter", "expose=8000-9100") == ["second"]
        assert names("--filter", "before=third") == ["first", "second"]
        assert names("--filter", "since=first") == ["second", "third"]
        assert names("--filter", "is-task=true") == []
        assert names("--filter", "health=none") == ["first", "second", "third"]
        assert palletd.docker_ok("ps", "-n", "1", "--format", "{{.Names}}").split() == ["third"]
        assert palletd.docker_ok("ps", "-l", "--format", "{{.Names}}").split() == ["third"]
        row = json.loads(palletd.docker_ok("ps", "--format", "{{json .}}", "--filter", "name=second"))
        assert row["Names"] == "second" and row["Networks"] == "psnet" and row["Mounts"] == "psvol"
        assert row["Labels"] == "tier=web" and row["LocalVolumes"] == "1"
        assert "0.0.0.0:18081->80/tcp" in row["Ports"] and "9000/tcp" in row["Ports"]
        sized = palletd.docker_ok("ps", "-s", "--format", "{{.Size}}", "--filter", "name=second")
        assert "virtual" in sized
        bad = palletd.docker("ps", "--filter", "colour=red")
        assert bad.returncode == 1 and "colour" in bad.stderr
        missing = palletd.docker("ps", "--filter", "before=nothing")
        assert missing.returncode == 1 and "No such container: nothing" in missing.stderr
    finally:
        palletd.docker("rm", "-f", "first", "second", "third")
        palletd.docker("network", "rm", "psnet")
        palletd.docker("volume", "rm", "psvol")


def test_logs_follow_streams_until_the_container_ends(palletd: Any) -> None:
    palletd.docker_ok("run", "-d", "--name", "talker", "busybox", "sh", "-c",
                      "for i in 1 2 3; do echo line$i; sleep 0.3; done; echo oops >&2")
    follow = palletd.docker_popen("logs", "-f", "talker")
    out, err = follow.communicate(timeout=30)
    assert follow.returncode == 0
    assert (out, err) == (b"line1\nline2\nline3\n", b"oops\n")
    palletd.docker_ok("rm", "talker")


def test_logs_of_a_tty_container_are_raw(palletd: Any) -> None:
    palletd.docker_ok("run", "-d", "-t", "--name", "tty", "busybox", "sh", "-c", "echo on-a-tty")
    palletd.docker_ok("wait", "tty")
    shown = palletd.docker_ok("logs", "tty")
    assert shown.rstrip("\r\n") == "on-a-tty"
    reply = request(palletd.docker_socket, "GET", "/containers/tty/logs?stdout=1")
    assert reply.headers["content-type"] == "application/vnd.docker.raw-stream"
    assert reply.body == b"on-a-tty\r\n"  # no frame headers: the terminal's bytes as they are
    palletd.docker_ok("rm", "tty")


def test_logs_over_raw_http_are_multiplexed_frames(palletd: Any) -> None:
    palletd.docker_ok("run", "-d", "--name", "framed", "busybox", "sh", "-c", "echo a; echo b >&2")
    palletd.docker_ok("wait", "framed")
    reply = request(palletd.docker_socket, "GET", "/v1.47/containers/framed/logs?stdout=1&stderr=1")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/vnd.docker.multiplexed-stream"
    frames = sorted([reply.body[:10], reply.body[10:]])
    assert frames == [b"\x01\x00\x00\x00\x00\x00\x00\x02a\n", b"\x02\x00\x00\x00\x00\x00\x00\x02b\n"]
    old = request(palletd.docker_socket, "GET", "/v1.41/containers/framed/logs?stderr=1")
    assert old.headers["content-type"] == "application/vnd.docker.raw-stream"
    assert old.body == b"\x02\x00\x00\x00\x00\x00\x00\x02b\n"
    none = request(palletd.docker_socket, "GET", "/containers/framed/logs")
    assert (none.status, none.message) == (400, "Bad parameters: you must choose at least one stream")
    palletd.docker_ok("rm", "framed")
