"""Volumes: their records, their directories, and what their options mount there.

Owns: every volume (named and anonymous), its directory `<root>/volumes/<name>/_data`,
the mount its local-driver options ask for (made when the first container mounts it,
removed after the last one is done: `mount`/`unmount`, counted per container, recounted
at boot by `reconcile`), filling a new volume with an image's content (`fill`), and the
`create`, `mount`, `unmount` and `destroy` events. Must not: change container records (the
container manager says who uses a volume), or remove a volume a container has among its
mounts, force or not.

Crash safety: the directory is made before the record and removed after it, so a kill -9
leaves at worst a directory no record names, which the next start removes (after taking
off anything mounted in it, so a bind's host directory is never walked into). A volume's
data is only ever deleted by `remove` and `prune`.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from pallet.daemon.events.model import EventPublisher, Notice
from pallet.daemon.faults import NO_CRASHES, CrashHook
from pallet.daemon.images.fsutil import remove_tree
from pallet.daemon.store import space
from pallet.daemon.volumes import copyup
from pallet.daemon.volumes.model import DRIVER_LOCAL, LABEL_ANONYMOUS, Volume, VolumeUse
from pallet.daemon.volumes.mounts import Mounter, kernel_filesystems, parse_local_options
from pallet.daemon.volumes.store import (
    VolumeRecords,
    mount_delete_writer,
    mount_insert_writer,
    volume_delete_writer,
    volume_insert_writer,
)
from pallet.v1.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

log = structlog.get_logger(__name__)

VOLUMES_DIR = "volumes"
DATA_DIR = "_data"
# Docker's rule, with a length a directory name can have.
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_NAME_MAX = 255

Users = Callable[[str], list[tuple[str, str]]]  # volume name -> [(container id, name)]


@dataclass(frozen=True, slots=True)
class VolumeInfo:
    """A volume as inspect shows it: the record, where it is, who uses it, its size."""

    volume: Volume
    mountpoint: str
    users: tuple[tuple[str, str], ...]
    size: int  # bytes; -1 when not computed


def _mount_change(
    fresh: list[tuple[str, VolumeUse, Volume]],
) -> Callable[[sqlite3.Connection], tuple[None, list[Notice]]]:
    """The rows of who holds which volume, and docker's `mount` event for each."""

    def change(conn: sqlite3.Connection) -> tuple[None, list[Notice]]:
        notices = []
        for name, use, v in fresh:
            mount_insert_writer(name, use.container_id)(conn)
            notices.append(Notice("volume", "mount", name, {
                "container": use.container_id,
                "destination": use.destination,
                "driver": v.driver,
                "propagation": use.propagation,
                "read/write": "true" if use.read_write else "false",
            }))
        return None, notices

    return change


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or len(name.encode()) > _NAME_MAX:
        raise InvalidArgument(
            f"invalid volume name {name!r}: use at least two characters from "
            "[a-zA-Z0-9_.-], starting with a letter or digit (at most 255)"
        )
    return name


