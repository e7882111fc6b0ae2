"""Times and durations as Docker writes them in its JSON and its status texts.

Owns: RFC 3339 timestamps with all nine fractional digits (Docker's RFC3339NanoFixed, and
Go's zero time for an unset one) or to the second (a volume's CreatedAt), and Docker's
human durations ("Up 5 seconds", "About an hour"), read from protobuf Timestamps by
attribute. Shared by the CLI's output and the
Docker API gateway's, so both say the same.
"""

from __future__ import annotations

import time
from typing import Protocol

#: Go's zero time.Time, what dockerd sends for a time never set.
ZERO_TIME = "0001-01-01T00:00:00Z"


class TimestampLike(Protocol):
    """google.protobuf.Timestamp, read by attribute."""

    seconds: int
    nanos: int


def nano_text(seconds: int, nanos: int = 0) -> str:
    """UTC time with all nine fractional digits, e.g. 2026-11-27T18:31:16.123456789Z.

    Fixed width (docker's RFC3339NanoFixed) so that columns of times line up and every
    value carries nanoseconds; the zero time is Go's "0001-01-01T00:00:00Z".
    """
    if seconds == 0 and nanos == 0:
        return ZERO_TIME
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def timestamp_text(ts: TimestampLike | None) -> str:
    """A protobuf Timestamp as nano_text (unset -> the zero time)."""
    if ts is None:
        return ZERO_TIME
    return nano_text(int(ts.seconds), int(ts.nanos))


def rfc3339_nano(ts: TimestampLike) -> str:
    """A Timestamp with nine fractional digits (docker's RFC3339NanoFixed)."""
    return timestamp_text(ts)


def rfc3339_seconds(ts: TimestampLike) -> str:
    """A Timestamp to the second ("2026-12-03T13:40:00Z": a volume's CreatedAt)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts.seconds)))


def is_unset(ts: TimestampLike | None) -> bool:
    return ts is None or (int(ts.seconds) == 0 and int(ts.nanos) == 0)


def seconds_since(ts: TimestampLike, now: float) -> float:
    return now - (int(ts.seconds) + int(ts.nanos) / 1e9)


def human_duration(seconds: float) -> str:
    """docker's units.HumanDuration: "Less than a second", "5 seconds", "About an hour"..."""
    secs = int(seconds)
    if secs < 1:
        return "Less than a second"
    if secs == 1:
        return "1 second"
    if secs < 60:
        return f"{secs} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"
