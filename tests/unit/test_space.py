"""The state disk's reserve and the database on a full disk (store/space.py, store/db.py)."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import pytest

from pallet.daemon.store import space
from pallet.daemon.store.db import Database
from pallet.daemon.store.space import SpaceReserve, disk_full, is_disk_full
from pallet.v1.errors import ResourceExhausted

KIB = 1024


def full_error() -> sqlite3.OperationalError:
    e = sqlite3.OperationalError("database or disk is full")
    e.sqlite_errorcode = 13  # type: ignore[attr-defined]
    return e


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeReserve(SpaceReserve):
    """A reserve that only counts what is asked of it."""

    def __init__(self, held: int = 64 * KIB) -> None:
        super().__init__(Path("/nonexistent/reserve"), held)
        self._held = held
        self.released = 0
        self.replenished = 0

    def release(self) -> int:
        given, self._held = self._held, 0
        self.released += 1
        return given

    def replenish(self) -> bool:
        self.replenished += 1
        return bool(self._held)


# ---- telling a full disk apart


def test_full_disks_are_told_from_other_errors(tmp_path: Path) -> None:
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"), tmp_path)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"), tmp_path)
    assert is_disk_full(full_error(), tmp_path)
    assert not is_disk_full(sqlite3.OperationalError("no such table: x"), tmp_path)
    assert not is_disk_full(ValueError("x"), tmp_path)


def test_an_sqlite_full_error_from_a_real_database_is_told(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "db")
    conn.execute("CREATE TABLE t (x BLOB)")
    conn.execute("PRAGMA max_page_count = 4")
    with pytest.raises(sqlite3.Error) as info:
        conn.execute("INSERT INTO t VALUES (?)", (b"\0" * 64 * KIB,))
    assert is_disk_full(info.value, tmp_path)
    conn.close()


def test_the_error_names_the_path_and_the_way_out(tmp_path: Path) -> None:
    e = disk_full(tmp_path / "pallet.db", "cannot write the state database")
    assert e.code == "RESOURCE_EXHAUSTED"
    assert str(e).startswith(f"cannot write the state database: the disk of {tmp_path}")
    assert "is full (no space left on the device" in str(e) and "free" in str(e)
    assert "pallet rm" in str(e) and "pallet image prune" in str(e)


# ---- the reserve file


def test_the_reserve_is_allocated_released_and_allocated_again(tmp_path: Path) -> None:
    clock = Clock()
    reserve = SpaceReserve(tmp_path / "reserve", 256 * KIB, clock=clock)
    reserve.start()
    assert reserve.held == 256 * KIB
    assert os.stat(tmp_path / "reserve").st_blocks * 512 >= 256 * KIB
    assert reserve.release() == 256 * KIB
    assert reserve.held == 0 and os.stat(tmp_path / "reserve").st_blocks == 0
    assert reserve.release() == 0, "nothing more to give"
    assert not reserve.replenish(), "tried again once a second at most"
    clock.now += space.REPLENISH_EVERY_S
    assert reserve.replenish() and reserve.held == 256 * KIB
    # Found allocated by the next palletd.
    again = SpaceReserve(tmp_path / "reserve", 256 * KIB)
    again.start()
    assert again.held >= 256 * KIB


def test_the_reserve_is_sized_from_its_filesystem(tmp_path: Path) -> None:
    reserve = SpaceReserve(tmp_path / "reserve")
    reserve.start()
    assert space.RESERVE_MIN <= reserve.size <= space.RESERVE_MAX


def test_essential_is_a_scope() -> None:
    assert not space.is_essential()
    with space.essential():
        assert space.is_essential()
        with space.essential():
            assert space.is_essential()
        assert space.is_essential()
    assert not space.is_essential()


# ---- the database on a full disk


@pytest.fixture
async def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    reserve = FakeReserve()
    database = Database(tmp_path / "pallet.db", reserve)
    await database.start()
    await database.migrate("t", ["CREATE TABLE IF NOT EXISTS t (x BLOB)"])
    yield database, reserve
    await database.aclose()


async def test_a_full_disk_is_resource_exhausted_and_leaves_no_transaction_open(
    db: tuple[Database, FakeReserve], tmp_path: Path
) -> None:
    database, reserve = db
    await database.run(lambda c: c.execute("PRAGMA max_page_count = 3"))

    def big(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES (?)", (b"\0" * 64 * KIB,))

    with pytest.raises(ResourceExhausted) as info:
        await database.transaction(big)
    assert str(tmp_path / "pallet.db") in str(info.value)
    assert reserve.released == 0, "an ordinary write does not spend the reserve"
    assert reserve.replenished == 1, "it tries to allocate a spent reserve first"
    assert not await database.run(lambda c: c.in_transaction)
    # The next transaction begins (before: 'cannot start a transaction within a transaction').
    await database.transaction(lambda c: c.execute("INSERT INTO t VALUES (x'00')"))
    assert await database.run(lambda c: c.execute("SELECT COUNT(*) FROM t").fetchone()[0]) == 1


async def test_an_essential_write_spends_the_reserve_and_is_tried_again(
    db: tuple[Database, FakeReserve],
) -> None:
    database, reserve = db
    tries: list[int] = []

    def write(conn: sqlite3.Connection) -> str:
        tries.append(reserve.held)
        if reserve.held:
            raise full_error()  # no room until the reserve is given back
        conn.execute("INSERT INTO t VALUES (x'01')")
        return "written"

    with space.essential():
        assert await database.transaction(write) == "written"
    assert reserve.released == 1 and tries == [64 * KIB, 0]
    assert reserve.replenished == 0, "an essential write does not take the room back first"


async def test_an_essential_write_with_the_reserve_spent_fails_clearly(
    db: tuple[Database, FakeReserve],
) -> None:
    database, reserve = db
    reserve.release()

    def write(conn: sqlite3.Connection) -> None:
        raise full_error()

    with space.essential(), pytest.raises(ResourceExhausted):
        await database.transaction(write)
    assert not await database.run(lambda c: c.in_transaction)


async def test_a_commit_that_fails_leaves_no_transaction_open(
    db: tuple[Database, FakeReserve],
) -> None:
    """A COMMIT that fails (SQLITE_FULL does, as a deferred constraint does here) keeps its
    transaction open unless rolled back: every later BEGIN failed until a restart."""
    database, _ = db
    await database.migrate("fk", [
        "CREATE TABLE IF NOT EXISTS parent (id INTEGER PRIMARY KEY)",
        "CREATE TABLE IF NOT EXISTS child (p INTEGER REFERENCES parent(id) "
        "DEFERRABLE INITIALLY DEFERRED)",
    ])

    def orphan(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO child VALUES (42)")  # fails only at COMMIT

    with pytest.raises(sqlite3.IntegrityError):
        await database.transaction(orphan)
    assert not await database.run(lambda c: c.in_transaction)
    await database.transaction(lambda c: c.execute("INSERT INTO parent VALUES (1)"))
