"""`network ls --filter` and `network prune --filter`, in docker's `key=value` form.

Owns: parsing and matching network filters (id, name, label, driver, type, dangling, scope;
prune: label, label!, until). Values under one key are ORed, different keys ANDed.
Must not: look anything up (the caller says whether a network is in use).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pallet.daemon.networks.model import Network
from pallet.v1.errors import InvalidArgument

LIST_KEYS = frozenset({"id", "name", "label", "driver", "type", "dangling", "scope"})
#: Every network is local to this host (docker's scopes: local, global, swarm).
SCOPES = frozenset({"local", "global", "swarm"})
PRUNE_KEYS = frozenset({"label", "label!", "until"})


def parse(filters: Sequence[str], keys: frozenset[str] = LIST_KEYS) -> dict[str, set[str]]:
    terms: dict[str, set[str]] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"bad filter {item!r}: use key=value")
        if key not in keys:
            raise InvalidArgument(f"unknown filter {key!r}: use one of {', '.join(sorted(keys))}")
        if key == "type" and value not in ("builtin", "custom"):
            raise InvalidArgument(f"invalid filter type={value}: use builtin or custom")
        if key == "scope" and value not in SCOPES:
            raise InvalidArgument(f"invalid filter scope={value}: use local, global or swarm")
        if key == "dangling" and value not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid filter dangling={value}: use true or false")
        if key == "until" and not _until_ok(value):
            raise InvalidArgument(
                f"invalid filter until={value}: use a duration (10m, 24h) or a Unix time"
            )
        terms.setdefault(key, set()).add(value)
    return terms


def _until_ok(value: str) -> bool:
    return until_ns(value, 0) is not None


def until_ns(value: str, now_ns: int) -> int | None:
    """`until=` as a time in ns: a Unix time in seconds, or a duration before now."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if value and value[-1] in units:
            return now_ns - int(float(value[:-1]) * units[value[-1]] * 1e9)
        return int(float(value) * 1e9)
    except ValueError:
        return None


def _labels_match(labels: Mapping[str, str], v: str) -> bool:
    lkey, lsep, lval = v.partition("=")
    return lkey in labels and (not lsep or labels[lkey] == lval)


def matches(n: Network, terms: Mapping[str, set[str]], in_use: bool, now_ns: int = 0) -> bool:
    for key, values in terms.items():
        if key == "id" and not any(n.id.startswith(v) for v in values):
            return False
        if key == "name" and not any(v in n.name for v in values):
            return False
        if key == "driver" and n.driver not in values:
            return False
        if key == "type" and ("builtin" if n.builtin else "custom") not in values:
            return False
        if key == "scope" and "local" not in values:
            return False
        if key == "dangling" and not any((v in ("true", "1")) != in_use for v in values):
            return False
        if key == "label" and not all(_labels_match(n.labels, v) for v in values):
            return False
        if key == "label!" and any(_labels_match(n.labels, v) for v in values):
            return False
        if key == "until":
            limit = min(until_ns(v, now_ns) or 0 for v in values)
            if n.created_ns > limit:
                return False
    return True
