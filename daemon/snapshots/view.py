"""A read-only view of a container's filesystem as its image and writable layer make it.

Owns: mounting the writable layer stacked as the top lower layer over the image's layers
(so its whiteouts hide what the container deleted) read-only on a scratch directory,
taking it off however the caller's work ends, and taking off at boot the views a palletd
killed meanwhile left mounted (`remove_leftover_views`). Must not: change the container or its
layers, or be used on the writable layer of a running container (overlayfs leaves a
lower layer that changes under a mount undefined).
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from pallet.v1.errors import FailedPrecondition, Internal


def _mount(target: Path, layers: Sequence[str]) -> None:
    # Read-only overlay of lower layers only: no upper or work dir is touched.
    options = "ro,lowerdir=" + ":".join(layers)
    result = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options, str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise Internal(f"cannot mount the container's filesystem read-only: {result.stderr.strip()}")


def _unmount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)
    try:
        target.rmdir()
    except OSError:
        pass


@contextlib.contextmanager
def read_only_view(writable: Path, lower_dirs: Sequence[str], scratch: Path) -> Iterator[Path]:
    """The merged filesystem, read-only, for the body (blocking: run it on a thread).
    `lower_dirs` top first; `writable` above them when it exists."""
    layers = [str(writable), *lower_dirs] if writable.is_dir() else list(lower_dirs)
    if not layers:
        raise FailedPrecondition("the container has no filesystem (its image and layer are gone)")
    if len(layers) == 1:
        yield Path(layers[0])  # overlayfs needs two layers; one is its own merge
        return
    target = scratch / f"view-{secrets.token_hex(6)}"
    target.mkdir()
    try:
        _mount(target, layers)
        yield target
    finally:
        _unmount(target)


def remove_leftover_views(state_dir: Path) -> None:
    """The views (export's older name too) in a container's state directory that a
    palletd killed while one was mounted left: taken off before anything deletes the
    directory, which must never be walked through a mount."""
    for pattern in ("view-*", "export-*"):
        for entry in state_dir.glob(pattern):
            _unmount(entry)
