"""Event filters in docker's `key=value` form.

Owns: parsing filter strings and matching events against them. Values under one key are
ORed, different keys are ANDed. Must not: touch the journal or subscribers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pallet.v1.errors import InvalidArgument
from pallet.daemon.events.model import Event

KEYS = frozenset({"type", "event", "container", "image", "label", "network", "volume"})


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Parsed filters: key -> accepted values."""

    terms: Mapping[str, frozenset[str]]

    def matches(self, event: Event) -> bool:
        # A plain loop, not all(<genexpr>): this runs once per event per subscriber.
        for key, values in self.terms.items():
            if not _term_matches(key, values, event):
                return False
        return True


def parse_filters(filters: Sequence[str]) -> EventFilter:
    """Parse `["type=container", "event=die"]`; an unknown key or a bare word is refused."""
    terms: dict[str, set[str]] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise InvalidArgument(f"bad event filter {item!r}: use key=value")
        if key not in KEYS:
            raise InvalidArgument(
                f"unknown event filter {key!r}: use one of {', '.join(sorted(KEYS))}"
            )
        terms.setdefault(key, set()).add(value)
    return EventFilter({k: frozenset(v) for k, v in terms.items()})


def _term_matches(key: str, values: frozenset[str], event: Event) -> bool:
    attrs = event.attributes
    if key == "type":
        return event.type in values
    if key == "event":
        # "exec_start: sh -c …" style actions match on their first word too.
        return event.action in values or event.action.split(":", 1)[0] in values
    if key == "container":
        if event.type != "container":
            return False
        return any(
            event.actor_id.startswith(v) or attrs.get("name") == v for v in values
        )
    if key == "image":
        candidates = {attrs.get("image", ""), attrs.get("name", "") if event.type == "image" else ""}
        if event.type == "image":
            candidates.add(event.actor_id)
        candidates.discard("")
        return any(
            v in candidates or any(c.startswith(v) or c.split(":", 1)[0] == v for c in candidates)
            for v in values
        )
    if key in ("network", "volume"):
        # docker's: a network by id (prefix) or name, a volume by name.
        if event.type != key:
            return False
        return any(event.actor_id.startswith(v) or attrs.get("name") == v for v in values)
    if key == "label":
        for v in values:
            lkey, lsep, lval = v.partition("=")
            if lkey in attrs and (not lsep or attrs[lkey] == lval):
                return True
        return False
    return False
