"""The one event bus: journal, sequence numbers, live fan-out and replay.

Owns: journalling events (a gap-free, monotonically increasing `seq` that survives
restarts) and keeping the journal within its retention policy on every commit, delivery to
live subscribers, and replay from the journal followed by live events with no gap and no
duplicate at the seam. Must not: know what the events mean, or lay out the table (that is
`journal`).

A subscriber gets a queue bounded by count and by bytes. Publishing never waits for a
subscriber: one that falls behind is cut off with `Lagging`, which tells it the seq to
resume from. A resume from a seq whose successors were pruned cannot be gap-free: it is
refused with `OutOfRange`, naming the oldest seq kept.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from typing import TypeVar

import structlog

from pallet.v1.errors import OutOfRange, PalletError, ResourceExhausted
from pallet.daemon.events import journal
from pallet.daemon.events.filters import EventFilter
from pallet.daemon.events.journal import RetentionPolicy
from pallet.daemon.events.model import Event, Notice, memory_size
from pallet.daemon.store import space
from pallet.daemon.store.db import Database

log = structlog.get_logger(__name__)

__all__ = ["EventBus", "Lagging", "RetentionPolicy"]

T = TypeVar("T")

# A subscriber's queue holds at most this many events, and this many bytes of them
# (`memory_size`): 10,000 small events, or a few hundred carrying 64 KiB of labels each.
QUEUE_LIMIT = 10_000
QUEUE_BYTES = 16 * 1024 * 1024
REPLAY_BATCH = 1_000
# Most live events a subscriber takes off its queue at once (`subscribe_batches`), and
# most bytes of them (at least one event is taken, whatever its size).
BATCH_LIMIT = 256
BATCH_BYTES = 1024 * 1024


class Lagging(PalletError):
    """A subscriber fell too far behind; it may resume from `resume_seq`."""

    code = "RESOURCE_EXHAUSTED"

    def __init__(self, resume_seq: int) -> None:
        super().__init__(
            f"event subscriber fell behind: resubscribe with since_seq={resume_seq}"
        )
        self.resume_seq = resume_seq


def pruned(since_seq: int, oldest: int, policy: RetentionPolicy) -> OutOfRange:
    """The refusal of a resume after `since_seq` when the journal starts at `oldest`."""
    first = since_seq + 1
    missing = f"event {first} was" if first == oldest - 1 else f"events {first} to {oldest - 1} were"
    return OutOfRange(
        f"cannot resume after seq {since_seq} without a gap: {missing} pruned from the "
        f"journal ({policy.describe()}); the oldest kept is seq {oldest}: resume with "
        f"since_seq={oldest - 1} (pallet events --since-seq {oldest - 1}) to accept the gap"
    )


class _Subscriber:
    __slots__ = ("queue", "queued_bytes", "lagging")

    def __init__(self) -> None:
        # Each event with its `memory_size`, computed once at publish.
        self.queue: asyncio.Queue[tuple[Event, int]] = asyncio.Queue(QUEUE_LIMIT)
        self.queued_bytes = 0
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
        # Serialises writers of the journal: live delivery happens in seq order, and
        # `_journal_bytes` stays what the table holds.
        self._lock = asyncio.Lock()
        self._last_seq = 0
        self._journal_bytes = 0

    async def start(self) -> None:
        await self._db.migrate("events", journal.SCHEMA)
        with space.essential():  # palletd must start on a full disk
            await self._db.transaction(journal.upgrade)
        self._journal_bytes = await self._db.run(journal.total_bytes)
        try:
            await self.prune()
        except ResourceExhausted as e:
            # Housekeeping is not worth the disk's reserve: the next commit prunes too.
            log.warning("cannot prune the event journal: the disk is full", reason=str(e))
        self._last_seq = await self._db.run(
            lambda c: int(c.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
        )

    async def aclose(self) -> None:
        self._subscribers.clear()

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def journal_bytes(self) -> int:
        """What the journal holds, in `journal.row_size` bytes."""
        return self._journal_bytes

    async def prune(self) -> int:
        """Drop journal entries beyond the retention policy; return how many went.

        Every commit prunes as well, so this is needed only when the policy changed (at
        start) or time passed with nothing published."""
        async with self._lock:
            held = self._journal_bytes

            def prune(conn: sqlite3.Connection) -> tuple[int, int]:
                return journal.prune(conn, self._retention, time.time_ns(), held)

            dropped, dropped_bytes = await self._db.transaction(prune)
            self._journal_bytes = held - dropped_bytes
            return dropped

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
            held = self._journal_bytes

            def write(conn: sqlite3.Connection) -> tuple[T, list[Event], int]:
                result, notices = change(conn)
                events, size = [], held
                for n in notices:
                    attrs = dict(n.attributes)
                    text = json.dumps(attrs, sort_keys=True)
                    row_size = journal.row_size(n.type, n.action, n.actor_id, text)
                    cur = conn.execute(
                        "INSERT INTO events (time_ns, size, type, action, actor_id, attributes) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (now, row_size, n.type, n.action, n.actor_id, text),
                    )
                    assert cur.lastrowid is not None
                    events.append(Event(cur.lastrowid, n.type, n.action, n.actor_id, attrs, now))
                    size += row_size
                if events:
                    size -= self._prune_in(conn, now, size)
                return result, events, size

            result, events, self._journal_bytes = await self._db.transaction(write)
            for event in events:
                self._deliver(event)
        for e in events:
            log.debug("event", seq=e.seq, type=e.type, action=e.action, actor_id=e.actor_id)
        return result, events

    def _prune_in(self, conn: sqlite3.Connection, now_ns: int, held: int) -> int:
        """Prune inside a commit's transaction, so the journal never holds more than the
        policy allows once the commit is visible; return the bytes dropped.

        Never the publisher's failure: its change stands, and the next commit tries again.
        """
        conn.execute("SAVEPOINT prune")
        try:
            _, dropped_bytes = journal.prune(conn, self._retention, now_ns, held)
        except sqlite3.Error as error:
            if not conn.in_transaction:
                raise  # it took the whole transaction with it (a full disk): the commit fails
            conn.execute("ROLLBACK TO prune")
            conn.execute("RELEASE prune")
            log.warning("event journal prune failed", reason=str(error))
            return 0
        conn.execute("RELEASE prune")
        return dropped_bytes

    def _deliver(self, event: Event) -> None:
        self._last_seq = event.seq
        size = memory_size(event)
        for sub in self._subscribers:
            if sub.lagging:
                continue
            # A single event larger than the whole byte bound still goes to an empty queue.
            if sub.queued_bytes and sub.queued_bytes + size > QUEUE_BYTES:
                sub.lagging = True
                continue
            try:
                sub.queue.put_nowait((event, size))
            except asyncio.QueueFull:
                sub.lagging = True
                continue
            sub.queued_bytes += size

    async def _replay(
        self, since_seq: int, since_ns: int, upto_seq: int, gap_free: bool
    ) -> AsyncIterator[list[Event]]:
        """Journal entries after `since_seq` up to `upto_seq`. With `gap_free` (a resume
        by seq), `OutOfRange` when the one right after `since_seq` is no longer kept; and
        whatever the start, `OutOfRange` when entries not yet replayed are pruned meanwhile
        (each batch reads the oldest seq kept with its rows, in one go on the db thread)."""
        after = since_seq
        while after < upto_seq:

            def fetch(
                conn: sqlite3.Connection, after: int = after
            ) -> tuple[int | None, list[sqlite3.Row]]:
                rows = conn.execute(
                    "SELECT * FROM events WHERE seq > ? AND seq <= ? AND time_ns >= ? "
                    "ORDER BY seq LIMIT ?",
                    (after, upto_seq, since_ns, REPLAY_BATCH),
                ).fetchall()
                return journal.oldest_seq(conn), rows

            oldest, rows = await self._db.run(fetch)
            if gap_free and oldest is not None and after + 1 < oldest:
                raise pruned(after, oldest, self._retention)
            if not rows:
                return
            yield [_row_to_event(row) for row in rows]
            after, gap_free = rows[-1]["seq"], True

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

        A `since_seq` above 0 is a resume: `OutOfRange` when the events right after it
        were pruned (or it is past the newest event: a journal other than the one it came
        from), instead of a stream that silently starts later.
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
            if since_seq is not None and since_seq > self._last_seq:
                raise OutOfRange(
                    f"cannot resume after seq {since_seq}: the newest event in the journal "
                    f"is seq {self._last_seq} (a seq from another palletd's journal?); "
                    "since_seq=0 replays the whole journal"
                )
            if since_seq is not None or since_ns is not None:
                upto = self._last_seq
                gap_free = bool(since_seq)
                async for rows in self._replay(since_seq or 0, since_ns or 0, upto, gap_free):
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
                waiting: list[Event] = []
                taken = 0
                if queue.empty():
                    if sub.lagging:
                        raise Lagging(last)
                    if until_ns is None:
                        event, size = await queue.get()
                    else:
                        timeout = max(0.0, (until_ns - time.time_ns()) / 1e9)
                        try:
                            event, size = await asyncio.wait_for(queue.get(), timeout)
                        except TimeoutError:
                            return
                    waiting.append(event)
                    taken += size
                # Capped, so a subscriber holds at most BATCH_LIMIT events and about
                # BATCH_BYTES beyond its queue's.
                while len(waiting) < BATCH_LIMIT and taken < BATCH_BYTES and not queue.empty():
                    event, size = queue.get_nowait()
                    waiting.append(event)
                    taken += size
                sub.queued_bytes -= taken
                batch, last, ended = _admit(waiting, last, flt, until_ns)
                if batch:
                    yield batch
                if ended:
                    return
        finally:
            self._subscribers.discard(sub)
