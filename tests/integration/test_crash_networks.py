"""palletd killed -9 in the middle of network operations: a restarted daemon tells the truth
and leaves nothing behind.

Each crash point (`PALLET_CRASH_AT=<operation>:<step>`, see `pallet.daemon.faults` and the
`hit` calls in `pallet.daemon.networks.manager`) is a step boundary of network create or
remove, of a container's attachment at start, or of a live connect or disconnect. After
the kill the daemon is started again without the hook, and what the user sees (network ls
and inspect, the container's state and interfaces) must be the old state or the new one;
the kernel and the store must match it (links, netns files under <run-root>/netns,
leases, DNAT rules, the resolver's records); and the operation must work when retried.

A plain kill -9 of palletd with a container serving on a user network: the running one is
kept as it was, and one that exited while palletd was down is cleaned up by reconcile
(test_networks.py checks that traffic and names answer while palletd is down; not again).
Every daemon runs in a throwaway network namespace (the harness's `Palletd.netns`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import fetch_from, fetch_from_host

pytestmark = pytest.mark.integration

VETH = re.compile(r"^pl[0-9a-f]{10}$")


# ---- what the kernel and the store hold ---------------------------------------------


def veths(palletd: Any) -> list[str]:
    return sorted(x for x in palletd.links() if VETH.match(x))


def bridges(palletd: Any) -> list[str]:
    return sorted(x for x in palletd.links() if x.startswith("pl-"))


def netns_files(palletd: Any) -> list[str]:
    d = palletd.run_root / "netns"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def lease_rows(palletd: Any) -> list[tuple[str, ...]]:
    """(network id, address, container id, host ifname) of every lease in the store."""
    db = palletd.root / "pallet.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return sorted(tuple(r) for r in conn.execute(
            "SELECT network_id, address, container_id, host_ifname FROM network_leases"
        ))
    finally:
        conn.close()


def network_rows(palletd: Any) -> list[str]:
    db = palletd.root / "pallet.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return sorted(r[0] for r in conn.execute("SELECT name FROM networks"))
    finally:
        conn.close()


def dns_records(palletd: Any) -> tuple[set[str], set[str]]:
    """(names, addresses) the resolver answers from (its records file)."""
    doc = json.loads((palletd.run_root / "dns" / "records.json").read_text())
    names = {name for n in doc["networks"] for name in n["names"]}
    addrs = {a for n in doc["networks"] for v in n["names"].values() for a in v}
    addrs |= {c["address"] for c in doc["clients"]}
    return names, addrs


def ruleset(palletd: Any) -> str:
    return str(palletd.host_run("nft", "list", "table", "ip", "pallet").stdout)


def network_names(palletd: Any) -> list[str]:
    return sorted(palletd.cli_ok("network", "ls", "--format", "{{.Name}}").split())


def network_events(palletd: Any, name: str) -> list[str]:
    out = palletd.cli_ok("events", "--since-seq", "0", "--until", "0s", "--filter",
                         "type=network", "--format", "json", timeout=30)
    docs = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [d["Action"] for d in docs if d["Actor"]["Attributes"].get("name") == name]


def kernel_and_store(palletd: Any) -> tuple[Any, ...]:
    """What a crash that ends in the old state must leave as it was."""
    return (veths(palletd), bridges(palletd), netns_files(palletd), lease_rows(palletd),
            palletd.nat_rules(), dns_records(palletd), network_rows(palletd))


def wait_kernel_and_store(palletd: Any, want: tuple[Any, ...], what: str) -> None:
    """Until it matches `want` (the kernel frees an unmounted namespace's veths later)."""
    last: list[Any] = []

    def same() -> bool:
        last[:] = [kernel_and_store(palletd)]
        return bool(last[0] == want)

    deadline = time.monotonic() + 15
    while not same() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert last[0] == want, f"{what}:\n got  {last[0]}\n want {want}"


@dataclass
class Crash:
    result: subprocess.CompletedProcess[str]
    leases: list[tuple[str, ...]]  # in the store at the moment of the crash
    links: list[str]  # in the daemon's namespace at the moment of the crash


def crash(palletd: Any, point: str, *args: str) -> Crash:
    """`pallet ARGS` against a palletd armed to die at `point`; palletd is running again
    (unarmed) when this returns."""
    with palletd.crash_armed(point):
        result = palletd.cli(*args, timeout=60)
        palletd.proc.wait(20)
        seen = Crash(result, lease_rows(palletd), palletd.links())
    assert result.returncode != 0, f"{point}: `pallet {' '.join(args)}` succeeded"
    assert "palletd" in result.stderr, result.stderr
    return seen


# ---- containers -----------------------------------------------------------------------


def httpd(text: str) -> list[str]:
    return ["sh", "-c", f"mkdir -p /www && echo '{text}' > /www/index.html && "
                        "exec httpd -f -p 80 -h /www"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])




