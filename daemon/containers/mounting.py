"""The containers' seam to the volumes, and what a container mounts at each start.

Owns: the `Volumes` protocol the container manager uses (`volumes.manager.VolumeManager`
implements it; `NoVolumes` refuses volumes where none are wired), resolving a create's
-v, --mount, --tmpfs, --volumes-from and the image's volumes into `HostConfig.mounts`
(`resolve_mounts`: named volumes made when missing, anonymous ones made and named,
--mount bind sources checked), and at each start the spec's mounts for them
(`ContainerMounts`: volumes filled from the image when new, mounted, counted; missing -v
host directories made) and their release. Must not: change container records, or
decide a volume's life (the volume manager does).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import structlog

from pallet.daemon.containers import mountspec
from pallet.daemon.containers.model import (
    MOUNT_BIND,
    MOUNT_TMPFS,
    MOUNT_VOLUME,
    ORIGIN_IMAGE,
    ORIGIN_MOUNT,
    ORIGIN_TMPFS,
    ORIGIN_V,
    ORIGIN_VOLUMES_FROM,
    Container,
    HostConfig,
    MountSpec,
)
from pallet.daemon.volumes.model import VolumeUse
from pallet.shim.api.paths import secure_join
from pallet.shim.api.spec import Mount
from pallet.v1.errors import FailedPrecondition, InvalidArgument, NotFound, PalletError

log = structlog.get_logger(__name__)


class Volumes(Protocol):
    """What containers need of the volumes (`VolumeManager`)."""

    async def ensure(self, name: str, anonymous: bool, holder: str = "") -> str:
        """The volume `name` (made when missing; a generated name for a new anonymous one),
        held by the container `holder` being created until `release_pending(holder)`."""
        ...

    def release_pending(self, holder: str) -> None:
        """The container `holder` is recorded, or its create failed: it no longer holds
        what `ensure` gave it (its record does, when there is one)."""
        ...

    def data_dir(self, name: str) -> Path: ...

    async def fill(self, name: str, source: Path) -> bool: ...

    async def fillable(self, names: Sequence[str]) -> set[str]:
        """Which of these `fill` would copy into now (empty, plain, mounted by nobody)."""
        ...

    async def mount_many(self, uses: Sequence[tuple[str, VolumeUse]]) -> list[Path]:
        """The host directories to bind for these uses (one transaction for their events)."""
        ...

    async def unmount(self, name: str, container_id: str) -> None: ...

    async def remove(self, name: str, force: bool = False) -> bool: ...

    async def reconcile(self, uses: Mapping[str, set[str]]) -> None:
        """At boot: the volumes running containers have mounted (name -> container ids)."""
        ...


class NoVolumes:
    """No volume manager (tests of other parts): a container asking for a volume is refused."""

    async def ensure(self, name: str, anonymous: bool, holder: str = "") -> str:
        raise FailedPrecondition("this daemon has no volumes")

    def release_pending(self, holder: str) -> None:
        return None

    def data_dir(self, name: str) -> Path:
        raise NotFound(f"no such volume: {name}")

    async def fill(self, name: str, source: Path) -> bool:
        return False

    async def fillable(self, names: Sequence[str]) -> set[str]:
        return set()

    async def mount_many(self, uses: Sequence[tuple[str, VolumeUse]]) -> list[Path]:
        if uses:
            raise FailedPrecondition("this daemon has no volumes")
        return []

    async def unmount(self, name: str, container_id: str) -> None:
        return None

    async def remove(self, name: str, force: bool = False) -> bool:
        return False

    async def reconcile(self, uses: Mapping[str, set[str]]) -> None:
        return None


Finder = Callable[[str], Container]  # a container by id, id prefix or name


async def resolve_mounts(
    host: HostConfig,
    image_volumes: Sequence[str],
    find: Finder,
    volumes: Volumes,
    made: list[str],
    holder: str = "",
) -> HostConfig:
    """`host` with `mounts` resolved from what was asked (checked first: a bad one changes
    nothing). The anonymous volumes made are appended to `made`, for the caller to
    remove when its create fails after all. Every volume is held by `holder` (the
    container being created) until the caller calls `volumes.release_pending(holder)`."""
    explicit = [replace(mountspec.parse_bind(b), origin=ORIGIN_V) for b in host.binds]
    explicit += [replace(mountspec.check_mount(m), origin=ORIGIN_MOUNT) for m in host.mount_requests]
    explicit += [replace(mountspec.parse_tmpfs(t), origin=ORIGIN_TMPFS) for t in host.tmpfs]
    from_others: list[MountSpec] = []
    for spec in host.volumes_from:
        ref, read_only = mountspec.parse_volumes_from(spec)
        try:
            other = find(ref)
        except NotFound:
            raise NotFound(f"--volumes-from {spec}: no such container: {ref}") from None
        from_others += [replace(m, origin=ORIGIN_VOLUMES_FROM)
                        for m in mountspec.inherited(other.host_config.mounts, read_only)]
    in_image = set(mountspec.image_targets(image_volumes))
    combined = tuple(
        replace(m, origin=m.origin or ORIGIN_IMAGE,  # the rest: the image's
                image_volume=m.target in in_image)
        for m in mountspec.combine(explicit, from_others, image_volumes)
    )
    sources = [m.source for m in combined if m.type == MOUNT_BIND and not m.create_host_path]
    if sources:  # one hop off the loop for all of them
        missing = await asyncio.to_thread(lambda: [s for s in sources if not os.path.exists(s)])
        if missing:
            raise InvalidArgument(
                f"invalid mount config for type \"bind\": bind source path does not exist: "
                f"{missing[0]} (--mount does not make it; -v does)"
            )
    resolved = []
    for m in combined:
        if m.type == MOUNT_VOLUME:
            name = await volumes.ensure(m.source, m.anonymous, holder)
            if m.anonymous:
                made.append(name)
            m = replace(m, source=name)
        resolved.append(m)
    return replace(host, mounts=tuple(resolved))


def volume_names(c: Container) -> list[str]:
    return [m.source for m in c.host_config.mounts if m.type == MOUNT_VOLUME]


def uses_volume(c: Container, name: str) -> bool:
    return any(m.type == MOUNT_VOLUME and m.source == name for m in c.host_config.mounts)


def _bind_options(m: MountSpec) -> tuple[str, ...]:
    return ("rbind", m.propagation or "rprivate", *(("ro",) if m.read_only else ()))


def spec_mount(m: MountSpec, source: str) -> Mount:
    """The shim's mount for `m`, `source` being where it is on the host (volumes, binds)."""
    if m.type == MOUNT_TMPFS:
        options = (*mountspec.TMPFS_DEFAULTS, *m.tmpfs_options, *(("ro",) if m.read_only else ()))
        return Mount(destination=m.target, type="tmpfs", source="tmpfs", options=options)
    return Mount(destination=m.target, type="bind", source=source, options=_bind_options(m))


