"""The event bus: gap-free seqs, replay then live with no gap or duplicate, filters, lag."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pallet.v1.errors import InvalidArgument
from pallet.daemon.events import bus as bus_mod
from pallet.daemon.events.bus import EventBus, Lagging, RetentionPolicy
from pallet.daemon.events.filters import parse_filters
from pallet.daemon.events.model import Notice
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
