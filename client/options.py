"""Parsing the values of command-line options: env, env files, labels, times, filters.

Owns: docker's rules for `-e K=V` / `-e K`, `--env-file`, `-l K=V` / `-l K`, `-o K=V`,
`--add-host NAME:IP` / `NAME=IP`, `--since`
and `--until` (RFC 3339, Unix seconds, or Go durations meaning "that long ago"), `--tail`,
`-f key=value` filters, and the ranges numbers must fit (the API's int32/int64 fields, the
times from 1677 to 2262 that palletd's 64-bit nanoseconds hold), checked before any
request is built. Raises
InvalidArgument with a message naming the bad value.
Must not: import grpc or protobuf, or build requests (that is `pallet.client.requests`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

from pallet.v1.errors import InvalidArgument

__all__ = [
    "INT32_MAX",
    "INT64_MAX",
    "check_range",
    "env_list",
    "parse_extra_host",
    "parse_key_values",
    "parse_duration",
    "parse_env_file",
    "parse_labels",
    "parse_tail",
    "parse_time",
    "validate_filters",
]


#: The largest values of the API's int32 and int64 fields (timeouts; sizes, counts, seqs).
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
# The whole seconds palletd's times (int64 nanoseconds since 1970) hold: 1677-09-21 .. 2262-04-11.
_TIME_MIN = -(2**63) // 10**9 + 1
_TIME_MAX = (2**63 - 1) // 10**9 - 1


def check_range(value: int, what: str, low: int, high: int, unit: str = "") -> int:
    """`value` if low <= value <= high; else InvalidArgument naming `what` ("--time")."""
    if not low <= value <= high:
        raise InvalidArgument(f"invalid {what} value {value}: use {low} to {high}{unit}")
    return value


def _env_entry(entry: str, environ: Mapping[str, str], where: str) -> str | None:
    """One "K=V" or "K" entry; "K" alone takes the CLI's environment (dropped when unset)."""
    name, sep, _ = entry.partition("=")
    if not name:
        raise InvalidArgument(f"invalid environment variable {entry!r}{where}: the name is empty")
    if any(ch.isspace() for ch in name):
        raise InvalidArgument(f"variable {name!r}{where} contains whitespaces")
    if "\0" in entry:  # only a file can carry one: argv cannot
        raise InvalidArgument(f"variable {name!r}{where} contains a NUL byte")
    if sep:
        return entry
    if name in environ:
        return f"{name}={environ[name]}"
    return None


def parse_env_file(path: str, environ: Mapping[str, str]) -> list[str]:
    """docker's env file: "K=V" lines (value verbatim), "#" comments, blank lines, "K" alone."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise InvalidArgument(f"cannot read env file {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument(f"env file {path} is not valid UTF-8") from None
    text = text.removeprefix("\ufeff")
    out: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        entry = _env_entry(line, environ, f" (line {number} of {path})")
        if entry is not None:
            out.append(entry)
    return out


def env_list(env_files: Sequence[str], env: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """The container's extra environment: files first, then `-e` (so `-e` wins, as in docker)."""
    out: list[str] = []
    for path in env_files:
        out.extend(parse_env_file(path, environ))
    for item in env:
        entry = _env_entry(item, environ, "")
        if entry is not None:
            out.append(entry)
    return out


def parse_labels(labels: Iterable[str]) -> dict[str, str]:
    """`-l K=V` and `-l K` (empty value); later ones win."""
    out: dict[str, str] = {}
    for item in labels:
        key, _, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid label {item!r}: the key is empty")
        out[key] = value
    return out


def parse_key_values(items: Iterable[str], what: str) -> dict[str, str]:
    """Driver options `-o K=V` (`K` alone: empty value, as docker's map options); later ones win."""
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid {what} {item!r}: the key is empty")
        out[key] = value
    return out


