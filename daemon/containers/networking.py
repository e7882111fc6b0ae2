"""What the containers need from the networks: the seam between the two domains.

Owns: the `Networking` protocol (checked at create, a sandbox at start, released at the
end of every run, live connect and disconnect, a running container's rename, what
inspect shows), the values crossing
it (`Sandbox`, `NetworkView`), and `LoopbackOnly`, the networking of a manager built
without networks (unit tests with fake shims): each container gets a namespace of its own
with only `lo`, as before networks existed. Must not: touch the kernel (the network
manager does) or the container records (the container manager does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pallet.daemon.containers.model import Config, Container, CreateRequest, HostConfig
from pallet.daemon.networks.model import EndpointConfig
from pallet.v1.errors import FailedPrecondition, NotFound


@dataclass(frozen=True, slots=True)
class Sandbox:
    """Where a start puts the container's network: the namespace to join and its files.

    `netns_path` "" with `share_host` False: the shim makes a new namespace (only `lo`).
    """

    netns_path: str = ""
    share_host: bool = False
    hosts: str = ""  # /etc/hosts' content; "" keeps the one written at create
    resolv_conf: str = ""  # /etc/resolv.conf's content; "" keeps it


@dataclass(frozen=True, slots=True)
class Prepared:
    """A create's network options checked and resolved, and what was not done as asked."""

    config: Config
    host: HostConfig
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EndpointView:
    network_id: str
    network_name: str
    address: str = ""  # "" while not running
    prefix_len: int = 0
    gateway: str = ""
    mac: str = ""
    aliases: tuple[str, ...] = ()
    ifname: str = ""
    static_address: str = ""  # the --ip asked for on this network, running or not


@dataclass(frozen=True, slots=True)
class PortView:
    protocol: str
    container_port: int
    host_ip: str
    host_port: int  # 0 until started when none was given
    host_port_end: int = 0  # a host range one container port takes any port of (asked only)


@dataclass(frozen=True, slots=True)
class NetworkView:
    """How a container is networked, for inspect and ps."""

    endpoints: tuple[EndpointView, ...] = ()
    ports: tuple[PortView, ...] = ()  # published now, with the host ports picked
    sandbox_key: str = ""
    asked: tuple[PortView, ...] = ()  # published as asked at create (docker's PortBindings)


class Networking(Protocol):
    async def prepare(
        self, config: Config, host: HostConfig, req: CreateRequest, find: "ContainerFinder"
    ) -> Prepared:
        """At create: the network options checked and resolved (a network's name to its
        id in `host.networks`, container:NAME to container:<id>, the exposed ports with
        the published ones), with a warning for each one ignored. Raises for bad input;
        makes nothing."""
        ...

    async def reconcile(self, running: list[Container]) -> None:
        """At boot, once the running containers are known: keep theirs, remove the rest."""
        ...

    async def attach(self, c: Container, joined: Container | None) -> Sandbox:
        """At start: the container's namespace made and wired (or the host's, or the
        joined container's), a network `connect` event per endpoint attached. A failure
        leaves nothing behind (what was attached is released)."""
        ...

    async def release(self, container_id: str) -> None:
        """After a run (or a failed start): everything `attach` made is gone, a network
        `disconnect` event per endpoint released. Idempotent: each is announced once."""
        ...

    async def check_endpoint(
        self, c: Container, network: str, aliases: tuple[str, ...], ipv4: str
    ) -> EndpointConfig:
        """For `network connect`: the endpoint asked for, checked (no change made)."""
        ...

    async def connect_live(self, c: Container, endpoint: EndpointConfig) -> bool:
        """A running container gets a new interface on the endpoint's network. True when it
        was attached: its network `connect` event is journalled then (with its lease)."""
        ...

    async def disconnect_live(self, c: Container, network_id: str) -> bool:
        """A running container's interface on the network is removed. True when it was
        attached: its network `disconnect` event is journalled then."""
        ...

    async def rename(self, c: Container) -> None:
        """A running container's DNS records under its new name (`c.name`), the old one
        gone. Its record is renamed already: a failure here is logged, not raised (the
        next rebuild, or the next boot's reconcile, publishes the name from the record)."""
        ...

    def network_name(self, network_id: str) -> str: ...

    def find_network_id(self, ref: str) -> str:
        """A network's id by name, id or id prefix (NotFound names it)."""
        ...

    def view(self, c: Container) -> NetworkView: ...


class ContainerFinder(Protocol):
    def resolve(self, ref: str) -> Container: ...


class LoopbackOnly:
    """No networks: every container gets a namespace of its own with only `lo`."""

    async def prepare(
        self, config: Config, host: HostConfig, req: CreateRequest, find: ContainerFinder
    ) -> Prepared:
        if req.more_networks:
            raise FailedPrecondition("this palletd has no networks")
        return Prepared(config, host)

    async def reconcile(self, running: list[Container]) -> None:
        return None

    async def attach(self, c: Container, joined: Container | None) -> Sandbox:
        return Sandbox()

    async def release(self, container_id: str) -> None:
        return None

    async def check_endpoint(
        self, c: Container, network: str, aliases: tuple[str, ...], ipv4: str
    ) -> EndpointConfig:
        raise FailedPrecondition("this palletd has no networks")

    async def connect_live(self, c: Container, endpoint: EndpointConfig) -> bool:
        return False

    async def disconnect_live(self, c: Container, network_id: str) -> bool:
        return False

    async def rename(self, c: Container) -> None:
        return None

    def network_name(self, network_id: str) -> str:
        return network_id

    def find_network_id(self, ref: str) -> str:
        raise NotFound(f"network {ref} not found")

    def view(self, c: Container) -> NetworkView:
        return NetworkView()
