"""palletd itself, as an operator sees it: its directories, its logs, health checking and
reflection for any gRPC client, and clear refusals of bad flags."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

pytestmark = pytest.mark.integration

PALLET_SERVICES = {
    "pallet.v1.ContainersService",
    "pallet.v1.ImagesService",
    "pallet.v1.EventsService",
    "pallet.v1.SystemService",
}


@pytest.fixture
def channel(palletd: Any) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(palletd.host) as ch:
        yield ch


def test_health_checking_is_served(palletd: Any, channel: grpc.Channel) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", *sorted(PALLET_SERVICES)):
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert response.status == health_pb2.HealthCheckResponse.SERVING, service


def test_reflection_lists_the_services(palletd: Any, channel: grpc.Channel) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    [response] = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    names = {s.name for s in response.list_services_response.service}
    assert PALLET_SERVICES <= names
    assert "grpc.health.v1.Health" in names
    # A client with nothing but reflection can fetch the schema.
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol="pallet.v1.ContainersService")
    [response] = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    assert response.file_descriptor_response.file_descriptor_proto


def test_state_and_runtime_directories(palletd: Any, image: str) -> None:
    cid = palletd.cli_ok("run", "-d", image, "sleep", "300").strip()
    assert (palletd.root / "pallet.db").is_file()
    assert (palletd.root / "content").is_dir()
    assert (palletd.root / "layers").is_dir()
    assert (palletd.root / "containers" / cid).is_dir()
    assert stat.S_ISSOCK((palletd.run_root / "pallet.sock").stat().st_mode)
    assert stat.S_ISSOCK((palletd.run_root / "shim-launcher.sock").stat().st_mode)
    assert stat.S_ISSOCK((palletd.run_root / "shims" / f"{cid}.sock").stat().st_mode)
    log_path = Path(palletd.inspect(cid)["LogPath"])
    assert log_path.is_relative_to(palletd.root / "containers" / cid)


def test_logs_are_json_lines(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "--rm", image, "true")
    lines = [line for line in palletd.log_path.read_text().splitlines() if line.strip()]
    assert lines
    not_json = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            not_json.append(line)
            continue
        assert isinstance(record, dict) and "event" in record and "level" in record, line
    assert not not_json, "palletd wrote lines that are not JSON:\n" + "\n".join(not_json[:10])


# --------------------------------------------------------------------------- bad flags


def _kill_everything_mentioning(text: str) -> None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _palletd(*args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    """Run palletd expecting it to refuse; a daemon that starts instead is killed."""
    script = Path(sys.executable).parent / "palletd"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pallet.daemon.main"]
    proc = subprocess.Popen(
        [*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        err = "(palletd kept running)\n" + err
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture
def scratch() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="plt-bad-", dir="/tmp"))
    try:
        yield base
    finally:
        _kill_everything_mentioning(str(base))
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            target = hierarchy / f"pallet-bad-{base.name}"
            if target.is_dir():
                for child in sorted(target.rglob("*"), reverse=True):
                    if child.is_dir():
                        child.rmdir()
                target.rmdir()
        subprocess.run(["rm", "-rf", str(base)], check=False)


def _flags(base: Path, **overrides: str) -> list[str]:
    flags = {
        "--root": str(base / "root"),
        "--run-root": str(base / "run"),
        "--host": f"unix://{base}/run/pallet.sock",
        "--cgroup-parent": f"pallet-bad-{base.name}",
        # In the host's namespace: no default bridge, so nothing is made there.
        "--bridge": "none",
    }
    flags.update(overrides)
    return [item for pair in flags.items() for item in pair]


def test_palletd_refuses_an_unknown_log_level(scratch: Path) -> None:
    result = _palletd(*_flags(scratch, **{"--log-level": "loud"}))
    assert result.returncode == 2
    assert "loud" in result.stderr


def test_palletd_refuses_a_root_it_cannot_make(scratch: Path) -> None:
    (scratch / "file").write_text("not a directory")
    bad_root = scratch / "file" / "root"
    result = _palletd(*_flags(scratch, **{"--root": str(bad_root)}))
    assert result.returncode not in (0, None)
    assert str(bad_root) in result.stderr or str(scratch / "file") in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_palletd_refuses_a_bad_listen_address(scratch: Path) -> None:
    result = _palletd(*_flags(scratch, **{"--host": "http://nowhere:1"}))
    assert result.returncode not in (0, None)
    assert "http://nowhere:1" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_second_palletd_on_the_same_root_is_refused(palletd: Any, scratch: Path) -> None:
    result = _palletd(*_flags(scratch, **{"--root": str(palletd.root)}))
    assert result.returncode not in (0, None), "two daemons share one state directory"
    assert str(palletd.root) in result.stderr or "already" in result.stderr, result.stderr
    palletd.ping()
    assert palletd.cli_ok("images", "-q") != ""
