"""pallet's nftables rules: published ports, masquerade, isolation of bridge networks.

Owns: rendering the complete rule set from the desired state (bridges and published ports)
and applying it to pallet's own table (`ip pallet`) in one transaction; creating the
administrator's table (`ip pallet-user`) when it is missing. Must not: touch any other
table (iptables', firewalld's, ufw's, Docker's), flush or delete the administrator's table,
set sysctls (ip_forward, route_localnet belong to the kernel module), or keep state of its
own: `apply(current state)` is the whole reconciliation after a palletd crash.

Rules are declarative. `apply` sends one buffer: `add table` + `delete table` + the full
definition. The kernel applies it as one netlink batch, so there is no moment without
rules, and a failure leaves the previous rules in place. NAT in netfilter is decided on a
connection's first packet and kept in conntrack, so flows that are open keep working when
the table is replaced.

What the rules do (Docker's bridge networking, nftables flavour):

- `prerouting` (nat, dstnat) and `output` (nat, for connections the host itself opens,
  127.0.0.1 included) jump to `published` when the destination is a local address
  (`fib daddr type local`); there each published port is one DNAT rule, matching `ip
  daddr` when it was published on one address. DNAT from 127.0.0.1 also needs the bridge's
  `route_localnet` sysctl (set by the kernel module) and the masquerade below.
- `postrouting` (nat, srcnat), per bridge: 127.0.0.0/8 going out to the bridge is
  masqueraded (a container cannot answer 127.0.0.1); DNATed traffic from the bridge's own
  subnet back out to the same bridge is masqueraded (hairpin: the answer must come back
  through the host, not straight over the bridge); a non-internal bridge's subnet leaving
  through any other interface is masqueraded (outbound).
- `forward` (filter, priority filter, policy accept so the host's other traffic is not
  ours to judge): internal bridges exchange nothing with other interfaces; same-bridge
  traffic is accepted; into a bridge only established/related and DNATed (published)
  traffic is accepted, the rest is dropped, which isolates networks from each other; out
  of a non-internal bridge everything is accepted.

The administrator's chain (Docker's DOCKER-USER, moby#22054)
-------------------------------------------------------------
Published ports are DNATed in prerouting, before the host's input filter, so a firewall
that filters `input` (ufw, firewalld, a hand-made `inet filter`) never sees them: a port
published on all addresses is open to every network the host is on. pallet therefore
makes a chain that belongs to the administrator:

    table ip pallet-user {
        chain forward { type filter hook forward priority filter - 10; policy accept; }
    }

It runs on the forward hook before pallet's own `forward` chain (priority filter = 0).
pallet creates it when it is missing and never flushes, changes or deletes it (not on
apply, not on remove, not on palletd's stop). Rules there see packets after DNAT, so match
the container's address and port, or the published host port with `ct original`:

    nft add rule ip pallet-user forward ip saddr != 192.0.2.0/24 meta l4proto tcp \\
        ct original proto-dst 8080 drop

(`ct original proto-dst` needs the protocol matched first: `meta l4proto tcp`.)

A `drop` there is final. An `accept` only ends that chain: pallet's chain still runs (two
base chains on one hook are both evaluated), so it cannot undo pallet's isolation. The
chain sees forwarded traffic only: connections the host itself opens to a published port
(output hook) do not pass it. Tables of other programs on the forward hook are evaluated
too: a forward policy of drop elsewhere (ufw's default, iptables' `FORWARD DROP`) drops
container traffic that pallet accepts; allow the bridges' traffic there.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from pallet.daemon.networks.nft import Libnftables, NftRunner
from pallet.v1.errors import InvalidArgument

#: Interface names nft can quote safely and Linux accepts (IFNAMSIZ - 1 = 15).
_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")
_TABLE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
#: The administrator's chain runs before pallet's forward chain (priority filter).
USER_CHAIN = "forward"
USER_CHAIN_PRIORITY = "filter - 10"
PROTOCOLS = ("tcp", "udp")


@dataclass(frozen=True, slots=True)
class BridgeRules:
    """One bridge network as the firewall sees it."""

    bridge: str  # the Linux bridge's name, "pallet0"
    subnet: str  # IPv4 CIDR, "172.18.0.0/16"
    internal: bool = False  # no traffic to or from any other interface


@dataclass(frozen=True, slots=True)
class PortRule:
    """One published port: host_ip:host_port/proto is DNATed to container_ip:container_port."""

    proto: str  # "tcp" | "udp"
    host_ip: str  # "" = every local address of the host, loopback included
    host_port: int
    container_ip: str
    container_port: int


class Firewall:
    """pallet's table, replaced as a whole by `apply`, deleted by `remove`."""

    def __init__(
        self,
        table: str = "pallet",
        user_chain_table: str = "pallet-user",
        *,
        runner: NftRunner | None = None,
    ) -> None:
        for name in (table, user_chain_table):
            if not _TABLE.fullmatch(name):
                raise InvalidArgument(f"nftables table name {name!r} is not valid")
        if table == user_chain_table:
            raise InvalidArgument("pallet's table and the administrator's must differ")
        self.table = table
        self.user_chain_table = user_chain_table
        self._nft: NftRunner = runner if runner is not None else Libnftables()
        self._user_chain_known = False  # the administrator's chain seen or made (`apply`)

    def render(self, bridges: Sequence[BridgeRules], ports: Sequence[PortRule]) -> str:
        """The nft script that replaces pallet's table with exactly these rules (pure)."""
        nets = sorted((_checked_bridge(b) for b in bridges), key=lambda b: b.bridge)
        _no_duplicates(nets)
        published = _published_rules(ports)
        t = self.table
        lines = [
            f"add table ip {t}",  # so the delete below never fails on a first apply
            f"delete table ip {t}",
            f"table ip {t} {{",
            "\tchain prerouting {",
            "\t\ttype nat hook prerouting priority dstnat; policy accept;",
            "\t\tfib daddr type local jump published",
            "\t}",
            "\tchain output {",
            # `dstnat` names no priority on the output hook in nft 1.0.6; -100 is its value.
            "\t\ttype nat hook output priority -100; policy accept;",
            "\t\tfib daddr type local jump published",
            "\t}",
            "\tchain published {",
            *(f"\t\t{rule}" for rule in published),
            "\t}",
            "\tchain postrouting {",
            "\t\ttype nat hook postrouting priority srcnat; policy accept;",
            *(f"\t\t{rule}" for rule in _postrouting_rules(nets)),
            "\t}",
            "\tchain forward {",
            "\t\ttype filter hook forward priority filter; policy accept;",
            *(f"\t\t{rule}" for rule in _forward_rules(nets)),
            "\t}",
            "}",
        ]
        return "\n".join(lines) + "\n"

    def render_user_chain(self) -> str:
        """The script that creates the administrator's table and chain (when missing)."""
        u = self.user_chain_table
        return (
            f"add table ip {u}\n"
            f"add chain ip {u} {USER_CHAIN} {{ type filter hook forward priority"
            f" {USER_CHAIN_PRIORITY}; policy accept; }}\n"
        )

    def apply(self, bridges: Sequence[BridgeRules], ports: Sequence[PortRule]) -> None:
        """Make pallet's table exactly the rules for this state, in one transaction."""
        script = self.render(bridges, ports)
        # `add chain` on a base chain the administrator re-made with another priority or
        # policy would fail (or reset it): create theirs only when it is not there at all.
        # Looked for once per palletd: it is theirs from then on (two listings on every
        # rebuild cost each start and stop half a millisecond).
        if not self._user_chain_known and not self._user_chain_exists():
            script += self.render_user_chain()
        self._nft.run(script)
        self._user_chain_known = True

    def remove(self) -> None:
        """Delete pallet's table (the administrator's table stays)."""
        self._nft.run(f"add table ip {self.table}\ndelete table ip {self.table}\n")

    def _user_chain_exists(self) -> bool:
        if not self._table_exists(self.user_chain_table):
            return False
        listing = self._nft.run(f"list table ip {self.user_chain_table}\n")
        return re.search(rf"^\s*chain {USER_CHAIN} {{", listing, re.MULTILINE) is not None

    def _table_exists(self, name: str) -> bool:
        listing = self._nft.run("list tables ip\n")
        return f"table ip {name}" in listing.splitlines()


