"""Container values and the lifecycle state machine.

Owns: the frozen dataclasses describing a container, its `Status` enum and the table of
legal transitions. Must not: do I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from pallet.daemon.images.model import HealthConfig
from pallet.daemon.networks.model import EndpointConfig
from pallet.v1.errors import FailedPrecondition


class Status(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"


# status -> statuses it may move to. A start that fails keeps a container CREATED (with its
# error recorded), as docker does; REMOVING is entered only on the way out.
TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    Status.CREATED: frozenset({Status.RUNNING, Status.CREATED, Status.REMOVING, Status.DEAD}),
    Status.RUNNING: frozenset({Status.EXITED, Status.PAUSED, Status.REMOVING, Status.DEAD}),
    Status.PAUSED: frozenset({Status.RUNNING, Status.EXITED, Status.DEAD}),
    # RESTARTING: in a restart policy's back-off, between a run's end and its next start.
    Status.RESTARTING: frozenset(
        {Status.RUNNING, Status.RESTARTING, Status.EXITED, Status.REMOVING, Status.DEAD}
    ),
    Status.EXITED: frozenset(
        {Status.RUNNING, Status.RESTARTING, Status.EXITED, Status.REMOVING, Status.DEAD}
    ),
    Status.REMOVING: frozenset({Status.DEAD}),
    Status.DEAD: frozenset({Status.REMOVING}),
}


def check_transition(name: str, current: Status, target: Status) -> None:
    """Raise FailedPrecondition naming the state when `current -> target` is illegal."""
    if target not in TRANSITIONS[current]:
        raise FailedPrecondition(
            f"container {name} is {current.value}: cannot move it to {target.value}"
        )


@dataclass(frozen=True, slots=True)
class Config:
    """What the process is (docker's Config): the caller's request merged over the image's.

    Everything here describes the container's own process, whichever host runs it; how
    the host runs it is `HostConfig`.
    """

    image: str
    cmd: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    hostname: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    open_stdin: bool = False
    stdin_once: bool = False  # close stdin when its attach ends (docker's Config.StdinOnce)
    stop_signal: str = "SIGTERM"
    stop_timeout: int = 10
    # The image's, --expose's and the published ones ("80/tcp"), as docker's ExposedPorts.
    exposed_ports: tuple[str, ...] = ()
    mac_address: str = ""
    tty: bool = False  # a pseudo-terminal as its stdio (docker's Config.Tty, -t)
    # Its rows and columns when the init starts (docker's HostConfig.ConsoleSize); 0: unset.
    console_size: tuple[int, int] = (0, 0)
    # docker's Config.Healthcheck: the create's merged over the image's (None: neither
    # has one; a test of ("NONE",): disabled). Probed by `health.HealthMonitor`.
    healthcheck: HealthConfig | None = None
    # docker's Config.Shell, the image's (a Dockerfile's SHELL): what a CMD-SHELL
    # healthcheck runs in; (): /bin/sh -c.
    shell: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Log rotation: the shim rotates at max_size bytes (0: never), keeping max_files
    files, the current one included."""

    max_size: int = 0
    max_files: int = 1


MOUNT_VOLUME = "volume"
MOUNT_BIND = "bind"
MOUNT_TMPFS = "tmpfs"
MOUNT_TYPES = (MOUNT_VOLUME, MOUNT_BIND, MOUNT_TMPFS)
# How a create asked for a mount (docker shows each kind in its own place: -v in
# HostConfig.Binds or Config.Volumes, --tmpfs in HostConfig.Tmpfs only, ...).
ORIGIN_V = "v"
ORIGIN_MOUNT = "mount"
ORIGIN_TMPFS = "tmpfs"
ORIGIN_VOLUMES_FROM = "volumes-from"
ORIGIN_IMAGE = "image"


@dataclass(frozen=True, slots=True)
class MountSpec:
    """One mount of a container (docker's Mount): a volume, a host path or a tmpfs at
    `target`. As asked (`--mount`), and as kept once create has resolved it (an anonymous
    volume then has its generated name in `source`)."""

    type: str  # MOUNT_VOLUME, MOUNT_BIND or MOUNT_TMPFS
    target: str
    source: str = ""  # a volume's name, a bind's host path; "" for tmpfs
    read_only: bool = False
    propagation: str = ""  # binds: "" is docker's rprivate
    no_copy: bool = False  # volumes: do not fill a new volume with the image's content
    tmpfs_options: tuple[str, ...] = ()  # "size=64m", "mode=1770", "exec", ...
    anonymous: bool = False  # a volume made for this container: rm -v removes it
    create_host_path: bool = False  # -v: a missing host directory is made (docker's)
    origin: str = ""  # ORIGIN_*, set at create; "" in records made before it was kept
    image_volume: bool = False  # the image has a VOLUME at `target` (docker's Config.Volumes)


RESTART_NO = "no"
RESTART_ON_FAILURE = "on-failure"
RESTART_ALWAYS = "always"
RESTART_UNLESS_STOPPED = "unless-stopped"
RESTART_POLICIES = (RESTART_NO, RESTART_ON_FAILURE, RESTART_ALWAYS, RESTART_UNLESS_STOPPED)


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """docker's HostConfig.RestartPolicy: whether palletd starts the container again
    after its run ends (`restarts.should_restart` decides)."""

    name: str = RESTART_NO  # one of RESTART_POLICIES
    maximum_retry_count: int = 0  # on-failure only: give up after that many; 0 never


@dataclass(frozen=True, slots=True)
class RestartState:
    """Where a container's restart policy is (kept in its record, so a palletd killed
    during a back-off resumes it rather than restarting at once).

    The count of restarts is `Container.restart_count` (docker's RestartCount)."""

    # The back-off that was last waited, in ns (docker's restart manager's timeout): 0
    # until the first restart; doubled at each one, from 100 ms to 1 min.
    delay_ns: int = 0
    # While RESTARTING: when the next start is due (wall clock, ns).
    next_at_ns: int = 0
    # A user's stop or kill ended the last run (docker's HasBeenManuallyStopped): no
    # restart until the next start a user asks for.
    stopped_by_user: bool = False


@dataclass(frozen=True, slots=True)
class DeviceMapping:
    """One --device (docker's DeviceMapping): a host device node made in the container,
    and what the device cgroup lets it do with it ("rwm": read, write, mknod)."""

    path_on_host: str
    path_in_container: str
    cgroup_permissions: str = "rwm"


@dataclass(frozen=True, slots=True)
class Ulimit:
    """One --ulimit: docker's name ("nofile") and limits; -1 is unlimited."""

    name: str
    soft: int
    hard: int


@dataclass(frozen=True, slots=True)
class Security:
    """How the container is confined (docker's HostConfig security fields), as asked
    and, once `security.check` has judged it, as stored (capability names in CAP_ form,
    each device's permissions filled in). `pallet.daemon.containers.security` turns it
    into the shim's spec."""

    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    privileged: bool = False
    # docker's strings: "seccomp=unconfined", "seccomp=<the profile's JSON>" (the CLI
    # reads the file), "no-new-privileges[:true|false]".
    security_opt: tuple[str, ...] = ()
    read_only: bool = False  # the root filesystem
    devices: tuple[DeviceMapping, ...] = ()
    ulimits: tuple[Ulimit, ...] = ()
    sysctls: Mapping[str, str] = field(default_factory=dict)
    shm_size: int = 0  # bytes of /dev/shm; 0: docker's 64 MiB
    group_add: tuple[str, ...] = ()
    userns_mode: str = ""  # "" or "host": pallet has no user namespaces yet


@dataclass(frozen=True, slots=True)
class ThrottleDevice:
    """One block device's I/O limit (docker's --device-read-bps and kin)."""

    path: str  # the device's host path, e.g. /dev/sda
    rate: int  # bytes or operations per second


@dataclass(frozen=True, slots=True)
class Resources:
    """The cgroup limits (docker's HostConfig resources), in docker's units; 0 (and "",
    ()) is no limit. Checked and defaulted by `pallet.daemon.containers.resources`."""

    memory: int = 0  # bytes
    memory_swap: int = 0  # memory + swap, bytes; -1: unlimited swap
    memory_reservation: int = 0  # bytes, a soft limit
    oom_kill_disable: bool = False
    nano_cpus: int = 0  # 1e9 per CPU
    cpu_shares: int = 0
    cpu_period: int = 0  # microseconds
    cpu_quota: int = 0  # microseconds per period
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int = 0
    blkio_weight: int = 0
    device_read_bps: tuple[ThrottleDevice, ...] = ()
    device_write_bps: tuple[ThrottleDevice, ...] = ()
    device_read_iops: tuple[ThrottleDevice, ...] = ()
    device_write_iops: tuple[ThrottleDevice, ...] = ()
    # docker's --kernel-memory: always refused (kept only so the refusal is the domain's).
    kernel_memory: int = 0


@dataclass(frozen=True, slots=True)
class HostConfig:
    """How the host runs the container (docker's HostConfig).

    The same value is what the caller asks (in `CreateRequest`) and what is stored, once
    `merge.host_config` has checked it and filled its defaults. Options that come next go
    here, each as one field (a nested dataclass where it has parts), used by the start
    step that needs it: `mounts` (binds, volumes, tmpfs), `port_bindings`,
    `network_mode`, `resources` (memory, cpus, pids: the cgroup limits), `restart_policy`
    (read by after_exit), `security_opt` / `cap_add` / `cap_drop` / `privileged`.
    """

    auto_remove: bool = False
    log_config: LogConfig = field(default_factory=LogConfig)
    # "bridge" (the default network), "host", "none", "container:<id>", or a user
    # network's name as given (its id is in `networks`).
    network_mode: str = "bridge"
    # The networks it is attached to, in connect order (eth0 first): the network mode's
    # network, then each `network connect`. Empty for host, none and container:<id>.
    networks: tuple[EndpointConfig, ...] = ()
    # Published ports, docker's -p strings as given (parsed and checked at create, the
    # host ports picked at start); publish_all adds every exposed port on a random one.
    publish: tuple[str, ...] = ()
    publish_all: bool = False
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    extra_hosts: tuple[str, ...] = ()  # "NAME:IP", IP may be "host-gateway"
    # What the container mounts, as given (docker's HostConfig.Binds, .Mounts, .Tmpfs,
    # .VolumesFrom), and `mounts`: all of it resolved at create (with the image's
    # volumes), one per target, parents first: what each start mounts.
    binds: tuple[str, ...] = ()
    mount_requests: tuple[MountSpec, ...] = ()
    tmpfs: tuple[str, ...] = ()
    volumes_from: tuple[str, ...] = ()
    mounts: tuple[MountSpec, ...] = ()
    security: Security = field(default_factory=Security)
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    resources: Resources = field(default_factory=Resources)
    # docker's --init (HostConfig.Init): a small init (tini) as PID 1 runs the command
    # (`initproc` says what it adds over the shim's subreaping).
    init: bool = False


@dataclass(frozen=True, slots=True)
class ConfigRequest:
    """The `Config` a caller asked for, before it is merged over the image's.

    None (and "" for the strings) means "use the image's" (or the default where the
    image has none); a value, even an empty one, overrides it.
    """

    image: str
    cmd: tuple[str, ...] | None = None
    # None: the image's; () too resets it, and a new entrypoint drops the image's Cmd.
    entrypoint: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()  # merged over the image's by key
    working_dir: str = ""
    user: str = ""
    hostname: str = ""  # "": the container's short id
    labels: Mapping[str, str] = field(default_factory=dict)  # merged over the image's
    open_stdin: bool = False
    stdin_once: bool = False
    stop_signal: str = ""
    stop_timeout: int | None = None  # None: 10 seconds; 0 kills at once
    expose: tuple[str, ...] = ()  # merged with the image's ExposedPorts
    mac_address: str = ""
    tty: bool = False
    console_size: tuple[int, int] = (0, 0)
    # None: the image's; a value's zero fields (and an empty test) are the image's too.
    healthcheck: HealthConfig | None = None


@dataclass(frozen=True, slots=True)
class EndpointRequest:
    """One more network asked for at create: its name or id, aliases, static address."""

    network: str
    aliases: tuple[str, ...] = ()
    ipv4_address: str = ""


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """A create call as the caller made it (before merging with the image)."""

    config: ConfigRequest
    host_config: HostConfig = field(default_factory=HostConfig)
    name: str = ""
    # The first network's aliases and static address (--network-alias, --ip).
    network_aliases: tuple[str, ...] = ()
    ipv4_address: str = ""
    # More networks from the first start (docker's EndpointsConfig naming several).
    more_networks: tuple[EndpointRequest, ...] = ()


HEALTH_STARTING = "starting"
HEALTH_HEALTHY = "healthy"
HEALTH_UNHEALTHY = "unhealthy"


@dataclass(frozen=True, slots=True)
class HealthResult:
    """One probe's result (docker's HealthcheckResult): -1 for a probe that timed out or
    could not run, its output cut at 4096 bytes."""

    start_ns: int
    end_ns: int
    exit_code: int
    output: str = ""


@dataclass(frozen=True, slots=True)
class Health:
    """docker's State.Health: the status by docker's rules (`healthcheck.record`), the
    failures in a row, the last 5 results, oldest first."""

    status: str = HEALTH_STARTING
    failing_streak: int = 0
    log: tuple[HealthResult, ...] = ()


@dataclass(frozen=True, slots=True)
class ContainerState:
    status: Status = Status.CREATED
    pid: int = 0
    exit_code: int = 0
    started_at_ns: int = 0
    finished_at_ns: int = 0
    error: str = ""
    shim_pid: int = 0
    oom_killed: bool = False  # the last run ended killed by the OOM killer
    # Set at the first start of a container with a healthcheck; kept after its run ends
    # (docker's), starting again at each start.
    health: Health | None = None


@dataclass(frozen=True, slots=True)
class Container:
    id: str
    name: str
    image_id: str
    config: Config
    state: ContainerState
    created_ns: int
    state_dir: str
    restart_count: int = 0
    host_config: HostConfig = field(default_factory=HostConfig)
    restarts: RestartState = field(default_factory=RestartState)

    @property
    def argv(self) -> tuple[str, ...]:
        return self.config.entrypoint + self.config.cmd

    @property
    def path(self) -> str:
        return self.argv[0] if self.argv else ""

    @property
    def args(self) -> tuple[str, ...]:
        return self.argv[1:]

    @property
    def log_path(self) -> str:
        return f"{self.state_dir}/container.log"

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def with_state(self, **changes: object) -> Container:
        return replace(self, state=replace(self.state, **changes))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Created:
    """What a create made: the container, and what it did not do as asked (docker's
    Warnings: "Published ports are discarded when using host network mode")."""

    container: Container
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ExecRecord:
    """An exec whose end is not journalled yet (its exec_die is still to come)."""

    id: str
    container_id: str
    state_dir: str  # the container's bundle, where its shim records the exec's exit
    command: str  # the args joined by spaces, as in the exec_* actions
    attributes: Mapping[str, str]  # the container's event attributes plus execID
    created_ns: int
    started: bool = False  # exec_start is journalled
