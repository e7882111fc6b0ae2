"""The shim's input and output: the values a shim is given and gives back.

Owns: `ShimSpec` (everything a shim needs to build and run one container, written by the
daemon as `<bundle>/config.json`), `ExecSpec`, `ExitStatus`, `ShimState` and its
`TaskStatus`, `Output` and the names of the bundle files. Must not: do I/O, or import anything of the daemon (the shim
outlives palletd and imports nothing of it; the daemon imports this).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

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


class TaskStatus(enum.Enum):
    """Where the container's init process is (containerd's init states; the shim's
    transition table, `pallet.shim.task`, says which moves are legal)."""

    CREATED = "created"  # built, waiting for `start` just before its exec
    RUNNING = "running"  # its exec succeeded
    STOPPED = "stopped"  # it exited (or never started), its exit recorded on disk


@dataclass(frozen=True, slots=True)
class ShimState:
    """What a shim says about its container right now (the reply to a state request)."""

    status: TaskStatus
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


EXIT_STATUS_FILE = "exit.json"
# One `<exec_id>.json` (an ExitStatus) per exec that ended, written by the shim before it
# reports the exit; the daemon removes each once its exec_die is journalled.
EXEC_EXITS_DIR = "execs"
CONFIG_FILE = "config.json"

