"""`save`: images as one tar that is both a `docker save` archive and an OCI image layout.

Owns: the archive's layout, as docker 25 writes it: `blobs/sha256/<hex>` for every
manifest, config and layer blob, `oci-layout`, `index.json` (one manifest descriptor per
image, named with `io.containerd.image.name` and `org.opencontainers.image.ref.name`),
and, unless OCI-only, `manifest.json` (Config, RepoTags, Layers) and `repositories`.
Every blob is read back verified. Must not: change the store, or run on the event loop.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from pallet.v1.errors import NotFound
from pallet.daemon.images import oci
from pallet.daemon.images.content import ContentStore
from pallet.daemon.images.leases import Lease
from pallet.daemon.images.reference import Reference

_MTIME = 0  # fixed: saving the same images twice gives the same archive


@dataclass(frozen=True, slots=True)
class SaveItem:
    """One image to save and the references it is saved under (may be none)."""

    manifest_digest: str
    references: tuple[Reference, ...]


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, _MTIME
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, _MTIME
    tar.addfile(info)


def write_archive(
    out: Path, content: ContentStore, items: Sequence[SaveItem], oci_only: bool, lease: Lease
) -> None:
    written: set[str] = set()
    index: list[dict[str, object]] = []
    docker: list[dict[str, object]] = []
    repositories: dict[str, dict[str, str]] = {}
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_dir(tar, "blobs")
        _add_dir(tar, "blobs/sha256")

        def blob(digest: str) -> str:
            name = f"blobs/sha256/{digest.removeprefix('sha256:')}"
            if digest not in written:
                written.add(digest)
                info = tarfile.TarInfo(name)
                info.mode, info.mtime = 0o644, _MTIME
                with content.open_verified(digest) as source:
                    info.size = source.size
                    # tarfile reads exactly `size` bytes: the read reaching it checks.
                    tar.addfile(info, cast(IO[bytes], source))
            return name

        for item in items:
            data = content.read_verified(item.manifest_digest)
            manifest = oci.parse_manifest(data, f"manifest {item.manifest_digest}")
            for needed in (manifest.config, *manifest.layers):
                # Leased first, so a concurrent rmi cannot collect them mid-archive.
                if not content.acquire(needed.digest, lease):
                    raise NotFound(f"blob {needed.digest} of manifest {item.manifest_digest} is not stored")
            config_name = blob(manifest.config.digest)
            layer_names = [blob(layer.digest) for layer in manifest.layers]
            blob(item.manifest_digest)
            descriptor = {"mediaType": manifest.media_type, "digest": item.manifest_digest, "size": len(data)}
            tags = [ref for ref in item.references if ref.tag]
            named: list[Reference | None] = list(tags) or [None]
            for ref in named:
                entry = dict(descriptor)
                if ref is not None:
                    entry["annotations"] = {
                        oci.ANNOTATION_CONTAINERD_NAME: str(ref),
                        oci.ANNOTATION_REF_NAME: ref.tag,
                    }
                index.append(entry)
            for ref in tags:
                repositories.setdefault(ref.familiar_name, {})[ref.tag] = manifest.config.digest.removeprefix("sha256:")
            docker.append(
                {
                    "Config": config_name,
                    "RepoTags": [ref.familiar() for ref in tags],
                    "Layers": layer_names,
                }
            )
        _add_bytes(tar, "oci-layout", oci.canonical_json({"imageLayoutVersion": "1.0.0"}))
        _add_bytes(
            tar,
            "index.json",
            oci.canonical_json({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": index}),
        )
        if not oci_only:
            _add_bytes(tar, "manifest.json", json.dumps(docker).encode())
            if repositories:
                _add_bytes(tar, "repositories", json.dumps(repositories).encode())
