"""Docker's JSON of a container path's stat (the `X-Docker-Container-Path-Stat` header of
`HEAD`/`GET /containers/{id}/archive`, base64 of this JSON), whose mode is Go's
`os.FileMode` (the type bits are Go's own, not Linux's S_IFMT): the docker CLI decodes it so.
"""

from __future__ import annotations

import base64
import datetime
import json
import stat as st
from typing import Any

# Go's os.FileMode type bits.
_GO_DIR = 1 << 31
_GO_SYMLINK = 1 << 27
_GO_DEVICE = 1 << 26
_GO_NAMED_PIPE = 1 << 25
_GO_SOCKET = 1 << 24
_GO_SETUID = 1 << 23
_GO_SETGID = 1 << 22
_GO_CHAR_DEVICE = 1 << 21
_GO_STICKY = 1 << 20


def go_file_mode(mode: int) -> int:
    """A Linux st_mode as Go's os.FileMode."""
    out = mode & 0o777
    kind = st.S_IFMT(mode)
    if kind == st.S_IFDIR:
        out |= _GO_DIR
    elif kind == st.S_IFLNK:
        out |= _GO_SYMLINK
    elif kind == st.S_IFBLK:
        out |= _GO_DEVICE
    elif kind == st.S_IFCHR:
        out |= _GO_DEVICE | _GO_CHAR_DEVICE
    elif kind == st.S_IFIFO:
        out |= _GO_NAMED_PIPE
    elif kind == st.S_IFSOCK:
        out |= _GO_SOCKET
    if mode & st.S_ISUID:
        out |= _GO_SETUID
    if mode & st.S_ISGID:
        out |= _GO_SETGID
    if mode & st.S_ISVTX:
        out |= _GO_STICKY
    return out


def rfc3339_nano(seconds: int, nanos: int) -> str:
    """Go's RFC3339Nano in UTC: trailing zeros of the fraction dropped."""
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{nanos:09d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def path_stat_json(s: Any) -> dict[str, Any]:
    """Docker's ContainerPathStat of a pallet.v1 PathStat."""
    return {
        "name": s.name,
        "size": int(s.size),
        "mode": go_file_mode(int(s.mode)),
        "mtime": rfc3339_nano(int(s.mtime.seconds), int(s.mtime.nanos)),
        "linkTarget": s.link_target,
    }


def path_stat_header(s: Any) -> str:
    """The X-Docker-Container-Path-Stat header's value."""
    return base64.b64encode(json.dumps(path_stat_json(s)).encode()).decode()
