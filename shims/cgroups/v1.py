"""The container's cgroup on cgroup v1: one directory in every v1 hierarchy.

Owns: finding the v1 hierarchies (from mountinfo) and the controllers each one carries,
creating `<hierarchy>/<relative>` in each (with the cpuset values a v1 cpuset cgroup
needs before it accepts a process), moving processes in, listing and killing them,
removing the directories, freezing and thawing them (the freezer controller), setting the
limits (the writes `pallet.shim.cgroups.limits` plans, each in its controller's
hierarchy). Must not: enable controllers in the cgroup2 mount
of a hybrid host.

On v1 every hierarchy is its own tree with its own controllers (`cpu`, `memory`, ... or
several co-mounted, e.g. `cpu,cpuacct`), plus named hierarchies without controllers
(`name=systemd`); a process is in exactly one cgroup of each. A hybrid host also mounts
cgroup2 (usually at /sys/fs/cgroup/unified) with no controllers bound to it: not the
container's v2 tree for limits, but systemd tracks processes there, so the container gets a
directory in it too (as runc does in hybrid mode): otherwise its processes would count as
whoever started the shim (palletd's unit).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from pallet.shim.api.spec import Resources
from pallet.shim.cgroups import fs, limits

#: The v1 controllers a kernel may have; anything else in a cgroup mount's super options
#: is a mount option (rw, clone_children, release_agent=...), except `name=...`.
CONTROLLERS = frozenset({
    "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory",
    "misc", "net_cls", "net_prio", "perf_event", "pids", "rdma",
})

#: Seconds a freeze may take before it is given up (and thawed again).
FREEZE_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """One mounted v1 hierarchy."""

    mount: str  # e.g. /sys/fs/cgroup/memory
    controllers: tuple[str, ...]  # ("cpu", "cpuacct"), ("name=systemd",); () for cgroup2


def hierarchies(mountinfo: str) -> list[Hierarchy]:
    """The v1 hierarchies in a mountinfo text (/proc/self/mountinfo), one per hierarchy,
    and a hybrid host's cgroup2 mount (with no controllers)."""
    found: dict[str, Hierarchy] = {}
    for line in mountinfo.splitlines():
        pre, _, post = line.partition(" - ")
        fields, tail = pre.split(), post.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        controllers = () if tail[0] == "cgroup2" else tuple(
            o for o in tail[2].split(",") if o in CONTROLLERS or o.startswith("name=")
        )
        # The same hierarchy may be mounted twice; its device number identifies it.
        found.setdefault(fields[2], Hierarchy(_unescape(fields[4]), controllers))
    return sorted(found.values(), key=lambda h: h.mount)


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")


