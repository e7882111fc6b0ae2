"""Firewall.render (the nft script, pure) and apply/remove through a fake libnftables."""

from __future__ import annotations

import pytest

from pallet.daemon.networks.firewall import BridgeRules, Firewall, PortRule
from pallet.v1.errors import InvalidArgument

BR0 = BridgeRules("pallet0", "172.18.0.0/16")
BR1 = BridgeRules("br-one", "172.19.0.0/16")
INTERNAL = BridgeRules("br-int", "172.20.0.0/16", internal=True)
WEB = PortRule("tcp", "", 8080, "172.18.0.2", 80)


class FakeNft:
    """Records scripts; answers `list` commands from a canned set of tables."""

    def __init__(self, tables: dict[str, str] | None = None) -> None:
        self.tables = tables or {}
        self.scripts: list[str] = []
        self.listings = 0

    def run(self, script: str) -> str:
        if script.startswith("list "):
            self.listings += 1
        if script == "list tables ip\n":
            return "".join(f"table ip {name}\n" for name in self.tables)
        if script.startswith("list table ip "):
            return self.tables[script.split()[-1]]
        self.scripts.append(script)
        return ""


def chain(script: str, name: str) -> list[str]:
    """The rule lines of one chain of the rendered table, without its type line."""
    lines = script.splitlines()
    start = lines.index(f"\tchain {name} {{")
    body = []
    for line in lines[start + 1 :]:
        if line == "\t}":
            break
        body.append(line.strip())
    return [rule for rule in body if not rule.startswith("type ")]


def test_the_table_is_replaced_in_one_script() -> None:
    script = Firewall().render([BR0], [WEB])
    lines = script.splitlines()
    # add+delete first: the delete never fails, and the redefinition is in the same batch.
    assert lines[:3] == ["add table ip pallet", "delete table ip pallet", "table ip pallet {"]
    assert "pallet-user" not in script


def test_published_ports_are_dnat_for_local_destinations_from_outside_and_from_the_host() -> None:
    script = Firewall().render(
        [BR0],
        [WEB, PortRule("udp", "127.0.0.1", 5353, "172.18.0.2", 53)],
    )
    assert "type nat hook prerouting priority dstnat; policy accept;" in script
    assert "type nat hook output priority -100; policy accept;" in script
    assert chain(script, "prerouting") == ["fib daddr type local jump published"]
    assert chain(script, "output") == ["fib daddr type local jump published"]
    assert chain(script, "published") == [
        # the specific address first: it wins over a publication on every address
        "ip daddr 127.0.0.1 udp dport 5353 dnat ip to 172.18.0.2:53",
        "tcp dport 8080 dnat ip to 172.18.0.2:80",
    ]


def test_zero_address_means_every_address() -> None:
    script = Firewall().render([BR0], [PortRule("tcp", "0.0.0.0", 80, "172.18.0.2", 80)])
    assert chain(script, "published") == ["tcp dport 80 dnat ip to 172.18.0.2:80"]


def test_masquerade_loopback_hairpin_and_outbound() -> None:
    script = Firewall().render([BR0, INTERNAL], [])
    assert chain(script, "postrouting") == [
        'oifname "br-int" ip saddr 127.0.0.0/8 masquerade',
        'oifname "br-int" ip saddr 172.20.0.0/16 ct status dnat masquerade',
        # no outbound masquerade for the internal network: it has no way out
        'oifname "pallet0" ip saddr 127.0.0.0/8 masquerade',
        'oifname "pallet0" ip saddr 172.18.0.0/16 ct status dnat masquerade',
        'oifname != "pallet0" ip saddr 172.18.0.0/16 masquerade',
    ]


def test_forward_decides_into_a_bridge_before_accepting_out_of_one() -> None:
    script = Firewall().render([BR0, BR1, INTERNAL], [])
    assert "type filter hook forward priority filter; policy accept;" in script
    assert chain(script, "forward") == [
        'iifname "br-int" oifname != "br-int" drop',
        'oifname "br-int" iifname != "br-int" drop',
        'iifname "br-int" oifname "br-int" accept',
        'iifname "br-one" oifname "br-one" accept',
        'iifname "pallet0" oifname "pallet0" accept',
        'oifname "br-int" ct state established,related accept',
        'oifname "br-int" ct status dnat accept',
        'oifname "br-int" drop',
        'oifname "br-one" ct state established,related accept',
        'oifname "br-one" ct status dnat accept',
        'oifname "br-one" drop',
        'oifname "pallet0" ct state established,related accept',
        'oifname "pallet0" ct status dnat accept',
        'oifname "pallet0" drop',
        'iifname "br-one" accept',
        'iifname "pallet0" accept',
    ]


