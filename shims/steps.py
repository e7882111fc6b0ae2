"""Container setup as ordered lists of small named steps, one kernel action each.

Owns: `Step` and `run_steps`, and what happens between fork and exec, in order, for the
container's init and for exec processes up to the process's own identity (that part is
`pallet.shim.identity`): namespaces (made or joined, as `linux.namespaces` lists them),
the cgroup join, the root filesystem (the rootfs, then `spec.mounts` in order with one
routine), device nodes and /dev links, pivot_root, sysctls, masked and
read-only paths, hostname. Must not: talk to clients or wait on anything but the start
pipe, or fill in anything the spec leaves out (the daemon owns every default); every
kernel call goes through `Syscalls`, so `tests/unit/test_shim_steps.py` checks the order
with a fake.

The shim makes (or joins) the pid namespace itself before it forks (`enter_pid_namespace`:
it applies to children only, so the shim stays in the host's), which makes its first
child PID 1 of the container and every later child (exec processes) a member of it. That
child makes the other namespaces, builds the filesystem and the process identity, then
waits for `start` and execs.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass

from pallet.v1.errors import FailedPrecondition, PalletError
from pallet.shim.api.spec import (
    NS_CGROUP,
    NS_IPC,
    NS_MOUNT,
    NS_NETWORK,
    NS_PID,
    NS_UTS,
    Mount,
    Namespace,
    ShimSpec,
)
from pallet.shim import syscalls as sc
from pallet.shim.api.paths import secure_join
from pallet.shim.api.inroot import fd_path, open_mount_point
from pallet.shim.mounts import parse_options
from pallet.shim.syscalls import Syscalls

# The spec's namespace types: their name under /proc/<pid>/ns and their clone flag.
NAMESPACES: dict[str, tuple[str, int]] = {
    NS_PID: ("pid", sc.CLONE_NEWPID),
    NS_NETWORK: ("net", sc.CLONE_NEWNET),
    NS_MOUNT: ("mnt", sc.CLONE_NEWNS),
    NS_IPC: ("ipc", sc.CLONE_NEWIPC),
    NS_UTS: ("uts", sc.CLONE_NEWUTS),
    NS_CGROUP: ("cgroup", sc.CLONE_NEWCGROUP),
}
# Order of setns for exec. No pid: the shim's children are born in the container's pid
# namespace already. mount last, because entering it changes our root; every
# /proc/<pid>/ns fd is opened before the first setns.
EXEC_NAMESPACE_ORDER = (NS_IPC, NS_UTS, NS_NETWORK, NS_CGROUP, NS_MOUNT)
_DEV_LINKS = (
    ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"), ("core", "/proc/kcore"),
)
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


@dataclass(frozen=True, slots=True)
class Step:
    """One named setup action."""

    name: str
    run: Callable[[], None]


class ExecFailed(Exception):
    """The final exec failed; carries docker's exit code (127 / 126) and wording."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message


def run_steps(steps: list[Step]) -> None:
    """Run steps in order; a failure names the step so the user sees what broke."""
    for step in steps:
        try:
            step.run()
        except (PalletError, ExecFailed):
            raise
        except Exception as exc:
            raise FailedPrecondition(f"container setup failed at {step.name}: {exc}") from None


