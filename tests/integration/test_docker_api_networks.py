"""Docker's network endpoints on `<run-root>/docker.sock`: `docker network create, ls,
inspect, rm, connect, disconnect, prune` and docker-py's `client.networks`, against real
bridges; and the refusals (unknown networks, overlapping subnets, IPv6, bad bodies) with
dockerd's statuses and nothing half-made."""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

import pytest

from docker_http import request

pytestmark = pytest.mark.integration


def _filters(**filters: list[str]) -> str:
    return "filters=" + urllib.parse.quote(json.dumps(filters))


def _custom(palletd: Any) -> list[str]:
    """The names of the user networks, sorted (pallet's own view)."""
    out = palletd.cli_ok("network", "ls", "--filter", "type=custom", "--format", "{{.Name}}")
    return sorted(out.split())


def _links(palletd: Any) -> str:
    return str(palletd.host_run("ip", "-o", "link", "show").stdout)


def _sleeper(palletd: Any, name: str, *flags: str) -> str:
    return str(palletd.cli_ok("run", "-d", "--name", name, *flags, "busybox:latest",
                              "sleep", "300").strip())


def _ip_addrs(palletd: Any, container: str) -> str:
    return str(palletd.cli_ok("exec", container, "ip", "-o", "-4", "addr", "show"))


