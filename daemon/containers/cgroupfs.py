"""Where a container's cgroup is on this host, as palletd reads it (stats, top).

Owns: finding the cgroup filesystems once (cgroup v2 at /sys/fs/cgroup, or the v1
hierarchies palletd's mountinfo lists, by controller) and naming the directories of one
container's cgroup in them (`CgroupLayout.dirs`), and listing the processes in a cgroup
subtree. Must not: create, change or remove cgroups (the shim does, and only it), or
import the shim's cgroup managers (`pallet.shim.cgroups` is the shim's own).

The container's cgroup is `<cgroup parent>/<id>` under each root (`bundle.cgroup_path`);
on a v1 host every controller has its own tree, and a hybrid host's cgroup2 mount
(/sys/fs/cgroup/unified) carries no controllers, so v1's files are the ones to read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from collections.abc import Mapping

V2_ROOT = "/sys/fs/cgroup"
#: The v1 controllers palletd reads files of (the rest of a mount's options are options).
_CONTROLLERS = frozenset({"blkio", "cpu", "cpuacct", "freezer", "memory", "pids"})


@dataclass(frozen=True, slots=True)
class CgroupDirs:
    """One container's cgroup directories, by what is read there."""

    version: int  # 1 or 2
    cpu: str  # v1: the cpuacct hierarchy's; v2: the one directory
    memory: str
    blkio: str  # v1: blkio; v2: the io controller's files, in the one directory
    pids: str


@dataclass(frozen=True, slots=True)
class CgroupLayout:
    """The cgroup filesystems of this host: v2's root, or v1's mount per controller."""

    version: int  # 1 or 2 (0: no cgroup filesystem found)
    v2_root: str = V2_ROOT
    v1_mounts: Mapping[str, str] = field(default_factory=dict)  # controller -> mount point

    def dirs(self, relative: str) -> CgroupDirs:
        if self.version == 2:
            path = os.path.join(self.v2_root, relative)
            return CgroupDirs(2, path, path, path, path)

        def under(controller: str) -> str:
            mount = self.v1_mounts.get(controller, "")
            return os.path.join(mount, relative) if mount else ""

        return CgroupDirs(1, under("cpuacct"), under("memory"), under("blkio"), under("pids"))

    def procs_dir(self, relative: str) -> str:
        """A directory of the container's whose cgroup.procs lists all its processes."""
        if self.version == 2:
            return os.path.join(self.v2_root, relative)
        for controller in ("pids", "memory", "cpuacct", "freezer"):
            if controller in self.v1_mounts:
                return os.path.join(self.v1_mounts[controller], relative)
        return ""


def detect(root: str = V2_ROOT, mountinfo: str = "/proc/self/mountinfo") -> CgroupLayout:
    """This host's layout: v2 when `root` is a cgroup2 filesystem, else v1's mounts."""
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return CgroupLayout(2, root)
    try:
        with open(mountinfo, "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return CgroupLayout(0)
    return CgroupLayout(1, root, v1_mounts(text))


def v1_mounts(mountinfo: str) -> dict[str, str]:
    """controller -> mount point of each v1 hierarchy in a mountinfo text (the first mount
    of a hierarchy mounted twice)."""
    found: dict[str, str] = {}
    for line in mountinfo.splitlines():
        pre, _, post = line.partition(" - ")
        fields, tail = pre.split(), post.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] != "cgroup":
            continue
        mount = fields[4].replace("\\040", " ")
        for option in tail[2].split(","):
            if option in _CONTROLLERS:
                found.setdefault(option, mount)
    return found


def procs(directory: str) -> list[int]:
    """The processes in the cgroup at `directory` and below it; none when it is gone."""
    found: set[int] = set()
    for dirpath, _dirs, _files in os.walk(directory):
        try:
            with open(os.path.join(dirpath, "cgroup.procs"), "rb") as f:
                found.update(int(word) for word in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue  # removed meanwhile
    return sorted(found)
