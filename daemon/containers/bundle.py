"""A container's bundle: the files and the parts of the ShimSpec a shim builds it from.

Owns: the per-container /etc/hostname, /etc/hosts and /etc/resolv.conf files, every
default the shim's spec carries (Docker's capabilities, standard mounts and root
propagation, masked and read-only paths, the device nodes, the namespaces a container gets), the spec's parts for a `Container` (its
process, linux and log parts and /etc mounts; the start steps in `start.py` put them
together), and an exec request as a complete `Process`. The shim
fills in nothing: what is not here, a container does not get. Must not: start anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pallet.daemon.containers.merge import merge_env
from pallet.daemon.containers.model import Container
from pallet.daemon.containers.security import DEFAULT_CAPABILITIES as DEFAULT_CAPABILITIES
from pallet.daemon.containers.security import Confinement, describe
from pallet.daemon.limits import check_args_and_env, check_path
from pallet.v1.errors import InvalidArgument
from pallet.shim.api.spec import (
    NS_CGROUP,
    NS_IPC,
    NS_MOUNT,
    NS_NETWORK,
    NS_PID,
    NS_UTS,
    Device,
    Linux,
    Log,
    Mount,
    Namespace,
    Process,
)

# Docker's defaults: kernel interfaces hidden from containers, and ones they may only read.
MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

# Docker's default device nodes: (name, major, minor), all character devices, rw for all.
_DEVICES = (
    ("null", 1, 3), ("zero", 1, 5), ("full", 1, 7),
    ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0),
)
DEFAULT_DEVICES = tuple(
    Device(path=f"/dev/{name}", type="c", major=major, minor=minor, file_mode=0o666, uid=0, gid=0)
    for name, major, minor in _DEVICES
)


# Docker's standard mounts, in Docker's order: the shim mounts `ShimSpec.mounts` in order,
# so these come before the /etc binds and any user mount under /dev or /proc.
DEFAULT_MOUNTS = (
    Mount("/proc", "proc", "proc", ("nosuid", "noexec", "nodev")),
    Mount("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
    Mount("/dev/pts", "devpts", "devpts",
          ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5")),
    Mount("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", "ro")),
    Mount("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
    Mount("/dev/shm", "tmpfs", "shm", ("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")),
)


def standard_mounts(confinement: Confinement) -> tuple[Mount, ...]:
    """DEFAULT_MOUNTS as this container has them: its /dev/shm size (--shm-size), and
    /sys writable when it is privileged (docker's)."""
    shm = f"size={confinement.shm_size // 1024}k" if confinement.shm_size % 1024 == 0 else (
        f"size={confinement.shm_size}"
    )
    out = []
    for m in DEFAULT_MOUNTS:
        if m.destination == "/dev/shm":
            m = Mount(m.destination, m.type, m.source,
                      tuple(o for o in m.options if not o.startswith("size=")) + (shm,))
        elif m.destination == "/sys" and not confinement.masked:
            m = Mount(m.destination, m.type, m.source, tuple(o for o in m.options if o != "ro"))
        out.append(m)
    return tuple(out)
# Docker's: the container's mounts stay off the host, the host's new ones reach it.
ROOTFS_PROPAGATION = "rslave"


def default_namespaces(network_path: str = "", host_network: bool = False) -> tuple[Namespace, ...]:
    """A container's own namespaces; its network one made new, joined at a path, or
    (`host_network`) none: it shares the host's."""
    network = () if host_network else (Namespace(NS_NETWORK, network_path),)
    return (
        Namespace(NS_PID),
        Namespace(NS_IPC),
        Namespace(NS_UTS),
        Namespace(NS_MOUNT),
        *network,
        Namespace(NS_CGROUP),
    )


HOSTS = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""


def resolv_conf(host_file: Path = Path("/etc/resolv.conf")) -> str:
    """The host's resolv.conf without loopback nameservers (unreachable from a container)."""
    try:
        lines = host_file.read_text().splitlines()
    except OSError:
        return ""
    kept = []
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver" and (
            words[1].startswith("127.") or words[1] == "::1"
        ):
            continue
        kept.append(line)
    return "\n".join(kept) + "\n"


def write_etc_files(container: Container) -> None:
    """Write the files bind-mounted over the image's /etc/{hostname,hosts,resolv.conf}."""
    state_dir = Path(container.state_dir)
    hostname = container.config.hostname
    (state_dir / "hostname").write_text(hostname + "\n")
    (state_dir / "hosts").write_text(HOSTS + f"127.0.1.1\t{hostname}\n")
    (state_dir / "resolv.conf").write_text(resolv_conf())


def write_network_files(state_dir: Path, hosts: str, resolv: str) -> None:
    """The network's /etc/hosts and resolv.conf in a bundle ("": that one is kept), written
    in place (not renamed): the files are bind-mounted into a running container, which
    must see a later change."""
    for name, text in (("hosts", hosts), ("resolv.conf", resolv)):
        if not text:
            continue
        with open(state_dir / name, "a+") as f:
            f.truncate(0)
            f.write(text)


