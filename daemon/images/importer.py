"""`import`: a root filesystem tar becomes a one-layer image.

Owns: turning a spooled (possibly compressed) rootfs tar into a staged image: the layer
unpacked and in place, its uncompressed tar stored as the layer blob (so its digest is its
diff id), an OCI image config and an OCI manifest. Must not: write records or publish
events (the manager commits what this stages), or run on the event loop (it blocks).
"""

from __future__ import annotations

from pathlib import Path

from pallet.daemon.images import oci
from pallet.daemon.images.content import ContentStore
from pallet.daemon.images.layers import LayerStore
from pallet.daemon.images.leases import Lease
from pallet.daemon.images.model import ImageConfig
from pallet.daemon.images.reference import Reference
from pallet.daemon.images.records import StagedImage, StagedLayer

CREATED_BY = "pallet import"


def stage_import(
    spool: Path,
    content: ContentStore,
    layers: LayerStore,
    lease: Lease,
    *,
    config: ImageConfig,
    message: str,
    references: tuple[Reference, ...],
    now_ns: int,
) -> StagedImage:
    # The extractor hashes what it hands the blob (the diff id): not hashed twice.
    with open(spool, "rb") as raw, content.writer(lease, hashed_by_caller=True, direct=True) as blob:
        unpacked = layers.unpack(raw, tee=blob.write)
        try:
            blob_digest = blob.commit(expected=unpacked.diff_id)
            layers.commit(unpacked, lease)
        except BaseException:
            layers.discard(unpacked)
            raise
        blob_size = blob.size
    config_bytes = oci.build_config(
        created_ns=now_ns,
        config=config,
        diff_ids=[unpacked.diff_id],
        comment=message,
        created_by=CREATED_BY,
    )
    config_digest = content.write_bytes(config_bytes, lease)
    manifest = oci.build_manifest(
        oci.Descriptor(oci.OCI_CONFIG, config_digest, len(config_bytes)),
        [oci.Descriptor(oci.OCI_LAYER, blob_digest, blob_size)],
    )
    manifest_digest = content.write_bytes(manifest, lease)
    return StagedImage(
        id=config_digest,
        config_digest=config_digest,
        manifest_digest=manifest_digest,
        parsed=oci.parse_config(config_bytes),
        layers=(StagedLayer(unpacked.diff_id, blob_digest, oci.OCI_LAYER, unpacked.size),),
        references=references,
    )
