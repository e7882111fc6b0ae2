"""Network records and address leases in SQLite.

Owns: the `networks` table (one row per network; its record is the codec's JSON of
`Network`) and the `network_leases` table (one row per address a running container holds:
UNIQUE per network, so no address is handed out twice, also across a kill -9), the
`network_bridges` table (every bridge palletd made, or is about to make, for a user
network: at boot, one that no network owns is its leftover, whatever it is named), and
the writers that commit them with the events announcing them (a lease's insert and delete
are what a network `connect` and `disconnect` event announce). Must not: decide anything; it
stores what the network manager hands it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from pallet.daemon.networks.model import Lease, Network
from pallet.daemon.store.db import Database
from pallet.shim.api import codec

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS networks (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        record TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS network_leases (
        network_id TEXT NOT NULL,
        address TEXT NOT NULL,
        container_id TEXT NOT NULL,
        mac TEXT NOT NULL,
        ifname TEXT NOT NULL,
        host_ifname TEXT NOT NULL UNIQUE,
        position INTEGER NOT NULL,
        PRIMARY KEY (network_id, address),
        UNIQUE (network_id, container_id)
    )""",
    "CREATE INDEX IF NOT EXISTS network_leases_by_container ON network_leases(container_id)",
    "CREATE TABLE IF NOT EXISTS network_bridges (name TEXT PRIMARY KEY)",
]

Writer = Callable[[sqlite3.Connection], None]


def network_insert_writer(n: Network) -> Writer:
    def write(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO networks (id, name, record) VALUES (?, ?, ?)",
            (n.id, n.name, codec.dumps(n)),
        )

    return write


def network_delete_writer(network_id: str) -> Writer:
    def write(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM network_leases WHERE network_id = ?", (network_id,))
        conn.execute("DELETE FROM networks WHERE id = ?", (network_id,))

    return write


def lease_insert_writer(leases: list[Lease]) -> Writer:
    def write(conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT INTO network_leases (network_id, address, container_id, mac, ifname, "
            "host_ifname, position) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (x.network_id, x.address, x.container_id, x.mac, x.ifname, x.host_ifname,
                 x.position)
                for x in leases
            ],
        )

    return write


def address_taken(error: sqlite3.IntegrityError) -> bool:
    """Whether a lease insert failed because its address is leased on that network already
    (the table's primary key), not for another constraint."""
    return "network_leases.network_id, network_leases.address" in str(error)


def delete_leases(conn: sqlite3.Connection, container_id: str, network_id: str = "") -> list[str]:
    """Delete a container's leases (on one network, or all); return the networks whose
    lease went, in attach order: what was released, each once, however often it is asked."""
    where, args = "container_id = ?", [container_id]
    if network_id:
        where, args = where + " AND network_id = ?", [*args, network_id]
    rows = conn.execute(
        f"SELECT network_id FROM network_leases WHERE {where} ORDER BY position", args
    ).fetchall()
    conn.execute(f"DELETE FROM network_leases WHERE {where}", args)
    return [str(r[0]) for r in rows]


def bridge_insert_writer(name: str) -> Writer:
    def write(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT OR IGNORE INTO network_bridges (name) VALUES (?)", (name,))

    return write


def bridge_delete_writer(name: str) -> Writer:
    def write(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM network_bridges WHERE name = ?", (name,))

    return write


class NetworkRecords:
    """The tables, read and written on the database thread."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def start(self) -> None:
        await self._db.migrate("networks", SCHEMA)

    async def load_networks(self) -> list[Network]:
        rows = await self._db.run(
            lambda conn: conn.execute("SELECT record FROM networks").fetchall()
        )
        return [codec.loads(Network, row[0]) for row in rows]

    async def load_leases(self) -> list[Lease]:
        def read(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
            return conn.execute(
                "SELECT network_id, container_id, address, mac, ifname, host_ifname, "
                "position FROM network_leases ORDER BY container_id, position"
            ).fetchall()

        rows = await self._db.run(read)
        return [
            Lease(str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]), int(str(r[6])))
            for r in rows
        ]

    async def load_bridges(self) -> list[str]:
        rows = await self._db.run(
            lambda conn: conn.execute("SELECT name FROM network_bridges").fetchall()
        )
        return sorted(str(r[0]) for r in rows)

    async def write(self, writer: Writer) -> None:
        await self._db.transaction(writer)
