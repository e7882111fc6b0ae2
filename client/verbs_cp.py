"""`pallet cp`: files between a container and the host, with docker's rules.

Owns: telling CONTAINER:PATH from a local path, the trailing `/` and `/.` rules (what
docker's documentation lists: a file onto a file, into a directory, to a new name; a
directory to a new name, into a directory, its contents with `/.`; the error cases), and
deciding which directory the tar is extracted into and under which name its top entry
goes. Must not: extract or build tars itself (`cplocal` does, on the host), or resolve a
container path (palletd does, inside the container's root).
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from dataclasses import dataclass

from pallet.client.api import PalletClient
from pallet.client.cplocal import extract_into, rebaser, tar_chunks
from pallet.v1.errors import InvalidArgument, NotFound


def split_cp_arg(arg: str) -> tuple[str, str]:
    """(container, path), container "" for a local path. A local path with a `:` is
    written ./name:x or /abs/name:x (docker's rule, as scp's)."""
    if arg.startswith("/"):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep or container.startswith("."):
        return "", arg
    return container, path


def asserts_directory(path: str) -> bool:
    """A path ending in `/` or `/.` says it is a directory."""
    return path.endswith("/") or path == "." or path.endswith("/.")


def split_last(path: str) -> tuple[str, str]:
    """(parent, last component), docker's SplitPathDirEntry: "." for "dir/."."""
    if path == "." or path.endswith("/."):
        return (path[:-1].rstrip("/") or "/") if path != "." else ".", "."
    stripped = path.rstrip("/")
    if not stripped:
        return "/", "."  # the root: its contents
    parent, sep, last = stripped.rpartition("/")
    return (parent or "/") if sep else ".", last


def local_abs(path: str) -> str:
    """An absolute local path that keeps a trailing `/` or `/.` (which os.path drops)."""
    absolute = os.path.abspath(path)
    if (path == "." or path.endswith("/.")) and not absolute.endswith("/."):
        absolute = absolute.rstrip("/") + "/."
    elif path.endswith("/") and not absolute.endswith("/"):
        absolute += "/"
    return absolute


@dataclass(frozen=True, slots=True)
class Plan:
    """Where a tar goes: extracted into `directory`, its top entry `source_base` renamed
    to `target_base`."""

    directory: str
    source_base: str
    target_base: str


def plan_copy(src_base: str, src_is_dir: bool, dst: str, dst_exists: bool,
              dst_is_dir: bool, where: str) -> Plan:
    """docker's PrepareArchiveCopy: `where` names the destination in errors."""
    dst_dir, dst_base = split_last(dst)
    if dst_exists and dst_is_dir:
        return Plan(dst, src_base, src_base)
    if dst_exists and src_is_dir:
        raise InvalidArgument(f"cannot copy a directory to a file: {where} exists and is not a directory")
    if not dst_exists and not src_is_dir and asserts_directory(dst):
        raise NotFound(f"no such directory: {where} (a trailing / names a directory, which must exist)")
    return Plan(dst_dir, src_base, dst_base)


# ---- container -> host ------------------------------------------------------------------------


def _local_destination(dst: str) -> tuple[str, bool, bool]:
    """(path, exists, is_dir) of a local destination, symlinks followed (the user's own,
    as docker's CopyInfoDestinationPath follows them)."""
    parent = os.path.dirname(os.path.normpath(dst))
    if parent and not os.path.isdir(parent):
        raise InvalidArgument(f"invalid output path: directory {parent!r} does not exist")
    try:
        st = os.stat(dst)
    except FileNotFoundError:
        return dst, False, False
    except NotADirectoryError:
        raise InvalidArgument(f"invalid output path: {dst!r}: not a directory") from None
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise InvalidArgument(f"invalid output path: {dst!r} must be a directory or a regular file")
    return dst, True, stat.S_ISDIR(st.st_mode)


