"""Security options, as a user sees them: seccomp, capabilities, --privileged, --read-only,
devices, ulimits, sysctls, /dev/shm, groups; and every bad input refused at create."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

DOCKER_DEFAULT_CAPS = 0xA80425FB
CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
CAP_MKNOD = 27


def run(palletd: Any, image: str, script: str, *flags: str) -> str:
    return str(palletd.cli_ok("run", "--rm", *flags, image, "sh", "-c", script))


def status(palletd: Any, image: str, *flags: str) -> dict[str, str]:
    out = run(palletd, image, "cat /proc/self/status", *flags)
    return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)


def refused(palletd: Any, image: str, *flags: str) -> str:
    """A create that must fail, as INVALID_ARGUMENT, leaving no container behind."""
    before = palletd.cli_ok("ps", "-aq")
    result = palletd.cli("create", *flags, image, "true")
    assert result.returncode != 0, f"create {flags} was accepted"
    assert palletd.cli_ok("ps", "-aq") == before
    return str(result.stderr)


# ---- seccomp ------------------------------------------------------------------------


def test_the_default_seccomp_profile_confines_init_and_exec(palletd: Any, image: str) -> None:
    st = status(palletd, image)
    assert st["Seccomp"].strip() == "2"  # SECCOMP_MODE_FILTER
    assert st["NoNewPrivs"].strip() == "0"  # docker's default: not set unless asked
    cid = palletd.cli_ok("run", "-d", image, "sleep", "60").strip()
    try:
        out = palletd.cli_ok("exec", cid, "grep", "^Seccomp:", "/proc/self/status")
        assert out.split()[-1] == "2"
    finally:
        palletd.cli("rm", "-f", cid)


def test_seccomp_blocks_what_dockers_profile_blocks_and_unconfined_allows_it(
    palletd: Any, image: str
) -> None:
    # A user namespace needs no capability, so only the filter stops it (unshare is
    # allowed only with CAP_SYS_ADMIN in Docker's profile).
    blocked = palletd.cli("run", "--rm", image, "unshare", "-U", "true")
    assert blocked.returncode != 0
    assert "not permitted" in blocked.stderr.lower()
    st = status(palletd, image, "--security-opt", "seccomp=unconfined")
    assert st["Seccomp"].strip() == "0"
    assert run(palletd, image, "unshare -U true && echo made", "--security-opt", "seccomp=unconfined") == "made\n"


def test_a_custom_profile_is_dockers_format(palletd: Any, image: str, tmp_path: Path) -> None:
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
    }))
    result = palletd.cli("run", "--rm", "--security-opt", f"seccomp={profile}", image,
                         "sh", "-c", "mkdir /made")
    assert result.returncode != 0
    assert "permission denied" in result.stderr.lower()
    # Anything else is allowed by that profile: a user namespace too.
    out = run(palletd, image, "unshare -U true && echo ok", "--security-opt", f"seccomp={profile}")
    assert out == "ok\n"
    cid = palletd.cli_ok("create", "--security-opt", f"seccomp={profile}", image, "true").strip()
    try:
        info = json.loads(palletd.cli_ok("inspect", cid))[0]
        opts = info["HostConfig"]["SecurityOpt"]
        assert len(opts) == 1 and opts[0].startswith("seccomp=")
        assert json.loads(opts[0].removeprefix("seccomp="))["defaultAction"] == "SCMP_ACT_ALLOW"
    finally:
        palletd.cli("rm", "-f", cid)


@pytest.mark.parametrize(
    "profile, message",
    [
        ("{not json", "not json"),
        ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["no_such_call"], '
         '"action": "SCMP_ACT_ERRNO"}]}', "unknown system call 'no_such_call'"),
        ('{"defaultAction": "SCMP_ACT_FROB"}', "unknown action"),
    ],
)
def test_a_bad_profile_is_refused_at_create(
    palletd: Any, image: str, tmp_path: Path, profile: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(profile)
    err = refused(palletd, image, "--security-opt", f"seccomp={path}")
    assert message in err.lower() or message in err


def test_no_new_privileges_is_set_when_asked(palletd: Any, image: str) -> None:
    st = status(palletd, image, "--security-opt", "no-new-privileges")
    assert st["NoNewPrivs"].strip() == "1"
    assert st["Seccomp"].strip() == "2"


# ---- capabilities, privileged -------------------------------------------------------


def _caps(st: dict[str, str], key: str) -> int:
    return int(st[key].strip(), 16)


def test_cap_add_and_drop_show_in_proc_status(palletd: Any, image: str) -> None:
    st = status(palletd, image, "--cap-add", "NET_ADMIN", "--cap-drop", "CAP_MKNOD")
    expected = (DOCKER_DEFAULT_CAPS | 1 << CAP_NET_ADMIN) & ~(1 << CAP_MKNOD)
    assert _caps(st, "CapEff") == expected and _caps(st, "CapBnd") == expected
    st = status(palletd, image, "--cap-drop", "ALL", "--cap-add", "chown")
    assert _caps(st, "CapEff") == 1 and _caps(st, "CapBnd") == 1
    st = status(palletd, image, "--cap-drop", "all")
    assert _caps(st, "CapEff") == 0


def test_cap_add_sys_admin_lets_the_profile_allow_unshare(palletd: Any, image: str) -> None:
    out = run(palletd, image, "unshare -U true && echo ok", "--cap-add", "SYS_ADMIN")
    assert out == "ok\n"


def test_privileged_has_every_capability_no_filter_no_masks_host_devices(
    palletd: Any, image: str
) -> None:
    st = status(palletd, image, "--privileged")
    own = int(next(line for line in Path("/proc/self/status").read_text().splitlines()
                   if line.startswith("CapBnd:")).split()[1], 16)
    assert _caps(st, "CapEff") == own
    assert st["Seccomp"].strip() == "0"
    script = "grep -c -E ' /proc/(kcore|sys) ' /proc/mounts; ls /dev"
    count, *devs = run(palletd, image, script, "--privileged").split()
    assert count == "0"  # nothing masked, nothing made read-only
    assert run(palletd, image, "grep -c -E ' /proc/(kcore|sys) ' /proc/mounts").strip() != "0"
    host = {d for d in os.listdir("/dev") if d in ("kmsg", "loop-control", "mem")}
    assert host and host <= set(devs)


def test_unknown_capability_is_refused(palletd: Any, image: str) -> None:
    err = refused(palletd, image, "--cap-add", "NET_FROB")
    assert "unknown capability 'NET_FROB'" in err


# ---- read-only root ----------------------------------------------------------------


def test_read_only_root_keeps_dev_shm_tmpfs_and_volumes_writable(
    palletd: Any, image: str, tmp_path: Path
) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    out = run(
        palletd, image,
        "touch /x 2>/dev/null && echo root-writable; "
        "touch /tmp/t /dev/shm/s /data/v /dev/t && echo others-writable",
        "--read-only", "--tmpfs", "/tmp", "-v", f"{vol}:/data",
    )
    assert out == "others-writable\n"
    assert (vol / "v").exists()
    cid = palletd.cli_ok("create", "--read-only", image, "true").strip()
    try:
        assert json.loads(palletd.cli_ok("inspect", cid))[0]["HostConfig"]["ReadonlyRootfs"] is True
    finally:
        palletd.cli("rm", "-f", cid)


# ---- devices -------------------------------------------------------------------------


def test_device_is_made_where_asked(palletd: Any, image: str) -> None:
    out = run(palletd, image, "ls -l /dev/mynull | cut -c1; echo hi > /dev/mynull && echo wrote",
              "--device", "/dev/null:/dev/mynull")
    assert out == "c\nwrote\n"


def test_the_device_cgroup_blocks_a_node_it_does_not_allow(palletd: Any, image: str) -> None:
    """CAP_MKNOD lets a container make any node (docker's "c *:* m"), but only the
    allow-list (and --device) may be opened: /dev/loop-control's 10:237 is not on it."""
    script = "mknod /dev/lc c 10 237 && (exec 3</dev/lc) && echo opened"
    blocked = palletd.cli("run", "--rm", image, "sh", "-c", script)
    assert blocked.returncode != 0 and "opened" not in blocked.stdout
    assert "not permitted" in blocked.stderr.lower()
    if os.path.exists("/dev/loop-control"):  # a VM without the loop module has none
        assert run(palletd, image, script, "--device", "/dev/loop-control:/dev/lc2") == "opened\n"
    assert run(palletd, image, script, "--privileged") == "opened\n"


def test_the_v2_device_program_blocks_what_it_does_not_allow(tmp_path: Path) -> None:
    """The eBPF program itself, on this host's cgroup2 tree (a hybrid host's unified
    mount, or a v2 host's root): a process in the cgroup opens /dev/null, not
    /dev/loop-control."""
    from pallet.daemon.containers.security import DEFAULT_DEVICE_RULES
    from pallet.shim.cgroups import devices
    from pallet.shim.syscalls import LibcSyscalls

    root = next((r for r in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")
                 if os.path.exists(f"{r}/cgroup.procs") and os.path.exists(f"{r}/cgroup.subtree_control")), None)
    if root is None or not os.path.exists("/dev/loop-control"):
        pytest.skip("no cgroup2 mount, or no /dev/loop-control to be refused")
    group = f"{root}/pallet-test-devices-{os.getpid()}"
    os.mkdir(group)
    try:
        devices.attach_v2(group, DEFAULT_DEVICE_RULES, LibcSyscalls())
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                with open(f"{group}/cgroup.procs", "w") as f:
                    f.write(str(os.getpid()))
                answers = []
                for path in ("/dev/null", "/dev/loop-control"):
                    try:
                        os.close(os.open(path, os.O_RDONLY))
                        answers.append("ok")
                    except OSError as exc:
                        answers.append(exc.strerror or "error")
                os.write(w, ",".join(answers).encode())
            finally:
                os._exit(0)
        os.close(w)
        answer = os.read(r, 200).decode()
        os.close(r)
        os.waitpid(pid, 0)
        assert answer == "ok,Operation not permitted"
    finally:
        os.rmdir(group)


def test_a_missing_device_is_refused(palletd: Any, image: str) -> None:
    err = refused(palletd, image, "--device", "/dev/no-such-device")
    assert "/dev/no-such-device" in err and "device node" in err


# ---- ulimits, sysctls, /dev/shm, groups, userns ------------------------------------


def test_ulimit_is_the_containers(palletd: Any, image: str) -> None:
    out = run(palletd, image, "ulimit -Sn; ulimit -Hn", "--ulimit", "nofile=1024:2048")
    assert out.split() == ["1024", "2048"]
    cid = palletd.cli_ok("create", "--ulimit", "nofile=1024:2048", image, "true").strip()
    try:
        info = json.loads(palletd.cli_ok("inspect", cid))[0]
        assert info["HostConfig"]["Ulimits"] == [{"Name": "nofile", "Hard": 2048, "Soft": 1024}]
    finally:
        palletd.cli("rm", "-f", cid)


@pytest.mark.parametrize(
    "flag, message",
    [
        ("nofrob=1", "unknown ulimit 'nofrob'"),
        ("nofile=2048:1024", "soft limit is above the hard one"),
        ("nofile=1024:10000000", "above this host's hard limit"),
    ],
)
def test_bad_ulimits_are_refused(palletd: Any, image: str, flag: str, message: str) -> None:
    assert message in refused(palletd, image, "--ulimit", flag)


def test_sysctl_is_set_in_the_containers_own_network_namespace(palletd: Any, image: str) -> None:
    out = run(palletd, image, "cat /proc/sys/net/ipv4/ip_forward", "--sysctl", "net.ipv4.ip_forward=1")
    assert out == "1\n"
    out = run(palletd, image, "cat /proc/sys/kernel/shmmni", "--sysctl", "kernel.shmmni=1234")
    assert out == "1234\n"


@pytest.mark.parametrize(
    "flags, message",
    [
        (("--sysctl", "kernel.core_pattern=x"), "not namespaced"),
        (("--sysctl", "vm.swappiness=1"), "not namespaced"),
        (("--network", "host", "--sysctl", "net.ipv4.ip_forward=1"), "own network namespace"),
    ],
)
def test_non_namespaced_sysctls_are_refused(
    palletd: Any, image: str, flags: tuple[str, ...], message: str
) -> None:
    assert message in refused(palletd, image, *flags)


def test_shm_size(palletd: Any, image: str) -> None:
    default = run(palletd, image, "df -k /dev/shm | tail -1")
    assert default.split()[1] == "65536"
    sized = run(palletd, image, "df -k /dev/shm | tail -1", "--shm-size", "128m")
    assert sized.split()[1] == "131072"


def test_group_add(palletd: Any, image: str) -> None:
    out = run(palletd, image, "id -G", "--group-add", "4242", "--group-add", "staff")
    # root's own, then 4242 and staff's gid from the image's /etc/group
    assert sorted(out.split(), key=int) == ["0", "50", "4242"]
    assert "no-such-group" in palletd.cli("run", "--rm", "--group-add", "no-such-group", image, "true").stderr


def test_userns_is_refused_until_user_namespaces_exist(palletd: Any, image: str) -> None:
    assert "no user namespaces" in refused(palletd, image, "--userns", "keep-id")


def test_security_options_are_kept_across_a_daemon_restart(palletd: Any, image: str) -> None:
    cid = palletd.cli_ok(
        "create", "--cap-add", "NET_ADMIN", "--read-only", "--shm-size", "32m",
        "--ulimit", "nofile=512:1024", "--sysctl", "kernel.shmmni=999", "--group-add", "42",
        image, "sh", "-c", "grep CapEff /proc/self/status; ulimit -n; cat /proc/sys/kernel/shmmni",
    ).strip()
    try:
        palletd.restart()
        host = json.loads(palletd.cli_ok("inspect", cid))[0]["HostConfig"]
        assert host["CapAdd"] == ["CAP_NET_ADMIN"]
        assert host["ReadonlyRootfs"] is True and host["ShmSize"] == 32 << 20
        assert host["Sysctls"] == {"kernel.shmmni": "999"} and host["GroupAdd"] == ["42"]
        palletd.cli_ok("start", cid)
        assert palletd.cli_ok("wait", cid).strip() == "0"
        lines = palletd.cli_ok("logs", cid).split("\n")
        assert int(lines[0].split()[-1], 16) == DOCKER_DEFAULT_CAPS | 1 << CAP_NET_ADMIN
        assert lines[1:3] == ["512", "999"]
    finally:
        palletd.cli("rm", "-f", cid)

