"""system df arithmetic of images: each image's bytes and the part another image shares."""

from __future__ import annotations

from pallet.daemon.images.housekeeping import image_usage, usage_by_image
from pallet.daemon.images.model import Image, ImageConfig, ImageUsage


def _image(image_id: str, *layers: str) -> Image:
    return Image(id=image_id, repo_tags=(), repo_digests=(), created_ns=0, size=0,
                 config=ImageConfig(), layers=layers)


def test_shared_layers_and_blobs_count_in_each_image_and_as_shared() -> None:
    base = _image("sha256:base", "L1")
    app = _image("sha256:app", "L1", "L2")
    layer_sizes = {"L1": 1000, "L2": 300}
    blob_sizes = {"cfg-base": 5, "cfg-app": 7, "gz1": 400, "gz2": 100}
    blobs = {"sha256:base": {"cfg-base", "gz1"}, "sha256:app": {"cfg-app", "gz1", "gz2"}}
    out = usage_by_image([base, app], layer_sizes, blob_sizes, blobs, {"sha256:app": 2})
    assert out == [
        ImageUsage("sha256:base", size=1405, shared_size=1400, containers=0),
        ImageUsage("sha256:app", size=1807, shared_size=1400, containers=2),
    ]
    # The summary: every byte once; only what no image in use holds is reclaimable.
    summary = image_usage([base, app], {"sha256:app"}, layer_sizes, blob_sizes,
                          blobs["sha256:app"])
    assert (summary.size, summary.reclaimable) == (1812, 5)


def test_an_image_alone_shares_nothing_and_a_missing_size_counts_zero() -> None:
    only = _image("sha256:only", "L1", "gone")
    [usage] = usage_by_image([only], {"L1": 10}, {}, {}, {})
    assert usage == ImageUsage("sha256:only", size=10, shared_size=0, containers=0)
