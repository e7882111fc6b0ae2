"""An event bus served over real gRPC on a temporary unix socket, for the unit tests of
the events path (no root, no palletd)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc

from pallet.daemon.api.events import EventsServicer
from pallet.daemon.events.bus import EventBus
from pallet.daemon.store.db import Database


@asynccontextmanager
async def serve_events(tmp_path: Path) -> AsyncIterator[tuple[EventBus, str]]:
    """A fresh journal and bus, served at the address yielded with it."""
    db = Database(tmp_path / "pallet.db")
    await db.start()
    bus = EventBus(db)
    await bus.start()
    server = grpc.aio.server()
    EventsServicer(bus).add_to_server(server)
    address = f"unix:{tmp_path}/events.sock"
    server.add_insecure_port(address)
    await server.start()
    try:
        yield bus, address
    finally:
        await server.stop(None)
        await bus.aclose()
        await db.aclose()
