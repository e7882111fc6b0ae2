"""Docker-shaped views of pallet objects: list rows, tables, event lines.

Owns: turning pallet.v1 Container, Image and Event messages (read by attribute only) into
what a docker user expects: image `inspect` JSON, `ps`/`images` rows with their template
fields (`.ID`, `.Names`, `.Label "k"`...) and default tables, and `events` lines. A
container's inspect JSON and status texts are `pallet.v1.docker.containers`' (the Docker
API gateway answers with the same).
Must not: talk to the daemon or print; generic pieces (times, sizes, tables) are `format`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pallet.client.format import (
    ellipsis,
    go_time_text,
    human_duration,
    human_size,
    is_unset,
    seconds_since,
    short_id,
    split_reference,
    table,
    timestamp_text,
)
from pallet.client import views_mounts
from pallet.client.template import go_quote
from pallet.v1.docker import images as docker_images
from pallet.client.views_networks import ps_networks, ps_ports
# The CLI's names for them (shared with the Docker API gateway).
from pallet.v1.docker.containers import STATUS_NAMES as STATUS_NAMES
from pallet.v1.docker.containers import health_config as health_config
from pallet.v1.docker.containers import health_text as health_text
from pallet.v1.docker.containers import host_config_security as host_config_security
from pallet.v1.docker.containers import inspect_container as inspect_container
from pallet.v1.docker.containers import status_name as status_name
from pallet.v1.docker.containers import list_or_none as _list_or_none
from pallet.v1.docker.containers import status_text as container_status

# ---------------------------------------------------------------------------------------------
# Containers
# ---------------------------------------------------------------------------------------------


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
        "Ports": ps_ports(c),
        "State": status_name(c.state.status),
        "Status": container_status(c, now),
        "Size": "",
        "Names": c.name,
        "Labels": labels_text(labels),
        "Label": lambda key: labels.get(key, ""),
        "Mounts": views_mounts.ps_mounts(c, trunc),
        "Networks": ps_networks(c),
        "LocalVolumes": views_mounts.local_volumes(c),
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

def ps_table(containers: Iterable[Any], now: float, trunc: bool = True) -> str:
    """The default `ps` table."""
    rows = [["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]]
    for c in containers:
        f = container_fields(c, now, trunc)
        rows.append([f["ID"], f["Image"], f["Command"], f["RunningFor"], f["Status"], f["Ports"], f["Names"]])
    return table(rows)


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------


def inspect_image(image: Any) -> dict[str, Any]:
    """An image as docker's `image inspect` JSON (the Docker API gateway's shape)."""
    return docker_images.inspect_image(image)


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


