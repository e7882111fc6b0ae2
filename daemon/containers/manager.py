"""The container lifecycle: create, start, stop, kill, restart, remove, wait, attach, exec.

Owns: the in-memory view of every container (loaded from and persisted to
`ContainerRecords`), the state machine's transitions, one shim connection and one exit
monitor per running container. Every transition
commits with its event in one transaction. A start runs `start.ContainerStart`'s steps
(with rollback); every end of a run, whoever learns of it, goes through `settle_exit`,
which does what `exits.after_exit` decides (`runs.RunEnds`: the monitor, recording an
end, releasing the shim); stop, kill, restart and remove are `stopping.StopsAndRemoves`,
pause and unpause `pausing.Pauses`, restart policies' back-offs `restarting.Restarting`,
rename `renaming.Renames` (the parts mixed in, working on this manager's state). Execs
are run and followed to their end by `execs.ExecTracker`; healthchecks are probed by
`health.HealthMonitor` (from each start, re-adoption and unpause to the end of the run, a
stop or a pause), which acts through this manager (`run_probe`, `kill_probe`,
`record_health`: the health and its `health_status` event in one transaction); what a
previous palletd left is put right by `restore.Restorer`, which
acts through this manager (the `Supervisor` methods).

Must not: build namespaces or touch the log file's bytes (the shim does), or parse image
archives (the image store does).
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import structlog

from pallet.daemon.containers import cgroupfs
from pallet.daemon.containers import filters as container_filters
from pallet.daemon.containers import leftovers
from pallet.daemon.containers import resources as container_resources
from pallet.daemon.containers import waiting
from pallet.daemon.containers.execs import ExecTracker, TrackedExec
from pallet.daemon.containers.initproc import find_init
from pallet.daemon.containers import healthcheck
from pallet.daemon.containers.health import HealthMonitor
from pallet.daemon.containers.exits import Why
from pallet.daemon.containers.bundle import cgroup_path, exec_process, write_etc_files
from pallet.daemon.containers import commit as commits
from pallet.daemon.containers.commit import CommitOptions
from pallet.daemon.containers.model import (
    Config,
    Container,
    ContainerState,
    Created,
    CreateRequest,
    Health,
    HostConfig,
    Status,
    check_transition,
)
from pallet.daemon.containers import security
from pallet.daemon.containers.merge import effective_config
from pallet.daemon.containers.mounting import NoVolumes, Volumes, resolve_mounts, uses_volume, volume_names
from pallet.daemon.containers.networking import LoopbackOnly, Networking, NetworkView
from pallet.daemon.containers.pausing import Pauses
from pallet.daemon.containers.resize import Resizes, check_console_size
from pallet.daemon.containers.restarting import Restarting, started_by_user
from pallet.daemon.containers.renaming import Renames
from pallet.daemon.containers.updating import Updates
from pallet.daemon.containers.restore import Restorer
from pallet.daemon.containers.runs import HeldEnd, RunEnds
from pallet.daemon.containers.names import generate_name, validate_name
from pallet.daemon.containers.sessions import Attachment, PendingAttach, Run
from pallet.daemon.containers.start import ContainerStart, StartDeps
from pallet.daemon.containers.stopping import StopsAndRemoves
from pallet.daemon.containers.top import ProcessTable, check_ps_args, parse_ps, run_ps
from pallet.daemon.containers.store import (
    ContainerRecords,
    insert_writer,
    update_writer,
)
from pallet.v1.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PalletError,
)
from pallet.daemon.events.model import EventPublisher, Notice
from pallet.daemon.faults import NO_CRASHES, CrashHook
from pallet.daemon.images.model import Image, ImageStore
from pallet.daemon.shims.api import ShimClient, ShimLauncher, Stdio
from pallet.shim.api.spec import ExecSpec, ExitStatus, Process, ShimState
from pallet.daemon.snapshots.changes import Change
from pallet.daemon.snapshots.export import export_live, export_rootfs
from pallet.daemon.snapshots.overlay import OverlaySnapshots
from pallet.daemon.store import space

log = structlog.get_logger(__name__)

# A health probe's result that changes only the log (not the status or failing streak) is
# written at most this much later: a kill -9 of palletd loses at most this much of the
# log, never a status or a streak. (Written at once, a 1 s healthcheck on each of 50
# containers is 50 more transactions a second.)
HEALTH_LOG_SAVE_NS = 10 * 1_000_000_000
# Health probes' processes kept made (one per running container with a healthcheck).
PROBE_PROCESSES_KEPT = 4096


def _default_hostname(req: CreateRequest, container_id: str) -> str:
    """The host name of a container created without one: its short id, or with the host's
    network the host's name, as docker does (its UTS namespace is still its own)."""
    if req.host_config.network_mode == "host":
        return socket.gethostname()
    return container_id[:12]