def networks_of(palletd: Any, container: str) -> dict[str, Any]:
    return dict(palletd.inspect(container)["NetworkSettings"]["Networks"])


def interfaces(palletd: Any, container: str) -> list[str]:
    out = palletd.cli_ok("exec", container, "ip", "-o", "link")
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines())


# ---- network create and remove ------------------------------------------------------------


def test_network_create_killed_after_the_bridge_leaves_no_network(fresh_palletd: Any) -> None:
    palletd = fresh_palletd
    before = kernel_and_store(palletd)
    rules = ruleset(palletd)
    seen = crash(palletd, "network-create:bridge", "network", "create", "--subnet",
                 "10.61.0.0/24", "half")
    # The point is where it says: the bridge was made, the record was not.
    made = [x for x in seen.links if x.startswith("pl-") and x not in before[1]]
    assert len(made) == 1, seen.links
    assert "half" not in network_names(palletd)
    assert network_events(palletd, "half") == []
    wait_kernel_and_store(palletd, before, "after the restart")
    assert made[0] not in palletd.links(), "the bridge of no network was left"
    assert ruleset(palletd) == rules
    # The name and the subnet are free again.
    palletd.cli_ok("network", "create", "--subnet", "10.61.0.0/24", "half")
    assert network_events(palletd, "half") == ["create"]
    palletd.cli_ok("run", "-d", "--name", "on-half", "--network", "half", "busybox:latest",
                   "sleep", "300")
    assert networks_of(palletd, "on-half")["half"]["IPAddress"] == "10.61.0.2"


def test_network_create_killed_after_the_record_is_whole_after_restart(
    fresh_palletd: Any,
) -> None:
    palletd = fresh_palletd
    crash(palletd, "network-create:recorded", "network", "create", "whole")
    assert "whole" in network_names(palletd)
    assert network_events(palletd, "whole") == ["create"]
    info = json.loads(palletd.cli_ok("network", "inspect", "whole"))[0]
    bridge = f"pl-{info['Id'][:12]}"
    assert bridge in palletd.links()
    # The rules the crash cut short are rebuilt at boot: the bridge is masqueraded.
    assert bridge in ruleset(palletd)
    port = free_port()
    palletd.cli_ok("run", "-d", "--name", "web", "--network", "whole", "-p",
                   f"127.0.0.1:{port}:80", "busybox:latest", *httpd("hello from web"))
    palletd.cli_ok("run", "-d", "--name", "peer", "--network", "whole", "busybox:latest",
                   "sleep", "300")
    assert fetch_from(palletd, "peer", "http://web/") == "hello from web\n"
    assert fetch_from_host(palletd, f"http://127.0.0.1:{port}/") == "hello from web\n"


