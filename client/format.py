"""How the CLI shows things: docker-shaped JSON, tables, durations, sizes and timestamps.

Owns: turning pallet.v1 messages (read by attribute only) into the text and JSON a docker
user expects: `inspect` documents, `ps`/`images` rows and tables (Go tabwriter layout),
"Up 5 seconds"/"2 minutes ago" durations, "4.2MB" sizes, RFC 3339 timestamps with
nanoseconds, event lines and log timestamp prefixes.
Must not: talk to the daemon, read arguments, or write to stdout; callers print the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from pallet.client.template import go_json, go_quote, parse

ZERO_TIME = "0001-01-01T00:00:00Z"

#: ContainerStatus enum numbers (containers.proto) to docker's lowercase state names.
STATUS_NAMES: dict[int, str] = {
    1: "created",
    2: "running",
    3: "paused",
    4: "restarting",
    5: "removing",
    6: "exited",
    7: "dead",
}


class TimestampLike(Protocol):
    """google.protobuf.Timestamp, read by attribute."""

    seconds: int
    nanos: int


# ---------------------------------------------------------------------------------------------
# Times, durations, sizes
# ---------------------------------------------------------------------------------------------


def rfc3339_nano(seconds: int, nanos: int = 0) -> str:
    """UTC time with all nine fractional digits, e.g. 2026-11-27T18:31:16.123456789Z.

    Fixed width (docker's RFC3339NanoFixed) so that columns of times line up and every
    value carries nanoseconds; the zero time is Go's "0001-01-01T00:00:00Z".
    """
    if seconds == 0 and nanos == 0:
        return ZERO_TIME
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def timestamp_text(ts: TimestampLike | None) -> str:
    """A protobuf Timestamp as rfc3339_nano (unset -> the zero time)."""
    if ts is None:
        return ZERO_TIME
    return rfc3339_nano(int(ts.seconds), int(ts.nanos))


def ns_text(time_unix_nano: int) -> str:
    """Nanoseconds since the epoch as rfc3339_nano."""
    return rfc3339_nano(time_unix_nano // 1_000_000_000, time_unix_nano % 1_000_000_000)


def go_time_text(ts: TimestampLike) -> str:
    """Go's default time.Time String() in UTC, docker's `.CreatedAt`: 2026-11-27 18:31:16 +0000 UTC."""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(int(ts.seconds)))


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
# Containers
# ---------------------------------------------------------------------------------------------


def status_name(status: int) -> str:
    return STATUS_NAMES.get(int(status), "unknown")


def container_status(c: Any, now: float) -> str:
    """The STATUS column: "Up 5 seconds", "Exited (0) 3 seconds ago", "Created"..."""
    state = c.state
    name = status_name(state.status)
    if name == "created":
        return "Created"
    if name in ("running", "paused"):
        up = "Up " + human_duration(seconds_since(state.started_at, now))
        return up + " (Paused)" if name == "paused" else up
    if name == "restarting":
        return f"Restarting ({state.exit_code}) {human_duration(seconds_since(state.finished_at, now))} ago"
    if name == "removing":
        return "Removal In Progress"
    if name == "dead":
        return "Dead"
    if name == "exited":
        if is_unset(state.finished_at):
            return f"Exited ({state.exit_code})"
        return f"Exited ({state.exit_code}) {human_duration(seconds_since(state.finished_at, now))} ago"
    return name.capitalize()


def container_command(c: Any, trunc: bool) -> str:
    """The COMMAND column: path and args, cut to 20 characters, Go-quoted."""
    command = " ".join([c.path, *c.args]) if c.path else " ".join(c.args)
    if trunc:
        command = ellipsis(command, 20)
    return go_quote(command)


def labels_text(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def container_fields(c: Any, now: float, trunc: bool) -> dict[str, Any]:
    """Docker's ps template fields for one container (`.ID`, `.Names`, `.Label "k"`...)."""
    labels = dict(c.config.labels)
    image = c.image or c.image_id
    if trunc and image.startswith("sha256:"):
        image = short_id(image)
    return {
        "ID": short_id(c.id) if trunc else c.id,
        "Image": image,
        "Command": container_command(c, trunc),
        "CreatedAt": go_time_text(c.created),
        "RunningFor": human_duration(seconds_since(c.created, now)) + " ago",
        "Ports": "",
        "State": status_name(c.state.status),
        "Status": container_status(c, now),
        "Size": "",
        "Names": c.name,
        "Labels": labels_text(labels),
        "Label": lambda key: labels.get(key, ""),
        "Mounts": "",
        "Networks": "",
        "LocalVolumes": "0",
    }


#: Header cells for `--format "table ..."`, like docker's.
CONTAINER_HEADERS: dict[str, Any] = {
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Size": "SIZE",
    "Names": "NAMES",
    "Labels": "LABELS",
    "Label": lambda key: "LABEL",
    "Mounts": "MOUNTS",
    "Networks": "NETWORKS",
    "LocalVolumes": "LOCAL VOLUMES",
}

PS_DEFAULT_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"


def ps_table(containers: Iterable[Any], now: float, trunc: bool = True) -> str:
    """The default `ps` table."""
    rows = [["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]]
    for c in containers:
        f = container_fields(c, now, trunc)
        rows.append([f["ID"], f["Image"], f["Command"], f["RunningFor"], f["Status"], f["Ports"], f["Names"]])
    return table(rows)


def _list_or_none(values: Iterable[str]) -> list[str] | None:
    items = list(values)
    return items or None


def inspect_container(c: Any) -> dict[str, Any]:
    """A container as docker's `inspect` JSON (the fields pallet has, in docker's order)."""
    state = c.state
    cfg = c.config
    status = status_name(state.status)
    return {
        "Id": c.id,
        "Created": timestamp_text(c.created),
        "Path": c.path,
        "Args": list(c.args),
        "State": {
            "Status": status,
            "Running": status in ("running", "paused"),
            "Paused": status == "paused",
            "Restarting": status == "restarting",
            "OOMKilled": bool(state.oom_killed),
            "Dead": status == "dead",
            "Pid": int(state.pid),
            "ExitCode": int(state.exit_code),
            "Error": state.error,
            "StartedAt": timestamp_text(state.started_at),
            "FinishedAt": timestamp_text(state.finished_at),
        },
        "Image": c.image_id,
        "LogPath": c.log_path,
        "Name": "/" + c.name,
        "RestartCount": int(c.restart_count),
        "Driver": "overlay",
        "Platform": "linux",
        "HostConfig": {"AutoRemove": bool(cfg.auto_remove)},
        "GraphDriver": {
            "Data": {"LowerDir": ":".join(c.lower_dirs), "UpperDir": c.upper_dir},
            "Name": "overlay",
        },
        "Config": {
            "Hostname": cfg.hostname,
            "User": cfg.user,
            "OpenStdin": bool(cfg.open_stdin),
            "Env": list(cfg.env),
            "Cmd": _list_or_none(cfg.cmd),
            "Image": c.image or cfg.image,  # the reference as given, like docker
            "WorkingDir": cfg.working_dir,
            "Entrypoint": _list_or_none(cfg.entrypoint),
            "Labels": dict(sorted(cfg.labels.items())),
            "StopSignal": cfg.stop_signal,
            "StopTimeout": int(cfg.stop_timeout) if cfg.HasField("stop_timeout") else None,
        },
    }


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------


def _set_or_none(values: Iterable[str]) -> dict[str, dict[str, Any]] | None:
    items: dict[str, dict[str, Any]] = {v: {} for v in values}
    return items or None


def inspect_image(image: Any) -> dict[str, Any]:
    """An image as docker's `image inspect` JSON."""
    cfg = image.config
    return {
        "Id": image.id,
        "RepoTags": list(image.repo_tags),
        "RepoDigests": list(image.repo_digests),
        "Parent": "",
        "Comment": image.comment,
        "Created": timestamp_text(image.created),
        "Author": image.author,
        "Config": {
            "User": cfg.user,
            "ExposedPorts": _set_or_none(cfg.exposed_ports),
            "Env": list(cfg.env),
            "Cmd": _list_or_none(cfg.cmd),
            "Volumes": _set_or_none(cfg.volumes),
            "WorkingDir": cfg.working_dir,
            "Entrypoint": _list_or_none(cfg.entrypoint),
            "Labels": dict(sorted(cfg.labels.items())),
            "StopSignal": cfg.stop_signal,
        },
        "Architecture": image.architecture,
        "Os": image.os,
        "Size": int(image.size),
        "RootFS": {"Type": "layers", "Layers": list(image.layers)},
    }


def image_fields(image: Any, reference: str | None, now: float, trunc: bool) -> dict[str, Any]:
    """Docker's `images` template fields for one (image, reference) row."""
    if reference is None:
        repo, tag = "<none>", "<none>"
    else:
        repo, tag = split_reference(reference)
    digest = "<none>"
    for rd in image.repo_digests:
        if rd.split("@", 1)[0] == repo or reference is None:
            digest = rd.split("@", 1)[1]
            break
    return {
        "ID": short_id(image.id) if trunc else image.id,
        "Repository": repo,
        "Tag": tag,
        "Digest": digest,
        "CreatedSince": human_duration(seconds_since(image.created, now)) + " ago",
        "CreatedAt": go_time_text(image.created),
        "Size": human_size(image.size),
        "Containers": "N/A",
    }


IMAGE_HEADERS: dict[str, Any] = {
    "ID": "IMAGE ID",
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
    "Containers": "CONTAINERS",
}

IMAGES_DEFAULT_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"


def image_rows(images: Iterable[Any], now: float, trunc: bool = True) -> list[dict[str, Any]]:
    """One row per reference of each image; an untagged image is one `<none>` row."""
    rows: list[dict[str, Any]] = []
    for image in images:
        refs: list[str | None] = list(image.repo_tags)
        if not refs:
            refs = [rd for rd in image.repo_digests] or [None]
        for ref in refs:
            rows.append(image_fields(image, ref, now, trunc))
    return rows


def images_table(images: Iterable[Any], now: float, trunc: bool = True) -> str:
    """The default `images` table."""
    rows = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]]
    for f in image_rows(images, now, trunc):
        rows.append([f["Repository"], f["Tag"], f["ID"], f["CreatedSince"], f["Size"]])
    return table(rows)


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------


def event_line(event: Any, with_seq: bool = False) -> str:
    """`2026-11-27T18:31:16.123456789Z container create <id> (image=busybox, name=web)`."""
    text = f"{timestamp_text(event.time)} {event.type} {event.action} {event.actor_id}"
    attrs = sorted(event.attributes.items())
    if attrs:
        text += " (" + ", ".join(f"{k}={v}" for k, v in attrs) + ")"
    if with_seq:
        text = f"[{event.seq}] {text}"
    return text


def event_fields(event: Any) -> dict[str, Any]:
    """Docker's events JSON shape (what `events --format` templates see), plus `Seq`."""
    attrs = dict(sorted(event.attributes.items()))
    time_ns = int(event.time.seconds) * 1_000_000_000 + int(event.time.nanos)
    return {
        "status": event.action,
        "id": event.actor_id,
        "from": attrs.get("image", ""),
        "Type": event.type,
        "Action": event.action,
        "Actor": {"ID": event.actor_id, "Attributes": attrs},
        "scope": "local",
        "time": int(event.time.seconds),
        "timeNano": time_ns,
        "Seq": int(event.seq),
    }


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


def table_lines(lines: Sequence[str]) -> list[str]:
    return tabwrite("\n".join(lines)).split("\n")
