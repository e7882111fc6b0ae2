"""`ps --filter` for containers, in docker's `key=value` form.

Owns: parsing and matching container filters (id, name, label, status, ancestor, exited,
health, before, since, network, volume, publish, expose, is-task; and prune's label,
label!, until).
Values under one key are ORed, different keys ANDed. Must not: look anything up; the
caller resolves `ancestor` references to image ids, `before`/`since` to a creation time
(`Window`) and gives each container's networks and ports (`Wiring`) first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pallet.daemon.containers.model import (
    HEALTH_HEALTHY,
    HEALTH_STARTING,
    HEALTH_UNHEALTHY,
    Container,
    Status,
)
from pallet.daemon.networks.filters import until_ns
from pallet.v1.errors import InvalidArgument

KEYS = frozenset({
    "id", "name", "label", "status", "ancestor", "exited", "health", "before", "since",
    "network", "volume", "publish", "expose", "is-task",
})
#: The keys whose matching needs the container's `Wiring`.
WIRING_KEYS = frozenset({"network", "publish", "expose"})
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
        if key in ("publish", "expose"):
            port_keys(key, value)
        if key == "is-task" and value not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid filter is-task={value}: use true or false")
        terms.setdefault(key, set()).add(value)
    return terms


def port_keys(key: str, value: str) -> set[str]:
    """A publish/expose filter's ports ("80", "80/udp", "8000-8010/tcp") as "80/tcp" keys."""
    ports, _, proto = value.partition("/")
    proto = proto.lower() or "tcp"
    first, sep, last = ports.partition("-")
    if (
        not first.isdigit() or (sep and not last.isdigit()) or proto not in ("tcp", "udp", "sctp")
        or not 0 < int(first) <= int(last or first) <= 65535
    ):
        raise InvalidArgument(
            f"invalid filter {key}={value}: use PORT[/PROTO] or START-END[/PROTO], "
            "e.g. 80, 53/udp, 8000-8010/tcp"
        )
    return {f"{port}/{proto}" for port in range(int(first), int(last or first) + 1)}


@dataclass(frozen=True, slots=True)
class Window:
    """`before`/`since` resolved: only containers created before or after these times."""

    before_ns: int | None = None
    since_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Wiring:
    """What `network`, `publish` and `expose` match: the names and ids of the container's
    networks (its network mode too), the host ports it has bound now ("8080/tcp"), and
    the container ports it exposes or publishes ("80/tcp")."""

    networks: frozenset[str] = frozenset()
    published: frozenset[str] = frozenset()
    exposed: frozenset[str] = frozenset()


def _wired(terms: Mapping[str, set[str]], wiring: Wiring) -> bool:
    networks = terms.get("network")
    if networks and not any(
        v in wiring.networks or (len(v) >= 12 and any(n.startswith(v) for n in wiring.networks))
        for v in networks
    ):
        return False
    # docker's: a container matches publish or expose when any of its ports does.
    ports = terms.get("publish", set()) | terms.get("expose", set())
    if ports:
        published = set().union(*(port_keys("publish", v) for v in terms.get("publish", ())))
        exposed = set().union(*(port_keys("expose", v) for v in terms.get("expose", ())))
        if not (published & wiring.published or exposed & wiring.exposed):
            return False
    return True


def matches_all(
    c: Container,
    terms: Mapping[str, set[str]],
    ancestors: set[str],
    window: Window = Window(),
    wiring: Wiring | None = None,
) -> bool:
    """Every filter of `terms`; `wiring` is needed when `terms` has a WIRING_KEYS key."""
    if not matches(c, terms, ancestors):
        return False
    if window.before_ns is not None and c.created_ns >= window.before_ns:
        return False
    if window.since_ns is not None and c.created_ns <= window.since_ns:
        return False
    if any(v in ("true", "1") for v in terms.get("is-task", ())):
        return False  # no swarm: no container is a task
    volumes = terms.get("volume")
    if volumes and not any(
        m.target in volumes or (m.source and m.source in volumes) for m in c.host_config.mounts
    ):
        return False
    if wiring is not None and not _wired(terms, wiring):
        return False
    return True


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
