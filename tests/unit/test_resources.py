"""Resource limits without root: the CLI's value syntax, the daemon's checks and defaults,
`update`'s all-or-nothing merge, the spec the shim gets, and the cgroup v1/v2 writes
(pure plans, then applied to a fake cgroup directory, with the rollback of a refusal)."""

from __future__ import annotations

import argparse
import errno
import os
from pathlib import Path

import pytest

from pallet.client import limits as cli_limits
from pallet.daemon.api import convert
from pallet.daemon.containers.model import Resources, ThrottleDevice
from pallet.daemon.containers.resources import (
    HostFacts,
    check,
    parse_cpuset,
    spec_resources,
    updated,
)
from pallet.shim.api import spec
from pallet.shim.cgroups import CgroupError, fs, limits
from pallet.v1.errors import InvalidArgument

MiB = 1 << 20


def _block(path: str) -> tuple[int, int]:
    if path == "/dev/sda":
        return 8, 0
    raise InvalidArgument(f"{path} is not a block device")


HOST = HostFacts(ncpu=2, cpus=frozenset({0, 1}), mems=frozenset({0}), block_device=_block)


# -- the CLI's syntax --------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [
    ("32m", 32 * MiB), ("32M", 32 * MiB), ("32mb", 32 * MiB), ("1g", 1 << 30), ("512k", 512 << 10),
    ("1024", 1024), ("1.5g", 3 << 29), ("64MiB", 64 * MiB), ("1b", 1),
])
def test_sizes_as_docker_reads_them(text: str, value: int) -> None:
    assert cli_limits.parse_size(text, "-m") == value


@pytest.mark.parametrize("text", ["", "m", "32x", "-1", "1e3", "12 mm"])
def test_bad_sizes_name_the_flag(text: str) -> None:
    with pytest.raises(InvalidArgument, match="-m"):
        cli_limits.parse_size(text, "-m")


def test_swap_may_be_unlimited() -> None:
    assert cli_limits.parse_size("-1", "--memory-swap", allow_unlimited=True) == -1


@pytest.mark.parametrize(("text", "nano"), [("0.5", 500_000_000), ("1", 10**9), ("1.25", 1_250_000_000),
                                            ("0.000000001", 1)])
def test_cpus_are_nano_cpus(text: str, nano: int) -> None:
    assert cli_limits.parse_cpus(text) == nano


@pytest.mark.parametrize("text", ["half", "0.0000000001", "nan", "inf"])
def test_bad_cpus(text: str) -> None:
    with pytest.raises(InvalidArgument, match="--cpus"):
        cli_limits.parse_cpus(text)


def test_throttles() -> None:
    assert cli_limits.parse_throttle("/dev/sda:1mb", "--device-read-bps", bytes_rate=True) == ("/dev/sda", MiB)
    assert cli_limits.parse_throttle("/dev/sda:300", "--device-read-iops", bytes_rate=False) == ("/dev/sda", 300)
    for bad in ("/dev/sda", ":1", "/dev/sda:1mb"):
        with pytest.raises(InvalidArgument, match="--device-read-iops"):
            cli_limits.parse_throttle(bad, "--device-read-iops", bytes_rate=False)


def _args(argv: list[str], update: bool = False) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    cli_limits.add_flags(p, update=update)
    return p.parse_args(argv)


def test_the_message_has_only_the_flags_given() -> None:
    r = cli_limits.resources_message(_args(["-m", "32m", "--pids-limit", "-1", "--cpus", "0.5",
                                            "--device-write-bps", "/dev/sda:2m"]))
    assert r.HasField("memory") and r.memory == 32 * MiB
    assert r.HasField("pids_limit") and r.pids_limit == -1
    assert r.nano_cpus == 500_000_000
    assert not r.HasField("memory_swap") and not r.HasField("cpu_shares")
    assert [(d.path, d.rate) for d in r.blkio_device_write_bps] == [("/dev/sda", 2 * MiB)]
    changes = convert.resource_changes(r)
    assert changes == {"memory": 32 * MiB, "pids_limit": -1, "nano_cpus": 500_000_000,
                       "device_write_bps": (ThrottleDevice("/dev/sda", 2 * MiB),)}
    assert not cli_limits.given(_args([], update=True))
    assert cli_limits.given(_args(["--pids-limit", "0"], update=True))


