"""ps's view of what a container mounts (inspect's JSON is `pallet.v1.docker.mounts`).

Owns: ps's `.Mounts` and `.LocalVolumes` fields. Messages are read by
attribute only. Must not: talk to the daemon or print.
"""

from __future__ import annotations

from typing import Any


def ps_mounts(c: Any, trunc: bool = True) -> str:
    """ps's `.Mounts`: each volume's name or bind's source, cut as docker's
    Ellipsis(x, 15) cuts them (14 characters and "…") unless --no-trunc."""
    names = []
    for m in c.mounts:
        text = m.name if m.type == "volume" else m.source
        if text:
            names.append(_ellipsis(text, 15) if trunc else text)
    return ",".join(names)


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def local_volumes(c: Any) -> str:
    return str(sum(1 for m in c.mounts if m.type == "volume"))
