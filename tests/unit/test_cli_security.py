"""run/create's security flags, as docker's CLI reads them, and their way through the API
edge's conversions (ContainerConfig <-> HostConfig.security) and back into inspect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pallet.client.cli import parse_args
from pallet.client.requests import container_config
from pallet.client.secopts import parse_device, parse_size, parse_ulimit
from pallet.client.views import host_config_security
from pallet.daemon.api import convert
from pallet.daemon.containers.model import DeviceMapping, Ulimit
from pallet.v1.errors import InvalidArgument


def test_security_flags_become_a_container_config(tmp_path: Path) -> None:
    profile = tmp_path / "p.json"
    profile.write_text('{\n  "defaultAction": "SCMP_ACT_ALLOW"\n}\n')
    cfg = container_config(parse_args([
        "run", "--cap-add", "NET_ADMIN", "--cap-drop", "ALL", "--privileged",
        "--security-opt", f"seccomp={profile}", "--security-opt", "no-new-privileges",
        "--read-only", "--device", "/dev/fuse", "--device", "/dev/null:/dev/n:r",
        "--ulimit", "nofile=1024:2048", "--ulimit", "core=-1", "--sysctl", "kernel.shmmni=9",
        "--shm-size", "128m", "--group-add", "staff", "--userns", "host", "busybox",
    ]), {})
    assert list(cfg.cap_add) == ["NET_ADMIN"] and list(cfg.cap_drop) == ["ALL"]
    assert cfg.privileged and cfg.read_only
    # The profile's text goes, compacted, as docker's CLI sends it: palletd reads no file.
    assert list(cfg.security_opt) == ['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}', "no-new-privileges"]
    assert [(d.path_on_host, d.path_in_container, d.cgroup_permissions) for d in cfg.devices] == [
        ("/dev/fuse", "/dev/fuse", "rwm"), ("/dev/null", "/dev/n", "r")]
    assert [(u.name, u.soft, u.hard) for u in cfg.ulimits] == [("nofile", 1024, 2048), ("core", -1, -1)]
    assert dict(cfg.sysctls) == {"kernel.shmmni": "9"}
    assert cfg.shm_size == 128 << 20 and list(cfg.group_add) == ["staff"] and cfg.userns_mode == "host"
    # Through the daemon's edge and back, as inspect shows it.
    sec = convert.security(cfg)
    assert sec.devices[1] == DeviceMapping("/dev/null", "/dev/n", "r")
    assert sec.ulimits[0] == Ulimit("nofile", 1024, 2048)
    from pallet.v1 import containers_pb2

    back = containers_pb2.ContainerConfig(**convert.security_fields(sec))  # type: ignore[arg-type]
    shown = host_config_security(back)
    assert shown["Ulimits"] == [{"Name": "nofile", "Hard": 2048, "Soft": 1024}, {"Name": "core", "Hard": -1, "Soft": -1}]
    assert shown["Devices"][0] == {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"}
    assert shown["ShmSize"] == 128 << 20 and shown["Privileged"] is True
    json.dumps(shown)


def test_no_security_flags_mean_docker_defaults() -> None:
    cfg = container_config(parse_args(["run", "busybox"]), {})
    shown = host_config_security(cfg)
    assert shown["CapAdd"] is None and shown["SecurityOpt"] is None and shown["Devices"] == []
    assert not cfg.privileged and not cfg.read_only and cfg.shm_size == 0


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: parse_device("/dev/a:/dev/b:rwx"), "mode"),
        (lambda: parse_device("/dev/a:/dev/b:r:w"), "use /dev/X"),
        (lambda: parse_ulimit("nofile"), r"use NAME=SOFT\[:HARD\]"),
        (lambda: parse_ulimit("nofile=a:b"), "limits are numbers"),
        (lambda: parse_size("lots", "--shm-size"), "--shm-size"),
    ],
)
def test_bad_flags_say_what_to_give(call: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        call()  # type: ignore[operator]


def test_a_missing_profile_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="cannot read the profile"):
        container_config(parse_args(["run", "--security-opt", f"seccomp={tmp_path}/none.json", "busybox"]), {})


def test_ulimit_hard_defaults_to_soft_and_sizes_take_docker_units() -> None:
    assert (parse_ulimit("nproc=64").soft, parse_ulimit("nproc=64").hard) == (64, 64)
    assert parse_size("64m", "--shm-size") == 64 << 20 and parse_size("1g", "x") == 1 << 30
    assert parse_size("512kb", "x") == 512 << 10 and parse_size("100", "x") == 100
