"""The cgroup managers against fake cgroup trees in a temporary directory.

A fake kernel (`FakeV1` / `FakeV2`) does what the real one does on mkdir and rmdir: a new
cgroup gets its interface files (on v2, `cgroup.controllers` from the parent's
`cgroup.subtree_control`; on v1 cpuset, empty cpus and mems), and rmdir refuses a cgroup
that still has processes or children.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pallet.v1.errors import InvalidArgument
from pallet.shim.cgroups import (
    CgroupError,
    NoCgroup,
    V1Cgroup,
    V2Cgroup,
    destroy,
    open_cgroup,
)
from pallet.shim.cgroups.v1 import hierarchies


def _rmdir(path: str) -> None:
    procs = Path(path, "cgroup.procs")
    if procs.exists() and procs.read_text().strip():
        raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
    if any(p.is_dir() for p in Path(path).iterdir()):
        raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
    for p in Path(path).iterdir():
        p.unlink()
    os.rmdir(path)


class FakeV1:
    """A v1 host: cpu+cpuacct co-mounted, cpuset, memory (mounted twice), pids, blkio,
    devices, freezer, name=systemd, and the hybrid cgroup2 mount at unified."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.mounts = {
            "cpu,cpuacct": "rw,cpu,cpuacct",
            "cpuset": "rw,cpuset",
            "memory": "rw,memory",
            "pids": "rw,pids",
            "blkio": "rw,blkio",
            "devices": "rw,devices",
            "freezer": "rw,freezer",
            "systemd": "rw,xattr,name=systemd",
        }
        lines = []
        for n, (name, opts) in enumerate(self.mounts.items()):
            (base / name).mkdir(parents=True)
            (base / name / "cgroup.procs").write_text("1\n")
            lines.append(f"{30 + n} 23 0:{40 + n} / {base / name} rw,relatime - cgroup cgroup {opts}")
        # The same memory hierarchy mounted a second time (same device), and cgroup2 beside.
        lines.append(f"60 23 0:42 / {base / 'memory-again'} rw - cgroup cgroup rw,memory")
        (base / "unified").mkdir()
        (base / "unified" / "cgroup.controllers").write_text("")
        lines.append(f"61 23 0:99 / {base / 'unified'} rw - cgroup2 cgroup2 rw,nsdelegate")
        lines.append("62 23 0:5 / /proc rw - proc proc rw")
        self.mountinfo = "\n".join(lines) + "\n"
        (base / "cpuset" / "cpuset.cpus").write_text("0-3\n")
        (base / "cpuset" / "cpuset.mems").write_text("0\n")

    def mkdir(self, path: str) -> None:
        os.mkdir(path)
        Path(path, "cgroup.procs").write_text("")
        if path.startswith(str(self.base / "cpuset")):
            Path(path, "cpuset.cpus").write_text("")
            Path(path, "cpuset.mems").write_text("")

    def cgroup(self, relative: str = "pallet/c1") -> V1Cgroup:
        return V1Cgroup(relative, hierarchies(self.mountinfo), mkdir=self.mkdir, rmdir=_rmdir)


class FakeV2:
    """A v2 host like a systemd one: the root (no cpuset.cpus, no cgroup.kill, as on a
    real root) with every controller and processes of its own."""

    CONTROLLERS = "cpuset cpu io memory hugetlb pids rdma misc"

    def __init__(self, base: Path, enabled: str = "") -> None:
        self.root = base / "cgroup"
        self.root.mkdir()
        (self.root / "cgroup.controllers").write_text(self.CONTROLLERS + "\n")
        (self.root / "cgroup.subtree_control").write_text(enabled)
        (self.root / "cgroup.procs").write_text("1\n7\n")
        (self.root / "cpuset.cpus.effective").write_text("0-3\n")

    def mkdir(self, path: str) -> None:
        os.mkdir(path)
        parent = Path(path).parent
        given = (parent / "cgroup.subtree_control").read_text().replace("+", "").split()
        Path(path, "cgroup.controllers").write_text(" ".join(given))
        Path(path, "cgroup.subtree_control").write_text("")
        Path(path, "cgroup.procs").write_text("")
        Path(path, "cgroup.kill").write_text("")
        if "cpuset" in given:
            Path(path, "cpuset.cpus").write_text("")

    def cgroup(self, relative: str = "pallet/c1") -> V2Cgroup:
        return V2Cgroup(relative, str(self.root), mkdir=self.mkdir, rmdir=_rmdir)


# ---- choosing the implementation


