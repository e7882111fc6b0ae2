"""A container's bundle: the files and the ShimSpec a shim builds the container from.

Owns: the per-container /etc/hostname, /etc/hosts and /etc/resolv.conf files, Docker's
default security settings (capabilities, masked and read-only paths), and turning a
`Container` plus its image's layers into a `ShimSpec`. Must not: start anything.
"""

from __future__ import annotations

from pathlib import Path

from pallet.daemon.containers.model import Container
from pallet.shim.api.spec import Mount, RootFs, ShimSpec

# Docker's default capability set: what a root process in a container may do.
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
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


def etc_mounts(container: Container) -> tuple[Mount, ...]:
    """The bind mounts of the files `write_etc_files` wrote over the image's /etc ones."""
    return tuple(
        Mount(destination=f"/etc/{name}", type="bind", source=f"{container.state_dir}/{name}",
              options=("rbind", "rprivate"))
        for name in ("hostname", "hosts", "resolv.conf")
    )


def cgroup_path(container: Container, cgroup_parent: str) -> str:
    """The container's cgroup, relative to each hierarchy's root."""
    return f"{cgroup_parent}/{container.id}"


def shim_spec(container: Container, rootfs: RootFs, cgroup_parent: str) -> ShimSpec:
    """The spec a shim needs to build and run `container` on `rootfs`."""
    state_dir = container.state_dir
    mounts = etc_mounts(container)
    cfg = container.config
    return ShimSpec(
        container_id=container.id,
        bundle_dir=state_dir,
        args=container.argv,
        env=cfg.env,
        cwd=cfg.working_dir or "/",
        user=cfg.user,
        hostname=cfg.hostname,
        rootfs=rootfs,
        log_path=container.log_path,
        open_stdin=cfg.open_stdin,
        mounts=mounts,
        capabilities=DEFAULT_CAPABILITIES,
        masked_paths=MASKED_PATHS,
        readonly_paths=READONLY_PATHS,
        cgroup_path=cgroup_path(container, cgroup_parent),
        no_new_privileges=True,
        log_max_size=container.host_config.log_config.max_size,
        log_max_files=container.host_config.log_config.max_files,
    )
