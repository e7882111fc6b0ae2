"""The event bus: gap-free seqs, replay then live with no gap or duplicate, filters, lag."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pallet.v1.errors import InvalidArgument, OutOfRange
from pallet.daemon.events import bus as bus_mod
from pallet.daemon.events.bus import EventBus, Lagging, RetentionPolicy
from pallet.daemon.events.filters import parse_filters
from pallet.daemon.events.model import Notice, memory_size
from pallet.daemon.store.db import Database


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path / "pallet.db")
    await database.start()
    yield database
    await database.aclose()


@pytest.fixture
async def bus(db: Database) -> EventBus:
    b = EventBus(db)
    await b.start()
    return b


async def test_seqs_are_gap_free_and_survive_restart(db: Database) -> None:
    first = EventBus(db)
    await first.start()
    seqs = [(await first.publish("container", "create", f"c{i}")).seq for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    again = EventBus(db)
    await again.start()
    assert (await again.publish("container", "start", "c0")).seq == 6


async def test_replay_then_live_without_gap_or_duplicate(bus: EventBus) -> None:
    for i in range(3):
        await bus.publish("container", "create", f"c{i}")
    got: list[int] = []

    async def consume() -> None:
        async for event in bus.subscribe(parse_filters([]), since_seq=1):
            got.append(event.seq)
            if event.seq == 6:
                return

    task = asyncio.create_task(consume())
    for i in range(3):
        await bus.publish("container", "start", f"c{i}")
        await asyncio.sleep(0)
    await asyncio.wait_for(task, 5)
    assert got == [2, 3, 4, 5, 6]


async def test_filters_select_by_type_action_and_container(bus: EventBus) -> None:
    await bus.publish("container", "create", "abc123", {"name": "web", "image": "busybox"})
    await bus.publish("image", "tag", "sha256:1", {"name": "busybox:latest"})
    await bus.publish("container", "die", "abc123", {"name": "web", "exitCode": "0"})
    flt = parse_filters(["type=container", "event=die", "event=create", "container=web"])
    now = time.time_ns()
    got = [e.action async for e in bus.subscribe(flt, since_ns=1, until_ns=now)]
    assert got == ["create", "die"]


async def test_until_in_the_past_ends_the_stream(bus: EventBus) -> None:
    e1 = await bus.publish("container", "create", "a")
    await bus.publish("container", "start", "a")
    flt = parse_filters([])
    events = [e async for e in bus.subscribe(flt, since_ns=1, until_ns=e1.time_ns)]
    assert [e.seq for e in events] == [e1.seq]


async def test_since_unix_time_zero_replays_everything(bus: EventBus) -> None:
    # docker reads `--since 0` as Unix time 0: the whole journal; 0 was taken for "not given".
    await bus.publish("container", "create", "a")
    await bus.publish("container", "start", "a")
    got = [e.action async for e in bus.subscribe(parse_filters([]), since_ns=0, until_ns=time.time_ns())]
    assert got == ["create", "start"]
    assert [e async for e in bus.subscribe(parse_filters([]), since_ns=0, until_ns=0)] == []


def test_bad_filters_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="unknown event filter"):
        parse_filters(["colour=red"])
    with pytest.raises(InvalidArgument, match="key=value"):
        parse_filters(["type"])


async def test_slow_subscriber_is_cut_off_with_resume_seq(
    bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bus_mod, "QUEUE_LIMIT", 3)
    stream = bus.subscribe(parse_filters([]))
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    for i in range(10):
        await bus.publish("container", "create", f"c{i}")
    assert (await first).seq == 1
    seen = [1]
    with pytest.raises(Lagging) as info:
        async for event in stream:
            seen.append(event.seq)
    assert info.value.resume_seq == seen[-1]
    assert "since_seq" in str(info.value)


async def test_retention_prunes_old_entries(db: Database) -> None:
    b = EventBus(db, RetentionPolicy(max_events=3, max_age_s=3600))
    await b.start()
    for i in range(10):
        await b.publish("container", "create", f"c{i}")
    await b.prune()
    rows = await db.run(lambda c: [r[0] for r in c.execute("SELECT seq FROM events ORDER BY seq")])
    assert rows == [8, 9, 10]


async def test_commit_writes_a_change_and_all_its_events_or_nothing(
    bus: EventBus, db: Database
) -> None:
    await db.run(lambda c: c.execute("CREATE TABLE things (name TEXT)"))

    def change(conn: sqlite3.Connection) -> tuple[str, list[Notice]]:
        conn.execute("INSERT INTO things VALUES ('a')")
        return "done", [Notice("image", "untag", "i1", {"name": "a"}),
                        Notice("image", "delete", "i1", {"name": "a"})]

    live = bus.subscribe(parse_filters([]))
    first = asyncio.ensure_future(anext(live))
    await asyncio.sleep(0)
    assert await bus.commit(change) == "done"
    assert (await first).action == "untag"
    assert (await anext(live)).seq == 2

    def broken(conn: sqlite3.Connection) -> tuple[None, list[Notice]]:
        conn.execute("INSERT INTO things VALUES ('b')")
        raise InvalidArgument("refused half-way")

    with pytest.raises(InvalidArgument):
        await bus.commit(broken)
    rows = await db.run(lambda c: c.execute("SELECT name FROM things").fetchall())
    assert [r[0] for r in rows] == ["a"], "a failed change left a row"
    replayed = []
    async for event in bus.subscribe(parse_filters([]), since_seq=0, until_ns=time.time_ns()):
        replayed.append((event.seq, event.action))
    assert replayed == [(1, "untag"), (2, "delete")], "a failed change journalled an event"
    assert bus.last_seq == 2
    await live.aclose()


async def test_batches_are_in_seq_order_capped_filtered_and_never_empty(
    bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bus_mod, "BATCH_LIMIT", 50)
    batches = bus.subscribe_batches(parse_filters(["type=container"]))
    first = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0)  # registered, waiting
    want = []
    for i in range(300):
        event = await bus.publish("container" if i % 3 else "image", "create", f"x{i}")
        if event.type == "container":
            want.append(event.seq)
    got = [await first]
    while sum(len(b) for b in got) < len(want):
        got.append(await asyncio.wait_for(anext(batches), 5))
    await batches.aclose()
    assert all(0 < len(b) <= 50 for b in got), [len(b) for b in got]
    assert len(got) < len(want), "the backlog was not taken in batches"
    assert [e.seq for b in got for e in b] == want
    assert not bus._subscribers, "a closed subscriber stayed on the bus"  # noqa: SLF001


async def test_batches_replay_then_live_without_gap_or_duplicate(
    bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Several journal reads, with events published while they happen.
    monkeypatch.setattr(bus_mod, "REPLAY_BATCH", 4)
    for i in range(20):
        await bus.publish("container", "create", f"c{i}")
    seen: list[int] = []

    async def consume() -> None:
        async for batch in bus.subscribe_batches(parse_filters([]), since_seq=3):
            seen.extend(e.seq for e in batch)
            if seen[-1] >= 60:
                return

    task = asyncio.create_task(consume())
    for i in range(40):
        await bus.publish("container", "start", f"c{i}")
        await asyncio.sleep(0)
    await asyncio.wait_for(task, 10)
    assert seen == list(range(4, 61))


async def test_batches_slow_subscriber_is_cut_off_after_what_it_was_given(
    bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bus_mod, "QUEUE_LIMIT", 5)
    monkeypatch.setattr(bus_mod, "BATCH_LIMIT", 2)
    batches = bus.subscribe_batches(parse_filters(["event=die"]))
    first = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0)
    for i in range(30):
        await bus.publish("container", "die" if i % 2 else "start", f"c{i}")
    seen = [e.seq for e in await first]
    with pytest.raises(Lagging) as info:
        async for batch in batches:
            seen.extend(e.seq for e in batch)
    # Only matching events were given, in order; resuming after the cut-off point loses
    # nothing, and the point is past every event given (non-matching ones count too).
    assert seen == [s for s in range(2, 31, 2) if s <= info.value.resume_seq]
    assert seen and info.value.resume_seq >= seen[-1]
    assert info.value.resume_seq < 30
    resumed = [e.seq async for e in bus.subscribe(parse_filters(["event=die"]),
                                                  since_seq=info.value.resume_seq,
                                                  until_ns=time.time_ns())]
    assert seen + resumed == list(range(2, 31, 2))


# ---- hostile load: bounds by bytes, exact retention, honest resume (issue 9)

# The largest labels an object may carry: 4 of 16 KiB, 64 KiB in all.
BIG = {f"big{i}": chr(ord("a") + i) * 16 * 1024 for i in range(4)}


async def journal_seqs(db: Database) -> list[int]:
    return await db.run(lambda c: [r[0] for r in c.execute("SELECT seq FROM events ORDER BY seq")])


async def test_every_commit_prunes_to_the_count_exactly(db: Database) -> None:
    b = EventBus(db, RetentionPolicy(max_events=3, max_age_s=3600))
    await b.start()
    for i in range(10):
        await b.publish("container", "create", f"c{i}")
        assert len(await journal_seqs(db)) <= 3
    assert await journal_seqs(db) == [8, 9, 10]


async def test_the_journal_is_bounded_by_bytes_and_keeps_the_newest(db: Database) -> None:
    limit = 5 * 70 * 1024  # room for five events carrying 64 KiB of labels
    b = EventBus(db, RetentionPolicy(max_bytes=limit))
    await b.start()
    for i in range(40):
        await b.publish("container", "create", f"c{i}", BIG)
        await b.publish("container", "start", f"c{i}")
    stored = await db.run(lambda c: c.execute(
        "SELECT COUNT(*), SUM(length(attributes)), MAX(seq) FROM events").fetchone())
    count, text_bytes, newest = stored[0], stored[1], stored[2]
    assert text_bytes <= limit, "the journal holds more than --events-max-bytes"
    assert 5 <= count < 20 and newest == 80
    assert await journal_seqs(db) == list(range(81 - count, 81)), "pruning left a hole"
    # The byte count survives a restart, and a smaller bound prunes at start.
    same = EventBus(db, RetentionPolicy(max_bytes=limit))
    await same.start()
    assert same.journal_bytes == b.journal_bytes > (count // 2) * 64 * 1024
    again = EventBus(db, RetentionPolicy(max_bytes=2 * 70 * 1024))
    await again.start()
    rows = await db.run(lambda c: c.execute(
        "SELECT COALESCE(SUM(length(attributes)), 0) FROM events").fetchone()[0])
    assert rows <= 2 * 70 * 1024 and (await journal_seqs(db))[-1] == 80


async def test_an_event_larger_than_the_byte_bound_is_kept_as_the_newest(db: Database) -> None:
    b = EventBus(db, RetentionPolicy(max_bytes=1024))
    await b.start()
    for i in range(3):
        await b.publish("container", "create", f"c{i}", BIG)
    assert await journal_seqs(db) == [3]


async def test_a_resume_from_a_pruned_seq_is_refused_naming_the_oldest_kept(
    db: Database,
) -> None:
    b = EventBus(db, RetentionPolicy(max_events=5))
    await b.start()
    for i in range(20):
        await b.publish("container", "create", f"c{i}")
    everything = parse_filters([])
    with pytest.raises(OutOfRange) as info:
        [e async for e in b.subscribe(everything, since_seq=3, until_ns=time.time_ns())]
    message = str(info.value)
    assert "events 4 to 15 were pruned" in message
    assert "oldest kept is seq 16" in message and "--events-max-count 5" in message
    assert "since_seq=15" in message
    # Accepting the gap as told works; so do the whole journal and a time (not resumes).
    resumed = [e.seq async for e in b.subscribe(everything, since_seq=15, until_ns=time.time_ns())]
    assert resumed == [16, 17, 18, 19, 20]
    whole = [e.seq async for e in b.subscribe(everything, since_seq=0, until_ns=time.time_ns())]
    assert whole == [16, 17, 18, 19, 20]
    by_time = [e.seq async for e in b.subscribe(everything, since_ns=0, until_ns=time.time_ns())]
    assert by_time == [16, 17, 18, 19, 20]
    # The newest seq resumes with nothing to replay; a seq past it is another journal's.
    live = b.subscribe(everything, since_seq=20)
    nxt = asyncio.ensure_future(anext(live))
    await asyncio.sleep(0)
    await b.publish("container", "start", "c0")
    assert (await asyncio.wait_for(nxt, 5)).seq == 21
    await live.aclose()
    with pytest.raises(OutOfRange, match="newest event in the journal is seq 21"):
        [e async for e in b.subscribe(everything, since_seq=99, until_ns=time.time_ns())]


async def test_pruning_under_a_replay_is_a_refusal_not_a_silent_gap(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bus_mod, "REPLAY_BATCH", 4)
    b = EventBus(db, RetentionPolicy(max_events=10))
    await b.start()
    for i in range(10):
        await b.publish("container", "create", f"c{i}")
    stream = b.subscribe(parse_filters([]), since_seq=0)
    seen = [(await anext(stream)).seq for _ in range(4)]
    for i in range(10):  # prunes 1-10 before the replay read 5-10
        await b.publish("container", "start", f"c{i}")

    async def rest() -> None:
        async for event in stream:
            seen.append(event.seq)

    with pytest.raises(OutOfRange, match="after seq 4 without a gap: events 5 to 10 were"):
        await asyncio.wait_for(rest(), 10)  # bounded: a silent gap would wait for more
    assert seen == [1, 2, 3, 4]


async def test_a_subscriber_queue_is_bounded_by_bytes(
    bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_size = memory_size((await bus.publish("container", "create", "c", BIG)))
    monkeypatch.setattr(bus_mod, "QUEUE_BYTES", 3 * event_size)
    stream = bus.subscribe(parse_filters([]))
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    for i in range(10):  # far under QUEUE_LIMIT's count
        await bus.publish("container", "create", f"c{i}", BIG)
    held = max(s.queued_bytes for s in bus._subscribers)  # noqa: SLF001 - test-only peek
    assert held <= 3 * event_size
    seen = [(await first).seq]

    async def rest() -> None:
        async for event in stream:
            seen.append(event.seq)

    with pytest.raises(Lagging) as info:
        await asyncio.wait_for(rest(), 10)
    assert seen == [2, 3, 4] and info.value.resume_seq == 4
    assert "resubscribe with since_seq=4" in str(info.value)


async def test_batches_are_capped_by_bytes(
    bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bus_mod, "BATCH_BYTES", 100 * 1024)
    batches = bus.subscribe_batches(parse_filters([]))
    first = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0)
    for i in range(12):
        await bus.publish("container", "create", f"c{i}", BIG)
    got = [await first]
    while sum(len(b) for b in got) < 12:
        got.append(await asyncio.wait_for(anext(batches), 5))
    await batches.aclose()
    # 64 KiB of labels each: the first one taken leaves room under 100 KiB, the second
    # one fills the batch.
    assert all(len(b) <= 2 for b in got), [len(b) for b in got]
    assert [e.seq for b in got for e in b] == list(range(1, 13))
