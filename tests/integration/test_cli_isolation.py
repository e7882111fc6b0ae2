"""What a process inside a pallet container can see and do: namespaces, /proc, /dev, caps."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

# Docker's default capability set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID
# SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
DOCKER_DEFAULT_CAPS = "00000000a80425fb"


def run(palletd: Any, image: str, script: str, *flags: str) -> str:
    return str(palletd.cli_ok("run", "--rm", *flags, image, "sh", "-c", script))


def test_the_command_is_pid_1(palletd: Any, image: str) -> None:
    assert run(palletd, image, "echo $$") == "1\n"


def test_only_the_containers_processes_are_visible(palletd: Any, image: str) -> None:
    out = run(palletd, image, "ls -d /proc/[0-9]* | sed 's#/proc/##'")
    pids = sorted(int(p) for p in out.split())
    assert pids[0] == 1
    assert len(pids) <= 4, f"processes visible in the container: {pids}"


def test_hostname_is_the_containers_own(palletd: Any, image: str) -> None:
    assert run(palletd, image, "hostname; cat /proc/sys/kernel/hostname", "--hostname", "iso") == (
        "iso\niso\n"
    )
    assert socket.gethostname() != "iso"


def test_only_loopback_and_the_default_networks_interface_exist(palletd: Any, image: str) -> None:
    out = run(palletd, image, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '")
    assert sorted(out.split()) == ["eth0", "lo"]
    links = run(palletd, image, "ip -o link show | cut -d: -f2 | tr -d ' ' | cut -d@ -f1")
    assert sorted(links.split()) == ["eth0", "lo"]
    none = palletd.cli_ok("run", "--rm", "--network", "none", image, "sh", "-c",
                          "ip -o link show | cut -d: -f2 | tr -d ' '")
    assert none.split() == ["lo"]


def test_proc_sys_is_read_only(palletd: Any, image: str) -> None:
    before = Path("/proc/sys/kernel/hostname").read_text()
    result = palletd.cli(
        "run", "--rm", image, "sh", "-c", "echo hacked > /proc/sys/kernel/hostname"
    )
    assert result.returncode != 0
    assert "read-only" in result.stderr.lower()
    result = palletd.cli("run", "--rm", image, "touch", "/proc/sys/x")
    assert result.returncode != 0
    assert Path("/proc/sys/kernel/hostname").read_text() == before


def test_sensitive_proc_files_are_masked(palletd: Any, image: str) -> None:
    assert run(palletd, image, "cat /proc/kcore | wc -c").strip() == "0"


def test_bounding_set_is_dockers_default(palletd: Any, image: str) -> None:
    out = run(palletd, image, "grep -E '^Cap(Bnd|Eff|Prm)' /proc/1/status")
    caps = dict(line.split(":\t") for line in out.splitlines())
    assert caps["CapBnd"] == DOCKER_DEFAULT_CAPS
    assert caps["CapEff"] == DOCKER_DEFAULT_CAPS
    assert caps["CapPrm"] == DOCKER_DEFAULT_CAPS


def test_init_and_exec_have_exactly_dockers_default_capabilities(palletd: Any, image: str) -> None:
    """The daemon's list is the only one: the shim adds none and an exec gets the init's.

    Fails when `bundle.DEFAULT_CAPABILITIES` is emptied (the shim once filled in Docker's
    set itself, so that went unnoticed) or when an exec is given other privileges.
    """
    cid = palletd.cli_ok("run", "-d", image, "sleep", "300").strip()
    try:
        fields = "grep -E '^(Cap(Bnd|Eff|Prm|Inh)|NoNewPrivs)' /proc/{}/status"
        init = palletd.cli_ok("exec", cid, "sh", "-c", fields.format(1))
        execd = palletd.cli_ok("exec", cid, "sh", "-c", fields.format("self"))
    finally:
        palletd.cli_ok("rm", "-f", cid)
    for out in (init, execd):
        caps = dict(line.split(":\t") for line in out.splitlines())
        assert caps == {
            "CapInh": "0000000000000000", "CapPrm": DOCKER_DEFAULT_CAPS,
            "CapEff": DOCKER_DEFAULT_CAPS, "CapBnd": DOCKER_DEFAULT_CAPS, "NoNewPrivs": "0",
        }, out


def test_a_non_root_user_has_no_capabilities(palletd: Any, image: str) -> None:
    out = run(palletd, image, "grep -E '^Cap(Bnd|Eff)' /proc/self/status", "-u", "app")
    caps = dict(line.split(":\t") for line in out.splitlines())
    assert caps["CapEff"] == "0000000000000000"
    assert caps["CapBnd"] == DOCKER_DEFAULT_CAPS


def test_no_new_privileges_is_dockers_set_only_when_asked(palletd: Any, image: str) -> None:
    assert run(palletd, image, "grep NoNewPrivs /proc/self/status") == "NoNewPrivs:\t0\n"
    assert run(palletd, image, "grep NoNewPrivs /proc/self/status",
               "--security-opt", "no-new-privileges") == "NoNewPrivs:\t1\n"


def test_dev_has_the_standard_devices(palletd: Any, image: str) -> None:
    out = run(
        palletd,
        image,
        "for d in null zero random urandom tty full; do test -c /dev/$d && echo $d; done;"
        " test -d /dev/pts && echo pts; test -d /dev/shm && echo shm;"
        " echo discarded > /dev/null && echo null-writable;"
        " head -c 16 /dev/urandom | wc -c; head -c 4 /dev/zero | od -An -tx1",
    )
    lines = out.split("\n")
    for name in ("null", "zero", "random", "urandom", "tty", "pts", "shm", "null-writable"):
        assert name in lines, f"/dev/{name} missing or unusable:\n{out}"
    assert "16" in lines
    assert "00 00 00 00" in out
    # Host devices are not there.
    assert run(palletd, image, "ls /dev | grep -cE '^(sda|nvme|vda|mem|kmsg)' || true") == "0\n"


def test_dev_shm_and_dev_pts_are_their_own_mounts(palletd: Any, image: str) -> None:
    mounts = run(palletd, image, "cat /proc/mounts")
    by_point = {line.split()[1]: line.split()[2] for line in mounts.splitlines()}
    assert by_point.get("/dev/shm") == "tmpfs"
    assert by_point.get("/dev/pts") == "devpts"
    assert by_point.get("/proc") == "proc"
    assert by_point.get("/") == "overlay"
    assert run(palletd, image, "echo x > /dev/shm/f && cat /dev/shm/f") == "x\n"


def test_writes_stay_in_the_container(palletd: Any, image: str) -> None:
    assert run(palletd, image, "echo mine > /etc/pallet-test-image; cat /etc/pallet-test-image") == (
        "mine\n"
    )
    # The image, and so the next container, is unchanged.
    assert run(palletd, image, "cat /etc/pallet-test-image") == "busybox\n"


def test_namespaces_and_cgroups_seen_from_the_host(palletd: Any, image: str) -> None:
    cid = palletd.cli_ok("run", "-d", image, "sleep", "300").strip()
    pid = palletd.inspect(cid)["State"]["Pid"]
    assert pid > 0
    for ns in ("mnt", "pid", "net", "uts", "ipc"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
    # Its cgroup is <cgroup-parent>/<id> in every hierarchy that has controllers.
    paths = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        paths[controllers] = path
    v2 = list(paths) == [""]  # one tree, no controller names
    for controller in [""] if v2 else ["pids", "memory"]:
        [key] = [k for k in paths if controller in k.split(",")]
        assert paths[key] == f"/{palletd.cgroup_parent}/{cid}", paths
    assert palletd.container_cgroups(cid), "no cgroup directory for the container"
    palletd.cli_ok("rm", "-f", cid)
    palletd.wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10, what="container exit")
    assert palletd.container_cgroups(cid) == []
