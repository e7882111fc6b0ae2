"""Ports as the docker CLI shows them: `ps`'s PORTS column and `pallet port`.

Owns: laying out the daemon's PortBindings the way docker's CLI does ("0.0.0.0:8080->80/tcp,
53/udp", "80/tcp -> 0.0.0.0:8080"); inspect's port maps are `pallet.v1.docker.netsettings`'s.
Must not: parse or validate `-p` and `--expose` strings: they reach palletd untouched, its
parser is the authority and it returns what it parsed (`Container.port_bindings`). No
protobuf import: bindings are read by attribute.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pallet.v1.docker.netsettings import ANY_ADDRESS, BindingLike
from pallet.v1.docker.netsettings import live_bindings as _live
from pallet.v1.docker.netsettings import port_key as _key
from pallet.v1.errors import InvalidArgument, NotFound

__all__ = [
    "BindingLike",
    "displayable_ports",
    "host_address",
    "port_lines",
]


def host_address(ip: str, port: int | str) -> str:
    """Go's net.JoinHostPort, with docker's 0.0.0.0 for "every address"."""
    ip = ip or ANY_ADDRESS
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _split_proto(text: str) -> tuple[str, str]:
    port, _, proto = text.partition("/")
    return port, (proto or "tcp").lower()


def _form_group(ip: str, proto: str, first: int, last: int) -> str:
    group = str(first) if first == last else f"{first}-{last}"
    if ip:
        group = f"{host_address(ip, group)}->{group}"
    return f"{group}/{proto}"


def displayable_ports(bindings: Iterable[BindingLike], exposed: Iterable[str]) -> str:
    """The PORTS column, by docker's DisplayablePorts: "0.0.0.0:8080->80/tcp, 53/udp".

    As docker, consecutive ports are joined into a range only where nothing is remapped
    ("80-81/tcp" exposed, "0.0.0.0:8000-8001->8000-8001/tcp"); a remapped port is listed
    on its own, after the groups.
    """
    live = _live(bindings)
    published = {_key(b) for b in live}
    # (private port, proto, host ip, public port), as docker's types.Port.
    ports: list[tuple[int, str, str, int]] = [
        (int(b.container_port), b.protocol or "tcp", b.host_ip or ANY_ADDRESS, int(b.host_port)) for b in live
    ]
    for key in exposed:
        port, _, proto = key.partition("/")
        if port.isdigit() and key not in published:
            ports.append((int(port), proto or "tcp", "", 0))
    ports.sort(key=lambda p: (p[0], p[2], p[3], p[1]))
    groups: dict[tuple[str, str], list[int]] = {}
    order: list[tuple[str, str]] = []
    result: list[str] = []
    mappings: list[str] = []
    for private, proto, ip, public in ports:
        if ip and public != private:
            mappings.append(f"{host_address(ip, public)}->{private}/{proto}")
            continue
        group_key = (ip, proto)
        group = groups.get(group_key)
        if group is None:
            groups[group_key] = [private, private]
            order.append(group_key)
        elif private == group[1] + 1:
            group[1] = private
        else:
            result.append(_form_group(ip, proto, group[0], group[1]))
            groups[group_key] = [private, private]
    for ip, proto in order:
        first, last = groups[(ip, proto)]
        result.append(_form_group(ip, proto, first, last))
    return ", ".join(result + mappings)


def port_lines(bindings: Sequence[BindingLike], container: str, port: str | None = None) -> list[str]:
    """`pallet port CTR [PORT[/PROTO]]`: "80/tcp -> 0.0.0.0:8080" per binding, or with a
    port only its host addresses; NotFound when that port is not published."""
    live = sorted(_live(bindings), key=lambda b: (int(b.container_port), b.protocol, b.host_ip, int(b.host_port)))
    if port is None:
        return [f"{_key(b)} -> {host_address(b.host_ip, int(b.host_port))}" for b in live]
    number, proto = _split_proto(port)
    if not number.isdigit() or not 0 < int(number) <= 65535:
        raise InvalidArgument(f"invalid port {port!r}: give a port number 1-65535, optionally with /tcp or /udp")
    key = f"{int(number)}/{proto}"
    lines = [host_address(b.host_ip, int(b.host_port)) for b in live if _key(b) == key]
    if not lines:
        raise NotFound(f"No public port '{key}' published for {container}")
    return lines