def set_loopback_up() -> None:
    """Bring `lo` up in the current network namespace (SIOCSIFFLAGS, no netlink needed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | _IFF_UP))


def join_namespace(sys: Syscalls, ns: Namespace) -> None:
    """setns into the namespace at `ns.path` (a /proc/<pid>/ns/* file or a bind of one)."""
    fd = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        sys.setns(fd, NAMESPACES[ns.type][1])
    finally:
        os.close(fd)


def enter_pid_namespace(spec: ShimSpec, sys: Syscalls) -> None:
    """In the shim, before its first fork: the pid namespace its children are born in.

    Listed without a path: a new one (the first child becomes its PID 1). With a path:
    that one. Not listed: the host's, so nothing to do.
    """
    for ns in spec.linux.namespaces:
        if ns.type == NS_PID:
            if ns.path:
                join_namespace(sys, ns)
            else:
                sys.unshare(sc.CLONE_NEWPID)


class InitSetup:
    """The steps that turn a forked child of the shim into a container's PID 1.

    The shim has already entered the pid namespace (`enter_pid_namespace`) and moves this
    process into the container's cgroup while these steps run: that migration waits for
    an RCU grace period on cgroup v1 (several ms), so it overlaps the mount work.
    """

    proc_sys = "/proc/sys"  # after pivot_root: the container's own

    def __init__(
        self,
        spec: ShimSpec,
        sys: Syscalls,
        wait_for_cgroup: Callable[[], None],
        loopback_up: Callable[[], None] = set_loopback_up,
        open_terminal: Callable[[], None] | None = None,
    ) -> None:
        self.spec = spec
        self._open_terminal = open_terminal
        self.sys = sys
        self.root = spec.root.path
        self._wait_for_cgroup = wait_for_cgroup
        self._loopback_up = loopback_up
        # pid: the shim's doing; cgroup: only once we are in the container's cgroup.
        early = [ns for ns in spec.linux.namespaces if ns.type not in (NS_PID, NS_CGROUP)]
        self._new = [ns for ns in early if not ns.path]
        self._joined = [ns for ns in early if ns.path]
        self._cgroup_ns = next((ns for ns in spec.linux.namespaces if ns.type == NS_CGROUP), None)

    def steps(self) -> list[Step]:
        own_net = any(ns.type == NS_NETWORK for ns in self._new)
        cgroup_ns = self._cgroup_ns
        return [
            Step("unshare namespaces", self.unshare_namespaces),
            *(Step(f"join {ns.type} namespace", self._joiner(ns)) for ns in self._joined),
            # First, before any mount: with "rslave" (Docker's), nothing we mount
            # propagates to the host, and host mounts still propagate in.
            Step("set rootfs propagation", self.set_rootfs_propagation),
            Step("mount rootfs", self.mount_rootfs),
            # In the spec's order (proc, /dev, ... first, so a mount under one lands on
            # top). proc must be mounted by a process inside the new pid namespace (this one).
            Step("mount spec mounts", self.mount_spec_mounts),
            # Kernel order, not the spec's: the nodes and links go into the /dev the spec
            # mounted (a tmpfs), so only once every mount is made (as runc does).
            Step("make device nodes", self.make_device_nodes),
            Step("link dev", self.link_dev),
            *([Step("bring up loopback", self._loopback_up)] if own_net else []),
            *([Step("set hostname", self.set_hostname)] if self.spec.hostname else []),
            Step("pivot root", self.pivot_root),
            # After pivot_root: the pty comes from the container's devpts and /dev/console
            # is the container's; before the paths are masked and made read-only (runc's
            # order), and before the identity is set, so the slave is root's like runc's.
            *([Step("open terminal", self._open_terminal)] if self._open_terminal else []),
            # After pivot_root (the container's /proc, so its namespaces' values) and
            # before /proc/sys is made read-only.
            *([Step("write sysctls", self.write_sysctls)] if self.spec.linux.sysctl else []),
            # After pivot_root: these paths are the container's, and /dev/null is ours.
            Step("mask paths", self.mask_paths),
            Step("make paths read-only", self.readonly_paths),
            # Last of the filesystem work: every mount above needed a writable root.
            *([Step("make root read-only", self.readonly_root)] if self.spec.root.readonly else []),
            # The cgroup namespace's root is the cgroup we are in when we unshare it, so
            # only once the shim has moved us into the container's cgroup.
            Step("wait for cgroup", self._wait_for_cgroup),
            *(
                []
                if cgroup_ns is None
                else [Step("join cgroup namespace", self._joiner(cgroup_ns))]
                if cgroup_ns.path
                else [Step("unshare cgroup namespace", lambda: self.sys.unshare(sc.CLONE_NEWCGROUP))]
            ),
        ]

    def unshare_namespaces(self) -> None:
        flags = 0
        for ns in self._new:
            flags |= NAMESPACES[ns.type][1]
        self.sys.unshare(flags)

    def _joiner(self, ns: Namespace) -> Callable[[], None]:
        return lambda: join_namespace(self.sys, ns)

    def _at(self, path: str) -> str:
        return secure_join(self.root, path)

    def set_rootfs_propagation(self) -> None:
        _, propagation, _ = parse_options((self.spec.linux.rootfs_propagation,))
        if not propagation:
            raise FailedPrecondition(
                f"invalid rootfs propagation {self.spec.linux.rootfs_propagation!r}"
            )
        self.sys.mount("", "/", "", propagation, "")

    def mount_rootfs(self) -> None:
        root = self.spec.root
        if not root.layers:
            raise FailedPrecondition("rootfs has no lower directories")
        data = (
            f"lowerdir={':'.join(root.layers)},"
            f"upperdir={root.upper_dir},workdir={root.work_dir}"
        )
        self.sys.mount("overlay", self.root, "overlay", 0, data)

    def make_device_nodes(self) -> None:
        old = os.umask(0)
        try:
            for device in self.spec.linux.devices:
                path = self._at(device.path)
                os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
                kind = stat.S_IFCHR if device.type == "c" else stat.S_IFBLK
                os.mknod(path, kind | device.file_mode, os.makedev(device.major, device.minor))
                os.chown(path, device.uid, device.gid)
        finally:
            os.umask(old)

    def link_dev(self) -> None:
        dev = self._at("/dev")
        os.makedirs(dev, mode=0o755, exist_ok=True)
        for name, target in _DEV_LINKS:
            try:
                os.symlink(target, os.path.join(dev, name))
            except FileExistsError:
                pass  # the spec mounted something there, or the image's /dev has it

    def mount_spec_mounts(self) -> None:
        # The root as it is mounted now (the overlay): every target is opened inside it by
        # the kernel and mounted on through its fd, never by a path string that another
        # container sharing a volume higher up could redirect between a walk and the mount.
        root_fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for mount in self.spec.mounts:
                self._mount_one(root_fd, mount)
        finally:
            os.close(root_fd)

    def _mount_one(self, root_fd: int, mount: Mount) -> None:
        flags, propagation, data = parse_options(mount.options)
        bind = mount.type == "bind" or bool(flags & sc.MS_BIND)
        is_dir = True
        if bind:
            try:
                is_dir = stat.S_ISDIR(os.stat(mount.source).st_mode)
            except OSError as exc:
                raise FailedPrecondition(
                    f"bind source {mount.source} for {mount.destination}: {exc.strerror}"
                ) from None
        point = self._open_point(root_fd, mount.destination, is_dir)
        try:
            if bind:
                self.sys.mount(mount.source, fd_path(point), "", sc.MS_BIND | (flags & sc.MS_REC), "")
            else:
                self.sys.mount(mount.source or mount.type, fd_path(point), mount.type, flags, data)
        finally:
            os.close(point)
        # A bind ignores other flags; they take effect only on a remount.
        rest = flags & ~(sc.MS_BIND | sc.MS_REC) if bind else 0
        recursive_ro = bind and bool(flags & sc.MS_RDONLY) and bool(flags & sc.MS_REC)
        if not (rest or recursive_ro or propagation):
            return
        # What was just mounted, opened again: the fd above names the directory under it.
        top = self._open_point(root_fd, mount.destination, is_dir)
        try:
            target = fd_path(top)
            if rest:
                self.sys.mount("", target, "", sc.MS_BIND | sc.MS_REMOUNT | rest, "")
            if recursive_ro:
                # A remount reaches the top mount only: what is mounted below the source
                # (a bind of /srv with /srv/disk in it) would stay writable.
                try:
                    self.sys.make_read_only_recursive(target)
                except OSError as exc:
                    if exc.errno not in (errno.ENOSYS, errno.EINVAL):
                        raise
                    # Before Linux 5.12 (no mount_setattr): read-only at the top only,
                    # as docker falls back for -v :ro.
            if propagation:
                self.sys.mount("", target, "", propagation, "")
        finally:
            os.close(top)

    def _open_point(self, root_fd: int, destination: str, is_dir: bool) -> int:
        try:
            return open_mount_point(root_fd, destination, is_dir)
        except OSError as exc:
            raise FailedPrecondition(
                f"mount point {destination} in the container: {exc.strerror or exc}"
            ) from None

    def set_hostname(self) -> None:
        self.sys.sethostname(self.spec.hostname)

    def pivot_root(self) -> None:
        # pivot_root(".", ".") stacks the old root on top of the new one; detaching "."
        # then drops the old root without needing a directory for it inside the image.
        os.chdir(self.root)
        self.sys.pivot_root(".", ".")
        self.sys.umount2(".", sc.MNT_DETACH)
        os.chdir("/")

    def write_sysctls(self) -> None:
        for key, value in self.spec.linux.sysctl.items():
            path = os.path.join(self.proc_sys, *key.split("."))
            try:
                fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
            except FileNotFoundError:
                raise FailedPrecondition(f"sysctl {key} does not exist in this kernel") from None
            try:
                os.write(fd, value.encode())
            except OSError as exc:
                raise FailedPrecondition(
                    f"cannot set sysctl {key} to {value!r}: {exc.strerror or exc}"
                ) from None
            finally:
                os.close(fd)

    def mask_paths(self) -> None:
        for path in self.spec.linux.masked_paths:
            try:
                is_dir = stat.S_ISDIR(os.stat(path).st_mode)
            except OSError:
                continue  # nothing to hide
            if is_dir:
                self.sys.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY, "")
            else:
                self.sys.mount("/dev/null", path, "", sc.MS_BIND, "")

    def readonly_paths(self) -> None:
        for path in self.spec.linux.readonly_paths:
            try:
                kept = _kept_flags(path)
            except OSError:
                continue
            self.sys.mount(path, path, "", sc.MS_BIND | sc.MS_REC, "")
            self.sys.mount(
                path, path, "", sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_REC | kept, ""
            )

    def readonly_root(self) -> None:
        # A remount of the root mount only: /proc, /dev and the spec's mounts keep theirs.
        self.sys.mount("", "/", "", sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | _kept_flags("/"), "")


def _kept_flags(path: str) -> int:
    """The nosuid/nodev/noexec flags `path`'s mount has: a remount must repeat them."""
    return os.statvfs(path).f_flag & (sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)


class ExecJoin:
    """An exec process entering a running container's namespaces: those it has.

    A namespace the container shares with the host is not entered (we are in the host's
    already). It is a child of the shim, so already in the container's pid namespace; the
    shim moves it into the container's cgroup meanwhile.
    """

    def __init__(
        self,
        sys: Syscalls,
        init_pid: int,
        namespaces: tuple[Namespace, ...],
        wait_for_cgroup: Callable[[], None],
    ) -> None:
        self.sys = sys
        self.init_pid = init_pid
        listed = {ns.type for ns in namespaces}
        self.order = [t for t in EXEC_NAMESPACE_ORDER if t in listed]
        self._wait_for_cgroup = wait_for_cgroup
        self._fds: dict[str, int] = {}

    def steps(self) -> list[Step]:
        return [
            # Open every namespace first: after entering the mount namespace,
            # /proc/<pid> would be resolved in the container's /proc.
            Step("open namespaces", self.open_namespaces),
            *(Step(f"enter {t} namespace", self._enter(t)) for t in self.order),
            # Nothing of the user's runs before it is accounted to the container.
            Step("wait for cgroup", self._wait_for_cgroup),
        ]

    def open_namespaces(self) -> None:
        for ns_type in self.order:
            name = NAMESPACES[ns_type][0]
            fd = os.open(f"/proc/{self.init_pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
            self._fds[ns_type] = fd

    def _enter(self, ns_type: str) -> Callable[[], None]:
        def enter() -> None:
            fd = self._fds.pop(ns_type)
            try:
                self.sys.setns(fd, NAMESPACES[ns_type][1])
            finally:
                os.close(fd)

        return enter
