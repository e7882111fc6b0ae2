"""Docker's times in JSON: protobuf Timestamps as the RFC 3339 texts dockerd sends."""

from __future__ import annotations

import time
from typing import Any

#: Go's zero time.Time, what dockerd sends for a time never set.
ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339_nano(ts: Any) -> str:
    """A Timestamp with nine fractional digits (docker's RFC3339NanoFixed)."""
    seconds, nanos = int(ts.seconds), int(ts.nanos)
    if seconds == 0 and nanos == 0:
        return ZERO_TIME
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def rfc3339_seconds(ts: Any) -> str:
    """A Timestamp to the second ("2026-12-03T13:40:00Z": a volume's CreatedAt)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts.seconds)))
