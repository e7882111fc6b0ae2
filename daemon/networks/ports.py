"""Published ports: docker's `-p/--publish` and `--expose` syntax, and host port reservations.

Owns: parsing and validating `[IP:][HOSTPORT:]CPORT[/tcp|/udp]` (ranges, random host ports)
into `PortBinding` values, `--expose` into docker's "PORT/PROTO" keys, and `PortReservations`:
one bound, never listening socket per published host port, held while the container runs.
Must not: write firewall rules (that is `firewall.py`), listen, accept or proxy traffic
(the kernel's DNAT carries it), or know what a container is beyond an owner key.

Why hold a socket: the DNAT rule steals a published port's traffic from any program on the
host, so a port that some program already serves must be refused at start, with its name,
and no program may take it while the container runs. A bound socket does both: the kernel
refuses the bind when the port is taken, and refuses anyone else's bind or listen while it
is held. The socket is bound without SO_REUSEADDR, so a server that sets SO_REUSEADDR (most
do) still cannot listen there. Only when that bind fails for TCP does `reserve` try once
more with SO_REUSEADDR: the kernel then allows it only when nothing listens on the port, so
connections in TIME_WAIT left by a program that served there do not block it. (Published
traffic itself leaves no TIME_WAIT on the host: DNAT keeps it in conntrack, not in sockets.)
pallet's own reservations are checked against each other first (the same port on every
address and on one address collide), so the second kind of socket cannot be booked twice.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from pallet.v1.errors import FailedPrecondition, InvalidArgument

PROTOCOLS = ("tcp", "udp")
MAX_PORT = 65535


@dataclass(frozen=True, slots=True)
class PortBinding:
    """One published container port (ranges are expanded: one value per port)."""

    proto: str  # "tcp" | "udp"
    host_ip: str  # "" = every address of the host, loopback included
    host_port: int  # 0 = a free port the kernel picks at start
    container_port: int
    #: > 0: pick one free host port from host_port..host_port_end (`-p 8000-8010:80`).
    host_port_end: int = 0


def parse_publish(spec: str) -> list[PortBinding]:
    """`-p` / `--publish` as docker reads it: `[IP:][HOSTPORT:]CPORT[/PROTO]`."""

    def bad(problem: str) -> InvalidArgument:
        return InvalidArgument(
            f"-p {spec!r}: {problem} (write [IP:][HOSTPORT:]CONTAINERPORT[/tcp|/udp],"
            " e.g. -p 8080:80, -p 127.0.0.1:8080:80, -p 127.0.0.1::80, -p 53:53/udp)"
        )

    head, proto = _split_proto(spec, bad)
    if head.startswith("[") or head.count(":") > 2:
        raise bad(
            "IPv6 host addresses are not supported (pallet's networks are IPv4): publish"
            " on an IPv4 address such as 127.0.0.1, or leave the address out for all of them"
        )
    parts = head.split(":")
    host_ip_text, host_text = "", ""
    if len(parts) == 3:
        host_ip_text, host_text, container_text = parts
    elif len(parts) == 2:
        host_text, container_text = parts
        if _looks_like_ip(host_text):
            raise bad(
                f"{host_text} is an address, not a host port: to publish on it write"
                f" {host_text}::{container_text} (a free host port) or"
                f" {host_text}:HOSTPORT:{container_text}"
            )
    else:
        (container_text,) = parts
    host_ip = _host_ip(host_ip_text, bad)
    if not container_text:
        raise bad("the container port is missing")
    first_c, last_c = _port_range(container_text, "container port", bad)
    count = last_c - first_c + 1
    if not host_text:
        return [PortBinding(proto, host_ip, 0, port) for port in range(first_c, last_c + 1)]
    first_h, last_h = _port_range(host_text, "host port", bad)
    if count == 1:
        # A host range for one container port: one free port from it, as docker does.
        last = last_h if last_h != first_h else 0
        return [PortBinding(proto, host_ip, first_h, first_c, host_port_end=last)]
    if last_h - first_h + 1 != count:
        raise bad(
            f"host ports {host_text} ({last_h - first_h + 1}) and container ports"
            f" {container_text} ({count}) are not the same number of ports: give ranges of"
            f" the same length, e.g. {first_h}-{first_h + count - 1}:{container_text}"
        )
    return [PortBinding(proto, host_ip, first_h + i, first_c + i) for i in range(count)]


def parse_expose(spec: str) -> list[str]:
    """`--expose PORT[-PORT][/PROTO]`: the "PORT/PROTO" keys of docker's ExposedPorts."""

    def bad(problem: str) -> InvalidArgument:
        return InvalidArgument(
            f"--expose {spec!r}: {problem} (write PORT[/tcp|/udp] or a range, e.g."
            " --expose 80, --expose 53/udp, --expose 8000-8010)"
        )

    head, proto = _split_proto(spec, bad)
    if not head:
        raise bad("the port is missing")
    first, last = _port_range(head, "port", bad)
    return [f"{port}/{proto}" for port in range(first, last + 1)]


