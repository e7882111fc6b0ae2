"""Durations as Go writes and reads them (docker's API, Dockerfile flags, its messages).

Owns: `parse` (Go's time.ParseDuration: "1m30s", "500ms", "1.5h") and `text` (Go's
Duration.String: "0s", "500ms", "1m30s", "1h0m0s"), in nanoseconds. Must not: judge
whether a duration is acceptable where it is used (its caller does).
"""

from __future__ import annotations

import re

from pallet.v1.errors import InvalidArgument

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000

_UNITS = {
    "ns": 1, "us": 1000, "µs": 1000, "μs": 1000, "ms": NS_PER_MS, "s": NS_PER_S,
    "m": 60 * NS_PER_S, "h": 3600 * NS_PER_S,
}
_PART = re.compile(r"(\d*)(?:\.(\d*))?([a-zµμ]+)")


def parse(text: str, what: str) -> int:
    """Go's time.ParseDuration, in ns; InvalidArgument naming `what` when it is not one."""
    s = text.strip()
    sign = -1 if s.startswith("-") else 1
    body = s[1:] if s[:1] in "+-" else s
    if body == "0":
        return 0
    total = 0
    pos = 0
    while pos < len(body) or pos == 0:
        match = _PART.match(body, pos)
        if match is None or not (match[1] or match[2]) or match[3] not in _UNITS:
            raise InvalidArgument(
                f"invalid duration {text!r} for {what}: use a number with a unit "
                "(ns, us, ms, s, m, h), e.g. 30s, 500ms, 1m30s"
            )
        unit = _UNITS[match[3]]
        total += int(match[1] or "0") * unit
        if match[2]:
            total += int(match[2]) * unit // 10 ** len(match[2])
        pos = match.end()
    return sign * total


def text(ns: int) -> str:
    """Go's Duration.String: 0s, 1.5µs, 500ms, 1.5s, 1m30s, 1h0m0s."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < NS_PER_S:
        for size, unit in ((NS_PER_MS, "ms"), (1000, "µs"), (1, "ns")):
            if u >= size:
                return sign + _fraction(u, size) + unit
    hours, rest = divmod(u, 3600 * NS_PER_S)
    minutes, rest = divmod(rest, 60 * NS_PER_S)
    out = _fraction(rest, NS_PER_S) + "s"
    if hours or minutes:
        out = f"{minutes}m{out}"
    if hours:
        out = f"{hours}h{out}"
    return sign + out


def _fraction(value: int, size: int) -> str:
    whole, part = divmod(value, size)
    if not part:
        return str(whole)
    digits = len(str(size)) - 1
    return f"{whole}." + f"{part:0{digits}d}".rstrip("0")
