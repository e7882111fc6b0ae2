"""The daemon's view of a pallet-shim: the values and protocols the rest of palletd uses.

Owns: `ShimSpec` (everything a shim needs to build and run one container, written by the
daemon as `<bundle>/config.json`), and the `ShimClient` / `ShimLauncher` protocols that
`pallet.daemon.shims.client` implements. Must not: do I/O.

Lifecycle: `ShimLauncher.spawn(spec)` starts a shim which builds the container (namespaces,
mounts, cgroup, pivot_root) and leaves its init process waiting just before exec; the
daemon may then `attach`, and `start()` lets the init exec. `ShimLauncher.connect(id)`
re-adopts a running shim after a daemon restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Mount:
    """One mount inside the container, made after the rootfs and before pivot_root."""

    destination: str  # absolute path inside the container
    type: str  # "bind", "tmpfs", "proc", ...
    source: str  # host path for binds, fs name otherwise
    options: tuple[str, ...] = ()  # "ro", "rbind", "nosuid", "mode=755", ...


@dataclass(frozen=True, slots=True)
class RootFs:
    """An overlayfs root: read-only layers plus this container's writable upper dir."""

    lower_dirs: tuple[str, ...]  # top layer first, as overlayfs wants them
    upper_dir: str
    work_dir: str
    target: str  # where to mount the overlay (in the container's mount namespace only)


@dataclass(frozen=True, slots=True)
class ShimSpec:
    """Everything a shim needs for one container. Serialised as `<bundle>/config.json`."""

    container_id: str
    bundle_dir: str  # containers/<id>: holds config.json, exit.json, the log file
    args: tuple[str, ...]  # argv of the init process; args[0] is looked up in PATH
    env: tuple[str, ...]  # "KEY=value"
    cwd: str
    user: str  # "", "name", "uid", "name:group", "uid:gid"; resolved inside the rootfs
    hostname: str
    rootfs: RootFs
    log_path: str
    open_stdin: bool = False
    mounts: tuple[Mount, ...] = ()
    capabilities: tuple[str, ...] = ()  # e.g. "CAP_CHOWN"; everything else is dropped
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    cgroup_path: str = ""  # e.g. "pallet/<id>", relative to each hierarchy's root
    no_new_privileges: bool = True
    log_max_size: int = 0  # bytes; 0 means no rotation
    log_max_files: int = 1
    # "" gives the container a new network namespace with only `lo` (up); a path such as
    # /run/pallet/netns/<id> makes it join that namespace instead (the network manager
    # made and configured it).
    network_namespace: str = ""


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How a process ended, as recorded by the shim before it reports it."""

    exit_code: int  # 128+n for signal n
    exited_at_ns: int  # wall clock, ns since the epoch
    error: str = ""  # why it ended abnormally, e.g. the exec failure


@dataclass(frozen=True, slots=True)
class ShimState:
    """What a shim says about its container right now."""

    status: str  # "created", "running", "stopped"
    pid: int  # host pid of the init process (0 before start)
    shim_pid: int
    exit: ExitStatus | None = None
    started_at_ns: int = 0


@dataclass(frozen=True, slots=True)
class Output:
    """A chunk of output from a container or exec process."""

    stream: int  # 1 stdout, 2 stderr
    data: bytes
    time_ns: int


@dataclass(frozen=True, slots=True)
class ExecSpec:
    """A process to run inside a running container (setns into its namespaces)."""

    exec_id: str
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    user: str
    stdin: bool = False


class Stdio(Protocol):
    """A live connection to a process's stdio (container init via attach, or an exec)."""

    def output(self) -> AsyncIterator[Output]:
        """Yield output until the process's stdout and stderr are closed."""
        ...

    async def write_stdin(self, data: bytes) -> None: ...

    async def close_stdin(self) -> None: ...

    async def aclose(self) -> None:
        """Detach; the process keeps running."""
        ...


class ExecSession(Stdio, Protocol):
    """A running exec process."""

    pid: int

    async def wait(self) -> ExitStatus: ...


class ShimClient(Protocol):
    """A connection to one container's shim. Every call has a deadline."""

    container_id: str
    shim_pid: int

    async def start(self) -> int:
        """Let the init process exec; return its host pid.

        Raises FailedPrecondition with the reason ("exec: "nosuch": executable file not
        found in $PATH") when the exec fails; the shim records exit code 127 (not found)
        or 126 (not executable) in that case.
        """
        ...

    async def state(self) -> ShimState: ...

    async def kill(self, signal: int, all_processes: bool = False) -> None: ...

    async def wait(self) -> ExitStatus:
        """Block until the init process has exited and its status is on disk."""
        ...

    async def attach(self, stdin: bool, stdout: bool, stderr: bool) -> Stdio: ...

    async def exec(self, spec: ExecSpec) -> ExecSession: ...

    async def wait_exec(self, exec_id: str) -> ExitStatus:
        """Block until exec `exec_id` has ended (at once if it has); return its status.

        Works on any connection, also after the one that started the exec is gone.
        Raises NotFound when the shim never started that exec, Unavailable when the shim
        is gone.
        """
        ...

    async def shutdown(self) -> None:
        """Tell a shim whose container has exited to clean up and exit."""
        ...

    async def aclose(self) -> None:
        """Close the connection; the shim keeps running."""
        ...


class ShimLauncher(Protocol):
    """Starts shims and re-adopts running ones."""

    async def spawn(self, spec: ShimSpec) -> ShimClient:
        """Start a shim for `spec`; return once the container is created (not started).

        Raises FailedPrecondition with the shim's reason when the container cannot be
        built (e.g. unknown user, bad working directory); nothing is left running.
        """
        ...

    async def connect(self, container_id: str, bundle_dir: Path) -> ShimClient:
        """Reconnect to a running shim; raise Unavailable when it is gone."""
        ...

    def exit_status_on_disk(self, bundle_dir: Path) -> ExitStatus | None:
        """The exit status a shim recorded, if it recorded one."""
        ...

    def exec_exit_on_disk(self, bundle_dir: Path, exec_id: str) -> ExitStatus | None:
        """The exit status a shim recorded for an exec, if it recorded one."""
        ...

    def discard_exec_exit(self, bundle_dir: Path, exec_id: str) -> None:
        """Forget an exec's recorded exit (its exec_die is journalled)."""
        ...

    async def aclose(self) -> None: ...


EXIT_STATUS_FILE = "exit.json"
# One `<exec_id>.json` (an ExitStatus) per exec that ended, written by the shim before it
# reports the exit; the daemon removes each once its exec_die is journalled.
EXEC_EXITS_DIR = "execs"
CONFIG_FILE = "config.json"

