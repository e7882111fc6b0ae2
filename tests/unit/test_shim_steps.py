"""The order of container setup, checked against a fake Syscalls (no root, no kernel)."""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from pathlib import Path

import pytest

from pallet.v1.errors import FailedPrecondition, InvalidArgument, NotFound
from pallet.shim.api.spec import Mount, RootFs, ShimSpec
from pallet.shim import caps
from pallet.shim import syscalls as sc
from pallet.shim.mounts import parse_options, secure_join
from pallet.shim.steps import (
    EXEC_NAMESPACES,
    ExecFailed,
    ExecJoin,
    InitSetup,
    ProcessSetup,
    find_executable,
    run_steps,
)


class FakeSyscalls:
    """Records every kernel call instead of making it."""

    def __init__(self, fail_on: str = "") -> None:
        self.calls: list[tuple[object, ...]] = []
        self.fail_on = fail_on

    def _record(self, *call: object) -> None:
        if call[0] == self.fail_on:
            raise PermissionError(1, "Operation not permitted")
        self.calls.append(call)

    def unshare(self, flags: int) -> None:
        self._record("unshare", flags)

    def setns(self, fd: int, nstype: int) -> None:
        self._record("setns", nstype)

    def mount(self, source: str, target: str, fstype: str, flags: int, data: str) -> None:
        self._record("mount", source, target, fstype, flags, data)

    def umount2(self, target: str, flags: int) -> None:
        self._record("umount2", target, flags)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._record("pivot_root", new_root, put_old)

    def prctl(self, option: int, arg2: int) -> None:
        self._record("prctl", option, arg2)

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        self._record("capset", effective, permitted, inheritable)

    def capget(self) -> tuple[int, int, int]:
        return (0, 0, 0)

    def sethostname(self, name: str) -> None:
        self._record("sethostname", name)

    def setgroups(self, gids: list[int]) -> None:
        self._record("setgroups", tuple(gids))

    def setresgid(self, gid: int) -> None:
        self._record("setresgid", gid)

    def setresuid(self, uid: int) -> None:
        self._record("setresuid", uid)


def names(calls: list[tuple[object, ...]]) -> list[object]:
    return [c[0] for c in calls]


@pytest.fixture
def spec(tmp_path: Path) -> ShimSpec:
    root = tmp_path / "rootfs"
    root.mkdir()
    return ShimSpec(
        container_id="c1",
        bundle_dir=str(tmp_path),
        args=("sh",),
        env=(),
        cwd="/",
        user="",
        hostname="box",
        rootfs=RootFs(("/l2", "/l1"), "/up", "/work", str(root)),
        log_path=str(tmp_path / "log"),
        mounts=(Mount("/etc/hosts", "bind", str(tmp_path / "hosts"), ("rbind", "ro")),),
    )


def _init(spec: ShimSpec, fake: FakeSyscalls) -> InitSetup:
    return InitSetup(
        spec, fake,
        wait_for_cgroup=lambda: fake.calls.append(("cgroup joined",)),
        loopback_up=lambda: fake.calls.append(("loopback",)),
    )


def test_init_unshares_first_and_its_cgroup_namespace_last(spec: ShimSpec) -> None:
    fake = FakeSyscalls()
    steps = _init(spec, fake).steps()
    assert steps[0].name == "unshare namespaces"
    assert [s.name for s in steps[-2:]] == ["wait for cgroup", "unshare cgroup namespace"]
    steps[0].run()
    steps[-2].run()
    steps[-1].run()
    flags = fake.calls[0][1]
    assert isinstance(flags, int)
    for ns in (sc.CLONE_NEWNS, sc.CLONE_NEWUTS, sc.CLONE_NEWIPC, sc.CLONE_NEWNET):
        assert flags & ns
    # pid: the shim's (it applies to children); cgroup: only after the cgroup join.
    assert not flags & (sc.CLONE_NEWPID | sc.CLONE_NEWCGROUP)
    assert fake.calls[1:] == [("cgroup joined",), ("unshare", sc.CLONE_NEWCGROUP)]


