"""UDP through published ports, for real: datagrams from the host reach a container and the
answers come back, on 127.0.0.1, on another address of the host and on a random host port.

busybox has no UDP server, so the container runs `sleep` and the test runs a UDP echo
peer (net_lab.py's `serve-udp`, which answers every datagram with the address it came
from) inside the container's network namespace through nsenter; the datagrams are sent
from palletd's namespace (the "host") with net_lab.py's `udp` client. Every daemon runs in
a throwaway network namespace (the harness's `Palletd.netns`).
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

LAB = str(Path(__file__).with_name("net_lab.py"))
OTHER = "10.251.0.1"  # a second, non-loopback address of the daemon's namespace


@pytest.fixture
def other_address(palletd: Any) -> Iterator[str]:
    palletd.host_run("ip", "link", "add", "pltudp0", "type", "veth", "peer", "name", "pltudp1")
    try:
        palletd.host_run("ip", "addr", "add", f"{OTHER}/24", "dev", "pltudp0")
        palletd.host_run("ip", "link", "set", "pltudp0", "up")
        yield OTHER
    finally:
        palletd.host_run("ip", "link", "del", "pltudp0", check=False)


def udp_peer(palletd: Any, container: str, port: int) -> subprocess.Popen[bytes]:
    """A UDP echo peer on `port` in the running container's network namespace."""
    pid = palletd.inspect(container)["State"]["Pid"]
    assert pid > 0
    proc = subprocess.Popen(
        ["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, LAB, "serve-udp", str(port)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    palletd.popens.append(proc)  # killed at the end of the test whatever happens
    assert palletd.read_line(proc) == b"ready\n", f"the UDP peer in {container} did not start"
    return proc


def stop_peer(proc: subprocess.Popen[bytes]) -> None:
    # Before the container stops: a process in its namespace would keep its veth alive.
    proc.kill()
    proc.communicate(timeout=10)


def ask(palletd: Any, addr: str, port: int, tries: int = 5) -> str | None:
    """One datagram from the host to addr:port (retried: UDP may drop one); the echo."""
    for _ in range(tries):
        done = palletd.host_run(sys.executable, LAB, "udp", addr, str(port), check=False)
        if done.returncode == 0 and done.stdout.strip():
            return str(done.stdout.strip())
        time.sleep(0.2)
    return None


def host_port(palletd: Any, container: str, spec: str) -> int:
    line = palletd.cli_ok("port", container, spec).strip()
    return int(line.rsplit(":", 1)[1])


def test_udp_through_published_ports_and_the_port_is_released_after_stop(
    palletd: Any, other_address: str
) -> None:
    lo_port, other_port = 25000, 25001
    palletd.cli_ok("run", "-d", "--name", "echo",
                   "-p", f"127.0.0.1:{lo_port}:5000/udp",
                   "-p", f"{other_address}:{other_port}:5000/udp",
                   "-p", "5001/udp",
                   "busybox:latest", "sleep", "1000")
    random_port = host_port(palletd, "echo", "5001/udp")
    assert random_port > 0
    listed = palletd.cli_ok("port", "echo")
    assert f"5000/udp -> 127.0.0.1:{lo_port}" in listed, listed
    assert f"5000/udp -> {other_address}:{other_port}" in listed, listed
    assert f"5001/udp -> 0.0.0.0:{random_port}" in listed, listed
    peers = [udp_peer(palletd, "echo", 5000), udp_peer(palletd, "echo", 5001)]

    # Each published address answers, and the echo names the sender the container saw.
    for addr, port in ((  "127.0.0.1", lo_port), (other_address, other_port),
                       ("127.0.0.1", random_port), (other_address, random_port)):
        echo = ask(palletd, addr, port)
        assert echo is not None, f"no UDP echo through {addr}:{port}"
        ipaddress.IPv4Address(echo)
    # Published on one address: not on the others.
    assert ask(palletd, other_address, lo_port, tries=2) is None
    assert ask(palletd, "127.0.0.1", other_port, tries=2) is None

    # Stopped, the container gives the ports back: a new one publishes them all again.
    for proc in peers:
        stop_peer(proc)
    palletd.cli_ok("stop", "-t", "0", "echo")
    gone = [r for r in palletd.nat_rules() if "udp dport" in r]
    assert gone == [], gone
    palletd.cli_ok("run", "-d", "--name", "heir",
                   "-p", f"127.0.0.1:{lo_port}:5000/udp",
                   "-p", f"{other_address}:{other_port}:5000/udp",
                   "-p", f"{random_port}:5001/udp",
                   "busybox:latest", "sleep", "1000")
    peers = [udp_peer(palletd, "heir", 5000), udp_peer(palletd, "heir", 5001)]
    assert ask(palletd, "127.0.0.1", lo_port) is not None
    assert ask(palletd, other_address, other_port) is not None
    assert ask(palletd, other_address, random_port) is not None
    for proc in peers:
        stop_peer(proc)
