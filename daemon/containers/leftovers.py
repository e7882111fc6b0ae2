"""What a dead shim leaves on the host, and having it removed.

Owns: finding shim sockets in the run root, and asking for the cleanup after a container
whose shim died without doing it itself (kill -9, OOM killer): `pallet-shim delete`
(through `ShimLauncher.delete`) kills any process still in the container's cgroup (a
container whose supervisor died is dead: nobody would collect its output or exit),
removes its cgroups and unlinks its shim socket. Must not: know the cgroup layout (only
the shim does), or act on a container whose shim still answers (the shim owns those; the
delete command refuses them too).

The shim normally removes its socket and cgroups itself when it shuts down, and its
container's init dies with it (PR_SET_PDEATHSIG), taking the pid namespace along; this is
the backstop for what is left when a shim could not clean up.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from pallet.v1.errors import PalletError
from pallet.daemon.shims.api import ShimLauncher
from pallet.shim.api import sockpath
from pallet.shim.api.delete import DeleteResult

log = structlog.get_logger(__name__)


async def clean_after_dead_shim(
    launcher: ShimLauncher, container_id: str, bundle_dir: Path, cgroup_path: str
) -> DeleteResult | None:
    """Have the shim's delete command clean up after `container_id`'s dead shim.

    Returns what it did, or None when it failed (logged here: the container is recorded
    as exited either way, and the next cleanup tries again: at the latest its remove, which
    runs this whenever the launcher finds a socket or a cgroup of the container left).
    """
    try:
        result = await launcher.delete(container_id, bundle_dir, cgroup_path)
    except PalletError as exc:
        log.warning("cleanup after a dead shim failed", container_id=container_id, error=str(exc))
        return None
    if result.killed:
        log.warning(
            "killed processes left by a dead shim", container_id=container_id,
            pids=list(result.killed),
        )
    if result.cgroups_left:
        log.warning(
            "cgroups of a dead shim still busy", container_id=container_id,
            left=list(result.cgroups_left),
        )
    return result


def shim_sockets(run_root: Path) -> dict[str, Path]:
    """Container id -> shim socket, for every shim socket in the run root."""
    directory = run_root / sockpath.SHIMS_DIR
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return {}
    return {p.name[: -len(".sock")]: p for p in entries if p.name.endswith(".sock")}
