"""The image manager: palletd's `ImageStore`.

Owns: the order of every image operation (stage blobs and layers under a lease, then
commit records and one event per change in one transaction) — import, load,
pull, push, save, history, prune — name resolution (reference, full id, unique id prefix),
the rules of tag and remove, and collecting blobs, layers and stale partial downloads no
image needs (gc). Must not: parse tars or image documents (importer, archive, tarsafe,
oci, saver do), speak HTTP (registry/ does) or write SQL (records does).

Crash safety comes from the order: blobs and layer directories are durable before the
records that name them; anything a crash leaves unnamed is removed at the next start.
"""

from __future__ import annotations

import asyncio
import builtins
import re
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import httpx
import structlog

from pallet.v1.errors import FailedPrecondition, InvalidArgument, NotFound
from pallet.daemon.events.model import EventPublisher, Notice
from pallet.daemon.faults import NO_CRASHES, CrashHook
from pallet.daemon.images import oci, records
from pallet.daemon.images.archive import stage_load
from pallet.daemon.images.changes import apply_changes
from pallet.daemon.images.committer import stage_commit
from pallet.daemon.images.content import ContentStore, CorruptedBlob
from pallet.daemon.images.filters import matches, matching_names, parse_filters, prune_filter
from pallet.daemon.images.housekeeping import history, image_usage, usage_by_image
from pallet.daemon.images.importer import stage_import
from pallet.daemon.images.layers import LayerStore
from pallet.daemon.images.leases import Lease, Leases
from pallet.daemon.images.model import (
    CommitRequest,
    Credentials,
    HistoryEntry,
    Image,
    ImageConfig,
    ImageUsage,
    ImageUser,
    LoadResult,
    ProgressFn,
    PruneResult,
    RemoveResult,
    Usage,
)
from pallet.daemon.images.records import StagedImage
from pallet.daemon.images.reference import Reference, familiar, parse_tagged
from pallet.daemon.images.registry.endpoint import ca_file, endpoint_for_domain, resolve
from pallet.daemon.images.registry.fetch import BlobFetcher
from pallet.daemon.images.registry.pull import Puller, parse_platform
from pallet.daemon.images.registry.push import Pusher
from pallet.daemon.images.registry.transport import RegistryClient, Timeouts
from pallet.daemon.images.saver import SaveItem, write_archive
from pallet.daemon.store import space
from pallet.daemon.store.db import Database

log = structlog.get_logger("pallet.images")

T = TypeVar("T")

# A partial download (content/ingest) is kept this long for a pull to resume from, e.g.
# one cut short by a crash and tried again; older ones go at start and after each pull.
PARTIAL_DOWNLOAD_KEEP_S = 3600.0

ImageUsers = Callable[[str], Awaitable[list[ImageUser]]]
#: parent image id -> the images built on it (the builder's cache knows).
Lineage = Callable[[], Awaitable[dict[str, set[str]]]]


async def _no_lineage() -> dict[str, set[str]]:
    return {}

_ID_PREFIX = re.compile(r"[0-9a-f]{1,64}")
_SPOOL_BUFFER = 1 << 20


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


