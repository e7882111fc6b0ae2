"""Docker-shaped views of volumes.

Owns: `volume inspect` JSON and `volume ls` rows and table (docker's columns and template
fields). Messages are read by attribute only. Must not: talk to the daemon or print.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from pallet.client.format import human_size, table


def _created(v: Any) -> str:
    """docker's CreatedAt: RFC 3339 to the second ("2026-12-03T13:40:00Z")."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(v.created.seconds)))


def inspect_volume(v: Any) -> dict[str, Any]:
    """A volume as docker's `volume inspect` JSON (docker's fields, in its order): no
    `UsageData` (docker shows that in `system df -v` only; `volume ls --format` has
    `.Size` and `.Links`)."""
    return {
        "CreatedAt": _created(v),
        "Driver": v.driver,
        "Labels": dict(sorted(v.labels.items())),
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": dict(sorted(v.options.items())),
        "Scope": v.scope or "local",
    }


def volume_fields(v: Any) -> dict[str, Any]:
    """Docker's `volume ls` template fields (`.Name`, `.Driver`, `.Label "k"`...)."""
    labels = dict(v.labels)
    return {
        "Name": v.name,
        "Driver": v.driver,
        "Scope": v.scope or "local",
        "Mountpoint": v.mountpoint,
        "CreatedAt": _created(v),
        "Labels": ",".join(f"{k}={val}" for k, val in sorted(labels.items())),
        "Label": lambda key: labels.get(key, ""),
        "Links": str(len(v.users)),
        "Size": human_size(v.size) if v.size >= 0 else "N/A",
    }


#: Header cells for `volume ls --format "table ..."`, like docker's.
VOLUME_HEADERS: dict[str, Any] = {
    "Name": "VOLUME NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "Mountpoint": "MOUNTPOINT",
    "CreatedAt": "CREATED",
    "Labels": "LABELS",
    "Label": lambda key: "LABEL",
    "Links": "LINKS",
    "Size": "SIZE",
}


def volumes_table(volumes: Iterable[Any]) -> str:
    """The default `volume ls` table."""
    rows = [["DRIVER", "VOLUME NAME"]]
    for v in volumes:
        rows.append([v.driver, v.name])
    return table(rows)
