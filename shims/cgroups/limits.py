"""The container's cgroup limits as interface-file writes, for v1 and v2, and applying them.

Owns: turning the spec's `linux.resources` into the list of (file, value) writes each
cgroup version needs (`v1_writes`, `v2_writes`: pure, so unit-tested without root),
docker's and runc's conversions (cpu shares to v2's cpu.weight, blkio weight to io.weight),
writing such a list in order with every failure naming the file (`apply`), and putting
back what was there when a live change fails midway (`rollback=True`). Also reading the
OOM killer's count of kills in a cgroup (`oom_kills_v1`, `oom_kills_v2`). Must not: create
or remove cgroups (the managers in v1.py and v2.py do), or import anything of the daemon.

Unset values (0, "", ()) are not written at create: a new cgroup has no limits. A live
change (`full=True`) writes every value, the unset ones as "no limit", because the
daemon sends the whole new set: a limit taken away must go from the cgroup too.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence

from pallet.shim.api.spec import Resources, ThrottleDevice
from pallet.shim.cgroups import fs

#: (controller, interface file, value): a write into the container's cgroup. On v2 the
#: controller only says which one the file belongs to (one directory has them all).
Write = tuple[str, str, str]
#: docker's default CFS period when --cpus is given (100 ms).
DEFAULT_PERIOD = 100_000


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares (2..262144) as v2's cpu.weight (1..10000), runc's linear
    mapping: 2 -> 1, 1024 -> 39, 262144 -> 10000."""
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_to_io_weight(weight: int) -> int:
    """blkio.weight (10..1000) as v2's io.weight (1..10000), runc's mapping."""
    weight = min(max(weight, 10), 1000)
    return 1 + ((weight - 10) * 9999) // 990


def _throttles(devices: Sequence[ThrottleDevice]) -> list[tuple[str, int]]:
    return [(f"{d.major}:{d.minor}", d.rate) for d in devices]


def _cpuset_and_pids(r: Resources, full: bool) -> list[Write]:
    """The writes that are the same on v1 and v2: cpuset.cpus/mems, pids.max."""
    out: list[Write] = []
    if r.cpu.cpus:
        out.append(("cpuset", "cpuset.cpus", r.cpu.cpus))
    if r.cpu.mems:
        out.append(("cpuset", "cpuset.mems", r.cpu.mems))
    if r.pids_limit or full:
        out.append(("pids", "pids.max", str(r.pids_limit) if r.pids_limit > 0 else "max"))
    return out


def v2_writes(r: Resources, *, full: bool = False, exists: Callable[[str], bool]) -> list[Write]:
    """The cgroup v2 writes for `r`; `exists(file)` says whether the cgroup has a file
    (memory.swap.max is missing without swap accounting, io.bfq.weight without BFQ)."""
    out: list[Write] = []
    m = r.memory
    if m.limit or full:
        out.append(("memory", "memory.max", str(m.limit) if m.limit else "max"))
    if exists("memory.swap.max"):
        # v2 limits swap alone; docker's --memory-swap is memory + swap.
        if m.swap == -1 or (full and not m.swap):
            if m.limit or full:
                out.append(("memory", "memory.swap.max", "max"))
        elif m.swap and m.limit:
            out.append(("memory", "memory.swap.max", str(max(0, m.swap - m.limit))))
    if m.reservation or full:
        out.append(("memory", "memory.low", str(m.reservation)))
    if m.limit and not full and exists("memory.oom.group"):
        # The container is one unit for the OOM killer: all of it goes, as on a
        # Kubernetes node, never a part that leaves the rest broken.
        out.append(("memory", "memory.oom.group", "1"))
    c = r.cpu
    if c.shares or full:
        out.append(("cpu", "cpu.weight", str(shares_to_weight(c.shares) if c.shares else 100)))
    if c.quota > 0 or c.period or full:
        quota = str(c.quota) if c.quota > 0 else "max"
        out.append(("cpu", "cpu.max", f"{quota} {c.period or DEFAULT_PERIOD}"))
    out.extend(_cpuset_and_pids(r, full))
    b = r.block_io
    if b.weight:
        if exists("io.bfq.weight"):
            out.append(("io", "io.bfq.weight", str(b.weight)))
        else:
            out.append(("io", "io.weight", str(blkio_to_io_weight(b.weight))))
    per_device: dict[str, list[str]] = {}
    for key, devices in (
        ("rbps", b.throttle_read_bps_device), ("wbps", b.throttle_write_bps_device),
        ("riops", b.throttle_read_iops_device), ("wiops", b.throttle_write_iops_device),
    ):
        for device, rate in _throttles(devices):
            per_device.setdefault(device, []).append(f"{key}={rate or 'max'}")
    for device, limits in per_device.items():
        out.append(("io", "io.max", f"{device} {' '.join(limits)}"))
    return out


