"""The engines the CLI figures are measured on: pallet, and docker, podman or ctr for reference.

Owns: for each engine, the command lines of the measured operations (run --rm, run -d,
attached run, logs, version), importing the benchmark image, and the bookkeeping around
them (is it running, which process is its shim, what are the daemons, removal). Must
not: time anything (that is `figures`), or start or stop docker, podman or containerd:
a person benchmarking runs those; we only use them when they answer.

The shim of a container is found as its shim says (pallet's Inspect has ShimPid) or, for
the reference engines, as the parent of the container's init process (docker's and
ctr's containerd-shim-runc-v2, podman's conmon).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Protocol

import procs
import rootfs
from palletd import OwnPalletd, stub

IMAGE_NAME = "pallet-bench-busybox:latest"
TIMEOUT = 120.0


class EngineError(Exception):
    """An engine is missing, not answering, or refused an operation."""


def check(argv: list[str], timeout: float = TIMEOUT) -> str:
    """Run `argv`; its stdout, or EngineError with its stderr."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise EngineError(f"{argv[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise EngineError(f"{' '.join(argv)} took more than {timeout}s") from None
    if done.returncode != 0:
        raise EngineError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


class Engine(Protocol):
    name: str

    def import_image(self, rootfs_tar: Path, workdir: Path) -> str:
        """Import the busybox rootfs; return the image reference to run."""
        ...

    def run_rm(self, image: str, cmd: list[str]) -> list[str]: ...

    def run_detached(self, name: str, image: str, cmd: list[str]) -> list[str]: ...

    def run_attached(self, name: str, image: str, cmd: list[str]) -> list[str]:
        """A run whose container stays after it exits (for `logs_of`)."""
        ...

    def logs_of(self, name: str) -> list[str] | None:
        """The logs command, or None when the engine keeps no logs."""
        ...

    def version(self) -> list[str]: ...

    def running(self, names: list[str]) -> int:
        """How many of `names` are running."""
        ...

    def shim_pids(self, names: list[str]) -> list[int]: ...

    def daemon_pids(self) -> dict[str, int]:
        """The engine's long-running daemons by name (none for podman)."""
        ...

    def remove(self, names: list[str]) -> None: ...

    def close(self) -> None:
        """Remove the image and anything else import_image made."""
        ...


class Pallet:
    """pallet through its CLI; state read over gRPC so it does not depend on CLI flags."""

    name = "pallet"

    def __init__(self, daemon: OwnPalletd) -> None:
        self.daemon = daemon
        self._containers = stub("ContainersService", daemon.channel())

    def import_image(self, rootfs_tar: Path, workdir: Path) -> str:
        check(self.daemon.cli("import", str(rootfs_tar), IMAGE_NAME))
        return IMAGE_NAME

    def run_rm(self, image: str, cmd: list[str]) -> list[str]:
        return self.daemon.cli("run", "--rm", image, *cmd)

    def run_detached(self, name: str, image: str, cmd: list[str]) -> list[str]:
        return self.daemon.cli("run", "-d", "--name", name, image, *cmd)

    def run_attached(self, name: str, image: str, cmd: list[str]) -> list[str]:
        return self.daemon.cli("run", "--name", name, image, *cmd)

    def logs_of(self, name: str) -> list[str] | None:
        return self.daemon.cli("logs", name)

    def version(self) -> list[str]:
        return self.daemon.cli("version")

    def running(self, names: list[str]) -> int:
        from pallet.v1 import containers_pb2

        listed = self._containers.List(containers_pb2.ListContainersRequest(all=False), timeout=30)
        wanted = set(names)
        return sum(
            1
            for c in listed.containers
            if c.name in wanted and c.state.status == containers_pb2.CONTAINER_STATUS_RUNNING
        )

    def shim_pids(self, names: list[str]) -> list[int]:
        from pallet.v1 import containers_pb2

        pids = []
        for name in names:
            c = self._containers.Inspect(
                containers_pb2.InspectContainerRequest(container=name), timeout=30
            ).container
            pids.append(int(c.state.shim_pid) or procs.parent(int(c.state.pid)))
        return pids

    def daemon_pids(self) -> dict[str, int]:
        return {"palletd": self.daemon.pid}

    def remove(self, names: list[str]) -> None:
        if names:
            check(self.daemon.cli("rm", "-f", *names))

    def close(self) -> None:
        pass  # the whole daemon goes away with its temporary root


class DockerLike:
    """docker or podman: the same verbs as pallet's CLI."""

    def __init__(self, tool: str) -> None:
        if shutil.which(tool) is None:
            raise EngineError(f"{tool} is not installed")
        self.name = tool
        self._image = ""
        check([tool, "version"], timeout=30)  # fails when the daemon is not running

    def import_image(self, rootfs_tar: Path, workdir: Path) -> str:
        check([self.name, "import", str(rootfs_tar), IMAGE_NAME])
        self._image = IMAGE_NAME
        return IMAGE_NAME

    def run_rm(self, image: str, cmd: list[str]) -> list[str]:
        return [self.name, "run", "--rm", image, *cmd]

    def run_detached(self, name: str, image: str, cmd: list[str]) -> list[str]:
        return [self.name, "run", "-d", "--name", name, image, *cmd]

    def run_attached(self, name: str, image: str, cmd: list[str]) -> list[str]:
        return [self.name, "run", "--name", name, image, *cmd]

    def logs_of(self, name: str) -> list[str] | None:
        return [self.name, "logs", name]

    def version(self) -> list[str]:
        return [self.name, "version"]

    def running(self, names: list[str]) -> int:
        out = check([self.name, "inspect", "--format", "{{.State.Running}}", *names])
        return out.split().count("true")

    def shim_pids(self, names: list[str]) -> list[int]:
        out = check([self.name, "inspect", "--format", "{{.State.Pid}}", *names])
        return [procs.parent(int(pid)) for pid in out.split()]

    def daemon_pids(self) -> dict[str, int]:
        if self.name == "podman":
            return {}  # daemonless: nothing runs between commands but conmon
        return {name: pid for name in ("dockerd", "containerd") for pid in procs.pids_named(name)}

    def remove(self, names: list[str]) -> None:
        if names:
            check([self.name, "rm", "-f", *names])

    def close(self) -> None:
        if self._image:
            check([self.name, "rmi", self._image])


class Ctr:
    """containerd's ctr, in a namespace of its own."""

    name = "ctr"
    namespace = "pallet-bench"

    def __init__(self) -> None:
        if shutil.which("ctr") is None:
            raise EngineError("ctr is not installed")
        check(self._argv("version"), timeout=30)
        self._image = ""
        self._runs = 0

    def _argv(self, *args: str) -> list[str]:
        return ["ctr", "--namespace", self.namespace, *args]

    def import_image(self, rootfs_tar: Path, workdir: Path) -> str:
        name = "docker.io/library/" + IMAGE_NAME
        archive = rootfs.write_oci_archive(rootfs_tar, workdir / "busybox-oci.tar", name)
        check(self._argv("images", "import", str(archive)))
        self._image = name
        return name

    def run_rm(self, image: str, cmd: list[str]) -> list[str]:
        self._runs += 1  # ctr wants a container id of our making for every run
        return self._argv("run", "--rm", image, f"pallet-bench-rm-{self._runs}", *cmd)

    def run_detached(self, name: str, image: str, cmd: list[str]) -> list[str]:
        return self._argv("run", "-d", image, name, *cmd)

    def run_attached(self, name: str, image: str, cmd: list[str]) -> list[str]:
        return self._argv("run", "--rm", image, name, *cmd)

    def logs_of(self, name: str) -> list[str] | None:
        return None  # ctr keeps no logs

    def version(self) -> list[str]:
        return self._argv("version")

    def _tasks(self) -> dict[str, tuple[int, str]]:
        tasks = {}
        for line in check(self._argv("tasks", "ls")).splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 3:
                tasks[fields[0]] = (int(fields[1]), fields[2])
        return tasks

    def running(self, names: list[str]) -> int:
        tasks = self._tasks()
        return sum(1 for n in names if tasks.get(n, (0, ""))[1] == "RUNNING")

    def shim_pids(self, names: list[str]) -> list[int]:
        tasks = self._tasks()
        return [procs.parent(tasks[n][0]) for n in names if n in tasks]

    def daemon_pids(self) -> dict[str, int]:
        return {"containerd": pid for pid in procs.pids_named("containerd")}

    def remove(self, names: list[str]) -> None:
        for name in names:
            subprocess.run(self._argv("tasks", "kill", "-s", "SIGKILL", name), capture_output=True)
            subprocess.run(self._argv("tasks", "delete", "-f", name), capture_output=True)
            subprocess.run(self._argv("containers", "delete", name), capture_output=True)

    def close(self) -> None:
        if self._image:
            check(self._argv("images", "remove", self._image))
        subprocess.run(["ctr", "namespaces", "remove", self.namespace], capture_output=True)


def reference_engine(tool: str) -> Engine:
    if tool in ("docker", "podman"):
        return DockerLike(tool)
    if tool == "ctr":
        return Ctr()
    raise EngineError(f"unknown reference engine {tool!r}: docker, podman or ctr")
