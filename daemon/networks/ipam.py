"""Address management: subnets from the pool, addresses from a subnet.

Owns: the default address pools, choosing a free subnet that overlaps no other network
and no host route, checking a subnet/gateway/range the user gave, and choosing a free
address (or checking a static one). Must not: do I/O (the caller passes what is taken:
the leases from SQLite, the host's routes from the kernel).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from pallet.v1.errors import FailedPrecondition, InvalidArgument, ResourceExhausted

IPv4Network = ipaddress.IPv4Network
IPv4Address = ipaddress.IPv4Address


@dataclass(frozen=True, slots=True)
class Pool:
    """A range subnets are carved from: `base` in subnets of prefix length `size`."""

    base: IPv4Network
    size: int

    def subnets(self) -> Iterable[IPv4Network]:
        return self.base.subnets(new_prefix=self.size)


# Docker's defaults: 172.17.0.0/16 … 172.31.0.0/16, then 192.168.0.0/20 …; none of it is
# in 192.0.2.0/24 (TEST-NET-1, where some hosts, this one included, live).
DEFAULT_POOLS = (
    Pool(IPv4Network("172.17.0.0/16"), 16),
    Pool(IPv4Network("172.18.0.0/15"), 16),
    Pool(IPv4Network("172.20.0.0/14"), 16),
    Pool(IPv4Network("172.24.0.0/13"), 16),
    Pool(IPv4Network("192.168.0.0/16"), 20),
)


def parse_pool(text: str) -> Pool:
    """`palletd --default-address-pool base=10.10.0.0/16,size=24` (docker's syntax)."""
    parts: dict[str, str] = {}
    for item in text.split(","):
        key, eq, value = item.partition("=")
        if not eq or key.strip() not in ("base", "size"):
            raise InvalidArgument(
                f"invalid address pool {text!r}: write base=CIDR,size=PREFIXLEN, "
                "e.g. base=10.10.0.0/16,size=24"
            )
        parts[key.strip()] = value.strip()
    if "base" not in parts:
        raise InvalidArgument(f"invalid address pool {text!r}: base=CIDR is missing")
    base = parse_subnet(parts["base"], "the pool's base")
    try:
        size = int(parts.get("size", str(base.prefixlen)))
    except ValueError:
        raise InvalidArgument(f"invalid address pool {text!r}: size must be a number") from None
    if not base.prefixlen <= size <= 30:
        raise InvalidArgument(
            f"invalid address pool {text!r}: size must be between the base's prefix length "
            f"({base.prefixlen}) and 30"
        )
    return Pool(base, size)


def parse_subnet(text: str, what: str = "subnet") -> IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidArgument(
            f"invalid {what} {text!r}: write an IPv4 network in CIDR form, e.g. 172.30.0.0/16"
        ) from None
    if not isinstance(net, IPv4Network):
        raise InvalidArgument(f"invalid {what} {text!r}: only IPv4 networks are supported")
    if str(net) != text.strip() and "/" in text:
        raise InvalidArgument(
            f"invalid {what} {text!r}: it has host bits set; the network is {net}"
        )
    if "/" not in text:
        raise InvalidArgument(f"invalid {what} {text!r}: give a prefix length, e.g. {text}/24")
    if net.prefixlen > 30:
        raise InvalidArgument(f"invalid {what} {text!r}: it is too small for containers (/30 at most)")
    return net


def parse_address(text: str, what: str) -> IPv4Address:
    try:
        return IPv4Address(text.strip())
    except ValueError:
        raise InvalidArgument(f"invalid {what} {text!r}: write an IPv4 address, e.g. 172.30.0.5") from None


def overlapping(net: IPv4Network, others: Iterable[tuple[str, IPv4Network]]) -> str:
    """The first description whose network overlaps `net`, "" when none does."""
    for what, other in others:
        if net.overlaps(other):
            return what
    return ""


def choose_subnet(
    pools: Sequence[Pool], taken: Collection[tuple[str, IPv4Network]]
) -> IPv4Network:
    """The first subnet of the pools that overlaps nothing taken (networks, host routes)."""
    for pool in pools:
        for net in pool.subnets():
            if not overlapping(net, taken):
                return net
    pools_text = ", ".join(f"{p.base} in /{p.size}s" for p in pools)
    raise ResourceExhausted(
        f"no free subnet is left in the address pools ({pools_text}): remove unused "
        "networks (pallet network prune), give one with --subnet, or start palletd with a "
        "larger --default-address-pool"
    )


def check_user_subnet(
    subnet: IPv4Network, gateway: str, ip_range: str, taken: Collection[tuple[str, IPv4Network]]
) -> tuple[IPv4Address, IPv4Network | None]:
    """A subnet the user gave, with its gateway and range: checked, defaults filled."""
    clash = overlapping(subnet, taken)
    if clash:
        raise FailedPrecondition(
            f"the subnet {subnet} overlaps {clash}: choose another with --subnet"
        )
    return check_gateway_and_range(subnet, gateway, ip_range)


def check_gateway_and_range(
    subnet: IPv4Network, gateway: str, ip_range: str
) -> tuple[IPv4Address, IPv4Network | None]:
    if gateway:
        gw = parse_address(gateway, "gateway")
        if gw not in subnet or gw in (subnet.network_address, subnet.broadcast_address):
            raise InvalidArgument(
                f"the gateway {gw} is not a usable address of the subnet {subnet}: "
                f"choose one between {subnet.network_address + 1} and {subnet.broadcast_address - 1}"
            )
    else:
        gw = subnet.network_address + 1
    pool: IPv4Network | None = None
    if ip_range:
        pool = parse_subnet(ip_range, "IP range")
        if not pool.subnet_of(subnet):
            raise InvalidArgument(
                f"the IP range {pool} is not inside the subnet {subnet}: give a range within it"
            )
    return gw, pool


def choose_address(
    subnet: IPv4Network,
    gateway: IPv4Address,
    ip_range: IPv4Network | None,
    taken: Collection[IPv4Address],
    network_name: str = "",
) -> IPv4Address:
    """A free address of the range: the lowest free one above the highest one in use.

    Lowest-first as docker, but an address freed a moment ago is not handed out again
    while a higher one is free: a peer's ARP or conntrack entry may still name the old
    owner. The scan wraps to the bottom when the top is reached.
    """
    space = ip_range or subnet
    start = max(int(space.network_address), int(subnet.network_address) + 1)
    end = min(int(space.broadcast_address), int(subnet.broadcast_address) - 1)
    used = {int(a) for a in taken} | {int(gateway)}
    highest = max((a for a in used if start <= a <= end), default=start - 1)
    for candidate in (*range(highest + 1, end + 1), *range(start, highest)):
        if candidate not in used:
            return IPv4Address(candidate)
    on = f"network {network_name}" if network_name else "the network"
    raise ResourceExhausted(
        f"no free address is left on {on}: its addresses ({space}) are all in use; "
        "stop, remove or disconnect a container on it, or use a network with a larger "
        "subnet or IP range"
    )


def check_static_address(
    text: str,
    subnet: IPv4Network,
    gateway: IPv4Address,
    taken: Collection[IPv4Address],
    network_name: str,
) -> IPv4Address:
    addr = parse_address(text, "IP address (--ip)")
    if addr not in subnet or addr in (subnet.network_address, subnet.broadcast_address):
        raise InvalidArgument(
            f"the address {addr} is not in the subnet {subnet} of network {network_name}: "
            "choose one inside it"
        )
    if addr == gateway:
        raise FailedPrecondition(
            f"the address {addr} is network {network_name}'s gateway: choose another"
        )
    if addr in taken:
        raise FailedPrecondition(
            f"the address {addr} is already in use on network {network_name}: choose another"
        )
    return addr


def mac_for(addr: IPv4Address) -> str:
    """Docker's MAC for an address: 02:42 then the address's four bytes (locally
    administered, and a reused address gets the same MAC, so peers' ARP caches stay right)."""
    return "02:42:" + ":".join(f"{b:02x}" for b in addr.packed)


def check_mac(text: str) -> str:
    parts = text.strip().lower().replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(ch in "0123456789abcdef" for ch in p) for p in parts):
        raise InvalidArgument(
            f"invalid MAC address {text!r}: write six hex bytes, e.g. 02:42:ac:11:00:02"
        )
    if int(parts[0], 16) & 1:
        raise InvalidArgument(f"invalid MAC address {text!r}: it is a multicast address")
    return ":".join(parts)