def v1_writes(
    r: Resources, *, full: bool = False, exists: Callable[[str, str], bool],
    current_memsw: Callable[[], int] = lambda: -1,
) -> list[Write]:
    """The cgroup v1 writes for `r`, in an order the kernel takes: memory.limit_in_bytes
    may not exceed memory.memsw.limit_in_bytes, so memsw goes first when it grows.
    `exists(controller, file)` says whether a file is there (memsw needs swap accounting)."""
    out: list[Write] = []
    m = r.memory
    memsw: list[Write] = []
    if exists("memory", "memory.memsw.limit_in_bytes"):
        if m.swap == -1 or (full and not m.swap):
            if m.limit or full:
                memsw.append(("memory", "memory.memsw.limit_in_bytes", "-1"))
        elif m.swap and m.limit:
            memsw.append(("memory", "memory.memsw.limit_in_bytes", str(m.swap)))
    limit: list[Write] = []
    if m.limit or full:
        limit.append(("memory", "memory.limit_in_bytes", str(m.limit) if m.limit else "-1"))
    if memsw and (memsw[0][2] == "-1" or current_memsw() == -1 or int(memsw[0][2]) > current_memsw()):
        out += memsw + limit
    else:
        out += limit + memsw
    if m.reservation or full:
        out.append(("memory", "memory.soft_limit_in_bytes", str(m.reservation or -1)))
    if m.disable_oom_killer:
        out.append(("memory", "memory.oom_control", "1"))
    c = r.cpu
    if c.shares or full:
        out.append(("cpu", "cpu.shares", str(c.shares or 1024)))
    # The period first: a quota is checked against the period in force.
    if c.period or full:
        out.append(("cpu", "cpu.cfs_period_us", str(c.period or DEFAULT_PERIOD)))
    if c.quota or full:
        out.append(("cpu", "cpu.cfs_quota_us", str(c.quota if c.quota > 0 else -1)))
    out.extend(_cpuset_and_pids(r, full))
    b = r.block_io
    if b.weight:
        name = "blkio.weight" if exists("blkio", "blkio.weight") else "blkio.bfq.weight"
        out.append(("blkio", name, str(b.weight)))
    for name, devices in (
        ("blkio.throttle.read_bps_device", b.throttle_read_bps_device),
        ("blkio.throttle.write_bps_device", b.throttle_write_bps_device),
        ("blkio.throttle.read_iops_device", b.throttle_read_iops_device),
        ("blkio.throttle.write_iops_device", b.throttle_write_iops_device),
    ):
        for device, rate in _throttles(devices):
            out.append(("blkio", name, f"{device} {rate}"))
    return out


#: Where a write goes: the controller's directory of the container's cgroup.
Locate = Callable[[str], str]


def apply(writes: Sequence[Write], locate: Locate, *, rollback: bool = False) -> None:
    """Write each value in order. A refusal raises CgroupError naming the file, the value
    and the kernel's reason; with `rollback`, what was written before it is put back
    first (each file's old content, newest first), so a failed live change leaves the
    limits as they were."""
    done: list[tuple[str, str]] = []
    for controller, name, value in writes:
        path = os.path.join(locate(controller), name)
        old = ""
        if rollback:
            old = _current(path)
        try:
            fs.write_raw(path, value)
        except OSError as exc:
            if rollback:
                _put_back(done)
            raise _refused(path, name, value, exc) from None
        if rollback:
            done.append((path, old))


def _current(path: str) -> str:
    text = fs.read(path, "read").strip()
    if path.endswith("/cpu.max") or path.endswith("/io.weight") or path.endswith("/io.bfq.weight"):
        return text  # "max 100000", "default 100": written back as read
    return text.split("\n")[0]


def _put_back(done: list[tuple[str, str]]) -> None:
    for path, old in reversed(done):
        try:
            fs.write_raw(path, old)
        except OSError:
            pass  # the error being raised says what failed first


def _refused(path: str, name: str, value: str, exc: OSError) -> fs.CgroupError:
    if exc.errno == errno.ENOENT:
        return fs.CgroupError(
            f"cgroup: cannot set {name}: {path} does not exist (the controller is not "
            "enabled for the container's cgroup, or this kernel lacks it): leave that "
            "limit out on this host"
        )
    if exc.errno == errno.EBUSY and name.startswith("memory."):
        return fs.CgroupError(
            f"cgroup: cannot set {name} to {value}: the container uses more memory than "
            "that now; give a higher limit"
        )
    return fs.CgroupError(
        f"cgroup: cannot write {value!r} to {path}: {exc.strerror or exc}"
    )


def _counter(text: str, key: str) -> int | None:
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def oom_kills_v2(path: str) -> int:
    """How many processes the OOM killer killed in the v2 cgroup at `path` (its
    memory.events `oom_kill`, which counts the cgroup and below); 0 when unknown."""
    try:
        with open(os.path.join(path, "memory.events")) as f:
            return _counter(f.read(), "oom_kill") or 0
    except OSError:
        return 0


def oom_kills_v1(path: str) -> int:
    """The same on v1: memory.oom_control's `oom_kill` (Linux >= 4.13); on older kernels
    memory.failcnt (the times the limit was hit) stands in for it."""
    try:
        with open(os.path.join(path, "memory.oom_control")) as f:
            kills = _counter(f.read(), "oom_kill")
    except OSError:
        return 0
    if kills is not None:
        return kills
    try:
        with open(os.path.join(path, "memory.failcnt")) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0
