"""palletd's side of the embedded DNS: the records, their file, and the resolver process.

Owns: the records as frozen dataclasses, writing them to `<run_root>/dns/records.json`
(atomically), reading the host's resolv.conf (the default upstreams and search list), and
`DnsSupervisor`: starting the resolver (`pallet.daemon.networks.resolver`) detached, adopting
a live one from its pid file after a palletd restart, restarting a dead one, telling it to
reload, stopping it on request. Must not: stop the resolver when palletd stops (names keep
resolving while palletd is down); signal a process it has not verified is this run root's
resolver (a pid file can outlive its process, and pids are reused).

The records file (JSON, version 1; `resolver.parse_records` reads it):

    {"version": 1,
     "upstreams": ["192.0.2.53"],                       # for clients not listed: the host's
     "networks": [{"gateway": "10.89.0.1",
                   "names": {"web": ["10.89.0.2"], "db": ["10.89.0.3", "10.89.0.4"]}}],
     "clients": [{"address": "10.89.0.2", "upstreams": ["1.1.1.1", "9.9.9.9:5353"],
                  "search": ["corp.example"]}]}

Names are case-insensitive (stored lower case, without a final dot); a name with several
addresses gets several A records; PTR answers with the first name (in file order) that maps
to the address, so list a container's name before its aliases and short id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pallet.v1.errors import Unavailable

RESOLVER_MODULE = "pallet.daemon.networks.resolver"
#: How long a new resolver may take to write its pid file (it starts in ~0.1 s).
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class DnsNetwork:
    """A network's gateway (where its resolver listens) and its names → IPv4 addresses."""

    gateway: str
    names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DnsClient:
    """A container's address on a network: its upstream resolvers (`--dns`, else the
    host's) and search domains (`--dns-search`, else the host's)."""

    address: str
    upstreams: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    # Gateways of every network the container is on: their names answer it too.
    networks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DnsRecords:
    """Everything the resolver answers from. `upstreams` serve an address not in `clients`."""

    networks: tuple[DnsNetwork, ...] = ()
    clients: tuple[DnsClient, ...] = ()
    upstreams: tuple[str, ...] = ()


def records_json(records: DnsRecords) -> bytes:
    doc = {
        "version": 1,
        "upstreams": list(records.upstreams),
        "networks": [
            {"gateway": n.gateway, "names": {name.rstrip(".").lower(): list(a) for name, a in n.names.items()}}
            for n in records.networks
        ],
        "clients": [
            {"address": c.address, "upstreams": list(c.upstreams), "search": list(c.search),
             "networks": list(c.networks)}
            for c in records.clients
        ],
    }
    return json.dumps(doc, indent=1).encode()


def _write_atomically(path: Path, data: bytes) -> None:
    # Its own name per write: two writes at once must not share a temp file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    # No fsync: the rename alone gives every reader the old file or the new one, whoever
    # crashes; only a host crash could lose a write, and the run root does not outlive
    # one (palletd rebuilds the records at its next start). An fsync here cost a start
    # 1.4 ms on a disk-backed run root.
    os.replace(tmp, path)


def write_records(path: Path, records: DnsRecords) -> None:
    """Write the records file: a temporary file, then a rename. The resolver sees the old
    file or the new one, never half of one."""
    _write_atomically(path, records_json(records))


@dataclass(frozen=True, slots=True)
class ResolvConf:
    nameservers: tuple[str, ...]
    search: tuple[str, ...]
    options: tuple[str, ...]


def read_resolv_conf(path: Path = Path("/etc/resolv.conf")) -> ResolvConf:
    """The host's resolv.conf as glibc reads it: the last `search`/`domain` line wins, and
    no nameserver (or no file) means the local host. Loopback nameservers are kept: the
    resolver runs in the host's network namespace, where 127.0.0.53 (systemd-resolved)
    answers."""
    nameservers: list[str] = []
    search: tuple[str, ...] = ()
    options: list[str] = []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) < 2:
            continue
        if words[0] == "nameserver":
            nameservers.append(words[1].split("%", 1)[0])  # fe80::1%eth0: the zone is the host's
        elif words[0] in ("search", "domain"):
            search = tuple(w.rstrip(".") for w in words[1:])
        elif words[0] == "options":
            options.extend(words[1:])
    return ResolvConf(nameservers=tuple(nameservers) or ("127.0.0.1",), search=search, options=tuple(options))


