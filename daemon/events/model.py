"""Event values and the publisher seam every component uses.

Owns: the `Event` and `Notice` dataclasses, what an event costs in memory (`memory_size`),
and the `EventPublisher` protocol. Must not: store or deliver events (that is
`pallet.daemon.events.bus`).
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


# What CPython spends around the text of an event (the object, its dict, one str header
# per string) and per attribute (two str headers and a dict slot): rounded up.
EVENT_OVERHEAD = 400
ATTRIBUTE_OVERHEAD = 130


def memory_size(event: Event) -> int:
    """About how many bytes `event` holds in memory: what bounds the caches and queues that
    keep events (labels make an event anything from 300 bytes to 100 KiB and more)."""
    size = EVENT_OVERHEAD + len(event.type) + len(event.action) + len(event.actor_id)
    for key, value in event.attributes.items():
        size += ATTRIBUTE_OVERHEAD + len(key) + len(value)
    return size


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
