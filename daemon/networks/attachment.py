"""What a network attachment is, and the netlink requests that make and wire it.

Owns: `Attachment` (one veth pair, checked when made, so a bad value never reaches the
kernel), the checks of the link names, netns names, MTUs and addresses the kernel takes,
and the fields of the requests `kernel.NetKernel.attach` sends (the veth pair made with its
peer inside the container's netns, hairpin mode, the peer's address, its default route),
as plain dicts. Must not: do I/O, open sockets or import pyroute2 (the kernel module turns
these fields into messages and sends them), or decide names, addresses or policy.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Any

from pallet.daemon.networks.netsys import IFF_UP
from pallet.v1.errors import InvalidArgument

# linux/if_bridge.h, linux/rtnetlink.h
BRIDGE_MODE_HAIRPIN = 1
RT_TABLE_MAIN = 254
RTPROT_STATIC = 4
RTN_UNICAST = 1

_IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
_NETNS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


def check_ifname(name: str, what: str = "interface name") -> str:
    """A link name the kernel takes: 1-15 characters, no '/', no whitespace."""
    if not _IFNAME.fullmatch(name):
        raise InvalidArgument(
            f"{what} {name!r} is not valid: 1-15 letters, digits, '_', '.' or '-'"
        )
    return name


def check_netns_name(name: str) -> str:
    """A netns name is a file name under <run_root>/netns/: no '/', no '..'."""
    if not _NETNS_NAME.fullmatch(name):
        raise InvalidArgument(
            f"network namespace name {name!r} is not valid: 1-128 letters, digits, "
            "'_', '.' or '-', not starting with '.' or '-'"
        )
    return name


def check_mtu(mtu: int) -> int:
    if not 68 <= mtu <= 65535:
        raise InvalidArgument(f"MTU {mtu} is out of range: 68-65535")
    return mtu


def parse_interface(value: str, what: str) -> ipaddress.IPv4Interface:
    """An IPv4 address with its prefix ("172.18.0.2/16"), naming a host of its subnet."""
    try:
        iface = ipaddress.IPv4Interface(value)
    except ValueError:
        raise InvalidArgument(
            f"{what} {value!r} is not an IPv4 address with a prefix, e.g. 172.18.0.2/16"
        ) from None
    if "/" not in value:
        raise InvalidArgument(f"{what} {value!r} needs to come with a prefix, e.g. {value}/16")
    if iface.network.prefixlen > 30 or iface.ip in (
        iface.network.network_address, iface.network.broadcast_address
    ):
        raise InvalidArgument(
            f"{what} {value!r} must name a host address of a subnet of /30 or larger"
        )
    return iface


@dataclass(frozen=True, slots=True)
class Attachment:
    """One veth pair: the host end on a bridge, its peer inside a container's netns.

    Checked when made: a bad value never reaches the kernel (InvalidArgument).
    """

    host_ifname: str  # host end, e.g. "pl3f9a0c12de"; the manager never reuses one at once
    bridge: str  # bridge the host end is enslaved to (host netns)
    netns: str  # container netns: a file under <run_root>/netns/
    ifname: str  # inside the container: "eth0", "eth1", ...
    address: str  # "172.18.0.2/16"
    mac: str  # "02:42:ac:12:00:02"
    mtu: int = 1500
    gateway: str = ""  # "": no default route via this one (internal, or not the first)

    def __post_init__(self) -> None:
        check_ifname(self.host_ifname, "host interface name")
        check_ifname(self.bridge, "bridge name")
        check_netns_name(self.netns)
        check_ifname(self.ifname)
        iface = parse_interface(self.address, "address")
        if not _MAC.fullmatch(self.mac) or int(self.mac[:2], 16) & 1:
            raise InvalidArgument(
                f"MAC address {self.mac!r} is not valid: six lower-case hex pairs "
                "separated by ':', not a multicast address"
            )
        check_mtu(self.mtu)
        if self.gateway:
            try:
                gateway = ipaddress.IPv4Address(self.gateway)
            except ValueError:
                raise InvalidArgument(f"gateway {self.gateway!r} is not an IPv4 address") from None
            if gateway not in iface.network or gateway == iface.ip:
                raise InvalidArgument(
                    f"gateway {self.gateway} is not another host of {iface.network}"
                )


def veth_request(a: Attachment, bridge_index: int, netns_fd: int) -> dict[str, Any]:
    """The fields of the one RTM_NEWLINK that makes `a`'s veth pair (see `NetKernel.attach`).

    The host end is named, enslaved and up; the peer is named, has its MAC and MTU, and is
    created straight inside the netns `netns_fd` refers to (IFLA_NET_NS_FD), which saves
    the ~40 ms of moving it there afterwards.
    """
    peer = [
        ("IFLA_IFNAME", a.ifname),
        ("IFLA_ADDRESS", a.mac),
        ("IFLA_MTU", a.mtu),
        ("IFLA_NET_NS_FD", netns_fd),
    ]
    return {
        "index": 0,
        "flags": IFF_UP,
        "change": IFF_UP,
        "attrs": [
            ("IFLA_IFNAME", a.host_ifname),
            ("IFLA_MTU", a.mtu),
            ("IFLA_MASTER", bridge_index),
            ("IFLA_LINKINFO", {"attrs": [
                ("IFLA_INFO_KIND", "veth"),
                ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", {"attrs": peer})]}),
            ]}),
        ],
    }


def hairpin_request(index: int) -> dict[str, Any]:
    """RTM_NEWLINK fields turning hairpin mode on for bridge port `index`: the bridge then
    sends a frame back out of the port it came in by (a container reaching a port the
    host publishes, DNAT-ed back to itself)."""
    return {"index": index, "attrs": [("IFLA_LINKINFO", {"attrs": [
        ("IFLA_INFO_SLAVE_KIND", "bridge"),
        ("IFLA_INFO_SLAVE_DATA", {"attrs": [("IFLA_BRPORT_MODE", BRIDGE_MODE_HAIRPIN)]}),
    ]})]}


def address_request(a: Attachment, index: int) -> dict[str, Any]:
    """RTM_NEWADDR fields giving link `index` (the peer, inside) `a.address`."""
    iface = ipaddress.IPv4Interface(a.address)
    return {
        "family": socket.AF_INET,
        "prefixlen": iface.network.prefixlen,
        "index": index,
        "attrs": [
            ("IFA_LOCAL", str(iface.ip)),
            ("IFA_ADDRESS", str(iface.ip)),
            ("IFA_BROADCAST", str(iface.network.broadcast_address)),
        ],
    }


def default_route_request(a: Attachment, index: int) -> dict[str, Any]:
    """RTM_NEWROUTE fields for "default via `a.gateway` dev <index>" in the main table."""
    return {
        "family": socket.AF_INET,
        "dst_len": 0,
        "table": RT_TABLE_MAIN,
        "proto": RTPROT_STATIC,
        "scope": 0,  # RT_SCOPE_UNIVERSE
        "type": RTN_UNICAST,
        "attrs": [("RTA_GATEWAY", a.gateway), ("RTA_OIF", index)],
    }