def etc_mounts(container: Container) -> tuple[Mount, ...]:
    """The bind mounts of the files `write_etc_files` wrote over the image's /etc ones."""
    return tuple(
        Mount(destination=f"/etc/{name}", type="bind", source=f"{container.state_dir}/{name}",
              options=("rbind", "rprivate"))
        for name in ("hostname", "hosts", "resolv.conf")
    )


def container_mounts(
    container: Container, own: Sequence[Mount] = (), confinement: Confinement | None = None
) -> tuple[Mount, ...]:
    """Every mount of the container, in the order the shim makes them: docker's standard
    ones, then the /etc files and the container's `own` (volumes, binds, tmpfs) in one
    order, parents first (a mount of /etc before /etc/hosts); an own mount of one of the
    /etc files replaces the daemon's."""
    targets = {m.destination for m in own}
    kept = [m for m in etc_mounts(container) if m.destination not in targets]
    rest = sorted([*kept, *own], key=lambda m: m.destination.rstrip("/").count("/"))
    conf = confinement or describe(container.host_config.security, with_devices=False)
    return (*standard_mounts(conf), *rest)


def cgroup_path(container: Container, cgroup_parent: str) -> str:
    """The container's cgroup, relative to each hierarchy's root."""
    return f"{cgroup_parent}/{container.id}"


def container_process(container: Container, confinement: Confinement | None = None) -> Process:
    """The container's init: its merged command, env, user and working directory, and
    its privileges (capabilities, no_new_privileges, rlimits, groups)."""
    cfg = container.config
    conf = confinement or describe(container.host_config.security, with_devices=False)
    return Process(
        args=container.argv,
        env=cfg.env,
        cwd=cfg.working_dir or "/",
        user=cfg.user,
        capabilities=conf.capabilities,
        no_new_privileges=conf.no_new_privileges,
        stdin=cfg.open_stdin,
        rlimits=conf.rlimits,
        additional_groups=conf.additional_groups,
        terminal=cfg.tty,
        console_height=cfg.console_size[0],
        console_width=cfg.console_size[1],
    )


def exec_process(
    container: Container,
    args: tuple[str, ...],
    env: tuple[str, ...],
    working_dir: str,
    user: str,
    stdin: bool,
    tty: bool = False,
    console_size: tuple[int, int] = (0, 0),
) -> Process:
    """An exec's process, complete: the container's, with the exec's overrides on top.

    As `docker exec`: the exec's variables win over the container's by key, and an exec
    without a user or working directory gets the container's. Its privileges are the
    container's: an exec never gets more than the init has.
    """
    if working_dir and not working_dir.startswith("/"):
        raise InvalidArgument(
            f"the working directory {working_dir!r} is invalid: it needs to be an absolute path"
        )
    check_path(working_dir, "the working directory")
    check_args_and_env(args, env, "the exec")
    init = container_process(container)
    return Process(
        args=args,
        env=merge_env(init.env, env),
        cwd=working_dir or init.cwd,
        user=user or init.user,
        capabilities=init.capabilities,
        no_new_privileges=init.no_new_privileges,
        stdin=stdin,
        rlimits=init.rlimits,
        additional_groups=init.additional_groups,
        terminal=tty,
        console_height=console_size[0],
        console_width=console_size[1],
    )


def container_linux(
    container: Container,
    cgroup_parent: str,
    network_path: str = "",
    host_network: bool = False,
    seccomp: str = "",
    confinement: Confinement | None = None,
) -> Linux:
    """How the container is isolated: Docker's defaults, its own cgroup, its security
    options; `seccomp` is SECCOMP_FILE when the bundle has its filter ("": none).

    `network_path`: the network namespace to join (made by the network manager); ""
    gives the container a new one with only `lo`; `host_network`: the host's.
    """
    conf = confinement or describe(container.host_config.security)
    extra = {d.path for d in conf.devices}
    return Linux(
        namespaces=default_namespaces(network_path, host_network),
        cgroups_path=cgroup_path(container, cgroup_parent),
        # --privileged: nothing hidden, nothing read-only (docker's).
        masked_paths=MASKED_PATHS if conf.masked else (),
        readonly_paths=READONLY_PATHS if conf.masked else (),
        devices=(*(d for d in DEFAULT_DEVICES if d.path not in extra), *conf.devices),
        sysctl=dict(conf.sysctls),
        rootfs_propagation=ROOTFS_PROPAGATION,
        seccomp=seccomp,
        device_cgroup=conf.device_rules,
    )


def container_log(container: Container) -> Log:
    rotation = container.host_config.log_config
    return Log(path=container.log_path, max_size=rotation.max_size, max_files=rotation.max_files)