class ContainerManager(RunEnds, StopsAndRemoves, Pauses, Restarting, Resizes, Updates, Renames):
    """Runs containers through shims and keeps their records true."""

    def __init__(
        self,
        records: ContainerRecords,
        images: ImageStore,
        snapshots: OverlaySnapshots,
        shims: ShimLauncher,
        events: EventPublisher,
        root: Path,
        cgroup_parent: str = "pallet",
        clock: Callable[[], int] = time.time_ns,
        run_root: Path | None = None,
        crashes: CrashHook = NO_CRASHES,
        networking: Networking | None = None,
        volumes: Volumes | None = None,
        init_path: str = "",
    ) -> None:
        self._records = records
        # palletd --init-path: the init --init containers run ("": the default names).
        self._init_path = init_path
        self._networking: Networking = networking or LoopbackOnly()
        self._volumes: Volumes = volumes or NoVolumes()
        self._images = images
        self._snapshots = snapshots
        self._launcher = shims
        self._events = events
        self._dir = root / "containers"
        self._cgroup_parent = cgroup_parent
        # Where the containers' cgroups are on this host (read by top and stats).
        self.cgroups = cgroupfs.detect()
        self._clock = clock
        # Where shims keep their sockets; None (tests with fake shims): nothing to clean.
        self._run_root = run_root
        self._crashes = crashes
        self._execs = ExecTracker(records, events, shims, clock, crashes)
        self._health = HealthMonitor(self, clock)
        # Containers whose health log has results not yet written (`record_health`), and
        # since when.
        self._health_unsaved: dict[str, int] = {}
        self._probe_processes: dict[tuple[str, int, tuple[str, ...]], Process] = {}
        self._containers: dict[str, Container] = {}
        self._reserved_names: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        # Containers `rm -f` calls are removing (how many): no start of them begins.
        self._removing: dict[str, int] = {}
        self._runs: dict[str, Run] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._pending: dict[str, list[PendingAttach]] = {}
        # wait's next-exit and removed callers (`waiting`).
        self._waiters = waiting.ExitWaiters()
        self._held: dict[str, HeldEnd] = {}
        self._closing = False
        # Set once start() has reconciled everything: no restart begins before.
        self._booted = asyncio.Event()
        self._restorer = Restorer(self, shims, snapshots, self._dir, run_root, clock)
        self._start_deps = StartDeps(
            self, snapshots, shims, crashes, cgroup_parent, clock, self._networking,
            self._volumes, init_path=init_path,
        )

    # ---- component lifecycle -------------------------------------------------------

    async def start(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        await self._records.start()
        for c in await self._records.load_all():
            self._containers[c.id] = c
        started = time.monotonic()
        # Execs first: a remove the restorer finishes settles the container's execs.
        await self._execs.start()
        await self._restorer.restore(list(self._containers.values()))
        for cid in self._execs.containers_with_execs():
            if not self._restorer.retrying(cid):  # else settled once it is adopted
                await self.resume_execs(cid)
        await self._restorer.remove_stray_shims()
        # What carries traffic is kept for the containers that run, removed for the rest.
        running = [c for c in self._containers.values() if c.id in self._runs]
        await self._networking.reconcile(running)
        # Volume mounts likewise: counted for the running, taken off for the rest.
        uses: dict[str, set[str]] = {}
        for c in running:
            for name in volume_names(c):
                uses.setdefault(name, set()).add(c.id)
        await self._volumes.reconcile(uses)
        self._booted.set()
        log.info(
            "containers reconciled",
            containers=len(self._containers),
            running=len(self._runs),
            seconds=round(time.monotonic() - started, 3),
        )

    async def stop_all(self) -> None:
        """Stop every running container (palletd --stop-containers-on-exit)."""
        running = [c.id for c in self._containers.values() if c.id in self._runs]
        results = await asyncio.gather(
            *(self.stop(cid, by_user=False) for cid in running), return_exceptions=True
        )
        for cid, result in zip(running, results):
            if isinstance(result, BaseException):
                log.warning("could not stop container on exit", container_id=cid,
                            reason=str(result))

    async def aclose(self) -> None:
        """Stop watching containers; they keep running under their shims."""
        self._closing = True
        await self._health.aclose()
        await self._save_health_logs()
        await self._execs.aclose()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Shims of ends not yet written keep them: a palletd started later finds them.
        shims = [r.shim for r in self._runs.values()]
        shims += [h.shim for h in self._held.values() if h.shim is not None]
        for shim in shims:
            try:
                await shim.aclose()
            except PalletError:
                pass
        self._runs.clear()

    # ---- the Supervisor the restorer acts through --------------------------------------

    @property
    def closing(self) -> bool:
        return self._closing

    def lookup(self, container_id: str) -> Container | None:
        return self._containers.get(container_id)

    def supervises(self, container_id: str) -> bool:
        return container_id in self._runs

    def supervise(self, c: Container, shim: ShimClient) -> None:
        run = Run(shim)
        self._runs[c.id] = run
        self._watch(c.id, run)
        if c.state.status is Status.RUNNING:  # (a paused one is probed once unpaused)
            self._health.watch(c)

    async def adopt_start(self, c: Container, shim: ShimClient, state: ShimState) -> None:
        with space.essential():  # what happened: the start had got the process running
            c = await self._adopt_start(c, shim, state)
        self.supervise(c, shim)

    async def _adopt_start(self, c: Container, shim: ShimClient, state: ShimState) -> Container:
        return await self._transition(
            c,
            event=("start", self._attrs(c)),
            status=Status.RUNNING,
            pid=state.pid,
            started_at_ns=state.started_at_ns or self._clock(),
            exit_code=0,
            error="",
            shim_pid=shim.shim_pid,
            oom_killed=False,
            health=healthcheck.at_start(c.state.health, c.config.healthcheck),
        )

    async def resume_execs(self, container_id: str) -> None:
        """Execs a previous palletd left: followed through the re-adopted shim, or settled
        from disk when the container's run is over."""
        run = self._runs.get(container_id)
        await self._execs.resume(container_id, run.shim if run is not None else None)

    async def clean_after_shim(self, c: Container) -> None:
        if self._run_root is None:
            return
        await leftovers.clean_after_dead_shim(
            self._launcher, c.id, Path(c.state_dir), cgroup_path(c, self._cgroup_parent)
        )

    async def _clean_leftovers(self, c: Container) -> None:
        """`clean_after_shim` for a container no shim serves, if its shim left anything:
        asked of the launcher first, so a healthy remove starts no `pallet-shim delete`."""
        if self._run_root is None or c.id in self._runs:
            return
        try:
            found = await self._launcher.has_leftovers(c.id, Path(c.state_dir))
        except PalletError as e:
            # An older launcher, say: the delete command finds out itself.
            log.debug("cannot ask about leftovers", container_id=c.id, reason=str(e))
            found = True
        if found:
            await self.clean_after_shim(c)

    def take_pending(self, container_id: str) -> list[PendingAttach]:
        return self._pending.pop(container_id, [])

    # ---- lookups -------------------------------------------------------------------

    def resolve(self, ref: str) -> Container:
        """By full id, name (with or without '/'), or unique id prefix."""
        if not ref:
            raise InvalidArgument("no container given: name one by id, id prefix or name")
        c = self._containers.get(ref)
        if c is not None:
            return c
        name = ref[1:] if ref.startswith("/") else ref
        for c in self._containers.values():
            if c.name == name:
                return c
        matches = [c for c in self._containers.values() if c.id.startswith(ref.lower())]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(
                f"container id prefix {ref!r} is ambiguous: it matches {len(matches)} "
                "containers; give more characters or the name"
            )
        raise NotFound(f"No such container: {ref}")

    def get(self, ref: str) -> Container:
        return self.resolve(ref)

    def exists(self, container_id: str) -> bool:
        """Whether the container of this full id is still there."""
        return container_id in self._containers

    def containers(self) -> list[Container]:
        """Every container, newest first."""
        return sorted(self._containers.values(), key=lambda c: c.created_ns, reverse=True)

    async def list_filtered(
        self, all: bool, filters: Sequence[str], limit: int = 0
    ) -> list[Container]:
        """`ps`: running containers (every one with `all`, `limit` or a status filter),
        filtered, newest first; with `limit`, only that many (docker's ps --last)."""
        terms = container_filters.parse(filters)
        if limit < 0:
            raise InvalidArgument(f"invalid limit {limit}: give 0 (all) or more")
        ancestors: set[str] = set()
        for ref in terms.get("ancestor", ()):
            try:
                ancestors.add((await self._images.get(ref)).id)
            except (NotFound, InvalidArgument):
                pass
        # docker's: before/since name containers that must exist.
        before = [self.resolve(v).created_ns for v in terms.get("before", ())]
        since = [self.resolve(v).created_ns for v in terms.get("since", ())]
        window = container_filters.Window(
            before_ns=min(before) if before else None, since_ns=max(since) if since else None
        )
        wired = bool(container_filters.WIRING_KEYS & terms.keys())
        everything = all or limit > 0 or bool({"status", "exited", "before", "since"} & terms.keys())
        found = [
            c
            for c in self.containers()
            if (everything
                or c.state.status in (Status.RUNNING, Status.PAUSED, Status.RESTARTING))
            and container_filters.matches_all(
                c, terms, ancestors, window, self._wiring(c) if wired else None
            )
        ]
        return found[:limit] if limit > 0 else found

    def _wiring(self, c: Container) -> container_filters.Wiring:
        """What the `network`, `publish` and `expose` filters match of `c`."""
        view = self.network_view(c)
        mode = c.host_config.network_mode
        networks = {mode} if mode else set()
        networks.update(e.network_id for e in c.host_config.networks)
        for e in view.endpoints:
            networks.update((e.network_id, e.network_name))
        published = {f"{p.host_port}/{p.protocol or 'tcp'}" for p in view.ports if p.host_port}
        exposed = {f"{p.container_port}/{p.protocol or 'tcp'}" for p in view.ports}
        exposed.update(c.config.exposed_ports)
        return container_filters.Wiring(frozenset(networks), frozenset(published), frozenset(exposed))

    async def sizes(self, c: Container) -> tuple[int, int]:
        """docker's SizeRw (what `c` wrote over its image) and SizeRootFs (that and its
        image's layers; the image's alone missing when it was removed)."""
        rw = await asyncio.to_thread(self._snapshots.size, Path(c.state_dir))
        try:
            image_size = (await self._images.get(c.image_id)).size
        except NotFound:
            image_size = 0
        return rw, rw + image_size

    async def layer_dirs(self, c: Container) -> list[str]:
        """The image layers under the container's rootfs (none when the image is gone)."""
        try:
            return self._images.layer_dirs(await self._images.get(c.image_id))
        except NotFound:
            return []

    def lock(self, container_id: str) -> asyncio.Lock:
        return self._locks.setdefault(container_id, asyncio.Lock())

    def _attrs(self, c: Container, **extra: str) -> dict[str, str]:
        attrs = dict(c.config.labels)
        attrs.update(name=c.name, image=c.config.image)
        attrs.update(extra)
        return attrs

    async def _transition(
        self,
        c: Container,
        event: tuple[str, dict[str, str]] | None = None,
        **state: object,
    ) -> Container:
        """Persist a state change (checked against the transition table).

        With `event` (action, attributes), the change and its event are committed in one
        transaction: a crash leaves both or neither.
        """
        return await self._transition_events(c, (event,) if event else (), **state)

    async def _transition_events(
        self, c: Container, events: Sequence[tuple[str, dict[str, str]]], **state: object
    ) -> Container:
        """`_transition` with any number of events (an `oom` before its `die`), all
        journalled with the change in one transaction, in order."""
        target = state.get("status", c.state.status)
        assert isinstance(target, Status)
        check_transition(c.name, c.state.status, target)
        # An end held in memory (a full disk) is written first: events stay in order.
        await self.write_held(c.id)
        updated = c.with_state(**state)
        await self._journal(updated, events)
        self._containers[c.id] = updated
        return updated

    async def _journal(self, c: Container, events: Sequence[tuple[str, dict[str, str]]]) -> None:
        """Write the container's record and its events, in order, in one transaction."""
        if not events:
            await self._records.update(c)
        elif len(events) == 1:
            action, attrs = events[0]
            await self._events.publish("container", action, c.id, attrs, also=update_writer(c))
        else:
            writer = update_writer(c)
            notices = [Notice("container", a, c.id, dict(at)) for a, at in events]

            def change(conn: sqlite3.Connection) -> tuple[None, list[Notice]]:
                writer(conn)
                return None, notices

            await self._events.commit(change)

    # ---- networks ------------------------------------------------------------------

    def network_users(self, network_id: str) -> list[tuple[str, str]]:
        """(id, name) of the containers attached to a network, running or not, and of
        those that join another's namespace through one (none: they join the container)."""
        return [
            (c.id, c.name) for c in self.containers()
            if any(e.network_id == network_id for e in c.host_config.networks)
        ]

    def volume_users(self, name: str) -> list[tuple[str, str]]:
        """(id, name) of the containers that have a volume among their mounts, running or not."""
        return [(c.id, c.name) for c in self.containers() if uses_volume(c, name)]

    def volume_dir(self, name: str) -> str:
        """Where a volume's data is on the host ("" for one that is gone)."""
        try:
            return str(self._volumes.data_dir(name))
        except NotFound:
            return ""

    def network_view(self, c: Container) -> NetworkView:
        return self._networking.view(c)

    async def connect(
        self, network: str, ref: str, aliases: tuple[str, ...], ipv4: str
    ) -> None:
        """`network connect`: recorded; live when the container runs. Its event is the
        attached endpoint's (journalled by the networks, as at start), or, for a container
        that does not run, the record's."""
        c = self.resolve(ref)
        async with self.lock(c.id):
            c = self.resolve(c.id)
            self._check_not_removing(c)
            endpoint = await self._networking.check_endpoint(c, network, aliases, ipv4)
            running = c.id in self._runs
            announced = running and await self._networking.connect_live(c, endpoint)
            updated = replace(c, host_config=replace(
                c.host_config, networks=(*c.host_config.networks, endpoint)
            ))
            try:
                await self._write_network_change(updated, "connect", endpoint.network_id,
                                                 announced)
            except BaseException:
                if running:
                    await self._networking.disconnect_live(updated, endpoint.network_id)
                raise
            self._containers[c.id] = updated

    async def disconnect(self, network: str, ref: str, force: bool) -> None:
        """`network disconnect`: recorded with its event; live when the container runs."""
        network_id = self._networking.find_network_id(network)
        c = self.resolve(ref)
        async with self.lock(c.id):
            c = self.resolve(c.id)
            if not any(e.network_id == network_id for e in c.host_config.networks):
                raise FailedPrecondition(
                    f"container {c.name} is not connected to network "
                    f"{self._networking.network_name(network_id)}"
                )
            announced = False
            if c.id in self._runs:
                try:
                    announced = await self._networking.disconnect_live(c, network_id)
                except PalletError:
                    if not force:
                        raise
                    # Its lease's release announces it, now or at the end of the run.
                    announced = True
            updated = replace(c, host_config=replace(
                c.host_config,
                networks=tuple(e for e in c.host_config.networks if e.network_id != network_id),
            ))
            await self._write_network_change(updated, "disconnect", network_id, announced)
            self._containers[c.id] = updated

    async def _write_network_change(
        self, updated: Container, action: str, network_id: str, announced: bool
    ) -> None:
        """The record of a connect or disconnect, with its event unless the networks
        journalled it already (an endpoint attached or released live): one event each."""
        if announced:
            await self._records.update(updated)
            return
        attrs = {"name": self._networking.network_name(network_id), "type": "bridge",
                 "container": updated.id}
        await self._events.publish("network", action, network_id, attrs,
                                   also=update_writer(updated))

    # ---- create --------------------------------------------------------------------

    async def create(self, req: CreateRequest) -> Created:
        name = validate_name(req.name) if req.name else ""
        try:
            image = await self._images.get(req.config.image)
        except NotFound:
            raise NotFound(
                f"No such image: {req.config.image}: import or load it first (pallet images lists "
                "what is here)"
            ) from None
        taken = {c.name for c in self._containers.values()} | self._reserved_names
        if name and name in taken:
            owner = next((c for c in self._containers.values() if c.name == name), None)
            suffix = f" by container {owner.short_id}" if owner else ""
            raise AlreadyExists(
                f"the container name {name!r} is already in use{suffix}: remove that "
                "container or choose another name"
            )
        name = name or generate_name(taken)
        cid = secrets.token_hex(32)
        hostname = req.config.hostname or _default_hostname(req, cid)
        config, host_config = effective_config(req, image, hostname)
        host_config = await asyncio.to_thread(
            security.check, host_config, self._start_deps.seccomp.check
        )
        if host_config.init:  # a clear error now, not a failed start later
            await asyncio.to_thread(find_init, self._init_path)
        # Checked before anything is made: a bad limit creates nothing.
        host_config = replace(host_config, resources=await asyncio.to_thread(
            container_resources.check_here, host_config.resources))
        prepared = await self._networking.prepare(config, host_config, req, self)
        config, host_config = prepared.config, prepared.host
        made: list[str] = []  # anonymous volumes made for it: removed if it is not created
        try:
            # The volumes are held by this create until its record holds them (a prune
            # meanwhile must not take them): released once recorded, or failed.
            host_config = await resolve_mounts(
                host_config, image.config.volumes, self.resolve, self._volumes, made, cid
            )
            container = await self._create(name, cid, image, config, host_config)
        except BaseException:
            self._volumes.release_pending(cid)
            for volume in made:
                try:
                    await self._volumes.remove(volume)
                except PalletError as e:
                    log.warning("removing a volume made for a failed create failed",
                                volume=volume, reason=str(e))
            raise
        self._volumes.release_pending(cid)
        if prepared.warnings:
            log.info("created with warnings", container_id=cid, warnings=prepared.warnings)
        return Created(container, prepared.warnings)

    async def _create(
        self, name: str, cid: str, image: Image, config: Config, host_config: HostConfig
    ) -> Container:
        state_dir = self._dir / cid
        container = Container(
            id=cid,
            name=name,
            image_id=image.id,
            config=config,
            host_config=host_config,
            state=ContainerState(),
            created_ns=self._clock(),
            state_dir=str(state_dir),
        )
        self._reserved_names.add(name)
        try:
            # Files first, record last: a crash in between leaves only a dir, which
            # start() removes as an orphan; a record never points at a missing dir.
            with space.room(self._dir, "cannot create the container"):
                await asyncio.to_thread(self._prepare_dir, container, image)
            self._crashes.hit("create", "dir")
            try:
                # The record and its create event in one transaction.
                await self._events.publish(
                    "container", "create", cid, self._attrs(container),
                    also=insert_writer(container),
                )
            except Exception as e:
                if "UNIQUE" in str(e):
                    raise AlreadyExists(
                        f"the container name {name!r} is already in use: choose another name"
                    ) from None
                raise
        except BaseException:
            await asyncio.to_thread(self._snapshots.remove, state_dir)
            raise
        finally:
            self._reserved_names.discard(name)
        self._containers[cid] = container
        self._crashes.hit("create", "recorded")
        return container

    def _prepare_dir(self, container: Container, image: Image) -> None:
        state_dir = Path(container.state_dir)
        state_dir.mkdir(mode=0o710)
        self._snapshots.prepare(state_dir, self._images.layer_dirs(image))
        write_etc_files(container)

    # ---- start ---------------------------------------------------------------------

    async def start_container(self, ref: str) -> int:
        pid, _started = await self.start_unless_running(ref)
        return pid

    async def start_unless_running(self, ref: str) -> tuple[int, bool]:
        """Start the container; its init's pid, and whether this call started it (False:
        it was running already, docker's 304)."""
        c = self.resolve(ref)
        async with self.lock(c.id):
            c = self.resolve(c.id)
            self._check_not_removing(c)
            if c.state.status is Status.RUNNING:
                return c.state.pid, False
            if c.state.status is Status.PAUSED:
                raise FailedPrecondition(
                    f"cannot start a paused container, try unpause instead (pallet unpause "
                    f"{c.name})"
                )
            if c.state.status not in (Status.CREATED, Status.EXITED, Status.RESTARTING):
                raise FailedPrecondition(
                    f"container {c.name} is {c.state.status.value}: it cannot be started"
                )
            # A user's start: now, even during a back-off; the policy starts over.
            self.cancel_restart(c.id)
            return await self._start_locked(started_by_user(c)), True

    def _check_not_removing(self, c: Container) -> None:
        """A start loses to an `rm -f` under way (docker: "marked for removal")."""
        if c.id in self._removing:
            raise Conflict(
                f"container {c.name} is being removed (rm -f): it cannot be started"
            )

    async def _start_locked(
        self, c: Container, not_before: Callable[[], Awaitable[None]] | None = None
    ) -> int:
        # The last run's end, if it was held (a full disk), is written before a new run
        # begins (its shim still holds the container's socket); else the start fails.
        await self.write_held(c.id)
        try:
            image = await self._images.get(c.image_id)
        except NotFound:
            raise FailedPrecondition(
                f"the image of container {c.name} ({c.config.image}, "
                f"{c.image_id[7:19]}) was removed: create the container again from an "
                "image that exists"
            ) from None
        joined = None
        mode = c.host_config.network_mode
        if mode.startswith("container:"):
            joined = self._containers.get(mode.split(":", 1)[1])
        start = ContainerStart(c, self._images.layer_dirs(image), self._start_deps, joined,
                               not_before=not_before)
        failed: list[ExitStatus] = []

        async def record_failure(e: PalletError) -> None:
            # Before the rollback (why: `ContainerStart.run_steps`); settle_exit below finds
            # it recorded and does what follows.
            status = start.exit or ExitStatus(128, self._clock(), str(e))
            if not status.error:
                status = replace(status, error=str(e))
            failed.append(status)
            await self._record_failed_start(c, status)
            self._crashes.hit("start", "failure-recorded")

        try:
            await start.run_steps(record_failure)
        except PalletError as e:
            # The steps were released (no shim, no cgroup); what the start made is gone.
            self._crashes.hit("start", "rolled-back")
            status = failed[0] if failed else ExitStatus(128, self._clock(), str(e))
            if not status.error:
                status = replace(status, error=str(e))
            if start.run is not None:  # attached clients hear of the end
                start.run.exit = status
                start.run.done.set()
            await self.settle_exit(self._containers.get(c.id, c), status, Why.START_FAILED)
            raise
        shim, run, pid = start.shim, start.run, start.pid
        assert shim is not None and run is not None
        try:
            c = await self._transition(
                c,
                event=("start", self._attrs(c)),
                status=Status.RUNNING,
                pid=pid,
                # Taken before the init was started: an exit on disk from before it is the
                # previous run's (`of_this_run`), even for an init that exited at once.
                started_at_ns=start.started_at_ns,
                exit_code=0,
                error="",
                shim_pid=shim.shim_pid,
                oom_killed=False,
                # docker's: each start is "starting" again, with no failures (log kept).
                health=healthcheck.at_start(c.state.health, c.config.healthcheck),
            )
        except PalletError as e:
            # Not recorded (a full disk): the container must not run unrecorded. Its init
            # is killed and the shim let go, as a failed step's rollback does.
            await start.release_shim()
            status = ExitStatus(128, self._clock(), f"the start could not be recorded: {e}")
            run.exit = status
            run.done.set()
            await self.settle_exit(self._containers.get(c.id, c), status, Why.START_FAILED)
            raise
        self._runs[c.id] = run
        self._watch(c.id, run)
        self._health.watch(c)
        return pid

    # ---- wait / attach / exec ------------------------------------------------------

    async def wait(self, ref: str, condition: str = "") -> ExitStatus:
        """The exit status `condition` waits for (docker's wait conditions, `waiting`):
        not-running (""): at once for a container that does not run, else its run's end;
        next-exit: the end of its next run, begun or not; removed: its removal.

        The waiter is in place before this first suspends: a caller that starts the
        container after calling it (`docker run` does) cannot miss the end."""
        if condition not in waiting.CONDITIONS:
            raise InvalidArgument(
                f"invalid condition {condition!r}: use not-running, next-exit or removed"
            )
        c = self.resolve(ref)
        run = self._runs.get(c.id)
        if condition in ("", waiting.CONDITION_NOT_RUNNING) or (
            condition == waiting.CONDITION_NEXT_EXIT and run is not None
        ):
            if run is not None:  # running, or its end is being settled
                await run.done.wait()
                assert run.exit is not None
                return run.exit
            return ExitStatus(c.state.exit_code, c.state.finished_at_ns, c.state.error)
        if condition == waiting.CONDITION_NEXT_EXIT:
            future = self._waiters.next_exit(c.id)
        else:
            future = self._waiters.removal(c.id)
        try:
            return await future
        finally:
            self._waiters.forget(c.id, future)

    async def attach(
        self, ref: str, stdin: bool, stdout: bool, stderr: bool, running_only: bool = False
    ) -> Attachment:
        c = self.resolve(ref)
        if running_only and c.state.status is Status.PAUSED:
            raise FailedPrecondition("You cannot attach to a paused container, unpause it first")
        if running_only and c.state.status is not Status.RUNNING:
            # docker's words, as `docker attach` says them.
            raise FailedPrecondition("You cannot attach to a stopped container, start it first")
        stdin = stdin and c.config.open_stdin
        future: asyncio.Future[tuple[Stdio, Run]] = asyncio.get_running_loop().create_future()
        run = self._runs.get(c.id)
        if c.state.status is Status.RUNNING and run is not None:
            stdio = await run.shim.attach(stdin, stdout, stderr)
            future.set_result((stdio, run))
        elif c.state.status in (Status.CREATED, Status.EXITED):
            pending = PendingAttach(stdin, stdout, stderr, future)
            self._pending.setdefault(c.id, []).append(pending)
        else:
            raise FailedPrecondition(
                f"container {c.name} is {c.state.status.value}: you cannot attach to it"
            )
        return Attachment(future, stdin_once=stdin and c.config.stdin_once and not c.config.tty)

    async def exec(
        self,
        ref: str,
        args: tuple[str, ...],
        env: tuple[str, ...] = (),
        working_dir: str = "",
        user: str = "",
        stdin: bool = False,
        tty: bool = False,
        console_size: tuple[int, int] = (0, 0),
        exec_id: str = "",
    ) -> TrackedExec:
        """Run a process in the running container; `exec_id` names it (a created exec
        instance's id), else it gets a fresh one."""
        c = self.resolve(ref)
        run = self._runs.get(c.id)
        if c.state.status is Status.PAUSED:
            raise FailedPrecondition(
                f"Container {c.name} is paused, unpause the container before exec (pallet "
                f"unpause {c.name})"
            )
        if c.state.status is not Status.RUNNING or run is None:
            raise FailedPrecondition(f"container {c.name} is not running: start it first")
        if not args:
            raise InvalidArgument("no command given to exec")
        for item in env:
            if "=" not in item:
                raise InvalidArgument(f"invalid environment variable {item!r}: use KEY=value")
        spec = ExecSpec(
            exec_id=exec_id,  # empty: the tracker gives it one
            process=exec_process(
                c, args, env, working_dir, user, stdin, tty, check_console_size(console_size)
            ),
        )
        return await self._execs.run(c.id, c.state_dir, run.shim, spec, self._attrs(c))

    # ---- healthchecks: what `health.HealthMonitor` acts through --------------------------

    async def run_probe(self, c: Container, args: tuple[str, ...]) -> TrackedExec:
        """A health probe: an exec as docker runs one (the container's user, working
        directory and environment; no stdin, no terminal), with its exec_* events."""
        run = self._runs.get(c.id)
        if run is None:
            raise FailedPrecondition(f"container {c.name} is not running")
        # The same for every probe of a run: made once (the cache is cleared, whole, when
        # it holds more than a few thousand, so removed containers' go too).
        key = (c.id, c.state.started_at_ns, args)
        process = self._probe_processes.get(key)
        if process is None:
            if len(self._probe_processes) >= PROBE_PROCESSES_KEPT:
                self._probe_processes.clear()
            process = self._probe_processes[key] = exec_process(c, args, (), "", "", False)
        spec = ExecSpec(exec_id="", process=process)
        return await self._execs.run(c.id, c.state_dir, run.shim, spec, self._attrs(c))

    async def kill_probe(self, c: Container, exec_id: str) -> None:
        run = self._runs.get(c.id)
        if run is None:
            raise FailedPrecondition(f"container {c.name} is not running")
        await run.shim.kill_exec(exec_id, signal.SIGKILL)

    async def record_health(self, container_id: str, started_at_ns: int, health: Health) -> bool:
        """A probe's result for the run that started at `started_at_ns`: recorded, with
        `health_status: <status>` in the same transaction when the status changed. False
        (nothing written) when that run is not the container's running one any more."""
        async with self.lock(container_id):
            c = self._containers.get(container_id)
            if (
                c is None
                or c.state.status is not Status.RUNNING
                or c.state.started_at_ns != started_at_ns
            ):
                return False
            before = c.state.health
            # Not a transition (it stays running): the record and its event as one.
            updated = c.with_state(health=health)
            now = self._clock()
            if before is None or before.status != health.status:
                action = healthcheck.EVENT_PREFIX + health.status
                await self._events.publish("container", action, c.id, self._attrs(c),
                                           also=update_writer(updated))
            elif (
                before.failing_streak != health.failing_streak
                or now - self._health_unsaved.get(c.id, now) >= HEALTH_LOG_SAVE_NS
            ):
                await self._records.update(updated)
            else:
                # Only the log changed: kept in memory (inspect shows it), written with the
                # next change, within HEALTH_LOG_SAVE_NS, or when palletd stops.
                self._health_unsaved.setdefault(c.id, now)
                self._containers[c.id] = updated
                return True
            self._health_unsaved.pop(c.id, None)
            self._containers[c.id] = updated
            return True

    async def _save_health_logs(self) -> None:
        """At a clean stop: the health logs kept in memory only are written."""
        for cid in list(self._health_unsaved):
            async with self.lock(cid):
                c = self._containers.get(cid)
                if c is None or self._health_unsaved.pop(cid, None) is None:
                    continue
                try:
                    await self._records.update(c)
                except PalletError as e:
                    log.warning("cannot write a health log", container_id=cid, reason=str(e))

    def cgroup_relative(self, c: Container) -> str:
        """The container's cgroup, relative to each cgroup root."""
        return cgroup_path(c, self._cgroup_parent)

    async def top(self, ref: str, ps_args: Sequence[str]) -> ProcessTable:
        """`top`: the host's ps, cut to the processes in the container's cgroup."""
        words = check_ps_args(ps_args)
        c = self.resolve(ref)
        if c.state.status not in (Status.RUNNING, Status.PAUSED) or c.id not in self._runs:
            raise FailedPrecondition(f"container {c.name} is not running")
        directory = self.cgroups.procs_dir(self.cgroup_relative(c))
        pids = await asyncio.to_thread(cgroupfs.procs, directory) if directory else []
        output = await run_ps(words, pids)
        table = parse_ps(output.decode(errors="replace"), pids)
        await self._events.publish("container", "top", c.id, self._attrs(c))
        return table

    # ---- the container's filesystem: diff, commit, export -------------------------------

    async def diff(self, ref: str) -> list[Change]:
        """`diff`: read from the writable layer as it is, running or not."""
        c = self.resolve(ref)
        return await commits.diff(c, await self.layer_dirs(c))

    async def commit(self, ref: str, options: CommitOptions) -> Image:
        """`commit`: a new image of the container's image and its changes. Under the
        container's lock (no start or remove meanwhile); a running container is frozen
        while its layer is read unless `options.pause` is off."""
        c = self.resolve(ref)
        async with self.lock(c.id):
            c = self.resolve(c.id)
            self._check_not_removing(c)
            try:
                image = await self._images.get(c.image_id)
            except NotFound:
                raise FailedPrecondition(
                    f"the image of container {c.name} ({c.config.image}) was removed: it "
                    "cannot be committed"
                ) from None
            run = self._runs.get(c.id)
            freeze = run.shim.freeze if run is not None and c.state.status is Status.RUNNING else None
            return await commits.commit(
                c, image, self._images.layer_dirs(image), options, self._images, freeze,
                self._events,
            )

    async def export(self, ref: str) -> AsyncIterator[bytes]:
        """`export`: a running container's filesystem read through its own root (its
        other mounts left out, as docker leaves volumes out); a stopped one's through a
        read-only view of its layers."""
        c = self.resolve(ref)
        state_dir = Path(c.state_dir)
        if c.id in self._runs and c.state.status in (Status.RUNNING, Status.PAUSED) and c.state.pid:
            return export_live(c.state.pid)
        return export_rootfs(state_dir / "upper", await self.layer_dirs(c), state_dir)

    async def prune(self, filters: Sequence[str]) -> tuple[list[str], int]:
        """`container prune`: remove every container that does not run (and matches the
        filters); the ids removed and the bytes their writable layers took."""
        terms = container_filters.parse(filters, container_filters.PRUNE_KEYS)
        now = self._clock()
        deleted: list[str] = []
        reclaimed = 0
        with space.essential():  # prune is a way out of a full disk
            for c in self.containers():
                if c.state.status not in (Status.CREATED, Status.EXITED, Status.DEAD):
                    continue
                if c.id in self._runs or not container_filters.prune_matches(c, terms, now):
                    continue
                size = await asyncio.to_thread(self._snapshots.size, Path(c.state_dir))
                try:
                    await self.remove(c.id)
                except (NotFound, FailedPrecondition, Conflict):
                    continue  # started or removed meanwhile
                deleted.append(c.id)
                reclaimed += size
            await self._events.publish("container", "prune", "", {"reclaimed": str(reclaimed)})
        return deleted, reclaimed

    def counts(self) -> Mapping[Status, int]:
        counts: dict[Status, int] = {}
        for c in self._containers.values():
            counts[c.state.status] = counts.get(c.state.status, 0) + 1
        return counts

