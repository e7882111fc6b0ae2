"""Networks: the records, the leases, and what carries a running container's traffic.

Owns: every network (the built-in `bridge`, `host` and `none`, and user bridge networks),
the addresses, MACs and veths of running containers (`Lease`, in SQLite before the veth
exists, deleted after it is gone), their published ports, and keeping the kernel (bridges,
namespaces, veths: `kernel.NetKernel`), the firewall (`firewall.Firewall`) and the
resolver's records (`dns.DnsSupervisor`) true to that state, at every change and again at
boot (`reconcile`); the rebuilds of the rules and records are `rebuild.Rebuilds`'s, the
containers' /etc/hosts and resolv.conf text is `etcfiles`'s. Implements the containers'
`Networking` seam, and the network `connect` and `disconnect` events of endpoints attached
and released (docker's: at start, at the end of a run, on a live connect or disconnect),
each journalled with its lease's insert or delete. Must not: change container records (the
container manager does, with the events of connecting a container that does not run) or
run anything inside a container.

What carries traffic lives outside palletd: bridges, veths, namespaces (bind-mounted under
`<run-root>/netns/`) and nftables rules are the kernel's, and the resolver is a process of
its own. A kill -9 of palletd stops none of it; a restarted palletd finds it, keeps what
belongs to running containers and removes the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import structlog

from pallet.daemon.containers.bundle import write_network_files
from pallet.daemon.containers.model import (
    Config,
    Container,
    CreateRequest,
    EndpointRequest,
    HostConfig,
    Status,
)
from pallet.daemon.containers.names import validate_name
from pallet.daemon.containers.networking import (
    ContainerFinder,
    EndpointView,
    NetworkView,
    PortView,
    Prepared,
    Sandbox,
)
from pallet.daemon.events.model import EventPublisher, Notice
from pallet.daemon.faults import NO_CRASHES, CrashHook
from pallet.daemon.networks import etcfiles, ipam, ports
from pallet.daemon.networks.attachment import Attachment, check_ifname, check_mtu
from pallet.daemon.networks.kernel import Kernel
from pallet.daemon.networks.rebuild import Attached, Rebuilds, Resolver, Rules
from pallet.daemon.networks.model import (
    BUILTIN_NAMES,
    DEFAULT_NETWORK,
    DRIVER_BRIDGE,
    DRIVER_HOST,
    DRIVER_NONE,
    KNOWN_OPTIONS,
    OPT_BRIDGE_NAME,
    OPT_MTU,
    EndpointConfig,
    Lease,
    Network,
)
from pallet.daemon.networks.store import (
    NetworkRecords,
    address_taken,
    bridge_delete_writer,
    bridge_insert_writer,
    delete_leases,
    lease_insert_writer,
    network_delete_writer,
    network_insert_writer,
)
from pallet.v1.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PalletError,
    ResourceExhausted,
)

log = structlog.get_logger(__name__)

DEFAULT_BRIDGE = "pallet0"
# Host ends of veths ("pl" + 10 random hex: never reused while the kernel still frees an
# old pair) and the bridges of user networks ("pl-" + the id's first 12): pallet's own
# names, so a restarted palletd can tell its leftovers from anyone else's links.
VETH_PREFIX = "pl"
_VETH = re.compile(r"^pl[0-9a-f]{10}$")
_BRIDGE = re.compile(r"^pl-[0-9a-f]{12}$")
# docker's words (the CLI prints them after "WARNING: ").
HOST_PORTS_DISCARDED = "Published ports are discarded when using host network mode"
# Addresses chosen for one lease before giving up when the table keeps refusing them.
_LEASE_TRIES = 8
# Rebuilds a start waits for when the only free addresses are cooling, before it gives up.
_COOLING_WAITS = 3

#: Seconds between attempts to delete leases that a full disk kept.
RELEASE_RETRY_S = 1.0

Users = Callable[[str], list[tuple[str, str]]]  # network id -> [(container id, name)]


class NetworkManager:
    """The networks of one palletd, and the running containers' attachments to them."""

    def __init__(
        self,
        records: NetworkRecords,
        events: EventPublisher,
        kernel: Kernel,
        firewall: Rules,
        resolver: Resolver,
        reservations: ports.PortReservations,
        pools: Sequence[ipam.Pool] = ipam.DEFAULT_POOLS,
        host_resolv_conf: Path = Path("/etc/resolv.conf"),
        clock: Callable[[], int] = time.time_ns,
        default_bridge: str = DEFAULT_BRIDGE,
        crashes: CrashHook = NO_CRASHES,
    ) -> None:
        self._default_bridge = default_bridge  # "": no default network (--bridge none)
        self._crashes = crashes
        self._records = records
        self._events = events
        self._kernel = kernel
        self._resolver = resolver
        self._reservations = reservations
        self._pools = tuple(pools)
        self._host_resolv_conf = host_resolv_conf
        self._clock = clock
        self._networks: dict[str, Network] = {}
        self._attached: dict[str, Attached] = {}
        # Leases from the last palletd whose containers are not known to run (yet):
        # reconcile keeps those the container manager re-adopted and removes the rest.
        self._found: dict[str, list[Lease]] = {}
        # Releases whose leases a full disk kept in the table: retried once a second (the
        # leases wait in `_found`), or their addresses would stay taken until the next boot.
        self._unreleased: set[str] = set()
        self._retrying: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # addresses, names and subnets are chosen under it
        # The rules and records, rebuilt from `_networks` and `_attached` (which it reads),
        # and the released addresses cooling until they are gone.
        self._rebuilds = Rebuilds(kernel, firewall, resolver, host_resolv_conf,
                                  self._networks, self._attached, VETH_PREFIX)
        self._users: Users = lambda network_id: []

    def set_users(self, users: Users) -> None:
        """Who is attached to a network (running or not): the container manager's view."""
        self._users = users

    # ---- component lifecycle -------------------------------------------------------

    async def start(self) -> None:
        await self._records.start()
        await self._kernel.start()
        for n in await self._records.load_networks():
            self._networks[n.id] = n
        for lease in await self._records.load_leases():
            self._found.setdefault(lease.container_id, []).append(lease)
        await self._ensure_builtin()
        for n in self._bridges():
            await self._kernel.ensure_bridge(n.bridge, n.gateway_cidr, n.mtu)
            await self._kernel.enable_forwarding(n.bridge)
        try:
            if self._bridges():
                await self._resolver.ensure_running()
        except PalletError as e:
            # Traffic works without it; names do not until it runs (retried at publish).
            log.warning("the embedded DNS resolver did not start", reason=str(e))

    async def aclose(self) -> None:
        if self._retrying is not None:
            self._retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrying
        await self._rebuilds.aclose()  # the last releases' rebuilds land before palletd goes
        # Bridges, veths, rules and the resolver stay: traffic outlives palletd.
        await self._kernel.close()

    async def reconcile(self, running: list[Container]) -> None:
        """After the container manager re-adopted what runs: keep the attachments of
        running containers, remove every other lease, veth, namespace and rule."""
        netns = set(await self._kernel.list_netns())
        for c in running:
            if c.id in self._attached or not _bridged(c):
                continue
            if c.id not in netns and c.id not in self._found:
                continue  # not attached by this pallet (started before it had networks)
            a = self._new_attached(c)
            a.leases = sorted(self._found.pop(c.id, []), key=lambda x: x.position)
            self._attached[c.id] = a
            await self._reserve_ports(a, c, keep_going=True)
        stale = [cid for cid in self._found if cid not in self._attached]
        for cid in stale:
            for lease in self._found[cid]:
                await self._kernel.detach(lease.host_ifname)
            await self._delete_leases(cid)
        self._found.clear()
        for c in running:
            if c.id in self._attached:
                await self._match_record(c, self._attached[c.id])
        keep_netns = set(self._attached)
        for name in await self._kernel.list_netns():
            if name not in keep_netns:
                await self._kernel.remove_netns(name)
        keep_links = {x.host_ifname for a in self._attached.values() for x in a.leases}
        bridges = {n.bridge for n in self._bridges()}
        for name in await self._records.load_bridges():
            if name in bridges:
                continue
            try:  # made by a create, or left by a remove, that palletd died in
                await self._kernel.delete_bridge(name)
            except PalletError as e:
                log.warning("a bridge of no network could not be removed", bridge=name,
                            reason=str(e))
            await self._records.write(bridge_delete_writer(name))
        for link in await self._kernel.links(VETH_PREFIX):
            if _VETH.match(link) and link not in keep_links:
                await self._kernel.detach(link)
            elif _BRIDGE.match(link) and link not in bridges:
                await self._kernel.delete_bridge(link)
        await self._rebuilds.sync()
        log.info("networks reconciled", networks=len(self._networks),
                 attached=len(self._attached), removed=len(stale))

    async def _match_record(self, c: Container, a: Attached) -> None:
        """A running container's interfaces as its record says: a connect or disconnect
        that palletd died in the middle of, before recording it, is undone (a lease and
        veth of a network it is not on) or redone (a network it is on without one)."""
        wanted = {e.network_id for e in c.host_config.networks}
        extra = {x.network_id for x in a.leases if x.network_id not in wanted}
        for network_id in extra:
            await self._drop_lease(a, network_id)
        have = {x.network_id for x in a.leases}
        missing = [e for e in c.host_config.networks if e.network_id not in have]
        for ep in missing:
            try:
                await self._attach_one(c, a, ep, "reconcile")
            except PalletError as e:
                await self._drop_lease(a, ep.network_id)
                log.warning("a running container's network could not be attached again",
                            container_id=c.id, network_id=ep.network_id, reason=str(e))
        if extra or missing:
            await self._rewrite_hosts(a)

    async def _ensure_builtin(self) -> None:
        have = {n.name for n in self._networks.values()}
        for name in BUILTIN_NAMES:
            if name in have:
                continue
            if name == DEFAULT_NETWORK and not self._default_bridge:
                continue
            if name == DEFAULT_NETWORK:
                taken = await self._taken_subnets()
                subnet = ipam.choose_subnet(self._pools, taken)
                n = Network(
                    id=secrets.token_hex(32), name=name, driver=DRIVER_BRIDGE,
                    created_ns=self._clock(), subnet=str(subnet),
                    gateway=str(subnet.network_address + 1), bridge=self._default_bridge,
                    builtin=True, options={OPT_BRIDGE_NAME: self._default_bridge},
                )
            else:
                n = Network(id=secrets.token_hex(32), name=name, driver=name,
                            created_ns=self._clock(), builtin=True)
            await self._records.write(network_insert_writer(n))
            self._networks[n.id] = n

    # ---- networks --------------------------------------------------------------------

    def networks(self) -> list[Network]:
        return sorted(self._networks.values(), key=lambda n: n.name)

    def resolve(self, ref: str) -> Network:
        """By full id, name, or unique id prefix."""
        if not ref:
            raise InvalidArgument("no network given: name one by id, id prefix or name")
        n = self._networks.get(ref)
        if n is not None:
            return n
        for n in self._networks.values():
            if n.name == ref:
                return n
        matches = [n for n in self._networks.values() if n.id.startswith(ref.lower())]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(
                f"network id prefix {ref!r} is ambiguous: it matches {len(matches)} "
                "networks; give more characters or the name"
            )
        raise NotFound(f"network {ref} not found: pallet network ls lists the networks")

    def find_network_id(self, ref: str) -> str:
        return self.resolve(ref).id

    def network_name(self, network_id: str) -> str:
        n = self._networks.get(network_id)
        return n.name if n is not None else network_id[:12]

    def endpoints(self, network_id: str) -> list[tuple[str, str, Lease | None, EndpointConfig]]:
        """(container id, name, its lease while running, its endpoint) of a network."""
        out = []
        for cid, name in self._users(network_id):
            a = self._attached.get(cid)
            lease = next((x for x in a.leases if x.network_id == network_id), None) if a else None
            ep = next((e for e in a.endpoints if e.network_id == network_id), None) if a else None
            out.append((cid, name, lease, ep or EndpointConfig(network_id)))
        return out

    async def create(
        self,
        name: str,
        driver: str = "",
        subnet: str = "",
        gateway: str = "",
        ip_range: str = "",
        internal: bool = False,
        labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
    ) -> Network:
        validate_name(name, "network name")
        driver = driver or DRIVER_BRIDGE
        if driver in (DRIVER_HOST, DRIVER_NONE):
            raise FailedPrecondition(
                f"only one {driver} network may exist, and it is built in: use --network {driver}"
            )
        if driver != DRIVER_BRIDGE:
            raise InvalidArgument(f"unknown network driver {driver!r}: pallet has bridge only")
        options = dict(options or {})
        for key in options:
            if key not in KNOWN_OPTIONS:
                raise InvalidArgument(
                    f"unknown network option {key!r}: pallet knows {', '.join(KNOWN_OPTIONS)}"
                )
        mtu = _mtu(options.get(OPT_MTU, ""))
        if not subnet and (gateway or ip_range):
            raise InvalidArgument("--gateway and --ip-range need --subnet")
        async with self._lock:
            if any(n.name == name for n in self._networks.values()):
                raise AlreadyExists(f"network with name {name} already exists: choose another name")
            nid = secrets.token_hex(32)
            bridge = options.get(OPT_BRIDGE_NAME) or f"pl-{nid[:12]}"
            check_ifname(bridge, "bridge name")
            if any(n.bridge == bridge for n in self._networks.values()):
                raise AlreadyExists(f"the bridge {bridge} belongs to another network: choose another name")
            if bridge in await self._kernel.links():
                raise FailedPrecondition(
                    f"a link named {bridge} exists already on the host: choose another bridge name"
                )
            taken = await self._taken_subnets()
            if subnet:
                net = ipam.parse_subnet(subnet)
                gw, rng = ipam.check_user_subnet(net, gateway, ip_range, taken)
            else:
                net = ipam.choose_subnet(self._pools, taken)
                gw, rng = net.network_address + 1, None
            n = Network(
                id=nid, name=name, driver=driver, created_ns=self._clock(), subnet=str(net),
                gateway=str(gw), ip_range=str(rng) if rng else "", internal=internal,
                labels=dict(labels or {}), options=options, bridge=bridge, mtu=mtu,
            )
            # The bridge first, the record last: a crash between leaves a bridge of no
            # network, which the next boot removes (it is listed as pallet's before it
            # is made, so also one the user named); a record never lacks its bridge.
            await self._records.write(bridge_insert_writer(n.bridge))
            try:
                await self._kernel.ensure_bridge(n.bridge, n.gateway_cidr, n.mtu)
            except BaseException:
                await self._records.write(bridge_delete_writer(n.bridge))
                raise
            try:
                await self._kernel.enable_forwarding(n.bridge)
                self._crashes.hit("network-create", "bridge")
                await self._events.publish(
                    "network", "create", n.id, {"name": n.name, "type": n.driver},
                    also=network_insert_writer(n),
                )
            except BaseException:
                await self._kernel.delete_bridge(n.bridge)
                await self._records.write(bridge_delete_writer(n.bridge))
                raise
            self._networks[n.id] = n
        self._crashes.hit("network-create", "recorded")  # the rules not yet rebuilt
        await self._rebuilds.sync()
        return n

    async def remove(self, ref: str) -> Network:
        async with self._lock:
            n = self.resolve(ref)
            if n.builtin:
                raise FailedPrecondition(
                    f"{n.name} is a pre-defined network and cannot be removed"
                )
            users = self._users(n.id)
            if users:
                names = ", ".join(sorted(name for _, name in users))
                raise FailedPrecondition(
                    f"network {n.name} has active endpoints ({names}): disconnect or remove "
                    "those containers first"
                )
            await self._events.publish(
                "network", "destroy", n.id, {"name": n.name, "type": n.driver},
                also=network_delete_writer(n.id),
            )
            del self._networks[n.id]
        self._crashes.hit("network-rm", "recorded")  # its bridge still there
        await self._kernel.delete_bridge(n.bridge)
        await self._records.write(bridge_delete_writer(n.bridge))
        self._crashes.hit("network-rm", "unbridged")  # the rules not yet rebuilt
        await self._rebuilds.sync()
        return n

    async def prune(self, labels: Callable[[Network], bool] = lambda n: True) -> list[str]:
        removed = []
        for n in self.networks():
            if n.builtin or self._users(n.id) or not labels(n):
                continue
            try:
                await self.remove(n.id)
            except (FailedPrecondition, NotFound):
                continue  # a container joined it meanwhile, or it went
            removed.append(n.name)
        return removed

    async def _taken_subnets(self) -> list[tuple[str, ipaddress.IPv4Network]]:
        ours = [(f"network {n.name}", n.network) for n in self._bridges()]
        own = {net for _, net in ours}
        routes = [
            (f"the host's route to {r}", r) for r in await self._kernel.routes()
            if r not in own and r.prefixlen > 0
        ]
        return ours + routes

    def _bridges(self) -> list[Network]:
        return [n for n in self._networks.values() if n.driver == DRIVER_BRIDGE]

    # ---- containers: checked at create ------------------------------------------------

    async def prepare(
        self, config: Config, host: HostConfig, req: CreateRequest, find: ContainerFinder
    ) -> Prepared:
        aliases, ipv4 = req.network_aliases, req.ipv4_address
        mode = host.network_mode or DEFAULT_NETWORK
        if mode == DEFAULT_NETWORK and not any(
            n.name == DEFAULT_NETWORK for n in self._networks.values()
        ):
            mode = DRIVER_NONE  # --bridge none: no default network
        mac = config.mac_address
        if mac:
            mac = ipam.check_mac(mac)
        bindings = [b for spec in host.publish for b in ports.parse_publish(spec)]
        exposed = list(config.exposed_ports)
        for spec in req.config.expose:
            for key in ports.parse_expose(spec):
                if key not in exposed:
                    exposed.append(key)
        for b in bindings:
            key = f"{b.container_port}/{b.proto}"
            if key not in exposed:
                exposed.append(key)
        for item in host.dns:
            ipam.parse_address(item, "DNS server (--dns)")
        hosts = tuple(etcfiles.check_extra_host(h) for h in host.extra_hosts)
        networks: tuple[EndpointConfig, ...] = ()
        warnings: list[str] = []
        if mode in (DRIVER_HOST, DRIVER_NONE) or mode.startswith("container:"):
            if aliases or ipv4 or mac:
                raise InvalidArgument(
                    f"--network-alias, --ip and --mac-address need a bridge network, not "
                    f"--network {mode}"
                )
            if req.more_networks:
                raise InvalidArgument(
                    f"a container with --network {mode.split(':')[0]} cannot be on other "
                    f"networks too ({req.more_networks[0].network})"
                )
            if mode.startswith("container:"):
                other = find.resolve(mode.split(":", 1)[1])
                mode = f"container:{other.id}"
                if host.publish or host.publish_all:
                    raise InvalidArgument(
                        "-p/--publish and -P conflict with --network container:…: publish "
                        "the ports on the container whose network it joins"
                    )
            elif mode == DRIVER_HOST and (host.publish or host.publish_all):
                # Docker ignores them with a warning: the ports are the host's already.
                warnings.append(HOST_PORTS_DISCARDED)
                bindings = []
                host = replace(host, publish=(), publish_all=False)
        else:
            n = self.resolve(mode)
            if n.driver != DRIVER_BRIDGE:
                raise InvalidArgument(f"network {n.name} is not a bridge network")
            for a in aliases:
                validate_name(a, "network alias")
            if ipv4:
                ipam.check_static_address(ipv4, n.network, ipaddress.IPv4Address(n.gateway),
                                          (), n.name)
            networks = (EndpointConfig(n.id, tuple(aliases), ipv4, mac),)
            for more in req.more_networks:
                networks += (self._more_network(more, networks),)
            mode = n.name if not n.builtin else DEFAULT_NETWORK
        config = replace(config, exposed_ports=tuple(exposed), mac_address=mac)
        host = replace(host, network_mode=mode, networks=networks, extra_hosts=hosts)
        return Prepared(config, host, tuple(warnings))

    def _more_network(
        self, more: EndpointRequest, before: tuple[EndpointConfig, ...]
    ) -> EndpointConfig:
        """One more network asked for at create, checked as `network connect` checks one."""
        n = self.resolve(more.network)
        if n.driver != DRIVER_BRIDGE:
            raise InvalidArgument(
                f"network {n.name} is not a bridge network: host and none are a container's "
                "only network"
            )
        if any(e.network_id == n.id for e in before):
            raise InvalidArgument(f"network {n.name} is asked for twice")
        for alias in more.aliases:
            validate_name(alias, "network alias")
        if more.ipv4_address:
            ipam.check_static_address(more.ipv4_address, n.network,
                                      ipaddress.IPv4Address(n.gateway), (), n.name)
        return EndpointConfig(n.id, tuple(more.aliases), more.ipv4_address)

    async def check_endpoint(
        self, c: Container, network: str, aliases: tuple[str, ...], ipv4: str
    ) -> EndpointConfig:
        n = self.resolve(network)
        mode = c.host_config.network_mode
        if n.driver != DRIVER_BRIDGE:
            raise FailedPrecondition(
                f"container {c.name} cannot be connected to the {n.name} network: host and "
                "none are chosen at create with --network"
            )
        if mode in (DRIVER_HOST, DRIVER_NONE) or mode.startswith("container:"):
            raise FailedPrecondition(
                f"container {c.name} runs with --network {mode.split(':')[0]}: it cannot be "
                "connected to other networks"
            )
        if any(e.network_id == n.id for e in c.host_config.networks):
            raise AlreadyExists(f"container {c.name} is already connected to network {n.name}")
        for alias in aliases:
            validate_name(alias, "network alias")
        if ipv4:
            # Taken now matters only when it is attached at once (a running container).
            taken = self._taken_addresses(n.id) if c.id in self._attached else set()
            ipam.check_static_address(ipv4, n.network, ipaddress.IPv4Address(n.gateway),
                                      taken, n.name)
        return EndpointConfig(n.id, tuple(aliases), ipv4)

    # ---- containers: a run's attachment -------------------------------------------------

    async def attach(self, c: Container, joined: Container | None) -> Sandbox:
        mode = c.host_config.network_mode
        if mode == DRIVER_HOST:
            hosts, resolv = await asyncio.to_thread(
                lambda: (self._host_hosts(c), self._resolv_conf(c, ""))
            )
            return Sandbox(share_host=True, hosts=hosts, resolv_conf=resolv)
        if mode == DRIVER_NONE:
            return Sandbox(resolv_conf=await asyncio.to_thread(self._resolv_conf, c, ""))
        if mode.startswith("container:"):
            return await asyncio.to_thread(self._join, c, joined)
        await self.release(c.id)  # what an earlier run of it left (a crash between)
        a = self._new_attached(c)
        self._attached[c.id] = a
        try:
            # The host ports first: one that is taken fails the start before anything is made.
            await self._reserve_ports(a, c, keep_going=False)
            path = await self._kernel.make_netns(c.id)
            leases = [await self._lease_one(c, a, ep, "attach") for ep in c.host_config.networks]
            # The veths, and the rebuild of the rules and records, at once (the kernel's
            # worker thread and the firewall's): a rule may name an address a moment before
            # its veth exists, which carries nothing yet. Both are done before the start.
            results = await asyncio.gather(
                self._wire_all(c, a, leases), self._rebuilds.sync(), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            self._crashes.hit("attach", "synced")  # the container not yet started
        except BaseException:
            await self.release(c.id)
            raise
        first = self._networks.get(a.leases[0].network_id) if a.leases else None
        resolv = await asyncio.to_thread(self._resolv_conf, c, first.gateway if first else "")
        return Sandbox(netns_path=str(path), hosts=self._hosts(a), resolv_conf=resolv)

    def _join(self, c: Container, joined: Container | None) -> Sandbox:
        if joined is None or joined.state.status is not Status.RUNNING or not joined.state.pid:
            name = joined.name if joined else c.host_config.network_mode.split(":", 1)[1][:12]
            raise FailedPrecondition(
                f"cannot join the network of container {name}: it is not running; start it first"
            )
        if joined.host_config.network_mode == DRIVER_HOST:
            return Sandbox(share_host=True)
        files = []
        for name in ("hosts", "resolv.conf"):
            try:
                files.append(Path(joined.state_dir, name).read_text())
            except OSError:
                files.append("")
        return Sandbox(netns_path=f"/proc/{joined.state.pid}/ns/net", hosts=files[0],
                       resolv_conf=files[1])

    def _new_attached(self, c: Container) -> Attached:
        h = c.host_config
        return Attached(
            container_id=c.id, name=c.name, hostname=c.config.hostname,
            endpoints=h.networks, dns=h.dns, dns_search=h.dns_search,
            extra_hosts=h.extra_hosts, state_dir=c.state_dir,
        )

    async def _wire_all(self, c: Container, a: Attached, leases: list[Lease]) -> None:
        for lease in leases:
            await self._wire_one(c, a, lease)
        self._crashes.hit("attach", "wired")  # the rules and DNS records maybe not yet rebuilt

    async def _attach_one(
        self, c: Container, a: Attached, ep: EndpointConfig, operation: str
    ) -> Lease:
        lease = await self._lease_one(c, a, ep, operation)
        await self._wire_one(c, a, lease)
        return lease

    async def _lease_one(
        self, c: Container, a: Attached, ep: EndpointConfig, operation: str
    ) -> Lease:
        """An address on `ep`'s network, recorded (with its `connect` event) for `c`."""
        n = self._networks.get(ep.network_id)
        if n is None:
            raise FailedPrecondition(
                f"network {ep.network_id[:12]} of container {c.name} was removed: "
                f"disconnect it (pallet network disconnect -f {ep.network_id[:12]} {c.name})"
            )
        position = max((x.position for x in a.leases), default=-1) + 1
        for waited in range(_COOLING_WAITS + 1):
            async with self._lock:
                try:
                    lease = await self._choose_and_lease(c, n, ep, position)
                except (ResourceExhausted, FailedPrecondition):
                    # Full, or the asked-for address taken, only because addresses a
                    # release freed are cooling: wait for the rebuild that ends it (and
                    # the cool-down after it), then choose again. A network full of live
                    # leases is exhausted at once.
                    if waited == _COOLING_WAITS or not self._rebuilds.blocks(n.id, ep):
                        raise
                else:
                    a.leases.append(lease)
                    break
            await self._rebuilds.sync()
            await self._rebuilds.settled()
        self._crashes.hit(operation, "leased")  # no veth yet
        return lease

    async def _choose_and_lease(
        self, c: Container, n: Network, ep: EndpointConfig, position: int
    ) -> Lease:
        """Under `_lock`: an address chosen and its lease recorded."""
        gw = ipaddress.IPv4Address(n.gateway)
        rng = ipaddress.IPv4Network(n.ip_range) if n.ip_range else None
        # The table's own key refused these: leased by someone this manager does not
        # count (it should not happen; choosing again beats a raw database error).
        refused: set[ipaddress.IPv4Address] = set()
        for _ in range(_LEASE_TRIES):
            taken = self._taken_addresses(n.id) | refused
            if ep.ipv4_address:
                addr = ipam.check_static_address(ep.ipv4_address, n.network, gw, taken, n.name)
            else:
                addr = ipam.choose_address(n.network, gw, rng, taken, n.name)
            lease = Lease(
                network_id=n.id, container_id=c.id, address=str(addr),
                mac=ep.mac_address or ipam.mac_for(addr), ifname=f"eth{position}",
                host_ifname=VETH_PREFIX + secrets.token_hex(5), position=position,
            )
            try:
                # The lease before the veth: an address in use is always leased. Its event
                # is docker's `network connect` of an endpoint attached (at start, or live).
                await self._events.publish(
                    "network", "connect", n.id, _endpoint_attrs(n.name, c.id),
                    also=lease_insert_writer([lease]),
                )
            except sqlite3.IntegrityError as e:
                if not address_taken(e):
                    raise
                log.warning("an address was leased already; choosing another",
                            network_id=n.id, address=str(addr))
                refused.add(addr)
                continue
            return lease
        raise Conflict(
            f"no address could be leased on network {n.name}: the ones chosen "
            f"({', '.join(sorted(map(str, refused)))}) were leased already; try again"
        )

    async def _wire_one(self, c: Container, a: Attached, lease: Lease) -> None:
        """The veth of `lease`: named, addressed, on its bridge, its peer in `c`'s netns."""
        n = self._networks[lease.network_id]
        first = not any(x.network_id != n.id for x in a.leases if x.position < lease.position)
        await self._kernel.attach(Attachment(
            host_ifname=lease.host_ifname, bridge=n.bridge, netns=c.id, ifname=lease.ifname,
            address=f"{lease.address}/{n.network.prefixlen}", mac=lease.mac, mtu=n.mtu,
            gateway=n.gateway if first and not n.internal else "",
        ))

    def _taken_addresses(self, network_id: str) -> set[ipaddress.IPv4Address]:
        taken = {
            ipaddress.IPv4Address(x.address)
            for a in self._attached.values() for x in a.leases if x.network_id == network_id
        }
        taken |= {
            ipaddress.IPv4Address(x.address)
            for leases in self._found.values() for x in leases if x.network_id == network_id
        }
        taken |= {ipaddress.IPv4Address(x) for x in self._rebuilds.cooling(network_id)}
        return taken

    async def _reserve_ports(self, a: Attached, c: Container, keep_going: bool) -> None:
        h = c.host_config
        wanted = [b for spec in h.publish for b in ports.parse_publish(spec)]
        if h.publish_all:
            have = {(b.container_port, b.proto) for b in wanted}
            for item in c.config.exposed_ports:
                port, _, proto = item.partition("/")
                if (int(port), proto or "tcp") not in have:
                    wanted.append(ports.PortBinding(proto or "tcp", "", 0, int(port)))
        for b in wanted:
            try:
                picked = self._reservations.reserve(c.id, b)
            except PalletError as e:
                if not keep_going:
                    raise
                log.warning("a published port could not be reserved again", container_id=c.id,
                            reason=str(e))
                continue
            a.ports.append(replace(b, host_port=picked, host_port_end=0))

    async def release(self, container_id: str) -> None:
        a = self._attached.pop(container_id, None)
        self._reservations.release_all(container_id)
        found = self._found.pop(container_id, [])
        if a is None and not found:
            return
        # Cooling before the first await: once popped, the addresses are no longer taken
        # through `_attached`, while their rows are still in the table and the rules still
        # name them; a start leasing meanwhile must not pick them.
        for lease in (a.leases if a else []) + found:
            self._rebuilds.cool(lease)
        try:
            # The namespace's unmount frees its veths (the kernel deletes them later, in
            # the background); the leases go once the namespace is gone.
            await self._kernel.remove_netns(container_id)
        finally:
            # Also when the unmount failed (the caller logs it): the container is gone
            # from the state already, so its leases and rules go with it, or they would
            # stay until the next boot.
            try:
                await self._delete_leases(container_id)
            except ResourceExhausted:
                self._found[container_id] = (a.leases if a else []) + found
                self._unreleased.add(container_id)
                if self._retrying is None or self._retrying.done():
                    self._retrying = asyncio.create_task(self._retry_releases())
                raise
            finally:
                # The rules and records that still name it go in a rebuild nobody waits
                # for: what they point at is gone, and its addresses are not leased again
                # until they do.
                self._rebuilds.soon()

    async def _retry_releases(self) -> None:
        """Delete the leases a full disk kept, once a second, until every one is gone.

        Under the lock leases are made under, and only for a container not attached again:
        a new run's leases are never among those deleted (its namespace went with the first
        attempt; only the rows are left)."""
        while self._unreleased:
            await asyncio.sleep(RELEASE_RETRY_S)
            for container_id in list(self._unreleased):
                async with self._lock:
                    if container_id in self._attached or container_id not in self._found:
                        self._unreleased.discard(container_id)  # a start or a boot saw to it
                        continue
                    try:
                        await self._delete_leases(container_id)
                    except ResourceExhausted:
                        break  # still full: the others would fail the same way
                    except Exception as e:  # noqa: BLE001 - the others are still tried
                        log.warning("releasing a container's leases failed; retrying",
                                    container_id=container_id, reason=str(e))
                        continue
                    self._found.pop(container_id, None)
                    self._unreleased.discard(container_id)
                log.info("leases kept by a full disk released", container_id=container_id)
                self._rebuilds.soon()

    async def connect_live(self, c: Container, endpoint: EndpointConfig) -> bool:
        a = self._attached.get(c.id)
        if a is None:
            return False  # not attached (a host/none mode is refused before): next start does it
        a.endpoints = (*a.endpoints, endpoint)
        try:
            await self._attach_one(c, a, endpoint, "connect")
        except BaseException:
            await self._drop_lease(a, endpoint.network_id)
            a.endpoints = tuple(e for e in a.endpoints if e.network_id != endpoint.network_id)
            raise
        self._crashes.hit("connect", "wired")  # hosts, rules and DNS records not yet
        await self._rewrite_hosts(a)
        await self._rebuilds.sync()
        self._crashes.hit("connect", "synced")  # the container's record not yet
        return True

    async def disconnect_live(self, c: Container, network_id: str) -> bool:
        a = self._attached.get(c.id)
        if a is None:
            return False
        a.endpoints = tuple(e for e in a.endpoints if e.network_id != network_id)
        await self._drop_lease(a, network_id)
        self._crashes.hit("disconnect", "detached")  # hosts, rules and DNS records not yet
        await self._rewrite_hosts(a)
        await self._rebuilds.sync()
        self._crashes.hit("disconnect", "synced")  # the container's record not yet
        return True

    async def rename(self, c: Container) -> None:
        """The container's name in the DNS records is `c.name` (the resolver answers the
        new one and no longer the old, on every network it is on). Not in its /etc/hosts:
        that has its hostname, which a rename leaves as it is (docker's)."""
        a = self._attached.get(c.id)
        if a is None:
            return  # not running on a bridge network: its next start publishes the name
        a.name = c.name
        try:
            await self._rebuilds.sync()
        except Exception as e:  # noqa: BLE001 - logged once, here; the next change retries
            log.warning("the renamed container's DNS records were not rebuilt; the next "
                        "change rebuilds them", container_id=c.id, reason=str(e))

    async def _drop_lease(self, a: Attached, network_id: str) -> None:
        for lease in [x for x in a.leases if x.network_id == network_id]:
            await self._kernel.detach(lease.host_ifname)
            a.leases.remove(lease)
        await self._delete_leases(a.container_id, network_id)

    async def _delete_leases(self, container_id: str, network_id: str = "") -> None:
        """The container's leases deleted (on one network, or all), each with docker's
        `network disconnect` in the same transaction: one per lease that was there, so a
        release done twice, or at boot for a run that ended while palletd was down,
        announces each endpoint's end once."""
        names = {n.id: n.name for n in self._networks.values()}

        def change(conn: sqlite3.Connection) -> tuple[None, list[Notice]]:
            gone = delete_leases(conn, container_id, network_id)
            return None, [
                Notice("network", "disconnect", nid,
                       _endpoint_attrs(names.get(nid, nid[:12]), container_id))
                for nid in gone
            ]

        await self._events.commit(change)


    # ---- the container's /etc files ---------------------------------------------------

    def _hosts(self, a: Attached) -> str:
        return etcfiles.hosts(a.hostname, [x.address for x in a.leases], a.extra_hosts,
                              self._host_gateway)

    def _host_hosts(self, c: Container) -> str:
        return etcfiles.host_hosts(c.host_config.extra_hosts, self._host_gateway)

    def _host_gateway(self) -> str:
        default = next((n for n in self._networks.values() if n.name == DEFAULT_NETWORK), None)
        if default is None:
            raise FailedPrecondition("host-gateway needs the default network (palletd runs with --bridge none)")
        return default.gateway

    async def _rewrite_hosts(self, a: Attached) -> None:
        """After a live connect or disconnect: the running container's /etc/hosts."""
        try:
            await asyncio.to_thread(write_network_files, Path(a.state_dir), self._hosts(a), "")
        except OSError as e:
            log.warning("cannot rewrite /etc/hosts", container_id=a.container_id, reason=str(e))

    def _resolv_conf(self, c: Container, nameserver: str) -> str:
        return etcfiles.resolv_conf(c.host_config, self._host_resolv_conf, nameserver)

    # ---- inspect ---------------------------------------------------------------------

    def view(self, c: Container) -> NetworkView:
        a = self._attached.get(c.id)
        endpoints = []
        for ep in c.host_config.networks:
            n = self._networks.get(ep.network_id)
            lease = next((x for x in a.leases if x.network_id == ep.network_id), None) if a else None
            aliases = (*ep.aliases, c.id[:12])
            if n is None:
                endpoints.append(EndpointView(ep.network_id, ep.network_id[:12], aliases=aliases,
                                              static_address=ep.ipv4_address))
                continue
            endpoints.append(EndpointView(
                network_id=n.id, network_name=n.name,
                address=lease.address if lease else "",
                prefix_len=n.network.prefixlen if lease else 0,
                gateway=n.gateway if lease else "",
                mac=lease.mac if lease else "", aliases=aliases,
                ifname=lease.ifname if lease else "", static_address=ep.ipv4_address,
            ))
        mode = c.host_config.network_mode
        if mode in (DRIVER_HOST, DRIVER_NONE):
            n = next((x for x in self._networks.values() if x.name == mode), None)
            if n is not None:
                endpoints.append(EndpointView(n.id, n.name))
        published = [
            PortView(b.proto, b.container_port, b.host_ip or "0.0.0.0", b.host_port)
            for b in (a.ports if a else ())
        ]
        asked = [
            PortView(b.proto, b.container_port, b.host_ip, b.host_port, b.host_port_end)
            for spec in c.host_config.publish for b in ports.parse_publish(spec)
        ]
        sandbox = ""
        if a is not None:
            sandbox = str(self._kernel.netns_path(c.id))
        return NetworkView(endpoints=tuple(endpoints), ports=tuple(published), sandbox_key=sandbox,
                           asked=tuple(asked))


def _endpoint_attrs(network_name: str, container_id: str) -> dict[str, str]:
    """docker's attributes of a network connect/disconnect event (every lease is on a
    bridge network)."""
    return {"container": container_id, "name": network_name, "type": DRIVER_BRIDGE}


def _bridged(c: Container) -> bool:
    """On bridge networks (in a namespace of pallet's own), not host, none or container:."""
    mode = c.host_config.network_mode
    return mode not in (DRIVER_HOST, DRIVER_NONE) and not mode.startswith("container:")


def _mtu(text: str) -> int:
    if not text:
        return 1500
    try:
        return check_mtu(int(text))
    except ValueError:
        raise InvalidArgument(f"invalid MTU {text!r}: give a number between 68 and 65535") from None