@pytest.mark.parametrize("point", ["network-rm:recorded", "network-rm:unbridged"])
def test_network_remove_killed_between_steps_finishes_the_remove(
    fresh_palletd: Any, point: str
) -> None:
    palletd = fresh_palletd
    before = kernel_and_store(palletd)
    palletd.cli_ok("network", "create", "--subnet", "10.62.0.0/24", "goner")
    info = json.loads(palletd.cli_ok("network", "inspect", "goner"))[0]
    bridge = f"pl-{info['Id'][:12]}"
    crash(palletd, point, "network", "rm", "goner")
    # The record was deleted (with its event): the network is gone, and so is its bridge.
    assert "goner" not in network_names(palletd)
    assert network_events(palletd, "goner") == ["create", "destroy"]
    wait_kernel_and_store(palletd, before, "after the restart")
    assert bridge not in palletd.links()
    assert bridge not in ruleset(palletd)
    # The name and the subnet can be used again.
    palletd.cli_ok("network", "create", "--subnet", "10.62.0.0/24", "goner")
    palletd.cli_ok("run", "-d", "--name", "back", "--network", "goner", "busybox:latest",
                   "sleep", "300")
    assert networks_of(palletd, "back")["goner"]["IPAddress"] == "10.62.0.2"


@pytest.mark.parametrize("point", ["network-create:bridge", "network-rm:recorded"])
def test_a_bridge_named_by_the_user_is_not_left_behind(fresh_palletd: Any, point: str) -> None:
    """A bridge of pallet's own name (pl-<id>) is known to be pallet's at boot; one named
    with -o com.docker.network.bridge.name must not leak either, nor block the retry."""
    palletd = fresh_palletd
    before = kernel_and_store(palletd)
    create = ("network", "create", "-o", "com.docker.network.bridge.name=plmine0", "mine")
    if point.startswith("network-create"):
        seen = crash(palletd, point, *create)
        assert "plmine0" in seen.links
        assert "mine" not in network_names(palletd)
    else:
        palletd.cli_ok(*create)
        crash(palletd, point, "network", "rm", "mine")
        assert "mine" not in network_names(palletd)
    wait_kernel_and_store(palletd, before, "after the restart")
    assert "plmine0" not in palletd.links()
    palletd.cli_ok(*create)
    palletd.cli_ok("run", "-d", "--name", "on-mine", "--network", "mine", "busybox:latest",
                   "sleep", "300")
    assert "plmine0" in palletd.links()


# ---- a container's attachment at start ------------------------------------------------------


def test_start_killed_while_attaching_leaves_it_created_and_nothing_behind(
    fresh_palletd: Any,
) -> None:
    palletd = fresh_palletd
    palletd.cli_ok("network", "create", "--subnet", "10.63.0.0/24", "app")
    port = free_port()
    palletd.cli_ok("create", "--name", "web", "--network", "app", "--ip", "10.63.0.9",
                   "--network-alias", "site", "-p", f"127.0.0.1:{port}:80/tcp",
                   "busybox:latest", *httpd("hello from web"))
    cid = palletd.inspect("web")["Id"]
    before = kernel_and_store(palletd)
    for point in ("attach:leased", "attach:wired", "attach:synced"):
        status = palletd.inspect("web")["State"]["Status"]  # created, then exited
        seen = crash(palletd, point, "start", "web")
        # The point is where it says: the lease was in the store when palletd died.
        assert [(r[1], r[2]) for r in seen.leases] == [("10.63.0.9", cid)], point
        wired = seen.leases[0][3] in seen.links
        assert wired is (point != "attach:leased"), (point, seen.links)
        # Old state: the start never happened, and the half-made attachment is gone.
        state = palletd.inspect("web")["State"]
        assert state["Status"] == status and state["Pid"] == 0, (point, state)
        assert networks_of(palletd, "web")["app"]["IPAddress"] == "", point
        wait_kernel_and_store(palletd, before, f"after the restart ({point})")
        names, addrs = dns_records(palletd)
        assert not {"web", "site", cid[:12]} & names and "10.63.0.9" not in addrs, point
        # The retried start gets the same address, the port and the names.
        palletd.cli_ok("start", "web")
        assert networks_of(palletd, "web")["app"]["IPAddress"] == "10.63.0.9"
        assert fetch_from_host(palletd, f"http://127.0.0.1:{port}/") == "hello from web\n"
        names, addrs = dns_records(palletd)
        assert {"web", "site"} <= names and "10.63.0.9" in addrs
        palletd.cli_ok("stop", "-t", "0", "web")
        wait_kernel_and_store(palletd, before, f"after the stop ({point})")


