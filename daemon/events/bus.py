"""The one event bus: journal, sequence numbers, live fan-out and replay.

Owns: the `events` table (a gap-free, monotonically increasing `seq` that survives
restarts), delivery to live subscribers, and replay from the journal followed by live events
with no gap and no duplicate at the seam. Must not: know what the events mean.

A subscriber gets a bounded queue. Publishing never waits for a subscriber: one that falls
behind is cut off with `Lagging`, which tells it the seq to resume from.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import structlog

from pallet.v1.errors import PalletError
from pallet.daemon.events.filters import EventFilter
from pallet.daemon.events.model import Event, Notice
from pallet.daemon.store.db import Database

log = structlog.get_logger(__name__)

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ns INTEGER NOT NULL,
        type TEXT NOT NULL,
        action TEXT NOT NULL,
        actor_id TEXT NOT NULL,
        attributes TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS events_time ON events(time_ns)",
]

T = TypeVar("T")

QUEUE_LIMIT = 10_000
REPLAY_BATCH = 1_000
# Most live events a subscriber takes off its queue at once (`subscribe_batches`).
BATCH_LIMIT = 256
# The journal is pruned at start and then once every this many events.
PRUNE_EVERY = 1_000


class Lagging(PalletError):
    """A subscriber fell too far behind; it may resume from `resume_seq`."""

    code = "RESOURCE_EXHAUSTED"

    def __init__(self, resume_seq: int) -> None:
        super().__init__(
            f"event subscriber fell behind: resubscribe with since_seq={resume_seq}"
        )
        self.resume_seq = resume_seq


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How much of the journal to keep: at most `max_events`, none older than `max_age_s`.

    The default keeps a week or 100,000 events, whichever is less (`palletd
    --events-max-count`, `--events-max-age`).
    """

    max_events: int = 100_000
    max_age_s: int = 7 * 24 * 3600

    def __post_init__(self) -> None:
        if self.max_events < 1 or self.max_age_s < 1:
            raise ValueError("event retention must keep at least one event for one second")


class _Subscriber:
    __slots__ = ("queue", "lagging")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_LIMIT)
        # Set when the queue overflowed: nothing more is queued for this subscriber.
        self.lagging = False


def _row_to_event(row: sqlite3.Row) -> Event:
    return Event(
        seq=row["seq"],
        type=row["type"],
        action=row["action"],
        actor_id=row["actor_id"],
        attributes=json.loads(row["attributes"]),
        time_ns=row["time_ns"],
    )


def _admit(
    events: list[Event], last: int, flt: EventFilter, until_ns: int | None
) -> tuple[list[Event], int, bool]:
    """Of `events` (in seq order), those after seq `last` that `flt` lets through, up to the
    first one past `until_ns`. Returns them, the new last seq seen, and whether the stream
    reached `until_ns`."""
    batch: list[Event] = []
    for event in events:
        if event.seq <= last:
            continue  # the seam between replay and live: seen already
        if until_ns is not None and event.time_ns > until_ns:
            return batch, last, True
        last = event.seq
        if flt.matches(event):
            batch.append(event)
    return batch, last, False


