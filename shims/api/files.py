"""The shim contract's files and checks: config.json, exit.json, exec exits; spec checks.

Owns: reading and writing the bundle files with `pallet.shim.api.codec` (exit.json
atomically: tmp + fsync + rename, nothing left behind when the disk refuses, and removed
durably before a new run; one `execs/<exec_id>.json` per ended exec, atomically
but without fsync), and `validate_spec` / `validate_exec`: what a shim refuses before it
builds anything (and `check_cgroup_path`, the one cgroup-path check, which the cgroup
managers use too). Must
not: interpret the values beyond checking them; the daemon writes config.json with
`write_spec`, the shim reads it with `read_spec`.
"""

from __future__ import annotations

import errno
import json
import os
import posixpath
import re
from typing import Any

from pallet.v1.errors import InvalidArgument
from pallet.shim.api import codec
from pallet.shim.api.mountflags import FLAGS, TMPFS_DATA_KEYS, TMPFS_DATA_WORDS
from pallet.shim.api.spec import (
    CONFIG_FILE,
    EXEC_EXITS_DIR,
    EXIT_STATUS_FILE,
    MOUNT_TYPES,
    SECCOMP_FILE,
    NAMESPACE_TYPES,
    PROPAGATIONS,
    NS_IPC,
    NS_MOUNT,
    NS_NETWORK,
    NS_UTS,
    Device,
    ExecSpec,
    ExitStatus,
    Linux,
    Mount,
    Process,
    ShimSpec,
)

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# "net.ipv4.ip_forward": dotted words, written to /proc/sys/net/ipv4/ip_forward.
_SYSCTL_KEY = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+")
# The sysctls a namespace scopes (docker's list): any other one would change the host.
_IPC_SYSCTLS = frozenset({
    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
    "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
})
_UTS_SYSCTLS = frozenset({"kernel.domainname", "kernel.hostname"})
# Mount options the shim turns into mount(2) flags, and the fs data options each type
# takes: tmpfs's from the one table (`mountflags`) the daemon's checks read too.
MOUNT_FLAG_OPTIONS = frozenset(FLAGS)
_DATA_OPTIONS: dict[str, frozenset[str]] = {
    "bind": frozenset(),
    "proc": frozenset(),
    "sysfs": frozenset(),
    "mqueue": frozenset(),
    "tmpfs": TMPFS_DATA_KEYS | TMPFS_DATA_WORDS,
    "devpts": frozenset({"newinstance", "ptmxmode", "mode", "uid", "gid", "max"}),
}


# The kernel's limit on a classic BPF program (BPF_MAXINSNS), 8 bytes an instruction.
SECCOMP_MAX_INSTRUCTIONS = 4096
RLIMIT_TYPES = frozenset({
    "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
    "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
})


def sysctl_namespace(key: str) -> str:
    """The namespace that scopes sysctl `key` (NS_NETWORK, NS_IPC, NS_UTS), "" if none
    does (it is the host's): docker's list, which the daemon's --sysctl check reads too."""
    return _sysctl_namespace(key)


def _sysctl_namespace(key: str) -> str:
    if key.startswith("net."):
        return NS_NETWORK
    if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
        return NS_IPC
    if key in _UTS_SYSCTLS:
        return NS_UTS
    return ""


def check_cgroup_path(relative: str) -> str:
    """`relative` if it is a cgroup path below each hierarchy's root (the spec's
    `linux.cgroups_path`, `pallet-shim delete --cgroups-path`); InvalidArgument if not."""
    parts = relative.split("/")
    if relative.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidArgument(
            f"invalid cgroup path {relative!r}: give a relative path such as "
            "pallet/<id>, without '..' or empty parts"
        )
    return relative


