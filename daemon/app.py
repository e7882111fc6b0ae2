"""The composition root: builds every palletd component in order and stops them in reverse.

Order: store -> events -> snapshots/images -> shims -> volumes -> networks -> containers ->
builder -> API. Each component has `start()` and `aclose()`; nothing is global, nothing happens at
import time.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import fields
from collections.abc import AsyncIterator
from pathlib import Path

import structlog

from pallet.daemon.api.builds import BuildsServicer
from pallet.daemon.api.docker.endpoints import docker_gateway
from pallet.daemon.api.docker.services import Servicers
from pallet.daemon.api.containers import ContainersServicer
from pallet.daemon.builder.cache import BuildCache
from pallet.daemon.builder.executor import Builder as DockerfileBuilder
from pallet.daemon.builder.runner import ContainerRunner
from pallet.daemon.containers.files import ContainerFiles
from pallet.daemon.api.events import EventsServicer
from pallet.daemon.api.images import ImagesServicer
from pallet.daemon.api.networks import NetworksServicer
from pallet.daemon.api.server import ApiServer
from pallet.daemon.api.system import SystemServicer
from pallet.daemon.api.volumes import VolumesServicer
from pallet.daemon.builder.contextdir import BuildDirs
from pallet.daemon.builder.sessions import BuildSessions
from pallet.daemon.config import Config
from pallet.daemon.containers.logs import ContainerLogs
from pallet.daemon.containers.manager import ContainerManager
from pallet.daemon.containers.store import ContainerRecords
from pallet.daemon.events.bus import EventBus, RetentionPolicy
from pallet.daemon.faults import CrashPoints
from pallet.daemon.images.manager import ImageManager
from pallet.daemon.networks.dns import DnsSupervisor
from pallet.daemon.networks.firewall import Firewall
from pallet.daemon.networks.kernel import NetKernel
from pallet.daemon.networks.manager import NetworkManager
from pallet.daemon.networks.ports import PortReservations
from pallet.daemon.networks.store import NetworkRecords
from pallet.daemon.shims.client import ShimLauncherImpl
from pallet.daemon.snapshots.overlay import OverlaySnapshots
from pallet.daemon.store.db import Database
from pallet.daemon.store.lock import DirectoryLock
from pallet.daemon.store.space import SpaceReserve
from pallet.daemon.system import SystemInfo
from pallet.daemon.volumes.manager import VolumeManager
from pallet.daemon.volumes.mounts import HostMounts
from pallet.daemon.volumes.store import VolumeRecords

log = structlog.get_logger(__name__)


@contextlib.asynccontextmanager
async def running_daemon(config: Config) -> AsyncIterator[ApiServer]:
    """Start every component; on exit close them in reverse order (containers keep running)."""
    async with contextlib.AsyncExitStack() as stack:
        for d in (config.root, config.run_root):
            lock = DirectoryLock(d)
            lock.start()
            stack.callback(lock.aclose)

        # Space on the state disk that only essential writes (recording an exit, rm,
        # prune) get back when it is full: the way out of a full disk goes through them.
        reserve = SpaceReserve(config.root / "reserve")
        await asyncio.to_thread(reserve.start)
        db = Database(config.root / "pallet.db", reserve)
        await db.start()
        stack.push_async_callback(db.aclose)

        crashes = CrashPoints(config.crash_at)
        if crashes.armed:
            log.warning("fault injection armed", crash_at=sorted(crashes.armed))
        events = EventBus(
            db, RetentionPolicy(config.events_max_count, config.events_max_age_s, config.events_max_bytes)
        )
        await events.start()
        stack.push_async_callback(events.aclose)

        records = ContainerRecords(db)
        await records.start()
        images = ImageManager(
            db,
            events,
            config.root,
            records.image_users,
            insecure_registries=config.insecure_registries,
            registry_certs_dir=config.registry_certs_dir,
            crashes=crashes,
        )
        await images.start()
        stack.push_async_callback(images.aclose)

        shims = ShimLauncherImpl(Path(config.run_root))
        stack.push_async_callback(shims.aclose)

        volumes = VolumeManager(
            VolumeRecords(db), events, config.root, HostMounts(), crashes=crashes
        )
        await volumes.start()
        stack.push_async_callback(volumes.aclose)

        # Before the containers: their restore needs the networks, and reconciles them.
        networks = NetworkManager(
            NetworkRecords(db),
            events,
            NetKernel(Path(config.run_root)),
            Firewall(),
            DnsSupervisor(Path(config.run_root)),
            PortReservations(),
            pools=config.address_pools,
            host_resolv_conf=config.host_resolv_conf,
            default_bridge=config.default_bridge,
            crashes=crashes,
        )
        await networks.start()
        stack.push_async_callback(networks.aclose)

        containers = ContainerManager(
            records,
            images,
            OverlaySnapshots(),
            shims,
            events,
            config.root,
            cgroup_parent=config.cgroup_parent,
            run_root=Path(config.run_root),
            crashes=crashes,
            networking=networks,
            volumes=volumes,
            init_path=config.init_path,
        )
        networks.set_users(containers.network_users)
        volumes.set_users(containers.volume_users)
        await containers.start()
        stack.push_async_callback(containers.aclose)
        if config.stop_containers_on_exit:
            # Runs before containers.aclose (the stack unwinds in reverse), after the API
            # stopped taking calls: nothing can start a container behind our back.
            stack.push_async_callback(containers.stop_all)

        # After the containers: a build runs its RUN steps as containers, and its start
        # removes what builds cut short by a crash left (their containers, by the builds'
        # tokens).
        cache = BuildCache(db)
        runner = ContainerRunner(containers, images.layer_dirs)
        builder = DockerfileBuilder(
            images, runner, cache, config.root / "builder",
            default_network="bridge" if config.default_bridge else "none",
            leftovers=runner.remove_leftovers,
        )
        images.set_lineage(builder.lineage)
        await builder.start()
        stack.push_async_callback(builder.aclose)
        builds = BuildSessions(BuildDirs(config.root), builder)
        await builds.start()
        stack.push_async_callback(builds.aclose)

        system = SystemInfo(containers, images, events, config.root, config.run_root, volumes)
        # One servicer per proto service; a new service (networks, volumes) is one line.
        servicers = Servicers(
            containers=ContainersServicer(
                containers, ContainerLogs(containers),
                ContainerFiles(containers, events, config.cgroup_parent, crashes),
            ),
            images=ImagesServicer(images),
            builds=BuildsServicer(builds),
            networks=NetworksServicer(networks, containers),
            volumes=VolumesServicer(volumes),
            events=EventsServicer(events),
            system=SystemServicer(system),
        )
        server = ApiServer(config, [getattr(servicers, f.name) for f in fields(servicers)])
        await server.start()
        stack.push_async_callback(server.aclose)
        # Docker's API: a gateway over the same servicers (no second copy of behaviour).
        if config.docker_hosts:
            docker_api = docker_gateway(config, servicers)
            await docker_api.start()
            stack.push_async_callback(docker_api.aclose)
        log.info("palletd serving", hosts=list(config.hosts), root=str(config.root))
        yield server
