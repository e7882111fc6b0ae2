"""What the daemon says about itself and its host (version, info, disk usage).

Owns: reading host facts (kernel, OS, CPUs, memory, cgroup version) and counting objects
through the managers. Must not: change anything.
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import time
from collections.abc import Collection
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from pallet.daemon.containers.manager import ContainerManager
from pallet.daemon.containers.model import Status
from pallet.daemon.events.bus import EventBus
from pallet.daemon.images.model import ImageStore, ImageUsage, Usage
from pallet.daemon.volumes.manager import VolumeManager
from pallet.v1.errors import InvalidArgument

API_VERSION = "v1"
#: The kinds `system df` reports on (docker's `type`): pallet's build cache is its images
#: (a build's steps are images), so "build-cache" has nothing of its own.
DISK_USAGE_KINDS = ("image", "container", "volume", "build-cache")
_NO_USAGE = Usage(0, 0, 0, 0)
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def oci_arch() -> str:
    machine = platform.machine()
    return _ARCH.get(machine, machine)


def cgroup_version() -> str:
    return "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def _mem_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass(frozen=True, slots=True)
class Version:
    version: str
    api_version: str
    python_version: str
    os: str
    arch: str
    kernel_version: str
    git_commit: str = ""


@dataclass(frozen=True, slots=True)
class Info:
    version: Version
    containers: int
    running: int
    paused: int
    stopped: int
    images: int
    root_dir: str
    run_root: str
    storage_driver: str
    cgroup_version: str
    operating_system: str
    ncpu: int
    mem_total: int
    name: str
    last_event_seq: int
    started_at_ns: int


class SystemInfo:
    def __init__(
        self,
        containers: ContainerManager,
        images: ImageStore,
        events: EventBus,
        root: Path,
        run_root: Path,
        volumes: VolumeManager | None = None,
    ) -> None:
        self._volumes = volumes
        self._containers = containers
        self._images = images
        self._events = events
        self._root = root
        self._run_root = run_root
        self._started_ns = time.time_ns()
        try:
            pkg_version = metadata.version("pallet")
        except metadata.PackageNotFoundError:
            pkg_version = "0.0.0+unknown"
        self._version = Version(
            version=pkg_version,
            api_version=API_VERSION,
            python_version=platform.python_version(),
            os=platform.system().lower(),
            arch=oci_arch(),
            kernel_version=platform.release(),
        )

    def version(self) -> Version:
        return self._version

    async def disk_usage(self, kinds: Collection[str] = DISK_USAGE_KINDS) -> DiskUsage:
        return await disk_usage(self._containers, self._images, self._volumes, kinds)

    async def info(self) -> Info:
        counts = self._containers.counts()
        total = sum(counts.values())
        running = counts.get(Status.RUNNING, 0)
        paused = counts.get(Status.PAUSED, 0)
        images = await self._images.list(all=True)
        return Info(
            version=self._version,
            containers=total,
            running=running,
            paused=paused,
            stopped=total - running - paused,
            images=len(images),
            root_dir=str(self._root),
            run_root=str(self._run_root),
            storage_driver="overlay",
            cgroup_version=cgroup_version(),
            operating_system=_os_name(),
            ncpu=os.cpu_count() or 0,
            mem_total=_mem_total(),
            name=socket.gethostname(),
            last_event_seq=self._events.last_seq,
            started_at_ns=self._started_ns,
        )


@dataclass(frozen=True, slots=True)
class ContainerUsage:
    """One container's part of `system df -v`: its writable layer, and that with its
    image's layers (docker's SizeRw and SizeRootFs)."""

    container_id: str
    size_rw: int
    size_root_fs: int


@dataclass(frozen=True, slots=True)
class VolumeUsage:
    """One volume's part of `system df -v`: its data, and the containers that have it
    among their mounts (docker's UsageData)."""

    name: str
    size: int
    ref_count: int


@dataclass(frozen=True, slots=True)
class DiskUsage:
    images: Usage
    containers: Usage
    volumes: Usage = _NO_USAGE
    by_image: tuple[ImageUsage, ...] = ()
    by_container: tuple[ContainerUsage, ...] = ()
    by_volume: tuple[VolumeUsage, ...] = ()


def _tree_bytes(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


async def volume_usage(volumes: VolumeManager) -> tuple[Usage, list[VolumeUsage]]:
    """docker's Local Volumes row: every volume, those a container has among its mounts
    (ACTIVE), the size of their data, and what removing the unused ones would free; and
    each volume's part."""
    infos = [await volumes.info(v.name, with_size=True) for v in volumes.volumes()]
    summary = Usage(
        total=len(infos),
        active=sum(1 for i in infos if i.users),
        size=sum(max(i.size, 0) for i in infos),
        reclaimable=sum(max(i.size, 0) for i in infos if not i.users),
    )
    return summary, [VolumeUsage(i.volume.name, i.size, len(i.users)) for i in infos]


async def container_usage(
    containers: ContainerManager, images: ImageStore
) -> tuple[Usage, list[ContainerUsage]]:
    """The containers' writable layers (docker's Containers row: ACTIVE counts running
    and paused ones, RECLAIMABLE is the layers of the others) and each container's part."""
    found = containers.containers()
    sizes = await asyncio.to_thread(lambda: [_tree_bytes(Path(c.state_dir) / "upper") for c in found])
    running = [c.state.status in (Status.RUNNING, Status.PAUSED) for c in found]
    image_sizes = {image.id: image.size for image in await images.list(all=True)}
    summary = Usage(
        total=len(found),
        active=sum(running),
        size=sum(sizes),
        reclaimable=sum(size for size, run in zip(sizes, running) if not run),
    )
    return summary, [
        ContainerUsage(c.id, size, size + image_sizes.get(c.image_id, 0))
        for c, size in zip(found, sizes)
    ]


async def disk_usage(
    containers: ContainerManager,
    images: ImageStore,
    volumes: VolumeManager | None = None,
    kinds: Collection[str] = DISK_USAGE_KINDS,
) -> DiskUsage:
    """What `system df` shows of `kinds`: images from the image store, containers' writable
    layers, volumes' data; the kinds not asked are not walked (and report nothing)."""
    unknown = sorted(set(kinds) - set(DISK_USAGE_KINDS))
    if unknown:
        raise InvalidArgument(
            f"unknown disk usage type {unknown[0]!r}: use {', '.join(DISK_USAGE_KINDS)}"
        )
    image_summary, by_image = (
        await images.disk_usage_by_image() if "image" in kinds else (_NO_USAGE, [])
    )
    container_summary, by_container = (
        await container_usage(containers, images) if "container" in kinds else (_NO_USAGE, [])
    )
    volume_summary, by_volume = (
        await volume_usage(volumes) if volumes is not None and "volume" in kinds
        else (_NO_USAGE, [])
    )
    return DiskUsage(
        images=image_summary,
        containers=container_summary,
        volumes=volume_summary,
        by_image=tuple(by_image),
        by_container=tuple(by_container),
        by_volume=tuple(by_volume),
    )