class VolumeManager:
    """The volumes of one palletd."""

    def __init__(
        self,
        records: VolumeRecords,
        events: EventPublisher,
        root: Path,
        mounter: Mounter,
        crashes: CrashHook = NO_CRASHES,
        clock: Callable[[], int] = time.time_ns,
        filesystems: Callable[[], frozenset[str]] = kernel_filesystems,
    ) -> None:
        self._records = records
        self._events = events
        self._dir = root.absolute() / VOLUMES_DIR
        self._mounter = mounter
        self._crashes = crashes
        self._clock = clock
        self._filesystems = filesystems
        self._volumes: dict[str, Volume] = {}
        # Containers that have a volume mounted now (started, not yet settled), by volume.
        self._mounted: dict[str, set[str]] = {}
        self._lock = asyncio.Lock()
        self._users: Users = lambda name: []

    def set_users(self, users: Users) -> None:
        """Who has a volume among their mounts (running or not): the container manager's view."""
        self._users = users

    # ---- component lifecycle -------------------------------------------------------

    async def start(self) -> None:
        await self._records.start()
        self._dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self._dir, 0o700)  # volume data is the containers' business, not the host users'
        for v in await self._records.load():
            self._volumes[v.name] = v
        # Mounts of the last palletd's runs: a run that ended meanwhile is unmounted when
        # the container manager settles it, one still running is kept (`reconcile`).
        for name, cid in await self._records.load_mounts():
            self._mounted.setdefault(name, set()).add(cid)
        await asyncio.to_thread(self._remove_leftovers)

    async def aclose(self) -> None:
        pass  # mounts stay: running containers keep using them

    def _remove_leftovers(self) -> None:
        """Directories no record names (a create or remove cut short) and unfinished fills."""
        with os.scandir(self._dir) as entries:
            names = [e.name for e in entries]
        for name in names:
            path = self._dir / name
            if name not in self._volumes:
                log.info("removing a volume directory no record names", path=str(path))
                self._remove_dir(path)
            else:
                copyup.remove_unfinished(path)

    def _remove_dir(self, path: Path) -> None:
        """Take off every mount inside, deepest first, then delete: never through a mount."""
        for point in sorted(self._mounter.mount_points(str(path)), key=len, reverse=True):
            self._mounter.unmount(point)
        left = self._mounter.mount_points(str(path))
        if left:
            raise FailedPrecondition(
                f"cannot remove {path}: {', '.join(sorted(left))} is still mounted"
            )
        remove_tree(path)

    async def reconcile(self, uses: Mapping[str, set[str]]) -> None:
        """After the container manager re-adopted and settled what ran: `uses` are the
        volumes its running containers have mounted. A mount held by a container that no
        longer runs is unmounted (with its event); a driver mount nobody uses is taken off."""
        for name, holders in list(self._mounted.items()):
            for cid in sorted(holders - uses.get(name, set())):
                await self.unmount(name, cid)
        points = await asyncio.to_thread(self._mounter.mount_points, str(self._dir))
        for v in self._volumes.values():
            data = str(self.data_dir(v.name))
            if v.mounted_by_driver and data in points and not self._mounted.get(v.name):
                log.info("unmounting a volume no running container uses", volume=v.name)
                await asyncio.to_thread(self._mounter.unmount, data)

    # ---- the records -----------------------------------------------------------------

    def data_dir(self, name: str) -> Path:
        return self._dir / name / DATA_DIR

    def volumes(self) -> list[Volume]:
        return sorted(self._volumes.values(), key=lambda v: v.name)

    def get(self, name: str) -> Volume:
        v = self._volumes.get(name)
        if v is None:
            raise NotFound(f"no such volume: {name}")
        return v

    def users(self, name: str) -> list[tuple[str, str]]:
        return self._users(name)

    async def info(self, name: str, with_size: bool = True) -> VolumeInfo:
        v = self.get(name)
        size = await asyncio.to_thread(copyup.tree_size, self.data_dir(name)) if with_size else -1
        return VolumeInfo(v, str(self.data_dir(name)), tuple(self._users(name)), size)

    async def create(
        self,
        name: str = "",
        driver: str = "",
        labels: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
        anonymous: bool = False,
    ) -> Volume:
        """A new volume, or the one of that name when it is the same (docker's)."""
        driver = driver or DRIVER_LOCAL
        if driver != DRIVER_LOCAL:
            raise InvalidArgument(f"unknown volume driver {driver!r}: pallet has the local driver only")
        labels = dict(labels or {})
        if anonymous:
            labels[LABEL_ANONYMOUS] = ""
        options = dict(options or {})
        mount = parse_local_options(options, self._filesystems())
        name = check_name(name) if name else secrets.token_hex(32)
        async with self._lock:
            old = self._volumes.get(name)
            if old is not None:
                if old.driver == driver and (not labels or old.labels == labels) and (
                    not options or old.options == options
                ):
                    return old
                raise AlreadyExists(
                    f"volume {name} exists already with other labels or options: choose "
                    "another name, or remove it first"
                )
            v = Volume(name=name, created_ns=self._clock(), driver=driver, labels=labels,
                       options=options)
            top = self._dir / name
            # The directory first, the record last: a crash between leaves a directory no
            # record names, which the next start removes.
            await asyncio.to_thread(self._make_dir, top)
            try:
                self._crashes.hit("volume-create", "dir")
                if mount is not None:
                    # Tried once now, so a bad device or option fails here, not at the
                    # first container's start.
                    data = str(top / DATA_DIR)
                    await asyncio.to_thread(self._mounter.mount, mount, data)
                    await asyncio.to_thread(self._mounter.unmount, data)
                await self._events.publish(
                    "volume", "create", name, {"driver": driver},
                    also=volume_insert_writer(v),
                )
            except BaseException:
                await asyncio.to_thread(self._remove_dir, top)
                raise
            self._volumes[name] = v
        self._crashes.hit("volume-create", "recorded")
        return v

    @staticmethod
    def _make_dir(top: Path) -> None:
        if top.exists():
            raise FailedPrecondition(f"{top} exists already: restart palletd to clear it")
        top.mkdir(mode=0o701)
        (top / DATA_DIR).mkdir(mode=0o755)

    async def remove(self, name: str, force: bool = False) -> bool:
        """Remove a volume and its data; False for an unknown name with `force`."""
        async with self._lock:
            v = self._volumes.get(name)
            if v is None:
                if force:
                    return False
                raise NotFound(f"no such volume: {name}")
            users = self._users(name)
            if users or self._mounted.get(name):
                names = ", ".join(sorted(n for _, n in users) or sorted(self._mounted[name]))
                raise FailedPrecondition(
                    f"volume {name} is in use by container {names}: remove "
                    "the container first (rm -f CONTAINER), then the volume"
                )
            # The record first, the data last: a crash between leaves a directory no
            # record names, which the next start removes. Essential: rm is the way out of
            # a full disk.
            with space.essential():
                await self._events.publish(
                    "volume", "destroy", name, {"driver": v.driver},
                    also=volume_delete_writer(name),
                )
            del self._volumes[name]
        self._crashes.hit("volume-remove", "recorded")
        await asyncio.to_thread(self._remove_dir, self._dir / name)
        return True

    async def prune(
        self, all_volumes: bool, select: Callable[[Volume], bool] = lambda v: True
    ) -> tuple[list[str], int]:
        """Remove the unused volumes (anonymous only unless `all_volumes`): their names
        and the bytes their data took."""
        removed, reclaimed = [], 0
        for v in self.volumes():
            if self._users(v.name) or self._mounted.get(v.name):
                continue
            if not (all_volumes or v.anonymous) or not select(v):
                continue
            size = await asyncio.to_thread(copyup.tree_size, self.data_dir(v.name))
            try:
                await self.remove(v.name)
            except (FailedPrecondition, NotFound):
                continue  # a container took it meanwhile, or it went
            removed.append(v.name)
            reclaimed += size
        return removed, reclaimed

    # ---- containers -------------------------------------------------------------------

    async def mount(self, name: str, use: VolumeUse) -> Path:
        """The host directory to bind for a container's mount of `name`."""
        [path] = await self.mount_many([(name, use)])
        return path

    async def mount_many(self, uses: Sequence[tuple[str, VolumeUse]]) -> list[Path]:
        """The host directories to bind for a start's volumes, in order: the first user of
        a volume with options has its mount made; all the `mount` events (and who holds
        what) are journalled in one transaction."""
        async with self._lock:
            fresh: list[tuple[str, VolumeUse, Volume]] = []
            made: list[str] = []  # driver mounts made here: taken off again on failure
            try:
                for name, use in uses:
                    v = self.get(name)
                    holders = self._mounted.get(name, set())
                    if use.container_id in holders or any(n == name for n, _, _ in fresh):
                        continue  # this run holds it already (one mount per run)
                    if v.mounted_by_driver and not holders:
                        mount = parse_local_options(dict(v.options), self._filesystems())
                        if mount is not None:
                            data = str(self.data_dir(name))
                            await asyncio.to_thread(self._mounter.mount, mount, data)
                            made.append(data)
                    fresh.append((name, use, v))
                if fresh:
                    await self._events.commit(_mount_change(fresh))
            except BaseException:
                for data in made:
                    await asyncio.to_thread(self._mounter.unmount, data)
                raise
            for name, use, _ in fresh:
                self._mounted.setdefault(name, set()).add(use.container_id)
        return [self.data_dir(name) for name, _ in uses]

    async def unmount(self, name: str, container_id: str) -> None:
        """A container is done with `name`; the last one's going takes its mount off."""
        async with self._lock:
            holders = self._mounted.get(name)
            if holders is None or container_id not in holders:
                return
            v = self._volumes.get(name)
            # Essential: the end of a run is recorded on a full disk too.
            with space.essential():
                await self._events.publish("volume", "unmount", name, {
                    "container": container_id,
                    "driver": v.driver if v else DRIVER_LOCAL,
                }, also=mount_delete_writer(name, container_id))
            holders.discard(container_id)
            if not holders:
                del self._mounted[name]
                if v is not None and v.mounted_by_driver:
                    await asyncio.to_thread(self._mounter.unmount, str(self.data_dir(name)))

    async def ensure(self, name: str, anonymous: bool) -> str:
        """The volume `name`, made when missing (docker makes -v's named volumes); a new
        anonymous one, with a generated name, when `name` is empty."""
        if name and name in self._volumes:
            return name
        return (await self.create(name, anonymous=anonymous)).name

    def fillable(self, name: str) -> bool:
        """Whether `fill` would copy into the volume now: a plain one, empty, unused."""
        v = self._volumes.get(name)
        if v is None or v.mounted_by_driver or self._mounted.get(name):
            return False
        try:
            with os.scandir(self.data_dir(name)) as entries:
                return not any(entries)
        except FileNotFoundError:
            return False

    async def fill(self, name: str, source: Path) -> bool:
        """Copy what an image has at a volume's mount point into it, once: only while the
        volume is empty, and whole or not at all (copied aside, then renamed in)."""
        async with self._lock:  # two starts filling one volume: the second finds it full
            v = self.get(name)
            if v.mounted_by_driver or self._mounted.get(name):
                # Its content is the device's; or a running container uses it as it is.
                return False
            return await asyncio.to_thread(
                copyup.fill, source, self.data_dir(name),
                lambda: self._crashes.hit("volume-fill", "copied"),
            )
