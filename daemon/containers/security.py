"""A container's confinement: the checks of its security options, and their spec parts.

Owns: judging `Security` at create (capability names, --security-opt, the seccomp profile
parsed and every system call in it known, devices that exist, ulimits docker knows and
within this host's hard limits, namespaced sysctls only, --userns refused), and turning a
container's `Security` into what the shim's spec says: its capabilities (docker's default
set, --cap-add/--cap-drop, ALL, --privileged), no_new_privileges, rlimits, device nodes
(and the device cgroup's allow-list), sysctls, the /dev/shm size, masked and read-only
paths, and which seccomp profile it gets. Must not: compile a profile (`pallet.daemon.seccomp`
does, cached) or start anything.

no_new_privileges is Docker's: not set unless `--security-opt no-new-privileges` asks
(setuid programs in the image work, as in docker); the seccomp filter is then installed
while the process still has CAP_SYS_ADMIN (see `pallet.shim.identity`).
"""

from __future__ import annotations

import functools
import os
import resource
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from pallet.daemon.containers.model import DeviceMapping, HostConfig, Security, Ulimit
from pallet.shim.api.files import sysctl_namespace
from pallet.shim.api.spec import NS_NETWORK, Device, DeviceRule, Rlimit
from pallet.shim.api.capnames import CAPABILITY_NUMBERS
from pallet.v1.errors import InvalidArgument

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
ALL_CAPABILITIES = tuple(f"CAP_{name}" for name in CAPABILITY_NUMBERS)

# docker's --ulimit names -> the kernel's.
ULIMITS: Mapping[str, str] = {
    "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA",
    "fsize": "RLIMIT_FSIZE", "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK",
    "msgqueue": "RLIMIT_MSGQUEUE", "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE",
    "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO",
    "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK",
}
DEFAULT_SHM_SIZE = 64 << 20  # docker's
SECCOMP_UNCONFINED = "unconfined"

# The device cgroup's default allow-list (runc's, which docker uses): any node may be
# made (mknod), and these used; (type, major, minor, access), -1 for any.
_DEFAULT_DEVICE_RULES = (
    ("c", -1, -1, "m"), ("b", -1, -1, "m"),
    ("c", 1, 3, "rwm"), ("c", 1, 5, "rwm"), ("c", 1, 7, "rwm"),  # null, zero, full
    ("c", 1, 8, "rwm"), ("c", 1, 9, "rwm"),  # random, urandom
    ("c", 5, 0, "rwm"), ("c", 5, 1, "rwm"), ("c", 5, 2, "rwm"),  # tty, console, ptmx
    ("c", 136, -1, "rwm"),  # the pts devices
    ("c", 10, 200, "rwm"),  # /dev/net/tun
)
DEFAULT_DEVICE_RULES = tuple(DeviceRule(True, *rule) for rule in _DEFAULT_DEVICE_RULES)
ALLOW_ALL_DEVICES = (DeviceRule(True, "a", -1, -1, "rwm"),)
# /dev entries a privileged container does not get from the host: it has its own.
_HOST_DEV_SKIPPED = ("pts", "shm", "mqueue", "fd", "ptmx", "console", "core")


def _cap_name(name: str) -> str:
    return "CAP_" + name.strip().upper().removeprefix("CAP_")