def test_resources_round_trip_through_the_message() -> None:
    r = check(Resources(memory=64 * MiB, nano_cpus=10**9, cpuset_cpus="0", pids_limit=9,
                        device_read_iops=(ThrottleDevice("/dev/sda", 5),)), HOST)
    assert convert.resources(convert.resources_message(r)) == r


# -- the daemon's checks and defaults ----------------------------------------------------


def test_no_limits_is_fine() -> None:
    assert check(Resources(), HOST) == Resources()


def test_swap_defaults_to_twice_the_memory_and_minus_one_is_unlimited() -> None:
    assert check(Resources(memory=32 * MiB), HOST).memory_swap == 64 * MiB
    assert check(Resources(memory=32 * MiB, memory_swap=-1), HOST).memory_swap == -1
    assert check(Resources(memory=32 * MiB, memory_swap=32 * MiB), HOST).memory_swap == 32 * MiB


def test_unlimited_pids_and_quota_are_stored_as_zero() -> None:
    assert check(Resources(pids_limit=-1, cpu_quota=-1), HOST) == Resources()


@pytest.mark.parametrize(("r", "message"), [
    (Resources(memory=4 * MiB), "6 MiB"),
    (Resources(memory=-5), "6 MiB"),
    (Resources(memory=64 * MiB, memory_swap=32 * MiB), "below the memory limit"),
    (Resources(memory_swap=64 * MiB), "needs a memory limit"),
    (Resources(memory=32 * MiB, memory_swap=-2), "--memory-swap"),
    (Resources(memory=32 * MiB, memory_reservation=64 * MiB), "above the memory limit"),
    (Resources(memory_reservation=1 * MiB), "6 MiB"),
    (Resources(kernel_memory=64 * MiB), "not supported"),
    (Resources(nano_cpus=3 * 10**9), "only 2 CPUs"),
    (Resources(nano_cpus=10**9, cpu_quota=50000), "conflicting"),
    (Resources(nano_cpus=10**9, cpu_period=50000), "conflicting"),
    (Resources(nano_cpus=-1), "--cpus"),
    (Resources(cpu_shares=1), "--cpu-shares"),
    (Resources(cpu_shares=300000), "--cpu-shares"),
    (Resources(cpu_period=999), "CFS period"),
    (Resources(cpu_period=2_000_000), "CFS period"),
    (Resources(cpu_quota=999), "CFS quota"),
    (Resources(cpuset_cpus="0-3"), "CPUs 2,3 not available"),
    (Resources(cpuset_cpus="1-0"), "CPU or node numbers"),
    (Resources(cpuset_cpus="x"), "CPU or node numbers"),
    (Resources(cpuset_mems="1"), "memory nodes 1 not available"),
    (Resources(pids_limit=-2), "--pids-limit"),
    (Resources(blkio_weight=5), "--blkio-weight"),
    (Resources(blkio_weight=1001), "--blkio-weight"),
    (Resources(device_read_bps=(ThrottleDevice("/dev/null", 1),)), "not a block device"),
    (Resources(device_write_iops=(ThrottleDevice("/dev/sda", -1),)), "0 or more"),
])
def test_bad_values_are_invalid_argument(r: Resources, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        check(r, HOST)


def test_cpusets() -> None:
    assert parse_cpuset("0-2,4", "x") == {0, 1, 2, 4}
    assert check(Resources(cpuset_cpus="0,1", cpuset_mems="0"), HOST).cpuset_cpus == "0,1"


def test_a_real_block_device_and_a_missing_one() -> None:
    from pallet.daemon.containers.resources import block_device

    with pytest.raises(InvalidArgument, match="/dev/nonexistent"):
        block_device("/dev/nonexistent")
    with pytest.raises(InvalidArgument, match="not a block device"):
        block_device("/dev/null")
    with pytest.raises(InvalidArgument, match="absolute path"):
        block_device("sda")


# -- update ------------------------------------------------------------------------------


def test_update_changes_only_what_is_given() -> None:
    current = check(Resources(memory=64 * MiB, pids_limit=30, cpu_shares=512), HOST)
    new = updated(current, {"pids_limit": 50}, HOST)
    assert new == Resources(memory=64 * MiB, memory_swap=128 * MiB, pids_limit=50, cpu_shares=512)
    assert updated(current, {"pids_limit": -1}, HOST).pids_limit == 0


def test_update_with_one_bad_value_raises_before_taking_any() -> None:
    current = check(Resources(pids_limit=30), HOST)
    with pytest.raises(InvalidArgument, match="CPUs"):
        updated(current, {"pids_limit": 50, "nano_cpus": 9 * 10**9}, HOST)
    assert current.pids_limit == 30  # a value: nothing to undo


def test_update_cpus_replaces_quota_and_the_reverse() -> None:
    quota = check(Resources(cpu_quota=20000, cpu_period=100000), HOST)
    assert updated(quota, {"nano_cpus": 10**9}, HOST) == Resources(nano_cpus=10**9)
    cpus = check(Resources(nano_cpus=10**9), HOST)
    assert updated(cpus, {"cpu_quota": 30000}, HOST) == Resources(cpu_quota=30000)
    with pytest.raises(InvalidArgument, match="conflicting"):
        updated(cpus, {"nano_cpus": 10**9, "cpu_quota": 30000}, HOST)


def test_update_memory_above_the_swap_in_force_needs_swap() -> None:
    current = check(Resources(memory=32 * MiB), HOST)  # swap 64m
    with pytest.raises(InvalidArgument, match="--memory-swap too"):
        updated(current, {"memory": 128 * MiB}, HOST)
    new = updated(current, {"memory": 128 * MiB, "memory_swap": 256 * MiB}, HOST)
    assert (new.memory, new.memory_swap) == (128 * MiB, 256 * MiB)
    # A first memory limit gets docker's default swap.
    assert updated(Resources(), {"memory": 16 * MiB}, HOST).memory_swap == 32 * MiB


def test_update_refuses_what_cannot_change() -> None:
    with pytest.raises(InvalidArgument, match="cannot update device_read_bps"):
        updated(Resources(), {"device_read_bps": (ThrottleDevice("/dev/sda", 1),)}, HOST)
    with pytest.raises(InvalidArgument, match="not supported"):
        updated(Resources(), {"kernel_memory": MiB * 64}, HOST)


# -- the shim's spec ---------------------------------------------------------------------


def test_spec_resources() -> None:
    r = check(Resources(memory=32 * MiB, memory_reservation=16 * MiB, nano_cpus=1_500_000_000,
                        cpu_shares=512, pids_limit=20, blkio_weight=300,
                        device_read_bps=(ThrottleDevice("/dev/sda", MiB),)), HOST)
    s = spec_resources(r, _block)
    assert s.memory == spec.Memory(limit=32 * MiB, reservation=16 * MiB, swap=64 * MiB)
    assert s.cpu == spec.Cpu(shares=512, quota=150000, period=100000)
    assert s.pids_limit == 20
    assert s.block_io.weight == 300
    assert s.block_io.throttle_read_bps_device == (spec.ThrottleDevice(8, 0, MiB),)
    assert spec_resources(Resources()) == spec.Resources()


# -- the cgroup writes -------------------------------------------------------------------


LIMITED = spec.Resources(
    memory=spec.Memory(limit=32 * MiB, reservation=16 * MiB, swap=48 * MiB),
    cpu=spec.Cpu(shares=1024, quota=50000, period=100000, cpus="0", mems="0"),
    pids_limit=20,
    block_io=spec.BlockIO(weight=500, throttle_read_bps_device=(spec.ThrottleDevice(8, 0, 1000),),
                          throttle_write_iops_device=(spec.ThrottleDevice(8, 0, 7),)),
)


def test_shares_and_weights_convert_as_runc_does() -> None:
    assert limits.shares_to_weight(2) == 1
    assert limits.shares_to_weight(1024) == 39
    assert limits.shares_to_weight(262144) == 10000
    assert limits.blkio_to_io_weight(10) == 1
    assert limits.blkio_to_io_weight(1000) == 10000
    assert limits.blkio_to_io_weight(500) == 4950


def test_v2_writes() -> None:
    writes = limits.v2_writes(LIMITED, exists=lambda name: name != "io.bfq.weight")
    assert [(f, v) for _, f, v in writes] == [
        ("memory.max", str(32 * MiB)),
        ("memory.swap.max", str(16 * MiB)),  # v2's swap alone: docker's memory-swap minus memory
        ("memory.low", str(16 * MiB)),
        ("memory.oom.group", "1"),
        ("cpu.weight", "39"),
        ("cpu.max", "50000 100000"),
        ("cpuset.cpus", "0"),
        ("cpuset.mems", "0"),
        ("pids.max", "20"),
        ("io.weight", "4950"),
        ("io.max", "8:0 rbps=1000 wiops=7"),
    ]


def test_v2_nothing_for_no_limits_and_everything_when_live() -> None:
    assert limits.v2_writes(spec.Resources(), exists=lambda name: True) == []
    live = {f: v for _, f, v in limits.v2_writes(spec.Resources(), full=True, exists=lambda name: True)}
    assert live == {"memory.max": "max", "memory.swap.max": "max", "memory.low": "0",
                    "cpu.weight": "100", "cpu.max": "max 100000", "pids.max": "max"}
    # No swap accounting: no swap file to write; unlimited swap.
    unlimited = spec.Resources(memory=spec.Memory(limit=32 * MiB, swap=-1))
    assert ("memory", "memory.swap.max", "max") in limits.v2_writes(unlimited, exists=lambda n: True)
    assert not any(f == "memory.swap.max" for _, f, _ in limits.v2_writes(unlimited, exists=lambda n: n != "memory.swap.max"))


def test_v1_writes() -> None:
    writes = limits.v1_writes(LIMITED, exists=lambda c, n: True)
    assert writes == [
        ("memory", "memory.memsw.limit_in_bytes", str(48 * MiB)),  # memsw first while it grows
        ("memory", "memory.limit_in_bytes", str(32 * MiB)),
        ("memory", "memory.soft_limit_in_bytes", str(16 * MiB)),
        ("cpu", "cpu.shares", "1024"),
        ("cpu", "cpu.cfs_period_us", "100000"),
        ("cpu", "cpu.cfs_quota_us", "50000"),
        ("cpuset", "cpuset.cpus", "0"),
        ("cpuset", "cpuset.mems", "0"),
        ("pids", "pids.max", "20"),
        ("blkio", "blkio.weight", "500"),
        ("blkio", "blkio.throttle.read_bps_device", "8:0 1000"),
        ("blkio", "blkio.throttle.write_iops_device", "8:0 7"),
    ]


def test_v1_shrinking_memsw_goes_after_the_limit_and_oom_disable() -> None:
    r = spec.Resources(memory=spec.Memory(limit=32 * MiB, swap=40 * MiB, disable_oom_killer=True))
    writes = limits.v1_writes(r, exists=lambda c, n: True, current_memsw=lambda: 100 * MiB)
    assert [f for _, f, _ in writes] == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes",
                                         "memory.oom_control"]
    # No swap accounting (no memsw file): the swap limit is left out.
    writes = limits.v1_writes(r, exists=lambda c, n: n != "memory.memsw.limit_in_bytes")
    assert "memory.memsw.limit_in_bytes" not in [f for _, f, _ in writes]


