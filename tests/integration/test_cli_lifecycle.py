"""Container lifecycle through the CLI: create, start, stop, kill, restart, rm, ps, wait, inspect."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

FULL_ID = re.compile(r"^[0-9a-f]{64}$")
RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
UNSET_TIME = "0001-01-01T00:00:00Z"
# Ignores SIGTERM (saying so in its log), says it is ready, then idles.
STUBBORN = "trap 'echo term' TERM; echo ready; while :; do sleep 0.1; done"
# Exits 0 on SIGTERM.
POLITE = "trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.1; done"


def wait_ready(palletd: Any, name: str) -> None:
    palletd.wait_for(
        lambda: "ready" in palletd.cli("logs", name).stdout, 15, what=f"{name} to be ready"
    )


def test_create_then_start_then_wait(palletd: Any, image: str) -> None:
    out = palletd.cli_ok("create", "--name", "job", image, "sh", "-c", "echo did it; exit 5")
    cid = out.strip()
    assert FULL_ID.match(cid), out
    data = palletd.inspect("job")
    assert data["Id"] == cid
    assert data["State"]["Status"] == "created"
    assert data["State"]["Running"] is False
    assert data["State"]["Pid"] == 0
    assert data["State"]["StartedAt"] == UNSET_TIME
    assert data["State"]["FinishedAt"] == UNSET_TIME
    assert RFC3339_NANO.match(data["Created"]), data["Created"]
    [row] = palletd.cli_ok("ps", "-a").splitlines()[1:]
    assert row.startswith(cid[:12]) and "Created" in row and row.rstrip().endswith("job")
    assert palletd.cli_ok("ps", "-q") == ""  # not running, so not listed without -a

    assert palletd.cli_ok("start", "job") == "job\n"
    assert palletd.cli_ok("wait", "job") == "5\n"
    assert palletd.cli_ok("logs", "job") == "did it\n"
    state = palletd.inspect("job")["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 5
    assert RFC3339_NANO.match(state["StartedAt"]) and state["StartedAt"] != UNSET_TIME
    assert RFC3339_NANO.match(state["FinishedAt"]) and state["FinishedAt"] >= state["StartedAt"]
    [row] = palletd.cli_ok("ps", "-a").splitlines()[1:]
    assert re.search(r"Exited \(5\) (Less than a second|\d+ seconds?) ago", row), row


def test_start_again_runs_the_command_again(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "--name", "again", image, "echo", "run")
    assert palletd.cli_ok("start", "again") == "again\n"
    assert palletd.cli_ok("wait", "again") == "0\n"
    assert palletd.cli_ok("logs", "again") == "run\nrun\n"


def test_start_of_a_running_container_is_harmless(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "up", image, "sleep", "300")
    pid = palletd.inspect("up")["State"]["Pid"]
    assert palletd.cli_ok("start", "up") == "up\n"
    assert palletd.inspect("up")["State"]["Pid"] == pid


def test_stop_sends_sigterm_first(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "polite", image, "sh", "-c", POLITE)
    wait_ready(palletd, "polite")
    assert palletd.cli_ok("stop", "-t", "10", "polite") == "polite\n"
    # Exit 0 and "bye": the SIGTERM trap ran; a SIGKILL after the timeout would give 137.
    assert palletd.cli_ok("wait", "polite") == "0\n"
    assert palletd.cli_ok("logs", "polite") == "ready\nbye\n"


def test_stop_escalates_to_sigkill_after_timeout(palletd: Any, image: str) -> None:
    # -t 1 on a container whose own stop timeout is 300 s: a daemon that ignored -t would
    # still be waiting when wait_for gives up, and the container would still run.
    palletd.cli_ok("run", "-d", "--name", "stubborn", "--stop-timeout", "300", image,
                   "sh", "-c", STUBBORN)
    wait_ready(palletd, "stubborn")
    pid = palletd.inspect("stubborn")["State"]["Pid"]
    stopper = palletd.cli_popen("stop", "-t", "1", "stubborn", text=True)
    palletd.wait_for(lambda: palletd.inspect("stubborn")["State"]["Status"] == "exited", 30,
                     what="stop -t 1 to SIGKILL a container whose stop timeout is 300 s")
    out, err = stopper.communicate(timeout=30)
    assert stopper.returncode == 0 and out == "stubborn\n", err
    state = palletd.inspect("stubborn")["State"]
    assert state["ExitCode"] == 137
    assert palletd.cli_ok("logs", "stubborn") == "ready\nterm\n", "SIGTERM came first"
    assert not Path(f"/proc/{pid}").exists()
    assert palletd.cli_ok("wait", "stubborn") == "137\n"


def test_stop_waits_for_the_given_timeout(palletd: Any, image: str) -> None:
    # -t 60 on a container whose own stop timeout is 1 s: a daemon that ignored -t (or
    # killed at once) would have SIGKILLed it well before the check below.
    palletd.cli_ok("run", "-d", "--name", "patient", "--stop-timeout", "1", image,
                   "sh", "-c", STUBBORN)
    wait_ready(palletd, "patient")
    stopper = palletd.cli_popen("stop", "-t", "60", "patient", text=True)
    try:
        palletd.wait_for(lambda: "term" in palletd.cli_ok("logs", "patient"), 15,
                         what="the stop signal")
        time.sleep(3)  # three times the container's own stop timeout
        state = palletd.inspect("patient")["State"]
        assert state["Running"] is True, f"stop -t 60 killed it early: {state}"
        assert stopper.poll() is None, "stop -t 60 returned while the container runs"
    finally:
        palletd.cli("kill", "patient")
        out, err = stopper.communicate(timeout=30)
    assert stopper.returncode == 0 and out == "patient\n", err
    assert palletd.inspect("patient")["State"]["ExitCode"] == 137


def test_stop_of_a_stopped_container_succeeds(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "--name", "done", image, "true")
    assert palletd.cli_ok("stop", "done") == "done\n"
    assert palletd.inspect("done")["State"]["ExitCode"] == 0


def test_kill_sends_the_signal(palletd: Any, image: str) -> None:
    palletd.cli_ok(
        "run", "-d", "--name", "hup", image, "sh", "-c",
        "trap 'exit 42' HUP; echo ready; while :; do sleep 0.1; done",
    )
    wait_ready(palletd, "hup")
    assert palletd.cli_ok("kill", "-s", "HUP", "hup") == "hup\n"
    assert palletd.cli_ok("wait", "hup") == "42\n"


def test_kill_exit_code_is_128_plus_the_signal(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "k9", image, "sleep", "300")
    palletd.cli_ok("run", "-d", "--name", "k9b", image, "sleep", "300")
    assert palletd.cli_ok("kill", "k9") == "k9\n"  # SIGKILL by default
    assert palletd.cli_ok("kill", "--signal", "SIGKILL", "k9b") == "k9b\n"
    assert palletd.cli_ok("wait", "k9", "k9b") == "137\n137\n"
    assert palletd.inspect("k9")["State"]["ExitCode"] == 137


def test_kill_with_a_signal_number(palletd: Any, image: str) -> None:
    palletd.cli_ok(
        "run", "-d", "--name", "usr1", image, "sh", "-c",
        "trap 'exit 10' USR1; echo ready; while :; do sleep 0.1; done",
    )
    wait_ready(palletd, "usr1")
    palletd.cli_ok("kill", "-s", "10", "usr1")
    assert palletd.cli_ok("wait", "usr1") == "10\n"


def test_kill_of_a_stopped_container_fails(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "--name", "dead", image, "true")
    result = palletd.cli("kill", "dead")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ")
    assert "dead" in result.stderr and "not running" in result.stderr


def test_restart_gives_a_new_process(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "re", image, "sh", "-c", "echo started; exec sleep 300")
    before = palletd.inspect("re")["State"]
    assert palletd.cli_ok("restart", "-t", "1", "re") == "re\n"
    after = palletd.inspect("re")["State"]
    assert after["Running"] is True
    assert after["Pid"] != before["Pid"]
    assert after["StartedAt"] > before["StartedAt"]
    assert not Path(f"/proc/{before['Pid']}").exists()
    palletd.wait_for(lambda: palletd.cli_ok("logs", "re") == "started\nstarted\n", 10)


def test_restart_starts_an_exited_container(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "--name", "ex", image, "true")
    assert palletd.cli_ok("restart", "ex") == "ex\n"
    assert palletd.cli_ok("wait", "ex") == "0\n"


def test_rm_removes_a_stopped_container(palletd: Any, image: str) -> None:
    cid = palletd.cli_ok("create", "--name", "temp", image, "true").strip()
    assert (palletd.root / "containers" / cid).is_dir()
    assert palletd.cli_ok("rm", "temp") == "temp\n"
    assert palletd.cli_ok("ps", "-a", "-q") == ""
    assert not (palletd.root / "containers" / cid).exists()
    # The name is free again.
    palletd.cli_ok("create", "--name", "temp", image, "true")


def test_rm_force_removes_a_running_container(palletd: Any, image: str) -> None:
    cid = palletd.cli_ok("run", "-d", "--name", "busy", image, "sleep", "300").strip()
    pid = palletd.inspect("busy")["State"]["Pid"]
    assert palletd.cli_ok("rm", "-f", "busy") == "busy\n"
    assert palletd.cli_ok("ps", "-a", "-q") == ""
    palletd.wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10, what="the process to end")
    assert not (palletd.root / "containers" / cid).exists()
    assert palletd.container_cgroups(cid) == []


def test_verbs_take_several_containers_and_ids(palletd: Any, image: str) -> None:
    a = palletd.cli_ok("run", "-d", "--name", "a1", image, "sleep", "300").strip()
    palletd.cli_ok("run", "-d", "--name", "a2", image, "sleep", "300")
    # By full id, by unique prefix and by name; each argument echoed back as given.
    assert palletd.cli_ok("kill", a, "a2") == f"{a}\na2\n"
    assert palletd.cli_ok("wait", a[:12], "a2") == "137\n137\n"
    assert palletd.cli_ok("rm", a[:8], "a2") == f"{a[:8]}\na2\n"
    assert palletd.cli_ok("ps", "-a", "-q") == ""


@pytest.fixture
def three(palletd: Any, image: str) -> dict[str, str]:
    """A running container (labelled), an exited one (code 3) and a created one."""
    ids = {
        "runner": palletd.cli_ok(
            "run", "-d", "--name", "runner", "-l", "role=web", "-l", "tier=front",
            image, "sleep", "300",
        ).strip(),
        "quitter": palletd.cli_ok("create", "--name", "quitter", "-l", "role=batch",
                                  image, "sh", "-c", "exit 3").strip(),
        "idle": palletd.cli_ok("create", "--name", "idle", image, "true").strip(),
    }
    palletd.cli_ok("start", "quitter")
    assert palletd.cli_ok("wait", "quitter") == "3\n"
    return ids


def ps_names(palletd: Any, *args: str) -> set[str]:
    out = palletd.cli_ok("ps", "--format", "{{.Names}}", *args)
    return set(out.split())


def test_ps_lists_running_or_all(palletd: Any, three: dict[str, str]) -> None:
    assert palletd.cli_ok("ps", "-q").split() == [three["runner"][:12]]
    assert set(palletd.cli_ok("ps", "-a", "-q").split()) == {i[:12] for i in three.values()}
    assert set(palletd.cli_ok("ps", "-a", "-q", "--no-trunc").split()) == set(three.values())
    rows = palletd.cli_ok("ps", "-a").splitlines()[1:]
    assert len(rows) == 3
    statuses = {row.split()[-1]: row for row in rows}
    assert re.search(r"\bUp\b", statuses["runner"])
    assert re.search(r"Exited \(3\)", statuses["quitter"])
    assert re.search(r"\bCreated\b", statuses["idle"])


PS_FILTER_CASES: list[tuple[list[str], set[str]]] = [
    (["status=running"], {"runner"}),
    (["status=exited"], {"quitter"}),
    (["status=created"], {"idle"}),
    (["status=created", "status=exited"], {"idle", "quitter"}),
    (["name=quitter"], {"quitter"}),
    (["label=role"], {"runner", "quitter"}),
    (["label=role=web"], {"runner"}),
    (["label=role=web", "label=tier=front"], {"runner"}),
    (["label=role=batch", "status=running"], set()),
    (["exited=3"], {"quitter"}),
    (["exited=0"], set()),
    (["ancestor=busybox"], {"runner", "quitter", "idle"}),
    (["ancestor=busybox:latest"], {"runner", "quitter", "idle"}),
]


def test_ps_filters(palletd: Any, three: dict[str, str]) -> None:
    wrong = []
    for filters, expected in PS_FILTER_CASES:
        args = [arg for f in filters for arg in ("--filter", f)]
        out = palletd.cli_ok("ps", "-a", "-q", "--no-trunc", *args)
        names = {name for name, cid in three.items() if cid in out.split()}
        if names != expected or len(out.split()) != len(expected):
            wrong.append(f"{filters}: got {sorted(names)} ({out.split()}), want {sorted(expected)}")
    assert not wrong, "\n".join(wrong)


def test_ps_filter_by_id_prefix(palletd: Any, three: dict[str, str]) -> None:
    out = palletd.cli_ok("ps", "-a", "-q", "-f", f"id={three['idle'][:10]}")
    assert out.split() == [three["idle"][:12]]


def test_ps_rejects_an_unknown_filter(palletd: Any, three: dict[str, str]) -> None:
    result = palletd.cli("ps", "-a", "--filter", "colour=red")
    assert result.returncode == 1
    assert "colour" in result.stderr


def test_wait_blocks_until_exit(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "slow", image, "sh", "-c", "sleep 1.5; exit 4")
    started = time.monotonic()
    assert palletd.cli_ok("wait", "slow") == "4\n"
    assert time.monotonic() - started > 0.5


def test_inspect_is_docker_shaped(palletd: Any, image: str) -> None:
    cid = palletd.cli_ok(
        "run", "-d", "--name", "shape", "-e", "K=V", "-l", "k=v", "-w", "/tmp",
        "--hostname", "shapely", image, "sleep", "300",
    ).strip()
    out = palletd.cli_ok("inspect", "shape")
    assert out.startswith("[\n    {\n"), "JSON array with 4-space indent"
    [data] = json.loads(out)
    assert data["Id"] == cid
    assert data["Name"] == "/shape"
    assert data["Path"] == "sleep"
    assert data["Args"] == ["300"]
    assert data["Image"].startswith("sha256:")
    assert data["Image"] == palletd.base_image_id
    assert data["RestartCount"] == 0
    assert data["LogPath"] and Path(data["LogPath"]).is_file()
    state = data["State"]
    for key in ("Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid",
                "ExitCode", "Error", "StartedAt", "FinishedAt"):
        assert key in state, key
    assert state["Status"] == "running"
    assert (state["Running"], state["Paused"], state["Restarting"]) == (True, False, False)
    assert (state["OOMKilled"], state["Dead"]) == (False, False)
    assert state["FinishedAt"] == UNSET_TIME
    config = data["Config"]
    assert config["Hostname"] == "shapely"
    assert config["Image"] == image  # the reference as given at create, like docker
    palletd.cli_ok("create", "--name", "short", "busybox", "true")
    assert palletd.inspect("short")["Config"]["Image"] == "busybox"
    assert config["Cmd"] == ["sleep", "300"]
    assert config["WorkingDir"] == "/tmp"
    assert config["Labels"] == {"k": "v"}
    assert "K=V" in config["Env"]
    assert config["OpenStdin"] is False
    for key in ("User", "Entrypoint", "StopSignal", "StopTimeout"):
        assert key in config, key
    assert data["HostConfig"]["AutoRemove"] is False
    assert data["GraphDriver"]["Name"] == "overlay"
    assert Path(data["GraphDriver"]["Data"]["UpperDir"]).is_dir()
    assert data["GraphDriver"]["Data"]["LowerDir"]


def test_inspect_several_and_by_prefix(palletd: Any, image: str) -> None:
    a = palletd.cli_ok("create", "--name", "i1", image, "true").strip()
    b = palletd.cli_ok("create", "--name", "i2", image, "true").strip()
    data = json.loads(palletd.cli_ok("inspect", a[:10], "i2"))
    assert [d["Id"] for d in data] == [a, b]


INSPECT_FORMAT_CASES: list[tuple[str, str]] = [
    ("{{.Name}}", "/fmt"),
    ("{{.State.Status}}", "running"),
    ('{{index .Config.Labels "app"}}', "demo"),
    ('{{join .Args " "}}', "-c sleep 300"),
    ("{{if .State.Running}}yes{{else}}no{{end}}", "yes"),
    ("{{upper .Name}}", "/FMT"),
    ("{{lower .Config.Hostname}}", "fmthost"),
    ("{{len .Args}}", "2"),
    ('{{printf "%s is %s" .Name .State.Status}}', "/fmt is running"),
    ("{{.HostConfig.AutoRemove}}", "false"),
]


def test_inspect_format(palletd: Any, image: str) -> None:
    palletd.cli_ok(
        "run", "-d", "--name", "fmt", "--hostname", "FmtHost", "-l", "app=demo", "-e", "X=1",
        image, "sh", "-c", "sleep 300",
    )
    wrong = []
    for template, expected in INSPECT_FORMAT_CASES:
        result = palletd.cli("inspect", "--format", template, "fmt")
        if (result.returncode, result.stdout) != (0, expected + "\n"):
            wrong.append(f"{template}: exit {result.returncode}, {result.stdout!r} "
                         f"{result.stderr!r}; want {expected!r}")
    env = palletd.cli_ok("inspect", "--format", "{{range .Config.Env}}{{.}} {{end}}", "fmt")
    if not ("X=1 " in env and env.endswith(" \n")):
        wrong.append(f"range .Config.Env: {env!r}")
    assert not wrong, "\n".join(wrong)


def test_inspect_format_pid_and_json(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "fj", "-l", "a=b", image, "sleep", "300")
    pid = int(palletd.cli_ok("inspect", "-f", "{{.State.Pid}}", "fj"))
    assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x00300\x00"
    config = json.loads(palletd.cli_ok("inspect", "-f", "{{json .Config}}", "fj"))
    assert config["Labels"] == {"a": "b"}
    assert config["Cmd"] == ["sleep", "300"]


def test_inspect_format_prints_one_line_per_object(palletd: Any, image: str) -> None:
    palletd.cli_ok("create", "--name", "l1", image, "true")
    palletd.cli_ok("create", "--name", "l2", image, "true")
    assert palletd.cli_ok("inspect", "-f", "{{.Name}}", "l1", "l2") == "/l1\n/l2\n"


@pytest.mark.parametrize("template", ["{{.NoSuchField}}", "{{.Name", "{{if}}", "{{nosuchfunc .Name}}"])
def test_inspect_bad_template(palletd: Any, image: str, template: str) -> None:
    palletd.cli_ok("create", "--name", "bad", image, "true")
    result = palletd.cli("inspect", "-f", template, "bad")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: template: "), result.stderr


def test_inspect_falls_back_to_images(palletd: Any, image: str) -> None:
    [data] = json.loads(palletd.cli_ok("inspect", "busybox"))
    assert data["Id"] == palletd.base_image_id
    assert data["RepoTags"] == ["busybox:latest"]
    [data] = json.loads(palletd.cli_ok("inspect", "--type", "image", "busybox"))
    assert data["Id"] == palletd.base_image_id
    result = palletd.cli("inspect", "--type", "container", "busybox")
    assert result.returncode == 1
    assert "busybox" in result.stderr


def test_container_aliases(palletd: Any, image: str) -> None:
    palletd.cli_ok("container", "create", "--name", "al", image, "true")
    assert "al" in palletd.cli_ok("container", "ls", "-a")
    [data] = json.loads(palletd.cli_ok("container", "inspect", "al"))
    assert data["Name"] == "/al"
    assert palletd.cli_ok("container", "rm", "al") == "al\n"
    assert palletd.cli_ok("container", "ls", "-a", "-q") == ""


@pytest.mark.parametrize(
    ("args", "words"),
    [(("nosuchcmd",), "executable file not found"), (("-u", "nosuchuser", "id"), "nosuchuser")],
    ids=["missing-executable", "unknown-user"],
)
def test_a_failed_start_leaves_nothing_half_made(
    palletd: Any, image: str, args: tuple[str, ...], words: str
) -> None:
    """The start's steps are released: no shim, no shim socket, no cgroup, no mount; the
    container stays Created with the error, and starts again as cleanly."""
    opts, cmd = (args[:2], args[2:]) if args[0] == "-u" else ((), args)
    cid = palletd.cli_ok("create", *opts, image, *cmd).strip()
    mounts_before = palletd.mounts()
    for _ in range(2):
        result = palletd.cli("start", cid)
        assert result.returncode != 0 and words in result.stderr, result
        state = palletd.inspect(cid)["State"]
        assert state["Status"] == "created" and state["Pid"] == 0, state
        assert words in state["Error"]
        assert palletd.lingering_shims() == {}
        assert not (palletd.run_root / "shims" / f"{cid}.sock").exists()
        assert palletd.container_cgroups(cid) == []
        assert palletd.mounts() == mounts_before
