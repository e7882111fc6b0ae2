"""`ps --filter` for containers, in docker's `key=value` form.

Owns: parsing and matching container filters (id, name, label, status, ancestor, exited,
health; and prune's label, label!, until).
Values under one key are ORed, different keys ANDed. Must not: look anything up; the
caller resolves `ancestor` references to image ids first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pallet.daemon.containers.model import (
    HEALTH_HEALTHY,
    HEALTH_STARTING,
    HEALTH_UNHEALTHY,
    Container,
    Status,
)
from pallet.daemon.networks.filters import until_ns
from pallet.v1.errors import InvalidArgument

KEYS = frozenset({"id", "name", "label", "status", "ancestor", "exited", "health"})
#: What `container prune --filter` takes (docker's).
PRUNE_KEYS = frozenset({"label", "label!", "until"})
STATUSES = frozenset(s.value for s in Status)
#: `health=`: docker's health statuses, and "none" for a container without State.Health.
HEALTH_NONE = "none"
HEALTH_VALUES = frozenset({HEALTH_STARTING, HEALTH_HEALTHY, HEALTH_UNHEALTHY, HEALTH_NONE})


def parse(filters: Sequence[str], keys: frozenset[str] = KEYS) -> dict[str, set[str]]:
    terms: dict[str, set[str]] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"bad filter {item!r}: use key=value")
        if key not in keys:
            raise InvalidArgument(
                f"unknown filter {key!r}: use one of {', '.join(sorted(keys))}"
            )
        if key == "until" and until_ns(value, 0) is None:
            raise InvalidArgument(
                f"invalid filter until={value}: use a duration (10m, 24h) or a Unix time"
            )
        if key == "status" and value not in STATUSES:
            raise InvalidArgument(
                f"invalid filter status={value}: use one of {', '.join(sorted(STATUSES))}"
            )
        if key == "health" and value not in HEALTH_VALUES:
            raise InvalidArgument(
                f"invalid filter health={value}: use one of {', '.join(sorted(HEALTH_VALUES))}"
            )
        if key == "exited" and not value.lstrip("-").isdigit():
            raise InvalidArgument(f"invalid filter exited={value}: use an exit code number")
        terms.setdefault(key, set()).add(value)
    return terms


def matches(c: Container, terms: Mapping[str, set[str]], ancestors: set[str]) -> bool:
    """`ancestors` holds the image ids the `ancestor` values resolved to."""
    for key, values in terms.items():
        if key == "id" and not any(c.id.startswith(v) for v in values):
            return False
        if key == "name" and not any(v.lstrip("/") in c.name for v in values):
            return False
        if key == "status" and c.state.status.value not in values:
            return False
        if key == "health":
            health = c.state.health.status if c.state.health is not None else HEALTH_NONE
            if health not in values:
                return False
        if key == "exited" and (
            c.state.status is not Status.EXITED
            or str(c.state.exit_code) not in values
        ):
            return False
        if key == "ancestor" and not (
            c.image_id in ancestors or c.config.image in values
        ):
            return False
        if key == "label":
            for v in values:
                lkey, lsep, lval = v.partition("=")
                if lkey not in c.config.labels or (lsep and c.config.labels[lkey] != lval):
                    return False
    return True


def _has_label(labels: Mapping[str, str], v: str) -> bool:
    lkey, lsep, lval = v.partition("=")
    return lkey in labels and (not lsep or labels[lkey] == lval)


def prune_matches(c: Container, terms: Mapping[str, set[str]], now_ns: int) -> bool:
    """`container prune --filter`: label (all must hold), label! (none may), until
    (created before it)."""
    labels = c.config.labels
    if not all(_has_label(labels, v) for v in terms.get("label", ())):
        return False
    if any(_has_label(labels, v) for v in terms.get("label!", ())):
        return False
    untils = terms.get("until")
    if untils and c.created_ns > min(until_ns(v, now_ns) or 0 for v in untils):
        return False
    return True
