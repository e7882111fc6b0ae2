"""Volume records in SQLite.

Owns: the `volumes` table (one row per volume; its record is the codec's JSON of
`Volume`), the `volume_mounts` table (which container holds which volume mounted: written
with the `mount` event, deleted with the `unmount` one, so a palletd killed meanwhile
knows at its next start whose run still holds a volume), and the writers that commit rows
with the events announcing them. Must not:
decide anything, or touch a volume's directory.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from pallet.daemon.store.db import Database
from pallet.daemon.volumes.model import Volume
from pallet.shim.api import codec

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS volumes (
        name TEXT PRIMARY KEY,
        record TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS volume_mounts (
        volume TEXT NOT NULL,
        container_id TEXT NOT NULL,
        PRIMARY KEY (volume, container_id)
    )""",
]

Writer = Callable[[sqlite3.Connection], None]


def volume_insert_writer(v: Volume) -> Writer:
    def write(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO volumes (name, record) VALUES (?, ?)", (v.name, codec.dumps(v)))

    return write


def volume_delete_writer(name: str) -> Writer:
    def write(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM volume_mounts WHERE volume = ?", (name,))
        conn.execute("DELETE FROM volumes WHERE name = ?", (name,))

    return write


def mount_insert_writer(name: str, container_id: str) -> Writer:
    def write(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO volume_mounts (volume, container_id) VALUES (?, ?)",
            (name, container_id),
        )

    return write


def mount_delete_writer(name: str, container_id: str) -> Writer:
    def write(conn: sqlite3.Connection) -> None:
        conn.execute(
            "DELETE FROM volume_mounts WHERE volume = ? AND container_id = ?", (name, container_id)
        )

    return write


class VolumeRecords:
    """The table, read and written on the database thread."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def start(self) -> None:
        await self._db.migrate("volumes", SCHEMA)

    async def load(self) -> list[Volume]:
        rows = await self._db.run(
            lambda conn: conn.execute("SELECT record FROM volumes").fetchall()
        )
        return [codec.loads(Volume, row[0]) for row in rows]

    async def load_mounts(self) -> list[tuple[str, str]]:
        """(volume, container id) of every mount not yet unmounted."""
        rows = await self._db.run(
            lambda conn: conn.execute("SELECT volume, container_id FROM volume_mounts").fetchall()
        )
        return [(str(r[0]), str(r[1])) for r in rows]
