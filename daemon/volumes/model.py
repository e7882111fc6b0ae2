"""Volume values.

Owns: the frozen dataclass of a volume (`Volume`, its record), a container's use of one
(`VolumeUse`, what the mount and unmount events say), and the names and labels docker
gives them. Must not: do I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

DRIVER_LOCAL = "local"
SCOPE_LOCAL = "local"
# Docker marks anonymous volumes with this label; `volume prune` without --all removes
# only those.
LABEL_ANONYMOUS = "com.docker.volume.anonymous"

# The local driver's options (docker's): a filesystem type, what to mount, mount options.
OPT_TYPE = "type"
OPT_DEVICE = "device"
OPT_O = "o"
KNOWN_OPTIONS = (OPT_TYPE, OPT_DEVICE, OPT_O)

# Docker's rule for a volume's name, with the length a directory name can have.
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
NAME_MAX = 255


def is_volume_name(name: str) -> bool:
    """Whether `name` may name a volume (and so a directory under <root>/volumes)."""
    return bool(_NAME.fullmatch(name)) and len(name.encode()) <= NAME_MAX


@dataclass(frozen=True, slots=True)
class Volume:
    """One volume: a directory `<root>/volumes/<name>/_data`, or what its options mount
    there while containers use it."""

    name: str
    created_ns: int
    driver: str = DRIVER_LOCAL
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def anonymous(self) -> bool:
        return LABEL_ANONYMOUS in self.labels

    @property
    def mounted_by_driver(self) -> bool:
        """Its options say to mount something at its directory (tmpfs, a device, a bind)."""
        return bool(self.options)


@dataclass(frozen=True, slots=True)
class VolumeUse:
    """One container's mount of a volume: what the `mount` and `unmount` events carry."""

    container_id: str
    destination: str
    read_write: bool = True
    propagation: str = ""
