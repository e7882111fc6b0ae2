"""`pallet-shim delete` as the daemon runs it: result, refusal, deadline (no cgroup is
touched: the container's cgroup path names none that exists)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from pallet.v1.errors import DeadlineExceeded, FailedPrecondition, Internal, InvalidArgument
from pallet.daemon.shims.delete import shim_delete
from pallet.shim.api import sockpath
from pallet.shim.api.delete import DeleteResult

CID = "c" * 64
NO_CGROUP = f"pallet-unit-test-{os.getpid()}/{CID}"


def _socket_file(run_root: Path) -> Path:
    (run_root / "shims").mkdir(parents=True, exist_ok=True)
    return run_root / "shims" / f"{CID}.sock"


async def test_a_dead_shims_socket_is_removed(tmp_path: Path) -> None:
    sock = _socket_file(tmp_path)
    listener = socket.socket(socket.AF_UNIX)
    with sockpath.usable(str(sock)) as path:
        listener.bind(path)
    listener.close()  # bound, never served: what a shim killed -9 leaves
    result = await shim_delete(sys.executable, tmp_path, CID, tmp_path / "bundle", NO_CGROUP)
    assert result == DeleteResult(socket_removed=True)
    assert not sock.exists()
    again = await shim_delete(sys.executable, tmp_path, CID, tmp_path / "bundle", NO_CGROUP)
    assert again == DeleteResult()


async def test_a_shim_that_still_answers_is_not_touched(tmp_path: Path) -> None:
    sock = _socket_file(tmp_path)
    listener = socket.socket(socket.AF_UNIX)
    with sockpath.usable(str(sock)) as path:
        listener.bind(path)
    listener.listen(1)
    try:
        with pytest.raises(FailedPrecondition, match="still answers"):
            await shim_delete(sys.executable, tmp_path, CID, tmp_path / "bundle", NO_CGROUP)
    finally:
        listener.close()
    assert sock.exists()


async def test_a_bad_cgroup_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="invalid cgroup path"):
        await shim_delete(sys.executable, tmp_path, CID, tmp_path / "bundle", "../etc")


async def test_a_hung_delete_is_stopped_at_its_deadline(tmp_path: Path) -> None:
    hang = tmp_path / "hang"
    hang.write_text("#!/bin/sh\nexec sleep 60\n")
    hang.chmod(0o755)
    with pytest.raises(DeadlineExceeded, match="did not finish within 0.5s"):
        await shim_delete(str(hang), tmp_path, CID, tmp_path / "bundle", NO_CGROUP, timeout=0.5)


async def test_a_crashed_delete_is_an_internal_error_with_its_stderr(tmp_path: Path) -> None:
    crash = tmp_path / "crash"
    crash.write_text("#!/bin/sh\necho 'Traceback: boom' >&2\nexit 1\n")
    crash.chmod(0o755)
    with pytest.raises(Internal, match="exit 1.*boom"):
        await shim_delete(str(crash), tmp_path, CID, tmp_path / "bundle", NO_CGROUP)


async def test_the_cgroup_is_the_one_the_container_was_started_with(tmp_path: Path) -> None:
    # A stand-in for the interpreter that records its arguments: which cgroup the delete
    # is told about. Today's --cgroup-parent may differ from the start's, so config.json
    # (read by the shim) wins; the daemon's path is only the fallback without one.
    args_file = tmp_path / "args"
    fake_python = tmp_path / "python"
    fake_python.write_text(f'#!/bin/sh\necho "$@" > {args_file}\necho "{{}}"\n')
    fake_python.chmod(0o755)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    await shim_delete(str(fake_python), tmp_path, CID, bundle, "today/" + CID)
    assert "--cgroups-path" in args_file.read_text().split()
    (bundle / "config.json").write_text("{}")
    await shim_delete(str(fake_python), tmp_path, CID, bundle, "today/" + CID)
    assert "--cgroups-path" not in args_file.read_text().split()
    assert f"--bundle {bundle}" in args_file.read_text()


async def test_a_spec_an_older_pallet_wrote_is_still_cleaned_up(tmp_path: Path) -> None:
    # A shim that outlived an upgrade: its config.json lacks fields that came later
    # (linux.seccomp, linux.device_cgroup, ...). The delete reads only the cgroup path.
    sock = _socket_file(tmp_path)
    listener = socket.socket(socket.AF_UNIX)
    with sockpath.usable(str(sock)) as path:
        listener.bind(path)
    listener.close()
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(
        '{"container_id": "%s", "linux": {"namespaces": [], "cgroups_path": "%s"}}' % (CID, NO_CGROUP)
    )
    result = await shim_delete(sys.executable, tmp_path, CID, bundle, "today/" + CID)
    assert result == DeleteResult(socket_removed=True)


async def test_a_spec_without_a_cgroup_path_is_a_clear_error(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text('{"linux": {}}')
    with pytest.raises(InvalidArgument, match="names no cgroup"):
        await shim_delete(sys.executable, tmp_path, CID, bundle, "today/" + CID)
    (bundle / "config.json").write_text('{"linux": {"cgroups_path": 7}}')
    with pytest.raises(InvalidArgument, match="not a string"):
        await shim_delete(sys.executable, tmp_path, CID, bundle, "today/" + CID)