# ---- live connect and disconnect ------------------------------------------------------------


def test_connect_killed_between_steps_leaves_the_container_as_it_was(
    fresh_palletd: Any,
) -> None:
    palletd = fresh_palletd
    palletd.cli_ok("network", "create", "--subnet", "10.64.0.0/24", "side")
    palletd.cli_ok("run", "-d", "--name", "mover", "busybox:latest", "sleep", "1000")
    pid = palletd.inspect("mover")["State"]["Pid"]
    before = kernel_and_store(palletd)
    for point in ("connect:leased", "connect:wired", "connect:synced"):
        events = network_events(palletd, "side")
        seen = crash(palletd, point, "network", "connect", "--alias", "moved", "--ip",
                     "10.64.0.7", "side", "mover")
        assert "10.64.0.7" in [r[1] for r in seen.leases], point
        # Old state: the container runs on, on the default network only, as recorded.
        state = palletd.inspect("mover")["State"]
        assert state["Running"] is True and state["Pid"] == pid, point
        assert sorted(networks_of(palletd, "mover")) == ["bridge"], point
        assert interfaces(palletd, "mover") == ["eth0", "lo"], point
        # The endpoint's attachment was journalled with its lease (connect:leased on):
        # then its release, at the restart. Never a connect left without its end.
        after = network_events(palletd, "side")[len(events):]
        assert after in ([], ["connect", "disconnect"]), (point, after)
        wait_kernel_and_store(palletd, before, f"after the restart ({point})")
        names, addrs = dns_records(palletd)
        assert "moved" not in names and "10.64.0.7" not in addrs, point
        # The retried connect gets the same address and works.
        palletd.cli_ok("network", "connect", "--alias", "moved", "--ip", "10.64.0.7", "side",
                       "mover")
        assert networks_of(palletd, "mover")["side"]["IPAddress"] == "10.64.0.7"
        assert interfaces(palletd, "mover") == ["eth0", "eth1", "lo"]
        palletd.cli_ok("network", "disconnect", "side", "mover")
        wait_kernel_and_store(palletd, before, f"after the disconnect ({point})")


def test_disconnect_killed_between_steps_leaves_the_container_as_it_was(
    fresh_palletd: Any,
) -> None:
    palletd = fresh_palletd
    palletd.cli_ok("network", "create", "--subnet", "10.65.0.0/24", "side")
    palletd.cli_ok("run", "-d", "--name", "web", "--network", "side", "busybox:latest",
                   *httpd("hello from web"))
    palletd.cli_ok("run", "-d", "--name", "mover", "busybox:latest", "sleep", "1000")
    palletd.cli_ok("network", "connect", "--alias", "moved", "side", "mover")
    pid = palletd.inspect("mover")["State"]["Pid"]
    for point in ("disconnect:detached", "disconnect:synced"):
        assert fetch_from(palletd, "mover", "http://web/") == "hello from web\n"
        crash(palletd, point, "network", "disconnect", "side", "mover")
        # Old state, as recorded: still connected, and its interface and name work again.
        state = palletd.inspect("mover")["State"]
        assert state["Running"] is True and state["Pid"] == pid, point
        side = networks_of(palletd, "mover").get("side")
        assert side is not None and side["IPAddress"].startswith("10.65.0."), (point, side)
        assert interfaces(palletd, "mover") == ["eth0", "eth1", "lo"], point
        assert (side["IPAddress"], palletd.inspect("mover")["Id"]) in [
            (r[1], r[2]) for r in lease_rows(palletd)
        ], point
        names, addrs = dns_records(palletd)
        assert "moved" in names and side["IPAddress"] in addrs, point
        assert fetch_from(palletd, "mover", "http://web/") == "hello from web\n"
        assert side["IPAddress"] in palletd.cli_ok("exec", "web", "nslookup", "moved"), point
        # The retried disconnect works (and the next round connects again).
        palletd.cli_ok("network", "disconnect", "side", "mover")
        assert interfaces(palletd, "mover") == ["eth0", "lo"]
        assert "side" not in networks_of(palletd, "mover")
        assert [r for r in lease_rows(palletd) if r[1] == side["IPAddress"]] == []
        palletd.cli_ok("network", "connect", "--alias", "moved", "side", "mover")


