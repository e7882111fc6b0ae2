"""A networked container's /etc/hosts and /etc/resolv.conf, as text.

Owns: the hosts file of a container on bridge networks (its addresses under its hostname,
and --add-host lines, host-gateway resolved), of one on the host's network (the host's
file and --add-host lines), the resolv.conf (the embedded resolver on the first network's
gateway, or the host's servers, with --dns, --dns-search and --dns-option), and the
--add-host check. Must not: write the files (the bundle's `write_network_files` does) or
know about leases, networks or the kernel beyond the values it is given.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from pathlib import Path

from pallet.daemon.containers.bundle import HOSTS
from pallet.daemon.containers.bundle import resolv_conf as host_resolv_conf_text
from pallet.daemon.containers.model import HostConfig
from pallet.daemon.networks.dns import read_resolv_conf
from pallet.v1.errors import InvalidArgument

HostGateway = Callable[[], str]  # the default network's gateway (raises without one)


def hosts(hostname: str, addresses: Sequence[str], extra: Sequence[str],
          gateway: HostGateway) -> str:
    lines = [HOSTS.rstrip("\n")]
    for address in addresses:
        lines.append(f"{address}\t{hostname}")
    lines.extend(extra_host_lines(extra, gateway))
    return "\n".join(lines) + "\n"


def host_hosts(extra: Sequence[str], gateway: HostGateway) -> str:
    try:
        text = Path("/etc/hosts").read_text()
    except OSError:
        text = HOSTS
    lines = extra_host_lines(extra, gateway)
    return text.rstrip("\n") + "\n" + "".join(f"{line}\n" for line in lines)


def extra_host_lines(extra: Sequence[str], gateway: HostGateway) -> list[str]:
    lines = []
    for item in extra:
        name, _, addr = item.partition(":")
        if addr == "host-gateway":
            addr = gateway()
        lines.append(f"{addr}\t{name}")
    return lines


def resolv_conf(h: HostConfig, host_file: Path, nameserver: str) -> str:
    if not nameserver:
        text = host_resolv_conf_text(host_file)
        if not (h.dns or h.dns_search or h.dns_options):
            return text
        servers, search = h.dns, h.dns_search
        options: tuple[str, ...] = h.dns_options
        if not servers:
            servers = tuple(
                w[1] for w in (line.split() for line in text.splitlines())
                if len(w) >= 2 and w[0] == "nameserver"
            )
    else:
        # The resolver on the gateway answers the networks' names and forwards the
        # rest to --dns (or the host's servers): docker's embedded DNS.
        servers, search, options = (nameserver,), h.dns_search, h.dns_options
        if not search:
            search = read_resolv_conf(host_file).search
    lines = [f"nameserver {s}" for s in servers]
    if search:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def check_extra_host(item: str) -> str:
    """--add-host NAME:IP (or NAME=IP); IP may be host-gateway."""
    name, sep, addr = item.replace("=", ":", 1).partition(":")
    addr = addr.strip("[]")
    if not sep or not name or not addr:
        raise InvalidArgument(f"invalid --add-host {item!r}: write NAME:IP, e.g. db:10.0.0.5")
    if addr != "host-gateway":
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            raise InvalidArgument(
                f"invalid --add-host {item!r}: {addr!r} is not an IP address (or host-gateway)"
            ) from None
    return f"{name}:{addr}"