class ImageManager:
    """Images stored under `root`: `content/` blobs, `layers/` unpacked layers."""

    def __init__(
        self,
        db: Database,
        events: EventPublisher,
        root: Path,
        image_users: ImageUsers,
        clock: Callable[[], int] = time.time_ns,
        insecure_registries: Sequence[str] = (),
        registry_timeouts: Timeouts = Timeouts(),
        http_transport: httpx.AsyncBaseTransport | None = None,
        registry_certs_dir: Path | None = None,
        crashes: CrashHook = NO_CRASHES,
    ) -> None:
        self._crashes = crashes
        self._db = db
        self._insecure = tuple(insecure_registries)
        self._timeouts = registry_timeouts
        self._http_transport = http_transport
        self._certs_dir = registry_certs_dir
        self._events = events
        self._image_users = image_users
        self._clock = clock
        self._leases = Leases()
        root = root.absolute()  # layer_dirs() hands these paths to mount(2)
        self._root = root
        self.content = ContentStore(root / "content", self._leases)
        self.layers = LayerStore(root / "layers", self._leases)
        self._fetcher = BlobFetcher(self.content)
        self._lineage: Lineage = _no_lineage
        # Serialises record changes with collection, so "no record names it" stays true
        # until the blob or layer is gone. Staging (the slow part) runs outside it.
        self._lock = asyncio.Lock()

    def set_lineage(self, lineage: Lineage) -> None:
        """Who knows which images were built on which (the builder): an untagged image
        with a child is an intermediate image, hidden by `list` and kept by `prune`; an
        image listed as its own child is one a build under way stands on, which `prune`
        keeps too, tagged or not."""
        self._lineage = lineage

    async def _intermediate(self, images: Sequence[Image], held: bool = False) -> set[str]:
        """The untagged images that another existing image was built on; with `held`,
        also the images a build under way stands on (its own child, in the lineage),
        tagged or not."""
        ids = {image.id for image in images}
        lineage = await self._lineage()
        parents = {p for p, kids in lineage.items() if kids & ids}
        out = {i.id for i in images if i.id in parents and not (i.repo_tags or i.repo_digests)}
        if held:
            out |= {p for p, kids in lineage.items() if p in kids}
        return out

    async def start(self) -> None:
        await self._db.migrate("images", records.SCHEMA)
        await asyncio.to_thread(self.content.prepare)
        await asyncio.to_thread(self.layers.prepare)
        await self._collect_orphans()
        await self._clear_stale_downloads()

    async def aclose(self) -> None:
        """In-flight calls finish with their callers; shared downloads are cancelled."""
        await self._fetcher.aclose()

    # -- import and load --------------------------------------------------------------

    async def import_rootfs(
        self,
        chunks: AsyncIterator[bytes | memoryview],
        reference: str,
        message: str = "",
        changes: Sequence[str] = (),
    ) -> Image:
        # Refuse bad arguments before reading a byte of the upload.
        references: tuple[Reference, ...] = ()
        if reference:
            ref = parse_tagged(reference)
            if ref.digest:
                raise InvalidArgument(
                    f"cannot import as {reference!r}: give a name and tag, not a digest"
                )
            references = (ref,)
        config = await asyncio.to_thread(apply_changes, ImageConfig(), changes)
        async with self._staging() as lease, space.room(self._root, "cannot import the image"):
            spool = await self._spool(chunks)
            try:
                staged = await _to_thread_to_the_end(
                    stage_import,
                    spool,
                    self.content,
                    self.layers,
                    lease,
                    config=config,
                    message=message,
                    references=references,
                    now_ns=self._clock(),
                )
            finally:
                spool.unlink(missing_ok=True)  # no await: a second cancel must not skip it
            (image,) = await self._commit([staged], "import")
        log.info("image imported", image_id=image.id, reference=reference)
        return image

    async def load(self, chunks: AsyncIterator[bytes | memoryview]) -> LoadResult:
        async with self._staging() as lease, space.room(self._root, "cannot load the images"):
            spool = await self._spool(chunks)
            try:
                staged = await _to_thread_to_the_end(
                    stage_load, spool, self.content, self.layers, lease
                )
            finally:
                spool.unlink(missing_ok=True)  # no await: a second cancel must not skip it
            images = await self._commit(staged, "load")
        references = tuple(ref.familiar() for item in staged for ref in item.references)
        log.info("images loaded", image_ids=[image.id for image in images])
        return LoadResult(images=tuple(images), references=references)

    async def commit(self, request: CommitRequest) -> Image:
        """`commit`: the base image's layers and config plus the caller's layer.

        The layer is unpacked and its blob written and verified (both fsynced) before the
        config, the manifest and, last, the record with its events in one transaction:
        a crash before that leaves only unnamed blobs, which the next start collects.
        """
        references: tuple[Reference, ...] = ()
        if request.reference:
            ref = parse_tagged(request.reference)
            if ref.digest:
                raise InvalidArgument(
                    f"cannot commit as {request.reference!r}: give a name and tag, not a digest"
                )
            references = (ref,)
        base: Image | None = None
        base_layers: builtins.list[records.StagedLayer] = []
        if request.base_image_id:
            base = await self.get(request.base_image_id)
            base_id = base.id
            base_layers = await self._db.run(lambda conn: records.layers_of(conn, base_id))
        async with self._staging() as lease, space.room(self._root, "cannot commit the container"):
            if base is not None:
                base_config = await asyncio.to_thread(self.content.read_verified, base.id)
            else:
                base_config = oci.scratch_config(self._clock(), request.base_history)
            staged = await _to_thread_to_the_end(
                stage_commit,
                self.content,
                self.layers,
                lease,
                base_config=base_config,
                base_layers=base_layers,
                write_layer=request.write_layer,
                config=request.config,
                comment=request.comment,
                author=request.author,
                created_by=request.created_by,
                container_id=request.container_id,
                references=references,
                now_ns=self._clock(),
            )

            def notices(image: Image) -> list[Notice]:
                # docker's: the container's commit, and a tag event for the name given.
                out = list(request.container_events(image.id))
                out += [Notice("image", "tag", image.id, {"name": r.familiar()}) for r in references]
                return out

            (image,) = await self._commit([staged], "commit", notices)
        log.info("container committed", image_id=image.id, container_id=request.container_id,
                 reference=request.reference)
        return image

    # -- registries -------------------------------------------------------------------

    def _client(self, ref: Reference, credentials: Credentials, actions: str = "pull") -> RegistryClient:
        return RegistryClient(
            resolve(ref, self._insecure, self._certs_dir),
            credentials,
            self._timeouts,
            actions,
            ca_file=ca_file(ref.domain, self._certs_dir),
            http_transport=self._http_transport,
        )

    async def pull(
        self, reference: str, platform: str, credentials: Credentials, progress: ProgressFn
    ) -> tuple[Image, str]:
        """Pull an image; returns it and the digest its reference resolved to."""
        ref = parse_tagged(reference)
        wanted = parse_platform(platform)
        before = await self._db.run(lambda conn: records.image_id_by_ref(conn, ref))

        async def known_size(diff_id: str) -> int | None:
            return await self._db.run(lambda conn: records.layer_size(conn, diff_id))

        try:
            async with (
                self._staging() as lease,
                space.room(self._root, "cannot pull the image"),
                self._client(ref, credentials) as client,
            ):
                puller = Puller(
                    client, self.content, self.layers, lease, self._fetcher, progress, known_size
                )
                staged, digest = await puller.pull(ref, wanted)
                (image,) = await self._commit([staged], "pull")
        finally:
            await self._clear_stale_downloads()
        status = "Image is up to date for" if before == image.id else "Downloaded newer image for"
        progress("", f"Status: {status} {ref.familiar()}", 0, 0)
        log.info("image pulled", image_id=image.id, reference=str(ref), digest=digest)
        return image, digest

    async def push(self, reference: str, credentials: Credentials, progress: ProgressFn) -> tuple[str, int]:
        """Push a local image under `reference`; returns the manifest digest and size."""
        ref = parse_tagged(reference)
        if ref.digest:
            raise InvalidArgument(f"cannot push {reference!r}: push a tag, not a digest")
        image = await self.get(reference)
        if not image.manifest_digest:
            raise FailedPrecondition(f"image {ref.familiar()} has no manifest to push: save and load it again")
        # Repositories of the same registry that already hold this image's blobs.
        sources = [
            other.path
            for other in (parse_tagged(t) for t in image.repo_tags + image.repo_digests)
            if other.domain == ref.domain and other.path != ref.path
        ]
        progress("", f"The push refers to repository [{ref.name}]", 0, 0)
        async with self._client(ref, credentials, "pull,push") as client:
            pusher = Pusher(client, self.content, progress)
            try:
                digest, size = await pusher.push(image.manifest_digest, ref.tag, sorted(set(sources)))
            except CorruptedBlob as exc:
                raise await self._naming_users(exc) from None
        await self._events.publish("image", "push", image.id, {"name": ref.familiar()})
        log.info("image pushed", image_id=image.id, reference=str(ref), digest=digest)
        return digest, size

    async def login(self, registry: str, credentials: Credentials) -> None:
        """Check credentials against a registry (the client keeps them)."""
        domain = registry.removeprefix("https://").removeprefix("http://").rstrip("/")
        endpoint = endpoint_for_domain(domain, self._insecure, self._certs_dir)
        async with RegistryClient(
            endpoint,
            credentials,
            self._timeouts,
            ca_file=ca_file(endpoint.domain, self._certs_dir),
            http_transport=self._http_transport,
        ) as client:
            await client.ping()

    def _staging(self) -> _Staging:
        return _Staging(self)

    async def _spool(self, chunks: AsyncIterator[bytes | memoryview]) -> Path:
        """Stream an upload to a temp file (tar needs to seek, and a client may be slow)."""
        path = self.content.tmp_dir / f"upload-{secrets.token_hex(8)}"
        file: BinaryIO = await asyncio.to_thread(open, path, "xb")
        try:
            buffer = bytearray()
            async for chunk in chunks:
                buffer += chunk
                if len(buffer) >= _SPOOL_BUFFER:
                    await asyncio.to_thread(file.write, bytes(buffer))
                    buffer.clear()
            await asyncio.to_thread(file.write, bytes(buffer))
            await asyncio.to_thread(file.close)
        except BaseException:
            # Also a cancel on the very last await: the caller never learns the path.
            file.close()
            path.unlink(missing_ok=True)
            raise
        return path

    async def _commit(
        self,
        staged: Sequence[StagedImage],
        action: str,
        notices_of: Callable[[Image], builtins.list[Notice]] | None = None,
    ) -> builtins.list[Image]:
        """Record staged images and their events in one transaction (one `action` event
        per image and name, or what `notices_of` says for each image)."""
        async with self._lock:
            now = self._clock()

            def write(conn: sqlite3.Connection) -> tuple[list[Image], list[Notice]]:
                out, notices = [], []
                for item in staged:
                    records.insert_image(conn, item, now)
                    image = records.load_image(conn, item.id)
                    assert image is not None
                    out.append(image)
                    if notices_of is not None:
                        notices += notices_of(image)
                        continue
                    names = [ref.familiar() for ref in item.references] or [""]
                    notices += [Notice("image", action, item.id, {"name": n}) for n in names]
                return out, notices

            # Blobs and layers are in place, no record names them yet: a restart removes them.
            self._crashes.hit(action, "staged")
            images = await self._events.commit(write)
            self._crashes.hit(action, "recorded")
        # The same image may be listed twice in one archive; report it once.
        unique = {image.id: image for image in images}
        return list(unique.values())

    # -- lookups ----------------------------------------------------------------------

    async def get(self, name: str) -> Image:
        """By reference ("busybox" = "busybox:latest"), full id, or unique id prefix."""

        def find(conn: sqlite3.Connection) -> Image:
            image = records.load_image(conn, _resolve(conn, name))
            if image is None:
                raise NotFound(f"No such image: {name}")
            return image

        return await self._db.run(find)

    async def list(self, all: bool = False, filters: Sequence[str] = ()) -> list[Image]:
        """Every image, newest first; without `all`, not the intermediate images of
        builds (untagged, with an image built on them), as docker hides them."""
        wanted = parse_filters(filters)
        before = min([(await self.get(n)).created_ns for n in wanted.before], default=None)
        since = max([(await self.get(n)).created_ns for n in wanted.since], default=None)
        images = await self._db.run(records.list_images)
        hidden = set() if all else await self._intermediate(images)
        return [matching_names(image, wanted) for image in images
                if image.id not in hidden and matches(image, wanted, before, since)]

    def layer_dirs(self, image: Image) -> builtins.list[str]:
        """Unpacked layer directories for overlayfs lowerdir, TOP layer first.

        A layer listed twice appears once, at its top-most place: overlayfs refuses the
        same lowerdir twice, and re-applying an identical layer makes its lower copy moot.
        """
        seen: set[str] = set()
        out = []
        for diff_id in reversed(image.layers):
            if diff_id not in seen:
                seen.add(diff_id)
                out.append(str(self.layers.path(diff_id)))
        return out

    # -- tag and remove ---------------------------------------------------------------

    async def tag(self, source: str, target: str) -> None:
        ref = parse_tagged(target)
        if ref.digest:
            raise InvalidArgument(f"cannot tag {target!r}: a tag may not contain a digest")
        async with self._lock:
            now = self._clock()

            def write(conn: sqlite3.Connection) -> tuple[None, list[Notice]]:
                image_id = _resolve(conn, source)
                records.set_ref(conn, ref, image_id, now)
                return None, [Notice("image", "tag", image_id, {"name": ref.familiar()})]

            await self._events.commit(write)
            self._crashes.hit("tag", "recorded")

    async def remove(self, name: str, force: bool = False, prune: bool = True) -> RemoveResult:
        # Essential: removing is how space comes back, so on a full disk it may spend
        # the state disk's reserve (`space`).
        with space.essential():
            parents = await self._parents()
            result = await self._remove(name, force)
            if not result.deleted or not prune:
                return result
            # As docker's rmi: the untagged images it was built on go with it, up the
            # chain, while no other image was built on them and no container uses them.
            deleted = list(result.deleted)
            parent = parents.get(result.deleted[0], "")
            while parent:
                try:
                    image = await self.get(parent)
                except NotFound:
                    break
                if image.repo_tags or image.repo_digests or await self._image_users(parent):
                    break
                children = (await self._lineage()).get(parent, set())
                if parent in children or children - set(deleted):
                    break  # a build stands on it, or another image was built on it
                try:
                    more = await self._remove(parent, force=False)
                except (NotFound, FailedPrecondition, InvalidArgument):
                    break
                deleted += more.deleted
                parent = parents.get(parent, "")
            return RemoveResult(result.untagged, tuple(deleted))

    async def _parents(self) -> dict[str, str]:
        """child image id -> the image it was built on (the lineage's, inverted)."""
        return {child: parent for parent, kids in (await self._lineage()).items()
                for child in kids if child != parent}

    async def _remove(self, name: str, force: bool) -> RemoveResult:
        lineage = await self._lineage()
        async with self._lock:

            def look(conn: sqlite3.Connection) -> tuple[str, list[str], str, list[str]]:
                image_id = _resolve(conn, name)
                refs = records.refs_of(conn, image_id)
                kids = sorted(k for k in lineage.get(image_id, set())
                              if k != image_id and records.load_image(conn, k) is not None)
                return image_id, refs, _named_ref(name, refs), kids

            image_id, refs, by_ref, children = await self._db.run(look)
            # As docker: digest references (from a pull) do not keep an image whose last
            # tag goes; they go with it.
            keeping = [r for r in refs if r != by_ref and ("@" not in r or "@" in by_ref)]
            if by_ref and keeping:
                # Another name keeps the image: only this name goes, whoever uses it.
                def untag(conn: sqlite3.Connection) -> tuple[None, list[Notice]]:
                    records.delete_ref(conn, by_ref)
                    return None, [Notice("image", "untag", image_id, {"name": familiar(by_ref)})]

                await self._events.commit(untag)
                return RemoveResult(untagged=(familiar(by_ref),), deleted=())
            if children and by_ref:
                # As docker: the name goes, the image stays (an intermediate image of the
                # ones built on it, which need it), and its digest names with the last tag.
                gone = [r for r in refs if r == by_ref or "@" in r]

                def untag_only(conn: sqlite3.Connection) -> tuple[None, list[Notice]]:
                    for ref in gone:
                        records.delete_ref(conn, ref)
                    return None, [Notice("image", "untag", image_id, {"name": familiar(r)}) for r in gone]

                await self._events.commit(untag_only)
                return RemoveResult(untagged=tuple(familiar(r) for r in gone), deleted=())
            if children:
                # Not even --force: the images built on it would lose their parent (and a
                # build its cache), as docker refuses.
                raise FailedPrecondition(
                    f"conflict: unable to delete {short_id(image_id)} (cannot be forced) - image "
                    f"has dependent child images ({', '.join(short_id(k) for k in children[:3])}"
                    f"{', ...' if len(children) > 3 else ''}): remove those first"
                )
            display = familiar(by_ref) if by_ref else (familiar(refs[0]) if refs else short_id(image_id))
            if not by_ref and not force and len([r for r in refs if "@" not in r]) > 1:
                # As docker: an id names every reference at once; say so before dropping them.
                raise FailedPrecondition(
                    f"unable to delete {short_id(image_id)} (must be forced): image is referenced "
                    f"in multiple repositories or tags ({', '.join(familiar(r) for r in refs)}): "
                    "remove them by name, or use --force"
                )
            found = await self._image_users(image_id)
            users = [u.name for u in found]
            running = [u.name for u in found if u.running]
            if running:
                # Even --force cannot take the layers from under a mounted overlay.
                raise FailedPrecondition(
                    f"image {display} is in use by running container {', '.join(running)}: "
                    "stop and remove the container first (--force does not apply)"
                )
            if users and not force:
                which = "container " + users[0] if len(users) == 1 else "containers " + ", ".join(users)
                raise FailedPrecondition(
                    f"image {display} is in use by {which}: remove the container first, "
                    "or use --force"
                )

            untagged = tuple(familiar(ref) for ref in refs)

            def delete(conn: sqlite3.Connection) -> tuple[tuple[set[str], set[str]], list[Notice]]:
                for ref in refs:
                    records.delete_ref(conn, ref)
                notices = [Notice("image", "untag", image_id, {"name": r}) for r in untagged]
                notices.append(Notice("image", "delete", image_id, {"name": display}))
                return records.delete_image(conn, image_id), notices

            layers, blobs = await self._events.commit(delete)
            # Records gone, layers and blobs not yet: a restart collects what no record names.
            self._crashes.hit("rmi", "recorded")
            await self._collect_locked(layers, blobs)
        log.info("image removed", image_id=image_id, forced=force, users=users)
        return RemoveResult(untagged=untagged, deleted=(image_id,))

    # -- archives, history and housekeeping -------------------------------------------

    async def save(self, names: Sequence[str], oci_only: bool = False) -> AsyncIterator[bytes]:
        """The archive of these images, in chunks (written to a spool file first)."""
        if not names:
            raise InvalidArgument("save needs at least one image")
        items = []
        for name in names:
            image = await self.get(name)
            if not image.manifest_digest:
                raise FailedPrecondition(f"image {name} has no manifest: load or pull it again")
            ref = _named_ref(name, [str(parse_tagged(t)) for t in image.repo_tags])
            items.append(SaveItem(image.manifest_digest, (parse_tagged(ref),) if ref else ()))
        spool = self.content.tmp_dir / f"save-{secrets.token_hex(8)}"
        # A lease on the blobs keeps a concurrent rmi from collecting them mid-archive.
        lease = self._leases.acquire()
        try:
            for item in items:
                if not self.content.acquire(item.manifest_digest, lease):
                    raise NotFound(f"manifest {item.manifest_digest} is not stored")
            try:
                await asyncio.to_thread(write_archive, spool, self.content, items, oci_only, lease)
            except CorruptedBlob as exc:
                raise await self._naming_users(exc) from None
            file: BinaryIO = await asyncio.to_thread(open, spool, "rb")
            try:
                while chunk := await asyncio.to_thread(file.read, _SPOOL_BUFFER):
                    yield chunk
            finally:
                file.close()
        finally:
            self._leases.release(lease)
            await asyncio.to_thread(spool.unlink, True)

    async def history(self, name: str) -> builtins.list[HistoryEntry]:
        image = await self.get(name)
        try:
            config_bytes = await asyncio.to_thread(self.content.read_verified, image.id)
        except CorruptedBlob as exc:
            raise await self._naming_users(exc) from None
        sizes = await self._db.run(
            lambda conn: [records.layer_size(conn, diff_id) or 0 for diff_id in image.layers]
        )
        return history(image, config_bytes, sizes)

    async def prune(self, all: bool = False, filters: Sequence[str] = ()) -> PruneResult:
        """Remove dangling images (every image no container uses, with `all`) that match
        `filters` (label, label!, until), then collect whatever no record names.
        Essential, as `remove` is."""
        select = prune_filter(filters, self._clock())
        with space.essential():
            return await self._prune(all, select)

    async def _prune(self, all: bool, select: Callable[[Image], bool]) -> PruneResult:
        before = await asyncio.to_thread(self._disk_bytes)
        untagged: builtins.list[str] = []
        deleted: builtins.list[str] = []
        # In rounds: an intermediate image is kept while an image built on it is (docker
        # keeps a parent for its children), and goes in the next round once they went.
        tried: set[str] = set()
        while True:
            images = await self.list(all=True)
            keep = await self._intermediate(images, held=True)
            removed = 0
            for image in images:
                if image.id in keep or image.id in tried:
                    continue
                if not all and (image.repo_tags or image.repo_digests):
                    continue
                tried.add(image.id)
                if not select(image):
                    continue
                if await self._image_users(image.id):
                    continue
                try:
                    result = await self.remove(image.id, force=True)
                except (NotFound, FailedPrecondition):
                    continue  # gone or taken into use meanwhile
                untagged += result.untagged
                deleted += result.deleted
                removed += 1
            if not removed:
                break
        await self.gc()
        after = await asyncio.to_thread(self._disk_bytes)
        await self._events.publish("image", "prune", "", {"reclaimed": str(max(before - after, 0))})
        return PruneResult(tuple(untagged), tuple(deleted), max(before - after, 0))

    async def gc(self) -> None:
        """Remove blobs and layers no record names and no lease holds, and partial
        downloads no pull is working on."""
        await self._collect_orphans()
        busy = self._fetcher.busy()
        await asyncio.to_thread(self.content.clear_ingest, busy)

    async def _clear_stale_downloads(self) -> None:
        try:
            freed = await asyncio.to_thread(
                self.content.clear_ingest, self._fetcher.busy(), PARTIAL_DOWNLOAD_KEEP_S
            )
        except OSError as e:
            log.warning("could not clear stale partial downloads", reason=str(e))
            return
        if freed:
            log.info("removed stale partial downloads", bytes=freed)

    async def disk_usage(self) -> Usage:
        return (await self.disk_usage_by_image())[0]

    async def disk_usage_by_image(self) -> tuple[Usage, builtins.list[ImageUsage]]:
        """Every stored layer and blob (`system df`), and each image's part (`-v`)."""
        images = await self.list(all=True)
        users = {image.id: len(await self._image_users(image.id)) for image in images}
        in_use = {image_id for image_id, count in users.items() if count}

        def sizes() -> tuple[dict[str, int], dict[str, int]]:
            layers = {d: self.layers.size_of(d) for d in self.layers.diff_ids()}
            blobs = {d: self.content.path(d).stat().st_size for d in self.content.digests()}
            return layers, blobs

        layer_sizes, blob_sizes = await asyncio.to_thread(sizes)
        blobs = await self._db.run(
            lambda conn: {image.id: records.blobs_of(conn, image.id) for image in images}
        )
        used_blobs = {b for image_id in in_use for b in blobs[image_id]}
        summary = image_usage(images, in_use, layer_sizes, blob_sizes, used_blobs)
        return summary, usage_by_image(images, layer_sizes, blob_sizes, blobs, users)

    def _disk_bytes(self) -> int:
        total = sum(self.layers.size_of(d) for d in self.layers.diff_ids())
        total += sum(self.content.path(d).stat().st_size for d in self.content.digests())
        return total + self.content.ingest_size()

    async def _naming_users(self, exc: CorruptedBlob) -> CorruptedBlob:
        """The error, naming the images to remove and load or pull again (all of them:
        the damaged blob goes only when no image uses it)."""
        users = await self._db.run(lambda conn: records.images_using_blob(conn, exc.digest))
        log.error("corrupted blob refused", digest=exc.digest, actual=exc.actual)
        return exc.for_images([", ".join(i.repo_tags) or short_id(i.id) for i in users])

    # -- collection -------------------------------------------------------------------

    async def _collect(self, layers: Iterable[str], blobs: Iterable[str]) -> None:
        async with self._lock:
            await self._collect_locked(layers, blobs)

    async def _collect_locked(self, layers: Iterable[str], blobs: Iterable[str]) -> None:
        """Delete those of these layers and blobs that no record names and no lease holds."""
        layer_list, blob_list = list(layers), list(blobs)
        free_layers, free_blobs = await self._db.run(
            lambda conn: records.unused(conn, layer_list, blob_list)
        )

        def delete() -> None:
            for diff_id in free_layers:
                self.layers.remove_unless_leased(diff_id)
            for digest in free_blobs:
                self.content.delete_unless_leased(digest)

        await asyncio.to_thread(delete)

    async def _collect_orphans(self) -> None:
        """At start: drop what a crash left written but never recorded."""
        on_disk_layers = await asyncio.to_thread(self.layers.diff_ids)
        on_disk_blobs = await asyncio.to_thread(lambda: list(self.content.digests()))
        known_layers, known_blobs = await self._db.run(records.all_layers_and_blobs)
        orphan_layers = set(on_disk_layers) - known_layers
        orphan_blobs = set(on_disk_blobs) - known_blobs
        if orphan_layers or orphan_blobs:
            log.info("removing unrecorded layers and blobs", layers=len(orphan_layers), blobs=len(orphan_blobs))
            await self._collect(orphan_layers, orphan_blobs)
        missing = known_layers - set(on_disk_layers)
        if missing:
            log.warning("image layers missing on disk; images using them cannot run", layers=sorted(missing))


