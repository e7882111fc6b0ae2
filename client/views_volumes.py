"""Docker-shaped views of volumes.

Owns: `volume ls` rows and table (docker's columns and template fields; the `volume
inspect` JSON is pallet.v1.docker.volumes'). Messages are read by attribute only.
Must not: talk to the daemon or print.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pallet.client.format import human_size, table
from pallet.v1.docker.times import rfc3339_seconds


def volume_fields(v: Any) -> dict[str, Any]:
    """Docker's `volume ls` template fields (`.Name`, `.Driver`, `.Label "k"`...)."""
    labels = dict(v.labels)
    return {
        "Name": v.name,
        "Driver": v.driver,
        "Scope": v.scope or "local",
        "Mountpoint": v.mountpoint,
        "CreatedAt": rfc3339_seconds(v.created),
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