def test_render_is_deterministic_whatever_the_order() -> None:
    fw = Firewall()
    ports = [WEB, PortRule("udp", "", 9000, "172.19.0.2", 9000)]
    assert fw.render([BR0, BR1], ports) == fw.render([BR1, BR0], ports[::-1])


def test_no_bridges_no_ports_is_an_empty_but_complete_table() -> None:
    script = Firewall().render([], [])
    assert chain(script, "published") == []
    assert chain(script, "forward") == []
    assert script.count("\tchain ") == 5


def test_other_table_names() -> None:
    script = Firewall(table="pallet_test").render([], [])
    assert script.startswith("add table ip pallet_test\ndelete table ip pallet_test\n")
    with pytest.raises(InvalidArgument):
        Firewall(table="x; flush ruleset")
    with pytest.raises(InvalidArgument):
        Firewall(table="same", user_chain_table="same")


@pytest.mark.parametrize(
    ("bridges", "ports", "says"),
    [
        ([BridgeRules('br"0', "172.18.0.0/16")], [], "not a valid interface name"),
        ([BridgeRules("a" * 16, "172.18.0.0/16")], [], "not a valid interface name"),
        ([BridgeRules("br0", "172.18.0.0/33")], [], "not IPv4 CIDR"),
        ([BridgeRules("br0", "fd00::/64")], [], "not IPv4 CIDR"),
        ([BR0, BridgeRules("pallet0", "10.0.0.0/8")], [], "listed twice"),
        ([BR0], [PortRule("sctp", "", 80, "172.18.0.2", 80)], "use tcp or udp"),
        ([BR0], [PortRule("tcp", "", 0, "172.18.0.2", 80)], "not in 1-65535"),
        ([BR0], [PortRule("tcp", "", 80, "172.18.0.2", 65536)], "not in 1-65535"),
        ([BR0], [PortRule("tcp", "::1", 80, "172.18.0.2", 80)], "not an IPv4 address"),
        ([BR0], [PortRule("tcp", "", 80, "172.18.0.2; drop", 80)], "not an IPv4 address"),
        ([BR0], [WEB, PortRule("tcp", "0.0.0.0", 8080, "172.18.0.3", 80)], "published twice"),
    ],
)
def test_bad_values_are_refused_before_nft_sees_them(
    bridges: list[BridgeRules], ports: list[PortRule], says: str
) -> None:
    nft = FakeNft()
    with pytest.raises(InvalidArgument, match=says):
        Firewall(runner=nft).apply(bridges, ports)
    assert nft.scripts == []


def test_the_same_port_on_two_addresses_or_protocols_is_fine() -> None:
    script = Firewall().render(
        [BR0],
        [WEB, PortRule("udp", "", 8080, "172.18.0.2", 80), PortRule("tcp", "127.0.0.1", 8080, "172.18.0.3", 80)],
    )
    assert len(chain(script, "published")) == 3


def test_apply_creates_the_user_chain_only_when_it_is_missing() -> None:
    nft = FakeNft()
    fw = Firewall(runner=nft)
    fw.apply([BR0], [WEB])
    assert nft.scripts == [
        fw.render([BR0], [WEB])
        + "add table ip pallet-user\n"
        + "add chain ip pallet-user forward { type filter hook forward priority filter - 10;"
        " policy accept; }\n"
    ]
    # The administrator re-made it with a priority of their own and a rule: left alone.
    nft.tables["pallet-user"] = (
        "table ip pallet-user {\n\tchain forward {\n"
        "\t\ttype filter hook forward priority filter - 50; policy accept;\n"
        "\t\ttcp dport 8080 drop\n\t}\n}\n"
    )
    nft.scripts.clear()
    fw.apply([BR0], [WEB])
    assert nft.scripts == [fw.render([BR0], [WEB])]
    # Looked for once per palletd: a rebuild (every start and stop) lists nothing.
    listed = nft.listings
    fw.apply([BR0], [])
    assert nft.listings == listed
    # A palletd started again finds the administrator's chain and leaves it as it is.
    nft.scripts.clear()
    again = Firewall(runner=nft)
    again.apply([BR0], [WEB])
    assert nft.scripts == [again.render([BR0], [WEB])]


def test_remove_deletes_only_pallets_table() -> None:
    nft = FakeNft({"pallet": "", "pallet-user": ""})
    Firewall(runner=nft).remove()
    assert nft.scripts == ["add table ip pallet\ndelete table ip pallet\n"]
