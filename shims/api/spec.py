"""The shim's input and output: the values a shim is given and gives back.

Owns: `ShimSpec` (everything a shim needs to build and run one container, written by the
daemon as `<bundle>/config.json`, shaped like the OCI runtime spec: `process`, `root`,
`mounts`, `linux`), `ExecSpec`, `ExitStatus`, `ShimState` and its `TaskStatus`, `Output`
and the names of the bundle files. Must not: do I/O, or import anything of the daemon (the shim outlives
palletd and imports nothing of it; the daemon imports this).

The spec is authoritative: the daemon fills in every default (Docker's capabilities,
masked paths, devices, namespaces), and the shim does exactly what it says. An empty list
means none (no capabilities, no masked paths), never "the default"; that is why no field
that carries a security decision has a default here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

# linux.namespaces types, as the OCI runtime spec names them.
NS_PID = "pid"
NS_NETWORK = "network"
NS_MOUNT = "mount"
NS_IPC = "ipc"
NS_UTS = "uts"
NS_CGROUP = "cgroup"
NAMESPACE_TYPES = (NS_PID, NS_NETWORK, NS_MOUNT, NS_IPC, NS_UTS, NS_CGROUP)

# The mount types a shim makes, and linux.rootfs_propagation's values.
MOUNT_TYPES = ("bind", "proc", "sysfs", "tmpfs", "devpts", "mqueue")
PROPAGATIONS = ("private", "rprivate", "slave", "rslave", "shared", "rshared")


@dataclass(frozen=True, slots=True)
class Rlimit:
    """A resource limit the process starts with (OCI's process.rlimits)."""

    type: str  # "RLIMIT_NOFILE", ... (the names of <sys/resource.h>)
    soft: int  # -1: unlimited
    hard: int


@dataclass(frozen=True, slots=True)
class Process:
    """A process to run in the container: its init, or an exec. Complete as given."""

    args: tuple[str, ...]  # argv; args[0] is looked up in the PATH of `env`
    env: tuple[str, ...]  # "KEY=value", complete: the daemon merged image, container, exec
    cwd: str  # absolute, inside the container; made if missing for an init, not an exec
    user: str  # "", "name", "uid", "name:group", "uid:gid"; resolved inside the rootfs
    # e.g. "CAP_CHOWN"; kept as the bounding, effective and permitted sets, the rest is
    # dropped. () means no capabilities at all (--cap-drop ALL).
    capabilities: tuple[str, ...]
    no_new_privileges: bool
    stdin: bool  # an open stdin pipe; otherwise stdin is /dev/null
    # Set before the user switch; what is not listed is inherited (the shim's own).
    rlimits: tuple[Rlimit, ...] = ()
    # Supplementary groups besides the user's (--group-add): names (looked up in the
    # image's /etc/group) or numeric gids.
    additional_groups: tuple[str, ...] = ()
    # A pseudo-terminal of the container's devpts as its stdio and controlling terminal
    # (docker's -t; `pallet.shim.tty`); its output is one stream, stdout. `stdin` then
    # says whether clients may write to it.
    terminal: bool = False
    # The terminal's size from its start (docker's ConsoleSize); 0: the kernel's 0x0.
    console_height: int = 0
    console_width: int = 0


@dataclass(frozen=True, slots=True)
class Root:
    """An overlayfs root: read-only layers plus this container's writable upper dir."""

    path: str  # where the overlay is mounted (in the container's mount namespace only)
    layers: tuple[str, ...]  # lower dirs, top layer first, as overlayfs wants them
    upper_dir: str
    work_dir: str
    readonly: bool  # remount / read-only once the container's filesystem is built


@dataclass(frozen=True, slots=True)
class Mount:
    """One mount inside the container, made after the rootfs and before pivot_root.

    The shim mounts `ShimSpec.mounts` in their order, as the OCI runtime spec says, so
    /proc, /sys and /dev (Docker's standard mounts, the daemon's defaults) come first
    and a mount under one of them after it. No implicit mounts: what is not listed, a
    container does not get.
    """

    destination: str  # absolute path inside the container
    type: str  # one of MOUNT_TYPES
    source: str  # host path for binds, fs name otherwise
    options: tuple[str, ...] = ()  # "ro", "rbind", "nosuid", "mode=755", ...


@dataclass(frozen=True, slots=True)
class Namespace:
    """A namespace the container has of its own: made new, or joined at `path`."""

    type: str  # one of NAMESPACE_TYPES
    path: str = ""  # e.g. /run/pallet/netns/<id>: join that one instead of making one


@dataclass(frozen=True, slots=True)
class Device:
    """A device node made in the container's /dev."""

    path: str  # absolute, under /dev
    type: str  # "c" (character) or "b" (block)
    major: int
    minor: int
    file_mode: int  # permission bits, e.g. 0o666
    uid: int
    gid: int


@dataclass(frozen=True, slots=True)
class DeviceRule:
    """One rule of the device cgroup (OCI's linux.resources.devices entry): which device
    nodes the container's processes may open (r, w) or make (m)."""

    allow: bool
    type: str  # "a" (all), "c" or "b"
    major: int  # -1: any
    minor: int  # -1: any
    access: str  # some of "rwm"


@dataclass(frozen=True, slots=True)
class ThrottleDevice:
    """One block device's limit (OCI's linux.resources.blockIO.throttle*Device)."""

    major: int
    minor: int
    rate: int  # bytes or operations per second


@dataclass(frozen=True, slots=True)
class Memory:
    """linux.resources.memory; 0 is no limit."""

    limit: int = 0  # bytes
    reservation: int = 0  # bytes, a soft limit (v1 soft_limit_in_bytes, v2 memory.low)
    swap: int = 0  # memory + swap, bytes (OCI's and docker's meaning); -1: unlimited
    disable_oom_killer: bool = False  # v1 only: v2 has no such switch


@dataclass(frozen=True, slots=True)
class Cpu:
    """linux.resources.cpu; 0 and "" are no limit."""

    shares: int = 0  # v1 cpu.shares; v2 cpu.weight is derived from it
    quota: int = 0  # microseconds per period; -1: none
    period: int = 0  # microseconds
    cpus: str = ""  # cpuset list, e.g. "0-2,4"
    mems: str = ""


@dataclass(frozen=True, slots=True)
class BlockIO:
    """linux.resources.blockIO; 0 and () are no limit."""

    weight: int = 0  # 10..1000
    throttle_read_bps_device: tuple[ThrottleDevice, ...] = ()
    throttle_write_bps_device: tuple[ThrottleDevice, ...] = ()
    throttle_read_iops_device: tuple[ThrottleDevice, ...] = ()
    throttle_write_iops_device: tuple[ThrottleDevice, ...] = ()


@dataclass(frozen=True, slots=True)
class Resources:
    """linux.resources: the container's cgroup limits, applied before its process runs
    (and again, live, by an UpdateRequest). Empty: no limits."""

    memory: Memory = Memory()
    cpu: Cpu = Cpu()
    pids_limit: int = 0  # 0: no limit (OCI's pids.limit)
    block_io: BlockIO = BlockIO()


@dataclass(frozen=True, slots=True)
class Linux:
    """What makes it a Linux container: namespaces, cgroup, hidden paths, devices."""

    # A type missing from the list is shared with the host (--pid host, --network host).
    namespaces: tuple[Namespace, ...]
    cgroups_path: str  # e.g. "pallet/<id>", relative to each hierarchy's root; "": none
    masked_paths: tuple[str, ...]  # hidden: /dev/null over files, an empty tmpfs over dirs
    readonly_paths: tuple[str, ...]
    devices: tuple[Device, ...]
    # "kernel.shmmax" -> "65536": written to /proc/sys/kernel/shmmax inside the
    # container's namespaces, before /proc/sys is made read-only.
    sysctl: Mapping[str, str]
    # The propagation of the container's whole mount tree, set before anything is mounted
    # in it: "rslave" (Docker's) keeps the container's mounts off the host and lets the
    # host's new mounts in. One of PROPAGATIONS (OCI's linux.rootfsPropagation).
    rootfs_propagation: str
    # The seccomp filter every process of the container gets (its init and each exec):
    # SECCOMP_FILE, the bundle file holding the classic BPF program (`struct
    # sock_filter[]`, as seccomp(2) takes it) the daemon compiled; "" means none
    # (--security-opt seccomp=unconfined). A file, not the bytes here: each process reads
    # it in its own child, so the long-lived shim never holds it (its memory is per
    # container).
    seccomp: str
    # The device cgroup: only what these allow (Docker's list, --device); applied before
    # any process is in the cgroup. () leaves the cgroup's devices as its parent's.
    device_cgroup: tuple[DeviceRule, ...]
    # The cgroup limits. Last, with a default: a spec written before limits existed
    # still loads.
    resources: Resources = Resources()


@dataclass(frozen=True, slots=True)
class Log:
    """Where the shim writes the container's output, and when it rotates."""

    path: str
    max_size: int  # bytes; 0 means never rotate
    max_files: int  # >= 1, the current file included


@dataclass(frozen=True, slots=True)
class ShimSpec:
    """Everything a shim needs for one container. Serialised as `<bundle>/config.json`."""

    container_id: str
    bundle_dir: str  # containers/<id>: holds config.json, exit.json, the log file
    hostname: str  # set only in the container's own uts namespace
    process: Process
    root: Root
    mounts: tuple[Mount, ...]
    linux: Linux
    log: Log

    def has_namespace(self, ns_type: str) -> bool:
        return any(ns.type == ns_type for ns in self.linux.namespaces)


@dataclass(frozen=True, slots=True)
class ExecSpec:
    """A process to run inside a running container (it joins the container's namespaces).

    The daemon fills `process` completely from the container's process and the exec's
    overrides (env merged, user and cwd defaulted); the shim merges nothing.
    """

    exec_id: str
    process: Process


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How a process ended, as recorded by the shim before it reports it."""

    exit_code: int  # 128+n for signal n
    exited_at_ns: int  # wall clock, ns since the epoch
    error: str = ""  # why it ended abnormally, e.g. the exec failure
    # The init was killed by the OOM killer (seen in its cgroup when it exited).
    oom_killed: bool = False


class TaskStatus(enum.Enum):
    """Where the container's init process is (containerd's init states; the shim's
    transition table, `pallet.shim.states`, says which moves are legal)."""

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
    # Paused (PauseRequest): its cgroup is frozen until a ResumeRequest.
    paused: bool = False


@dataclass(frozen=True, slots=True)
class Output:
    """A chunk of output from a container or exec process."""

    stream: int  # 1 stdout, 2 stderr
    data: bytes
    time_ns: int


EXIT_STATUS_FILE = "exit.json"
# One `<exec_id>.json` (an ExitStatus) per exec that ended, written by the shim before it
# reports the exit; the daemon removes each once its exec_die is journalled.
EXEC_EXITS_DIR = "execs"
CONFIG_FILE = "config.json"
SECCOMP_FILE = "seccomp.bpf"