def validate_spec(spec: ShimSpec) -> ShimSpec:
    """Reject values that would escape their directory, smuggle options, or be ambiguous."""
    if not _ID.fullmatch(spec.container_id):
        raise InvalidArgument(
            f"invalid container id {spec.container_id!r}: use letters, digits, '_', '.', '-'"
        )
    for name, value in (("bundle dir", spec.bundle_dir), ("log path", spec.log.path)):
        if not value.startswith("/"):
            raise InvalidArgument(f"the {name} {value!r} must be an absolute path")
    if spec.log.max_size < 0 or spec.log.max_files < 1:
        raise InvalidArgument(
            f"invalid log rotation (max size {spec.log.max_size}, max files "
            f"{spec.log.max_files}): the size must be >= 0 and at least one file kept"
        )
    root = spec.root
    for path in (*root.layers, root.upper_dir, root.work_dir, root.path):
        # overlayfs takes its directories in one comma- and colon-separated option string.
        if not path.startswith("/") or any(c in path for c in ",:\n"):
            raise InvalidArgument(f"invalid rootfs path {path!r}: must be absolute, without ',' or ':'")
    if not root.layers:
        raise InvalidArgument("the rootfs needs at least one lower directory")
    _validate_process(spec.process, f"container {spec.container_id}")
    if len(spec.hostname.encode()) > 64:
        raise InvalidArgument(f"hostname {spec.hostname!r} is longer than 64 bytes")
    if spec.hostname and not spec.has_namespace(NS_UTS):
        raise InvalidArgument(
            f"hostname {spec.hostname!r} needs the container's own uts namespace: "
            "list it, or give no hostname"
        )
    for mount in spec.mounts:
        _validate_mount(mount)
    _validate_linux(spec.linux)
    return spec


def _validate_mount(mount: Mount) -> None:
    if not mount.destination.startswith("/"):
        raise InvalidArgument(f"mount destination {mount.destination!r} must be absolute")
    if mount.type not in MOUNT_TYPES:
        raise InvalidArgument(
            f"mount {mount.destination}: unknown type {mount.type!r}: use one of "
            f"{', '.join(MOUNT_TYPES)}"
        )
    if mount.type == "bind" and not mount.source.startswith("/"):
        raise InvalidArgument(
            f"bind mount {mount.destination}: the source {mount.source!r} must be absolute"
        )
    data = _DATA_OPTIONS[mount.type]
    for option in mount.options:
        # A comma would smuggle a second option into the fs data string.
        ok = "," not in option and (
            option in MOUNT_FLAG_OPTIONS
            or option in PROPAGATIONS
            or option.partition("=")[0] in data
        )
        if not ok:
            allowed = sorted(data) + ["ro", "nosuid", "nodev", "noexec", "..."] + list(PROPAGATIONS)
            raise InvalidArgument(
                f"mount {mount.destination}: option {option!r} is not one a {mount.type} mount "
                f"takes: use {', '.join(allowed)}"
            )


def _validate_linux(linux: Linux) -> None:
    if linux.rootfs_propagation not in PROPAGATIONS:
        raise InvalidArgument(
            f"invalid rootfs propagation {linux.rootfs_propagation!r}: use one of "
            f"{', '.join(PROPAGATIONS)}"
        )
    seen: set[str] = set()
    for ns in linux.namespaces:
        if ns.type not in NAMESPACE_TYPES:
            raise InvalidArgument(
                f"unknown namespace type {ns.type!r}: use one of {', '.join(NAMESPACE_TYPES)}"
            )
        if ns.type in seen:
            raise InvalidArgument(f"the {ns.type} namespace is listed twice")
        seen.add(ns.type)
        if ns.path and not ns.path.startswith("/"):
            raise InvalidArgument(f"the {ns.type} namespace path {ns.path!r} must be absolute")
    mount_ns = next((ns for ns in linux.namespaces if ns.type == NS_MOUNT), None)
    if mount_ns is None or mount_ns.path:
        # The root filesystem is mounted in it: in the host's, it would show on the host.
        raise InvalidArgument("the container needs a new mount namespace (listed without a path)")
    if linux.cgroups_path:
        check_cgroup_path(linux.cgroups_path)
    for path in (*linux.masked_paths, *linux.readonly_paths):
        if not path.startswith("/"):
            raise InvalidArgument(f"masked or read-only path {path!r} must be absolute")
    paths: set[str] = set()
    for device in linux.devices:
        _validate_device(device)
        if device.path in paths:
            raise InvalidArgument(f"device {device.path} is listed twice")
        paths.add(device.path)
    if linux.masked_paths and not any(
        (d.path, d.type, d.major, d.minor) == ("/dev/null", "c", 1, 3) for d in linux.devices
    ):
        # A masked file is hidden under a bind of the container's own /dev/null.
        raise InvalidArgument("masked paths need /dev/null (c 1:3) among the devices")
    if linux.seccomp not in ("", SECCOMP_FILE):
        raise InvalidArgument(
            f"linux.seccomp is {linux.seccomp!r}: give {SECCOMP_FILE!r} (the bundle's filter) or ''"
        )
    for rule in linux.device_cgroup:
        if (rule.type not in ("a", "c", "b") or rule.major < -1 or rule.minor < -1
                or not rule.access or any(ch not in "rwm" for ch in rule.access)):
            raise InvalidArgument(
                f"invalid device cgroup rule {rule.type} {rule.major}:{rule.minor} "
                f"{rule.access!r}: type a, c or b; numbers or -1 (any); access some of rwm"
            )
    # Joined ones count: the daemon made them for this container (e.g. its netns).
    own = {ns.type for ns in linux.namespaces}
    for key, value in linux.sysctl.items():
        if not _SYSCTL_KEY.fullmatch(key):
            raise InvalidArgument(
                f"invalid sysctl {key!r}: use dotted names such as net.ipv4.ip_forward"
            )
        if "\n" in value or "\0" in value:
            raise InvalidArgument(f"invalid value for sysctl {key}: one line, no NUL")
        scope = _sysctl_namespace(key)
        if not scope:
            raise InvalidArgument(f"sysctl {key} is not namespaced: it would change the host")
        if scope not in own:
            raise InvalidArgument(
                f"sysctl {key} needs the container's own {scope} namespace: it would "
                "change the host's"
            )


