"""Helpers for the image store tests: tar and archive builders, a real store on a temp dir.

Not tests itself (pytest collects nothing here); the image tests import it by name, and
the integration tests add this directory to sys.path to do the same.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pallet.daemon.events.model import Event, Notice
from pallet.daemon.images.manager import ImageManager
from pallet.daemon.images.model import ImageUser
from pallet.daemon.store.db import Database

MTIME = 1_700_000_000

Member = tuple[tarfile.TarInfo, bytes | None]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def entry(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    data: bytes | None = None,
    mode: int = 0o644,
    uid: int = 0,
    gid: int = 0,
    linkname: str = "",
    devmajor: int = 0,
    devminor: int = 0,
    xattrs: Mapping[str, bytes] | None = None,
    mtime: int = MTIME,
) -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = mtime
    info.linkname = linkname
    info.devmajor, info.devminor = devmajor, devminor
    if xattrs:
        info.pax_headers = {
            f"SCHILY.xattr.{key}": value.decode("utf-8", "surrogateescape") for key, value in xattrs.items()
        }
    if kind == tarfile.REGTYPE:
        data = data or b""
        info.size = len(data)
    return info, data


def reg(name: str, data: bytes = b"", mode: int = 0o644, **kw: Any) -> Member:
    return entry(name, tarfile.REGTYPE, data, mode, **kw)


def dir_(name: str, mode: int = 0o755, **kw: Any) -> Member:
    return entry(name, tarfile.DIRTYPE, mode=mode, **kw)


def sym(name: str, target: str, **kw: Any) -> Member:
    return entry(name, tarfile.SYMTYPE, linkname=target, mode=0o777, **kw)


def hard(name: str, target: str, **kw: Any) -> Member:
    return entry(name, tarfile.LNKTYPE, linkname=target, **kw)


def fifo(name: str, mode: int = 0o600) -> Member:
    return entry(name, tarfile.FIFOTYPE, mode=mode)


def device(name: str, kind: str = "chr", major: int = 1, minor: int = 3) -> Member:
    return entry(name, tarfile.CHRTYPE if kind == "chr" else tarfile.BLKTYPE, devmajor=major, devminor=minor)


def build_tar(*members: Member, compress: bool = False) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = out.getvalue()
    return gzip.compress(raw, mtime=0) if compress else raw


def files_tar(files: Mapping[str, bytes]) -> bytes:
    """An archive (not a layer): plain files by name."""
    return build_tar(*(reg(name, data) for name, data in files.items()))


def image_config(
    diff_ids: Sequence[str],
    cmd: Sequence[str] = ("sh",),
    labels: Mapping[str, str] | None = None,
    created: str = "2024-01-02T03:04:05.123456789Z",
    architecture: str = "",
) -> bytes:
    from pallet.daemon.images.oci import host_architecture

    config: dict[str, Any] = {"Cmd": list(cmd), "Env": ["PATH=/bin"]}
    if labels:
        config["Labels"] = dict(labels)
    return json.dumps(
        {
            "created": created,
            "architecture": architecture or host_architecture(),
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        }
    ).encode()


@dataclass
class ArchiveImage:
    layers: Sequence[bytes]  # uncompressed layer tars, bottom first
    tags: Sequence[str] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    created: str = "2024-01-02T03:04:05Z"
    annotations: Mapping[str, str] | None = None  # OCI index entry; overrides the tags


def docker_archive(*images: ArchiveImage, blob_paths: bool = False) -> bytes:
    """A `docker save` archive; layers as `<id>/layer.tar` (or `blobs/sha256/<hex>`)."""
    files: dict[str, bytes] = {}
    manifest = []
    for image in images:
        diff_ids = [sha(layer) for layer in image.layers]
        config = image_config(diff_ids, labels=image.labels, created=image.created)
        config_name = f"blobs/sha256/{sha(config)[7:]}" if blob_paths else f"{sha(config)[7:]}.json"
        files[config_name] = config
        layer_names = []
        for layer in image.layers:
            name = f"blobs/sha256/{sha(layer)[7:]}" if blob_paths else f"{sha(layer)[7:]}/layer.tar"
            files[name] = layer
            layer_names.append(name)
        manifest.append({"Config": config_name, "RepoTags": list(image.tags), "Layers": layer_names})
    files["manifest.json"] = json.dumps(manifest).encode()
    return files_tar(files)


def oci_archive(
    *images: ArchiveImage,
    gzip_layers: bool = True,
    nested: bool = True,
    containerd_names: bool = False,
) -> bytes:
    """An OCI image layout archive; with `nested`, each image sits behind its own index."""
    blobs: dict[str, bytes] = {}

    def add(data: bytes) -> str:
        digest = sha(data)
        blobs[f"blobs/sha256/{digest[7:]}"] = data
        return digest

    entries = []
    for image in images:
        diff_ids = [sha(layer) for layer in image.layers]
        config = image_config(diff_ids, labels=image.labels, created=image.created)
        layer_descs = []
        for layer in image.layers:
            blob = gzip.compress(layer, mtime=0) if gzip_layers else layer
            media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gzip_layers else "")
            layer_descs.append({"mediaType": media, "digest": add(blob), "size": len(blob)})
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": add(config),
                    "size": len(config),
                },
                "layers": layer_descs,
            }
        ).encode()
        desc: dict[str, Any] = {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": add(manifest),
            "size": len(manifest),
        }
        if nested:
            from pallet.daemon.images.oci import host_architecture

            other = dict(desc, platform={"os": "linux", "architecture": "mips64"})
            # A manifest for another platform first: the loader must pick this host's.
            other["digest"] = sha(b"absent")
            index = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": [
                        other,
                        dict(desc, platform={"os": "linux", "architecture": host_architecture()}),
                    ],
                }
            ).encode()
            desc = {
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": add(index),
                "size": len(index),
            }
        if image.annotations is not None:
            desc["annotations"] = dict(image.annotations)
        elif image.tags:
            from pallet.daemon.images.reference import parse_tagged

            ref = parse_tagged(image.tags[0])
            annotations = {"org.opencontainers.image.ref.name": ref.familiar()}
            if containerd_names:
                annotations = {
                    "io.containerd.image.name": str(ref),
                    "org.opencontainers.image.ref.name": ref.tag,
                }
            desc["annotations"] = annotations
        entries.append(desc)
    files = {
        "oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
        "index.json": json.dumps({"schemaVersion": 2, "manifests": entries}).encode(),
        **blobs,
    }
    return files_tar(files)


T = TypeVar("T")


class FakeEvents:
    """A EventPublisher that remembers what was published (no journal, no seq gaps
    checked): `commit` runs the change in a transaction of `db`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.events: list[Event] = []

    async def commit(
        self, change: Callable[[sqlite3.Connection], tuple[T, Sequence[Notice]]]
    ) -> T:
        result, notices = await self.db.transaction(change)
        for n in notices:
            await self.publish(n.type, n.action, n.actor_id, n.attributes)
        return result

    async def publish(
        self,
        type: str,
        action: str,
        actor_id: str,
        attributes: Mapping[str, str] | None = None,
        *,
        also: Callable[[sqlite3.Connection], None] | None = None,
    ) -> Event:
        if also is not None:
            await self.db.transaction(also)
        event = Event(len(self.events) + 1, type, action, actor_id, dict(attributes or {}))
        self.events.append(event)
        return event

    def actions(self) -> list[tuple[str, str]]:
        return [(event.action, event.attributes.get("name", "")) for event in self.events]


