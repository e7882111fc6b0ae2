"""The event journal on disk: its table, what a row costs, and pruning it to the policy.

Owns: the `events` table's schema (and bringing a journal written by an older palletd up
to date), `RetentionPolicy`, and `prune`: dropping the oldest entries until the journal
holds no more events, bytes and age than the policy names. Must not: deliver events, or
run outside the caller's transaction (the bus serialises every write to the journal).

What is kept is always a run of seqs with no hole: from the oldest kept event to the
newest. So "the oldest seq kept" says exactly which resumes can still be gap-free.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

SCHEMA = [
    # `size`: what the row costs on disk (`row_size`), summed to bound the journal by bytes.
    # Before the text columns, so pruning reads it without touching a big row's overflow
    # pages (a journal from before `size` has it last: still correct, only slower).
    """CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ns INTEGER NOT NULL,
        size INTEGER NOT NULL DEFAULT 0,
        type TEXT NOT NULL,
        action TEXT NOT NULL,
        actor_id TEXT NOT NULL,
        attributes TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS events_time ON events(time_ns)",
]

# Per row beyond its text: seq, time, size, the time index entry, the b-tree cell.
ROW_OVERHEAD = 64
# The same, in SQL, for rows journalled before `size` existed.
_SQL_ROW_SIZE = (
    f"{ROW_OVERHEAD} + length(CAST(type AS BLOB)) + length(CAST(action AS BLOB)) + "
    "length(CAST(actor_id AS BLOB)) + length(CAST(attributes AS BLOB))"
)
# Rows read at a time while looking for where the prune stops: a few first (every commit
# prunes, and the oldest event is nearly always young enough: one row tells), growing to
# the most at a time when there is more to drop.
_WALK_FIRST = 4
_WALK_BATCH = 500

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How much of the journal to keep: at most `max_events` events and `max_bytes` bytes
    (`row_size`), none older than `max_age_s`; the newest event is always kept.

    The defaults keep a week, 100,000 events or 128 MiB, whichever is least (`palletd
    --events-max-count`, `--events-max-bytes`, `--events-max-age`).
    """

    max_events: int = 100_000
    max_age_s: int = 7 * 24 * 3600
    max_bytes: int = 128 * MiB

    def __post_init__(self) -> None:
        if self.max_events < 1 or self.max_age_s < 1 or self.max_bytes < 1:
            raise ValueError(
                "event retention must keep at least one event, for one second, in one byte"
            )

    def describe(self) -> str:
        """The policy as the flags that set it, for messages."""
        return (
            f"--events-max-count {self.max_events}, --events-max-bytes "
            f"{_size_text(self.max_bytes)}, --events-max-age {_age_text(self.max_age_s)}"
        )


def _size_text(size: int) -> str:
    for unit, factor in (("g", 1024**3), ("m", MiB), ("k", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def _age_text(seconds: int) -> str:
    for unit, factor in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % factor == 0:
            return f"{seconds // factor}{unit}"
    return f"{seconds}s"


def row_size(type: str, action: str, actor_id: str, attributes_json: str) -> int:
    """What one journal row costs on disk, about: its text plus `ROW_OVERHEAD`."""
    return (
        ROW_OVERHEAD
        + len(type.encode())
        + len(action.encode())
        + len(actor_id.encode())
        + len(attributes_json.encode())
    )


def upgrade(conn: sqlite3.Connection) -> None:
    """Give a journal from before `size` that column (inside the caller's transaction)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    if "size" not in columns:
        conn.execute("ALTER TABLE events ADD COLUMN size INTEGER NOT NULL DEFAULT 0")
        conn.execute(f"UPDATE events SET size = {_SQL_ROW_SIZE}")


def total_bytes(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(SUM(size), 0) FROM events").fetchone()[0])


def oldest_seq(conn: sqlite3.Connection) -> int | None:
    """The oldest seq kept, None when the journal is empty."""
    value = conn.execute("SELECT MIN(seq) FROM events").fetchone()[0]
    return None if value is None else int(value)


def prune(
    conn: sqlite3.Connection, policy: RetentionPolicy, now_ns: int, journal_bytes: int
) -> tuple[int, int]:
    """Drop the oldest events until the journal is within `policy`; `journal_bytes` is what
    it holds now. Returns how many events went and how many bytes they held.

    Only ever a prefix, never the newest event: the count bound is met exactly, the byte
    bound unless the newest event alone is larger, the age bound up to the first event that
    is young enough (a clock set back leaves older times behind it, not a hole).
    """
    newest = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
    if newest is None:
        return 0, 0
    # Seqs are gap-free, so the count bound is a seq: every one at or below it goes.
    cut = newest - policy.max_events
    dropped, dropped_bytes = 0, 0
    if cut > 0:
        row = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM events WHERE seq <= ?", (cut,)
        ).fetchone()
        dropped, dropped_bytes = int(row[0]), int(row[1])
    cutoff_ns = now_ns - policy.max_age_s * 1_000_000_000
    after, done, batch = max(cut, 0), False, _WALK_FIRST
    while not done:
        rows = conn.execute(
            "SELECT seq, time_ns, size FROM events WHERE seq > ? AND seq < ? ORDER BY seq LIMIT ?",
            (after, newest, batch),
        ).fetchall()
        done = len(rows) < batch
        batch = min(batch * 8, _WALK_BATCH)
        for row in rows:
            over_bytes = journal_bytes - dropped_bytes > policy.max_bytes
            if row[1] >= cutoff_ns and not over_bytes:
                done = True
                break
            cut, dropped, dropped_bytes = row[0], dropped + 1, dropped_bytes + row[2]
        after = rows[-1][0] if rows else after
    if dropped:
        conn.execute("DELETE FROM events WHERE seq <= ?", (cut,))
    return dropped, dropped_bytes
