"""Docker-shaped views of `stats` samples and `top` tables.

Owns: docker's figures from the raw counters of a pallet.v1 ContainerStats (CPU % from the
change since the previous sample, MEM USAGE without the inactive file cache, MEM %, NET
I/O and BLOCK I/O), the `stats` template fields (`.Container`, `.Name`, `.ID`, `.CPUPerc`,
`.MemUsage`, `.MemPerc`, `.NetIO`, `.BlockIO`, `.PIDs`) with their table headers, and the
text of `top`'s table. Must not: talk to the daemon or print.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pallet.client.format import bytes_size, human_size, short_id, tabwrite

#: docker's default `stats` table.
DEFAULT_STATS_FORMAT = (
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t"
    "{{.BlockIO}}\t{{.PIDs}}"
)

#: Header cells for `--format "table ..."`, as docker's.
STATS_HEADERS: dict[str, Any] = {
    "Container": "CONTAINER",
    "Name": "NAME",
    "ID": "CONTAINER ID",
    "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT",
    "MemPerc": "MEM %",
    "NetIO": "NET I/O",
    "BlockIO": "BLOCK I/O",
    "PIDs": "PIDS",
}


def cpu_percent(s: Any) -> float:
    """docker's CPU %: the container's share of the host's CPU time since the previous
    sample, times the CPUs online (100 % is one whole CPU)."""
    if not s.pre_system_cpu_ns:
        return 0.0  # the first sample of a stream: nothing to compare with
    cpu_delta = s.cpu_usage_ns - s.pre_cpu_usage_ns
    system_delta = s.system_cpu_ns - s.pre_system_cpu_ns
    if system_delta <= 0 or cpu_delta <= 0:
        return 0.0
    return float(cpu_delta / system_delta * (s.online_cpus or 1) * 100.0)


def memory_used(s: Any) -> int:
    """docker's MEM USAGE: the cgroup's usage less its inactive file cache."""
    if s.memory_inactive_file < s.memory_usage:
        return int(s.memory_usage - s.memory_inactive_file)
    return int(s.memory_usage)


def stats_fields(s: Any, container: str, trunc: bool) -> dict[str, Any]:
    """The template fields of one container's sample; "--" for one that does not run.
    `container` is how the command line named it (its short id when it named none)."""
    if not s.running:
        figures = {"CPUPerc": "--", "MemUsage": "-- / --", "MemPerc": "--",
                   "NetIO": "--", "BlockIO": "--", "PIDs": "--"}
    else:
        used = memory_used(s)
        limit = int(s.memory_limit)
        rx = sum(n.rx_bytes for n in s.networks)
        tx = sum(n.tx_bytes for n in s.networks)
        figures = {
            "CPUPerc": f"{cpu_percent(s):.2f}%",
            "MemUsage": f"{bytes_size(used)} / {bytes_size(limit)}",
            "MemPerc": f"{used / limit * 100.0 if limit else 0.0:.2f}%",
            "NetIO": f"{human_size(rx)} / {human_size(tx)}",
            "BlockIO": f"{human_size(s.block_read_bytes)} / {human_size(s.block_write_bytes)}",
            "PIDs": str(int(s.pids_current)),
        }
    return {
        "Container": container,
        "Name": s.name,
        "ID": short_id(s.id) if trunc else s.id,
        **figures,
    }


def top_table(titles: Sequence[str], processes: Sequence[Sequence[str]]) -> str:
    """`top`'s table, laid out as docker lays it out (tabwriter, minimum width 20)."""
    lines = ["\t".join(titles), *("\t".join(row) for row in processes)]
    return tabwrite("\n".join(lines), minwidth=20, padding=3)
