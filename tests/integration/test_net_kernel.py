"""`NetKernel` against the real kernel: namespaces, bridges, veths, routes, sysctls.

Every test runs inside a throwaway "host" network namespace (`ip netns add pltest-…`): the
test's thread setns()es into it before the kernel starts, so the worker thread NetKernel
starts there takes it for palletd's host netns. The real host's links, routes and
ip_forward are never touched. Teardown closes the kernel, then fails the test if anything
is left: a link besides `lo` in the throwaway netns, a mount or a file under the run root.
"""

from __future__ import annotations

import asyncio
import ctypes
import ipaddress
import json
import os
import secrets
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pallet.daemon.networks.attachment import Attachment
from pallet.daemon.networks.kernel import NetKernel
from pallet.v1.errors import AlreadyExists, FailedPrecondition

pytestmark = pytest.mark.integration

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=check)


@dataclass
class HostNetns:
    """The throwaway netns standing in for palletd's host netns."""

    name: str
    outer_fd: int  # the netns the test process was in before

    def ip(self, *args: str) -> Any:
        out = run("ip", "-n", self.name, "-j", *args).stdout
        return json.loads(out) if out.strip() else []

    def links(self) -> dict[str, Any]:
        return {link["ifname"]: link for link in self.ip("-d", "link", "show")}

    def sysctl(self, path: str) -> str:
        return run("ip", "netns", "exec", self.name, "cat", f"/proc/sys/{path}").stdout.strip()

    def outer_sysctl(self, path: str) -> str:
        netns = f"/proc/{os.getpid()}/fd/{self.outer_fd}"
        return run("nsenter", f"--net={netns}", "cat", f"/proc/sys/{path}").stdout.strip()


def inside(netns: Path, *args: str) -> Any:
    """`ip -j ARGS` inside the netns bind-mounted at `netns`."""
    out = run("nsenter", f"--net={netns}", "ip", "-j", *args).stdout
    return json.loads(out) if out.strip() else []


def ping(netns: Path, address: str) -> subprocess.CompletedProcess[str]:
    return run("nsenter", f"--net={netns}", "busybox", "ping", "-c1", "-W2", address, check=False)


