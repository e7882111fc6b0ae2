"""`volume ls --filter` and `volume prune --filter`, in docker's `key=value` form.

Owns: parsing and matching volume filters (name, label, label!, driver, dangling; prune:
label, label!). Values under one key are ORed, different keys ANDed, except labels, which
must all match. Must not: look anything up (the caller says whether a volume is in use).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pallet.daemon.volumes.model import Volume
from pallet.v1.errors import InvalidArgument

LIST_KEYS = frozenset({"name", "label", "label!", "driver", "dangling"})
PRUNE_KEYS = frozenset({"label", "label!"})


def parse(filters: Sequence[str], keys: frozenset[str] = LIST_KEYS) -> dict[str, set[str]]:
    terms: dict[str, set[str]] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"bad filter {item!r}: use key=value")
        if key not in keys:
            raise InvalidArgument(f"unknown filter {key!r}: use one of {', '.join(sorted(keys))}")
        if key == "dangling" and value not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid filter dangling={value}: use true or false")
        terms.setdefault(key, set()).add(value)
    return terms


def _label(labels: Mapping[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


def matches(v: Volume, terms: Mapping[str, set[str]], in_use: bool) -> bool:
    for key, values in terms.items():
        if key == "name" and not any(value in v.name for value in values):
            return False
        if key == "driver" and v.driver not in values:
            return False
        if key == "dangling" and not any((value in ("true", "1")) != in_use for value in values):
            return False
        if key == "label" and not all(_label(v.labels, value) for value in values):
            return False
        if key == "label!" and any(_label(v.labels, value) for value in values):
            return False
    return True
