"""The build cache: which image a step made from which parent, as the classic builder's.

Owns: the `build_cache` table (parent image, step key -> the image the step made), the
step key (a hash of everything that decides a step's result: its parent, the
instruction as it will be recorded, the image config it leaves, and for COPY/ADD the hash
of the files it reads), and the lineage the image store asks about (`children`: an
untagged image with a child is an intermediate image, which `images` hides and `image
prune` keeps while a child needs it). Must not: make images (the builder does), or
decide what a step's inputs are (the executor hands them in).

A row's image is a foreign key: an image removed takes its rows with it, so a hit never
names a missing image. A crash between an image's commit and its row leaves an image no
row names: it is dangling, and `image prune` takes it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import Any

from pallet.daemon.store.db import Database

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS build_cache (
        parent_id TEXT NOT NULL,
        step_key TEXT NOT NULL,
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        created_ns INTEGER NOT NULL,
        PRIMARY KEY (parent_id, step_key)
    )""",
    "CREATE INDEX IF NOT EXISTS build_cache_by_image ON build_cache(image_id)",
    # The builds under way: their containers carry the token, so that the next start of a
    # palletd that died mid-build finds and removes them.
    """CREATE TABLE IF NOT EXISTS build_tokens (
        token TEXT PRIMARY KEY,
        started_ns INTEGER NOT NULL
    )""",
]


def step_key(parent: str, created_by: str, config: Mapping[str, Any], extra: Mapping[str, object]) -> str:
    """The key of a step on `parent` ("" for scratch): the same inputs, the same key."""
    doc = {"v": 1, "parent": parent, "created_by": created_by, "config": config, "extra": extra}
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()


class BuildCache:
    def __init__(self, db: Database, clock: Callable[[], int] = time.time_ns) -> None:
        self._db = db
        self._clock = clock

    async def start(self) -> None:
        await self._db.migrate("builder", SCHEMA)

    async def lookup(self, parent: str, key: str) -> str | None:
        def find(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT image_id FROM build_cache WHERE parent_id = ? AND step_key = ?", (parent, key)
            ).fetchone()
            return str(row[0]) if row else None

        return await self._db.run(find)

    async def record(self, parent: str, key: str, image_id: str) -> None:
        now = self._clock()

        def write(conn: sqlite3.Connection) -> None:
            # The image may be gone already (an rmi raced the step): no row for it then.
            if conn.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone() is None:
                return
            conn.execute(
                "INSERT OR REPLACE INTO build_cache (parent_id, step_key, image_id, created_ns) "
                "VALUES (?, ?, ?, ?)",
                (parent, key, image_id, now),
            )

        await self._db.transaction(write)

    async def children(self) -> dict[str, set[str]]:
        """parent image id -> the images steps made on it (that still exist)."""

        def read(conn: sqlite3.Connection) -> dict[str, set[str]]:
            out: dict[str, set[str]] = {}
            for parent, child in conn.execute("SELECT parent_id, image_id FROM build_cache WHERE parent_id != ''"):
                if parent != child:
                    out.setdefault(str(parent), set()).add(str(child))
            return out

        return await self._db.run(read)

    async def begin(self, token: str) -> None:
        now = self._clock()
        await self._db.transaction(
            lambda conn: conn.execute("INSERT INTO build_tokens (token, started_ns) VALUES (?, ?)", (token, now))
        )

    async def end(self, tokens: set[str]) -> None:
        listed = sorted(tokens)
        await self._db.transaction(
            lambda conn: conn.executemany("DELETE FROM build_tokens WHERE token = ?", [(t,) for t in listed])
        )

    async def unfinished(self) -> set[str]:
        """The tokens of builds that never ended (palletd died during them)."""
        return await self._db.run(
            lambda conn: {str(row[0]) for row in conn.execute("SELECT token FROM build_tokens")}
        )
