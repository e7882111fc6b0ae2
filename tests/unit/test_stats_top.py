"""The pure parts of `stats` and `top`: reading cgroup and /proc texts, docker's figures
from raw counters, and cutting ps's table to a container's processes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pallet.client.views_stats import cpu_percent, memory_used, stats_fields
from pallet.daemon.containers import stats
from pallet.daemon.containers.cgroupfs import CgroupLayout, v1_mounts
from pallet.daemon.containers.top import check_ps_args, parse_ps
from pallet.v1.errors import FailedPrecondition, InvalidArgument


def test_block_io_of_v1_and_v2() -> None:
    v1 = b"8:0 Read 4096\n8:0 Write 512\n8:0 Sync 0\n8:16 Read 100\nTotal 4708\n"
    assert stats.block_io(v1, 1) == (4196, 512)
    v2 = b"8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=5 wbytes=0\n"
    assert stats.block_io(v2, 2) == (15, 20)
    assert stats.block_io(b"", 2) == (0, 0)


def test_keyed_values_and_limits() -> None:
    v2 = b"anon 100\nfile 300\ninactive_file 200\nactive_file 100\n"
    assert stats._keyed(v2, b"inactive_file") == 200
    assert stats._keyed(v2, b"anon") == 100  # the first line too
    assert stats._keyed(b"total_cache 5\ntotal_inactive_file 7", b"total_inactive_file") == 7
    assert stats._keyed(v2, b"nosuch") == 0
    assert stats._int(b"max\n") == 0 and stats._int(b"42\n") == 42


def test_net_dev_leaves_loopback_out() -> None:
    text = (
        b"Inter-|   Receive                                                |  Transmit\n"
        b" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets\n"
        b"    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n"
        b"  eth0:    1500      10    0    0    0     0          0         0      700       5    0    0    0     0       0          0\n"
    )
    assert stats.net_dev(text) == (stats.NetSample("eth0", 1500, 700, 10, 5),)


def test_system_cpu_is_docker_s_sum() -> None:
    line = b"cpu  10 20 30 40 50 60 70 80 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n"
    assert stats.system_cpu_ns(line) == 280 * 1_000_000_000 // stats._CLK_TCK


def test_cgroup_dirs_v1_and_v2() -> None:
    mountinfo = (
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
        "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    )
    layout = CgroupLayout(1, v1_mounts=v1_mounts(mountinfo))
    dirs = layout.dirs("pallet/c1")
    assert (dirs.cpu, dirs.memory, dirs.pids) == (
        "/sys/fs/cgroup/cpuacct/pallet/c1", "/sys/fs/cgroup/memory/pallet/c1", "")
    assert layout.procs_dir("pallet/c1") == "/sys/fs/cgroup/memory/pallet/c1"
    v2 = CgroupLayout(2, "/sys/fs/cgroup").dirs("pallet/c1")
    assert v2.cpu == v2.memory == v2.pids == "/sys/fs/cgroup/pallet/c1"


def _sample(**kw: object) -> SimpleNamespace:
    base = dict(id="a" * 64, name="web", running=True, cpu_usage_ns=0, system_cpu_ns=0,
                pre_cpu_usage_ns=0, pre_system_cpu_ns=0, online_cpus=2, memory_usage=0,
                memory_limit=0, memory_inactive_file=0, networks=[], block_read_bytes=0,
                block_write_bytes=0, pids_current=0)
    base.update(kw)
    return SimpleNamespace(**base)


def test_docker_s_figures() -> None:
    s = _sample(cpu_usage_ns=150, pre_cpu_usage_ns=50, system_cpu_ns=2000, pre_system_cpu_ns=1000)
    assert cpu_percent(s) == pytest.approx(20.0)  # 100/1000 of the host, 2 CPUs
    assert cpu_percent(_sample(cpu_usage_ns=5)) == 0.0  # no previous sample
    assert memory_used(_sample(memory_usage=100, memory_inactive_file=30)) == 70
    net = [SimpleNamespace(rx_bytes=1000, tx_bytes=2000), SimpleNamespace(rx_bytes=500, tx_bytes=0)]
    row = stats_fields(_sample(memory_usage=1024 * 1024 * 3, memory_limit=1024 ** 3, networks=net,
                               block_read_bytes=4096, pids_current=3), "web", trunc=True)
    assert row == {
        "Container": "web", "Name": "web", "ID": "a" * 12, "CPUPerc": "0.00%",
        "MemUsage": "3MiB / 1GiB", "MemPerc": "0.29%", "NetIO": "1.5kB / 2kB",
        "BlockIO": "4.1kB / 0B", "PIDs": "3",
    }
    stopped = stats_fields(_sample(running=False), "web", trunc=False)
    assert (stopped["ID"], stopped["MemUsage"], stopped["PIDs"]) == ("a" * 64, "-- / --", "--")


PS = """\
UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 16:00 ?        00:00:01 /sbin/init splash
root       12345       1  0 16:01 ?        00:00:00 sleep 1000
root      123456   12345  0 16:01 ?        00:00:00 sh -c echo a b
"""


def test_parse_ps_keeps_the_container_s_rows_whole() -> None:
    table = parse_ps(PS, [12345, 123456])
    assert table.titles == ("UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD")
    assert table.processes == (
        ("root", "12345", "1", "0", "16:01", "?", "00:00:00", "sleep 1000"),
        ("root", "123456", "12345", "0", "16:01", "?", "00:00:00", "sh -c echo a b"),
    )
    threads = "  PID TTY      STAT   TIME COMMAND\n    7 ?        -      0:00 a\n    - -        Sl     0:00 -\n    8 ?        -      0:00 b\n    - -        Sl     0:00 -\n"
    assert [row[0] for row in parse_ps(threads, [7]).processes] == ["7", "-"]
    with pytest.raises(FailedPrecondition, match="PID field"):
        parse_ps("USER COMMAND\nroot x\n", [1])


def test_ps_args_as_docker_checks_them() -> None:
    assert check_ps_args([]) == ["-ef"]
    assert check_ps_args(["-o", "pid,comm"]) == ["-o", "pid,comm"]
    with pytest.raises(InvalidArgument, match="--no-headers is not allowed"):
        check_ps_args(["-o", "pid", "--no-headers"])
    with pytest.raises(InvalidArgument, match='"user=PID" is not allowed'):
        check_ps_args(["-o", "user=PID"])
    assert check_ps_args(["-o", "pid=PID"])
