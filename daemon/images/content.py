"""The content-addressable blob store: `<root>/blobs/sha256/<hex>`.

Owns: writing blobs crash-safely (temp file under `<root>/tmp`, fsync, digest check, rename,
fsync of the directory), reading them back with their digest checked, and deleting them
when no lease holds them. Must not: decide which blobs are in use (the manager asks the
database) or parse what a blob holds.

All methods block; the manager calls them through `asyncio.to_thread`.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol

from pallet.v1.errors import FailedPrecondition, InvalidArgument, NotFound
from pallet.daemon.images.fsutil import DirectFile, fsync_dir, remove_tree
from pallet.daemon.images.leases import Lease, Leases

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
CHUNK = 1 << 20


def check_digest(digest: str) -> str:
    """Return the hex part of a `sha256:<hex>` digest, or refuse it."""
    if not _DIGEST.fullmatch(digest):
        raise InvalidArgument(f"invalid digest {digest!r}: expected 'sha256:' and 64 hex digits")
    return digest[len("sha256:") :]


class _File(Protocol):
    """What a blob is written through: a file opened "xb", or a `DirectFile`."""

    def write(self, data: bytes | memoryview, /) -> int: ...

    def flush(self) -> None: ...

    def fileno(self) -> int: ...

    def close(self) -> None: ...


class BlobWriter:
    """One blob being written: `write()` the bytes, then `commit()`; `abort()` otherwise.

    `hashed_by_caller`: the caller hashes every byte it writes, the very bytes, itself
    (an unpacked layer's diff id is the digest of what its tee wrote here): then the
    writer does not hash them a second time, and `commit` takes the caller's digest,
    which it must be given. `direct`: written past the page cache (`fsutil.DirectFile`),
    for a big blob nothing reads soon (a committed or imported layer's)."""

    def __init__(self, store: ContentStore, lease: Lease, hashed_by_caller: bool = False,
                 direct: bool = False) -> None:
        self._store = store
        self._lease = lease
        self._path = store.tmp_dir / f"blob-{secrets.token_hex(8)}"
        self._file: _File | None = DirectFile(self._path) if direct else open(self._path, "xb")
        self._hash = None if hashed_by_caller else hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        if self._file is None:
            raise RuntimeError("blob writer is closed")
        self._file.write(data)
        if self._hash is not None:
            self._hash.update(data)
        self.size += len(data)

    @property
    def digest(self) -> str:
        if self._hash is None:
            raise RuntimeError("the blob is hashed by its writer's caller")
        return "sha256:" + self._hash.hexdigest()

    def commit(self, expected: str = "") -> str:
        """Make the blob durable and visible; refuse it if it is not `expected` (for a
        blob `hashed_by_caller`, `expected` is the caller's digest of it)."""
        if self._file is None:
            raise RuntimeError("blob writer is closed")
        if self._hash is None and not expected:
            raise RuntimeError("a blob hashed by the caller is committed with its digest")
        if self._hash is None:
            check_digest(expected)
            digest = expected
        else:
            digest = self.digest
        if expected and expected != digest:
            self.abort()
            raise InvalidArgument(f"blob {expected} does not match its content (it hashes to {digest})")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        final = self._store.path(digest)
        with self._store.leases.lock:
            # Leased before it becomes visible, so a concurrent collection cannot take it.
            self._lease.blobs.add(digest)
            os.rename(self._path, final)
        fsync_dir(final.parent)
        return digest

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._path.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()  # no-op after commit


class VerifyingReader:
    """Reads a blob, and refuses to hand out its last bytes unless the whole hashes to its digest.

    The check runs in the read that reaches the end (`size`, taken when the file was
    opened), not in a later read returning b"": a consumer that reads exactly the blob's
    size (tarfile, an upload of known length) never asks for more, and must still never
    get a corrupted blob whole. A consumer that may stop early (a tar reader before the
    padding) calls `drain()` after it.
    """

    def __init__(self, file: BinaryIO, digest: str) -> None:
        self._file = file
        self._digest = digest
        self._hash = hashlib.sha256()
        self._actual = ""  # what the whole hashed to, once read
        self.size = os.fstat(file.fileno()).st_size
        self._left = self.size

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._hash.update(data)
        self._left -= len(data)
        if self._left <= 0 or not data or size < 0:
            self._check()
        return data

    def drain(self) -> None:
        """Read whatever the consumer left, and check the whole."""
        while self.read(CHUNK):
            pass  # the read returning b"" checks the whole

    def _check(self) -> None:
        # Every call after the end raises again: a consumer that swallowed the first
        # error (a tar reader wrapping it) must not get past a later check.
        if not self._actual:
            self._actual = "sha256:" + self._hash.hexdigest()
        if self._actual != self._digest:
            raise CorruptedBlob(self._digest, self._actual)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> VerifyingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CorruptedBlob(FailedPrecondition):
    """A stored blob no longer hashes to its digest (a bit flip on disk, a torn write).

    Nothing is served from it. The image manager names the images using it in the
    message (`for_images`): removing them all drops the blob, and loading or pulling
    them again writes it whole.
    """

    def __init__(self, digest: str, actual: str, images: tuple[str, ...] = ()) -> None:
        if len(images) > 1:
            advice = f"remove the images that use it ({'; '.join(images)}) and load or pull them again"
        elif images:
            advice = f"remove the image that uses it ({images[0]}) and load or pull it again"
        else:
            advice = "remove the image that uses it and load or pull it again"
        super().__init__(f"blob {digest} is corrupted on disk (its content hashes to {actual}): {advice}")
        self.digest = digest
        self.actual = actual

    def for_images(self, images: list[str]) -> CorruptedBlob:
        """The same error, naming the images that use the blob (each by its tags, or its
        short id)."""
        return CorruptedBlob(self.digest, self.actual, tuple(images))


class ContentStore:
    """Blobs by sha256 digest under one root directory."""

    def __init__(self, root: Path, leases: Leases) -> None:
        self.root = root
        self.blob_dir = root / "blobs" / "sha256"
        self.tmp_dir = root / "tmp"
        # Partial downloads, kept across restarts so an interrupted pull resumes.
        self.ingest_dir = root / "ingest"
        self.leases = leases

    def prepare(self) -> None:
        """Create the directories and drop temp files a crash left behind."""
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        remove_tree(self.tmp_dir)
        self.tmp_dir.mkdir(parents=True)
        self.ingest_dir.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.blob_dir / check_digest(digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        """The stored blob's size in bytes."""
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the content store") from None

    def acquire(self, digest: str, lease: Lease) -> bool:
        """Lease a blob if it is already stored; False if it is not there."""
        with self.leases.lock:
            if not self.path(digest).is_file():
                return False
            lease.blobs.add(digest)
            return True

    def ingest_path(self, digest: str) -> Path:
        """Where a download of `digest` keeps its bytes until they are verified."""
        return self.ingest_dir / check_digest(digest)

    def commit_ingest(self, digest: str, leases: list[Lease]) -> bool:
        """Move a verified, complete download into place, leased to every waiting pull;
        False (left in ingest) when no pull waits for it any more."""
        source = self.ingest_path(digest)
        with open(source, "rb") as file:
            os.fsync(file.fileno())
        final = self.path(digest)
        with self.leases.lock:
            if not leases:
                return False
            for lease in leases:
                lease.blobs.add(digest)
            os.rename(source, final)
        fsync_dir(final.parent)
        return True

    def ingest_size(self) -> int:
        return sum(entry.stat().st_size for entry in os.scandir(self.ingest_dir) if entry.is_file())

    def clear_ingest(self, busy: set[str], min_age_s: float = 60.0) -> int:
        """Drop partial downloads no pull is working on; bytes freed.

        Files touched in the last `min_age_s` are kept: a pull may be just starting on one.
        """
        freed = 0
        now = time.time()
        for entry in os.scandir(self.ingest_dir):
            if not entry.is_file() or now - entry.stat().st_mtime < min_age_s:
                continue
            if "sha256:" + entry.name not in busy:
                freed += entry.stat().st_size
                os.unlink(entry.path)
        return freed

    def writer(self, lease: Lease, hashed_by_caller: bool = False, direct: bool = False) -> BlobWriter:
        return BlobWriter(self, lease, hashed_by_caller, direct)

    def write_bytes(self, data: bytes, lease: Lease, expected: str = "") -> str:
        with self.writer(lease) as writer:
            writer.write(data)
            return writer.commit(expected)

    def open_verified(self, digest: str) -> VerifyingReader:
        """Open a blob for streaming; reading it to the end checks its digest."""
        try:
            file = open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the content store") from None
        return VerifyingReader(file, digest)

    def read_verified(self, digest: str) -> bytes:
        """Read a (small) blob whole, refusing it if it is corrupted."""
        with self.open_verified(digest) as reader:
            return reader.read()

    def verify(self, digest: str) -> None:
        """Raise FailedPrecondition if the stored blob no longer matches its digest."""
        with self.open_verified(digest) as reader:
            reader.drain()

    def delete_unless_leased(self, digest: str) -> bool:
        """Delete a blob unless an unfinished operation holds it; True if it was deleted."""
        path = self.path(digest)
        with self.leases.lock:
            if self.leases.blob_leased(digest):
                return False
            try:
                path.unlink()
            except FileNotFoundError:
                return False
        return True

    def digests(self) -> Iterator[str]:
        for entry in os.scandir(self.blob_dir):
            if _DIGEST.fullmatch("sha256:" + entry.name):
                yield "sha256:" + entry.name
