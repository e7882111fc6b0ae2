"""`pallet logs` and `pallet exec` end to end."""

from __future__ import annotations

import hashlib
import re
import signal
import subprocess
import time
from datetime import datetime, timezone
from typing import Any

import pytest

pytestmark = pytest.mark.integration

TIMESTAMPED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,9}Z) (.*)$")


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stamp_ns(stamp: str) -> int:
    """Nanoseconds since the epoch of one of the CLI's RFC 3339 timestamps."""
    seconds = datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return int(seconds.timestamp()) * 1_000_000_000 + int(stamp[20:-1].ljust(9, "0"))


def test_logs_splits_stdout_and_stderr(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "--name", "both", image, "sh", "-c", "echo o1; echo e1 >&2; echo o2")
    result = palletd.cli("logs", "both")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "o1\no2\n"
    assert result.stderr == "e1\n"


def test_logs_keep_partial_lines_and_bytes(palletd: Any, image: str) -> None:
    run = palletd.cli("run", "--name", "raw", image, "sh", "-c", "printf 'no newline\\377'", text=False)
    assert run.returncode == 0 and run.stdout == b"no newline\xff"
    assert palletd.cli("logs", "raw", text=False).stdout == b"no newline\xff"


def test_logs_tail(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "--name", "tail", image, "seq", "1", "10")
    assert palletd.cli_ok("logs", "--tail", "3", "tail") == "8\n9\n10\n"
    assert palletd.cli_ok("logs", "--tail", "all", "tail") == "".join(f"{i}\n" for i in range(1, 11))
    assert palletd.cli_ok("logs", "--tail", "0", "tail") == ""
    assert palletd.cli_ok("logs", "--tail", "100", "tail").count("\n") == 10


def test_logs_timestamps(palletd: Any, image: str) -> None:
    before = time.time()
    palletd.cli_ok("run", "--name", "ts", image, "sh", "-c", "echo one; echo two")
    after = time.time()
    lines = palletd.cli_ok("logs", "-t", "ts").splitlines()
    assert [TIMESTAMPED.match(line).group(2) for line in lines] == ["one", "two"]  # type: ignore[union-attr]
    for line in lines:
        stamp = TIMESTAMPED.match(line).group(1)  # type: ignore[union-attr]
        seconds = datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=timezone.utc
        ).timestamp()
        assert before - 1 <= seconds <= after + 1


def test_logs_since_and_until(palletd: Any, image: str) -> None:
    palletd.cli_ok(
        "run", "-d", "--name", "timed", image, "sh", "-c", "echo early; sleep 3; echo late"
    )
    palletd.wait_for(lambda: palletd.cli_ok("logs", "timed") == "early\n", 10, what="early")
    time.sleep(0.5)
    middle = time.time()
    assert palletd.cli_ok("wait", "timed") == "0\n"
    assert palletd.cli_ok("logs", "timed") == "early\nlate\n"
    assert palletd.cli_ok("logs", "--since", rfc3339(middle), "timed") == "late\n"
    assert palletd.cli_ok("logs", "--since", f"{middle:.3f}", "timed") == "late\n"
    assert palletd.cli_ok("logs", "--since", str(int(middle) + 1), "timed") == "late\n"
    assert palletd.cli_ok("logs", "--until", rfc3339(middle), "timed") == "early\n"
    assert palletd.cli_ok("logs", "--since", "1h", "timed") == "early\nlate\n"
    assert palletd.cli_ok("logs", "--since", "1h30m", "--until", rfc3339(middle), "timed") == (
        "early\n"
    )
    assert palletd.cli_ok("logs", "--since", rfc3339(time.time() + 60), "timed") == ""


def test_logs_rejects_a_bad_time(palletd: Any, image: str) -> None:
    palletd.cli_ok("create", "--name", "bt", image, "true")
    result = palletd.cli("logs", "--since", "yesterday-ish", "bt")
    assert result.returncode != 0
    assert "yesterday-ish" in result.stderr


