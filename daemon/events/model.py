"""Event values and the publisher seam every component uses.

Owns: the `Event` dataclass and the `EventPublisher` protocol. Must not: store or deliver
events (that is `pallet.daemon.events.bus`).
"""

from __future__ import annotations

from collections.abc import Mapping
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