def test_apply_writes_in_order_and_a_refusal_names_the_file(tmp_path: Path) -> None:
    for name in ("memory.max", "pids.max"):
        (tmp_path / name).write_text("")  # a cgroup file takes each write whole
    limits.apply([("memory", "memory.max", "100"), ("pids", "pids.max", "5")], lambda c: str(tmp_path))
    assert (tmp_path / "memory.max").read_text() == "100"
    with pytest.raises(CgroupError, match="cpu.max does not exist"):
        limits.apply([("cpu", "cpu.max", "1 2")], lambda c: str(tmp_path))


def test_a_refused_live_change_puts_back_what_was_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pids.max").write_text("50\n")
    (tmp_path / "memory.max").write_text("134217728\n")
    real = fs.write_raw

    def kernel(path: str, value: str) -> None:
        if path.endswith("memory.max") and value == "8":
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        with open(path, "w") as f:  # a regular file: truncate, as a cgroup file is replaced
            f.write(value)

    monkeypatch.setattr(fs, "write_raw", kernel)
    with pytest.raises(CgroupError, match="uses more memory"):
        limits.apply([("pids", "pids.max", "60"), ("memory", "memory.max", "8")],
                     lambda c: str(tmp_path), rollback=True)
    assert (tmp_path / "pids.max").read_text() == "50"
    assert (tmp_path / "memory.max").read_text().strip() == "134217728"
    assert real is not kernel


def test_oom_kill_counters(tmp_path: Path) -> None:
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n")
    assert limits.oom_kills_v2(str(tmp_path)) == 1
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert limits.oom_kills_v1(str(tmp_path)) == 2
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")
    (tmp_path / "memory.failcnt").write_text("3\n")
    assert limits.oom_kills_v1(str(tmp_path)) == 3
    assert limits.oom_kills_v2(str(tmp_path / "gone")) == 0
