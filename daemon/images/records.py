"""The image store's tables and queries.

Owns: the `images`, `image_layers` and `image_refs` tables, and every SQL statement the
image manager runs (each function takes the connection on the database thread). Must not:
touch blobs or layer directories, or publish events.

A layer or blob is in use exactly when some row names it; there is no reference count to
drift. References are stored normalised (`docker.io/library/busybox:latest`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from pallet.daemon.images import oci
from pallet.daemon.images.model import Image
from pallet.daemon.images.oci import ParsedConfig
from pallet.daemon.images.reference import Reference, familiar

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS images (
        id TEXT PRIMARY KEY,
        config_digest TEXT NOT NULL,
        manifest_digest TEXT NOT NULL DEFAULT '',
        created_ns INTEGER NOT NULL,
        added_ns INTEGER NOT NULL,
        architecture TEXT NOT NULL DEFAULT '',
        os TEXT NOT NULL DEFAULT 'linux',
        author TEXT NOT NULL DEFAULT '',
        comment TEXT NOT NULL DEFAULT '',
        runtime_config TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS image_layers (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        diff_id TEXT NOT NULL,
        blob_digest TEXT NOT NULL,
        media_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY (image_id, position)
    )""",
    "CREATE INDEX IF NOT EXISTS image_layers_by_diff_id ON image_layers(diff_id)",
    "CREATE INDEX IF NOT EXISTS image_layers_by_blob ON image_layers(blob_digest)",
    """CREATE TABLE IF NOT EXISTS image_refs (
        ref TEXT PRIMARY KEY,
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('tag', 'digest')),
        added_ns INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS image_refs_by_image ON image_refs(image_id)",
]


@dataclass(frozen=True, slots=True)
class StagedLayer:
    """A layer whose blob and directory are in place (under a lease)."""

    diff_id: str
    blob_digest: str
    media_type: str
    size: int


@dataclass(frozen=True, slots=True)
class StagedImage:
    """An image whose blobs and layers are written, waiting for its records."""

    id: str
    config_digest: str
    manifest_digest: str
    parsed: ParsedConfig
    layers: tuple[StagedLayer, ...]
    references: tuple[Reference, ...] = ()


def _ref_kind(ref: Reference) -> str:
    return "digest" if ref.digest else "tag"


def insert_image(conn: sqlite3.Connection, staged: StagedImage, now_ns: int) -> bool:
    """Record an image and point its references at it; False if it existed already."""
    exists = conn.execute("SELECT 1 FROM images WHERE id = ?", (staged.id,)).fetchone()
    if not exists:
        parsed = staged.parsed
        conn.execute(
            "INSERT INTO images (id, config_digest, manifest_digest, created_ns, added_ns,"
            " architecture, os, author, comment, runtime_config)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                staged.id,
                staged.config_digest,
                staged.manifest_digest,
                parsed.created_ns,
                now_ns,
                parsed.architecture,
                parsed.os,
                parsed.author,
                parsed.comment,
                json.dumps(oci.runtime_config_to_json(parsed.config)),
            ),
        )
        conn.executemany(
            "INSERT INTO image_layers (image_id, position, diff_id, blob_digest, media_type, size)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (staged.id, position, layer.diff_id, layer.blob_digest, layer.media_type, layer.size)
                for position, layer in enumerate(staged.layers)
            ],
        )
    for ref in staged.references:
        set_ref(conn, ref, staged.id, now_ns)
    return not exists


def set_ref(conn: sqlite3.Connection, ref: Reference, image_id: str, now_ns: int) -> str | None:
    """Point `ref` at `image_id` (moving it if it named another image); the old image id."""
    row = conn.execute("SELECT image_id FROM image_refs WHERE ref = ?", (str(ref),)).fetchone()
    if row is not None and row["image_id"] == image_id:
        return image_id
    conn.execute(
        "INSERT OR REPLACE INTO image_refs (ref, image_id, kind, added_ns) VALUES (?, ?, ?, ?)",
        (str(ref), image_id, _ref_kind(ref), now_ns),
    )
    return None if row is None else str(row["image_id"])


def image_id_by_ref(conn: sqlite3.Connection, ref: Reference) -> str | None:
    row = conn.execute("SELECT image_id FROM image_refs WHERE ref = ?", (str(ref),)).fetchone()
    if row is not None:
        return str(row["image_id"])
    if ref.digest and not ref.tag:
        # `name@digest` also names the image that came with that manifest, if it is
        # known under that repository.
        row = conn.execute(
            "SELECT i.id FROM images i JOIN image_refs r ON r.image_id = i.id"
            " WHERE i.manifest_digest = ?1"
            " AND substr(r.ref, 1, length(?2) + 1) IN (?2 || ':', ?2 || '@')",
            (ref.digest, ref.name),
        ).fetchone()
        if row is not None:
            return str(row["id"])
    return None


def image_ids_by_prefix(conn: sqlite3.Connection, hex_prefix: str) -> list[str]:
    rows = conn.execute(
        "SELECT id FROM images WHERE substr(id, 8, ?) = ? ORDER BY id",
        (len(hex_prefix), hex_prefix),
    ).fetchall()
    return [str(row["id"]) for row in rows]


def refs_of(conn: sqlite3.Connection, image_id: str) -> list[str]:
    rows = conn.execute(
        "SELECT ref FROM image_refs WHERE image_id = ? ORDER BY added_ns, ref", (image_id,)
    ).fetchall()
    return [str(row["ref"]) for row in rows]


def delete_ref(conn: sqlite3.Connection, ref: str) -> None:
    conn.execute("DELETE FROM image_refs WHERE ref = ?", (ref,))


def delete_image(conn: sqlite3.Connection, image_id: str) -> tuple[set[str], set[str]]:
    """Delete an image's records; returns the layers and blobs it used (to collect)."""
    layers: set[str] = set()
    blobs: set[str] = set()
    row = conn.execute(
        "SELECT config_digest, manifest_digest FROM images WHERE id = ?", (image_id,)
    ).fetchone()
    if row is None:
        return layers, blobs
    blobs.update(d for d in (row["config_digest"], row["manifest_digest"]) if d)
    for layer in conn.execute(
        "SELECT diff_id, blob_digest FROM image_layers WHERE image_id = ?", (image_id,)
    ):
        layers.add(str(layer["diff_id"]))
        blobs.add(str(layer["blob_digest"]))
    conn.execute("DELETE FROM images WHERE id = ?", (image_id,))  # cascades
    return layers, blobs


