"""Volume verbs: volume create, ls, inspect, rm, prune.

Owns: what each of these verbs asks the daemon and prints, in docker's words (`volume
create` prints the name, `volume rm` each name it removed and goes on past failures,
`volume prune` asks first unless -f and prints the space reclaimed). Must not: parse argv,
map gRPC codes, or lay out tables and documents (views_volumes does).
"""

from __future__ import annotations

import argparse

from pallet.client import format as fmt
from pallet.client import views_volumes as views
from pallet.client.api import PalletClient
from pallet.client.options import parse_key_values, parse_labels, validate_filters
from pallet.client.verbs_common import confirmed, each, inspect_each
from pallet.v1.docker.volumes import volume_json

PRUNE_WARNING = (
    "WARNING! This will remove anonymous local volumes not used by at least one container.\n"
    "Are you sure you want to continue? [y/N] "
)
PRUNE_ALL_WARNING = (
    "WARNING! This will remove all local volumes not used by at least one container.\n"
    "Are you sure you want to continue? [y/N] "
)


def create(args: argparse.Namespace) -> int:
    labels = parse_labels(args.label or [])
    options = parse_key_values(args.opt or [], "driver option")
    with PalletClient(args.host, tls=args.tls) as client:
        print(client.create_volume(args.name or "", args.driver or "", labels, options).name)
    return 0


def ls(args: argparse.Namespace) -> int:
    filters = validate_filters(args.filter or [])
    template = args.format if args.format and args.format.strip() != "table" else None
    if template and template.strip() != "json":
        fmt.render_rows(template, [], views.VOLUME_HEADERS)  # a bad template fails before the call
    with PalletClient(args.host, tls=args.tls) as client:
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
    return inspect_each(args, args.volumes, lambda c, name: volume_json(c.inspect_volume(name)))


def rm(args: argparse.Namespace) -> int:
    def remove(client: PalletClient, name: str) -> str:
        client.remove_volume(name, force=bool(args.force))
        return name

    return each(args, args.volumes, remove)


def prune(args: argparse.Namespace) -> int:
    filters = validate_filters(args.filter or [])
    if not confirmed(args.force, PRUNE_ALL_WARNING if args.all else PRUNE_WARNING,
                     "volume prune removes every unused volume it selects"):
        return 0
    with PalletClient(args.host, tls=args.tls) as client:
        removed, reclaimed = client.prune_volumes(filters, all_volumes=bool(args.all))
    if removed:
        print("Deleted Volumes:")
        for name in removed:
            print(name)
        print()
    print(f"Total reclaimed space: {fmt.human_size(reclaimed)}")
    return 0