def copy_from(client: PalletClient, container: str, src: str, dst: str, args: argparse.Namespace) -> str:
    if dst != "-":
        dst = local_abs(dst)
        dst, exists, is_dir = _local_destination(dst)
    info, chunks = client.get_archive(container, src, follow_link=args.follow_link)
    if dst == "-":
        out = sys.stdout.buffer
        for chunk in chunks:
            out.write(chunk)
        out.flush()
        return ""
    src_base = split_last(src)[1]
    plan = plan_copy(src_base, stat.S_ISDIR(info.mode), dst, exists, is_dir, dst)
    size = extract_into(chunks, plan.directory, rebaser(plan.source_base, plan.target_base), args.archive)
    return f"Successfully copied {_human(size)} to {dst}"


# ---- host -> container ------------------------------------------------------------------------


def _container_destination(client: PalletClient, container: str, dst: str) -> tuple[str, bool, bool]:
    """(path, exists, is_dir) of a container destination; a symlink there is followed
    once, as docker's client does (the daemon resolves it inside the container)."""
    try:
        info = client.stat_path(container, dst)
    except NotFound as exc:
        if "No such container" in exc.message:
            raise
        return dst, False, False
    if stat.S_ISLNK(info.mode):
        target = info.link_target
        if not target.startswith("/"):
            target = f"{split_last(dst)[0].rstrip('/')}/{target}"
        try:
            info = client.stat_path(container, target)
        except NotFound:
            return target, False, False
        dst = target
    if not (stat.S_ISDIR(info.mode) or stat.S_ISREG(info.mode)):
        raise InvalidArgument(f'destination "{container}:{dst}" must be a directory or a regular file')
    return dst, True, stat.S_ISDIR(info.mode)


def _local_source(src: str, follow: bool) -> tuple[str, str, bool]:
    """(path to read, its name in the tar, is_dir): symlinks before the last component
    are followed, the last one only with -L (docker's CopyInfoSourcePath)."""
    base = split_last(src)[1]
    if follow:
        resolved = os.path.realpath(src)
    else:
        parent, _ = split_last(src)
        resolved = src if base == "." else os.path.join(os.path.realpath(parent), base)
    if src.endswith("/") or base == ".":
        resolved = resolved.rstrip("/") + "/"  # asserts a directory: lstat follows it
    try:
        st = os.lstat(resolved)
    except FileNotFoundError:
        raise NotFound(f"{src}: no such file or directory") from None
    except NotADirectoryError:
        raise InvalidArgument(f"{src}: not a directory") from None
    return resolved.rstrip("/") or "/", base, stat.S_ISDIR(st.st_mode)


def copy_to(client: PalletClient, container: str, src: str, dst: str, args: argparse.Namespace) -> str:
    where = f"{container}:{dst}"
    if src == "-":
        dst, exists, is_dir = _container_destination(client, container, dst)
        if not (exists and is_dir):
            raise InvalidArgument(f'destination "{where}" must be a directory')
        client.put_archive(container, dst, sys.stdin.buffer, copy_uid_gid=args.archive)
        return ""
    path, src_base, src_is_dir = _local_source(local_abs(src), args.follow_link)
    dst, exists, is_dir = _container_destination(client, container, dst)
    plan = plan_copy(src_base, src_is_dir, dst, exists, is_dir, where)
    done = client.put_archive(container, plan.directory, tar_chunks(path, plan.target_base),
                              copy_uid_gid=args.archive)
    return f"Successfully copied {_human(done.size)} to {container}:{dst}"


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.3g}{unit}" if unit != "B" else f"{size}B"
        value /= 1000
    return f"{size}B"


def cp(args: argparse.Namespace) -> int:
    if not args.source:
        raise InvalidArgument("source can not be empty")
    if not args.destination:
        raise InvalidArgument("destination can not be empty")
    src_container, src = split_cp_arg(args.source)
    dst_container, dst = split_cp_arg(args.destination)
    if src_container and dst_container:
        raise InvalidArgument("copying between containers is not supported")
    if not (src_container or dst_container):
        raise InvalidArgument("must specify at least one container source")
    with PalletClient(args.host, tls=args.tls) as client:
        if src_container:
            summary = copy_from(client, src_container, src or "/", dst, args)
        else:
            summary = copy_to(client, dst_container, src, dst or "/", args)
    if summary and not args.quiet and sys.stderr.isatty():
        print(summary, file=sys.stderr)
    return 0
