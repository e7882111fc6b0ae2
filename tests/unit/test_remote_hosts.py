"""`client.remote`: tcp:// hosts and where the CLI's TLS files come from (flags, then
$PALLET_CERT_PATH, then ~/.pallet), with errors that name the flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from pallet.client.cli import parse_args
from pallet.client.remote import TLSFiles, TLSOptions, tcp_address, tls_files
from pallet.v1.errors import InvalidArgument


def test_tcp_addresses() -> None:
    assert tcp_address("tcp://10.0.0.5:2376") == ("10.0.0.5", 2376)
    assert tcp_address("tcp://pallet.example:2376/") == ("pallet.example", 2376)
    assert tcp_address("tcp://[::1]:2376") == ("::1", 2376)


@pytest.mark.parametrize("host, says", [
    ("tcp://10.0.0.5", "give a port, e.g. tcp://10.0.0.5:2376"),
    ("tcp://10.0.0.5:http", "the port must be a number"),
    ("tcp://10.0.0.5:70000", "the port must be a number from 1 to 65535"),
    ("tcp://:2376", "no host name"),
    ("tcp://", "expected tcp://HOST:PORT"),
    ("tcp://[::1]", "expected tcp://[IPV6]:PORT"),
    ("tcp://::1:2376", "give a port"),
])
def test_bad_tcp_addresses_say_what_is_wrong(host: str, says: str) -> None:
    with pytest.raises(InvalidArgument, match=says.replace("[", r"\[").replace("]", r"\]")):
        tcp_address(host)


def _dir(path: Path, *names: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name in names:
        (path / name).write_text("pem")
    return path


def test_without_tls_asked_for_the_flags_are_named(tmp_path: Path) -> None:
    _dir(tmp_path / ".pallet", "ca.pem", "cert.pem", "key.pem")
    with pytest.raises(InvalidArgument) as refused:
        tls_files("tcp://h:1", TLSOptions(), {"HOME": str(tmp_path)})
    for flag in ("--tlsverify", "PALLET_TLS_VERIFY", "--tlscacert", "--tlscert", "--tlskey", "PALLET_CERT_PATH"):
        assert flag in refused.value.message
    # PALLET_TLS_VERIFY=0 is off, as an empty one is.
    with pytest.raises(InvalidArgument):
        tls_files("tcp://h:1", TLSOptions(), {"PALLET_TLS_VERIFY": "0", "PALLET_CERT_PATH": str(tmp_path / ".pallet")})


def test_files_come_from_flags_then_pallet_cert_path_then_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = _dir(tmp_path / "home" / ".pallet", "ca.pem", "cert.pem", "key.pem")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert tls_files("tcp://h:1", TLSOptions(verify=True), {}) == TLSFiles(
        str(home / "ca.pem"), str(home / "cert.pem"), str(home / "key.pem"))
    certs = _dir(tmp_path / "certs", "ca.pem", "cert.pem", "key.pem")
    env = {"PALLET_CERT_PATH": str(certs), "PALLET_TLS_VERIFY": "1"}
    assert tls_files("tcp://h:1", None, env).ca == str(certs / "ca.pem")
    mine = _dir(tmp_path / "mine", "client.crt")
    files = tls_files("tcp://h:1", TLSOptions(cert=str(mine / "client.crt")), env)
    assert files == TLSFiles(str(certs / "ca.pem"), str(mine / "client.crt"), str(certs / "key.pem"))


def test_a_missing_file_is_named_with_its_flag(tmp_path: Path) -> None:
    certs = _dir(tmp_path / "certs", "ca.pem", "cert.pem")
    with pytest.raises(InvalidArgument, match=f"no client key at {certs}/key.pem: give --tlskey"):
        tls_files("tcp://h:1", TLSOptions(verify=True), {"PALLET_CERT_PATH": str(certs)})
    with pytest.raises(InvalidArgument, match=r"no CA certificate at /nowhere/ca.pem \(--tlscacert\)"):
        tls_files("tcp://h:1", TLSOptions(ca="/nowhere/ca.pem"), {"PALLET_CERT_PATH": str(certs)})


def test_the_cli_takes_the_tls_flags_before_the_verb() -> None:
    args = parse_args(["-H", "tcp://h:2376", "--tlsverify", "--tlscacert", "a", "--tlscert=b", "--tlskey", "c", "ps", "-a"])
    assert args.host == "tcp://h:2376" and args.all
    assert args.tls == TLSOptions(True, "a", "b", "c")
    assert parse_args(["ps"]).tls == TLSOptions()
