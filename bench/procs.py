"""Reading processes from /proc: memory, parents, command lines; killing by pid.

Owns: the /proc parsing the benchmarks need. Must not: decide what to kill (callers pass
pids they started or that their own daemon started).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Memory:
    """Resident memory of a process in KiB: Rss counts shared pages fully, Pss shares
    them out among the processes mapping them (the fairer per-process figure)."""

    rss_kib: int
    pss_kib: int


def memory(pid: int) -> Memory:
    """Rss and Pss of `pid` from /proc/<pid>/smaps_rollup."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            fields[key] = int(rest.split()[0])
    return Memory(fields["Rss"], fields["Pss"])


def parent(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise ValueError(f"/proc/{pid}/status has no PPid")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace"
        )
    except OSError:
        return ""


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def all_pids() -> list[int]:
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]


def pids_mentioning(text: str) -> list[int]:
    """Live processes (not this one) whose command line contains `text`."""
    me = os.getpid()
    return [p for p in all_pids() if p != me and text in cmdline(p) and alive(p)]


def pids_named(name: str) -> list[int]:
    """Processes whose comm is `name` (e.g. "dockerd")."""
    return [p for p in all_pids() if comm(p) == name]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def kill_and_wait(pids: list[int], timeout: float = 10.0) -> list[int]:
    """SIGKILL each pid; return those still alive after `timeout`."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if alive(p)]
    return left
