"""Container root filesystems as overlayfs snapshots.

Owns: the per-container writable layer (`upper/`, `work/`) and the mount point (`rootfs/`)
inside a container's state directory, and the spec's `Root` for it. Must not:
mount anything on the host. The shim mounts the overlay inside the container's own mount
namespace, so the mount vanishes with the container and a crash leaves nothing mounted.

overlayfs stacks read-only lower directories (the image's unpacked layers, shared by every
container of the image) under one writable upper directory per container.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pallet.shim.api.spec import Root


class OverlaySnapshots:
    """Creates and removes containers' writable layers."""

    driver = "overlay"

    def prepare(self, state_dir: Path, lower_dirs: list[str]) -> Root:
        """Make (or keep) the writable layer of a container; return its overlay spec.

        Writable (`readonly=False`): no option makes a root read-only yet. When
        `--read-only` comes, the daemon's rootfs start step (`containers/start.py`,
        `prepare_rootfs`) will set `readonly` from the container's HostConfig.
        """
        for sub in ("upper", "work", "rootfs"):
            (state_dir / sub).mkdir(mode=0o700 if sub == "work" else 0o755, exist_ok=True)
        return Root(
            path=str(state_dir / "rootfs"),
            layers=tuple(lower_dirs),
            upper_dir=str(state_dir / "upper"),
            work_dir=str(state_dir / "work"),
            readonly=False,
        )

    def size(self, state_dir: Path) -> int:
        """Bytes of what the container wrote (regular files of its writable layer)."""
        total = 0
        for dirpath, _dirs, files in os.walk(state_dir / "upper"):
            for name in files:
                try:
                    total += os.lstat(os.path.join(dirpath, name)).st_size
                except OSError:
                    pass
        return total

    def discard(self, state_dir: Path) -> None:
        """Empty the writable layer (what the container wrote over its image), keeping
        the directories: for a remove on a disk too full to record it otherwise."""
        for sub in ("upper", "work"):
            path = state_dir / sub
            if path.is_dir():
                shutil.rmtree(path, onerror=_force_remove)
                path.mkdir(mode=0o700 if sub == "work" else 0o755)

    def remove(self, state_dir: Path) -> None:
        """Delete the writable layer and everything else in the state directory."""
        if not state_dir.exists():
            return
        # overlayfs leaves work/work owned by root with mode 000; rmtree copes as root.
        shutil.rmtree(state_dir, onerror=_force_remove)


def _force_remove(func: object, path: str, _exc: object) -> None:
    try:
        os.chmod(path, 0o700)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
