"""The order of container setup, checked against a fake Syscalls (no root, no kernel)."""

from __future__ import annotations

import os
import signal
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from pallet.v1.errors import FailedPrecondition, InvalidArgument, NotFound
from pallet.daemon.containers import bundle
from pallet.shim.api.spec import Device, Linux, Log, Mount, Namespace, Process, Root, ShimSpec
from pallet.shim import caps
from pallet.shim import syscalls as sc
from pallet.shim.api.paths import secure_join
from pallet.shim.mounts import parse_options
from pallet.shim.steps import (
    EXEC_NAMESPACE_ORDER,
    NAMESPACES,
    ExecFailed,
    ExecJoin,
    InitSetup,
    enter_pid_namespace,
    run_steps,
)
from pallet.shim.identity import ProcessSetup, find_executable

ALL = ("pid", "ipc", "uts", "mount", "network", "cgroup")


def _named(target: str) -> str:
    """A mount target the shim gave as /proc/self/fd/N, as the path that fd names."""
    return os.readlink(target) if target.startswith("/proc/self/fd/") else target


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
        self._record("mount", source, _named(target), fstype, flags, data)

    def umount2(self, target: str, flags: int) -> None:
        self._record("umount2", target, flags)

    def make_read_only_recursive(self, target: str) -> None:
        self._record("make_read_only_recursive", _named(target))

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

    def setrlimit(self, resource: int, soft: int, hard: int) -> None:
        self._record("setrlimit", resource, soft, hard)

    def seccomp_filter(self, program: bytes) -> None:
        self._record("seccomp", program)


def names(calls: list[tuple[object, ...]]) -> list[object]:
    return [c[0] for c in calls]


@pytest.fixture
def spec(tmp_path: Path) -> ShimSpec:
    root = tmp_path / "rootfs"
    root.mkdir()
    return ShimSpec(
        container_id="c1",
        bundle_dir=str(tmp_path),
        hostname="box",
        process=Process(("sh",), ("PATH=/bin",), "/", "", bundle.DEFAULT_CAPABILITIES, True, False),
        root=Root(str(root), ("/l2", "/l1"), "/up", "/work", readonly=False),
        mounts=(*bundle.DEFAULT_MOUNTS, Mount("/etc/hosts", "bind", str(tmp_path / "hosts"), ("rbind", "ro"))),
        linux=Linux(
            namespaces=tuple(Namespace(t) for t in ALL),
            cgroups_path="pallet/c1",
            masked_paths=bundle.MASKED_PATHS,
            readonly_paths=bundle.READONLY_PATHS,
            devices=bundle.DEFAULT_DEVICES,
            sysctl={},
            rootfs_propagation="rslave",
            seccomp="",
            device_cgroup=(),
        ),
        log=Log(str(tmp_path / "log"), 0, 1),
    )


def _init(spec: ShimSpec, fake: FakeSyscalls) -> InitSetup:
    return InitSetup(
        spec, fake,
        wait_for_cgroup=lambda: fake.calls.append(("cgroup joined",)),
        loopback_up=lambda: fake.calls.append(("loopback",)),
    )


def _with_namespaces(spec: ShimSpec, *namespaces: Namespace) -> ShimSpec:
    return replace(spec, linux=replace(spec.linux, namespaces=namespaces))


def test_init_unshares_first_and_its_cgroup_namespace_last(spec: ShimSpec) -> None:
    fake = FakeSyscalls()
    steps = _init(spec, fake).steps()
    assert steps[0].name == "unshare namespaces"
    assert [s.name for s in steps[-2:]] == ["wait for cgroup", "unshare cgroup namespace"]
    steps[0].run()
    steps[-2].run()
    steps[-1].run()
    # pid: the shim's (it applies to children); cgroup: only after the cgroup join.
    assert fake.calls == [
        ("unshare", sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWNET),
        ("cgroup joined",),
        ("unshare", sc.CLONE_NEWCGROUP),
    ]