# ---- a plain kill -9 of palletd -----------------------------------------------------------


def test_after_a_kill_9_the_running_are_kept_and_the_exited_cleaned_up(
    fresh_palletd: Any,
) -> None:
    palletd = fresh_palletd
    palletd.cli_ok("network", "create", "keep")
    kept_port, gone_port = free_port(), free_port()
    palletd.cli_ok("run", "-d", "--name", "kept", "--network", "keep", "-p",
                   f"127.0.0.1:{kept_port}:80", "busybox:latest", *httpd("hello from kept"))
    palletd.cli_ok("run", "-d", "--name", "goner", "--network", "keep", "--network-alias",
                   "doomed", "-p", f"127.0.0.1:{gone_port}:80", "busybox:latest",
                   *httpd("hello from goner"))
    palletd.cli_ok("run", "-d", "--name", "asker", "--network", "keep", "busybox:latest",
                   "sleep", "1000")
    assert fetch_from_host(palletd, f"http://127.0.0.1:{gone_port}/") == "hello from goner\n"
    kept_id, goner_id = palletd.inspect("kept")["Id"], palletd.inspect("goner")["Id"]
    goner_pid = palletd.inspect("goner")["State"]["Pid"]
    goner_ip = networks_of(palletd, "goner")["keep"]["IPAddress"]
    leases = lease_rows(palletd)
    goner_veth = next(r[3] for r in leases if r[2] == goner_id)
    kept_rules = [r for r in palletd.nat_rules() if f"dport {kept_port} " in r]
    assert len(kept_rules) == 1, palletd.nat_rules()

    palletd.proc.kill()
    palletd.proc.wait(10)
    # goner exits while palletd is down.
    os.kill(goner_pid, signal.SIGKILL)
    palletd.wait_for(lambda: not os.path.exists(f"/proc/{goner_pid}"), 20, what="goner gone")
    palletd._close_channel()
    palletd.start()

    # What runs is kept as it was: lease, veth, rule, traffic, names.
    palletd.wait_for(lambda: palletd.inspect("goner")["State"]["Status"] == "exited", 20,
                     what="goner recorded exited")
    kept_leases = [r for r in leases if r[2] != goner_id]
    assert any(r[2] == kept_id for r in kept_leases)
    assert lease_rows(palletd) == kept_leases
    assert all(r[3] in palletd.links() for r in kept_leases)
    assert [r for r in palletd.nat_rules() if f"dport {kept_port} " in r] == kept_rules
    assert fetch_from_host(palletd, f"http://127.0.0.1:{kept_port}/") == "hello from kept\n"
    assert fetch_from(palletd, "asker", "http://kept/") == "hello from kept\n"
    # What exited is gone: veth, lease, rule, names, namespace.
    palletd.wait_for(lambda: goner_veth not in palletd.links(), 15, what="goner's veth gone")
    assert [r for r in palletd.nat_rules() if f"dport {gone_port} " in r] == []
    names, addrs = dns_records(palletd)
    assert not {"goner", "doomed", goner_id[:12]} & names and goner_ip not in addrs
    assert goner_id not in netns_files(palletd)
    assert palletd.cli("exec", "asker", "nslookup", "doomed").returncode != 0
    # Its port can be published again, and goner itself starts again.
    palletd.cli_ok("run", "-d", "--name", "heir", "-p", f"127.0.0.1:{gone_port}:80",
                   "busybox:latest", *httpd("hello from heir"))
    assert fetch_from_host(palletd, f"http://127.0.0.1:{gone_port}/") == "hello from heir\n"
    palletd.cli_ok("rm", "-f", "heir")
    palletd.cli_ok("start", "goner")
    assert fetch_from_host(palletd, f"http://127.0.0.1:{gone_port}/") == "hello from goner\n"
    assert fetch_from(palletd, "asker", "http://doomed/") == "hello from goner\n"
