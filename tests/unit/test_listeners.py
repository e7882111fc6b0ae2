"""`daemon.api.listeners`: unix socket ownership for --group, and the mutual-TLS context
a tcp:// listener served by asyncio uses (the Docker API gateway's)."""

from __future__ import annotations

import os
import socket
import ssl
import stat
from pathlib import Path

import pytest

from pallet.daemon.api.listeners import chown_socket, group_id, server_ssl_context, tls_material
from pallet.daemon.config import Config
from pallet.v1.errors import InvalidArgument
from tls_certs import CA


def _socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    return sock


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another group needs root")
def test_chown_socket_gives_the_socket_to_root_and_the_group(tmp_path: Path) -> None:
    with _socket(tmp_path / "s.sock"):
        chown_socket(tmp_path / "s.sock", "4242")
        info = (tmp_path / "s.sock").stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o660, 0, 4242)
        chown_socket(tmp_path / "s.sock")
        info = (tmp_path / "s.sock").stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o660, 0, 0)


def test_an_unknown_group_is_named() -> None:
    with pytest.raises(InvalidArgument, match="unknown group 'no-such-group-xyz' for --group"):
        group_id("no-such-group-xyz")
    assert group_id("root") == 0


def test_server_ssl_context_requires_client_certificates(tmp_path: Path) -> None:
    ca = CA(tmp_path)
    server = ca.issue("server", "palletd", server=True, ips=("127.0.0.1",))
    cfg = Config(tls_cert=server.cert, tls_key=server.key, tls_ca=ca.cert)
    context = server_ssl_context(cfg)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert tls_material(cfg, "tcp://x:1")[0] == server.cert.read_bytes()


def test_a_tcp_listener_without_its_files_names_the_flags(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="give --tlscert, --tlskey and --tlscacert"):
        server_ssl_context(Config(tls_cert=tmp_path / "c.pem"), "tcp://0.0.0.0:2376")
    missing = Config(tls_cert=tmp_path / "c.pem", tls_key=tmp_path / "k.pem", tls_ca=tmp_path / "ca.pem")
    with pytest.raises(InvalidArgument, match=f"cannot read --tlscert {tmp_path}/c.pem"):
        tls_material(missing, "tcp://0.0.0.0:2376")
    (tmp_path / "c.pem").write_text("not a certificate")
    (tmp_path / "k.pem").write_text("not a key")
    with pytest.raises(InvalidArgument, match="cannot use --tlscert"):
        server_ssl_context(missing)
