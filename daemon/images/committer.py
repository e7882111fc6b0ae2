"""`commit`: a container's changes become the top layer of a new image.

Owns: staging a committed image: the layer tar the caller writes streamed (through a
pipe, never whole in memory) into the safe extractor and, byte for byte, into the layer
blob, whose digest must be the diff id the extractor computed before it is committed;
then the child config (the base's history and layers plus this one) and an OCI manifest
listing the base's layer blobs and the new one. Must not: write records or publish events
(the manager commits what this stages), know what a container is, or run on the event
loop (it blocks).

A layer of no entries is no layer: the image gets a history entry marked `empty_layer`
and the base's layers, as docker's commit of an unchanged container.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Sequence
from typing import IO

from pallet.daemon.images import oci
from pallet.daemon.images.content import ContentStore
from pallet.daemon.images.layers import LayerStore, UnpackedLayer
from pallet.daemon.images.leases import Lease
from pallet.daemon.images.model import ImageConfig
from pallet.daemon.images.records import StagedImage, StagedLayer
from pallet.daemon.images.reference import Reference
from pallet.v1.errors import FailedPrecondition

_PIPE_BUFFER = 1 << 20


class _Writer(threading.Thread):
    """Runs the caller's layer writer into the pipe's write end; keeps its result."""

    def __init__(self, write: Callable[[IO[bytes]], int], fd: int) -> None:
        super().__init__(name="commit-layer-writer", daemon=True)
        self._write = write
        self._fd = fd
        self.entries = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with os.fdopen(self._fd, "wb", buffering=_PIPE_BUFFER) as out:
                self.entries = self._write(out)
        except BaseException as exc:  # noqa: BLE001 - handed to the staging thread
            self.error = exc


def _unpack_from(
    write: Callable[[IO[bytes]], int], layers: LayerStore, tee: Callable[[bytes], None]
) -> tuple[UnpackedLayer, int]:
    """The caller's tar, unpacked as it is written; (the layer, its entry count)."""
    read_fd, write_fd = os.pipe()
    try:
        # A pipe holds 64 KiB by default: the two threads would take turns every 64 KiB.
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, _PIPE_BUFFER)
    except OSError:
        pass  # above /proc/sys/fs/pipe-max-size: the default works, only slower
    writer = _Writer(write, write_fd)
    writer.start()
    try:
        with os.fdopen(read_fd, "rb", buffering=_PIPE_BUFFER) as source:
            try:
                unpacked = layers.unpack(source, tee=tee)
            except BaseException:
                source.close()  # the writer fails with EPIPE instead of blocking
                writer.join()
                if writer.error is not None and not isinstance(writer.error, BrokenPipeError):
                    raise writer.error from None  # the cause: what the tar stopped on
                raise
    finally:
        writer.join()
    if writer.error is not None:
        layers.discard(unpacked)
        raise writer.error
    return unpacked, writer.entries


def stage_commit(
    content: ContentStore,
    layers: LayerStore,
    lease: Lease,
    *,
    base_config: bytes,
    base_layers: Sequence[StagedLayer],
    write_layer: Callable[[IO[bytes]], int],
    config: ImageConfig,
    comment: str,
    author: str,
    created_by: str,
    container_id: str,
    references: tuple[Reference, ...],
    now_ns: int,
) -> StagedImage:
    for layer in base_layers:
        # Held from here: an rmi -f of the base meanwhile must not collect them.
        if not (content.acquire(layer.blob_digest, lease) and layers.acquire(layer.diff_id, lease)):
            raise FailedPrecondition(
                f"the container's image lacks its layer {layer.diff_id} on disk: it was "
                "removed meanwhile; the container cannot be committed"
            )
    # The extractor hashes what it hands the blob (the diff id): not hashed twice.
    with content.writer(lease, hashed_by_caller=True, direct=True) as blob:
        unpacked, entries = _unpack_from(write_layer, layers, blob.write)
        new_layers = list(base_layers)
        if entries:
            try:
                # The blob is what was unpacked, or nothing is committed.
                blob_digest = blob.commit(expected=unpacked.diff_id)
                layers.commit(unpacked, lease)
            except BaseException:
                layers.discard(unpacked)
                raise
            new_layers.append(StagedLayer(unpacked.diff_id, blob_digest, oci.OCI_LAYER, unpacked.size))
        else:
            layers.discard(unpacked)
    config_bytes = oci.build_child_config(
        base_config,
        created_ns=now_ns,
        config=config,
        diff_id=unpacked.diff_id if entries else "",
        comment=comment,
        author=author,
        created_by=created_by,
        container_id=container_id,
    )
    config_digest = content.write_bytes(config_bytes, lease)
    manifest = oci.build_manifest(
        oci.Descriptor(oci.OCI_CONFIG, config_digest, len(config_bytes)),
        [
            oci.Descriptor(
                oci.OCI_LAYER_TYPE.get(layer.media_type, layer.media_type),
                layer.blob_digest,
                content.size(layer.blob_digest),
            )
            for layer in new_layers
        ],
    )
    manifest_digest = content.write_bytes(manifest, lease)
    return StagedImage(
        id=config_digest,
        config_digest=config_digest,
        manifest_digest=manifest_digest,
        parsed=oci.parse_config(config_bytes),
        layers=tuple(new_layers),
        references=references,
    )
