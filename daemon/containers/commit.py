"""`commit` and `diff` of a container: its writable layer read, never mounted over.

Owns: the image config a commit starts from (docker's: the container's Cmd, Entrypoint,
Env, WorkingDir, User, ExposedPorts, Labels, StopSignal, and Volumes: the image's plus the
container's anonymous ones), checking the `-c` changes and the name before anything is
frozen or written, freezing a running container (through its shim) while its layer is
read unless asked not to (announced as docker does: `pause`, `unpause`), and the
container `commit` event announced with the image.
Must not: build layers or image documents (`snapshots.difftar`, the image store do), or
hold a freeze past the call: it is thawed however the commit ends, and the shim thaws it
should palletd die meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pallet.daemon.containers.model import MOUNT_VOLUME, Container
from pallet.daemon.events.model import EventPublisher, Notice
from pallet.daemon.images.changes import apply_changes
from pallet.daemon.images.model import CommitRequest, Image, ImageConfig, ImageStore
from pallet.daemon.images.reference import parse_tagged
from pallet.daemon.shims.api import Freeze
from pallet.daemon.snapshots.changes import Change, changes
from pallet.daemon.snapshots.difftar import write_layer
from pallet.v1.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class CommitOptions:
    """What `pallet commit` asks (docker's ContainerCommitOptions)."""

    reference: str = ""
    changes: tuple[str, ...] = ()
    comment: str = ""
    author: str = ""
    pause: bool = True


def commit_config(c: Container, image: Image) -> ImageConfig:
    """The runtime config a commit of `c` starts from, before its `-c` changes."""
    cfg = c.config
    # HOSTNAME is the runtime's, set at each start (docker does not keep it either).
    env = tuple(e for e in cfg.env if e != f"HOSTNAME={cfg.hostname}")
    volumes = list(image.config.volumes)
    for m in c.host_config.mounts:
        if m.type == MOUNT_VOLUME and m.anonymous and m.target not in volumes:
            volumes.append(m.target)
    stop_signal = cfg.stop_signal if (cfg.stop_signal != "SIGTERM" or image.config.stop_signal) else ""
    return ImageConfig(
        entrypoint=cfg.entrypoint,
        cmd=cfg.cmd,
        env=env,
        working_dir=cfg.working_dir if cfg.working_dir != "/" or image.config.working_dir else "",
        user=cfg.user,
        labels=dict(cfg.labels),
        stop_signal=stop_signal,
        exposed_ports=cfg.exposed_ports,
        volumes=tuple(volumes),
        healthcheck=cfg.healthcheck,  # docker's commit keeps the container's
        shell=cfg.shell,
    )


async def checked_config(c: Container, image: Image, options: CommitOptions) -> ImageConfig:
    """The new image's config with the changes applied; InvalidArgument (nothing made,
    nothing frozen) for a bad change or name."""
    if options.reference:
        ref = parse_tagged(options.reference)
        if ref.digest:
            raise InvalidArgument(
                f"cannot commit as {options.reference!r}: give a name and tag, not a digest"
            )
    return await asyncio.to_thread(apply_changes, commit_config(c, image), options.changes)


async def commit(
    c: Container,
    image: Image,
    lowers: list[str],
    options: CommitOptions,
    images: ImageStore,
    freeze: Callable[[], Awaitable[Freeze]] | None,
    events: EventPublisher,
) -> Image:
    """Commit `c` (its image `image`, whose layer dirs are `lowers`); `freeze` is the
    running container's shim's, None for one that does not run. A freeze is announced
    as docker announces it: container `pause`, then `unpause` once thawed (events only:
    the record stays running, so a palletd that dies meanwhile, whose freeze the shim
    lets go, leaves nothing to put right)."""
    config = await checked_config(c, image, options)
    upper = Path(c.state_dir) / "upper"

    def layer(out: IO[bytes]) -> int:
        return write_layer(upper, lowers, out)

    def commit_events(image_id: str) -> list[Notice]:
        attrs = dict(c.config.labels)
        attrs.update(name=c.name, image=c.config.image, comment=options.comment,
                     imageID=image_id, imageRef=options.reference)
        return [Notice("container", "commit", c.id, attrs)]

    request = CommitRequest(
        base_image_id=image.id,
        write_layer=layer,
        config=config,
        reference=options.reference,
        comment=options.comment,
        author=options.author,
        created_by=" ".join(c.config.cmd),
        container_id=c.id,
        container_events=commit_events,
    )
    attrs = {**c.config.labels, "name": c.name, "image": c.config.image}
    held = None
    if freeze is not None and options.pause:
        held = await freeze()
        try:
            await events.publish("container", "pause", c.id, attrs)
        except BaseException:
            await asyncio.shield(held.thaw())
            raise
    try:
        return await images.commit(request)
    finally:
        if held is not None:
            await asyncio.shield(_thaw(held, events, c.id, attrs))


async def _thaw(held: Freeze, events: EventPublisher, container_id: str, attrs: dict[str, str]) -> None:
    await held.thaw()
    await events.publish("container", "unpause", container_id, attrs)


async def diff(c: Container, lowers: list[str]) -> list[Change]:
    """`diff`: the container's changes, from its upper directory (running or not)."""
    upper = Path(c.state_dir) / "upper"
    if not upper.is_dir():
        return []
    return await asyncio.to_thread(changes, upper, lowers)

