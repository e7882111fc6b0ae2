"""Registry, archive and housekeeping verbs: pull, push, login, logout, save, export,
image history, image prune, system df.

Owns: what each of these verbs asks the daemon and prints, progress display (one line
per layer, redrawn in place on a terminal, one line per change otherwise), and reading
credentials for the daemon from the credentials file. Must not: parse argv or map gRPC
codes; never print a password.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from typing import Any, TextIO

from pallet.client import credentials as creds
from pallet.client import format as fmt
from pallet.client.api import PalletClient
from pallet.v1.errors import InvalidArgument

_CHATTY = {"Downloading", "Pushing", "Extracting", "Waiting", "Resuming", "Verifying Checksum"}


class ProgressView:
    """Per-layer lines like docker's; redraws in place when `out` is a terminal."""

    def __init__(self, out: TextIO, quiet: bool = False) -> None:
        self._out = out
        self._quiet = quiet
        self._tty = out.isatty()
        self._order: list[str] = []
        self._lines: dict[str, str] = {}
        self._last: dict[str, str] = {}

    def step(self, progress: Any) -> None:
        if self._quiet:
            return
        if not progress.id:
            self._out.write(progress.status + "\n")
            self._order.clear()
            self._lines.clear()
            self._out.flush()
            return
        line = f"{progress.id}: {progress.status}"
        if progress.total and progress.status in ("Downloading", "Pushing"):
            line += f" {_bar(progress.current, progress.total)} {fmt.human_size(progress.current)}/{fmt.human_size(progress.total)}"
        if not self._tty:
            if progress.status in _CHATTY and self._last.get(progress.id) == progress.status:
                return
            self._last[progress.id] = progress.status
            self._out.write(line + "\n")
            self._out.flush()
            return
        if progress.id not in self._lines:
            self._order.append(progress.id)
            self._lines[progress.id] = line
            self._out.write(line + "\n")
        else:
            self._lines[progress.id] = line
            up = len(self._order) - self._order.index(progress.id)
            self._out.write(f"\x1b[{up}A\r\x1b[2K{line}\x1b[{up}B\r")
        self._out.flush()


