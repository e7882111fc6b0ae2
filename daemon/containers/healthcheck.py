"""Healthchecks by docker's rules: the config, and what each probe's result does.

Owns: checking a `HealthConfig` (durations 0 or at least 1 ms, retries not negative, a
test kind docker knows), merging a create's over the image's, the probe's command line,
the state a probe's result leads to (status, failing streak, the last 5 results), the
wait before the next probe, the output kept of a probe (4096 bytes), and docker's words
for a probe that timed out (`go_duration` writes a duration as Go does). Must not: do I/O
or read the clock: callers pass the times (tests/unit/test_healthcheck.py is a table).

docker's rules, as its daemon/health.go has them:
- no probe for a container without a healthcheck, or with test NONE (nor any State.Health);
- each start sets the status to starting and the streak to 0 (the log is kept);
- the first probe comes one interval after the start; during the start period, while
  the status is starting, the start interval is used instead; an interval is counted from
  the end of one probe to the start of the next;
- exit 0: healthy, streak 0; anything else (a timeout, a probe that could not run) is a
  failure, which does not count while starting within the start period (failures then
  count once a probe has succeeded or the period is over); `retries` failures in a row
  (3 when 0) make it unhealthy;
- a `health_status: <status>` event whenever the status changes.
"""

from __future__ import annotations

from dataclasses import replace

from pallet.daemon.containers.model import (
    HEALTH_HEALTHY,
    HEALTH_STARTING,
    HEALTH_UNHEALTHY,
    Health,
    HealthResult,
)
from pallet.daemon.durations import text as go_duration
from pallet.daemon.images.model import HealthConfig
from pallet.v1.errors import InvalidArgument

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
MIN_DURATION_NS = NS_PER_MS  # docker's container.MinimumDuration
DEFAULT_INTERVAL_NS = 30 * NS_PER_S
DEFAULT_TIMEOUT_NS = 30 * NS_PER_S
DEFAULT_START_PERIOD_NS = 0
DEFAULT_START_INTERVAL_NS = 5 * NS_PER_S
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5
MAX_OUTPUT_BYTES = 4096

TEST_NONE = "NONE"
TEST_CMD = "CMD"
TEST_SHELL = "CMD-SHELL"
SHELL = ("/bin/sh", "-c")

#: The action of the event a change of status publishes: "health_status: healthy".
EVENT_PREFIX = "health_status: "

# (field, docker's name for it, its default) of the durations.
_DURATIONS = (
    ("interval_ns", "Interval", DEFAULT_INTERVAL_NS),
    ("timeout_ns", "Timeout", DEFAULT_TIMEOUT_NS),
    ("start_period_ns", "StartPeriod", DEFAULT_START_PERIOD_NS),
    ("start_interval_ns", "StartInterval", DEFAULT_START_INTERVAL_NS),
)


def check(h: HealthConfig | None) -> HealthConfig | None:
    """A create's healthcheck as asked, judged as docker's daemon judges it
    (InvalidArgument naming the field and what to give instead)."""
    if h is None:
        return None
    for name, docker_name, default in _DURATIONS:
        value = getattr(h, name)
        if value < 0 or 0 < value < MIN_DURATION_NS:
            raise InvalidArgument(
                f"{docker_name} in Healthcheck cannot be less than 1ms (it is "
                f"{go_duration(value)}): give at least 1ms, or 0 for the default "
                f"({go_duration(default) if default else 'none'})"
            )
    if h.retries < 0:
        raise InvalidArgument(
            f"Retries in Healthcheck cannot be negative (it is {h.retries}): give 0 for "
            f"the default ({DEFAULT_RETRIES}) or more"
        )
    if h.test:
        kind = h.test[0]
        if kind not in (TEST_NONE, TEST_CMD, TEST_SHELL):
            raise InvalidArgument(
                f"unknown Healthcheck test {kind!r}: the test starts with CMD (a command "
                "and its arguments), CMD-SHELL (a shell command) or NONE (no healthcheck)"
            )
        if kind == TEST_NONE and len(h.test) > 1:
            raise InvalidArgument("the Healthcheck test NONE takes no command")
        if kind != TEST_NONE and (len(h.test) < 2 or not h.test[1]):
            raise InvalidArgument(f"the Healthcheck test {kind} needs a command after it")
    return h


