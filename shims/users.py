"""Resolve a container's user spec against the image's /etc/passwd and /etc/group.

Owns: parsing passwd/group text and the docker rules for "name", "uid", "name:group",
"uid:gid" (numeric ids need not exist; the primary group is always a supplementary group,
the others come from /etc/group only when no group was given). Must not: read files or switch identity; the caller passes the text
read inside the container's root and applies the result.
"""

from __future__ import annotations

from dataclasses import dataclass

from pallet.v1.errors import InvalidArgument, NotFound

_MAX_ID = 2**31 - 1


@dataclass(frozen=True, slots=True)
class ExecUser:
    """Who the container's process runs as."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    home: str


@dataclass(frozen=True, slots=True)
class _PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True, slots=True)
class _GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


def _parse_id(text: str) -> int | None:
    if not text.isdigit():
        return None
    value = int(text)
    if value > _MAX_ID:
        raise InvalidArgument(f"id {text} is out of range (maximum {_MAX_ID})")
    return value


def parse_passwd(text: str) -> list[_PasswdEntry]:
    entries = []
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) < 4 or not fields[0] or line.startswith("#"):
            continue
        uid, gid = _safe_int(fields[2]), _safe_int(fields[3])
        if uid is None or gid is None:
            continue
        home = fields[5] if len(fields) > 5 else ""
        entries.append(_PasswdEntry(fields[0], uid, gid, home))
    return entries


def parse_group(text: str) -> list[_GroupEntry]:
    entries = []
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) < 3 or not fields[0] or line.startswith("#"):
            continue
        gid = _safe_int(fields[2])
        if gid is None:
            continue
        members = tuple(m for m in fields[3].split(",") if m) if len(fields) > 3 else ()
        entries.append(_GroupEntry(fields[0], gid, members))
    return entries


def _safe_int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def resolve_user(spec: str, passwd_text: str | None, group_text: str | None) -> ExecUser:
    """Resolve `spec` the way docker does; raise NotFound naming what is missing."""
    user_part, _, group_part = spec.partition(":")
    passwd = parse_passwd(passwd_text or "")
    groups = parse_group(group_text or "")

    uid, gid, home, name = 0, 0, "/", ""
    if user_part == "":
        user_part = "0"
    numeric_uid = _parse_id(user_part)
    if numeric_uid is None:
        match = next((p for p in passwd if p.name == user_part), None)
        if match is None:
            raise NotFound(
                f"unable to find user {user_part}: no matching entries in passwd file"
            )
        uid, gid, home, name = match.uid, match.gid, match.home or "/", match.name
    else:
        uid = numeric_uid
        by_uid = next((p for p in passwd if p.uid == numeric_uid), None)
        if by_uid is not None:
            gid, home, name = by_uid.gid, by_uid.home or "/", by_uid.name

    additional: tuple[int, ...] = ()
    if group_part:
        numeric_gid = _parse_id(group_part)
        if numeric_gid is None:
            group = next((g for g in groups if g.name == group_part), None)
            if group is None:
                raise NotFound(
                    f"unable to find group {group_part}: no matching entries in group file"
                )
            gid = group.gid
        else:
            gid = numeric_gid
    elif name:
        additional = tuple(g.gid for g in groups if name in g.members)
    # Docker lists the primary group among the supplementary ones too ("groups=1000(app),
    # 50(staff)"), so a process that drops its gid keeps that group.
    additional = (gid, *(g for g in additional if g != gid))
    return ExecUser(uid=uid, gid=gid, additional_gids=additional, home=home)


def resolve_groups(names: tuple[str, ...], group_text: str | None) -> tuple[int, ...]:
    """--group-add's groups as gids: a number as it is, a name from the image's group
    file (docker's rule); NotFound names a group the file does not have."""
    groups = parse_group(group_text or "")
    gids = []
    for name in names:
        gid = _parse_id(name)
        if gid is None:
            match = next((g for g in groups if g.name == name), None)
            if match is None:
                raise NotFound(f"unable to find group {name}: no matching entries in group file")
            gid = match.gid
        gids.append(gid)
    return tuple(gids)