@dataclass(frozen=True, slots=True)
class ReservedPort:
    """A host port held for an owner."""

    proto: str
    host_ip: str  # "" = every address
    host_port: int


class PortReservations:
    """Bound sockets that keep published host ports taken, grouped by an owner key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, list[tuple[ReservedPort, socket.socket]]] = {}

    def reserve(self, key: str, binding: PortBinding) -> int:
        """Hold the binding's host port for `key`; return it (a picked one for 0 or a range)."""
        _check_binding(binding)
        with self._lock:
            if binding.host_port == 0:
                port, sock = self._bind(key, binding, 0)
            elif binding.host_port_end:
                port, sock = self._bind_from_range(key, binding)
            else:
                port, sock = self._bind(key, binding, binding.host_port)
            held = ReservedPort(binding.proto, binding.host_ip, port)
            self._held.setdefault(key, []).append((held, sock))
            return port

    def release_all(self, key: str) -> None:
        """Let every host port of `key` go."""
        with self._lock:
            for _held, sock in self._held.pop(key, []):
                sock.close()

    def close(self) -> None:
        """Release everything (palletd's stop; published traffic goes on through DNAT)."""
        with self._lock:
            for entries in self._held.values():
                for _held, sock in entries:
                    sock.close()
            self._held.clear()

    def _owner(self, proto: str, host_ip: str, port: int) -> str | None:
        """The key already holding this port where it would collide (every address or one)."""
        for key, entries in self._held.items():
            for held, _sock in entries:
                if held.proto == proto and held.host_port == port and (
                    not held.host_ip or not host_ip or held.host_ip == host_ip
                ):
                    return key
        return None

    def _bind_from_range(self, key: str, b: PortBinding) -> tuple[int, socket.socket]:
        for port in range(b.host_port, b.host_port_end + 1):
            if self._owner(b.proto, b.host_ip, port) is not None:
                continue
            try:
                return self._bind(key, b, port)
            except _NotHostAddress:
                raise
            except FailedPrecondition:
                continue
        raise FailedPrecondition(
            f"no port in {b.host_port}-{b.host_port_end}/{b.proto} on {b.host_ip or '0.0.0.0'}"
            f" is free: choose another host port range with -p"
            f" FIRST-LAST:{b.container_port}, or leave the host port out for any free one"
        )

    def _bind(self, key: str, b: PortBinding, port: int) -> tuple[int, socket.socket]:
        where = f"port {port}/{b.proto} on {b.host_ip or '0.0.0.0'}"
        if port:
            owner = self._owner(b.proto, b.host_ip, port)
            if owner is not None:
                mine = "this container" if owner == key else f"container {owner}"
                raise FailedPrecondition(
                    f"{where} is already in use by {mine}: choose another host port with"
                    f" -p HOSTPORT:{b.container_port}"
                )
        try:
            sock = _bound_socket(b.proto, b.host_ip, port, reuse=False)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and b.proto == "tcp" and port:
                try:
                    sock = _bound_socket(b.proto, b.host_ip, port, reuse=True)
                except OSError as again:
                    raise _bind_error(where, b, again) from again
            else:
                raise _bind_error(where, b, exc) from exc
        return sock.getsockname()[1], sock


