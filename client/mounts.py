"""`--mount` in docker's CSV form -> a pallet.v1 Mount message.

Owns: reading `type=bind,source=/srv,target=/data,readonly` and docker's keys (src,
destination/dst, ro, volume-nocopy, bind-propagation, tmpfs-size, tmpfs-mode), and saying
which key is wrong. Must not: judge paths, names or combinations: palletd checks those, for
every client alike.
"""

from __future__ import annotations

import csv
import re

from pallet.v1 import containers_pb2
from pallet.v1.errors import InvalidArgument

_SIZE = re.compile(r"^(\d+)([kmg]?)b?$", re.I)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_TRUE, _FALSE = ("", "1", "true"), ("0", "false")


def _bool(key: str, value: str | None, spec: str) -> bool:
    if value is None or value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise InvalidArgument(f"invalid value for {key}: {value!r} in {spec!r}: use true or false")


def parse_mount(spec: str) -> containers_pb2.Mount:
    """One --mount value."""
    try:
        fields = next(csv.reader([spec]), [])
    except csv.Error as exc:
        raise InvalidArgument(f"invalid --mount {spec!r}: {exc}") from None
    m = containers_pb2.Mount()
    for field in fields:
        key, sep, value = field.partition("=")
        key = key.strip().lower()
        raw: str | None = value if sep else None
        if key == "type":
            m.type = value
        elif key in ("source", "src"):
            m.source = value
        elif key in ("target", "destination", "dst"):
            m.target = value
        elif key in ("readonly", "ro"):
            m.read_only = _bool(key, raw, spec)
        elif key == "volume-nocopy":
            m.no_copy = _bool(key, raw, spec)
        elif key == "bind-propagation":
            m.propagation = value
        elif key == "tmpfs-size":
            match = _SIZE.match(value.strip())
            if not match:
                raise InvalidArgument(f"invalid tmpfs-size {value!r} in {spec!r}: use bytes or a number with k, m or g")
            m.tmpfs_options.append(f"size={int(match.group(1)) * _UNITS[match.group(2).lower()]}")
        elif key == "tmpfs-mode":
            if not re.fullmatch(r"0?[0-7]{3,4}", value):
                raise InvalidArgument(f"invalid tmpfs-mode {value!r} in {spec!r}: use an octal mode such as 1770")
            m.tmpfs_options.append(f"mode={value}")
        elif key == "consistency":
            continue  # macOS file sharing's: meaningless here, as docker on Linux ignores it
        else:
            raise InvalidArgument(
                f"unexpected key {key!r} in {spec!r}: use type, source, target, readonly, "
                "volume-nocopy, bind-propagation, tmpfs-size or tmpfs-mode"
            )
    if not m.type:
        m.type = "volume"  # docker's default
    return m
