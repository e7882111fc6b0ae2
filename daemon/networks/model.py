"""Network values.

Owns: the frozen dataclasses describing a network (`Network`), a container's wish to be
on one (`EndpointConfig`, kept in the container's record), and a running container's
actual attachment (`Lease`: its address, MAC and veth). Must not: do I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

DRIVER_BRIDGE = "bridge"
DRIVER_HOST = "host"
DRIVER_NONE = "none"

# The built-in networks, by name (docker's): the default bridge, the host's namespace,
# and loopback only.
DEFAULT_NETWORK = "bridge"
BUILTIN_NAMES = (DEFAULT_NETWORK, DRIVER_HOST, DRIVER_NONE)

# Docker's driver options that pallet honours.
OPT_BRIDGE_NAME = "com.docker.network.bridge.name"
OPT_MTU = "com.docker.network.driver.mtu"
KNOWN_OPTIONS = (OPT_BRIDGE_NAME, OPT_MTU)


@dataclass(frozen=True, slots=True)
class Network:
    id: str
    name: str
    driver: str
    created_ns: int
    subnet: str = ""  # "172.18.0.0/16"; "" for host and none
    gateway: str = ""  # "172.18.0.1"
    ip_range: str = ""  # "" : the whole subnet
    internal: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    bridge: str = ""  # the Linux bridge; "" for host and none
    builtin: bool = False
    mtu: int = 1500

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def gateway_cidr(self) -> str:
        return f"{self.gateway}/{self.network.prefixlen}"


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """A container's attachment to one network as asked (create's --network, connect)."""

    network_id: str
    aliases: tuple[str, ...] = ()
    ipv4_address: str = ""  # static (--ip); "" : one from the network's range
    mac_address: str = ""  # static (--mac-address); "" : generated


@dataclass(frozen=True, slots=True)
class Lease:
    """A running container's attachment: an address taken from the network, and its veth.

    Written before the veth is made and deleted after it is gone, so an address in use is
    always leased (also across a kill -9 of palletd) and never handed out twice.
    """

    network_id: str
    container_id: str
    address: str  # "172.18.0.2"
    mac: str
    ifname: str  # inside the container: eth0, eth1, ... in connect order
    host_ifname: str  # the veth's host end ("pl" + random hex)
    position: int  # connect order: eth<position>
