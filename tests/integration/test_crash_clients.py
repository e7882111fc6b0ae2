"""Clients blocked in `wait`, `logs -f` and `events` when palletd dies: a clear error, then
reconnecting continues where they were. Clients killed -9 mid-call: nothing half-made."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import wait_for
from test_crash_image_ops import one_file_tar, store_entries

pytestmark = pytest.mark.integration

COUNTER = "i=0; while :; do echo line $i; i=$((i+1)); sleep 0.05; done"


def test_blocked_clients_get_a_clear_error_and_can_resume(fresh_palletd: Any) -> None:
    palletd = fresh_palletd
    palletd.cli_ok("run", "-d", "--name", "busy", "busybox", "sh", "-c", COUNTER)
    waiter = palletd.cli_popen("wait", "busy", text=True)
    follower = palletd.cli_popen("logs", "-f", "busy", text=True)
    watcher = palletd.cli_popen("events", "--since-seq", "0", "--filter", "container=busy",
                                text=True)
    assert palletd.read_line(follower) == "line 0\n"
    seen = [palletd.read_line(watcher), palletd.read_line(watcher)]
    assert [line.split()[3] for line in seen] == ["create", "start"]

    palletd.proc.send_signal(signal.SIGKILL)
    palletd.proc.wait(10)
    for proc in (waiter, follower, watcher):
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 1, (proc.args, proc.returncode, err)
        assert err == f"Error: daemon unavailable: cannot connect to palletd at {palletd.host}: is it running?\n"
        assert "Traceback" not in err

    palletd._close_channel()
    palletd.start()
    # Reconnect: events resume after the last seq seen, logs continue, wait still waits.
    last_seq = int(seen[-1][1:].split("]")[0])
    resumed = palletd.cli_popen("events", "--since-seq", str(last_seq),
                                "--filter", "container=busy", text=True)
    waiter = palletd.cli_popen("wait", "busy", text=True)
    follower = palletd.cli_popen("logs", "-f", "--tail", "1", "busy", text=True)
    assert re.fullmatch(r"line \d+\n", palletd.read_line(follower))
    palletd.cli_ok("stop", "-t", "1", "busy")
    # PID 1 ignores SIGTERM without a handler: the stop ends in SIGKILL.
    assert waiter.communicate(timeout=30)[0] == "137\n"
    assert waiter.returncode == 0
    follower.communicate(timeout=30)
    assert follower.returncode == 0
    line = palletd.read_line(resumed)
    assert line.startswith(f"[{last_seq + 1}] ") and line.split()[3] in ("kill", "die"), line


def _archive(palletd: Any, tmp_path: Path) -> bytes:
    """A saved image whose layer is no longer in the store, as bytes."""
    tar = one_file_tar(tmp_path / "rootfs.tar", os.urandom(3 * 1024 * 1024))
    palletd.cli_ok("import", str(tar), "halfway:1")
    saved = tmp_path / "halfway.tar"
    palletd.cli_ok("save", "halfway:1", "-o", str(saved))
    palletd.cli_ok("rmi", "halfway:1")
    return saved.read_bytes()


@pytest.mark.parametrize("verb", [("load",), ("import", "-", "halfway:1")])
def test_a_client_killed_mid_upload_leaves_nothing(
    fresh_palletd: Any, tmp_path: Path, verb: tuple[str, ...]
) -> None:
    palletd = fresh_palletd
    data = _archive(palletd, tmp_path)
    before = store_entries(palletd.root)
    events = palletd.cli_ok("events", "--since-seq", "0", "--until", "0s")
    client = palletd.cli_popen(*verb, stdin=subprocess.PIPE)
    assert client.stdin is not None
    client.stdin.write(data[: len(data) // 2])
    client.stdin.flush()
    wait_for(lambda: store_entries(palletd.root)["temp"], timeout=20,
             what="the daemon to spool the upload")
    client.send_signal(signal.SIGKILL)
    client.wait(10)
    # The daemon sees the stream break off: no image, no event, its spool file removed.
    wait_for(lambda: store_entries(palletd.root) == before, timeout=20,
             what="the half-uploaded archive to be cleaned up")
    assert palletd.cli("image", "inspect", "halfway:1").returncode != 0
    assert palletd.cli_ok("events", "--since-seq", "0", "--until", "0s") == events
    # And the same upload, whole, works.
    whole = palletd.cli(*verb, input=data, timeout=60)
    assert whole.returncode == 0, whole.stderr
    palletd.cli_ok("image", "inspect", "halfway:1")


def test_a_killed_attached_client_leaves_its_container_running(fresh_palletd: Any) -> None:
    palletd = fresh_palletd
    client = palletd.cli_popen("run", "--name", "attached", "busybox", "sh", "-c", COUNTER,
                               text=True)
    assert palletd.read_line(client) == "line 0\n"
    client.send_signal(signal.SIGKILL)
    client.wait(10)
    # Like docker: the container is not the client's; it runs on, its output in its log.
    time.sleep(0.5)
    assert palletd.inspect("attached")["State"]["Running"] is True
    count = len(palletd.cli_ok("logs", "attached").splitlines())
    wait_for(lambda: len(palletd.cli_ok("logs", "attached").splitlines()) > count + 5,
             timeout=20, what="the container to keep writing")
    lines = palletd.cli_ok("logs", "attached").splitlines()
    assert lines == [f"line {i}" for i in range(len(lines))]


def test_an_upload_without_its_end_message_stores_nothing(
    fresh_palletd: Any, tmp_path: Path
) -> None:
    """gRPC shows a client that went away as an ordinary end of stream; a whole tar (a cut
    at a member boundary looks whole) must still not be imported without `end`."""
    import grpc

    import pallet.v1.images_pb2 as pb

    palletd = fresh_palletd
    data = one_file_tar(tmp_path / "rootfs.tar", os.urandom(8192)).read_bytes()
    before = store_entries(palletd.root)
    images = palletd._stubs().images

    def upload(end: Any) -> Any:
        yield pb.ImportRequest(header=pb.ImportHeader(reference="unended:1"))
        yield pb.ImportRequest(chunk=data)
        if end is not None:
            yield pb.ImportRequest(end=end)

    for end, message in [(None, "upload cut short after"),
                         (pb.UploadEnd(size=len(data) + 1), "upload damaged")]:
        with pytest.raises(grpc.RpcError) as err:
            images.Import(upload(end), timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in (err.value.details() or "")
    with pytest.raises(grpc.RpcError) as err:
        images.Load(iter([pb.LoadRequest(chunk=data)]), timeout=30)
    assert "upload cut short" in (err.value.details() or "")
    assert store_entries(palletd.root) == before
    assert palletd.cli("image", "inspect", "unended:1").returncode != 0
    # With its end message, the same upload is an image.
    images.Import(upload(pb.UploadEnd(size=len(data))), timeout=30)
    palletd.cli_ok("image", "inspect", "unended:1")
