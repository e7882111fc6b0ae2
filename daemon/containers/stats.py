"""`stats`: containers' resource counters, sampled about once a second for a stream.

Owns: `ContainerStats.samples`, one stream's samples of the containers it asked for (named
ones, or every running one taken again at each tick), and reading the counters: the
container's cgroup files (v1: cpuacct.usage, memory.usage_in_bytes / limit_in_bytes /
stat, blkio.throttle.io_service_bytes, pids.current / max; v2: cpu.stat, memory.current /
max / stat, io.stat, pids.current / max), its network namespace's /proc/<init>/net/dev
(loopback left out), and the host's /proc/stat. Must not: compute percentages (clients do,
from the raw counters, as docker's do), change anything, or ask the shim.

Cheap by design, so one stream of many containers costs palletd little: a stream is one
loop with one timer; each tick reads every container's files once, in one hop to a worker
thread, with a few syscalls per file (open, one read, close) and no parsing beyond the
numbers wanted; the paths of a container's run are worked out once per stream. Nothing
wakes per container, and nothing runs between a stream's ticks.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from pallet.daemon.containers.cgroupfs import CgroupLayout
from pallet.daemon.containers.manager import ContainerManager
from pallet.daemon.containers.model import Container, Status

#: Seconds between two samples of a stream (docker's collector's interval).
INTERVAL_S = 1.0
_LIVE = (Status.RUNNING, Status.PAUSED)
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class NetSample:
    name: str
    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int


@dataclass(frozen=True, slots=True)
class StatsSample:
    """One container's counters at `read_ns` (see containers.proto's ContainerStats)."""

    id: str
    name: str
    running: bool
    read_ns: int
    cpu_usage_ns: int = 0
    system_cpu_ns: int = 0
    online_cpus: int = 0
    pre_cpu_usage_ns: int = 0
    pre_system_cpu_ns: int = 0
    memory_usage: int = 0
    memory_limit: int = 0
    memory_inactive_file: int = 0
    networks: tuple[NetSample, ...] = ()
    block_read_bytes: int = 0
    block_write_bytes: int = 0
    pids_current: int = 0
    pids_limit: int = 0


@dataclass(frozen=True, slots=True)
class _Files:
    """The files one run of one container is read from ("" where there is none)."""

    pid: int
    version: int
    cpu: str
    memory_usage: str
    memory_limit: str
    memory_stat: str
    io: str
    pids_current: str
    pids_max: str
    net_dev: str


def _files(layout: CgroupLayout, relative: str, pid: int, host_network: bool) -> _Files:
    dirs = layout.dirs(relative)
    net = "" if host_network else f"/proc/{pid}/net/dev"

    def at(directory: str, name: str) -> str:
        return os.path.join(directory, name) if directory else ""

    if dirs.version == 2:
        return _Files(
            pid, 2, at(dirs.cpu, "cpu.stat"), at(dirs.memory, "memory.current"),
            at(dirs.memory, "memory.max"), at(dirs.memory, "memory.stat"),
            at(dirs.blkio, "io.stat"), at(dirs.pids, "pids.current"),
            at(dirs.pids, "pids.max"), net,
        )
    io = at(dirs.blkio, "blkio.throttle.io_service_bytes_recursive")
    if io and not os.path.exists(io):
        io = at(dirs.blkio, "blkio.throttle.io_service_bytes")
    return _Files(
        pid, 1, at(dirs.cpu, "cpuacct.usage"), at(dirs.memory, "memory.usage_in_bytes"),
        at(dirs.memory, "memory.limit_in_bytes"), at(dirs.memory, "memory.stat"), io,
        at(dirs.pids, "pids.current"), at(dirs.pids, "pids.max"), net,
    )


def _read(path: str) -> bytes:
    """A kernel pseudo-file's content in one read (b"" when it is not there)."""
    if not path:
        return b""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _int(data: bytes) -> int:
    """A file holding one number; "max" (no limit) and nothing read are 0."""
    try:
        return int(data)
    except ValueError:
        return 0


def _keyed(data: bytes, key: bytes) -> int:
    """The value of `key` in a "key value" per line file (memory.stat, cpu.stat)."""
    at = (b"\n" + data).find(b"\n" + key + b" ")
    if at < 0:
        return 0
    start = at + len(key) + 1
    end = data.find(b"\n", start)
    return _int(data[start:] if end < 0 else data[start:end])


def block_io(data: bytes, version: int) -> tuple[int, int]:
    """(read, written) bytes: v1's "MAJ:MIN Read N" lines, v2's "rbytes=N wbytes=N"."""
    read = written = 0
    for line in data.split(b"\n"):
        words = line.split()
        if version == 1:
            if len(words) == 3:
                if words[1] == b"Read":
                    read += _int(words[2])
                elif words[1] == b"Write":
                    written += _int(words[2])
            continue
        for word in words[1:]:
            if word.startswith(b"rbytes="):
                read += _int(word[7:])
            elif word.startswith(b"wbytes="):
                written += _int(word[7:])
    return read, written