def test_a_cgroup2_root_means_v2(tmp_path: Path) -> None:
    fake = FakeV2(tmp_path)
    cgroup = open_cgroup("pallet/c1", root=str(fake.root), mountinfo="/nonexistent")
    assert isinstance(cgroup, V2Cgroup) and cgroup.path == str(fake.root / "pallet/c1")


def test_a_hybrid_host_is_v1_and_its_cgroup2_mount_is_joined_without_controllers(
    tmp_path: Path,
) -> None:
    fake = FakeV1(tmp_path / "fs")
    (tmp_path / "mountinfo").write_text(fake.mountinfo)
    cgroup = open_cgroup("pallet/c1", root=str(fake.base), mountinfo=str(tmp_path / "mountinfo"))
    assert isinstance(cgroup, V1Cgroup)
    mounts = {h.mount: h.controllers for h in cgroup.hierarchies}
    # systemd tracks processes in the unified tree: the container is there too (as runc).
    assert mounts[str(fake.base / "unified")] == ()
    assert str(fake.base / "memory-again") not in mounts  # one hierarchy, counted once
    assert len(mounts) == len(fake.mounts) + 1


def test_v1_keeps_the_controller_names_limits_need(tmp_path: Path) -> None:
    cgroup = FakeV1(tmp_path).cgroup()
    for controller in ("cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer"):
        assert Path(cgroup.controller_path(controller)).parent.parent.is_relative_to(tmp_path)
    assert cgroup.controller_path("cpu") == cgroup.controller_path("cpuacct")  # co-mounted
    assert cgroup.controller_path("cpu") == str(tmp_path / "cpu,cpuacct" / "pallet/c1")
    with pytest.raises(CgroupError, match="hugetlb"):
        cgroup.controller_path("hugetlb")


@pytest.mark.parametrize("bad", ["/pallet/c1", "pallet/../../etc", "pallet//c1", "."])
def test_a_bad_cgroup_path_is_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid cgroup path"):
        open_cgroup(bad)


def test_no_cgroup_path_means_no_cgroup() -> None:
    cgroup = open_cgroup("")
    assert isinstance(cgroup, NoCgroup) and not cgroup.exists() and cgroup.pids() == []


# ---- v1


def test_v1_create_makes_the_cgroup_in_every_hierarchy_and_fills_cpuset(tmp_path: Path) -> None:
    fake = FakeV1(tmp_path)
    cgroup = fake.cgroup()
    cgroup.create()
    assert sorted(cgroup.paths()) == sorted(
        str(tmp_path / m / "pallet/c1") for m in (*fake.mounts, "unified")
    )
    for directory in (tmp_path / "cpuset" / "pallet", tmp_path / "cpuset" / "pallet" / "c1"):
        assert (directory / "cpuset.cpus").read_text() == "0-3"
        assert (directory / "cpuset.mems").read_text() == "0"


def test_v1_join_pids_kill_remove(tmp_path: Path) -> None:
    fake = FakeV1(tmp_path)
    cgroup = fake.cgroup()
    cgroup.create()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        cgroup.join(sleeper.pid)
        for path in cgroup.paths():
            assert Path(path, "cgroup.procs").read_text() == str(sleeper.pid)
        assert cgroup.pids() == [sleeper.pid]
        assert cgroup.remove(timeout=0.05) != []  # busy: a process is in it
        assert cgroup.kill(signal.SIGKILL) == [sleeper.pid]
        assert sleeper.wait(10) == -signal.SIGKILL
    finally:
        sleeper.kill()
        sleeper.wait()
    for path in cgroup.paths():
        Path(path, "cgroup.procs").write_text("")  # the kernel's part once it is reaped
    assert cgroup.remove() == []
    assert not cgroup.exists()
    assert (tmp_path / "memory" / "pallet").is_dir()  # the shared parent stays


def test_v1_create_refused_by_one_hierarchy_raises_and_leaves_nothing(tmp_path: Path) -> None:
    fake = FakeV1(tmp_path)
    (tmp_path / "pids" / "pallet").write_text("a file where the parent cgroup belongs")
    cgroup = fake.cgroup()
    with pytest.raises(CgroupError, match=r"cannot create .*pids/pallet"):
        cgroup.create()
    assert cgroup.paths() == []
    assert not (tmp_path / "cpu,cpuacct" / "pallet").exists()


def test_a_create_that_fails_deep_down_removes_the_levels_it_made(tmp_path: Path) -> None:
    fake = FakeV1(tmp_path)

    def mkdir(path: str) -> None:
        if Path(path).name == "c1":
            raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), path)
        fake.mkdir(path)

    cgroup = V1Cgroup("pallet/deeper/c1", hierarchies(fake.mountinfo), mkdir=mkdir, rmdir=_rmdir)
    with pytest.raises(CgroupError, match=r"cannot create .*blkio/pallet/deeper/c1: File name too long"):
        cgroup.create()
    assert [p for p in tmp_path.glob("*/pallet")] == []


