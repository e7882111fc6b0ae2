"""`update`: new resource limits for containers, live.

Owns: what `update` asks the daemon and prints (each container's name, as docker; an
error per name, the others still updated). Must not: judge a value (palletd does: one bad
value changes nothing) or map gRPC codes (the client does).
"""

from __future__ import annotations

import argparse

from pallet.client.api import PalletClient
from pallet.client.cli import raise_usage
from pallet.client.limits import given, resources_message
from pallet.client.verbs_common import each


def update(args: argparse.Namespace) -> int:
    if not given(args):
        raise_usage(args, "you must provide one or more flags when using this command")
    resources = resources_message(args)

    def action(client: PalletClient, name: str) -> str:
        client.update(name, resources)
        return name

    return each(args, args.containers, action)