def unused(
    conn: sqlite3.Connection, layers: Iterable[str], blobs: Iterable[str]
) -> tuple[list[str], list[str]]:
    """Which of these layers and blobs no image record names."""
    free_layers = [
        diff_id
        for diff_id in layers
        if conn.execute("SELECT 1 FROM image_layers WHERE diff_id = ? LIMIT 1", (diff_id,)).fetchone()
        is None
    ]
    free_blobs = [
        digest
        for digest in blobs
        if conn.execute(
            "SELECT 1 FROM images WHERE config_digest = ?1 OR manifest_digest = ?1"
            " UNION ALL SELECT 1 FROM image_layers WHERE blob_digest = ?1 LIMIT 1",
            (digest,),
        ).fetchone()
        is None
    ]
    return free_layers, free_blobs


def _image_from_row(conn: sqlite3.Connection, row: sqlite3.Row) -> Image:
    image_id = str(row["id"])
    layer_rows = conn.execute(
        "SELECT diff_id, size FROM image_layers WHERE image_id = ? ORDER BY position", (image_id,)
    ).fetchall()
    refs = refs_of(conn, image_id)
    tags = tuple(familiar(ref) for ref in refs if "@" not in ref)
    digests = tuple(familiar(ref) for ref in refs if "@" in ref)
    return Image(
        id=image_id,
        repo_tags=tags,
        repo_digests=digests,
        created_ns=int(row["created_ns"]),
        size=sum(int(layer["size"]) for layer in layer_rows),
        config=oci.runtime_config_from_json(json.loads(row["runtime_config"])),
        layers=tuple(str(layer["diff_id"]) for layer in layer_rows),
        architecture=str(row["architecture"]),
        os=str(row["os"]),
        author=str(row["author"]),
        comment=str(row["comment"]),
        manifest_digest=str(row["manifest_digest"]),
    )


def load_image(conn: sqlite3.Connection, image_id: str) -> Image | None:
    row = conn.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()
    return None if row is None else _image_from_row(conn, row)


def list_images(conn: sqlite3.Connection) -> list[Image]:
    """Every image, newest first."""
    rows = conn.execute("SELECT * FROM images ORDER BY created_ns DESC, added_ns DESC, id").fetchall()
    return [_image_from_row(conn, row) for row in rows]


def all_layers_and_blobs(conn: sqlite3.Connection) -> tuple[set[str], set[str]]:
    """Every layer and blob some record names (to find orphans at start)."""
    layers = {str(r["diff_id"]) for r in conn.execute("SELECT DISTINCT diff_id FROM image_layers")}
    blobs = {str(r["blob_digest"]) for r in conn.execute("SELECT DISTINCT blob_digest FROM image_layers")}
    for row in conn.execute("SELECT config_digest, manifest_digest FROM images"):
        blobs.update(d for d in (row["config_digest"], row["manifest_digest"]) if d)
    return layers, blobs


def layer_size(conn: sqlite3.Connection, diff_id: str) -> int | None:
    row = conn.execute("SELECT size FROM image_layers WHERE diff_id = ? LIMIT 1", (diff_id,)).fetchone()
    return None if row is None else int(row["size"])


def images_using_blob(conn: sqlite3.Connection, digest: str) -> list[Image]:
    """The images whose records name a blob (as manifest, config or layer), newest first."""
    rows = conn.execute(
        "SELECT * FROM images WHERE id IN (SELECT id FROM images WHERE config_digest = ?1"
        " OR manifest_digest = ?1 UNION SELECT image_id FROM image_layers WHERE blob_digest = ?1)"
        " ORDER BY created_ns DESC, added_ns DESC, id",
        (digest,),
    ).fetchall()
    return [_image_from_row(conn, row) for row in rows]


def layers_of(conn: sqlite3.Connection, image_id: str) -> list[StagedLayer]:
    """An image's layers as recorded, bottom first."""
    rows = conn.execute(
        "SELECT diff_id, blob_digest, media_type, size FROM image_layers WHERE image_id = ?"
        " ORDER BY position",
        (image_id,),
    ).fetchall()
    return [
        StagedLayer(str(r["diff_id"]), str(r["blob_digest"]), str(r["media_type"]), int(r["size"]))
        for r in rows
    ]


def blobs_of(conn: sqlite3.Connection, image_id: str) -> set[str]:
    """Every blob an image's records name (manifest, config, layers)."""
    blobs: set[str] = set()
    row = conn.execute("SELECT config_digest, manifest_digest FROM images WHERE id = ?", (image_id,)).fetchone()
    if row is not None:
        blobs.update(d for d in (row["config_digest"], row["manifest_digest"]) if d)
    blobs.update(
        str(r["blob_digest"]) for r in conn.execute("SELECT blob_digest FROM image_layers WHERE image_id = ?", (image_id,))
    )
    return blobs
