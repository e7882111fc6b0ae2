"""Image history and disk-usage arithmetic.

Owns: turning an image config's `history` into entries (newest first, sizes matched to
the layers that non-empty steps made) and summing what images take on disk, each image
alone and all of them, and what a prune could free. Must not: do I/O (the manager reads blobs and sizes and passes them in).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from pallet.daemon.images import oci
from pallet.daemon.images.model import HistoryEntry, Image, ImageUsage, Usage


def history(image: Image, config_bytes: bytes, layer_sizes: Sequence[int]) -> list[HistoryEntry]:
    try:
        doc = json.loads(config_bytes)
    except ValueError:
        doc = {}
    raw = doc.get("history") if isinstance(doc, dict) else None
    steps = [step for step in raw if isinstance(step, dict)] if isinstance(raw, list) else []
    if not steps:
        # No history recorded: one step per layer, as docker shows it.
        steps = [{} for _ in image.layers]
    out: list[HistoryEntry] = []
    sizes = list(layer_sizes)
    for step in steps:
        empty = bool(step.get("empty_layer"))
        size = 0 if empty or not sizes else sizes.pop(0)
        created = step.get("created")
        try:
            created_ns = oci.parse_time(created) if isinstance(created, str) and created else 0
        except Exception:  # noqa: BLE001 - a bad time in history only blanks that column
            created_ns = 0
        out.append(
            HistoryEntry(
                id="<missing>",
                created_ns=created_ns,
                created_by=str(step.get("created_by", "")),
                size=size,
                comment=str(step.get("comment", "")),
                empty_layer=empty,
            )
        )
    out.reverse()
    if out:
        top = out[0]
        out[0] = HistoryEntry(image.id, top.created_ns, top.created_by, top.size, top.comment, top.empty_layer)
    return out


def image_usage(
    images: Sequence[Image],
    in_use: set[str],
    layer_sizes: Mapping[str, int],
    blob_sizes: Mapping[str, int],
    used_blobs: set[str],
) -> Usage:
    """Bytes of every stored layer and blob; reclaimable = what no image in use needs."""
    used_layers = {d for image in images if image.id in in_use for d in image.layers}
    size = sum(layer_sizes.values()) + sum(blob_sizes.values())
    kept = sum(layer_sizes.get(d, 0) for d in used_layers) + sum(blob_sizes.get(b, 0) for b in used_blobs)
    return Usage(len(images), len([i for i in images if i.id in in_use]), size, max(size - kept, 0))


def usage_by_image(
    images: Sequence[Image],
    layer_sizes: Mapping[str, int],
    blob_sizes: Mapping[str, int],
    blobs: Mapping[str, set[str]],
    containers: Mapping[str, int],
) -> list[ImageUsage]:
    """Each image's bytes (its unpacked layers and the blobs its records name) and the part
    of them another image holds too (docker's SharedSize; Size - SharedSize is what
    removing it alone frees)."""
    holders: dict[tuple[str, str], int] = {}
    held = {image.id: ({("layer", d) for d in image.layers}
                       | {("blob", b) for b in blobs.get(image.id, set())}) for image in images}
    for items in held.values():
        for item in items:
            holders[item] = holders.get(item, 0) + 1

    def size_of(item: tuple[str, str]) -> int:
        kind, digest = item
        return (layer_sizes if kind == "layer" else blob_sizes).get(digest, 0)

    return [
        ImageUsage(
            image_id=image.id,
            size=sum(size_of(i) for i in held[image.id]),
            shared_size=sum(size_of(i) for i in held[image.id] if holders[i] > 1),
            containers=containers.get(image.id, 0),
        )
        for image in images
    ]