def test_v1_an_empty_cpuset_root_is_an_error_naming_it(tmp_path: Path) -> None:
    fake = FakeV1(tmp_path)
    (tmp_path / "cpuset" / "cpuset.cpus").write_text("\n")
    with pytest.raises(CgroupError, match=r"cpuset/cpuset\.cpus is empty"):
        fake.cgroup().create()


def test_v1_an_unwritable_cgroup_procs_makes_join_raise(tmp_path: Path) -> None:
    fake = FakeV1(tmp_path)
    cgroup = fake.cgroup()
    cgroup.create()
    procs = tmp_path / "memory" / "pallet/c1" / "cgroup.procs"
    procs.unlink()
    procs.mkdir()  # writing it fails like a cgroup that refuses the process
    with pytest.raises(CgroupError, match=r"cannot move process \d+ into .*memory/pallet/c1/cgroup\.procs"):
        cgroup.join(os.getpid())


def test_v1_with_no_hierarchy_mounted_create_raises() -> None:
    with pytest.raises(CgroupError, match="no cgroup hierarchy is mounted"):
        V1Cgroup("pallet/c1", []).create()


# ---- v2


def test_v2_create_enables_controllers_on_the_way_down(tmp_path: Path) -> None:
    fake = FakeV2(tmp_path)
    cgroup = fake.cgroup("pallet/c1")
    cgroup.create()
    assert cgroup.paths() == [str(fake.root / "pallet/c1")]
    for directory in (fake.root, fake.root / "pallet"):
        assert (directory / "cgroup.subtree_control").read_text() == "+cpu +cpuset +io +memory +pids"
    # The container's cgroup has every controller pallet needs, and enables none itself.
    assert (fake.root / "pallet/c1/cgroup.controllers").read_text().split() == [
        "cpu", "cpuset", "io", "memory", "pids"]
    assert (fake.root / "pallet/c1/cgroup.subtree_control").read_text() == ""


def test_v2_create_never_reads_the_roots_cpuset_cpus(tmp_path: Path) -> None:
    """The bug: v1's cpuset filling walked up to the v2 root, which has no cpuset.cpus,
    and create() swallowed the error and made no cgroup."""
    fake = FakeV2(tmp_path, enabled="cpu cpuset io memory pids")
    cgroup = fake.cgroup()
    cgroup.create()
    assert not (fake.root / "cpuset.cpus").exists()
    assert (fake.root / "pallet/c1/cpuset.cpus").read_text() == ""  # empty: the parent's
    assert (fake.root / "cgroup.subtree_control").read_text() == "cpu cpuset io memory pids"


