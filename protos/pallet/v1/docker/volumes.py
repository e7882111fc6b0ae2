"""Docker's JSON shape of a volume (`docker volume inspect`, `GET /volumes/{name}`, and
with its usage in `GET /system/df`).

Messages are read by attribute only (pallet.v1.volumes_pb2 Volume).
"""

from __future__ import annotations

from typing import Any

from pallet.v1.docker.times import rfc3339_seconds


def volume_json(v: Any, *, usage: tuple[int, int] | None = None) -> dict[str, Any]:
    """A volume as dockerd's, in its field order. `usage`: (size, ref count) for the
    UsageData dockerd adds in `system df` only: Size (-1 when not computed) and RefCount
    (the containers that have it among their mounts)."""
    out: dict[str, Any] = {
        "CreatedAt": rfc3339_seconds(v.created),
        "Driver": v.driver,
        "Labels": dict(sorted(v.labels.items())),
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": dict(sorted(v.options.items())),
        "Scope": v.scope or "local",
    }
    if usage is not None:
        out["UsageData"] = {"Size": int(usage[0]), "RefCount": int(usage[1])}
    return out
