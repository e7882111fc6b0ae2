"""Docker's streaming container endpoints (attach, exec, resize, archive, export, stats)
through the real docker CLI, docker-py and raw HTTP: what a user sees (output, exit codes,
files), a client that drops a hijacked connection, and bad input."""

from __future__ import annotations

import io
import json
import socket
import tarfile
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from docker_http import request

pytestmark = pytest.mark.integration


def _running(palletd: Any, name: str, *args: str) -> str:
    """A running busybox container made with pallet's own CLI; its full id."""
    palletd.cli_ok("run", "-d", "--name", name, *args, "busybox", "sleep", "3600")
    return str(palletd.inspect(name)["Id"])


def test_docker_py_exec_create_start_inspect(palletd: Any) -> None:
    cid = _running(palletd, "pyex")
    client = palletd.docker_client()
    try:
        api = client.api
        e = api.exec_create(cid, ["sh", "-c", "echo out; echo err >&2; exit 3"])
        info = api.exec_inspect(e["Id"])
        assert info["Running"] is False and info["ExitCode"] is None
        assert info["ProcessConfig"]["entrypoint"] == "sh"
        out = api.exec_start(e["Id"], demux=True)
        assert out == (b"out\n", b"err\n")
        info = api.exec_inspect(e["Id"])
        assert info["ExitCode"] == 3 and info["Running"] is False and info["ContainerID"] == cid
    finally:
        client.close()


