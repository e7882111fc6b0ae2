"""`load`: images from a `docker save` archive or an OCI image-layout archive.

Owns: reading a spooled archive without extracting it (members are looked up by name and
streamed), checking every blob against its digest and every layer against the diff id its
config names, and staging the images: blobs stored, layers unpacked and in place. Must
not: write records or publish events (the manager commits what this stages), or run on
the event loop (it blocks).

Both formats are accepted: `manifest.json` (docker save: Config, RepoTags, Layers) and
`oci-layout` + `index.json` (OCI: nested indexes are resolved to this host's platform;
names come from `io.containerd.image.name`, else `org.opencontainers.image.ref.name` when it
is a full reference).
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, cast

from pallet.v1.errors import InvalidArgument
from pallet.daemon.images import oci
from pallet.daemon.images.content import ContentStore
from pallet.daemon.images.layers import LayerStore, Readable, UnpackedLayer, decompressed
from pallet.daemon.images.leases import Lease
from pallet.daemon.images.reference import Reference, parse_tagged
from pallet.daemon.images.records import StagedImage, StagedLayer
from pallet.daemon.images.saferoot import clean_name

MAX_DOCUMENT = 16 << 20  # manifests, indexes and configs are small; refuse absurd ones
MAX_INDEX_DEPTH = 4
_CHUNK = 1 << 20
_BLOB_PATH = re.compile(r"blobs/sha256/([0-9a-f]{64})")
_CONFIG_NAME = re.compile(r"(?:.*/)?([0-9a-f]{64})\.json")


class _Tee:
    """Hands every byte read from `source` to `sink` too (the raw layer blob)."""

    def __init__(self, source: IO[bytes], sink: Callable[[bytes], None]) -> None:
        self._source = source
        self._sink = sink

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._sink(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


class ArchiveReader:
    """One archive being loaded; call `stage()` once."""

    def __init__(self, path: Path, content: ContentStore, layers: LayerStore, lease: Lease) -> None:
        self._content = content
        self._layers = layers
        self._lease = lease
        self._platform = ("linux", oci.host_architecture())
        try:
            self._tar = tarfile.open(path, "r:*")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise InvalidArgument(f"image archive is not a tar archive: {exc}") from None
        self._members: dict[str, tarfile.TarInfo] = {}
        try:
            for member in self._tar.getmembers():
                parts = clean_name(member.name)
                if parts is None:
                    raise InvalidArgument(
                        f"archive entry {member.name!r} climbs out of the archive with '..'"
                    )
                self._members["/".join(parts)] = member
        except (tarfile.TarError, EOFError) as exc:
            self._tar.close()
            raise InvalidArgument(f"image archive is truncated or corrupt: {exc}") from None
        except BaseException:
            self._tar.close()
            raise
        self._staged_layers: dict[tuple[str, str], StagedLayer] = {}

    def close(self) -> None:
        self._tar.close()

    def stage(self) -> list[StagedImage]:
        if "manifest.json" in self._members:
            return self._stage_docker()
        if "index.json" in self._members and "oci-layout" in self._members:
            return self._stage_oci()
        raise InvalidArgument(
            "image archive has neither manifest.json (docker save) nor oci-layout and "
            "index.json (OCI image layout)"
        )

    # -- members ----------------------------------------------------------------------

    def _open(self, name: str, what: str) -> IO[bytes]:
        member = self._members.get(name)
        if member is None:
            raise InvalidArgument(f"image archive has no {name} ({what})")
        try:
            file = self._tar.extractfile(member)
        except KeyError:
            file = None  # a link to a missing member
        if file is None:
            raise InvalidArgument(f"image archive entry {name} ({what}) is not a file")
        return file

    def _read_document(self, name: str, what: str) -> bytes:
        with self._open(name, what) as file:
            data = file.read(MAX_DOCUMENT + 1)
        if len(data) > MAX_DOCUMENT:
            raise InvalidArgument(f"{what} ({name}) is larger than {MAX_DOCUMENT} bytes")
        return data

    def _member_path(self, value: Any, what: str) -> str:
        if not isinstance(value, str) or not value:
            raise InvalidArgument(f"{what} must be a path inside the archive")
        parts = clean_name(value)
        if not parts:
            raise InvalidArgument(f"{what} {value!r} is not a path inside the archive")
        return "/".join(parts)

    # -- docker save ------------------------------------------------------------------

    def _stage_docker(self) -> list[StagedImage]:
        try:
            entries = json.loads(self._read_document("manifest.json", "the image list"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidArgument(f"archive manifest.json is not valid JSON: {exc}") from None
        if not isinstance(entries, list) or not entries:
            raise InvalidArgument("archive manifest.json must be a non-empty list of images")
        images = []
        for index, entry in enumerate(entries):
            what = f"manifest.json entry {index}"
            if not isinstance(entry, dict):
                raise InvalidArgument(f"{what} must be an object")
            images.append(self._stage_docker_image(entry, what))
        return images

    def _stage_docker_image(self, entry: dict[str, Any], what: str) -> StagedImage:
        config_path = self._member_path(entry.get("Config"), f"{what} Config")
        config_bytes = self._read_document(config_path, f"{what} config")
        named = _BLOB_PATH.fullmatch(config_path) or _CONFIG_NAME.fullmatch(config_path)
        expected = f"sha256:{named[1]}" if named else ""
        config_digest = self._content.write_bytes(config_bytes, self._lease, expected)
        parsed = oci.parse_config(config_bytes)
        raw_layers = entry.get("Layers")
        if not isinstance(raw_layers, list):
            raise InvalidArgument(f"{what} has no Layers list")
        if len(raw_layers) != len(parsed.diff_ids):
            raise InvalidArgument(
                f"{what} lists {len(raw_layers)} layers but its config has "
                f"{len(parsed.diff_ids)} diff ids"
            )
        layers = []
        for position, (raw_path, diff_id) in enumerate(zip(raw_layers, parsed.diff_ids)):
            path = self._member_path(raw_path, f"{what} layer {position}")
            blob = _BLOB_PATH.fullmatch(path)
            layers.append(self._stage_layer(path, diff_id, f"sha256:{blob[1]}" if blob else "", -1, ""))
        manifest = oci.build_manifest(
            oci.Descriptor(oci.OCI_CONFIG, config_digest, len(config_bytes)),
            [oci.Descriptor(layer.media_type, layer.blob_digest, self._blob_size(layer)) for layer in layers],
        )
        manifest_digest = self._content.write_bytes(manifest, self._lease)
        tags = entry.get("RepoTags") or []
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise InvalidArgument(f"{what} RepoTags must be a list of references")
        return StagedImage(
            id=config_digest,
            config_digest=config_digest,
            manifest_digest=manifest_digest,
            parsed=parsed,
            layers=tuple(layers),
            references=tuple(_reference(tag, f"{what} RepoTags") for tag in tags),
        )

    def _blob_size(self, layer: StagedLayer) -> int:
        return self._content.path(layer.blob_digest).stat().st_size

    # -- OCI image layout -------------------------------------------------------------

    def _stage_oci(self) -> list[StagedImage]:
        try:
            layout = json.loads(self._read_document("oci-layout", "the layout marker"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidArgument(f"archive oci-layout is not valid JSON: {exc}") from None
        if not isinstance(layout, dict) or not isinstance(layout.get("imageLayoutVersion"), str):
            raise InvalidArgument("archive oci-layout has no imageLayoutVersion")
        index = oci.parse_index(self._read_document("index.json", "the image index"), "index.json")
        images = []
        for position, descriptor in enumerate(index):
            if not self._platform_matches(descriptor):
                continue
            manifest = self._resolve_manifest(descriptor, f"index.json entry {position}", 0)
            images.append(self._stage_oci_image(manifest, _names(descriptor)))
        if not images:
            raise InvalidArgument(
                f"image archive holds no image for {'/'.join(self._platform)}"
            )
        return images

    def _platform_matches(self, descriptor: oci.Descriptor) -> bool:
        platform = descriptor.platform
        if descriptor.annotations.get("vnd.docker.reference.type") == "attestation-manifest":
            return False
        if not platform:
            return True
        return (platform.get("os", ""), platform.get("architecture", "")) == self._platform

    def _json_blob(self, descriptor: oci.Descriptor, what: str) -> bytes:
        hex_ = descriptor.digest.removeprefix("sha256:")
        if descriptor.size > MAX_DOCUMENT:
            raise InvalidArgument(f"{what} ({descriptor.digest}) is larger than {MAX_DOCUMENT} bytes")
        data = self._read_document(f"blobs/sha256/{hex_}", what)
        if len(data) != descriptor.size:
            raise InvalidArgument(
                f"{what} {descriptor.digest} is {len(data)} bytes, its descriptor says {descriptor.size}"
            )
        self._content.write_bytes(data, self._lease, descriptor.digest)
        return data

    def _resolve_manifest(self, descriptor: oci.Descriptor, what: str, depth: int) -> oci.Descriptor:
        """Follow (nested) indexes down to this platform's image manifest."""
        if descriptor.media_type in oci.MANIFEST_TYPES:
            return descriptor
        if descriptor.media_type not in oci.INDEX_TYPES:
            raise InvalidArgument(f"{what} has unsupported media type {descriptor.media_type!r}")
        if depth >= MAX_INDEX_DEPTH:
            raise InvalidArgument(f"{what}: indexes are nested more than {MAX_INDEX_DEPTH} deep")
        entries = oci.parse_index(self._json_blob(descriptor, what), what)
        for position, entry in enumerate(entries):
            if self._platform_matches(entry):
                return self._resolve_manifest(entry, f"{what} entry {position}", depth + 1)
        offered = sorted(
            {f"{e.platform.get('os', '?')}/{e.platform.get('architecture', '?')}" for e in entries}
        )
        raise InvalidArgument(
            f"{what} has no manifest for {'/'.join(self._platform)} (it has {', '.join(offered) or 'none'})"
        )

    def _stage_oci_image(self, descriptor: oci.Descriptor, references: tuple[Reference, ...]) -> StagedImage:
        what = f"manifest {descriptor.digest}"
        manifest = oci.parse_manifest(self._json_blob(descriptor, what), what)
        config_bytes = self._json_blob(manifest.config, f"{what} config")
        parsed = oci.parse_config(config_bytes)
        if len(manifest.layers) != len(parsed.diff_ids):
            raise InvalidArgument(
                f"{what} lists {len(manifest.layers)} layers but its config has "
                f"{len(parsed.diff_ids)} diff ids"
            )
        layers = tuple(
            self._stage_layer(
                f"blobs/sha256/{layer.digest.removeprefix('sha256:')}",
                diff_id,
                layer.digest,
                layer.size,
                layer.media_type,
            )
            for layer, diff_id in zip(manifest.layers, parsed.diff_ids)
        )
        return StagedImage(
            id=manifest.config.digest,
            config_digest=manifest.config.digest,
            manifest_digest=descriptor.digest,
            parsed=parsed,
            layers=layers,
            references=references,
        )

    # -- layers -----------------------------------------------------------------------

    def _stage_layer(
        self, path: str, diff_id: str, blob_digest: str, size: int, media_type: str
    ) -> StagedLayer:
        """Store a layer's blob and put its directory in place, checking both digests."""
        key = (path, diff_id)
        if key in self._staged_layers:
            return self._staged_layers[key]
        unpacked: UnpackedLayer | None = None
        with self._open(path, f"layer {diff_id}") as source, self._content.writer(self._lease) as blob:
            tee = _Tee(source, blob.write)
            try:
                if self._layers.acquire(diff_id, self._lease):
                    # Already unpacked: only prove the archive's layer is the same one.
                    plain, compression = decompressed(cast(Readable, tee))
                    actual = _hash_all(plain)
                else:
                    unpacked = self._layers.unpack(cast(Readable, tee))
                    actual, compression = unpacked.diff_id, unpacked.compression
                tee.drain()
                if actual != diff_id:
                    raise InvalidArgument(
                        f"layer {path} has diff id {actual}, but its image config says {diff_id}"
                    )
                if size >= 0 and blob.size != size:
                    raise InvalidArgument(
                        f"layer {path} is {blob.size} bytes, its descriptor says {size}"
                    )
                digest = blob.commit(blob_digest)
                if unpacked is not None:
                    self._layers.commit(unpacked, self._lease)
            except BaseException:
                if unpacked is not None:
                    self._layers.discard(unpacked)
                raise
        layer_size = unpacked.size if unpacked is not None else self._layers.size_of(diff_id)
        staged = StagedLayer(diff_id, digest, media_type or _layer_media_type(compression), layer_size)
        self._staged_layers[key] = staged
        return staged


