"""What a COPY or ADD reads: files of the build context (or of a stage's or an image's
filesystem), found safely, hashed for the cache, and laid out as a layer under the
destination.

Owns: resolving a source path inside its root (symlinks followed only while they stay
inside it: one that leads out is refused, never read), docker's wildcards (`*`, `?`,
`[...]` within one path component), the content hash a step's cache key uses (names,
types, modes, sizes, content, link targets: not mtimes or owners, as docker's), ADD's
recognition of a local tar (plain, gzip, bzip2, xz) and the checks of its entries (no
`..` out of the destination, no absolute hardlink target out of it, no device nodes, no
entry through a symlink the archive itself made), and writing the layer tar: the
entries at their real place in the image (a symlinked destination directory followed
inside the image), with the directories on the way carried over from the image as they
are. Must not: write files anywhere (the image store unpacks the tar with the layer
rules), or know instructions.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tarfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pallet.daemon.builder.rootfs import ImageRoot, Resolved, split
from pallet.daemon.snapshots.changes import LowerView
from pallet.daemon.snapshots.difftar import LayerSink
from pallet.v1.errors import InvalidArgument, NotFound

_MAX_LINKS = 40
_COPY_BUFFER = 1 << 20
_WILDCARD = re.compile(r"[*?\[]")


class SourceError(InvalidArgument):
    pass


@dataclass(frozen=True, slots=True)
class Entry:
    """One thing to put in the layer: `rel` below the destination ("" for the
    destination itself), and where its bytes or metadata come from."""

    rel: tuple[str, ...]
    st: os.stat_result
    path: str = ""  # a regular file's (or archive's) path on the host, to read
    link: str = ""  # a symlink's target
    # From an archive (ADD): its header, and how to read the member's bytes.
    member: tarfile.TarInfo | None = None


@dataclass(slots=True)
class Plan:
    """Everything one COPY or ADD puts under its destination, in order."""

    entries: list[Entry] = field(default_factory=list)
    # Whether the destination is a directory that sources go into (or a file name).
    into_dir: bool = True
    archives: list[str] = field(default_factory=list)  # ADD: archives extracted (their paths)
    kinds: list[str] = field(default_factory=list)  # "file" / "dir" per source, for created_by


class SourceRoot:
    """A tree sources are read from. `resolve` follows symlinks inside it."""

    label = "build context"

    def resolve(self, path: str, what: str) -> tuple[tuple[str, ...], os.stat_result] | None:
        raise NotImplementedError

    def listdir(self, parts: tuple[str, ...]) -> list[str]:
        raise NotImplementedError

    def lstat(self, parts: tuple[str, ...]) -> os.stat_result | None:
        raise NotImplementedError

    def host_path(self, parts: tuple[str, ...]) -> str:
        """Where the entry's bytes (or link target) are on the host."""
        raise NotImplementedError

    def matches(self, pattern: str, what: str) -> list[tuple[str, ...]]:
        """The paths a source names: itself, or every path its wildcards match (not
        descending into symlinks), sorted."""
        cleaned = "/".join(split(pattern))
        if ".." in cleaned.split("/") or not _WILDCARD.search(cleaned):
            found = self.resolve(cleaned, what)
            return [found[0]] if found else []
        regex = re.compile(_glob_regex(cleaned))
        depth = cleaned.count("/") + 1
        out: list[tuple[str, ...]] = []

        def walk(parts: tuple[str, ...]) -> None:
            for name in sorted(self.listdir(parts)):
                rel = (*parts, name)
                if regex.fullmatch("/".join(rel)):
                    out.append(rel)
                elif len(rel) < depth:
                    st = self.lstat(rel)
                    if st is not None and stat.S_ISDIR(st.st_mode):
                        walk(rel)

        walk(())
        return out


