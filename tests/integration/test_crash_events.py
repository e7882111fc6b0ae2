"""The event stream across a daemon crash: resume by seq, no gap, no duplicate; retention.

Subscribers here are plain gRPC clients (threads), as an orchestrator would be: each
resubscribes with `since_seq` = the last seq it saw whenever its stream breaks.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

pytestmark = pytest.mark.integration

SUBSCRIBERS = 50


def last_seq(palletd: Any) -> int:
    out = palletd.cli_ok("events", "--since-seq", "0", "--until", "0s", timeout=30)
    seqs = [int(m.group(1)) for m in re.finditer(r"^\[(\d+)\] ", out, re.M)]
    return max(seqs, default=0)


@dataclass
class Subscriber:
    host: str
    since: int
    stop_name: str
    seen: list[tuple[int, str, str]] = field(default_factory=list)
    resubscribes: int = 0
    errors: list[str] = field(default_factory=list)
    live: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def run(self, deadline: float) -> None:
        import grpc

        import pallet.v1.events_pb2 as events_pb2
        import pallet.v1.events_pb2_grpc as events_pb2_grpc

        after = self.since
        while time.monotonic() < deadline:
            channel = grpc.insecure_channel(self.host)
            try:
                stub: Any = events_pb2_grpc.EventsServiceStub(channel)  # type: ignore[no-untyped-call]
                stream = stub.Subscribe(
                    events_pb2.SubscribeRequest(since_seq=after),
                    timeout=max(1.0, deadline - time.monotonic()),
                )
                for response in stream:
                    event = response.event
                    self.seen.append((event.seq, event.action, event.actor_id))
                    after = event.seq
                    name = event.attributes.get("name", "")
                    if name == "sync":
                        self.live.set()
                    if name == self.stop_name and event.action == "create":
                        self.done.set()
                        return
            except grpc.RpcError as exc:
                self.errors.append(f"{exc.code()}: {exc.details()}")
                self.resubscribes += 1
                time.sleep(0.2)
            finally:
                channel.close()


def test_50_subscribers_resuming_by_seq_see_the_same_events_across_a_crash(
    fresh_palletd: Any,
) -> None:
    palletd = fresh_palletd
    palletd.cli_ok("run", "--name", "before", "busybox", "true")
    start = last_seq(palletd)
    subs = [Subscriber(palletd.host, start, "the-end") for _ in range(SUBSCRIBERS)]
    deadline = time.monotonic() + 240
    threads = [threading.Thread(target=s.run, args=(deadline,), daemon=True) for s in subs]
    for t in threads:
        t.start()
    try:
        palletd.cli_ok("create", "--name", "sync", "busybox", "true")
        for s in subs:
            assert s.live.wait(60), "a subscriber never got live"
        palletd.cli_ok("run", "-d", "--name", "short", "busybox", "sleep", "1")
        palletd.cli_ok("rm", "before")
        palletd.proc.send_signal(signal.SIGKILL)
        palletd.proc.wait(10)
        time.sleep(1.5)  # `short` exits while the daemon is down
        palletd._close_channel()
        palletd.start()
        palletd.cli_ok("rm", "sync", "short")
        palletd.cli_ok("run", "--rm", "--name", "after", "busybox", "true")
        palletd.cli_ok("create", "--name", "the-end", "busybox", "true")
        for s in subs:
            assert s.done.wait(120), f"a subscriber did not reach the end: {s.errors[-3:]}"
    finally:
        for t in threads:
            t.join(5)
    reference = subs[0].seen
    seqs = [seq for seq, _, _ in reference]
    assert seqs == list(range(start + 1, start + 1 + len(seqs))), "gap or duplicate in seqs"
    for s in subs:
        assert s.seen == reference, "subscribers saw different event sequences"
        assert s.resubscribes >= 1, "a subscriber did not notice the daemon died"
    actions = [action for _, action, _ in reference]
    journal = palletd.cli_ok("events", "--since-seq", str(start), "--until", "0s", timeout=30)
    journal_seqs = [int(m.group(1)) for m in re.finditer(r"^\[(\d+)\] ", journal, re.M)]
    assert journal_seqs == seqs, "the live streams and the journal disagree"
    # The exit that happened while palletd was down is there, once, after its start.
    short = [line.split()[3] for line in journal.splitlines() if "name=short" in line]
    assert short == ["create", "start", "die", "destroy"], short
    assert actions.count("die") == 2  # short's (while down) and after's
    palletd.cli_ok("rm", "the-end")


def test_event_retention_is_configurable(fresh_palletd: Any) -> None:
    palletd = fresh_palletd
    first = palletd.cli_ok("create", "--name", "ev0", "busybox", "true")
    first_seq = int(palletd.cli_ok("events", "--since-seq", "0", "--until", "0s",
                                   "--filter", f"container={first.strip()}",
                                   "--format", "{{.Seq}}").split()[0])
    for i in range(1, 6):
        palletd.cli_ok("create", "--name", f"ev{i}", "busybox", "true")
    palletd.stop()
    palletd.extra_args = ["--events-max-count", "3"]
    try:
        palletd.start()
        out = palletd.cli_ok("events", "--since-seq", "0", "--until", "0s", timeout=30)
    finally:
        palletd.extra_args = []
    lines = out.splitlines()
    assert len(lines) == 3, out
    assert [line.split()[3] for line in lines] == ["create"] * 3
    assert "name=ev5" in lines[-1]
    # Seqs keep counting from where they were: nothing is renumbered.
    assert int(lines[-1][1:].split("]")[0]) == first_seq + 5
    for i in range(6):
        palletd.cli_ok("rm", f"ev{i}")


def test_bad_retention_flags_are_refused(tmp_path: Any) -> None:
    import subprocess
    import sys

    for flags, message in (
        (["--events-max-count", "0"], "give 1 or more"),
        (["--events-max-age", "soon"], "is not a duration"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "pallet.daemon.main", "--root", str(tmp_path / "r"),
             "--run-root", str(tmp_path / "run"), *flags],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 2
        assert message in result.stderr


def test_a_small_journal_holds_its_count_and_refuses_a_resume_with_a_gap(
    fresh_palletd: Any,
) -> None:
    palletd = fresh_palletd
    palletd.stop()
    palletd.extra_args = ["--events-max-count", "3"]
    try:
        palletd.start()
        for i in range(6):
            palletd.cli_ok("create", "--name", f"gap{i}", "busybox", "true")
        out = palletd.cli_ok("events", "--since-seq", "0", "--until", "0s", timeout=30)
        # Every commit prunes: exactly the count named, the newest ones.
        seqs = [int(m.group(1)) for m in re.finditer(r"^\[(\d+)\] ", out, re.M)]
        assert len(seqs) == 3 and "name=gap5" in out.splitlines()[-1], out
        assert seqs == list(range(seqs[0], seqs[0] + 3))
        oldest = seqs[0]
        refused = palletd.cli("events", "--since-seq", "1", "--until", "0s", timeout=30)
        assert refused.returncode == 1 and refused.stdout == "", refused
        err = refused.stderr.strip()
        assert err.startswith("Error: cannot resume after seq 1 without a gap: events 2 to "), err
        assert f"the oldest kept is seq {oldest}" in err and "--events-max-count 3" in err, err
        assert f"--since-seq {oldest - 1}" in err and len(err.splitlines()) == 1, err
        # Accepting the gap as the message says gives what is kept.
        accepted = palletd.cli_ok("events", "--since-seq", str(oldest - 1), "--until", "0s",
                                  timeout=30)
        assert accepted == out
        for i in range(6):
            palletd.cli_ok("rm", f"gap{i}")
    finally:
        palletd.extra_args = []
