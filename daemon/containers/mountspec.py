"""What a container mounts, from docker's spellings: -v, --mount, --tmpfs, --volumes-from
and an image's VOLUME.

Owns: parsing `-v SRC:DST[:MODE]` and `--tmpfs PATH[:OPTIONS]` (docker's rules), checking
a structured `--mount` (`MountSpec` as the caller gave it), a volumes-from reference's
mode, and putting them together into one list with one mount per target (`combine`:
explicit mounts win over volumes-from, which win over the image's volumes; two explicit
mounts on one target are an error). Must not: do I/O (whether a volume or host path
exists is the start's and the volume manager's to find out).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import replace

from pallet.daemon.containers.model import (
    MOUNT_BIND,
    MOUNT_TMPFS,
    MOUNT_TYPES,
    MOUNT_VOLUME,
    MountSpec,
)
from pallet.daemon.limits import check_path
from pallet.daemon.volumes.model import is_volume_name
from pallet.shim.api.mountflags import FLAGS, STRUCTURAL, TMPFS_DATA_KEYS, TMPFS_DATA_WORDS
from pallet.v1.errors import InvalidArgument

PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
# -v modes that only say how docker's SELinux or macOS file sharing should treat the
# path: accepted, and meaningless here.
_IGNORED_MODES = frozenset({"z", "Z", "consistent", "cached", "delegated"})
# --tmpfs options: mount flags (the one table's, but those that make another kind of
# mount), and tmpfs's own data (docker passes both to the kernel).
_TMPFS_FLAGS = frozenset(FLAGS) - STRUCTURAL
# Docker's defaults for --tmpfs and --mount type=tmpfs; options given come after and win.
TMPFS_DEFAULTS = ("nosuid", "nodev", "noexec")
# The files under /proc a mount may cover (runc's list: what lxcfs emulates); the rest of
# /proc, and /proc itself, is the kernel's view of the container and is refused, as runc
# refuses it. /dev itself is the container's device directory (the shim fills it).
_PROC_ALLOWED = frozenset({
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
    "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid", "/proc/sys/crypto/fips_enabled",
})


def check_target(target: str, what: str) -> str:
    """A mount's destination inside the container, cleaned; InvalidArgument if it is not
    an absolute path, is the root itself, /dev itself, or lies in /proc (but for the
    few files runc lets a mount cover)."""
    if not target:
        raise InvalidArgument(f"{what}: the container path is empty: give an absolute path")
    if not target.startswith("/"):
        raise InvalidArgument(
            f"{what}: the container path {target!r} is not absolute: write it from / on"
        )
    check_path(target, f"{what}: the container path")
    cleaned = posixpath.normpath(target)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if cleaned == "/":
        raise InvalidArgument(f"{what}: a mount cannot go over the container's / itself")
    if cleaned == "/dev":
        raise InvalidArgument(
            f"{what}: a mount cannot go over the container's /dev itself: mount below it "
            "(/dev/NAME), or pass devices with --device"
        )
    if (cleaned == "/proc" or cleaned.startswith("/proc/")) and cleaned not in _PROC_ALLOWED:
        raise InvalidArgument(
            f"{what}: {cleaned} is inside /proc, the kernel's own view of the container: "
            f"a mount may cover only {', '.join(sorted(_PROC_ALLOWED))}"
        )
    return cleaned


def _check_volume_name(name: str, what: str) -> None:
    if not is_volume_name(name):
        raise InvalidArgument(
            f"{what}: {name!r} includes invalid characters for a local volume name, only "
            "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed. If you intended to pass a host "
            "directory, use an absolute path"
        )


def parse_bind(spec: str) -> MountSpec:
    """docker's `-v`: `/path` (an anonymous volume), `NAME:/path`, `/host:/path`, each
    with an optional `:MODE` (ro, rw, nocopy, a propagation, z/Z)."""
    what = f"invalid volume specification {spec!r}"
    parts = spec.split(":")
    if len(parts) == 1:
        source, target, mode = "", parts[0], ""
    elif len(parts) == 2:
        # "/path:ro" is an anonymous volume with a mode; otherwise SRC:DST.
        if parts[0].startswith("/") and _is_mode(parts[1]):
            source, target, mode = "", parts[0], parts[1]
        else:
            source, target, mode = parts[0], parts[1], ""
    elif len(parts) == 3:
        source, target, mode = parts
    else:
        raise InvalidArgument(f"{what}: use [SOURCE:]/container/path[:MODE]")
    target = check_target(target, what)
    read_only, propagation, no_copy = _parse_mode(mode, what)
    if not source:
        if propagation:
            raise InvalidArgument(f"{what}: a propagation ({propagation}) is for host paths only")
        return MountSpec(MOUNT_VOLUME, target, read_only=read_only, no_copy=no_copy, anonymous=True)
    if source.startswith("/"):
        if no_copy:
            raise InvalidArgument(f"{what}: nocopy is for volumes, not host paths")
        check_path(source, f"{what}: the host path")
        return MountSpec(MOUNT_BIND, target, posixpath.normpath(source), read_only,
                         propagation, create_host_path=True)
    _check_volume_name(source, what)
    if propagation:
        raise InvalidArgument(f"{what}: a propagation ({propagation}) is for host paths only")
    return MountSpec(MOUNT_VOLUME, target, source, read_only, no_copy=no_copy)


def _is_mode(text: str) -> bool:
    try:
        _parse_mode(text, "")
    except InvalidArgument:
        return False
    return True


def _parse_mode(mode: str, what: str) -> tuple[bool, str, bool]:
    read_only: bool | None = None
    propagation, no_copy = "", False
    for word in filter(None, mode.split(",")):
        if word in ("ro", "rw"):
            if read_only is not None:
                raise InvalidArgument(f"{what}: give ro or rw once")
            read_only = word == "ro"
        elif word in PROPAGATIONS:
            if propagation:
                raise InvalidArgument(f"{what}: give one propagation")
            propagation = word
        elif word == "nocopy":
            no_copy = True
        elif word not in _IGNORED_MODES:
            raise InvalidArgument(
                f"{what}: unknown mode {word!r}: use ro, rw, nocopy or a propagation "
                f"({', '.join(PROPAGATIONS)})"
            )
    return bool(read_only), propagation, no_copy


def parse_tmpfs(spec: str) -> MountSpec:
    """docker's `--tmpfs /path[:OPTIONS]` (OPTIONS: mount flags, size=, mode=, uid=, gid=)."""
    target, _, options = spec.partition(":")
    what = f"invalid --tmpfs {spec!r}"
    target = check_target(target, what)
    words = tuple(filter(None, options.split(",")))
    check_tmpfs_options(words, what)
    read_only = False
    for word in words:
        if word in ("ro", "rw"):
            read_only = word == "ro"  # the last one says
    data = tuple(w for w in words if w not in ("ro", "rw"))
    return MountSpec(MOUNT_TMPFS, target, read_only=read_only, tmpfs_options=data)


