"""The daemon's SQLite metadata database.

Owns: the one connection to `<root>/pallet.db` (WAL mode), the single thread that every
query runs on, and schema migrations registered by the components. Must not: know any
component's tables; each component declares its own schema and queries through `run`.

SQLite connections are not shared across threads, and a query must not block the event
loop, so every call is shipped to one dedicated worker thread. One writer thread also
serialises transactions, which keeps multi-statement operations atomic without locks.

A full disk is ResourceExhausted naming the database's path, never a raw OperationalError;
a transaction that fails leaves none open (a COMMIT that fails with SQLITE_FULL leaves its
transaction open otherwise, and every later BEGIN fails). An essential write
(`space.essential()`) that finds the disk full spends the disk's reserve and is tried once
more; a spent reserve is allocated again before any later write, once there is room.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pallet.daemon.store import space
from pallet.daemon.store.space import SpaceReserve
from pallet.v1.errors import ResourceExhausted

T = TypeVar("T")


class Database:
    """An SQLite database used from asyncio through one worker thread."""

    def __init__(self, path: Path, reserve: SpaceReserve | None = None) -> None:
        self._path = path
        self._reserve = reserve
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="pallet-db"
        )
        self._conn: sqlite3.Connection | None = None

    def _open(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed transaction survives a crash of any process
            # (kill -9 of palletd); only an OS crash may lose the newest commits. FULL would
            # put an fsync on every state change of every container.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=5000")
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def start(self) -> None:
        """Open the database; on a full disk (its write-ahead log and shared-memory files
        cannot be made) with the reserve spent on it: palletd starts on a full disk."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        try:
            await self._mapped(loop.run_in_executor(self._executor, self._open))
        except ResourceExhausted:
            if not await self._spend_reserve():
                raise
            await self._mapped(loop.run_in_executor(self._executor, self._open))

    async def aclose(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` on the database thread and return its result."""
        conn = self._conn
        if conn is None:
            raise RuntimeError("database is not open")
        loop = asyncio.get_running_loop()
        return await self._mapped(loop.run_in_executor(self._executor, fn, conn))

    async def _mapped(self, work: asyncio.Future[T]) -> T:
        """`work`'s result; a full disk raised as ResourceExhausted naming the database."""
        try:
            return await work
        except (sqlite3.Error, OSError) as e:
            if not space.is_disk_full(e, self._path.parent):
                raise
            raise space.disk_full(self._path, "cannot write the state database") from e

    async def _spend_reserve(self) -> bool:
        """Release the disk's reserve (on the database thread, between transactions);
        True when it gave space back."""
        if self._reserve is None:
            return False
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._reserve.release) > 0

    async def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` inside BEGIN IMMEDIATE … COMMIT; roll back if it raises.

        On a full disk: ResourceExhausted, unless the write is essential
        (`space.essential()`) and the reserve gives it room: released and tried again in
        the same job on the database thread, so no other write comes between and takes
        the room. Before every transaction a spent reserve is allocated again if there is
        room for it.
        """
        essential = space.is_essential()
        reserve = self._reserve
        where = self._path.parent

        def attempt(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                # A statement that hit SQLITE_FULL may have rolled back already; a COMMIT
                # that did leaves the transaction open: close it either way.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        def wrapped(conn: sqlite3.Connection) -> T:
            if reserve is not None:
                reserve.replenish()
            try:
                return attempt(conn)
            except (sqlite3.Error, OSError) as e:
                if not (essential and reserve is not None and space.is_disk_full(e, where)):
                    raise
                if not reserve.release():
                    raise
            return attempt(conn)

        return await self.run(wrapped)

    async def migrate(self, component: str, statements: list[str]) -> None:
        """Apply a component's schema; statements must be idempotent (IF NOT EXISTS)."""

        def apply(conn: sqlite3.Connection) -> None:
            for statement in statements:
                conn.execute(statement)

        # Essential: a schema already in place writes nothing, and palletd must start on
        # a full disk.
        with space.essential():
            await self.transaction(apply)
