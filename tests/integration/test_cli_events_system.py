"""`pallet events`, `version` and `info` end to end."""

from __future__ import annotations

import os
import platform
import re
import select
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

EVENT_LINE = re.compile(
    r"^(?:\[(?P<seq>\d+)\] )?"
    r"(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) "
    r"(?P<type>\w+) (?P<action>[\w:-]+) (?P<actor>\S+)"
    r"(?: \((?P<attrs>.*)\))?$"
)


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse(out: str) -> list[dict[str, Any]]:
    events = []
    for line in out.splitlines():
        match = EVENT_LINE.match(line)
        assert match, f"not an event line: {line!r}"
        event: dict[str, Any] = match.groupdict()
        attrs = event["attrs"] or ""
        pairs = [a.split("=", 1) for a in attrs.split(", ")] if attrs else []
        event["attr_keys"] = [k for k, _ in pairs]
        event["attrs"] = dict(pairs)
        events.append(event)
    return events


@pytest.fixture
def lifecycle(palletd: Any, image: str) -> tuple[str, float, float]:
    """Run (and remove) container `ev1`; return its id and times just before and after."""
    start = time.time() - 0.5
    run = palletd.cli("run", "--name", "ev1", "-l", "purpose=events", image, "sh", "-c", "exit 2")
    assert run.returncode == 2, run.stderr
    cid = palletd.inspect("ev1")["Id"]
    palletd.cli_ok("rm", "ev1")
    time.sleep(0.2)
    return cid, start, time.time() + 0.5


def test_events_replay_a_containers_life(palletd: Any, lifecycle: tuple[str, float, float]) -> None:
    cid, since, until = lifecycle
    out = palletd.cli_ok(
        "events", "--since", rfc3339(since), "--until", rfc3339(until),
        "--filter", "container=ev1", timeout=30,
    )
    events = parse(out)
    assert all(e["type"] == "container" and e["actor"] == cid for e in events), out
    actions = [e["action"] for e in events]
    for expected in ("create", "start", "die", "destroy"):
        assert actions.count(expected) == 1, out  # one event per state change
    # In order: create -> start -> die -> destroy, never an exit before its start.
    order = [actions.index(a) for a in ("create", "start", "die", "destroy")]
    assert order == sorted(order), out
    for event in events:
        assert event["attrs"]["name"] == "ev1", event
        assert event["attr_keys"] == sorted(event["attr_keys"]), "attributes sorted by key"
    die = events[actions.index("die")]
    assert die["attrs"].get("exitCode") == "2", die
    create = events[actions.index("create")]
    assert create["attrs"]["image"].startswith("busybox"), create
    assert create["attrs"].get("purpose") == "events", "labels are attributes"
    times = [e["time"] for e in events]
    assert times == sorted(times)


def test_events_since_zero_replays_everything(palletd: Any, lifecycle: tuple[str, float, float]) -> None:
    # docker reads `--since 0` as Unix time 0 and replays the whole journal.
    _, since, until = lifecycle
    everything = parse(palletd.cli_ok("events", "--since", "0", "--until", rfc3339(until)))
    window = parse(palletd.cli_ok("events", "--since", rfc3339(since), "--until", rfc3339(until)))
    assert window and everything[-len(window):] == window
    assert everything[0]["action"] == "import", "the image import came before the container"


def test_events_filter_by_action_and_type(palletd: Any, lifecycle: tuple[str, float, float]) -> None:
    _, since, until = lifecycle
    window = ("--since", rfc3339(since), "--until", rfc3339(until))
    starts = parse(palletd.cli_ok("events", *window, "--filter", "event=start"))
    assert [e["action"] for e in starts] == ["start"]
    both = parse(palletd.cli_ok("events", *window, "-f", "event=start", "-f", "event=die"))
    assert [e["action"] for e in both] == ["start", "die"]
    containers = parse(palletd.cli_ok("events", *window, "--filter", "type=container"))
    assert containers and all(e["type"] == "container" for e in containers)
    assert parse(palletd.cli_ok("events", *window, "--filter", "type=image")) == []
    by_label = parse(palletd.cli_ok("events", *window, "--filter", "label=purpose=events"))
    assert "create" in [e["action"] for e in by_label]
    by_image = parse(palletd.cli_ok("events", *window, "--filter", "image=busybox"))
    assert "create" in [e["action"] for e in by_image]
    assert parse(palletd.cli_ok("events", *window, "--filter", "container=other")) == []


def test_events_since_seq_numbers_increase_without_gaps(
    palletd: Any, lifecycle: tuple[str, float, float]
) -> None:
    cid, _, until = lifecycle
    out = palletd.cli_ok("events", "--since-seq", "1", "--until", rfc3339(until))
    events = parse(out)
    seqs = [int(e["seq"]) for e in events]
    assert seqs, out
    assert seqs[0] == 2
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "gap-free and increasing"
    # Resuming after a seq gives exactly the later events.
    [create] = [e for e in events if e["actor"] == cid and e["action"] == "create"]
    resumed = parse(palletd.cli_ok("events", "--since-seq", create["seq"],
                                   "--until", rfc3339(until)))
    assert [int(e["seq"]) for e in resumed] == [s for s in seqs if s > int(create["seq"])]


