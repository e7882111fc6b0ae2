"""`stats`: docker's columns from the container's cgroup (v1 or v2) and network namespace,
`--no-stream`, `-a`, `--format`, a stream of tables when stdout is no terminal, and the
Stats RPC itself as any gRPC client sees it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import grpc
import pytest

from pallet.client.format import bytes_size

pytestmark = pytest.mark.integration

BUSY = "while :; do :; done"
HEADER = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O",
          "BLOCK I/O", "PIDS"]


def host_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal")


def test_stats_no_stream_shows_docker_s_columns(palletd: Any) -> None:
    cid = palletd.cli_ok("run", "-d", "--name", "busy", "busybox", "sh", "-c", BUSY).strip()
    palletd.cli_ok("run", "-d", "--name", "idle", "busybox", "sleep", "1000")
    palletd.cli_ok("run", "--name", "done", "busybox", "true")

    out = palletd.cli_ok("stats", "--no-stream")
    lines = out.rstrip("\n").split("\n")
    assert re.split(r"\s{2,}", lines[0].strip()) == HEADER
    rows = {line.split()[1]: line for line in lines[1:]}
    assert set(rows) == {"busy", "idle"}  # running ones only
    assert rows["busy"].startswith(cid[:12] + " ")

    fields = "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.MemPerc}}|{{.NetIO}}|{{.BlockIO}}|{{.PIDs}}"
    row = palletd.cli_ok("stats", "--no-stream", "--format", fields, "busy").strip().split("|")
    name, cpu, mem, mem_perc, net, block, pids = row
    assert name == "busy"
    assert float(cpu.rstrip("%")) > 0, row  # a busy loop used CPU between two samples
    used, limit = mem.split(" / ")
    assert not used.startswith("0B"), row
    assert limit == bytes_size(host_memory()), "no -m: the host's memory is the limit"
    assert mem_perc.endswith("%") and re.fullmatch(r"\S+B / \S+B", net) and " / " in block
    assert int(pids) >= 1

    # -a: the stopped one too, with docker's "--".
    everything = palletd.cli_ok("stats", "--no-stream", "-a", "--format",
                                "{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}")
    assert "done -- -- / -- --" in everything.splitlines()
    # table formats, .Container as named, --no-trunc.
    out = palletd.cli_ok("stats", "--no-stream", "--no-trunc", "--format",
                         "table {{.Container}}\t{{.ID}}", "idle")
    header, line = out.rstrip("\n").split("\n")
    assert header.split() == ["CONTAINER", "CONTAINER", "ID"]
    assert line.split()[0] == "idle" and len(line.split()[1]) == 64
    palletd.cli_ok("rm", "-f", "busy", "idle", "done")


def test_stats_errors(palletd: Any) -> None:
    missing = palletd.cli("stats", "--no-stream", "nosuch")
    assert missing.returncode == 1
    assert missing.stderr == "Error: No such container: nosuch\n"
    bad = palletd.cli("stats", "--no-stream", "--format", "{{.Nope")
    assert bad.returncode == 1 and bad.stdout == ""


def test_stats_streams_one_table_per_second_when_not_a_terminal(palletd: Any) -> None:
    palletd.cli_ok("run", "-d", "--name", "watched", "busybox", "sleep", "1000")
    proc = palletd.cli_popen("stats", "--format", "{{.Name}} {{.PIDs}}", "watched", text=True)
    assert palletd.read_line(proc).strip() == "watched 1"
    assert palletd.read_line(proc).strip() == "watched 1"  # a second sample: still going
    assert proc.poll() is None
    proc.kill()
    proc.wait(10)
    palletd.cli_ok("rm", "-f", "watched")


def test_the_stats_rpc_streams_raw_counters(palletd: Any) -> None:
    import pallet.v1.containers_pb2 as pb

    cid = palletd.cli_ok("run", "-d", "--name", "burner", "busybox", "sh", "-c", BUSY).strip()
    stub = palletd._stubs().containers
    call = stub.Stats(pb.StatsRequest(containers=["burner"], stream=True), timeout=60)
    first, second = next(call).stats, next(call).stats
    call.cancel()
    (a,), (b,) = first, second
    assert (a.id, a.name, a.running) == (cid, "burner", True)
    assert a.pre_system_cpu_ns == 0  # the first of a stream has no previous sample
    assert b.read.ToNanoseconds() > a.read.ToNanoseconds()
    assert (b.pre_cpu_usage_ns, b.pre_system_cpu_ns) == (a.cpu_usage_ns, a.system_cpu_ns)
    assert b.cpu_usage_ns > a.cpu_usage_ns and b.system_cpu_ns > a.system_cpu_ns
    assert b.online_cpus >= 1
    assert b.memory_usage > 0 and b.memory_limit > 0
    assert b.pids_current >= 1
    assert [n.name for n in b.networks] == ["eth0"]  # loopback left out

    # Without stream: one message, and the stream ends.
    once = list(stub.Stats(pb.StatsRequest(containers=[cid[:12]]), timeout=60))
    assert len(once) == 1 and once[0].stats[0].pre_system_cpu_ns > 0
    with pytest.raises(grpc.RpcError) as raised:
        list(stub.Stats(pb.StatsRequest(containers=["nosuch"]), timeout=60))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    palletd.cli_ok("rm", "-f", "burner")
