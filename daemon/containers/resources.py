"""A container's cgroup limits: docker's checks and defaults, updates, and the shim's form.

Owns: checking `Resources` as docker does (memory at least 6 MiB, swap not below memory,
--cpus within the host's CPUs and not with --cpu-quota/--cpu-period, cpuset lists the
host has, block devices that exist) and filling docker's defaults (swap twice the
memory), at create (`check`) and for `update` (`updated`: every value checked before
any is taken, so one bad value changes nothing); the facts about the host those checks
need (`HostFacts`, read by `host_facts`); and the spec's `linux.resources` for a start
(`spec_resources`, which finds each throttled device's numbers). Must not: write cgroups
(the shim does), or know the API.

Every refusal is InvalidArgument saying what is wrong and what to do.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pallet.daemon.containers.model import Resources, ThrottleDevice
from pallet.shim.api import spec
from pallet.v1.errors import InvalidArgument

#: docker's smallest memory limit (and reservation): below it a container cannot start.
MIN_MEMORY = 6 * 1024 * 1024
MIN_SHARES, MAX_SHARES = 2, 262144
MIN_PERIOD, MAX_PERIOD = 1000, 1_000_000
MIN_QUOTA = 1000
MIN_BLKIO, MAX_BLKIO = 10, 1000
#: The values `pallet update` may change (docker update's); the device lists are not.
UPDATABLE = frozenset({
    "memory", "memory_swap", "memory_reservation", "nano_cpus", "cpu_shares", "cpu_period",
    "cpu_quota", "cpuset_cpus", "cpuset_mems", "pids_limit", "blkio_weight", "kernel_memory",
})


@dataclass(frozen=True, slots=True)
class HostFacts:
    """What the checks need to know of this host."""

    ncpu: int
    cpus: frozenset[int]  # online CPUs
    mems: frozenset[int]  # online memory nodes
    # A device path -> (major, minor) of the block device there; raises InvalidArgument.
    block_device: Callable[[str], tuple[int, int]]


def _online(path: str, fallback: str) -> frozenset[int]:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        text = fallback
    return parse_cpuset(text or fallback, "the host's list")


def block_device(path: str) -> tuple[int, int]:
    """(major, minor) of the block device at `path`; InvalidArgument when it is not one."""
    if not path.startswith("/"):
        raise InvalidArgument(f"invalid device {path!r}: give the absolute path of a block device, e.g. /dev/sda")
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InvalidArgument(
            f"device {path} cannot be used for an I/O limit: {exc.strerror or exc}; "
            "give a block device of this host (lsblk lists them)"
        ) from None
    if not stat.S_ISBLK(st.st_mode):
        raise InvalidArgument(
            f"{path} is not a block device: I/O limits apply to block devices (lsblk lists them)"
        )
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def host_facts() -> HostFacts:
    """This host's CPUs and memory nodes (sysfs), and its block devices."""
    count = os.cpu_count() or 1
    cpus = _online("/sys/devices/system/cpu/online", f"0-{count - 1}")
    mems = _online("/sys/devices/system/node/online", "0")
    return HostFacts(ncpu=len(cpus) or count, cpus=cpus, mems=mems, block_device=block_device)


def parse_cpuset(text: str, what: str) -> frozenset[int]:
    """"0-2,4" -> {0, 1, 2, 4}; InvalidArgument naming `what` when it is not such a list."""
    found: set[int] = set()
    for part in text.split(","):
        first, sep, last = part.strip().partition("-")
        try:
            lo = int(first)
            hi = int(last) if sep else lo
        except ValueError:
            lo, hi = -1, -1
        if lo < 0 or hi < lo or hi > 8191 or not first.strip().isdigit():
            raise InvalidArgument(
                f"invalid value {text!r} for {what}: use CPU or node numbers and ranges, "
                "e.g. 0-2,4"
            )
        found.update(range(lo, hi + 1))
    return frozenset(found)


def _cpuset(text: str, available: frozenset[int], flag: str, kind: str) -> str:
    if not text:
        return ""
    asked = parse_cpuset(text, flag)
    missing = sorted(asked - available)
    if missing:
        have = _ranges(available)
        raise InvalidArgument(
            f"{flag} {text}: {kind} {','.join(map(str, missing))} not available on this host "
            f"(it has {have}): choose among those"
        )
    return text.replace(" ", "")


