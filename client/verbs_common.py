"""What several groups of verbs do alike: a verb over many names, inspect of many objects,
and the confirmation a prune asks for.

Owns: going on past one name's error (printed as docker prints it, the exit status 1) but
stopping at once when there is no daemon at all; printing inspect documents as a JSON
array or through a template; the y/N question of prune, refused when stdin is no
terminal. Must not: know what the objects are (each verb says how to fetch and show one).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pallet.client.api import PalletClient
from pallet.v1.errors import InvalidArgument, NotFound, PalletError, Unavailable


def print_error(message: str) -> None:
    sys.stdout.flush()
    print(f"Error: {message}", file=sys.stderr)


def unreachable(exc: PalletError) -> bool:
    """No daemon at all: every further call would fail the same way, so stop at once."""
    return isinstance(exc, Unavailable) and "cannot connect" in exc.message


def each(
    args: argparse.Namespace, names: Sequence[str], action: Callable[[PalletClient, str], str | None]
) -> int:
    """Run `action` for every name, printing what it returns; an error is printed, not
    fatal (the status is 1), unless the daemon cannot be reached at all."""
    status = 0
    with PalletClient(args.host, tls=args.tls) as client:
        for name in names:
            try:
                line = action(client, name)
            except PalletError as exc:
                if unreachable(exc):
                    raise
                print_error(exc.message)
                status = 1
                continue
            if line is not None:
                print(line, flush=True)
    return status


def inspect_each(
    args: argparse.Namespace,
    names: Sequence[str],
    fetch: Callable[[PalletClient, str], dict[str, Any]],
) -> int:
    """docker's inspect: the documents found as one JSON array (or each through
    `args.format`), then an error line for each name not found (status 1)."""
    from pallet.client import format as fmt
    from pallet.client.template import parse

    template = parse(fmt.expand_escapes(args.format)) if args.format else None
    found: list[dict[str, Any]] = []
    failures: list[str] = []
    with PalletClient(args.host, tls=args.tls) as client:
        for name in names:
            try:
                found.append(fetch(client, name))
            except NotFound as exc:
                failures.append(exc.message)
    if template is not None:
        for doc in found:
            print(template.render(doc))
    elif found or not failures:
        print(fmt.json_indent(found))
    for message in failures:
        print_error(message)
    return 1 if failures else 0


def confirmed(force: bool, warning: str, what: str) -> bool:
    """A prune goes ahead: with -f, or when the person at the terminal says y."""
    if force:
        return True
    if sys.stdin is None or not sys.stdin.isatty():
        raise InvalidArgument(f"{what}: confirm with -f when stdin is not a terminal")
    return input(warning).strip().lower() in ("y", "yes")
