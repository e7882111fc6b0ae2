"""The kernel actions a shim takes to build a container, behind one protocol.

Owns: the `Syscalls` protocol (every namespace, mount, capability and identity call the
container setup makes) and `LibcSyscalls`, its ctypes implementation. Must not: decide
order or policy; that is `pallet.shim.steps` and `pallet.shim.identity`, which are
unit-tested against a fake.

Python 3.11 has no os.unshare/os.setns, so libc is called through ctypes; pivot_root and
capset have no libc wrapper and go through syscall(2).
"""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Protocol

from pallet.shim.api.mountflags import (
    MS_RDONLY as MS_RDONLY,
    MS_NOSUID as MS_NOSUID,
    MS_NODEV as MS_NODEV,
    MS_NOEXEC as MS_NOEXEC,
    MS_SYNCHRONOUS as MS_SYNCHRONOUS,
    MS_REMOUNT as MS_REMOUNT,
    MS_MANDLOCK as MS_MANDLOCK,
    MS_DIRSYNC as MS_DIRSYNC,
    MS_NOATIME as MS_NOATIME,
    MS_NODIRATIME as MS_NODIRATIME,
    MS_BIND as MS_BIND,
    MS_MOVE as MS_MOVE,
    MS_REC as MS_REC,
    MS_SILENT as MS_SILENT,
    MS_PRIVATE as MS_PRIVATE,
    MS_SLAVE as MS_SLAVE,
    MS_SHARED as MS_SHARED,
    MS_RELATIME as MS_RELATIME,
    MS_STRICTATIME as MS_STRICTATIME,
    MNT_DETACH as MNT_DETACH,
)

# Namespace flags (linux/sched.h).
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# Mount flags (linux/mount.h): imported above from the shim API's one table (the
# daemon's volumes and mount checks read it too), and re-exported here as sc.MS_*.

# prctl options (linux/prctl.h).
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

_SYS_PIVOT_ROOT = 155  # x86_64
_SYS_MOUNT_SETATTR = 442  # every architecture (Linux 5.12)
_AT_FDCWD = -100
_AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
# seccomp(2) (x86_64's number, as pivot_root's above): SECCOMP_SET_MODE_FILTER, no flags.
_SYS_SECCOMP = 317
_SYS_BPF = 321
SECCOMP_SET_MODE_FILTER = 1
_SYS_CAPSET = 126
_SYS_CAPGET = 125
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class Syscalls(Protocol):
    """Every kernel action container setup takes; raise OSError on failure."""

    def unshare(self, flags: int) -> None: ...

    def setns(self, fd: int, nstype: int) -> None: ...

    def mount(self, source: str, target: str, fstype: str, flags: int, data: str) -> None: ...

    def umount2(self, target: str, flags: int) -> None: ...

    def make_read_only_recursive(self, target: str) -> None:
        """The mount at `target` and every mount below it read-only (mount_setattr(2))."""
        ...

    def pivot_root(self, new_root: str, put_old: str) -> None: ...

    def prctl(self, option: int, arg2: int) -> None: ...

    def capset(self, effective: int, permitted: int, inheritable: int) -> None: ...

    def capget(self) -> tuple[int, int, int]: ...

    def sethostname(self, name: str) -> None: ...

    def setgroups(self, gids: list[int]) -> None: ...

    def setresgid(self, gid: int) -> None: ...

    def setresuid(self, uid: int) -> None: ...

    def setrlimit(self, resource: int, soft: int, hard: int) -> None: ...

    def bpf(self, command: int, attr_address: int, attr_size: int) -> int:
        """bpf(2) with the `union bpf_attr` at `attr_address`; its result (an fd, or 0)."""
        ...

    def seccomp_filter(self, program: bytes) -> None:
        """Install a classic BPF program (`struct sock_filter[]`) as this thread's
        seccomp filter: it needs no_new_privs set, or CAP_SYS_ADMIN."""
        ...


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


class _SockFprog(ctypes.Structure):
    # struct sock_fprog: the instruction count and a pointer to struct sock_filter[].
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _check(result: int, what: str) -> None:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