def check_tmpfs_options(words: Iterable[str], what: str) -> None:
    for word in words:
        key, sep, value = word.partition("=")
        if sep and key in TMPFS_DATA_KEYS and value:
            continue
        if not sep and (word in _TMPFS_FLAGS or word in TMPFS_DATA_WORDS):
            continue
        raise InvalidArgument(
            f"{what}: unknown tmpfs option {word!r}: use size=, mode=, uid=, gid=, "
            "nr_inodes=, inode64 or mount flags (ro, noexec, nosuid, ...)"
        )


def check_mount(m: MountSpec) -> MountSpec:
    """A structured --mount as the caller gave it, checked (the target cleaned)."""
    what = f"invalid mount (type={m.type or '?'}, target={m.target or '?'})"
    if m.type not in MOUNT_TYPES:
        raise InvalidArgument(
            f"{what}: unknown type {m.type!r}: use {', '.join(MOUNT_TYPES)}"
        )
    target = check_target(m.target, what)
    if m.propagation and m.type != MOUNT_BIND:
        raise InvalidArgument(f"{what}: bind-propagation is for type=bind only")
    if m.propagation and m.propagation not in PROPAGATIONS:
        raise InvalidArgument(
            f"{what}: unknown bind-propagation {m.propagation!r}: use {', '.join(PROPAGATIONS)}"
        )
    if m.no_copy and m.type != MOUNT_VOLUME:
        raise InvalidArgument(f"{what}: volume-nocopy is for type=volume only")
    if m.tmpfs_options and m.type != MOUNT_TMPFS:
        raise InvalidArgument(f"{what}: tmpfs options are for type=tmpfs only")
    if m.type == MOUNT_BIND:
        if not m.source:
            raise InvalidArgument(f"{what}: a bind needs a source: the host path to mount")
        if not m.source.startswith("/"):
            raise InvalidArgument(f"{what}: the bind source {m.source!r} must be an absolute host path")
        check_path(m.source, f"{what}: the host path")
        return replace(m, target=target, source=posixpath.normpath(m.source),
                       create_host_path=False, anonymous=False)
    if m.type == MOUNT_TMPFS:
        if m.source:
            raise InvalidArgument(f"{what}: a tmpfs has no source")
        check_tmpfs_options(m.tmpfs_options, what)
        return replace(m, target=target, anonymous=False, create_host_path=False)
    if m.source:
        _check_volume_name(m.source, what)
    return replace(m, target=target, anonymous=not m.source, create_host_path=False)