def test_v2_only_missing_controllers_are_enabled(tmp_path: Path) -> None:
    fake = FakeV2(tmp_path)
    (fake.root / "cgroup.controllers").write_text("cpu memory pids\n")  # no io, no cpuset
    fake.cgroup().create()
    assert (fake.root / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"


def test_v2_a_parent_with_processes_is_refused_with_the_rule_named(tmp_path: Path) -> None:
    fake = FakeV2(tmp_path, enabled="cpu cpuset io memory pids")
    fake.mkdir(str(fake.root / "busy"))
    (fake.root / "busy" / "cgroup.procs").write_text("42\n")
    cgroup = fake.cgroup("busy/c1")
    with pytest.raises(CgroupError, match="no internal processes") as caught:
        cgroup.create()
    assert str(fake.root / "busy" / "cgroup.subtree_control") in str(caught.value)
    assert "--cgroup-parent" in str(caught.value)
    assert not cgroup.exists()


def test_v2_an_unwritable_cgroup_procs_makes_join_raise(tmp_path: Path) -> None:
    fake = FakeV2(tmp_path)
    cgroup = fake.cgroup()
    cgroup.create()
    procs = fake.root / "pallet/c1/cgroup.procs"
    procs.unlink()
    procs.mkdir()
    with pytest.raises(CgroupError, match=r"cannot move process \d+ into .*pallet/c1/cgroup\.procs"):
        cgroup.join(os.getpid())


def test_v2_an_unwritable_parent_makes_create_raise(tmp_path: Path) -> None:
    fake = FakeV2(tmp_path)
    (fake.root / "pallet").write_text("")
    with pytest.raises(CgroupError, match=r"cannot create .*cgroup/pallet: a file is in the way"):
        fake.cgroup().create()


def test_v2_kill_uses_cgroup_kill_and_lists_subcgroups(tmp_path: Path) -> None:
    fake = FakeV2(tmp_path)
    cgroup = fake.cgroup()
    cgroup.create()
    (fake.root / "pallet/c1/cgroup.procs").write_text("100\n")
    fake.mkdir(str(fake.root / "pallet/c1/inner"))  # made by the container, in its cgroupns
    (fake.root / "pallet/c1/inner/cgroup.procs").write_text("101\n102\n")
    assert cgroup.pids() == [100, 101, 102]
    assert cgroup.kill() == [100, 101, 102]
    assert (fake.root / "pallet/c1/cgroup.kill").read_text() == "1"


def test_v2_other_signals_and_old_kernels_signal_each_process(tmp_path: Path) -> None:
    fake = FakeV2(tmp_path)
    cgroup = fake.cgroup()
    cgroup.create()
    (fake.root / "pallet/c1/cgroup.kill").unlink()  # Linux < 5.14
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        cgroup.join(sleeper.pid)
        assert cgroup.kill(signal.SIGTERM) == [sleeper.pid]
        assert sleeper.wait(10) == -signal.SIGTERM
    finally:
        sleeper.kill()
        sleeper.wait()


def test_destroy_kills_until_empty_then_removes_the_subtree(tmp_path: Path) -> None:
    fake = FakeV2(tmp_path)
    cgroup = fake.cgroup()
    cgroup.create()
    (fake.root / "pallet/c1/cgroup.kill").unlink()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    fake.mkdir(str(fake.root / "pallet/c1/inner"))
    reaped = []

    def rmdir(path: str) -> None:
        if sleeper.poll() is not None and not reaped:  # the kernel lets go once reaped
            reaped.append(sleeper.pid)
            (fake.root / "pallet/c1/inner/cgroup.procs").write_text("")
        _rmdir(path)

    try:
        cgroup.join(sleeper.pid)
        (fake.root / "pallet/c1/cgroup.procs").write_text("")
        (fake.root / "pallet/c1/inner/cgroup.procs").write_text(str(sleeper.pid))
        killed, left = destroy(V2Cgroup("pallet/c1", str(fake.root), rmdir=rmdir), timeout=10)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert killed == [sleeper.pid] and left == []
    assert not cgroup.exists() and (fake.root / "pallet").is_dir()


def test_remove_of_a_cgroup_that_is_gone_is_not_an_error(tmp_path: Path) -> None:
    assert FakeV2(tmp_path).cgroup().remove() == []
    assert FakeV1(tmp_path / "v1").cgroup().remove() == []


# ---- freezing (commit --pause)


def test_v1_freezes_through_the_freezer_hierarchy_and_thaws(tmp_path: Path) -> None:
    fake = FakeV1(tmp_path)
    cgroup = fake.cgroup()
    cgroup.create()
    state = tmp_path / "freezer" / "pallet" / "c1" / "freezer.state"
    state.write_text("")  # the kernel's file; a plain one keeps what is written
    cgroup.freeze()
    assert state.read_text() == "FROZEN"
    cgroup.thaw()
    assert state.read_text() == "THAWED"


def test_v1_a_freeze_that_does_not_settle_is_thawed_and_refused(tmp_path: Path) -> None:
    fake = FakeV1(tmp_path)
    cgroup = fake.cgroup()
    cgroup.create()
    state = tmp_path / "freezer" / "pallet" / "c1" / "freezer.state"
    state.mkdir()  # unreadable as a file: the write is refused
    with pytest.raises(CgroupError, match="freeze"):
        cgroup.freeze(timeout=0.05)


def test_v2_freezes_with_cgroup_freeze_and_waits_for_the_event(tmp_path: Path) -> None:
    fake = FakeV2(tmp_path)
    cgroup = fake.cgroup()
    cgroup.create()
    control = Path(cgroup.path, "cgroup.freeze")
    events = Path(cgroup.path, "cgroup.events")
    control.write_text("0")
    events.write_text("populated 1\nfrozen 1\n")  # what the kernel says once frozen
    cgroup.freeze()
    assert control.read_text() == "1"
    events.write_text("populated 1\nfrozen 0\n")
    cgroup.thaw()
    assert control.read_text() == "0"
    # The kernel never says frozen: thawed again, and refused.
    with pytest.raises(CgroupError, match="did not freeze"):
        cgroup.freeze(timeout=0.05)
    assert control.read_text() == "0"


def test_v2_without_cgroup_freeze_says_which_kernel_can(tmp_path: Path) -> None:
    fake = FakeV2(tmp_path)
    cgroup = fake.cgroup()
    cgroup.create()
    with pytest.raises(CgroupError, match="Linux 5.2"):
        cgroup.freeze()
    with pytest.raises(CgroupError, match="no cgroup"):
        NoCgroup().freeze()
