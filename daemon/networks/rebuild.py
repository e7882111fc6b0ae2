"""Rebuilding what the kernel's rules and the resolver hold from the networks' state.

Owns: `Attached`, what the network manager holds of a running container (the manager
makes and changes them; the rebuilds read them); the rebuilds of the firewall's rules
(`Rules`, replaced whole) and the resolver's records (`Resolver`) from the networks and
the running containers' attachments, at most one in flight, coalesced by generation (a
rebuild covers every change asked for before it began); the rebuilds and cool-downs that
run in the background, and their tasks; and the cooling addresses: those of released
leases that the rules, the records or a dying veth may still name, not to be leased
again until a rebuild that dropped them from the rules and the records has seen the
veth gone. Must not: change the networks, the leases or the attachments (it reads them:
the network manager owns them), or wire anything but the delete of a released veth.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from pallet.daemon.networks.dns import DnsClient, DnsNetwork, DnsRecords, ResolvConf, read_resolv_conf
from pallet.daemon.networks.firewall import BridgeRules, PortRule
from pallet.daemon.networks.kernel import Kernel
from pallet.daemon.networks.model import DRIVER_BRIDGE, EndpointConfig, Lease, Network
from pallet.daemon.networks.ports import PortBinding
from pallet.v1.errors import PalletError

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Attached:
    """A running container's part of the networks: what DNS, rules and inspect need."""

    container_id: str
    name: str
    hostname: str
    endpoints: tuple[EndpointConfig, ...]
    dns: tuple[str, ...]
    dns_search: tuple[str, ...]
    leases: list[Lease] = field(default_factory=list)
    ports: list[PortBinding] = field(default_factory=list)
    state_dir: str = ""  # the bundle, whose hosts file is the running container's
    extra_hosts: tuple[str, ...] = ()


class Rules(Protocol):
    """The firewall (`firewall.Firewall`): pallet's rules replaced whole."""

    def apply(self, bridges: Sequence[BridgeRules], ports: Sequence[PortRule]) -> None: ...


class Resolver(Protocol):
    """The embedded DNS's process (`dns.DnsSupervisor`)."""

    async def ensure_running(self) -> int: ...

    async def publish(self, records: DnsRecords) -> None: ...