@dataclass(slots=True)
class ContainerMounts:
    """One start's mounts of one container: made by `mount`, released by `release`."""

    container: Container
    volumes: Volumes
    # A read-only view of the container's filesystem (entered and left on a thread), to
    # fill new volumes from; None: they start empty.
    view: Callable[[], contextlib.AbstractContextManager[Path]] | None = None
    # Whether the container's filesystem may have something at a path (`may_have_path`):
    # when none of the new volumes' paths may, no view is mounted at all.
    may_have: Callable[[str], bool] | None = None
    mounted: list[str] = field(default_factory=list)  # volume names this start holds
    spec: list[Mount] = field(default_factory=list)

    async def mount(self) -> None:
        c = self.container
        mounts = c.host_config.mounts
        if self.view is not None:
            await self._fill_new(mounts, self.view)
        volumes = [m for m in mounts if m.type == MOUNT_VOLUME]
        uses = [(m.source, VolumeUse(c.id, m.target, not m.read_only, "")) for m in volumes]
        paths = dict(zip((m.target for m in volumes), await self.volumes.mount_many(uses)))
        self.mounted = [m.source for m in volumes]
        try:
            for m in mounts:
                if m.type == MOUNT_VOLUME:
                    self.spec.append(spec_mount(m, str(paths[m.target])))
                elif m.type == MOUNT_BIND:
                    if m.create_host_path:
                        await asyncio.to_thread(_make_host_dir, m.source)
                    self.spec.append(spec_mount(m, m.source))
                else:
                    self.spec.append(spec_mount(m, ""))
        except BaseException:
            await self.release()
            raise

    async def _fill_new(
        self,
        mounts: Sequence[MountSpec],
        view: Callable[[], contextlib.AbstractContextManager[Path]],
    ) -> None:
        """Fill the new volumes the image may have content for: which are new and where
        the image may have something are each found in one hop off the loop."""
        wanted = [m for m in mounts if m.type == MOUNT_VOLUME and not m.no_copy]
        if not wanted:
            return
        fillable = await self.volumes.fillable([m.source for m in wanted])
        new = [(m.source, m.target) for m in wanted if m.source in fillable]
        may_have = self.may_have
        if new and may_have is not None:
            new = await asyncio.to_thread(lambda: [(n, t) for n, t in new if may_have(t)])
        if new:
            await self._fill(new, view())

    async def _fill(self, new: list[tuple[str, str]], view: contextlib.AbstractContextManager[Path]) -> None:
        """What the image has at each new volume's path, copied in (docker's copy-up)."""
        root = await asyncio.to_thread(view.__enter__)
        try:
            for name, target in new:
                await self.volumes.fill(name, Path(secure_join(str(root), target)))
        finally:
            await asyncio.to_thread(view.__exit__, None, None, None)

    async def release(self) -> None:
        held, self.mounted = self.mounted, []
        await unmount_volumes(self.volumes, self.container.id, held)


