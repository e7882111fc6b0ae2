"""The daemon's defaults for the shim's spec, and the exec's complete process."""

from __future__ import annotations

import pytest

from pallet.daemon.containers import bundle
from pallet.daemon.containers.model import Config, Container, ContainerState
from pallet.shim import caps
from pallet.shim.api.files import validate_spec
from pallet.shim.api.spec import Namespace, Root, ShimSpec
from pallet.v1.errors import InvalidArgument


def container(**config: object) -> Container:
    return Container(
        id="c" * 64,
        name="web",
        image_id="sha256:" + "ab" * 32,
        config=Config(image="busybox", cmd=("sleep", "9"), hostname="web1", **config),  # type: ignore[arg-type]
        state=ContainerState(),
        created_ns=1,
        state_dir="/var/lib/pallet/containers/" + "c" * 64,
    )


def test_the_spec_carries_dockers_defaults() -> None:
    c = container(env=("PATH=/bin", "A=1"), working_dir="/srv", user="app", open_stdin=True)
    root = Root(f"{c.state_dir}/rootfs", ("/l1",), f"{c.state_dir}/upper", f"{c.state_dir}/work", False)
    spec = validate_spec(ShimSpec(
        container_id=c.id, bundle_dir=c.state_dir, hostname=c.config.hostname,
        process=bundle.container_process(c), root=root, mounts=bundle.container_mounts(c),
        linux=bundle.container_linux(c, "pallet"), log=bundle.container_log(c),
    ))
    assert caps.mask_of(spec.process.capabilities) == 0xA80425FB
    assert (spec.process.env, spec.process.cwd, spec.process.user, spec.process.stdin) == (
        ("PATH=/bin", "A=1"), "/srv", "app", True
    )
    # Docker's: no_new_privileges only when --security-opt no-new-privileges asks.
    assert not spec.process.no_new_privileges
    assert [ns.type for ns in spec.linux.namespaces] == ["pid", "ipc", "uts", "mount", "network", "cgroup"]
    assert all(ns.path == "" for ns in spec.linux.namespaces)
    assert {d.path for d in spec.linux.devices} == {
        "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"
    }
    assert "/proc/kcore" in spec.linux.masked_paths and "/proc/sys" in spec.linux.readonly_paths
    assert spec.linux.cgroups_path == f"pallet/{c.id}"
    # Docker's standard mounts, in Docker's order, before the /etc binds; and its
    # propagation. The shim mounts none of them of its own accord.
    assert [(m.destination, m.type) for m in spec.mounts] == [
        ("/proc", "proc"), ("/dev", "tmpfs"), ("/dev/pts", "devpts"), ("/sys", "sysfs"),
        ("/dev/mqueue", "mqueue"), ("/dev/shm", "tmpfs"),
        ("/etc/hostname", "bind"), ("/etc/hosts", "bind"), ("/etc/resolv.conf", "bind"),
    ]
    options = {m.destination: set(m.options) for m in spec.mounts}
    assert options["/sys"] == {"ro", "nosuid", "noexec", "nodev"}
    assert options["/dev/shm"] == {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}
    assert options["/dev/pts"] == {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}
    assert spec.linux.rootfs_propagation == "rslave"
    joined = bundle.container_linux(c, "pallet", network_path="/run/pallet/netns/x")
    assert Namespace("network", "/run/pallet/netns/x") in joined.namespaces


def test_an_exec_process_is_complete_and_no_more_privileged_than_the_init() -> None:
    c = container(env=("PATH=/bin", "A=container", "B=container"), working_dir="/srv", user="app")
    plain = bundle.exec_process(c, ("sh",), (), "", "", False)
    assert (plain.env, plain.cwd, plain.user, plain.stdin) == (
        ("PATH=/bin", "A=container", "B=container"), "/srv", "app", False
    )
    assert plain.capabilities == bundle.container_process(c).capabilities
    assert plain.no_new_privileges == bundle.container_process(c).no_new_privileges
    own = bundle.exec_process(c, ("id",), ("B=exec", "C=exec"), "/tmp", "root", True)
    assert own.env == ("PATH=/bin", "A=container", "B=exec", "C=exec")
    assert (own.args, own.cwd, own.user, own.stdin) == (("id",), "/tmp", "root", True)
    # No working directory anywhere: "/", never empty (the shim would refuse it).
    assert bundle.exec_process(container(), ("sh",), (), "", "", False).cwd == "/"
    # Refused before the exec is recorded, as docker refuses it.
    with pytest.raises(InvalidArgument, match="needs to be an absolute path"):
        bundle.exec_process(c, ("sh",), (), "tmp", "", False)