def merge(asked: HealthConfig | None, image: HealthConfig | None) -> HealthConfig | None:
    """docker's merge: no healthcheck asked is the image's; one asked takes the image's
    test and values wherever it left them empty (0)."""
    if asked is None:
        return image
    if image is None:
        return asked
    return HealthConfig(
        test=asked.test or image.test,
        interval_ns=asked.interval_ns or image.interval_ns,
        timeout_ns=asked.timeout_ns or image.timeout_ns,
        start_period_ns=asked.start_period_ns or image.start_period_ns,
        start_interval_ns=asked.start_interval_ns or image.start_interval_ns,
        retries=asked.retries or image.retries,
    )


def probe_args(h: HealthConfig | None, shell: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """The probe's command line; None when there is nothing to probe (no healthcheck,
    NONE, or a test kind docker does not know: it probes nothing then either). A
    CMD-SHELL test runs in the container's shell (an image's SHELL), else /bin/sh -c."""
    if h is None or len(h.test) < 2:
        return None
    if h.test[0] == TEST_CMD:
        return h.test[1:]
    if h.test[0] == TEST_SHELL:
        return (*(shell or SHELL), *h.test[1:])
    return None


# The values in effect. An image's are not judged at create (docker does not either):
# one out of range counts as unset here.
def _value(ns: int, default: int) -> int:
    return ns if ns >= MIN_DURATION_NS else default


def interval_ns(h: HealthConfig) -> int:
    return _value(h.interval_ns, DEFAULT_INTERVAL_NS)


def timeout_ns(h: HealthConfig) -> int:
    return _value(h.timeout_ns, DEFAULT_TIMEOUT_NS)


def start_period_ns(h: HealthConfig) -> int:
    return _value(h.start_period_ns, DEFAULT_START_PERIOD_NS)


def start_interval_ns(h: HealthConfig) -> int:
    return _value(h.start_interval_ns, DEFAULT_START_INTERVAL_NS)


def retries(h: HealthConfig) -> int:
    return h.retries if h.retries > 0 else DEFAULT_RETRIES


def at_start(health: Health | None, h: HealthConfig | None) -> Health | None:
    """The health a new run starts with: starting, no failures (the log kept, docker's);
    None (unchanged) for a container that has nothing to probe."""
    if probe_args(h) is None:
        return health
    if health is None:
        return Health()
    return replace(health, status=HEALTH_STARTING, failing_streak=0)


def record(
    health: Health, result: HealthResult, h: HealthConfig, started_at_ns: int
) -> Health:
    """The health after one more probe's result (docker's handleProbeResult)."""
    log = (*health.log, result)[-MAX_LOG_ENTRIES:]
    if result.exit_code == 0:
        return Health(status=HEALTH_HEALTHY, failing_streak=0, log=log)
    if health.status == HEALTH_STARTING and result.start_ns - started_at_ns < start_period_ns(h):
        # Still starting, within the start period: the failure does not count.
        return replace(health, log=log)
    streak = health.failing_streak + 1
    status = HEALTH_UNHEALTHY if streak >= retries(h) else health.status
    return Health(status=status, failing_streak=streak, log=log)


def next_wait_ns(h: HealthConfig, status: str, started_at_ns: int, now_ns: int) -> int:
    """How long after `now_ns` (a probe's end, or the start) the next probe begins."""
    if now_ns - started_at_ns < start_period_ns(h) and status == HEALTH_STARTING:
        return start_interval_ns(h)
    return interval_ns(h)


def output_text(data: bytes) -> str:
    """What is kept of a probe's output: its first 4096 bytes, "..." after them when
    there was more (docker's limitedBuffer); bytes that are not UTF-8 replaced."""
    if len(data) > MAX_OUTPUT_BYTES:
        return data[:MAX_OUTPUT_BYTES].decode(errors="replace") + "..."
    return data.decode(errors="replace")


def timed_out_output(timeout: int, output: str) -> str:
    """docker's output of a probe killed for taking longer than its timeout."""
    message = f"Health check exceeded timeout ({go_duration(timeout)})"
    return f"{message}: {output}" if output else message
