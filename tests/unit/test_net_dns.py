"""The embedded DNS without a network: what the resolver answers, the records file, resolv.conf.

Owns: calling `resolver.answer` on parsed queries (local A, case, search suffix, PTR, other
types, per-network isolation, forwarding and its loop guard), the records file round trip
from palletd's dataclasses to the resolver's view, a corrupt file keeping the last good
records, reading resolv.conf, and the resolver's import diet. Must not: open sockets or
start processes (beyond one `python -c` that imports the resolver).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

from pallet.daemon.networks import resolver
from pallet.daemon.networks.dns import (
    DnsClient,
    DnsNetwork,
    DnsRecords,
    read_resolv_conf,
    records_json,
    write_records,
)
from pallet.daemon.networks.resolver import Forward, RecordsError, Records, answer, parse_records

NET_A = "10.89.0.1"
NET_B = "10.89.1.1"


def _records(**kw: object) -> Records:
    dns_records = DnsRecords(
        networks=(
            DnsNetwork(NET_A, {"web": ("10.89.0.2",), "Db": ("10.89.0.3", "10.89.0.4"), "1a2b3c4d5e6f": ("10.89.0.2",)}),
            DnsNetwork(NET_B, {"cache": ("10.89.1.2",), "web": ("10.89.1.9",)}),
        ),
        clients=(
            DnsClient("10.89.0.2", upstreams=("192.0.2.53", "198.51.100.1:5353"), search=("corp.example",)),
            DnsClient("10.89.1.2", upstreams=(), search=()),
        ),
        upstreams=("203.0.113.1",),
    )
    return parse_records(records_json(dns_records))


@pytest.fixture
def records() -> Records:
    return _records()


def ask(records: Records, name: str, rdtype: str = "A", gateway: str = NET_A, client: str = "10.89.0.2") -> dns.message.Message | Forward:
    return answer(records, dns.message.make_query(name, rdtype), gateway, client)


def addresses(response: dns.message.Message | Forward) -> set[str]:
    assert isinstance(response, dns.message.Message), response
    assert response.rcode() == dns.rcode.NOERROR
    return {rd.to_text() for rrset in response.answer for rd in rrset}


def test_a_for_a_local_name(records: Records) -> None:
    query = dns.message.make_query("web.", "A")
    response = answer(records, query, NET_A, "10.89.0.2")
    assert isinstance(response, dns.message.Message)
    assert response.id == query.id and response.flags & dns.flags.QR and response.flags & dns.flags.AA
    assert addresses(response) == {"10.89.0.2"}
    assert response.answer[0].name == query.question[0].name


def test_a_name_with_several_addresses_has_several_a_records(records: Records) -> None:
    assert addresses(ask(records, "db")) == {"10.89.0.3", "10.89.0.4"}


def test_names_are_case_insensitive(records: Records) -> None:
    assert addresses(ask(records, "WEB")) == {"10.89.0.2"}
    assert addresses(ask(records, "dB.")) == {"10.89.0.3", "10.89.0.4"}  # stored as "Db"
    assert addresses(ask(records, "1A2B3C4D5E6F")) == {"10.89.0.2"}


def test_a_name_with_one_of_the_clients_search_domains(records: Records) -> None:
    assert addresses(ask(records, "web.corp.example")) == {"10.89.0.2"}
    assert addresses(ask(records, "Web.CORP.example.")) == {"10.89.0.2"}


def test_a_search_domain_that_is_not_the_clients_is_forwarded(records: Records) -> None:
    assert isinstance(ask(records, "web.other.example"), Forward)
    # Client 10.89.1.2 has no search domains: web.corp.example is not a local name for it.
    assert isinstance(ask(records, "cache.corp.example", gateway=NET_B, client="10.89.1.2"), Forward)


def test_ptr_for_a_local_address(records: Records) -> None:
    response = ask(records, dns.reversename.from_address("10.89.0.3").to_text(), "PTR")
    assert isinstance(response, dns.message.Message)
    assert [rd.to_text() for rd in response.answer[0]] == ["db."]
    # The first name mapping to an address answers for it (the container's name, not its id).
    assert [rd.to_text() for rd in ask(records, "2.0.89.10.in-addr.arpa", "PTR").answer[0]] == ["web."]  # type: ignore[union-attr]


def test_ptr_for_an_address_of_another_network_is_forwarded(records: Records) -> None:
    assert isinstance(ask(records, "2.1.89.10.in-addr.arpa", "PTR"), Forward)
    assert isinstance(ask(records, "1.1.1.1.in-addr.arpa", "PTR"), Forward)


@pytest.mark.parametrize("rdtype", ["AAAA", "MX", "TXT", "SRV"])
def test_other_types_of_a_local_name_are_empty_noerror(records: Records, rdtype: str) -> None:
    response = ask(records, "web", rdtype)
    assert isinstance(response, dns.message.Message)
    assert response.rcode() == dns.rcode.NOERROR  # not NXDOMAIN: the name exists
    assert response.answer == []


def test_names_are_answered_only_on_their_own_network(records: Records) -> None:
    assert addresses(ask(records, "web", gateway=NET_B, client="10.89.1.2")) == {"10.89.1.9"}
    assert isinstance(ask(records, "cache", gateway=NET_A), Forward)
    assert isinstance(ask(records, "db", gateway=NET_B, client="10.89.1.2"), Forward)
    assert isinstance(ask(records, "2.1.89.10.in-addr.arpa", "PTR", gateway=NET_A), Forward)


def test_other_names_go_to_the_clients_upstreams(records: Records) -> None:
    assert ask(records, "example.com") == Forward((("192.0.2.53", 53), ("198.51.100.1", 5353)))


def test_a_client_without_upstreams_or_unknown_uses_the_default_ones(records: Records) -> None:
    assert ask(records, "example.com", gateway=NET_B, client="10.89.1.2") == Forward((("203.0.113.1", 53),))
    assert ask(records, "example.com", client="10.89.0.77") == Forward((("203.0.113.1", 53),))


def test_upstreams_that_are_our_gateways_are_skipped() -> None:
    records = parse_records(
        records_json(
            DnsRecords(
                networks=(DnsNetwork(NET_A, {}), DnsNetwork(NET_B, {})),
                clients=(DnsClient("10.89.0.2", upstreams=(NET_A, NET_B, "192.0.2.53", f"{NET_A}:5353")),),
            )
        )
    )
    assert ask(records, "example.com") == Forward((("192.0.2.53", 53), (NET_A, 5353)))


def test_a_query_to_an_unknown_gateway_is_forwarded(records: Records) -> None:
    assert isinstance(ask(records, "web", gateway="10.89.7.1"), Forward)


def test_not_a_query_is_not_implemented(records: Records) -> None:
    query = dns.message.make_query("web", "A")
    query.set_opcode(dns.opcode.NOTIFY)
    response = answer(records, query, NET_A, "10.89.0.2")
    assert isinstance(response, dns.message.Message) and response.rcode() == dns.rcode.NOTIMP


def test_a_big_local_answer_is_truncated_over_udp() -> None:
    many = tuple(f"10.89.0.{i}" for i in range(2, 200))
    records = parse_records(records_json(DnsRecords(networks=(DnsNetwork(NET_A, {"big": many}),))))
    query = dns.message.make_query("big", "A")  # no EDNS: 512 bytes
    response = answer(records, query, NET_A, "10.89.0.2")
    assert isinstance(response, dns.message.Message)
    wire = response.to_wire(max_size=resolver.udp_size(query), prefer_truncation=True)
    assert len(wire) <= 512 and dns.message.from_wire(wire).flags & dns.flags.TC
    assert len(dns.message.from_wire(response.to_wire()).answer[0]) == len(many)  # whole over TCP


# --------------------------------------------------------------------------- records file


def test_records_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "records.json"
    write_records(path, DnsRecords(
        networks=(DnsNetwork(NET_A, {"Web.": ("10.89.0.2",)}),),
        clients=(DnsClient("10.89.0.2", ("192.0.2.53",), ("corp.example.",)),),
        upstreams=("127.0.0.53",),
    ))
    assert sorted(os.listdir(tmp_path)) == ["records.json"]  # no temporary file left
    records = parse_records(path.read_bytes())
    assert dict(records.networks[NET_A].names) == {"web": ("10.89.0.2",)}
    assert records.clients["10.89.0.2"] == resolver.Client(upstreams=(("192.0.2.53", 53),), search=("corp.example",))
    assert records.upstreams == (("127.0.0.53", 53),)


@pytest.mark.parametrize(
    "doc",
    [
        b"{not json",
        b"",
        b"[]",
        b'{"version": 2}',
        b'{"version": 1, "networks": [{"gateway": "nope", "names": {}}]}',
        b'{"version": 1, "networks": [{"gateway": "10.89.0.1", "names": {"a": ["fe80::1"]}}]}',
        b'{"version": 1, "networks": [{"gateway": "10.89.0.1", "names": {"a": "10.89.0.2"}}]}',
        b'{"version": 1, "networks": [{"gateway": "10.89.0.1"}, {"gateway": "10.89.0.1"}]}',
        b'{"version": 1, "clients": [{"address": "10.89.0.2", "upstreams": ["1.2.3.4:99999"]}]}',
        b'{"version": 1, "upstreams": ["dns.google"]}',
    ],
)
def test_bad_records_are_refused(doc: bytes) -> None:
    with pytest.raises(RecordsError):
        parse_records(doc)


@pytest.mark.parametrize(
    ("text", "upstream"),
    [("1.2.3.4", ("1.2.3.4", 53)), ("1.2.3.4:5353", ("1.2.3.4", 5353)), ("::1", ("::1", 53)),
     ("[2001:db8::1]:5353", ("2001:db8::1", 5353)), ("[::1]", ("::1", 53))],
)
def test_upstream_forms(text: str, upstream: tuple[str, int]) -> None:
    assert resolver.parse_upstream(text) == upstream


async def test_a_corrupt_file_keeps_the_last_good_records(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "records.json"
    write_records(path, DnsRecords(networks=(DnsNetwork(NET_A, {"web": ("10.89.0.2",)}),)))
    r = resolver.Resolver(path)
    r.load()
    assert addresses(answer(r.records, dns.message.make_query("web", "A"), NET_A, "x")) == {"10.89.0.2"}
    path.write_text('{"version": 1, "networks": [{"gateway": ')  # palletd never does this; a disk might
    r.load()
    assert addresses(answer(r.records, dns.message.make_query("web", "A"), NET_A, "x")) == {"10.89.0.2"}
    assert "unusable" in caplog.text
    write_records(path, DnsRecords(networks=(DnsNetwork(NET_A, {"api": ("10.89.0.5",)}),)))
    r.load()
    assert addresses(answer(r.records, dns.message.make_query("api", "A"), NET_A, "x")) == {"10.89.0.5"}
    assert isinstance(answer(r.records, dns.message.make_query("web", "A"), NET_A, "x"), Forward)


def test_a_missing_file_is_no_records_yet(tmp_path: Path) -> None:
    r = resolver.Resolver(tmp_path / "absent.json")
    r.load()
    assert r.records == resolver.EMPTY


# --------------------------------------------------------------------------- resolv.conf


def test_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# generated\nnameserver 127.0.0.53\nnameserver 192.0.2.1 # office\n"
        "domain old.example\nsearch corp.example. lab.example\noptions edns0 trust-ad\n"
        "nameserver fe80::1%eth0\n; comment\n"
    )
    host = read_resolv_conf(conf)
    assert host.nameservers == ("127.0.0.53", "192.0.2.1", "fe80::1")  # loopback kept
    assert host.search == ("corp.example", "lab.example")  # the last search line wins
    assert host.options == ("edns0", "trust-ad")


def test_no_resolv_conf_means_the_local_host(tmp_path: Path) -> None:
    host = read_resolv_conf(tmp_path / "none")
    assert host.nameservers == ("127.0.0.1",)  # as glibc
    assert host.search == ()


# --------------------------------------------------------------------------- import diet


def test_the_resolver_imports_only_the_standard_library_and_dnspython() -> None:
    tree = ast.parse(Path(resolver.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    third_party = {name for name in imported if name not in sys.stdlib_module_names and name != "__future__"}
    assert third_party == {"dns"}


def test_the_resolver_process_loads_nothing_heavy() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import sys, pallet.daemon.networks.resolver; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    pallet = sorted(m for m in out if m.startswith("pallet"))
    assert pallet == ["pallet", "pallet.daemon", "pallet.daemon.networks", "pallet.daemon.networks.resolver"]
    assert not [m for m in out if m.split(".")[0] in ("grpc", "pyroute2", "google", "structlog", "nftables")]


def test_records_json_is_plain_json() -> None:
    doc = json.loads(records_json(DnsRecords(networks=(DnsNetwork(NET_A, {"a": ("10.89.0.2",)}),))))
    assert doc == {"version": 1, "upstreams": [], "clients": [],
                   "networks": [{"gateway": NET_A, "names": {"a": ["10.89.0.2"]}}]}