class ContextRoot(SourceRoot):
    """The build context (a directory palletd received): a symlink that leads out of it
    is refused, never followed."""

    def __init__(self, root: Path, label: str = "build context") -> None:
        self.root = root.resolve()
        self.label = label

    def resolve(self, path: str, what: str) -> tuple[tuple[str, ...], os.stat_result] | None:
        todo = split(path)
        done: list[str] = []
        links = 0
        while todo:
            name = todo.pop(0)
            if name == "..":
                if not done:
                    raise SourceError(f"forbidden path outside the {self.label}: {path}")
                done.pop()
                continue
            candidate = [*done, name]
            full = self.root.joinpath(*candidate)
            try:
                st = os.lstat(full)
            except (FileNotFoundError, NotADirectoryError):
                return None
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > _MAX_LINKS:
                    raise SourceError(f"{path}: too many levels of symbolic links")
                target = os.readlink(full)
                inside = os.path.normpath(os.path.join(*done, target)) if done else os.path.normpath(target)
                if target.startswith("/") or inside == ".." or inside.startswith("../"):
                    # What it names on the host is not the context's to give.
                    raise SourceError(
                        f"{path} is a symlink to {target}: forbidden path outside the "
                        f"{self.label}"
                    )
                todo = split(target) + todo
                continue
            done.append(name)
            if todo and not stat.S_ISDIR(st.st_mode):
                return None
        return tuple(done), os.lstat(self.root.joinpath(*done))

    def listdir(self, parts: tuple[str, ...]) -> list[str]:
        try:
            return os.listdir(self.root.joinpath(*parts))
        except (NotADirectoryError, FileNotFoundError):
            return []

    def lstat(self, parts: tuple[str, ...]) -> os.stat_result | None:
        try:
            return os.lstat(self.root.joinpath(*parts))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def host_path(self, parts: tuple[str, ...]) -> str:
        return str(self.root.joinpath(*parts))


class ImageSourceRoot(SourceRoot):
    """A stage's or an image's filesystem (COPY --from), read through its layers; its
    symlinks lead where they lead inside that image."""

    def __init__(self, layers: Sequence[str], label: str) -> None:
        self._image = ImageRoot(layers)
        self._view = LowerView(layers)
        self.label = label

    def resolve(self, path: str, what: str) -> tuple[tuple[str, ...], os.stat_result] | None:
        found = self._image.resolve(path)
        return (found.parts, found.st) if found.st is not None else None

    def listdir(self, parts: tuple[str, ...]) -> list[str]:
        return sorted(self._view.names(parts))

    def lstat(self, parts: tuple[str, ...]) -> os.stat_result | None:
        return self._view.lstat(parts)

    def host_path(self, parts: tuple[str, ...]) -> str:
        where = self._view.locate(parts)
        if where is None:
            raise NotFound(f"/{'/'.join(parts)} is gone from {self.label}")
        return str(where)


def _glob_regex(pattern: str) -> str:
    """Go's filepath.Match as a regex: `*` and `?` never cross a `/`."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            j = pattern.find("]", i + 2 if i + 1 < n and pattern[i + 1] in "!^" else i + 1)
            if j < 0:
                raise SourceError(f"invalid wildcard pattern {pattern!r}: [ without ]")
            body = pattern[i + 1 : j]
            if body[:1] in ("!", "^"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = j
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def is_url(source: str) -> bool:
    return bool(re.match(r"(?i)^(https?|ftp)://", source)) or source.startswith("git@")


def _walk_dir(root: SourceRoot, parts: tuple[str, ...], base: tuple[str, ...], what: str) -> Iterator[Entry]:
    """A directory's content, entries below `base`, symlinks as symlinks, sorted."""
    for name in sorted(root.listdir(parts)):
        here = (*parts, name)
        st = root.lstat(here)
        if st is None:
            continue
        rel = (*base, name)
        yield _entry(root, here, st, rel, what)
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_dir(root, here, rel, what)


def _entry(root: SourceRoot, parts: tuple[str, ...], st: os.stat_result, rel: tuple[str, ...], what: str) -> Entry:
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return Entry(rel, st, path=root.host_path(parts))
    if stat.S_ISLNK(mode):
        return Entry(rel, st, link=os.readlink(root.host_path(parts)))
    if stat.S_ISDIR(mode) or stat.S_ISFIFO(mode):
        return Entry(rel, st)
    kind = "a device node" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket"
    name = "/".join(parts)
    raise SourceError(f"{name} is {kind}: a build copies files, directories and symlinks only")