def _validate_device(device: Device) -> None:
    normal = posixpath.normpath(device.path)
    if normal != device.path or not normal.startswith("/dev/") or normal == "/dev/":
        raise InvalidArgument(f"invalid device path {device.path!r}: must be a file under /dev")
    if device.type not in ("c", "b"):
        raise InvalidArgument(
            f"invalid device type {device.type!r} for {device.path}: use 'c' or 'b'"
        )
    if not (0 <= device.major < 1 << 12 and 0 <= device.minor < 1 << 20):
        raise InvalidArgument(f"invalid device number {device.major}:{device.minor} for {device.path}")
    if not 0 <= device.file_mode <= 0o777:
        raise InvalidArgument(f"invalid file mode {device.file_mode:o} for {device.path}")
    if device.uid < 0 or device.gid < 0:
        raise InvalidArgument(f"invalid owner {device.uid}:{device.gid} for {device.path}")


def _validate_process(process: Process, what: str) -> None:
    if not process.args:
        raise InvalidArgument(f"{what} has no command to run")
    if not process.cwd.startswith("/"):
        raise InvalidArgument(
            f"the working directory {process.cwd!r} of {what} must be an absolute path"
        )
    for item in process.env:
        if "=" not in item:
            raise InvalidArgument(f"invalid environment variable {item!r} for {what}: use KEY=value")
    for limit in process.rlimits:
        if limit.type not in RLIMIT_TYPES:
            raise InvalidArgument(f"unknown rlimit {limit.type!r} for {what}")
        if limit.hard >= 0 and not 0 <= limit.soft <= limit.hard:
            raise InvalidArgument(
                f"rlimit {limit.type} of {what}: the soft limit {limit.soft} is above the "
                f"hard limit {limit.hard}"
            )
    for group in process.additional_groups:
        if not group or ":" in group or "\n" in group:
            raise InvalidArgument(f"invalid additional group {group!r} for {what}")


def validate_exec(spec: ExecSpec) -> ExecSpec:
    validate_exec_id(spec.exec_id)
    _validate_process(spec.process, f"exec {spec.exec_id}")
    return spec


def write_spec(spec: ShimSpec) -> None:
    """Write `<bundle>/config.json` (atomically, so a shim never reads half a spec)."""
    validate_spec(spec)
    # Not fsynced: the shim reads it at once from the page cache, and after a host crash
    # no shim is left to read it; the next start writes it again. Two fsyncs per start
    # showed up when 20 containers start at once.
    _write_atomic(os.path.join(spec.bundle_dir, CONFIG_FILE), codec.to_json(spec), durable=False)


def read_spec(bundle_dir: str) -> ShimSpec:
    path = os.path.join(bundle_dir, CONFIG_FILE)
    try:
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        raise InvalidArgument(f"no shim spec at {path}") from None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"shim spec {path} is not JSON: {exc}") from None
    return validate_spec(codec.from_json(ShimSpec, raw, what="shim spec"))


