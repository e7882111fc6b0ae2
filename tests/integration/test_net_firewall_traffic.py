"""pallet's nftables rules with real traffic, inside a throwaway "host" network namespace
(tests/unit/test_net_firewall.py checks the rendered script; one basename per suite).

The lab (net_lab.py): a host netns with bridges br0 (172.18/16: containers c1, c2), br1
(172.19/16: c3) and the internal br2 (172.20/16: c4), and an "outside" machine on
198.51.100/24 that routes 172.16/12 to the host. Firewall.apply runs inside the host netns,
so the real host's tables, links and sysctls are never touched (the test checks its tables).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from net_lab import HERE, OUTSIDE_HOST_IP, OUTSIDE_IP, Lab, run

pytestmark = pytest.mark.integration

C1, C2, C3, C4 = "172.18.0.2", "172.18.0.3", "172.19.0.2", "172.20.0.2"
BRIDGES: list[dict[str, Any]] = [
    {"bridge": "br0", "subnet": "172.18.0.0/16"},
    {"bridge": "br1", "subnet": "172.19.0.0/16"},
    {"bridge": "br2", "subnet": "172.20.0.0/16", "internal": True},
]
WEB = {"proto": "tcp", "host_ip": "", "host_port": 8080, "container_ip": C1, "container_port": 80}
PEER = {"proto": "tcp", "host_ip": "", "host_port": 8070, "container_ip": C1, "container_port": 7000}
UDP = {"proto": "udp", "host_ip": "", "host_port": 9000, "container_ip": C1, "container_port": 9000}
LOCAL_ONLY = {"proto": "tcp", "host_ip": "127.0.0.1", "host_port": 8081, "container_ip": C1,
              "container_port": 80}
PORTS = [WEB, PEER, UDP, LOCAL_ONLY]
USER_DROP = "meta l4proto tcp ct original proto-dst 8080 drop"


def host_tables() -> str:
    return run("nft", "list", "tables")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    before = host_tables()
    lab = Lab(tmp_path)
    try:
        host = lab.add_ns("host")
        run("ip", "netns", "exec", host, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        lab.add_bridge("br0", "172.18.0.1/16")
        lab.add_bridge("br1", "172.19.0.1/16")
        lab.add_bridge("br2", "172.20.0.1/16")
        lab.add_container("c1", "br0", f"{C1}/16", "172.18.0.1")
        lab.add_container("c2", "br0", f"{C2}/16", "172.18.0.1")
        lab.add_container("c3", "br1", f"{C3}/16", "172.19.0.1")
        lab.add_container("c4", "br2", f"{C4}/16", "172.20.0.1")
        lab.add_outside()
        lab.httpd("c1", "hello from c1\n")
        lab.httpd("c3", "hello from c3\n")
        lab.httpd("c4", "hello from c4\n")
        lab.peer_server("c1", "tcp", 7000)
        lab.peer_server("c1", "udp", 9000)
        lab.peer_server("outside", "tcp", 7000)
        yield lab
    finally:
        leaks = lab.close()
        assert host_tables() == before, "the real host's nftables tables changed"
        assert not leaks, f"the lab leaked {leaks}"


def test_a_published_port_answers_on_loopback_on_a_host_address_and_from_outside(lab: Lab) -> None:
    # Without rules nothing answers: the lab itself does not publish anything.
    assert lab.fetch("host", "127.0.0.1", 8080) is None
    lab.firewall("apply", BRIDGES, PORTS)
    assert lab.fetch("host", "127.0.0.1", 8080) == "hello from c1\n"
    assert lab.fetch("host", OUTSIDE_HOST_IP, 8080) == "hello from c1\n"
    assert lab.fetch("host", "172.18.0.1", 8080) == "hello from c1\n"
    assert lab.fetch("outside", OUTSIDE_HOST_IP, 8080) == "hello from c1\n"
    # The container sees the outside machine as it is (DNAT, not a proxy) ...
    assert lab.ask("outside", "tcp", OUTSIDE_HOST_IP, 8070) == OUTSIDE_IP
    # ... and 127.0.0.1 masqueraded as the bridge's gateway (it could not answer 127.0.0.1).
    assert lab.ask("host", "tcp", "127.0.0.1", 8070) == "172.18.0.1"


def test_udp_is_published_too(lab: Lab) -> None:
    lab.firewall("apply", BRIDGES, PORTS)
    assert lab.ask("host", "udp", "127.0.0.1", 9000) == "172.18.0.1"
    assert lab.ask("outside", "udp", OUTSIDE_HOST_IP, 9000) == OUTSIDE_IP
    # Published for UDP only: TCP on 9000 is not.
    assert lab.ask("outside", "tcp", OUTSIDE_HOST_IP, 9000) is None


def test_a_port_published_on_one_address_answers_only_there(lab: Lab) -> None:
    lab.firewall("apply", BRIDGES, PORTS)
    assert lab.fetch("host", "127.0.0.1", 8081) == "hello from c1\n"
    assert lab.fetch("host", OUTSIDE_HOST_IP, 8081) is None
    assert lab.fetch("outside", OUTSIDE_HOST_IP, 8081) is None


def test_hairpin_a_container_reaches_the_hosts_published_port(lab: Lab) -> None:
    lab.firewall("apply", BRIDGES, PORTS)
    assert lab.fetch("c2", OUTSIDE_HOST_IP, 8080) == "hello from c1\n"
    assert lab.fetch("c2", "172.18.0.1", 8080) == "hello from c1\n"
    # Back to itself through the host.
    assert lab.fetch("c1", OUTSIDE_HOST_IP, 8080) == "hello from c1\n"
    # The answer must come back through the host: the source is the gateway, not c2.
    assert lab.ask("c2", "tcp", OUTSIDE_HOST_IP, 8070) == "172.18.0.1"
    # From another network, a published port is as reachable as from outside.
    assert lab.fetch("c3", OUTSIDE_HOST_IP, 8080) == "hello from c1\n"


def test_networks_are_isolated_and_outbound_traffic_is_masqueraded(lab: Lab) -> None:
    # Plain routing (ip_forward=1, no rules) would connect everything: the rules isolate.
    assert lab.fetch("c3", C1, 80) == "hello from c1\n"
    lab.firewall("apply", BRIDGES, PORTS)
    assert lab.fetch("c2", C1, 80) == "hello from c1\n"  # same network
    assert lab.fetch("c3", C1, 80) is None
    assert lab.fetch("c1", C3, 80) is None
    assert lab.fetch("outside", C1, 80) is None  # not published: no way in
    # Out to the world, as the host's address.
    assert lab.ask("c1", "tcp", OUTSIDE_IP, 7000) == OUTSIDE_HOST_IP
    assert lab.ask("c3", "tcp", OUTSIDE_IP, 7000) == OUTSIDE_HOST_IP
    rules = lab.nft("list", "chain", "ip", "pallet", "postrouting")
    assert 'oifname != "br0" ip saddr 172.18.0.0/16 masquerade' in rules
    assert 'oifname != "br1" ip saddr 172.19.0.0/16 masquerade' in rules


def test_an_internal_network_has_no_way_out_and_no_way_in(lab: Lab) -> None:
    assert lab.ask("c4", "tcp", OUTSIDE_IP, 7000) == "172.20.0.2"  # routing alone would
    lab.firewall("apply", BRIDGES, PORTS)
    assert lab.ask("c4", "tcp", OUTSIDE_IP, 7000) is None
    assert lab.fetch("c4", C1, 80) is None
    assert lab.fetch("c1", C4, 80) is None
    assert lab.fetch("outside", C4, 80) is None
    assert "172.20.0.0/16 masquerade" not in lab.nft("list", "chain", "ip", "pallet", "postrouting")


def test_the_administrators_drop_stops_published_traffic_and_survives_apply_and_remove(
    lab: Lab,
) -> None:
    lab.firewall("apply", BRIDGES, PORTS)
    assert lab.fetch("outside", OUTSIDE_HOST_IP, 8080) == "hello from c1\n"
    lab.nft("add", "rule", "ip", "pallet-user", "forward", *USER_DROP.split())
    assert lab.fetch("outside", OUTSIDE_HOST_IP, 8080) is None
    assert lab.fetch("c2", OUTSIDE_HOST_IP, 8080) is None  # hairpin is forwarded too
    assert lab.ask("outside", "tcp", OUTSIDE_HOST_IP, 8070) == OUTSIDE_IP  # other ports open

    lab.firewall("apply", BRIDGES, PORTS)
    assert USER_DROP in lab.nft("list", "table", "ip", "pallet-user")
    assert lab.fetch("outside", OUTSIDE_HOST_IP, 8080) is None

    lab.firewall("remove")
    tables = lab.nft("list", "tables")
    assert "table ip pallet\n" not in tables
    assert USER_DROP in lab.nft("list", "table", "ip", "pallet-user")
    assert lab.fetch("host", "127.0.0.1", 8080) is None  # no rules, no publication


def test_apply_is_idempotent_and_open_connections_survive_a_new_rule_set(lab: Lab) -> None:
    lab.firewall("apply", BRIDGES, PORTS)
    first = lab.nft("list", "table", "ip", "pallet")
    held = lab.held_connection("outside", OUTSIDE_HOST_IP, 8070)
    assert held.stdin is not None and held.stdout is not None
    held.stdin.write(b"one\n")
    held.stdin.flush()
    assert held.stdout.readline() == f"{OUTSIDE_IP}\n".encode()

    lab.firewall("apply", BRIDGES, PORTS)
    assert lab.nft("list", "table", "ip", "pallet") == first
    # Another state (one port fewer, one more): the table is replaced, the flow goes on.
    more = [WEB, PEER, {**WEB, "host_port": 8082, "container_ip": C2}]
    lab.firewall("apply", BRIDGES, more)
    held.stdin.write(b"two\n")
    held.stdin.flush()
    assert held.stdout.readline() == f"{OUTSIDE_IP}\n".encode()
    assert lab.fetch("host", "127.0.0.1", 8081) is None  # the port that went away
    assert lab.ask("host", "udp", "127.0.0.1", 9000) is None
    assert lab.nft("list", "ruleset").count("table ip pallet {") == 1


def test_libnftables_errors_are_pallet_errors(lab: Lab) -> None:
    code = (
        "from pallet.daemon.networks.nft import Libnftables\n"
        "from pallet.v1.errors import Internal\n"
        "try:\n"
        "    Libnftables().run('add rule ip nosuchtable c drop')\n"
        "except Internal as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        ["ip", "netns", "exec", lab.ns("host"), sys.executable, "-c", code],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert "nftables refused pallet's rules" in done.stdout
    assert "nosuchtable" in done.stdout
    assert HERE.exists()