def plan_sources(
    items: Sequence[tuple[SourceRoot, str]], dest_is_dir: bool, what: str, *, add: bool
) -> Plan:
    """What the sources (each in its root) put under the destination: a directory's
    content, a file by its name (in a directory destination), ADD's archives extracted."""
    plan = Plan()
    matched: list[tuple[SourceRoot, str, tuple[str, ...]]] = []
    for root, source in items:
        found = root.matches(source, what)
        if not found:
            if _WILDCARD.search(source):
                raise SourceError(f"no source files were specified: {source} matches nothing in the {root.label}")
            raise NotFound(
                f"file not found in {root.label} or excluded by .dockerignore: "
                f"stat {'/'.join(split(source)) or '.'}: file does not exist"
            )
        matched += [(root, source, parts) for parts in found]
    if len(matched) > 1 and not dest_is_dir:
        raise SourceError(
            f"when using {what} with more than one source file, the "
            "destination must be a directory and end with a /"
        )
    plan.into_dir = dest_is_dir or len(matched) > 1
    for root, source, parts in matched:
        resolved = root.resolve("/".join(parts), what)
        if resolved is None:
            raise NotFound(f"{source} is gone from the {root.label}")
        real, st = resolved
        if stat.S_ISDIR(st.st_mode):
            plan.kinds.append("dir")
            plan.into_dir = True
            plan.entries += list(_walk_dir(root, real, (), what))
            continue
        full = Path(root.host_path(real))
        name = parts[-1] if parts else full.name
        if add and stat.S_ISREG(st.st_mode) and is_archive(full):
            plan.kinds.append("file")
            plan.archives.append(str(full))
            plan.into_dir = True
            plan.entries += list(archive_entries(full, what))
            continue
        plan.kinds.append("file")
        rel = (name,) if plan.into_dir else ()
        plan.entries.append(_entry(root, real, st, rel, what))
    return plan


def is_archive(path: Path) -> bool:
    """A tar, plain or compressed (gzip, bzip2, xz), by its content as docker decides."""
    try:
        with open(path, "rb", buffering=0) as f:
            head = f.read(512)
    except OSError:
        return False
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        try:
            with tarfile.open(path, "r:*") as tar:
                return tar.next() is not None
        except (tarfile.TarError, OSError, EOFError):
            return False
    return len(head) == 512 and head[257:262] == b"ustar"


def archive_entries(path: Path, what: str) -> Iterator[Entry]:
    """An archive's entries for ADD, checked by the layer rules."""
    links: set[tuple[str, ...]] = set()
    seen: set[tuple[str, ...]] = set()
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                parts = _archive_parts(member.name, what, path.name)
                if not parts:
                    continue
                for depth in range(1, len(parts)):
                    if parts[:depth] in links:
                        raise SourceError(
                            f"archive {path.name}: entry {member.name!r} goes through the "
                            f"symlink {'/'.join(parts[:depth])} the archive made: refusing it"
                        )
                if member.ischr() or member.isblk():
                    raise SourceError(
                        f"archive {path.name}: entry {member.name!r} is a device node: "
                        "a build does not create device nodes"
                    )
                if member.islnk():
                    target = _archive_parts(member.linkname, what, path.name)
                    if target not in seen:
                        raise SourceError(
                            f"archive {path.name}: hardlink {member.name!r} points to "
                            f"{member.linkname!r}, which is not an earlier entry of the archive"
                        )
                if not (member.isreg() or member.isdir() or member.issym() or member.islnk() or member.isfifo()):
                    raise SourceError(f"archive {path.name}: entry {member.name!r} has unsupported type")
                if member.issym():
                    links.add(parts)
                seen.add(parts)
                yield Entry(parts, _fake_stat(member), path=str(path), member=member)
    except tarfile.TarError as exc:
        raise SourceError(f"archive {path.name} is damaged: {exc}") from None


def _archive_parts(name: str, what: str, archive: str) -> tuple[str, ...]:
    out: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not out:
                raise SourceError(
                    f"archive {archive}: entry {name!r} climbs out of the destination "
                    "with '..': refusing the archive"
                )
            out.pop()
            continue
        out.append(part)
    return tuple(out)


def _fake_stat(member: tarfile.TarInfo) -> os.stat_result:
    kind = (
        stat.S_IFDIR if member.isdir() else stat.S_IFLNK if member.issym() else
        stat.S_IFIFO if member.isfifo() else stat.S_IFREG
    )
    return os.stat_result((kind | (member.mode & 0o7777), 0, 0, 1, member.uid, member.gid,
                           member.size, int(member.mtime), int(member.mtime), int(member.mtime)))