def _bound_socket(proto: str, host_ip: str, port: int, *, reuse: bool) -> socket.socket:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind)  # not inheritable: shims never get it
    try:
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host_ip or "0.0.0.0", port))
    except BaseException:
        sock.close()
        raise
    return sock


class _NotHostAddress(FailedPrecondition):
    """The host address of a binding is none of this host's: no other port would do."""


def _bind_error(where: str, b: PortBinding, exc: OSError) -> FailedPrecondition:
    if exc.errno == errno.EADDRINUSE:
        return FailedPrecondition(
            f"{where} is already in use by another program: choose another host port with"
            f" -p HOSTPORT:{b.container_port}"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return _NotHostAddress(
            f"{b.host_ip} is not an address of this host: publish on one of its addresses,"
            f" or leave the address out (-p HOSTPORT:{b.container_port})"
        )
    return FailedPrecondition(f"cannot reserve {where}: {exc.strerror or exc}")


def _check_binding(b: PortBinding) -> None:
    if b.proto not in PROTOCOLS:
        raise InvalidArgument(f"protocol {b.proto!r}: use tcp or udp")
    if not 1 <= b.container_port <= MAX_PORT or not 0 <= b.host_port <= MAX_PORT:
        raise InvalidArgument(f"ports of {b} are not in 1-{MAX_PORT}")
    if b.host_port_end and not b.host_port <= b.host_port_end <= MAX_PORT:
        raise InvalidArgument(f"host port range of {b} is not a range in 1-{MAX_PORT}")
    if b.host_ip:
        try:
            ipaddress.IPv4Address(b.host_ip)
        except ValueError as exc:
            raise InvalidArgument(f"host address {b.host_ip!r} is not an IPv4 address") from exc


#: The error builder each parser passes down (it keeps the spec in every message).
_Bad = Callable[[str], InvalidArgument]


def _split_proto(spec: str, bad: _Bad) -> tuple[str, str]:
    head, slash, proto = spec.strip().partition("/")
    if not slash:
        return head, "tcp"
    proto = proto.lower()
    if proto not in PROTOCOLS:
        if proto == "sctp":
            raise bad("sctp is not supported: use tcp or udp, e.g. 53/udp")
        raise bad(f"unknown protocol {proto!r}: use tcp or udp, e.g. 53/udp")
    return head, proto


def _port_range(text: str, what: str, bad: _Bad) -> tuple[int, int]:
    first_text, dash, last_text = text.partition("-")
    first = _port(first_text, what, bad)
    last = _port(last_text, what, bad) if dash else first
    if last < first:
        raise bad(f"{what} range {text} ends before it starts: write {last}-{first}")
    return first, last


def _port(text: str, what: str, bad: _Bad) -> int:
    if not text.isdigit() or not text.isascii():
        raise bad(f"{what} {text!r} is not a number")
    port = int(text)
    if not 1 <= port <= MAX_PORT:
        hint = " (leave the host port out for a free one)" if what == "host port" and port == 0 else ""
        raise bad(f"{what} {port} is out of range: ports are numbers from 1 to {MAX_PORT}{hint}")
    return port


def _host_ip(text: str, bad: _Bad) -> str:
    if not text:
        return ""
    try:
        ip = ipaddress.IPv4Address(text)
    except ValueError:
        raise bad(f"{text!r} is not an IPv4 address") from None
    return "" if ip == ipaddress.IPv4Address("0.0.0.0") else str(ip)


def _looks_like_ip(text: str) -> bool:
    return "." in text
