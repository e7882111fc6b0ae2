"""Running out of addresses: an exhausted subnet pool and a network with no address left.

Each is a clear error naming what is full and what to do, with the right gRPC code, and
changes nothing (links, netns files, leases, rules, networks in the store); what already
runs is untouched, and freeing an address (or a subnet) makes the refused call work.
Every daemon runs in a throwaway network namespace (the harness's `Palletd.netns`).
"""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import BASE_CHANGES, _finish, fetch_from_host, new_palletd

pytestmark = pytest.mark.integration

POOL = "base=10.99.0.0/23,size=24"  # two subnets: the default network's and one more


@pytest.fixture
def tiny_pool(busybox_tar: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A palletd whose address pool has room for the default network and one more."""
    daemon = new_palletd()
    request.node.palletd_under_test = daemon
    daemon.extra_args = ["--default-address-pool", POOL]
    try:
        daemon.start()
        daemon.base_image_id = daemon.import_image(busybox_tar, "busybox:latest", BASE_CHANGES)
        yield daemon
    finally:
        _finish(daemon)


def state(palletd: Any) -> tuple[Any, ...]:
    """What a refused call must not change."""
    netns_dir = palletd.run_root / "netns"
    files = sorted(p.name for p in netns_dir.iterdir()) if netns_dir.is_dir() else []
    conn = sqlite3.connect(f"file:{palletd.root / 'pallet.db'}?mode=ro", uri=True, timeout=10)
    try:
        rows = sorted(conn.execute("SELECT id, name, record FROM networks").fetchall())
    finally:
        conn.close()
    return (sorted(palletd.links()), files, sorted(palletd.leases()),
            palletd.host_run("nft", "list", "ruleset").stdout,
            palletd.cli_ok("network", "ls", "-q"), rows)


def subnet_of(palletd: Any, network: str) -> str:
    return str(json.loads(palletd.cli_ok("network", "inspect", network))[0]["IPAM"]["Config"][0]["Subnet"])


def create_code(palletd: Any, name: str) -> str:
    """The gRPC status code of NetworksService.Create(name), "" when it succeeds."""
    import grpc

    import pallet.v1.networks_pb2 as networks_pb2
    import pallet.v1.networks_pb2_grpc as networks_pb2_grpc

    with grpc.insecure_channel(palletd.host) as channel:
        stub = networks_pb2_grpc.NetworksServiceStub(channel)
        try:
            stub.Create(networks_pb2.CreateNetworkRequest(name=name), timeout=30)
        except grpc.RpcError as exc:
            return str(exc.code().name)
    return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])



def httpd(text: str) -> list[str]:
    return ["sh", "-c", f"mkdir -p /www && echo '{text}' > /www/index.html && "
                        "exec httpd -f -p 80 -h /www"]


def test_an_exhausted_pool_is_a_clear_error_and_changes_nothing(tiny_pool: Any) -> None:
    palletd = tiny_pool
    assert subnet_of(palletd, "bridge") == "10.99.0.0/24"
    palletd.cli_ok("network", "create", "one")
    assert subnet_of(palletd, "one") == "10.99.1.0/24"
    before = state(palletd)
    result = palletd.cli("network", "create", "two")
    assert result.returncode != 0
    err = result.stderr
    # It names the pool that is full and says what to do.
    assert "no free subnet" in err and "10.99.0.0/23 in /24s" in err, err
    assert "--subnet" in err and "--default-address-pool" in err and "prune" in err, err
    assert create_code(palletd, "two") == "RESOURCE_EXHAUSTED"
    assert state(palletd) == before
    assert "two" not in palletd.cli_ok("network", "ls", "--format", "{{.Name}}").split()
    # What it says to do works: a subnet of one's own, or a subnet freed.
    palletd.cli_ok("network", "create", "--subnet", "10.50.0.0/24", "two")
    palletd.cli_ok("network", "rm", "one")
    palletd.cli_ok("network", "create", "three")
    assert subnet_of(palletd, "three") == "10.99.1.0/24"


@pytest.mark.parametrize(
    "flags, space, room",
    [
        (["--subnet", "10.98.0.0/30"], "10.98.0.0/30", 1),  # .1 the gateway, .2 the one
        (["--subnet", "10.97.0.0/24", "--ip-range", "10.97.0.0/30"], "10.97.0.0/30", 2),
    ],
    ids=["subnet", "ip-range"],
)
def test_a_full_network_refuses_the_next_start_and_leaves_nothing(
    palletd: Any, flags: list[str], space: str, room: int
) -> None:
    palletd.cli_ok("network", "create", *flags, "tiny")
    ports = [free_port() for _ in range(room + 1)]
    for i in range(room):
        palletd.cli_ok("run", "-d", "--name", f"first{i}", "--network", "tiny", "-p",
                       f"127.0.0.1:{ports[i]}:80", "busybox:latest", *httpd(f"hello {i}"))
    first = palletd.inspect("first0")
    before = state(palletd)
    result = palletd.cli("run", "-d", "--name", "extra", "--network", "tiny", "-p",
                         f"127.0.0.1:{ports[room]}:80", "busybox:latest", *httpd("hello extra"))
    assert result.returncode != 0
    err = result.stderr
    assert "no free address is left on network tiny" in err and space in err, err
    assert "stop, remove or disconnect a container" in err, err
    # Nothing of the refused start is left: no veth, namespace, lease or rule.
    assert palletd.inspect("extra")["State"]["Status"] == "created"
    assert state(palletd) == before
    # The first is untouched: same process, same address, its port still answers.
    now = palletd.inspect("first0")
    assert now["State"]["Pid"] == first["State"]["Pid"] and now["State"]["Running"] is True
    assert now["NetworkSettings"]["Networks"]["tiny"]["IPAddress"] == \
        first["NetworkSettings"]["Networks"]["tiny"]["IPAddress"]
    assert fetch_from_host(palletd, f"http://127.0.0.1:{ports[0]}/") == "hello 0\n"
    # With the first gone, its address is free: the refused container starts.
    freed = first["NetworkSettings"]["Networks"]["tiny"]["IPAddress"]
    palletd.cli_ok("rm", "-f", "first0")
    palletd.cli_ok("start", "extra")
    assert palletd.inspect("extra")["NetworkSettings"]["Networks"]["tiny"]["IPAddress"] == freed
    assert fetch_from_host(palletd, f"http://127.0.0.1:{ports[room]}/") == "hello extra\n"
