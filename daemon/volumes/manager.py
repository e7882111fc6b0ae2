"""Volumes: their records, their directories, and what their options mount there.

Owns: every volume (named and anonymous), its directory `<root>/volumes/<name>/_data`,
the mount its local-driver options ask for (made when the first container mounts it,
removed after the last one is done: `mount`/`unmount`, counted per container, recounted
at boot by `reconcile`), filling a new volume with an image's content (`fill`), and the
`create`, `mount`, `unmount` and `destroy` events. Must not: change container records (the
container manager says who uses a volume), or remove a volume a container has among its
mounts, force or not.

Crash safety: every state in between has its own name under `<root>/volumes`, so a boot
knows what a kill -9 cut short and never guesses from a missing record (a lost, restored
or older pallet.db must not cost any volume its data):

- create makes `.creating-<name>/_data` (and tries the options' mount there), writes the
  record with its `create` event, then renames the directory to `<name>`. At boot a
  `.creating-X` whose record exists is renamed into place; one without is removed.
- remove renames `<name>` to `.removing-<name>-<random>` (under the lock), deletes the
  record with its `destroy` event, then deletes the data. At boot `.removing-*` go.
- `.fill-*` inside a volume's directory (a copy-up cut short) go at boot.
- any other directory with a volume's name and no record is adopted, as docker's local
  driver adopts the directories it finds: recorded with the driver, labels and options its
  `volume.json` keeps (written by create beside `_data`, as docker's `opts.json`: a tmpfs
  or bind volume must not come back as a plain directory; none when there is no such file)
  and its directory's mtime as created time, with a `create` event (subscribers learn of it
  as of any new volume). It is never deleted; a name no volume may have is left alone.

Whatever is deleted has its mounts taken off first, deepest first, so a bind's host
directory is never walked into. A volume's data is only ever deleted by `remove` and
`prune`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import sqlite3
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from pallet.daemon.events.model import EventPublisher, Notice
from pallet.daemon.faults import NO_CRASHES, CrashHook
from pallet.daemon.images.fsutil import remove_tree
from pallet.daemon.store import space
from pallet.daemon.volumes import copyup
from pallet.daemon.volumes.model import (
    DRIVER_LOCAL,
    LABEL_ANONYMOUS,
    Volume,
    VolumeUse,
    is_volume_name,
)
from pallet.daemon.volumes.mounts import Mounter, kernel_filesystems, parse_local_options
from pallet.daemon.volumes.store import (
    VolumeRecords,
    mount_delete_writer,
    mount_insert_writer,
    volume_delete_writer,
    volume_insert_writer,
)
from pallet.v1.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)

log = structlog.get_logger(__name__)

VOLUMES_DIR = "volumes"
DATA_DIR = "_data"
# Beside `_data`: what the volume was created with, for a boot that finds no record of it.
META_FILE = "volume.json"
# The in-progress names beside the volumes (none is a volume name: those start with a
# letter or digit).
CREATING = ".creating-"
REMOVING = ".removing-"

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


def _rename_if_there(old: Path, new: Path) -> bool:
    try:
        os.rename(old, new)
    except FileNotFoundError:
        return False  # a record whose directory went (by hand): the record goes alone
    return True


def _is_empty(path: Path) -> bool:
    try:
        with os.scandir(path) as entries:
            return not any(entries)
    except FileNotFoundError:
        return False


def check_name(name: str) -> str:
    if not is_volume_name(name):
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
        self._known_filesystems: frozenset[str] = frozenset()  # read once, at start
        self._volumes: dict[str, Volume] = {}
        # Containers that have a volume mounted now (started, not yet settled), by volume.
        self._mounted: dict[str, set[str]] = {}
        # The manager's lock guards the set of volumes (create, remove, ensure); a
        # volume's own lock guards its mounts and content (mount, unmount, fill, remove),
        # so a long fill holds up that volume only. Order: a volume's lock, then this.
        self._lock = asyncio.Lock()
        self._volume_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        # Containers being created with a volume (ensured, not yet recorded), by volume:
        # in use as much as a recorded container's, until `release_pending`.
        self._pending: dict[str, set[str]] = {}
        # Names whose data is being deleted (record gone): a create of one waits for it.
        self._removing: set[str] = set()
        self._users: Users = lambda name: []

    def _volume_lock(self, name: str) -> asyncio.Lock:
        """The lock of one volume (kept while anyone holds or waits for it)."""
        lock = self._volume_locks.get(name)
        if lock is None:
            lock = self._volume_locks[name] = asyncio.Lock()
        return lock

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
        adopted, removed = await asyncio.to_thread(self._recover_dirs)
        for name in removed:
            # A remove cut short after its rename, before its record went: finished.
            with space.essential():
                await self._events.publish(
                    "volume", "destroy", name, {"driver": self._volumes[name].driver},
                    also=volume_delete_writer(name),
                )
            del self._volumes[name]
            self._mounted.pop(name, None)
        for v in adopted:
            # Essential: a full disk must not keep palletd from starting.
            with space.essential():
                await self._events.publish(
                    "volume", "create", v.name, {"driver": v.driver},
                    also=volume_insert_writer(v),
                )
            self._volumes[v.name] = v

    async def aclose(self) -> None:
        pass  # mounts stay: running containers keep using them

    def _recover_dirs(self) -> tuple[list[Volume], list[str]]:
        """Finish or undo what a crash cut short (the rules are at the top of this module):
        the volumes to adopt (directories with a volume's name that no record names), and
        the records of removes cut short, to delete. The kernel's filesystems are read
        here too (once: the options of every create and mount are checked against them)."""
        self._known_filesystems = self._filesystems()
        with os.scandir(self._dir) as entries:
            found = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in entries)
        adopted, removed = [], []
        for name, is_dir in found:
            path = self._dir / name
            if name.startswith(CREATING):
                volume = name[len(CREATING):]
                if volume in self._volumes and not (self._dir / volume).exists():
                    log.info("finishing a volume create cut short", volume=volume)
                    self._unmount_inside(path)
                    os.rename(path, self._dir / volume)
                    copyup.remove_unfinished(self._dir / volume)
                else:
                    log.info("removing a volume create cut short", path=str(path))
                    self._remove_dir(path)
            elif name.startswith(REMOVING):
                log.info("finishing a volume remove cut short", path=str(path))
                self._remove_dir(path)
                volume = name[len(REMOVING):].rpartition("-")[0]
                if volume in self._volumes and not (self._dir / volume).exists():
                    removed.append(volume)
            elif name in self._volumes:
                copyup.remove_unfinished(path)
            elif is_dir and is_volume_name(name):
                log.warning("adopting a volume directory no record names", volume=name)
                self._unmount_inside(path)  # a plain volume nobody uses has nothing mounted
                (path / DATA_DIR).mkdir(mode=0o755, exist_ok=True)
                adopted.append(self._adopted(name, path))
            else:
                log.warning("leaving alone what is not a volume", path=str(path))
        return adopted, removed

    def _unmount_inside(self, path: Path) -> None:
        """Take off every mount inside `path`, deepest first (a bind's host directory must
        never be walked into or carried along)."""
        for point in sorted(self._mounter.mount_points(str(path)), key=len, reverse=True):
            self._mounter.unmount(point)
        left = self._mounter.mount_points(str(path))
        if left:
            raise FailedPrecondition(
                f"cannot remove {path}: {', '.join(sorted(left))} is still mounted"
            )

    def _remove_dir(self, path: Path) -> None:
        """Take off every mount inside, deepest first, then delete: never through a mount."""
        self._unmount_inside(path)
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

    async def info(self, name: str, with_size: bool = False) -> VolumeInfo:
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
        holder: str = "",
    ) -> Volume:
        """A new volume, or the one of that name when it is the same (docker's); with a
        `holder`, that container being created holds it (`ensure`)."""
        driver = driver or DRIVER_LOCAL
        if driver != DRIVER_LOCAL:
            raise InvalidArgument(f"unknown volume driver {driver!r}: pallet has the local driver only")
        labels = dict(labels or {})
        if anonymous:
            labels[LABEL_ANONYMOUS] = ""
        options = dict(options or {})
        mount = parse_local_options(options, self._known_filesystems)
        name = check_name(name) if name else secrets.token_hex(32)
        async with self._lock:
            old = self._volumes.get(name)
            if old is not None:
                if old.driver == driver and (not labels or old.labels == labels) and (
                    not options or old.options == options
                ):
                    self._hold(name, holder)
                    return old
                raise AlreadyExists(
                    f"volume {name} exists already with other labels or options: choose "
                    "another name, or remove it first"
                )
            if name in self._removing:
                raise Conflict(f"volume {name} is being removed: try again")
            v = Volume(name=name, created_ns=self._clock(), driver=driver, labels=labels,
                       options=options)
            creating = self._dir / f"{CREATING}{name}"
            # Made aside, recorded, then renamed into place: a crash before the record
            # leaves a `.creating-` directory the next start removes, one after it a
            # `.creating-` directory the next start renames in.
            await asyncio.to_thread(self._make_dir, v, creating)
            try:
                self._crashes.hit("volume-create", "dir")
                if mount is not None:
                    # Tried once now, so a bad device or option fails here, not at the
                    # first container's start.
                    data = str(creating / DATA_DIR)
                    await asyncio.to_thread(self._mounter.mount, mount, data)
                    self._crashes.hit("volume-create", "mounted")
                    await asyncio.to_thread(self._mounter.unmount, data)
                await self._events.publish(
                    "volume", "create", name, {"driver": driver},
                    also=volume_insert_writer(v),
                )
            except BaseException:
                await asyncio.to_thread(self._remove_dir, creating)
                raise
            self._crashes.hit("volume-create", "recorded")
            # Recorded: from here on the volume exists, and a boot finishes the rename.
            self._volumes[name] = v
            self._hold(name, holder)
            await asyncio.to_thread(os.rename, creating, self._dir / name)
        return v

    def _make_dir(self, v: Volume, creating: Path) -> None:
        if (self._dir / v.name).exists():
            raise FailedPrecondition(
                f"volume {v.name} has a directory and no record: restart palletd to adopt it"
            )
        if creating.exists():
            raise Conflict(f"volume {v.name} is being created: try again")
        creating.mkdir(mode=0o701)
        (creating / DATA_DIR).mkdir(mode=0o755)
        meta = {"driver": v.driver, "labels": dict(v.labels), "options": dict(v.options)}
        with open(creating / META_FILE, "x", encoding="utf-8") as f:
            json.dump(meta, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())

    def _adopted(self, name: str, path: Path) -> Volume:
        """The volume a directory no record names stands for: what its `volume.json` says
        it was created with, when that reads well and its options are ones this host can
        mount; else a plain local volume (as before there was such a file)."""
        created_ns = os.stat(path).st_mtime_ns
        try:
            meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return Volume(name=name, created_ns=created_ns)
        except (OSError, ValueError) as exc:
            log.warning("a volume's volume.json does not read: adopted without its options",
                        volume=name, reason=str(exc))
            return Volume(name=name, created_ns=created_ns)
        labels, options = meta.get("labels"), meta.get("options")
        if not (_str_map(labels) and _str_map(options) and meta.get("driver") == DRIVER_LOCAL):
            log.warning("a volume's volume.json is not one pallet wrote: adopted without it",
                        volume=name)
            return Volume(name=name, created_ns=created_ns)
        try:
            parse_local_options(dict(options), self._known_filesystems)
        except InvalidArgument as exc:
            log.warning("a volume's options do not mount here: adopted without them",
                        volume=name, reason=str(exc))
            options = {}
        return Volume(name=name, created_ns=created_ns, labels=dict(labels), options=dict(options))

    async def remove(self, name: str, force: bool = False) -> bool:
        """Remove a volume and its data; False for an unknown name with `force`."""
        async with self._volume_lock(name), self._lock:
            v = self._volumes.get(name)
            if v is None:
                if force:
                    return False
                raise NotFound(f"no such volume: {name}")
            if self._pending.get(name):
                raise FailedPrecondition(
                    f"volume {name} is in use by a container being created: remove that "
                    "container first, then the volume"
                )
            users = self._users(name)
            if users or self._mounted.get(name):
                names = ", ".join(sorted(n for _, n in users) or sorted(self._mounted[name]))
                raise FailedPrecondition(
                    f"volume {name} is in use by container {names}: remove "
                    "the container first (rm -f CONTAINER), then the volume"
                )
            # Renamed aside, the record deleted, then the data: a crash after the rename
            # leaves a `.removing-` directory, which the next start deletes (and the
            # record with it, when it was still there). Essential: rm is the way out of
            # a full disk.
            top = self._dir / name
            aside = self._dir / f"{REMOVING}{name}-{secrets.token_hex(4)}"
            moved = await asyncio.to_thread(_rename_if_there, top, aside)
            try:
                with space.essential():
                    await self._events.publish(
                        "volume", "destroy", name, {"driver": v.driver},
                        also=volume_delete_writer(name),
                    )
            except BaseException:
                if moved:
                    await asyncio.to_thread(os.rename, aside, top)
                raise
            del self._volumes[name]
            self._removing.add(name)
        try:
            self._crashes.hit("volume-remove", "recorded")
            if moved:
                await asyncio.to_thread(self._remove_dir, aside)
        finally:
            self._removing.discard(name)
        return True

    async def prune(
        self, all_volumes: bool, select: Callable[[Volume], bool] = lambda v: True
    ) -> tuple[list[str], int]:
        """Remove the unused volumes (anonymous only unless `all_volumes`): their names
        and the bytes their data took."""
        removed, reclaimed = [], 0
        for v in self.volumes():
            if self._users(v.name) or self._mounted.get(v.name) or self._pending.get(v.name):
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
        async with contextlib.AsyncExitStack() as locks:
            for name in sorted({name for name, _ in uses}):  # in one order: no deadlock
                await locks.enter_async_context(self._volume_lock(name))
            fresh: list[tuple[str, VolumeUse, Volume]] = []
            made: list[str] = []  # driver mounts made here: taken off again on failure
            try:
                for name, use in uses:
                    v = self.get(name)
                    holders = self._mounted.get(name, set())
                    if use.container_id in holders or any(n == name for n, _, _ in fresh):
                        continue  # this run holds it already (one mount per run)
                    if v.mounted_by_driver and not holders:
                        mount = parse_local_options(dict(v.options), self._known_filesystems)
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
        async with self._volume_lock(name):
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

    async def ensure(self, name: str, anonymous: bool, holder: str = "") -> str:
        """The volume `name`, made when missing (docker makes -v's named volumes); a new
        anonymous one, with a generated name, when `name` is empty. With a `holder` (a
        container being created), it counts as in use until `release_pending(holder)`:
        a prune or rm meanwhile must not take it from under the create."""
        if name:
            async with self._lock:
                if name in self._volumes:
                    self._hold(name, holder)
                    return name
        return (await self.create(name, anonymous=anonymous, holder=holder)).name

    def _hold(self, name: str, holder: str) -> None:
        if holder:
            self._pending.setdefault(name, set()).add(holder)

    def release_pending(self, holder: str) -> None:
        """The container `holder` is recorded (its record holds its volumes now), or its
        create failed: what it held while being created is no longer held by it."""
        for name in [n for n, holders in self._pending.items() if holder in holders]:
            self._pending[name].discard(holder)
            if not self._pending[name]:
                del self._pending[name]

    async def fillable(self, names: Sequence[str]) -> set[str]:
        """Which of `names` `fill` would copy into now: plain ones, unused, empty (the
        directories read in one hop off the loop)."""
        plain = [
            name for name in dict.fromkeys(names)
            if (v := self._volumes.get(name)) is not None and not v.mounted_by_driver
            and not self._mounted.get(name)
        ]
        if not plain:
            return set()
        dirs = [self.data_dir(name) for name in plain]
        empty = await asyncio.to_thread(lambda: [_is_empty(d) for d in dirs])
        return {name for name, e in zip(plain, empty) if e}

    async def fill(self, name: str, source: Path) -> bool:
        """Copy what an image has at a volume's mount point into it, once: only while the
        volume is empty, and whole or not at all (copied aside, then renamed in)."""
        # Its own lock only: other volumes' mounts and unmounts go on during the copy; two
        # starts filling one volume: the second finds it full.
        async with self._volume_lock(name):
            v = self.get(name)
            if v.mounted_by_driver or self._mounted.get(name):
                # Its content is the device's; or a running container uses it as it is.
                return False
            return await asyncio.to_thread(
                copyup.fill, source, self.data_dir(name),
                lambda: self._crashes.hit("volume-fill", "copied"),
            )


def _str_map(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )
