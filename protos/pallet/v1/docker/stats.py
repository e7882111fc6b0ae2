"""Docker's stats JSON (`GET /containers/{id}/stats`: one object per sample) of a pallet.v1
ContainerStats, whose raw counters are what docker's figures are computed from."""

from __future__ import annotations

from typing import Any

from pallet.v1.docker.archive import rfc3339_nano

_ZERO_TIME = "0001-01-01T00:00:00Z"


def _cpu(usage_ns: int, system_ns: int, online: int) -> dict[str, Any]:
    return {
        "cpu_usage": {"total_usage": usage_ns, "usage_in_kernelmode": 0,
                      "usage_in_usermode": 0},
        "system_cpu_usage": system_ns,
        "online_cpus": online,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }


def stats_json(s: Any, preread: str = "", one_shot: bool = False) -> dict[str, Any]:
    """One sample as dockerd sends it; `preread`, the previous sample's `read` (docker's
    zero time in a stream's first). `one_shot`: without the previous sample's counters
    (docker's `one-shot`: precpu_stats empty)."""
    read = rfc3339_nano(int(s.read.seconds), int(s.read.nanos)) if s.running else _ZERO_TIME
    has_pre = bool(s.pre_system_cpu_ns) and not one_shot
    networks = {
        n.name: {
            "rx_bytes": int(n.rx_bytes), "rx_packets": int(n.rx_packets), "rx_errors": 0,
            "rx_dropped": 0, "tx_bytes": int(n.tx_bytes), "tx_packets": int(n.tx_packets),
            "tx_errors": 0, "tx_dropped": 0,
        }
        for n in s.networks
    }
    return {
        "name": "/" + s.name,
        "id": s.id,
        "read": read,
        "preread": preread if has_pre and preread else _ZERO_TIME,
        "pids_stats": {"current": int(s.pids_current), **(
            {"limit": int(s.pids_limit)} if s.pids_limit else {})},
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"major": 0, "minor": 0, "op": "read", "value": int(s.block_read_bytes)},
                {"major": 0, "minor": 0, "op": "write", "value": int(s.block_write_bytes)},
            ] if s.running else None,
            "io_serviced_recursive": None,
            "io_queue_recursive": None,
            "io_service_time_recursive": None,
            "io_wait_time_recursive": None,
            "io_merged_recursive": None,
            "io_time_recursive": None,
            "sectors_recursive": None,
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _cpu(int(s.cpu_usage_ns), int(s.system_cpu_ns), int(s.online_cpus)),
        "precpu_stats": _cpu(int(s.pre_cpu_usage_ns), int(s.pre_system_cpu_ns),
                             int(s.online_cpus)) if has_pre else _cpu(0, 0, 0),
        "memory_stats": {
            "usage": int(s.memory_usage),
            "stats": {"inactive_file": int(s.memory_inactive_file)},
            "limit": int(s.memory_limit),
        } if s.running else {},
        **({"networks": networks} if networks else {}),
    }