def _run_namespace_steps(spec: ShimSpec, fake: FakeSyscalls) -> list[str]:
    """Run the namespace steps (and the cgroup wait); return every step's name."""
    steps = _init(spec, fake).steps()
    for step in steps:
        if step.name.startswith(("unshare", "join", "wait for cgroup")):
            step.run()
    return [s.name for s in steps]


@pytest.mark.parametrize(
    "types, unshared, loopback",
    [
        # Docker's default: everything new.
        (ALL, sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWNET, True),
        # --network host: no network entry, so the host's, and no loopback to bring up.
        (("pid", "ipc", "uts", "mount", "cgroup"), sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC, False),
        # --ipc host --pid host, no cgroup namespace (cgroup v1 hosts in docker).
        (("uts", "mount", "network"), sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWNET, True),
    ],
)
def test_only_the_listed_namespaces_are_made(
    spec: ShimSpec, types: tuple[str, ...], unshared: int, loopback: bool
) -> None:
    fake = FakeSyscalls()
    names = _run_namespace_steps(_with_namespaces(spec, *(Namespace(t) for t in types)), fake)
    assert fake.calls[0] == ("unshare", unshared)
    assert ("bring up loopback" in names) is loopback
    cgroup_calls = fake.calls[fake.calls.index(("cgroup joined",)) + 1:]
    assert cgroup_calls == ([("unshare", sc.CLONE_NEWCGROUP)] if "cgroup" in types else [])
    assert not any(c[0] == "setns" for c in fake.calls)


def test_namespaces_with_a_path_are_joined_instead_of_made(spec: ShimSpec, tmp_path: Path) -> None:
    paths = {}
    for name in ("netns", "ipcns", "cgns"):
        (tmp_path / name).write_text("")
        paths[name] = str(tmp_path / name)
    fake = FakeSyscalls()
    joined = _with_namespaces(
        spec, Namespace("pid"), Namespace("ipc", paths["ipcns"]), Namespace("uts"),
        Namespace("mount"), Namespace("network", paths["netns"]), Namespace("cgroup", paths["cgns"]),
    )
    names = _run_namespace_steps(joined, fake)
    assert names[:3] == ["unshare namespaces", "join ipc namespace", "join network namespace"]
    assert names[-2:] == ["wait for cgroup", "join cgroup namespace"]
    assert "bring up loopback" not in names  # the network's owner configured it
    assert fake.calls == [
        ("unshare", sc.CLONE_NEWNS | sc.CLONE_NEWUTS),
        ("setns", sc.CLONE_NEWIPC),
        ("setns", sc.CLONE_NEWNET),
        ("cgroup joined",),
        ("setns", sc.CLONE_NEWCGROUP),
    ]


def test_the_shim_makes_joins_or_shares_the_pid_namespace(spec: ShimSpec, tmp_path: Path) -> None:
    (tmp_path / "pidns").write_text("")
    made, joined, shared = FakeSyscalls(), FakeSyscalls(), FakeSyscalls()
    enter_pid_namespace(spec, made)
    others = tuple(ns for ns in spec.linux.namespaces if ns.type != "pid")
    enter_pid_namespace(_with_namespaces(spec, Namespace("pid", str(tmp_path / "pidns")), *others), joined)
    enter_pid_namespace(_with_namespaces(spec, *others), shared)
    assert made.calls == [("unshare", sc.CLONE_NEWPID)]
    assert joined.calls == [("setns", sc.CLONE_NEWPID)]
    assert shared.calls == []


