"""config.json and exit.json: round trips, atomic writes, and specs that are refused."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from pallet.v1.errors import InvalidArgument
from pallet.shim.api.spec import ExitStatus, Mount, RootFs, ShimSpec
from pallet.shim.api.files import (
    read_exit_status,
    read_spec,
    write_exit_status,
    write_spec,
)


def make_spec(bundle: Path) -> ShimSpec:
    return ShimSpec(
        container_id="abc123",
        bundle_dir=str(bundle),
        args=("sh", "-c", "echo hi"),
        env=("A=1",),
        cwd="/",
        user="app",
        hostname="box",
        rootfs=RootFs(("/l2", "/l1"), "/u", "/w", "/t"),
        log_path=str(bundle / "log"),
        mounts=(Mount("/etc/hosts", "bind", "/x/hosts", ("rbind", "ro")),),
        capabilities=("CAP_CHOWN",),
        cgroup_path="pallet/abc123",
    )


def test_spec_round_trips_through_config_json(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    write_spec(spec)
    assert read_spec(str(tmp_path)) == spec
    assert json.loads((tmp_path / "config.json").read_text())["rootfs"]["lower_dirs"] == ["/l2", "/l1"]
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temp file left


@pytest.mark.parametrize(
    "change, message",
    [
        ({"container_id": "../etc"}, "invalid container id"),
        ({"cgroup_path": "pallet/../../x"}, "invalid cgroup path"),
        ({"cgroup_path": "/abs"}, "invalid cgroup path"),
        ({"rootfs": RootFs(("/l,upperdir=/etc",), "/u", "/w", "/t")}, "invalid rootfs path"),
        ({"rootfs": RootFs(("relative",), "/u", "/w", "/t")}, "invalid rootfs path"),
        ({"rootfs": RootFs((), "/u", "/w", "/t")}, "at least one lower directory"),
        ({"args": ()}, "no command"),
        ({"hostname": "h" * 65}, "longer than 64 bytes"),
        ({"log_path": "relative.log"}, "log path 'relative.log' must be an absolute path"),
    ],
)
def test_bad_specs_are_refused_before_anything_is_written(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        write_spec(replace(make_spec(tmp_path), **change))  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_malformed_config_json_is_invalid_argument(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"container_id": "x"}')
    with pytest.raises(InvalidArgument, match="malformed shim spec"):
        read_spec(str(tmp_path))
    with pytest.raises(InvalidArgument, match="no shim spec"):
        read_spec(str(tmp_path / "missing"))


def test_exit_status_is_written_atomically_and_read_back(tmp_path: Path) -> None:
    assert read_exit_status(str(tmp_path)) is None
    status = ExitStatus(exit_code=137, exited_at_ns=5, error="")
    write_exit_status(str(tmp_path), status)
    assert read_exit_status(str(tmp_path)) == status
    assert [p.name for p in tmp_path.iterdir()] == ["exit.json"]
