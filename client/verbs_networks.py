"""Network verbs: network create, ls, inspect, rm, connect, disconnect, prune; and `port`.

Owns: what each of these verbs asks the daemon and prints, in docker's words (`network
create` prints the id, `network rm` each name it removed and goes on past failures,
`network prune` asks first unless -f). Must not: parse argv, map gRPC codes, or lay out
tables and documents (views_networks and ports do).
"""

from __future__ import annotations

import argparse

from pallet.client import format as fmt
from pallet.client import views_networks as views
from pallet.client.api import PalletClient
from pallet.client.options import validate_filters
from pallet.client.verbs_common import confirmed, each, inspect_each
from pallet.v1.docker.networks import network_json

PRUNE_WARNING = (
    "WARNING! This will remove all custom networks not used by at least one container.\n"
    "Are you sure you want to continue? [y/N] "
)


def create(args: argparse.Namespace) -> int:
    from pallet.client.requests import network_create_request

    request = network_create_request(args)
    with PalletClient(args.host, tls=args.tls) as client:
        print(client.create_network(request))
    return 0


def ls(args: argparse.Namespace) -> int:
    filters = validate_filters(args.filter or [])
    trunc = not args.no_trunc
    template = args.format if args.format and args.format.strip() != "table" else None
    if template and template.strip() != "json":
        fmt.render_rows(template, [], views.NETWORK_HEADERS)  # a bad template fails before the call
    with PalletClient(args.host, tls=args.tls) as client:
        networks = client.list_networks(filters)
    if args.quiet:
        for n in networks:
            print(fmt.short_id(n.id) if trunc else n.id)
        return 0
    if template:
        lines = fmt.render_rows(template, [views.network_fields(n, trunc) for n in networks], views.NETWORK_HEADERS)
    else:
        lines = [views.networks_table(networks, trunc)]
    for line in lines:
        print(line)
    return 0


def inspect(args: argparse.Namespace) -> int:
    return inspect_each(args, args.networks, lambda c, name: network_json(c.inspect_network(name)))


def rm(args: argparse.Namespace) -> int:
    def remove(client: PalletClient, name: str) -> str:
        client.remove_network(name)
        return name

    return each(args, args.networks, remove)


def connect(args: argparse.Namespace) -> int:
    with PalletClient(args.host, tls=args.tls) as client:
        client.connect_network(args.network, args.container, aliases=args.alias or [], ipv4_address=args.ip or "")
    return 0


def disconnect(args: argparse.Namespace) -> int:
    with PalletClient(args.host, tls=args.tls) as client:
        client.disconnect_network(args.network, args.container, force=bool(args.force))
    return 0


def prune(args: argparse.Namespace) -> int:
    filters = validate_filters(args.filter or [])
    if not confirmed(args.force, PRUNE_WARNING,
                     "network prune removes all custom networks not used by at least one container"):
        return 0
    with PalletClient(args.host, tls=args.tls) as client:
        removed = client.prune_networks(filters)
    if removed:
        print("Deleted Networks:")
        for name in removed:
            print(name)
        print()
    return 0


def port(args: argparse.Namespace) -> int:
    """`pallet port CTR [PRIVATE_PORT[/PROTO]]`."""
    from pallet.client.ports import port_lines

    with PalletClient(args.host, tls=args.tls) as client:
        container = client.inspect_container(args.container)
    for line in port_lines(list(container.network_settings.ports), args.container, args.port):
        print(line)
    return 0
