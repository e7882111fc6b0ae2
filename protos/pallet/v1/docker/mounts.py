"""Docker's JSON of what a container mounts.

Owns: inspect's `Mounts` list (also the list summary's), `Config.Volumes`, and the
`HostConfig.Binds/Mounts/Tmpfs/VolumesFrom` it was created with. Messages are read by
attribute only.
"""

from __future__ import annotations

from typing import Any


def mounts(c: Any) -> list[dict[str, Any]]:
    """docker's inspect `Mounts`, one entry per mount, parents first (not --tmpfs's:
    docker shows those in HostConfig.Tmpfs only; --mount type=tmpfs is listed)."""
    out = []
    for m in c.mounts:
        if m.origin == "tmpfs":
            continue
        entry: dict[str, Any] = {"Type": m.type}
        if m.type == "volume":
            entry["Name"] = m.name
        entry.update({
            "Source": m.source,
            "Destination": m.destination,
        })
        if m.type == "volume":
            entry["Driver"] = m.driver
        entry.update({"Mode": m.mode, "RW": bool(m.rw), "Propagation": m.propagation})
        out.append(entry)
    return out


def _mount_request(m: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"Type": m.type, "Source": m.source, "Target": m.target}
    if m.read_only:
        entry["ReadOnly"] = True
    if m.type == "volume" and m.no_copy:
        entry["VolumeOptions"] = {"NoCopy": True}
    if m.type == "bind" and m.propagation:
        entry["BindOptions"] = {"Propagation": m.propagation}
    if m.type == "tmpfs" and m.tmpfs_options:
        options: dict[str, Any] = {}
        for opt in m.tmpfs_options:
            key, _, value = opt.partition("=")
            if key == "size" and value.isdigit():
                options["SizeBytes"] = int(value)
            elif key == "mode":
                options["Mode"] = int(value, 8)
        if options:
            entry["TmpfsOptions"] = options
    return entry


def host_config_mounts(cfg: Any) -> dict[str, Any]:
    """docker's HostConfig.Binds, .Mounts, .Tmpfs and .VolumesFrom as asked at create."""
    tmpfs = {}
    for spec in cfg.tmpfs:
        path, _, options = spec.partition(":")
        tmpfs[path] = options
    return {
        # docker's CLI puts a -v with a source (one with a ":") in Binds, and a bare
        # "-v /path" in Config.Volumes (`config_volumes`).
        "Binds": [b for b in cfg.binds if ":" in b] or None,
        "VolumesFrom": list(cfg.volumes_from) or None,
        "Mounts": [_mount_request(m) for m in cfg.mounts] or None,
        "Tmpfs": tmpfs or None,
    }


def config_volumes(c: Any) -> dict[str, dict[str, Any]] | None:
    """docker's Config.Volumes: the image's volumes (whatever is mounted there now) and
    the anonymous `-v /path` targets."""
    targets = [m.destination for m in c.mounts
               if m.image_volume or m.origin == "image" or (m.origin == "v" and m.anonymous)]
    return {t: {} for t in targets} or None