def _bar(current: int, total: int, width: int = 40) -> str:
    filled = min(width, current * width // total) if total else 0
    return "[" + "=" * max(filled - 1, 0) + (">" if filled else "") + " " * (width - filled) + "]"


def _auth_for(reference: str) -> creds.StoredAuth:
    return creds.lookup(creds.registry_of(reference))


def pull(args: argparse.Namespace) -> int:
    view = ProgressView(sys.stdout, args.quiet)
    with PalletClient(args.host, tls=args.tls) as client:
        final = None
        for response in client.pull(args.reference, args.platform or "", _auth_for(args.reference)):
            if response.WhichOneof("payload") == "progress":
                view.step(response.progress)
            else:
                final = response
    if final is not None:
        # The daemon names what it pulled in canonical form (an older one does not: then
        # the reference as given).
        canonical = final.reference or args.reference
        print(final.image.repo_tags[0] if args.quiet and final.image.repo_tags else canonical)
    return 0


def push(args: argparse.Namespace) -> int:
    view = ProgressView(sys.stdout, args.quiet)
    with PalletClient(args.host, tls=args.tls) as client:
        for response in client.push(args.reference, _auth_for(args.reference)):
            if response.WhichOneof("payload") == "progress":
                view.step(response.progress)
            else:
                tag = args.reference.rpartition(":")[2] if ":" in args.reference.rpartition("/")[2] else "latest"
                print(f"{tag}: digest: {response.digest} size: {response.size}")
    return 0


def login(args: argparse.Namespace) -> int:
    registry = args.server or creds.DOCKER_HUB_KEY
    username = args.username
    if args.password_stdin:
        if args.password:
            raise InvalidArgument("--password and --password-stdin are mutually exclusive")
        if not username:
            raise InvalidArgument("must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    else:
        password = args.password or ""
    if not username:
        if not sys.stdin.isatty():
            raise InvalidArgument("give --username (and --password-stdin) when stdin is not a terminal")
        username = input("Username: ").strip()
    if not password:
        if not sys.stdin.isatty():
            raise InvalidArgument("give the password with --password-stdin when stdin is not a terminal")
        password = getpass.getpass("Password: ")
    if args.password:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", file=sys.stderr)
    auth = creds.StoredAuth(username, password)
    with PalletClient(args.host, tls=args.tls) as client:
        status = client.login(registry, auth)
    path = creds.store(registry, auth)
    print(f"Credentials saved in {path}", file=sys.stderr)
    print(status)
    return 0


def logout(args: argparse.Namespace) -> int:
    registry = args.server or creds.DOCKER_HUB_KEY
    key = creds.registry_key(registry)
    if creds.remove(registry):
        print(f"Removing login credentials for {key}")
    else:
        print(f"Not logged in to {key}")
    return 0


def _open_output(path: str | None, what: str) -> Any:
    if path is None or path == "-":
        if sys.stdout.isatty():
            raise InvalidArgument(f"refusing to write the {what} to a terminal: use -o FILE or redirect stdout")
        sys.stdout.flush()
        return os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    try:
        return open(path + ".pallet-tmp", "wb")
    except OSError as exc:
        raise InvalidArgument(f"cannot write {path}: {exc.strerror or exc}") from None


def _write_stream(chunks: Any, path: str | None, what: str) -> None:
    out = _open_output(path, what)
    ok = False
    try:
        for chunk in chunks:
            out.write(chunk)
        ok = True
    finally:
        out.close()
        if path is not None and path != "-":
            if ok:
                os.replace(path + ".pallet-tmp", path)
            else:
                os.unlink(path + ".pallet-tmp")


def save(args: argparse.Namespace) -> int:
    with PalletClient(args.host, tls=args.tls) as client:
        _write_stream(client.save(args.images, oci_only=args.format == "oci"), args.output, "archive")
    return 0


def export(args: argparse.Namespace) -> int:
    with PalletClient(args.host, tls=args.tls) as client:
        _write_stream(client.export(args.container), args.output, "tar archive")
    return 0


def history(args: argparse.Namespace) -> int:
    with PalletClient(args.host, tls=args.tls) as client:
        entries = client.history(args.image)
    now = time.time()
    if args.quiet:
        for entry in entries:
            print(entry.id if args.no_trunc else fmt.short_id(entry.id) if entry.id != "<missing>" else entry.id)
        return 0
    rows = [["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]]
    for entry in entries:
        created_by = entry.created_by
        if not args.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        image_id = entry.id if entry.id == "<missing>" or args.no_trunc else fmt.short_id(entry.id)
        created = fmt.human_duration(fmt.seconds_since(entry.created, now)) + " ago" if entry.created.seconds else "N/A"
        rows.append([image_id, created, created_by, fmt.human_size(entry.size), entry.comment])
    print(fmt.table(rows))
    return 0


def prune(args: argparse.Namespace) -> int:
    if not args.force:
        what = "all images without at least one container associated to them" if args.all else "all dangling images"
        if not sys.stdin.isatty():
            raise InvalidArgument(f"image prune removes {what}: confirm with -f when stdin is not a terminal")
        answer = input(f"WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    with PalletClient(args.host, tls=args.tls) as client:
        result = client.prune_images(all=args.all)
    if result.untagged or result.deleted:
        print("Deleted Images:")
        for ref in result.untagged:
            print(f"untagged: {ref}")
        for image_id in result.deleted:
            print(f"deleted: {image_id}")
        print()
    print(f"Total reclaimed space: {fmt.human_size(result.space_reclaimed)}")
    return 0


def df(args: argparse.Namespace) -> int:
    with PalletClient(args.host, tls=args.tls) as client:
        usage = client.disk_usage()
    rows = [["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]]
    rows_of = [("Images", usage.images), ("Containers", usage.containers)]
    if usage.HasField("volumes"):  # an older palletd does not count them
        rows_of.append(("Local Volumes", usage.volumes))
    for name, item in rows_of:
        share = f" ({item.reclaimable * 100 // item.size}%)" if item.size else ""
        # docker's df sizes have four significant digits (units.HumanSize), not three.
        rows.append([name, str(item.total), str(item.active), fmt.human_size(item.size, 4),
                     fmt.human_size(item.reclaimable, 4) + share])
    print(fmt.table(rows))
    return 0

