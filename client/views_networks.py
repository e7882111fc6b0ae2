"""Docker-shaped views of networks, and of how a container is networked.

Owns: `network ls` rows and table (docker's columns and template fields; the `network
inspect` JSON is pallet.v1.docker.networks'), and the network parts of a container's
`inspect` document (`NetworkSettings`, `HostConfig.NetworkMode/PortBindings/Dns...`,
`Config.ExposedPorts`) and of its `ps` row (`.Ports`, `.Networks`). Messages are read by attribute only.
Must not: talk to the daemon or print; port layouts are `pallet.client.ports`'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pallet.client import ports
from pallet.client.format import go_time_text, short_id, table

# ---------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------


def network_fields(n: Any, trunc: bool = True) -> dict[str, Any]:
    """Docker's `network ls` template fields (`.ID`, `.Name`, `.Label "k"`...)."""
    labels = dict(n.labels)
    return {
        "ID": short_id(n.id) if trunc else n.id,
        "Name": n.name,
        "Driver": n.driver,
        "Scope": "local",
        "IPv6": "false",
        "Internal": "true" if n.internal else "false",
        "CreatedAt": go_time_text(n.created),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "Label": lambda key: labels.get(key, ""),
    }


#: Header cells for `network ls --format "table ..."`, like docker's.
NETWORK_HEADERS: dict[str, Any] = {
    "ID": "NETWORK ID",
    "Name": "NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "IPv6": "IPV6",
    "Internal": "INTERNAL",
    "CreatedAt": "CREATED AT",
    "Labels": "LABELS",
    "Label": lambda key: "LABEL",
}


def networks_table(networks: Iterable[Any], trunc: bool = True) -> str:
    """The default `network ls` table."""
    rows = [["NETWORK ID", "NAME", "DRIVER", "SCOPE"]]
    for n in networks:
        f = network_fields(n, trunc)
        rows.append([f["ID"], f["Name"], f["Driver"], f["Scope"]])
    return table(rows)


# ---------------------------------------------------------------------------------------------
# A container's networking
# ---------------------------------------------------------------------------------------------


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


def _exposed(c: Any) -> list[str]:
    """Exposed port keys: the daemon's when it gave them, else the config's with the ports
    asked to be published; and any port published now that it did not list."""
    keys = list(c.network_settings.exposed_ports)
    if not keys:
        keys = [*c.config.expose, *(_port_key(b) for b in c.port_bindings)]
    keys += [_port_key(b) for b in c.network_settings.ports]
    return sorted(set(keys))


def _port_key(binding: Any) -> str:
    return f"{int(binding.container_port)}/{binding.protocol or 'tcp'}"


def exposed_ports(c: Any) -> dict[str, dict[str, Any]] | None:
    """docker's Config.ExposedPorts ({"80/tcp": {}}), null when there are none."""
    return {key: {} for key in _exposed(c)} or None


def _endpoint(endpoint: Any) -> dict[str, Any]:
    static = endpoint.ipam_ipv4_address
    ipam = {"IPv4Address": static} if static else None
    return {
        "IPAMConfig": ipam,
        "Aliases": list(endpoint.aliases) or None,
        "NetworkID": endpoint.network_id,
        "Gateway": endpoint.gateway,
        "IPAddress": endpoint.ip_address,
        "IPPrefixLen": int(endpoint.ip_prefix_len),
        "MacAddress": endpoint.mac_address,
    }


def network_settings(c: Any) -> dict[str, Any]:
    """docker's NetworkSettings; the top-level address fields are the first network's."""
    settings = c.network_settings
    first = first_network(c)
    main = settings.networks[first] if first is not None else None
    return {
        "Ports": ports.settings_ports(settings.ports, _exposed(c)),
        "SandboxKey": settings.sandbox_key,
        "Gateway": main.gateway if main is not None else "",
        "IPAddress": main.ip_address if main is not None else "",
        "IPPrefixLen": int(main.ip_prefix_len) if main is not None else 0,
        "MacAddress": main.mac_address if main is not None else "",
        "Networks": {
            name: _endpoint(settings.networks[name]) for name in sorted(settings.networks)
        },
    }


def host_config_network(c: Any) -> dict[str, Any]:
    """The networking part of docker's HostConfig: the config as it was given, the ports
    as the daemon parsed them."""
    cfg = c.config
    return {
        "NetworkMode": cfg.network_mode or "default",
        "PortBindings": ports.port_bindings(c.port_bindings),
        "Dns": list(cfg.dns),
        "DnsOptions": list(cfg.dns_options),
        "DnsSearch": list(cfg.dns_search),
        "ExtraHosts": list(cfg.extra_hosts) or None,
        "PublishAllPorts": bool(cfg.publish_all),
    }


def ps_ports(c: Any) -> str:
    """`ps`'s PORTS column."""
    return ports.displayable_ports(c.network_settings.ports, c.network_settings.exposed_ports)


def ps_networks(c: Any) -> str:
    """`ps`'s `.Networks`: the names, comma-joined."""
    return ",".join(sorted(c.network_settings.networks))
