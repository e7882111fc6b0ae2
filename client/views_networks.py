"""Docker-shaped views of networks, and of how a container is networked.

Owns: `network ls` rows and table (docker's columns and template fields; the `network
inspect` JSON is pallet.v1.docker.networks'), and the network parts of a container's `ps`
row (`.Ports`, `.Networks`); the container's inspect JSON of them is
`pallet.v1.docker.netsettings`'. Messages are read by attribute only.
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


def ps_ports(c: Any) -> str:
    """`ps`'s PORTS column."""
    return ports.displayable_ports(c.network_settings.ports, c.network_settings.exposed_ports)


def ps_networks(c: Any) -> str:
    """`ps`'s `.Networks`: the names, comma-joined."""
    return ",".join(sorted(c.network_settings.networks))
