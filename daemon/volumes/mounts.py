"""What the local driver mounts at a volume's directory, and the host mounts it makes.

Owns: checking a volume's `type`/`device`/`o` options and turning them into one
mount(2) call (`LocalMount`; the option words and flags are the shim API's one table,
`pallet.shim.api.mountflags`), the mount(2)/umount2(2) calls themselves on the host
(`HostMounts`, behind the `Mounter` protocol), and reading which directories are mount
points. Must not: decide when to mount (the manager counts the users), or mount anything
a volume's options do not name.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pallet.daemon.volumes.model import KNOWN_OPTIONS, OPT_DEVICE, OPT_O, OPT_TYPE
from pallet.shim.api.mountflags import (
    FLAGS,
    MNT_DETACH,
    MS_BIND,
    MS_REC,
    MS_REMOUNT,
    PROPAGATION,
    TMPFS_DATA_KEYS,
    TMPFS_DATA_WORDS,
)
from pallet.v1.errors import FailedPrecondition, InvalidArgument

# "o" words that are mount flags are the one table's (`mountflags.FLAGS`); every other
# word is the filesystem's own data ("size=64m", "uid=1000").
# Words a volume may not carry: they would change another mount than its own.
_REFUSED = frozenset({"remount", "move", "unbindable", "runbindable", *PROPAGATION})
# tmpfs's own data, key=value or bare (inode64).
TMPFS_DATA = TMPFS_DATA_KEYS | TMPFS_DATA_WORDS


@dataclass(frozen=True, slots=True)
class LocalMount:
    """One mount(2): `device` of `fstype` with `flags` and fs `data`, at the volume's
    directory. A bind has fstype "" and a host directory as device."""

    fstype: str
    device: str
    flags: int
    data: str

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & MS_BIND)


def parse_local_options(options: dict[str, str], filesystems: frozenset[str]) -> LocalMount | None:
    """The mount a volume's options ask for (None when they ask for none: a plain
    directory), or InvalidArgument naming what is wrong and what to write instead."""
    for key in options:
        if key not in KNOWN_OPTIONS:
            raise InvalidArgument(
                f"invalid volume option {key!r}: the local driver takes "
                f"{', '.join(KNOWN_OPTIONS)} (e.g. -o type=tmpfs -o device=tmpfs -o o=size=64m)"
            )
    if not options:
        return None
    fstype = options.get(OPT_TYPE, "")
    device = options.get(OPT_DEVICE, "")
    if not fstype:
        raise InvalidArgument(
            "volume options need type: -o type=tmpfs, -o type=none with -o o=bind, or a "
            "filesystem type such as ext4"
        )
    if not device:
        if fstype != "tmpfs":
            raise InvalidArgument(
                f"volume type {fstype}: give the device to mount (-o device=/dev/sdb1, or a "
                "host directory with type=none,o=bind)"
            )
        device = "tmpfs"
    flags, data = 0, []
    for word in filter(None, options.get(OPT_O, "").split(",")):
        if word in _REFUSED:
            raise InvalidArgument(f"volume option o={word} is not allowed: a volume sets its own mount only")
        if word in FLAGS:
            clear, flag = FLAGS[word]
            flags = flags & ~flag if clear else flags | flag
        else:
            data.append(word)
    if fstype == "none":
        if not flags & MS_BIND:
            raise InvalidArgument("volume type none mounts a host directory: add -o o=bind")
        if not os.path.isabs(device):
            raise InvalidArgument(f"volume device {device!r}: a bind needs an absolute host path")
        if data:
            raise InvalidArgument(f"volume option o: a bind takes mount flags only, not {','.join(data)}")
        return LocalMount("", device, flags, "")
    if flags & MS_BIND:
        raise InvalidArgument(f"volume option o=bind needs type=none, not type={fstype}")
    if fstype not in filesystems:
        raise InvalidArgument(
            f"volume type {fstype!r}: this kernel has no such filesystem (see /proc/filesystems)"
        )
    if fstype == "tmpfs":
        for word in data:
            key = word.partition("=")[0]
            if key not in TMPFS_DATA:
                raise InvalidArgument(
                    f"volume option o: tmpfs takes {', '.join(sorted(TMPFS_DATA))} and mount "
                    f"flags, not {word!r}"
                )
    return LocalMount(fstype, device, flags, ",".join(data))


def kernel_filesystems(path: Path = Path("/proc/filesystems")) -> frozenset[str]:
    """The filesystem types this kernel mounts ("nodev\ttmpfs" lines included)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return frozenset({"tmpfs"})
    return frozenset(line.split()[-1] for line in lines if line.split())


class Mounter(Protocol):
    """The host's mount table, as far as volumes touch it."""

    def mount(self, m: LocalMount, target: str) -> None: ...

    def unmount(self, target: str) -> None: ...

    def mount_points(self, under: str) -> set[str]: ...


class HostMounts:
    """mount(2) and umount2(2) through libc, in palletd's (the host's) mount namespace."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._libc.mount.argtypes = [
            ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p,
        ]
        self._libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

    def _call(self, result: int, what: str) -> None:
        if result != 0:
            err = ctypes.get_errno()
            raise FailedPrecondition(
                f"{what}: {os.strerror(err)}: check the volume's type, device and o options"
            )

    def mount(self, m: LocalMount, target: str) -> None:
        what = f"cannot mount the volume's {m.fstype or 'bind'} {m.device} at {target}"
        if m.is_bind:
            if not os.path.isdir(m.device):
                raise FailedPrecondition(f"{what}: no such directory on the host")
            self._call(self._libc.mount(m.device.encode(), target.encode(), None,
                                        MS_BIND | (m.flags & MS_REC), None), what)
            rest = m.flags & ~(MS_BIND | MS_REC)
            if rest:  # a bind takes its other flags only on a remount
                try:
                    self._call(self._libc.mount(None, target.encode(), None,
                                                MS_BIND | MS_REMOUNT | rest, None), what)
                except FailedPrecondition:
                    self.unmount(target)
                    raise
            return
        self._call(self._libc.mount(m.device.encode(), target.encode(), m.fstype.encode(),
                                    m.flags, m.data.encode() or None), what)

    def unmount(self, target: str) -> None:
        # Detached: a process that still has a file open there keeps it, the name goes now.
        result = self._libc.umount2(target.encode(), MNT_DETACH)
        if result != 0:
            err = ctypes.get_errno()
            if err not in (errno.EINVAL, errno.ENOENT):  # not a mount point, or gone
                raise FailedPrecondition(f"cannot unmount {target}: {os.strerror(err)}")

    def mount_points(self, under: str) -> set[str]:
        prefix = under.rstrip("/") + "/"
        found = set()
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                point = _unescape(line.split()[4])
                if point.startswith(prefix):
                    found.add(point)
        return found


def _unescape(path: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        path = path.replace(code, char)
    return path