def _checked_bridge(b: BridgeRules) -> BridgeRules:
    if not _IFNAME.fullmatch(b.bridge):
        raise InvalidArgument(
            f"bridge name {b.bridge!r} is not a valid interface name (1-15 of A-Z a-z 0-9 _ . -)"
        )
    try:
        subnet = ipaddress.IPv4Network(b.subnet, strict=False)
    except ValueError as exc:
        raise InvalidArgument(f"subnet {b.subnet!r} of bridge {b.bridge} is not IPv4 CIDR: {exc}") from exc
    return BridgeRules(bridge=b.bridge, subnet=str(subnet), internal=b.internal)


def _no_duplicates(nets: Sequence[BridgeRules]) -> None:
    names = [b.bridge for b in nets]
    for name in names:
        if names.count(name) > 1:
            raise InvalidArgument(f"bridge {name} is listed twice")


def _published_rules(ports: Sequence[PortRule]) -> list[str]:
    seen: dict[tuple[str, str, int], PortRule] = {}
    for p in ports:
        if p.proto not in PROTOCOLS:
            raise InvalidArgument(f"protocol {p.proto!r} of a published port: use tcp or udp")
        for port in (p.host_port, p.container_port):
            if not 1 <= port <= 65535:
                raise InvalidArgument(f"port {port} of a published port is not in 1-65535")
        _ipv4(p.container_ip, "container address")
        host_ip = _ipv4(p.host_ip, "host address") if p.host_ip else ""
        if host_ip == "0.0.0.0":
            host_ip = ""
        key = (p.proto, host_ip, p.host_port)
        if key in seen:
            raise InvalidArgument(
                f"host port {p.host_port}/{p.proto} on {host_ip or '0.0.0.0'} is published twice"
            )
        seen[key] = p
    rules = []
    # One address before every address: the more specific publication wins.
    for (proto, host_ip, host_port), p in sorted(seen.items(), key=lambda kv: (kv[0][1] == "", kv[0])):
        match = f"ip daddr {host_ip} " if host_ip else ""
        rules.append(
            f"{match}{proto} dport {host_port} dnat ip to {p.container_ip}:{p.container_port}"
        )
    return rules


