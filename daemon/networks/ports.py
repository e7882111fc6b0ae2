"""Published ports: docker's `-p`/`--expose` syntax, and the host ports held for them.

Owns: parsing `[IP:][HOSTPORT:]CPORT[/tcp|/udp]` (with ranges) into `PortBinding`s and
`--expose` values into "PORT/PROTO" keys, and `PortReservations`: a bound (not listening)
socket per published host port, so a port another program holds is found at start and
nothing else takes it while the container runs. Must not: write firewall rules (the
manager hands the bindings to `firewall`).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass

from pallet.v1.errors import FailedPrecondition, InvalidArgument

PROTOCOLS = ("tcp", "udp")


@dataclass(frozen=True, slots=True)
class PortBinding:
    """One published port: host_ip:host_port/proto to the container's container_port.

    host_ip "" is every address of the host; host_port 0 is one picked at start (from
    host_port_end's range when that is set, else the kernel's ephemeral range)."""

    proto: str
    host_ip: str
    host_port: int
    container_port: int
    host_port_end: int = 0


def _port(text: str, spec: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InvalidArgument(
            f"invalid port {text!r} in {spec!r}: ports are numbers from 1 to 65535"
        )
    return int(text)


def _range(text: str, spec: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    start = _port(low, spec)
    end = _port(high, spec) if sep else start
    if end < start:
        raise InvalidArgument(f"invalid port range {text!r} in {spec!r}: it ends before it starts")
    return start, end


def _split_proto(text: str, spec: str) -> tuple[str, str]:
    ports, sep, proto = text.partition("/")
    proto = proto.lower() if sep else "tcp"
    if proto not in PROTOCOLS:
        raise InvalidArgument(
            f"invalid protocol {proto!r} in {spec!r}: use tcp or udp, e.g. 53/udp"
        )
    return ports, proto


def parse_publish(spec: str) -> list[PortBinding]:
    """`-p` as docker reads it: `80`, `8080:80`, `127.0.0.1:8080:80`, `127.0.0.1::80`,
    `8000-8001:80-81/udp`; a host range with one container port publishes one port of it."""
    text, proto = _split_proto(spec.strip(), spec)
    host_ip = ""
    if text.startswith("["):
        raise InvalidArgument(f"invalid -p {spec!r}: IPv6 host addresses are not supported")
    parts = text.split(":")
    if len(parts) == 1:
        host_part, container_part = "", parts[0]
    elif len(parts) == 2:
        host_part, container_part = parts
    elif len(parts) == 3:
        host_ip, host_part, container_part = parts
        try:
            addr = ipaddress.ip_address(host_ip)
        except ValueError:
            raise InvalidArgument(
                f"invalid -p {spec!r}: {host_ip!r} is not an IP address; write "
                "[IP:][HOSTPORT:]CONTAINERPORT, e.g. 127.0.0.1:8080:80"
            ) from None
        if addr.version != 4:
            raise InvalidArgument(f"invalid -p {spec!r}: IPv6 host addresses are not supported")
        host_ip = "" if host_ip == "0.0.0.0" else host_ip
    else:
        raise InvalidArgument(
            f"invalid -p {spec!r}: write [IP:][HOSTPORT:]CONTAINERPORT[/PROTO], e.g. 8080:80"
        )
    if not container_part:
        raise InvalidArgument(f"invalid -p {spec!r}: the container port is missing")
    c_start, c_end = _range(container_part, spec)
    if not host_part:
        return [PortBinding(proto, host_ip, 0, p) for p in range(c_start, c_end + 1)]
    h_start, h_end = _range(host_part, spec)
    if c_start == c_end and h_end > h_start:
        return [PortBinding(proto, host_ip, h_start, c_start, host_port_end=h_end)]
    if h_end - h_start != c_end - c_start:
        raise InvalidArgument(
            f"invalid -p {spec!r}: the host range has {h_end - h_start + 1} ports and the "
            f"container range {c_end - c_start + 1}: give ranges of the same length"
        )
    return [
        PortBinding(proto, host_ip, h_start + i, c_start + i)
        for i in range(c_end - c_start + 1)
    ]


def parse_expose(spec: str) -> list[str]:
    """`--expose 80`, `53/udp`, `8000-8002`: the "PORT/PROTO" keys of docker's ExposedPorts."""
    text, proto = _split_proto(spec.strip(), spec)
    start, end = _range(text, spec)
    return [f"{p}/{proto}" for p in range(start, end + 1)]


class PortReservations:
    """Bound sockets holding published host ports, by owner (a container id)."""

    def __init__(self) -> None:
        self._held: dict[str, list[socket.socket]] = {}

    def reserve(self, owner: str, b: PortBinding) -> int:
        """Hold `b`'s host port (one picked when it is 0 or a range); return the port."""
        kind = socket.SOCK_STREAM if b.proto == "tcp" else socket.SOCK_DGRAM
        address = b.host_ip or "0.0.0.0"
        if b.host_port_end > b.host_port:
            candidates = list(range(b.host_port, b.host_port_end + 1))
        else:
            candidates = [b.host_port]
        last: OSError | None = None
        for port in candidates:
            sock = socket.socket(socket.AF_INET, kind)
            try:
                # No SO_REUSEADDR: with it Linux lets two sockets that do not listen
                # bind one port, and a second container would not be refused.
                sock.bind((address, port))
            except OSError as e:
                sock.close()
                last = e
                if e.errno == errno.EADDRNOTAVAIL:
                    raise FailedPrecondition(
                        f"cannot publish on {address}: it is not an address of this host"
                    ) from None
                continue
            self._held.setdefault(owner, []).append(sock)
            return int(sock.getsockname()[1])
        shown = f"{b.host_port}-{b.host_port_end}" if b.host_port_end > b.host_port else str(b.host_port)
        raise FailedPrecondition(
            f"port {shown}/{b.proto} on {address} is already in use by another program"
            f" ({last.strerror if last else 'taken'}): choose another host port with "
            f"-p HOSTPORT:{b.container_port}, or leave it out for a free one"
        )

    def release_all(self, owner: str) -> None:
        for sock in self._held.pop(owner, []):
            sock.close()

    def owners(self) -> list[str]:
        return sorted(self._held)
