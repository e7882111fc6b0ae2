"""config.json and exit.json: round trips, atomic writes, and specs that are refused."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pallet.v1.errors import InvalidArgument
from pallet.shim.api.spec import (
    Device,
    ExecSpec,
    ExitStatus,
    Linux,
    Log,
    Mount,
    Namespace,
    Process,
    Root,
    ShimSpec,
)
from pallet.shim.api import codec
from pallet.shim.api.files import (
    validate_exec,
    read_exit_status,
    read_spec,
    write_exit_status,
    write_spec,
)

PROCESS = Process(
    args=("sh", "-c", "echo hi"), env=("A=1",), cwd="/", user="app",
    capabilities=("CAP_CHOWN",), no_new_privileges=True, stdin=False,
)
NAMESPACES = tuple(Namespace(t) for t in ("pid", "ipc", "uts", "mount", "network", "cgroup"))


def make_spec(bundle: Path) -> ShimSpec:
    return ShimSpec(
        container_id="abc123",
        bundle_dir=str(bundle),
        hostname="box",
        process=PROCESS,
        root=Root("/t", ("/l2", "/l1"), "/u", "/w", readonly=False),
        mounts=(Mount("/etc/hosts", "bind", "/x/hosts", ("rbind", "ro")),),
        linux=Linux(
            namespaces=NAMESPACES,
            cgroups_path="pallet/abc123",
            masked_paths=("/proc/kcore",),
            readonly_paths=("/proc/sys",),
            devices=(Device("/dev/null", "c", 1, 3, 0o666, 0, 0),),
            sysctl={"net.ipv4.ip_forward": "1"},
            rootfs_propagation="rslave",
            seccomp="",
            device_cgroup=(),
        ),
        log=Log(str(bundle / "log"), max_size=0, max_files=1),
    )


def test_spec_round_trips_through_config_json(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    write_spec(spec)
    assert read_spec(str(tmp_path)) == spec
    raw = json.loads((tmp_path / "config.json").read_text())
    assert raw["root"]["layers"] == ["/l2", "/l1"]
    assert raw["linux"]["namespaces"][4] == {"type": "network", "path": ""}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temp file left


def test_empty_lists_stay_empty(tmp_path: Path) -> None:
    """No capabilities, no masked paths, no devices: the shim must not see a default."""
    spec = make_spec(tmp_path)
    bare = replace(
        spec,
        process=replace(spec.process, capabilities=()),
        linux=replace(spec.linux, masked_paths=(), readonly_paths=(), devices=(), sysctl={}),
    )
    write_spec(bare)
    assert read_spec(str(tmp_path)) == bare


def _linux(spec: ShimSpec, **change: Any) -> ShimSpec:
    return replace(spec, linux=replace(spec.linux, **change))


def _ns(*types: str, **paths: str) -> tuple[Namespace, ...]:
    return tuple(Namespace(t, paths.get(t, "")) for t in types)


def _device(**change: Any) -> tuple[Device, ...]:
    return (replace(Device("/dev/null", "c", 1, 3, 0o666, 0, 0), **change),)


ALL = ("pid", "ipc", "uts", "mount", "network", "cgroup")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: replace(s, container_id="../etc"), "invalid container id"),
        (lambda s: _linux(s, cgroups_path="pallet/../../x"), "invalid cgroup path"),
        (lambda s: _linux(s, cgroups_path="/abs"), "invalid cgroup path"),
        (lambda s: replace(s, root=replace(s.root, layers=("/l,upperdir=/etc",))), "invalid rootfs path"),
        (lambda s: replace(s, root=replace(s.root, layers=("relative",))), "invalid rootfs path"),
        (lambda s: replace(s, root=replace(s.root, layers=())), "at least one lower directory"),
        (lambda s: replace(s, process=replace(s.process, args=())), "no command"),
        (lambda s: replace(s, process=replace(s.process, cwd="rel")), "must be an absolute path"),
        (lambda s: replace(s, process=replace(s.process, env=("NOEQUALS",))), "use KEY=value"),
        (lambda s: replace(s, hostname="h" * 65), "longer than 64 bytes"),
        (lambda s: replace(s, log=replace(s.log, path="relative.log")),
         "log path 'relative.log' must be an absolute path"),
        (lambda s: replace(s, log=replace(s.log, max_files=0)), "invalid log rotation"),
        (lambda s: _linux(s, namespaces=_ns(*ALL, "user")), "unknown namespace type 'user'"),
        (lambda s: _linux(s, namespaces=_ns(*ALL, "pid")), "pid namespace is listed twice"),
        (lambda s: _linux(s, namespaces=_ns(*ALL, network="run/netns/x")), "must be absolute"),
        (lambda s: _linux(s, namespaces=_ns("pid", "uts", "network")), "new mount namespace"),
        (lambda s: _linux(s, namespaces=_ns(*ALL, mount="/proc/1/ns/mnt")), "new mount namespace"),
        (lambda s: _linux(s, namespaces=_ns("pid", "mount", "network")), "own uts namespace"),
        (lambda s: _linux(s, devices=_device(path="/dev/../etc/x")), "invalid device path"),
        (lambda s: _linux(s, devices=_device(path="/etc/null")), "invalid device path"),
        (lambda s: _linux(s, devices=_device(type="p")), "invalid device type"),
        (lambda s: _linux(s, devices=_device(major=-1)), "invalid device number"),
        (lambda s: _linux(s, devices=_device(file_mode=0o4777)), "invalid file mode"),
        (lambda s: _linux(s, devices=_device() * 2), "listed twice"),
        (lambda s: _linux(s, sysctl={"net/ipv4/../../x": "1"}), "invalid sysctl"),
        (lambda s: _linux(s, sysctl={"net..ipv4": "1"}), "invalid sysctl"),
        (lambda s: _linux(s, sysctl={"kernel.core_pattern": "|/x"}), "not namespaced"),
        (lambda s: _linux(s, sysctl={"net.ipv4.ip_forward": "1\n2"}), "one line"),
        (lambda s: _linux(s, namespaces=_ns("pid", "ipc", "uts", "mount"),
                          sysctl={"net.ipv4.ip_forward": "1"}), "own network namespace"),
        (lambda s: _linux(s, masked_paths=("proc/kcore",)), "must be absolute"),
        (lambda s: _linux(s, devices=()), "masked paths need /dev/null"),
        (lambda s: _linux(s, rootfs_propagation=""), "invalid rootfs propagation"),
        (lambda s: _linux(s, rootfs_propagation="slave,ro"), "invalid rootfs propagation"),
        (lambda s: replace(s, mounts=(Mount("/x", "nfs", "srv:/x"),)), "unknown type 'nfs'"),
        (lambda s: replace(s, mounts=(Mount("/x", "bind", "rel"),)), "must be absolute"),
        (lambda s: replace(s, mounts=(Mount("x", "tmpfs", "tmpfs"),)), "must be absolute"),
        (lambda s: replace(s, mounts=(Mount("/x", "tmpfs", "tmpfs", ("size=1m,mode=777",)),)),
         "option 'size=1m,mode=777' is not one a tmpfs mount takes"),
        (lambda s: replace(s, mounts=(Mount("/p", "proc", "proc", ("size=1m",)),)),
         "option 'size=1m' is not one a proc mount takes"),
        (lambda s: replace(s, mounts=(Mount("/x", "bind", "/y", ("frobnicate",)),)),
         "option 'frobnicate' is not one a bind mount takes"),
    ],
)
def test_bad_specs_are_refused_before_anything_is_written(
    tmp_path: Path, change: Any, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        write_spec(change(make_spec(tmp_path)))
    assert list(tmp_path.iterdir()) == []


def test_a_spec_without_a_security_field_is_refused(tmp_path: Path) -> None:
    """Nothing is filled in by the shim: a spec that does not say is malformed."""
    write_spec(make_spec(tmp_path))
    raw = json.loads((tmp_path / "config.json").read_text())
    for part, name in (("process", "capabilities"), ("linux", "masked_paths"),
                       ("linux", "rootfs_propagation"),
                       ("linux", "devices"), ("linux", "namespaces")):
        broken = json.loads(json.dumps(raw))
        del broken[part][name]
        (tmp_path / "config.json").write_text(json.dumps(broken))
        with pytest.raises(InvalidArgument, match=f"missing field '{name}'"):
            read_spec(str(tmp_path))


def test_malformed_config_json_is_invalid_argument(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"container_id": "x"}')
    with pytest.raises(InvalidArgument, match="malformed shim spec"):
        read_spec(str(tmp_path))
    (tmp_path / "config.json").write_text('{not json')
    with pytest.raises(InvalidArgument, match="is not JSON"):
        read_spec(str(tmp_path))
    with pytest.raises(InvalidArgument, match="no shim spec"):
        read_spec(str(tmp_path / "missing"))


def test_exec_spec_round_trips_and_is_checked() -> None:
    spec = ExecSpec("e1", replace(PROCESS, stdin=True))
    assert validate_exec(codec.loads(ExecSpec, codec.dumps(spec))) == spec
    with pytest.raises(InvalidArgument, match="invalid exec id"):
        validate_exec(replace(spec, exec_id="../x"))
    with pytest.raises(InvalidArgument, match="no command"):
        validate_exec(replace(spec, process=replace(PROCESS, args=())))
    with pytest.raises(InvalidArgument, match="must be an absolute path"):
        validate_exec(replace(spec, process=replace(PROCESS, cwd="")))
    with pytest.raises(InvalidArgument, match="missing field 'process'"):
        codec.from_json(ExecSpec, {"exec_id": "e1", "args": ["true"]}, ignore_unknown=True)


def test_exit_status_is_written_atomically_and_read_back(tmp_path: Path) -> None:
    assert read_exit_status(str(tmp_path)) is None
    status = ExitStatus(exit_code=137, exited_at_ns=5, error="")
    write_exit_status(str(tmp_path), status)
    assert read_exit_status(str(tmp_path)) == status
    assert [p.name for p in tmp_path.iterdir()] == ["exit.json"]