class V1Cgroup:
    """The container's cgroup `relative` (e.g. "pallet/<id>") in every v1 hierarchy."""

    version = 1

    def __init__(
        self,
        relative: str,
        hierarchies: list[Hierarchy],
        *,
        mkdir: fs.Mkdir = os.mkdir,
        rmdir: fs.Rmdir = os.rmdir,
    ) -> None:
        self.relative = relative
        self.hierarchies = list(hierarchies)
        self._mkdir = mkdir
        self._rmdir = rmdir

    def _dirs(self) -> list[str]:
        return [os.path.join(h.mount, self.relative) for h in self.hierarchies]

    def controller_path(self, controller: str) -> str:
        """The container's directory in the hierarchy that carries `controller`."""
        for h in self.hierarchies:
            if controller in h.controllers:
                return os.path.join(h.mount, self.relative)
        raise fs.CgroupError(
            f"cgroup: no v1 hierarchy with the {controller} controller is mounted"
        )

    def create(self) -> None:
        if not self.hierarchies:
            raise fs.CgroupError(
                "cgroup: no cgroup hierarchy is mounted (neither cgroup2 at /sys/fs/cgroup "
                "nor any cgroup v1 hierarchy): mount the cgroup filesystems first"
            )
        made: list[str] = []
        try:
            for h in self.hierarchies:
                path = os.path.join(h.mount, self.relative)
                made.extend(fs.makedirs(path, self._mkdir, self._rmdir))
                if "cpuset" in h.controllers:
                    _fill_cpuset(path, h.mount)
        except BaseException:
            fs.undo(made, self._rmdir)  # nothing half-made
            raise

    def set_resources(self, resources: Resources, *, live: bool = False) -> None:
        """Write the limits, each into the hierarchy of its controller; `live`: a running
        container's, every value written and put back on a failure."""

        def exists(controller: str, name: str) -> bool:
            try:
                return os.path.exists(os.path.join(self.controller_path(controller), name))
            except fs.CgroupError:
                return False

        def current_memsw() -> int:
            path = os.path.join(self.controller_path("memory"), "memory.memsw.limit_in_bytes")
            try:
                return int(fs.read(path, "read").strip())
            except ValueError:
                return -1

        writes = limits.v1_writes(resources, full=live, exists=exists, current_memsw=current_memsw)
        limits.apply(writes, self.controller_path, rollback=live)

    def oom_kills(self) -> int:
        try:
            return limits.oom_kills_v1(self.controller_path("memory"))
        except fs.CgroupError:
            return 0

    def join(self, pid: int) -> None:
        for path in self._dirs():
            if not fs.join(path, pid):
                return

    def pids(self) -> list[int]:
        # Every process of the container is in each hierarchy; one answer is enough.
        for path in self._dirs():
            if os.path.isdir(path):
                return fs.procs(path)
        return []

    def kill(self, signum: int = signal.SIGKILL) -> list[int]:
        return fs.signal_all(self.pids(), signum)

    def remove(self, timeout: float = 2.0) -> list[str]:
        return fs.remove(self._dirs(), timeout, self._rmdir)

    def freeze(self, timeout: float = FREEZE_TIMEOUT) -> None:
        """Stop every process of the cgroup (the freezer controller): written FROZEN,
        then read back until the kernel says FROZEN (FREEZING while tasks are caught; the
        write is repeated, as runc does, for tasks that were forking). Thawed again and
        refused when it does not settle within `timeout`."""
        state = os.path.join(self.controller_path("freezer"), "freezer.state")
        fs.write(state, "FROZEN", "freeze")
        if not fs.wait_until(lambda: fs.read(state, "read").strip() == "FROZEN", timeout,
                             retry=lambda: fs.write(state, "FROZEN", "freeze")):
            fs.write(state, "THAWED", "thaw")
            raise fs.CgroupError(f"cgroup: {state} did not reach FROZEN within {timeout:g}s")

    def thaw(self) -> None:
        state = os.path.join(self.controller_path("freezer"), "freezer.state")
        fs.write(state, "THAWED", "thaw")
        fs.wait_until(lambda: fs.read(state, "read").strip() == "THAWED", FREEZE_TIMEOUT)

    def paths(self) -> list[str]:
        return [p for p in self._dirs() if os.path.isdir(p)]

    def exists(self) -> bool:
        return bool(self.paths())


def _fill_cpuset(path: str, mount: str) -> None:
    """A new v1 cpuset cgroup refuses processes until its cpus and mems are set: copy them
    from the nearest ancestor that has them (within this hierarchy)."""
    for name in ("cpuset.cpus", "cpuset.mems"):
        file = os.path.join(path, name)
        if fs.read(file, "read").strip():
            continue
        value = ""
        ancestor = path
        while not value and ancestor != mount:
            ancestor = os.path.dirname(ancestor)
            value = fs.read(os.path.join(ancestor, name), "read").strip()
        if not value:
            raise fs.CgroupError(f"cgroup: {os.path.join(mount, name)} is empty: no cpus or mems to give")
        # Top down: a cgroup's cpus must be a subset of its parent's.
        below = []
        current = path
        while current != ancestor:
            below.append(current)
            current = os.path.dirname(current)
        for directory in reversed(below):
            target = os.path.join(directory, name)
            if not fs.read(target, "read").strip():
                fs.write(target, value, f"set {name} of")
