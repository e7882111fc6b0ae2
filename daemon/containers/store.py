"""Container records in SQLite.

Owns: the `containers` table and the JSON encoding of `Container`, and the `execs` table
(execs whose exec_die is still to come). Must not: decide anything about lifecycle; it
stores what the manager hands it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from pallet.daemon.containers.model import (
    Container,
    ContainerConfig,
    ContainerState,
    ExecRecord,
    Status,
)
from pallet.daemon.images.model import ImageUser
from pallet.daemon.store.db import Database

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


def encode(c: Container) -> str:
    cfg = c.config
    st = c.state
    return json.dumps(
        {
            "config": {
                "image": cfg.image,
                "cmd": list(cfg.cmd),
                "entrypoint": list(cfg.entrypoint),
                "env": list(cfg.env),
                "working_dir": cfg.working_dir,
                "user": cfg.user,
                "hostname": cfg.hostname,
                "labels": dict(cfg.labels),
                "open_stdin": cfg.open_stdin,
                "auto_remove": cfg.auto_remove,
                "stop_signal": cfg.stop_signal,
                "stop_timeout": cfg.stop_timeout,
                "log_max_size": cfg.log_max_size,
                "log_max_files": cfg.log_max_files,
            },
            "state": {
                "status": st.status.value,
                "pid": st.pid,
                "exit_code": st.exit_code,
                "started_at_ns": st.started_at_ns,
                "finished_at_ns": st.finished_at_ns,
                "error": st.error,
                "shim_pid": st.shim_pid,
            },
            "state_dir": c.state_dir,
            "restart_count": c.restart_count,
        }
    )


def decode(row: sqlite3.Row) -> Container:
    rec: dict[str, Any] = json.loads(row["record"])
    cfg = rec["config"]
    st = rec["state"]
    return Container(
        id=row["id"],
        name=row["name"],
        image_id=row["image_id"],
        created_ns=row["created_ns"],
        state_dir=rec["state_dir"],
        restart_count=rec.get("restart_count", 0),
        config=ContainerConfig(
            image=cfg["image"],
            cmd=tuple(cfg["cmd"]),
            entrypoint=tuple(cfg["entrypoint"]),
            env=tuple(cfg["env"]),
            working_dir=cfg["working_dir"],
            user=cfg["user"],
            hostname=cfg["hostname"],
            labels=dict(cfg["labels"]),
            open_stdin=cfg["open_stdin"],
            auto_remove=cfg["auto_remove"],
            stop_signal=cfg["stop_signal"],
            stop_timeout=cfg["stop_timeout"],
            log_max_size=cfg.get("log_max_size", 0),
            log_max_files=cfg.get("log_max_files", 1),
        ),
        state=ContainerState(
            status=Status(st["status"]),
            pid=st["pid"],
            exit_code=st["exit_code"],
            started_at_ns=st["started_at_ns"],
            finished_at_ns=st["finished_at_ns"],
            error=st["error"],
            shim_pid=st.get("shim_pid", 0),
        ),
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

    async def insert(self, c: Container) -> None:
        await self._db.run(insert_writer(c))

    async def update(self, c: Container) -> None:
        await self._db.run(update_writer(c))

    async def delete(self, container_id: str) -> None:
        await self._db.run(delete_writer(container_id))

    async def image_users(self, image_id: str) -> list[ImageUser]:
        """Containers created from an image, and whether each is running."""
        rows = await self._db.run(
            lambda c: c.execute(
                "SELECT * FROM containers WHERE image_id = ? ORDER BY name", (image_id,)
            ).fetchall()
        )
        users = [decode(r) for r in rows]
        return [ImageUser(c.name, c.state.status is Status.RUNNING) for c in users]