def content_hash(plan: Plan) -> str:
    """The hash of what the step reads: each entry's place, type, mode, size and content
    (or link target); neither mtimes nor owners (docker's cache ignores them too)."""
    h = hashlib.sha256()
    for entry in plan.entries:
        st = entry.st
        h.update(repr(("/".join(entry.rel), stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_size, entry.link)).encode())
        if entry.member is not None:
            h.update(repr((entry.member.uid, entry.member.gid, entry.member.linkname)).encode())
        if entry.path and entry.member is None and stat.S_ISREG(st.st_mode):
            with open(entry.path, "rb") as f:
                while chunk := f.read(_COPY_BUFFER):
                    h.update(chunk)
    for archive in plan.archives:
        with open(archive, "rb") as f:
            while chunk := f.read(_COPY_BUFFER):
                h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the entries go and as whom."""

    dest: Resolved  # the destination in the image (symlinks followed)
    into_dir: bool
    owner: tuple[int, int] | None  # --chown; None: root (COPY), the archive's (ADD)
    chmod: int | None


def write_copy_layer(root: ImageRoot, plan: Plan, layout: Layout, out: IO[bytes]) -> int:
    """The layer tar of a COPY/ADD; returns how many entries it wrote."""
    now = int(time.time())
    count = 0
    dest = layout.dest.parts
    if layout.into_dir:
        target_dir = dest
    else:
        target_dir = dest[:-1]
    with tarfile.TarFile(fileobj=LayerSink(out), mode="w", format=tarfile.PAX_FORMAT) as tar:
        # The directories on the way: as the image has them, or new (0755, --chown's).
        written: set[tuple[str, ...]] = set()
        for depth in range(1, len(target_dir) + 1):
            parts = target_dir[:depth]
            st = root.lstat(parts)
            info = tarfile.TarInfo("/".join(parts))
            info.type = tarfile.DIRTYPE
            if st is not None:
                if not stat.S_ISDIR(st.st_mode):
                    raise SourceError(f"cannot copy to /{'/'.join(parts)}: it is not a directory in the image")
                info.mode, info.uid, info.gid, info.mtime = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)
            else:
                uid, gid = layout.owner or (0, 0)
                info.mode, info.uid, info.gid, info.mtime = 0o755, uid, gid, now
            tar.addfile(info)
            written.add(parts)
            count += 1
        archive: tarfile.TarFile | None = None
        archive_path = ""
        try:
            for entry in plan.entries:
                if entry.member is not None and entry.path != archive_path:
                    if archive is not None:
                        archive.close()
                    archive = tarfile.open(entry.path, "r:*")
                    archive_path = entry.path
                rel = entry.rel if layout.into_dir else ()
                parts = (*target_dir, *rel) if layout.into_dir else dest
                if not parts or parts in written and not rel:
                    continue  # the destination directory itself, already written
                existing = root.lstat(parts)
                st = entry.st
                if existing is not None and stat.S_ISDIR(existing.st_mode) and not stat.S_ISDIR(st.st_mode):
                    raise SourceError(f"cannot overwrite directory /{'/'.join(parts)} with a non-directory")
                info = tarfile.TarInfo("/".join(parts))
                info.mtime = int(st.st_mtime)
                info.mode = stat.S_IMODE(st.st_mode)
                if layout.chmod is not None:
                    info.mode = layout.chmod
                if entry.member is not None:
                    uid, gid = entry.member.uid, entry.member.gid
                else:
                    uid, gid = 0, 0
                if layout.owner is not None:
                    uid, gid = layout.owner
                info.uid, info.gid = uid, gid
                if stat.S_ISDIR(st.st_mode):
                    info.type = tarfile.DIRTYPE
                    if existing is not None and stat.S_ISDIR(existing.st_mode) and entry.member is None:
                        # A directory the image has: kept as it is, only its content added.
                        info.mode = stat.S_IMODE(existing.st_mode) if layout.chmod is None else layout.chmod
                        info.uid, info.gid = (existing.st_uid, existing.st_gid) if layout.owner is None else layout.owner
                    tar.addfile(info)
                elif stat.S_ISLNK(st.st_mode):
                    info.type = tarfile.SYMTYPE
                    info.linkname = entry.member.linkname if entry.member is not None else entry.link
                    if layout.chmod is not None:
                        info.mode = 0o777
                    tar.addfile(info)
                elif stat.S_ISFIFO(st.st_mode):
                    info.type = tarfile.FIFOTYPE
                    tar.addfile(info)
                elif entry.member is not None and entry.member.islnk():
                    info.type = tarfile.LNKTYPE
                    link = _archive_parts(entry.member.linkname, "ADD", "")
                    info.linkname = "/".join((*target_dir, *link))
                    tar.addfile(info)
                elif entry.member is not None:
                    assert archive is not None
                    info.size = entry.member.size
                    data = archive.extractfile(entry.member)
                    tar.addfile(info, data)
                else:
                    with open(entry.path, "rb") as f:
                        info.size = os.fstat(f.fileno()).st_size
                        tar.addfile(info, f)
                written.add(parts)
                count += 1
        finally:
            if archive is not None:
                archive.close()
    return count
