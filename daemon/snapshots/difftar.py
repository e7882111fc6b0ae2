"""`commit`'s layer: a container's writable layer (the overlay's upper) as an OCI layer tar.

Owns: writing the upper directory's entries (`changes.walk_upper`: the runtime's mount
point stubs left out) as an uncompressed PAX tar with owners, modes, times (whole seconds,
as docker writes them), xattrs and hard links kept, and turning overlayfs's markers into
the image spec's: a whiteout (a 0:0 character device) becomes an empty `.wh.<name>`, an
opaque directory (`trusted.overlay.opaque=y`) gets an empty `.wh..wh..opq` inside it.
overlayfs's own bookkeeping xattrs (`trusted.overlay.*`) are not carried. Must not: mount anything,
change the upper directory, or know where the tar goes (the image store stores it).

Sockets are left out (a tar cannot hold them; docker leaves them out too).
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from pallet.daemon.snapshots.changes import is_opaque, is_whiteout, walk_upper

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
XATTR_PAX_PREFIX = "SCHILY.xattr."
_OVERLAY_XATTRS = "trusted.overlay."
_COPY_BUFFER = 1 << 20


class LayerSink:
    """A write-only stream that knows how much went through it (tarfile's "w" mode asks
    `tell`; a pipe cannot say)."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._offset = 0

    def write(self, data: bytes, /) -> int:
        self._out.write(data)
        self._offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self._offset

    def read(self, size: int, /) -> bytes:
        raise io.UnsupportedOperation("the layer tar is written only")

    def seek(self, pos: int, /) -> int:
        raise io.UnsupportedOperation("the layer tar is written in one pass")

    def flush(self) -> None:
        self._out.flush()

    def close(self) -> None:
        """The caller's stream stays open (tarfile closes only what it opened)."""


def _xattrs(path: Path) -> dict[str, str]:
    """The entry's extended attributes as PAX records (raw bytes kept through
    surrogateescape, as tarfile writes and `tarsafe` reads them back)."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    records = {}
    for name in sorted(names):
        if name.startswith(_OVERLAY_XATTRS):
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue  # gone meanwhile, or not readable here
        records[XATTR_PAX_PREFIX + name] = value.decode("utf-8", "surrogateescape")
    return records


def _marker(name: str, like: tarfile.TarInfo, mode: int) -> tarfile.TarInfo:
    """An empty regular file standing for a whiteout, owned like the entry it marks."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.REGTYPE
    info.mode = mode
    info.uid, info.gid = like.uid, like.gid
    info.mtime = like.mtime
    return info


def write_layer(upper: Path, lowers: Sequence[str], out: IO[bytes]) -> int:
    """Write the layer tar of `upper` (over `lowers`, top first) to `out`; return how many
    entries it has (0: the container changed nothing)."""
    count = 0
    # Not tarfile's stream mode, which hands on 10 KiB records (each one hashed and copied
    # on its way to the blob and the extractor): file content goes on in 1 MiB pieces.
    sink = LayerSink(out)
    with tarfile.TarFile(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT, copybufsize=_COPY_BUFFER) as tar:
        for parts, st in walk_upper(upper, lowers):
            path = upper.joinpath(*parts)
            name = "/".join(parts)
            if stat.S_ISSOCK(st.st_mode):
                continue
            if is_whiteout(st):
                base = _plain_info(tar, path, name)
                head, _, tail = name.rpartition("/")
                marker = f"{head}/{WHITEOUT_PREFIX}{tail}" if head else WHITEOUT_PREFIX + tail
                tar.addfile(_marker(marker, base, 0o600))
                count += 1
                continue
            info = _plain_info(tar, path, name)
            xattrs = _xattrs(path)
            if xattrs:
                info.pax_headers = {**info.pax_headers, **xattrs}
            if info.isreg():
                with open(path, "rb") as file:
                    tar.addfile(info, file)
            else:
                tar.addfile(info)
            count += 1
            if info.isdir() and is_opaque(path):
                tar.addfile(_marker(f"{name}/{OPAQUE_MARKER}", info, stat.S_IMODE(st.st_mode)))
                count += 1
    return count


def _plain_info(tar: tarfile.TarFile, path: Path, name: str) -> tarfile.TarInfo:
    """The entry's header as tarfile makes it (a second name of a hard-linked file is a
    link to the first), with numeric owners only: the host's user names mean nothing in
    an image."""
    info = tar.gettarinfo(str(path), arcname=name)
    info.uname = info.gname = ""
    # Whole seconds, as docker's archive writes them: a fractional mtime makes tarfile add
    # a PAX header to every entry (1 KiB more, and its own pass through the extractor).
    info.mtime = int(info.mtime)
    return info
