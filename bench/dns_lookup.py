"""Lookup latency, start-up and memory of pallet's embedded DNS resolver.

Owns: a throwaway network namespace (`ip netns add`, a veth end with a gateway, a client
and an upstream address), a resolver started there through DnsSupervisor (as palletd
starts it), a fake upstream, and timing UDP lookups from a client in that namespace:
a local name, a forwarded name, and the same upstream asked directly (the floor).
Must not: touch the host's namespace; leave a process or the namespace behind.

    sudo python bench/dns_lookup.py [--queries 5000] [--names 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GATEWAY, CLIENT, UPSTREAM = "10.89.0.1", "10.89.0.2", "10.89.9.1"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _upstream(address: str) -> None:
    """A fake upstream: every name is 198.51.100.7 (answered from a prebuilt message)."""
    import dns.message
    import dns.rrset

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 53))
    print("ready", flush=True)
    while True:
        data, addr = sock.recvfrom(4096)
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", "198.51.100.7"))
        sock.sendto(response.to_wire(), addr)


def _time_lookups(server: str, name: str, count: int) -> list[float]:
    """Round trips in ms, from CLIENT, with a prebuilt query and a raw socket so that the
    client's own parsing is not in the figure."""
    import dns.message

    wire = bytearray(dns.message.make_query(name, "A").to_wire())
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((CLIENT, 0))
    sock.connect((server, 53))
    sock.settimeout(5)
    times = []
    for i in range(count + 50):
        wire[0:2] = (i & 0xFFFF).to_bytes(2, "big")
        t0 = time.perf_counter()
        sock.send(wire)
        reply = sock.recv(4096)
        elapsed = time.perf_counter() - t0
        assert reply[:2] == wire[:2] and reply[3] & 0x0F == 0 and reply[7] >= 1, "no answer"
        if i >= 50:  # warm-up
            times.append(elapsed * 1000)
    sock.close()
    return times


def _inside(args: argparse.Namespace) -> None:
    from pallet.daemon.networks.dns import DnsNetwork, DnsRecords, DnsSupervisor, records_json

    upstream = subprocess.Popen([sys.executable, __file__, "--upstream", UPSTREAM], stdout=subprocess.PIPE, text=True)
    assert upstream.stdout is not None and upstream.stdout.readline().strip() == "ready"
    names = {f"ctr-{i}": (f"10.89.{i // 250}.{i % 250 + 2}",) for i in range(args.names)}
    names["web"] = ("10.89.0.2",)
    records = DnsRecords(networks=(DnsNetwork(GATEWAY, names),), upstreams=(UPSTREAM,))
    starts, first_pid = [], None
    try:
        for run in range(5):
            supervisor = DnsSupervisor(Path(args.run_root) / f"run{run}")
            supervisor._write(records_json(records))
            t0 = time.perf_counter()
            pid = asyncio.run(supervisor.ensure_running())
            starts.append((time.perf_counter() - t0) * 1000)
            if run < 4:
                asyncio.run(supervisor.stop())
            else:
                first_pid = pid
        assert first_pid is not None
        rss_idle = _rss_kib(first_pid)
        local = _time_lookups(GATEWAY, "web", args.queries)
        forwarded = _time_lookups(GATEWAY, "www.example", args.queries)
        direct = _time_lookups(UPSTREAM, "www.example", args.queries)
        rss_busy = _rss_kib(first_pid)
        asyncio.run(supervisor.stop())
    finally:
        upstream.kill()
        upstream.wait()

    def row(what: str, ms: list[float]) -> str:
        q = statistics.quantiles(ms, n=10)
        return f"| {what} | {statistics.median(ms):.3f} | {q[8]:.3f} |"

    print(f"resolver: {args.names + 1} names on one network, {args.queries} timed lookups each")
    print("| lookup (UDP, from a client in the netns) | median ms | p90 ms |\n|---|---|---|")
    print(row("local name (A)", local))
    print(row("forwarded to an upstream in the netns", forwarded))
    print(row("that upstream asked directly (floor)", direct))
    print(f"start-up (ensure_running until the pid file names it): median {statistics.median(starts):.0f} ms "
          f"(min {min(starts):.0f}, max {max(starts):.0f})")
    print(f"RSS: {rss_idle / 1024:.1f} MiB idle, {rss_busy / 1024:.1f} MiB after {3 * args.queries} lookups")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--names", type=int, default=300)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    parser.add_argument("--inside", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream:
        _upstream(args.upstream)
        return
    if args.inside:
        args.run_root = args.inside
        _inside(args)
        return
    name = f"pallet-bench-dns-{secrets.token_hex(3)}"
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        for address in (GATEWAY, CLIENT, UPSTREAM):
            _ip("-n", name, "addr", "add", f"{address}/24", "dev", "v0")
        _ip("-n", name, "link", "set", "v0", "up")
        _ip("-n", name, "link", "set", "v1", "up")
        with tempfile.TemporaryDirectory(prefix="plt-bench-dns-") as tmp:
            subprocess.run(
                ["ip", "netns", "exec", name, sys.executable, __file__, "--inside", tmp,
                 "--queries", str(args.queries), "--names", str(args.names)],
                check=True,
            )
    finally:
        ns = os.stat(f"/run/netns/{name}")
        for entry in Path("/proc").iterdir():  # whatever is left in the namespace is ours
            try:
                st = os.stat(entry / "ns" / "net")
            except (OSError, ValueError):
                continue
            if entry.name.isdigit() and (st.st_dev, st.st_ino) == (ns.st_dev, ns.st_ino):
                print(f"bench: cleanup: killing {entry.name}", file=sys.stderr)
                os.kill(int(entry.name), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", name], check=True)


if __name__ == "__main__":
    main()