async def unmount_volumes(volumes: Volumes, container_id: str, names: Sequence[str]) -> None:
    """A run's end: the container no longer holds these volumes (one not held is nothing)."""
    for name in names:
        try:
            await volumes.unmount(name, container_id)
        except PalletError as e:
            log.warning("unmounting a volume failed", container_id=container_id,
                        volume=name, reason=str(e))


async def remove_anonymous(volumes: Volumes, c: Container) -> None:
    """rm -v (and --rm): the anonymous volumes made for `c` go with it, unless another
    container uses one too (then it stays, as docker leaves it)."""
    for m in c.host_config.mounts:
        if m.type != MOUNT_VOLUME or not m.anonymous:
            continue
        try:
            await volumes.remove(m.source, force=True)
        except PalletError as e:
            log.info("an anonymous volume of a removed container is kept", container_id=c.id,
                     volume=m.source, reason=str(e))


def _make_host_dir(path: str) -> None:
    """-v's missing host directory, as docker makes it (root's, 0755)."""
    if os.path.lexists(path):
        return  # a directory, or a file: docker binds whatever is there
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise FailedPrecondition(
            f"cannot make the host directory {path} for -v: {exc.strerror or exc}"
        ) from None


def may_have_path(layers: Sequence[str], path: str) -> bool:
    """Whether the merged filesystem of `layers` may have something at `path`: False only
    when no layer has it, walked name by name without following anything, and no layer
    meets a symlink on the way (which could lead anywhere). Cheap: a few lstat calls, so
    a start whose new volumes lie where the image has nothing mounts no view to look."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        return True
    for layer in layers:
        at = layer
        for part in parts:
            at = os.path.join(at, part)
            try:
                mode = os.lstat(at).st_mode
            except (FileNotFoundError, NotADirectoryError):
                break
            if stat.S_ISLNK(mode):
                return True
        else:
            return True
    return False
