"""Docker's JSON shapes of pallet's images: `image inspect`, `GET /images/json`'s
ImageSummary, `history`, and the JSON progress lines of pull, push, load and build.

Owns: how an `Image`, a `HistoryEntry` and a `Progress` read in Docker's JSON (shared by
the CLI's `image inspect` and the Docker API gateway, so both say the same). Must not:
import anything beyond `pallet.v1` and the standard library.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"
# The API version from which ImageSummary and image inspect lost VirtualSize (1.44).
NO_VIRTUAL_SIZE = (1, 44)


def _rfc3339_nano(ts: Any) -> str:
    seconds, nanos = int(ts.seconds), int(ts.nanos)
    if seconds == 0 and nanos == 0:
        return ZERO_TIME
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def _list_or_none(values: Iterable[str]) -> list[str] | None:
    items = list(values)
    return items or None


def _set_or_none(values: Iterable[str]) -> dict[str, dict[str, Any]] | None:
    items: dict[str, dict[str, Any]] = {v: {} for v in values}
    return items or None


def health_config(h: Any) -> dict[str, Any]:
    """Docker's Healthcheck object (Config.Healthcheck): Test, and the values that are set."""
    out: dict[str, Any] = {"Test": list(h.test)}
    for key, value in (("Interval", h.interval_ns), ("Timeout", h.timeout_ns),
                       ("StartPeriod", h.start_period_ns),
                       ("StartInterval", h.start_interval_ns), ("Retries", h.retries)):
        if value:
            out[key] = int(value)
    return out


def image_config(cfg: Any) -> dict[str, Any]:
    """Docker's image Config (the runtime part of an OCI image config)."""
    return {
        "User": cfg.user,
        "ExposedPorts": _set_or_none(cfg.exposed_ports),
        "Env": list(cfg.env),
        "Cmd": _list_or_none(cfg.cmd),
        **({"Healthcheck": health_config(cfg.healthcheck)} if cfg.HasField("healthcheck") else {}),
        "Volumes": _set_or_none(cfg.volumes),
        "WorkingDir": cfg.working_dir,
        "Entrypoint": _list_or_none(cfg.entrypoint),
        "Labels": dict(sorted(cfg.labels.items())),
        "StopSignal": cfg.stop_signal,
    }


def inspect_image(image: Any, version: tuple[int, int] | None = None) -> dict[str, Any]:
    """An image as Docker's `image inspect` (`GET /images/{name}/json`); `version` is the
    API version asked (None: the newest), for the fields older versions still had."""
    doc: dict[str, Any] = {
        "Id": image.id,
        "RepoTags": list(image.repo_tags),
        "RepoDigests": list(image.repo_digests),
        "Parent": "",
        "Comment": image.comment,
        "Created": _rfc3339_nano(image.created),
        "DockerVersion": "",
        "Author": image.author,
        "Config": image_config(image.config),
        "Architecture": image.architecture,
        "Os": image.os,
        "Size": int(image.size),
        "GraphDriver": {"Data": None, "Name": "overlay2"},
        "RootFS": {"Type": "layers", "Layers": list(image.layers)},
        "Metadata": {"LastTagTime": ZERO_TIME},
    }
    if version is not None and version < NO_VIRTUAL_SIZE:
        doc["VirtualSize"] = int(image.size)
    return doc


def image_summary(image: Any, version: tuple[int, int] | None = None,
                  containers: int = -1) -> dict[str, Any]:
    """Docker's ImageSummary (`GET /images/json`): one entry per image, every name of it
    in RepoTags. SharedSize and Containers are -1 as dockerd sends them unless asked."""
    summary: dict[str, Any] = {
        "Containers": containers,
        "Created": int(image.created.seconds),
        "Id": image.id,
        "Labels": dict(sorted(image.config.labels.items())) or None,
        "ParentId": "",
        "RepoDigests": list(image.repo_digests),
        "RepoTags": list(image.repo_tags),
        "SharedSize": -1,
        "Size": int(image.size),
    }
    if version is not None and version < NO_VIRTUAL_SIZE:
        summary["VirtualSize"] = int(image.size)
    return summary


def history(entries: Iterable[Any], tags: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Docker's `GET /images/{name}/history`: newest first; the top step carries the
    image's tags."""
    out: list[dict[str, Any]] = []
    for index, e in enumerate(entries):
        out.append({
            "Comment": e.comment,
            "Created": int(e.created.seconds),
            "CreatedBy": e.created_by,
            "Id": e.id or "<missing>",
            "Size": int(e.size),
            "Tags": list(tags) if index == 0 and list(tags) else None,
        })
    return out


# -- JSON progress lines (Docker's jsonmessage) -------------------------------------------


def human_size(size: float) -> str:
    """Docker's units.HumanSize: four significant digits, decimal units."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if size < 1000 or unit == "PB":
            return f"{size:.4g}{unit}"
        size /= 1000
    return f"{size:.4g}PB"


def progress_bar(current: int, total: int) -> str:
    """The text dockerd puts in a message's `progress`: a bar of 50, then the sizes."""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current):>8}"
    filled = min(int(current / total * 100) // 2, 50)
    return f"[{'=' * filled}>{' ' * (50 - filled)}] {human_size(current):>8}/{human_size(total)}"


def progress_message(p: Any) -> dict[str, Any]:
    """A pallet Progress step as dockerd's message. pallet's first line of a pull,
    "latest: Pulling from library/busybox", is dockerd's status with the tag as its id."""
    status, ident = p.status, p.id
    if not ident and ": Pulling from " in status:
        ident, _, rest = status.partition(": ")
        status = rest
    message: dict[str, Any] = {"status": status}
    if ident:
        detail: dict[str, Any] = {}
        if p.current or p.total:
            detail = {"current": int(p.current), "total": int(p.total)}
        message["progressDetail"] = detail
        bar = progress_bar(int(p.current), int(p.total)) if detail else ""
        if bar:
            message["progress"] = bar
        message["id"] = ident
    return message


def stream_message(text: str) -> dict[str, Any]:
    return {"stream": text}


def error_message(message: str, code: int = 0) -> dict[str, Any]:
    """A failure after the stream began: the docker CLI prints `message` and exits
    non-zero (with `code`, when the failure has one)."""
    detail: dict[str, Any] = {"message": message}
    if code:
        detail["code"] = code
    return {"errorDetail": detail, "error": message}


def line(message: dict[str, Any]) -> bytes:
    """One message of a JSON stream as dockerd writes it (CRLF-ended)."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\r\n"
