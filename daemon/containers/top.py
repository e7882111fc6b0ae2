"""`top`: a container's processes as the host's `ps` shows them (docker top).

Owns: checking the ps arguments as docker does, running the host's `ps` with them (and
`-q` with the container's pids, or without it when ps refuses the mix), and cutting its
table to the rows of the container's processes (`parse_ps`, docker's column-boundary
algorithm, so a command with spaces stays one cell). Must not: find the container's pids
(the caller gives them, from its cgroup), or change anything.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass

from pallet.v1.errors import FailedPrecondition, InvalidArgument

#: ps options that drop the header line, without which the PID column cannot be found.
_NO_HEADERS = frozenset({
    "--no-header", "--no-headers", "--no-heading", "--no-headings",
    "--noheader", "--noheaders", "--noheading", "--noheadings",
})
_PID_ALIAS = re.compile(r"\s+(\S*)=\s*(PID\S*)")
PS_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class ProcessTable:
    titles: tuple[str, ...]
    processes: tuple[tuple[str, ...], ...]


def check_ps_args(args: Sequence[str]) -> list[str]:
    """The arguments for ps (docker's -ef when none); InvalidArgument for those docker
    refuses: a header-less table, or a column other than pid renamed to PID."""
    words = [w for w in args if w] or ["-ef"]
    for word in words:
        if word in _NO_HEADERS:
            raise InvalidArgument(f"option {word} is not allowed: top needs ps's header line")
    for key, value in _PID_ALIAS.findall(" " + " ".join(words)):
        if key != "pid":
            raise InvalidArgument(f'specifying "{key}={value}" is not allowed')
    return words


async def run_ps(args: Sequence[str], pids: Sequence[int]) -> bytes:
    """ps's output: with `-q PIDS` (fast: only those), or all processes when ps refuses
    that together with `args` (some options, such as f, do)."""
    if pids:
        out, _ = await _ps([*args, "-q" + ",".join(map(str, pids))])
        if out is not None:
            return out
    out, err = await _ps(list(args))
    if out is None:
        first = err.decode(errors="replace").strip().splitlines()
        raise FailedPrecondition(f"ps: {first[0] if first else 'failed'}")
    return out


async def _ps(args: list[str]) -> tuple[bytes | None, bytes]:
    try:
        proc = await asyncio.create_subprocess_exec(
            "ps", *args, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        raise FailedPrecondition("ps is not installed on the daemon's host: top needs it") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), PS_TIMEOUT_S)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return (out if proc.returncode == 0 else None), err


def parse_ps(output: str, pids: Sequence[int]) -> ProcessTable:
    """ps's table cut to the rows whose PID is in `pids` (and the thread rows, PID "-",
    that follow one of them: `ps -m`). Columns are split where every row has a blank, as
    docker splits them, so cells may hold spaces."""
    lines = output.split("\n")
    header = lines[0]
    titles = header.split()
    if "PID" not in titles:
        raise FailedPrecondition("Couldn't find PID field in ps output")
    pid_index = titles.index("PID")
    rows = [line for line in lines[1:] if line]
    # Each column starts where its title does, moved left while every row has a blank
    # just before it (a right-aligned column's values start before their title).
    spans = [[m.start(), m.end()] for m in re.finditer(r"\S+", header)]
    spans[0][0] = 0
    for i in range(1, len(spans)):
        start = spans[i][0] - 1
        while start >= spans[i - 1][1]:
            if any(len(line) > start and not line[start].isspace() for line in rows):
                start -= 1
                continue
            spans[i][0] = start
            break
    wanted = set(pids)
    processes: list[tuple[str, ...]] = []
    last_kept = False
    for line in rows:
        cells = []
        for i, (begin, _) in enumerate(spans):
            end = spans[i + 1][0] if i + 1 < len(spans) else len(line)
            cells.append(line[begin:end].strip())
        if cells[pid_index] == "-":
            if last_kept:
                processes.append(tuple(cells))
            continue
        try:
            pid = int(cells[pid_index])
        except ValueError:
            raise FailedPrecondition(f"Unexpected pid '{cells[pid_index]}'") from None
        last_kept = pid in wanted
        if last_kept:
            processes.append(tuple(cells))
    return ProcessTable(tuple(titles), tuple(processes))