def parse_volumes_from(spec: str) -> tuple[str, bool | None]:
    """`CTR[:ro|rw]`: the container, and the mode its mounts take (None: their own)."""
    ref, sep, mode = spec.partition(":")
    if not ref:
        raise InvalidArgument(f"invalid --volumes-from {spec!r}: name a container")
    if not sep:
        return ref, None
    if mode not in ("ro", "rw"):
        raise InvalidArgument(f"invalid --volumes-from {spec!r}: the mode is ro or rw")
    return ref, mode == "ro"


def inherited(mounts: Sequence[MountSpec], read_only: bool | None) -> list[MountSpec]:
    """Another container's volumes and binds (not its tmpfs), as --volumes-from gives them."""
    out = []
    for m in mounts:
        if m.type == MOUNT_TMPFS:
            continue
        out.append(replace(
            m,
            read_only=m.read_only if read_only is None else read_only,
            anonymous=False,  # not this container's to remove with rm -v
            create_host_path=False,
        ))
    return out


def image_targets(image_volumes: Sequence[str]) -> list[str]:
    """The image's VOLUME paths, cleaned; a bad one skipped (not the caller's error:
    docker skips it)."""
    targets = []
    for path in image_volumes:
        try:
            targets.append(check_target(path, f"the image's volume {path!r}"))
        except InvalidArgument:
            continue
    return targets


def combine(
    explicit: Sequence[MountSpec],
    from_others: Sequence[MountSpec],
    image_volumes: Sequence[str],
) -> tuple[MountSpec, ...]:
    """One mount per target: the explicit ones (two on one target are an error), then
    what volumes-from brings where nothing explicit is, then the image's volumes (as
    anonymous volumes) where nothing else is. Sorted so a parent mounts before a child."""
    by_target: dict[str, MountSpec] = {}
    for m in explicit:
        if m.target in by_target:
            raise InvalidArgument(
                f"Duplicate mount point: {m.target}: mount one thing there"
            )
        by_target[m.target] = m
    for m in from_others:
        by_target.setdefault(m.target, m)
    for target in image_targets(image_volumes):
        by_target.setdefault(target, MountSpec(MOUNT_VOLUME, target, anonymous=True))
    return tuple(sorted(by_target.values(), key=lambda m: (m.target.count("/"), m.target)))