def _hijack(palletd: Any, path: str, body: dict[str, Any] | None = None) -> tuple[socket.socket, bytes]:
    """A hijacked connection as the docker CLI opens one: the socket, and the response head."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(str(palletd.docker_socket))
    data = json.dumps(body or {}).encode()
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, head
        head += chunk
    return sock, head


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    """The whole frames of a multiplexed stream (a partial last one left out)."""
    out = []
    while len(data) >= 8:
        stream, size = data[0], int.from_bytes(data[4:8], "big")
        if len(data) < 8 + size:
            break
        out.append((stream, data[8:8 + size]))
        data = data[8 + size:]
    return out


def _read_all(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_exec_start_is_hijacked_with_dockers_headers_and_half_close_ends_stdin(palletd: Any) -> None:
    cid = _running(palletd, "hj")
    sock = palletd.docker_socket
    created = request(sock, "POST", f"/v1.47/containers/{cid}/exec", {
        "Cmd": ["sh", "-c", "cat; echo after >&2"], "AttachStdin": True,
        "AttachStdout": True, "AttachStderr": True})
    assert created.status == 201, created.body
    exec_id = created.json()["Id"]
    conn, head = _hijack(palletd, f"/v1.47/exec/{exec_id}/start", {"Detach": False, "Tty": False})
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 101 UPGRADED"
    assert "Content-Type: application/vnd.docker.multiplexed-stream" in lines
    assert "Connection: Upgrade" in lines and "Upgrade: tcp" in lines
    assert "Api-Version: 1.47" in lines
    conn.sendall(b"hello\n")
    conn.shutdown(socket.SHUT_WR)  # the end of stdin; the output still comes
    frames = _frames(_read_all(conn))
    conn.close()
    assert frames == [(1, b"hello\n"), (2, b"after\n")]
    info = request(sock, "GET", f"/exec/{exec_id}/json").json()
    assert info["ExitCode"] == 0 and info["Running"] is False and info["OpenStdin"] is True
    again = request(sock, "POST", f"/exec/{exec_id}/start", {"Detach": True})
    assert again.status == 409 and "has already run" in again.message


def test_exec_tty_is_a_raw_stream(palletd: Any) -> None:
    cid = _running(palletd, "hjt")
    sock = palletd.docker_socket
    exec_id = request(sock, "POST", f"/containers/{cid}/exec", {
        "Cmd": ["sh", "-c", "stty size; tty"], "Tty": True, "AttachStdout": True,
        "ConsoleSize": [33, 101]}).json()["Id"]
    conn, head = _hijack(palletd, f"/exec/{exec_id}/start", {"Tty": True})
    assert b"Content-Type: application/vnd.docker.raw-stream" in head
    out = _read_all(conn)
    conn.close()
    assert out.replace(b"\r\n", b"\n") == b"33 101\n/dev/pts/0\n"


def test_a_client_that_drops_an_exec_mid_stream_closes_its_stdin(palletd: Any) -> None:
    cid = _running(palletd, "drop")
    sock = palletd.docker_socket
    exec_id = request(sock, "POST", f"/containers/{cid}/exec", {
        "Cmd": ["sh", "-c", "cat >/tmp/got; echo $? >/tmp/done"], "AttachStdin": True,
        "AttachStdout": True}).json()["Id"]
    conn, _ = _hijack(palletd, f"/exec/{exec_id}/start", {})
    conn.sendall(b"partial")
    time.sleep(0.5)
    assert request(sock, "GET", f"/exec/{exec_id}/json").json()["Running"] is True
    conn.close()  # gone without a word: its exec's stdin ends, cat ends
    deadline = time.monotonic() + 10
    while request(sock, "GET", f"/exec/{exec_id}/json").json()["Running"]:
        assert time.monotonic() < deadline, "the exec kept running after its client went"
        time.sleep(0.1)
    assert request(sock, "GET", f"/exec/{exec_id}/json").json()["ExitCode"] == 0
    assert palletd.cli_ok("exec", cid, "cat", "/tmp/got") == "partial"
    assert palletd.inspect(cid)["State"]["Running"] is True


def test_attach_with_logs_and_stream_and_a_dropped_attach(palletd: Any) -> None:
    palletd.cli_ok("run", "-d", "--name", "att", "busybox", "sh", "-c",
                   "echo early; while sleep 0.2; do echo tick; done")
    cid = str(palletd.inspect("att")["Id"])
    time.sleep(0.5)
    conn, head = _hijack(palletd, f"/containers/{cid}/attach?logs=1&stream=1&stdout=1&stderr=1")
    assert head.startswith(b"HTTP/1.1 101 UPGRADED")
    got = b""
    while got.count(b"tick") < 3:
        got += conn.recv(4096)
    frames = _frames(got)
    assert frames[0] == (1, b"early\n")
    conn.close()
    time.sleep(0.5)
    assert palletd.inspect("att")["State"]["Running"] is True  # attach gone, container not


def test_exec_errors_are_dockers(palletd: Any) -> None:
    sock = palletd.docker_socket
    missing = request(sock, "GET", "/exec/nope/json")
    assert (missing.status, missing.message) == (404, "No such exec instance: nope")
    start = request(sock, "POST", "/exec/nope/start", {})
    assert (start.status, start.message) == (404, "No such exec instance: nope")
    assert request(sock, "POST", "/exec/nope/resize?h=10&w=10").status == 404
    palletd.cli_ok("create", "--name", "stopped", "busybox", "true")
    stopped = request(sock, "POST", "/containers/stopped/exec", {"Cmd": ["true"]})
    assert stopped.status == 409 and "is not running" in stopped.message
    nobody = request(sock, "POST", "/containers/ghost/exec", {"Cmd": ["true"]})
    assert (nobody.status, nobody.message) == (404, "No such container: ghost")
    cid = _running(palletd, "errs")
    assert request(sock, "POST", f"/containers/{cid}/exec", {"Cmd": []}).status == 400
    bad = request(sock, "POST", f"/containers/{cid}/exec", {"Cmd": "ls"})
    assert bad.status == 400 and "Cmd" in bad.message
    keys = request(sock, "POST", f"/containers/{cid}/exec", {"Cmd": ["true"], "DetachKeys": "ctrl-"})
    assert keys.status == 400 and "Invalid detach keys" in keys.message
    assert request(sock, "POST", f"/containers/{cid}/resize?h=x&w=1").status == 400
    # Its container stopped between create and start: the head is out, so the error is
    # the stream's text (dockerd's way), and the exec ended without running.
    late = request(sock, "POST", f"/containers/{cid}/exec", {"Cmd": ["true"],
                                                             "AttachStdout": True}).json()["Id"]
    palletd.cli_ok("stop", "-t", "0", cid)
    conn, head = _hijack(palletd, f"/exec/{late}/start", {})
    said = _frames(_read_all(conn))
    conn.close()
    assert head.startswith(b"HTTP/1.1 101") and said == [(1, f"Container {cid} is not running\r\n".encode())]
    info = request(sock, "GET", f"/exec/{late}/json").json()
    assert (info["Running"], info["ExitCode"]) == (False, 126)


def test_docker_py_archive_export_and_stats(palletd: Any) -> None:
    cid = _running(palletd, "files")
    client = palletd.docker_client()
    try:
        api = client.api
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("hello.txt")
            info.size = 5
            tar.addfile(info, io.BytesIO(b"world"))
        assert api.put_archive(cid, "/tmp", buf.getvalue()) is True
        assert palletd.cli_ok("exec", cid, "cat", "/tmp/hello.txt") == "world"
        chunks, stat = api.get_archive(cid, "/tmp/hello.txt")
        assert stat["name"] == "hello.txt" and stat["size"] == 5
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            member = tar.extractfile("hello.txt")
            assert member is not None and member.read() == b"world"
        _, dstat = api.get_archive(cid, "/tmp")
        assert dstat["mode"] & (1 << 31)  # Go's ModeDir: what docker cp reads
        exported = b"".join(api.export(cid))
        with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
            assert "bin/busybox" in tar.getnames()
        s = api.stats(cid, stream=False)
        assert s["id"] == cid and s["name"] == "/files"
        assert s["memory_stats"]["usage"] > 0 and s["pids_stats"]["current"] >= 1
        assert s["precpu_stats"]["system_cpu_usage"] > 0  # a second sample's predecessor
        one = api.stats(cid, stream=False, one_shot=True)
        assert one["precpu_stats"]["system_cpu_usage"] == 0
        with pytest.raises(Exception, match="No such container"):
            api.get_archive(cid + "x", "/tmp")
    finally:
        client.close()


# -- the docker CLI, as users run it ----------------------------------------------------


def test_docker_cp_both_ways(palletd: Any, tmp_path: Path) -> None:
    c = "dcp"
    _running(palletd, c)
    (tmp_path / "f.txt").write_text("file content\n")
    palletd.docker_ok("cp", str(tmp_path / "f.txt"), f"{c}:/tmp/")
    assert palletd.cli_ok("exec", c, "cat", "/tmp/f.txt") == "file content\n"
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "deep.txt").write_text("deep\n")
    palletd.docker_ok("cp", str(tree), f"{c}:/tmp/tree")
    assert palletd.cli_ok("exec", c, "cat", "/tmp/tree/sub/deep.txt") == "deep\n"
    palletd.cli_ok("exec", c, "sh", "-c", "mkdir -p /data/d && echo x > /data/d/x && echo y > /data/y")
    out = tmp_path / "out"
    palletd.docker_ok("cp", f"{c}:/data", str(out))
    assert (out / "d" / "x").read_text() == "x\n" and (out / "y").read_text() == "y\n"
    palletd.docker_ok("cp", f"{c}:/data/y", str(tmp_path / "y.copy"))
    assert (tmp_path / "y.copy").read_text() == "y\n"
    # `-`: a tar on stdout, and a tar from stdin.
    r = palletd.docker("cp", f"{c}:/data/d", "-", input=b"")
    assert r.returncode == 0, r.stderr
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
        assert sorted(tar.getnames()) == ["d", "d/x"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("from-stdin.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"in\n"))
    r = palletd.docker("cp", "-", f"{c}:/tmp", input=buf.getvalue())
    assert r.returncode == 0, r.stderr
    assert palletd.cli_ok("exec", c, "cat", "/tmp/from-stdin.txt") == "in\n"
    r = palletd.docker("cp", f"{c}:/no/such", str(tmp_path / "x"))
    assert r.returncode != 0 and "/no/such" in r.stderr


def test_docker_export_and_stats(palletd: Any, tmp_path: Path) -> None:
    c = "dexp"
    _running(palletd, c)
    palletd.cli_ok("exec", c, "sh", "-c", "echo mark > /marker")
    palletd.docker_ok("export", "-o", str(tmp_path / "fs.tar"), c)
    with tarfile.open(tmp_path / "fs.tar") as tar:
        member = tar.extractfile("marker")
        assert member is not None and member.read() == b"mark\n"
    out = palletd.docker_ok("stats", "--no-stream", "--format",
                            "{{.Name}} {{.MemUsage}} {{.PIDs}} {{.CPUPerc}}", c)
    name, used, _, limit, pids, cpu = out.split()
    assert name == c and used.endswith("B") and limit.endswith("B")
    assert int(pids) >= 1 and cpu.endswith("%")


def test_websocket_attach_carries_output_and_stdin(palletd: Any) -> None:
    import asyncio

    import aiohttp

    palletd.cli_ok("run", "-di", "--name", "wsc", "busybox", "cat")

    async def talk() -> bytes:
        connector = aiohttp.UnixConnector(path=str(palletd.docker_socket))
        async with aiohttp.ClientSession(connector=connector) as session:
            url = "http://docker/v1.47/containers/wsc/attach/ws?stream=1&stdin=1&stdout=1"
            async with session.ws_connect(url) as ws:
                await ws.send_bytes(b"over the websocket\n")
                msg = await asyncio.wait_for(ws.receive(), 10)
                return bytes(msg.data)

    assert asyncio.run(talk()) == b"over the websocket\n"
    time.sleep(0.3)
    assert palletd.inspect("wsc")["State"]["Running"] is True
    missing = request(palletd.docker_socket, "GET", "/containers/ghost/attach/ws?stream=1")
    assert (missing.status, missing.message) == (404, "No such container: ghost")


def test_docker_run_output_and_exit_codes(palletd: Any) -> None:
    r = palletd.docker("run", "--rm", "busybox", "echo", "hi")
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    r = palletd.docker("run", "--rm", "busybox", "sh", "-c", "echo oops >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "", "oops\n")


def test_docker_run_i_takes_piped_stdin(palletd: Any) -> None:
    r = palletd.docker("run", "-i", "--rm", "busybox", "cat", input="hello\n")
    assert (r.returncode, r.stdout) == (0, "hello\n"), r.stderr
    big = "".join(f"line {i}\n" for i in range(50000))
    r = palletd.docker("run", "-i", "--rm", "busybox", "wc", "-l", input=big)
    assert (r.returncode, r.stdout.strip()) == (0, "50000"), r.stderr


def test_docker_exec_output_exit_codes_and_stdin(palletd: Any) -> None:
    c = "dex"
    _running(palletd, c)
    hostname = palletd.docker_ok("exec", c, "cat", "/etc/hostname").strip()
    assert hostname and hostname == palletd.cli_ok("exec", c, "hostname").strip()
    r = palletd.docker("exec", c, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (r.returncode, r.stdout, r.stderr) == (7, "out\n", "err\n")
    r = palletd.docker("exec", "-i", c, "cat", input="piped\n")
    assert (r.returncode, r.stdout) == (0, "piped\n")
    r = palletd.docker("exec", "-e", "A=b", "-w", "/tmp", "-u", "nobody", c, "sh", "-c",
                       "echo $A $(pwd) $(id -un)")
    assert r.stdout == "b /tmp nobody\n", r.stderr
    r = palletd.docker("exec", c, "no-such-command")
    assert r.returncode == 126 or r.returncode == 127, (r.returncode, r.stderr)
    palletd.docker_ok("exec", "-d", c, "touch", "/tmp/detached")
    palletd.wait_for(lambda: palletd.cli("exec", c, "test", "-f", "/tmp/detached").returncode == 0,
                     10, what="the detached exec's file")
    palletd.cli_ok("stop", "-t", "0", c)
    r = palletd.docker("exec", c, "true")
    assert r.returncode != 0 and "is not running" in r.stderr


def test_docker_attach_sees_output_and_leaves_the_container_running(palletd: Any) -> None:
    palletd.cli_ok("run", "-d", "--name", "dat", "busybox", "sh", "-c",
                   "while sleep 0.2; do echo tick; done")
    proc = palletd.docker_popen("attach", "--no-stdin", "dat")
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"tick\n"
    proc.kill()
    proc.wait(10)
    time.sleep(0.3)
    assert palletd.inspect("dat")["State"]["Running"] is True
    palletd.cli_ok("run", "-di", "--name", "dcat", "busybox", "cat")
    proc = palletd.docker_popen("attach", "dcat", stdin=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"through attach\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == b"through attach\n"
    proc.kill()
    proc.wait(10)
    assert palletd.inspect("dcat")["State"]["Running"] is True


def test_docker_py_models(palletd: Any) -> None:
    client = palletd.docker_client()
    try:
        c = client.containers.run("busybox", ["sleep", "3600"], detach=True, name="pymod")
        code, out = c.exec_run(["sh", "-c", "echo fine; exit 4"])
        assert (code, out) == (4, b"fine\n")
        code, (out, err) = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
        assert (code, out, err) == (0, b"o\n", b"e\n")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("put.txt")
            info.size = 2
            tar.addfile(info, io.BytesIO(b"ok"))
        assert c.put_archive("/tmp", buf.getvalue())
        bits, stat = c.get_archive("/tmp/put.txt")
        assert stat["size"] == 2
        with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as tar:
            member = tar.extractfile("put.txt")
            assert member is not None and member.read() == b"ok"
        s = c.stats(stream=False)
        assert s["name"] == "/pymod" and s["memory_stats"]["limit"] > 0
        talker = client.containers.run("busybox", ["sh", "-c", "echo said; sleep 3600"],
                                       detach=True, name="pytalk")
        time.sleep(0.5)
        assert talker.attach(stdout=True, stderr=True, stream=False, logs=True) == b"said\n"
        c.remove(force=True)
        talker.remove(force=True)
    finally:
        client.close()


# -- terminals --------------------------------------------------------------------------


@pytest.fixture
def terminals() -> Any:
    from tests.integration.test_tty import Terminal

    started: list[Terminal] = []
    yield started
    for term in started:
        term.close()


def _docker_terminal(palletd: Any, terminals: list[Any], *args: str, **kw: Any) -> Any:
    from tests.integration.conftest import DOCKER_CLI
    from tests.integration.test_tty import Terminal

    env = palletd.docker_env()
    argv = ["env", f"DOCKER_HOST={env['DOCKER_HOST']}", f"DOCKER_CONFIG={env['DOCKER_CONFIG']}",
            "DOCKER_CLI_HINTS=false", DOCKER_CLI, *args]
    term = Terminal(argv, **kw)
    terminals.append(term)
    return term


def test_docker_run_it_and_exec_it_on_a_terminal(palletd: Any, terminals: list[Any]) -> None:
    child = _docker_terminal(palletd, terminals, "run", "-it", "--name", "dtty", "busybox", "sh",
                             rows=30, cols=90)
    child.expect_exact("# ")
    child.sendline("stty size; tty; echo hel''lo")
    child.expect_exact("30 90")
    child.expect_exact("/dev/pts/0")
    child.expect_exact("hello")
    child.setwinsize(50, 120)  # SIGWINCH: the CLI resizes the container's terminal
    time.sleep(0.5)
    child.sendline("stty size")
    child.expect_exact("50 120")
    other = _docker_terminal(palletd, terminals, "exec", "-it", "dtty", "sh", rows=40, cols=100)
    other.expect_exact("# ")
    other.sendline("stty size; echo from-exec")
    other.expect_exact("40 100")
    other.expect_exact("from-exec")
    other.setwinsize(20, 70)  # and an exec's: POST /exec/{id}/resize
    time.sleep(0.5)
    other.sendline("stty size")
    other.expect_exact("20 70")
    other.sendline("exit 5")
    assert other.end() == 5
    # ctrl-p ctrl-q: detached, the container runs on.
    child.sendcontrol("p")
    child.sendcontrol("q")
    assert child.end() == 0
    assert palletd.inspect("dtty")["State"]["Running"] is True
    again = _docker_terminal(palletd, terminals, "attach", "dtty")
    time.sleep(0.5)
    again.sendline("echo back-again")
    again.expect_exact("back-again")
    again.sendline("exit 2")
    assert again.end() == 2


def test_an_attach_without_upgrade_is_answered_200_and_the_stream(palletd: Any) -> None:
    palletd.cli_ok("run", "-d", "--name", "old", "busybox", "sh", "-c", "echo before; sleep 3600")
    time.sleep(0.3)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(30)
    conn.connect(str(palletd.docker_socket))
    conn.sendall(b"POST /v1.24/containers/old/attach?logs=1&stdout=1 HTTP/1.1\r\nHost: d\r\n"
                 b"Content-Length: 0\r\n\r\n")
    reply = _read_all(conn)
    conn.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Type: application/vnd.docker.multiplexed-stream" in head
    assert b"Transfer-Encoding" not in head and b"Content-Length" not in head
    assert _frames(body) == [(1, b"before\n")]
    bad = request(palletd.docker_socket, "POST", "/containers/old/attach?stdout=1")
    assert bad.status == 400 and "at least one stream" in bad.message


def test_docker_start_a_waits_for_the_start_and_gives_the_exit_code(palletd: Any) -> None:
    palletd.docker_ok("create", "--name", "later", "busybox", "sh", "-c", "echo ran; exit 4")
    r = palletd.docker("start", "-a", "later")
    assert (r.returncode, r.stdout) == (4, "ran\n"), r.stderr
    r = palletd.docker("start", "-a", "later")  # exited: attached again for its next run
    assert (r.returncode, r.stdout) == (4, "ran\n"), r.stderr


def test_stats_stream_sends_a_sample_a_second_with_its_predecessor(palletd: Any) -> None:
    cid = _running(palletd, "sst")
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(30)
    conn.connect(str(palletd.docker_socket))
    conn.sendall(f"GET /containers/{cid}/stats HTTP/1.1\r\nHost: d\r\n\r\n".encode())
    got = b""
    whole: list[bytes] = []
    while len(whole) < 2:  # JSON lines, each in a chunk of its own
        got += conn.recv(65536)
        whole = [line for line in got.partition(b"\r\n\r\n")[2].split(b"\n")
                 if line.startswith(b"{") and line.endswith(b"}")]
    conn.close()
    lines = [json.loads(line) for line in whole]
    assert len(lines) >= 2
    second = lines[1]
    assert second["preread"] == lines[0]["read"] != "0001-01-01T00:00:00Z"
    assert second["precpu_stats"]["cpu_usage"]["total_usage"] == lines[0]["cpu_stats"]["cpu_usage"]["total_usage"]
    both = request(palletd.docker_socket, "GET", f"/containers/{cid}/stats?stream=1&one-shot=1")
    assert both.status == 400
    assert request(palletd.docker_socket, "GET", "/containers/ghost/stats?stream=0").status == 404


def test_a_killed_docker_run_i_client_ends_its_containers_stdin(palletd: Any) -> None:
    proc = palletd.docker_popen("run", "-i", "--name", "rik", "busybox", "sh", "-c",
                                "echo up; cat >/tmp/in; echo done >/tmp/x; sleep 3600",
                                stdin=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    assert proc.stdout.readline() == b"up\n"
    proc.stdin.write(b"some input")
    proc.stdin.flush()
    time.sleep(0.3)
    proc.kill()  # no end of input was sent: the connection just goes
    proc.wait(10)
    palletd.wait_for(lambda: palletd.cli("exec", "rik", "cat", "/tmp/x").stdout == "done\n",
                     10, what="cat to see the end of its stdin")
    assert palletd.cli_ok("exec", "rik", "cat", "/tmp/in") == "some input"
    assert palletd.inspect("rik")["State"]["Running"] is True