def wait_until(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def mounts_under(root: Path) -> list[str]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point == str(root) or point.startswith(f"{root}/"):
            found.append(point)
    return found


@pytest.fixture
def host_netns() -> Iterator[HostNetns]:
    name = f"pltest-{secrets.token_hex(4)}"
    run("ip", "netns", "add", name)
    outer = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(fd)
        # Never go on in the real host's netns.
        assert os.stat("/proc/thread-self/ns/net").st_ino == os.fstat(fd).st_ino
        yield HostNetns(name, outer)
    finally:
        _setns(outer)
        os.close(fd)
        os.close(outer)
        run("ip", "netns", "del", name, check=False)


@pytest.fixture
async def kernel(host_netns: HostNetns, tmp_path: Path) -> AsyncIterator[NetKernel]:
    run_root = tmp_path / "run"
    k = NetKernel(run_root)
    await k.start()
    try:
        yield k
    finally:
        # What a test made and did not remove is a leak; the bench and the tests remove
        # what they make, so anything left fails the test (after it is cleaned up).
        leaks: list[str] = []
        try:
            for name in await k.list_netns():
                leaks.append(f"netns {name}")
                await k.remove_netns(name)
        except Exception as exc:  # the code under test may be what is broken
            leaks.append(f"remove_netns failed: {exc!r}")
        finally:
            await k.close()
            # Whatever happened above, nothing stays mounted under the run root.
            for point in mounts_under(run_root):
                leaks.append(f"mount {point}")
                run("umount", "-l", point, check=False)
        gone = wait_until(lambda: set(host_netns.links()) <= {"lo"})
        if not gone:
            leaks += [f"link {n}" for n in host_netns.links() if n != "lo"]
        leftover = sorted(p.name for p in (run_root / "netns").iterdir())
        leaks += [f"file {n}" for n in leftover]
        assert not leaks, f"left behind: {leaks}"


def att(n: int, netns: str, *, bridge: str = "plbr0", ifname: str = "eth0",
        gateway: str = "172.18.0.1", mtu: int = 1500) -> Attachment:
    return Attachment(
        host_ifname=f"pltest{n:04d}", bridge=bridge, netns=netns, ifname=ifname,
        address=f"172.18.0.{n}/16", mac=f"02:42:ac:12:00:{n:02x}", mtu=mtu, gateway=gateway,
    )


async def test_two_namespaces_on_one_bridge_reach_each_other(
    kernel: NetKernel, host_netns: HostNetns
) -> None:
    await kernel.ensure_bridge("plbr0", "172.18.0.1/16")
    a = await kernel.make_netns("a")
    b = await kernel.make_netns("b")
    await kernel.attach(att(2, "a"))
    await kernel.attach(att(3, "b"))

    assert ping(a, "172.18.0.3").returncode == 0, ping(a, "172.18.0.3").stdout
    assert ping(b, "172.18.0.2").returncode == 0
    assert ping(b, "172.18.0.1").returncode == 0  # the gateway: the bridge itself
    assert ping(a, "127.0.0.1").returncode == 0  # lo is up

    await kernel.remove_netns("a")
    await kernel.remove_netns("b")
    await kernel.delete_bridge("plbr0")


async def test_attach_sets_what_was_asked_inside_and_on_the_host(
    kernel: NetKernel, host_netns: HostNetns
) -> None:
    await kernel.ensure_bridge("plbr0", "172.18.0.1/16", mtu=1400)
    path = await kernel.make_netns("c")
    assert path == kernel.netns_path("c") and path.parent.name == "netns"
    await kernel.attach(att(5, "c", mtu=1400))

    (eth0,) = inside(path, "addr", "show", "eth0")
    assert eth0["address"] == "02:42:ac:12:00:05"
    assert eth0["mtu"] == 1400
    assert eth0["operstate"] == "UP"
    v4 = [(i["local"], i["prefixlen"]) for i in eth0["addr_info"] if i["family"] == "inet"]
    assert v4 == [("172.18.0.5", 16)]
    routes = inside(path, "route", "show")
    assert {"dst": "default", "gateway": "172.18.0.1", "dev": "eth0"}.items() <= routes[0].items()
    assert [r["dst"] for r in routes] == ["default", "172.18.0.0/16"]
    (lo,) = inside(path, "link", "show", "lo")
    assert "UP" in lo["flags"]

    host = host_netns.links()["pltest0005"]
    assert host["master"] == "plbr0"
    assert host["mtu"] == 1400
    assert host["operstate"] == "UP"
    assert host["linkinfo"]["info_kind"] == "veth"
    assert host["linkinfo"]["info_slave_data"]["hairpin"] is True

    await kernel.remove_netns("c")
    await kernel.delete_bridge("plbr0")


async def test_a_second_attachment_without_gateway_adds_no_route(
    kernel: NetKernel, host_netns: HostNetns
) -> None:
    await kernel.ensure_bridge("plbr0", "172.18.0.1/16")
    await kernel.ensure_bridge("plbr1", "172.19.0.1/16")
    path = await kernel.make_netns("d")
    await kernel.attach(att(2, "d"))
    second = Attachment("pltest1002", "plbr1", "d", "eth1", "172.19.0.2/16", "02:42:ac:13:00:02")
    await kernel.attach(second)

    routes = inside(path, "route", "show")
    assert sorted((r["dst"], r["dev"]) for r in routes) == [
        ("172.18.0.0/16", "eth0"), ("172.19.0.0/16", "eth1"), ("default", "eth0"),
    ]
    assert host_netns.links()["pltest1002"]["master"] == "plbr1"

    await kernel.remove_netns("d")
    await kernel.delete_bridge("plbr0")
    await kernel.delete_bridge("plbr1")


async def test_a_failed_attach_leaves_no_veth(kernel: NetKernel, host_netns: HostNetns) -> None:
    await kernel.ensure_bridge("plbr0", "172.18.0.1/16")
    await kernel.ensure_bridge("plbr1", "172.19.0.1/16")
    path = await kernel.make_netns("e")
    before = set(host_netns.links())

    with pytest.raises(FailedPrecondition, match="bridge plnone does not exist"):
        await kernel.attach(att(2, "e", bridge="plnone"))
    with pytest.raises(FailedPrecondition, match="network namespace nowhere does not exist"):
        await kernel.attach(att(2, "nowhere"))
    assert set(host_netns.links()) == before
    assert [link["ifname"] for link in inside(path, "link", "show")] == ["lo"]

    await kernel.attach(att(2, "e"))
    # A second default route fails after the veth exists: it must be deleted again.
    second = Attachment("pltest1003", "plbr1", "e", "eth1", "172.19.0.3/16",
                        "02:42:ac:13:00:03", gateway="172.19.0.1")
    with pytest.raises(FailedPrecondition, match="default route already"):
        await kernel.attach(second)
    assert "pltest1003" not in host_netns.links()
    assert [link["ifname"] for link in inside(path, "link", "show")] == ["lo", "eth0"]

    # The host name taken: the veth that holds it is someone else's and stays.
    with pytest.raises(AlreadyExists, match="link pltest0002 exists already"):
        await kernel.attach(att(2, "e", ifname="eth5"))
    # The name inside taken: nothing new on the host.
    with pytest.raises(AlreadyExists, match="interface eth0 in network namespace e"):
        await kernel.attach(att(7, "e"))
    assert set(host_netns.links()) == before | {"pltest0002"}
    assert ping(path, "172.18.0.1").returncode == 0  # the first one still works

    await kernel.remove_netns("e")
    await kernel.delete_bridge("plbr0")
    await kernel.delete_bridge("plbr1")


async def test_detach_deletes_the_pair_at_once_and_is_idempotent(
    kernel: NetKernel, host_netns: HostNetns
) -> None:
    await kernel.ensure_bridge("plbr0", "172.18.0.1/16")
    path = await kernel.make_netns("f")
    await kernel.attach(att(2, "f"))
    await kernel.detach("pltest0002")
    assert "pltest0002" not in host_netns.links()
    assert [link["ifname"] for link in inside(path, "link", "show")] == ["lo"]
    await kernel.detach("pltest0002")
    with pytest.raises(FailedPrecondition, match="not a veth"):
        await kernel.detach("plbr0")
    assert "plbr0" in host_netns.links()
    await kernel.remove_netns("f")
    await kernel.delete_bridge("plbr0")


async def test_remove_netns_unmounts_at_once_and_the_kernel_frees_the_veth(
    kernel: NetKernel, host_netns: HostNetns, tmp_path: Path
) -> None:
    await kernel.ensure_bridge("plbr0", "172.18.0.1/16")
    path = await kernel.make_netns("g")
    await kernel.attach(att(2, "g"))
    assert await kernel.list_netns() == ["g"]
    assert mounts_under(path.parent) == [str(path)]

    await kernel.remove_netns("g")
    assert not path.exists()
    assert mounts_under(path.parent) == []
    assert await kernel.list_netns() == []
    assert wait_until(lambda: "pltest0002" not in host_netns.links())
    await kernel.remove_netns("g")  # idempotent
    await kernel.remove_netns("never-made")
    await kernel.delete_bridge("plbr0")


async def test_make_netns_refuses_a_live_one_and_reuses_a_stale_file(
    kernel: NetKernel, host_netns: HostNetns
) -> None:
    path = await kernel.make_netns("h")
    with pytest.raises(AlreadyExists, match="network namespace h exists already"):
        await kernel.make_netns("h")
    assert mounts_under(path.parent) == [str(path)]  # the first one is untouched
    await kernel.remove_netns("h")

    path.touch()  # what a crash between create and mount leaves
    await kernel.make_netns("h")
    assert [link["ifname"] for link in inside(path, "link", "show")] == ["lo"]
    await kernel.remove_netns("h")


async def test_ensure_bridge_is_idempotent_and_puts_things_right(
    kernel: NetKernel, host_netns: HostNetns
) -> None:
    def v4(name: str) -> list[tuple[str, int]]:
        (link,) = host_netns.ip("addr", "show", name)
        return [(i["local"], i["prefixlen"]) for i in link["addr_info"] if i["family"] == "inet"]

    await kernel.ensure_bridge("plbr0", "172.18.0.1/16")
    await kernel.ensure_bridge("plbr0", "172.18.0.1/16")
    assert v4("plbr0") == [("172.18.0.1", 16)]
    bridge = host_netns.links()["plbr0"]
    assert bridge["linkinfo"]["info_kind"] == "bridge" and "UP" in bridge["flags"]
    mac = bridge["address"]

    run("ip", "-n", host_netns.name, "addr", "add", "10.9.9.1/24", "dev", "plbr0")
    run("ip", "-n", host_netns.name, "link", "set", "plbr0", "down", "mtu", "1300")
    await kernel.ensure_bridge("plbr0", "172.18.0.1/16")
    assert v4("plbr0") == [("172.18.0.1", 16)]
    bridge = host_netns.links()["plbr0"]
    assert "UP" in bridge["flags"] and bridge["mtu"] == 1500 and bridge["address"] == mac

    await kernel.ensure_bridge("plbr0", "172.20.0.1/24", mtu=1450)  # a different gateway
    assert v4("plbr0") == [("172.20.0.1", 24)]
    assert host_netns.links()["plbr0"]["mtu"] == 1450

    await kernel.delete_bridge("plbr0")
    await kernel.delete_bridge("plbr0")  # idempotent
    assert "plbr0" not in host_netns.links()


async def test_a_link_that_is_not_a_bridge_is_left_alone(
    kernel: NetKernel, host_netns: HostNetns
) -> None:
    run("ip", "-n", host_netns.name, "link", "add", "plother", "type", "veth", "peer",
        "name", "plother1")
    with pytest.raises(FailedPrecondition, match="plother exists and is not a bridge"):
        await kernel.ensure_bridge("plother", "172.18.0.1/16")
    with pytest.raises(FailedPrecondition, match="not a bridge"):
        await kernel.delete_bridge("plother")
    path = await kernel.make_netns("i")
    with pytest.raises(FailedPrecondition, match="plother is not a bridge"):
        await kernel.attach(att(2, "i", bridge="plother"))
    assert {"plother", "plother1"} <= set(host_netns.links())
    assert "pltest0002" not in host_netns.links()
    assert [link["ifname"] for link in inside(path, "link", "show")] == ["lo"]
    run("ip", "-n", host_netns.name, "link", "del", "plother")
    await kernel.remove_netns("i")


async def test_routes_and_links(kernel: NetKernel, host_netns: HostNetns) -> None:
    await kernel.ensure_bridge("plbr0", "172.18.0.1/16")
    await kernel.ensure_bridge("plxbr", "10.50.0.1/24")
    ns = host_netns.name
    run("ip", "-n", ns, "route", "add", "10.77.0.0/16", "via", "172.18.0.9")
    run("ip", "-n", ns, "route", "add", "default", "via", "172.18.0.254")
    assert await kernel.routes() == [
        ipaddress.IPv4Network("10.50.0.0/24"),
        ipaddress.IPv4Network("10.77.0.0/16"),
        ipaddress.IPv4Network("172.18.0.0/16"),
    ]
    assert await kernel.links("pl") == ["plbr0", "plxbr"]
    assert await kernel.links("plx") == ["plxbr"]
    assert await kernel.links() == ["lo", "plbr0", "plxbr"]
    await kernel.delete_bridge("plbr0")  # its routes go with it
    assert await kernel.routes() == [ipaddress.IPv4Network("10.50.0.0/24")]
    await kernel.delete_bridge("plxbr")


async def test_enable_forwarding_in_the_host_netns_only(
    kernel: NetKernel, host_netns: HostNetns
) -> None:
    outer_before = host_netns.outer_sysctl("net/ipv4/ip_forward")
    run("ip", "netns", "exec", host_netns.name, "sh", "-c",
        "echo 0 > /proc/sys/net/ipv4/ip_forward")
    await kernel.ensure_bridge("plbr0", "172.18.0.1/16")
    assert host_netns.sysctl("net/ipv4/conf/plbr0/route_localnet") == "0"

    await kernel.enable_forwarding("plbr0")
    assert host_netns.sysctl("net/ipv4/ip_forward") == "1"
    assert host_netns.sysctl("net/ipv4/conf/plbr0/route_localnet") == "1"
    assert host_netns.outer_sysctl("net/ipv4/ip_forward") == outer_before
    with pytest.raises(FailedPrecondition, match="bridge plnone does not exist"):
        await kernel.enable_forwarding("plnone")
    await kernel.delete_bridge("plbr0")


async def test_calls_run_one_at_a_time_each_in_its_namespace(
    kernel: NetKernel, host_netns: HostNetns
) -> None:
    """Many attaches at once: the worker never mixes up which netns it is in."""
    await kernel.ensure_bridge("plbr0", "172.18.0.1/16")
    names = [f"p{n}" for n in range(2, 22)]
    await asyncio.gather(*(kernel.make_netns(name) for name in names))
    await asyncio.gather(*(kernel.attach(att(n, f"p{n}")) for n in range(2, 22)))
    await asyncio.gather(*(kernel.links("pltest") for _ in range(5)))
    assert await kernel.links("pltest") == [f"pltest{n:04d}" for n in range(2, 22)]
    for n in range(2, 22):
        (eth0,) = inside(kernel.netns_path(f"p{n}"), "addr", "show")[1:]
        assert eth0["ifname"] == "eth0" and eth0["address"] == f"02:42:ac:12:00:{n:02x}"
    assert ping(kernel.netns_path("p2"), "172.18.0.21").returncode == 0
    await asyncio.gather(*(kernel.remove_netns(name) for name in names))
    await kernel.delete_bridge("plbr0")
