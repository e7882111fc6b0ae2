"""Docker's JSON of how a container is networked.

Owns: `NetworkSettings` (inspect's, and the list summary's), the network fields of
`HostConfig` (`NetworkMode`, `PortBindings`, `Dns*`, `ExtraHosts`, `PublishAllPorts`),
`Config.ExposedPorts`, and the list summary's `Ports` array. Messages are read by
attribute only. Must not: parse or validate `-p` and `--expose` strings: palletd's parser
is the authority and returns what it parsed (`Container.port_bindings`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

#: What docker shows for "every address of the host".
ANY_ADDRESS = "0.0.0.0"


class BindingLike(Protocol):
    """pallet.v1.PortBinding, read by attribute."""

    protocol: str
    container_port: int
    host_ip: str
    host_port: int
    host_port_end: int


def port_key(binding: BindingLike) -> str:
    """docker's port key: "80/tcp"."""
    return f"{int(binding.container_port)}/{binding.protocol or 'tcp'}"


def live_bindings(bindings: Iterable[BindingLike]) -> list[BindingLike]:
    """Bindings with a host port (a random one is 0 until the container starts)."""
    return [b for b in bindings if int(b.host_port)]


def _host_port_text(binding: BindingLike) -> str:
    """HostPort as docker shows an asked-for binding: "" (a random one), "8080", "8000-8010"."""
    first, last = int(binding.host_port), int(binding.host_port_end)
    if not first:
        return ""
    return f"{first}-{last}" if last else str(first)


def port_bindings(bindings: Iterable[BindingLike]) -> dict[str, Any]:
    """docker's HostConfig.PortBindings from the daemon's parsed `-p` bindings (keys sorted,
    as Go marshals a map; each key's bindings in the order they were given)."""
    out: dict[str, list[dict[str, str]]] = {}
    for b in bindings:
        out.setdefault(port_key(b), []).append({"HostIp": b.host_ip, "HostPort": _host_port_text(b)})
    return dict(sorted(out.items()))


def settings_ports(bindings: Iterable[BindingLike], exposed: Iterable[str]) -> dict[str, Any]:
    """docker's NetworkSettings.Ports: every exposed port, null when it is not published."""
    out: dict[str, Any] = {key: None for key in exposed}
    for b in live_bindings(bindings):
        bucket = out.get(port_key(b))
        if bucket is None:
            bucket = out[port_key(b)] = []
        bucket.append({"HostIp": b.host_ip or ANY_ADDRESS, "HostPort": str(int(b.host_port))})
    return dict(sorted(out.items()))


def summary_ports(c: Any) -> list[dict[str, Any]]:
    """The list summary's `Ports`: one entry per published binding (IP, PrivatePort,
    PublicPort, Type), and one per exposed port that is not published (no IP, no
    PublicPort), as dockerd lists them."""
    settings = c.network_settings
    live = live_bindings(settings.ports)
    published = {port_key(b) for b in live}
    out: list[dict[str, Any]] = [
        {"IP": b.host_ip or ANY_ADDRESS, "PrivatePort": int(b.container_port),
         "PublicPort": int(b.host_port), "Type": b.protocol or "tcp"}
        for b in live
    ]
    for key in settings.exposed_ports:
        port, _, proto = key.partition("/")
        if port.isdigit() and key not in published:
            out.append({"PrivatePort": int(port), "Type": proto or "tcp"})
    return out


def first_network(c: Any) -> str | None:
    """The name of the network the container's default route goes through: the one on
    eth0, else the one it was created on, else the first by name (a map has no order)."""
    networks = c.network_settings.networks
    for name, endpoint in networks.items():
        if endpoint.interface == "eth0":
            return str(name)
    mode = c.config.network_mode or "bridge"
    if mode in networks:
        return str(mode)
    return min(networks) if networks else None


def exposed_keys(c: Any) -> list[str]:
    """Exposed port keys: the daemon's when it gave them, else the config's with the ports
    asked to be published; and any port published now that it did not list."""
    keys = list(c.network_settings.exposed_ports)
    if not keys:
        keys = [*c.config.expose, *(port_key(b) for b in c.port_bindings)]
    keys += [port_key(b) for b in c.network_settings.ports]
    return sorted(set(keys))


def exposed_ports(c: Any) -> dict[str, dict[str, Any]] | None:
    """docker's Config.ExposedPorts ({"80/tcp": {}}), null when there are none."""
    return {key: {} for key in exposed_keys(c)} or None


def endpoint(e: Any) -> dict[str, Any]:
    """docker's EndpointSettings of one network the container is on."""
    static = e.ipam_ipv4_address
    ipam = {"IPv4Address": static} if static else None
    return {
        "IPAMConfig": ipam,
        "Aliases": list(e.aliases) or None,
        "NetworkID": e.network_id,
        "Gateway": e.gateway,
        "IPAddress": e.ip_address,
        "IPPrefixLen": int(e.ip_prefix_len),
        "MacAddress": e.mac_address,
    }


def networks(c: Any) -> dict[str, Any]:
    """NetworkSettings.Networks, by name."""
    settings = c.network_settings
    return {name: endpoint(settings.networks[name]) for name in sorted(settings.networks)}


def network_settings(c: Any) -> dict[str, Any]:
    """docker's NetworkSettings; the top-level address fields are the first network's."""
    settings = c.network_settings
    first = first_network(c)
    main = settings.networks[first] if first is not None else None
    return {
        "Ports": settings_ports(settings.ports, exposed_keys(c)),
        "SandboxKey": settings.sandbox_key,
        "Gateway": main.gateway if main is not None else "",
        "IPAddress": main.ip_address if main is not None else "",
        "IPPrefixLen": int(main.ip_prefix_len) if main is not None else 0,
        "MacAddress": main.mac_address if main is not None else "",
        "Networks": networks(c),
    }


def host_config_network(c: Any) -> dict[str, Any]:
    """The networking part of docker's HostConfig: the config as it was given, the ports
    as the daemon parsed them."""
    cfg = c.config
    return {
        "NetworkMode": cfg.network_mode or "default",
        "PortBindings": port_bindings(c.port_bindings),
        "Dns": list(cfg.dns),
        "DnsOptions": list(cfg.dns_options),
        "DnsSearch": list(cfg.dns_search),
        "ExtraHosts": list(cfg.extra_hosts) or None,
        "PublishAllPorts": bool(cfg.publish_all),
    }
