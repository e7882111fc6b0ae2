"""Docker's JSON shape of an event (`docker events --format '{{json .}}'`, `GET /events`)."""

from __future__ import annotations

from typing import Any


def event_fields(event: Any) -> dict[str, Any]:
    """Docker's events JSON shape (what `events --format` templates see), plus `Seq`."""
    attrs = dict(sorted(event.attributes.items()))
    time_ns = int(event.time.seconds) * 1_000_000_000 + int(event.time.nanos)
    # docker fills its deprecated status/id/from for container and image events only.
    legacy = event.type in ("container", "image")
    return {
        "status": event.action if legacy else "",
        "id": event.actor_id if legacy else "",
        "from": attrs.get("image", "") if event.type == "container" else "",
        "Type": event.type,
        "Action": event.action,
        "Actor": {"ID": event.actor_id, "Attributes": attrs},
        "scope": "local",
        "time": int(event.time.seconds),
        "timeNano": time_ns,
        "Seq": int(event.seq),
    }


def event_json_fields(event: Any) -> dict[str, Any]:
    """Docker's JSON of an event as dockerd sends it: event_fields without the deprecated
    fields left out when empty (a network event has no status, id or from)."""
    fields = event_fields(event)
    for key in ("status", "id", "from"):
        if not fields[key]:
            del fields[key]
    return fields
