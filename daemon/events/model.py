"""Event values and the publisher seam every component uses.

Owns: the `Event` dataclass and the `EventPublisher` protocol. Must not: store or deliver
events (that is `pallet.daemon.events.bus`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Event:
    """One journalled state change."""

    seq: int
    type: str
    action: str
    actor_id: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    time_ns: int = 0


class EventPublisher(Protocol):
    """What a component needs to announce a state change (one call per change)."""

    async def publish(
        self,
        type: str,
        action: str,
        actor_id: str,
        attributes: Mapping[str, str] | None = None,
    ) -> Event: ...


class JournalPublisher(EventPublisher, Protocol):
    """A publisher that can write the announced change in the event's own transaction.

    Components whose records live in the same database (containers) use `also` so a crash
    leaves the change and its event both written or neither.
    """

    async def publish(
        self,
        type: str,
        action: str,
        actor_id: str,
        attributes: Mapping[str, str] | None = None,
        *,
        also: Callable[[sqlite3.Connection], None] | None = None,
    ) -> Event: ...
