"""Remote palletd: gRPC on tcp:// only with mutual TLS, and `--group` for the unix socket.

Certificates are made here (`tls_certs`, with `cryptography`): a CA, palletd's
certificate for 127.0.0.1, a client's; and the ones that must be refused during the
handshake: none, one from another CA, an expired one. Each refusal is checked with the
pallet CLI and with grpcio itself. A good client drives every kind of call over TCP:
unary, server streams (logs -f, events, pull progress, build), uploads (cp, load) and
duplex ones (attach, exec). The module's palletd listens on the host's loopback
(`--bridge none`: it makes nothing in the host's network namespace).
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import stat
import subprocess
import sys
import tarfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from dataclasses import dataclass

from conftest import BASE_CHANGES, Palletd, _console_script, _finish, new_palletd
from registry_harness import Registry, free_port
from tls_certs import CA, Issued

PALLETD_ON_HOST_LOOPBACK = True


class Certs:
    def __init__(self, base: Path) -> None:
        self.ca = CA(base / "ca")
        self.server = self.ca.issue("server", "palletd", server=True, ips=("127.0.0.1",), dns=("localhost",))
        self.client = self.ca.issue("client", "alice")
        self.expired = self.ca.issue("expired", "bob", expired=True)
        self.other_ca = CA(base / "other", "another CA")
        self.stranger = self.other_ca.issue("stranger", "mallory")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


@dataclass
class RemotePalletd(Palletd):
    """A palletd that also listens on `tcp` (mutual TLS)."""

    tcp: str = ""


@pytest.fixture(scope="module")
def module_palletd(busybox_tar: Path, certs: Certs) -> Iterator[Palletd]:
    """This module's daemon: its unix socket (for the harness) and tcp:// with mutual TLS."""
    made = new_palletd(host_loopback=True)
    daemon = RemotePalletd(base=made.base, cgroup_parent=made.cgroup_parent, extra_args=made.extra_args,
                           tcp=f"tcp://127.0.0.1:{free_port()}")
    daemon.extra_args += [
        "--host", daemon.tcp,
        "--tlscert", str(certs.server.cert), "--tlskey", str(certs.server.key),
        "--tlscacert", str(certs.ca.cert),
    ]
    try:
        daemon.start()
        daemon.base_image_id = daemon.import_image(busybox_tar, "busybox:latest", BASE_CHANGES)
        yield daemon
    finally:
        _finish(daemon)


def tls_flags(certs: Certs, client: Issued | None = None, ca: Path | None = None) -> list[str]:
    client = client or certs.client
    return ["--tlsverify", "--tlscacert", str(ca or certs.ca.cert), "--tlscert", str(client.cert),
            "--tlskey", str(client.key)]


def remote_args(palletd: RemotePalletd, certs: Certs, *args: str, client: Issued | None = None) -> list[str]:
    return [*_console_script("pallet"), "-H", palletd.tcp, *tls_flags(certs, client), *args]


