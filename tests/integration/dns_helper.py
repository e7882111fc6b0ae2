"""Processes the resolver tests run inside their throwaway network namespace.

Owns: `python dns_helper.py client` (answers JSON-line queries with dnspython, from a given
source address), `... supervise RUN_ROOT [TIMEOUT]` (drives a DnsSupervisor by JSON-line
commands: the resolver's parent, which a test may kill -9), `... upstream ADDR [--silent]
[--zone ZONE --answer IP]` (a fake upstream DNS server on ADDR:53: `*.example` →
198.51.100.7, `big.example` → 100 A records, anything else NXDOMAIN; silent: receives and
never answers; with --zone: A queries for names under ZONE → IP, other types under it an
empty answer, anything else NXDOMAIN, so tests tell upstreams apart). Must not: run
outside the namespace the test made (the test starts it with `ip netns exec`).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset

from pallet.daemon.networks.dns import DnsClient, DnsNetwork, DnsRecords, DnsSupervisor

UPSTREAM_ADDRESS = "198.51.100.7"


def _lines() -> Any:
    for line in sys.stdin:
        if line.strip():
            yield json.loads(line)


def _reply(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def client() -> None:
    for req in _lines():
        query = dns.message.make_query(req["name"], req.get("type", "A"))
        try:
            if req.get("tcp"):
                response = dns.query.tcp(query, req["server"], timeout=req.get("timeout", 5), source=req.get("source"))
            else:
                response = dns.query.udp(query, req["server"], timeout=req.get("timeout", 5), source=req.get("source"))
        except (dns.exception.DNSException, OSError) as exc:
            _reply({"error": type(exc).__name__})
            continue
        _reply({
            "rcode": dns.rcode.to_text(response.rcode()),
            "tc": bool(response.flags & dns.flags.TC),
            "aa": bool(response.flags & dns.flags.AA),
            "answers": sorted(rd.to_text() for rrset in response.answer for rd in rrset),
            "error": None,
        })


def _records(doc: Any) -> DnsRecords:
    return DnsRecords(
        networks=tuple(
            DnsNetwork(n["gateway"], {k: tuple(v) for k, v in n.get("names", {}).items()}) for n in doc.get("networks", [])
        ),
        clients=tuple(
            DnsClient(c["address"], tuple(c.get("upstreams", ())), tuple(c.get("search", ()))) for c in doc.get("clients", [])
        ),
        upstreams=tuple(doc.get("upstreams", ())),
    )


def supervise(run_root: str, timeout: str | None) -> None:
    supervisor = DnsSupervisor(Path(run_root), upstream_timeout=float(timeout) if timeout else None)
    for req in _lines():
        op = req["op"]
        if op == "ensure":
            _reply({"pid": asyncio.run(supervisor.ensure_running())})
        elif op == "publish":
            asyncio.run(supervisor.publish(_records(req["records"])))
            _reply({"pid": supervisor.pid()})
        elif op == "stop":
            asyncio.run(supervisor.stop())
            _reply({"pid": supervisor.pid()})
        elif op == "pid":
            _reply({"pid": supervisor.pid()})


#: --zone ZONE --answer IP: (".zone.", "IP"); None: the `*.example` answers.
ZONE: tuple[str, str] | None = None


def _upstream_answer(data: bytes, max_size: int) -> bytes:
    query = dns.message.from_wire(data)
    response = dns.message.make_response(query)
    name = query.question[0].name.to_text().lower()
    if ZONE is not None:
        zone, answer = ZONE
        if not name.endswith(zone):
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif query.question[0].rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", answer))
    elif name == "big.example.":
        response.answer.append(dns.rrset.from_text_list(query.question[0].name, 60, "IN", "A",
                                                        [f"198.51.100.{i}" for i in range(100)]))
    elif name.endswith(".example."):
        response.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", UPSTREAM_ADDRESS))
    else:
        response.set_rcode(dns.rcode.NXDOMAIN)
    return response.to_wire(max_size=max_size, prefer_truncation=True)


class _UpstreamUdp(asyncio.DatagramProtocol):
    def __init__(self, silent: bool) -> None:
        self.silent = silent

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.silent:
            self.transport.sendto(_upstream_answer(data, 512), addr)


async def _upstream_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            reply = _upstream_answer(await reader.readexactly(length), 65535)
            writer.write(struct.pack("!H", len(reply)) + reply)
            await writer.drain()
    except (asyncio.IncompleteReadError, OSError):
        writer.close()


async def upstream(address: str, silent: bool) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: _UpstreamUdp(silent), local_addr=(address, 53), family=socket.AF_INET)
    if not silent:
        await asyncio.start_server(_upstream_tcp, address, 53)
    _reply({"ready": True})
    await asyncio.Event().wait()


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "client":
        client()
    elif command == "supervise":
        supervise(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    elif command == "upstream":
        if "--zone" in sys.argv:
            zone = sys.argv[sys.argv.index("--zone") + 1].strip(".").lower()
            ZONE = (f".{zone}.", sys.argv[sys.argv.index("--answer") + 1])
        asyncio.run(upstream(sys.argv[2], "--silent" in sys.argv))