@functools.cache
def _own_bounding_set() -> frozenset[str]:
    """The capabilities palletd itself may hand on (its bounding set)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    mask = int(line.split()[1], 16)
                    return frozenset(
                        f"CAP_{n}" for n, bit in CAPABILITY_NUMBERS.items() if mask & (1 << bit)
                    )
    except OSError:
        pass
    return frozenset(ALL_CAPABILITIES)


def _check_caps(names: tuple[str, ...], flag: str, available: frozenset[str]) -> tuple[str, ...]:
    out = []
    for name in names:
        if name.strip().upper() == "ALL":
            out.append("ALL")
            continue
        cap = _cap_name(name)
        if cap.removeprefix("CAP_") not in CAPABILITY_NUMBERS:
            raise InvalidArgument(
                f"unknown capability {name!r} in {flag}: use a name such as NET_ADMIN or "
                "CAP_NET_ADMIN, or ALL (see capabilities(7))"
            )
        if flag == "--cap-add" and cap not in available:
            raise InvalidArgument(
                f"--cap-add {name}: pallet itself does not have {cap} on this host, so it "
                "cannot give it to a container"
            )
        out.append(cap)
    return tuple(out)


def security_options(opts: tuple[str, ...]) -> tuple[str | None, bool]:
    """--security-opt values -> (seccomp: None default, "unconfined", or a profile's
    JSON; no_new_privileges). InvalidArgument for anything else."""
    seccomp: str | None = None
    nnp = False
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep and ":" in opt and not opt.lstrip().startswith("{"):
            key, sep, value = opt.partition(":")  # docker's older "no-new-privileges:true"
        key = key.strip()
        if key == "seccomp" and sep:
            seccomp = value
        elif key == "no-new-privileges":
            if not sep or value in ("true", ""):
                nnp = True
            elif value == "false":
                nnp = False
            else:
                raise InvalidArgument(
                    f"invalid --security-opt {opt!r}: no-new-privileges takes true or false"
                )
        elif key in ("apparmor", "label", "systempaths", "mask"):
            raise InvalidArgument(
                f"--security-opt {key}: pallet does not support it (AppArmor and SELinux "
                "labels are not used here)"
            )
        else:
            raise InvalidArgument(
                f"invalid --security-opt {opt!r}: use seccomp=unconfined, "
                "seccomp=PROFILE.json or no-new-privileges"
            )
    return seccomp, nnp


def _device_number(path: str) -> tuple[str, int, int, int]:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InvalidArgument(
            f"--device {path}: {exc.strerror or exc}: give the path of a device node on "
            "this host (ls -l /dev)"
        ) from None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise InvalidArgument(f"--device {path}: not a character or block device node")
    return kind, os.major(st.st_rdev), os.minor(st.st_rdev), stat.S_IMODE(st.st_mode)


def _check_device(d: DeviceMapping) -> DeviceMapping:
    host = d.path_on_host
    target = d.path_in_container or host
    perms = d.cgroup_permissions or "rwm"
    if not host.startswith("/"):
        raise InvalidArgument(f"--device {host}: the host path must be absolute (/dev/...)")
    if not target.startswith("/dev/") or ".." in target.split("/") or target.rstrip("/") == "/dev":
        raise InvalidArgument(
            f"--device {host}:{target}: the path in the container must be a file under /dev"
        )
    if not perms or any(ch not in "rwm" for ch in perms) or len(set(perms)) != len(perms):
        raise InvalidArgument(
            f"--device {host}: invalid permissions {perms!r}: use some of r, w and m (rwm)"
        )
    _device_number(host)
    return DeviceMapping(host, target, perms)


def _host_hard_limit(kernel_name: str) -> int:
    value = resource.getrlimit(getattr(resource, kernel_name))[1]
    return -1 if value == resource.RLIM_INFINITY else int(value)


def _check_ulimit(u: Ulimit) -> Ulimit:
    if u.name not in ULIMITS:
        raise InvalidArgument(
            f"unknown ulimit {u.name!r}: use one of {', '.join(sorted(ULIMITS))}"
        )
    if u.soft < -1 or u.hard < -1:
        raise InvalidArgument(f"--ulimit {u.name}: limits are numbers, or -1 for unlimited")
    unlimited = -1
    if u.hard != unlimited and (u.soft == unlimited or u.soft > u.hard):
        raise InvalidArgument(
            f"--ulimit {u.name}={u.soft}:{u.hard}: the soft limit is above the hard one: "
            "give SOFT:HARD with SOFT <= HARD"
        )
    host = _host_hard_limit(ULIMITS[u.name])
    if host != unlimited and (u.hard == unlimited or u.hard > host):
        raise InvalidArgument(
            f"--ulimit {u.name}={u.soft}:{u.hard}: above this host's hard limit {host}, "
            "which pallet cannot raise (it has no CAP_SYS_RESOURCE): use at most "
            f"{u.name}={min(u.soft, host) if u.soft != unlimited else host}:{host}"
        )
    return u


def _check_sysctls(sysctls: Mapping[str, str], network_mode: str) -> None:
    for key, value in sysctls.items():
        scope = sysctl_namespace(key)
        if not scope or key in ("kernel.hostname", "kernel.domainname"):
            raise InvalidArgument(
                f"sysctl {key} is not allowed: it is not namespaced and would change the "
                "host; only kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.* and net.* are"
            )
        if scope == NS_NETWORK and (network_mode == "host" or network_mode.startswith("container:")):
            raise InvalidArgument(
                f"sysctl {key} needs the container's own network namespace: not with "
                f"--network {network_mode}"
            )
        if "\n" in value or "\0" in value:
            raise InvalidArgument(f"invalid value for sysctl {key}: one line, no NUL")


def check(host: HostConfig, check_profile: Callable[[str], None]) -> HostConfig:
    """`host` with its `security` judged and normalised; InvalidArgument says what to fix.

    `check_profile` parses a seccomp profile's JSON and checks its system call names.
    """
    sec = host.security
    if sec.userns_mode not in ("", "host"):
        raise InvalidArgument(
            f"--userns {sec.userns_mode}: pallet has no user namespaces yet; leave --userns "
            "out (or use --userns host)"
        )
    available = _own_bounding_set()
    cap_add = _check_caps(sec.cap_add, "--cap-add", available)
    cap_drop = _check_caps(sec.cap_drop, "--cap-drop", available)
    seccomp, _ = security_options(sec.security_opt)
    if seccomp not in (None, SECCOMP_UNCONFINED):
        if not seccomp.strip():
            raise InvalidArgument("--security-opt seccomp=: give a profile's path, or unconfined")
        check_profile(seccomp)
    devices = tuple(_check_device(d) for d in sec.devices)
    targets = [d.path_in_container for d in devices]
    if len(set(targets)) != len(targets):
        raise InvalidArgument("--device: two devices have the same path in the container")
    names = [u.name for u in sec.ulimits]
    if len(set(names)) != len(names):
        raise InvalidArgument("--ulimit: a limit is given twice")
    ulimits = tuple(_check_ulimit(u) for u in sec.ulimits)
    _check_sysctls(sec.sysctls, host.network_mode)
    if sec.shm_size < 0:
        raise InvalidArgument("--shm-size must be 0 (docker's 64m) or more")
    for group in sec.group_add:
        if not group or ":" in group or "\n" in group or "/" in group:
            raise InvalidArgument(f"invalid --group-add {group!r}: give a group name or a gid")
    return replace(host, security=replace(
        sec, cap_add=cap_add, cap_drop=cap_drop, devices=devices, ulimits=ulimits,
        sysctls=dict(sec.sysctls), shm_size=sec.shm_size or DEFAULT_SHM_SIZE,
    ))


# ---- the spec's parts -------------------------------------------------------------------


def capabilities(sec: Security) -> tuple[str, ...]:
    """docker's rules: --privileged or --cap-add ALL: all (but the drops); --cap-drop ALL:
    only the adds; otherwise the default set, plus the adds, minus the drops."""
    available = _own_bounding_set()
    if sec.privileged:
        return tuple(c for c in ALL_CAPABILITIES if c in available)
    add = [c for c in sec.cap_add if c != "ALL"]
    drop = [c for c in sec.cap_drop if c != "ALL"]
    if "ALL" in sec.cap_add:
        base = [c for c in ALL_CAPABILITIES if c in available]
    elif "ALL" in sec.cap_drop:
        return tuple(dict.fromkeys(add))
    else:
        base = [*DEFAULT_CAPABILITIES, *add]
    return tuple(c for c in dict.fromkeys(base) if c not in drop)


@dataclass(frozen=True, slots=True)
class Confinement:
    """What `describe` makes of a container's `Security` for the shim's spec."""

    capabilities: tuple[str, ...]
    no_new_privileges: bool
    rlimits: tuple[Rlimit, ...]
    additional_groups: tuple[str, ...]
    # None: no filter; "": pallet's default profile; else the profile's JSON.
    seccomp_profile: str | None
    devices: tuple[Device, ...]  # beyond the default ones
    device_rules: tuple[DeviceRule, ...]
    masked: bool  # docker's masked and read-only /proc paths apply
    shm_size: int
    sysctls: Mapping[str, str]


def describe(sec: Security, with_devices: bool = True) -> Confinement:
    """The spec's view of `sec` (checked at create); the host's devices are read now
    (`with_devices` False: not, for what needs only the process's part, as an exec)."""
    seccomp, nnp = security_options(sec.security_opt)
    if sec.privileged or seccomp == SECCOMP_UNCONFINED:
        profile: str | None = None
    else:
        profile = seccomp or ""
    devices: list[Device] = []
    rules = list(ALLOW_ALL_DEVICES if sec.privileged else DEFAULT_DEVICE_RULES)
    if sec.privileged and with_devices:
        devices.extend(host_devices())
    for d in sec.devices if with_devices else ():
        kind, major, minor, mode = _device_number(d.path_on_host)
        devices = [x for x in devices if x.path != d.path_in_container]
        devices.append(Device(d.path_in_container, kind, major, minor, mode, 0, 0))
        if not sec.privileged:
            rules.append(DeviceRule(True, kind, major, minor, d.cgroup_permissions))
    return Confinement(
        capabilities=capabilities(sec),
        no_new_privileges=nnp,
        rlimits=tuple(
            Rlimit(ULIMITS[u.name], u.soft, u.hard) for u in sec.ulimits
        ),
        additional_groups=sec.group_add,
        seccomp_profile=profile,
        devices=tuple(devices),
        device_rules=tuple(rules),
        masked=not sec.privileged,
        shm_size=sec.shm_size or DEFAULT_SHM_SIZE,
        sysctls=dict(sec.sysctls),
    )


def host_devices(root: str = "/dev") -> list[Device]:
    """Every device node under the host's /dev (a privileged container's), but the ones a
    container has of its own (its pts, shm, mqueue, console)."""
    found: list[Device] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel == ".":
            dirnames[:] = [d for d in dirnames if d not in _HOST_DEV_SKIPPED]
        for name in filenames:
            if rel == "." and name in _HOST_DEV_SKIPPED:
                continue
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
                found.append(Device(
                    path, kind, os.major(st.st_rdev), os.minor(st.st_rdev),
                    stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                ))
    return found