def read_cgroups_path(bundle_dir: str) -> str:
    """The cgroup path in a bundle's config.json, and nothing else of it.

    `pallet-shim delete` needs only this, and reads specs that an older pallet wrote (a
    shim that outlived an upgrade): the whole spec would be refused for each field that
    came later without a default, and the dead shim's cgroup would never be cleaned up."""
    path = os.path.join(bundle_dir, CONFIG_FILE)
    with open(path, "rb") as f:
        text = f.read()
    try:
        linux = json.loads(text)["linux"]
        cgroups_path = linux["cgroups_path"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument(f"shim spec {path} names no cgroup (linux.cgroups_path): {exc!r}") from None
    if not isinstance(cgroups_path, str):
        raise InvalidArgument(f"shim spec {path}: linux.cgroups_path is not a string")
    return cgroups_path


def write_seccomp(bundle_dir: str, program: bytes) -> None:
    """Write the container's seccomp filter, `<bundle>/seccomp.bpf` (atomically, not
    fsynced: a start writes it again, as config.json)."""
    _check_program(program)
    path = os.path.join(bundle_dir, SECCOMP_FILE)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(program)
    os.replace(tmp, path)


def read_seccomp(bundle_dir: str) -> bytes:
    """The filter `write_seccomp` wrote; InvalidArgument when it is not a BPF program."""
    path = os.path.join(bundle_dir, SECCOMP_FILE)
    try:
        with open(path, "rb") as f:
            program = f.read(SECCOMP_MAX_INSTRUCTIONS * 8 + 1)
    except OSError as exc:
        raise InvalidArgument(f"cannot read the seccomp filter {path}: {exc.strerror or exc}") from None
    _check_program(program)
    return program


def _check_program(program: bytes) -> None:
    if not program or len(program) % 8 or len(program) // 8 > SECCOMP_MAX_INSTRUCTIONS:
        raise InvalidArgument(
            f"the seccomp filter is not a BPF program of 1 to {SECCOMP_MAX_INSTRUCTIONS} "
            "instructions (8 bytes each)"
        )


def write_exit_status(bundle_dir: str, status: ExitStatus) -> None:
    """Record how the container ended; durable before anyone is told."""
    _write_atomic(os.path.join(bundle_dir, EXIT_STATUS_FILE), codec.to_json(status))


def discard_exit_status(bundle_dir: str) -> None:
    """Remove a previous run's exit.json, durably, before a new run's container exists:
    otherwise a shim that dies without recording its exit leaves the old status to be
    read as this run's."""
    try:
        os.unlink(os.path.join(bundle_dir, EXIT_STATUS_FILE))
    except FileNotFoundError:
        return
    _fsync_dir(bundle_dir)


def read_exit_status(bundle_dir: str) -> ExitStatus | None:
    try:
        with open(os.path.join(bundle_dir, EXIT_STATUS_FILE), "rb") as f:
            return codec.loads(ExitStatus, f.read())
    except FileNotFoundError:
        return None
    except InvalidArgument:
        # Only a rename makes the file appear, so a torn file means outside tampering.
        return None


def validate_exec_id(exec_id: str) -> str:
    """An exec id names a file in the bundle: nothing that could leave `execs/`."""
    if not _ID.fullmatch(exec_id) or exec_id.startswith("."):
        raise InvalidArgument(
            f"invalid exec id {exec_id!r}: use letters, digits, '_', '.', '-'"
        )
    return exec_id


def _exec_exit_path(bundle_dir: str, exec_id: str) -> str:
    return os.path.join(bundle_dir, EXEC_EXITS_DIR, validate_exec_id(exec_id) + ".json")


def write_exec_exit(bundle_dir: str, exec_id: str, status: ExitStatus) -> None:
    """Record how an exec ended, before anyone is told.

    Atomic (a reader sees all of it or nothing) but not fsynced: it must survive palletd
    and the shim dying, which a rename does; a host crash takes the exec's container too.
    """
    os.makedirs(os.path.join(bundle_dir, EXEC_EXITS_DIR), mode=0o700, exist_ok=True)
    _write_atomic(_exec_exit_path(bundle_dir, exec_id), codec.to_json(status), durable=False)


def read_exec_exit(bundle_dir: str, exec_id: str) -> ExitStatus | None:
    path = _exec_exit_path(bundle_dir, exec_id)
    try:
        with open(path, "rb") as f:
            return codec.loads(ExitStatus, f.read())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except InvalidArgument:
        return None  # only a rename makes it appear: a torn file is outside tampering


def discard_exec_exit(bundle_dir: str, exec_id: str) -> None:
    try:
        os.unlink(_exec_exit_path(bundle_dir, exec_id))
    except (FileNotFoundError, NotADirectoryError):
        pass


def _write_atomic(path: str, value: dict[str, Any], durable: bool = True) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    data = json.dumps(value, separators=(",", ":")).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, f"short write to {tmp}")
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        # A full disk must leave nothing behind (the caller may try again later).
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if not durable:
        return
    # The rename is durable only once the directory entry is.
    _fsync_dir(os.path.dirname(path) or ".")


def _fsync_dir(path: str) -> None:
    dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
