"""`pallet run` end to end: output, exit codes, stdin, and every run flag, as a user sees them."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration

FULL_ID = re.compile(r"^[0-9a-f]{64}$")


def _groups(id_output: str) -> dict[str, str]:
    """`uid=1000(app) gid=1000(app) groups=...` -> {"uid": "1000(app)", ...}."""
    return dict(part.split("=", 1) for part in id_output.split())


def test_run_prints_the_commands_output(palletd: Any, image: str) -> None:
    result = palletd.cli("run", "--rm", image, "echo", "hello world")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello world\n"
    assert result.stderr == ""


def test_run_keeps_stdout_and_stderr_apart(palletd: Any, image: str) -> None:
    result = palletd.cli("run", "--rm", image, "sh", "-c", "echo out; echo err >&2")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"


def test_run_passes_bytes_through_unchanged(palletd: Any, image: str) -> None:
    result = palletd.cli(
        "run", "--rm", image, "sh", "-c", "printf 'a\\000b\\377\\r\\n'; seq 1 20000", text=False
    )
    assert result.returncode == 0, result.stderr
    expected = b"a\x00b\xff\r\n" + b"".join(b"%d\n" % i for i in range(1, 20001))
    assert result.stdout == expected


def test_run_exits_with_the_containers_exit_code(palletd: Any, image: str) -> None:
    result = palletd.cli("run", "--name", "three", image, "sh", "-c", "exit 3")
    assert result.returncode == 3
    state = palletd.inspect("three")["State"]
    assert state["Status"] == "exited"
    assert state["ExitCode"] == 3
    assert state["Running"] is False
    assert state["Pid"] == 0


def test_run_rm_leaves_nothing_behind(palletd: Any, image: str) -> None:
    result = palletd.cli("run", "--rm", "--name", "gone", image, "sh", "-c", "echo bye; exit 4")
    assert result.returncode == 4
    assert result.stdout == "bye\n"
    assert palletd.cli_ok("ps", "-a", "-q") == ""
    missing = palletd.cli("inspect", "--type", "container", "gone")
    assert missing.returncode == 1
    assert "gone" in missing.stderr
    containers_dir = palletd.root / "containers"
    assert not containers_dir.exists() or list(containers_dir.iterdir()) == []
    shims_dir = palletd.run_root / "shims"
    assert not shims_dir.exists() or list(shims_dir.iterdir()) == []
    # Every container cgroup is gone (the cgroup parent itself may stay).
    assert palletd.container_cgroups() == []
    assert palletd.mounts() == []


def test_run_detached_prints_the_id_and_ps_shows_it_running(palletd: Any, image: str) -> None:
    result = palletd.cli("run", "-d", "--name", "web", image, "sleep", "300")
    assert result.returncode == 0, result.stderr
    cid = result.stdout.strip()
    assert FULL_ID.match(cid), result.stdout
    table = palletd.cli_ok("ps").splitlines()
    assert re.split(r"\s{2,}", table[0].strip()) == [
        "CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"
    ]
    [row] = [line for line in table[1:] if line.startswith(cid[:12])]
    assert "busybox" in row
    assert re.search(r"Up (Less than a second|\d+ seconds?|About a minute)", row), row
    assert row.rstrip().endswith("web")
    assert palletd.cli_ok("ps", "-q") == cid[:12] + "\n"
    assert palletd.cli_ok("ps", "-q", "--no-trunc") == cid + "\n"
    state = palletd.inspect("web")["State"]
    assert state["Running"] is True and state["Status"] == "running"
    assert Path(f"/proc/{state['Pid']}/cmdline").read_bytes() == b"sleep\x00300\x00"


def test_run_interactive_forwards_stdin_until_eof(palletd: Any, image: str) -> None:
    result = palletd.cli("run", "-i", "--rm", image, "cat", input="hi\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hi\n"
    big = bytes(range(256)) * 4096  # 1 MiB, every byte value
    result = palletd.cli("run", "-i", "--rm", image, "sh", "-c", "cat | md5sum", input=big)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0].decode() == hashlib.md5(big).hexdigest()


def test_a_killed_run_i_client_closes_the_containers_stdin(palletd: Any, image: str) -> None:
    # docker's StdinOnce: `run -i` gives the container stdin for that one attach. Its client
    # killed -9 mid-session, `cat` sees end of file and the container ends, instead of
    # waiting for ever on a stdin nobody holds. `run -d -i` keeps stdin open for later.
    feeder = subprocess.Popen(["sleep", "600"], stdout=subprocess.PIPE)
    assert feeder.stdout is not None
    try:
        client = palletd.cli_popen("run", "-i", "--name", "once", image, "cat", stdin=feeder.stdout)
        feeder.stdout.close()  # the client holds the pipe now; nothing is ever written to it
        wait_for(lambda: palletd.cli("ps", "-q", "--filter", "name=once").stdout.strip(), what="once running")
        assert palletd.inspect("once")["Config"]["StdinOnce"] is True
        client.kill()
        client.wait(timeout=10)
        wait_for(lambda: palletd.inspect("once")["State"]["Status"] == "exited", timeout=20,
                 what="cat ending once its stdin closed")
        assert palletd.inspect("once")["State"]["ExitCode"] == 0
    finally:
        feeder.kill()
        feeder.wait()
    palletd.cli_ok("run", "-d", "-i", "--name", "kept", image, "cat")
    assert palletd.inspect("kept")["Config"]["StdinOnce"] is False
    attached = palletd.cli_popen("attach", "kept", stdin=subprocess.PIPE)
    time.sleep(1.0)
    attached.kill()
    attached.wait(timeout=10)
    time.sleep(1.0)
    assert palletd.inspect("kept")["State"]["Status"] == "running"
    palletd.cli_ok("rm", "-f", "once", "kept")


def test_run_without_interactive_gives_the_container_no_stdin(palletd: Any, image: str) -> None:
    result = palletd.cli("run", "--rm", image, "cat", input="not forwarded\n", timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_run_sets_environment_from_flags_files_and_the_clis_env(
    palletd: Any, image: str, tmp_path: Path
) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text("# a comment\n\nFROM_FILE=yes\nSHARED=file\n")
    result = palletd.cli(
        "run", "--rm",
        "-e", "A=1",
        "--env", "SPACES=a b  c",
        "-e", "PASSED",
        "--env-file", str(env_file),
        "-e", "SHARED=flag",
        "-e", "NOT_SET_ANYWHERE",
        image, "env",
        env={"PASSED": "from-cli-env"},
    )
    assert result.returncode == 0, result.stderr
    env = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert env["A"] == "1"
    assert env["SPACES"] == "a b  c"
    assert env["PASSED"] == "from-cli-env"
    assert env["FROM_FILE"] == "yes"
    # Like docker, -e wins over --env-file for the same key.
    assert env["SHARED"] == "flag"
    assert "/bin" in env["PATH"].split(":")
    assert "NOT_SET_ANYWHERE" not in env  # -e K with no K in the CLI's env: left out


def test_run_working_directory(palletd: Any, image: str) -> None:
    assert palletd.cli_ok("run", "--rm", "-w", "/tmp", image, "pwd") == "/tmp\n"
    assert palletd.cli_ok("run", "--rm", "--workdir", "/home/app", image, "pwd") == "/home/app\n"


def test_run_as_a_named_user_gets_its_groups(palletd: Any, image: str) -> None:
    ids = _groups(palletd.cli_ok("run", "--rm", "-u", "app", image, "id"))
    assert ids["uid"] == "1000(app)"
    assert ids["gid"] == "1000(app)"
    assert set(ids["groups"].split(",")) == {"1000(app)", "50(staff)"}
    # Its home directory and a file it creates belong to it.
    out = palletd.cli_ok(
        "run", "--rm", "-u", "app", image, "sh", "-c", "touch /tmp/f && stat -c %u:%g /tmp/f"
    )
    assert out == "1000:1000\n"


def test_run_as_uid_and_gid(palletd: Any, image: str) -> None:
    ids = _groups(palletd.cli_ok("run", "--rm", "-u", "1000:50", image, "id"))
    assert ids["uid"] == "1000(app)"
    assert ids["gid"] == "50(staff)"
    ids = _groups(palletd.cli_ok("run", "--rm", "-u", "4242", image, "id"))
    assert ids["uid"] == "4242"  # not in /etc/passwd: the number alone, like docker
    assert ids["gid"] == "0(root)"


def test_run_as_an_unknown_user_fails_clearly(palletd: Any, image: str) -> None:
    result = palletd.cli("run", "--rm", "-u", "nosuchuser", image, "id")
    assert result.returncode == 125
    assert result.stderr.startswith("Error: ")
    assert "nosuchuser" in result.stderr
    assert palletd.cli_ok("ps", "-a", "-q") == ""


def test_run_name_and_hostname(palletd: Any, image: str) -> None:
    result = palletd.cli("run", "--name", "named", "--hostname", "box1", image, "hostname")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "box1\n"
    data = palletd.inspect("named")
    assert data["Name"] == "/named"
    assert data["Config"]["Hostname"] == "box1"


def test_run_default_hostname_is_the_short_id(palletd: Any, image: str) -> None:
    out = palletd.cli_ok("run", "--name", "anon", image, "hostname")
    assert out == palletd.inspect("anon")["Id"][:12] + "\n"


def test_run_generates_a_name_when_none_is_given(palletd: Any, image: str) -> None:
    cid = palletd.cli_ok("run", "-d", image, "true").strip()
    name = palletd.inspect(cid)["Name"]
    assert re.fullmatch(r"/[a-zA-Z0-9][a-zA-Z0-9_.-]+", name), name
    # The generated name works wherever a container is named.
    assert palletd.cli_ok("wait", name.lstrip("/")) == "0\n"


def test_run_entrypoint_replaces_the_images(palletd: Any, image: str) -> None:
    result = palletd.cli("run", "--name", "ep", "--entrypoint", "echo", image, "hello", "there")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello there\n"
    data = palletd.inspect("ep")
    assert data["Path"] == "echo"
    assert data["Args"] == ["hello", "there"]
    assert data["Config"]["Entrypoint"] == ["echo"]
    assert data["Config"]["Cmd"] == ["hello", "there"]


def test_run_labels(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "lab", "-l", "tier=web", "--label", "team=core",
                   image, "sleep", "300")
    assert palletd.inspect("lab")["Config"]["Labels"] == {"tier": "web", "team": "core"}
    assert palletd.cli_ok("ps", "-q", "--filter", "label=tier=web") != ""
    assert palletd.cli_ok("ps", "-q", "--filter", "label=tier=db") == ""


def test_run_uses_the_images_default_command(palletd: Any, image: str) -> None:
    # The test image has CMD ["sh"]: with -i, the script comes from stdin.
    result = palletd.cli("run", "--rm", "-i", image, input="echo from-default-cmd\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "from-default-cmd\n"


def test_run_honours_the_images_config_from_import_changes(
    palletd: Any, busybox_tar: Path
) -> None:
    out = palletd.cli_ok(
        "import", str(busybox_tar), "configured:1",
        "-c", 'ENTRYPOINT ["/bin/sh", "-c"]',
        "-c", 'CMD ["echo $GREETING from $(pwd) as $(id -un)"]',
        "-c", "ENV GREETING=hello",
        "-c", "WORKDIR /home/app",
        "-c", "USER app",
        "-m", "configured by the test",
    )
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", out), out
    image_id = out.strip()
    assert palletd.cli_ok("run", "--rm", "configured:1") == "hello from /home/app as app\n"
    # Each part can be overridden at run.
    out = palletd.cli_ok(
        "run", "--rm", "-e", "GREETING=bye", "-w", "/tmp", "-u", "root", "configured:1"
    )
    assert out == "bye from /tmp as root\n"
    assert palletd.cli_ok("run", "--rm", "configured:1", "echo replaced") == "replaced\n"
    # An empty --entrypoint clears the image's.
    assert palletd.cli_ok("run", "--rm", "--entrypoint", "", "configured:1", "echo", "plain") == (
        "plain\n"
    )
    [data] = json.loads(palletd.cli_ok("image", "inspect", "configured:1"))
    assert data["Id"] == image_id
    assert data["Config"]["Entrypoint"] == ["/bin/sh", "-c"]
    assert data["Config"]["WorkingDir"] == "/home/app"
    assert data["Config"]["User"] == "app"
    assert "GREETING=hello" in data["Config"]["Env"]
    assert data["Comment"] == "configured by the test"


def test_run_of_a_missing_command_exits_127(palletd: Any, image: str) -> None:
    result = palletd.cli("run", "--rm", image, "nosuch")
    assert result.returncode == 127
    assert "executable file not found" in result.stderr
    assert result.stderr.count("nosuch") == 1, f"said more than once: {result.stderr!r}"
    assert "nosuch" in result.stderr
    assert palletd.cli_ok("ps", "-a", "-q") == ""


def test_run_of_a_missing_command_records_127(palletd: Any, image: str) -> None:
    result = palletd.cli("run", "--name", "notfound", image, "/bin/nosuch")
    assert result.returncode == 127
    state = palletd.inspect("notfound")["State"]
    assert state["ExitCode"] == 127
    assert "nosuch" in state["Error"]


def test_run_of_a_file_that_is_not_executable_exits_126(palletd: Any, image: str) -> None:
    result = palletd.cli("run", "--rm", image, "/etc/passwd")
    assert result.returncode == 126
    assert "/etc/passwd" in result.stderr
    assert "permission denied" in result.stderr.lower()


def test_run_bad_usage_exits_125(palletd: Any, image: str) -> None:
    result = palletd.cli("run", "--no-such-flag", image, "true")
    assert result.returncode == 125
    assert "--no-such-flag" in result.stderr
    result = palletd.cli("run")
    assert result.returncode == 125
    assert "usage" in result.stderr.lower()
    assert palletd.cli_ok("ps", "-a", "-q") == ""


def test_run_with_a_missing_env_file_fails_before_creating(palletd: Any, image: str) -> None:
    result = palletd.cli("run", "--env-file", "/nonexistent.env", image, "true")
    assert result.returncode == 125
    assert "/nonexistent.env" in result.stderr
    assert palletd.cli_ok("ps", "-a", "-q") == ""


def test_run_detached_with_rm_removes_it_after_exit(palletd: Any, image: str) -> None:
    cid = palletd.cli_ok("run", "-d", "--rm", image, "sh", "-c", "sleep 0.5").strip()
    assert palletd.inspect(cid)["HostConfig"]["AutoRemove"] is True
    palletd.wait_for(lambda: palletd.cli_ok("ps", "-a", "-q") == "", 15, what="auto-removal")
    assert not (palletd.root / "containers" / cid).exists()


def test_create_with_rm_removes_it_after_its_run(palletd: Any, image: str) -> None:
    palletd.cli_ok("create", "--rm", "--name", "once", image, "true")
    palletd.cli_ok("start", "once")
    palletd.wait_for(lambda: palletd.cli_ok("ps", "-a", "-q") == "", 15, what="auto-removal")


def test_attached_run_exits_with_the_code_of_a_kill(palletd: Any, image: str) -> None:
    attached = palletd.cli_popen(
        "run", "--name", "victim", image, "sh", "-c", "echo up; sleep 300", text=True
    )
    assert attached.stdout is not None
    assert palletd.read_line(attached) == "up\n"
    palletd.cli_ok("kill", "victim")
    out, err = attached.communicate(timeout=20)
    assert attached.returncode == 137, err


def test_stop_signal_and_timeout_flags(palletd: Any, image: str) -> None:
    palletd.cli_ok(
        "run", "-d", "--name", "usr2", "--stop-signal", "USR2", "--stop-timeout", "2",
        image, "sh", "-c", "trap 'exit 12' USR2; echo ready; while :; do sleep 0.1; done",
    )
    palletd.wait_for(lambda: palletd.cli("logs", "usr2").stdout == "ready\n", 10)
    config = palletd.inspect("usr2")["Config"]
    assert config["StopSignal"] in ("USR2", "SIGUSR2")
    assert config["StopTimeout"] == 2
    palletd.cli_ok("stop", "usr2")
    assert palletd.cli_ok("wait", "usr2") == "12\n"


def test_run_returns_when_pid_1_exits_even_with_children_left(palletd: Any, image: str) -> None:
    # A background child still holds stdout open; the container ends with its PID 1.
    # The bounded wait is the check: a run that waited for the child would take 300 s.
    result = palletd.cli("run", "--rm", image, "sh", "-c", "sleep 300 & echo bye", timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "bye\n"


def test_concurrent_runs_keep_their_own_output(palletd: Any, image: str) -> None:
    runs = [
        palletd.cli_popen("run", "--rm", image, "sh", "-c", f"seq 1 {100 * i}; exit {i}", text=True)
        for i in range(1, 6)
    ]
    for i, proc in enumerate(runs, start=1):
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == i, err
        assert out == "".join(f"{n}\n" for n in range(1, 100 * i + 1))
    assert palletd.cli_ok("ps", "-a", "-q") == ""
