"""The container's cgroup, behind one interface with a v1 and a v2 implementation.

Owns: the `Cgroup` interface the shim uses (create, set_resources, join, pids, kill, freeze,
thaw, oom_kills, remove, and the `exists`/`paths` view `pallet-shim delete` needs), choosing the implementation by what the
host has (`open_cgroup`), and `destroy` (kill what is left, then remove). Must not: know
how a limit is written (`pallet.shim.cgroups.limits` and each implementation do), or be imported by the
daemon (only the shim knows the cgroup layout; the daemon asks `pallet-shim delete`).

A cgroup groups processes for accounting and limits. A host is cgroup v2 when
/sys/fs/cgroup itself is a cgroup2 filesystem (it has `cgroup.controllers` at its root):
one tree (`pallet.shim.cgroups.v2`). Otherwise it is v1, or v1 with a cgroup2 mount
beside it (hybrid): one tree per controller (`pallet.shim.cgroups.v1`). Every failure is
raised as `CgroupError` (a FailedPrecondition naming the path and the kernel's reason):
a container that cannot get its cgroup does not start.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Protocol

from pallet.shim.api.files import check_cgroup_path
from pallet.shim.api.spec import Resources
from pallet.shim.cgroups.fs import CgroupError
from pallet.shim.cgroups.v1 import V1Cgroup, hierarchies
from pallet.shim.cgroups.v2 import V2Cgroup

__all__ = ["Cgroup", "CgroupError", "NoCgroup", "V1Cgroup", "V2Cgroup", "destroy", "open_cgroup"]

V2_ROOT = "/sys/fs/cgroup"


class Cgroup(Protocol):
    """One container's cgroup on this host."""

    relative: str  # e.g. "pallet/<id>", relative to the cgroup root (each hierarchy's on v1)
    version: int  # 1 or 2; 0 for no cgroup

    def create(self) -> None:
        """Make the cgroup (with its parents) ready to take processes; nothing is left when
        this raises."""
        ...

    def set_resources(self, resources: Resources, *, live: bool = False) -> None:
        """Write the limits (the spec's linux.resources) into the cgroup: once the init
        has built the container, before its program runs; `live`, to a running container's (`update`): every
        value written, and what was there put back when one is refused."""
        ...

    def oom_kills(self) -> int:
        """How many processes the OOM killer has killed in the cgroup (0: unknown)."""
        ...

    def join(self, pid: int) -> None:
        """Move `pid` into the cgroup (a process that has exited already is not an error)."""
        ...

    def pids(self) -> list[int]:
        """Every process in the cgroup and below it."""
        ...

    def kill(self, signum: int = signal.SIGKILL) -> list[int]:
        """Send `signum` to every process in it; return the pids that were there."""
        ...

    def remove(self, timeout: float = 2.0) -> list[str]:
        """Remove the cgroup, waiting up to `timeout` for the kernel to let go of exiting
        processes; return the directories still busy then."""
        ...

    def freeze(self) -> None:
        """Stop every process in it (the kernel's freezer), returning once they are all
        stopped; nothing is left frozen when this raises."""
        ...

    def thaw(self) -> None:
        """Let the processes of a frozen cgroup run again."""
        ...

    def paths(self) -> list[str]:
        """The cgroup's directories that exist (one per hierarchy on v1)."""
        ...

    def exists(self) -> bool: ...


class NoCgroup:
    """A container without a cgroup (a spec with an empty cgroup path)."""

    relative = ""
    version = 0

    def create(self) -> None:
        pass

    def set_resources(self, resources: Resources, *, live: bool = False) -> None:
        if resources != Resources():
            raise CgroupError("the container has no cgroup (its spec names none): it cannot have limits")

    def oom_kills(self) -> int:
        return 0

    def join(self, pid: int) -> None:
        pass

    def pids(self) -> list[int]:
        return []

    def kill(self, signum: int = signal.SIGKILL) -> list[int]:
        return []

    def remove(self, timeout: float = 2.0) -> list[str]:
        return []

    def freeze(self) -> None:
        raise CgroupError("the container has no cgroup (its spec names none): it cannot be frozen")

    def thaw(self) -> None:
        pass

    def paths(self) -> list[str]:
        return []

    def exists(self) -> bool:
        return False


def open_cgroup(
    relative: str, *, root: str = V2_ROOT, mountinfo: str = "/proc/self/mountinfo"
) -> Cgroup:
    """The cgroup `relative` on this host: v2 when `root` is cgroup2, else v1."""
    if not relative:
        return NoCgroup()
    check_cgroup_path(relative)
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return V2Cgroup(relative, root)
    try:
        with open(mountinfo, "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError as exc:
        raise CgroupError(f"cgroup: cannot read {mountinfo}: {exc.strerror or exc}") from None
    return V1Cgroup(relative, hierarchies(text))


def destroy(cgroup: Cgroup, timeout: float = 5.0) -> tuple[list[int], list[str]]:
    """SIGKILL whatever is in the cgroup until it is empty, and remove it.

    Returns (the pids killed, the directories still busy when `timeout` ran out). A
    process forked while the others were signalled is caught by the next round.
    """
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while True:
        if cgroup.pids():
            killed.update(cgroup.kill(signal.SIGKILL))
        left = cgroup.remove(max(0.0, min(1.0, deadline - time.monotonic())))
        if not left or time.monotonic() >= deadline:
            return sorted(killed), left
