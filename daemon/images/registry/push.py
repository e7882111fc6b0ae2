"""Push: upload an image's blobs the registry lacks, then its manifest.

Owns: the order (every blob before the manifest that names it, the config last of the
blobs), asking before uploading (HEAD), trying a cross-repository mount from repositories
of the same registry the image is known under, streaming blobs from the content store with
progress, each blob checked against its digest as it is read. Must not: change local state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from pallet.daemon.images import oci
from pallet.daemon.images.content import ContentStore
from pallet.daemon.images.model import ProgressFn
from pallet.daemon.images.registry.fetch import short
from pallet.daemon.images.registry.transport import RegistryTransport

_READ = 1 << 20


class Pusher:
    def __init__(self, transport: RegistryTransport, content: ContentStore, progress: ProgressFn) -> None:
        self._transport = transport
        self._content = content
        self._progress = progress

    async def push(self, manifest_digest: str, tag: str, mount_sources: Sequence[str]) -> tuple[str, int]:
        """Push the manifest stored under `manifest_digest` as `tag`; its digest and size."""
        data = await asyncio.to_thread(self._content.read_verified, manifest_digest)
        manifest = oci.parse_manifest(data, f"manifest {manifest_digest}")
        for blob in (*manifest.layers, manifest.config):
            await self._blob(blob, mount_sources)
        await self._transport.put_manifest(tag, data, manifest.media_type)
        return manifest_digest, len(data)

    async def _blob(self, blob: oci.Descriptor, mount_sources: Sequence[str]) -> None:
        name = short(blob.digest)
        self._progress(name, "Preparing", 0, 0)
        if await self._transport.blob_exists(blob.digest):
            self._progress(name, "Layer already exists", 0, 0)
            return
        for source in mount_sources:
            if await self._transport.mount_blob(blob.digest, source):
                self._progress(name, f"Mounted from {source}", 0, 0)
                return
        # Verified as it streams: the read that would complete a corrupted blob raises
        # instead, so the registry never gets it whole (and never gets the manifest).
        size = await asyncio.to_thread(self._content.size, blob.digest)

        async def chunks() -> AsyncIterator[bytes]:
            file = await asyncio.to_thread(self._content.open_verified, blob.digest)
            try:
                done = 0
                while chunk := await asyncio.to_thread(file.read, _READ):
                    done += len(chunk)
                    self._progress(name, "Pushing", done, size)
                    yield chunk
            finally:
                file.close()

        await self._transport.upload_blob(blob.digest, size, chunks)
        self._progress(name, "Pushed", size, size)
