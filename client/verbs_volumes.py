"""Volume verbs: volume create, ls, inspect, rm, prune.

Owns: what each of these verbs asks the daemon and prints, in docker's words (`volume
create` prints the name, `volume rm` each name it removed and goes on past failures,
`volume prune` asks first unless -f and prints the space reclaimed). Must not: parse argv,
map gRPC codes, or lay out tables and documents (views_volumes does).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pallet.client import format as fmt
from pallet.client import views_volumes as views
from pallet.client.api import PalletClient
from pallet.client.options import parse_key_values, parse_labels, validate_filters
from pallet.v1.errors import InvalidArgument, NotFound, PalletError, Unavailable

PRUNE_WARNING = (
    "WARNING! This will remove anonymous local volumes not used by at least one container.\n"
    "Are you sure you want to continue? [y/N] "
)
PRUNE_ALL_WARNING = (
    "WARNING! This will remove all local volumes not used by at least one container.\n"
    "Are you sure you want to continue? [y/N] "
)


def _error(message: str) -> None:
    sys.stdout.flush()
    print(f"Error: {message}", file=sys.stderr)


def create(args: argparse.Namespace) -> int:
    labels = parse_labels(args.label or [])
    options = parse_key_values(args.opt or [], "driver option")
    with PalletClient(args.host) as client:
        print(client.create_volume(args.name or "", args.driver or "", labels, options).name)
    return 0


def ls(args: argparse.Namespace) -> int:
    filters = validate_filters(args.filter or [])
    template = args.format if args.format and args.format.strip() != "table" else None
    if template and template.strip() != "json":
        fmt.render_rows(template, [], views.VOLUME_HEADERS)  # a bad template fails before the call
    with PalletClient(args.host) as client:
        volumes = client.list_volumes(filters, size=bool(template and "Size" in template))
    if args.quiet:
        for v in volumes:
            print(v.name)
        return 0
    if template:
        lines = fmt.render_rows(template, [views.volume_fields(v) for v in volumes], views.VOLUME_HEADERS)
    else:
        lines = [views.volumes_table(volumes)]
    for line in lines:
        print(line)
    return 0


def inspect(args: argparse.Namespace) -> int:
    from pallet.client.template import parse

    template = parse(fmt.expand_escapes(args.format)) if args.format else None
    found: list[dict[str, Any]] = []
    failures: list[str] = []
    with PalletClient(args.host) as client:
        for name in args.volumes:
            try:
                found.append(views.inspect_volume(client.inspect_volume(name)))
            except NotFound as exc:
                failures.append(exc.message)
    if template is not None:
        for doc in found:
            print(template.render(doc))
    elif found or not failures:
        print(fmt.json_indent(found))
    for message in failures:
        _error(message)
    return 1 if failures else 0


def rm(args: argparse.Namespace) -> int:
    status = 0
    with PalletClient(args.host) as client:
        for name in args.volumes:
            try:
                client.remove_volume(name, force=bool(args.force))
            except PalletError as exc:
                if isinstance(exc, Unavailable) and "cannot connect" in exc.message:
                    raise  # no daemon at all: every further call would fail the same way
                _error(exc.message)
                status = 1
                continue
            print(name, flush=True)
    return status


def prune(args: argparse.Namespace) -> int:
    filters = validate_filters(args.filter or [])
    if not args.force:
        if sys.stdin is None or not sys.stdin.isatty():
            raise InvalidArgument(
                "volume prune removes every unused volume it selects: confirm with -f when "
                "stdin is not a terminal"
            )
        if input(PRUNE_ALL_WARNING if args.all else PRUNE_WARNING).strip().lower() not in ("y", "yes"):
            return 0
    with PalletClient(args.host) as client:
        removed, reclaimed = client.prune_volumes(filters, all_volumes=bool(args.all))
    if removed:
        print("Deleted Volumes:")
        for name in removed:
            print(name)
        print()
    print(f"Total reclaimed space: {fmt.human_size(reclaimed)}")
    return 0
