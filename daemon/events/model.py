"""Event values and the publisher seam every component uses.

Owns: the `Event` and `Notice` dataclasses and the `EventPublisher` protocol. Must not:
store or deliver events (that is `pallet.daemon.events.bus`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Event:
    """One journalled state change."""

    seq: int
    type: str
    action: str
    actor_id: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    time_ns: int = 0


@dataclass(frozen=True, slots=True)
class Notice:
    """An event still to be journalled: what a change announces (no seq, no time yet)."""

    type: str
    action: str
    actor_id: str
    attributes: Mapping[str, str] = field(default_factory=dict)


class EventPublisher(Protocol):
    """What a component needs to announce its state changes.

    Components whose records live in the same database (containers, images) write the
    change in the event's own transaction, through `also` or `commit`, so a crash leaves
    the change and its events all written or none.
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

    async def commit(
        self, change: Callable[[sqlite3.Connection], tuple[T, Sequence[Notice]]]
    ) -> T: ...
