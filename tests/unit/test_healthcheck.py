"""Healthchecks' rules with no daemon: the config (checked, merged as docker merges it,
from an image config and a HEALTHCHECK change), what each probe's result does to the
state, when the next probe comes, what is kept of its output, Go's durations, `ps
--filter health=`, the CLI's flags and docker's views (ps STATUS, inspect)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pallet.client import views
from pallet.client.cli import parse_args
from pallet.client.requests import container_config
from pallet.daemon import durations
from pallet.daemon.containers import filters, healthcheck
from pallet.daemon.containers.model import (
    Config,
    Container,
    ContainerState,
    Health,
    HealthResult,
    Status,
)
from pallet.daemon.images import oci
from pallet.daemon.images.changes import apply_changes
from pallet.daemon.images.model import HealthConfig, ImageConfig
from pallet.v1 import containers_pb2 as cpb
from pallet.v1.errors import InvalidArgument

MS = 1_000_000
S = 1_000_000_000
CHECK = HealthConfig(test=("CMD-SHELL", "true"), interval_ns=100 * MS, retries=2)


# ---- the config ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad,words", [
    (HealthConfig(interval_ns=MS - 1), "Interval in Healthcheck cannot be less than 1ms"),
    (HealthConfig(timeout_ns=-S), "Timeout in Healthcheck cannot be less than 1ms (it is -1s)"),
    (HealthConfig(start_period_ns=500_000), "StartPeriod in Healthcheck cannot be less than 1ms"),
    (HealthConfig(start_interval_ns=1), "StartInterval in Healthcheck cannot be less than 1ms"),
    (HealthConfig(retries=-1), "Retries in Healthcheck cannot be negative"),
    (HealthConfig(test=("SHELL", "true")), "unknown Healthcheck test 'SHELL'"),
    (HealthConfig(test=("NONE", "x")), "NONE takes no command"),
    (HealthConfig(test=("CMD",)), "CMD needs a command"),
    (HealthConfig(test=("CMD-SHELL", "")), "CMD-SHELL needs a command"),
])
def test_a_bad_healthcheck_is_refused_naming_what_is_wrong(bad: HealthConfig, words: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        healthcheck.check(bad)
    assert words in str(e.value)


def test_good_healthchecks_pass_as_they_are() -> None:
    for good in (None, HealthConfig(), HealthConfig(test=("NONE",)), CHECK,
                 HealthConfig(test=("CMD", "curl", "-f", "x"), interval_ns=MS, timeout_ns=MS)):
        assert healthcheck.check(good) == good


def test_the_merge_is_dockers() -> None:
    image = HealthConfig(test=("CMD", "check"), interval_ns=5 * S, timeout_ns=2 * S, retries=7)
    assert healthcheck.merge(None, None) is None
    assert healthcheck.merge(None, image) == image
    assert healthcheck.merge(CHECK, None) == CHECK
    # Only the values asked replace the image's; an empty test is the image's.
    assert healthcheck.merge(HealthConfig(interval_ns=S), image) == HealthConfig(
        test=("CMD", "check"), interval_ns=S, timeout_ns=2 * S, retries=7
    )
    assert healthcheck.merge(HealthConfig(test=("NONE",)), image).test == ("NONE",)  # type: ignore[union-attr]


def test_the_probe_command() -> None:
    assert healthcheck.probe_args(HealthConfig(test=("CMD", "a", "b c"))) == ("a", "b c")
    assert healthcheck.probe_args(HealthConfig(test=("CMD-SHELL", "a && b"))) == ("/bin/sh", "-c", "a && b")
    # The image's SHELL (docker's Config.Shell) for a CMD-SHELL test, not for CMD.
    ash = ("/bin/ash", "-ec")
    assert healthcheck.probe_args(HealthConfig(test=("CMD-SHELL", "a")), ash) == ("/bin/ash", "-ec", "a")
    assert healthcheck.probe_args(HealthConfig(test=("CMD", "a")), ash) == ("a",)
    for nothing in (None, HealthConfig(), HealthConfig(test=("NONE",)), HealthConfig(test=("X", "y"))):
        assert healthcheck.probe_args(nothing) is None


def test_the_defaults_are_dockers() -> None:
    h = HealthConfig(test=("CMD", "x"))
    assert healthcheck.interval_ns(h) == 30 * S
    assert healthcheck.timeout_ns(h) == 30 * S
    assert healthcheck.start_period_ns(h) == 0
    assert healthcheck.start_interval_ns(h) == 5 * S
    assert healthcheck.retries(h) == 3


def test_an_image_config_keeps_its_healthcheck() -> None:
    raw = {"Cmd": ["sh"], "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 1000000000,
                                          "Retries": 2, "StartInterval": 2000000}}
    config = oci.runtime_config_from_json(raw)
    assert config.healthcheck == HealthConfig(test=("CMD-SHELL", "true"), interval_ns=S,
                                              start_interval_ns=2 * MS, retries=2)
    assert oci.runtime_config_to_json(config) == raw
    assert oci.runtime_config_from_json({"Cmd": ["sh"]}).healthcheck is None
    assert "Healthcheck" not in oci.runtime_config_to_json(ImageConfig(cmd=("sh",)))
    with pytest.raises(InvalidArgument, match="Healthcheck Interval must be an integer"):
        oci.runtime_config_from_json({"Healthcheck": {"Test": ["NONE"], "Interval": "1s"}})


@pytest.mark.parametrize("change,expected", [
    ("HEALTHCHECK CMD curl -f http://localhost/ || exit 1",
     HealthConfig(test=("CMD-SHELL", "curl -f http://localhost/ || exit 1"))),
    ('HEALTHCHECK --interval=100ms --timeout=2s --start-period=1m --start-interval=50ms '
     '--retries=4 CMD ["/bin/check", "-q"]',
     HealthConfig(test=("CMD", "/bin/check", "-q"), interval_ns=100 * MS, timeout_ns=2 * S,
                  start_period_ns=60 * S, start_interval_ns=50 * MS, retries=4)),
    ("healthcheck none", HealthConfig(test=("NONE",))),
])
def test_a_healthcheck_change(change: str, expected: HealthConfig) -> None:
    assert apply_changes(ImageConfig(), [change]).healthcheck == expected


@pytest.mark.parametrize("change,words", [
    ("HEALTHCHECK --interval=10 CMD true", "invalid duration '10'"),
    ("HEALTHCHECK --interval=500us CMD true", "cannot be less than 1ms"),
    ("HEALTHCHECK --retries=-1 CMD true", "--retries cannot be negative"),
    ("HEALTHCHECK --every=1s CMD true", "flag '--every=1s' is unknown"),
    ("HEALTHCHECK NONE true", "NONE takes no arguments"),
    ("HEALTHCHECK CMD", "needs a command"),
    ("HEALTHCHECK true", "give CMD and a command, or NONE"),
])
def test_a_bad_healthcheck_change(change: str, words: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        apply_changes(ImageConfig(), [change])
    assert words in str(e.value)


# ---- what a probe's result does ----------------------------------------------------------------


def result(start_s: float, code: int) -> HealthResult:
    start = int(start_s * S)
    return HealthResult(start, start + 10 * MS, code, "")


def run(config: HealthConfig, codes: list[int], every_s: float = 0.1) -> list[tuple[str, int]]:
    """(status, streak) after each result of a run that started at 0."""
    health = healthcheck.at_start(None, config)
    assert health is not None
    seen = []
    for i, code in enumerate(codes):
        health = healthcheck.record(health, result((i + 1) * every_s, code), config, 0)
        seen.append((health.status, health.failing_streak))
    return seen


def test_a_start_is_starting_with_no_failures_and_keeps_the_log() -> None:
    assert healthcheck.at_start(None, CHECK) == Health("starting", 0, ())
    old = Health("unhealthy", 4, (result(1, 1),))
    assert healthcheck.at_start(old, CHECK) == Health("starting", 0, (result(1, 1),))
    # Nothing to probe: no State.Health at all (docker's NONE).
    assert healthcheck.at_start(None, HealthConfig(test=("NONE",))) is None
    assert healthcheck.at_start(None, None) is None


def test_success_is_healthy_and_failures_in_a_row_make_it_unhealthy() -> None:
    assert run(CHECK, [0, 1, 1, 1, 0]) == [
        ("healthy", 0), ("healthy", 1), ("unhealthy", 2), ("unhealthy", 3), ("healthy", 0),
    ]
    # Retries 0 is docker's 3; any non-zero code is a failure (-1: a timeout).
    three = HealthConfig(test=("CMD", "x"))
    assert run(three, [1, -1, 2]) == [("starting", 1), ("starting", 2), ("unhealthy", 3)]


def test_failures_in_the_start_period_count_only_after_a_success() -> None:
    config = HealthConfig(test=("CMD", "x"), start_period_ns=S, retries=1)
    # Probes at 0.1 s .. 0.5 s: inside the period; failures do not count while starting.
    assert run(config, [1, 1, 1]) == [("starting", 0)] * 3
    # Once a probe succeeded, it is no longer starting: failures count.
    assert run(config, [1, 0, 1]) == [("starting", 0), ("healthy", 0), ("unhealthy", 1)]
    # After the period they count.
    assert run(config, [1, 1], every_s=0.6)[-1] == ("unhealthy", 1)


def test_the_log_keeps_the_last_five() -> None:
    health = Health()
    for i in range(8):
        health = healthcheck.record(health, result(i, 0), CHECK, 0)
    assert [r.start_ns for r in health.log] == [i * S for i in range(3, 8)]


def test_the_start_interval_during_the_start_period() -> None:
    config = HealthConfig(test=("CMD", "x"), interval_ns=10 * S, start_period_ns=60 * S,
                          start_interval_ns=100 * MS)
    assert healthcheck.next_wait_ns(config, "starting", 0, 0) == 100 * MS
    assert healthcheck.next_wait_ns(config, "starting", 0, 59 * S) == 100 * MS
    assert healthcheck.next_wait_ns(config, "healthy", 0, S) == 10 * S  # a success ends it
    assert healthcheck.next_wait_ns(config, "starting", 0, 60 * S) == 10 * S
    # No start period: the interval from the first probe on.
    assert healthcheck.next_wait_ns(CHECK, "starting", 0, 0) == 100 * MS


def test_the_output_kept() -> None:
    assert healthcheck.output_text(b"ok\n") == "ok\n"
    assert healthcheck.output_text(b"x" * 4096) == "x" * 4096
    assert healthcheck.output_text(b"x" * 5000) == "x" * 4096 + "..."
    assert healthcheck.output_text(b"\xff") == "\ufffd"
    assert healthcheck.timed_out_output(300 * MS, "") == "Health check exceeded timeout (300ms)"
    assert healthcheck.timed_out_output(30 * S, "hi\n") == "Health check exceeded timeout (30s): hi\n"


@pytest.mark.parametrize("text,ns,back", [
    ("0", 0, "0s"), ("500ms", 500 * MS, "500ms"), ("1.5s", 1500 * MS, "1.5s"),
    ("1m30s", 90 * S, "1m30s"), ("2h", 7200 * S, "2h0m0s"), ("250us", 250_000, "250µs"),
    ("-1s", -S, "-1s"), ("1h2m3.004s", 3723 * S + 4 * MS, "1h2m3.004s"),
])
def test_go_durations(text: str, ns: int, back: str) -> None:
    assert durations.parse(text, "x") == ns
    assert durations.text(ns) == back


@pytest.mark.parametrize("bad", ["", "10", "1x", "s", "1s2", "--1s"])
def test_bad_go_durations(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid duration"):
        durations.parse(bad, "--health-interval")


# ---- ps --filter health= --------------------------------------------------------------------


def container(health: Health | None) -> Container:
    return Container(
        id="c" * 64, name="web", image_id="sha256:" + "0" * 64, config=Config(image="busybox"),
        state=ContainerState(status=Status.RUNNING, health=health), created_ns=0, state_dir="/x",
    )


def test_the_health_filter() -> None:
    terms = filters.parse(["health=healthy", "health=starting"])
    assert filters.matches(container(Health("healthy")), terms, set())
    assert filters.matches(container(Health("starting")), terms, set())
    assert not filters.matches(container(Health("unhealthy")), terms, set())
    assert not filters.matches(container(None), terms, set())
    assert filters.matches(container(None), filters.parse(["health=none"]), set())
    with pytest.raises(InvalidArgument, match="invalid filter health=ok: use one of"):
        filters.parse(["health=ok"])


# ---- the CLI ----------------------------------------------------------------------------------------


def config_of(*flags: str) -> Any:
    return container_config(parse_args(["run", *flags, "busybox"]), {})


def test_the_health_flags() -> None:
    cfg = config_of("--health-cmd", "curl -f x", "--health-interval", "1m30s",
                    "--health-timeout", "500ms", "--health-retries", "5",
                    "--health-start-period", "10s", "--health-start-interval", "1s")
    h = cfg.healthcheck
    assert list(h.test) == ["CMD-SHELL", "curl -f x"]
    assert (h.interval_ns, h.timeout_ns, h.retries) == (90 * S, 500 * MS, 5)
    assert (h.start_period_ns, h.start_interval_ns) == (10 * S, S)
    # No flag: the image's (unset); a value without a command keeps the image's test.
    assert not config_of().HasField("healthcheck")
    only = config_of("--health-interval", "2s").healthcheck
    assert list(only.test) == [] and only.interval_ns == 2 * S
    assert list(config_of("--no-healthcheck").healthcheck.test) == ["NONE"]


@pytest.mark.parametrize("flags,words", [
    (("--health-interval", "10"), "invalid argument '10' for --health-interval"),
    (("--health-timeout", "-1s"), "--health-timeout cannot be negative"),
    (("--health-retries", "-2"), "--health-retries cannot be negative"),
    (("--no-healthcheck", "--health-retries", "2"), "--no-healthcheck conflicts with --health-* options"),
])
def test_bad_health_flags(flags: tuple[str, ...], words: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        config_of(*flags)
    assert words in str(e.value)


def message(status: int, health: cpb.Health | None) -> cpb.Container:
    c = cpb.Container(id="c" * 64, name="web", image="busybox")
    c.state.status = status
    c.state.started_at.FromSeconds(100)
    if health is not None:
        c.state.health.CopyFrom(health)
    return c


def test_ps_shows_the_health_as_docker_does() -> None:
    running, paused = cpb.CONTAINER_STATUS_RUNNING, cpb.CONTAINER_STATUS_PAUSED
    assert views.container_status(message(running, cpb.Health(status="starting")), 103) == \
        "Up 3 seconds (health: starting)"
    assert views.container_status(message(running, cpb.Health(status="healthy")), 103) == \
        "Up 3 seconds (healthy)"
    assert views.container_status(message(running, cpb.Health(status="unhealthy")), 103) == \
        "Up 3 seconds (unhealthy)"
    assert views.container_status(message(running, None), 103) == "Up 3 seconds"
    assert views.container_status(message(paused, cpb.Health(status="healthy")), 103) == \
        "Up 3 seconds (Paused)"


def test_inspect_shows_the_health_as_docker_does() -> None:
    h = cpb.Health(status="unhealthy", failing_streak=3)
    entry = h.log.add(exit_code=-1, output="Health check exceeded timeout (1s)")
    entry.start.FromNanoseconds(1_700_000_000_000_000_000)
    entry.end.FromNanoseconds(1_700_000_001_000_000_000)
    c = message(cpb.CONTAINER_STATUS_RUNNING, h)
    c.config.healthcheck.test[:] = ["CMD-SHELL", "true"]
    c.config.healthcheck.interval_ns = S
    doc = json.loads(json.dumps(views.inspect_container(c)))
    assert doc["State"]["Health"] == {
        "Status": "unhealthy", "FailingStreak": 3,
        "Log": [{"Start": "2023-11-14T22:13:20.000000000Z", "End": "2023-11-14T22:13:21.000000000Z", "ExitCode": -1,
                 "Output": "Health check exceeded timeout (1s)"}],
    }
    assert doc["Config"]["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": S}
    keys = list(doc["Config"])
    assert keys.index("Healthcheck") == keys.index("Cmd") + 1  # docker's order
    plain = json.loads(json.dumps(views.inspect_container(message(cpb.CONTAINER_STATUS_RUNNING, None))))
    assert "Health" not in plain["State"] and "Healthcheck" not in plain["Config"]