class LibcSyscalls:
    """The real thing: libc through ctypes (use_errno so failures carry their errno)."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.mount.argtypes = [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.c_char_p,
        ]
        self._libc.syscall.restype = ctypes.c_long
        # Resolve every function now, in the launcher: each shim then shares these objects
        # instead of creating (and dirtying memory for) its own on first use.
        for name in ("unshare", "setns", "umount2", "prctl", "sethostname"):
            getattr(self._libc, name)

    def unshare(self, flags: int) -> None:
        _check(self._libc.unshare(ctypes.c_int(flags)), f"unshare({flags:#x})")

    def setns(self, fd: int, nstype: int) -> None:
        _check(self._libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), f"setns({nstype:#x})")

    def mount(self, source: str, target: str, fstype: str, flags: int, data: str) -> None:
        result = self._libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        )
        _check(result, f"mount {source or fstype} on {target}")

    def umount2(self, target: str, flags: int) -> None:
        _check(self._libc.umount2(target.encode(), ctypes.c_int(flags)), f"umount {target}")

    def make_read_only_recursive(self, target: str) -> None:
        attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
        result = self._libc.syscall(
            ctypes.c_long(_SYS_MOUNT_SETATTR), ctypes.c_int(_AT_FDCWD), target.encode(),
            ctypes.c_uint(_AT_RECURSIVE), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
        )
        _check(result, f"mount_setattr read-only {target}")

    def pivot_root(self, new_root: str, put_old: str) -> None:
        result = self._libc.syscall(
            ctypes.c_long(_SYS_PIVOT_ROOT), new_root.encode(), put_old.encode()
        )
        _check(result, f"pivot_root {new_root}")

    def prctl(self, option: int, arg2: int) -> None:
        result = self._libc.prctl(
            ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(0),
            ctypes.c_ulong(0), ctypes.c_ulong(0),
        )
        _check(result, f"prctl({option})")

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        for i in range(2):
            shift = 32 * i
            data[i].effective = (effective >> shift) & 0xFFFFFFFF
            data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
            data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
        result = self._libc.syscall(
            ctypes.c_long(_SYS_CAPSET), ctypes.byref(header), ctypes.byref(data)
        )
        _check(result, "capset")

    def capget(self) -> tuple[int, int, int]:
        header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        result = self._libc.syscall(
            ctypes.c_long(_SYS_CAPGET), ctypes.byref(header), ctypes.byref(data)
        )
        _check(result, "capget")
        eff = data[0].effective | (data[1].effective << 32)
        prm = data[0].permitted | (data[1].permitted << 32)
        inh = data[0].inheritable | (data[1].inheritable << 32)
        return eff, prm, inh

    def sethostname(self, name: str) -> None:
        raw = name.encode()
        _check(self._libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")

    def setgroups(self, gids: list[int]) -> None:
        os.setgroups(gids)

    def setresgid(self, gid: int) -> None:
        os.setresgid(gid, gid, gid)

    def setresuid(self, uid: int) -> None:
        os.setresuid(uid, uid, uid)

    def setrlimit(self, resource: int, soft: int, hard: int) -> None:
        # libc, not the resource module: nothing is imported after pivot_root (the
        # container's root has no Python), and the launcher need not import it for all.
        limit = (ctypes.c_uint64 * 2)(soft, hard)
        _check(self._libc.setrlimit(ctypes.c_int(resource), ctypes.byref(limit)),
               f"setrlimit({resource})")

    def bpf(self, command: int, attr_address: int, attr_size: int) -> int:
        result = self._libc.syscall(
            ctypes.c_long(_SYS_BPF), ctypes.c_int(command), ctypes.c_void_p(attr_address),
            ctypes.c_uint(attr_size),
        )
        _check(result, f"bpf({command})")
        return int(result)

    def seccomp_filter(self, program: bytes) -> None:
        instructions = len(program) // 8
        buffer = ctypes.create_string_buffer(program, len(program))
        prog = _SockFprog(instructions, ctypes.cast(buffer, ctypes.c_void_p))
        result = self._libc.syscall(
            ctypes.c_long(_SYS_SECCOMP), ctypes.c_uint(SECCOMP_SET_MODE_FILTER),
            ctypes.c_uint(0), ctypes.byref(prog),
        )
        _check(result, "seccomp(SECCOMP_SET_MODE_FILTER)")


def is_enoent(exc: OSError) -> bool:
    return exc.errno == errno.ENOENT