def _postrouting_rules(nets: Sequence[BridgeRules]) -> list[str]:
    rules = []
    for b in nets:
        br, net = b.bridge, b.subnet
        rules.append(f'oifname "{br}" ip saddr 127.0.0.0/8 masquerade')
        rules.append(f'oifname "{br}" ip saddr {net} ct status dnat masquerade')
        if not b.internal:
            rules.append(f'oifname != "{br}" ip saddr {net} masquerade')
    return rules


def _forward_rules(nets: Sequence[BridgeRules]) -> list[str]:
    # The order is the meaning: every "into a bridge" decision comes before any "out of a
    # bridge" accept, or traffic from network A into network B would be accepted as
    # "out of A" before "into B" could drop it.
    rules = []
    for b in nets:
        if b.internal:
            rules.append(f'iifname "{b.bridge}" oifname != "{b.bridge}" drop')
            rules.append(f'oifname "{b.bridge}" iifname != "{b.bridge}" drop')
    for b in nets:
        rules.append(f'iifname "{b.bridge}" oifname "{b.bridge}" accept')
    for b in nets:
        rules.append(f'oifname "{b.bridge}" ct state established,related accept')
        rules.append(f'oifname "{b.bridge}" ct status dnat accept')
        rules.append(f'oifname "{b.bridge}" drop')
    for b in nets:
        if not b.internal:
            rules.append(f'iifname "{b.bridge}" accept')
    return rules


def _ipv4(text: str, what: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError as exc:
        raise InvalidArgument(f"{what} {text!r} of a published port is not an IPv4 address") from exc