def test_stage2_order(spec: ShimSpec, tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n")
    fake = FakeSyscalls()
    steps = _init(spec, fake).steps()[1:-2]
    assert [s.name for s in steps] == [
        "set rootfs propagation", "mount rootfs", "mount spec mounts", "make device nodes",
        "link dev", "bring up loopback", "set hostname", "pivot root", "mask paths",
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
    root = spec.root.path
    mounts = [c for c in fake.calls if c[0] == "mount"]
    # Nothing may be mounted before the whole tree is made a slave (no leak to the host).
    assert mounts[0] == ("mount", "", "/", "", sc.MS_REC | sc.MS_SLAVE, "")
    assert mounts[1] == (
        "mount", "overlay", root, "overlay", 0, "lowerdir=/l2:/l1,upperdir=/up,workdir=/work"
    )
    # The spec's mounts, in the spec's order, each with the spec's options as flags + data.
    nosuid, nodev, noexec = sc.MS_NOSUID, sc.MS_NODEV, sc.MS_NOEXEC
    assert mounts[2:8] == [
        ("mount", "proc", f"{root}/proc", "proc", nosuid | noexec | nodev, ""),
        ("mount", "tmpfs", f"{root}/dev", "tmpfs", nosuid | sc.MS_STRICTATIME, "mode=755,size=65536k"),
        ("mount", "devpts", f"{root}/dev/pts", "devpts", nosuid | noexec,
         "newinstance,ptmxmode=0666,mode=0620,gid=5"),
        ("mount", "sysfs", f"{root}/sys", "sysfs", nosuid | noexec | nodev | sc.MS_RDONLY, ""),
        ("mount", "mqueue", f"{root}/dev/mqueue", "mqueue", nosuid | noexec | nodev, ""),
        ("mount", "shm", f"{root}/dev/shm", "tmpfs", nosuid | noexec | nodev, "mode=1777,size=65536k"),
    ]
    assert [c[2] for c in mounts[8:10]] == [f"{root}/etc/hosts"] * 2
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
    _init(replace(spec, linux=replace(spec.linux, masked_paths=masked)), fake).mask_paths()
    assert fake.calls == [
        ("mount", "/dev/null", str(tmp_path / "file"), "", sc.MS_BIND, ""),
        ("mount", "tmpfs", str(tmp_path / "dir"), "tmpfs", sc.MS_RDONLY, ""),
    ]


def test_no_masked_or_read_only_paths_means_none(spec: ShimSpec) -> None:
    fake = FakeSyscalls()
    setup = _init(replace(spec, linux=replace(spec.linux, masked_paths=(), readonly_paths=())), fake)
    setup.mask_paths()
    setup.readonly_paths()
    assert fake.calls == []


def test_device_nodes_are_the_specs(
    spec: ShimSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[tuple[object, ...]] = []
    monkeypatch.setattr(os, "mknod", lambda path, mode, dev: made.append(("mknod", path, mode, dev)))
    monkeypatch.setattr(os, "chown", lambda path, uid, gid: made.append(("chown", path, uid, gid)))
    devices = (
        Device("/dev/fuse", "c", 10, 229, 0o600, 0, 0),
        Device("/dev/disk/loop9", "b", 7, 9, 0o660, 0, 6),
    )
    root = spec.root.path
    _init(replace(spec, linux=replace(spec.linux, devices=devices)), FakeSyscalls()).make_device_nodes()
    assert made == [
        ("mknod", f"{root}/dev/fuse", stat.S_IFCHR | 0o600, os.makedev(10, 229)),
        ("chown", f"{root}/dev/fuse", 0, 0),
        ("mknod", f"{root}/dev/disk/loop9", stat.S_IFBLK | 0o660, os.makedev(7, 9)),
        ("chown", f"{root}/dev/disk/loop9", 0, 6),
    ]
    made.clear()
    _init(replace(spec, linux=replace(spec.linux, devices=())), FakeSyscalls()).make_device_nodes()
    assert made == []


def test_sysctls_are_written_after_pivot_root_before_proc_sys_is_read_only(
    spec: ShimSpec, tmp_path: Path
) -> None:
    proc_sys = tmp_path / "proc-sys"
    (proc_sys / "net" / "ipv4").mkdir(parents=True)
    (proc_sys / "net" / "ipv4" / "ip_unprivileged_port_start").write_text("1024\n")
    with_sysctl = replace(spec, linux=replace(spec.linux, sysctl={"net.ipv4.ip_unprivileged_port_start": "80"}))
    setup = _init(with_sysctl, FakeSyscalls())
    names = [s.name for s in setup.steps()]
    assert names.index("pivot root") < names.index("write sysctls") < names.index("make paths read-only")
    assert "write sysctls" not in [s.name for s in _init(spec, FakeSyscalls()).steps()]
    setup.proc_sys = str(proc_sys)
    setup.write_sysctls()
    assert (proc_sys / "net" / "ipv4" / "ip_unprivileged_port_start").read_text() == "80"
    missing = _init(replace(spec, linux=replace(spec.linux, sysctl={"net.nosuch": "1"})), FakeSyscalls())
    missing.proc_sys = str(proc_sys)
    with pytest.raises(FailedPrecondition, match="sysctl net.nosuch does not exist"):
        missing.write_sysctls()


def test_a_read_only_root_is_remounted_last(spec: ShimSpec) -> None:
    fake = FakeSyscalls()
    readonly = replace(spec, root=replace(spec.root, readonly=True))
    steps = _init(readonly, fake).steps()
    names = [s.name for s in steps]
    assert names.index("make paths read-only") + 1 == names.index("make root read-only")
    assert names.index("make root read-only") + 1 == names.index("wait for cgroup")
    assert "make root read-only" not in [s.name for s in _init(spec, fake).steps()]
    steps[names.index("make root read-only")].run()
    assert fake.calls[0][:4] == ("mount", "", "/", "")
    flags = fake.calls[0][4]
    assert isinstance(flags, int) and flags & sc.MS_RDONLY and flags & sc.MS_REMOUNT and flags & sc.MS_BIND


def test_setup_failure_names_the_step(spec: ShimSpec) -> None:
    fake = FakeSyscalls(fail_on="unshare")
    with pytest.raises(FailedPrecondition, match="setup failed at unshare namespaces: .*not permitted"):
        run_steps(_init(spec, fake).steps())


def _process(
    tmp_path: Path, user: str, capabilities: tuple[str, ...] = bundle.DEFAULT_CAPABILITIES, is_exec: bool = False
) -> tuple[ProcessSetup, FakeSyscalls]:
    fake = FakeSyscalls()
    process = Process(("sh",), ("PATH=/bin",), str(tmp_path / "wd"), user, capabilities, True, False)
    return ProcessSetup(fake, process, is_exec=is_exec), fake


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
    default = caps.mask_of(bundle.DEFAULT_CAPABILITIES)
    assert ("capset", default, default, 0) in fake.calls
    dropped = {c[2] for c in fake.calls if c[:2] == ("prctl", sc.PR_CAPBSET_DROP)}
    assert dropped == {n for n in range(caps.last_cap() + 1) if not default & (1 << n)}
    assert (tmp_path / "wd").is_dir()
    # HOME from the image's passwd (runc does the same); PATH is the daemon's to give.
    assert setup.env == ["PATH=/bin", "HOME=/"]


def test_an_exec_does_not_make_its_missing_workdir_it_fails_with_126(tmp_path: Path) -> None:
    """As runc: `docker exec -w /missing` fails (126, the chdir error); only an init's
    missing working directory is made."""
    setup, _ = _process(tmp_path, "", is_exec=True)
    steps = setup.steps()
    assert "make workdir" not in [s.name for s in steps]
    cwd = os.getcwd()
    try:
        with pytest.raises(ExecFailed) as failed:
            run_steps(steps)
    finally:
        os.chdir(cwd)
    assert failed.value.exit_code == 126
    assert failed.value.message == f'chdir to cwd ("{tmp_path}/wd") failed: no such file or directory'
    assert not (tmp_path / "wd").exists()


def test_no_capabilities_means_none(tmp_path: Path) -> None:
    """--cap-drop ALL: an empty list drops every capability, it is not "the default"."""
    setup, fake = _process(tmp_path, "", capabilities=())
    cwd = os.getcwd()
    try:
        run_steps(setup.steps())
    finally:
        os.chdir(cwd)
    assert ("capset", 0, 0, 0) in fake.calls
    dropped = {c[2] for c in fake.calls if c[:2] == ("prctl", sc.PR_CAPBSET_DROP)}
    assert dropped == set(range(caps.last_cap() + 1))


def test_default_capabilities_are_dockers(tmp_path: Path) -> None:
    assert caps.mask_of(bundle.DEFAULT_CAPABILITIES) == 0xA80425FB
    with pytest.raises(InvalidArgument, match="unknown capability"):
        caps.mask_of(("CAP_NOPE",))


def test_exec_join_opens_all_namespaces_first_then_enters_mnt_last() -> None:
    fake = FakeSyscalls()
    namespaces = tuple(Namespace(t) for t in ALL)
    join = ExecJoin(fake, os.getpid(), namespaces, wait_for_cgroup=lambda: fake.calls.append(("joined", 0)))
    steps = join.steps()
    assert steps[0].name == "open namespaces" and steps[-1].name == "wait for cgroup"
    run_steps(steps)
    assert [c[1] for c in fake.calls[:-1]] == [NAMESPACES[t][1] for t in EXEC_NAMESPACE_ORDER]
    # No pid namespace to enter: the shim's children are born in the container's.
    assert "pid" not in EXEC_NAMESPACE_ORDER and EXEC_NAMESPACE_ORDER[-1] == "mount"
    assert fake.calls[-1] == ("joined", 0)


def test_exec_join_enters_only_the_namespaces_the_container_has() -> None:
    fake = FakeSyscalls()
    # --network host --ipc host: the exec stays in the host's network and ipc namespaces.
    namespaces = tuple(Namespace(t) for t in ("pid", "uts", "mount", "cgroup"))
    join = ExecJoin(fake, os.getpid(), namespaces, wait_for_cgroup=lambda: None)
    run_steps(join.steps())
    assert fake.calls == [
        ("setns", sc.CLONE_NEWUTS), ("setns", sc.CLONE_NEWCGROUP), ("setns", sc.CLONE_NEWNS),
    ]


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
    with pytest.raises(ExecFailed) as no_path:
        find_executable("tool", [])  # no PATH, no search: the daemon gives one
    assert no_path.value.exit_code == 127
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


def test_the_root_propagation_is_the_specs_and_set_before_any_mount(spec: ShimSpec) -> None:
    for propagation, flags in (("rslave", sc.MS_SLAVE | sc.MS_REC), ("private", sc.MS_PRIVATE)):
        fake = FakeSyscalls()
        setup = _init(replace(spec, linux=replace(spec.linux, rootfs_propagation=propagation)), fake)
        steps = setup.steps()
        assert [s.name for s in steps].index("set rootfs propagation") < [
            s.name for s in steps].index("mount rootfs")
        setup.set_rootfs_propagation()
        assert fake.calls == [("mount", "", "/", "", flags, "")]


def test_no_spec_mounts_means_none(spec: ShimSpec) -> None:
    fake = FakeSyscalls()
    _init(replace(spec, mounts=()), fake).mount_spec_mounts()
    assert fake.calls == []


def test_the_specs_tmpfs_options_are_honoured(spec: ShimSpec) -> None:
    # --shm-size: said through the spec, not fixed in the shim.
    shm = Mount("/dev/shm", "tmpfs", "shm", ("nosuid", "noexec", "nodev", "mode=1777", "size=1g"))
    fake = FakeSyscalls()
    _init(replace(spec, mounts=(shm,)), fake).mount_spec_mounts()
    flags = sc.MS_NOSUID | sc.MS_NOEXEC | sc.MS_NODEV
    assert fake.calls == [("mount", "shm", f"{spec.root.path}/dev/shm", "tmpfs", flags, "mode=1777,size=1g")]


def test_the_flag_options_checked_are_the_ones_the_shim_knows() -> None:
    from pallet.shim.api import files, mountflags, spec as api_spec

    assert set(mountflags.FLAGS) == files.MOUNT_FLAG_OPTIONS
    assert set(mountflags.PROPAGATION) == set(api_spec.PROPAGATIONS)


def test_a_read_only_recursive_bind_is_read_only_all_the_way_down(spec: ShimSpec, tmp_path: Path) -> None:
    source = tmp_path / "srv"
    source.mkdir()
    rro = Mount("/data", "bind", str(source), ("rbind", "ro", "rprivate"))
    plain = Mount("/plain", "bind", str(source), ("bind", "ro"))
    fake = FakeSyscalls()
    _init(replace(spec, mounts=(rro, plain)), fake).mount_spec_mounts()
    root = spec.root.path
    assert fake.calls == [
        ("mount", str(source), f"{root}/data", "", sc.MS_BIND | sc.MS_REC, ""),
        ("mount", "", f"{root}/data", "", sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY, ""),
        # After the remount, which reaches the top mount only: the mounts below too.
        ("make_read_only_recursive", f"{root}/data"),
        ("mount", "", f"{root}/data", "", sc.MS_PRIVATE | sc.MS_REC, ""),
        ("mount", str(source), f"{root}/plain", "", sc.MS_BIND, ""),
        ("mount", "", f"{root}/plain", "", sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY, ""),
    ]


def _run_in(tmp_path: Path, setup: ProcessSetup) -> None:
    cwd = os.getcwd()
    try:
        run_steps(setup.steps())
    finally:
        os.chdir(cwd)


def test_seccomp_is_installed_with_cap_sys_admin_before_the_user_switch_without_nnp(tmp_path: Path) -> None:
    """Docker's default: no no_new_privs, so the kernel takes the filter only while the
    process still has CAP_SYS_ADMIN: before groups, uid and capabilities change."""
    fake = FakeSyscalls()
    process = Process(("sh",), ("PATH=/bin",), str(tmp_path / "wd"), "4242", bundle.DEFAULT_CAPABILITIES, False, False)
    _run_in(tmp_path, ProcessSetup(fake, process, is_exec=False, seccomp=b"\0" * 8))
    order = names(fake.calls)
    assert order.index("seccomp") < order.index("setgroups") < order.index("capset")
    assert ("prctl", sc.PR_SET_NO_NEW_PRIVS, 1) not in fake.calls


def test_seccomp_is_installed_last_with_nnp(tmp_path: Path) -> None:
    fake = FakeSyscalls()
    process = Process(("sh",), ("PATH=/bin",), str(tmp_path / "wd"), "", bundle.DEFAULT_CAPABILITIES, True, False)
    setup = ProcessSetup(fake, process, is_exec=True, seccomp=b"\1" * 16)
    assert [s.name for s in setup.steps()][-1] == "install seccomp"
    (tmp_path / "wd").mkdir()
    _run_in(tmp_path, setup)
    assert fake.calls[-1] == ("seccomp", b"\1" * 16)
    assert order_of(fake, ("prctl", sc.PR_SET_NO_NEW_PRIVS, 1)) < len(fake.calls) - 1


def order_of(fake: FakeSyscalls, call: tuple[object, ...]) -> int:
    return fake.calls.index(call)


def test_no_filter_means_no_seccomp_step(tmp_path: Path) -> None:
    setup, _ = _process(tmp_path, "")
    assert "install seccomp" not in [s.name for s in setup.steps()]


def test_rlimits_are_set_as_root_and_groups_added(tmp_path: Path) -> None:
    from pallet.shim.api.spec import Rlimit
    from pallet.shim.identity import RLIMITS

    fake = FakeSyscalls()
    process = Process(("sh",), ("PATH=/bin",), str(tmp_path / "wd"), "", (), False, False,
                      rlimits=(Rlimit("RLIMIT_NOFILE", 1024, 2048), Rlimit("RLIMIT_CORE", -1, -1)),
                      additional_groups=("4242",))
    _run_in(tmp_path, ProcessSetup(fake, process, is_exec=False))
    order = names(fake.calls)
    assert order.index("setrlimit") < order.index("setresuid")
    assert ("setrlimit", RLIMITS["RLIMIT_NOFILE"], 1024, 2048) in fake.calls
    assert ("setrlimit", RLIMITS["RLIMIT_CORE"], (1 << 64) - 1, (1 << 64) - 1) in fake.calls
    assert ("setgroups", (0, 4242)) in fake.calls
