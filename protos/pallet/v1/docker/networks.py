"""Docker's JSON shape of a network (`docker network inspect`, `GET /networks/{id}`), and
Docker's network create request read into pallet's.

Messages are read by attribute only (pallet.v1.networks_pb2 Network / Endpoint).
"""

from __future__ import annotations

from typing import Any

from pallet.v1.docker.times import rfc3339_nano


def ipam_config(n: Any) -> list[dict[str, str]]:
    """IPAM.Config: the subnet, with the gateway and range (docker leaves out empty ones)."""
    if not n.subnet:
        return []
    entry = {"Subnet": n.subnet}
    if n.ip_range:
        entry["IPRange"] = n.ip_range
    if n.gateway:
        entry["Gateway"] = n.gateway
    return [entry]


def endpoint_json(e: Any) -> dict[str, str]:
    """One attached container (`Containers` of a network resource)."""
    return {
        "Name": e.container_name,
        # pallet's endpoints have no id of their own: the container's stands for it
        # (unique per network, as dockerd's endpoint ids are).
        "EndpointID": "",
        "MacAddress": e.mac_address,
        "IPv4Address": e.ipv4_address,
        "IPv6Address": "",
    }


def network_json(n: Any, *, containers: bool = True) -> dict[str, Any]:
    """A network as dockerd's network resource, in its field order. `containers` False
    for `GET /networks` (dockerd lists networks without their endpoints since API 1.28)."""
    attached = (
        {e.container_id: endpoint_json(e) for e in sorted(n.endpoints, key=lambda e: e.container_id)}
        if containers else {}
    )
    return {
        "Name": n.name,
        "Id": n.id,
        "Created": rfc3339_nano(n.created),
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv6": False,
        "IPAM": {
            "Driver": "default",
            # dockerd: null for the built-in bridge, the (empty) options given otherwise.
            "Options": None if n.builtin else {},
            "Config": ipam_config(n),
        },
        "Internal": bool(n.internal),
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": attached,
        "Options": dict(sorted(n.options.items())),
        "Labels": dict(sorted(n.labels.items())),
    }
