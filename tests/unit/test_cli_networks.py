"""The CLI's networking: `network ...` verbs, `port`, run/create's network flags, ps's PORTS
and inspect's NetworkSettings, against fake servicers on a temporary unix socket (no root,
no palletd). Each test checks what a user sees (stdout, stderr, exit code) and what the
daemon was asked.
"""

from __future__ import annotations

import io
import json
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from pallet.client import ports, views
from pallet.v1.docker import netsettings
from pallet.client.cli import UsageError, main, parse_args
from pallet.client.options import parse_extra_host
from pallet.client.requests import container_config
from pallet.v1 import (
    containers_pb2,
    containers_pb2_grpc,
    events_pb2,
    events_pb2_grpc,
    images_pb2_grpc,
    networks_pb2,
    networks_pb2_grpc,
)
from pallet.v1.errors import InvalidArgument, NotFound

NET_ID = "9" * 12 + "8" * 52
BRIDGE_ID = "1" * 12 + "0" * 52
CTR_ID = "c" * 12 + "d" * 52


def _network(nid: str, name: str, **kw: Any) -> networks_pb2.Network:
    n = networks_pb2.Network(id=nid, name=name, driver="bridge", **kw)
    n.created.seconds, n.created.nanos = 1_795_804_276, 5
    return n


def _binding(port: int, host_port: int, proto: str = "tcp", ip: str = "") -> containers_pb2.PortBinding:
    return containers_pb2.PortBinding(protocol=proto, container_port=port, host_port=host_port, host_ip=ip)


def _web() -> containers_pb2.Container:
    """A running container on two networks with two published ports and one exposed only."""
    c = containers_pb2.Container(
        id=CTR_ID, name="web", image="busybox", path="httpd", args=["-f"],
        config=containers_pb2.ContainerConfig(
            image="busybox", name="web", network_mode="front", network_aliases=["www"],
            ipv4_address="172.18.0.5", mac_address="02:42:ac:12:00:05",
            publish=["127.0.0.1:8080:80", "53:53/udp", "9000-9001:90-91"],
            publish_all=True, expose=["7000"], dns=["9.9.9.9"], dns_search=["example.org"],
            dns_options=["ndots:2"], extra_hosts=["db:10.0.0.2"],
        ),
        state=containers_pb2.ContainerState(status=containers_pb2.CONTAINER_STATUS_RUNNING, pid=7),
    )
    # What palletd parsed of that publish list (it refuses what it cannot parse).
    c.port_bindings.extend([
        _binding(80, 8080, ip="127.0.0.1"), _binding(53, 53, "udp"), _binding(90, 9000), _binding(91, 9001)])
    settings = c.network_settings
    settings.sandbox_key = "/run/pallet/netns/" + CTR_ID
    settings.ports.extend([_binding(80, 8080, ip="127.0.0.1"), _binding(53, 53, "udp")])
    settings.exposed_ports.extend(["80/tcp", "53/udp", "7000/tcp"])
    settings.networks["front"].CopyFrom(containers_pb2.EndpointSettings(
        network_id=NET_ID, ip_address="172.18.0.5", ip_prefix_len=16, gateway="172.18.0.1",
        mac_address="02:42:ac:12:00:05", aliases=["www", CTR_ID[:12]], interface="eth0",
        ipam_ipv4_address="172.18.0.5"))
    settings.networks["back"].CopyFrom(containers_pb2.EndpointSettings(
        network_id="e" * 64, ip_address="172.19.0.2", ip_prefix_len=24, gateway="172.19.0.1",
        mac_address="02:42:ac:13:00:02", interface="eth1"))
    return c


@dataclass
class FakeState:
    networks: list[networks_pb2.Network] = field(default_factory=list)
    containers: list[containers_pb2.Container] = field(default_factory=list)
    events: list[events_pb2.Event] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def network(self, ref: str, context: grpc.ServicerContext) -> networks_pb2.Network:
        for n in self.networks:
            if ref in (n.name, n.id) or (len(ref) >= 3 and n.id.startswith(ref)):
                return n
        context.abort(grpc.StatusCode.NOT_FOUND, f"No such network: {ref}")
        raise AssertionError("unreachable")

    def container(self, ref: str, context: grpc.ServicerContext) -> containers_pb2.Container:
        for c in self.containers:
            if ref in (c.name, c.id):
                return c
        context.abort(grpc.StatusCode.NOT_FOUND, f"No such container: {ref}")
        raise AssertionError("unreachable")