def test_create_inspect_ls_and_rm_through_the_docker_cli(palletd: Any) -> None:
    nid = palletd.docker_ok(
        "network", "create", "--subnet", "10.231.0.0/24", "--gateway", "10.231.0.254",
        "--ip-range", "10.231.0.128/25", "--internal", "--label", "tier=back",
        "-o", "com.docker.network.bridge.name=br-dnet0", "backnet",
    ).strip()
    assert len(nid) == 64
    # A real bridge, named as asked, carrying the gateway address.
    assert "br-dnet0" in _links(palletd)
    addr = palletd.host_run("ip", "-o", "-4", "addr", "show", "dev", "br-dnet0").stdout
    assert "10.231.0.254/24" in addr

    doc = json.loads(palletd.docker_ok("network", "inspect", "backnet"))[0]
    assert doc["Id"] == nid and doc["Name"] == "backnet"
    assert (doc["Driver"], doc["Scope"], doc["Internal"], doc["EnableIPv6"]) == (
        "bridge", "local", True, False)
    assert doc["IPAM"]["Config"] == [
        {"Subnet": "10.231.0.0/24", "IPRange": "10.231.0.128/25", "Gateway": "10.231.0.254"}]
    assert doc["Labels"] == {"tier": "back"}
    assert doc["Options"] == {"com.docker.network.bridge.name": "br-dnet0"}
    assert doc["Containers"] == {} and doc["ConfigFrom"] == {"Network": ""}
    assert doc["Created"].startswith(time.strftime("%Y-"))
    # The CLI's own template fields work on the gateway's JSON.
    assert palletd.docker_ok("network", "inspect", "-f", "{{.IPAM.Driver}} {{.Internal}}",
                             nid[:12]).strip() == "default true"

    table = palletd.docker_ok("network", "ls")
    assert table.splitlines()[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    names = palletd.docker_ok("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Internal}}")
    assert set(names.splitlines()) >= {"backnet bridge true", "bridge bridge false",
                                       "host host false", "none null false"} or \
        "backnet bridge true" in names.splitlines()
    # Filters go through to pallet's: label, driver, name, type, scope, dangling.
    ls = lambda *f: palletd.docker_ok("network", "ls", "-q", "--no-trunc", *f).split()  # noqa: E731
    assert ls("--filter", "label=tier=back") == [nid]
    assert ls("--filter", "label=tier=front") == []
    assert nid in ls("--filter", "name=backn")
    assert ls("--filter", "type=custom") == [nid]
    assert nid not in ls("--filter", "type=builtin") and len(ls("--filter", "type=builtin")) >= 1
    assert nid in ls("--filter", "scope=local") and ls("--filter", "scope=swarm") == []
    assert nid in ls("--filter", "dangling=true")
    assert ls("--filter", "id=" + nid[:10]) == [nid]

    assert palletd.docker_ok("network", "rm", "backnet").strip() == "backnet"
    assert "br-dnet0" not in _links(palletd)
    gone = palletd.docker("network", "inspect", "backnet")
    assert gone.returncode == 1
    assert "Error response from daemon: network backnet not found" in gone.stderr
    assert _custom(palletd) == []


def test_connect_and_disconnect_a_running_container(palletd: Any) -> None:
    palletd.docker_ok("network", "create", "--subnet", "10.232.0.0/24", "side")
    _sleeper(palletd, "web")
    palletd.docker_ok("network", "connect", "--ip", "10.232.0.77", "--alias", "www", "side", "web")
    # Live: a second interface with the address asked for.
    assert "10.232.0.77/24" in _ip_addrs(palletd, "web")
    doc = json.loads(palletd.docker_ok("network", "inspect", "side"))[0]
    [(cid, ep)] = doc["Containers"].items()
    assert cid == palletd.cli_ok("inspect", "-f", "{{.Id}}", "web").strip()
    assert ep["Name"] == "web" and ep["IPv4Address"] == "10.232.0.77/24"
    assert ep["MacAddress"].count(":") == 5 and ep["IPv6Address"] == ""
    # The list leaves the endpoints out, as dockerd's does.
    listed = request(palletd.docker_socket, "GET", "/networks?" + _filters(name=["side"])).json()
    assert [n["Name"] for n in listed] == ["side"] and listed[0]["Containers"] == {}
    # The alias resolves on that network, from another container on it.
    _sleeper(palletd, "probe", "--network", "side")
    out = palletd.cli_ok("exec", "probe", "nslookup", "www")
    assert "10.232.0.77" in out

    # In use: dockerd's 403, the network kept.
    busy = palletd.docker("network", "rm", "side")
    assert busy.returncode == 1 and "active endpoints" in busy.stderr
    assert request(palletd.docker_socket, "DELETE", "/networks/side").status == 403

    palletd.docker_ok("network", "disconnect", "side", "web")
    assert "10.232.0.77" not in _ip_addrs(palletd, "web")
    doc = json.loads(palletd.docker_ok("network", "inspect", "side"))[0]
    assert list(doc["Containers"]) != [cid]
    # Disconnecting again: not connected (pallet's words), the container untouched.
    again = palletd.docker("network", "disconnect", "side", "web")
    assert again.returncode == 1 and "web" in again.stderr
    palletd.docker_ok("network", "disconnect", "--force", "side", "probe")


def test_prune_removes_the_unused_networks_matching_its_filters(palletd: Any) -> None:
    palletd.docker_ok("network", "create", "--label", "keep=no", "old1")
    palletd.docker_ok("network", "create", "--label", "keep=yes", "old2")
    palletd.docker_ok("network", "create", "--label", "keep=no", "used")
    _sleeper(palletd, "user", "--network", "used")
    out = palletd.docker_ok("network", "prune", "-f", "--filter", "label=keep=no")
    assert out.splitlines()[0] == "Deleted Networks:"
    assert out.split()[2:] == ["old1"]
    assert _custom(palletd) == ["old2", "used"]
    # until: created before now+1h would be everything; before 1h ago, nothing.
    nothing = request(palletd.docker_socket, "POST", "/networks/prune?" + _filters(until=["1h"]))
    assert (nothing.status, nothing.json()) == (200, {"NetworksDeleted": []})
    everything = request(palletd.docker_socket, "POST", "/v1.47/networks/prune")
    assert everything.json() == {"NetworksDeleted": ["old2"]}
    assert _custom(palletd) == ["used"]


def test_docker_py_networks(palletd: Any) -> None:
    client = palletd.docker_client()
    try:
        import docker

        ipam = docker.types.IPAMConfig(pool_configs=[
            docker.types.IPAMPool(subnet="10.233.0.0/24", gateway="10.233.0.1")])
        net = client.networks.create("pynet", driver="bridge", ipam=ipam,
                                     labels={"made": "by-py"}, check_duplicate=True)
        assert net.name == "pynet" and len(net.id) == 64
        assert net.attrs["IPAM"]["Config"] == [{"Subnet": "10.233.0.0/24", "Gateway": "10.233.0.1"}]
        assert [n.name for n in client.networks.list(names=["pynet"])] == ["pynet"]
        assert [n.id for n in client.networks.list(filters={"label": "made=by-py"})] == [net.id]
        assert client.networks.get(net.id[:12]).name == "pynet"

        _sleeper(palletd, "pyc")
        net.connect("pyc", ipv4_address="10.233.0.9", aliases=["py-alias"])
        net.reload()
        assert [c["Name"] for c in net.attrs["Containers"].values()] == ["pyc"]
        assert "10.233.0.9/24" in _ip_addrs(palletd, "pyc")
        net.disconnect("pyc")
        net.reload()
        assert net.attrs["Containers"] == {}

        with pytest.raises(docker.errors.NotFound) as missing:
            client.networks.get("no-such-net")
        assert missing.value.explanation == "network no-such-net not found"
        with pytest.raises(docker.errors.APIError) as taken:
            client.networks.create("pynet")
        assert taken.value.status_code == 409
        assert "network with name pynet already exists" in str(taken.value.explanation)

        pruned = client.networks.prune(filters={"label": "made=by-py"})
        assert pruned == {"NetworksDeleted": ["pynet"]}
        assert _custom(palletd) == []
    finally:
        client.close()


def test_bad_input_is_refused_as_dockerd_does_and_nothing_is_made(palletd: Any) -> None:
    sock = palletd.docker_socket
    before = len(_links(palletd).splitlines())

    def create(body: Any) -> Any:
        return request(sock, "POST", "/networks/create", body)

    palletd.docker_ok("network", "create", "--subnet", "10.234.0.0/16", "first")
    overlap = create({"Name": "second", "IPAM": {"Config": [{"Subnet": "10.234.5.0/24"}]}})
    assert overlap.status in (400, 409) and "overlap" in overlap.message
    ipv6 = create({"Name": "six", "EnableIPv6": True})
    assert (ipv6.status, ipv6.message) == (400, "EnableIPv6 is not supported: pallet networks are IPv4 only")
    v6pool = create({"Name": "six", "IPAM": {"Config": [{"Subnet": "fd00::/64"}]}})
    assert v6pool.status == 400 and "IPv4 only" in v6pool.message
    two = create({"Name": "two", "IPAM": {"Config": [{"Subnet": "10.235.0.0/24"},
                                                   {"Subnet": "10.236.0.0/24"}]}})
    assert two.status == 400 and "one IPv4 subnet" in two.message
    wrong_type = create({"Name": "typed", "Internal": "yes"})
    assert wrong_type.status == 400 and "Internal" in wrong_type.message
    bad_labels = create({"Name": "typed", "Labels": {"a": 1}})
    assert bad_labels.status == 400 and "Labels" in bad_labels.message
    nameless = create({"Driver": "bridge"})
    assert nameless.status == 400 and "Name" in nameless.message
    driver = create({"Name": "ov", "Driver": "overlay"})
    assert driver.status == 400 and "overlay" in driver.message
    bad_subnet = create({"Name": "bad", "IPAM": {"Config": [{"Subnet": "10.0.0.300/24"}]}})
    assert bad_subnet.status == 400
    option = create({"Name": "opt", "Options": {"com.example.unknown": "1"}})
    assert option.status == 400 and "com.example.unknown" in option.message
    swarm = create({"Name": "sw", "Scope": "swarm"})
    assert swarm.status == 400 and "Scope" in swarm.message
    not_json = request(sock, "POST", "/networks/create", b"{nope",
                       headers={"Content-Type": "application/json"})
    assert not_json.status == 400 and "invalid JSON" in not_json.message
    # Unknown fields are ignored (as dockerd), the rest made.
    ok = create({"Name": "fine", "CheckDuplicate": True, "Attachable": True, "NoSuchField": 1})
    assert ok.status == 201 and set(ok.json()) == {"Id", "Warning"}
    dup = create({"Name": "fine"})
    assert (dup.status, dup.message.split(":")[0]) == (409, "network with name fine already exists")
    # Nothing half-made: only first and fine exist, with one bridge each.
    assert sorted(_custom(palletd)) == ["fine", "first"]
    assert len(_links(palletd).splitlines()) == before + 2

    # Unknown networks: dockerd's 404 and wording on every path.
    _sleeper(palletd, "c1")
    for method, path, body in (
        ("GET", "/networks/nonet", None),
        ("DELETE", "/networks/nonet", None),
        ("POST", "/networks/nonet/connect", {"Container": "c1"}),
        ("POST", "/networks/nonet/disconnect", {"Container": "c1"}),
    ):
        reply = request(sock, method, path, body)
        assert (reply.status, reply.message) == (404, "network nonet not found"), path
    assert request(sock, "GET", "/networks/first?scope=swarm").status == 404
    nocont = request(sock, "POST", "/networks/first/connect", {"Container": "ghost"})
    assert (nocont.status, nocont.message) == (404, "No such container: ghost")
    nobody = request(sock, "POST", "/networks/first/connect", {})
    assert nobody.status == 400 and "Container" in nobody.message
    links = request(sock, "POST", "/networks/first/connect",
                    {"Container": "c1", "EndpointConfig": {"Links": ["a:b"]}})
    assert links.status == 400 and "Links" in links.message
    outside = request(sock, "POST", "/networks/first/connect",
                      {"Container": "c1", "EndpointConfig": {"IPAMConfig": {"IPv4Address": "10.9.9.9"}}})
    assert outside.status == 400
    assert json.loads(palletd.docker_ok("network", "inspect", "first"))[0]["Containers"] == {}
    builtin = request(sock, "DELETE", "/networks/bridge")
    assert builtin.status == 403 and "pre-defined" in builtin.message
    filters = request(sock, "GET", "/networks?" + _filters(colour=["red"]))
    assert filters.status == 400 and "colour" in filters.message
