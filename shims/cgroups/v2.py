"""The container's cgroup on cgroup v2: one directory in the unified tree.

Owns: creating `<root>/<relative>` with the controllers pallet needs enabled on the way
down, moving processes in, listing them, killing them (`cgroup.kill`, or a signal to
each), removing the directory, freezing and thawing it (`cgroup.freeze`), and setting its
limits (the writes `pallet.shim.cgroups.limits` plans). Must not: write anything of a cgroup above the container's except `cgroup.subtree_control`.

On v2 there is one tree; a cgroup has the controllers its parent lists in
`cgroup.subtree_control` (its own `cgroup.controllers`). Two kernel rules shape create:
a controller can be enabled in a cgroup's subtree_control only if the cgroup has it
itself, so they are enabled from the root down; and, except at the root, a cgroup that
has controllers enabled for its children may not hold processes itself ("no internal
processes"), so a parent with processes of its own cannot give its children any.
cpuset needs no values copied here: an empty cpuset.cpus on v2 means the parent's.
"""

from __future__ import annotations

import errno
import os
import signal

from pallet.shim.api.spec import Resources
from pallet.shim.cgroups import fs, limits

#: Controllers the container's cgroup gets where the host has them (the limits need them:
#: --cpus/--cpu-shares, --memory, --pids-limit, --blkio-weight, --cpuset-cpus).
WANTED = ("cpu", "cpuset", "io", "memory", "pids")
#: Seconds a freeze may take before it is given up (and thawed again).
FREEZE_TIMEOUT = 5.0


class V2Cgroup:
    """The container's cgroup `relative` (e.g. "pallet/<id>") under the v2 `root`."""

    version = 2

    def __init__(
        self,
        relative: str,
        root: str = "/sys/fs/cgroup",
        *,
        mkdir: fs.Mkdir = os.mkdir,
        rmdir: fs.Rmdir = os.rmdir,
    ) -> None:
        self.relative = relative
        self.root = root
        self.path = os.path.join(root, relative)
        self._mkdir = mkdir
        self._rmdir = rmdir

    def create(self) -> None:
        made: list[str] = []
        try:
            current = self.root
            for part in self.relative.split("/"):
                self._enable_for_children(current)
                current = os.path.join(current, part)
                made.extend(fs.makedirs(current, self._mkdir, self._rmdir))
        except BaseException:
            fs.undo(made, self._rmdir)  # nothing half-made
            raise

    def _enable_for_children(self, directory: str) -> None:
        """Enable in `directory`'s subtree_control each wanted controller it has."""
        have = fs.read(os.path.join(directory, "cgroup.controllers"), "read").split()
        control = os.path.join(directory, "cgroup.subtree_control")
        enabled = fs.read(control, "read").split()
        missing = [c for c in WANTED if c in have and c not in enabled]
        if not missing:
            return
        if directory != self.root and fs.procs_here(directory):
            raise self._internal_processes(directory, missing)
        # One write: the kernel enables the whole list or none of it.
        try:
            fs.write_raw(control, " ".join(f"+{c}" for c in missing))
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise self._internal_processes(directory, missing) from None
            raise fs.error(f"enable {', '.join(missing)} in", control, exc) from None

    def _internal_processes(self, directory: str, controllers: list[str]) -> fs.CgroupError:
        return fs.CgroupError(
            f"cgroup: cannot enable {', '.join(controllers)} in "
            f"{os.path.join(directory, 'cgroup.subtree_control')}: {directory} has processes "
            "of its own, and cgroup v2 gives child cgroups controllers only from a cgroup "
            "without processes (the \"no internal processes\" rule). Move those processes "
            "into a child cgroup, or give palletd a --cgroup-parent whose ancestors hold no "
            "processes"
        )

    def set_resources(self, resources: Resources, *, live: bool = False) -> None:
        """Write the limits into the cgroup (its controllers were enabled by create);
        `live`: a running container's, every value written and put back on a failure."""
        writes = limits.v2_writes(
            resources, full=live, exists=lambda name: os.path.exists(os.path.join(self.path, name))
        )
        limits.apply(writes, lambda controller: self.path, rollback=live)

    def oom_kills(self) -> int:
        return limits.oom_kills_v2(self.path)

    def join(self, pid: int) -> None:
        fs.join(self.path, pid)

    def pids(self) -> list[int]:
        return fs.procs(self.path)

    def kill(self, signum: int = signal.SIGKILL) -> list[int]:
        pids = self.pids()
        kill_file = os.path.join(self.path, "cgroup.kill")
        if signum == signal.SIGKILL and os.path.exists(kill_file):
            # Linux >= 5.14: the kernel kills the whole subtree at once, forks included.
            fs.write(kill_file, "1", "kill the processes of")
            return pids
        return fs.signal_all(pids, signum)

    def remove(self, timeout: float = 2.0) -> list[str]:
        return fs.remove([self.path], timeout, self._rmdir)

    def freeze(self, timeout: float = FREEZE_TIMEOUT) -> None:
        """Stop every process of the cgroup (`cgroup.freeze`, Linux >= 5.2), returning
        once `cgroup.events` says `frozen 1`; thawed again and refused when that does not
        come within `timeout`."""
        control = os.path.join(self.path, "cgroup.freeze")
        if not os.path.exists(control):
            raise fs.CgroupError(
                f"cgroup: {control} does not exist: this kernel cannot freeze a cgroup v2 "
                "(Linux 5.2 or later can); commit with --pause=false"
            )
        fs.write(control, "1", "freeze")
        if not fs.wait_until(lambda: self._frozen() is True, timeout):
            fs.write(control, "0", "thaw")
            raise fs.CgroupError(f"cgroup: {self.path} did not freeze within {timeout:g}s")

    def thaw(self) -> None:
        fs.write(os.path.join(self.path, "cgroup.freeze"), "0", "thaw")
        fs.wait_until(lambda: self._frozen() is False, FREEZE_TIMEOUT)

    def _frozen(self) -> bool | None:
        for line in fs.read(os.path.join(self.path, "cgroup.events"), "read").splitlines():
            key, _, value = line.partition(" ")
            if key == "frozen":
                return value.strip() == "1"
        return None

    def paths(self) -> list[str]:
        return [self.path] if os.path.isdir(self.path) else []

    def exists(self) -> bool:
        return os.path.isdir(self.path)