def test_logs_follow_streams_until_the_container_stops(palletd: Any, image: str) -> None:
    palletd.cli_ok(
        "run", "-d", "--name", "fol", image, "sh", "-c",
        "for i in 1 2 3 4 5 6; do echo line $i; sleep 0.5; done",
    )
    follower = palletd.cli_popen("logs", "-f", "fol", text=True)
    assert follower.stdout is not None
    first = palletd.read_line(follower)  # arrives while the container still runs
    assert first == "line 1\n"
    assert palletd.inspect("fol")["State"]["Running"] is True
    out, err = follower.communicate(timeout=20)
    assert follower.returncode == 0, err
    assert first + out == "".join(f"line {i}\n" for i in range(1, 7))


def test_logs_follow_of_an_exited_container_returns(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "--name", "fin", image, "echo", "over")
    assert palletd.cli("logs", "-f", "fin", timeout=20).stdout == "over\n"


@pytest.fixture
def box(palletd: Any, image: str) -> str:
    palletd.cli_ok("run", "-d", "--name", "box", "-e", "FROM_RUN=1", "-w", "/home",
                   image, "sleep", "300")
    return "box"


def test_exec_runs_in_the_container(palletd: Any, box: str) -> None:
    result = palletd.cli("exec", box, "sh", "-c", "echo out; echo err >&2; hostname; pwd")
    assert result.returncode == 0, result.stderr
    short_id = palletd.inspect(box)["Id"][:12]
    assert result.stdout == f"out\n{short_id}\n/home\n"
    assert result.stderr == "err\n"
    # Same PID namespace: the container's init is PID 1.
    assert palletd.cli_ok("exec", box, "cat", "/proc/1/cmdline") == "sleep\x00300\x00"


def test_exec_environment_workdir_and_user(palletd: Any, box: str) -> None:
    out = palletd.cli_ok("exec", "-e", "EXTRA=2", box, "sh", "-c", "echo $FROM_RUN $EXTRA")
    assert out == "1 2\n"
    assert palletd.cli_ok("exec", "-w", "/tmp", box, "pwd") == "/tmp\n"
    assert palletd.cli_ok("exec", "-u", "app", box, "id", "-u") == "1000\n"
    assert palletd.cli_ok("exec", "-u", "1000:50", box, "id", "-g") == "50\n"
    assert palletd.cli_ok("exec", box, "id", "-u") == "0\n"


def test_exec_exit_codes(palletd: Any, box: str) -> None:
    assert palletd.cli("exec", box, "sh", "-c", "exit 7").returncode == 7
    missing = palletd.cli("exec", box, "nosuch")
    assert missing.returncode == 127
    assert "executable file not found" in missing.stderr
    assert missing.stderr.count("nosuch") == 1, f"said more than once: {missing.stderr!r}"
    not_executable = palletd.cli("exec", box, "/etc/passwd")
    assert not_executable.returncode == 126
    assert not_executable.stderr.count("permission denied") == 1, not_executable.stderr


