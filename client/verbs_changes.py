"""A container's changes: `diff` and `commit`.

Owns: what these verbs ask the daemon and print (docker's `C /path` lines; the new
image's id). Must not: parse argv or map gRPC codes.
"""

from __future__ import annotations

import argparse

from pallet.client.api import PalletClient

#: ChangeKind numbers (pallet.v1.ChangeKind) as docker prints them.
_KIND_LETTERS = {1: "C", 2: "A", 3: "D"}


def diff(args: argparse.Namespace) -> int:
    with PalletClient(args.host, tls=args.tls) as client:
        changes = client.diff(args.container)
    for change in changes:
        print(f"{_KIND_LETTERS.get(change.kind, '?')} {change.path}")
    return 0


def commit(args: argparse.Namespace) -> int:
    with PalletClient(args.host, tls=args.tls) as client:
        image_id = client.commit(
            args.container,
            reference=args.reference or "",
            changes=args.change or [],
            comment=args.message or "",
            author=args.author or "",
            pause=args.pause,
        )
    print(image_id)  # docker prints the full id, "sha256:..."
    return 0
