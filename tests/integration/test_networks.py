"""Networks end to end, as a user meets them: real bridges, veths, nftables and DNS.

Every daemon here runs in a throwaway network namespace of its own (the harness's
`Palletd.netns`): what it calls "the host" is that namespace, so the real host's links,
rules and ip_forward are never touched, and its teardown fails a test that leaks a veth,
lease, rule or namespace.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from typing import Any

import pytest

pytestmark = pytest.mark.integration

# (busybox 1.35's wget crashes with -T: `timeout` bounds it instead.)
# busybox httpd serving "hello from NAME" on port 80.
def _httpd(text: str) -> list[str]:
    return ["sh", "-c", f"mkdir -p /www && echo '{text}' > /www/index.html && exec httpd -f -p 80 -h /www"]


def _serve(palletd: Any, name: str, *flags: str, text: str = "") -> str:
    cid = palletd.cli_ok("run", "-d", "--name", name, *flags, "busybox:latest",
                         *_httpd(text or f"hello from {name}")).strip()
    return cid


def _in(palletd: Any, container: str, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return palletd.cli("exec", container, *cmd, timeout=timeout)


def _fetch_from(palletd: Any, container: str, url: str, tries: int = 40) -> str:
    """wget from inside a container, retried while the server comes up."""
    last = None
    for _ in range(tries):
        last = _in(palletd, container, "timeout", "5", "wget", "-q", "-O", "-", url)
        if last.returncode == 0:
            return str(last.stdout)
        time.sleep(0.25)
    raise AssertionError(f"wget {url} from {container} failed: {last.stdout}{last.stderr}" if last else url)


def _fetch_from_host(palletd: Any, url: str, tries: int = 40) -> str:
    last = None
    for _ in range(tries):
        last = palletd.host_run("busybox", "timeout", "5", "busybox", "wget", "-q", "-O", "-", url, check=False)
        if last.returncode == 0:
            return str(last.stdout)
        time.sleep(0.25)
    raise AssertionError(f"wget {url} from the host failed: {last.stdout}{last.stderr}" if last else url)


def _sleeper(palletd: Any, name: str, *flags: str) -> str:
    return palletd.cli_ok("run", "-d", "--name", name, *flags, "busybox:latest",
                          "sleep", "1000").strip()


def _ip(palletd: Any, container: str, network: str) -> str:
    nets = palletd.inspect(container)["NetworkSettings"]["Networks"]
    return str(nets[network]["IPAddress"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fails(palletd: Any, *args: str) -> str:
    result = palletd.cli(*args)
    assert result.returncode != 0, f"`pallet {' '.join(args)}` succeeded: {result.stdout}"
    return str(result.stderr)


def _state(palletd: Any) -> tuple[Any, ...]:
    """What a failed call must not change: links, netns files, leases, rules, networks."""
    netns_dir = palletd.run_root / "netns"
    files = sorted(p.name for p in netns_dir.iterdir()) if netns_dir.is_dir() else []
    rules = palletd.host_run("nft", "list", "ruleset").stdout
    return (sorted(palletd.links()), files, sorted(palletd.leases()), rules,
            palletd.cli_ok("network", "ls", "-q"))


# ---- the default network --------------------------------------------------------------


def test_the_default_bridge_exists_and_cannot_be_removed(palletd: Any) -> None:
    names = palletd.cli_ok("network", "ls", "--format", "{{.Name}}").split()
    assert {"bridge", "host", "none"} <= set(names)
    err = _fails(palletd, "network", "rm", "bridge")
    assert "pre-defined" in err
    assert "pallet0" in palletd.links()


def test_containers_on_the_default_network_reach_each_other_by_name(palletd: Any) -> None:
    _serve(palletd, "web")
    _sleeper(palletd, "client")
    out = _fetch_from(palletd, "client", "http://web/")
    assert out == "hello from web\n"
    info = palletd.inspect("client")
    net = info["NetworkSettings"]["Networks"]["bridge"]
    assert net["IPAddress"].startswith("172.17.")
    assert net["Gateway"] == "172.17.0.1"
    assert net["MacAddress"].startswith("02:42:")
    resolv = _in(palletd, "client", "cat", "/etc/resolv.conf").stdout
    assert "nameserver 172.17.0.1" in resolv


# ---- user networks --------------------------------------------------------------------


def test_user_network_by_name_and_alias_and_not_across_networks(palletd: Any) -> None:
    palletd.cli_ok("network", "create", "front")
    palletd.cli_ok("network", "create", "back")
    _serve(palletd, "api", "--network", "front", "--network-alias", "service")
    _sleeper(palletd, "peer", "--network", "front")
    _sleeper(palletd, "stranger", "--network", "back")
    assert _fetch_from(palletd, "peer", "http://api/") == "hello from api\n"
    assert _fetch_from(palletd, "peer", "http://service/") == "hello from api\n"
    short = palletd.inspect("api")["Id"][:12]
    assert _fetch_from(palletd, "peer", f"http://{short}/") == "hello from api\n"
    # Another network: its name does not resolve, and its address is not reachable.
    assert _in(palletd, "stranger", "nslookup", "api").returncode != 0
    addr = _ip(palletd, "api", "front")
    blocked = _in(palletd, "stranger", "timeout", "3", "wget", "-q", "-O", "-", f"http://{addr}/")
    assert blocked.returncode != 0
    # Subnets differ and come from the pool.
    front = json.loads(palletd.cli_ok("network", "inspect", "front"))[0]
    back = json.loads(palletd.cli_ok("network", "inspect", "back"))[0]
    assert front["IPAM"]["Config"][0]["Subnet"] != back["IPAM"]["Config"][0]["Subnet"]
    assert set(front["Containers"]) == {palletd.inspect("api")["Id"], palletd.inspect("peer")["Id"]}


def test_internal_network_has_no_route_out(palletd: Any) -> None:
    palletd.cli_ok("network", "create", "--internal", "vault")
    _sleeper(palletd, "inside", "--network", "vault")
    routes = _in(palletd, "inside", "ip", "route").stdout
    assert "default" not in routes
    rules = palletd.host_run("nft", "list", "table", "ip", "pallet").stdout
    assert "masquerade" in rules


def test_static_ip_subnet_gateway_and_range(palletd: Any) -> None:
    palletd.cli_ok("network", "create", "--subnet", "10.77.0.0/24", "--gateway", "10.77.0.254",
                   "--ip-range", "10.77.0.128/25", "fixed")
    _sleeper(palletd, "pinned", "--network", "fixed", "--ip", "10.77.0.10")
    _sleeper(palletd, "ranged", "--network", "fixed")
    assert _ip(palletd, "pinned", "fixed") == "10.77.0.10"
    assert _ip(palletd, "ranged", "fixed").startswith("10.77.0.1")
    assert int(_ip(palletd, "ranged", "fixed").rsplit(".", 1)[1]) >= 128
    routes = _in(palletd, "pinned", "ip", "route").stdout
    assert "default via 10.77.0.254" in routes
    # The address is taken: a second container asking for it fails and leaves nothing.
    before = _state(palletd)
    err = _fails(palletd, "run", "-d", "--name", "clash", "--network", "fixed", "--ip",
                 "10.77.0.10", "busybox:latest", "sleep", "100")
    assert "10.77.0.10" in err and "in use" in err
    palletd.cli("rm", "-f", "clash")
    assert _state(palletd) == before


def test_mac_address_and_dns_options(palletd: Any) -> None:
    palletd.cli_ok("network", "create", "opts")
    _sleeper(palletd, "custom", "--network", "opts", "--mac-address", "02:42:de:ad:be:ef",
             "--dns-search", "example.test", "--dns-option", "ndots:2",
             "--add-host", "db.local:10.1.2.3", "--add-host", "gw:host-gateway")
    link = _in(palletd, "custom", "ip", "link", "show", "eth0").stdout
    assert "02:42:de:ad:be:ef" in link
    resolv = _in(palletd, "custom", "cat", "/etc/resolv.conf").stdout
    assert "search example.test" in resolv and "options ndots:2" in resolv
    hosts = _in(palletd, "custom", "cat", "/etc/hosts").stdout
    assert "10.1.2.3\tdb.local" in hosts
    assert "172.17.0.1\tgw" in hosts


# ---- published ports ------------------------------------------------------------------


def test_published_port_on_loopback_and_on_another_host_address(palletd: Any) -> None:
    # A second address of the "host": a dummy interface in the daemon's namespace.
    palletd.host_run("ip", "link", "add", "pltdummy0", "type", "veth", "peer", "name", "pltdummy1")
    try:
        palletd.host_run("ip", "addr", "add", "10.250.0.1/24", "dev", "pltdummy0")
        palletd.host_run("ip", "link", "set", "pltdummy0", "up")
        port = _free_port()
        _serve(palletd, "site", "-p", f"127.0.0.1:{port}:80", "-p", f"{port + 1}:80")
        assert _fetch_from_host(palletd, f"http://127.0.0.1:{port}/") == "hello from site\n"
        assert _fetch_from_host(palletd, f"http://10.250.0.1:{port + 1}/") == "hello from site\n"
        # Bound to 127.0.0.1 only: not on the other address.
        other = palletd.host_run("busybox", "timeout", "3", "busybox", "wget", "-q", "-O", "-",
                                 f"http://10.250.0.1:{port}/", check=False)
        assert other.returncode != 0
        ports = palletd.cli_ok("port", "site")
        assert f"80/tcp -> 127.0.0.1:{port}" in ports
        assert f"80/tcp -> 0.0.0.0:{port + 1}" in ports
        ps = palletd.cli_ok("ps", "--format", "{{.Ports}}")
        assert f"127.0.0.1:{port}->80/tcp" in ps
        # Hairpin: a container reaches the host's published port.
        _sleeper(palletd, "hairpin")
        assert _fetch_from(palletd, "hairpin", f"http://10.250.0.1:{port + 1}/") == "hello from site\n"
        assert _fetch_from(palletd, "site", f"http://10.250.0.1:{port + 1}/") == "hello from site\n"
    finally:
        palletd.host_run("ip", "link", "del", "pltdummy0", check=False)


def test_udp_port_and_random_host_ports(palletd: Any) -> None:
    # busybox's nc has no UDP mode: the UDP port's rule and reservation are checked here,
    # its traffic by the firewall's own tests.
    _sleeper(palletd, "echo", "-p", "127.0.0.1::9999/udp", "-p", "80")
    line = palletd.cli_ok("port", "echo", "9999/udp").strip()
    host, _, port = line.rpartition(":")
    assert host == "127.0.0.1" and int(port) > 0
    random_tcp = palletd.cli_ok("port", "echo", "80").strip()
    assert random_tcp.startswith("0.0.0.0:") and int(random_tcp.rsplit(":", 1)[1]) > 0
    addr = _ip(palletd, "echo", "bridge")
    rules = " ".join(palletd.nat_rules())
    assert f"udp dport {port} dnat to {addr}:9999" in rules, rules
    err = _fails(palletd, "port", "echo", "81")
    assert "81/tcp" in err


def test_publish_all_uses_exposed_ports(palletd: Any) -> None:
    _serve(palletd, "exposed", "--expose", "80", "-P")
    line = palletd.cli_ok("port", "exposed", "80/tcp").strip()
    port = int(line.rsplit(":", 1)[1])
    assert _fetch_from_host(palletd, f"http://127.0.0.1:{port}/") == "hello from exposed\n"


def test_a_taken_host_port_is_a_clear_error_and_leaves_nothing(palletd: Any) -> None:
    port = _free_port()
    _serve(palletd, "first", "-p", f"127.0.0.1:{port}:80")
    before = _state(palletd)
    err = _fails(palletd, "run", "-d", "--name", "second", "-p", f"127.0.0.1:{port}:80",
                 "busybox:latest", "sleep", "100")
    assert str(port) in err
    assert palletd.inspect("second")["State"]["Status"] == "created"
    assert _state(palletd) == before
    palletd.cli_ok("rm", "-f", "second")


# ---- connect, disconnect; host, none, container: ----------------------------------------


def test_connect_and_disconnect_a_running_container(palletd: Any) -> None:
    palletd.cli_ok("network", "create", "extra")
    _serve(palletd, "target", "--network", "extra")
    _sleeper(palletd, "mover")
    assert _in(palletd, "mover", "nslookup", "target").returncode != 0
    palletd.cli_ok("network", "connect", "--alias", "moved", "extra", "mover")
    links = _in(palletd, "mover", "ip", "-o", "link").stdout
    assert "eth1" in links
    assert _fetch_from(palletd, "mover", "http://target/") == "hello from target\n"
    assert "extra" in palletd.inspect("mover")["NetworkSettings"]["Networks"]
    palletd.cli_ok("network", "disconnect", "extra", "mover")
    assert "eth1" not in _in(palletd, "mover", "ip", "-o", "link").stdout
    assert "extra" not in palletd.inspect("mover")["NetworkSettings"]["Networks"]
    events = palletd.cli_ok("events", "--since", "0", "--until", str(int(time.time()) + 1),
                            "--filter", "type=network", "--format", "{{.Action}}")
    assert "connect" in events.split() and "disconnect" in events.split()


def test_host_none_and_container_modes(palletd: Any) -> None:
    host = palletd.cli_ok("run", "--rm", "--network", "host", "busybox:latest", "ip", "-o", "link")
    assert "pallet0" in host  # the daemon's "host" namespace, bridge and all
    none = palletd.cli_ok("run", "--rm", "--network", "none", "busybox:latest", "ip", "-o", "link")
    assert "lo" in none and "eth0" not in none
    _serve(palletd, "owner")
    joined = _fetch_from_joined(palletd)
    assert joined == "hello from owner\n"
    palletd.cli_ok("stop", "-t", "0", "owner")
    err = _fails(palletd, "run", "--rm", "--network", "container:owner", "busybox:latest", "true")
    assert "not running" in err
    result = palletd.cli("run", "--rm", "--network", "host", "-p", "8080:80", "busybox:latest", "true")
    assert result.returncode == 0
    assert result.stderr == "WARNING: Published ports are discarded when using host network mode\n"


def _fetch_from_joined(palletd: Any) -> str:
    last = None
    for _ in range(40):
        last = palletd.cli("run", "--rm", "--network", "container:owner", "busybox:latest",
                           "timeout", "3", "wget", "-q", "-O", "-", "http://127.0.0.1/")
        if last.returncode == 0:
            return str(last.stdout)
        time.sleep(0.25)
    raise AssertionError(f"{last}")


# ---- crashes --------------------------------------------------------------------------


def test_traffic_names_and_ports_survive_a_kill_9_of_palletd(palletd: Any) -> None:
    palletd.cli_ok("network", "create", "keep")
    port = _free_port()
    _serve(palletd, "kept", "--network", "keep", "-p", f"127.0.0.1:{port}:80")
    _sleeper(palletd, "asker", "--network", "keep")
    _sleeper(palletd, "goner", "--network", "keep")
    assert _fetch_from(palletd, "asker", "http://kept/") == "hello from kept\n"
    goner_id = palletd.inspect("goner")["Id"]
    goner_pid = palletd.inspect("goner")["State"]["Pid"]
    asker_pid = palletd.inspect("asker")["State"]["Pid"]
    gateway = palletd.inspect("asker")["NetworkSettings"]["Networks"]["keep"]["Gateway"]
    kept_ip = _ip(palletd, "kept", "keep")
    palletd.proc.kill()
    palletd.proc.wait(10)
    # palletd is gone: names, container-to-container traffic and published ports answer.
    assert _fetch_from_host(palletd, f"http://127.0.0.1:{port}/") == "hello from kept\n"
    in_asker = ["nsenter", f"--net=/proc/{asker_pid}/ns/net", "busybox"]
    looked_up = subprocess.run([*in_asker, "nslookup", "kept", gateway],
                               capture_output=True, text=True, timeout=30)
    assert kept_ip in looked_up.stdout, looked_up.stdout + looked_up.stderr
    fetched = subprocess.run([*in_asker, "timeout", "5", "wget", "-q", "-O", "-", f"http://{kept_ip}/"],
                             capture_output=True, text=True, timeout=30)
    assert fetched.stdout == "hello from kept\n", fetched.stderr
    # A container dies while palletd is down: the restart cleans up after it.
    assert goner_pid > 0
    os.kill(goner_pid, signal.SIGKILL)
    palletd.start()
    assert _fetch_from(palletd, "asker", "http://kept/") == "hello from kept\n"
    assert _fetch_from_host(palletd, f"http://127.0.0.1:{port}/") == "hello from kept\n"
    palletd.wait_for(lambda: palletd.inspect("goner")["State"]["Status"] == "exited", 20,
                     what="goner recorded exited")
    assert all(cid != goner_id for _, _, cid in palletd.leases())
    assert not (palletd.run_root / "netns" / goner_id).exists()


# ---- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, words",
    [
        (["--subnet", "10.300.0.0/16"], "CIDR"),
        (["--subnet", "10.80.0.0/16", "--gateway", "10.81.0.1"], "not a usable address"),
        (["--subnet", "10.80.0.0/16", "--ip-range", "10.90.0.0/24"], "not inside"),
        (["--subnet", "172.17.5.0/24"], "overlaps"),
        (["--driver", "overlay"], "unknown network driver"),
        (["-o", "com.docker.network.bridge.name=has spaces"], "bridge name 'has spaces' is not valid"),
    ],
)
def test_bad_network_create_changes_nothing(palletd: Any, args: list[str], words: str) -> None:
    before = _state(palletd)
    err = _fails(palletd, "network", "create", *args, "badnet")
    assert words in err
    assert _state(palletd) == before


def test_duplicate_unknown_and_busy_networks(palletd: Any) -> None:
    palletd.cli_ok("network", "create", "dup")
    before = _state(palletd)
    assert "already exists" in _fails(palletd, "network", "create", "dup")
    assert "not found" in _fails(palletd, "network", "rm", "nosuchnet")
    assert "not found" in _fails(palletd, "run", "--rm", "--network", "nosuchnet",
                                 "busybox:latest", "true")
    assert _state(palletd) == before
    _sleeper(palletd, "holder", "--network", "dup")
    err = _fails(palletd, "network", "rm", "dup")
    assert "holder" in err
    bad_port = _fails(palletd, "run", "--rm", "-p", "70000:80", "busybox:latest", "true")
    assert "70000" in bad_port
    bad_ip = _fails(palletd, "run", "--rm", "--network", "dup", "--ip", "192.168.99.5",
                    "busybox:latest", "true")
    assert "not in the subnet" in bad_ip


def test_a_host_route_overlap_is_refused(palletd: Any) -> None:
    palletd.host_run("ip", "link", "add", "pltroute0", "type", "veth", "peer", "name", "pltroute1")
    try:
        palletd.host_run("ip", "link", "set", "pltroute0", "up")
        palletd.host_run("ip", "route", "add", "10.123.0.0/16", "dev", "pltroute0")
        err = _fails(palletd, "network", "create", "--subnet", "10.123.4.0/24", "routed")
        assert "route" in err
    finally:
        palletd.host_run("ip", "link", "del", "pltroute0", check=False)


def test_prune_removes_unused_user_networks(palletd: Any) -> None:
    palletd.cli_ok("network", "create", "unused")
    palletd.cli_ok("network", "create", "used")
    _sleeper(palletd, "user", "--network", "used")
    out = palletd.cli_ok("network", "prune", "-f")
    assert "unused" in out and "used\n" not in out.replace("unused", "")
    names = palletd.cli_ok("network", "ls", "--format", "{{.Name}}").split()
    assert "unused" not in names and "used" in names
