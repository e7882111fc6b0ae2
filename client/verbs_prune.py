"""Housekeeping across kinds: `container prune` and `system prune`.

Owns: their confirmations (docker's warnings, word for word), the order `system prune`
asks the daemon in (docker's: stopped containers, unused networks, then with --volumes
anonymous volumes, then dangling images, or every unused one with -a) and what each step
prints, with the space reclaimed. Must not: parse argv or map gRPC codes.
"""

from __future__ import annotations

import argparse

from pallet.client import format as fmt
from pallet.client.api import PalletClient
from pallet.client.options import validate_filters
from pallet.client.verbs_common import confirmed
from pallet.v1.errors import InvalidArgument

CONTAINER_WARNING = (
    "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] "
)


def _section(title: str, lines: list[str]) -> None:
    if lines:
        print(title)
        for line in lines:
            print(line)
        print()


def container_prune(args: argparse.Namespace) -> int:
    filters = validate_filters(args.filter or [])
    if not confirmed(args.force, CONTAINER_WARNING, "container prune removes all stopped containers"):
        return 0
    with PalletClient(args.host, tls=args.tls) as client:
        deleted, reclaimed = client.prune_containers(filters)
    _section("Deleted Containers:", deleted)
    print(f"Total reclaimed space: {fmt.human_size(reclaimed)}")
    return 0


def system_warning(all_images: bool, volumes: bool) -> str:
    lines = ["WARNING! This will remove:", "  - all stopped containers",
             "  - all networks not used by at least one container"]
    if volumes:
        lines.append("  - all anonymous volumes not used by at least one container")
    lines.append("  - all images without at least one container associated to them"
                 if all_images else "  - all dangling images")
    return "\n".join(lines) + "\n\nAre you sure you want to continue? [y/N] "


def system_prune(args: argparse.Namespace) -> int:
    filters = validate_filters(args.filter or [])
    if args.volumes and any(f.partition("=")[0] == "until" for f in filters):
        raise InvalidArgument('the "until" filter is not supported with "--volumes"')
    if not confirmed(
        args.force, system_warning(args.all, args.volumes),
        "system prune removes stopped containers, unused networks and images",
    ):
        return 0
    reclaimed = 0
    with PalletClient(args.host, tls=args.tls) as client:
        deleted, size = client.prune_containers(filters)
        _section("Deleted Containers:", deleted)
        reclaimed += size
        _section("Deleted Networks:", client.prune_networks(filters))
        if args.volumes:
            # Volumes have no creation-time filter (docker refuses `until` here too).
            removed, size = client.prune_volumes(filters)
            _section("Deleted Volumes:", removed)
            reclaimed += size
        result = client.prune_images(all=args.all, filters=filters)
        _section("Deleted Images:", [f"untagged: {r}" for r in result.untagged]
                 + [f"deleted: {i}" for i in result.deleted])
        reclaimed += result.space_reclaimed
    print(f"Total reclaimed space: {fmt.human_size(reclaimed)}")
    return 0
