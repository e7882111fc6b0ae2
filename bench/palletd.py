"""A palletd of the benchmark's own: temporary root and run root, its own cgroup parent.

Owns: starting it, waiting until it answers, and removing everything it made afterwards
(containers, the daemon, shims and helpers it left, mounts, cgroups, temporary dirs).
Must not: touch anything it did not create; processes are killed by pid, and only those
whose command line names this daemon's temporary directory.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import procs

START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


def stub(service: str, channel: Any) -> Any:
    """A pallet.v1 client stub, e.g. stub("ContainersService", channel).

    Through Any: the generated *_pb2_grpc modules carry no type information.
    """
    import importlib

    module: Any = importlib.import_module(f"pallet.v1.{service.removesuffix('Service').lower()}_pb2_grpc")
    return getattr(module, f"{service}Stub")(channel)


def console_script(name: str) -> list[str]:
    """argv[0:] that runs a console script: the one beside this Python, else on PATH.

    Beside sys.executable first: a version manager's shim on PATH (pyenv) would add its
    own start-up time to every CLI figure.
    """
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return [str(beside)]
    found = shutil.which(name)
    if found:
        return [found]
    module = {"pallet": "pallet.client.cli", "palletd": "pallet.daemon.main"}[name]
    return [sys.executable, "-m", module]


class OwnPalletd:
    """Start with `with OwnPalletd() as daemon:`; leaves nothing behind on exit."""

    def __init__(
        self,
        prefix: Sequence[str] = (),
        command: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> None:
        """`prefix` goes before the command (e.g. nsenter into a network namespace);
        `command` replaces the palletd console script (e.g. bench/timed_palletd.py);
        `env` is added to the environment; `args` go after palletd's own (more --host)."""
        self.args = list(args)
        self.prefix = list(prefix)
        self.command = list(command)
        self.env = dict(env or {})
        # Short path under /tmp: a unix socket path must stay under 108 bytes.
        self.base = Path(tempfile.mkdtemp(prefix="plt-bench-", dir="/tmp"))
        self.root = self.base / "root"
        self.run_root = self.base / "run"
        self.host = f"unix://{self.run_root}/pallet.sock"
        self.cgroup_parent = f"pallet-bench-{secrets.token_hex(4)}"
        self.log_path = self.base / "palletd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self._channel: Any = None

    def __enter__(self) -> OwnPalletd:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for problem in self.cleanup():
            print(f"bench: cleanup: {problem}", file=sys.stderr)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cli(self, *args: str) -> list[str]:
        return [*console_script("pallet"), "--host", self.host, *args]

    def channel(self) -> Any:
        import grpc

        if self._channel is None:
            self._channel = grpc.insecure_channel(self.host)
        return self._channel

    def start(self) -> None:
        """Start palletd (again, after a kill, on the same dirs) and wait until it answers."""
        self.root.mkdir(exist_ok=True)
        self.run_root.mkdir(exist_ok=True)
        if self._channel is not None:  # a channel to the daemon before this one
            self._channel.close()
            self._channel = None
        argv = [
            *self.prefix,
            *(self.command or console_script("palletd")),
            "--root", str(self.root),
            "--run-root", str(self.run_root),
            "--host", self.host,
            "--cgroup-parent", self.cgroup_parent,
            # In the host's own network namespace (no prefix that enters another) palletd
            # must make no bridge, rules or ip_forward there: containers get no network.
            *([] if self.prefix else ["--bridge", "none"]),
            *self.args,
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.started_at = time.time()
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
            )
        from pallet.v1 import system_pb2

        system = stub("SystemService", self.channel())
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"palletd exited with {self.proc.returncode} while starting:\n{self.log_tail()}"
                )
            try:
                system.Ping(system_pb2.PingRequest(), timeout=1)
                return
            except Exception:  # noqa: BLE001 - not up yet; retried until the deadline
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"palletd did not answer on {self.host} in {START_TIMEOUT}s:\n{self.log_tail()}"
                    ) from None
                time.sleep(0.01)  # bench/crash.py times a restart by this

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def remove_all_containers(self) -> list[str]:
        from pallet.v1 import containers_pb2

        containers = stub("ContainersService", self.channel())
        problems = []
        listed = containers.List(containers_pb2.ListContainersRequest(all=True), timeout=30)
        for c in listed.containers:
            try:
                containers.Remove(
                    containers_pb2.RemoveContainerRequest(container=c.id, force=True), timeout=60
                )
            except Exception as exc:  # noqa: BLE001 - reported; cleanup goes on
                problems.append(f"rm -f {c.name}: {exc}")
        return problems

    def cleanup(self) -> list[str]:
        """Remove everything; return what could not be removed."""
        problems: list[str] = []
        if self.proc is not None and self.proc.poll() is None:
            try:
                problems += self.remove_all_containers()
            except Exception as exc:  # noqa: BLE001
                problems.append(f"could not remove containers: {exc}")
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append(f"palletd ignored SIGTERM for {STOP_TIMEOUT}s; killed")
                self.proc.kill()
                self.proc.wait()
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        # Container processes left in our cgroups, and the shims and helpers our daemon
        # started (their command lines name our directory).
        leftovers = set(_cgroup_pids(self.cgroup_parent)) | set(procs.pids_mentioning(str(self.base)))
        # The shim launcher and the embedded DNS resolver outlive palletd by design;
        # anything else is worth a word.
        unexpected = [
            p for p in leftovers
            if procs.comm(p) != "pallet-launcher"
            and "pallet.daemon.networks.resolver" not in procs.cmdline(p)
        ]
        if unexpected:
            problems.append(
                "still running after their containers were removed (killed): "
                + ", ".join(f"{p} ({procs.comm(p)})" for p in sorted(unexpected))
            )
        if leftovers:
            left = procs.kill_and_wait(sorted(leftovers))
            if left:
                problems.append(f"could not kill {left}")
        for mount_point in sorted(_mounts_under(self.base), key=len, reverse=True):
            _lazy_unmount(mount_point)
        for directory in _cgroup_dirs(self.cgroup_parent):
            for _ in range(50):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                problems.append(f"cannot remove cgroup {directory}")
        shutil.rmtree(self.base, ignore_errors=True)
        if self.base.exists():
            problems.append(f"cannot remove {self.base}")
        return problems


