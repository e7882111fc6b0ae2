"""The state disk's reserve and the database on a full disk (store/space.py, store/db.py)."""

from __future__ import annotations

import asyncio
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


class FakeReserve(SpaceReserve):
    """A reserve held in memory only: released when asked, never allocated again."""

    def __init__(self, held: int = 64 * KIB) -> None:
        super().__init__(Path("/nonexistent/reserve"), held)
        self._held = held

    def release(self) -> int:
        given, self._held = self._held, 0
        return given

    def replenish(self) -> bool:
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
    reserve = SpaceReserve(tmp_path / "reserve", 256 * KIB)
    reserve.start()
    assert reserve.held == 256 * KIB
    assert os.stat(tmp_path / "reserve").st_blocks * 512 >= 256 * KIB
    assert reserve.release() == 256 * KIB
    assert reserve.held == 0 and os.stat(tmp_path / "reserve").st_blocks == 0
    assert reserve.release() == 0, "nothing more to give"
    assert reserve.replenish() and reserve.held == 256 * KIB, "there is room: at once"
    # Found allocated by the next palletd.
    again = SpaceReserve(tmp_path / "reserve", 256 * KIB)
    again.start()
    assert again.held >= 256 * KIB


def test_a_spent_reserve_waits_for_room_twice_its_size(tmp_path: Path) -> None:
    free = space.free_bytes(tmp_path)
    assert free is not None
    reserve = SpaceReserve(tmp_path / "reserve", free)  # never twice free here
    assert not reserve.replenish() and reserve.held == 0
    assert not (tmp_path / "reserve").exists(), "not even tried"


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
    assert reserve.held, "an ordinary write does not spend the reserve"
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
    assert tries == [64 * KIB, 0] and reserve.held == 0
    assert await database.run(lambda c: c.execute("SELECT COUNT(*) FROM t").fetchone()[0]) == 1


async def test_no_other_write_comes_between_releasing_the_reserve_and_the_retry(
    db: tuple[Database, FakeReserve],
) -> None:
    """The room the reserve gives back goes to the essential write that needed it."""
    database, reserve = db
    order: list[str] = []

    def essential_write(conn: sqlite3.Connection) -> None:
        if reserve.held:
            order.append("essential: full")
            raise full_error()
        order.append("essential: written")

    def ordinary_write(conn: sqlite3.Connection) -> None:
        order.append("ordinary")

    async def essential() -> None:
        with space.essential():
            await database.transaction(essential_write)

    await asyncio.gather(essential(), database.transaction(ordinary_write))
    assert order == ["essential: full", "essential: written", "ordinary"], order


async def test_records_written_in_an_essential_scope_get_the_reserve(
    db: tuple[Database, FakeReserve], tmp_path: Path
) -> None:
    """A container record's own write (no event) may spend the reserve too."""
    from pallet.daemon.containers.model import Container, ContainerState
    from pallet.daemon.containers.store import ContainerRecords

    database, reserve = db
    records = ContainerRecords(database)
    await records.start()
    c = Container(id="c" * 64, name="web", image_id="sha256:" + "a" * 64,
                  config=None, host_config=None, state=ContainerState(),  # type: ignore[arg-type]
                  created_ns=1, state_dir=str(tmp_path / "web"))
    real = database._conn
    assert real is not None

    class FullUntilReleased:
        """The connection as a disk with no room until the reserve is released."""

        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        def execute(self, sql: str, *args: object) -> object:
            if reserve.held and sql.startswith(("INSERT", "UPDATE", "DELETE")):
                raise full_error()
            return real.execute(sql, *args)

    database._conn = FullUntilReleased()  # type: ignore[assignment]
    try:
        with pytest.raises(ResourceExhausted):
            await records.delete(c.id)  # ordinary: refused, the reserve kept
        assert reserve.held
        with space.essential():
            await records.delete(c.id)
        assert reserve.held == 0
    finally:
        database._conn = real


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
