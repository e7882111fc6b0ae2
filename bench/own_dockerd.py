"""A dockerd of the benchmark's own, confined to a network namespace, and taking it back.

Owns: starting Debian's dockerd (with the containerd it manages) inside a network
namespace the caller made, with its data root, exec root, socket, pid file and cgroup
parent all of our making (so docker0, its iptables chains, ip_forward and docker-proxy
live in that namespace only), waiting until it answers, and afterwards removing
everything it made: its containers, the daemon and whatever it left running (killed by
pid, only processes whose command line names our directory or that sit in our cgroup),
mounts under our directory, our cgroups, the directory, and what dockerd 20.10 writes
outside its roots whatever it is told (/etc/docker/key.json, /run/docker/plugins,
/run/containerd/s), each only when it was not there before we started. Must not: touch
a docker the machine runs itself, or anything that was there before.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import procs
from palletd import _cgroup_dirs, _cgroup_pids, _lazy_unmount, _mounts_under

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
#: Written by dockerd 20.10 and its containerd outside the roots it is given: its trust
#: key, the plugin discovery directory (/run/docker/plugins, fixed), the shims' sockets.
OUTSIDE_ROOTS = (Path("/etc/docker/key.json"), Path("/run/docker"), Path("/run/containerd"))


class OwnDockerd:
    """`with OwnDockerd(prefix) as d:` then `d.cli("run", ...)`; leaves nothing behind."""

    def __init__(self, prefix: Sequence[str]) -> None:
        if shutil.which("dockerd") is None:
            raise RuntimeError("dockerd is not installed (apt-get install docker.io)")
        self.prefix = list(prefix)
        # Short: containerd's and docker's unix sockets live under it.
        self.base = Path(tempfile.mkdtemp(prefix="nb-docker-", dir="/tmp"))
        self.sock = self.base / "docker.sock"
        self.cgroup_parent = f"pallet-bench-docker-{self.base.name.rsplit('-', 1)[1]}"
        self.log_path = self.base / "dockerd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._there_before = {p: p.exists() for p in OUTSIDE_ROOTS}

    def cli(self, *args: str) -> list[str]:
        return ["docker", "--host", f"unix://{self.sock}", *args]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> OwnDockerd:
        try:
            self.start()
        except BaseException:
            for problem in self.cleanup():
                print(f"bench: docker cleanup: {problem}", file=sys.stderr)
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for problem in self.cleanup():
            print(f"bench: docker cleanup: {problem}", file=sys.stderr)

    def start(self) -> None:
        argv = [
            *self.prefix, "dockerd",
            "--data-root", str(self.base / "data"),
            "--exec-root", str(self.base / "exec"),
            "--host", f"unix://{self.sock}",
            "--pidfile", str(self.base / "dockerd.pid"),
            "--cgroup-parent", f"/{self.cgroup_parent}",
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited with {self.proc.returncode}:\n{self.log_tail()}")
            done = subprocess.run(self.cli("version", "--format", "{{.Server.Version}}"),
                                  capture_output=True, text=True, timeout=30)
            if done.returncode == 0:
                self.version = done.stdout.strip()
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not answer in {START_TIMEOUT}s:\n{self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def cleanup(self) -> list[str]:
        """Remove everything; return what could not be removed (or should have gone)."""
        problems: list[str] = []
        if self.proc is not None and self.proc.poll() is None:
            listed = subprocess.run(self.cli("ps", "-aq"), capture_output=True, text=True, timeout=60)
            if listed.stdout.split():
                subprocess.run(self.cli("rm", "-f", *listed.stdout.split()),
                               capture_output=True, timeout=120)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append(f"dockerd ignored SIGTERM for {STOP_TIMEOUT}s; killed")
                self.proc.kill()
                self.proc.wait()
        # containerd, shims and docker-proxy name our directory on their command lines;
        # container processes sit in our cgroup.
        leftovers = set(_cgroup_pids(self.cgroup_parent)) | set(procs.pids_mentioning(str(self.base)))
        if leftovers:
            problems.append("still running after dockerd stopped (killed): "
                            + ", ".join(f"{p} ({procs.comm(p)})" for p in sorted(leftovers)))
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
        for path, was_there in self._there_before.items():
            if was_there or not path.exists():
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            if path.exists():
                problems.append(f"cannot remove {path}")
        return problems