@dataclass
class StoreEnv:
    manager: ImageManager
    events: FakeEvents
    root: Path
    db: Database
    users: dict[str, list[str]]

    def stored_files(self) -> list[str]:
        """Every blob, layer and temp file on disk (to prove nothing was left)."""
        out = []
        for sub in ("content/blobs/sha256", "content/tmp", "layers", "layers/.tmp"):
            path = self.root / sub
            out += [f"{sub}/{p.name}" for p in path.iterdir() if p.name != ".tmp"]
        return sorted(out)


@asynccontextmanager
async def open_store(tmp_path: Path, db: Database | None = None) -> AsyncIterator[StoreEnv]:
    own_db = db is None
    database = db or Database(tmp_path / "pallet.db")
    if own_db:
        await database.start()
    users: dict[str, list[str]] = {}

    async def image_users(image_id: str) -> list[ImageUser]:
        return [ImageUser(name, running=False) for name in users.get(image_id, [])]

    events = FakeEvents(database)
    manager = ImageManager(database, events, tmp_path / "root", image_users)
    await manager.start()
    try:
        yield StoreEnv(manager, events, tmp_path / "root", database, users)
    finally:
        await manager.aclose()
        if own_db:
            await database.aclose()


async def chunks(data: bytes, size: int = 7919) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
