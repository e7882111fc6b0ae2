"""NetworkManager against fake kernel, firewall, resolver and port reservations: what is
made, recorded and undone, without root."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from pallet.daemon.containers.model import Config, Container, ContainerState, CreateRequest, ConfigRequest, HostConfig, Status
from pallet.daemon.events.bus import EventBus, RetentionPolicy
from pallet.daemon.networks import ports
from pallet.daemon.networks.attachment import Attachment
from pallet.daemon.networks.manager import NetworkManager
from pallet.daemon.networks.model import EndpointConfig, Lease
from pallet.daemon.networks.store import NetworkRecords, bridge_insert_writer, lease_insert_writer
from pallet.daemon.store.db import Database
from pallet.v1.errors import AlreadyExists, FailedPrecondition, Internal, InvalidArgument, NotFound, ResourceExhausted


@dataclass
class FakeKernel:
    run_root: Path
    netns: set[str] = field(default_factory=set)
    veths: dict[str, Attachment] = field(default_factory=dict)
    bridges: dict[str, str] = field(default_factory=dict)
    host_routes: list[ipaddress.IPv4Network] = field(default_factory=list)
    fail_attach: bool = False
    fail_remove: bool = False
    # Set by a test: remove_netns signals `removing`, then waits for it before unmounting.
    hold_remove: asyncio.Event | None = None
    removing: asyncio.Event = field(default_factory=asyncio.Event)
    # A process holds every namespace: an unmount leaves its veths where they are.
    held_netns: bool = False

    def netns_path(self, name: str) -> Path:
        return self.run_root / "netns" / name

    async def start(self) -> None: ...
    async def close(self) -> None: ...

    async def make_netns(self, name: str) -> Path:
        assert name not in self.netns
        self.netns.add(name)
        return self.netns_path(name)

    async def remove_netns(self, name: str) -> None:
        if self.hold_remove is not None:
            self.removing.set()
            await self.hold_remove.wait()
        if self.fail_remove:
            raise Internal("unmount failed (fake)")
        self.netns.discard(name)
        for k in [k for k, a in self.veths.items() if a.netns == name and not self.held_netns]:
            del self.veths[k]

    async def list_netns(self) -> list[str]:
        return sorted(self.netns)

    async def ensure_bridge(self, name: str, gateway: str, mtu: int = 1500) -> None:
        self.bridges[name] = gateway

    async def delete_bridge(self, name: str) -> None:
        self.bridges.pop(name, None)

    async def attach(self, a: Attachment) -> None:
        if self.fail_attach:
            raise Internal("attach failed (fake)")
        assert a.bridge in self.bridges and a.netns in self.netns
        self.veths[a.host_ifname] = a

    async def detach(self, host_ifname: str) -> None:
        self.veths.pop(host_ifname, None)

    async def links(self, prefix: str = "") -> list[str]:
        return [x for x in (*self.veths, *self.bridges) if x.startswith(prefix)]

    async def routes(self) -> list[ipaddress.IPv4Network]:
        return list(self.host_routes)

    async def enable_forwarding(self, bridge: str) -> None: ...


@dataclass
class FakeFirewall:
    applied: list[tuple[Any, Any]] = field(default_factory=list)
    # Set by a test: each apply (on its thread) says it entered, then waits for `gate`.
    gate: threading.Event | None = None
    entered: list[threading.Event] = field(default_factory=lambda: [threading.Event() for _ in range(4)])
    calls: int = 0
    active: int = 0
    most_active: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def apply(self, bridges: Sequence[Any], rules: Sequence[Any]) -> None:
        with self.lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
            call, self.calls = self.calls, self.calls + 1
        try:
            if self.gate is not None:
                if call < len(self.entered):
                    self.entered[call].set()
                assert self.gate.wait(60), "the test never opened the gate"
            self.applied.append((list(bridges), list(rules)))
        finally:
            with self.lock:
                self.active -= 1

    async def wait_entered(self, call: int, timeout: float = 30) -> bool:
        """Whether apply number `call` (counted from 0) entered within `timeout` (a bound)."""
        return await asyncio.to_thread(self.entered[call].wait, timeout)


@dataclass
class FakeResolver:
    published: list[Any] = field(default_factory=list)
    fail: bool = False

    async def ensure_running(self) -> int:
        return 1

    async def publish(self, records: Any) -> None:
        if self.fail:
            raise Internal("the records file cannot be written (fake)")
        self.published.append(records)


@dataclass
class Env:
    manager: NetworkManager
    kernel: FakeKernel
    firewall: FakeFirewall
    resolver: FakeResolver
    db: Database


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    db = Database(tmp_path / "pallet.db")
    await db.start()
    events = EventBus(db, RetentionPolicy(1000, 3600, 1 << 20))
    await events.start()
    kernel, firewall, resolver = FakeKernel(tmp_path), FakeFirewall(), FakeResolver()
    (tmp_path / "resolv.conf").write_text("nameserver 10.0.0.53\nsearch corp.test\n")
    m = NetworkManager(NetworkRecords(db), events, kernel, firewall, resolver,
                       ports.PortReservations(), host_resolv_conf=tmp_path / "resolv.conf")
    users: dict[str, list[tuple[str, str]]] = {}
    m.set_users(lambda nid: users.get(nid, []))
    await m.start()
    await m.reconcile([])
    yield Env(m, kernel, firewall, resolver, db)
    await events.aclose()
    await db.aclose()


def _container(tmp_path: Path, name: str, host: HostConfig) -> Container:
    state_dir = tmp_path / name
    state_dir.mkdir(exist_ok=True)
    (state_dir / "hosts").write_text("")
    return Container(
        id=(name * 64)[:64].encode().hex()[:64], name=name, image_id="sha256:" + "a" * 64,
        config=Config(image="busybox", hostname=name), state=ContainerState(Status.RUNNING, pid=5),
        created_ns=1, state_dir=str(state_dir), host_config=host,
    )


async def _prepared(env: Env, tmp_path: Path, name: str, **host: Any) -> Container:
    req = CreateRequest(ConfigRequest(image="busybox"), HostConfig(**host))
    prepared = await env.manager.prepare(Config(image="busybox", hostname=name), req.host_config, req, None)  # type: ignore[arg-type]
    return replace(_container(tmp_path, name, prepared.host), config=prepared.config)


async def test_the_builtin_networks_exist_and_the_default_bridge_is_made(env: Env) -> None:
    names = [n.name for n in env.manager.networks()]
    assert names == ["bridge", "host", "none"]
    bridge = env.manager.resolve("bridge")
    assert bridge.subnet == "172.17.0.0/16" and env.kernel.bridges["pallet0"] == "172.17.0.1/16"
    with pytest.raises(FailedPrecondition, match="pre-defined"):
        await env.manager.remove("bridge")


async def test_a_subnet_skips_host_routes_and_names_are_unique(env: Env) -> None:
    env.kernel.host_routes.append(ipaddress.IPv4Network("172.18.0.0/16"))
    n = await env.manager.create("web")
    assert n.subnet == "172.19.0.0/16" and n.bridge == f"pl-{n.id[:12]}"
    with pytest.raises(AlreadyExists):
        await env.manager.create("web")
    with pytest.raises(NotFound):
        env.manager.resolve("nope")


async def test_attach_leases_wires_and_release_undoes_it(env: Env, tmp_path: Path) -> None:
    c = await _prepared(env, tmp_path, "one")
    sandbox = await env.manager.attach(c, None)
    assert sandbox.netns_path.endswith(c.id)
    assert "nameserver 172.17.0.1" in sandbox.resolv_conf and "search corp.test" in sandbox.resolv_conf
    [veth] = env.kernel.veths.values()
    assert veth.address == "172.17.0.2/16" and veth.gateway == "172.17.0.1" and veth.ifname == "eth0"
    records = env.resolver.published[-1]
    assert any("one" in net.names for net in records.networks)
    await env.manager.release(c.id)
    assert not env.kernel.veths and not env.kernel.netns
    assert await NetworkRecords(env.db).load_leases() == []


async def test_a_failed_attach_leaves_no_lease_namespace_or_veth(env: Env, tmp_path: Path) -> None:
    c = await _prepared(env, tmp_path, "two")
    env.kernel.fail_attach = True
    with pytest.raises(Internal):
        await env.manager.attach(c, None)
    assert not env.kernel.netns and not env.kernel.veths
    assert await NetworkRecords(env.db).load_leases() == []


async def test_a_static_address_is_not_handed_out_twice(env: Env, tmp_path: Path) -> None:
    await env.manager.create("fixed", subnet="10.9.0.0/24")
    a = await _prepared(env, tmp_path, "aa", network_mode="fixed")
    a = replace(a, host_config=replace(a.host_config, networks=(replace(a.host_config.networks[0], ipv4_address="10.9.0.7"),)))
    await env.manager.attach(a, None)
    b = replace(a, id="b" * 64, name="bb")
    with pytest.raises(FailedPrecondition, match="in use"):
        await env.manager.attach(b, None)
    assert {x.address for x in await NetworkRecords(env.db).load_leases()} == {"10.9.0.7"}


async def test_a_restart_keeps_leases_of_running_containers_and_drops_the_rest(env: Env, tmp_path: Path) -> None:
    keep = await _prepared(env, tmp_path, "keep")
    gone = await _prepared(env, tmp_path, "gone")
    await env.manager.attach(keep, None)
    await env.manager.attach(gone, None)
    # A new manager over the same database and kernel: palletd after a kill -9.
    events = EventBus(env.db, RetentionPolicy(1000, 3600, 1 << 20))
    await events.start()
    again = NetworkManager(NetworkRecords(env.db), events, env.kernel, env.firewall, env.resolver,
                           ports.PortReservations())
    await again.start()
    await again.reconcile([keep])
    leases = await NetworkRecords(env.db).load_leases()
    assert [x.container_id for x in leases] == [keep.id]
    assert env.kernel.netns == {keep.id}
    assert [a.netns for a in env.kernel.veths.values()] == [keep.id]
    # A new container does not get the kept one's address.
    new = await _prepared(env, tmp_path, "new")
    await again.attach(new, None)
    addrs = [x.address for x in await NetworkRecords(env.db).load_leases()]
    assert len(set(addrs)) == 2
    await events.aclose()


async def _network_events(db: Database) -> list[tuple[str, str, dict[str, str]]]:
    rows = await db.run(lambda conn: conn.execute(
        "SELECT action, actor_id, attributes FROM events WHERE type = 'network' ORDER BY seq"
    ).fetchall())
    return [(str(r[0]), str(r[1]), json.loads(r[2])) for r in rows]


async def test_attach_and_release_announce_each_endpoint_once(env: Env, tmp_path: Path) -> None:
    back = await env.manager.create("back")
    c = await _prepared(env, tmp_path, "ends")
    c = replace(c, host_config=replace(c.host_config, networks=(*c.host_config.networks, EndpointConfig(back.id))))
    bridge = next(n for n in env.manager.networks() if n.name == "bridge")
    start = len(await _network_events(env.db))  # back's create
    await env.manager.attach(c, None)
    attrs = {"bridge": {"container": c.id, "name": "bridge", "type": "bridge"},
             "back": {"container": c.id, "name": "back", "type": "bridge"}}
    assert (await _network_events(env.db))[start:] == [
        ("connect", bridge.id, attrs["bridge"]), ("connect", back.id, attrs["back"])]
    await env.manager.release(c.id)
    await env.manager.release(c.id)  # twice: nothing more to announce
    assert (await _network_events(env.db))[start + 2:] == [
        ("disconnect", bridge.id, attrs["bridge"]), ("disconnect", back.id, attrs["back"])]


async def test_a_failed_attach_announces_the_release_of_what_it_attached(env: Env, tmp_path: Path) -> None:
    c = await _prepared(env, tmp_path, "half")
    env.kernel.fail_attach = True  # after the lease: the endpoint was connected, then released
    with pytest.raises(Internal):
        await env.manager.attach(c, None)
    assert [a for a, _, _ in await _network_events(env.db)] == ["connect", "disconnect"]


async def test_a_release_done_at_boot_announces_the_disconnect(env: Env, tmp_path: Path) -> None:
    keep = await _prepared(env, tmp_path, "keep")
    gone = await _prepared(env, tmp_path, "gone")
    ended = await _prepared(env, tmp_path, "ended")
    for c in (keep, gone, ended):
        await env.manager.attach(c, None)
    # palletd after a kill -9: `ended` exited while it was down (its end is settled at
    # boot, which releases it), `gone` is not running at all (reconcile releases it).
    events = EventBus(env.db, RetentionPolicy(1000, 3600, 1 << 20))
    await events.start()
    again = NetworkManager(NetworkRecords(env.db), events, env.kernel, env.firewall, env.resolver,
                           ports.PortReservations())
    await again.start()
    await again.release(ended.id)
    await again.reconcile([keep])
    await again.release(ended.id)
    after = (await _network_events(env.db))[3:]
    assert [(a, attrs["container"]) for a, _, attrs in after] == [
        ("disconnect", ended.id), ("disconnect", gone.id)]
    await events.aclose()


async def test_a_restart_makes_a_running_containers_interfaces_match_its_record(
    env: Env, tmp_path: Path
) -> None:
    """palletd died in a live connect or disconnect before recording it: the restart
    undoes the unrecorded connect and redoes the unrecorded disconnect."""
    side = await env.manager.create("side", subnet="10.8.0.0/24")
    joined = await _prepared(env, tmp_path, "joined")
    left = await _prepared(env, tmp_path, "left")
    await env.manager.attach(joined, None)
    await env.manager.attach(left, None)
    endpoint = await env.manager.check_endpoint(joined, "side", (), "")
    await env.manager.connect_live(joined, endpoint)  # recorded: not (joined keeps its record)
    on_side = replace(left, host_config=replace(
        left.host_config, networks=(*left.host_config.networks, endpoint)))
    await env.manager.connect_live(on_side, endpoint)
    await env.manager.disconnect_live(on_side, side.id)  # recorded: not (on_side stays)
    events = EventBus(env.db, RetentionPolicy(1000, 3600, 1 << 20))
    await events.start()
    again = NetworkManager(NetworkRecords(env.db), events, env.kernel, env.firewall, env.resolver,
                           ports.PortReservations())
    await again.start()
    await again.reconcile([joined, on_side])
    leases = await NetworkRecords(env.db).load_leases()
    assert sorted((x.container_id == joined.id, x.network_id == side.id) for x in leases) == [
        (False, False), (False, True), (True, False)]
    by_ifname = {(a.netns, a.ifname) for a in env.kernel.veths.values()}
    assert by_ifname == {(joined.id, "eth0"), (left.id, "eth0"), (left.id, "eth1")}
    assert [e.address for e in again.view(on_side).endpoints if e.network_id == side.id] != [""]
    assert [e.network_name for e in again.view(joined).endpoints] == ["bridge"]
    await events.aclose()


async def test_a_restart_removes_a_bridge_of_no_network_whatever_its_name(env: Env) -> None:
    """A create or remove palletd died in left a bridge the user named: pallet listed it
    as its own before making it, so the next boot removes it (and only it)."""
    kept = await env.manager.create("kept", options={"com.docker.network.bridge.name": "mine0"})
    gone = await env.manager.create("gone", options={"com.docker.network.bridge.name": "mine1"})
    await env.manager.remove("gone")
    env.kernel.bridges["mine1"] = gone.gateway_cidr  # as if killed before its deletion
    await NetworkRecords(env.db).write(bridge_insert_writer("mine1"))
    env.kernel.bridges["stranger0"] = "10.0.0.1/24"  # the administrator's: never touched
    events = EventBus(env.db, RetentionPolicy(1000, 3600, 1 << 20))
    await events.start()
    again = NetworkManager(NetworkRecords(env.db), events, env.kernel, env.firewall, env.resolver,
                           ports.PortReservations())
    await again.start()
    await again.reconcile([])
    assert sorted(env.kernel.bridges) == ["mine0", "pallet0", "stranger0"]
    assert await NetworkRecords(env.db).load_bridges() == [kept.bridge]
    await events.aclose()


async def test_bad_create_input(env: Env) -> None:
    with pytest.raises(InvalidArgument, match="need --subnet"):
        await env.manager.create("x1", gateway="10.0.0.1")
    with pytest.raises(FailedPrecondition, match="overlaps network bridge"):
        await env.manager.create("x2", subnet="172.17.1.0/24")
    with pytest.raises(InvalidArgument, match="unknown network option"):
        await env.manager.create("x3", options={"foo": "bar"})
    with pytest.raises(FailedPrecondition, match="built in"):
        await env.manager.create("x4", driver="host")
    assert [n.name for n in env.manager.networks()] == ["bridge", "host", "none"]


async def test_extra_hosts_ipv4_ipv6_and_the_host_gateway(env: Env, tmp_path: Path) -> None:
    c = await _prepared(env, tmp_path, "hosts", extra_hosts=("db:10.1.2.3", "v6=[::1]", "gw:host-gateway"))
    assert c.host_config.extra_hosts == ("db:10.1.2.3", "v6:::1", "gw:host-gateway")
    sandbox = await env.manager.attach(c, None)
    lines = sandbox.hosts.splitlines()
    assert "10.1.2.3\tdb" in lines and "::1\tv6" in lines and "172.17.0.1\tgw" in lines
    with pytest.raises(InvalidArgument, match="not an IP address"):
        await _prepared(env, tmp_path, "badhost", extra_hosts=("db:nowhere",))


async def test_rebuilds_are_coalesced_and_each_start_sees_its_own_rules(env: Env, tmp_path: Path) -> None:
    containers = [
        await _prepared(env, tmp_path, f"c{i}", publish=(f"{8000 + i}:80",)) for i in range(6)
    ]
    before = len(env.firewall.applied)
    wanted = env.manager._rebuilds._wanted
    # A rebuild in progress (its apply held) while all six lease and wire: once it is
    # done, one rebuild covers the six changes, however the machine schedules them.
    env.firewall.gate = gate = threading.Event()
    calls = env.firewall.calls
    running = asyncio.create_task(env.manager._rebuilds.sync())
    assert await env.firewall.wait_entered(calls)
    starts = asyncio.gather(*(env.manager.attach(c, None) for c in containers))
    for _ in range(10_000):  # bounded: a start that never asks for a rebuild fails the test
        if env.manager._rebuilds._wanted >= wanted + 1 + len(containers):
            break
        await asyncio.sleep(0.001)
    gate.set()
    await running
    await starts
    rebuilds = len(env.firewall.applied) - before
    assert rebuilds == 2, rebuilds  # the one held, and one for the six
    _, rules = env.firewall.applied[-1]
    assert sorted(r.host_port for r in rules) == [8000 + i for i in range(6)]
    for c in containers:
        await env.manager.release(c.id)
    await env.manager._rebuilds.settled()


async def test_a_cancelled_start_leaves_its_rebuild_running_alone(env: Env, tmp_path: Path) -> None:
    """gRPC cancels a start whose client went away, in the middle of its rebuild: the next
    rebuild starts only after that one has landed, so the newest state lands last."""
    gone = await _prepared(env, tmp_path, "gone", publish=("8101:80",))
    kept = await _prepared(env, tmp_path, "kept", publish=("8102:80",))
    env.firewall.gate = gate = threading.Event()
    calls = env.firewall.calls
    first = asyncio.create_task(env.manager.attach(gone, None))
    assert await env.firewall.wait_entered(calls)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    second = asyncio.create_task(env.manager.attach(kept, None))
    # Bounded: on a rebuild that let go of the cancelled one, the second apply begins at once.
    assert not await env.firewall.wait_entered(calls + 1, timeout=2)
    assert env.firewall.active == 1
    gate.set()
    await second
    await env.manager._rebuilds.settled()
    assert env.firewall.most_active == 1
    _, rules = env.firewall.applied[-1]
    assert [r.host_port for r in rules] == [8102]  # the cancelled start is released
    await env.manager.release(kept.id)
    await env.manager._rebuilds.settled()


async def test_a_start_on_a_full_network_waits_for_the_address_a_release_freed(
    env: Env, tmp_path: Path
) -> None:
    await env.manager.create("tiny", subnet="10.7.0.0/30")  # one address: 10.7.0.2
    old = await _prepared(env, tmp_path, "old", network_mode="tiny", publish=("8080:80",))
    await env.manager.attach(old, None)
    applied = len(env.firewall.applied)
    await env.manager.release(old.id)
    assert len(env.firewall.applied) == applied  # run --rm did not wait for the rebuild
    new = await _prepared(env, tmp_path, "new", network_mode="tiny")
    # 10.7.0.2 is cooling until the rules that name it are rebuilt: the start waits for
    # that and takes it (it was ResourceExhausted, on a network with no live lease).
    await env.manager.attach(new, None)
    [veth] = env.kernel.veths.values()
    assert veth.address == "10.7.0.2/30"
    _, rules = env.firewall.applied[-1]
    assert rules == []
    # A network full of live leases is exhausted.
    third = await _prepared(env, tmp_path, "third", network_mode="tiny")
    with pytest.raises(ResourceExhausted, match="all in use"):
        await env.manager.attach(third, None)


async def test_an_address_cools_until_the_released_veth_is_gone(env: Env, tmp_path: Path) -> None:
    """A namespace still held by a process keeps its veths after the unmount (same
    address, same MAC): the rebuild after the release deletes the host end, and only then
    is the address handed out again."""
    await env.manager.create("tiny", subnet="10.7.0.0/30")
    old = await _prepared(env, tmp_path, "old", network_mode="tiny")
    await env.manager.attach(old, None)
    [old_veth] = env.kernel.veths
    env.kernel.held_netns = True
    await env.manager.release(old.id)
    new = await _prepared(env, tmp_path, "new", network_mode="tiny")
    await env.manager.attach(new, None)
    assert old_veth not in await env.kernel.links()
    assert [a.address for a in env.kernel.veths.values()] == ["10.7.0.2/30"]


async def test_a_failed_records_publish_keeps_the_address_cooling(env: Env, tmp_path: Path) -> None:
    """The resolver did not take the records: the old name may still resolve to the
    address, so it is not handed out until a rebuild whose records land."""
    await env.manager.create("tiny", subnet="10.7.0.0/30")
    old = await _prepared(env, tmp_path, "old", network_mode="tiny")
    await env.manager.attach(old, None)
    env.resolver.fail = True
    await env.manager.release(old.id)
    await env.manager._rebuilds.settled()
    new = await _prepared(env, tmp_path, "new", network_mode="tiny")
    with pytest.raises(ResourceExhausted, match="all in use"):
        await env.manager.attach(new, None)
    env.resolver.fail = False
    await env.manager.attach(new, None)
    names = {name for net in env.resolver.published[-1].networks for name in net.names}
    assert "new" in names and "old" not in names


async def test_a_start_while_a_release_unmounts_gets_another_address(env: Env, tmp_path: Path) -> None:
    """The released container is gone from the state, its lease row not yet: a start in
    that moment picks another address (it got the same one, and the insert failed)."""
    await env.manager.create("pair", subnet="10.6.0.0/29")
    old = await _prepared(env, tmp_path, "old", network_mode="pair")
    await env.manager.attach(old, None)
    env.kernel.hold_remove = gate = asyncio.Event()
    releasing = asyncio.create_task(env.manager.release(old.id))
    await env.kernel.removing.wait()
    env.kernel.hold_remove = None
    new = await _prepared(env, tmp_path, "new", network_mode="pair")
    await env.manager.attach(new, None)
    assert [e.address for e in env.manager.view(new).endpoints] == ["10.6.0.3"]
    gate.set()
    await releasing
    await env.manager._rebuilds.settled()
    assert [x.address for x in await NetworkRecords(env.db).load_leases()] == ["10.6.0.3"]


async def test_an_address_the_table_refuses_is_chosen_again(env: Env, tmp_path: Path) -> None:
    """A lease row the manager does not count (it should not happen): the start takes the
    next address, and a static address is a clear error, not a database error."""
    n = await env.manager.create("odd", subnet="10.5.0.0/29")
    stray = await _prepared(env, tmp_path, "stray", network_mode="odd")
    await NetworkRecords(env.db).write(lease_insert_writer([Lease(
        network_id=n.id, container_id=stray.id, address="10.5.0.2", mac="02:42:0a:05:00:02",
        ifname="eth0", host_ifname="pl0123456789", position=0)]))
    c = await _prepared(env, tmp_path, "next", network_mode="odd")
    await env.manager.attach(c, None)
    assert [e.address for e in env.manager.view(c).endpoints] == ["10.5.0.3"]
    fixed = await _prepared(env, tmp_path, "fixed", network_mode="odd")
    fixed = replace(fixed, host_config=replace(fixed.host_config, networks=(
        replace(fixed.host_config.networks[0], ipv4_address="10.5.0.2"),)))
    with pytest.raises(FailedPrecondition, match="10.5.0.2 is already in use"):
        await env.manager.attach(fixed, None)


async def test_a_failed_unmount_still_deletes_the_leases_and_rebuilds(env: Env, tmp_path: Path) -> None:
    c = await _prepared(env, tmp_path, "stuck", publish=("8090:80",))
    await env.manager.attach(c, None)
    env.kernel.fail_remove = True
    with pytest.raises(Internal, match="unmount failed"):
        await env.manager.release(c.id)
    assert await NetworkRecords(env.db).load_leases() == []
    assert [a for a, _, _ in await _network_events(env.db)][-1] == "disconnect"
    await env.manager._rebuilds.settled()
    _, rules = env.firewall.applied[-1]
    assert rules == []


async def test_a_rename_publishes_the_new_name_and_drops_the_old(env: Env, tmp_path: Path) -> None:
    c = await _prepared(env, tmp_path, "old")
    c = replace(c, config=replace(c.config, hostname="h0st"))  # the hostname stays a name
    await env.manager.attach(c, None)
    renamed = replace(c, name="new")
    await env.manager.rename(renamed)
    [net] = [n for n in env.resolver.published[-1].networks if n.gateway == "172.17.0.1"]
    assert net.names["new"] == ("172.17.0.2",) and "old" not in net.names
    assert net.names["h0st"] == ("172.17.0.2",)
    # A container that does not run: nothing to publish (its start does it).
    count = len(env.resolver.published)
    await env.manager.rename(replace(await _prepared(env, tmp_path, "idle"), name="calm"))
    assert len(env.resolver.published) == count
    # The records not taken: the rename stands, the next rebuild publishes it.
    env.resolver.fail = True
    await env.manager.rename(replace(renamed, name="newer"))
    env.resolver.fail = False
    await env.manager.release(c.id)