def remote(
    palletd: RemotePalletd, certs: Certs, *args: str, client: Issued | None = None, input: str | None = None,
    env: dict[str, str] | None = None, timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """`pallet -H tcp://… --tlsverify … ARGS` (no $PALLET_* from the test's environment)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PALLET_")}
    return subprocess.run(
        remote_args(palletd, certs, *args, client=client), input=input, capture_output=True, text=True,
        timeout=timeout, env={**clean, **(env or {})}, stdin=subprocess.DEVNULL if input is None else None,
    )


def remote_ok(palletd: RemotePalletd, certs: Certs, *args: str, **kwargs: Any) -> str:
    result = remote(palletd, certs, *args, **kwargs)
    assert result.returncode == 0, f"pallet {' '.join(args)}: {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def remote_popen(palletd: RemotePalletd, certs: Certs, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(remote_args(palletd, certs, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    palletd.popens.append(proc)
    return proc


# --------------------------------------------------------------------------- good clients


def test_a_good_client_runs_lists_follows_and_removes_containers_over_tcp(palletd: RemotePalletd, certs: Certs, image: str) -> None:
    assert remote_ok(palletd, certs, "run", "--rm", image, "echo", "hi") == "hi\n"
    cid = remote_ok(palletd, certs, "run", "-d", "--name", "ticker", image,
                    "sh", "-c", "echo one; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo two").strip()
    assert "ticker" in remote_ok(palletd, certs, "ps")
    follower = remote_popen(palletd, certs, "logs", "-f", "ticker")
    assert palletd.read_line(follower) == "one\n"
    remote_ok(palletd, certs, "exec", "ticker", "touch", "/tmp/go")
    assert palletd.read_line(follower) == "two\n"
    assert follower.wait(timeout=20) == 0
    assert remote_ok(palletd, certs, "wait", "ticker").strip() == "0"
    assert remote_ok(palletd, certs, "inspect", "-f", "{{.Id}}", "ticker").strip() == cid
    remote_ok(palletd, certs, "rm", "ticker")
    assert "ticker" not in remote_ok(palletd, certs, "ps", "-a")


def test_attach_and_exec_carry_stdin_both_ways_over_tcp(palletd: RemotePalletd, certs: Certs, image: str) -> None:
    text = "".join(f"line {i}\n" for i in range(2000))
    assert remote_ok(palletd, certs, "run", "-i", "--rm", image, "cat", input=text) == text
    remote_ok(palletd, certs, "run", "-d", "--name", "box", image, "sleep", "600")
    assert remote_ok(palletd, certs, "exec", "-i", "box", "wc", "-l", input=text).strip() == "2000"
    result = remote(palletd, certs, "exec", "box", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    remote_ok(palletd, certs, "rm", "-f", "box")


def test_events_stream_over_tcp(palletd: RemotePalletd, certs: Certs, image: str) -> None:
    watcher = remote_popen(palletd, certs, "events", "--filter", "type=container", "--format", '{{.Action}} {{index .Actor.Attributes "name"}}')
    time.sleep(1)  # subscribed before the container is made
    remote_ok(palletd, certs, "create", "--name", "evented", image, "true")
    assert palletd.read_line(watcher) == "create evented\n"
    remote_ok(palletd, certs, "rm", "evented")
    assert palletd.read_line(watcher) == "destroy evented\n"
    watcher.terminate()


def test_cp_build_save_and_load_over_tcp(palletd: RemotePalletd, certs: Certs, image: str, tmp_path: Path) -> None:
    payload = os.urandom(3 * 1024 * 1024)
    (tmp_path / "blob").write_bytes(payload)
    remote_ok(palletd, certs, "create", "--name", "files", image, "true")
    remote_ok(palletd, certs, "cp", str(tmp_path / "blob"), "files:/blob")
    remote_ok(palletd, certs, "cp", "files:/blob", str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == payload
    remote_ok(palletd, certs, "rm", "files")

    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox\nCOPY hello /hello\nRUN cat /hello > /copied\n")
    (context / "hello").write_text("built remotely\n")
    out = remote_ok(palletd, certs, "build", "-t", "remote:built", str(context))
    assert "Successfully tagged remote:built" in out
    assert remote_ok(palletd, certs, "run", "--rm", "remote:built", "cat", "/copied") == "built remotely\n"

    tar = tmp_path / "image.tar"
    remote_ok(palletd, certs, "save", "-o", str(tar), "remote:built")
    with tarfile.open(tar) as archive:
        assert "index.json" in archive.getnames()
    remote_ok(palletd, certs, "rmi", "remote:built")
    assert "remote:built" in remote_ok(palletd, certs, "load", "-i", str(tar))
    remote_ok(palletd, certs, "rmi", "remote:built")


def test_push_and_pull_progress_over_tcp(palletd: RemotePalletd, certs: Certs, image: str, registry: Registry, tmp_path: Path) -> None:
    env = {"PALLET_CONFIG": str(tmp_path / "cfg")}
    ref = f"{registry.host}/remote/busybox:1"
    remote_ok(palletd, certs, "tag", image, ref)
    assert "Pushed" in remote_ok(palletd, certs, "push", ref, env=env)
    remote_ok(palletd, certs, "rmi", ref)
    remote_ok(palletd, certs, "rmi", image)  # its layers too: the pull downloads them again
    out = remote_ok(palletd, certs, "pull", ref, env=env)
    assert "Pull complete" in out and f"Status: Downloaded newer image for {ref}" in out
    assert remote_ok(palletd, certs, "run", "--rm", ref, "echo", "pulled") == "pulled\n"
    remote_ok(palletd, certs, "rmi", ref)


def test_pallet_tls_verify_and_cert_path_stand_for_the_flags(palletd: RemotePalletd, certs: Certs, tmp_path: Path) -> None:
    directory = tmp_path / "dot-pallet"
    directory.mkdir()
    (directory / "ca.pem").write_bytes(certs.ca.cert.read_bytes())
    (directory / "cert.pem").write_bytes(certs.client.cert.read_bytes())
    (directory / "key.pem").write_bytes(certs.client.key.read_bytes())
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PALLET_")}
    env = {**clean, "PALLET_HOST": palletd.tcp, "PALLET_TLS_VERIFY": "1",
           "PALLET_CERT_PATH": str(directory)}
    out = subprocess.run([*_console_script("pallet"), "version", "--format", "{{.Server.Version}}"],
                         capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode == 0 and out.stdout.strip(), out.stderr
    # ~/.pallet is the default directory, as ~/.docker is docker's.
    home = tmp_path / "home"
    (home / ".pallet").mkdir(parents=True)
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (home / ".pallet" / name).write_bytes((directory / name).read_bytes())
    env = {**clean, "HOME": str(home), "PALLET_TLS_VERIFY": "1"}
    out = subprocess.run([*_console_script("pallet"), "-H", palletd.tcp, "ps", "-q"],
                         capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode == 0, out.stderr


# --------------------------------------------------------------------------- refused clients


def _grpc_version(palletd: RemotePalletd, certs: Certs, client: Issued | None, ca: Path | None = None) -> Any:
    from pallet.v1 import system_pb2, system_pb2_grpc

    creds = grpc.ssl_channel_credentials(
        root_certificates=(ca or certs.ca.cert).read_bytes(),
        private_key=client.key.read_bytes() if client else None,
        certificate_chain=client.cert.read_bytes() if client else None,
    )
    target = palletd.tcp[len("tcp://"):]
    with grpc.secure_channel(target, creds) as channel:
        return system_pb2_grpc.SystemServiceStub(channel).Version(system_pb2.VersionRequest(), timeout=10)


def test_grpcio_with_the_right_certificate_is_served(palletd: RemotePalletd, certs: Certs) -> None:
    assert _grpc_version(palletd, certs, certs.client).version


@pytest.mark.parametrize("who", ["no certificate", "another CA's", "expired"])
def test_grpcio_clients_without_a_good_certificate_are_refused_in_the_handshake(
    palletd: RemotePalletd, certs: Certs, who: str
) -> None:
    client = {"no certificate": None, "another CA's": certs.stranger, "expired": certs.expired}[who]
    with pytest.raises(grpc.RpcError) as refused:
        _grpc_version(palletd, certs, client)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # no call was made


@pytest.mark.parametrize("who", ["another CA's", "expired"])
def test_the_cli_with_a_bad_certificate_is_refused_with_a_clear_error(palletd: RemotePalletd, certs: Certs, who: str) -> None:
    client = {"another CA's": certs.stranger, "expired": certs.expired}[who]
    result = remote(palletd, certs, "ps", client=client, timeout=30)
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"cannot connect to palletd at {palletd.tcp}" in result.stderr
    assert "refused our client certificate" in result.stderr


def test_the_cli_refuses_a_palletd_whose_certificate_another_ca_signed(palletd: RemotePalletd, certs: Certs) -> None:
    args = [*_console_script("pallet"), "-H", palletd.tcp,
            *tls_flags(certs, ca=certs.other_ca.cert), "ps"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "palletd's certificate was not accepted" in result.stderr
    assert "--tlscacert" in result.stderr


def test_tcp_without_tls_material_names_the_flags(palletd: RemotePalletd, tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PALLET_")}
    result = subprocess.run([*_console_script("pallet"), "-H", palletd.tcp, "ps"],
                            capture_output=True, text=True, timeout=30, env={**clean, "HOME": str(tmp_path)})
    assert result.returncode == 1
    for flag in ("--tlsverify", "--tlscacert", "--tlscert", "--tlskey", "PALLET_CERT_PATH"):
        assert flag in result.stderr
    # Asked for TLS, but ~/.pallet has nothing: the missing file and the flag are named.
    result = subprocess.run([*_console_script("pallet"), "-H", palletd.tcp, "--tlsverify", "ps"],
                            capture_output=True, text=True, timeout=30, env={**clean, "HOME": str(tmp_path)})
    assert result.returncode == 1
    assert f"no CA certificate at {tmp_path}/.pallet/ca.pem" in result.stderr and "--tlscacert" in result.stderr


# --------------------------------------------------------------------------- --group


def test_the_socket_is_roots_alone_by_default(palletd: RemotePalletd) -> None:
    info = palletd.socket.stat()
    assert stat.S_IMODE(info.st_mode) == 0o660 and (info.st_uid, info.st_gid) == (0, 0)


@pytest.fixture
def group_and_users() -> Iterator[tuple[str, str, str]]:
    """A group, a user in it and one not in it; removed afterwards."""
    tag = secrets.token_hex(3)
    group, member, outsider = f"plt-g-{tag}", f"plt-in-{tag}", f"plt-out-{tag}"
    made: list[list[str]] = []
    try:
        subprocess.run(["groupadd", group], check=True, timeout=30)
        made.append(["groupdel", group])
        for user, extra in ((member, ["-G", group]), (outsider, [])):
            subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", *extra, user],
                           check=True, timeout=30)
            made.append(["userdel", user])
        yield group, member, outsider
    finally:
        for command in reversed(made):
            subprocess.run(command, check=False, timeout=30)


def _cli_as(user: str, argv: list[str]) -> tuple[int, str]:
    """Run the pallet CLI in a child process that is `user` (its groups from /etc/group).

    Forked, not exec'd: the test's interpreter may live where only root may look (/root),
    so the child runs the command once as root first, which imports every module it
    needs, then becomes the user and runs it again: only that run's output is returned.
    """
    from pallet.client import cli

    entry = pwd.getpwnam(user)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 70
        try:
            os.close(read)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", closefd=False)
            cli._main(argv)
            sys.stdout.flush()
            sys.stderr.flush()
            os.initgroups(user, entry.pw_gid)
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            os.dup2(write, 1)
            os.dup2(write, 2)
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", closefd=False)
            code = cli._main(argv)
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode()


def test_group_gives_its_members_the_socket_and_nobody_else(
    busybox_tar: Path, group_and_users: tuple[str, str, str]
) -> None:
    group, member, outsider = group_and_users
    daemon = new_palletd(host_loopback=True)
    try:
        daemon.extra_args += ["--group", group]
        daemon.start()
        info = daemon.socket.stat()
        assert stat.S_IMODE(info.st_mode) == 0o660
        assert (info.st_uid, info.st_gid) == (0, grp.getgrnam(group).gr_gid)
        daemon.base.chmod(0o711)  # the test's temp dir: let others reach the run root
        argv = ["-H", daemon.host, "run", "--rm", "busybox", "echo", "hi"]
        daemon.import_image(busybox_tar, "busybox:latest", BASE_CHANGES)
        assert _cli_as(member, argv) == (0, "hi\n")
        code, said = _cli_as(outsider, ["-H", daemon.host, "ps"])
        assert code == 1
        assert f"cannot connect to palletd at {daemon.host}: permission denied" in said
        assert "--group" in said
    finally:
        _finish(daemon)


def test_an_unknown_group_is_a_clear_startup_error(tmp_path: Path) -> None:
    missing = f"plt-none-{secrets.token_hex(3)}"
    result = subprocess.run(
        [*_console_script("palletd"), "--root", str(tmp_path / "root"), "--run-root", str(tmp_path / "run"),
         "--bridge", "none", "--group", missing],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert f"unknown group {missing!r} for --group" in result.stderr
    assert not (tmp_path / "root").exists() and not (tmp_path / "run").exists()


def test_run_it_gets_a_terminal_over_tcp(palletd: RemotePalletd, certs: Certs, image: str) -> None:
    from test_tty import Terminal

    child = Terminal(remote_args(palletd, certs, "run", "-it", "--rm", image, "sh"))
    try:
        child.expect_exact("# ")
        child.sendline("tty; echo $((6 * 7))")
        child.expect_exact("/dev/pts/0")
        child.expect_exact("42")
        child.sendline("exit 4")
        assert child.end() == 4
    finally:
        child.close()