class _Staging:
    """A lease for one import or load; on the way out, whatever it wrote that no record
    names (the operation failed, or the content was there already) is collected."""

    def __init__(self, manager: ImageManager) -> None:
        self._manager = manager
        self._lease: Lease | None = None

    async def __aenter__(self) -> Lease:
        self._lease = self._manager._leases.acquire()
        return self._lease

    async def __aexit__(self, *exc: object) -> None:
        lease = self._lease
        assert lease is not None
        self._manager._leases.release(lease)
        if lease.layers or lease.blobs:
            # Shielded: a cancelled upload must still not leave its blobs behind.
            await asyncio.shield(self._manager._collect(set(lease.layers), set(lease.blobs)))


async def _to_thread_to_the_end(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`asyncio.to_thread`, except that a cancel waits for the thread to finish.

    A thread cannot be stopped; cleanup that ran while it still wrote (the staging lease's
    collection) would miss what it wrote next. So the cancel is held until it is done.
    """
    work = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        await asyncio.wait([work])
        if not work.cancelled():
            work.exception()  # seen: its result or error goes with the cancelled caller
        raise


def _named_ref(name: str, refs: Sequence[str]) -> str:
    """The stored reference `name` spells, if it names the image by one ("" for ids)."""
    if name.startswith("sha256:"):
        return ""
    try:
        ref = str(parse_tagged(name))
    except InvalidArgument:
        return ""
    return ref if ref in refs else ""


def _resolve(conn: sqlite3.Connection, name: str) -> str:
    """An image id from a reference, a full id or a unique id prefix (database thread)."""
    text = name.strip()
    if not text:
        raise InvalidArgument("no image named: give a reference or an image id")
    if text.startswith("sha256:"):
        prefix = text.removeprefix("sha256:")
        if not _ID_PREFIX.fullmatch(prefix):
            raise InvalidArgument(f"invalid image id {text!r}: expected sha256: and hex digits")
        return _by_prefix(conn, prefix, text)
    ref: Reference | None = None
    error: InvalidArgument | None = None
    try:
        ref = parse_tagged(text)
    except InvalidArgument as exc:
        error = exc
    if ref is not None:
        found = records.image_id_by_ref(conn, ref)
        if found is not None:
            return found
    if _ID_PREFIX.fullmatch(text):
        ids = records.image_ids_by_prefix(conn, text)
        if ids:
            return _by_prefix(conn, text, text, ids)
    if ref is None:
        assert error is not None
        raise error
    raise NotFound(f"No such image: {ref.familiar()}")


def _by_prefix(
    conn: sqlite3.Connection, prefix: str, name: str, ids: list[str] | None = None
) -> str:
    if ids is None:
        ids = records.image_ids_by_prefix(conn, prefix)
    if not ids:
        raise NotFound(f"No such image: {name}")
    if len(ids) > 1:
        raise InvalidArgument(
            f"image id prefix '{prefix}' matches {len(ids)} images: give more characters"
        )
    return ids[0]
