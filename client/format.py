"""How the CLI shows things: timestamps, durations, sizes, tables and `--format`.

Owns: the building blocks of docker's output: RFC 3339 timestamps with nanoseconds,
"Up 5 seconds"/"2 minutes ago" durations, "4.2MB" sizes, Go tabwriter tables, short ids,
`--format` handling ("json", "table ...", templates) and `logs -t` line prefixes. The
docker-shaped views of containers, images and events are in `pallet.client.views`.
Must not: talk to the daemon, read arguments, or write to stdout; callers print the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from pallet.client.template import go_json, parse
# The CLI's names for them (shared with the Docker API gateway).
from pallet.v1.docker.times import ZERO_TIME as ZERO_TIME
from pallet.v1.docker.times import TimestampLike as TimestampLike
from pallet.v1.docker.times import human_duration as human_duration
from pallet.v1.docker.times import is_unset as is_unset
from pallet.v1.docker.times import nano_text as rfc3339_nano
from pallet.v1.docker.times import seconds_since as seconds_since
from pallet.v1.docker.times import timestamp_text as timestamp_text


def ns_text(time_unix_nano: int) -> str:
    """Nanoseconds since the epoch as rfc3339_nano."""
    return rfc3339_nano(time_unix_nano // 1_000_000_000, time_unix_nano % 1_000_000_000)


def go_time_text(ts: TimestampLike) -> str:
    """Go's default time.Time String() in UTC, docker's `.CreatedAt`: 2026-11-27 18:31:16 +0000 UTC."""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(int(ts.seconds)))


_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _size(size: float, base: float, units: Sequence[str], precision: int) -> str:
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    # Go's %.*g, which Python's %g matches for values below 1000.
    return f"{size:.{precision}g}{units[i]}"


def human_size(size: float, precision: int = 3) -> str:
    """docker's units.HumanSizeWithPrecision (1000-based): 4.2MB, 1.23GB, 512B."""
    return _size(float(size), 1000.0, _DECIMAL_UNITS, precision)


def bytes_size(size: float) -> str:
    """docker's units.BytesSize (1024-based, 4 digits): 7.668GiB."""
    return _size(float(size), 1024.0, _BINARY_UNITS, 4)


# ---------------------------------------------------------------------------------------------
# Go tabwriter
# ---------------------------------------------------------------------------------------------


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Lay out tab-separated cells like Go's tabwriter (docker's minwidth 10, padding 3).

    A cell is text ending in a tab; what follows a line's last tab is not a column cell and
    is not padded. Column widths are computed per block of consecutive lines that have a
    cell in that column, exactly as text/tabwriter does.
    """
    lines = [line.split("\t") for line in text.split("\n")]
    widths: list[int] = []
    out: list[str] = []

    def write_lines(start: int, end: int) -> None:
        for line in lines[start:end]:
            parts: list[str] = []
            for j, cell in enumerate(line):
                if j < len(widths) and j < len(line) - 1:
                    parts.append(cell.ljust(widths[j]))
                else:
                    parts.append(cell)
            out.append("".join(parts))

    def format_block(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            format_block(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    format_block(0, len(lines))
    return "\n".join(out)


def table(rows: Iterable[Sequence[str]]) -> str:
    """Rows of cells as a tabwriter table, one line per row (no trailing newline)."""
    return tabwrite("\n".join("\t".join(row) for row in rows))


# ---------------------------------------------------------------------------------------------
# Ids and references
# ---------------------------------------------------------------------------------------------


def short_id(full_id: str) -> str:
    """The 12-hex-character id docker shows (no "sha256:")."""
    return full_id.removeprefix("sha256:")[:12]


def split_reference(reference: str) -> tuple[str, str]:
    """("repo", "tag") of "repo:tag" or "repo@digest"; the tag is "<none>" for a digest."""
    if "@" in reference:
        return reference.split("@", 1)[0], "<none>"
    slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > slash:
        return reference[:colon], reference[colon + 1 :]
    return reference, "latest"


def ellipsis(text: str, width: int) -> str:
    """docker's Ellipsis: cut to `width` characters, the last one "…"."""
    if len(text) <= width:
        return text
    return text[: width - 1] + "…"


# ---------------------------------------------------------------------------------------------
# Logs
# ---------------------------------------------------------------------------------------------


class TimestampPrefixer:
    """Inserts "<rfc3339_nano> " at the start of every line of a stream (`logs -t`).

    A chunk may end mid-line; the next chunk's bytes continue that line without a new
    prefix, so state is kept per stream.
    """

    def __init__(self, clock_text: Callable[[int], str] = ns_text) -> None:
        self._at_line_start: dict[int, bool] = {}
        self._clock_text = clock_text

    def feed(self, stream: int, time_unix_nano: int, data: bytes) -> bytes:
        if not data:
            return b""
        prefix = (self._clock_text(time_unix_nano) + " ").encode()
        at_start = self._at_line_start.get(stream, True)
        lines = data.split(b"\n")
        out = bytearray()
        for k, line in enumerate(lines):
            last = k == len(lines) - 1
            if last and not line:
                break  # data ended with a newline: the next byte starts a new line
            if at_start:
                out += prefix
            out += line
            if not last:
                out += b"\n"
                at_start = True
            else:
                at_start = False
        self._at_line_start[stream] = data.endswith(b"\n")
        return bytes(out)


# ---------------------------------------------------------------------------------------------
# --format
# ---------------------------------------------------------------------------------------------


def expand_escapes(fmt: str) -> str:
    """docker turns the two characters \\t and \\n in a --format into a tab and a newline."""
    return fmt.replace("\\t", "\t").replace("\\n", "\n")


def render_rows(fmt: str, rows: Sequence[Mapping[str, Any]], headers: Mapping[str, Any]) -> list[str]:
    """Lines for list verbs' `--format`: "json", "table TEMPLATE" (header + tabwriter), or a
    template run once per row. Parses before rendering, so a bad template fails even with no rows.
    """
    if fmt.strip() == "json":
        return [go_json(row) for row in rows]
    is_table = fmt.startswith("table")
    body = expand_escapes(fmt[len("table"):].lstrip(" ") if is_table else fmt)
    tmpl = parse(body)
    lines = [tmpl.render(row) for row in rows]
    if not is_table:
        return lines
    header = tmpl.render(dict(headers))
    return table_lines([header, *lines])


def json_indent(value: Any) -> str:
    """json.MarshalIndent(value, "", "    ") as docker prints `inspect` (HTML characters escaped)."""
    import json

    text = json.dumps(value, indent=4, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def table_lines(lines: Sequence[str]) -> list[str]:
    return tabwrite("\n".join(lines)).split("\n")