class EventBus:
    """Journals every event and fans it out to subscribers."""

    def __init__(self, db: Database, retention: RetentionPolicy = RetentionPolicy()) -> None:
        self._db = db
        self._retention = retention
        self._subscribers: set[_Subscriber] = set()
        # Serialises publishers so live delivery happens in seq order.
        self._lock = asyncio.Lock()
        self._last_seq = 0

    async def start(self) -> None:
        await self._db.migrate("events", SCHEMA)
        await self.prune()
        self._last_seq = await self._db.run(
            lambda c: int(c.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
        )

    async def aclose(self) -> None:
        self._subscribers.clear()

    @property
    def last_seq(self) -> int:
        return self._last_seq

    async def prune(self) -> int:
        """Drop journal entries beyond the retention policy; return how many went."""
        keep, max_age = self._retention.max_events, self._retention.max_age_s
        cutoff = time.time_ns() - max_age * 1_000_000_000

        def prune(conn: sqlite3.Connection) -> int:
            # Never delete the newest row: AUTOINCREMENT keeps seq monotonic anyway, but
            # keeping it makes MAX(seq) meaningful for `info`.
            cur = conn.execute(
                "DELETE FROM events WHERE seq < (SELECT MAX(seq) FROM events) AND "
                "(time_ns < ? OR seq <= (SELECT MAX(seq) FROM events) - ?)",
                (cutoff, keep),
            )
            return cur.rowcount

        return await self._db.run(prune)

    async def publish(
        self,
        type: str,
        action: str,
        actor_id: str,
        attributes: Mapping[str, str] | None = None,
        *,
        also: Callable[[sqlite3.Connection], None] | None = None,
    ) -> Event:
        """Journal and deliver one event.

        `also` writes the state change the event announces in the same transaction, so a
        crash leaves both or neither: never a change nobody heard of, nor an event for a
        change that did not happen.
        """
        notice = Notice(type, action, actor_id, dict(attributes or {}))

        def change(conn: sqlite3.Connection) -> tuple[None, list[Notice]]:
            if also is not None:
                also(conn)
            return None, [notice]

        _, events = await self._commit(change)
        return events[0]

    async def commit(
        self, change: Callable[[sqlite3.Connection], tuple[T, Sequence[Notice]]]
    ) -> T:
        """Apply `change` and journal the events it returns in one transaction, then
        deliver them; return what `change` returned.

        For a change that announces several events (a load naming three images, an rmi
        that untags and deletes): a crash leaves the change with all its events, or
        nothing. `change` runs on the database thread and may raise to write nothing.
        """
        result, _ = await self._commit(change)
        return result

    async def _commit(
        self, change: Callable[[sqlite3.Connection], tuple[T, Sequence[Notice]]]
    ) -> tuple[T, list[Event]]:
        async with self._lock:
            now = time.time_ns()

            def write(conn: sqlite3.Connection) -> tuple[T, list[Event]]:
                result, notices = change(conn)
                events = []
                for n in notices:
                    attrs = dict(n.attributes)
                    cur = conn.execute(
                        "INSERT INTO events (time_ns, type, action, actor_id, attributes) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (now, n.type, n.action, n.actor_id, json.dumps(attrs, sort_keys=True)),
                    )
                    assert cur.lastrowid is not None
                    events.append(Event(cur.lastrowid, n.type, n.action, n.actor_id, attrs, now))
                return result, events

            result, events = await self._db.transaction(write)
            for event in events:
                self._deliver(event)
        if events and events[-1].seq // PRUNE_EVERY != (events[0].seq - 1) // PRUNE_EVERY:
            # Outside the lock, and never the publisher's failure: its change is committed
            # and delivered already; the next round tries again.
            try:
                await self.prune()
            except sqlite3.Error as error:
                log.warning("event journal prune failed", reason=str(error))
        for e in events:
            log.debug("event", seq=e.seq, type=e.type, action=e.action, actor_id=e.actor_id)
        return result, events

    def _deliver(self, event: Event) -> None:
        self._last_seq = event.seq
        for sub in self._subscribers:
            if sub.lagging:
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.lagging = True

    async def _replay(
        self, since_seq: int, since_ns: int, upto_seq: int
    ) -> AsyncIterator[list[Event]]:
        after = since_seq
        while after < upto_seq:

            def fetch(conn: sqlite3.Connection, after: int = after) -> list[sqlite3.Row]:
                return conn.execute(
                    "SELECT * FROM events WHERE seq > ? AND seq <= ? AND time_ns >= ? "
                    "ORDER BY seq LIMIT ?",
                    (after, upto_seq, since_ns, REPLAY_BATCH),
                ).fetchall()

            rows = await self._db.run(fetch)
            if not rows:
                return
            yield [_row_to_event(row) for row in rows]
            after = rows[-1]["seq"]

    async def subscribe(
        self,
        flt: EventFilter,
        since_seq: int | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Yield matching events: journal first (when asked), then live.

        Replay happens when `since_seq` is given (0: the whole journal) or `since_ns` is
        (0, Unix time 0, as docker reads `--since 0`: the whole journal too). With
        `until_ns` the stream ends after the last event at or before it (at once when it
        is in the past). None: not given.
        """
        batches = self.subscribe_batches(flt, since_seq, since_ns, until_ns)
        try:
            async for batch in batches:
                for event in batch:
                    yield event
        finally:
            # At once, not when the generator is collected: the subscriber leaves the bus.
            await batches.aclose()

    async def subscribe_batches(
        self,
        flt: EventFilter,
        since_seq: int | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
    ) -> AsyncGenerator[list[Event], None]:
        """`subscribe`, a list at a time: every matching event already waiting, in seq order.

        For a consumer with work per wake-up (a gRPC stream): one that fell behind catches
        up in one step per batch instead of one await per event. Never an empty list.
        """
        sub = _Subscriber()
        # Register before reading the journal's end, so nothing published in between is
        # missed; duplicates at the seam are dropped by seq below.
        self._subscribers.add(sub)
        try:
            last = 0
            if since_seq is not None or since_ns is not None:
                upto = self._last_seq
                async for rows in self._replay(since_seq or 0, since_ns or 0, upto):
                    batch, last, ended = _admit(rows, last, flt, until_ns)
                    if batch:
                        yield batch
                    if ended:
                        return
                last = max(last, upto)
            else:
                last = self._last_seq
            if until_ns is not None and until_ns <= time.time_ns():
                return
            queue = sub.queue
            while True:
                waiting = []
                if queue.empty():
                    if sub.lagging:
                        raise Lagging(last)
                    if until_ns is None:
                        waiting.append(await queue.get())
                    else:
                        timeout = max(0.0, (until_ns - time.time_ns()) / 1e9)
                        try:
                            waiting.append(await asyncio.wait_for(queue.get(), timeout))
                        except TimeoutError:
                            return
                # Capped, so a subscriber holds at most BATCH_LIMIT events beyond its queue's.
                while len(waiting) < BATCH_LIMIT and not queue.empty():
                    waiting.append(queue.get_nowait())
                batch, last, ended = _admit(waiting, last, flt, until_ns)
                if batch:
                    yield batch
                if ended:
                    return
        finally:
            self._subscribers.discard(sub)
