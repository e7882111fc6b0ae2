"""Pull: resolve a reference to one image manifest, fetch its blobs, unpack its layers.

Owns: manifest and index handling (OCI and Docker schema 2; an index is resolved to the
wanted platform), checking every document against the digest that named it, fetching the
config and layers through the `BlobFetcher` (three at a time), unpacking each layer and
proving it has the diff id its config names, and reporting progress per layer. A config
or layer blob found already stored is checked against its digest where the pull reads it;
a corrupted one is downloaded again over it (the registry has it whole). Must not: write
records (the manager commits the `StagedImage`), or leave anything that its lease does
not hold.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from pallet.v1.errors import InvalidArgument, NotFound
from pallet.daemon.images import oci
from pallet.daemon.images.content import ContentStore, CorruptedBlob
from pallet.daemon.images.layers import LayerStore, Readable, UnpackedLayer, diff_id_of
from pallet.daemon.images.leases import Lease
from pallet.daemon.images.records import StagedImage, StagedLayer
from pallet.daemon.images.reference import Reference
from pallet.daemon.images.model import ProgressFn
from pallet.daemon.images.registry.fetch import BlobFetcher, in_thread, short
from pallet.daemon.images.registry.transport import RegistryTransport

MAX_INDEX_DEPTH = 4
PARALLEL_LAYERS = 3


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def parse_platform(text: str) -> Platform:
    """`os/arch[/variant]`; empty is this host."""
    if not text:
        return Platform("linux", oci.host_architecture())
    parts = text.strip().lower().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidArgument(f"invalid platform {text!r}: expected os/arch[/variant], e.g. linux/amd64")
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(parts[1], parts[1])
    return Platform(parts[0], arch, parts[2] if len(parts) == 3 else "")


def _matches(descriptor: oci.Descriptor, want: Platform) -> bool:
    platform = descriptor.platform
    if not platform or descriptor.annotations.get("vnd.docker.reference.type") == "attestation-manifest":
        return False
    if (platform.get("os"), platform.get("architecture")) != (want.os, want.architecture):
        return False
    return not want.variant or platform.get("variant", "") == want.variant


def pick_platform(entries: tuple[oci.Descriptor, ...], want: Platform, what: str) -> oci.Descriptor:
    candidates = [entry for entry in entries if _matches(entry, want)]
    if not candidates:
        offered = sorted(
            {
                str(Platform(e.platform.get("os", ""), e.platform.get("architecture", ""),
                             e.platform.get("variant", "")))
                for e in entries
                if e.platform and e.platform.get("os") != "unknown"
            }
        )
        raise NotFound(f"{what} has no image for {want} (it has {', '.join(offered) or 'none'}): try --platform")
    # Prefer the exact variant docker would (e.g. arm64 without a variant, or v8).
    return candidates[0]


def check_document(data: bytes, expected: str, what: str) -> str:
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if expected and actual != expected:
        raise InvalidArgument(f"{what} does not match its digest {expected} (it hashes to {actual})")
    return actual


def _media_type(data: bytes, header: str) -> str:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise InvalidArgument("the registry's manifest is not valid JSON") from None
    if isinstance(doc, dict) and isinstance(doc.get("mediaType"), str):
        return str(doc["mediaType"])
    if isinstance(doc, dict) and "manifests" in doc:
        return oci.OCI_INDEX
    if isinstance(doc, dict) and doc.get("schemaVersion") == 1:
        raise InvalidArgument("the registry offers only a Docker schema 1 manifest, which pallet does not pull")
    return header or oci.OCI_MANIFEST


class Puller:
    """One pull: a transport for the repository, the stores, and the pull's lease."""

    def __init__(
        self,
        transport: RegistryTransport,
        content: ContentStore,
        layers: LayerStore,
        lease: Lease,
        fetcher: BlobFetcher,
        progress: ProgressFn,
        known_size: Callable[[str], Awaitable[int | None]] | None = None,
    ) -> None:
        self._transport = transport
        self._content = content
        self._layers = layers
        self._lease = lease
        self._fetcher = fetcher
        self._progress = progress
        self._known_size = known_size

    async def pull(self, ref: Reference, platform: Platform) -> tuple[StagedImage, str]:
        """Stage the image `ref` names; returns it and the digest the reference resolved to."""
        target = ref.digest or ref.tag
        name = ref.familiar()
        fetched = await self._transport.get_manifest(target)
        top_digest = check_document(fetched.data, ref.digest, f"manifest of {name}")
        if fetched.digest and not ref.digest and fetched.digest != top_digest:
            raise InvalidArgument(
                f"manifest of {name} hashes to {top_digest}, but the registry says it is {fetched.digest}"
            )
        data, digest, media_type = fetched.data, top_digest, _media_type(fetched.data, fetched.media_type)
        depth = 0
        while media_type in oci.INDEX_TYPES:
            depth += 1
            if depth > MAX_INDEX_DEPTH:
                raise InvalidArgument(f"{name}: indexes are nested more than {MAX_INDEX_DEPTH} deep")
            entries = oci.parse_index(data, f"index of {name}")
            chosen = pick_platform(entries, platform, name)
            sub = await self._transport.get_manifest(chosen.digest)
            check_document(sub.data, chosen.digest, f"manifest {chosen.digest} of {name}")
            if len(sub.data) != chosen.size:
                raise InvalidArgument(
                    f"manifest {chosen.digest} of {name} is {len(sub.data)} bytes, its index says {chosen.size}"
                )
            data, digest, media_type = sub.data, chosen.digest, _media_type(sub.data, sub.media_type)
        if media_type not in oci.MANIFEST_TYPES:
            raise InvalidArgument(f"{name} has a manifest of unsupported media type {media_type!r}")
        manifest = oci.parse_manifest(data, f"manifest {digest}")
        self._progress("", f"{ref.tag or ref.digest}: Pulling from {ref.familiar_name}", 0, 0)
        manifest_digest = await in_thread(self._content.write_bytes, data, self._lease, digest)
        downloaded = await self._fetcher.fetch(self._transport, manifest.config, self._lease, self._quiet)
        try:
            config_bytes = await in_thread(self._content.read_verified, manifest.config.digest)
        except CorruptedBlob:
            if downloaded:
                raise
            await self._fetcher.fetch(self._transport, manifest.config, self._lease, self._quiet, replace=True)
            config_bytes = await in_thread(self._content.read_verified, manifest.config.digest)
        parsed = oci.parse_config(config_bytes)
        if len(parsed.diff_ids) != len(manifest.layers):
            raise InvalidArgument(
                f"manifest {digest} lists {len(manifest.layers)} layers but its config has "
                f"{len(parsed.diff_ids)} diff ids"
            )
        limit = asyncio.Semaphore(PARALLEL_LAYERS)

        async def one(layer: oci.Descriptor, diff_id: str) -> StagedLayer:
            async with limit:
                return await self._layer(layer, diff_id)

        tasks = [asyncio.create_task(one(l, d)) for l, d in zip(manifest.layers, parsed.diff_ids)]
        try:
            staged_layers = tuple(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        self._progress("", f"Digest: {top_digest}", 0, 0)
        references = [ref] if ref.tag else []
        references.append(Reference(ref.domain, ref.path, "", top_digest))
        return (
            StagedImage(
                id=manifest.config.digest,
                config_digest=manifest.config.digest,
                manifest_digest=manifest_digest,
                parsed=parsed,
                layers=staged_layers,
                references=tuple(references),
            ),
            top_digest,
        )

    def _quiet(self, _id: str, _status: str, _current: int, _total: int) -> None:
        pass

    async def _layer(self, layer: oci.Descriptor, diff_id: str) -> StagedLayer:
        name = short(layer.digest)
        unpacked_before = await in_thread(self._layers.acquire, diff_id, self._lease)
        downloaded = await self._fetcher.fetch(self._transport, layer, self._lease, self._progress)
        if unpacked_before and not downloaded:
            self._progress(name, "Already exists", 0, 0)
            # The records know the layer's size; walking it is the fallback.
            known = await self._known_size(diff_id) if self._known_size is not None else None
            size = known if known is not None else await in_thread(self._layers.size_of, diff_id)
            return StagedLayer(diff_id, layer.digest, layer.media_type, size)
        self._progress(name, "Extracting", 0, layer.size)
        if unpacked_before:
            # The layer is there; only prove the new blob is that layer.
            actual = await in_thread(self._diff_id_of_blob, layer.digest)
            if actual != diff_id:
                raise InvalidArgument(f"layer {layer.digest} has diff id {actual}, but its image config says {diff_id}")
            size = await in_thread(self._layers.size_of, diff_id)
        elif downloaded:
            size = await in_thread(self._unpack, layer.digest, diff_id, False)
        else:
            # Stored before (another image has it) but not unpacked: check it as it unpacks.
            try:
                size = await in_thread(self._unpack, layer.digest, diff_id, True)
            except CorruptedBlob:
                await self._fetcher.fetch(self._transport, layer, self._lease, self._progress, replace=True)
                size = await in_thread(self._unpack, layer.digest, diff_id, False)
        self._progress(name, "Pull complete", layer.size, layer.size)
        return StagedLayer(diff_id, layer.digest, layer.media_type, size)

    def _diff_id_of_blob(self, digest: str) -> str:
        with open(self._content.path(digest), "rb") as file:
            return diff_id_of(cast(Readable, file))

    def _unpack(self, digest: str, diff_id: str, verify: bool) -> int:
        unpacked: UnpackedLayer | None = None
        if verify:
            with self._content.open_verified(digest) as reader:
                try:
                    unpacked = self._layers.unpack(cast(Readable, reader))
                finally:
                    # The damage, not its symptom (a bad tar, a wrong diff id), is the error.
                    try:
                        reader.drain()
                    except CorruptedBlob:
                        if unpacked is not None:
                            self._layers.discard(unpacked)
                        raise
        else:
            with open(self._content.path(digest), "rb") as file:
                unpacked = self._layers.unpack(cast(Readable, file))
        try:
            if unpacked.diff_id != diff_id:
                raise InvalidArgument(
                    f"layer {digest} has diff id {unpacked.diff_id}, but its image config says {diff_id}"
                )
            self._layers.commit(unpacked, self._lease)
        except BaseException:
            self._layers.discard(unpacked)
            raise
        return unpacked.size


def progress_sink() -> tuple[list[tuple[str, str, int, int]], Callable[[str, str, int, int], None]]:
    """A list and a progress function appending to it (tests, and callers without a stream)."""
    seen: list[tuple[str, str, int, int]] = []
    return seen, lambda *step: seen.append(step)
