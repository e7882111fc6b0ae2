"""Image verbs: images, rmi, tag, import, load (inspect lives with the container verbs).

Owns: what each image verb asks the daemon and prints. Must not: parse argv, map gRPC codes
or lay out tables (format does).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from pallet.client import format as fmt
from pallet.client import views
from pallet.client.api import PalletClient
from pallet.client.options import validate_filters
from pallet.v1.errors import InvalidArgument, PalletError, Unavailable



def images(args: argparse.Namespace) -> int:
    filters = validate_filters(args.filter or [])
    if args.reference:
        filters.append(f"reference={args.reference}")
    trunc = not args.no_trunc
    if args.format and args.format.strip() == "table":
        args.format = None  # "table" alone is the default table
    if args.format and args.format.strip() != "json":
        fmt.render_rows(args.format, [], views.IMAGE_HEADERS)  # a bad template fails before the call
    with PalletClient(args.host, tls=args.tls) as client:
        found = client.list_images(all=args.all, filters=filters)
    if args.quiet:
        seen: set[str] = set()
        for image in found:
            shown = image.id if not trunc else fmt.short_id(image.id)
            if shown not in seen:
                seen.add(shown)
                print(shown)
        return 0
    now = time.time()
    if args.format:
        lines = fmt.render_rows(args.format, views.image_rows(found, now, trunc), views.IMAGE_HEADERS)
    else:
        lines = [views.images_table(found, now, trunc)]
    for line in lines:
        print(line)
    return 0


def rmi(args: argparse.Namespace) -> int:
    status = 0
    with PalletClient(args.host, tls=args.tls) as client:
        for name in args.images:
            try:
                removed = client.remove_image(name, args.force)
            except PalletError as exc:
                if isinstance(exc, Unavailable) and "cannot connect" in exc.message:
                    raise
                sys.stdout.flush()
                print(f"Error: {exc.message}", file=sys.stderr)
                status = 1
                continue
            for ref in removed.untagged:
                print(f"Untagged: {ref}")
            for image_id in removed.deleted:
                print(f"Deleted: {image_id}")
            sys.stdout.flush()
    return status


def tag(args: argparse.Namespace) -> int:
    with PalletClient(args.host, tls=args.tls) as client:
        client.tag(args.source, args.target)
    return 0


def _open_input(path: str | None, what: str) -> Any:
    """A binary file to stream: the path, or our stdin (refused when it is a terminal)."""
    if path is None or path == "-":
        stdin = sys.stdin
        if stdin is None:
            raise InvalidArgument(f"no stdin to read the {what} from")
        if stdin.isatty():
            raise InvalidArgument(f"refusing to read the {what} from a terminal: give a file or redirect stdin")
        return getattr(stdin, "buffer", stdin)
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InvalidArgument(f"cannot open {path}: {exc.strerror or exc}") from None


def import_(args: argparse.Namespace) -> int:
    source = _open_input(args.file, "tar archive")
    try:
        with PalletClient(args.host, tls=args.tls) as client:
            image = client.import_image(source, args.reference, args.message, args.change or [])
    finally:
        if source is not getattr(sys.stdin, "buffer", sys.stdin):
            source.close()
    print(image.id)
    return 0


def load(args: argparse.Namespace) -> int:
    source = _open_input(args.input, "image archive")
    try:
        with PalletClient(args.host, tls=args.tls) as client:
            loaded = client.load(source)
    finally:
        if source is not getattr(sys.stdin, "buffer", sys.stdin):
            source.close()
    refs = list(loaded.references)
    for ref in refs:
        print(f"Loaded image: {ref}")
    for image in loaded.images:
        if not any(ref in refs for ref in image.repo_tags):
            print(f"Loaded image ID: {image.id}")
    return 0
