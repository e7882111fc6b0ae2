"""Image values the rest of palletd uses, and the ImageManager contract.

Owns: the frozen dataclasses for images (and for what the store's operations take and
return: credentials, progress, history, disk usage, prune results) and the `ImageStore`
protocol that `pallet.daemon.images.manager.ImageManager` implements. Must not: do I/O,
or import anything else of `pallet.daemon.images` (every other module there may import
this one, so an import back would make a circle).
"""

from __future__ import annotations

import base64
import builtins
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Protocol

from pallet.daemon.events.model import Notice

#: How a long operation (pull, push) reports: layer id, status, current, total.
ProgressFn = Callable[[str, str, int, int], None]


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """docker's Healthcheck (an image's, or a container's once merged over it), with
    docker's zero values: durations in ns and retries 0 mean "docker's default" (or, in a
    create request, "the image's"); `pallet.daemon.containers.healthcheck` checks them.

    `test` is docker's Test: () inherits the image's, ("NONE",) disables it,
    ("CMD", arg, ...) execs the args, ("CMD-SHELL", command) runs /bin/sh -c command.
    """

    test: tuple[str, ...] = ()
    interval_ns: int = 0
    timeout_ns: int = 0
    start_period_ns: int = 0
    start_interval_ns: int = 0
    retries: int = 0


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The runtime part of an OCI image config."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    # A Dockerfile's ONBUILD triggers ("RUN make"), run by a build FROM this image.
    on_build: tuple[str, ...] = ()
    # A Dockerfile's SHELL: what RUN, CMD and ENTRYPOINT's shell forms run in ("": /bin/sh -c).
    shell: tuple[str, ...] = ()
    healthcheck: HealthConfig | None = None  # docker's Healthcheck; None: the image has none


@dataclass(frozen=True, slots=True)
class Image:
    """One stored image."""

    id: str  # "sha256:<hex of the config blob>"
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    created_ns: int
    size: int  # unpacked bytes of all layers
    config: ImageConfig
    layers: tuple[str, ...]  # diff ids, bottom first
    architecture: str = ""
    os: str = "linux"
    author: str = ""
    comment: str = ""
    manifest_digest: str = ""


@dataclass(frozen=True, slots=True)
class ImageUser:
    """A container created from an image (what `rmi` must not pull the floor from under)."""

    name: str
    running: bool


@dataclass(frozen=True, slots=True)
class LoadResult:
    images: tuple[Image, ...]
    references: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RemoveResult:
    untagged: tuple[str, ...]
    deleted: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One step of `pallet history`, newest first."""

    id: str  # the image id on the newest entry, "<missing>" on the others
    created_ns: int
    created_by: str
    size: int
    comment: str
    empty_layer: bool


@dataclass(frozen=True, slots=True)
class Usage:
    """What images take on disk (`pallet system df`)."""

    total: int
    active: int
    size: int
    reclaimable: int


@dataclass(frozen=True, slots=True)
class ImageUsage:
    """One image's part of `system df -v`: the bytes of its unpacked layers and blobs on
    disk, those of them another image holds too, and the containers made from it."""

    image_id: str
    size: int
    shared_size: int
    containers: int


@dataclass(frozen=True, slots=True)
class PruneResult:
    untagged: tuple[str, ...]
    deleted: tuple[str, ...]
    space_reclaimed: int


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the caller gave for one registry; empty means anonymous."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def __bool__(self) -> bool:
        return bool(self.username or self.password or self.identity_token)

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True, slots=True)
class CommitRequest:
    """A new image from a container: its image's layers plus one the caller writes.

    `write_layer` writes the new layer as an uncompressed tar to the file it is given and
    returns how many entries it wrote (0: no layer, only a history entry, as docker does);
    it runs on a worker thread. `config` is the new image's runtime config, complete.
    `container_events(image_id)` are the events the container side announces with the
    image, in the same transaction (docker's container `commit`).
    """

    base_image_id: str  # "": scratch (a build's first layer on nothing)
    write_layer: Callable[[IO[bytes]], int]
    config: ImageConfig
    reference: str = ""  # REPO[:TAG]; "" for an image known by its id only
    comment: str = ""
    author: str = ""
    created_by: str = ""  # the history entry's (docker: the container's Cmd)
    container_id: str = ""
    container_events: Callable[[str], Sequence[Notice]] = lambda image_id: ()
    # With no base (scratch): the created_by of the steps before this one, each a history
    # entry without a layer (a build's config steps before its first layer).
    base_history: tuple[str, ...] = ()


class ImageStore(Protocol):
    """What containers and the API need from the image manager."""

    async def import_rootfs(
        self,
        chunks: AsyncIterator[bytes | memoryview],
        reference: str,
        message: str = "",
        changes: Sequence[str] = (),
    ) -> Image: ...

    async def load(self, chunks: AsyncIterator[bytes | memoryview]) -> LoadResult: ...

    async def commit(self, request: CommitRequest) -> Image:
        """A new image from `request`: the layer staged and verified, then recorded."""
        ...

    async def list(self, all: bool = False, filters: Sequence[str] = ()) -> list[Image]: ...

    async def get(self, name: str) -> Image:
        """By reference ("busybox" = "busybox:latest"), full id, or unique id prefix."""
        ...

    async def tag(self, source: str, target: str) -> None: ...

    async def remove(self, name: str, force: bool = False, prune: bool = True) -> RemoveResult: ...

    async def pull(
        self, reference: str, platform: str, credentials: Credentials, progress: ProgressFn
    ) -> tuple[Image, str]: ...

    async def push(
        self, reference: str, credentials: Credentials, progress: ProgressFn
    ) -> tuple[str, int]: ...

    async def login(self, registry: str, credentials: Credentials) -> None: ...

    def save(self, names: Sequence[str], oci_only: bool = False) -> AsyncIterator[bytes]: ...

    async def history(self, name: str) -> builtins.list[HistoryEntry]: ...

    async def prune(self, all: bool = False, filters: Sequence[str] = ()) -> PruneResult: ...

    async def disk_usage(self) -> Usage: ...

    async def disk_usage_by_image(self) -> tuple[Usage, builtins.list[ImageUsage]]: ...

    def layer_dirs(self, image: Image) -> builtins.list[str]:
        """Unpacked layer directories for overlayfs lowerdir, TOP layer first."""
        ...