def test_a_network_namespace_path_is_joined_instead_of_made(spec: ShimSpec, tmp_path: Path) -> None:
    netns = tmp_path / "netns"
    netns.write_text("")
    fake = FakeSyscalls()
    steps = _init(replace(spec, network_namespace=str(netns)), fake).steps()
    assert [s.name for s in steps[:2]] == ["unshare namespaces", "join network namespace"]
    assert "bring up loopback" not in [s.name for s in steps]
    steps[0].run()
    steps[1].run()
    assert not fake.calls[0][1] & sc.CLONE_NEWNET  # type: ignore[operator]
    assert fake.calls[1] == ("setns", sc.CLONE_NEWNET)


def test_stage2_order(spec: ShimSpec, tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n")
    fake = FakeSyscalls()
    steps = _init(spec, fake).steps()[1:-2]
    assert [s.name for s in steps] == [
        "make mounts slave", "mount rootfs", "mount proc", "mount sys", "mount dev",
        "make device nodes", "mount devpts", "mount shm", "mount mqueue", "link dev",
        "mount spec mounts", "bring up loopback", "set hostname", "pivot root", "mask paths",
        "make paths read-only",
    ]
    # Run the mount steps for real against a temp dir; device nodes and pivot_root need
    # root and a real mount, so those steps are skipped here.
    cwd = os.getcwd()
    try:
        for step in steps:
            if step.name not in ("make device nodes", "pivot root"):
                step.run()
    finally:
        os.chdir(cwd)
    root = spec.rootfs.target
    mounts = [c for c in fake.calls if c[0] == "mount"]
    # Nothing may be mounted before the whole tree is made a slave (no leak to the host).
    assert mounts[0] == ("mount", "", "/", "", sc.MS_REC | sc.MS_SLAVE, "")
    assert mounts[1] == (
        "mount", "overlay", root, "overlay", 0, "lowerdir=/l2:/l1,upperdir=/up,workdir=/work"
    )
    targets = [c[2] for c in mounts]
    assert targets.index(f"{root}/proc") < targets.index(f"{root}/dev") < targets.index(
        f"{root}/dev/pts"
    ) < targets.index(f"{root}/etc/hosts")
    hosts = [c for c in mounts if c[2] == f"{root}/etc/hosts"]
    assert hosts[0][4] == sc.MS_BIND | sc.MS_REC
    assert hosts[1][4] == sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY
    assert fake.calls.index(("loopback",)) < fake.calls.index(("sethostname", "box"))
    assert os.path.islink(f"{root}/dev/ptmx") and os.readlink(f"{root}/dev/ptmx") == "pts/ptmx"


def test_pivot_root_detaches_the_old_root(spec: ShimSpec) -> None:
    fake = FakeSyscalls()
    cwd = os.getcwd()
    try:
        _init(spec, fake).pivot_root()
    finally:
        os.chdir(cwd)
    assert fake.calls == [("pivot_root", ".", "."), ("umount2", ".", sc.MNT_DETACH)]


def test_masked_paths_use_dev_null_for_files_and_ro_tmpfs_for_dirs(
    spec: ShimSpec, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("secret")
    (tmp_path / "dir").mkdir()
    fake = FakeSyscalls()
    masked = (str(tmp_path / "file"), str(tmp_path / "dir"), str(tmp_path / "missing"))
    _init(replace(spec, masked_paths=masked), fake).mask_paths()
    assert fake.calls == [
        ("mount", "/dev/null", str(tmp_path / "file"), "", sc.MS_BIND, ""),
        ("mount", "tmpfs", str(tmp_path / "dir"), "tmpfs", sc.MS_RDONLY, ""),
    ]


def test_setup_failure_names_the_step(spec: ShimSpec) -> None:
    fake = FakeSyscalls(fail_on="unshare")
    with pytest.raises(FailedPrecondition, match="setup failed at unshare namespaces: .*not permitted"):
        run_steps(_init(spec, fake).steps())


def _process(tmp_path: Path, user: str, capabilities: tuple[str, ...] = ()) -> tuple[ProcessSetup, FakeSyscalls]:
    fake = FakeSyscalls()
    setup = ProcessSetup(
        fake, user=user, env=("PATH=/bin",), cwd=str(tmp_path / "wd"),
        capabilities=capabilities, no_new_privileges=True,
    )
    return setup, fake


def test_process_order_groups_then_gid_then_uid_then_caps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    setup, fake = _process(tmp_path, "4242:4242")
    steps = setup.steps()
    assert [s.name for s in steps] == [
        "resolve user", "make workdir", "keep caps", "drop bounding set", "set groups",
        "set gid", "set uid", "set capabilities", "clear ambient", "set no_new_privs",
        "die with the shim", "enter workdir",
    ]
    cwd = os.getcwd()
    try:
        run_steps(steps)
    finally:
        os.chdir(cwd)
    order = names(fake.calls)
    first_drop = order.index("prctl", order.index("prctl") + 1)
    assert fake.calls[0] == ("prctl", sc.PR_SET_KEEPCAPS, 1)
    assert first_drop < order.index("setgroups") < order.index("setresgid") < order.index(
        "setresuid"
    ) < order.index("capset")
    assert fake.calls[-2] == ("prctl", sc.PR_SET_NO_NEW_PRIVS, 1)
    # Last, after the uid change that would clear it: the process dies with its shim.
    assert fake.calls[-1] == ("prctl", sc.PR_SET_PDEATHSIG, signal.SIGKILL)
    default = caps.mask_of(caps.DOCKER_DEFAULT)
    assert ("capset", default, default, 0) in fake.calls
    dropped = {c[2] for c in fake.calls if c[:2] == ("prctl", sc.PR_CAPBSET_DROP)}
    assert dropped == {n for n in range(caps.last_cap() + 1) if not default & (1 << n)}
    assert (tmp_path / "wd").is_dir()
    assert "HOME=/" in setup.env


def test_default_capabilities_are_dockers(tmp_path: Path) -> None:
    assert caps.mask_of(caps.DOCKER_DEFAULT) == 0xA80425FB
    with pytest.raises(InvalidArgument, match="unknown capability"):
        caps.mask_of(("CAP_NOPE",))


def test_exec_join_opens_all_namespaces_first_then_enters_mnt_last() -> None:
    fake = FakeSyscalls()
    join = ExecJoin(fake, os.getpid(), wait_for_cgroup=lambda: fake.calls.append(("joined", 0)))
    steps = join.steps()
    assert steps[0].name == "open namespaces" and steps[-1].name == "wait for cgroup"
    run_steps(steps)
    assert [c[1] for c in fake.calls[:-1]] == [nstype for _, nstype in EXEC_NAMESPACES]
    order = [name for name, _ in EXEC_NAMESPACES]
    # No pid namespace to enter: the shim's children are born in the container's.
    assert "pid" not in order and order[-1] == "mnt"
    assert fake.calls[-1] == ("joined", 0)


def test_find_executable_uses_path_and_docker_wording(tmp_path: Path) -> None:
    tool = tmp_path / "bin" / "tool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    (tmp_path / "bin" / "plain").write_text("")
    assert find_executable("tool", [f"PATH=/nonexistent:{tool.parent}"]) == str(tool)
    with pytest.raises(ExecFailed) as missing:
        find_executable("nosuch", [f"PATH={tool.parent}"])
    assert (missing.value.exit_code, missing.value.message) == (
        127, 'exec: "nosuch": executable file not found in $PATH'
    )
    with pytest.raises(ExecFailed) as denied:
        find_executable(str(tmp_path / "bin" / "plain"), [])
    assert denied.value.exit_code == 126 and "permission denied" in denied.value.message


def test_unknown_user_is_reported_by_resolve_step(tmp_path: Path) -> None:
    setup, _ = _process(tmp_path, "nosuchuser")
    with pytest.raises(NotFound, match="unable to find user nosuchuser"):
        setup.resolve_user()


def test_parse_options_splits_flags_propagation_and_data() -> None:
    flags, propagation, data = parse_options(("ro", "nosuid", "rprivate", "size=64m", "mode=1777"))
    assert flags == sc.MS_RDONLY | sc.MS_NOSUID
    assert propagation == sc.MS_PRIVATE | sc.MS_REC
    assert data == "size=64m,mode=1777"


def test_secure_join_keeps_symlinks_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hosts").symlink_to("/../../outside/hosts")
    (root / "rel").symlink_to("../../../../x")
    assert secure_join(str(root), "/etc/hosts") == str(root / "outside" / "hosts")
    assert secure_join(str(root), "/rel/y") == str(root / "x" / "y")
    assert secure_join(str(root), "/../../etc/./passwd") == str(root / "etc" / "passwd")
