"""`update`: new resource limits for containers, live, and a new restart policy.

Owns: what `update` asks the daemon and prints (each container's name, as docker; an
error per name, the others still updated). Must not: judge a value (palletd does: one bad
value changes nothing) or map gRPC codes (the client does).
"""

from __future__ import annotations

import argparse
from typing import Any

from pallet.client.api import PalletClient
from pallet.client.cli import raise_usage
from pallet.client.limits import given, resources_message
from pallet.client.verbs_common import each


def restart_policy(text: str) -> Any:
    """`--restart NAME[:MAX]` as a pallet.v1.RestartPolicy (palletd judges it)."""
    from pallet.client.options import parse_restart
    from pallet.v1 import containers_pb2 as pb

    name, count = parse_restart(text)
    return pb.RestartPolicy(name=name, maximum_retry_count=count)


def update(args: argparse.Namespace) -> int:
    if not given(args) and args.restart is None:
        raise_usage(args, "you must provide one or more flags when using this command")
    resources = resources_message(args)
    restart = restart_policy(args.restart) if args.restart is not None else None

    def action(client: PalletClient, name: str) -> str:
        client.update(name, resources, restart)
        return name

    return each(args, args.containers, action)