def test_big_output_arrives_whole_through_exec_and_an_attached_run(palletd: Any, box: str) -> None:
    # A process writes far faster than palletd relays: the shim holds it back instead of
    # dropping the client (which gave `exec cat` a few MiB of a 200 MB file).
    digest = palletd.cli_ok("exec", box, "sh", "-c",
                            "dd if=/dev/urandom of=/tmp/big bs=1M count=160 2>/dev/null; "
                            "sha256sum /tmp/big").split()[0]
    out = palletd.cli("exec", box, "cat", "/tmp/big", text=False, timeout=120)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout) == 160 << 20
    assert hashlib.sha256(out.stdout).hexdigest() == digest
    run = palletd.cli("run", "--rm", "busybox", "dd", "if=/dev/zero", "bs=1M", "count=160",
                      text=False, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout == bytes(160 << 20)


def test_exec_interactive(palletd: Any, box: str) -> None:
    result = palletd.cli("exec", "-i", box, "sh", "-c", "tr a-z A-Z; echo done", input="hello\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "HELLO\ndone\n"


def test_exec_detached(palletd: Any, box: str) -> None:
    palletd.cli_ok("exec", "-d", box, "sh", "-c", "sleep 0.3; echo hi > /tmp/marker")
    palletd.wait_for(
        lambda: palletd.cli("exec", box, "cat", "/tmp/marker").stdout == "hi\n",
        10, what="the detached exec's file",
    )


def test_exec_does_not_go_to_the_containers_log(palletd: Any, box: str) -> None:
    palletd.cli_ok("exec", box, "echo", "exec output")
    assert palletd.cli_ok("logs", box) == ""


def test_exec_in_a_stopped_container_fails(palletd: Any, image: str) -> None:
    palletd.cli_ok("create", "--name", "cold", image, "true")
    result = palletd.cli("exec", "cold", "true")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ")
    assert "cold" in result.stderr and "not running" in result.stderr


def test_exec_process_dies_with_the_container(palletd: Any, box: str) -> None:
    proc = palletd.cli_popen("exec", box, "sleep", "300")
    time.sleep(1)
    palletd.cli_ok("kill", box)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("exec kept running after its container was killed")
    assert proc.returncode != 0


def test_ctrl_c_ends_logs_follow_and_leaves_the_container(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "talker", image, "sh", "-c",
                   "while :; do echo tick; sleep 0.2; done")
    follower = palletd.cli_popen("logs", "-f", "talker", text=True)
    assert follower.stdout is not None
    assert palletd.read_line(follower) == "tick\n"
    follower.send_signal(signal.SIGINT)
    try:
        follower.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("logs -f ignored Ctrl-C")
    assert palletd.inspect("talker")["State"]["Running"] is True


def test_logs_follow_with_tail(palletd: Any, image: str) -> None:
    # "six" comes only once the follower has its tail (a sleep raced a loaded machine).
    palletd.cli_ok("run", "-d", "--name", "tf", image, "sh", "-c",
                   "seq 1 5; until [ -e /tmp/go ]; do sleep 0.05; done; echo six")
    palletd.wait_for(lambda: palletd.cli_ok("logs", "tf").count("\n") >= 5, 10)
    follower = palletd.cli_popen("logs", "-f", "--tail", "2", "tf", text=True)
    assert [palletd.read_line(follower), palletd.read_line(follower)] == ["4\n", "5\n"]
    palletd.cli_ok("exec", "tf", "touch", "/tmp/go")
    out, _ = follower.communicate(timeout=20)
    assert out == "six\n"


def test_logs_follow_until_a_past_time_returns_while_running(palletd: Any, image: str) -> None:
    # docker returns once --until has passed, even if the container still runs; the old
    # follow loop ignored --until and followed the running container forever.
    palletd.cli_ok("run", "-d", "--name", "pastuntil", image, "sh", "-c",
                   "echo before; while :; do sleep 0.2; echo after; done")
    palletd.wait_for(lambda: "before" in palletd.cli_ok("logs", "pastuntil"), 10, what="output")
    cut = time.time()
    palletd.wait_for(lambda: "after" in palletd.cli_ok("logs", "--since", rfc3339(cut), "pastuntil"),
                     10, what="output after the cut")
    try:
        result = palletd.cli("logs", "-f", "-t", "--until", rfc3339(cut), "pastuntil", timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("logs -f --until <past> kept following a running container")
    assert result.returncode == 0, result.stderr
    lines = [TIMESTAMPED.match(line) for line in result.stdout.splitlines()]
    assert lines and all(lines), result.stdout
    assert lines[0].group(2) == "before"  # type: ignore[union-attr]
    assert all(stamp_ns(m.group(1)) < cut * 1e9 for m in lines), result.stdout  # type: ignore[union-attr]
    assert palletd.inspect("pastuntil")["State"]["Running"] is True