def parse_extra_host(item: str) -> str:
    """`--add-host NAME:IP` or `NAME=IP` as the API's "NAME:IP" (docker's ValidateExtraHost).

    The name ends at the first "=" or else the first ":", so IPv6 addresses need no
    brackets (they may have them); "host-gateway" is the default network's gateway.
    """
    name, sep, address = item.partition("=")
    if not sep:
        name, sep, address = item.partition(":")
    if not sep or not name or ":" in name:
        raise InvalidArgument(f"bad format for add-host: {item!r} (expected NAME:IP)")
    if address != "host-gateway":
        if len(address) > 2 and address.startswith("[") and address.endswith("]"):
            address = address[1:-1]
        import ipaddress  # here: run and create only pay for it with --add-host

        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise InvalidArgument(f"invalid IP address in add-host: {address!r}") from None
    return f"{name}:{address}"


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration, in seconds: "10m", "1h30m", "5s", "1.5h", "300ms"."""
    body = text
    sign = 1.0
    if body[:1] in "+-" and body:
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    if body == "0":
        return 0.0
    if not body:
        raise InvalidArgument(f"invalid duration {text!r}")
    total = 0.0
    pos = 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None:
            raise InvalidArgument(f"invalid duration {text!r}: expected a number and a unit (ns, us, ms, s, m, h)")
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    return sign * total


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|z|[+-]\d{2}:?\d{2})?)?$"
)
_UNIX = re.compile(r"(\d+)(?:\.(\d{1,9}))?$")


def parse_time(text: str, now: float) -> tuple[int, int]:
    """A `--since`/`--until` value as (seconds, nanos) since the epoch.

    Accepts RFC 3339 (a missing zone means UTC; a date alone is midnight UTC), Unix seconds
    with up to nine fractional digits, or a Go duration meaning "that long before now".
    """
    value = text.strip()
    if not value:
        raise InvalidArgument("empty time value")
    unix = _UNIX.match(value)
    if unix is not None:
        return _in_time_range(int(unix.group(1)), text), int((unix.group(2) or "0").ljust(9, "0"))
    match = _RFC3339.match(value)
    if match is not None:
        import calendar  # here, not at the top: run/create never need its ~2 ms of imports

        year, month, day, hour, minute, second, frac, zone = match.groups()
        try:
            seconds = calendar.timegm(
                (int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), 0, 0, 0)
            )
        except (ValueError, OverflowError):
            raise InvalidArgument(f"invalid time {text!r}") from None
        if not (1 <= int(month) <= 12 and 1 <= int(day) <= 31 and int(hour or 0) < 24 and int(minute or 0) < 60
                and int(second or 0) < 61):
            raise InvalidArgument(f"invalid time {text!r}: a field is out of range")
        if zone and zone not in ("Z", "z"):
            offset_sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            offset = int(digits[:2]) * 3600 + int(digits[2:]) * 60
            seconds -= offset_sign * offset
        return _in_time_range(seconds, text), int((frac or "0").ljust(9, "0"))
    try:
        ago = parse_duration(value)
    except InvalidArgument:
        raise InvalidArgument(
            f"invalid time {text!r}: use RFC 3339 (2026-01-02T15:04:05Z), Unix seconds, "
            "or a duration such as 10m or 1h30m"
        ) from None
    moment = now - ago
    if not math.isfinite(moment):  # a duration of 1e400 hours
        raise _out_of_range(text)
    whole = _in_time_range(int(moment // 1), text)
    return whole, int(round((moment - whole) * 1e9)) % 1_000_000_000


def _in_time_range(seconds: int, text: str) -> int:
    if not _TIME_MIN <= seconds <= _TIME_MAX:
        raise _out_of_range(text)
    return seconds


def _out_of_range(text: str) -> InvalidArgument:
    return InvalidArgument(f"invalid time {text!r}: out of range, use a time from 1677-09-22 to 2262-04-10")


def parse_tail(text: str) -> int:
    """`--tail N` or `--tail all` (negative: everything)."""
    if text == "all":
        return -1
    try:
        value = int(text)
    except ValueError:
        raise InvalidArgument(f"invalid --tail value {text!r}: expected a number or \"all\"") from None
    if value > INT64_MAX:
        raise InvalidArgument(f"invalid --tail value {text!r}: use at most {INT64_MAX} lines, or \"all\"")
    return value if value >= 0 else -1


def validate_filters(filters: Iterable[str]) -> list[str]:
    """Docker's "key=value" filters; the daemon judges the keys (so new ones need no new CLI)."""
    out: list[str] = []
    for item in filters:
        key, sep, _ = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"bad format of filter {item!r} (expected name=value)")
        out.append(item)
    return out


def parse_restart(text: str) -> tuple[str, int]:
    """`--restart NAME[:MAX]` -> (name, max), read as docker's CLI reads it: only the form
    is checked here; palletd judges the name and the count (negative, or with a policy
    other than on-failure)."""
    name, sep, count = text.partition(":")
    if sep and not name:
        raise InvalidArgument("invalid restart policy format: no policy provided before colon")
    if not count:
        return name, 0
    try:
        value = int(count)
    except ValueError:
        raise InvalidArgument(
            "invalid restart policy format: maximum retry count must be an integer"
        ) from None
    return name, check_range(value, "--restart maximum retry count", -INT32_MAX - 1, INT32_MAX)
