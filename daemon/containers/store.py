"""Container records in SQLite.

Owns: the `containers` table (a container's record is the codec's JSON of `Record`, and
records of earlier versions are migrated on read), and the `execs` table (execs whose
exec_die is still to come). Must not: decide anything about lifecycle; it
stores what the manager hands it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pallet.daemon.containers.model import (
    Config,
    Container,
    ContainerState,
    ExecRecord,
    HostConfig,
    RestartState,
    Status,
)
from pallet.daemon.images.model import ImageUser
from pallet.daemon.store.db import Database
from pallet.shim.api import codec
from pallet.v1.errors import InvalidArgument

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS containers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        image_id TEXT NOT NULL,
        created_ns INTEGER NOT NULL,
        record TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS containers_image ON containers(image_id)",
    """CREATE TABLE IF NOT EXISTS execs (
        id TEXT PRIMARY KEY,
        container_id TEXT NOT NULL,
        state_dir TEXT NOT NULL,
        command TEXT NOT NULL,
        attributes TEXT NOT NULL,
        created_ns INTEGER NOT NULL,
        started INTEGER NOT NULL DEFAULT 0
    )""",
]


@dataclass(frozen=True, slots=True)
class Record:
    """What a container's `record` column holds (the rest of `Container` has columns)."""

    config: Config
    state: ContainerState
    state_dir: str
    host_config: HostConfig = field(default_factory=HostConfig)
    restart_count: int = 0
    restarts: RestartState = field(default_factory=RestartState)


def encode(c: Container) -> str:
    return codec.dumps(
        Record(
            config=c.config,
            host_config=c.host_config,
            state=c.state,
            state_dir=c.state_dir,
            restart_count=c.restart_count,
            restarts=c.restarts,
        )
    )


# The host options that records written before HostConfig kept inside "config".
_FLAT_HOST_OPTIONS = ("auto_remove", "log_max_size", "log_max_files")


def migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """A record as this version writes it, from one any earlier version wrote.

    Before Config and HostConfig were apart, "config" also held auto_remove and the log
    rotation options, and there was no "host_config". Left alone, the codec would drop
    those keys as unknown and a `--rm` container would lose its --rm.
    """
    if "host_config" in raw or not isinstance(raw.get("config"), dict):
        return raw
    config = dict(raw["config"])
    flat = {k: config.pop(k) for k in _FLAT_HOST_OPTIONS if k in config}
    log: dict[str, Any] = {}
    if "log_max_size" in flat:
        log["max_size"] = flat["log_max_size"]
    if "log_max_files" in flat:
        log["max_files"] = flat["log_max_files"]
    host: dict[str, Any] = {"log_config": log}
    if "auto_remove" in flat:
        host["auto_remove"] = flat["auto_remove"]
    return {**raw, "config": config, "host_config": host}


def decode(row: sqlite3.Row) -> Container:
    try:
        raw = json.loads(row["record"])
    except ValueError as exc:
        raise InvalidArgument(f"malformed record of container {row['id']}: {exc}") from None
    # ignore_unknown: a record a newer palletd wrote still loads here (what it added is
    # not understood, and is lost if this version rewrites the record).
    rec = codec.from_json(
        Record, migrate(raw), ignore_unknown=True, what=f"record of container {row['id']}"
    )
    return Container(
        id=row["id"],
        name=row["name"],
        image_id=row["image_id"],
        created_ns=row["created_ns"],
        state_dir=rec.state_dir,
        restart_count=rec.restart_count,
        restarts=rec.restarts,
        config=rec.config,
        host_config=rec.host_config,
        state=rec.state,
    )


Writer = Callable[[sqlite3.Connection], None]


def insert_writer(c: Container) -> Writer:
    """Insert a new container; the UNIQUE name constraint is the last word on names."""

    def write(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO containers (id, name, image_id, created_ns, record) "
            "VALUES (?, ?, ?, ?, ?)",
            (c.id, c.name, c.image_id, c.created_ns, encode(c)),
        )

    return write


def update_writer(c: Container) -> Writer:
    record = encode(c)

    def write(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE containers SET record = ? WHERE id = ?", (record, c.id))

    return write


def rename_writer(c: Container) -> Writer:
    """The container's new name (and its record) in one statement: a crash leaves the old
    name or the new one, never both or neither; the UNIQUE name constraint refuses a name
    another container took meanwhile (sqlite3.IntegrityError)."""
    record = encode(c)

    def write(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE containers SET name = ?, record = ? WHERE id = ?", (c.name, record, c.id)
        )

    return write


def delete_writer(container_id: str) -> Writer:
    def write(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM containers WHERE id = ?", (container_id,))

    return write


def exec_insert_writer(r: ExecRecord) -> Writer:
    def write(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO execs (id, container_id, state_dir, command, attributes, created_ns, "
            "started) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (r.id, r.container_id, r.state_dir, r.command,
             json.dumps(dict(r.attributes), sort_keys=True), r.created_ns, int(r.started)),
        )

    return write


def exec_started_writer(exec_id: str) -> Writer:
    def write(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE execs SET started = 1 WHERE id = ?", (exec_id,))

    return write


def exec_delete_writer(exec_id: str) -> Writer:
    def write(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM execs WHERE id = ?", (exec_id,))

    return write


class ContainerRecords:
    """Reads and writes container rows.

    The `*_writer` functions above give the same writes as values, for callers that must
    commit them in one transaction with something else (the event announcing them).
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    async def start(self) -> None:
        await self._db.migrate("containers", SCHEMA)

    async def load_all(self) -> list[Container]:
        rows = await self._db.run(
            lambda c: c.execute("SELECT * FROM containers ORDER BY created_ns").fetchall()
        )
        return [decode(r) for r in rows]

    async def load_execs(self) -> list[ExecRecord]:
        rows = await self._db.run(
            lambda c: c.execute("SELECT * FROM execs ORDER BY created_ns").fetchall()
        )
        return [
            ExecRecord(
                id=r["id"],
                container_id=r["container_id"],
                state_dir=r["state_dir"],
                command=r["command"],
                attributes=json.loads(r["attributes"]),
                created_ns=r["created_ns"],
                started=bool(r["started"]),
            )
            for r in rows
        ]

    # Transactions, not bare statements: an essential write (`store.space`) on a full disk
    # gets the reserve only through `Database.transaction`.
    async def insert(self, c: Container) -> None:
        await self._db.transaction(insert_writer(c))

    async def update(self, c: Container) -> None:
        await self._db.transaction(update_writer(c))

    async def delete(self, container_id: str) -> None:
        await self._db.transaction(delete_writer(container_id))

    async def image_users(self, image_id: str) -> list[ImageUser]:
        """Containers created from an image, and whether each is running."""
        rows = await self._db.run(
            lambda c: c.execute(
                "SELECT * FROM containers WHERE image_id = ? ORDER BY name", (image_id,)
            ).fetchall()
        )
        users = [decode(r) for r in rows]
        return [ImageUser(c.name, c.state.status in (Status.RUNNING, Status.PAUSED)) for c in users]
