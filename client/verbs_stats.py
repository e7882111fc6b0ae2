"""`pause`, `unpause`, `top` and `stats`: what each asks the daemon and prints.

Owns: the verbs' output: a name per paused or unpaused container (errors per name, as
docker), `top`'s process table, and `stats`: one table per sample, redrawn in place on a
terminal (cursor home, each line cleared, the rest of the screen cleared: docker's way)
and printed one after another when stdout is no terminal; `--no-stream` prints one.
Must not: compute figures (`views_stats` does) or map gRPC codes (the client does).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pallet.client.api import PalletClient
from pallet.client.verbs_common import each


def pause(args: argparse.Namespace) -> int:
    def action(client: PalletClient, name: str) -> str:
        client.pause(name)
        return name

    return each(args, args.containers, action)


def unpause(args: argparse.Namespace) -> int:
    def action(client: PalletClient, name: str) -> str:
        client.unpause(name)
        return name

    return each(args, args.containers, action)


def top(args: argparse.Namespace) -> int:
    from pallet.client.views_stats import top_table

    # docker sends the options as one string and the daemon splits it at spaces.
    ps_args = " ".join(args.ps_args).split(" ") if args.ps_args else []
    with PalletClient(args.host, tls=args.tls) as client:
        table = client.top(args.container, ps_args)
    print(top_table(list(table.titles), [list(p.fields) for p in table.processes]))
    return 0


def stats(args: argparse.Namespace) -> int:
    from pallet.client import format as fmt
    from pallet.client.views_stats import DEFAULT_STATS_FORMAT, STATS_HEADERS, stats_fields

    template = args.format or DEFAULT_STATS_FORMAT
    if template.strip() == "table":
        template = DEFAULT_STATS_FORMAT
    fmt.render_rows(template, [], STATS_HEADERS)  # a bad template fails before the call
    trunc = not args.no_trunc
    named = list(args.containers)
    stream = not args.no_stream
    redraw = stream and sys.stdout.isatty()
    first = True
    with PalletClient(args.host, tls=args.tls) as client:
        for sample in client.stats(named, all=args.all, stream=stream):
            rows = [stats_fields(s, _as_named(s, named), trunc) for s in sample.stats]
            lines = fmt.render_rows(template, rows, STATS_HEADERS)
            if redraw:
                _draw(lines, clear=first)
            else:
                for line in lines:
                    print(line)
                sys.stdout.flush()
            first = False
    return 0


def _as_named(s: Any, named: list[str]) -> str:
    """`.Container`: the container as the command line named it, else its short id."""
    for name in named:
        if name in (s.name, s.id, "/" + s.name) or s.id.startswith(name):
            return name
    return str(s.id[:12])


def _draw(lines: list[str], clear: bool) -> None:
    """One sample in place: cursor home, every line ended by clear-to-end-of-line, then
    the rest of the screen cleared (no flicker: nothing is blanked first but once)."""
    out = ("\033[2J" if clear else "") + "\033[H"
    out += "".join(line + "\033[K\n" for line in lines) + "\033[J"
    sys.stdout.write(out)
    sys.stdout.flush()