def _mountinfo() -> list[tuple[str, str, str]]:
    """(root, mount point, fs type) of every mount; mountinfo escapes blanks as octal."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        out.append((_unescape(fields[3]), _unescape(fields[4]), right.split()[0]))
    return out


def _unescape(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def _mounts_under(base: Path) -> list[str]:
    prefix = str(base).rstrip("/") + "/"
    return [mp for _, mp, _ in _mountinfo() if mp.startswith(prefix)]


def _cgroup_dirs(parent: str) -> list[Path]:
    """`parent` and everything below it in every cgroup hierarchy, deepest first."""
    dirs: list[Path] = []
    seen: set[str] = set()
    for root, mount_point, fstype in _mountinfo():
        if fstype not in ("cgroup", "cgroup2") or root != "/":
            continue
        if os.path.realpath(mount_point) in seen:
            continue
        seen.add(os.path.realpath(mount_point))
        top = Path(mount_point) / parent
        if top.is_dir():
            dirs += [p for p in top.rglob("*") if p.is_dir()] + [top]
    return sorted(dirs, key=lambda p: len(p.parts), reverse=True)


def _cgroup_pids(parent: str) -> list[int]:
    pids: list[int] = []
    for directory in _cgroup_dirs(parent):
        try:
            pids += [int(p) for p in (directory / "cgroup.procs").read_text().split()]
        except OSError:
            continue
    return pids


_MNT_DETACH = 2


def _lazy_unmount(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.umount2(path.encode(), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            raise OSError(err, f"umount2({path}): {os.strerror(err)}")