def net_dev(data: bytes) -> tuple[NetSample, ...]:
    """The interfaces of a /proc/<pid>/net/dev, loopback left out."""
    found = []
    for line in data.split(b"\n")[2:]:
        name, colon, rest = line.partition(b":")
        if not colon:
            continue
        name = name.strip()
        if name == b"lo":
            continue
        f = rest.split()
        if len(f) < 10:
            continue
        found.append(NetSample(name.decode(errors="replace"), int(f[0]), int(f[8]), int(f[1]), int(f[9])))
    return tuple(found)


def system_cpu_ns(stat: bytes) -> int:
    """The host's CPU time in nanoseconds, as docker counts it: the first line of
    /proc/stat, user nice system idle iowait irq softirq."""
    line = stat.split(b"\n", 1)[0].split()
    if not line or line[0] != b"cpu":
        return 0
    return sum(int(x) for x in line[1:8]) * 1_000_000_000 // _CLK_TCK


def host_memory(meminfo: str = "/proc/meminfo") -> int:
    """MemTotal in bytes: the limit docker shows for a container without one."""
    try:
        with open(meminfo, "rb") as f:
            for line in f:
                if line.startswith(b"MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class ContainerStats:
    """Samples containers' counters for `stats` streams."""

    def __init__(
        self,
        containers: ContainerManager,
        interval: float = INTERVAL_S,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._containers = containers
        self._interval = interval
        self._clock = clock
        self._host_memory = host_memory()

    async def samples(
        self, refs: Sequence[str], all: bool = False, stream: bool = True
    ) -> AsyncIterator[list[StatsSample]]:
        """Samples about once a second (with `stream`), or one: the named containers
        (NotFound before anything is sent for one that is not there), or every running
        one (every one with `all`) as they are at each tick."""
        named = [self._containers.resolve(ref).id for ref in refs]
        # What this stream keeps between ticks: each running container's files, and its
        # previous CPU counters (docker's precpu_stats). Touched in one thread at a time.
        files: dict[str, _Files] = {}
        previous: dict[str, tuple[int, int]] = {}
        loop = asyncio.get_running_loop()
        due = loop.time()
        if not stream:
            # One sample, but with a previous one a tick before it, for the CPU figure.
            await asyncio.to_thread(self._sample, self._chosen(named, all), files, previous)
            await asyncio.sleep(self._interval)
        while True:
            batch = await asyncio.to_thread(self._sample, self._chosen(named, all), files, previous)
            yield batch
            if not stream:
                return
            due += self._interval
            # One timer per stream; a tick that ran late is not made up for.
            due = max(due, loop.time())
            await asyncio.sleep(due - loop.time())

    def _chosen(self, named: list[str], all: bool) -> list[Container]:
        if named:
            found = (self._containers.lookup(cid) for cid in named)
            return [c for c in found if c is not None]
        return [c for c in self._containers.containers() if all or c.state.status in _LIVE]

    def _sample(
        self,
        containers: list[Container],
        files: dict[str, _Files],
        previous: dict[str, tuple[int, int]],
    ) -> list[StatsSample]:
        """Every container's counters (in a worker thread: file reads)."""
        system = system_cpu_ns(_read("/proc/stat"))
        cpus = os.sysconf("SC_NPROCESSORS_ONLN")
        now = self._clock()
        layout = self._containers.cgroups
        out = []
        for c in containers:
            pid = c.state.pid
            if c.state.status not in _LIVE or pid <= 0:
                files.pop(c.id, None)
                previous.pop(c.id, None)
                out.append(StatsSample(c.id, c.name, False, now))
                continue
            f = files.get(c.id)
            if f is None or f.pid != pid:
                f = files[c.id] = _files(
                    layout, self._containers.cgroup_relative(c), pid,
                    c.host_config.network_mode == "host",
                )
            out.append(self._read_one(c, f, now, system, cpus, previous))
        return out

    def _read_one(
        self,
        c: Container,
        f: _Files,
        now: int,
        system: int,
        cpus: int,
        previous: dict[str, tuple[int, int]],
    ) -> StatsSample:
        if f.version == 2:
            cpu = _keyed(_read(f.cpu), b"usage_usec") * 1000
            inactive = _keyed(_read(f.memory_stat), b"inactive_file")
        else:
            cpu = _int(_read(f.cpu))
            inactive = _keyed(_read(f.memory_stat), b"total_inactive_file")
        limit = _int(_read(f.memory_limit))
        if not limit or (self._host_memory and limit > self._host_memory):
            limit = self._host_memory  # none (v1's is a huge number): the host's memory
        read, written = block_io(_read(f.io), f.version)
        pre_cpu, pre_system = previous.get(c.id, (0, 0))
        previous[c.id] = (cpu, system)
        return StatsSample(
            id=c.id,
            name=c.name,
            running=True,
            read_ns=now,
            cpu_usage_ns=cpu,
            system_cpu_ns=system,
            online_cpus=cpus,
            pre_cpu_usage_ns=pre_cpu,
            pre_system_cpu_ns=pre_system,
            memory_usage=_int(_read(f.memory_usage)),
            memory_limit=limit,
            memory_inactive_file=inactive,
            networks=net_dev(_read(f.net_dev)),
            block_read_bytes=read,
            block_write_bytes=written,
            pids_current=_int(_read(f.pids_current)),
            pids_limit=_int(_read(f.pids_max)),
        )
