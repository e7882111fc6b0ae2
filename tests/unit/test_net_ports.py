"""-p and --expose parsing, and the host ports held for published ones."""

from __future__ import annotations

import socket

import pytest

from pallet.daemon.networks.ports import PortBinding, PortReservations, parse_expose, parse_publish
from pallet.v1.errors import FailedPrecondition, InvalidArgument


@pytest.mark.parametrize("spec, want", [
    ("80", [PortBinding("tcp", "", 0, 80)]),
    ("8080:80", [PortBinding("tcp", "", 8080, 80)]),
    ("127.0.0.1:8080:80/udp", [PortBinding("udp", "127.0.0.1", 8080, 80)]),
    ("127.0.0.1::80", [PortBinding("tcp", "127.0.0.1", 0, 80)]),
    ("0.0.0.0:81:80", [PortBinding("tcp", "", 81, 80)]),
    ("8000-8001:80-81", [PortBinding("tcp", "", 8000, 80), PortBinding("tcp", "", 8001, 81)]),
    ("8000-8010:80", [PortBinding("tcp", "", 8000, 80, host_port_end=8010)]),
    ("80-81", [PortBinding("tcp", "", 0, 80), PortBinding("tcp", "", 0, 81)]),
])
def test_publish_specs(spec: str, want: list[PortBinding]) -> None:
    assert parse_publish(spec) == want


@pytest.mark.parametrize("spec, words", [
    ("70000:80", "1 to 65535"), ("80/sctp", "tcp or udp"), ("x:1:80", "not an IP"),
    ("8000-8002:80-81", "same length"), ("81-80", "ends before"), ("1:2:3:4", "write"),
    ("[::1]:80:80", "IPv6"), ("8080:", "container port is missing"),
])
def test_bad_publish_specs(spec: str, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        parse_publish(spec)


def test_expose() -> None:
    assert parse_expose("80") == ["80/tcp"]
    assert parse_expose("53/udp") == ["53/udp"]
    assert parse_expose("8000-8001") == ["8000/tcp", "8001/tcp"]
    with pytest.raises(InvalidArgument):
        parse_expose("0")


def test_a_reserved_port_refuses_a_second_reservation_and_others() -> None:
    r = PortReservations()
    port = r.reserve("a", PortBinding("tcp", "127.0.0.1", 0, 80))
    assert port > 0
    with pytest.raises(FailedPrecondition, match=f"port {port}/tcp on 127.0.0.1 is already in use"):
        r.reserve("b", PortBinding("tcp", "127.0.0.1", port, 80))
    with socket.socket() as other, pytest.raises(OSError):
        other.bind(("127.0.0.1", port))
    r.release_all("a")
    assert r.reserve("b", PortBinding("tcp", "127.0.0.1", port, 80)) == port
    r.release_all("b")
    assert r.owners() == []


def test_a_host_range_picks_a_free_port_of_it() -> None:
    r = PortReservations()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        taken = busy.getsockname()[1]
        got = r.reserve("a", PortBinding("udp", "127.0.0.1", taken, 53, host_port_end=taken + 1))
        assert got == taken + 1
    r.release_all("a")


def test_an_address_that_is_not_the_hosts_is_refused() -> None:
    with pytest.raises(FailedPrecondition, match="not an address of this host"):
        PortReservations().reserve("a", PortBinding("tcp", "203.0.113.9", 0, 80))
