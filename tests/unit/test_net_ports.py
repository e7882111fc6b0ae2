"""`-p`/`--expose` parsing, and host port reservations with real sockets on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from pallet.daemon.networks.ports import PortBinding, PortReservations, parse_expose, parse_publish
from pallet.v1.errors import FailedPrecondition, InvalidArgument

# ------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("spec", "bindings"),
    [
        ("80", [PortBinding("tcp", "", 0, 80)]),
        ("8080:80", [PortBinding("tcp", "", 8080, 80)]),
        ("127.0.0.1:8080:80", [PortBinding("tcp", "127.0.0.1", 8080, 80)]),
        ("127.0.0.1::80", [PortBinding("tcp", "127.0.0.1", 0, 80)]),
        ("0.0.0.0:8080:80", [PortBinding("tcp", "", 8080, 80)]),
        (":8080:80", [PortBinding("tcp", "", 8080, 80)]),
        ("53:53/udp", [PortBinding("udp", "", 53, 53)]),
        ("53/UDP", [PortBinding("udp", "", 0, 53)]),
        ("80/tcp", [PortBinding("tcp", "", 0, 80)]),
        (
            "8000-8002:80-82",
            [PortBinding("tcp", "", 8000, 80), PortBinding("tcp", "", 8001, 81),
             PortBinding("tcp", "", 8002, 82)],
        ),
        ("80-81", [PortBinding("tcp", "", 0, 80), PortBinding("tcp", "", 0, 81)]),
        ("10.1.2.3::80-81/udp", [PortBinding("udp", "10.1.2.3", 0, 80), PortBinding("udp", "10.1.2.3", 0, 81)]),
        ("8000-8010:80", [PortBinding("tcp", "", 8000, 80, host_port_end=8010)]),
        ("8000-8000:80", [PortBinding("tcp", "", 8000, 80)]),
        ("65535:1", [PortBinding("tcp", "", 65535, 1)]),
    ],
)
def test_publish_specs_expanded(spec: str, bindings: list[PortBinding]) -> None:
    assert list(parse_publish(spec)) == bindings


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("", "the container port is missing"),
        ("8080:", "the container port is missing"),
        ("0", "container port 0 is out of range: ports are numbers from 1 to 65535"),
        ("65536", "container port 65536 is out of range"),
        ("0:80", "host port 0 is out of range: ports are numbers from 1 to 65535 (leave the host port out"),
        ("70000:80", "host port 70000 is out of range"),
        ("http", "container port 'http' is not a number"),
        ("80/sctp", "sctp is not supported: use tcp or udp"),
        ("80/icmp", "unknown protocol 'icmp': use tcp or udp"),
        ("80/", "unknown protocol ''"),
        ("1.2.3:80:80", "'1.2.3' is not an IPv4 address"),
        ("localhost:8080:80", "'localhost' is not an IPv4 address"),
        ("127.0.0.1:80", "127.0.0.1 is an address, not a host port: to publish on it write 127.0.0.1::80"),
        ("[::1]:8080:80", "IPv6 host addresses are not supported"),
        ("::1:8080:80", "IPv6 host addresses are not supported"),
        ("8000-8001:80-82", "are not the same number of ports: give ranges of the same length, e.g. 8000-8002:80-82"),
        ("8000:80-82", "are not the same number of ports"),
        ("90-80", "container port range 90-80 ends before it starts: write 80-90"),
        ("8010-8000:80", "host port range 8010-8000 ends before it starts"),
        ("1:2:3:4", "IPv6"),
        ("-80", "is not a number"),
        ("８０", "is not a number"),
    ],
)
def test_bad_publish_specs_say_what_is_wrong_and_what_to_write(spec: str, says: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_publish(spec)
    assert says in caught.value.message
    assert caught.value.message.startswith(f"-p {spec!r}: ")
    assert "[IP:][HOSTPORT:]CONTAINERPORT[/tcp|/udp]" in caught.value.message


def test_expose_specs() -> None:
    assert parse_expose("8000-8002/tcp") == ["8000/tcp", "8001/tcp", "8002/tcp"]
    for bad, says in [("", "the port is missing"), ("0", "out of range"), ("80/sctp", "sctp"),
                      ("a-b", "not a number"), ("9-8", "ends before it starts")]:
        with pytest.raises(InvalidArgument, match=says):
            parse_expose(bad)


# ------------------------------------------------------------------------- reservations


@pytest.fixture
def ports() -> Iterator[PortReservations]:
    reservations = PortReservations()
    yield reservations
    reservations.close()


def free_port(proto: str = "tcp") -> int:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def can_bind(proto: str, addr: str, port: int, *, reuse: bool = False) -> bool:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        if reuse:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((addr, port))
            if proto == "tcp":
                s.listen()
        except OSError:
            return False
        return True


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_a_reserved_port_is_taken_until_it_is_released(ports: PortReservations, proto: str) -> None:
    port = free_port(proto)
    assert ports.reserve("c1", PortBinding(proto, "127.0.0.1", port, 80)) == port
    # Nobody else gets it, not even a server that sets SO_REUSEADDR.
    assert not can_bind(proto, "127.0.0.1", port)
    assert not can_bind(proto, "127.0.0.1", port, reuse=True)
    ports.release_all("c1")
    assert can_bind(proto, "127.0.0.1", port)


def test_a_port_in_use_by_another_program_is_named(ports: PortReservations) -> None:
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with pytest.raises(FailedPrecondition) as caught:
            ports.reserve("c1", PortBinding("tcp", "127.0.0.1", port, 80))
    assert caught.value.message == (
        f"port {port}/tcp on 127.0.0.1 is already in use by another program: choose another"
        " host port with -p HOSTPORT:80"
    )


def test_the_same_port_for_tcp_and_for_udp_are_two_ports(ports: PortReservations) -> None:
    port = free_port()
    ports.reserve("c1", PortBinding("tcp", "127.0.0.1", port, 53))
    if not can_bind("udp", "127.0.0.1", port):
        pytest.skip("the UDP port is taken by someone else")
    assert ports.reserve("c1", PortBinding("udp", "127.0.0.1", port, 53)) == port


def test_every_address_and_one_address_collide_both_ways(ports: PortReservations) -> None:
    port = free_port()
    ports.reserve("c1", PortBinding("tcp", "", port, 80))
    with pytest.raises(FailedPrecondition, match=f"port {port}/tcp on 127.0.0.1 is already in use by container c1"):
        ports.reserve("c2", PortBinding("tcp", "127.0.0.1", port, 80))
    ports.release_all("c1")
    ports.reserve("c2", PortBinding("tcp", "127.0.0.1", port, 80))
    with pytest.raises(FailedPrecondition, match=f"port {port}/tcp on 0.0.0.0 is already in use by container c2"):
        ports.reserve("c1", PortBinding("tcp", "", port, 80))
    # Another program on every address meets the kernel's refusal.
    assert not can_bind("tcp", "0.0.0.0", port, reuse=True)


def test_a_port_left_in_time_wait_does_not_block_it(ports: PortReservations) -> None:
    # A program served on the port and closed first: its side of the connection stays in
    # TIME_WAIT for a minute, bound to the port.
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        conn, _peer = server.accept()
        conn.close()  # the server closes first: TIME_WAIT is on its side, on `port`
        assert client.recv(1) == b""
        client.close()
    assert not can_bind("tcp", "127.0.0.1", port)  # what a plain bind meets
    assert ports.reserve("c1", PortBinding("tcp", "127.0.0.1", port, 80)) == port
    # Held even so: a second reservation (this process, SO_REUSEADDR) is refused.
    with pytest.raises(FailedPrecondition, match="already in use by container c1"):
        ports.reserve("c2", PortBinding("tcp", "127.0.0.1", port, 80))


def test_a_random_host_port_is_picked_and_held(ports: PortReservations) -> None:
    port = ports.reserve("c1", PortBinding("tcp", "127.0.0.1", 0, 80))
    assert 1 <= port <= 65535
    assert not can_bind("tcp", "127.0.0.1", port)


def test_a_host_range_gives_the_first_free_port_in_it(ports: PortReservations) -> None:
    first = free_port()
    if not (can_bind("tcp", "127.0.0.1", first + 1) and can_bind("tcp", "127.0.0.1", first + 2)):
        pytest.skip("the ports after a free one are taken by someone else")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", first))
        taken.listen()
        binding = PortBinding("tcp", "127.0.0.1", first, 80, host_port_end=first + 2)
        assert ports.reserve("c1", binding) == first + 1
        assert ports.reserve("c2", binding) == first + 2
        with pytest.raises(FailedPrecondition) as caught:
            ports.reserve("c3", binding)
    assert caught.value.message.startswith(f"no port in {first}-{first + 2}/tcp on 127.0.0.1 is free")


def test_an_address_the_host_does_not_have(ports: PortReservations) -> None:
    with pytest.raises(FailedPrecondition, match="203.0.113.9 is not an address of this host"):
        ports.reserve("c1", PortBinding("tcp", "203.0.113.9", free_port(), 80))


def test_release_all_lets_every_port_of_an_owner_go(ports: PortReservations) -> None:
    a = ports.reserve("c1", PortBinding("tcp", "127.0.0.1", 0, 80))
    b = ports.reserve("c1", PortBinding("udp", "127.0.0.1", 0, 53))
    c = ports.reserve("c2", PortBinding("tcp", "127.0.0.1", 0, 80))
    ports.release_all("c1")
    assert can_bind("tcp", "127.0.0.1", a) and can_bind("udp", "127.0.0.1", b)
    assert not can_bind("tcp", "127.0.0.1", c)
    ports.release_all("nobody")  # nothing held: nothing happens


@pytest.mark.parametrize(
    "binding",
    [PortBinding("sctp", "", 0, 80), PortBinding("tcp", "", 0, 0), PortBinding("tcp", "::1", 0, 80),
     PortBinding("tcp", "", 9000, 80, host_port_end=8000)],
)
def test_bad_bindings_are_refused(ports: PortReservations, binding: PortBinding) -> None:
    with pytest.raises(InvalidArgument):
        ports.reserve("c1", binding)


# ------------------------------------------------------------------------- the first tests


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
    assert can_bind("tcp", "127.0.0.1", port)


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


def test_a_range_on_an_address_that_is_not_the_hosts_says_so() -> None:
    b = parse_publish("203.0.113.9:8000-8010:80")[0]
    with pytest.raises(FailedPrecondition, match="not an address of this host"):
        PortReservations().reserve("a", b)
