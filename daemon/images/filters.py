"""`images list` filters, docker style: `reference=`, `label=`, `dangling=`, `before=`, `since=`.

Owns: parsing `key=value` filter strings and deciding whether an image passes them (and
prune's label, label!, until). Must
not: query the store (`before`/`since` name images the caller has already resolved).

Values of one key are alternatives (any may match), except `label`, where every one must.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from pallet.v1.errors import InvalidArgument
from pallet.daemon.images.model import Image

KEYS = ("reference", "label", "dangling", "before", "since")


@dataclass(frozen=True, slots=True)
class ImageFilters:
    references: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    dangling: bool | None = None
    before: tuple[str, ...] = ()
    since: tuple[str, ...] = ()
    _patterns: tuple[re.Pattern[str], ...] = field(default=(), repr=False)


def parse_filters(filters: Sequence[str]) -> ImageFilters:
    values: dict[str, list[str]] = {key: [] for key in KEYS}
    for item in filters:
        key, eq, value = item.partition("=")
        if not eq or key not in values:
            raise InvalidArgument(
                f"invalid image filter {item!r}: use key=value with key one of {', '.join(KEYS)}"
            )
        values[key].append(value)
    dangling: bool | None = None
    for value in values["dangling"]:
        if value.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid filter 'dangling={value}': use true or false")
        wanted = value.lower() in ("true", "1")
        if dangling is not None and dangling != wanted:
            raise InvalidArgument("filters dangling=true and dangling=false exclude each other")
        dangling = wanted
    return ImageFilters(
        references=tuple(values["reference"]),
        labels=tuple(values["label"]),
        dangling=dangling,
        before=tuple(values["before"]),
        since=tuple(values["since"]),
        _patterns=tuple(_glob(pattern) for pattern in values["reference"]),
    )


def _glob(pattern: str) -> re.Pattern[str]:
    """Shell-style match where `*` and `?` stop at `/`, as Go's path.Match does."""
    out = []
    for char in pattern:
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(char))
    return re.compile("".join(out))


def _ref_matches(ref: str, patterns: Sequence[re.Pattern[str]]) -> bool:
    repository = ref.split("@", 1)[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    return any(p.fullmatch(ref) or p.fullmatch(repository) for p in patterns)


def _reference_matches(image: Image, patterns: Sequence[re.Pattern[str]]) -> bool:
    return any(_ref_matches(ref, patterns) for ref in (*image.repo_tags, *image.repo_digests))


def matching_names(image: Image, filters: ImageFilters) -> Image:
    """`image` with only the names the reference filters matched, as docker lists an
    image found by one of its names (no reference filter: every name)."""
    if not filters._patterns:
        return image
    return replace(
        image,
        repo_tags=tuple(t for t in image.repo_tags if _ref_matches(t, filters._patterns)),
        repo_digests=tuple(d for d in image.repo_digests if _ref_matches(d, filters._patterns)),
    )


def _label_matches(image: Image, wanted: str) -> bool:
    key, eq, value = wanted.partition("=")
    if key not in image.config.labels:
        return False
    return not eq or image.config.labels[key] == value


def matches(
    image: Image, filters: ImageFilters, before_ns: int | None = None, since_ns: int | None = None
) -> bool:
    """Whether `image` passes; `before_ns`/`since_ns` are the resolved images' creation times."""
    if filters.dangling is not None and (not image.repo_tags) != filters.dangling:
        return False
    if filters._patterns and not _reference_matches(image, filters._patterns):
        return False
    if not all(_label_matches(image, label) for label in filters.labels):
        return False
    if before_ns is not None and image.created_ns >= before_ns:
        return False
    if since_ns is not None and image.created_ns <= since_ns:
        return False
    return True


#: What `image prune --filter` takes (docker's).
PRUNE_KEYS = ("label", "label!", "until")


def _until_ns(value: str, now_ns: int) -> int | None:
    """`until=`: a Unix time in seconds, or a duration (10m, 24h) before now."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if value and value[-1] in units:
            return now_ns - int(float(value[:-1]) * units[value[-1]] * 1e9)
        return int(float(value) * 1e9)
    except ValueError:
        return None


def _has_label(labels: Mapping[str, str], term: str) -> bool:
    key, eq, value = term.partition("=")
    return key in labels and (not eq or labels[key] == value)


def prune_filter(filters: Sequence[str], now_ns: int) -> Callable[[Image], bool]:
    """Which images a prune with these filters may remove: every `label` held, no
    `label!`, created before every `until`."""
    labels: list[str] = []
    not_labels: list[str] = []
    limits: list[int] = []
    for item in filters:
        key, eq, value = item.partition("=")
        if not eq or key not in PRUNE_KEYS:
            raise InvalidArgument(
                f"invalid prune filter {item!r}: use key=value with key one of {', '.join(PRUNE_KEYS)}"
            )
        if key == "until":
            limit = _until_ns(value, now_ns)
            if limit is None:
                raise InvalidArgument(
                    f"invalid filter until={value}: use a duration (10m, 24h) or a Unix time"
                )
            limits.append(limit)
        else:
            (labels if key == "label" else not_labels).append(value)

    def select(image: Image) -> bool:
        labels_of = image.config.labels
        return (
            all(_has_label(labels_of, t) for t in labels)
            and not any(_has_label(labels_of, t) for t in not_labels)
            and all(image.created_ns < limit for limit in limits)
        )

    return select
