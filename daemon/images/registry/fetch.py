"""Blob downloads: once per digest, resumable, verified before they are stored.

Owns: the in-flight table (concurrent pulls of one blob share one download; each gets the
blob in its own lease), resuming a partial download from `content/ingest/` with an HTTP
range request, checking size and digest before the blob becomes visible, and progress.
Must not: unpack layers or parse documents.

A blob whose bytes do not hash to its digest is deleted, never stored; the error says so.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar

from pallet.v1.errors import InvalidArgument, Unavailable
from pallet.daemon.images.content import ContentStore
from pallet.daemon.images.leases import Lease
from pallet.daemon.images.model import ProgressFn
from pallet.daemon.images.oci import Descriptor
from pallet.daemon.images.registry.transport import RegistryTransport

_REPORT_EVERY_S = 0.25
T = TypeVar("T")


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """`asyncio.to_thread`, but a cancelled caller still waits for the thread to finish.

    A worker thread cannot be stopped; if its caller went on, a layer or blob it puts in
    place afterwards would land after the pull's lease was released and collected.
    """
    future = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise


def short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


@dataclass(eq=False, slots=True)
class _Flight:
    task: asyncio.Task[None] | None = None
    leases: list[Lease] = field(default_factory=list)


class BlobFetcher:
    """Shared by every pull of one daemon."""

    def __init__(self, content: ContentStore) -> None:
        self._content = content
        self._flights: dict[str, _Flight] = {}

    def busy(self) -> set[str]:
        return set(self._flights)

    async def aclose(self) -> None:
        """Cancel downloads still running (their partial files stay for a resume)."""
        tasks = [flight.task for flight in self._flights.values() if flight.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def fetch(
        self,
        transport: RegistryTransport,
        descriptor: Descriptor,
        lease: Lease,
        progress: ProgressFn,
        replace: bool = False,
    ) -> bool:
        """Make the blob present and leased; False when it was there already.

        `replace` downloads it even so, over the stored copy (found corrupted).
        """
        digest = descriptor.digest
        if not replace and await in_thread(self._content.acquire, digest, lease):
            return False
        flight = self._flights.get(digest)
        if flight is None:
            flight = _Flight()
            flight.task = asyncio.create_task(self._download(transport, descriptor, flight, progress))
            self._flights[digest] = flight

            def done(_: asyncio.Task[None], flight: _Flight = flight) -> None:
                if self._flights.get(digest) is flight:
                    del self._flights[digest]

            flight.task.add_done_callback(done)
        else:
            progress(short(digest), "Waiting", 0, descriptor.size)
        flight.leases.append(lease)
        assert flight.task is not None
        try:
            await asyncio.shield(flight.task)
        except asyncio.CancelledError:
            flight.leases.remove(lease)
            if not flight.leases:
                flight.task.cancel()  # nobody wants it now; the partial file stays for a resume
            raise
        return True

    async def _download(
        self, transport: RegistryTransport, descriptor: Descriptor, flight: _Flight, progress: ProgressFn
    ) -> None:
        digest, size, name = descriptor.digest, descriptor.size, short(descriptor.digest)
        path = self._content.ingest_path(digest)
        hasher, offset = await in_thread(_rehash, path, size)
        if offset == size and "sha256:" + hasher.hexdigest() == digest:
            # Downloaded whole before, but nobody was left to take it: take it now.
            await self._commit(digest, flight, name, size)
            return
        if offset >= size:
            offset, hasher = 0, hashlib.sha256()
            await in_thread(_truncate, path)
        async with transport.blob(digest, offset) as body:
            if body.offset != offset:
                # The registry ignored the range: start from the beginning.
                offset, hasher = 0, hashlib.sha256()
                await in_thread(_truncate, path)
            if offset:
                progress(name, "Resuming", offset, size)
            # Opened on the loop (it is quick): a cancelled in_thread would lose the handle.
            file: BinaryIO = open(path, "ab")
            try:
                done, last = offset, 0.0
                async for chunk in body.chunks():
                    done += len(chunk)
                    if done > size:
                        raise InvalidArgument(
                            f"blob {digest} from {transport.endpoint.domain} is larger than the "
                            f"{size} bytes its descriptor says: nothing was stored"
                        )
                    await in_thread(_append, file, hasher, chunk)
                    now = time.monotonic()
                    if now - last >= _REPORT_EVERY_S:
                        last = now
                        progress(name, "Downloading", done, size)
            finally:
                await in_thread(file.close)
                if done == 0:
                    await in_thread(path.unlink, True)  # nothing worth resuming
        if done != size:
            raise Unavailable(
                f"blob {digest} from {transport.endpoint.domain} ended after {done} of {size} "
                "bytes: pull again to resume"
            )
        actual = "sha256:" + hasher.hexdigest()
        if actual != digest:
            await in_thread(path.unlink, True)
            raise InvalidArgument(
                f"blob {digest} from {transport.endpoint.domain} does not match its digest "
                f"(its content hashes to {actual}): nothing was stored"
            )
        progress(name, "Verifying Checksum", size, size)
        await self._commit(digest, flight, name, size)
        progress(name, "Download complete", size, size)

    async def _commit(self, digest: str, flight: _Flight, name: str, size: int) -> None:
        # The live list: a pull that gave up meanwhile is not handed the blob.
        if not await in_thread(self._content.commit_ingest, digest, flight.leases):
            raise asyncio.CancelledError()


def _rehash(path: os.PathLike[str], size: int) -> tuple[hashlib._Hash, int]:
    hasher = hashlib.sha256()
    try:
        with open(path, "rb") as file:
            offset = 0
            while chunk := file.read(1 << 20):
                hasher.update(chunk)
                offset += len(chunk)
    except FileNotFoundError:
        return hasher, 0
    if offset > size:
        _truncate(path)
        return hashlib.sha256(), 0
    return hasher, offset


def _truncate(path: os.PathLike[str]) -> None:
    with open(path, "wb"):
        pass


def _append(file: BinaryIO, hasher: hashlib._Hash, chunk: bytes) -> None:
    file.write(chunk)
    hasher.update(chunk)