class FakeNetworks(networks_pb2_grpc.NetworksServiceServicer):
    def __init__(self, state: FakeState) -> None:
        self.s = state

    def Create(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.s.requests.append(request)
        if any(n.name == request.name for n in self.s.networks):
            context.abort(grpc.StatusCode.ALREADY_EXISTS, f"network with name {request.name} already exists")
        self.s.networks.append(_network(NET_ID, request.name))
        return networks_pb2.CreateNetworkResponse(id=NET_ID)

    def List(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.s.requests.append(request)
        return networks_pb2.ListNetworksResponse(networks=self.s.networks)

    def Inspect(self, request: Any, context: grpc.ServicerContext) -> Any:
        return networks_pb2.InspectNetworkResponse(network=self.s.network(request.network, context))

    def Remove(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.s.requests.append(request)
        n = self.s.network(request.network, context)
        if n.builtin:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"{n.name} is a pre-defined network and cannot be removed")
        self.s.networks.remove(n)
        return networks_pb2.RemoveNetworkResponse()

    def Connect(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.s.requests.append(request)
        self.s.network(request.network, context)
        return networks_pb2.ConnectNetworkResponse()

    def Disconnect(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.s.requests.append(request)
        self.s.network(request.network, context)
        return networks_pb2.DisconnectNetworkResponse()

    def Prune(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.s.requests.append(request)
        removed = [n.name for n in self.s.networks if not n.builtin and not n.endpoints]
        self.s.networks = [n for n in self.s.networks if n.name not in removed]
        return networks_pb2.PruneNetworksResponse(removed=removed)


class FakeContainers(containers_pb2_grpc.ContainersServiceServicer):
    def __init__(self, state: FakeState) -> None:
        self.s = state

    def Create(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.s.requests.append(request)
        warnings = ["Published ports are discarded when using host network mode"] if (
            request.config.network_mode == "host" and request.config.publish) else []
        return containers_pb2.CreateContainerResponse(id=CTR_ID, name="web", warnings=warnings)

    def List(self, request: Any, context: grpc.ServicerContext) -> Any:
        return containers_pb2.ListContainersResponse(containers=self.s.containers)

    def Inspect(self, request: Any, context: grpc.ServicerContext) -> Any:
        return containers_pb2.InspectContainerResponse(container=self.s.container(request.container, context))


class FakeImages(images_pb2_grpc.ImagesServiceServicer):
    def Inspect(self, request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.NOT_FOUND, f"No such image: {request.image}")
        raise AssertionError("unreachable")


class FakeEvents(events_pb2_grpc.EventsServiceServicer):
    def __init__(self, state: FakeState) -> None:
        self.s = state

    def Subscribe(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        for event in self.s.events:
            yield events_pb2.SubscribeResponse(event=event)


@dataclass
class Result:
    code: int
    out: str
    err: str


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def state(tmp_path: Path) -> Iterator[tuple[FakeState, str]]:
    s = FakeState()
    executor = futures.ThreadPoolExecutor(max_workers=4)
    server = grpc.server(executor)
    networks_pb2_grpc.add_NetworksServiceServicer_to_server(FakeNetworks(s), server)  # type: ignore[no-untyped-call]
    containers_pb2_grpc.add_ContainersServiceServicer_to_server(  # type: ignore[no-untyped-call]
        FakeContainers(s), server
    )
    events_pb2_grpc.add_EventsServiceServicer_to_server(FakeEvents(s), server)  # type: ignore[no-untyped-call]
    images_pb2_grpc.add_ImagesServiceServicer_to_server(FakeImages(), server)  # type: ignore[no-untyped-call]
    sock = tmp_path / "pallet.sock"
    server.add_insecure_port(f"unix://{sock}")
    server.start()
    try:
        yield s, f"unix://{sock}"
    finally:
        server.stop(grace=None).wait(5)
        executor.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def daemon(state: tuple[FakeState, str]) -> FakeState:
    return state[0]


@pytest.fixture
def cli(state: tuple[FakeState, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    def run(*argv: str, stdin: str | None = None) -> Result:
        if stdin is None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        else:
            monkeypatch.setattr(sys, "stdin", _Tty(stdin))
        capsys.readouterr()
        code = main(["-H", state[1], *argv])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


# -- run / create flags -------------------------------------------------------------------------


def test_run_network_flags_become_the_config_fields() -> None:
    args = parse_args([
        "run", "--network", "front", "--network-alias", "www", "--net-alias", "web2", "--ip", "172.18.0.5",
        "--mac-address", "02:42:ac:12:00:05", "-p", "8080:80", "--publish", "127.0.0.1::53/udp", "-P",
        "--expose", "7000", "--expose", "8000-8001/udp", "--dns", "9.9.9.9", "--dns", "1.1.1.1",
        "--dns-search", "example.org", "--dns-option", "ndots:2", "--dns-opt", "timeout:1",
        "--add-host", "db:10.0.0.2", "--add-host", "gw=host-gateway", "--add-host", "v6=[::1]",
        "busybox", "-p", "9",
    ])
    cfg = container_config(args, {})
    assert cfg.network_mode == "front"
    assert list(cfg.network_aliases) == ["www", "web2"]
    assert (cfg.ipv4_address, cfg.mac_address) == ("172.18.0.5", "02:42:ac:12:00:05")
    assert list(cfg.publish) == ["8080:80", "127.0.0.1::53/udp"] and cfg.publish_all
    assert list(cfg.expose) == ["7000", "8000-8001/udp"]
    assert list(cfg.dns) == ["9.9.9.9", "1.1.1.1"] and list(cfg.dns_search) == ["example.org"]
    assert list(cfg.dns_options) == ["ndots:2", "timeout:1"]
    assert list(cfg.extra_hosts) == ["db:10.0.0.2", "gw:host-gateway", "v6:::1"]
    assert list(cfg.cmd) == ["-p", "9"]  # after the image: the command's own


def test_run_without_network_flags_leaves_them_empty() -> None:
    cfg = container_config(parse_args(["create", "--net", "container:db", "busybox"]), {})
    assert cfg.network_mode == "container:db"
    cfg = container_config(parse_args(["run", "busybox"]), {})
    assert cfg.network_mode == "" and not cfg.publish and not cfg.publish_all and not cfg.extra_hosts


@pytest.mark.parametrize(("item", "expected"), [
    ("db:10.0.0.2", "db:10.0.0.2"),
    ("db=10.0.0.2", "db:10.0.0.2"),
    ("v6:2001:db8::1", "v6:2001:db8::1"),
    ("v6=[2001:db8::1]", "v6:2001:db8::1"),
    ("gw:host-gateway", "gw:host-gateway"),
])
def test_add_host_is_normalized_to_name_colon_ip(item: str, expected: str) -> None:
    assert parse_extra_host(item) == expected


@pytest.mark.parametrize("item", ["db", ":10.0.0.2", "db:nope", "db:10.0.0.256", "a:b=1.2.3.4"])
def test_add_host_rejects_what_is_not_name_and_ip(item: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_extra_host(item)


def test_a_bad_add_host_fails_run_with_125_before_any_call(cli: Any, daemon: FakeState) -> None:
    result = cli("run", "--add-host", "db", "busybox")
    assert result.code == 125 and result.err == "Error: bad format for add-host: 'db' (expected NAME:IP)\n"
    assert daemon.requests == []


def test_create_sends_the_network_fields(cli: Any, daemon: FakeState) -> None:
    result = cli("create", "--network", "front", "-p", "80", "--add-host", "x=1.2.3.4", "busybox")
    assert result.code == 0 and result.out == CTR_ID + "\n"
    [request] = daemon.requests
    assert request.config.network_mode == "front" and list(request.config.publish) == ["80"]
    assert list(request.config.extra_hosts) == ["x:1.2.3.4"]
    assert result.err == ""


def test_create_prints_the_daemons_warnings_on_stderr(cli: Any, daemon: FakeState) -> None:
    result = cli("create", "--network", "host", "-p", "80", "busybox")
    assert (result.code, result.out) == (0, CTR_ID + "\n")
    assert result.err == "WARNING: Published ports are discarded when using host network mode\n"


# -- network create / ls / inspect / rm ---------------------------------------------------------


def test_network_create_sends_every_flag_and_prints_the_id(cli: Any, daemon: FakeState) -> None:
    result = cli("network", "create", "--driver", "bridge", "--subnet", "172.30.0.0/16", "--gateway", "172.30.0.1",
                 "--ip-range", "172.30.5.0/24", "--internal", "--label", "team=a", "--label", "solo",
                 "-o", "com.docker.network.bridge.name=br-app", "--opt", "com.docker.network.driver.mtu=1400",
                 "app")
    assert result.code == 0, result.err
    assert result.out == NET_ID + "\n"
    [request] = daemon.requests
    assert (request.name, request.driver, request.subnet, request.gateway, request.ip_range) == (
        "app", "bridge", "172.30.0.0/16", "172.30.0.1", "172.30.5.0/24")
    assert request.internal
    assert dict(request.labels) == {"team": "a", "solo": ""}
    assert dict(request.options) == {"com.docker.network.bridge.name": "br-app",
                                     "com.docker.network.driver.mtu": "1400"}


def test_network_create_defaults_and_errors(cli: Any, daemon: FakeState) -> None:
    assert cli("network", "create", "app").code == 0
    request = daemon.requests[-1]
    assert (request.driver, request.subnet, request.internal, dict(request.options)) == ("", "", False, {})
    taken = cli("network", "create", "app")
    assert taken.code == 1 and taken.err == "Error: network with name app already exists\n" and taken.out == ""
    bad = cli("network", "create", "-o", "=x", "other")
    assert bad.code == 1 and "invalid driver option '=x'" in bad.err
    usage = cli("network", "create")
    assert usage.code == 2


def test_network_ls_table_quiet_and_filters(cli: Any, daemon: FakeState) -> None:
    daemon.networks += [_network(BRIDGE_ID, "bridge", builtin=True), _network(NET_ID, "front", internal=True)]
    result = cli("network", "ls")
    assert result.code == 0
    assert result.out.splitlines() == [
        "NETWORK ID     NAME      DRIVER    SCOPE",
        "111111111111   bridge    bridge    local",
        "999999999999   front     bridge    local",
    ]
    assert cli("network", "ls", "-q").out.split() == [BRIDGE_ID[:12], NET_ID[:12]]
    assert cli("network", "list", "-q", "--no-trunc", "-f", "name=fr", "--filter", "driver=bridge").out.split() == [
        BRIDGE_ID, NET_ID]
    assert list(daemon.requests[-1].filters) == ["name=fr", "driver=bridge"]
    bad = cli("network", "ls", "-f", "dangling")
    assert bad.code == 1 and "bad format of filter" in bad.err


def test_network_ls_format(cli: Any, daemon: FakeState) -> None:
    daemon.networks += [_network(NET_ID, "front", internal=True, labels={"team": "a"})]
    table = cli("network", "ls", "--format", "table {{.Name}}\\t{{.Internal}}\\t{{.Label \"team\"}}")
    assert table.out.splitlines() == ["NAME      INTERNAL   LABEL", "front     true       a"]
    assert cli("network", "ls", "--format", "{{.ID}} {{.Scope}} {{.IPv6}} {{.Labels}}").out == (
        f"{NET_ID[:12]} local false team=a\n")
    assert json.loads(cli("network", "ls", "--format", "json").out)["Name"] == "front"
    assert cli("network", "ls", "--format", "table").out.startswith("NETWORK ID     NAME ")
    bad = cli("network", "ls", "--format", "{{.Nope}}")
    assert bad.code == 1 and bad.err.startswith("Error: template: ")


def test_network_inspect_is_shaped_like_dockers(cli: Any, daemon: FakeState) -> None:
    n = _network(NET_ID, "front", subnet="172.18.0.0/16", gateway="172.18.0.1", ip_range="172.18.5.0/24",
                 internal=True, labels={"b": "2", "a": "1"}, options={"com.docker.network.bridge.name": "br-x"})
    n.endpoints.append(networks_pb2.Endpoint(container_id=CTR_ID, container_name="web",
                                             ipv4_address="172.18.5.2/16", mac_address="02:42:ac:12:05:02"))
    daemon.networks.append(n)
    result = cli("network", "inspect", "front")
    assert result.code == 0, result.err
    assert result.out.startswith('[\n    {\n        "Name": "front",\n        "Id": ')
    [doc] = json.loads(result.out)
    assert list(doc)[:8] == ["Name", "Id", "Created", "Scope", "Driver", "EnableIPv6", "IPAM", "Internal"]
    assert doc["Id"] == NET_ID and doc["Created"] == "2026-11-27T18:31:16.000000005Z"
    assert (doc["Scope"], doc["Driver"], doc["EnableIPv6"], doc["Internal"], doc["Attachable"]) == (
        "local", "bridge", False, True, False)
    assert doc["IPAM"] == {"Driver": "default", "Options": {}, "Config": [
        {"Subnet": "172.18.0.0/16", "IPRange": "172.18.5.0/24", "Gateway": "172.18.0.1"}]}
    assert doc["Containers"] == {CTR_ID: {"Name": "web", "EndpointID": "", "MacAddress": "02:42:ac:12:05:02",
                                          "IPv4Address": "172.18.5.2/16", "IPv6Address": ""}}
    assert doc["Options"] == {"com.docker.network.bridge.name": "br-x"}
    assert list(doc["Labels"]) == ["a", "b"]
    plain = json.loads(cli("network", "inspect", "front").out)[0]
    assert plain == doc


def test_network_inspect_format_and_missing(cli: Any, daemon: FakeState) -> None:
    daemon.networks.append(_network(NET_ID, "front", subnet="10.1.0.0/24", gateway="10.1.0.1"))
    daemon.networks.append(_network("f" * 64, "host"))
    result = cli("network", "inspect", "-f", "{{.Name}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}",
                 "front", "host")
    assert result.out == "front 10.1.0.0/24 10.1.0.1\nhost \n"
    missing = cli("network", "inspect", "front", "nosuch")
    assert missing.code == 1 and missing.err == "Error: No such network: nosuch\n"
    assert [d["Name"] for d in json.loads(missing.out)] == ["front"]
    only_missing = cli("network", "inspect", "nosuch")
    assert only_missing.code == 1 and only_missing.out == ""


def test_network_rm_prints_each_name_and_goes_on_past_failures(cli: Any, daemon: FakeState) -> None:
    daemon.networks += [_network(BRIDGE_ID, "bridge", builtin=True), _network(NET_ID, "front"),
                        _network("a" * 64, "back")]
    result = cli("network", "rm", "front", "bridge", "nosuch", "aaaaaa")
    assert result.code == 1
    assert result.out == "front\naaaaaa\n"
    assert result.err == ("Error: bridge is a pre-defined network and cannot be removed\n"
                          "Error: No such network: nosuch\n")
    assert [n.name for n in daemon.networks] == ["bridge"]
    assert cli("network", "remove", "bridge").code == 1


def test_network_connect_and_disconnect_send_their_fields(cli: Any, daemon: FakeState) -> None:
    daemon.networks.append(_network(NET_ID, "front"))
    result = cli("network", "connect", "--alias", "www", "--alias", "w2", "--ip", "172.18.0.9", "front", "web")
    assert (result.code, result.out, result.err) == (0, "", "")
    request = daemon.requests[-1]
    assert (request.network, request.container, list(request.aliases), request.ipv4_address) == (
        "front", "web", ["www", "w2"], "172.18.0.9")
    assert cli("network", "connect", "front", "web").code == 0
    assert list(daemon.requests[-1].aliases) == [] and daemon.requests[-1].ipv4_address == ""
    assert cli("network", "disconnect", "front", "web").code == 0
    assert not daemon.requests[-1].force
    assert cli("network", "disconnect", "-f", "front", CTR_ID).code == 0
    request = daemon.requests[-1]
    assert (request.network, request.container, request.force) == ("front", CTR_ID, True)
    missing = cli("network", "connect", "nosuch", "web")
    assert missing.code == 1 and missing.err == "Error: No such network: nosuch\n"
    assert cli("network", "connect", "front").code == 2


def test_network_prune_asks_first(cli: Any, daemon: FakeState) -> None:
    used = _network("a" * 64, "used")
    used.endpoints.append(networks_pb2.Endpoint(container_id=CTR_ID, container_name="web"))
    daemon.networks += [_network(BRIDGE_ID, "bridge", builtin=True), _network(NET_ID, "front"), used,
                        _network("b" * 64, "back")]
    declined = cli("network", "prune", stdin="n\n")
    assert declined.code == 0
    assert declined.out == ("WARNING! This will remove all custom networks not used by at least one container.\n"
                            "Are you sure you want to continue? [y/N] ")
    assert len(daemon.networks) == 4 and not daemon.requests
    accepted = cli("network", "prune", stdin="y\n")
    assert accepted.code == 0
    assert accepted.out.endswith("[y/N] Deleted Networks:\nfront\nback\n\n")
    assert [n.name for n in daemon.networks] == ["bridge", "used"]
    piped = cli("network", "prune")  # stdin is no terminal: no silent yes, no silent no
    assert piped.code == 1 and "confirm with -f" in piped.err
    forced = cli("network", "prune", "-f", "--filter", "label=tmp")
    assert forced.code == 0 and forced.out == ""  # nothing left to remove: docker prints nothing
    assert list(daemon.requests[-1].filters) == ["label=tmp"]


# -- ports --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("bindings", "exposed", "text"), [
    ([], [], ""),
    ([], ["80/tcp"], "80/tcp"),
    ([_binding(80, 8080)], ["80/tcp"], "0.0.0.0:8080->80/tcp"),
    ([_binding(80, 8080), _binding(53, 5353, "udp", "127.0.0.1")], ["80/tcp", "53/udp"],
     "127.0.0.1:5353->53/udp, 0.0.0.0:8080->80/tcp"),
    # docker joins consecutive ports only where nothing is remapped; a group cut short by a
    # gap comes out first (docker's DisplayablePorts does exactly this).
    ([], ["80/tcp", "81/tcp", "82/tcp", "90/tcp", "53/udp"], "80-82/tcp, 53/udp, 90/tcp"),
    ([], ["53/udp", "80/tcp", "81/tcp"], "53/udp, 80-81/tcp"),
    ([_binding(8000, 8000), _binding(8001, 8001)], [], "0.0.0.0:8000-8001->8000-8001/tcp"),
    ([_binding(80, 8000), _binding(81, 8001)], [], "0.0.0.0:8000->80/tcp, 0.0.0.0:8001->81/tcp"),
    ([_binding(80, 8080)], ["80/tcp", "443/tcp"], "443/tcp, 0.0.0.0:8080->80/tcp"),
    # a random host port not picked yet (created, not started): shown as exposed
    ([_binding(80, 0)], ["80/tcp"], "80/tcp"),
    ([_binding(80, 8080, ip="::1")], [], "[::1]:8080->80/tcp"),
])
def test_ps_ports_column_like_docker(bindings: list[Any], exposed: list[str], text: str) -> None:
    assert ports.displayable_ports(bindings, exposed) == text


def test_host_config_port_bindings_from_the_daemons_bindings() -> None:
    asked = [_binding(80, 8080), _binding(80, 8081, ip="127.0.0.1"), _binding(53, 0, "udp"),
             containers_pb2.PortBinding(protocol="tcp", container_port=443, host_port=8000, host_port_end=8010)]
    bindings = netsettings.port_bindings(asked)
    assert bindings == {
        "443/tcp": [{"HostIp": "", "HostPort": "8000-8010"}],
        "53/udp": [{"HostIp": "", "HostPort": ""}],
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}, {"HostIp": "127.0.0.1", "HostPort": "8081"}],
    }
    assert list(bindings) == ["443/tcp", "53/udp", "80/tcp"]  # Go marshals map keys sorted
    assert netsettings.port_bindings([]) == {}


def test_port_lines() -> None:
    bindings = [_binding(80, 8080), _binding(53, 5353, "udp", "127.0.0.1"), _binding(80, 8081, ip="10.0.0.1"),
                _binding(443, 0)]
    assert ports.port_lines(bindings, "web") == [
        "53/udp -> 127.0.0.1:5353", "80/tcp -> 0.0.0.0:8080", "80/tcp -> 10.0.0.1:8081"]
    assert ports.port_lines(bindings, "web", "80") == ["0.0.0.0:8080", "10.0.0.1:8081"]
    assert ports.port_lines(bindings, "web", "53/udp") == ["127.0.0.1:5353"]
    with pytest.raises(NotFound, match=r"^No public port '53/tcp' published for web$"):
        ports.port_lines(bindings, "web", "53")
    with pytest.raises(NotFound, match="'443/tcp'"):
        ports.port_lines(bindings, "web", "443/tcp")  # no host port yet
    with pytest.raises(InvalidArgument):
        ports.port_lines(bindings, "web", "http")


def test_pallet_port(cli: Any, daemon: FakeState) -> None:
    daemon.containers.append(_web())
    result = cli("port", "web")
    assert (result.code, result.out) == (0, "53/udp -> 0.0.0.0:53\n80/tcp -> 127.0.0.1:8080\n")
    assert cli("container", "port", "web", "80/tcp").out == "127.0.0.1:8080\n"
    unknown = cli("port", "web", "81")
    assert (unknown.code, unknown.out, unknown.err) == (1, "", "Error: No public port '81/tcp' published for web\n")
    missing = cli("port", "nosuch")
    assert missing.code == 1 and missing.err == "Error: No such container: nosuch\n"


def test_ps_shows_ports_and_networks(cli: Any, daemon: FakeState) -> None:
    daemon.containers.append(_web())
    result = cli("ps")
    header, row = result.out.splitlines()
    assert "0.0.0.0:53->53/udp, 7000/tcp, 127.0.0.1:8080->80/tcp   web" in row
    assert header.index("PORTS") == row.index("0.0.0.0:53")
    assert cli("ps", "--format", "{{.Ports}}|{{.Networks}}").out == (
        "0.0.0.0:53->53/udp, 7000/tcp, 127.0.0.1:8080->80/tcp|back,front\n")


# -- inspect ------------------------------------------------------------------------------------


def test_container_inspect_network_settings(cli: Any, daemon: FakeState) -> None:
    daemon.containers.append(_web())
    [doc] = json.loads(cli("inspect", "web").out)
    settings = doc["NetworkSettings"]
    assert settings["Ports"] == {
        "53/udp": [{"HostIp": "0.0.0.0", "HostPort": "53"}],
        "7000/tcp": None,
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
    }
    assert list(settings["Ports"]) == ["53/udp", "7000/tcp", "80/tcp"]  # Go marshals map keys sorted
    assert settings["SandboxKey"] == "/run/pallet/netns/" + CTR_ID
    # The top-level address is eth0's network's, not the first by name ("back").
    assert (settings["IPAddress"], settings["IPPrefixLen"], settings["Gateway"], settings["MacAddress"]) == (
        "172.18.0.5", 16, "172.18.0.1", "02:42:ac:12:00:05")
    assert list(settings["Networks"]) == ["back", "front"]
    moved = _web()  # left the network it was created on: eth0 still says which is first
    moved.config.network_mode = "bridge"
    assert views.inspect_container(moved)["NetworkSettings"]["IPAddress"] == "172.18.0.5"
    assert settings["Networks"]["front"] == {
        "IPAMConfig": {"IPv4Address": "172.18.0.5"}, "Aliases": ["www", CTR_ID[:12]], "NetworkID": NET_ID,
        "Gateway": "172.18.0.1", "IPAddress": "172.18.0.5", "IPPrefixLen": 16, "MacAddress": "02:42:ac:12:00:05",
    }
    assert settings["Networks"]["back"]["IPAMConfig"] is None and settings["Networks"]["back"]["Aliases"] is None
    host = doc["HostConfig"]
    assert host["NetworkMode"] == "front"
    assert host["PortBindings"] == {
        "53/udp": [{"HostIp": "", "HostPort": "53"}],
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
        "90/tcp": [{"HostIp": "", "HostPort": "9000"}],
        "91/tcp": [{"HostIp": "", "HostPort": "9001"}],
    }
    assert (host["Dns"], host["DnsSearch"], host["DnsOptions"], host["ExtraHosts"], host["PublishAllPorts"]) == (
        ["9.9.9.9"], ["example.org"], ["ndots:2"], ["db:10.0.0.2"], True)
    assert doc["Config"]["ExposedPorts"] == {"53/udp": {}, "7000/tcp": {}, "80/tcp": {}}
    assert doc["Config"]["MacAddress"] == "02:42:ac:12:00:05"


def test_container_inspect_templates_reach_the_network_settings(cli: Any, daemon: FakeState) -> None:
    daemon.containers.append(_web())
    result = cli("inspect", "-f", "{{.NetworkSettings.Networks.front.IPAddress}} "
                 "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.Gateway}};{{end}} "
                 "{{(index (index .NetworkSettings.Ports \"80/tcp\") 0).HostPort}} {{.HostConfig.NetworkMode}}",
                 "web")
    assert result.code == 0, result.err
    assert result.out == "172.18.0.5 back=172.19.0.1;front=172.18.0.1; 8080 front\n"
    whole = cli("inspect", "-f", "{{.NetworkSettings.Networks}}", "web")
    assert whole.code == 0 and whole.out.startswith("map[back:map[Aliases:<nil> Gateway:172.19.0.1 ")
    assert cli("inspect", "-f", "{{json .NetworkSettings.Ports}}", "web").out == (
        '{"53/udp":[{"HostIp":"0.0.0.0","HostPort":"53"}],"7000/tcp":null,'
        '"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"}]}\n')


def test_inspect_of_a_container_without_networking() -> None:
    # --expose 80 --expose 53/udp --expose 8000-8001 -p 9090:90, as palletd parsed them.
    c = containers_pb2.Container(id=CTR_ID, name="bare", config=containers_pb2.ContainerConfig(
        network_mode="none", expose=["80/tcp", "53/udp", "8000/tcp", "8001/tcp"], publish=["9090:90"]),
        port_bindings=[_binding(90, 9090)])
    doc = views.inspect_container(c)
    assert doc["NetworkSettings"] == {
        "Ports": {"53/udp": None, "80/tcp": None, "8000/tcp": None, "8001/tcp": None, "90/tcp": None},
        "SandboxKey": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": "", "Networks": {},
    }
    assert doc["HostConfig"]["NetworkMode"] == "none" and doc["HostConfig"]["ExtraHosts"] is None
    assert doc["HostConfig"]["PortBindings"] == {"90/tcp": [{"HostIp": "", "HostPort": "9090"}]}
    assert views.inspect_container(containers_pb2.Container(id=CTR_ID))["Config"]["ExposedPorts"] is None
    assert views.container_fields(c, 0.0, True)["Ports"] == ""
    # A published port is exposed even when the daemon did not list it so.
    published = containers_pb2.Container(id=CTR_ID)
    published.network_settings.ports.append(_binding(80, 8080))
    doc = views.inspect_container(published)
    assert doc["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert doc["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}


def test_top_level_inspect_finds_networks(cli: Any, daemon: FakeState) -> None:
    daemon.networks.append(_network(NET_ID, "front"))
    result = cli("inspect", "-f", "{{.Name}} {{.Scope}}", "front")
    assert result.code == 0 and result.out == "front local\n"
    typed = cli("inspect", "--type", "network", "nosuch")
    assert typed.code == 1 and typed.err == "Error: No such network: nosuch\n"
    assert cli("inspect", "nosuch").err == "Error: No such object: nosuch\n"
    assert cli("inspect", "--type", "network", "front").code == 0


# -- events -------------------------------------------------------------------------------------


def test_network_events_print_like_dockers(cli: Any, daemon: FakeState) -> None:
    for seq, action in ((7, "create"), (8, "connect"), (9, "disconnect"), (10, "destroy")):
        attrs = {"name": "front", "type": "bridge"}
        if action in ("connect", "disconnect"):
            attrs["container"] = CTR_ID
        event = events_pb2.Event(seq=seq, type="network", action=action, actor_id=NET_ID, attributes=attrs)
        event.time.seconds, event.time.nanos = 1_795_804_276, 1
        daemon.events.append(event)
    result = cli("events", "--until", "0s")
    assert result.out.splitlines() == [
        f"2026-11-27T18:31:16.000000001Z network create {NET_ID} (name=front, type=bridge)",
        f"2026-11-27T18:31:16.000000001Z network connect {NET_ID} (container={CTR_ID}, name=front, type=bridge)",
        f"2026-11-27T18:31:16.000000001Z network disconnect {NET_ID} (container={CTR_ID}, name=front, type=bridge)",
        f"2026-11-27T18:31:16.000000001Z network destroy {NET_ID} (name=front, type=bridge)",
    ]
    first = json.loads(cli("events", "--format", "json", "--until", "0s").out.splitlines()[1])
    # docker fills its deprecated status/id/from for container and image events only
    assert first == {"Type": "network", "Action": "connect",
                     "Actor": {"ID": NET_ID, "Attributes": {"container": CTR_ID, "name": "front", "type": "bridge"}},
                     "scope": "local", "time": 1_795_804_276, "timeNano": 1_795_804_276_000_000_001, "Seq": 8}
    templated = cli("events", "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.status}}.",
                    "--until", "0s")
    assert templated.out.splitlines()[1] == "network connect front ."


def test_network_help_lists_its_verbs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["network"]) == 0
    out = capsys.readouterr().out
    for verb in ("create", "ls", "inspect", "rm", "connect", "disconnect", "prune"):
        assert verb in out
    with pytest.raises(UsageError):
        parse_args(["network", "nosuch"])
