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


def test_docker_py_containers(palletd: Any) -> None:
    client = palletd.docker_client()
    try:
        made = client.containers.create("busybox", ["sh", "-c", "echo made"], name="pymade",
                                        labels={"from": "py"}, environment={"X": "1"})
        assert made.status == "created" and made.name == "pymade"
        ran = client.containers.run("busybox", ["sh", "-c", "echo hello; sleep 600"], detach=True,
                                    name="pyran", ports={"80/tcp": ("127.0.0.1", 18082)})
        ran.reload()
        assert ran.status == "running"
        assert ran.attrs["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18082"}]}
        assert ran.ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18082"}]}
        assert sorted(c.name for c in client.containers.list()) == ["pyran"]
        assert sorted(c.name for c in client.containers.list(all=True)) == ["pymade", "pyran"]
        assert [c.name for c in client.containers.list(all=True, filters={"label": "from=py"})] == ["pymade"]
        assert client.containers.get("pyran").id == ran.id
        for _ in range(50):
            if ran.logs() == b"hello\n":
                break
            time.sleep(0.1)
        assert ran.logs() == b"hello\n"
        assert ran.logs(stdout=False) == b""
        ran.stop(timeout=1)
        assert ran.wait() == {"StatusCode": 137, "Error": None}
        made.start()
        assert made.wait(condition="not-running")["StatusCode"] == 0
        assert made.logs() == b"made\n"
        made.remove()
        ran.remove(force=True)
        import docker.errors

        with pytest.raises(docker.errors.NotFound, match="No such container: pyran"):
            client.containers.get("pyran")
        api = client.api
        host_config = api.create_host_config(
            mem_limit="32m", cpu_shares=512, pids_limit=40, cap_drop=["NET_RAW"],
            read_only=True, tmpfs={"/scratch": "size=1m"}, restart_policy={"Name": "on-failure", "MaximumRetryCount": 3},
            binds={"/tmp": {"bind": "/hosttmp", "mode": "ro"}}, extra_hosts={"db": "10.0.0.9"},
            dns=["10.0.0.53"], sysctls={"net.ipv4.ip_forward": "1"}, init=True,
            ulimits=[docker.types.Ulimit(name="nofile", soft=512, hard=1024)],
            log_config=docker.types.LogConfig(type="json-file", config={"max-size": "1m", "max-file": "2"}),
        )
        created = api.create_container("busybox", ["true"], name="pyapi", host_config=host_config,
                                       working_dir="/tmp", user="1:1", hostname="box",
                                       stop_signal="SIGINT", healthcheck={"test": ["CMD", "true"], "interval": 1_000_000_000})
        doc = api.inspect_container(created["Id"])
        hc = doc["HostConfig"]
        assert (hc["Memory"], hc["CpuShares"], hc["PidsLimit"]) == (32 << 20, 512, 40)
        assert hc["CapDrop"] == ["CAP_NET_RAW"] or hc["CapDrop"] == ["NET_RAW"]
        assert hc["ReadonlyRootfs"] is True and hc["Tmpfs"] == {"/scratch": "size=1m"}
        assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
        assert hc["Binds"] == ["/tmp:/hosttmp:ro"] and hc["ExtraHosts"] == ["db:10.0.0.9"]
        assert hc["Dns"] == ["10.0.0.53"] and hc["Sysctls"] == {"net.ipv4.ip_forward": "1"}
        assert hc["Init"] is True and hc["Ulimits"] == [{"Name": "nofile", "Hard": 1024, "Soft": 512}]
        assert hc["LogConfig"]["Config"] == {"max-size": str(1 << 20), "max-file": "2"}
        cfg = doc["Config"]
        assert (cfg["WorkingDir"], cfg["User"], cfg["Hostname"], cfg["StopSignal"]) == ("/tmp", "1:1", "box", "SIGINT")
        assert cfg["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 1_000_000_000}
        api.remove_container(created["Id"])
    finally:
        for name in ("pymade", "pyran", "pyapi"):
            palletd.docker("rm", "-f", name)
        client.close()


def test_wait_conditions_next_exit_and_removed(palletd: Any) -> None:
    palletd.docker_ok("create", "--name", "later", "busybox", "sh", "-c", "exit 5")
    # Waiting for the next exit of a container not started yet returns once it has run.
    waiter = palletd.docker_popen("wait", "later")  # the CLI's default: not-running
    assert waiter.communicate(timeout=30)[0].strip() == b"0"  # created: at once
    next_exit = request_async(palletd, "/containers/later/wait?condition=next-exit")
    time.sleep(0.5)
    assert next_exit.poll() is None
    palletd.docker_ok("start", "later")
    out, _ = next_exit.communicate(timeout=30)
    assert json.loads(out) == {"StatusCode": 5, "Error": None}
    removed = request_async(palletd, "/containers/later/wait?condition=removed")
    time.sleep(0.5)
    assert removed.poll() is None
    palletd.docker_ok("rm", "later")
    out, _ = removed.communicate(timeout=30)
    assert json.loads(out) == {"StatusCode": 5, "Error": None}
    bad = request(palletd.docker_socket, "POST", "/containers/nothing/wait")
    assert (bad.status, bad.message) == (404, "No such container: nothing")
    palletd.docker_ok("create", "--name", "cond", "busybox", "true")
    odd = request(palletd.docker_socket, "POST", "/containers/cond/wait?condition=sometime")
    assert odd.status == 400 and "condition" in odd.message
    palletd.docker_ok("rm", "cond")


def request_async(palletd: Any, path: str) -> subprocess.Popen[bytes]:
    """A POST in a process of its own (it blocks until the wait is over); its body on stdout."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from docker_http import request; "
        "r = request(sys.argv[2], 'POST', sys.argv[3], timeout=60); "
        "sys.stdout.buffer.write(r.body)"
    )
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.Popen([sys.executable, "-c", code, here, str(palletd.docker_socket), path],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    palletd.popens.append(proc)
    return proc


def _names(palletd: Any) -> list[str]:
    return sorted(c["Names"][0] for c in request(palletd.docker_socket, "GET", "/containers/json?all=1").json())


def test_bad_create_bodies_are_refused_naming_the_field_and_make_nothing(palletd: Any) -> None:
    sock = palletd.docker_socket
    cases: list[tuple[bytes | dict[str, Any], int, str]] = [
        (b"{not json", 400, "invalid JSON"),
        (b"[1, 2]", 400, "expected a JSON object"),
        ({"Image": "busybox", "Env": "A=1"}, 400, "invalid Env: 'A=1': expected an array of strings"),
        ({"Image": "busybox", "Tty": "yes"}, 400, "invalid Tty"),
        ({"Image": "busybox", "HostConfig": {"Memory": "64m"}}, 400, "invalid HostConfig.Memory: '64m': expected an integer"),
        ({"Image": "busybox", "HostConfig": {"Memory": True}}, 400, "invalid HostConfig.Memory"),
        ({"Image": "busybox", "HostConfig": {"PidMode": "host"}}, 400, "HostConfig.PidMode 'host' is not supported by pallet"),
        ({"Image": "busybox", "HostConfig": {"Links": ["a:b"]}}, 400, "HostConfig.Links"),
        ({"Image": "busybox", "HostConfig": {"LogConfig": {"Type": "syslog"}}}, 400, "HostConfig.LogConfig.Type 'syslog' is not supported"),
        ({"Image": "busybox", "HostConfig": {"DeviceRequests": [{"Driver": "nvidia"}]}}, 400, "HostConfig.DeviceRequests"),
        ({"Image": "busybox", "Domainname": "example.org"}, 400, "Domainname 'example.org' is not supported"),
        ({"Image": "busybox", "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "nope"}]}}}, 400, "nope"),
        ({"Image": "busybox", "HostConfig": {"Memory": 1024}}, 400, "memory"),
        ({"Image": "busybox", "HostConfig": {"CapAdd": ["NOT_A_CAP"]}}, 400, "NOT_A_CAP"),
        ({"Image": "busybox", "HostConfig": {"Mounts": [{"Type": "bind", "Source": "/does/not/exist", "Target": "/x"}]}}, 400, "/does/not/exist"),
        ({"Image": "busybox", "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}, 400, "sometimes"),
        ({"Image": "busybox", "NetworkingConfig": {"EndpointsConfig": {"bridge": {}, "nonet": {}}}}, 404, "nonet"),
        ({"Image": "busybox", "HostConfig": {"NetworkMode": "host"},
          "NetworkingConfig": {"EndpointsConfig": {"host": {}, "bridge": {}}}}, 400, "cannot be on other networks"),
        ({"Image": "busybox", "HostConfig": {"NetworkMode": "nosuchnet"}}, 404, "nosuchnet"),
        ({"Image": "busybox:nope"}, 404, "No such image: busybox:nope"),
        ({}, 400, "no image given"),
    ]
    for body, status, words in cases:
        reply = request(sock, "POST", "/containers/create?name=half", body)
        assert reply.status == status and words in reply.message, (body, reply.status, reply.body)
        assert reply.headers["content-type"] == "application/json"
    assert _names(palletd) == []
    bad_name = request(sock, "POST", "/containers/create?name=no/slash", {"Image": "busybox"})
    assert bad_name.status == 400
    unknown = request(sock, "POST", "/containers/create?name=fine",
                      {"Image": "busybox", "Cmd": ["true"], "SomethingNew": {"x": 1},
                       "HostConfig": {"AlsoNew": 3, "IpcMode": "private", "Runtime": "runc"}})
    assert unknown.status == 201 and unknown.json()["Warnings"] == []
    assert _names(palletd) == ["/fine"]
    dup = request(sock, "POST", "/containers/create?name=fine", {"Image": "busybox"})
    assert dup.status == 409 and "fine" in dup.message
    assert _names(palletd) == ["/fine"]
    palletd.docker_ok("rm", "fine")


def test_unknown_containers_and_bad_arguments_over_raw_http(palletd: Any) -> None:
    sock = palletd.docker_socket
    for method, path in (("GET", "/containers/ghost/json"), ("POST", "/containers/ghost/start"),
                         ("POST", "/containers/ghost/stop"), ("POST", "/containers/ghost/kill"),
                         ("DELETE", "/containers/ghost"), ("GET", "/containers/ghost/logs?stdout=1"),
                         ("GET", "/containers/ghost/top"), ("GET", "/containers/ghost/changes"),
                         ("POST", "/containers/ghost/rename?name=xy"), ("POST", "/containers/ghost/pause")):
        reply = request(sock, method, path)
        assert (reply.status, reply.message) == (404, "No such container: ghost"), path
    palletd.docker_ok("create", "--name", "target", "busybox", "sleep", "600")
    assert request(sock, "POST", "/containers/target/stop").status == 304
    assert request(sock, "POST", "/containers/target/start").status == 204
    assert request(sock, "POST", "/containers/target/start").status == 304
    assert request(sock, "POST", "/containers/target/kill?signal=NOPE").status == 400
    assert request(sock, "POST", "/containers/target/stop?t=soon").status == 400
    assert request(sock, "GET", "/containers/json?all=maybe").status == 400
    assert request(sock, "GET", "/containers/json?filters={bad").status == 400
    assert request(sock, "DELETE", "/containers/target?link=1").status == 400
    assert request(sock, "POST", "/containers/target/rename").status == 400
    up = request(sock, "POST", "/containers/target/update", {"Memory": "lots"})
    assert up.status == 400 and "Memory" in up.message
    assert request(sock, "POST", "/containers/target/update", b"{oops").status == 400
    ok = request(sock, "POST", "/containers/target/update", {"CpuShares": 256})
    assert (ok.status, ok.json()) == (200, {"Warnings": []})
    assert request(sock, "GET", "/containers/target/logs?stdout=1&since=yesterday").status == 400
    assert request(sock, "GET", "/containers/target/logs?stdout=1&tail=some").status == 400
    conflict = request(sock, "DELETE", "/containers/target")
    assert conflict.status == 409 and "running" in conflict.message
    sized = request(sock, "GET", "/containers/target/json?size=1").json()
    assert sized["SizeRw"] >= 0 and sized["SizeRootFs"] > sized["SizeRw"]
    assert "SizeRw" not in request(sock, "GET", "/containers/target/json").json()
    listed = request(sock, "GET", "/containers/json").json()[0]
    assert listed["Names"] == ["/target"] and listed["State"] == "running"
    assert listed["Command"] == "sleep 600" and listed["HostConfig"] == {"NetworkMode": "bridge"}
    assert listed["Status"].startswith("Up ") and "bridge" in listed["NetworkSettings"]["Networks"]
    assert request(sock, "DELETE", "/containers/target?force=1").status == 204
    assert _names(palletd) == []


def test_run_of_a_missing_image_says_so(palletd: Any) -> None:
    # The CLI hears dockerd's 404 for the image, tries to pull it, and shows why that failed
    # (no registry is reachable from the tests).
    result = palletd.docker("run", "-d", "busybox:nope", "true")
    assert result.returncode == 125
    assert result.stderr.startswith("Unable to find image 'busybox:nope' locally\n")
    assert "docker: Error response from daemon:" in result.stderr
    assert palletd.docker_ok("ps", "-aq") == ""


def test_docker_run_rm_in_the_foreground(palletd: Any) -> None:
    result = palletd.docker("run", "--rm", "busybox", "sh", "-c", "echo hi; echo err >&2; exit 7")
    assert (result.returncode, result.stdout, result.stderr) == (7, "hi\n", "err\n")
    assert palletd.docker_ok("ps", "-aq") == ""
    kept = palletd.docker("run", "--name", "kept", "busybox", "echo", "there")
    assert (kept.returncode, kept.stdout) == (0, "there\n")
    assert palletd.docker_ok("ps", "-a", "--format", "{{.Names}} {{.Status}}").startswith("kept Exited (0)")
    palletd.docker_ok("rm", "kept")


def test_docker_create_flags_reach_the_container(palletd: Any) -> None:
    palletd.docker_ok("volume", "create", "flagvol")
    palletd.docker_ok("network", "create", "fullnet")
    try:
        palletd.docker_ok(
            "create", "--name", "full", "-v", "/anon", "-v", "flagvol:/n:ro",
            "--mount", "type=tmpfs,target=/t,tmpfs-size=1048576", "--tmpfs", "/run2:size=2m",
            "--read-only", "--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD",
            "--security-opt", "no-new-privileges", "--ulimit", "nofile=100:200",
            "--memory", "32m", "--cpus", "0.25", "--pids-limit", "20", "--restart", "always",
            "--hostname", "h", "--dns", "1.1.1.1", "--add-host", "a:10.0.0.1",
            "--health-cmd", "true", "--health-interval", "2s", "--stop-signal", "SIGINT",
            "--stop-timeout", "3", "--init", "--log-opt", "max-size=1m", "--log-opt", "max-file=2",
            "-e", "A=1", "-u", "0", "--entrypoint", "", "-P", "--expose", "99",
            "--network", "fullnet", "--network-alias", "fullalias", "busybox", "sh", "-c", "cat /proc/self/limits")
        doc = json.loads(palletd.docker_ok("container", "inspect", "full"))[0]
        hc, cfg = doc["HostConfig"], doc["Config"]
        assert "/anon" in cfg["Volumes"]
        mounts = {m["Destination"]: m for m in doc["Mounts"]}
        assert mounts["/n"]["Name"] == "flagvol" and mounts["/n"]["RW"] is False
        assert mounts["/anon"]["Type"] == "volume" and mounts["/t"]["Type"] == "tmpfs"
        assert hc["Tmpfs"] == {"/run2": "size=2m"} and hc["ReadonlyRootfs"] is True
        assert "CAP_NET_ADMIN" in hc["CapAdd"] or "NET_ADMIN" in hc["CapAdd"]
        assert hc["SecurityOpt"] == ["no-new-privileges"]
        assert hc["Ulimits"] == [{"Name": "nofile", "Hard": 200, "Soft": 100}]
        assert (hc["Memory"], hc["NanoCpus"], hc["PidsLimit"]) == (32 << 20, 250_000_000, 20)
        assert hc["RestartPolicy"]["Name"] == "always" and hc["PublishAllPorts"] is True
        assert hc["Dns"] == ["1.1.1.1"] and hc["ExtraHosts"] == ["a:10.0.0.1"] and hc["Init"] is True
        assert hc["LogConfig"]["Config"] == {"max-size": str(1 << 20), "max-file": "2"}
        assert (cfg["Hostname"], cfg["User"], cfg["StopSignal"], cfg["StopTimeout"]) == ("h", "0", "SIGINT", 3)
        assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 2_000_000_000}
        assert "A=1" in cfg["Env"] and cfg["Entrypoint"] is None and "99/tcp" in cfg["ExposedPorts"]
        assert "fullalias" in doc["NetworkSettings"]["Networks"]["fullnet"]["Aliases"]
        palletd.docker_ok("start", "full")
        assert palletd.docker_ok("wait", "full").strip() == "0"
        limits = palletd.docker_ok("logs", "full")
        assert any(line.startswith("Max open files") and "100" in line and "200" in line
                   for line in limits.splitlines())
    finally:
        palletd.docker("rm", "-f", "-v", "full")
        palletd.docker("volume", "rm", "flagvol")
        palletd.docker("network", "rm", "fullnet")


def test_create_on_several_networks_at_once(palletd: Any) -> None:
    """API 1.44+: EndpointsConfig names every network (Compose creates a service so)."""
    palletd.docker_ok("network", "create", "--subnet", "10.77.0.0/24", "front")
    palletd.docker_ok("network", "create", "back")
    try:
        body = {
            "Image": "busybox", "Cmd": ["sleep", "600"],
            "HostConfig": {"NetworkMode": "front"},
            "NetworkingConfig": {"EndpointsConfig": {
                "front": {"Aliases": ["web"], "IPAMConfig": {"IPv4Address": "10.77.0.9"}},
                "back": {"Aliases": ["api"]},
            }},
        }
        made = request(palletd.docker_socket, "POST", "/v1.47/containers/create?name=multi", body)
        assert made.status == 201, made.body
        palletd.docker_ok("start", "multi")
        nets = json.loads(palletd.docker_ok("inspect", "-f", "{{json .NetworkSettings.Networks}}", "multi"))
        assert sorted(nets) == ["back", "front"]
        assert nets["front"]["IPAddress"] == "10.77.0.9" and "web" in nets["front"]["Aliases"]
        assert nets["back"]["IPAddress"] and "api" in nets["back"]["Aliases"]
        palletd.docker_ok("run", "-d", "--name", "peer", "--network", "back", "busybox", "sleep", "600")
        ping = palletd.docker("exec", "peer", "ping", "-c", "1", "-W", "2", "api")
        assert ping.returncode == 0, ping.stderr
        names = sorted(palletd.docker_ok("ps", "--filter", "network=back", "--format", "{{.Names}}").split())
        assert names == ["multi", "peer"]
    finally:
        palletd.docker("rm", "-f", "multi", "peer")
        palletd.docker("network", "rm", "front", "back")
