"""What a dead shim leaves on the host, and removing it.

Owns: cleaning up after a container whose shim died without doing it itself (kill -9, OOM
killer): any process still in the container's cgroup is killed (a container whose
supervisor died is dead: nobody would collect its output or exit), its cgroups are removed,
and its shim socket is unlinked. Must not: touch a container whose shim still answers (the
shim owns those), or anything outside the container's cgroup and the run root.

The shim normally removes its socket and cgroups itself when it shuts down, and its
container's init dies with it (PR_SET_PDEATHSIG), taking the pid namespace along; this is
the backstop for what is left when a shim could not clean up.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import structlog

from pallet.shim import cgroups
from pallet.shim.api import sockpath

log = structlog.get_logger(__name__)


def container_cgroups(cgroup_path: str) -> list[str]:
    """The container's cgroup directory in every hierarchy where it exists."""
    if not cgroup_path:
        return []
    found = []
    for root in cgroups.hierarchies():
        path = os.path.join(root, cgroup_path.lstrip("/"))
        if os.path.isdir(path):
            found.append(path)
    return found


def clean_after_dead_shim(run_root: Path, container_id: str, cgroup_path: str) -> list[int]:
    """Kill what runs in the container's cgroups, remove them and the shim's socket.

    Returns the pids that were still running (normally none). Blocking: run off the loop.
    """
    dirs = container_cgroups(cgroup_path)
    killed: list[int] = []
    for _ in range(3):
        pids = cgroups.pids(dirs)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        # Killed processes leave the cgroup once reaped (by the kernel, for orphans of a
        # dead pid namespace); remove() below waits for that.
        cgroups.remove(dirs, timeout=2.0)
        dirs = [d for d in dirs if os.path.isdir(d)]
    left = cgroups.remove(dirs, timeout=2.0)
    if left:
        log.warning("cgroups of a dead shim still busy", container_id=container_id, left=left)
    try:
        os.unlink(sockpath.shim_socket(str(run_root), container_id))
    except FileNotFoundError:
        pass
    if killed:
        log.warning(
            "killed processes left by a dead shim", container_id=container_id, pids=killed
        )
    return sorted(set(killed))


def shim_sockets(run_root: Path) -> dict[str, Path]:
    """Container id -> shim socket, for every shim socket in the run root."""
    directory = run_root / sockpath.SHIMS_DIR
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return {}
    return {p.name[: -len(".sock")]: p for p in entries if p.name.endswith(".sock")}