def read_lines_until(proc: Any, done: Any, timeout: float) -> list[str]:
    """Lines from a running CLI's stdout until `done(lines)`, failing after `timeout`."""
    lines: list[str] = []
    buffer = b""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while not done(lines):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"timed out; got {lines!r}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            pytest.fail(f"stream ended early; got {lines!r}")
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        lines += [line.decode() for line in complete]
    return lines


def test_events_follow_live(palletd: Any, image: str) -> None:
    # --since "now" replays from here on, so nothing is lost before the stream is up.
    follower = palletd.cli_popen(
        "events", "--since", rfc3339(time.time()), "--filter", "container=live1"
    )
    palletd.cli_ok("run", "--name", "live1", image, "true")
    lines = read_lines_until(
        follower, lambda got: any(" container die " in line for line in got), 20
    )
    actions = [e["action"] for e in parse("\n".join(lines))]
    assert actions[0] == "create" and "start" in actions, lines
    assert follower.poll() is None, "without --until, events keeps following"
    follower.kill()
    follower.communicate(timeout=10)


def test_events_with_a_past_until_ends(palletd: Any, image: str) -> None:
    result = palletd.cli("events", "--since", "1h", "--until", "30m", timeout=20)
    assert result.returncode == 0, result.stderr


def test_events_rejects_a_bad_filter(palletd: Any, image: str) -> None:
    result = palletd.cli("events", "--until", "1s", "--filter", "colour=red", timeout=20)
    assert result.returncode == 1
    assert "colour" in result.stderr


def test_image_events(palletd: Any, image: str) -> None:
    since = time.time() - 0.5
    palletd.cli_ok("tag", "busybox", "evtag:1")
    palletd.cli_ok("rmi", "evtag:1")
    out = palletd.cli_ok("events", "--since", rfc3339(since), "--until", rfc3339(time.time() + 0.5),
                         "--filter", "type=image")
    actions = [e["action"] for e in parse(out)]
    assert "tag" in actions and "untag" in actions, out


def test_version(palletd: Any, image: str) -> None:
    out = palletd.cli_ok("version")
    client, _, server = out.partition("Server:")
    assert client.startswith("Client:")
    for section in (client, server):
        fields = dict(
            (k.strip(), v.strip())
            for k, _, v in (line.partition(":") for line in section.splitlines()[1:] if ":" in line)
        )
        assert fields["Version"] == "0.1.0", section
        assert fields["API version"] == "v1", section
        assert fields["Python version"] == platform.python_version(), section
        assert re.fullmatch(r"linux/(amd64|arm64|arm|386|ppc64le|s390x|riscv64)",
                            fields["OS/Arch"]), section


def test_info(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", image, "sleep", "300")
    palletd.cli_ok("create", image, "true")
    out = palletd.cli_ok("info")
    fields = {}
    for line in out.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    assert fields["Containers"] == "2"
    assert fields["Running"] == "1"
    assert fields["Paused"] == "0"
    assert fields["Stopped"] == "1"
    assert fields["Images"] == "1"
    assert fields["Server Version"] == "0.1.0"
    assert fields["Storage Driver"] == "overlay"
    cgroup_v2_only = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    assert fields["Cgroup Version"] == ("2" if cgroup_v2_only else "1")
    assert fields["Kernel Version"] == os.uname().release
    assert fields["CPUs"] == str(os.cpu_count())
    assert fields["Pallet Root Dir"] == str(palletd.root)
    assert fields["Run Root"] == str(palletd.run_root)
    assert fields["Name"] == os.uname().nodename
    assert "Operating System" in fields and "Architecture" in fields
    assert "Total Memory" in fields


def test_host_from_the_environment(palletd: Any, image: str) -> None:
    import subprocess
    import sys

    script = Path(sys.executable).parent / "pallet"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pallet.client.cli"]
    result = subprocess.run(
        [*command, "version"],
        env={**os.environ, "PALLET_HOST": palletd.host},
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "Server:" in result.stdout


def test_ctrl_c_ends_events(palletd: Any, image: str) -> None:
    import signal
    import subprocess

    follower = palletd.cli_popen("events")
    time.sleep(1)
    follower.send_signal(signal.SIGINT)
    try:
        follower.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("events ignored Ctrl-C")


def test_events_format(palletd: Any, lifecycle: tuple[str, float, float]) -> None:
    cid, since, until = lifecycle
    out = palletd.cli_ok(
        "events", "--since", rfc3339(since), "--until", rfc3339(until),
        "--filter", "container=ev1", "--filter", "event=create",
        "--format", "{{.Type}} {{.Action}} {{.Actor.ID}} {{index .Actor.Attributes \"name\"}}",
    )
    assert out == f"container create {cid} ev1\n"