class Rebuilds:
    """The rules and records of one palletd's networks, kept true to `networks` and
    `attached` (the manager's own maps, read here, never written)."""

    def __init__(
        self,
        kernel: Kernel,
        firewall: Rules,
        resolver: Resolver,
        host_resolv_conf: Path,
        networks: Mapping[str, Network],
        attached: Mapping[str, Attached],
        veth_prefix: str,
    ) -> None:
        self._kernel = kernel
        self._firewall = firewall
        self._resolver = resolver
        self._host_resolv_conf = host_resolv_conf
        self._networks = networks
        self._attached = attached
        self._veth_prefix = veth_prefix
        # One rebuild of the rules and records at a time, each from the state as it is
        # then: two in flight could land in either order and leave the older one. This
        # owns the one in flight; a caller waits for it shielded, so a cancelled caller (a
        # start whose client went away) never lets a second one start beside it.
        self._rebuild: asyncio.Task[None] | None = None
        # Rebuilds are coalesced: every change takes a generation, and a rebuild covers
        # every change made before it began, so twenty starts at once wait for two or
        # three rebuilds, not twenty in a row.
        self._wanted = 0
        self._done = 0
        # Addresses of released leases (network id -> address -> the veth's host end) that
        # the rules and records may still name, or whose veth (same address, same MAC) may
        # still be on the bridge: not handed out again until a rebuild that dropped them
        # from the rules and the records has seen the veth gone.
        self._cooling: dict[str, dict[str, str]] = {}
        # Rebuilds a release asked for and did not wait for (run --rm waits for none), and
        # the cool-downs after rebuilds.
        self._later: set[asyncio.Task[None]] = set()

    async def aclose(self) -> None:
        """The last releases' rebuilds (and the cool-downs they start) land."""
        while self._later or (self._rebuild is not None and not self._rebuild.done()):
            await self.settled()
            if self._rebuild is not None:
                await asyncio.gather(self._rebuild, return_exceptions=True)

    # ---- cooling ----------------------------------------------------------------------

    def cool(self, lease: Lease) -> None:
        """A released lease's address: out of use until the rules, records and veth are gone."""
        self._cooling.setdefault(lease.network_id, {})[lease.address] = lease.host_ifname

    def cooling(self, network_id: str) -> set[str]:
        return set(self._cooling.get(network_id, {}))

    def blocks(self, network_id: str, ep: EndpointConfig) -> bool:
        """Whether cooling addresses are what keeps `ep` from an address: its --ip, or
        (with none asked for) any of the network's."""
        cooling = self._cooling.get(network_id, {})
        return ep.ipv4_address in cooling if ep.ipv4_address else bool(cooling)

    # ---- rebuilds ---------------------------------------------------------------------

    async def sync(self) -> None:
        """Rules and resolver records rebuilt whole from the state (idempotent): on return,
        they reflect every change made before the call."""
        self._wanted += 1
        wanted = self._wanted
        while self._done < wanted:
            task = self._rebuild
            if task is None or task.done():
                task = self._rebuild = asyncio.create_task(self._rebuild_once())
            # Shielded: cancelling this caller leaves the rebuild running (and owned), and
            # the next one starts only after it has landed. One that began before this
            # change does not cover it: the loop waits for the one after.
            await asyncio.shield(task)

    def soon(self) -> None:
        """A rebuild in the background (its failure logged), owned until it ends."""

        async def rebuild() -> None:
            try:
                await self.sync()
            except Exception as e:  # noqa: BLE001 - logged once, here; the next change retries
                log.warning("rebuilding the network rules failed", reason=str(e))

        self._own(rebuild())

    async def settled(self) -> None:
        """The background rebuilds and cool-downs under way now have ended."""
        if self._later:
            await asyncio.gather(*self._later, return_exceptions=True)

    def _own(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def _rebuild_once(self) -> None:
        covered = self._wanted
        cooled = {nid: dict(addrs) for nid, addrs in self._cooling.items()}
        complete = await self._apply()
        self._done = covered
        if complete and cooled:
            # Apart from the rebuild: the starts waiting for it do not wait for a veth's
            # delete too (a start that finds only cooling addresses waits for it).
            self._own(self._cool_down(cooled))

    async def _cool_down(self, cooled: dict[str, dict[str, str]]) -> None:
        """After a rebuild that dropped them from the rules and records: the cooled
        addresses whose veths are gone may be leased again. The kernel frees a veth
        after its namespace's unmount, in the background, and never while a process still
        holds the namespace; one still there is deleted here (a netlink delete blocks
        ~30 ms in the kernel: not in the release that `run --rm` waits for)."""
        try:
            present = set(await self._kernel.links(self._veth_prefix))
        except PalletError as e:
            log.warning("the host's links could not be listed; released addresses keep "
                        "cooling", reason=str(e))
            return
        for nid, addrs in cooled.items():
            for address, host_ifname in addrs.items():
                if host_ifname in present:
                    try:
                        await self._kernel.detach(host_ifname)
                    except PalletError as e:
                        log.warning("a released container's veth could not be deleted; its "
                                    "address stays out of use", host_ifname=host_ifname,
                                    address=address, reason=str(e))
                        continue
                left = self._cooling.get(nid, {})
                if left.get(address) == host_ifname:
                    del left[address]
                if not left:
                    self._cooling.pop(nid, None)

    async def _apply(self) -> bool:
        """One rebuild (only ever one in flight: `sync`); whether the rules and the
        resolver's records both took it."""
        bridges = [BridgeRules(n.bridge, n.subnet, n.internal) for n in self._bridges()]
        if not bridges:
            return True  # no bridge network (--bridge none): nothing of ours in the host's tables
        rules = []
        for a in self._attached.values():
            if not a.leases:
                continue
            target = a.leases[0].address
            for b in a.ports:
                rules.append(PortRule(b.proto, b.host_ip, b.host_port, target, b.container_port))
        await asyncio.to_thread(self._firewall.apply, bridges, rules)
        try:
            host = await asyncio.to_thread(read_resolv_conf, self._host_resolv_conf)
            await self._resolver.publish(self._dns_records(host))
        except (PalletError, OSError) as e:
            # A full run root, say: traffic flows, the resolver keeps its last records, and
            # the next change that finds room writes them all (until then a released
            # container's name may still resolve: its addresses keep cooling).
            log.warning("the embedded DNS resolver did not take the records", reason=str(e))
            return False
        return True

    def _bridges(self) -> list[Network]:
        return [n for n in self._networks.values() if n.driver == DRIVER_BRIDGE]

    def _dns_records(self, host: ResolvConf) -> DnsRecords:
        host_servers, host_search = host.nameservers, host.search
        names: dict[str, dict[str, list[str]]] = {n.id: {} for n in self._bridges()}
        clients = []
        for a in self._attached.values():
            for lease in a.leases:
                table = names.setdefault(lease.network_id, {})
                ep = next((e for e in a.endpoints if e.network_id == lease.network_id), None)
                for name in (a.name, a.container_id[:12], a.hostname, *(ep.aliases if ep else ())):
                    if name:
                        table.setdefault(name.lower(), []).append(lease.address)
                clients.append(DnsClient(
                    address=lease.address,
                    upstreams=a.dns or host_servers,
                    search=a.dns_search or host_search,
                    networks=tuple(
                        self._networks[x.network_id].gateway for x in a.leases
                        if x.network_id in self._networks
                    ),
                ))
        networks = [
            DnsNetwork(gateway=n.gateway, names={k: tuple(v) for k, v in names[n.id].items()})
            for n in self._bridges() if n.id in names
        ]
        return DnsRecords(networks=tuple(networks), clients=tuple(clients))