class DnsSupervisor:
    """Starts, adopts, restarts, signals and stops the resolver of one run root."""

    def __init__(self, run_root: Path, python: str = sys.executable, *, upstream_timeout: float | None = None) -> None:
        self.dir = run_root / "dns"
        self.records_path = self.dir / "records.json"
        self.pid_path = self.dir / "resolver.pid"
        self.log_path = self.dir / "resolver.log"
        self.python = python
        self.upstream_timeout = upstream_timeout
        self._child: subprocess.Popen[bytes] | None = None  # when this palletd started it
        self._published: bytes | None = None  # the last records written, to skip a no-op
        self._starting = asyncio.Lock()  # two callers at once start one resolver, not two

    # ---------------------------------------------------------------- finding it

    def _is_ours(self, pid: int) -> bool:
        """pid is a live resolver serving this run root's pid file (not a zombie, not a
        stranger that inherited the pid)."""
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        if stat.rpartition(")")[2].split()[:1] == ["Z"]:
            return False
        want = str(self.pid_path).encode()
        return RESOLVER_MODULE.encode() in argv and any(
            a == b"--pid-file" and b == want for a, b in zip(argv, argv[1:])
        )

    def _alive(self, pid: int) -> bool:
        """Still our resolver, reaping it if this palletd started it and it exited."""
        if self._child is not None and self._child.pid == pid and self._child.poll() is not None:
            self._child = None
        return self._is_ours(pid)

    def pid(self) -> int | None:
        """The live resolver's pid, or None. Reaps one this palletd started that died."""
        if self._child is not None and self._child.poll() is not None:
            self._child = None
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if self._is_ours(pid) else None

    # ---------------------------------------------------------------- the lifecycle

    async def ensure_running(self) -> int:
        """The resolver's pid: the live one (adopted), else a new one, started detached."""
        async with self._starting:
            pid = self.pid()
            if pid is not None:
                return pid
            return await asyncio.to_thread(self._start)

    def _start(self) -> int:
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.records_path.exists():
            write_records(self.records_path, DnsRecords())
        argv = [
            self.python, "-m", RESOLVER_MODULE,
            "--records", str(self.records_path), "--pid-file", str(self.pid_path), "--log", str(self.log_path),
        ]
        if self.upstream_timeout is not None:
            argv += ["--upstream-timeout", str(self.upstream_timeout)]
        with open(self.log_path, "ab") as log:
            # Its own session: no signal for palletd's process group or terminal reaches it,
            # and it outlives palletd. stderr to the log, for a crash before logging is set up.
            child = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                cwd="/", start_new_session=True, close_fds=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if child.poll() is not None:
                raise Unavailable(
                    f"the DNS resolver exited at start (status {child.returncode}): see {self.log_path}"
                )
            with contextlib.suppress(OSError, ValueError):
                if int(self.pid_path.read_text().strip()) == child.pid:
                    self._child = child
                    return child.pid
            time.sleep(0.005)
        child.kill()
        child.wait()
        raise Unavailable(f"the DNS resolver did not start within {START_TIMEOUT_S:.0f} s: see {self.log_path}")

    async def publish(self, records: DnsRecords) -> None:
        """Write the records and have the resolver (started if need be) reload them. It also
        notices a changed file by itself within a second. Records unchanged since the last
        publish to a live resolver are not written again (palletd publishes on every
        reconcile)."""
        data = records_json(records)
        if data == self._published and self.pid() is not None:
            return
        await asyncio.to_thread(self._write, data)
        self._published = data
        pid = self.pid()
        if pid is None:
            await self.ensure_running()  # reads the file as it starts
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGHUP)

    def _write(self, data: bytes) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.records_path, data)

    async def stop(self) -> None:
        """SIGTERM the resolver and wait for it (SIGKILL after STOP_TIMEOUT_S). Not for
        palletd's own shutdown: traffic outlives palletd."""
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        # Until the process is gone, not just its pid file (it removes that on its way out).
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while self._alive(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while self._alive(pid):
                await asyncio.sleep(0.01)
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()
        self.pid()