def _hash_all(plain: Readable) -> str:
    digest = hashlib.sha256()
    try:
        while chunk := plain.read(_CHUNK):
            digest.update(chunk)
    except (OSError, EOFError) as exc:
        raise InvalidArgument(f"layer's compressed stream is corrupt: {exc}") from None
    return "sha256:" + digest.hexdigest()


def _layer_media_type(compression: str) -> str:
    if not compression:
        return oci.OCI_LAYER
    if compression == "gzip":
        return oci.OCI_LAYER_GZIP
    return f"{oci.OCI_LAYER}+{compression}"


def _reference(text: str, what: str) -> Reference:
    try:
        return parse_tagged(text)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{what}: {exc}") from None


def _names(descriptor: oci.Descriptor) -> tuple[Reference, ...]:
    full = descriptor.annotations.get(oci.ANNOTATION_CONTAINERD_NAME)
    if full:
        return (_reference(full, f"annotation {oci.ANNOTATION_CONTAINERD_NAME}"),)
    ref_name = descriptor.annotations.get(oci.ANNOTATION_REF_NAME, "")
    # A bare tag ("1.36") does not say which repository it belongs to: leave it untagged.
    if any(mark in ref_name for mark in ":/@"):
        return (_reference(ref_name, f"annotation {oci.ANNOTATION_REF_NAME}"),)
    return ()


def stage_load(
    spool: Path, content: ContentStore, layers: LayerStore, lease: Lease
) -> list[StagedImage]:
    reader = ArchiveReader(spool, content, layers, lease)
    try:
        return reader.stage()
    finally:
        reader.close()
