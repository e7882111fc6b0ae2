"""Unpacked layers: `<root>/<diffid-hex>/`, each unpacked once and shared read-only.

Owns: recognising a layer's compression, computing its diff id (sha256 of the uncompressed
tar) while it streams through the safe extractor, unpacking into a temp directory beside
the final one and renaming it into place (or reusing a layer already there), and deleting
layers no lease holds. Must not: decide which layers are in use (the manager asks the
database) or parse image metadata.

Each directory is one overlayfs lowerdir. Layers are keyed by diff id alone: a layer's
whiteouts and files mean the same whatever is stacked below it.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import re
import secrets
import stat
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, cast

from pallet.v1.errors import InvalidArgument
from pallet.daemon.images import tarsafe
from pallet.daemon.images.fsutil import fsync_dir, remove_tree, syncfs
from pallet.daemon.images.leases import Lease, Leases

_CHUNK = 1 << 20
_HEX = re.compile(r"[0-9a-f]{64}")
_MAGIC_LEN = 6


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class UnpackedLayer:
    """A layer unpacked into a temp directory, not yet in place."""

    diff_id: str
    size: int  # bytes of regular-file content
    compression: str  # "", "gzip", "bzip2" or "xz"
    temp_dir: Path


class _Prefixed:
    """A reader that returns bytes already read (to sniff the format) before the rest."""

    def __init__(self, prefix: bytes, rest: Readable) -> None:
        self._prefix = prefix
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size < 0:
                data, self._prefix = self._prefix + self._rest.read(), b""
                return data
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return data
        return self._rest.read(size)


class _Digesting:
    """Hashes (and optionally hands on) every decompressed byte read through it.

    Decompression errors surface here, mid-tar; they are the input's fault, so they
    become InvalidArgument rather than an OSError that would look like a host failure.
    """

    def __init__(
        self, source: Readable, compression: str, tee: Callable[[bytes], None] | None
    ) -> None:
        self._source = source
        self._compression = compression
        self._tee = tee
        self.hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._source.read(size)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
            raise InvalidArgument(
                f"layer's {self._compression or 'tar'} stream is corrupt: {exc}"
            ) from None
        self.hash.update(data)
        if self._tee is not None:
            self._tee(data)
        return data

    def drain(self) -> None:
        """Read to the end: tar's trailing padding is part of the diff id."""
        while self.read(_CHUNK):
            pass

    @property
    def diff_id(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class _Raw(io.RawIOBase):
    """A `_Digesting` as a raw stream, read through an io.BufferedReader: tarfile's
    stream mode reads 10 KiB records, and through the buffer every byte is still hashed
    and teed once, in 1 MiB pieces (100 Python calls per 100 MB, not 10,000)."""

    def __init__(self, digesting: _Digesting) -> None:
        self._digesting = digesting

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._digesting.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _read_exact(source: Readable, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = source.read(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def decompressed(raw: Readable) -> tuple[Readable, str]:
    """Recognise the compression by its magic bytes; return the plain stream and its name."""
    magic = _read_exact(raw, _MAGIC_LEN)
    stream = _Prefixed(magic, raw)
    as_file = cast(IO[bytes], stream)
    if magic.startswith(b"\x1f\x8b"):
        return cast(Readable, gzip.GzipFile(fileobj=as_file, mode="rb")), "gzip"
    if magic.startswith(b"BZh"):
        return cast(Readable, bz2.BZ2File(as_file)), "bzip2"
    if magic.startswith(b"\xfd7zXZ\x00"):
        return cast(Readable, lzma.LZMAFile(as_file)), "xz"
    if magic.startswith(b"\x28\xb5\x2f\xfd"):
        raise InvalidArgument(
            "layer is zstd-compressed, which this palletd cannot read (no zstd library): "
            "use an uncompressed or gzip-compressed layer"
        )
    return stream, ""


def diff_id_of(raw: Readable) -> str:
    """Only hash the uncompressed layer (for a layer that is already unpacked)."""
    plain, compression = decompressed(raw)
    digesting = _Digesting(plain, compression, None)
    digesting.drain()
    return digesting.diff_id


class LayerStore:
    """Unpacked layer directories under one root."""

    def __init__(self, root: Path, leases: Leases) -> None:
        self.root = root
        self.tmp_dir = root / ".tmp"
        self.leases = leases

    def prepare(self) -> None:
        """Create the directories and drop half-unpacked layers a crash left behind."""
        self.root.mkdir(parents=True, exist_ok=True)
        remove_tree(self.tmp_dir)
        self.tmp_dir.mkdir()

    def path(self, diff_id: str) -> Path:
        hex_ = diff_id.removeprefix("sha256:")
        if not diff_id.startswith("sha256:") or not _HEX.fullmatch(hex_):
            raise InvalidArgument(f"invalid layer diff id {diff_id!r}")
        return self.root / hex_

    def diff_ids(self) -> list[str]:
        return ["sha256:" + entry.name for entry in os.scandir(self.root) if _HEX.fullmatch(entry.name)]

    def unpack(self, raw: Readable, tee: Callable[[bytes], None] | None = None) -> UnpackedLayer:
        """Unpack a (possibly compressed) layer tar into a new temp directory.

        `tee` receives every uncompressed byte (an import stores them as the layer blob).
        On any error the temp directory is gone and the error names the bad entry.
        """
        temp_dir = self.tmp_dir / f"unpack-{secrets.token_hex(8)}"
        temp_dir.mkdir(mode=0o755)
        try:
            plain, compression = decompressed(raw)
            digesting = _Digesting(plain, compression, tee)
            stats = tarsafe.extract(cast(IO[bytes], io.BufferedReader(_Raw(digesting), _CHUNK)), str(temp_dir))
            digesting.drain()  # what the buffer holds is hashed: the rest, to the end
            # One syncfs instead of an fsync per file: the layer is durable before the
            # rename makes it visible.
            syncfs(temp_dir)
        except BaseException:
            remove_tree(temp_dir)
            raise
        return UnpackedLayer(digesting.diff_id, stats.size, compression, temp_dir)

    def acquire(self, diff_id: str, lease: Lease) -> bool:
        """Lease a layer if it is already unpacked; False if it is not there."""
        with self.leases.lock:
            if not self.path(diff_id).is_dir():
                return False
            lease.layers.add(diff_id)
            return True

    def commit(self, layer: UnpackedLayer, lease: Lease) -> Path:
        """Move an unpacked layer into place, or drop it if an identical one is there."""
        final = self.path(layer.diff_id)
        with self.leases.lock:
            lease.layers.add(layer.diff_id)
            present = final.is_dir()
            if not present:
                os.rename(layer.temp_dir, final)
        if present:
            remove_tree(layer.temp_dir)
        else:
            fsync_dir(self.root)
        return final

    def discard(self, layer: UnpackedLayer) -> None:
        remove_tree(layer.temp_dir)

    def remove_unless_leased(self, diff_id: str) -> bool:
        """Delete a layer unless an unfinished operation holds it; True if deleted."""
        final = self.path(diff_id)
        trash = self.tmp_dir / f"trash-{secrets.token_hex(8)}"
        with self.leases.lock:
            if self.leases.layer_leased(diff_id) or not final.is_dir():
                return False
            # A rename is atomic: nobody can see a half-deleted layer.
            os.rename(final, trash)
        fsync_dir(self.root)
        remove_tree(trash)
        return True

    def size_of(self, diff_id: str) -> int:
        """Bytes of regular-file content in an unpacked layer."""
        total = 0
        for dirpath, _dirs, files in os.walk(self.path(diff_id)):
            for name in files:
                info = os.lstat(os.path.join(dirpath, name))
                if stat.S_ISREG(info.st_mode):
                    total += info.st_size
        return total
