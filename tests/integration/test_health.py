"""Healthchecks against real containers: probes that pass, fail and time out, the start
period, --no-healthcheck, an image's HEALTHCHECK (made by commit -c), the events, `ps`
(its STATUS and --filter health=), pause, and the state kept across a palletd restart.

Intervals are short (100-300 ms): a probe is a real exec in the container, so what is
checked is what a user sees (inspect, ps, events), never how long something took.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

FAST = ("--health-interval", "100ms", "--health-timeout", "5s")


def health(palletd: Any, name: str) -> dict[str, Any] | None:
    state: dict[str, Any] = palletd.inspect(name)["State"]
    return state.get("Health")


def status_is(palletd: Any, name: str, status: str) -> dict[str, Any] | None:
    h = health(palletd, name)
    return h if h is not None and h["Status"] == status else None


def events(palletd: Any, name: str, since: float) -> list[str]:
    out = palletd.cli_ok("events", "--since", f"{since:.3f}", "--until", "0s", "--filter",
                         f"container={name}", "--format", "json", timeout=30)
    return [json.loads(line)["Action"] for line in out.splitlines() if line.strip()]


def ps_status(palletd: Any, name: str) -> str:
    return str(palletd.cli_ok("ps", "--filter", f"name={name}", "--format", "{{.Status}}").strip())


def test_a_passing_check_makes_it_healthy(palletd: Any, image: str) -> None:
    since = time.time() - 1
    palletd.cli_ok("run", "-d", "--name", "ok", "--health-cmd", "echo fine; true", *FAST,
                   image, "sleep", "300")
    h = palletd.wait_for(lambda: status_is(palletd, "ok", "healthy"), 20, what="healthy")
    assert h["FailingStreak"] == 0
    entry = h["Log"][-1]
    assert entry["ExitCode"] == 0 and entry["Output"] == "fine\n"
    assert entry["Start"] <= entry["End"]
    config = palletd.inspect("ok")["Config"]["Healthcheck"]
    assert config == {"Test": ["CMD-SHELL", "echo fine; true"], "Interval": 100_000_000,
                      "Timeout": 5_000_000_000}
    # The last 5 results are kept.
    palletd.wait_for(lambda: len(health(palletd, "ok")["Log"]) == 5, 20, what="5 results")  # type: ignore[index]
    time.sleep(0.5)
    assert len(health(palletd, "ok")["Log"]) == 5  # type: ignore[index]
    assert ps_status(palletd, "ok").endswith("(healthy)")
    actions = events(palletd, "ok", since)
    # The status changed once: one event, docker's action string; each probe is an exec.
    assert actions.count("health_status: healthy") == 1
    assert "exec_create: /bin/sh -c echo fine; true" in actions
    assert "exec_die" in actions


def test_a_failing_check_makes_it_unhealthy_after_its_retries(palletd: Any, image: str) -> None:
    since = time.time() - 1
    palletd.cli_ok("run", "-d", "--name", "bad", "--health-cmd", "echo nope >&2; exit 2",
                   "--health-retries", "2", *FAST, image, "sleep", "300")
    h = palletd.wait_for(lambda: status_is(palletd, "bad", "unhealthy"), 20, what="unhealthy")
    assert h["FailingStreak"] >= 2
    assert h["Log"][-1]["ExitCode"] == 2 and h["Log"][-1]["Output"] == "nope\n"
    assert ps_status(palletd, "bad").endswith("(unhealthy)")
    assert "health_status: unhealthy" in events(palletd, "bad", since)
    assert "health_status: healthy" not in events(palletd, "bad", since)


def test_a_check_that_outlives_its_timeout_is_killed_and_counted(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "slow", "--health-cmd", "echo started; exec sleep 60",
                   "--health-interval", "100ms", "--health-timeout", "300ms",
                   "--health-retries", "1", image, "sleep", "300")
    h = palletd.wait_for(lambda: status_is(palletd, "slow", "unhealthy"), 20, what="unhealthy")
    entry = h["Log"][-1]
    assert entry["ExitCode"] == -1
    assert entry["Output"] == "Health check exceeded timeout (300ms): started\n"
    # Killed: at most the probe under way runs its sleep; unkilled, they would pile up.
    palletd.wait_for(lambda: health(palletd, "slow")["FailingStreak"] >= 3, 20,  # type: ignore[index]
                     what="3 timed-out probes")
    top = palletd.cli_ok("top", "slow")
    assert top.count("sleep 60") <= 1, top


def test_failures_in_the_start_period_do_not_count(palletd: Any, image: str) -> None:
    # Fails until /tmp/up exists; the start period is long, the start interval short.
    palletd.cli_ok("run", "-d", "--name", "boot", "--health-cmd", "test -f /tmp/up",
                   "--health-interval", "10m", "--health-start-interval", "100ms",
                   "--health-start-period", "1h", "--health-retries", "1", image, "sleep", "300")
    palletd.wait_for(lambda: len((health(palletd, "boot") or {}).get("Log") or []) >= 3, 20,
                     what="3 probes at the start interval")
    h = health(palletd, "boot")
    assert h is not None and h["Status"] == "starting" and h["FailingStreak"] == 0
    assert ps_status(palletd, "boot").endswith("(health: starting)")
    palletd.cli_ok("exec", "boot", "touch", "/tmp/up")
    palletd.wait_for(lambda: status_is(palletd, "boot", "healthy"), 20, what="healthy")


def test_no_healthcheck_and_the_filter(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "none", "--no-healthcheck", image, "sleep", "300")
    palletd.cli_ok("run", "-d", "--name", "plain", image, "sleep", "300")
    palletd.cli_ok("run", "-d", "--name", "good", "--health-cmd", "true", *FAST, image, "sleep", "300")
    palletd.wait_for(lambda: status_is(palletd, "good", "healthy"), 20, what="healthy")
    assert health(palletd, "none") is None
    assert palletd.inspect("none")["Config"]["Healthcheck"] == {"Test": ["NONE"]}
    assert "Healthcheck" not in palletd.inspect("plain")["Config"]
    assert "(" not in ps_status(palletd, "none")

    def names(value: str) -> set[str]:
        out = palletd.cli_ok("ps", "--filter", f"health={value}", "--format", "{{.Names}}")
        return set(out.split())

    assert names("healthy") == {"good"}
    assert names("none") == {"none", "plain"}
    assert names("unhealthy") == set()
    bad = palletd.cli("ps", "--filter", "health=sick")
    assert bad.returncode != 0 and "health=sick" in bad.stderr


BAD = (
    (("--health-interval", "500us"), "Interval in Healthcheck cannot be less than 1ms"),
    (("--health-timeout", "10"), "--health-timeout"),
    (("--health-retries", "-1"), "--health-retries cannot be negative"),
    (("--health-start-period", "-1s"), "--health-start-period cannot be negative"),
    (("--no-healthcheck", "--health-cmd", "true"), "--no-healthcheck conflicts"),
)


def test_bad_healthchecks_create_nothing(palletd: Any, image: str) -> None:
    for flags, words in BAD:
        result = palletd.cli("create", "--name", "nope", *flags, image, "true")
        assert result.returncode == 125, (flags, result.stderr)
        assert words in result.stderr, (flags, result.stderr)
    # The daemon's own judgement, through the API: INVALID_ARGUMENT, nothing made.
    import grpc

    from pallet.v1 import containers_pb2 as cpb

    for health_config, words in (
        ({"test": ["CMD", "true"], "timeout_ns": 999_999}, "Timeout in Healthcheck cannot be less than 1ms"),
        ({"test": ["CMD", "true"], "retries": -1}, "Retries in Healthcheck cannot be negative"),
        ({"test": ["SHELL", "true"]}, "unknown Healthcheck test 'SHELL'"),
    ):
        config = cpb.ContainerConfig(image=image, name="nope", cmd=["true"])
        for key, value in health_config.items():
            if key == "test":
                config.healthcheck.test[:] = value  # type: ignore[assignment]
            else:
                setattr(config.healthcheck, key, value)
        with pytest.raises(grpc.RpcError) as e:
            palletd._stubs().containers.Create(cpb.CreateContainerRequest(config=config), timeout=30)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert words in e.value.details()
    assert palletd.cli_ok("ps", "-a", "-q") == ""


def test_an_image_healthcheck_from_a_commit_and_a_build(palletd: Any, image: str, tmp_path: Path) -> None:
    palletd.cli_ok("run", "-d", "--name", "base", image, "sleep", "300")
    palletd.cli_ok("commit", "-c", "HEALTHCHECK --interval=100ms --retries=1 CMD test -f /ok",
                   "base", "checked:1")
    config = json.loads(palletd.cli_ok("image", "inspect", "checked:1"))[0]["Config"]
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "test -f /ok"],
                                     "Interval": 100_000_000, "Retries": 1}
    palletd.cli_ok("run", "-d", "--name", "fromimage", "checked:1")
    palletd.wait_for(lambda: status_is(palletd, "fromimage", "unhealthy"), 20, what="unhealthy")
    # The run's command replaces the image's test and keeps its interval and retries.
    palletd.cli_ok("run", "-d", "--name", "overridden", "--health-cmd", "true", "checked:1")
    assert palletd.inspect("overridden")["Config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", "true"], "Interval": 100_000_000, "Retries": 1}
    palletd.wait_for(lambda: status_is(palletd, "overridden", "healthy"), 20, what="healthy")
    palletd.cli_ok("run", "-d", "--name", "disabled", "--no-healthcheck", "checked:1")
    time.sleep(0.5)
    assert health(palletd, "disabled") is None
    # A Dockerfile's HEALTHCHECK, built.
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM checked:1\nHEALTHCHECK --interval=100ms --timeout=2s --retries=1 CMD [\"false\"]\n")
    palletd.cli_ok("build", "-q", "-t", "built:1", str(ctx), timeout=120)
    built = json.loads(palletd.cli_ok("image", "inspect", "built:1"))[0]["Config"]["Healthcheck"]
    assert built == {"Test": ["CMD", "false"], "Interval": 100_000_000, "Timeout": 2_000_000_000,
                     "Retries": 1}
    # A CMD-SHELL test runs in the image's SHELL (docker's Config.Shell).
    (ctx / "Dockerfile").write_text(
        'FROM checked:1\nSHELL ["/bin/echo", "in the shell:"]\n'
        "HEALTHCHECK --interval=100ms CMD hello\n")
    palletd.cli_ok("build", "-q", "-t", "shelled:1", str(ctx), timeout=120)
    palletd.cli_ok("run", "-d", "--name", "shelled", "shelled:1")
    h = palletd.wait_for(lambda: status_is(palletd, "shelled", "healthy"), 20, what="healthy")
    assert h["Log"][-1]["Output"] == "in the shell: hello\n"
    # A commit keeps the container's healthcheck (docker's).
    palletd.cli_ok("commit", "overridden", "checked:2")
    kept = json.loads(palletd.cli_ok("image", "inspect", "checked:2"))[0]["Config"]["Healthcheck"]
    assert kept["Test"] == ["CMD-SHELL", "true"]


def test_pause_stops_probing_and_a_new_start_is_starting_again(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "pz", "--health-cmd", "true", "--health-interval", "300ms",
                   image, "sleep", "300")
    palletd.wait_for(lambda: status_is(palletd, "pz", "healthy"), 20, what="healthy")
    palletd.cli_ok("pause", "pz")
    before = health(palletd, "pz")
    time.sleep(0.6)
    assert health(palletd, "pz") == before  # no probe of a paused container
    palletd.cli_ok("unpause", "pz")
    palletd.wait_for(lambda: health(palletd, "pz") != before, 20, what="probes again")
    palletd.cli_ok("stop", "-t", "0", "pz")
    stopped = health(palletd, "pz")
    assert stopped is not None and stopped["Status"] == "healthy"  # kept, as docker keeps it
    assert palletd.cli_ok("ps", "-a", "--filter", "name=pz", "--format", "{{.Status}}").startswith("Exited")
    time.sleep(0.4)
    assert health(palletd, "pz") == stopped  # no probes once it has stopped
    # Docker's filter sees the status it kept.
    assert "pz" in palletd.cli_ok("ps", "-a", "--filter", "health=healthy", "--format", "{{.Names}}").split()
    since = time.time() - 0.5
    palletd.cli_ok("start", "pz")
    h = health(palletd, "pz")
    assert h is not None and stopped["Log"][-1] in h["Log"]  # the log is kept across runs
    # The start made it starting again (no event for that, as docker's): the first probe
    # after it changes it back, which is announced.
    palletd.wait_for(lambda: "health_status: healthy" in events(palletd, "pz", since), 20,
                     what="healthy again")
    assert events(palletd, "pz", since).index("start") < events(palletd, "pz", since).index(
        "health_status: healthy")


def test_health_is_kept_across_a_palletd_restart_and_probing_resumes(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "sick", "--health-cmd", "exit 1", "--health-retries", "2",
                   *FAST, image, "sleep", "300")
    palletd.cli_ok("run", "-d", "--name", "well", "--health-cmd", "true", *FAST, image, "sleep", "300")
    palletd.wait_for(lambda: (health(palletd, "sick") or {}).get("FailingStreak", 0) >= 3, 20,
                     what="3 failures")
    palletd.wait_for(lambda: status_is(palletd, "well", "healthy"), 20, what="healthy")
    # kill -9: the status and the streak were written with each change.
    palletd.proc.send_signal(signal.SIGKILL)
    palletd.proc.wait(10)
    palletd._close_channel()
    db = sqlite3.connect(palletd.root / "pallet.db")
    try:
        rows = dict(db.execute("SELECT name, record FROM containers").fetchall())
    finally:
        db.close()
    kept = json.loads(rows["sick"])["state"]["health"]
    assert kept["status"] == "unhealthy" and kept["failing_streak"] >= 3
    assert json.loads(rows["well"])["state"]["health"]["status"] == "healthy"
    palletd.start()
    h = health(palletd, "sick")
    assert h is not None and h["Status"] == "unhealthy" and h["FailingStreak"] >= kept["failing_streak"]
    assert status_is(palletd, "well", "healthy")
    # Probing resumed: the streak goes on growing.
    palletd.wait_for(lambda: health(palletd, "sick")["FailingStreak"] > kept["failing_streak"] + 1,  # type: ignore[index]
                     20, what="probes after the restart")
    since = time.time()
    # A clean stop writes the log kept in memory: the newest result is there after it.
    palletd.stop()
    db = sqlite3.connect(palletd.root / "pallet.db")
    try:
        record = json.loads(db.execute("SELECT record FROM containers WHERE name = 'well'").fetchone()[0])
    finally:
        db.close()
    newest = record["state"]["health"]["log"][-1]["start_ns"]
    assert newest >= (since - 1.0) * 1e9
    palletd.start()
    assert status_is(palletd, "well", "healthy")