def _ranges(values: frozenset[int]) -> str:
    out: list[str] = []
    for v in sorted(values):
        if out and "-" in out[-1] and int(out[-1].split("-")[1]) == v - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{v}"
        elif out and "-" not in out[-1] and int(out[-1]) == v - 1:
            out[-1] = f"{out[-1]}-{v}"
        else:
            out.append(str(v))
    return ",".join(out) or "none"


def _human(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def check(r: Resources, host: HostFacts) -> Resources:
    """`r` checked, with docker's defaults filled (swap twice the memory)."""
    if r.kernel_memory:
        raise InvalidArgument(
            "--kernel-memory is not supported: current kernels (cgroup v2, and v1 since "
            "Linux 5.4) have no separate kernel memory limit; leave it out (-m limits "
            "kernel memory too)"
        )
    if r.memory < 0 or (r.memory and r.memory < MIN_MEMORY):
        raise InvalidArgument(
            f"memory limit {_human(r.memory) if r.memory > 0 else r.memory} is too small: "
            "the minimum memory limit is 6 MiB (-m 6m)"
        )
    if r.memory_reservation < 0 or (r.memory_reservation and r.memory_reservation < MIN_MEMORY):
        raise InvalidArgument("the minimum memory reservation is 6 MiB (--memory-reservation 6m)")
    if r.memory and r.memory_reservation > r.memory:
        raise InvalidArgument(
            f"memory reservation {_human(r.memory_reservation)} is above the memory limit "
            f"{_human(r.memory)}: a soft limit must not exceed the hard one; lower "
            "--memory-reservation or raise -m"
        )
    swap = r.memory_swap
    if swap < -1:
        raise InvalidArgument(f"invalid --memory-swap {swap}: use -1 (unlimited) or a size")
    if swap > 0:
        if not r.memory:
            raise InvalidArgument(
                "--memory-swap needs a memory limit: set -m too (--memory-swap is memory "
                "plus swap)"
            )
        if swap < r.memory:
            raise InvalidArgument(
                f"--memory-swap {_human(swap)} is below the memory limit {_human(r.memory)}: "
                "it is memory plus swap, so give at least -m's value (or -1 for unlimited swap)"
            )
    elif swap == 0 and r.memory:
        swap = 2 * r.memory  # docker's default: as much swap as memory
    if r.nano_cpus < 0:
        raise InvalidArgument(f"invalid --cpus {r.nano_cpus / 1e9:g}: use a positive number")
    if r.nano_cpus:
        if r.cpu_quota or r.cpu_period:
            raise InvalidArgument(
                "conflicting options: --cpus cannot be given with --cpu-quota or "
                "--cpu-period; use either --cpus, or the quota and period"
            )
        if r.nano_cpus > host.ncpu * 1_000_000_000:
            raise InvalidArgument(
                f"--cpus {r.nano_cpus / 1e9:g} is more than this host has: the range of "
                f"CPUs is from 0.01 to {host.ncpu}.00, as there are only {host.ncpu} CPUs "
                "available"
            )
        if r.nano_cpus < 10_000_000:
            raise InvalidArgument("--cpus must be at least 0.01")
    if r.cpu_shares and not MIN_SHARES <= r.cpu_shares <= MAX_SHARES:
        raise InvalidArgument(
            f"invalid --cpu-shares {r.cpu_shares}: use {MIN_SHARES} to {MAX_SHARES} "
            "(1024 is the default weight)"
        )
    if r.cpu_period and not MIN_PERIOD <= r.cpu_period <= MAX_PERIOD:
        raise InvalidArgument(
            f"invalid --cpu-period {r.cpu_period}: the CFS period is from 1000 (1 ms) to "
            "1000000 (1 s) microseconds"
        )
    if r.cpu_quota and r.cpu_quota != -1 and r.cpu_quota < MIN_QUOTA:
        raise InvalidArgument(
            f"invalid --cpu-quota {r.cpu_quota}: the CFS quota is at least 1000 "
            "microseconds (1 ms), or -1 for none"
        )
    cpus = _cpuset(r.cpuset_cpus, host.cpus, "--cpuset-cpus", "CPUs")
    mems = _cpuset(r.cpuset_mems, host.mems, "--cpuset-mems", "memory nodes")
    if r.pids_limit < -1:
        raise InvalidArgument(
            f"invalid --pids-limit {r.pids_limit}: use a positive number, or -1 (or 0) for no limit"
        )
    if r.blkio_weight and not MIN_BLKIO <= r.blkio_weight <= MAX_BLKIO:
        raise InvalidArgument(
            f"invalid --blkio-weight {r.blkio_weight}: use {MIN_BLKIO} to {MAX_BLKIO}"
        )
    for flag, devices in (
        ("--device-read-bps", r.device_read_bps), ("--device-write-bps", r.device_write_bps),
        ("--device-read-iops", r.device_read_iops), ("--device-write-iops", r.device_write_iops),
    ):
        for d in devices:
            if d.rate < 0:
                raise InvalidArgument(f"invalid {flag} {d.path}:{d.rate}: the rate must be 0 or more")
            host.block_device(d.path)
    return replace(
        r, memory_swap=swap, cpuset_cpus=cpus, cpuset_mems=mems,
        pids_limit=max(0, r.pids_limit), cpu_quota=max(0, r.cpu_quota),
    )


def check_here(r: Resources) -> Resources:
    """`check` against this host (reads sysfs and stats devices: off the event loop)."""
    return check(r, host_facts())


def updated(current: Resources, changes: Mapping[str, Any], host: HostFacts) -> Resources:
    """`current` with `changes` (field name -> value, only those given), all checked
    before anything is taken. As docker update: a new memory limit above the swap limit
    in force needs a new --memory-swap too; a change of --cpus clears quota and period
    and the reverse."""
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise InvalidArgument(
            f"cannot update {', '.join(sorted(unknown))}: only "
            f"{', '.join(sorted(UPDATABLE))} can be changed on an existing container"
        )
    if "nano_cpus" in changes and ("cpu_quota" in changes or "cpu_period" in changes):
        raise InvalidArgument(
            "conflicting options: --cpus cannot be given with --cpu-quota or --cpu-period"
        )
    new = replace(current, **changes)
    if "nano_cpus" in changes:
        new = replace(new, cpu_quota=0, cpu_period=0)
    elif "cpu_quota" in changes or "cpu_period" in changes:
        new = replace(new, nano_cpus=0)
    if "memory" in changes and "memory_swap" not in changes and current.memory_swap > 0:
        if new.memory > current.memory_swap:
            raise InvalidArgument(
                f"memory limit {_human(new.memory)} is above the memory+swap limit in force "
                f"({_human(current.memory_swap)}): give --memory-swap too"
            )
    if "memory" in changes and new.memory and not current.memory and "memory_swap" not in changes:
        new = replace(new, memory_swap=0)  # docker's default follows the new limit
    return check(new, host)


def spec_resources(r: Resources, block_device: Callable[[str], tuple[int, int]] = block_device) -> spec.Resources:
    """The spec's linux.resources for `r` (checked already): docker's --cpus as a CFS
    quota per 100 ms period, each throttled device by its numbers (looked up now: they
    may differ after a reboot)."""
    period, quota = r.cpu_period, r.cpu_quota
    if r.nano_cpus:
        period = 100_000
        quota = r.nano_cpus * period // 1_000_000_000

    def devices(items: tuple[ThrottleDevice, ...]) -> tuple[spec.ThrottleDevice, ...]:
        return tuple(spec.ThrottleDevice(*block_device(d.path), rate=d.rate) for d in items)

    return spec.Resources(
        memory=spec.Memory(
            limit=r.memory, reservation=r.memory_reservation, swap=r.memory_swap,
            disable_oom_killer=r.oom_kill_disable,
        ),
        cpu=spec.Cpu(shares=r.cpu_shares, quota=quota, period=period, cpus=r.cpuset_cpus,
                     mems=r.cpuset_mems),
        pids_limit=r.pids_limit,
        block_io=spec.BlockIO(
            weight=r.blkio_weight,
            throttle_read_bps_device=devices(r.device_read_bps),
            throttle_write_bps_device=devices(r.device_write_bps),
            throttle_read_iops_device=devices(r.device_read_iops),
            throttle_write_iops_device=devices(r.device_write_iops),
        ),
    )

