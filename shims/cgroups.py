"""One cgroup per container, on cgroup v1 (every mounted hierarchy) and cgroup v2.

Owns: finding the hierarchies, creating `<hierarchy>/<cgroup_path>`, moving a process into
it, listing its processes and removing it. Must not: set resource limits (nothing asks
for them yet) or touch cgroups it did not create.

A cgroup groups processes for accounting and limits; on v1 every controller has its own
tree (hierarchy), on v2 there is one tree. Hierarchies that refuse us are skipped: a
container without a `blkio` cgroup still runs.
"""

from __future__ import annotations

import errno
import os
import time

_V2_ROOT = "/sys/fs/cgroup"


def hierarchies() -> list[str]:
    """Mount points of the cgroup hierarchies to use, one per hierarchy."""
    if os.path.exists(os.path.join(_V2_ROOT, "cgroup.controllers")):
        return [_V2_ROOT]
    found: dict[str, str] = {}
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        pre, _, post = line.partition(" - ")
        fields, tail = pre.split(), post.split()
        if len(fields) < 5 or not tail or tail[0] not in ("cgroup", "cgroup2"):
            continue
        # The same hierarchy can be mounted twice; its device number identifies it.
        found.setdefault(fields[2], fields[4].replace("\\040", " "))
    return sorted(found.values())


def _enable_v2_controllers(root: str, relative: str) -> None:
    """On v2, a child only gets the controllers its ancestors delegate via subtree_control."""
    try:
        with open(os.path.join(root, "cgroup.controllers")) as f:
            available = f.read().split()
    except OSError:
        return
    current = root
    for part in [p for p in relative.split("/") if p]:
        for name in available:
            try:
                with open(os.path.join(current, "cgroup.subtree_control"), "w") as f:
                    f.write(f"+{name}")
            except OSError:
                pass  # a controller that cannot be delegated is simply not used
        current = os.path.join(current, part)
        os.makedirs(current, exist_ok=True)


def _fill_cpuset(path: str) -> None:
    """A v1 cpuset cgroup refuses processes until it has cpus and mems; copy the parent's."""
    for name in ("cpuset.cpus", "cpuset.mems"):
        file = os.path.join(path, name)
        if not os.path.exists(file):
            return
        with open(file) as f:
            if f.read().strip():
                continue
        parent = os.path.dirname(path)
        _fill_cpuset(parent)
        with open(os.path.join(parent, name)) as f:
            value = f.read().strip()
        with open(file, "w") as f:
            f.write(value)


def create(relative: str) -> list[str]:
    """Create the container's cgroup in every usable hierarchy; return the directories."""
    relative = relative.strip("/")
    if not relative:
        return []
    made = []
    for root in hierarchies():
        path = os.path.join(root, relative)
        try:
            if root == _V2_ROOT:
                _enable_v2_controllers(root, relative)
            os.makedirs(path, exist_ok=True)
            _fill_cpuset(path)
        except OSError:
            continue
        made.append(path)
    return made


def join(paths: list[str], pid: int) -> None:
    """Move `pid` into each cgroup; a hierarchy that refuses is skipped, not fatal."""
    for path in paths:
        try:
            with open(os.path.join(path, "cgroup.procs"), "w") as f:
                f.write(str(pid))
        except OSError:
            continue


def pids(paths: list[str]) -> list[int]:
    """Every process in the container's cgroup (from the first hierarchy that answers)."""
    for path in paths:
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                return [int(line) for line in f.read().split()]
        except (OSError, ValueError):
            continue
    return []


def remove(paths: list[str], timeout: float = 2.0) -> list[str]:
    """Remove the cgroups; return those still present (busy) when `timeout` ran out."""
    deadline = time.monotonic() + timeout
    left = list(paths)
    while left:
        still = []
        for path in left:
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                # EBUSY: the last process is exiting but not yet reaped everywhere.
                if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                    continue
                still.append(path)
        left = still
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    return left
